//! The broker's side of the metadata quorum: it starts this node's
//! [`Quorum`] (a single node is a one-voter quorum; a cluster's voters come
//! from `controller.quorum.voters`), proposes the controller's changes to
//! it and waits for them to commit, and upgrades a data directory written
//! before the quorum existed.
//!
//! The quorum runs on its own small runtime, not on the request workers:
//! its heartbeats and fsyncs are never queued behind client requests. Every
//! wait here is async and runs its timers on that runtime, so the broker's
//! control path never blocks a thread on another node, and a sync unit
//! test can wait on it with a plain executor. A simulation gives the quorum
//! its node's single-threaded runtime instead (see [`QuorumRuntime`]).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};
use vltava_meta::{MetaRecord, MetadataImage, MetadataStore};
use vltava_protocol::ResponseError;
use vltava_quorum::{
    NoPeers, Observer, ObserverConfig, ProposeError, Publisher, Quorum, QuorumConfig, TcpConnector,
    IMPORTED_FILE,
};

use super::StartError;
use crate::config::ControllerListener;
use crate::error::ApiError;

/// How long start-up waits for this node to apply its own metadata log.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a proposal sent to the leader may take (and then this node's
/// wait to apply it).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a voter waiting for its quorum to elect a leader says so.
const LEADER_WAIT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Worker threads of the quorum's runtime: its work is small and mostly
/// waits on fsyncs (done in `block_in_place`, which lends the worker out).
const QUORUM_WORKER_THREADS: usize = 1;

pub(crate) struct MetadataQuorum {
    runtime: QuorumRuntime,
    member: Member,
}

/// Where the quorum's tasks run.
enum QuorumRuntime {
    /// A runtime of its own (a real broker).
    Own(OwnedRuntime),
    /// A runtime the caller owns: a simulation's node, where every task
    /// of the node shares one simulated thread and clock.
    Shared(tokio::runtime::Handle),
}

impl QuorumRuntime {
    fn new(
        shared: Option<tokio::runtime::Handle>,
        dir: &Path,
    ) -> Result<QuorumRuntime, StartError> {
        match shared {
            Some(handle) => Ok(QuorumRuntime::Shared(handle)),
            None => OwnedRuntime::start(dir).map(QuorumRuntime::Own),
        }
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        match self {
            QuorumRuntime::Own(runtime) => runtime.get().handle(),
            QuorumRuntime::Shared(handle) => handle,
        }
    }

    /// Runs `work` on the quorum's runtime and waits for it without
    /// blocking a thread, from any runtime or none (a plain thread waits
    /// with [`futures_executor::block_on`]).
    async fn run<T: Send + 'static>(&self, work: impl Future<Output = T> + Send + 'static) -> T {
        self.handle()
            .spawn(work)
            .await
            .expect("quorum work does not panic, and its runtime runs until the broker is dropped")
    }
}

/// How this node takes part in the metadata quorum.
#[derive(Clone)]
enum Member {
    /// A voter (`process.roles=broker,controller`; a single node alone).
    Voter(Arc<Quorum>),
    /// A broker-only node, fetching the committed metadata from the voters.
    Observer(Arc<Observer>),
}

