//! Deterministic simulation of the metadata quorum: 3 or 5 voters
//! (`vltava_quorum::Quorum`, openraft and the log on `vltava-log`) run in
//! this one process on turmoil's simulated network and clock, under a
//! seeded schedule of partitions, one-way cuts, message loss, delay and
//! reordering, and crashes in which whatever no fsync covered is lost
//! (`FaultyStorage`'s power-cut model). Invariants are checked as the
//! simulation steps; the same seed gives the same trace.
//!
//! `tests/tests/sim.rs` runs a fixed set of seeds in the suite;
//! `cargo run --release -p vltava-tests --bin vltava-sim -- --seeds 1000`
//! runs many (docs/reliability.md). The broker's request path and
//! partition replication are not in it yet (see docs/reliability.md).

pub mod cluster;
mod invariants;
mod nemesis;
mod net;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vltava_log::storage::{FaultPlan, FaultyStorage};
use vltava_meta::{ConfigResource, MetaRecord};
use vltava_quorum::{NodeId, Quorum, QuorumConfig};

pub use invariants::Violations;

/// The quorum's port on every simulated host.
const PORT: u16 = 9093;

/// What one simulation does.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    /// 3 or 5 voters.
    pub nodes: usize,
    /// Simulated time under faults; then everything heals for
    /// [`SETTLE`].
    pub duration: Duration,
    /// Slow disks too (`nemesis::SlowDisk`), on a schedule of their own.
    pub slow_disks: bool,
}

/// Simulated time after the last fault heals, for the cluster to converge
/// before the final checks.
pub const SETTLE: Duration = Duration::from_secs(20);

/// One simulated tick.
pub const TICK: Duration = Duration::from_millis(1);

/// Message latency outside a slow-network fault: each message takes 1 ms
/// up to this.
const LATENCY_MAX: Duration = Duration::from_millis(10);

/// How many ticks `d` is.
fn ticks(d: Duration) -> u64 {
    (d.as_nanos() / TICK.as_nanos()) as u64
}

/// How often (in ticks) the invariants are checked while running.
const CHECK_EVERY_TICKS: u64 = 25;

/// What a simulation did and found.
#[derive(Debug)]
pub struct SimReport {
    pub config: SimConfig,
    pub simulated: Duration,
    pub faults: usize,
    pub crashes: usize,
    pub slow_disks: usize,
    /// Quorum appends a slow disk made wait.
    pub disk_jobs_delayed: usize,
    /// Proposals the leader acknowledged (committed).
    pub acked: usize,
    /// Distinct (term, leader) pairs seen.
    pub leaderships: usize,
    pub violations: Violations,
    /// Everything that happened, in order, with simulated times: two runs
    /// of one seed must give the same.
    pub trace: Vec<String>,
}

impl SimReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.acked > 0
    }

    /// A digest of the trace, to compare runs.
    pub fn trace_digest(&self) -> u64 {
        digest(&self.trace)
    }

    /// The command that replays this seed.
    pub fn replay_command(&self) -> String {
        replay_command(&self.config)
    }
}

impl std::fmt::Display for SimReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {}: {} voters, {:.0?} simulated, {} faults ({} crashes, {} slow disks delaying {} appends), {} proposals committed, {} leaderships, trace {:016x}, {}",
            self.config.seed,
            self.config.nodes,
            self.simulated,
            self.faults,
            self.crashes,
            self.slow_disks,
            self.disk_jobs_delayed,
            self.acked,
            self.leaderships,
            self.trace_digest(),
            if self.passed() { "ok".to_string() } else { format!("FAILED: {}\nreplay: {}", self.violations, self.replay_command()) }
        )
    }
}

/// A digest of `value` (a trace, an image's records), to compare runs and
/// nodes.
fn digest(value: &impl Hash) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// A metadata image's digest: two nodes at the same applied index must
/// agree on it.
fn image_digest(image: &vltava_meta::MetadataImage) -> u64 {
    digest(&format!("{:?}", image.to_records()))
}

/// Violations described for a report: the first [`EXAMPLES_MAX`].
#[derive(Debug, Default)]
pub struct Examples(pub Vec<String>);

/// Violations described in a report; past this only the counts grow.
const EXAMPLES_MAX: usize = 10;

impl Examples {
    fn note(&mut self, what: String) {
        if self.0.len() < EXAMPLES_MAX {
            self.0.push(what);
        }
    }
}

