//! Deterministic simulation of whole brokers: 3 or 5 nodes, each a
//! `vltava_broker::Broker` with its metadata quorum voter, its request
//! path (`vltava_server::serve_connection`), its replica fetchers and its
//! timers (`vltava_server::run_background`), in this one process on
//! turmoil's network and clock, under the seeded faults of the quorum
//! simulation ([`super::nemesis`]). A crash is a power cut: every write of
//! the partition logs and the quorum log that no fsync covered is lost.
//!
//! A client host creates a topic (RF 3, `min.insync.replicas=2`, unclean
//! election off) and three producers write unique values with acks=all
//! through the partitions' leaders, following NOT_LEADER answers and
//! lost connections; three committers commit ever larger offsets for
//! groups of their own through the group coordinators (`__consumer_offsets`,
//! RF 3) and read them back. Checked as the simulation steps (every 25
//! simulated milliseconds unless said otherwise):
//!
//! - at most one leader per partition per leader epoch;
//! - a partition's high watermark never goes back on a node (within one
//!   run of it);
//! - every node's metadata image equals every other's at the same applied
//!   index (the controller's included);
//! - every acknowledged write is in the log of each partition's leader at
//!   its acknowledged offset, once the leader's high watermark passed it
//!   (every simulated second, and at the end);
//! - an acknowledged offset commit is never lost: every later read of the
//!   group's offset from its coordinator returns it or a later one, and so
//!   does a read at the end;
//! - after the last heal: the producers are acknowledged again on every
//!   partition and the committers on every group (liveness), and then
//!   every replica holds the leader's batches below its high watermark,
//!   byte for byte.
//!
//! Decided: the brokers fsync every append (`log.flush.interval.messages=1`).
//! With Kafka's default (the page cache, and replication for safety) a
//! power cut of every replica at once may lose acknowledged writes, in
//! Kafka as in Vltava; that is not a property to check, and without the
//! fsyncs a power cut could not find anything else.
//!
//! Not in it: consumer group membership (JoinGroup, SyncGroup and
//! KIP-848 heartbeats; the fault harness drives those with librdkafka)
//! and slow disks (a disk delay in real time says nothing in simulated
//! time).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateTopicsRequest, FindCoordinatorRequest, GroupId, MetadataRequest, OffsetCommitRequest,
    OffsetFetchRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;
use vltava_broker::group::store::OFFSETS_TOPIC;
use vltava_broker::{Broker, BrokerConfig, BrokerSeams, Clock, QuorumSeams};
use vltava_client::connection::{BrokerStream, Connection, Dialed, Timeouts};
use vltava_client::error::codes;
use vltava_log::storage::{FaultPlan, FaultyStorage, Storage};
use vltava_quorum::NodeId;
use vltava_record::{BatchBuilder, Compression};

use super::nemesis::{self, World};
use super::{host_name, net, scratch_dir, ticks, LATENCY_MAX, TICK};

/// Client connections' port on every node.
const KAFKA_PORT: u16 = 9092;
/// The metadata quorum's port on every node.
const CONTROLLER_PORT: u16 = 9093;

const TOPIC: &str = "sim";
const PARTITIONS: i32 = 3;
const PRODUCERS: u64 = 3;
/// Committers, each with a group of its own.
const COMMITTERS: u64 = 3;
/// `__consumer_offsets` partitions (Kafka's default is 50; three keep the
/// replica fetchers' work small and still spread the groups).
const OFFSETS_PARTITIONS: i32 = 3;

/// Simulated time after the last heal during which the producers keep
/// writing (each partition must take writes again within it), then the
/// time left for replicas to converge before the final checks. turmoil's
/// message loss stalls a TCP stream for good (it has no retransmission),
/// as a black hole would: a stalled replica fetch is given up after
/// Kafka's 30 s socket timeout plus the fetch wait, so the bound is
/// above that.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(45);
pub const CONVERGE: Duration = Duration::from_secs(15);

/// Record timestamps start here (2026-01-01) and move with simulated time.
const EPOCH_MS: i64 = 1_767_225_600_000;

/// The topic's `min.insync.replicas`: an acknowledged write is on at least
/// this many replicas. In page-cache mode it survives any power cuts of
/// fewer of them (KIP-966), so losing it takes this many.
const MIN_INSYNC: usize = 2;

/// How often (in ticks) the invariants are checked, and the acknowledged
/// writes read back from the leaders' logs.
const CHECK_EVERY_TICKS: u64 = 25;
const READ_BACK_EVERY_TICKS: u64 = 1_000;

/// What one simulation does.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub seed: u64,
    /// 3 or 5 nodes, each a broker and a voter.
    pub nodes: usize,
    /// Simulated time under faults (then the heal, [`LIVENESS_BOUND`] and
    /// [`CONVERGE`]).
    pub duration: Duration,
    /// Kafka's default durability instead of an fsync per append: the
    /// page cache, with replication for safety. A power cut of every
    /// replica then may lose acknowledged writes, in Kafka as here: the
    /// suite runs one such seed to show the checker finds it.
    pub page_cache: bool,
    /// Slow disks too (`nemesis::SlowDisk`: the partition logs' and the
    /// quorum's write jobs queue on them), on a schedule of their own.
    pub slow_disks: bool,
}