/// The quorum's runtime, shut down without waiting when dropped: dropping a
/// runtime normally waits for its tasks, which panics on an async worker,
/// where a broker (or a failed start) may well be dropped.
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl OwnedRuntime {
    /// The quorum's runtime (`dir` names the quorum in a failure).
    fn start(dir: &Path) -> Result<OwnedRuntime, StartError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(QUORUM_WORKER_THREADS)
            .thread_name("vltava-quorum")
            .enable_all()
            .build()
            .map_err(|source| StartError::Io {
                dir: dir.display().to_string(),
                source,
            })?;
        Ok(OwnedRuntime(Some(runtime)))
    }

    fn get(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("present until drop")
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl MetadataQuorum {
    /// Starts this node's member of the metadata quorum in `dir`
    /// (`<log.dirs>/__cluster_metadata-0`): the voters of
    /// `controller.quorum.voters`, or this node alone. A lone voter waits
    /// until it has applied everything in its log, so the image is the one
    /// the last run committed, and imports a metadata log written before
    /// the quorum existed (its segments directly in `dir`) once. A voter of
    /// several waits until some voter leads (a majority is up), however
    /// long that takes, as Kafka's nodes wait for their quorum; it catches
    /// up by registering (see [`MetadataQuorum::propose_if`]).
    pub(crate) async fn start(
        dir: &Path,
        node_id: i32,
        controller_listener: Option<&ControllerListener>,
        publisher: Arc<dyn Publisher>,
        now_ms: i64,
        seams: QuorumSeams,
    ) -> Result<MetadataQuorum, StartError> {
        let voter = u64::try_from(node_id).map_err(|_| {
            StartError::Inconsistent(format!("node.id {node_id} must not be negative"))
        })?;
        // A lone voter never dials anyone: without a controller listener
        // the address is a label.
        let voters = controller_listener.map_or_else(
            || [(voter, "local".to_string())].into(),
            |c| c.voters.clone(),
        );
        let lone = voters.len() == 1;
        // Bound here, so a taken port stops start-up with its name.
        let controller_socket = controller_listener
            .filter(|_| seams.acceptor.is_none())
            .map(|c| {
                let l = &c.bind;
                let address = format!("{}:{}", l.host, l.port);
                std::net::TcpListener::bind(&address)
                    .and_then(|s| s.set_nonblocking(true).map(|()| s))
                    .map_err(|e| {
                        StartError::Inconsistent(format!(
                            "cannot listen on the controller listener {}://{address}: {e}",
                            l.name
                        ))
                    })
            })
            .transpose()?;
        let runtime = QuorumRuntime::new(seams.runtime, dir)?;
        let legacy = legacy_segments(dir).map_err(|source| StartError::Io {
            dir: dir.display().to_string(),
            source,
        })?;
        let initial_records = match legacy.is_empty() || dir.join(IMPORTED_FILE).exists() {
            true => Vec::new(),
            false if lone => MetadataStore::open(dir, now_ms)?.image().to_records(),
            false => {
                return Err(StartError::Inconsistent(format!(
                    "{} holds a single node's metadata from before the quorum, which only a single node (without controller.quorum.voters) can upgrade; a single node cannot become one of several voters yet, so give this node an empty log.dirs to join the cluster",
                    dir.display()
                )))
            }
        };
        let nothing_to_import = initial_records.is_empty();
        let mut config = QuorumConfig::new(voter, voters.clone(), dir.to_path_buf());
        // A proposal sent to the leader, and this node's wait to apply it,
        // each within what a controller operation retries for in all.
        config.forward_timeout = FORWARD_TIMEOUT;
        config.initial_records = initial_records;
        config.publisher = Some(publisher);
        if let Some(storage) = seams.storage {
            config.storage = storage;
        }
        config.disk_wait = seams.disk_wait;
        let (given_acceptor, connector) = (seams.acceptor, seams.connector);
        let quorum = runtime.run(async move {
            let acceptor: Box<dyn vltava_quorum::Acceptor> = match controller_socket {
                _ if given_acceptor.is_some() => given_acceptor.expect("checked"),
                Some(socket) => {
                    let socket = tokio::net::TcpListener::from_std(socket)
                        .map_err(|e| vltava_quorum::QuorumError::Storage(e.to_string()))?;
                    match lone {
                        // A lone voter has no peer: its controller listener
                        // is bound, as configured, but every connection is
                        // closed unread (nobody else is a voter).
                        true => Box::new(LoneVoterListener(socket)),
                        false => Box::new(socket),
                    }
                }
                None => Box::new(NoPeers),
            };
            let quorum = Quorum::start(config, acceptor, connector).await?;
            if !lone {
                while quorum.wait_leader(LEADER_WAIT_LOG_INTERVAL).await.is_none() {
                    info!(voters = ?voters, "waiting for a majority of the metadata quorum's voters to elect a leader");
                }
                return Ok(quorum);
            }
            // Nothing can be proposed before the lone voter has elected
            // itself (the broker registers right after start).
            if quorum.wait_leader(CATCH_UP_TIMEOUT).await != Some(voter) {
                quorum.shutdown().await;
                return Err(vltava_quorum::QuorumError::Raft(format!(
                    "this node did not become the metadata leader within {} s",
                    CATCH_UP_TIMEOUT.as_secs()
                )));
            }
            // Everything in the log of a lone voter was committed.
            if let Some(last) = quorum.last_index_at_start() {
                if !quorum.wait_applied(last, CATCH_UP_TIMEOUT).await {
                    quorum.shutdown().await;
                    return Err(vltava_quorum::QuorumError::Raft(format!(
                        "the metadata log was not applied up to its entry {last} within {} s",
                        CATCH_UP_TIMEOUT.as_secs()
                    )));
                }
            }
            Ok(quorum)
        })
        .await
        .map_err(|e| StartError::Inconsistent(e.to_string()))?;
        // The import marker is written after the image committed.
        if !legacy.is_empty() && (nothing_to_import || dir.join(IMPORTED_FILE).exists()) {
            remove_legacy_segments(dir, &legacy);
        }
        Ok(MetadataQuorum {
            runtime,
            member: Member::Voter(Arc::new(quorum)),
        })
    }

    /// Starts a broker-only node's member: an observer that fetches the
    /// committed metadata from `voters`, and waits (logging every 10 s)
    /// until it has the image. It keeps no metadata log of its own: every
    /// start begins from the leader's image.
    pub(crate) async fn start_observer(
        dir: &Path,
        node_id: i32,
        voters: &std::collections::BTreeMap<u64, String>,
        publisher: Arc<dyn Publisher>,
        seams: QuorumSeams,
    ) -> Result<MetadataQuorum, StartError> {
        let io_err = |source| StartError::Io {
            dir: dir.display().to_string(),
            source,
        };
        if !legacy_segments(dir).map_err(io_err)?.is_empty() {
            return Err(StartError::Inconsistent(format!(
                "{} holds a single node's metadata from before the quorum, and this node is broker-only (process.roles=broker): give it an empty log.dirs",
                dir.display()
            )));
        }
        let node = u64::try_from(node_id).map_err(|_| {
            StartError::Inconsistent(format!("node.id {node_id} must not be negative"))
        })?;
        let runtime = QuorumRuntime::new(seams.runtime, dir)?;
        let config = ObserverConfig {
            node_id: node,
            voters: voters.clone(),
            publisher: Some(publisher),
            forward_timeout: FORWARD_TIMEOUT,
        };
        let voters = voters.clone();
        let connector = seams.connector;
        let observer = runtime
            .run(async move {
                let observer = Observer::start(config, connector);
                while !observer.wait_started(LEADER_WAIT_LOG_INTERVAL).await {
                    info!(voters = ?voters, "waiting to fetch the metadata from the voters");
                }
                observer
            })
            .await;
        Ok(MetadataQuorum {
            runtime,
            member: Member::Observer(Arc::new(observer)),
        })
    }

    /// Commits `records` if the leader's image is still the one this node
    /// had applied up to `expected` (see [`Quorum::propose_if`]); returns
    /// once this node has applied the change (its publisher included).
    pub(crate) async fn propose_if(
        &self,
        expected: Option<u64>,
        records: Vec<MetaRecord>,
        within: Duration,
    ) -> Result<u64, ProposeError> {
        let member = self.member.clone();
        self.run_within(within, "the proposal", async move {
            match member {
                Member::Voter(q) => q.propose_if(expected, records).await,
                Member::Observer(o) => o.propose_if(expected, records).await,
            }
        })
        .await
    }

    /// [`MetadataQuorum::propose_if`] only while this node leads.
    pub(crate) async fn propose_if_leading(
        &self,
        expected: Option<u64>,
        records: Vec<MetaRecord>,
        within: Duration,
    ) -> Result<u64, ProposeError> {
        let Member::Voter(q) = self.member.clone() else {
            return Err(ProposeError::NotLeader { leader: None });
        };
        self.run_within(within, "the proposal", async move {
            q.propose_if_leading(expected, records).await
        })
        .await
    }

    /// Waits until this node has applied at least `index`, or `timeout`.
    pub(crate) async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        match self.member.clone() {
            Member::Voter(q) => {
                self.run(async move { q.wait_applied(index, timeout).await })
                    .await
            }
            Member::Observer(o) => {
                self.run(async move { o.wait_applied(index, timeout).await })
                    .await
            }
        }
    }

    /// Reads the committed image as this node has applied it.
    pub(crate) fn with_image<R>(&self, read: impl FnOnce(&MetadataImage) -> R) -> R {
        match &self.member {
            Member::Voter(q) => q.with_image(read),
            Member::Observer(o) => o.with_image(read),
        }
    }

    /// Reads the committed image with the index of the last entry applied
    /// to it.
    pub(crate) fn with_image_at<R>(
        &self,
        read: impl FnOnce(&MetadataImage, Option<u64>) -> R,
    ) -> R {
        match &self.member {
            Member::Voter(q) => q.with_image_at(read),
            Member::Observer(o) => o.with_image_at(read),
        }
    }

    /// Sends this broker's heartbeat to the leader (within `timeout`).
    pub(crate) async fn heartbeat(
        &self,
        node_id: i32,
        epoch: i64,
        timeout: Duration,
    ) -> Result<(), ProposeError> {
        let node = u64::try_from(node_id).unwrap_or_default();
        let member = self.member.clone();
        self.run_within(timeout, "the heartbeat", async move {
            match member {
                Member::Voter(q) => q.heartbeat(node, epoch).await,
                Member::Observer(o) => o.heartbeat(node, epoch).await,
            }
        })
        .await
    }

    /// The heartbeats this node received while it leads (an observer
    /// never leads).
    pub(crate) fn heartbeats(&self) -> Option<vltava_quorum::Heartbeats> {
        match &self.member {
            Member::Voter(q) => q.heartbeats(),
            Member::Observer(_) => None,
        }
    }

    /// Whether this node is the only voter (nobody else can see it).
    pub(crate) fn is_lone_voter(&self) -> bool {
        match &self.member {
            Member::Voter(q) => q.voters().len() == 1,
            Member::Observer(_) => false,
        }
    }

    /// The voter that leads the quorum, as this node knows.
    pub(crate) fn leader(&self) -> Option<u64> {
        match &self.member {
            Member::Voter(q) => q.leader(),
            Member::Observer(o) => o.leader(),
        }
    }

    /// The quorum as its leader sees it (asked of the leader if need be).
    pub(crate) async fn leader_status(&self) -> Result<vltava_quorum::QuorumStatus, ProposeError> {
        match self.member.clone() {
            Member::Voter(q) => self.run(async move { q.leader_status().await }).await,
            Member::Observer(o) => self.run(async move { o.leader_status().await }).await,
        }
    }

    /// Stops the quorum (its storage is durable at every point).
    pub(crate) async fn close(&self) {
        match self.member.clone() {
            Member::Voter(q) => self.run(async move { q.shutdown().await }).await,
            Member::Observer(o) => self.run(async move { o.shutdown().await }).await,
        }
    }

    /// Runs quorum work that may wait on other nodes for at most `within`;
    /// past it, `Unavailable` ("`what` timed out": retriable).
    async fn run_within<T: Send + 'static>(
        &self,
        within: Duration,
        what: &'static str,
        work: impl Future<Output = Result<T, ProposeError>> + Send + 'static,
    ) -> Result<T, ProposeError> {
        self.run(async move {
            tokio::time::timeout(within, work)
                .await
                .unwrap_or_else(|_| {
                    Err(ProposeError::Unavailable(format!(
                        "{what} timed out after {} ms",
                        within.as_millis()
                    )))
                })
        })
        .await
    }

    /// Whether the quorum runs on a runtime its caller gave it (a
    /// simulation's), not one of its own.
    #[cfg(test)]
    pub(crate) fn shares_runtime(&self) -> bool {
        matches!(self.runtime, QuorumRuntime::Shared(_))
    }

    /// Pauses for `period` on the quorum's clock (so the control path needs
    /// no runtime of its caller's: sync tests wait on it with a plain
    /// executor) (a simulated one in a
    /// simulation), from any runtime or none.
    pub(crate) async fn sleep(&self, period: Duration) {
        self.run(tokio::time::sleep(period)).await
    }

    async fn run<T: Send + 'static>(&self, work: impl Future<Output = T> + Send + 'static) -> T {
        self.runtime.run(work).await
    }
}