impl std::fmt::Display for Examples {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|e| write!(f, "\n  {e}"))
    }
}

/// The command that replays `config`'s seed.
pub fn replay_command(config: &SimConfig) -> String {
    format!(
        "cargo run --release -p vltava-tests --bin vltava-sim --{} --seed {} --nodes {} --seconds {}",
        if config.slow_disks { " --slow-disks" } else { "" },
        config.seed,
        config.nodes,
        config.duration.as_secs()
    )
}

/// State shared by the simulated hosts and the driver (one thread).
#[derive(Default)]
struct Shared {
    /// The running incarnation of each node, with its start number.
    quorums: BTreeMap<NodeId, (u32, Rc<Quorum>)>,
    /// Starts so far, per node (names proposals uniquely).
    starts: BTreeMap<NodeId, u32>,
    /// Committed proposals: name and index.
    acked: Vec<(String, u64)>,
    trace: Vec<String>,
    now: Duration,
    /// The highest committed index when the faults stopped: every node
    /// must reach it by the end.
    converge_to: u64,
}

impl nemesis::World for Shared {
    fn now(&self) -> Duration {
        self.now
    }

    fn crashed(&mut self, id: NodeId) {
        self.quorums.remove(&id);
    }

    fn trace(&mut self, line: String) {
        self.trace.push(line);
    }
}

fn host_name(id: NodeId) -> String {
    format!("node-{id}")
}

fn record(name: &str) -> MetaRecord {
    MetaRecord::Config {
        resource: ConfigResource::Broker(String::new()),
        name: name.to_string(),
        value: Some("1".into()),
    }
}

/// Runs one seed.
pub fn run(config: SimConfig) -> anyhow::Result<SimReport> {
    anyhow::ensure!(
        config.nodes == 3 || config.nodes == 5,
        "--nodes must be 3 or 5"
    );
    // openraft's election timeouts (all nodes run on this thread).
    let _alone = one_at_a_time();
    vltava_quorum::runtime::seed_thread_rng(config.seed);
    align_task_ids();
    let root = tempfile::Builder::new()
        .prefix("vltava-sim-")
        .tempdir_in(scratch_dir())?;
    let mut sim = turmoil::Builder::new()
        .rng_seed(config.seed)
        .simulation_duration(config.duration + SETTLE + Duration::from_secs(60))
        .tick_duration(TICK)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(LATENCY_MAX)
        .build();
    let shared = Rc::new(RefCell::new(Shared::default()));
    let ids: Vec<NodeId> = (1..=config.nodes as NodeId).collect();
    let voters: BTreeMap<NodeId, String> = ids
        .iter()
        .map(|&id| (id, format!("{}:{PORT}", host_name(id))))
        .collect();
    let mut plans = BTreeMap::new();
    let disks = slow_disks(config.slow_disks, &ids);
    for &id in &ids {
        let plan = FaultPlan::new();
        plan.track_power_loss();
        plans.insert(id, plan.clone());
        let shared = shared.clone();
        let voters = voters.clone();
        let dir = root.path().join(host_name(id));
        let disk = disks.get(&id).map(|d| d.wait());
        sim.host(host_name(id), move || {
            node(
                id,
                voters.clone(),
                dir.clone(),
                plan.clone(),
                disk.clone(),
                shared.clone(),
            )
        });
    }
    let mut nemesis = nemesis::Nemesis::new(config.seed, ids.clone()).with_slow_disks(disks);
    let mut checker = invariants::Checker::default();
    let settle = ticks(SETTLE);
    let ticks = ticks(config.duration);
    for tick in 0..ticks + settle {
        shared.borrow_mut().now = sim.elapsed();
        if tick < ticks {
            nemesis.maybe_act(&mut sim, &shared, &plans)?;
        } else if tick == ticks {
            nemesis.heal_all(&mut sim, &shared);
            let mut s = shared.borrow_mut();
            s.converge_to = s.acked.iter().map(|(_, i)| *i).max().unwrap_or(0);
        }
        sim.step().map_err(|e| anyhow::anyhow!("simulation: {e}"))?;
        if tick % CHECK_EVERY_TICKS == 0 {
            checker.check(&mut shared.borrow_mut());
        }
    }
    checker.check(&mut shared.borrow_mut());
    checker.final_check(&shared.borrow(), &ids);
    let s = shared.borrow();
    Ok(SimReport {
        config,
        simulated: sim.elapsed(),
        faults: nemesis.faults,
        crashes: nemesis.crashes,
        slow_disks: nemesis.slow_disks,
        disk_jobs_delayed: nemesis.disk_jobs_delayed(),
        acked: s.acked.len(),
        leaderships: checker.leaderships(),
        violations: checker.violations,
        trace: s.trace.clone(),
    })
}