/// What a simulation did and found.
#[derive(Debug)]
pub struct ClusterReport {
    pub config: ClusterConfig,
    pub simulated: Duration,
    pub faults: usize,
    pub crashes: usize,
    pub slow_disks: usize,
    /// Write jobs (produce, replica fetch, group and quorum appends) a
    /// slow disk made wait.
    pub disk_jobs_delayed: usize,
    /// Produce requests sent, and writes acknowledged.
    pub sends: usize,
    pub acked: usize,
    /// Offset commits acknowledged, reads of committed offsets checked,
    /// and reads from deposed coordinators (counted, not checked).
    pub commits: usize,
    pub commit_reads: usize,
    pub stale_reads: usize,
    /// Distinct (partition, leader epoch) leaderships seen.
    pub leaderships: usize,
    /// Page-cache mode: acknowledged writes gone after power cuts of at
    /// least `min.insync.replicas` of their replicas (allowed: no fsync
    /// protected them; fewer cuts losing one is a violation).
    pub lost_to_power_cuts: usize,
    /// Page-cache mode, from the same power cuts: high watermarks a node
    /// saw set back (its leader led with a log that lost committed
    /// records) and groups whose acknowledged commits were lost.
    pub hw_set_back_by_power_cuts: usize,
    pub commits_lost_to_power_cuts: usize,
    /// How long after the heal every partition took writes again.
    pub recovered_within: Option<Duration>,
    pub violations: Violations,
    /// Faults, heals, leaderships and acknowledgements with simulated
    /// times: the same seed gives the same.
    pub trace: Vec<String>,
}

/// Violations found, by kind, with the first few described.
#[derive(Debug, Default)]
pub struct Violations {
    pub two_leaders: usize,
    pub hw_back: usize,
    pub lost_commits: usize,
    pub diverged_images: usize,
    pub lost: usize,
    pub replicas_differ: usize,
    pub not_live: usize,
    pub examples: super::Examples,
}

impl Violations {
    pub fn is_empty(&self) -> bool {
        self.two_leaders
            + self.hw_back
            + self.lost_commits
            + self.diverged_images
            + self.lost
            + self.replicas_differ
            + self.not_live
            == 0
    }
}

impl std::fmt::Display for Violations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "two leaders in an epoch {}, high watermark going back {}, diverged images {}, lost acknowledged writes {}, lost offset commits {}, replicas differing below the HW {}, partitions or groups not served after the heal {}",
            self.two_leaders, self.hw_back, self.diverged_images, self.lost, self.lost_commits, self.replicas_differ, self.not_live
        )?;
        write!(f, "{}", self.examples)
    }
}

impl ClusterReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.acked > 0
    }

    pub fn trace_digest(&self) -> u64 {
        super::digest(&self.trace)
    }

    pub fn replay_command(&self) -> String {
        replay_command(&self.config)
    }
}

impl std::fmt::Display for ClusterReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {}: {} brokers{}, {:.0?} simulated, {} faults ({} crashes, {} slow disks delaying {} writes), {} produce requests, {} writes acknowledged, {} offset commits ({} read back, {} from deposed coordinators), {} leaderships, writes again {} after the heal,{} trace {:016x}, {}",
            self.config.seed,
            self.config.nodes,
            if self.config.page_cache { " (page cache)" } else { "" },
            self.simulated,
            self.faults,
            self.crashes,
            self.slow_disks,
            self.disk_jobs_delayed,
            self.sends,
            self.acked,
            self.commits,
            self.commit_reads,
            self.stale_reads,
            self.leaderships,
            self.recovered_within
                .map_or("never".to_string(), |d| format!("{d:.1?}")),
            match self.config.page_cache {
                true => format!(
                    " {} acknowledged writes, {} high watermarks and {} committed offsets lost to power cuts of {MIN_INSYNC} replicas,",
                    self.lost_to_power_cuts,
                    self.hw_set_back_by_power_cuts,
                    self.commits_lost_to_power_cuts
                ),
                false => String::new(),
            },
            self.trace_digest(),
            if self.passed() {
                "ok".to_string()
            } else {
                format!("FAILED: {}\nreplay: {}", self.violations, self.replay_command())
            }
        )
    }
}

/// The command that replays `config`'s seed.
pub fn replay_command(config: &ClusterConfig) -> String {
    format!(
        "cargo run --release -p vltava-tests --bin vltava-sim -- --brokers{}{} --seed {} --nodes {} --seconds {}",
        if config.page_cache { " --page-cache" } else { "" },
        if config.slow_disks { " --slow-disks" } else { "" },
        config.seed,
        config.nodes,
        config.duration.as_secs()
    )
}

/// One acknowledged write.
#[derive(Debug, Clone)]
struct Ack {
    partition: i32,
    offset: i64,
    value: String,
    /// Simulated time of the acknowledgement, and of the send it answered.
    at: Duration,
    sent: Duration,
}

/// State shared by the hosts and the driver (one thread).
#[derive(Default)]
struct State {
    /// The running incarnation of each node, with its start number.
    brokers: BTreeMap<NodeId, (u32, Arc<Broker>)>,
    starts: BTreeMap<NodeId, u32>,
    acked: Vec<Ack>,
    sends: usize,
    /// Acknowledged offset commits: (group, offset, simulated time).
    commits: Vec<(String, i64, Duration)>,
    /// Reads of a group's committed offset from its current coordinator:
    /// (group, offset read, the highest commit acknowledged before the
    /// read was sent).
    commit_reads: Vec<(String, i64, i64)>,
    /// Reads answered by a deposed coordinator (one the newest metadata
    /// any node applied no longer names): it answers from memory, in Kafka
    /// too, so they are counted, not checked.
    stale_reads: usize,
    /// Groups whose committed offset was read after the producers stopped.
    final_reads: usize,
    /// The newest (leader epoch, leader) any node has applied for each
    /// `__consumer_offsets` partition, ever: what says whether a node
    /// answering for a group is its coordinator (a node cut off from the
    /// quorum may be the only one running, with an image long out of date:
    /// seed 163).
    newest_coordinators: BTreeMap<usize, (i32, i32)>,
    trace: Vec<String>,
    now: Duration,
    /// Every crash (a power cut of the node's logs), with its simulated time.
    power_cuts: Vec<(NodeId, Duration)>,
    /// The producers write while this holds.
    producing: bool,
}

impl World for State {
    fn now(&self) -> Duration {
        self.now
    }

