//! The fault harness: 3–5 `vltava server` processes, each in its own
//! network namespace on a bridge, driven by real librdkafka clients while
//! a seeded schedule of faults (process kills and pauses, partitions,
//! packet loss, slow links, failing and full disks) plays out; then a
//! final read, Jepsen's queue checks and a byte comparison of the replicas.
//!
//! `tests/tests/fault.rs` runs a short fixed-seed schedule in the test
//! suite; `cargo run -p vltava-tests --bin vltava-fault -- --help` runs
//! any seed for any length (docs/reliability.md). Needs root (namespaces,
//! nftables).

pub mod checker;
pub mod nemesis;
pub mod net;
pub mod replicas;
pub mod workload;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use checker::Anomalies;
use nemesis::{Fault, Node, Step, Target};
use net::Net;
use workload::History;

/// What one run does.
#[derive(Debug, Clone)]
pub struct FaultConfig {
    pub seed: u64,
    /// 3 to 5.
    pub nodes: usize,
    /// Length of the fault schedule (the run takes longer: start-up, heal,
    /// final read).
    pub duration: Duration,
    pub partitions: i32,
    pub producers: usize,
    /// Time between one producer's sends.
    pub send_interval: Duration,
}

impl FaultConfig {
    pub fn new(seed: u64, duration: Duration) -> FaultConfig {
        FaultConfig {
            seed,
            nodes: 3,
            duration,
            partitions: 4,
            producers: 3,
            send_interval: Duration::from_millis(5),
        }
    }
}

/// The topic the workload writes.
pub const TOPIC: &str = "jepsen";

/// What a run did and found.
#[derive(Debug)]
pub struct Report {
    pub config: FaultConfig,
    /// Per faulty step: when it started, its kind, and what was done.
    pub faults: Vec<(Duration, &'static str, String)>,
    pub quiet_steps: usize,
    pub sent: usize,
    pub acked: usize,
    pub failed: u64,
    pub reads: usize,
    pub producer_restarts: u64,
    /// Nodes that exited without being killed by the harness.
    pub crashes: Vec<String>,
    pub anomalies: Anomalies,
    /// From the last heal to acks=all writes on every partition.
    pub recovered_in: Option<Duration>,
    pub liveness_failure: Option<String>,
    pub replicas: replicas::Comparison,
    pub elapsed: Duration,
}

impl Report {
    /// No anomaly, no crash, the cluster served again in bound, replicas
    /// agree, and the workload did something.
    pub fn passed(&self) -> bool {
        self.anomalies.total() == 0
            && self.crashes.is_empty()
            && self.liveness_failure.is_none()
            && self.replicas.differences.is_empty()
            && self.replicas.identical == self.config.partitions as usize
            && self.acked > 0
    }