/// Each node's disk, when the simulation slows disks (else none).
fn slow_disks(wanted: bool, ids: &[NodeId]) -> BTreeMap<NodeId, Arc<nemesis::SlowDisk>> {
    ids.iter()
        .filter(|_| wanted)
        .map(|&id| (id, Arc::default()))
        .collect()
}

/// `name:size` of each file in `dir`, for failure messages.
fn list_files(dir: &std::path::Path) -> String {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| {
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            format!("{}:{len}", e.file_name().to_string_lossy())
        })
        .collect();
    files.sort();
    files.join(" ")
}

/// One simulation at a time in a process: tasks spawned by another (a
/// test on another thread) would move tokio's task numbering under this
/// one (see [`align_task_ids`]).
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static RUNNING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    RUNNING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Makes a run independent of the runs before it in this process. tokio
/// numbers tasks from one process-wide counter and drops a stopped
/// runtime's tasks in an order that depends on those numbers (its task
/// list is sharded by id modulo a small power of two). A crash stops a
/// node's runtime, so the order its connections close in, and what the
/// other nodes see, would depend on how many tasks earlier runs spawned
/// (the broker simulation's seed 7 ran differently after seed 2). This
/// spawns throwaway tasks until the next task id is a multiple of 1024,
/// so every run starts at the same place modulo any shard count.
fn align_task_ids() {
    // Spawns elsewhere in the process would move the numbering during the
    // run: the callers hold `one_at_a_time`.
    const ALIGN: u64 = 1024;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime for numbering tasks");
    runtime.block_on(async {
        loop {
            let id = tokio::spawn(async { tokio::task::id() })
                .await
                .expect("the task ran");
            let id: u64 = id.to_string().parse().expect("task ids are numbers");
            if (id + 1).is_multiple_of(ALIGN) {
                return;
            }
        }
    });
}

/// tmpfs when there is one: the simulation fsyncs often, and real fsync
/// latency only slows it down (time is simulated).
fn scratch_dir() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// One voter's software: start the quorum, then propose a uniquely named
/// record every 20–80 ms while leading.
async fn node(
    id: NodeId,
    voters: BTreeMap<NodeId, String>,
    dir: std::path::PathBuf,
    plan: Arc<FaultPlan>,
    disk: Option<vltava_log::storage::DiskWait>,
    shared: Rc<RefCell<Shared>>,
) -> turmoil::Result {
    let start = {
        let mut s = shared.borrow_mut();
        let n = s.starts.entry(id).or_insert(0);
        *n += 1;
        *n
    };
    let log_dir = dir.join("log");
    let mut config = QuorumConfig::new(id, voters, dir);
    config.storage = Arc::new(FaultyStorage::new(plan));
    config.disk_wait = disk;
    config.propose_timeout = Duration::from_secs(2);
    config.forward_timeout = Duration::from_secs(5);
    // Snapshots and purges happen within a run.
    config.snapshot_after_entries = 200;
    config.entries_kept_after_snapshot = 50;
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
    let quorum = Rc::new(
        Quorum::start(
            config,
            Box::new(net::Acceptor(listener)),
            Arc::new(net::Connector),
        )
        .await
        .map_err(|e| {
            format!(
                "node {id} start {start}: {e}; log files: {}; node files: {}",
                list_files(&log_dir),
                list_files(log_dir.parent().unwrap())
            )
        })?,
    );
    shared
        .borrow_mut()
        .quorums
        .insert(id, (start, quorum.clone()));
    let mut rng = StdRng::seed_from_u64(u64::from(start) << 32 | id);
    let mut k = 0u64;
    loop {
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..80))).await;
        if quorum.leader() != Some(id) {
            continue;
        }
        let name = format!("n{id}-s{start}-{k}");
        k += 1;
        if let Ok(index) = quorum.propose(vec![record(&name)]).await {
            let mut s = shared.borrow_mut();
            let at = s.now;
            s.trace.push(format!("{at:?} ack {name} at {index}"));
            s.acked.push((name, index));
        }
    }
}
