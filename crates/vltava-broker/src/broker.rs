//! The broker's state: topics, partitions, metadata and producer ids.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tracing::{info, warn};
use uuid::Uuid;
use vltava_meta::{ConfigResource, MetaRecord, MetadataImage, PartitionImage, METADATA_DIR};
use vltava_protocol::ResponseError;
use vltava_quorum::ProposeError;

use crate::clock::Clock;
use crate::config::{validate_topic_config, BrokerConfig, TopicConfig, MIN_INSYNC_REPLICAS};
use crate::error::ApiError;
use crate::group::store::OFFSETS_TOPIC;
use crate::group::GroupCoordinator;
use crate::partition::Partition;

/// Producer ids are taken from the metadata log in blocks of this many, so
/// that a restart never hands out an id twice.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// Kafka's longest legal topic name.
const TOPIC_NAME_CHARS_MAX: usize = 249;

/// The name of the cluster metadata log's topic; its partition directory is
/// the broker's own metadata log, so no client topic may take the name.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// Partitions one request may add (CreateTopics, CreatePartitions), move
/// (AlterPartitionReassignments) or name for election (ElectLeaders): each
/// is a metadata record committed in one batch, and Kafka's controller caps
/// one operation at this many records.
pub const PARTITIONS_PER_REQUEST_MAX: i32 = 10_000;

/// Refuses a request naming more than [`PARTITIONS_PER_REQUEST_MAX`]
/// partitions to move or elect (POLICY_VIOLATION, as Kafka's controller
/// answers an excessively large batch).
fn check_partitions_named(count: usize) -> Result<(), ApiError> {
    if count > PARTITIONS_PER_REQUEST_MAX as usize {
        return Err(ApiError::new(
            ResponseError::PolicyViolation,
            format!(
                "Unable to perform excessively large batch operation: {count} partitions named, at most {PARTITIONS_PER_REQUEST_MAX} (PARTITIONS_PER_REQUEST_MAX) at once"
            ),
        ));
    }
    Ok(())
}

/// Partitions one broker hosts in all. Each holds a directory, a few file
/// handles while active, and its index memory; P5 in docs/benchmarks.md
/// measures 10,000 idle ones.
pub const PARTITIONS_PER_BROKER_MAX: usize = 100_000;

/// How long a controller operation keeps trying while leadership moves or
/// other changes keep coming first; past it the client gets the last
/// error (NOT_CONTROLLER or REQUEST_TIMED_OUT, both retriable).
/// Well inside the 30 s clients give an admin request, so they get the
/// error and can retry themselves.
const CONTROL_RETRY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a node could not join its cluster.
enum JoinError {
    /// The quorum did not commit the cluster id (see [`quorum_unavailable`]).
    Quorum(ApiError),
    /// This node's data belongs elsewhere, or cannot be written.
    Start(StartError),
}

impl From<StartError> for JoinError {
    fn from(e: StartError) -> Self {
        JoinError::Start(e)
    }
}

/// Whether a controller operation failed only because the quorum has no
/// reachable leader or majority now (NOT_CONTROLLER, REQUEST_TIMED_OUT):
/// worth trying again.
fn quorum_unavailable(e: &ApiError) -> bool {
    matches!(
        e.error,
        ResponseError::NotController | ResponseError::RequestTimedOut
    )
}

/// Where a controller operation's records may be committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Through whichever voter leads (sent on from here if need be).
    AnyNode,
    /// Only while this node leads: for decisions taken from what only this
    /// leader knows.
    LeaderOnly,
}

/// How long a reader waits for the publisher to serve a topic the image
/// already has (it opens the partitions right after the image changed).
const PUBLISH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How often that wait looks again.
const PUBLISH_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// How long a stopping broker tries to fence itself through the controller.
const SHUTDOWN_FENCE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// The pause before a controller operation tries again during an election.
const CONTROL_RETRY_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

/// Marks a partition directory as belonging to one incarnation of a topic.
const PARTITION_METADATA_FILE: &str = "partition.metadata";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {dir}: {source}")]
    Io { dir: String, source: io::Error },
    #[error(transparent)]
    Meta(#[from] vltava_meta::MetaError),
    #[error("partition {partition}: {source}")]
    Log {
        partition: String,
        source: vltava_log::LogError,
    },
    #[error("{0}")]
    Inconsistent(String),
}

/// A topic as the request handlers see it: an immutable snapshot. Changes
/// (new partitions, new configs) replace the snapshot; partitions are shared.
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<Arc<Partition>>,
    pub config: TopicConfig,
    pub overrides: BTreeMap<String, String>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }
}

struct ProducerIdBlock {
    next: i64,
    end: i64,
}

/// One topic's replication as the console's overview and topic list show
/// it (`Broker::replication_summary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicReplication {
    pub partitions: usize,
    /// The first partition's, without replicas joining by reassignment.
    pub factor: usize,
    pub under_replicated: usize,
    /// Partitions with no leader.
    pub offline: usize,
}

pub struct Broker {
    pub config: BrokerConfig,
    /// Dynamic broker configs as committed to the metadata log; written by
    /// the publisher only.
    dynamic: Arc<RwLock<dynamic_config::DynamicConfigs>>,
    cluster_id: String,
    clock: Arc<dyn Clock>,
    ids: IdSource,
    disk_wait: Option<vltava_log::storage::DiskWait>,
    /// This node's member of the metadata quorum.
    metadata: metadata::MetadataQuorum,
    /// The controller's lock: a change's checks against the image and its
    /// proposal happen under it, so two changes never pass their checks
    /// against the same image. Held across the commit.
    controller: tokio::sync::Mutex<()>,
    /// This broker's epoch: the one its last registration committed.
    epoch: std::sync::atomic::AtomicI64,
    /// When this node applied each broker incarnation's registration and
    /// fence (what the controller's fencing goes by).
    broker_events: Arc<Mutex<BTreeMap<(i32, i64), publisher::BrokerEvents>>>,
    /// Notified by the publisher when partitions were opened, removed or
    /// changed leader (the replica fetchers' cue).
    roles_changed: Arc<tokio::sync::Notify>,
    /// When this controller last checked for leadership to move back to
    /// preferred replicas.
    last_rebalance: Mutex<Option<tokio::time::Instant>>,
    /// Topics the publisher removed whose committed offsets this node's
    /// group coordinator has not forgotten yet.
    removed_topics: Arc<Mutex<Vec<String>>>,
    /// The topics as the committed metadata says; written by the publisher
    /// only.
    topics: Arc<RwLock<BTreeMap<String, Arc<Topic>>>>,
    /// Held across the commit of a new block.
    producer_ids: tokio::sync::Mutex<ProducerIdBlock>,
    /// Produce requests being validated and appended at once; see
    /// [`PRODUCE_REQUESTS_IN_PROGRESS_MAX`].
    produce_permits: tokio::sync::Semaphore,
    groups: GroupCoordinator,
    metrics: crate::metrics::Metrics,
    /// The exclusive lock on `log.dirs`, held for the broker's lifetime.
    _dir_lock: fs::File,
    /// (client id, topic) pairs already warned about an unsupported
    /// feature, so each client is told in the log once.
    warned: Mutex<std::collections::HashSet<(String, &'static str)>>,
    /// The schema registry server-side validation reads; set once by the
    /// server.
    schema_ids: std::sync::OnceLock<Arc<dyn crate::schema_ids::SchemaIdSource>>,
}

mod dynamic_config;
mod elections;
mod metadata;
mod publisher;
mod reassignment;
mod replication;
mod scrape;

pub use elections::ElectionKind;
pub use metadata::QuorumSeams;
pub use reassignment::Reassign;
pub use replication::{Fetched, PartitionOutcome};

/// Distinct (client, feature) warnings remembered; past this the log
/// repeats rather than memory growing with client ids.
const WARNED_CLIENTS_MAX: usize = 10_000;

/// What a broker runs on other than its config: the machine's network,
/// files and a runtime for the metadata quorum by default; a simulation
/// supplies its own.
#[derive(Default)]
pub struct BrokerSeams {
    pub quorum: metadata::QuorumSeams,
    /// The partition logs' storage; `None` takes the config's (files, or
    /// the test-only fault injection).
    pub storage: Option<Arc<dyn vltava_log::storage::Storage>>,
    /// Where new ids (topics, the cluster) and placement's random start
    /// come from; `None`: random (`Uuid::new_v4`). A simulation seeds
    /// its own.
    pub ids: Option<IdSource>,
    /// Awaited before each write job on the partition logs (a
    /// simulation's slow disk); `None`: no wait.
    pub disk_wait: Option<vltava_log::storage::DiskWait>,
}

/// A source of new ids.
pub type IdSource = Arc<dyn Fn() -> Uuid + Send + Sync>;

/// The lock file in `log.dirs`, as Kafka names it.
pub const DATA_DIR_LOCK_FILE: &str = ".lock";

/// Takes the exclusive lock on the data directory before anything in it is
/// read: two brokers replaying and appending to the same logs would corrupt
/// them. The lock is an `flock`, so it goes with the process, however that
/// ends. The holder's pid is written into the file for the message a second
/// broker prints.
fn lock_data_dir(data_dir: &Path) -> Result<fs::File, StartError> {
    use std::io::Write;
    let path = data_dir.join(DATA_DIR_LOCK_FILE);
    let io_err = |source| StartError::Io {
        dir: data_dir.display().to_string(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err)?;
    if let Err(e) = rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        let holder = fs::read_to_string(&path).unwrap_or_default();
        return Err(StartError::Inconsistent(format!(
            "data directory {} is in use by another broker ({}; {e}): one broker per log.dirs",
            data_dir.display(),
            match holder.trim() {
                "" => "holder unknown".to_string(),
                pid => format!("pid {pid}"),
            }
        )));
    }
    file.set_len(0).map_err(io_err)?;
    write!(file, "{}", std::process::id()).map_err(io_err)?;
    Ok(file)
}

/// Produce requests the broker validates and appends at the same time.
/// Inflating a compressed batch may cost a codec window of up to 128 MiB and
/// is CPU-bound, so more than a few at once only adds memory, not speed.
pub const PRODUCE_REQUESTS_IN_PROGRESS_MAX: usize = 4;

impl Broker {
    /// Opens the data directory: node identity, metadata replay, every
    /// partition's log (with tail recovery), and removal of leftovers of
    /// deleted topics.
    pub async fn open(config: BrokerConfig, clock: Arc<dyn Clock>) -> Result<Broker, StartError> {
        Broker::open_with(config, clock, BrokerSeams::default()).await
    }