    fn crashed(&mut self, id: NodeId) {
        // The broker's files are reopened by the next start: nothing of
        // this incarnation may hold them (its data directory lock).
        self.brokers.remove(&id);
        self.power_cuts.push((id, self.now));
    }

    fn trace(&mut self, line: String) {
        self.trace.push(line);
    }
}

/// Record timestamps and the brokers' clock: simulated time.
struct SimClock;

impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        EPOCH_MS + turmoil::sim_elapsed().unwrap_or_default().as_millis() as i64
    }
}

/// The replica fetchers' and producers' connections: simulated TCP.
struct SimDialer;

impl vltava_client::connection::Dialer for SimDialer {
    fn dial<'a>(&'a self, addr: &'a str) -> Dialed<'a> {
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect(addr).await?;
            Ok(Box::new(stream) as Box<dyn BrokerStream>)
        })
    }
}

/// Runs one seed.
pub fn run(config: ClusterConfig) -> anyhow::Result<ClusterReport> {
    anyhow::ensure!(
        config.nodes == 3 || config.nodes == 5,
        "--nodes must be 3 or 5"
    );
    let _alone = super::one_at_a_time();
    vltava_quorum::runtime::seed_thread_rng(config.seed);
    super::align_task_ids();
    let root = tempfile::Builder::new()
        .prefix("vltava-sim-brokers-")
        .tempdir_in(scratch_dir())?;
    let total = config.duration + LIVENESS_BOUND + CONVERGE;
    let mut sim = turmoil::Builder::new()
        .rng_seed(config.seed)
        .simulation_duration(total + Duration::from_secs(60))
        .tick_duration(TICK)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(LATENCY_MAX)
        .build();
    let state = Rc::new(RefCell::new(State {
        producing: true,
        ..State::default()
    }));
    let ids: Vec<NodeId> = (1..=config.nodes as NodeId).collect();
    let voters = ids
        .iter()
        .map(|&id| format!("{id}@{}:{CONTROLLER_PORT}", host_name(id)))
        .collect::<Vec<_>>()
        .join(",");
    let mut plans = BTreeMap::new();
    let disks = super::slow_disks(config.slow_disks, &ids);
    for &id in &ids {
        let plan = FaultPlan::new();
        plan.track_power_loss();
        plans.insert(id, plan.clone());
        let state = state.clone();
        let dir = root.path().join(host_name(id));
        let broker_config = broker_config(id, &voters, &dir, config.page_cache)?;
        let seed = config.seed;
        let disk = disks.get(&id).map(|d| d.wait());
        sim.host(host_name(id), move || {
            node(
                id,
                seed,
                broker_config.clone(),
                plan.clone(),
                disk.clone(),
                state.clone(),
            )
        });
    }
    {
        let state = state.clone();
        let ids = ids.clone();
        let seed = config.seed;
        sim.client("client", async move {
            workload(seed, ids, state).await;
            Ok(())
        });
    }
    let mut nemesis = nemesis::Nemesis::new(config.seed, ids.clone()).with_slow_disks(disks);
    let mut checker = Checker {
        page_cache: config.page_cache,
        ..Checker::default()
    };
    let faulty = ticks(config.duration);
    let live_until = faulty + ticks(LIVENESS_BOUND);
    let end = live_until + ticks(CONVERGE);
    let mut healed_at = Duration::ZERO;
    for tick in 0..end {
        state.borrow_mut().now = sim.elapsed();
        if tick < faulty {
            nemesis.maybe_act(&mut sim, &state, &plans)?;
        } else if tick == faulty {
            nemesis.heal_all(&mut sim, &state);
            healed_at = sim.elapsed();
        } else if tick == live_until {
            state.borrow_mut().producing = false;
        }
        sim.step().map_err(|e| anyhow::anyhow!("simulation: {e}"))?;
        if tick % CHECK_EVERY_TICKS == 0 {
            checker.check(&mut state.borrow_mut());
        }
        if tick % READ_BACK_EVERY_TICKS == 0 {
            checker.read_back(&state.borrow(), false);
        }
    }
    checker.check(&mut state.borrow_mut());
    checker.final_check(&state.borrow(), &ids, healed_at);
    let s = state.borrow();
    Ok(ClusterReport {
        config,
        simulated: sim.elapsed(),
        faults: nemesis.faults,
        crashes: nemesis.crashes,
        slow_disks: nemesis.slow_disks,
        disk_jobs_delayed: nemesis.disk_jobs_delayed(),
        sends: s.sends,
        acked: s.acked.len(),
        commits: s.commits.len(),
        commit_reads: s.commit_reads.len(),
        stale_reads: s.stale_reads,
        leaderships: checker.leaders.len(),
        lost_to_power_cuts: checker.lost_to_power_cuts.len(),
        hw_set_back_by_power_cuts: checker.hw_set_back_by_power_cuts,
        commits_lost_to_power_cuts: checker.commits_lost_to_power_cuts,
        recovered_within: checker.recovered_within,
        violations: checker.violations,
        trace: s.trace.clone(),
    })
}

/// One node's configuration: a broker and a voter, Kafka's replication
/// settings for safety, short timers so faults are noticed within a
/// simulated period.
fn broker_config(
    id: NodeId,
    voters: &str,
    dir: &std::path::Path,
    page_cache: bool,
) -> anyhow::Result<BrokerConfig> {
    let host = host_name(id);
    let pairs = [
        ("node.id", id.to_string()),
        ("log.dirs", dir.display().to_string()),
        ("process.roles", "broker,controller".into()),
        (
            "listeners",
            format!("PLAINTEXT://{host}:{KAFKA_PORT},CONTROLLER://{host}:{CONTROLLER_PORT}"),
        ),
        ("controller.listener.names", "CONTROLLER".into()),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
        ),
        ("controller.quorum.voters", voters.into()),
        ("default.replication.factor", "3".into()),
        ("min.insync.replicas", MIN_INSYNC.to_string()),
        ("unclean.leader.election.enable", "false".into()),
        ("broker.heartbeat.interval.ms", "500".into()),
        ("broker.session.timeout.ms", "3000".into()),
        ("replica.lag.time.max.ms", "5000".into()),
        ("log.flush.interval.messages", "1".into()),
        (
            "offsets.topic.num.partitions",
            OFFSETS_PARTITIONS.to_string(),
        ),
        ("offsets.topic.replication.factor", "3".into()),
    ];
    let pairs: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(k, _)| !(page_cache && *k == "log.flush.interval.messages"))
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let (config, unknown) = BrokerConfig::from_pairs(&pairs).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(unknown.is_empty(), "unknown settings {unknown:?}");
    Ok(config)
}