    fn kinds(&self) -> BTreeMap<&str, usize> {
        let mut kinds = BTreeMap::new();
        for (_, kind, _) in &self.faults {
            *kinds.entry(*kind).or_insert(0) += 1;
        }
        kinds
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(
            f,
            "fault run: seed {}, {} nodes, {} partitions, {} producers, schedule {:?}, took {:.0?}",
            c.seed, c.nodes, c.partitions, c.producers, c.duration, self.elapsed
        )?;
        writeln!(
            f,
            "faults: {} ({} quiet steps)",
            self.faults.len(),
            self.quiet_steps
        )?;
        for (kind, n) in self.kinds() {
            writeln!(f, "  {kind}: {n}")?;
        }
        for (at, kind, fault) in &self.faults {
            writeln!(f, "  {:>6.1}s {kind}: {fault}", at.as_secs_f64())?;
        }
        writeln!(
            f,
            "operations: {} sent, {} acknowledged, {} failed, {} reads, {} producer restarts",
            self.sent, self.acked, self.failed, self.reads, self.producer_restarts
        )?;
        let a = &self.anomalies;
        writeln!(
            f,
            "anomalies: lost {}, unseen {}, duplicate {}, inconsistent offsets {}, nonmonotonic polls {}, skipped polls {}, nonmonotonic sends {}, phantom {}",
            a.lost, a.unseen, a.duplicate, a.inconsistent_offsets, a.nonmonotonic_polls, a.skipped_polls, a.nonmonotonic_sends, a.phantom
        )?;
        for example in &a.examples {
            writeln!(f, "  {example}")?;
        }
        writeln!(f, "crashes: {}", self.crashes.len())?;
        for crash in &self.crashes {
            writeln!(f, "  {crash}")?;
        }
        match (&self.recovered_in, &self.liveness_failure) {
            (Some(d), _) => writeln!(
                f,
                "liveness: every partition took acks=all writes {d:.1?} after the last heal"
            )?,
            (None, Some(e)) => writeln!(f, "liveness: FAILED: {e}")?,
            (None, None) => writeln!(f, "liveness: not measured")?,
        }
        writeln!(
            f,
            "replicas: {} partitions identical below the high watermark ({} bytes compared), {} differences",
            self.replicas.identical,
            self.replicas.bytes,
            self.replicas.differences.len()
        )?;
        for d in &self.replicas.differences {
            writeln!(f, "  {d}")?;
        }
        write!(f, "result: {}", if self.passed() { "PASS" } else { "FAIL" })
    }
}

/// Runs the harness once.
pub fn run(config: FaultConfig) -> Result<Report> {
    if !rustix::process::geteuid().is_root() {
        bail!("the fault harness needs root (network namespaces, nftables)");
    }
    if !(3..=5).contains(&config.nodes) {
        bail!("--nodes must be 3 to 5");
    }
    if config.partitions < 1 || config.producers < 1 {
        bail!("--partitions and --producers must be at least 1");
    }
    let net = Net::create(config.nodes)?;
    let root = tempfile::Builder::new().prefix("vltava-fault-").tempdir()?;
    // The nodes' logs and the client log outlive a failed run, whether a
    // check failed or the harness itself gave up.
    let outcome = run_in(config, &net, root.path());
    if !matches!(&outcome, Ok(report) if report.passed()) {
        let kept = root.keep();
        eprintln!(
            "fault run failed; node logs and the producers' idempotence log (clients.log) kept under {}",
            kept.display()
        );
    }
    outcome
}

fn run_in(config: FaultConfig, net: &Net, root: &std::path::Path) -> Result<Report> {
    let started = Instant::now();
    let voters = (1..=config.nodes)
        .map(|i| format!("{i}@{}:9093", net.ip(i as u8)))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes: Vec<Node> = (1..=config.nodes)
        .map(|i| {
            let ip = net.ip(i as u8);
            let overrides = [
                format!("node.id={i}"),
                "process.roles=broker,controller".into(),
                format!("listeners=PLAINTEXT://{ip}:9092,CONTROLLER://{ip}:9093"),
                "controller.listener.names=CONTROLLER".into(),
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
                format!("controller.quorum.voters={voters}"),
                "default.replication.factor=3".into(),
                "offsets.topic.replication.factor=3".into(),
                "min.insync.replicas=2".into(),
                "unclean.leader.election.enable=false".into(),
                "broker.heartbeat.interval.ms=500".into(),
                "broker.session.timeout.ms=3000".into(),
                "replica.lag.time.max.ms=5000".into(),
                "group.initial.rebalance.delay.ms=0".into(),
                // Fsyncs every second, so a failing disk is noticed.
                "log.flush.interval.ms=1000".into(),
                "log.flush.scheduler.interval.ms=500".into(),
            ];
            Node::new(i, net, root, overrides.to_vec())
        })
        .collect();
    for node in &mut nodes {
        node.start()?;
    }
    for node in &mut nodes {
        node.wait_listening()?;
    }
    let bootstrap = nodes
        .iter()
        .map(|n| n.addr.to_string())
        .collect::<Vec<_>>()
        .join(",");
    create_topic(&bootstrap, &config)?;
    wait_for_leaders(&bootstrap, config.partitions, Duration::from_secs(60))?;

    let history = Arc::new(History::default());
    *history.client_log.lock().unwrap() = Some(std::fs::File::create(root.join("clients.log"))?);
    let stop_producers = Arc::new(AtomicBool::new(false));
    let stop_consumers = Arc::new(AtomicBool::new(false));
    let mut producers = Vec::new();
    for i in 0..config.producers {
        let (h, b, s) = (history.clone(), bootstrap.clone(), stop_producers.clone());
        let (partitions, interval) = (config.partitions, config.send_interval);
        producers.push(std::thread::spawn(move || {
            workload::produce(h, b, TOPIC.into(), partitions, format!("p{i}"), interval, s)
        }));
    }
    let mut consumers = Vec::new();
    for (name, group) in [
        ("group-a", Some("fault-group")),
        ("group-b", Some("fault-group")),
        ("assigned", None),
    ] {
        let (h, b, s) = (history.clone(), bootstrap.clone(), stop_consumers.clone());
        let partitions = config.partitions;
        consumers.push(std::thread::spawn(move || {
            workload::consume(
                h,
                b,
                TOPIC.into(),
                partitions,
                name.into(),
                group.map(Into::into),
                s,
            )
        }));
    }

    let steps = nemesis::schedule(
        config.seed,
        config.nodes,
        config.partitions,
        config.duration,
    );
    let mut faults = Vec::new();
    let mut crashes = Vec::new();
    let quiet_steps = steps.iter().filter(|s| s.fault.is_none()).count();
    for step in &steps {
        let at = started.elapsed();
        if let Some(fault) = &step.fault {
            let done = apply(fault, net, &mut nodes, &bootstrap)?;
            let text = format!("{done} for {:?}", step.duration);
            eprintln!(
                "[fault {:>6.1}s] {}: {text}",
                at.as_secs_f64(),
                fault.kind()
            );
            faults.push((at, fault.kind(), text));
        }
        std::thread::sleep(step.duration);
        // Before the heal, which restarts stopped nodes.
        notice_crashes(&mut nodes, &mut crashes)?;
        heal(step, net, &mut nodes)?;
    }
    notice_crashes(&mut nodes, &mut crashes)?;
    heal_all(net, &mut nodes)?;
    // Measured from the heal, with the producers still writing.
    let (recovered_in, liveness_failure) = match workload::probe_liveness(
        &history,
        &bootstrap,
        TOPIC,
        config.partitions,
        Instant::now(),
    ) {
        Ok(took) => (Some(took), None),
        Err(e) => (None, Some(e.to_string())),
    };
    stop_producers.store(true, Ordering::Relaxed);
    for p in producers {
        p.join().expect("producer thread")?;
    }
    let high = workload::final_read(&history, &bootstrap, TOPIC, config.partitions)?;
    stop_consumers.store(true, Ordering::Relaxed);
    for c in consumers {
        c.join().expect("consumer thread")?;
    }
    notice_crashes(&mut nodes, &mut crashes)?;
    let data_dirs = nodes.iter().map(|n| (n.id as i32, n.data_dir())).collect();
    let replica_sets = replicas_of(&bootstrap)?;
    let replicas = replicas::compare(&data_dirs, TOPIC, &high, &replica_sets);

    let acks = history.acks.lock().unwrap().clone();
    let reads = history.reads.lock().unwrap().clone();
    let sent = history.sent.lock().unwrap().clone();
    let anomalies = checker::check(&acks, &reads, &sent);
    let report = Report {
        config,
        faults,
        quiet_steps,
        sent: sent.len(),
        acked: acks.len(),
        failed: history.failed.load(Ordering::Relaxed),
        reads: reads.len(),
        producer_restarts: history.producer_restarts.load(Ordering::Relaxed),
        crashes,
        anomalies,
        recovered_in,
        liveness_failure,
        replicas,
        elapsed: started.elapsed(),
    };
    drop(nodes);
    Ok(report)
}

fn create_topic(bootstrap: &str, config: &FaultConfig) -> Result<()> {
    let out = std::process::Command::new(crate::vltava_bin())
        .args([
            "topics",
            "--bootstrap-server",
            bootstrap,
            "--create",
            "--topic",
            TOPIC,
        ])
        .args(["--partitions", &config.partitions.to_string()])
        .args(["--replication-factor", "3"])
        .args(["--config", "min.insync.replicas=2"])
        .output()?;
    if !out.status.success() {
        bail!(
            "creating {TOPIC}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn metadata_consumer(bootstrap: &str) -> Result<BaseConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "3000")
        .set("log_level", "2")
        .create()?)
}

/// Leader of each partition (by node id), as a broker answers now.
fn leaders(bootstrap: &str, timeout: Duration) -> Result<BTreeMap<i32, i32>> {
    let consumer = metadata_consumer(bootstrap)?;
    let metadata = consumer.fetch_metadata(Some(TOPIC), timeout)?;
    Ok(metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions())
        .filter(|p| p.leader() >= 0)
        .map(|p| (p.id(), p.leader()))
        .collect())
}

fn replicas_of(bootstrap: &str) -> Result<BTreeMap<i32, Vec<i32>>> {
    let consumer = metadata_consumer(bootstrap)?;
    let metadata = consumer.fetch_metadata(Some(TOPIC), Duration::from_secs(10))?;
    Ok(metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions())
        .map(|p| (p.id(), p.replicas().to_vec()))
        .collect())
}