    /// [`Broker::open`] on the given seams (a simulation's network,
    /// runtime and storage).
    pub async fn open_with(
        config: BrokerConfig,
        clock: Arc<dyn Clock>,
        seams: BrokerSeams,
    ) -> Result<Broker, StartError> {
        let data_dir = config.data_dir().clone();
        let io_err = |source| StartError::Io {
            dir: data_dir.display().to_string(),
            source,
        };
        fs::create_dir_all(&data_dir).map_err(io_err)?;
        let dir_lock = lock_data_dir(&data_dir)?;
        let stored_cluster_id =
            load_node_identity(&data_dir, config.node_id).map_err(|e| match e {
                NodeIdentityError::Io(source) => io_err(source),
                NodeIdentityError::Mismatch(msg) => StartError::Inconsistent(msg),
            })?;
        // Present only if the last run stopped cleanly; removed now so that
        // a crash from here on is seen as unclean next time.
        let clean_shutdown = take_clean_shutdown_marker(&data_dir).map_err(io_err)?;
        let topics = Arc::new(RwLock::new(BTreeMap::new()));
        let dynamic = Arc::new(RwLock::new(dynamic_config::DynamicConfigs::default()));
        let removed_topics = Arc::new(Mutex::new(Vec::new()));
        let broker_events = Arc::new(Mutex::new(BTreeMap::new()));
        let roles_changed = Arc::new(tokio::sync::Notify::new());
        let publisher = Arc::new(publisher::TopicPublisher::new(
            config.clone(),
            clock.clone(),
            topics.clone(),
            dynamic.clone(),
            removed_topics.clone(),
            broker_events.clone(),
            roles_changed.clone(),
            seams.storage.unwrap_or_else(|| {
                crate::storage_faults::storage_for(config.storage_fault_control.as_deref())
            }),
        ));
        let metadata = match &config.observed_voters {
            Some(voters) => {
                metadata::MetadataQuorum::start_observer(
                    &data_dir.join(METADATA_DIR),
                    config.node_id,
                    voters,
                    publisher.clone(),
                    seams.quorum,
                )
                .await?
            }
            None => {
                metadata::MetadataQuorum::start(
                    &data_dir.join(METADATA_DIR),
                    config.node_id,
                    config.controller_listener.as_ref(),
                    publisher.clone(),
                    clock.now_ms(),
                    seams.quorum,
                )
                .await?
            }
        };
        let groups = GroupCoordinator::new(config.groups.clone());
        let mut broker = Broker {
            config,
            dynamic,
            cluster_id: String::new(),
            clock,
            ids: seams.ids.unwrap_or_else(|| Arc::new(Uuid::new_v4)),
            disk_wait: seams.disk_wait,
            metadata,
            controller: tokio::sync::Mutex::new(()),
            epoch: std::sync::atomic::AtomicI64::new(-1),
            broker_events,
            roles_changed,
            last_rebalance: Mutex::new(None),
            removed_topics,
            topics,
            producer_ids: tokio::sync::Mutex::new(ProducerIdBlock { next: 0, end: 0 }),
            produce_permits: tokio::sync::Semaphore::new(PRODUCE_REQUESTS_IN_PROGRESS_MAX),
            groups,
            metrics: crate::metrics::Metrics::default(),
            _dir_lock: dir_lock,
            warned: Mutex::new(Default::default()),
            schema_ids: std::sync::OnceLock::new(),
        };
        // Both go through the leader, so once they are answered this node
        // has applied everything the leader had: the image is current.
        // A starting broker waits for its quorum however long that takes,
        // as Kafka's brokers resend their registration until the
        // controller takes it: a node restarted while cut off from the
        // leader joins once the network heals rather than exiting. (The
        // deterministic simulation found a restart during a partition
        // ending the process.)
        broker.cluster_id = loop {
            match broker.join_cluster(stored_cluster_id.clone()).await {
                Err(JoinError::Quorum(e)) if quorum_unavailable(&e) => {
                    info!(error = %e, "waiting for the metadata quorum to commit this node's join; trying again");
                }
                Err(JoinError::Quorum(e)) => {
                    return Err(StartError::Inconsistent(format!(
                        "joining the cluster: {e}"
                    )))
                }
                Err(JoinError::Start(e)) => return Err(e),
                Ok(id) => break id,
            }
        };
        loop {
            // A node that never held data (no meta.properties yet) lost
            // nothing, whatever its marker says.
            let unclean_shutdown = !clean_shutdown && stored_cluster_id.is_some();
            match broker.register(unclean_shutdown).await {
                Err(e) if quorum_unavailable(&e) => {
                    info!(error = %e, "waiting for the metadata quorum to commit this broker's registration; trying again");
                }
                Err(e) => {
                    return Err(StartError::Inconsistent(format!(
                        "registering this broker: {e}"
                    )))
                }
                Ok(()) => break,
            }
        }
        // Caught up: leftovers no topic owns are cleared before the
        // publisher opens what the image names.
        broker.metadata.with_image(|image| {
            remove_orphan_dirs(&data_dir, image)?;
            publisher.activate(image);
            Ok::<_, StartError>(())
        })?;
        let topics_loaded = broker.topics.read().len();
        report_recovery(&broker.topics.read(), clean_shutdown);
        info!(topics = topics_loaded, cluster_id = %broker.cluster_id, "broker state loaded");
        broker
            .groups
            .load(&broker)
            .map_err(|e| StartError::Inconsistent(format!("loading {OFFSETS_TOPIC}: {e}")))?;
        Ok(broker)
    }

    /// The cluster's id: the one in the committed metadata, else (the
    /// first controller to find none) this node's `meta.properties` id or
    /// a new one, committed. A node whose `meta.properties` names another
    /// cluster refuses to join it (Kafka's INCONSISTENT_CLUSTER_ID); a
    /// fresh node writes the cluster's id into its `meta.properties`.
    async fn join_cluster(&self, stored: Option<String>) -> Result<String, JoinError> {
        let mine = stored
            .clone()
            .unwrap_or_else(|| (self.ids)().simple().to_string()[..22].to_string());
        let cluster_id = self
            .control(|image| match &image.cluster_id {
                Some(id) => Ok((Vec::new(), id.clone())),
                None => Ok((
                    vec![MetaRecord::ClusterId {
                        cluster_id: mine.clone(),
                    }],
                    mine.clone(),
                )),
            })
            .await
            .map_err(JoinError::Quorum)?;
        match stored {
            Some(id) if id != cluster_id => Err(JoinError::Start(StartError::Inconsistent(format!(
                "INCONSISTENT_CLUSTER_ID: {} belongs to cluster {id}, but the metadata quorum's cluster is {cluster_id}: this data directory was written by another cluster (give the node an empty log.dirs to join this one)",
                self.config.data_dir().join(META_PROPERTIES_FILE).display()
            )))),
            Some(_) => Ok(cluster_id),
            None => {
                write_meta_properties(self.config.data_dir(), &cluster_id, self.node_id())
                    .map_err(|source| StartError::Io {
                        dir: self.config.data_dir().display().to_string(),
                        source,
                    })?;
                Ok(cluster_id)
            }
        }
    }