/// One node's software: the broker on the simulated network, clock and
/// (power-cut) storage, serving clients until it crashes.
async fn node(
    id: NodeId,
    seed: u64,
    config: BrokerConfig,
    plan: Arc<FaultPlan>,
    disk: Option<vltava_log::storage::DiskWait>,
    state: Rc<RefCell<State>>,
) -> turmoil::Result {
    let start = {
        let mut s = state.borrow_mut();
        let n = s.starts.entry(id).or_insert(0);
        *n += 1;
        *n
    };
    let storage: Arc<dyn Storage> = Arc::new(FaultyStorage::new(plan));
    // Topic and cluster ids, and placement, from the seed.
    let ids = std::sync::Mutex::new(StdRng::seed_from_u64(
        seed ^ (u64::from(start) << 32 | id) ^ 0x1d5,
    ));
    let quorum_listener = turmoil::net::TcpListener::bind(("0.0.0.0", CONTROLLER_PORT)).await?;
    let seams = BrokerSeams {
        quorum: QuorumSeams {
            runtime: Some(tokio::runtime::Handle::current()),
            connector: Arc::new(net::Connector),
            acceptor: Some(Box::new(net::Acceptor(quorum_listener))),
            storage: Some(storage.clone()),
            disk_wait: disk.clone(),
        },
        storage: Some(storage),
        disk_wait: disk,
        ids: Some(Arc::new(move || {
            uuid::Uuid::from_u128(ids.lock().expect("not poisoned").random())
        })),
    };
    let broker = Broker::open_with(config, Arc::new(SimClock), seams)
        .await
        .map_err(|e| format!("node {id} start {start}: {e}"))?;
    let broker = Arc::new(broker);
    state
        .borrow_mut()
        .brokers
        .insert(id, (start, broker.clone()));
    let shutdown = CancellationToken::new();
    tokio::spawn(vltava_server::run_background(
        broker.clone(),
        Arc::new(SimDialer),
        shutdown.clone(),
    ));
    let clients = turmoil::net::TcpListener::bind(("0.0.0.0", KAFKA_PORT)).await?;
    let listener: Arc<str> = Arc::from("PLAINTEXT");
    loop {
        let (stream, peer) = clients.accept().await?;
        tokio::spawn(vltava_server::serve_connection(
            broker.clone(),
            stream,
            peer,
            listener.clone(),
            shutdown.clone(),
        ));
    }
}

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        // The produce timeout (5 s) and a little.
        request: Duration::from_secs(7),
    }
}

async fn connect(id: NodeId) -> Option<Connection> {
    let addr = format!("{}:{KAFKA_PORT}", host_name(id));
    Connection::connect_with(&SimDialer, &addr, "vltava-sim", timeouts())
        .await
        .ok()
}