fn wait_for_leaders(bootstrap: &str, partitions: i32, bound: Duration) -> Result<()> {
    let led = crate::wait_until(bound, || {
        leaders(bootstrap, Duration::from_secs(3)).is_ok_and(|l| l.len() == partitions as usize)
    });
    if !led {
        bail!("{TOPIC} has no leader for every partition within {bound:?}");
    }
    Ok(())
}

/// The node a process fault hits, and how it was chosen.
fn resolve(target: Target, bootstrap: &str) -> (usize, String) {
    match target {
        Target::Node(n) => (n, format!("node {n}")),
        Target::LeaderOf(p) => match leaders(bootstrap, Duration::from_secs(2))
            .ok()
            .and_then(|l| l.get(&p).copied())
        {
            Some(n) => (n as usize, format!("node {n} ({target})")),
            None => (1, format!("node 1 ({target} was unknown)")),
        },
    }
}

/// Applies a fault; the text says what was done (with the node a leader
/// target resolved to).
fn apply(fault: &Fault, net: &Net, nodes: &mut [Node], bootstrap: &str) -> Result<String> {
    let node = |n: usize| n - 1;
    Ok(match fault {
        Fault::Kill(t) => {
            let (n, which) = resolve(*t, bootstrap);
            nodes[node(n)].kill()?;
            format!("SIGKILL {which}")
        }
        Fault::Pause(t) => {
            let (n, which) = resolve(*t, bootstrap);
            nodes[node(n)].pause()?;
            format!("SIGSTOP {which}")
        }
        other => {
            match other {
                Fault::Isolate(n) => {
                    let others: Vec<usize> = (1..=nodes.len()).filter(|x| x != n).collect();
                    net.split(&[*n], &others)?;
                }
                Fault::Split(a, b) | Fault::Bridge(a, _, b) => net.split(a, b)?,
                Fault::OneWay { from, to } => net.drop_from(*to, *from)?,
                Fault::Loss(n, percent) => net.lossy(*n, *percent)?,
                Fault::Slow(n) => net.slow(*n, SLOW_DELAY_MS, SLOW_LINK_KBIT)?,
                Fault::FsyncFail(n) => nodes[node(*n)].storage_fault("fsync-fail")?,
                Fault::DiskFull(n) => nodes[node(*n)].storage_fault("disk-full")?,
                Fault::Kill(_) | Fault::Pause(_) => unreachable!("matched above"),
            }
            match (other, net.netem) {
                (Fault::Slow(_), true) => format!("{other} (netem {SLOW_DELAY_MS} ms)"),
                (Fault::Slow(_), false) => {
                    format!("{other} ({SLOW_LINK_KBIT} kbit/s token bucket)")
                }
                _ => other.to_string(),
            }
        }
    })
}