    /// Runs a controller operation. `decide` reads the committed image and
    /// says what to commit (nothing, for a check or a no-op) and what to
    /// answer; the records are committed only if the leader's image is
    /// still the one `decide` read, wherever the leader is (this node, or
    /// the voter it is sent to), and `decide` runs again on the newer image
    /// otherwise. Returns once this node has applied the change. `decide`
    /// runs with the image read-locked: it must read only the image it is
    /// given.
    ///
    /// Boxed: it sits at the bottom of every admin request's chain of
    /// futures, and one box here keeps their types shallow.
    pub(crate) fn control<'a, T: Send + 'a>(
        &'a self,
        decide: impl FnMut(&MetadataImage) -> Result<(Vec<MetaRecord>, T), ApiError> + Send + 'a,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, ApiError>> + Send + 'a>> {
        Box::pin(self.control_within(CONTROL_RETRY_DEADLINE, Route::AnyNode, decide))
    }

    /// [`Broker::control`], trying again for at most `deadline` (each
    /// attempt bounded by what is left of it), proposed as `route` says.
    async fn control_within<T: Send>(
        &self,
        deadline: std::time::Duration,
        route: Route,
        mut decide: impl FnMut(&MetadataImage) -> Result<(Vec<MetaRecord>, T), ApiError> + Send,
    ) -> Result<T, ApiError> {
        // Two changes from this node never race each other's checks.
        let _controller = self.controller.lock().await;
        let started = tokio::time::Instant::now();
        loop {
            let (expected, decided) = self
                .metadata
                .with_image_at(|image, applied| (applied, decide(image)));
            let (records, answer) = decided?;
            if records.is_empty() {
                return Ok(answer);
            }
            let left = deadline.saturating_sub(started.elapsed());
            let proposed = match route {
                Route::AnyNode => self.metadata.propose_if(expected, records, left).await,
                Route::LeaderOnly => {
                    self.metadata
                        .propose_if_leading(expected, records, left)
                        .await
                }
            };
            let left = deadline.saturating_sub(started.elapsed());
            match proposed {
                Ok(_) => return Ok(answer),
                // Another change came first: check again on the image
                // that has it.
                Err(ProposeError::Stale { applied }) if !left.is_zero() => {
                    if let Some(index) = applied {
                        self.metadata.wait_applied(index, left).await;
                    }
                }
                // An election, or a leader that just went away.
                Err(ProposeError::NotLeader { .. } | ProposeError::Unavailable(_))
                    if !left.is_zero() && route == Route::AnyNode =>
                {
                    self.metadata.sleep(CONTROL_RETRY_BACKOFF).await;
                }
                Err(e) => return Err(metadata::propose_error(e)),
            }
        }
    }

    /// Registers this broker (its advertised listeners and rack) with a new
    /// epoch, as each Kafka broker does when it starts; clients learn
    /// brokers' addresses from the registrations. `unclean_shutdown`: the
    /// previous run ended without a clean shutdown, so this node's logs may
    /// have lost unflushed writes; the controller then stops counting it as
    /// holding everything committed (KIP-966's clean shutdown detection,
    /// told by the broker rather than by comparing epochs: the marker it
    /// reads is removed, durably, before it registers).
    async fn register(&self, unclean_shutdown: bool) -> Result<(), ApiError> {
        let node_id = self.node_id();
        let endpoints: Vec<vltava_meta::BrokerEndpoint> = self
            .config
            .advertised_listeners
            .iter()
            .map(|l| vltava_meta::BrokerEndpoint {
                listener: l.name.clone(),
                host: l.host.clone(),
                port: l.port,
            })
            .collect();
        let epoch = self
            .control(|image| {
                let epoch = image.brokers.get(&node_id).map_or(0, |b| b.epoch + 1);
                let record = MetaRecord::RegisterBroker {
                    node_id,
                    epoch,
                    endpoints: endpoints.clone(),
                    rack: self.config.rack.clone(),
                    unclean_shutdown,
                };
                let rules = |name: &str| self.topic_rules(image, name);
                Ok((
                    elections::with_elections(image, vec![record], &rules),
                    epoch,
                ))
            })
            .await?;
        self.epoch
            .store(epoch, std::sync::atomic::Ordering::Release);
        info!(node_id, epoch, unclean_shutdown, "registered broker");
        Ok(())
    }

    /// The registered brokers reachable on `listener`, by id: (id, host,
    /// port, rack). A broker without that listener is left out, as Kafka
    /// leaves it out of answers to clients on that listener.
    pub fn brokers_on(&self, listener: &str) -> Vec<(i32, String, u16, Option<String>)> {
        self.metadata.with_image(|image| {
            image
                .brokers
                .iter()
                .filter(|(_, b)| !b.fenced)
                .filter_map(|(id, b)| {
                    let e = b.endpoint(listener)?;
                    Some((*id, e.host.clone(), e.port, b.rack.clone()))
                })
                .collect()
        })
    }

    /// Each topic's replication at a glance, from the committed image, by
    /// name: Kafka's under-replicated rule (`PartitionImage::under_replicated`).
    pub fn replication_summary(&self) -> BTreeMap<String, TopicReplication> {
        self.metadata.with_image(|image| {
            image
                .topics
                .iter()
                .map(|(name, t)| {
                    let summary = TopicReplication {
                        partitions: t.partitions.len(),
                        factor: t
                            .partitions
                            .first()
                            .map_or(0, |p| p.replicas.len().saturating_sub(p.adding.len())),
                        under_replicated: t
                            .partitions
                            .iter()
                            .filter(|p| p.under_replicated())
                            .count(),
                        offline: t.partitions.iter().filter(|p| p.leader < 0).count(),
                    };
                    (name.clone(), summary)
                })
                .collect()
        })
    }

    /// Every registered broker reachable on `listener`, fenced or not, by
    /// id: (id, host, port, rack, fenced).
    pub fn registered_on(&self, listener: &str) -> Vec<(i32, String, u16, Option<String>, bool)> {
        self.metadata.with_image(|image| {
            image
                .brokers
                .iter()
                .filter_map(|(id, b)| {
                    let e = b.endpoint(listener)?;
                    Some((*id, e.host.clone(), e.port, b.rack.clone(), b.fenced))
                })
                .collect()
        })
    }

    /// A registered, unfenced broker's advertised address on `listener`.
    pub fn address_on(&self, node_id: i32, listener: &str) -> Option<(String, u16)> {
        self.metadata.with_image(|image| {
            let e = image
                .brokers
                .get(&node_id)
                .filter(|b| !b.fenced)?
                .endpoint(listener)?;
            Some((e.host.clone(), e.port))
        })
    }

    /// How many brokers are registered and unfenced: what a replication
    /// factor is checked against.
    pub fn registered_broker_count(&self) -> usize {
        self.metadata
            .with_image(|image| image.brokers.values().filter(|b| !b.fenced).count())
    }

    /// Every registered broker's id, fenced or not.
    pub fn registered_ids(&self) -> std::collections::BTreeSet<i32> {
        self.metadata
            .with_image(|image| image.brokers.keys().copied().collect())
    }

    /// The registered brokers the controller fenced.
    pub fn fenced_brokers(&self) -> std::collections::BTreeSet<i32> {
        self.metadata.with_image(|image| {
            image
                .brokers
                .iter()
                .filter(|(_, b)| b.fenced)
                .map(|(id, _)| *id)
                .collect()
        })
    }

    /// The group coordinator's timers, and the offsets of deleted topics
    /// forgotten by whichever node coordinates each group (every 100 ms).
    pub async fn group_tick(&self) {
        self.forget_removed_topics().await;
        self.groups.tick(self).await;
    }

    /// Tombstones for the committed offsets of every topic removed since
    /// the last call, in the groups this node coordinates, so a topic
    /// created later under the same name does not inherit them.
    async fn forget_removed_topics(&self) {
        let removed = std::mem::take(&mut *self.removed_topics.lock());
        for name in removed {
            self.groups.forget_topic(self, &name).await;
        }
    }

    /// The cluster's clockwork, run every `broker.heartbeat.interval.ms`:
    /// this broker's heartbeat to the active controller and, on the
    /// controller, fencing the brokers whose session lapsed and unfencing
    /// those heard from again (Kafka's BrokerHeartbeat semantics, carried
    /// by the quorum's connections).
    pub async fn cluster_tick(&self) {
        let epoch = self.epoch.load(std::sync::atomic::Ordering::Acquire);
        if epoch < 0 {
            return;
        }
        // Unregistered while it lived (it was fenced, then taken out):
        // register again, as a Kafka broker does when told its epoch is
        // stale, so it is listed and placed on again.
        let node_id = self.node_id();
        let registered = self
            .metadata
            .with_image(|image| image.brokers.get(&node_id).map(|b| b.epoch));
        if registered.is_none() {
            // The same process: nothing was lost since the last registration.
            match self.register(false).await {
                Ok(()) => info!(
                    node_id,
                    "registered again: this broker's registration had been removed"
                ),
                Err(e) => warn!(error = %e, "could not register again"),
            }
            return;
        }
        let interval = std::time::Duration::from_millis(self.config.broker_heartbeat_interval_ms);
        if let Err(e) = self
            .metadata
            .heartbeat(self.node_id(), epoch, interval)
            .await
        {
            tracing::debug!(error = %e, "heartbeat did not reach the controller");
        }
        if let Some(heard) = self.metadata.heartbeats() {
            self.fence_and_unfence(&heard).await;
        }
        self.rebalance_leaders().await;
    }

    /// On the controller: fences every unfenced broker not heard from
    /// within `broker.session.timeout.ms` (a new controller counts every
    /// broker as heard from when it took over) and unfences every fenced
    /// one that heartbeats again with its current epoch.
    async fn fence_and_unfence(&self, heard: &vltava_quorum::Heartbeats) {
        let session = std::time::Duration::from_millis(self.config.broker_session_timeout_ms);
        let now = tokio::time::Instant::now();
        let events = self.broker_events.lock().clone();
        // When the incarnation was last known alive: its last heartbeat,
        // else when this leader took over or saw it register (a broker
        // heartbeats only once it serves, after its recovery), whichever is
        // latest.
        let alive = |id: i32, epoch: i64| {
            let heartbeat = heard
                .last
                .get(&(id as u64))
                .filter(|(e, _)| *e == epoch)
                .map(|(_, at)| *at);
            let registered = events.get(&(id, epoch)).and_then(|e| e.registered);
            let since = [Some(heard.leading_since), heartbeat, registered]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(heard.leading_since);
            now.duration_since(since) < session
        };
        // Heard from since it was fenced: a broker that fenced itself at
        // shutdown is not brought back by its last heartbeat before that.
        let heartbeating = |id: i32, epoch: i64| {
            let fenced = events.get(&(id, epoch)).and_then(|e| e.fenced);
            heard.last.get(&(id as u64)).is_some_and(|(e, at)| {
                *e == epoch && now.duration_since(*at) < session && fenced.is_none_or(|f| *at > f)
            })
        };
        let wanted = |image: &MetadataImage| -> Vec<MetaRecord> {
            image
                .brokers
                .iter()
                .filter_map(|(id, b)| match b.fenced {
                    false if !alive(*id, b.epoch) => Some(MetaRecord::FenceBroker {
                        node_id: *id,
                        epoch: b.epoch,
                    }),
                    true if heartbeating(*id, b.epoch) => Some(MetaRecord::UnfenceBroker {
                        node_id: *id,
                        epoch: b.epoch,
                    }),
                    _ => None,
                })
                .collect()
        };
        if self.metadata.with_image(|image| wanted(image).is_empty()) {
            return;
        }
        // Decided from this leader's heartbeats: committed only while it
        // still leads, never sent on to a new leader that heard others.
        let changed = self
            .control_within(session, Route::LeaderOnly, |image| {
                let records = wanted(image);
                let rules = |name: &str| self.topic_rules(image, name);
                Ok((
                    elections::with_elections(image, records.clone(), &rules),
                    records,
                ))
            })
            .await;
        match changed {
            Ok(records) => {
                for record in records {
                    match record {
                        MetaRecord::FenceBroker { node_id, epoch } => {
                            warn!(
                                node_id,
                                epoch,
                                session_ms = self.config.broker_session_timeout_ms,
                                "fenced broker: no heartbeat within the session timeout"
                            )
                        }
                        MetaRecord::UnfenceBroker { node_id, epoch } => {
                            info!(node_id, epoch, "unfenced broker: it heartbeats again")
                        }
                        _ => {}
                    }
                }
            }
            Err(e) => warn!(error = %e, "could not fence or unfence brokers"),
        }
    }

    /// Removes broker `node_id`'s registration. Decided: only a fenced
    /// broker (stopped, or silent past its session) can be unregistered; a
    /// live one is refused rather than left serving unlisted.
    pub async fn unregister_broker(&self, node_id: i32) -> Result<(), ApiError> {
        self.control(|image| match image.brokers.get(&node_id) {
            None => Err(ApiError::new(
                ResponseError::BrokerIdNotRegistered,
                format!("Broker ID {node_id} is not currently registered"),
            )),
            Some(b) if !b.fenced => Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("Broker {node_id} is alive (not fenced): stop it before unregistering it"),
            )),
            Some(_) => Ok((vec![MetaRecord::UnregisterBroker { node_id }], ())),
        })
        .await?;
        info!(node_id, "unregistered broker");
        Ok(())
    }