/// The client: creates the topic, then runs the producers until told to
/// stop.
async fn workload(seed: u64, ids: Vec<NodeId>, state: Rc<RefCell<State>>) {
    let mut attempt = 0usize;
    loop {
        let id = ids[attempt % ids.len()];
        attempt += 1;
        if let Some(mut conn) = connect(id).await {
            let created = conn
                .request::<CreateTopicsRequest>(|_| {
                    CreateTopicsRequest::default()
                        .with_timeout_ms(5_000)
                        .with_topics(vec![CreatableTopic::default()
                            .with_name(topic_name())
                            .with_num_partitions(PARTITIONS)
                            .with_replication_factor(3)])
                })
                .await;
            // Created, or created by an earlier attempt that timed out.
            if let Ok(r) = created {
                if r.topics
                    .first()
                    .is_some_and(|t| matches!(t.error_code, 0 | codes::TOPIC_ALREADY_EXISTS))
                {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    {
        let mut s = state.borrow_mut();
        let at = s.now;
        s.trace.push(format!("{at:?} topic created"));
    }
    let mut tasks: Vec<_> = (0..PRODUCERS)
        .map(|p| tokio::task::spawn_local(producer(p, seed, ids.clone(), state.clone())))
        .collect();
    tasks.extend(
        (0..COMMITTERS)
            .map(|c| tokio::task::spawn_local(committer(c, seed, ids.clone(), state.clone()))),
    );
    for t in tasks {
        let _ = t.await;
    }
}

fn group_name(c: u64) -> String {
    format!("sim-group-{c}")
}

/// One committer: commits offsets 1, 2, 3, ... for its group (generation
/// -1, no members: a consumer managing its own assignment), each until the
/// coordinator acknowledges it, and reads the committed offset back every
/// fourth turn; after the producers stop, reads it once more.
async fn committer(c: u64, seed: u64, ids: Vec<NodeId>, state: Rc<RefCell<State>>) {
    let group = group_name(c);
    let mut rng = StdRng::seed_from_u64(seed ^ (c << 40) ^ 0xc0);
    let mut coordinator: Option<(NodeId, Connection)> = None;
    let (mut turn, mut next, mut acked) = (0u64, 1i64, -1i64);
    while state.borrow().producing {
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..60))).await;
        let (node, mut conn) = match coordinator.take() {
            Some((node, conn)) if conn.is_usable() => (node, conn),
            _ => {
                let asked = ids[rng.random_range(0..ids.len())];
                let Some(node) = find_coordinator(asked, &group).await else {
                    continue;
                };
                let Some(conn) = connect(node).await else {
                    continue;
                };
                (node, conn)
            }
        };
        turn += 1;
        let read = turn % 4 == 0;
        let outcome = match read {
            true => fetch_committed(&mut conn, &group).await,
            false => commit_offset(&mut conn, &group, next).await.map(|()| next),
        };
        // Any refusal (NOT_COORDINATOR, a load in progress, a timeout):
        // look for the coordinator again.
        let Ok(offset) = outcome else {
            continue;
        };
        coordinator = Some((node, conn));
        let mut s = state.borrow_mut();
        let at = s.now;
        if read && !coordinates_now(&mut s, node, &group) {
            s.trace.push(format!(
                "{at:?} read {group} offset {offset} from deposed coordinator {node} (committed {acked})"
            ));
            s.stale_reads += 1;
        } else if read {
            s.trace.push(format!(
                "{at:?} read {group} offset {offset} from node {node} (committed {acked})"
            ));
            if offset < acked {
                let seen = offsets_partition_views(&s, &group);
                s.trace.push(format!(
                    "{at:?} {group} partition as each node has it: {seen}"
                ));
            }
            s.commit_reads.push((group.clone(), offset, acked));
        } else {
            s.trace
                .push(format!("{at:?} commit {group} offset {offset}"));
            s.commits.push((group.clone(), offset, at));
            acked = offset;
            next += 1;
        }
    }
    // The last word: what the coordinator holds after everything healed.
    for _ in 0..50 {
        let asked = ids[rng.random_range(0..ids.len())];
        if let Some(node) = find_coordinator(asked, &group).await {
            if let Some(mut conn) = connect(node).await {
                let read = fetch_committed(&mut conn, &group).await;
                if let Ok(offset) = read.and_then(|offset| {
                    let current = coordinates_now(&mut state.borrow_mut(), node, &group);
                    current.then_some(offset).ok_or(())
                }) {
                    let mut s = state.borrow_mut();
                    let at = s.now;
                    s.trace.push(format!(
                        "{at:?} final read {group} offset {offset} (committed {acked})"
                    ));
                    s.commit_reads.push((group.clone(), offset, acked));
                    s.final_reads += 1;
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether `node` coordinates `group` by the newest metadata any running
/// node has applied: it leads the group's `__consumer_offsets` partition at
/// the highest leader epoch known.
fn coordinates_now(state: &mut State, node: NodeId, group: &str) -> bool {
    note_coordinators(state);
    let index = vltava_broker::group::store::partition_for(group, OFFSETS_PARTITIONS) as usize;
    let newest = state.newest_coordinators.get(&index);
    newest.is_some_and(|(_, leader)| *leader == node as i32)
}

/// Raises [`State::newest_coordinators`] to what the running nodes have
/// applied.
fn note_coordinators(state: &mut State) {
    for (_, broker) in state.brokers.values() {
        let seen: Vec<(usize, (i32, i32))> = broker.with_metadata_image(|image, _| {
            image
                .topics
                .get(OFFSETS_TOPIC)
                .map(|t| {
                    t.partitions
                        .iter()
                        .enumerate()
                        .map(|(i, p)| (i, (p.leader_epoch, p.leader)))
                        .collect()
                })
                .unwrap_or_default()
        });
        for (index, view) in seen {
            let newest = state.newest_coordinators.entry(index).or_insert(view);
            *newest = (*newest).max(view);
        }
    }
}

/// How each running node sees `group`'s `__consumer_offsets` partition:
/// its image's leader and epoch, and its replica's role, epoch, high
/// watermark and log end (for a failure's trace).
fn offsets_partition_views(state: &State, group: &str) -> String {
    let index = vltava_broker::group::store::partition_for(group, OFFSETS_PARTITIONS);
    let views: Vec<String> = state
        .brokers
        .iter()
        .map(|(id, (start, broker))| {
            let image = broker.with_metadata_image(|image, applied| {
                let p = image
                    .topics
                    .get(OFFSETS_TOPIC)
                    .and_then(|t| t.partitions.get(index as usize));
                format!(
                    "applied {applied:?} leader {:?} epoch {:?} isr {:?}",
                    p.map(|p| p.leader),
                    p.map(|p| p.leader_epoch),
                    p.map(|p| p.isr.clone())
                )
            });
            let replica = broker
                .topic(OFFSETS_TOPIC)
                .and_then(|t| t.partition(index).cloned())
                .map(|p| {
                    format!(
                        "leads {} at {} hw {} leo {}",
                        p.is_leader(),
                        p.leader_epoch(),
                        p.high_watermark(),
                        p.log_end_offset()
                    )
                });
            format!("node {id} (start {start}): {image}; replica {replica:?}")
        })
        .collect();
    format!("partition {index}: {}", views.join(" | "))
}

/// The coordinator of `group`, as node `asked` says.
async fn find_coordinator(asked: NodeId, group: &str) -> Option<NodeId> {
    let mut conn = connect(asked).await?;
    let key = StrBytes::from_string(group.to_string());
    let answer = conn
        .request::<FindCoordinatorRequest>(|version| {
            let request = FindCoordinatorRequest::default();
            // v4 batches keys; the single key is for the versions before.
            match version >= 4 {
                true => request.with_coordinator_keys(vec![key.clone()]),
                false => request.with_key(key.clone()),
            }
        })
        .await
        .ok()?;
    let (code, node) = match answer.coordinators.first() {
        Some(c) => (c.error_code, c.node_id.0),
        None => (answer.error_code, answer.node_id.0),
    };
    (code == 0 && node >= 0).then_some(node as NodeId)
}

/// Commits `offset` for `group` on partition 0 of the topic.
async fn commit_offset(conn: &mut Connection, group: &str, offset: i64) -> Result<(), ()> {
    let answer = conn
        .request::<OffsetCommitRequest>(|_| {
            OffsetCommitRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(topic_name())
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)])])
        })
        .await
        .map_err(|_| ())?;
    let code = answer
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map_or(-1, |p| p.error_code);
    match code {
        0 => Ok(()),
        _ => Err(()),
    }
}

/// The offset `group` has committed on partition 0 (-1: none).
async fn fetch_committed(conn: &mut Connection, group: &str) -> Result<i64, ()> {
    let answer = conn
        .request::<OffsetFetchRequest>(|_| {
            OffsetFetchRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(topic_name())
                    .with_partition_indexes(vec![0])]))
        })
        .await
        .map_err(|_| ())?;
    if answer.error_code != 0 {
        return Err(());
    }
    let partition = answer
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or(())?;
    match partition.error_code {
        0 => Ok(partition.committed_offset),
        _ => Err(()),
    }
}