/// What the quorum runs on, other than its config: the real network and
/// a runtime of its own, unless a simulation supplies its own.
pub struct QuorumSeams {
    /// The runtime to run on; `None` starts one of the quorum's own.
    pub runtime: Option<tokio::runtime::Handle>,
    /// Dials the other voters.
    pub connector: Arc<dyn vltava_quorum::Connector>,
    /// Takes the other voters' connections; `None` binds the controller
    /// listener of the config.
    pub acceptor: Option<Box<dyn vltava_quorum::Acceptor>>,
    /// The quorum log's storage; `None`: files.
    pub storage: Option<Arc<dyn vltava_log::storage::Storage>>,
    /// Awaited before each quorum append (a simulation's slow disk).
    pub disk_wait: Option<vltava_log::storage::DiskWait>,
}

impl Default for QuorumSeams {
    fn default() -> Self {
        QuorumSeams {
            runtime: None,
            connector: Arc::new(TcpConnector),
            acceptor: None,
            storage: None,
            disk_wait: None,
        }
    }
}

/// The Kafka error a broker answers when the quorum did not commit its
/// change: NOT_CONTROLLER while no leader is known (retriable: clients
/// look for the controller again), REQUEST_TIMED_OUT without a majority.
pub(crate) fn propose_error(e: ProposeError) -> ApiError {
    match e {
        ProposeError::NotLeader { .. } | ProposeError::Stale { .. } => {
            ApiError::new(ResponseError::NotController, e.to_string())
        }
        ProposeError::Unavailable(_) => {
            ApiError::new(ResponseError::RequestTimedOut, e.to_string())
        }
        ProposeError::Stopped(_) => ApiError::new(ResponseError::UnknownServerError, e.to_string()),
    }
}