    /// Controlled shutdown: this broker fences itself through the
    /// controller, so clients stop being sent to it at once rather than
    /// after the session timeout. A lone voter has nobody to tell. Called
    /// before the listeners stop (and again by `close`, which then finds it
    /// fenced and does nothing).
    pub async fn shut_down_in_cluster(&self) {
        let epoch = self.epoch.load(std::sync::atomic::Ordering::Acquire);
        if epoch < 0 || self.metadata.is_lone_voter() {
            return;
        }
        let node_id = self.node_id();
        let fenced = self
            .control_within(SHUTDOWN_FENCE_DEADLINE, Route::AnyNode, |image| {
                let current = image
                    .brokers
                    .get(&node_id)
                    .is_some_and(|b| b.epoch == epoch && !b.fenced);
                let records = match current {
                    true => vec![MetaRecord::FenceBroker { node_id, epoch }],
                    false => Vec::new(),
                };
                // Leadership moves to other in-sync replicas in the same change.
                let rules = |name: &str| self.topic_rules(image, name);
                Ok((elections::with_elections(image, records, &rules), ()))
            })
            .await;
        match fenced {
            Ok(()) => info!(node_id, epoch, "controlled shutdown: this broker is fenced"),
            Err(e) => {
                warn!(error = %e, "controlled shutdown could not reach the controller; the session timeout will fence this broker")
            }
        }
    }

    /// The controller id clients are given: the quorum's leader as this
    /// node knows it while it is a live broker (so clients find it among
    /// the brokers listed), else this node: during an election, or while
    /// the leader is fenced or shutting down (Kafka gives clients a live
    /// broker; any broker takes controller requests and forwards them).
    pub fn controller_id(&self) -> i32 {
        match self.metadata.leader().and_then(|id| i32::try_from(id).ok()) {
            Some(id) if self.live_broker_epoch(id).is_some() => id,
            _ => self.node_id(),
        }
    }

    /// The metadata quorum as its leader sees it (DescribeQuorum): asked
    /// of the leader when this node does not lead. NOT_LEADER_OR_FOLLOWER
    /// while no leader is known.
    pub async fn leader_quorum_status(&self) -> Result<vltava_quorum::QuorumStatus, ApiError> {
        self.metadata.leader_status().await.map_err(|e| match e {
            ProposeError::NotLeader { .. } => {
                ApiError::new(ResponseError::NotLeaderOrFollower, e.to_string())
            }
            e => metadata::propose_error(e),
        })
    }

    /// Waits for `work` (a controller operation) in a sync unit test:
    /// nothing in it needs the caller's runtime (the quorum's waits and
    /// pauses run on the quorum's own).
    ///
    /// A broker whose quorum shares the caller's runtime cannot wait like
    /// this: the wait would stop the very tasks it waits for, so it panics
    /// with that rather than hang.
    #[cfg(test)]
    pub(crate) fn block_on<F: std::future::Future>(&self, work: F) -> F::Output {
        assert!(
            !self.metadata.shares_runtime(),
            "Broker::block_on on a broker whose quorum shares the caller's runtime would wait forever"
        );
        futures_executor::block_on(work)
    }

    /// Reads the committed metadata image as this node has applied it,
    /// with the index of the last entry applied (a simulation compares
    /// every node's image at the same index).
    pub fn with_metadata_image<R>(&self, read: impl FnOnce(&MetadataImage, Option<u64>) -> R) -> R {
        self.metadata.with_image_at(read)
    }