/// Why a produce was not acknowledged.
enum Refused {
    /// The leader moved or the connection failed: look again.
    Relook,
    /// Anything else (not enough replicas, a timeout): try again.
    Retry,
}

/// One producer: unique values, round-robin over the partitions, each
/// sent until acknowledged (or the producers stop), to the leader the
/// last metadata named.
async fn producer(p: u64, seed: u64, ids: Vec<NodeId>, state: Rc<RefCell<State>>) {
    let mut rng = StdRng::seed_from_u64(seed ^ (p << 48) ^ 0x9e37);
    let mut leaders: BTreeMap<i32, NodeId> = BTreeMap::new();
    let mut conns: BTreeMap<NodeId, Connection> = BTreeMap::new();
    let mut k = 0u64;
    while state.borrow().producing {
        let partition = ((k + p) % PARTITIONS as u64) as i32;
        let value = format!("p{p}-{k}");
        k += 1;
        while state.borrow().producing {
            let Some(&leader) = leaders.get(&partition) else {
                let asked = ids[rng.random_range(0..ids.len())];
                leaders = ask_leaders(asked).await;
                if !leaders.contains_key(&partition) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            };
            let conn = match conns.remove(&leader) {
                Some(conn) if conn.is_usable() => Some(conn),
                _ => connect(leader as NodeId).await,
            };
            let Some(mut conn) = conn else {
                leaders.clear();
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let sent_at = {
                let mut s = state.borrow_mut();
                s.sends += 1;
                s.now
            };
            let sent = produce(&mut conn, partition, &value).await;
            conns.insert(leader, conn);
            match sent {
                Ok(offset) => {
                    let mut s = state.borrow_mut();
                    let at = s.now;
                    s.trace.push(format!(
                        "{at:?} ack {value} partition {partition} offset {offset}"
                    ));
                    s.acked.push(Ack {
                        partition,
                        offset,
                        value,
                        at,
                        sent: sent_at,
                    });
                    break;
                }
                Err(Refused::Relook) => {
                    leaders.clear();
                    tokio::time::sleep(Duration::from_millis(rng.random_range(50..150))).await;
                }
                Err(Refused::Retry) => {
                    tokio::time::sleep(Duration::from_millis(rng.random_range(50..150))).await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(5..20))).await;
    }
}

/// The partitions' leaders, as node `asked` knows them.
async fn ask_leaders(asked: NodeId) -> BTreeMap<i32, NodeId> {
    let Some(mut conn) = connect(asked).await else {
        return BTreeMap::new();
    };
    let answer = conn
        .request::<MetadataRequest>(|_| {
            MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name()))
            ]))
        })
        .await;
    let Ok(answer) = answer else {
        return BTreeMap::new();
    };
    answer
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .flat_map(|t| &t.partitions)
        .filter(|p| p.error_code == 0 && p.leader_id.0 >= 0)
        .map(|p| (p.partition_index, p.leader_id.0 as NodeId))
        .collect()
}

/// Sends one value with acks=all; its offset once acknowledged.
async fn produce(conn: &mut Connection, partition: i32, value: &str) -> Result<i64, Refused> {
    let now_ms = SimClock.now_ms();
    let batch = BatchBuilder::new(Compression::None)
        .record(
            None,
            Some(Bytes::from(value.to_string())),
            Vec::new(),
            now_ms,
        )
        .build()
        .freeze();
    let answer = conn
        .request::<ProduceRequest>(|_| {
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(topic_name())
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch))])])
        })
        .await
        .map_err(|_| Refused::Relook)?;
    let Some(result) = answer
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
    else {
        return Err(Refused::Retry);
    };
    match result.error_code {
        0 => Ok(result.base_offset),
        // The leader moved (as the client library judges it).
        code if vltava_client::client::is_stale_metadata(code) => Err(Refused::Relook),
        _ => Err(Refused::Retry),
    }
}

/// The invariants (see the module's documentation).
#[derive(Default)]
struct Checker {
    /// (partition, leader epoch) → the node that led in it.
    leaders: BTreeMap<(i32, i32), NodeId>,
    /// (node, start, partition) → the highest high watermark seen.
    high_watermarks: BTreeMap<(NodeId, u32, i32), i64>,
    /// Metadata image digest at each applied index (`None`: nothing
    /// applied), and who reported it.
    images: BTreeMap<Option<u64>, (u64, NodeId)>,
    /// Violations that persist across checks, each counted once: second
    /// leaders (partition, epoch, node) and diverged images (-1, index,
    /// node).
    seen: std::collections::BTreeSet<(i64, i64, NodeId)>,
    recovered_within: Option<Duration>,
    /// Acknowledged writes found missing (partition, offset), each
    /// counted once however often it is read back.
    missing: std::collections::BTreeSet<(i32, i64)>,
    /// Page-cache mode: the acknowledged writes gone after power cuts of
    /// at least [`MIN_INSYNC`] of their partition's replicas since they
    /// were sent, which no fsync protected (not a violation; counted).
    page_cache: bool,
    lost_to_power_cuts: std::collections::BTreeSet<(i32, i64)>,
    hw_set_back_by_power_cuts: usize,
    commits_lost_to_power_cuts: usize,
    violations: Violations,
}