/// The controller listener of a lone voter: it accepts and closes every
/// connection, and never yields one to the quorum (see `start_single`).
struct LoneVoterListener(tokio::net::TcpListener);

impl vltava_quorum::Acceptor for LoneVoterListener {
    fn accept(&mut self) -> vltava_quorum::network::AcceptFuture<'_> {
        Box::pin(async move {
            loop {
                let (stream, peer) = self.0.accept().await?;
                tracing::debug!(%peer, "closed a connection to the controller listener: this node is the only voter");
                drop(stream);
            }
        })
    }
}

/// The segment files of a metadata log written before the quorum: a
/// `vltava-log` log directly in `dir` (the quorum keeps its own in
/// `dir/log`).
fn legacy_segments(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let legacy = name == "log-start-offset"
            || name.split_once('.').is_some_and(|(stem, ext)| {
                stem.len() == 20
                    && stem.bytes().all(|b| b.is_ascii_digit())
                    && matches!(ext, "log" | "index" | "timeindex" | "snapshot")
            });
        if legacy && path.is_file() {
            files.push(path);
        }
    }
    // Only a log with a segment is one; index files alone are leftovers.
    if !files
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "log"))
    {
        return Ok(Vec::new());
    }
    files.sort();
    Ok(files)
}

/// Removes the old log once the quorum holds its image durably. A file
/// that cannot be removed is harmless: the marker keeps it from being
/// imported again.
fn remove_legacy_segments(dir: &Path, files: &[PathBuf]) {
    for file in files {
        if let Err(e) = std::fs::remove_file(file) {
            warn!(file = %file.display(), error = %e, "could not remove the pre-quorum metadata log; it is no longer read");
        }
    }
    info!(dir = %dir.display(), "upgraded the metadata log to the metadata quorum");
}