    pub fn groups(&self) -> &GroupCoordinator {
        &self.groups
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// This broker's epoch (its registration's), -1 before it registered.
    pub fn epoch(&self) -> i64 {
        self.epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits for the disk before a write job on the partition logs (a
    /// simulation's slow disk, [`vltava_log::storage::DiskWait`]); returns
    /// at once in production.
    pub async fn wait_for_disk(&self) {
        if let Some(wait) = &self.disk_wait {
            tokio::time::sleep(wait.next()).await;
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Logs `message` at WARN the first time `client_id` asks for the
    /// unsupported `feature`.
    pub(crate) fn warn_once(&self, client_id: &str, feature: &'static str, message: &str) {
        let mut warned = self.warned.lock();
        if warned.len() >= WARNED_CLIENTS_MAX {
            warned.clear();
        }
        if warned.insert((client_id.to_string(), feature)) {
            warn!(client_id, feature, "{message}");
        }
    }

    /// Sets where server-side schema validation reads registered ids (the
    /// node's schema registry). Once; later calls are ignored.
    pub fn set_schema_id_source(&self, source: Arc<dyn crate::schema_ids::SchemaIdSource>) {
        let _ = self.schema_ids.set(source);
    }

    /// The schema ids the registry holds now, for a produce to a topic
    /// with schema validation on.
    pub(crate) async fn schema_ids_now(&self) -> Result<Arc<crate::schema_ids::SchemaIds>, String> {
        match self.schema_ids.get() {
            Some(source) => source.current().await,
            None => Err("this broker has no schema registry to validate against".to_string()),
        }
    }

    /// A permit to validate and append one produce request.
    pub(crate) async fn produce_permit(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.produce_permits
            .acquire()
            .await
            .expect("the produce semaphore is never closed")
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    /// A topic the committed image has: the publisher may still be opening
    /// it (another node created it a moment ago), so this waits for it a
    /// little (`PUBLISH_WAIT`) before saying it is not there.
    pub(crate) async fn published_topic(&self, name: &str) -> Option<Arc<Topic>> {
        let started = tokio::time::Instant::now();
        loop {
            if let Some(topic) = self.topic(name) {
                return Some(topic);
            }
            let committed = self
                .metadata
                .with_image(|image| image.topics.contains_key(name));
            if !committed || started.elapsed() > PUBLISH_WAIT {
                return None;
            }
            self.metadata.sleep(PUBLISH_POLL).await;
        }
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics.read().values().find(|t| t.id == id).cloned()
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics.read().values().cloned().collect()
    }

    /// Creates a topic for a client. With `validate_only` everything is
    /// checked and nothing is changed. Returns the topic as it is (or would
    /// be). Internal topics are the broker's to create, with its settings.
    pub async fn create_topic(
        &self,
        name: &str,
        num_partitions: i32,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(i32, TopicConfig, Uuid), ApiError> {
        let factor = self.config.default_replication_factor;
        self.create_topic_replicated(name, num_partitions, factor, overrides, validate_only)
            .await
    }

    /// [`Broker::create_topic`] with `replication_factor` copies of each
    /// partition.
    pub async fn create_topic_replicated(
        &self,
        name: &str,
        num_partitions: i32,
        replication_factor: i16,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(i32, TopicConfig, Uuid), ApiError> {
        validate_topic_name(name)?;
        if is_internal_topic(name) {
            self.metadata
                .with_image(|image| check_name_free(image, name))?;
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("Topic {name} is an internal topic: the broker creates it with its own settings"),
            ));
        }
        let placement = Placement::Automatic(replication_factor);
        self.create_topic_unchecked(name, num_partitions, overrides, validate_only, placement)
            .await
    }

    /// Creates a topic for a client that placed each partition itself
    /// (CreateTopics' manual assignment): `replicas[p]` is partition `p`'s
    /// replicas, registered brokers, the preferred leader first.
    pub async fn create_topic_placed(
        &self,
        name: &str,
        replicas: &[Vec<i32>],
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(i32, TopicConfig, Uuid), ApiError> {
        validate_topic_name(name)?;
        if is_internal_topic(name) {
            return self
                .create_topic(name, replicas.len() as i32, overrides, validate_only)
                .await;
        }
        let count = i32::try_from(replicas.len()).unwrap_or(i32::MAX);
        let placement = Placement::Manual(replicas);
        self.create_topic_unchecked(name, count, overrides, validate_only, placement)
            .await
    }

    /// Creates one of the broker's internal topics with the given settings.
    pub(crate) async fn create_internal_topic(
        &self,
        name: &str,
        num_partitions: i32,
        overrides: BTreeMap<String, String>,
    ) -> Result<(i32, TopicConfig, Uuid), ApiError> {
        assert!(is_internal_topic(name), "{name} is not an internal topic");
        // `offsets.topic.replication.factor` copies, or as many as there are
        // unfenced brokers if fewer (decided: a young cluster still gets its
        // groups; Kafka refuses until enough brokers are up).
        let live = self.registered_broker_count().max(1);
        let factor = usize::from(self.config.groups.offsets_replication_factor).min(live);
        let placement = Placement::Automatic(factor as i16);
        self.create_topic_unchecked(name, num_partitions, overrides, false, placement)
            .await
    }

    async fn create_topic_unchecked(
        &self,
        name: &str,
        num_partitions: i32,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
        placement: Placement<'_>,
    ) -> Result<(i32, TopicConfig, Uuid), ApiError> {
        validate_topic_name(name)?;
        if num_partitions <= 0 {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                "Number of partitions must be larger than 0.",
            ));
        }
        check_partitions_per_request(num_partitions)?;
        for (key, value) in &overrides {
            validate_topic_config(key, value)?;
        }
        let topic_config = self.resolve_topic_config(&overrides);
        let topic_id = (self.ids)();
        let spin = (self.ids)().as_u128();
        self.control(|image| {
            check_name_free(image, name)?;
            let replicas = match placement {
                Placement::Manual(replicas) => {
                    check_manual_placement(image, replicas)?;
                    replicas.to_vec()
                }
                Placement::Automatic(factor) => {
                    place_partitions(image, &[], num_partitions, factor, spin)?
                }
            };
            check_partitions_per_broker(image, &replicas)?;
            if validate_only {
                return Ok((Vec::new(), ()));
            }
            let mut records = vec![MetaRecord::Topic {
                name: name.to_string(),
                topic_id,
            }];
            records.extend(replicas.into_iter().enumerate().map(|(p, replicas)| {
                MetaRecord::partition(topic_id, p as i32, &PartitionImage::new(replicas))
            }));
            records.extend(overrides.iter().map(|(k, v)| MetaRecord::Config {
                resource: ConfigResource::Topic(name.to_string()),
                name: k.clone(),
                value: Some(v.clone()),
            }));
            // Committed, then opened by the publisher of the broker each
            // partition is placed on.
            Ok((records, ()))
        })
        .await?;
        Ok((num_partitions, topic_config, topic_id))
    }

    /// Creates a topic with the broker defaults if auto-creation allows it.
    pub async fn auto_create_topic(&self, name: &str) -> Result<Arc<Topic>, ApiError> {
        match self
            .create_topic(name, self.config.num_partitions, BTreeMap::new(), false)
            .await
        {
            Ok(_) => {}
            Err(e) if e.error == ResponseError::TopicAlreadyExists => {}
            Err(e) => return Err(e),
        }
        self.published_topic(name).await.ok_or_else(|| {
            ApiError::new(
                ResponseError::UnknownTopicOrPartition,
                "topic vanished while being created",
            )
        })
    }

    pub async fn delete_topic(&self, name: &str) -> Result<Uuid, ApiError> {
        if is_internal_topic(name) {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("Topic {name} is an internal topic and cannot be deleted"),
            ));
        }
        let topic_id = self
            .control(|image| {
                let topic_id = image.topics.get(name).map(|t| t.topic_id).ok_or_else(|| {
                    ApiError::new(
                        ResponseError::UnknownTopicOrPartition,
                        "This server does not host this topic-partition.",
                    )
                })?;
                // Committed, then fenced and removed by the publishers.
                Ok((vec![MetaRecord::RemoveTopic { topic_id }], topic_id))
            })
            .await?;
        // This node's coordinator forgets its groups' offsets now; the
        // other coordinators on their next group tick.
        self.forget_removed_topics().await;
        Ok(topic_id)
    }

    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
        manual: Option<&[Vec<i32>]>,
    ) -> Result<(), ApiError> {
        self.control(|image| {
            let topic = image.topics.get(name).ok_or_else(|| {
                ApiError::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("The topic '{name}' does not exist."),
                )
            })?;
            let current = topic.partitions.len() as i32;
            if count == current {
                return Err(ApiError::new(
                    ResponseError::InvalidPartitions,
                    format!("Topic already has {current} partitions."),
                ));
            }
            if count < current {
                return Err(ApiError::new(
                    ResponseError::InvalidPartitions,
                    format!("Topic currently has {current} partitions, which is higher than the requested {count}."),
                ));
            }
            check_partitions_per_request(count - current)?;
            // New partitions get as many copies as the first one has.
            let factor = topic.partitions.first().map_or(1, |p| p.replicas.len()) as i16;
            let replicas = match manual {
                Some(replicas) => {
                    check_manual_placement(image, replicas)?;
                    if let Some(other) = replicas.iter().find(|r| r.len() != factor as usize) {
                        return Err(ApiError::new(
                            ResponseError::InvalidReplicaAssignment,
                            format!("Inconsistent replication factor between partitions, partition 0 has {factor} while a new one has {} replicas.", other.len()),
                        ));
                    }
                    replicas.to_vec()
                }
                None => {
                    let spin = (self.ids)().as_u128();
                    place_partitions(image, &topic.partitions, count - current, factor, spin)?
                }
            };
            check_partitions_per_broker(image, &replicas)?;
            if validate_only {
                return Ok((Vec::new(), ()));
            }
            let records = replicas
                .into_iter()
                .enumerate()
                .map(|(i, replicas)| {
                    let image = PartitionImage::new(replicas);
                    MetaRecord::partition(topic.topic_id, current + i as i32, &image)
                })
                .collect();
            Ok((records, ()))
        }).await
    }

    /// Replaces a topic's config overrides with `overrides`.
    pub async fn set_topic_overrides(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        for (key, value) in &overrides {
            validate_topic_config(key, value)?;
        }
        let resource = ConfigResource::Topic(name.to_string());
        let changes = self
            .control(|image| {
                if !image.topics.contains_key(name) {
                    return Err(ApiError::new(
                        ResponseError::UnknownTopicOrPartition,
                        format!("Topic {name} does not exist"),
                    ));
                }
                if validate_only {
                    return Ok((Vec::new(), 0));
                }
                let current = image.configs_of(&resource);
                let mut records = config_changes(&resource, &current, &overrides);
                let changes = records.len();
                if current.get(MIN_INSYNC_REPLICAS) != overrides.get(MIN_INSYNC_REPLICAS) {
                    records.extend(elections::min_insync_changed(image, &|t| t == name));
                }
                Ok((records, changes))
            })
            .await?;
        if !validate_only {
            info!(topic = name, changes, "altered topic configs");
        }
        Ok(())
    }

    /// Hands out a fresh producer id, persisting a new block when needed.
    pub async fn allocate_producer_id(&self) -> Result<i64, ApiError> {
        let mut block = self.producer_ids.lock().await;
        if block.next == block.end {
            let after = block.end;
            let (start, end) = self
                .control(|image| {
                    let start = image.next_producer_id.max(after);
                    let end = start + PRODUCER_ID_BLOCK;
                    let record = MetaRecord::ProducerIds {
                        next_producer_id: end,
                    };
                    Ok((vec![record], (start, end)))
                })
                .await?;
            *block = ProducerIdBlock { next: start, end };
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }

    /// Deletes segments past retention on every partition.
    pub fn enforce_retention(&self) {
        let now_ms = self.now_ms();
        let expiration_ms = self.producer_id_expiration_ms();
        for topic in self.topics() {
            for partition in topic.partitions.iter().filter(|p| !p.is_offline()) {
                let expired = partition.expire_producers(now_ms, expiration_ms);
                if expired > 0 {
                    info!(topic = %topic.name, partition = partition.index, producers = expired, "expired idle producer ids");
                }
                match partition
                    .log()
                    .apply_retention_below(now_ms, partition.high_watermark())
                {
                    Ok(0) => {}
                    Ok(deleted) => {
                        info!(topic = %topic.name, partition = partition.index, segments = deleted, "retention deleted segments")
                    }
                    Err(e) => {
                        warn!(topic = %topic.name, partition = partition.index, error = %e, "retention failed")
                    }
                }
            }
        }
    }

    /// Applies the time-based flush policy (`flush.ms`) on every partition.
    pub fn flush_due(&self) {
        let now_ms = self.now_ms();
        for topic in self.topics() {
            for partition in topic.partitions.iter().filter(|p| !p.is_offline()) {
                if let Err(e) = partition.log().flush_if_due(now_ms) {
                    warn!(topic = %topic.name, partition = partition.index, error = %e, "scheduled flush failed");
                }
            }
        }
    }

    /// Flushes every log and the metadata log, for shutdown.
    pub async fn close(&self) {
        self.shut_down_in_cluster().await;
        let mut flushed = true;
        for topic in self.topics() {
            for partition in topic.partitions.iter().filter(|p| !p.is_offline()) {
                if let Err(e) = partition.close() {
                    flushed = false;
                    warn!(topic = %topic.name, partition = partition.index, error = %e, "flush at shutdown failed");
                }
            }
        }
        // The quorum's log and vote are durable at every point.
        self.metadata.close().await;
        // Only a shutdown that flushed everything is a clean one.
        if flushed {
            if let Err(e) = write_clean_shutdown_marker(self.config.data_dir()) {
                warn!(error = %e, "could not record the clean shutdown; the next start will recover as after a crash");
            }
        }
    }
}

/// Written by a shutdown that flushed everything; its absence at start means
/// the last run crashed (Kafka's `.kafka_cleanshutdown`).
const CLEAN_SHUTDOWN_FILE: &str = ".vltava-clean-shutdown";

fn take_clean_shutdown_marker(data_dir: &Path) -> std::io::Result<bool> {
    match fs::remove_file(data_dir.join(CLEAN_SHUTDOWN_FILE)) {
        Ok(()) => {
            fs::File::open(data_dir)?.sync_all()?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn write_clean_shutdown_marker(data_dir: &Path) -> std::io::Result<()> {
    vltava_log::write_durably(data_dir, CLEAN_SHUTDOWN_FILE, b"")
}

/// Says at INFO what opening the partitions checked and repaired: a line per
/// partition that was repaired, and one summary, worded by whether the last
/// run stopped cleanly.
fn report_recovery(topics: &BTreeMap<String, Arc<Topic>>, clean_shutdown: bool) {
    let mut total = vltava_log::RecoveryReport::default();
    let mut partitions = 0usize;
    let mut truncated_partitions = 0usize;
    for topic in topics.values() {
        for partition in topic.partitions.iter().filter(|p| !p.is_offline()) {
            let r = partition.log().recovery();
            partitions += 1;
            total.segments += r.segments;
            total.scanned_bytes += r.scanned_bytes;
            total.scanned_batches += r.scanned_batches;
            total.truncated_bytes += r.truncated_bytes;
            total.rebuilt_indexes += r.rebuilt_indexes;
            total.removed_files += r.removed_files;
            truncated_partitions += usize::from(r.truncated_bytes > 0);
            if r.repaired() {
                info!(
                    topic = %topic.name,
                    partition = partition.index,
                    scanned_bytes = r.scanned_bytes,
                    scanned_batches = r.scanned_batches,
                    truncated_bytes = r.truncated_bytes,
                    rebuilt_indexes = r.rebuilt_indexes,
                    removed_files = r.removed_files,
                    "partition repaired on open"
                );
            }
        }
    }
    if partitions == 0 {
        return;
    }
    if clean_shutdown && total.truncated_bytes > 0 {
        // A clean stop flushed everything: bytes that are not batches
        // after one mean the disk or something else changed the files.
        warn!(
            truncated_partitions,
            truncated_bytes = total.truncated_bytes,
            "logs had invalid bytes after a clean shutdown; the disk may be failing"
        );
    }
    let message = if clean_shutdown {
        "logs opened after a clean shutdown"
    } else {
        "logs recovered after an unclean shutdown"
    };
    info!(
        partitions,
        segments = total.segments,
        scanned_bytes = total.scanned_bytes,
        scanned_batches = total.scanned_batches,
        truncated_partitions,
        truncated_bytes = total.truncated_bytes,
        rebuilt_indexes = total.rebuilt_indexes,
        removed_files = total.removed_files,
        "{message}"
    );
}

/// Kafka's own bookkeeping topics: created by the broker, hidden from
/// auto-create, protected from deletion and from client writes.
fn check_name_free(image: &MetadataImage, name: &str) -> Result<(), ApiError> {
    if image.topics.contains_key(name) {
        return Err(ApiError::new(
            ResponseError::TopicAlreadyExists,
            format!("Topic '{name}' already exists."),
        ));
    }
    // Metric names replace '.' with '_', so Kafka refuses names that
    // would collide that way.
    let normalized = name.replace('.', "_");
    if let Some(other) = image
        .topics
        .keys()
        .find(|t| t.replace('.', "_") == normalized)
    {
        return Err(ApiError::new(
            ResponseError::InvalidTopicException,
            format!("Topic '{name}' collides with existing topic: {other}"),
        ));
    }
    Ok(())
}

/// Where a new topic's partitions go.
#[derive(Debug, Clone, Copy)]
enum Placement<'a> {
    /// Chosen by [`place_partitions`], this many copies of each.
    Automatic(i16),
    /// A client's: each partition's replicas.
    Manual(&'a [Vec<i32>]),
}

/// The registered, unfenced brokers in placement order: racks alternate (the first
/// broker of each rack, then the second of each, ...), as Kafka's
/// rack-aware assignment orders them, so consecutive partitions land on
/// different racks; brokers without a rack count as one rack.
fn placement_order(image: &MetadataImage) -> Vec<i32> {
    let mut racks: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for (id, broker) in image.brokers.iter().filter(|(_, b)| !b.fenced) {
        racks.entry(broker.rack.as_deref()).or_default().push(*id);
    }
    let mut order = Vec::with_capacity(image.brokers.len());
    for round in 0.. {
        let before = order.len();
        order.extend(racks.values().filter_map(|ids| ids.get(round)));
        if order.len() == before {
            break;
        }
    }
    order
}

/// Places `adding` new partitions of a topic whose partitions are
/// `existing`, `factor` copies each: the leader on the broker leading the
/// fewest of the topic's partitions, ties going round the rack-alternating
/// order from a random start, so leaders are balanced per topic and
/// consecutive partitions change rack; the followers on the brokers after
/// the leader in that order (so a partition's copies alternate racks too).
/// `spin` is a random number that picks the start.
fn place_partitions(
    image: &MetadataImage,
    existing: &[PartitionImage],
    adding: i32,
    factor: i16,
    spin: u128,
) -> Result<Vec<Vec<i32>>, ApiError> {
    let order = placement_order(image);
    if order.is_empty() {
        return Err(ApiError::new(
            ResponseError::BrokerNotAvailable,
            "No unfenced broker is registered to place partitions on",
        ));
    }
    let factor = usize::try_from(factor).unwrap_or(0);
    if factor == 0 || factor > order.len() {
        return Err(ApiError::new(
            ResponseError::InvalidReplicationFactor,
            format!(
                "Unable to replicate the partition {factor} time(s): The target replication factor of {factor} cannot be reached because only {} broker(s) are registered and unfenced.",
                order.len()
            ),
        ));
    }
    let mut load: BTreeMap<i32, usize> = order.iter().map(|id| (*id, 0)).collect();
    for p in existing {
        if let Some(n) = load.get_mut(&p.replicas.first().copied().unwrap_or(p.leader)) {
            *n += 1;
        }
    }
    let start = (spin % order.len() as u128) as usize;
    let mut placed = Vec::with_capacity(adding.max(0) as usize);
    for i in 0..adding.max(0) as usize {
        let least = load.values().copied().min().unwrap_or(0);
        let at = (0..order.len())
            .map(|k| (start + i + k) % order.len())
            .find(|at| load[&order[*at]] == least)
            .expect("some broker holds the least");
        *load.get_mut(&order[at]).expect("placed on a known broker") += 1;
        placed.push((0..factor).map(|k| order[(at + k) % order.len()]).collect());
    }
    Ok(placed)
}

/// A client's own placement: every partition on distinct registered,
/// unfenced brokers, and the same number of copies of each.
fn check_manual_placement(image: &MetadataImage, replicas: &[Vec<i32>]) -> Result<(), ApiError> {
    let invalid = |message: String| {
        Err(ApiError::new(
            ResponseError::InvalidReplicaAssignment,
            message,
        ))
    };
    for (p, set) in replicas.iter().enumerate() {
        if set.is_empty() {
            return invalid(format!("Partition {p} has no replicas."));
        }
        if let Some(unknown) = set
            .iter()
            .find(|id| image.brokers.get(id).is_none_or(|b| b.fenced))
        {
            return invalid(format!("The manual partition assignment includes broker {unknown}, but no such broker is registered."));
        }
        let distinct: BTreeSet<i32> = set.iter().copied().collect();
        if distinct.len() != set.len() {
            return invalid(format!(
                "Duplicate brokers not allowed in replica assignment: {set:?} for partition {p}."
            ));
        }
        if set.len() != replicas[0].len() {
            return invalid(format!("All partitions should have the same number of replicas; partition 0 has {} and partition {p} has {}.", replicas[0].len(), set.len()));
        }
    }
    Ok(())
}

fn check_partitions_per_broker(
    image: &MetadataImage,
    replicas: &[Vec<i32>],
) -> Result<(), ApiError> {
    let mut adding: BTreeMap<i32, usize> = BTreeMap::new();
    for broker in replicas.iter().flatten() {
        *adding.entry(*broker).or_default() += 1;
    }
    for (broker, adding) in adding {
        let hosted = image
            .topics
            .values()
            .flat_map(|t| &t.partitions)
            .filter(|p| p.replicas.contains(&broker))
            .count();
        if hosted + adding > PARTITIONS_PER_BROKER_MAX {
            return Err(ApiError::new(
                ResponseError::PolicyViolation,
                format!(
                    "Adding {adding} partitions to the {hosted} broker {broker} hosts would pass its limit of {PARTITIONS_PER_BROKER_MAX} (PARTITIONS_PER_BROKER_MAX)"
                ),
            ));
        }
    }
    Ok(())
}

pub fn is_internal_topic(name: &str) -> bool {
    matches!(name, OFFSETS_TOPIC | "__transaction_state")
}

/// The partitions one CreateTopics or CreatePartitions request has added so
/// far, against [`PARTITIONS_PER_REQUEST_MAX`]: an item that would pass the
/// limit fails, smaller ones after it may still fit.
#[derive(Debug, Default)]
pub struct PartitionBudget {
    spent: i32,
}

impl PartitionBudget {
    /// Takes `adding` partitions out of the budget, or refuses them.
    pub fn spend(&mut self, adding: i32) -> Result<(), ApiError> {
        let total = self.spent.saturating_add(adding.max(0));
        check_partitions_per_request(total)?;
        self.spent = total;
        Ok(())
    }
}

/// Refuses one request adding more than [`PARTITIONS_PER_REQUEST_MAX`].
pub fn check_partitions_per_request(adding: i32) -> Result<(), ApiError> {
    if adding > PARTITIONS_PER_REQUEST_MAX {
        return Err(ApiError::new(
            ResponseError::InvalidPartitions,
            format!(
                "A request may add at most {PARTITIONS_PER_REQUEST_MAX} partitions (PARTITIONS_PER_REQUEST_MAX); this one adds {adding}"
            ),
        ));
    }
    Ok(())
}

/// Closes and removes partitions that were opened for a change that did
/// not happen. Nothing else holds them.
/// The `Config` records that turn `current` into `wanted` for `resource`:
/// a value for each new or changed key, a removal for each dropped one.
fn config_changes(
    resource: &ConfigResource,
    current: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, String>,
) -> Vec<MetaRecord> {
    let set = wanted
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| (k, Some(v.clone())));
    let removed = current
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .map(|k| (k, None));
    set.chain(removed)
        .map(|(name, value)| MetaRecord::Config {
            resource: resource.clone(),
            name: name.clone(),
            value,
        })
        .collect()
}

/// Kafka's topic-name rules.
pub fn validate_topic_name(name: &str) -> Result<(), ApiError> {
    let invalid = |msg: String| Err(ApiError::new(ResponseError::InvalidTopicException, msg));
    if name.is_empty() {
        return invalid("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return invalid("Topic name cannot be \".\" or \"..\"".into());
    }
    if name == METADATA_TOPIC {
        return invalid(format!(
            "Topic name {METADATA_TOPIC} is reserved for the cluster metadata log"
        ));
    }
    if name.len() > TOPIC_NAME_CHARS_MAX {
        return invalid(format!(
            "Topic name is illegal, it can't be longer than {TOPIC_NAME_CHARS_MAX} characters, topic name: {name}"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return invalid(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn open_partition(
    storage: &Arc<dyn vltava_log::storage::Storage>,
    data_dir: &Path,
    topic: &str,
    topic_id: Uuid,
    index: i32,
    leader_epoch: i32,
    config: &TopicConfig,
    now_ms: i64,
) -> Result<Partition, StartError> {
    let name = Partition::dir_name(topic, index);
    let log_err = |source| StartError::Log {
        partition: name.clone(),
        source,
    };
    let partition = Partition::open_with_storage(
        storage,
        data_dir,
        topic,
        topic_id,
        index,
        leader_epoch,
        config.log_config(),
        now_ms,
    )
    .map_err(log_err)?;
    let marker = partition.dir().join(PARTITION_METADATA_FILE);
    if !marker.exists() {
        fs::write(&marker, format!("version: 0\ntopic_id: {topic_id}\n"))
            .map_err(|e| log_err(vltava_log::LogError::from(e)))?;
    }
    Ok(partition)
}

impl From<StartError> for ApiError {
    fn from(e: StartError) -> ApiError {
        ApiError::new(ResponseError::KafkaStorageError, e.to_string())
    }
}

/// Clears directories that no topic in `image` owns. Leftovers of deletes
/// cut short by a crash (`…-delete`) and partition directories holding no
/// records (a creation cut short) are removed. A partition directory that
/// holds records is never removed here: it is renamed `<dir>.<id>-stray` and
/// left for the operator, since the metadata log may be what is wrong. If
/// the metadata log names no topic at all while such directories exist,
/// start-up stops instead: that is a lost or replaced metadata log, not a
/// set of deleted topics. Anything that is not a partition directory
/// (`lost+found`, an operator's own) is left alone.
fn remove_orphan_dirs(
    data_dir: &Path,
    image: &vltava_meta::MetadataImage,
) -> Result<(), StartError> {
    let io_err = |source| StartError::Io {
        dir: data_dir.display().to_string(),
        source,
    };
    let mut strays = Vec::new();
    for entry in fs::read_dir(data_dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        if !entry.file_type().map_err(io_err)?.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_string();
        if name == METADATA_DIR {
            continue;
        }
        let path = entry.path();
        let Some(partition) = partition_dir_name(&name) else {
            if name.ends_with("-delete") {
                warn!(dir = %path.display(), "removing the leftover of a deleted partition");
                fs::remove_dir_all(&path).map_err(io_err)?;
            }
            continue;
        };
        // Owned directories (nearly all) are checked by their marker only;
        // the directory itself is read only when no topic owns it.
        let owned = image
            .topics
            .get(partition.0)
            .is_some_and(|t| partition.1 < t.partitions.len() && belongs_to(&path, t.topic_id));
        if owned || !looks_like_partition(&path) {
            continue;
        }
        if holds_records(&path).map_err(io_err)? {
            strays.push(path);
        } else {
            warn!(dir = %path.display(), "removing an empty partition directory no topic owns");
            fs::remove_dir_all(&path).map_err(io_err)?;
        }
    }
    if image.topics.is_empty() && !strays.is_empty() {
        return Err(StartError::Inconsistent(format!(
            "the metadata log in {} names no topics, but {} partition directories hold records (for example {}); refusing to start rather than lose them: restore the metadata log, or move those directories out of log.dirs",
            data_dir.join(METADATA_DIR).display(),
            strays.len(),
            strays[0].display()
        )));
    }
    for path in strays {
        let stray = path.with_file_name(format!(
            "{}.{}-stray",
            path.file_name().unwrap_or_default().to_string_lossy(),
            Uuid::new_v4().simple()
        ));
        warn!(dir = %path.display(), renamed = %stray.display(), "a partition directory no topic owns holds records; keeping it aside");
        fs::rename(&path, &stray).map_err(io_err)?;
    }
    Ok(())
}

/// Whether any segment file in `dir` has bytes in it.
fn holds_records(dir: &Path) -> io::Result<bool> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".log") && entry.metadata()?.len() > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `<topic>-<partition>` split into its parts.
fn partition_dir_name(name: &str) -> Option<(&str, usize)> {
    let (topic, partition) = name.rsplit_once('-')?;
    Some((topic, partition.parse().ok()?))
}

/// A directory is a partition's if it holds a segment or the partition file.
fn looks_like_partition(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".log") || name == PARTITION_METADATA_FILE
        })
    })
}

/// A partition directory belongs to a topic incarnation if its marker names
/// that topic id (or it has no marker yet).
fn belongs_to(dir: &Path, topic_id: Uuid) -> bool {
    match fs::read_to_string(dir.join(PARTITION_METADATA_FILE)) {
        Ok(text) => text.contains(&topic_id.to_string()),
        Err(_) => true,
    }
}

enum NodeIdentityError {
    Io(io::Error),
    Mismatch(String),
}

/// Reads or writes `meta.properties` (cluster id and node id), as Kafka
/// keeps them, so a data directory is never mounted under another node id.
/// The file in `log.dirs` naming the cluster and the node, as Kafka's.
pub const META_PROPERTIES_FILE: &str = "meta.properties";

/// Writes `meta.properties` (Kafka's keys: version, cluster.id, node.id)
/// durably: to a temporary file, fsynced, renamed, directory fsynced.
/// `vltava storage format` writes it ahead of the first start; otherwise
/// the first start does.
pub fn write_meta_properties(data_dir: &Path, cluster_id: &str, node_id: i32) -> io::Result<()> {
    fs::create_dir_all(data_dir)?;
    let text = format!("version=1\ncluster.id={cluster_id}\nnode.id={node_id}\n");
    vltava_log::write_durably(data_dir, META_PROPERTIES_FILE, text.as_bytes())
}

fn load_node_identity(data_dir: &Path, node_id: i32) -> Result<Option<String>, NodeIdentityError> {
    let path = data_dir.join(META_PROPERTIES_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let props = crate::config::parse_properties(&text);
            let get = |k: &str| {
                props
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
            };
            if let Some(stored) = get("node.id") {
                if stored != node_id.to_string() {
                    return Err(NodeIdentityError::Mismatch(format!(
                        "{} belongs to node.id={stored}, but this broker is node.id={node_id}",
                        path.display()
                    )));
                }
            }
            get("cluster.id").map(Some).ok_or_else(|| {
                NodeIdentityError::Mismatch(format!("{} has no cluster.id", path.display()))
            })
        }
        // A fresh node: it takes the cluster's id when it joins.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NodeIdentityError::Io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_partition_directories_are_removed_as_orphans() {
        let data = tempfile::tempdir().unwrap();
        let make = |name: &str, file: Option<&str>| {
            let dir = data.path().join(name);
            fs::create_dir(&dir).unwrap();
            if let Some(file) = file {
                fs::write(dir.join(file), b"").unwrap();
            }
            dir
        };
        let orphan = make("gone-0", Some("00000000000000000000.log"));
        let leftover = make("gone-1.0123abcd-delete", Some("00000000000000000000.log"));
        let foreign = make("lost+found", None);
        let operators = make("backup-2024", None);
        remove_orphan_dirs(data.path(), &vltava_meta::MetadataImage::default()).unwrap();
        assert!(!orphan.exists());
        assert!(!leftover.exists());
        assert!(foreign.exists());
        assert!(
            operators.exists(),
            "not a partition directory: no segment inside"
        );
    }

    #[test]
    fn partition_directories_holding_records_are_never_removed() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("gone-0");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("00000000000000000000.log"), b"records").unwrap();
        // No topic at all in the metadata: a lost metadata log, not a delete.
        let err = remove_orphan_dirs(data.path(), &vltava_meta::MetadataImage::default());
        assert!(
            matches!(&err, Err(StartError::Inconsistent(m)) if m.contains("names no topics")),
            "{err:?}"
        );
        assert!(dir.exists());
        // With other topics known, the orphan is kept aside, not deleted.
        let mut image = vltava_meta::MetadataImage::default();
        image.apply(&MetaRecord::Topic {
            name: "other".into(),
            topic_id: Uuid::new_v4(),
        });
        remove_orphan_dirs(data.path(), &image).unwrap();
        assert!(!dir.exists());
        let kept: Vec<String> = fs::read_dir(data.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(
            kept[0].starts_with("gone-0.") && kept[0].ends_with("-stray"),
            "{kept:?}"
        );
        let segment = data.path().join(&kept[0]).join("00000000000000000000.log");
        assert_eq!(fs::read(segment).unwrap(), b"records");
    }

    fn open_broker(dir: &Path) -> Broker {
        let pairs = [("log.dirs".to_string(), dir.display().to_string())];
        let (config, _) = BrokerConfig::from_pairs(&pairs).unwrap();
        futures_executor::block_on(Broker::open(
            config,
            Arc::new(crate::ManualClock::new(1_000)),
        ))
        .unwrap()
    }

    /// A committed topic whose partition cannot be opened here is served
    /// with that partition offline (the change is committed; a bad disk
    /// must not stop a broker following the metadata), and a restart after
    /// the repair serves it.
    #[test]
    fn a_partition_that_cannot_be_opened_is_offline_until_repaired() {
        let data = tempfile::tempdir().unwrap();
        {
            let broker = open_broker(data.path());
            // Partition 1's directory cannot be made: a file holds its name.
            fs::write(data.path().join("t-1"), b"in the way").unwrap();
            broker
                .block_on(broker.create_topic("t", 2, BTreeMap::new(), false))
                .unwrap();
            let topic = broker.topic("t").unwrap();
            assert_eq!(topic.partitions.len(), 2);
            assert!(!topic.partitions[0].is_offline());
            assert!(topic.partitions[1].is_offline());
            broker.block_on(broker.close());
        }
        fs::remove_file(data.path().join("t-1")).unwrap();
        let broker = open_broker(data.path());
        let topic = broker.topic("t").unwrap();
        assert_eq!(topic.partitions.len(), 2);
        assert!(topic.partitions.iter().all(|p| !p.is_offline()));
    }

    /// A data directory written before the metadata quorum (its metadata
    /// log directly in `__cluster_metadata-0`) is upgraded in place: the
    /// quorum imports the image once, topics keep their ids, records,
    /// configs and producer ids, dynamic broker configs stay, and the old
    /// log is removed; a second start changes nothing.
    #[test]
    fn a_pre_quorum_data_directory_is_upgraded_in_place() {
        use bytes::Bytes;
        use vltava_record::{validate_batch, BatchBuilder, Compression};
        let data = tempfile::tempdir().unwrap();
        let topic_id = {
            let broker = open_broker(data.path());
            broker
                .block_on(broker.create_topic("t", 2, BTreeMap::new(), false))
                .unwrap();
            let topic = broker.topic("t").unwrap();
            let batch = BatchBuilder::new(Compression::None)
                .record(None, Some(Bytes::from_static(b"kept")), vec![], 1)
                .build();
            let header = validate_batch(&batch).unwrap();
            topic.partitions[0]
                .append(batch, &header, false, 1)
                .unwrap();
            broker.block_on(broker.close());
            topic.id
        };
        // The metadata log as the single-node store wrote it.
        let meta_dir = data.path().join(METADATA_DIR);
        fs::remove_dir_all(&meta_dir).unwrap();
        let mut legacy = vltava_meta::MetadataStore::open(&meta_dir, 1).unwrap();
        let mut records = vec![MetaRecord::Topic {
            name: "t".into(),
            topic_id,
        }];
        records.extend((0..2).map(|partition| MetaRecord::Partition {
            topic_id,
            partition,
            replicas: vec![1],
            leader: 1,
            leader_epoch: 0,
            isr: None,
            partition_epoch: 0,
            adding: vec![],
            removing: vec![],
            elr: vec![],
        }));
        records.push(MetaRecord::Config {
            resource: ConfigResource::Topic("t".into()),
            name: "retention.ms".into(),
            value: Some("1234".into()),
        });
        records.push(MetaRecord::Config {
            resource: ConfigResource::Broker(String::new()),
            name: "log.cleaner.backoff.ms".into(),
            value: Some("777".into()),
        });
        records.push(MetaRecord::ProducerIds {
            next_producer_id: 5_000,
        });
        legacy.append(&records, 1).unwrap();
        legacy.close().unwrap();
        drop(legacy);
        assert!(meta_dir.join("00000000000000000000.log").exists());

        for start in 0..2 {
            let broker = open_broker(data.path());
            let topic = broker.topic("t").unwrap();
            assert_eq!(topic.id, topic_id, "start {start}");
            assert_eq!(topic.partitions.len(), 2);
            assert_eq!(topic.partitions[0].log_end_offset(), 1);
            assert_eq!(topic.partitions[1].log_end_offset(), 0);
            assert_eq!(topic.config.log_config().retention_ms, 1234);
            assert_eq!(broker.cleaner_backoff_ms(), 777);
            assert_eq!(broker.topics().len(), 1);
            let id = broker.block_on(broker.allocate_producer_id()).unwrap();
            assert!(
                id >= 5_000 + start * PRODUCER_ID_BLOCK,
                "start {start}: {id}"
            );
            let leftovers: Vec<_> = fs::read_dir(&meta_dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                .filter(|n| n.ends_with(".log") || n.ends_with("index") || n == "log-start-offset")
                .collect();
            assert!(leftovers.is_empty(), "start {start}: {leftovers:?}");
            assert!(meta_dir.join(vltava_quorum::IMPORTED_FILE).exists());
            broker.block_on(broker.close());
        }
    }

    /// Each start registers the broker again with the next epoch, its
    /// advertised listeners and rack.
    #[test]
    fn every_start_registers_the_broker_with_a_new_epoch() {
        let data = tempfile::tempdir().unwrap();
        for epoch in 0..3 {
            let broker = open_broker(data.path());
            let registered = broker
                .metadata
                .with_image(|image| image.brokers[&1].clone());
            assert_eq!(registered.epoch, epoch);
            assert_eq!(registered.rack, None);
            let endpoint = &registered.endpoints[0];
            assert_eq!(
                (
                    endpoint.listener.as_str(),
                    endpoint.host.as_str(),
                    endpoint.port
                ),
                ("PLAINTEXT", "127.0.0.1", 9092)
            );
            broker.block_on(broker.close());
        }
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "a b",
            "naïve",
            &"x".repeat(250),
            "__cluster_metadata",
        ] {
            assert_eq!(
                validate_topic_name(bad).unwrap_err().error,
                ResponseError::InvalidTopicException,
                "{bad}"
            );
        }
    }
}