/// How many of `replicas` lost power since `since`.
fn power_cut_replicas(state: &State, replicas: &[i32], since: Duration) -> usize {
    let cut: std::collections::BTreeSet<NodeId> = state
        .power_cuts
        .iter()
        .filter(|(id, at)| *at >= since && replicas.contains(&(*id as i32)))
        .map(|(id, _)| *id)
        .collect();
    cut.len()
}

/// The values of one partition's log below `below`, by offset, read from
/// its segment files.
fn values_below(dir: &std::path::Path, below: i64) -> Result<BTreeMap<i64, String>, String> {
    let batches = crate::fault::replicas::batches_below(dir, below).map_err(|e| e.to_string())?;
    let mut values = BTreeMap::new();
    for batch in batches {
        let records = vltava_record::decode_records(&batch.bytes).map_err(|e| e.to_string())?;
        for r in records {
            let value = r.value.map(|v| String::from_utf8_lossy(&v).into_owned());
            values.insert(r.offset, value.unwrap_or_default());
        }
    }
    Ok(values)
}

impl Checker {
    fn check(&mut self, state: &mut State) {
        note_coordinators(state);
        let mut new_leaders = Vec::new();
        for (&id, (start, broker)) in &state.brokers {
            if let Some(topic) = broker.topic(TOPIC) {
                for partition in topic.partitions.iter().filter(|p| p.is_hosted()) {
                    let index = partition.index;
                    if partition.is_leader() {
                        let epoch = partition.leader_epoch();
                        let first = *self.leaders.entry((index, epoch)).or_insert_with(|| {
                            new_leaders.push(format!(
                                "{:?} leader node {id} partition {index} epoch {epoch}",
                                state.now
                            ));
                            id
                        });
                        if first != id && self.seen.insert((index.into(), epoch.into(), id)) {
                            self.violations.two_leaders += 1;
                            self.violations.examples.note(format!(
                                "partition {index} epoch {epoch} led by node {first} and node {id}"
                            ));
                        }
                    }
                    let hw = partition.high_watermark();
                    let last = self
                        .high_watermarks
                        .entry((id, *start, index))
                        .or_insert(hw);
                    if hw < *last {
                        // Page-cache mode: a leader that lost committed
                        // records in power cuts of min.insync.replicas of
                        // the partition's replicas (since the earliest
                        // acknowledged write set back) sets its followers'
                        // high watermarks back too: the same loss.
                        let since = state
                            .acked
                            .iter()
                            .filter(|a| a.partition == index && a.offset >= hw && a.offset < *last)
                            .map(|a| a.sent)
                            .min()
                            .unwrap_or(Duration::ZERO);
                        let replicas = partition.assignment().replicas;
                        if self.page_cache
                            && power_cut_replicas(state, &replicas, since) >= MIN_INSYNC
                        {
                            self.hw_set_back_by_power_cuts += 1;
                        } else {
                            self.violations.hw_back += 1;
                            self.violations.examples.note(format!(
                                "node {id} partition {index}: high watermark went from {last} back to {hw}"
                            ));
                        }
                    }
                    // Each drop counts once.
                    *last = hw;
                }
            }
            let (index, digest) =
                broker.with_metadata_image(|image, index| (index, super::image_digest(image)));
            let first = *self.images.entry(index).or_insert((digest, id));
            // Images are keyed apart from partitions by a negative number.
            let key = (-1, index.map_or(-1, |i| i as i64), id);
            if first.0 != digest && self.seen.insert(key) {
                self.violations.diverged_images += 1;
                self.violations.examples.note(format!(
                    "at applied index {index:?} node {id}'s image differs from node {}'s",
                    first.1
                ));
            }
        }
        state.trace.extend(new_leaders);
    }

    /// Every acknowledged write below a leader's high watermark is in that
    /// leader's log at its offset; at the end (`last`) also none is past
    /// it.
    fn read_back(&mut self, state: &State, last: bool) {
        for (&id, (_, broker)) in &state.brokers {
            let Some(topic) = broker.topic(TOPIC) else {
                continue;
            };
            for partition in topic.partitions.iter().filter(|p| p.is_leader()) {
                let hw = partition.high_watermark();
                let index = partition.index;
                let values = match values_below(partition.dir(), hw) {
                    Ok(values) => values,
                    Err(e) => {
                        if self.missing.insert((index, -1)) {
                            self.violations.lost += 1;
                            self.violations
                                .examples
                                .note(format!("node {id} partition {index}: log unreadable: {e}"));
                        }
                        continue;
                    }
                };
                let replicas = partition.assignment().replicas;
                for ack in state.acked.iter().filter(|a| a.partition == index) {
                    let found = values.get(&ack.offset);
                    let missing = match ack.offset >= hw {
                        true => last,
                        false => found != Some(&ack.value),
                    };
                    if !missing || self.lost_to_power_cuts.contains(&(index, ack.offset)) {
                        continue;
                    }
                    if self.page_cache
                        && power_cut_replicas(state, &replicas, ack.sent) >= MIN_INSYNC
                    {
                        self.lost_to_power_cuts.insert((index, ack.offset));
                        continue;
                    }
                    if !self.missing.insert((index, ack.offset)) {
                        continue;
                    }
                    self.violations.lost += 1;
                    if ack.offset >= hw {
                        self.violations.examples.note(format!(
                            "{} acknowledged at offset {} of partition {index} ({:?}), past leader node {id}'s high watermark {hw} at the end",
                            ack.value, ack.offset, ack.at
                        ));
                    } else {
                        self.violations.examples.note(format!(
                            "{} acknowledged at offset {} of partition {index} ({:?}); leader node {id} holds {found:?} there (high watermark {hw})",
                            ack.value, ack.offset, ack.at
                        ));
                    }
                }
            }
        }
    }