/// A slow network: netem's delay (and half of it as jitter), or without
/// netem a token bucket at this rate.
const SLOW_DELAY_MS: u32 = 100;
const SLOW_LINK_KBIT: u32 = 512;

fn heal(step: &Step, net: &Net, nodes: &mut [Node]) -> Result<()> {
    match &step.fault {
        None => Ok(()),
        Some(Fault::Kill(_)) | Some(Fault::Pause(_)) => restart_stopped(nodes),
        Some(Fault::FsyncFail(n)) => {
            let node = &mut nodes[n - 1];
            node.storage_fault("none")?;
            node.kill()?;
            node.start()?;
            node.wait_listening()
        }
        Some(Fault::DiskFull(n)) => nodes[n - 1].storage_fault("none"),
        Some(_) => net.heal(),
    }
}

/// Resumes paused nodes and starts killed ones.
fn restart_stopped(nodes: &mut [Node]) -> Result<()> {
    for node in nodes.iter_mut() {
        node.resume()?;
    }
    for node in nodes.iter_mut() {
        if !node.is_running() {
            node.start()?;
            node.wait_listening()?;
        }
    }
    Ok(())
}

fn heal_all(net: &Net, nodes: &mut [Node]) -> Result<()> {
    net.heal()?;
    for node in nodes.iter() {
        node.storage_fault("none")?;
    }
    restart_stopped(nodes)
}

/// A node that exited without the harness killing it is a crash: noted
/// with its log, and started again.
fn notice_crashes(nodes: &mut [Node], crashes: &mut Vec<String>) -> Result<()> {
    for node in nodes.iter_mut() {
        if node.exited_by_itself() {
            crashes.push(format!("node {} exited:\n{}", node.id, node.log_tail()));
            node.start().context("restarting a crashed node")?;
            node.wait_listening()?;
        }
    }
    Ok(())
}