    /// After the heal: writes were acknowledged again on every partition;
    /// every node runs; each partition's replicas hold the leader's
    /// batches below its high watermark; every acknowledged write is
    /// there.
    fn final_check(&mut self, state: &State, ids: &[NodeId], healed_at: Duration) {
        let mut slowest = Some(Duration::ZERO);
        for partition in 0..PARTITIONS {
            let first = state.acked.iter().find(|a| {
                a.partition == partition && a.at > healed_at && a.at <= healed_at + LIVENESS_BOUND
            });
            match first {
                Some(ack) => slowest = slowest.map(|s| s.max(ack.at - healed_at)),
                None => {
                    slowest = None;
                    self.violations.not_live += 1;
                    self.violations.examples.note(format!(
                        "partition {partition}: no write acknowledged within {LIVENESS_BOUND:?} of the heal"
                    ));
                }
            }
        }
        self.recovered_within = slowest;
        for c in 0..COMMITTERS {
            let group = group_name(c);
            let live = state.commits.iter().any(|(g, _, at)| {
                *g == group && *at > healed_at && *at <= healed_at + LIVENESS_BOUND
            });
            if !live {
                self.violations.not_live += 1;
                self.violations.examples.note(format!(
                    "{group}: no offset commit acknowledged within {LIVENESS_BOUND:?} of the heal"
                ));
            }
        }
        if state.final_reads < COMMITTERS as usize {
            self.violations.not_live += 1;
            self.violations.examples.note(format!(
                "only {} of {COMMITTERS} groups' committed offsets could be read at the end",
                state.final_reads
            ));
        }
        // Reads are taken after the commits they are compared with were
        // acknowledged (the last read of each group after everything).
        for (group, read, committed) in &state.commit_reads {
            if read < committed {
                // Page-cache mode: lost with the group's __consumer_offsets
                // partition (3 replicas: every node of a 3-node cluster)
                // in power cuts of min.insync.replicas of them since the
                // first commit above the offset read was acknowledged.
                let since = state
                    .commits
                    .iter()
                    .filter(|(g, offset, _)| g == group && offset > read)
                    .map(|(_, _, at)| *at)
                    .min()
                    .unwrap_or(Duration::ZERO);
                let nodes: Vec<i32> = ids.iter().map(|id| *id as i32).collect();
                if self.page_cache && power_cut_replicas(state, &nodes, since) >= MIN_INSYNC {
                    self.commits_lost_to_power_cuts += 1;
                    continue;
                }
                self.violations.lost_commits += 1;
                self.violations.examples.note(format!(
                    "{group}: read offset {read} after offset {committed} was acknowledged"
                ));
            }
        }
        for id in ids {
            if !state.brokers.contains_key(id) {
                self.violations.not_live += 1;
                self.violations
                    .examples
                    .note(format!("node {id} is not running at the end"));
            }
        }
        self.read_back(state, true);
        for index in 0..PARTITIONS {
            let hosted: Vec<(NodeId, Arc<vltava_broker::Partition>)> = state
                .brokers
                .iter()
                .filter_map(|(&id, (_, b))| {
                    let p = b.topic(TOPIC)?.partition(index)?.clone();
                    p.is_hosted().then_some((id, p))
                })
                .collect();
            let Some((leader, leader_partition)) = hosted.iter().find(|(_, p)| p.is_leader())
            else {
                self.violations.not_live += 1;
                self.violations
                    .examples
                    .note(format!("partition {index}: no leader at the end"));
                continue;
            };
            let (leader, hw) = (*leader, leader_partition.high_watermark());
            let read = |p: &vltava_broker::Partition| {
                crate::fault::replicas::batches_below(p.dir(), hw).map_err(|e| e.to_string())
            };
            // Every partition is compared: an unreadable leader log is a
            // difference, never a skipped partition.
            let leader_batches = match read(leader_partition) {
                Ok(batches) => batches,
                Err(e) => {
                    self.violations.replicas_differ += 1;
                    self.violations
                        .examples
                        .note(format!("partition {index}: leader node {leader}: {e}"));
                    continue;
                }
            };
            for (id, p) in hosted.iter().filter(|(id, _)| *id != leader) {
                match read(p) {
                    Ok(batches) if batches == leader_batches => {}
                    Ok(batches) => {
                        self.violations.replicas_differ += 1;
                        let at = (0..batches.len().max(leader_batches.len()))
                            .find(|&i| batches.get(i) != leader_batches.get(i))
                            .unwrap_or(0);
                        self.violations.examples.note(format!(
                            "partition {index}: node {id} differs from leader node {leader} below the high watermark {hw} at batch {at} ({} batches / {})",
                            batches.len(),
                            leader_batches.len()
                        ));
                    }
                    Err(e) => {
                        self.violations.replicas_differ += 1;
                        self.violations
                            .examples
                            .note(format!("partition {index}: node {id}: {e}"));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Page-cache mode excuses a lost write only by power cuts of distinct
    /// replicas of its partition after it was sent: a node cut twice counts
    /// once, cuts before the send and cuts of other nodes not at all.
    #[test]
    fn power_cuts_are_counted_per_replica_since_the_send() {
        let state = State {
            power_cuts: vec![
                (1, Duration::from_secs(1)),
                (2, Duration::from_secs(5)),
                (2, Duration::from_secs(6)),
                (4, Duration::from_secs(7)),
                (3, Duration::from_secs(9)),
            ],
            ..State::default()
        };
        let replicas = [1, 2, 3];
        assert_eq!(
            power_cut_replicas(&state, &replicas, Duration::from_secs(2)),
            2
        );
        assert_eq!(
            power_cut_replicas(&state, &replicas, Duration::from_secs(6)),
            2
        );
        assert_eq!(
            power_cut_replicas(&state, &replicas, Duration::from_secs(8)),
            1
        );
        assert_eq!(
            power_cut_replicas(&state, &replicas, Duration::from_secs(0)),
            3
        );
    }
}
