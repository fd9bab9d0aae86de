//! Replication on real `vltava server` processes, driven by librdkafka:
//! three nodes, a topic with three replicas and `min.insync.replicas=2`.
//!
//! - An idempotent acks=all producer writes without pause while the
//!   partition's leader is SIGKILLed and restarted, three times: every
//!   acknowledged record is read back exactly once, at the offset it was
//!   acknowledged at and in the order it was sent, and the three replicas'
//!   logs end up byte for byte the same.
//! - A leader that takes acks=1 writes its followers never saw and is then
//!   paused (SIGSTOP) past its session: a follower takes over and takes
//!   writes; the old leader, woken, steps down, truncates the tail nobody
//!   else has, and rejoins the ISR with a log equal to the new leader's.
//! - With two of three replicas gone (broker-only nodes killed, so the
//!   controller survives), acks=all is refused with NOT_ENOUGH_REPLICAS and
//!   acks=1 still works.
//! - A rolling restart with SIGTERM under load loses nothing acknowledged
//!   and gives the producer no error.
//! - `vltava reassign-partitions` moves the partition from brokers {1,2}
//!   to {2,3}, then to three replicas, under load: nothing acknowledged is
//!   lost, the leaving replica's log is removed, and the replicas' logs end
//!   up the same.
//!
//! Every wait is on a condition with a deadline.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::MetadataRequest;
use kafka_protocol::records::Compression;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use vltava_protocol::ResponseError;
use vltava_tests::cluster::Cluster;
use vltava_tests::raw::{encode_batch, ProducerStamp, RawClient, TestRecord};

/// How long any condition in these tests may take to come true.
const DEADLINE: Duration = Duration::from_secs(90);

/// Short sessions so a silent broker is fenced within seconds.
const FAST_FENCING: &[(&str, &str)] = &[
    ("broker.heartbeat.interval.ms", "300"),
    ("broker.session.timeout.ms", "2500"),
];

const TOPIC: &str = "replicated";

/// (leader, leader epoch, replicas, ISR) of partition 0 as node `via`
/// describes it, if it answers.
fn partition_state(
    cluster: &Cluster,
    via: i32,
    topic: &str,
) -> Option<(i32, i32, Vec<i32>, Vec<i32>)> {
    let mut client = RawClient::connect(cluster.node(via).addr()).ok()?;
    let req = MetadataRequest::default().with_topics(None);
    let resp = client.request(&req, 12).ok()?;
    let t = resp
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))?;
    let p = t.partitions.iter().find(|p| p.partition_index == 0)?;
    let ids = |v: &[kafka_protocol::messages::BrokerId]| v.iter().map(|b| b.0).collect();
    Some((
        p.leader_id.0,
        p.leader_epoch,
        ids(&p.replica_nodes),
        ids(&p.isr_nodes),
    ))
}

/// Waits until node `via` describes partition 0 as `ok` says.
fn wait_state(
    cluster: &Cluster,
    via: i32,
    what: &str,
    ok: impl Fn(&(i32, i32, Vec<i32>, Vec<i32>)) -> bool,
) -> (i32, i32, Vec<i32>, Vec<i32>) {
    let started = Instant::now();
    loop {
        let state = partition_state(cluster, via, TOPIC);
        if let Some(state) = state.as_ref().filter(|s| ok(s)) {
            return state.clone();
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{what}: node {via} still describes {state:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn full_isr(state: &(i32, i32, Vec<i32>, Vec<i32>)) -> bool {
    let mut isr = state.3.clone();
    let mut replicas = state.2.clone();
    isr.sort_unstable();
    replicas.sort_unstable();
    state.0 > 0 && isr == replicas
}

fn create_topic(cluster: &Cluster, replicas: &[i32]) {
    create_topic_with(cluster, replicas, &[("min.insync.replicas", "2")]);
}

fn create_topic_with(cluster: &Cluster, replicas: &[i32], configs: &[(&str, &str)]) {
    create_named(cluster, TOPIC, replicas, configs);
}

/// Creates topic `name` with one partition on `replicas`.
fn create_named(cluster: &Cluster, name: &str, replicas: &[i32], configs: &[(&str, &str)]) {
    cluster.create_topic_on(name, replicas, configs);
}

/// A producer thread: an idempotent acks=all librdkafka producer sending
/// `v00000000`, `v00000001`, … to partition 0 until stopped, a window of
/// sends in flight; what it was told is kept.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeMap<u64, i64>>>,
    errors: Arc<Mutex<Vec<String>>>,
    sent: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(bootstrap: &str) -> Load {
        let producer: FutureProducer = common::producer(
            bootstrap,
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("linger.ms", "5"),
                ("message.timeout.ms", "120000"),
                ("retry.backoff.ms", "100"),
                // A paused leader holds a request until this passes; the
                // producer then looks up the new leader.
                ("request.timeout.ms", "5000"),
                ("socket.timeout.ms", "10000"),
            ],
        );
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, acked, errors, sent) =
                (stop.clone(), acked.clone(), errors.clone(), sent.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let mut seq = 0u64;
                    while !stop.load(Ordering::Acquire) {
                        let mut window = Vec::new();
                        for _ in 0..20 {
                            let value = format!("v{seq:08}");
                            let record = FutureRecord::<(), _>::to(TOPIC)
                                .partition(0)
                                .payload(&value);
                            match producer.send_result(record) {
                                Ok(f) => window.push((seq, f)),
                                Err((e, _)) => errors.lock().unwrap().push(format!("enqueue: {e}")),
                            }
                            seq += 1;
                        }
                        sent.fetch_add(window.len(), Ordering::Release);
                        for (seq, f) in window {
                            match f.await {
                                Ok(Ok(delivery)) => {
                                    acked.lock().unwrap().insert(seq, delivery.offset);
                                }
                                Ok(Err((e, _))) => {
                                    errors.lock().unwrap().push(format!("v{seq:08}: {e}"))
                                }
                                Err(e) => errors.lock().unwrap().push(format!("v{seq:08}: {e}")),
                            }
                        }
                    }
                });
            })
        };
        Load {
            stop,
            acked,
            errors,
            sent,
            thread: Some(thread),
        }
    }

    fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits until `more` further records were acknowledged.
    fn wait_progress(&self, more: usize, what: &str) {
        let target = self.acked_count() + more;
        let started = Instant::now();
        while self.acked_count() < target {
            assert!(
                started.elapsed() < DEADLINE,
                "{what}: {} of {target} acknowledged; errors {:?}",
                self.acked_count(),
                self.errors.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn finish(mut self) -> (BTreeMap<u64, i64>, Vec<String>) {
        self.stop.store(true, Ordering::Release);
        self.thread.take().unwrap().join().unwrap();
        let acked = std::mem::take(&mut *self.acked.lock().unwrap());
        let errors = std::mem::take(&mut *self.errors.lock().unwrap());
        assert!(self.sent.load(Ordering::Acquire) >= acked.len());
        (acked, errors)
    }
}

/// Every record of partition 0, read through the cluster from offset 0 to
/// the end: (offset, value).
fn read_all(bootstrap: &str) -> Vec<(i64, String)> {
    let consumer = common::consumer(bootstrap, &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let (_, high) = consumer
        .fetch_watermarks(TOPIC, 0, Duration::from_secs(30))
        .expect("watermarks");
    let mut out = Vec::new();
    let started = Instant::now();
    while out.last().map_or(0, |(o, _): &(i64, String)| o + 1) < high {
        assert!(
            started.elapsed() < DEADLINE,
            "read {} records of {high}",
            out.len()
        );
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let msg = msg.expect("consume");
        let value = String::from_utf8(msg.payload().unwrap_or_default().to_vec()).unwrap();
        out.push((msg.offset(), value));
    }
    out
}

/// Every acknowledged value is in the log exactly once, at its
/// acknowledged offset, and the values the log holds are in send order.
fn check_acknowledged(acked: &BTreeMap<u64, i64>, log: &[(i64, String)]) {
    let mut at: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (offset, value) in log {
        at.entry(value.as_str()).or_default().push(*offset);
    }
    for (seq, offset) in acked {
        let value = format!("v{seq:08}");
        assert_eq!(
            at.get(value.as_str()),
            Some(&vec![*offset]),
            "acknowledged {value} at offset {offset}"
        );
    }
    let duplicates: Vec<_> = at.iter().filter(|(_, o)| o.len() > 1).collect();
    assert!(duplicates.is_empty(), "written twice: {duplicates:?}");
    let values: Vec<&str> = log.iter().map(|(_, v)| v.as_str()).collect();
    assert!(
        values.windows(2).all(|w| w[0] < w[1]),
        "values out of send order"
    );
}

/// The concatenated segment files of partition 0 on node `id`.
fn log_bytes(cluster: &Cluster, id: i32) -> Vec<u8> {
    let dir = cluster.node(id).log_dir().join(format!("{TOPIC}-0"));
    let mut segments: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    segments
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// Waits until the replicas' logs are byte for byte the same.
fn wait_identical_logs(cluster: &Cluster, replicas: &[i32]) {
    let started = Instant::now();
    loop {
        let logs: Vec<Vec<u8>> = replicas.iter().map(|id| log_bytes(cluster, *id)).collect();
        if logs.iter().all(|l| *l == logs[0]) {
            assert!(!logs[0].is_empty());
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "replica logs differ: {:?} bytes",
            logs.iter().map(Vec::len).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn acknowledged_writes_survive_the_leader_being_killed_again_and_again() {
    let mut cluster = Cluster::start_with(3, FAST_FENCING);
    create_topic(&cluster, &[1, 2, 3]);
    wait_state(&cluster, 1, "created", full_isr);
    let load = Load::start(&cluster.bootstrap());
    load.wait_progress(200, "before any failure");
    for round in 0..3 {
        let (leader, epoch, ..) = wait_state(&cluster, 1 + (round % 3), "led", full_isr);
        cluster.nodes[(leader - 1) as usize].kill_sigkill();
        let survivor = (1..=3).find(|id| *id != leader).unwrap();
        wait_state(&cluster, survivor, "failed over", |s| {
            s.0 > 0 && s.0 != leader && s.1 > epoch
        });
        load.wait_progress(200, &format!("round {round}: after the leader died"));
        cluster.nodes[(leader - 1) as usize].restart();
        wait_state(&cluster, survivor, "rejoined", full_isr);
        load.wait_progress(100, &format!("round {round}: after the restart"));
    }
    let (acked, errors) = load.finish();
    assert!(errors.is_empty(), "producer errors: {errors:?}");
    let log = read_all(&cluster.bootstrap());
    check_acknowledged(&acked, &log);
    assert!(acked.len() >= 1_100, "{} acknowledged", acked.len());
    wait_identical_logs(&cluster, &[1, 2, 3]);
}

#[test]
fn a_rolling_restart_with_sigterm_loses_nothing_and_raises_no_error() {
    let mut cluster = Cluster::start_with(3, FAST_FENCING);
    create_topic(&cluster, &[1, 2, 3]);
    wait_state(&cluster, 1, "created", full_isr);
    let load = Load::start(&cluster.bootstrap());
    load.wait_progress(200, "before the restarts");
    for id in 1..=3 {
        cluster.nodes[(id - 1) as usize].stop_sigterm();
        load.wait_progress(100, &format!("while node {id} is down"));
        cluster.nodes[(id - 1) as usize].restart();
        let other = if id == 1 { 2 } else { 1 };
        wait_state(&cluster, other, "back in sync", full_isr);
        load.wait_progress(100, &format!("after node {id} came back"));
    }
    let (acked, errors) = load.finish();
    assert!(errors.is_empty(), "producer errors: {errors:?}");
    let log = read_all(&cluster.bootstrap());
    check_acknowledged(&acked, &log);
    wait_identical_logs(&cluster, &[1, 2, 3]);
}

fn plain(values: &[&str]) -> bytes::Bytes {
    let records: Vec<TestRecord> = values
        .iter()
        .map(|v| TestRecord::value_at(v.as_bytes(), vltava_tests::now_ms()))
        .collect();
    encode_batch(&records, ProducerStamp::NONE, Compression::None)
}

#[test]
fn a_paused_leader_steps_down_and_rejoins_without_losing_acknowledged_writes() {
    let cluster = Cluster::start_with(3, FAST_FENCING);
    create_topic(&cluster, &[1, 2, 3]);
    wait_state(&cluster, 1, "created", full_isr);
    let load = Load::start(&cluster.bootstrap());
    load.wait_progress(200, "before the pause");
    let (leader, epoch, ..) = wait_state(&cluster, 1, "led", full_isr);
    let survivor = (1..=3).find(|id| *id != leader).unwrap();
    signal(&cluster, leader, "-STOP");
    wait_state(&cluster, survivor, "a follower took over", |s| {
        s.0 > 0 && s.0 != leader && s.1 > epoch && !s.3.contains(&leader)
    });
    load.wait_progress(200, "while the old leader is paused");
    signal(&cluster, leader, "-CONT");
    let (new_leader, ..) = wait_state(&cluster, survivor, "the old leader rejoined", full_isr);
    assert_ne!(new_leader, leader);
    load.wait_progress(100, "after it rejoined");
    let (acked, errors) = load.finish();
    assert!(errors.is_empty(), "producer errors: {errors:?}");
    check_acknowledged(&acked, &read_all(&cluster.bootstrap()));
    wait_identical_logs(&cluster, &[1, 2, 3]);
}

fn signal(cluster: &Cluster, id: i32, sig: &str) {
    let pid = cluster.node(id).pid().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap()
        .success());
}

/// Divergence made certain: the leader alone in the ISR takes writes, is
/// paused, and an unclean election makes the out-of-sync follower leader;
/// it takes a write at an offset the old leader also wrote. The old
/// leader, back, finds its tail is not the new leader's (diverging epoch),
/// truncates it and copies the leader's log.
#[test]
fn an_old_leader_truncates_the_tail_the_new_leader_never_had() {
    // Three voters keep the controller up; the partition lives on two
    // broker-only nodes, 4 and 5.
    let mut cluster = Cluster::start_with(3, FAST_FENCING);
    let (a, b) = (
        cluster.add_broker_only_with(FAST_FENCING),
        cluster.add_broker_only_with(FAST_FENCING),
    );
    create_topic_with(
        &cluster,
        &[a, b],
        &[("unclean.leader.election.enable", "true")],
    );
    wait_state(&cluster, a, "created", full_isr);
    let mut old = RawClient::connect(cluster.node(a).addr()).unwrap();
    let first = old.produce(TOPIC, 0, plain(&["a", "b"]), -1).unwrap();
    assert_eq!((first.error_code, first.base_offset), (0, 0));
    // The follower pauses; fenced, it leaves the ISR (and, paused for
    // longer than a fetch waits, holds no fetch that could still carry
    // later writes to it).
    signal(&cluster, b, "-STOP");
    wait_state(&cluster, 1, "the follower left the ISR", |s| {
        s.0 == a && s.3 == [a]
    });
    let lonely = old.produce(TOPIC, 0, plain(&["x", "y", "z"]), 1).unwrap();
    assert_eq!((lonely.error_code, lonely.base_offset), (0, 2));
    signal(&cluster, a, "-STOP");
    signal(&cluster, b, "-CONT");
    let (_, epoch, ..) = wait_state(&cluster, 1, "the follower leads (unclean)", |s| s.0 == b);
    let mut new = RawClient::connect(cluster.node(b).addr()).unwrap();
    let after = new.produce(TOPIC, 0, plain(&["c"]), 1).unwrap();
    assert_eq!((after.error_code, after.base_offset), (0, 2), "{after:?}");
    signal(&cluster, a, "-CONT");
    wait_state(&cluster, 1, "the old leader rejoined", |s| {
        full_isr(s) && s.0 == b && s.1 == epoch
    });
    let values: Vec<String> = read_all(&cluster.node(b).bootstrap())
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values, ["a", "b", "c"]);
    wait_identical_logs(&cluster, &[a, b]);
    assert!(cluster
        .node(a)
        .stderr_log()
        .contains("follower log diverged from the leader's; truncating"));
    assert!(cluster
        .nodes
        .iter()
        .any(|n| n.stderr_log().contains("unclean leader election")));
}

#[test]
fn with_two_replicas_gone_acks_all_is_refused_and_acks_one_is_held_until_min_insync_is_lowered() {
    // Three voters keep the controller up; the followers are broker-only
    // nodes 4 and 5, killed.
    let mut cluster = Cluster::start_with(3, FAST_FENCING);
    let (f1, f2) = (
        cluster.add_broker_only_with(FAST_FENCING),
        cluster.add_broker_only_with(FAST_FENCING),
    );
    create_topic(&cluster, &[1, f1, f2]);
    wait_state(&cluster, 1, "created", full_isr);
    let mut client = RawClient::connect(cluster.node(1).addr()).unwrap();
    let ok = client.produce(TOPIC, 0, plain(&["a"]), -1).unwrap();
    assert_eq!(ok.error_code, 0);
    // One at a time: f1 leaves while the ISR still meets
    // min.insync.replicas (2), f2 as it falls below, so f2 alone is an
    // eligible leader replica (KIP-966).
    cluster.nodes[(f1 - 1) as usize].kill_sigkill();
    wait_state(&cluster, 1, "f1 left the ISR", |s| s.3 == [1, f2]);
    cluster.nodes[(f2 - 1) as usize].kill_sigkill();
    wait_state(&cluster, 1, "the ISR shrank to the leader", |s| {
        s.0 == 1 && s.3 == [1]
    });
    assert_eq!(eligible_leader_replicas(&cluster, 1), [f2]);
    // Visible to operators as Kafka's tool shows it.
    let bs = cluster.node(1).bootstrap();
    let describe = |flag: &str| {
        let out = vltava_tests::vltava_tool("topics", &bs, &["--describe", "--topic", TOPIC, flag]);
        vltava_tests::stdout_ok(flag, &out)
    };
    let line =
        format!("\tTopic: {TOPIC}\tPartition: 0\tLeader: 1\tReplicas: 1,{f1},{f2}\tIsr: 1\n");
    assert_eq!(describe("--under-replicated-partitions"), line);
    assert_eq!(describe("--under-min-isr-partitions"), line);
    let refused = client.produce(TOPIC, 0, plain(&["b"]), -1).unwrap();
    assert_eq!(
        refused.error_code,
        ResponseError::NotEnoughReplicas.code(),
        "{refused:?}"
    );
    let one = client.produce(TOPIC, 0, plain(&["c"]), 1).unwrap();
    assert_eq!((one.error_code, one.base_offset), (0, 1));
    // Appended but not committed: with the ISR below min.insync.replicas
    // the high watermark stands still (KIP-966's strict rule), so the
    // replicas that left keep everything committed and may lead.
    let values: Vec<String> = read_all(&cluster.node(1).bootstrap())
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values, ["a"]);
    // Lowering min.insync.replicas to 1 releases the high watermark and
    // clears the eligible leader replicas, as in Kafka.
    let bs = cluster.node(2).bootstrap();
    let alter = [
        "--alter",
        "--entity-type",
        "topics",
        "--entity-name",
        TOPIC,
        "--add-config",
        "min.insync.replicas=1",
    ];
    vltava_tests::stdout_ok(
        "configs",
        &vltava_tests::vltava_tool("configs", &bs, &alter),
    );
    let started = Instant::now();
    while !eligible_leader_replicas(&cluster, 1).is_empty() {
        assert!(started.elapsed() < DEADLINE, "the ELR was never cleared");
        std::thread::sleep(Duration::from_millis(50));
    }
    let values: Vec<String> = read_all(&cluster.node(1).bootstrap())
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values, ["a", "c"]);
}

/// Partition 0's eligible leader replicas as node `via` describes them
/// (DescribeTopicPartitions, KIP-966).
fn eligible_leader_replicas(cluster: &Cluster, via: i32) -> Vec<i32> {
    use kafka_protocol::messages::describe_topic_partitions_request::TopicRequest;
    use kafka_protocol::messages::DescribeTopicPartitionsRequest;
    let mut client = RawClient::connect(cluster.node(via).addr()).unwrap();
    let req = DescribeTopicPartitionsRequest::default()
        .with_topics(vec![
            TopicRequest::default().with_name(vltava_tests::raw::topic_name(TOPIC))
        ])
        .with_response_partition_limit(10);
    let resp = client.request(&req, 0).unwrap();
    let p = &resp.topics[0].partitions[0];
    assert_eq!(resp.topics[0].error_code, 0, "{resp:?}");
    p.eligible_leader_replicas
        .iter()
        .flatten()
        .map(|b| b.0)
        .collect()
}

/// `vltava leader-election` (kafka-leader-election.sh) moves leadership
/// back to the preferred replica on request, with Kafka's output; with
/// `auto.leader.rebalance.enable=false` nothing moves it by itself.
#[test]
fn the_preferred_replica_leads_again_on_request() {
    let mut overrides = FAST_FENCING.to_vec();
    overrides.push(("auto.leader.rebalance.enable", "false"));
    let mut cluster = Cluster::start_with(3, &overrides);
    create_topic(&cluster, &[1, 2, 3]);
    wait_state(&cluster, 2, "created", |s| full_isr(s) && s.0 == 1);
    cluster.nodes[0].stop_sigterm();
    wait_state(&cluster, 2, "moved away at shutdown", |s| s.0 == 2);
    cluster.nodes[0].restart();
    let (_, epoch, ..) = wait_state(&cluster, 2, "back in sync", full_isr);
    let bs = cluster.bootstrap();
    let elect = |args: &[&str]| vltava_tests::vltava_tool("leader-election", &bs, args);
    let one = [
        "--election-type",
        "preferred",
        "--topic",
        TOPIC,
        "--partition",
        "0",
    ];
    assert_eq!(
        vltava_tests::stdout_ok("preferred", &elect(&one)),
        format!("Successfully completed leader election (PREFERRED) for partitions {TOPIC}-0\n")
    );
    let (leader, after, ..) = wait_state(&cluster, 3, "preferred leads", |s| s.0 == 1);
    assert_eq!((leader, after), (1, epoch + 1));
    assert_eq!(
        vltava_tests::stdout_ok("again", &elect(&one)),
        format!("Valid replica already elected for partitions {TOPIC}-0\n")
    );
    let unclean = [
        "--election-type",
        "UNCLEAN",
        "--topic",
        TOPIC,
        "--partition",
        "0",
    ];
    assert_eq!(
        vltava_tests::stdout_ok("unclean", &elect(&unclean)),
        format!("Valid replica already elected for partitions {TOPIC}-0\n")
    );
    // Every partition: none needs an election, so nothing is listed.
    let all = ["--election-type", "preferred", "--all-topic-partitions"];
    assert_eq!(vltava_tests::stdout_ok("all", &elect(&all)), "");
    let missing = elect(&[
        "--election-type",
        "preferred",
        "--topic",
        "nope",
        "--partition",
        "0",
    ]);
    assert_eq!(missing.status.code(), Some(1));
    let stdout = vltava_tests::text(&missing.stdout);
    assert!(
        stdout.starts_with("Error completing leader election (PREFERRED) for partition: nope-0: org.apache.kafka.common.errors.UnknownTopicOrPartitionException: "),
        "{stdout}"
    );
    assert!(vltava_tests::text(&missing.stderr).contains("1 replica(s) could not be elected"));
    let file = cluster.node(1).log_dir().join("election.json");
    std::fs::write(
        &file,
        format!(r#"{{"partitions": [{{"topic": "{TOPIC}", "partition": 0}}]}}"#),
    )
    .unwrap();
    let from_file = [
        "--election-type",
        "preferred",
        "--path-to-json-file",
        file.to_str().unwrap(),
    ];
    assert_eq!(
        vltava_tests::stdout_ok("json", &elect(&from_file)),
        format!("Valid replica already elected for partitions {TOPIC}-0\n")
    );
    // kafka-log-dirs.sh: each replica's size is its log's bytes.
    let mut leader = RawClient::connect(cluster.node(1).addr()).unwrap();
    assert_eq!(
        leader
            .produce(TOPIC, 0, plain(&["a", "b"]), -1)
            .unwrap()
            .error_code,
        0
    );
    wait_identical_logs(&cluster, &[1, 2, 3]);
    let size = log_bytes(&cluster, 1).len();
    let out = vltava_tests::vltava_tool(
        "log-dirs",
        &bs,
        &["--describe", "--topic-list", TOPIC, "--broker-list", "1,2"],
    );
    let stdout = vltava_tests::stdout_ok("log-dirs", &out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[..2],
        [
            "Querying brokers for log directories information",
            "Received log directory information from brokers 1,2"
        ]
    );
    let json: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(json["version"], 1);
    for (i, id) in [1, 2].into_iter().enumerate() {
        let broker = &json["brokers"][i];
        assert_eq!(broker["broker"], id);
        let dir = &broker["logDirs"][0];
        assert_eq!(dir["error"], serde_json::Value::Null);
        let expected_dir = std::fs::canonicalize(cluster.node(id).log_dir()).unwrap();
        assert_eq!(dir["logDir"], expected_dir.display().to_string());
        assert_eq!(
            dir["partitions"],
            serde_json::json!([{"partition": format!("{TOPIC}-0"), "size": size, "offsetLag": 0, "isFuture": false}])
        );
    }
    let missing = vltava_tests::vltava_tool("log-dirs", &bs, &["--describe", "--broker-list", "9"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(vltava_tests::text(&missing.stderr).contains(
        "ERROR: The given brokers do not exist from --broker-list: 9. Current existent brokers: 1,2,3"
    ));
    for (args, error) in [
        (
            &["--topic", TOPIC, "--partition", "0"][..],
            "Missing required option(s): election-type",
        ),
        (
            &["--election-type", "preferred"][..],
            "One and only one of the following options is required",
        ),
        (
            &["--election-type", "preferred", "--topic", TOPIC][..],
            "Missing required option(s): partition",
        ),
    ] {
        let out = elect(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            vltava_tests::text(&out.stderr).contains(error),
            "{args:?}: {}",
            vltava_tests::text(&out.stderr)
        );
    }
}

/// With `auto.leader.rebalance.enable` (the default), leadership goes back
/// to the preferred replica by itself once it is in sync again.
#[test]
fn leadership_comes_home_by_itself() {
    let mut overrides = FAST_FENCING.to_vec();
    overrides.push(("leader.imbalance.check.interval.seconds", "1"));
    let mut cluster = Cluster::start_with(3, &overrides);
    create_topic(&cluster, &[1, 2, 3]);
    wait_state(&cluster, 2, "created", |s| full_isr(s) && s.0 == 1);
    cluster.nodes[0].kill_sigkill();
    wait_state(&cluster, 2, "failed over", |s| s.0 == 2 || s.0 == 3);
    cluster.nodes[0].restart();
    wait_state(&cluster, 2, "home again", |s| full_isr(s) && s.0 == 1);
}

/// A consumer group's coordinator is the leader of its `__consumer_offsets`
/// partition, which has three replicas: when that broker dies, another one
/// leads the partition, loads the group, and a new member of the group
/// resumes at the committed offset.
#[test]
fn committed_offsets_survive_the_loss_of_the_coordinator() {
    use kafka_protocol::messages::FindCoordinatorRequest;
    use rdkafka::consumer::{BaseConsumer, CommitMode};
    use rdkafka::ClientConfig;
    const GROUP: &str = "survivors";
    let mut cluster = Cluster::start_with(3, FAST_FENCING);
    create_topic(&cluster, &[1, 2, 3]);
    wait_state(&cluster, 1, "created", full_isr);
    let mut leader = RawClient::connect(cluster.node(1).addr()).unwrap();
    let values: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let produced = leader.produce(TOPIC, 0, plain(&refs), -1).unwrap();
    assert_eq!(produced.error_code, 0);
    let member = |bootstrap: &str| -> BaseConsumer {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", GROUP)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .create()
            .unwrap();
        consumer.subscribe(&[TOPIC]).unwrap();
        consumer
    };
    let next = |consumer: &BaseConsumer| -> (i64, String) {
        let started = Instant::now();
        loop {
            assert!(
                started.elapsed() < DEADLINE,
                "no record within the deadline"
            );
            use rdkafka::error::{KafkaError, RDKafkaErrorCode};
            match consumer.poll(Duration::from_millis(200)) {
                None => {}
                // librdkafka reports its lost connection to the killed
                // broker; it reconnects elsewhere by itself.
                Some(Err(KafkaError::MessageConsumption(
                    RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown,
                ))) => {}
                Some(msg) => {
                    let msg = msg.expect("consume");
                    let value = String::from_utf8(msg.payload().unwrap().to_vec()).unwrap();
                    return (msg.offset(), value);
                }
            }
        }
    };
    let first = member(&cluster.bootstrap());
    for i in 0..5 {
        assert_eq!(next(&first), (i, format!("r{i}")));
    }
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset(TOPIC, 0, Offset::Offset(5))
        .unwrap();
    first.commit(&commit, CommitMode::Sync).unwrap();
    drop(first);
    // The coordinator, and the offsets partition's replicas.
    let find = FindCoordinatorRequest::default()
        .with_key(GROUP.into())
        .with_key_type(0);
    let coordinator = leader.request(&find, 3).unwrap().node_id.0;
    let offsets =
        partition_state(&cluster, 1, "__consumer_offsets").expect("__consumer_offsets partition 0");
    assert_eq!(offsets.2.len(), 3, "{offsets:?}");
    cluster.nodes[(coordinator - 1) as usize].kill_sigkill();
    let survivor = (1..=3).find(|id| *id != coordinator).unwrap();
    let second = member(&cluster.node(survivor).bootstrap());
    assert_eq!(next(&second), (5, "r5".to_string()));
}

/// A follower that stops fetching leaves the ISR after
/// `replica.lag.time.max.ms`, through its leader, while it is still a
/// registered, unfenced broker (the session timeout is far longer); once it
/// fetches again and catches up it rejoins.
#[test]
fn a_lagging_follower_leaves_the_isr_and_rejoins() {
    let cluster = Cluster::start_with(
        3,
        &[
            ("replica.lag.time.max.ms", "1000"),
            ("broker.session.timeout.ms", "60000"),
        ],
    );
    create_topic(&cluster, &[1, 2, 3]);
    wait_state(&cluster, 1, "created", |s| full_isr(s) && s.0 == 1);
    signal(&cluster, 3, "-STOP");
    let started = Instant::now();
    let (_, _, _, isr) = wait_state(&cluster, 1, "the follower left the ISR", |s| {
        !s.3.contains(&3)
    });
    assert_eq!(isr, [1, 2]);
    // Taken out for lagging, not fenced: well inside its session.
    assert!(started.elapsed() < Duration::from_secs(30));
    let mut client = RawClient::connect(cluster.node(1).addr()).unwrap();
    let listed = client
        .request(&MetadataRequest::default().with_topics(Some(vec![])), 12)
        .unwrap();
    assert!(
        listed.brokers.iter().any(|b| b.node_id.0 == 3),
        "{listed:?}"
    );
    // min.insync.replicas=2 still holds with two in sync.
    let ok = client.produce(TOPIC, 0, plain(&["a"]), -1).unwrap();
    assert_eq!(ok.error_code, 0);
    signal(&cluster, 3, "-CONT");
    wait_state(&cluster, 1, "the follower rejoined", full_isr);
    wait_identical_logs(&cluster, &[1, 2, 3]);
}

/// The partition-0 line of a reassignment file.
fn placement(topic: &str, replicas: &[i32]) -> String {
    let ids: Vec<String> = replicas.iter().map(i32::to_string).collect();
    let dirs: Vec<&str> = replicas.iter().map(|_| "\"any\"").collect();
    format!(
        r#"{{"version":1,"partitions":[{{"topic":"{topic}","partition":0,"replicas":[{}],"log_dirs":[{}]}}]}}"#,
        ids.join(","),
        dirs.join(",")
    )
}

/// `vltava reassign-partitions` (kafka-reassign-partitions.sh) under an
/// idempotent acks=all load: `--generate` proposes a placement on the
/// brokers named; `--execute` moves the partition from {1,2} to {2,3}
/// (the leaving leader hands over; node 1's log is removed) and then to
/// three replicas, `--verify` reports progress until each completes, with
/// Kafka's output throughout. Every acknowledged record is read back once
/// and the three logs end up the same. Then, with broker 3 stopped, a move
/// onto it stays under way: `--list` shows it, `--execute` refuses another
/// without `--additional`, and `--cancel` takes the partition back.
#[test]
fn reassignment_moves_replicas_and_changes_the_factor_under_load() {
    let mut cluster = Cluster::start_with(3, FAST_FENCING);
    create_topic(&cluster, &[1, 2]);
    wait_state(&cluster, 1, "created", |s| full_isr(s) && s.2 == [1, 2]);
    let bs = cluster.bootstrap();
    let dir = cluster.node(1).log_dir().to_path_buf();
    let file = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let tool = |args: &[&str]| vltava_tests::vltava_tool("reassign-partitions", &bs, args);
    let load = Load::start(&bs);
    load.wait_progress(200, "before the moves");

    let topics = file(
        "topics.json",
        format!(r#"{{"version":1,"topics":[{{"topic":"{TOPIC}"}}]}}"#),
    );
    let generated = vltava_tests::stdout_ok(
        "generate",
        &tool(&[
            "--generate",
            "--topics-to-move-json-file",
            &topics,
            "--broker-list",
            "2,3",
        ]),
    );
    let lines: Vec<&str> = generated.lines().collect();
    assert_eq!(lines.len(), 5, "{generated}");
    assert_eq!(
        (lines[0], lines[1], lines[2], lines[3]),
        (
            "Current partition replica assignment",
            placement(TOPIC, &[1, 2]).as_str(),
            "",
            "Proposed partition reassignment configuration"
        )
    );
    let proposed: serde_json::Value = serde_json::from_str(lines[4]).unwrap();
    let mut replicas: Vec<i64> = proposed["partitions"][0]["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    replicas.sort_unstable();
    assert_eq!(replicas, [2, 3], "{generated}");

    let mut before = vec![1, 2];
    for (round, target) in [vec![2, 3], vec![2, 3, 1]].into_iter().enumerate() {
        let path = file(&format!("move-{round}.json"), placement(TOPIC, &target));
        assert_eq!(
            vltava_tests::stdout_ok("execute", &tool(&["--execute", "--reassignment-json-file", &path])),
            format!(
                "Current partition replica assignment\n\n{}\n\nSave this to use as the --reassignment-json-file option during rollback\nSuccessfully started partition reassignment for {TOPIC}-0\n",
                placement(TOPIC, &before)
            )
        );
        let started = Instant::now();
        loop {
            let out = vltava_tests::stdout_ok(
                "verify",
                &tool(&["--verify", "--reassignment-json-file", &path]),
            );
            let done = format!("Status of partition reassignment:\nReassignment of partition {TOPIC}-0 is completed.\n");
            if out == done {
                break;
            }
            assert_eq!(
                out,
                format!("Status of partition reassignment:\nReassignment of partition {TOPIC}-0 is still in progress.\n")
            );
            assert!(started.elapsed() < DEADLINE, "move {round} never completed");
            std::thread::sleep(Duration::from_millis(100));
        }
        let state = wait_state(&cluster, 3, "moved", |s| full_isr(s) && s.2 == target);
        assert!(target.contains(&state.0), "leader {state:?}");
        load.wait_progress(200, &format!("after move {round}"));
        before = target;
        if round == 0 {
            // The leaving replica removes its log.
            let gone = cluster.node(1).log_dir().join(format!("{TOPIC}-0"));
            let started = Instant::now();
            while gone.exists() {
                assert!(
                    started.elapsed() < DEADLINE,
                    "{} still there",
                    gone.display()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            wait_identical_logs(&cluster, &[2, 3]);
        }
    }
    let (acked, errors) = load.finish();
    assert!(errors.is_empty(), "producer errors: {errors:?}");
    check_acknowledged(&acked, &read_all(&bs));
    wait_identical_logs(&cluster, &[1, 2, 3]);
    assert_eq!(
        vltava_tests::stdout_ok("list", &tool(&["--list"])),
        "No partition reassignments found.\n"
    );

    // A move onto a stopped broker stays under way until cancelled.
    create_named(&cluster, "parked", &[1, 2], &[]);
    cluster.nodes[2].stop_sigterm();
    // Until the survivors have applied its fence, broker 3 is still listed.
    for via in [1, 2] {
        let dropped = vltava_tests::wait_until(DEADLINE, || {
            let resp = cluster
                .raw(via)
                .request(&MetadataRequest::default().with_topics(Some(vec![])), 12)
                .unwrap();
            resp.brokers.iter().all(|b| b.node_id.0 != 3)
        });
        assert!(dropped, "node {via} still lists broker 3");
    }
    let parked = file("parked.json", placement("parked", &[1, 3]));
    // The tool refuses brokers that are not live (as Kafka's does), so
    // this one is started with the request itself: the broker takes any
    // registered broker, and the move waits for it.
    let refused = tool(&["--execute", "--reassignment-json-file", &parked]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        vltava_tests::text(&refused.stderr).contains("Unknown broker id 3"),
        "{}",
        vltava_tests::text(&refused.stderr)
    );
    {
        use kafka_protocol::messages::alter_partition_reassignments_request::{
            ReassignablePartition, ReassignableTopic,
        };
        use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, BrokerId};
        let req = AlterPartitionReassignmentsRequest::default().with_topics(vec![
            ReassignableTopic::default()
                .with_name(vltava_tests::raw::topic_name("parked"))
                .with_partitions(vec![ReassignablePartition::default()
                    .with_partition_index(0)
                    .with_replicas(Some(vec![BrokerId(1), BrokerId(3)]))]),
        ]);
        let resp = RawClient::connect(cluster.node(1).addr())
            .unwrap()
            .request(&req, 0)
            .unwrap();
        assert_eq!(
            (resp.error_code, resp.responses[0].partitions[0].error_code),
            (0, 0),
            "{resp:?}"
        );
    }
    assert_eq!(
        vltava_tests::stdout_ok("list", &tool(&["--list"])),
        "Current partition reassignments:\nparked-0: replicas: 1,3,2. adding: 3. removing: 2.\n"
    );
    // A move under way is no under-replicated alert: the joining replica
    // is not yet part of the factor (2), on the console as in the metric.
    let (status, _, topics) = vltava_tests::http_get(&cluster.admin[0], "/topics").unwrap();
    assert_eq!(status, 200);
    assert!(
        topics.contains(
            "<td><a href=\"/topics/parked\">parked</a></td><td class=\"num\">1</td><td class=\"num\">2</td><td class=\"num\">0</td>"
        ),
        "{topics}"
    );
    assert_eq!(
        vltava_tests::stdout_ok("verify parked", &tool(&["--verify", "--reassignment-json-file", &parked])),
        "Status of partition reassignment:\nReassignment of partition parked-0 is still in progress.\n"
    );
    let again = tool(&["--execute", "--reassignment-json-file", &parked]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        vltava_tests::text(&again.stderr).contains(
            "Cannot execute because there is an existing partition assignment.  Use --additional"
        ),
        "{}",
        vltava_tests::text(&again.stderr)
    );
    // With --additional another one starts (here: dropping the stopped
    // broker's replica, which completes at once).
    let same = file("same.json", placement(TOPIC, &[2, 1]));
    let additional = tool(&[
        "--execute",
        "--additional",
        "--reassignment-json-file",
        &same,
    ]);
    assert!(
        vltava_tests::stdout_ok("additional", &additional).ends_with(&format!(
            "Successfully started partition reassignment for {TOPIC}-0\n"
        ))
    );
    assert_eq!(
        vltava_tests::stdout_ok("verify shrunk", &tool(&["--verify", "--reassignment-json-file", &same])),
        format!("Status of partition reassignment:\nReassignment of partition {TOPIC}-0 is completed.\n")
    );
    assert_eq!(
        vltava_tests::stdout_ok(
            "cancel",
            &tool(&["--cancel", "--reassignment-json-file", &parked])
        ),
        "Successfully cancelled partition reassignment for: parked-0\n"
    );
    assert_eq!(
        partition_state(&cluster, 1, "parked").map(|s| s.2),
        Some(vec![1, 2])
    );
    assert_eq!(
        vltava_tests::stdout_ok(
            "cancel again",
            &tool(&["--cancel", "--reassignment-json-file", &parked])
        ),
        "None of the specified partition reassignments are active.\n"
    );
    assert_eq!(
        vltava_tests::stdout_ok("verify cancelled", &tool(&["--verify", "--reassignment-json-file", &parked])),
        "Status of partition reassignment:\nThere is no active reassignment of partition parked-0, but replica set is 1,2 rather than 1,3.\n"
    );

    // The kafka-reassign-partitions.sh wrapper runs the same tool.
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut wrapper = std::process::Command::new(repo.join("bin/kafka-reassign-partitions.sh"));
    wrapper
        .args(["--bootstrap-server", &bs, "--list"])
        .env("VLTAVA_BIN", vltava_tests::vltava_bin())
        .env_remove("RUST_LOG");
    let out = vltava_tests::run_tool(wrapper, "", vltava_tests::TOOL_TIMEOUT);
    assert_eq!(
        vltava_tests::stdout_ok("kafka-reassign-partitions.sh", &out),
        "No partition reassignments found.\n"
    );

    let unknown = file("unknown.json", placement(TOPIC, &[1, 9]));
    for (args, error) in [
        (vec!["--execute", "--reassignment-json-file", unknown.as_str()], "Unknown broker id 9"),
        (vec!["--reassignment-json-file", unknown.as_str()], "Command must include exactly one action: --generate, --execute, --verify, --cancel, --list"),
        (vec!["--generate", "--topics-to-move-json-file", topics.as_str()], "Missing required argument \"[broker-list]\""),
        (vec!["--verify"], "Missing required argument \"[reassignment-json-file]\""),
        (vec!["--list", "--broker-list", "1"], "Option \"[broker-list]\" can't be used with action \"[list]\""),
    ] {
        let out = tool(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            vltava_tests::text(&out.stderr).contains(error),
            "{args:?}: {}",
            vltava_tests::text(&out.stderr)
        );
    }
}

/// A consumer Fetch of partition 0 from `offset` at `version` (by topic
/// name, so 11 or 12), naming `rack`, without waiting.
fn fetch_at(
    cluster: &Cluster,
    via: i32,
    version: i16,
    rack: &str,
    offset: i64,
) -> kafka_protocol::messages::fetch_response::PartitionData {
    fetch_waiting(cluster, via, version, rack, offset, 0)
}

/// [`fetch_at`], waiting up to `max_wait_ms` for a byte.
fn fetch_waiting(
    cluster: &Cluster,
    via: i32,
    version: i16,
    rack: &str,
    offset: i64,
    max_wait_ms: i32,
) -> kafka_protocol::messages::fetch_response::PartitionData {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{BrokerId, FetchRequest};
    let mut req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(i32::from(max_wait_ms > 0))
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(vltava_tests::raw::topic_name(TOPIC))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    if version >= 11 {
        req = req.with_rack_id(rack.to_string().into());
    }
    let resp = cluster.raw(via).request(&req, version).unwrap();
    resp.responses[0].partitions[0].clone()
}

/// The values of the records in a fetch answer.
fn values_of(data: &kafka_protocol::messages::fetch_response::PartitionData) -> Vec<String> {
    let records = data.records.clone().unwrap_or_default();
    vltava_tests::raw::decode_batches(&records)
        .iter()
        .flat_map(|set| set.records.iter())
        .map(|r| String::from_utf8(r.value.clone().unwrap_or_default().to_vec()).unwrap())
        .collect()
}

/// librdkafka statistics, kept for the test to read.
#[derive(Default)]
struct StatsKeeper(Mutex<Option<rdkafka::Statistics>>);

impl rdkafka::ClientContext for StatsKeeper {
    fn stats(&self, statistics: rdkafka::Statistics) {
        *self.0.lock().unwrap() = Some(statistics);
    }
}

impl rdkafka::consumer::ConsumerContext for StatsKeeper {}

/// Fetch from follower (KIP-392). The cluster harness puts nodes 1 and 3
/// in rack-0 and node 2 in rack-1, and `replica.selector.class` is the
/// rack-aware selector. The leader (node 1) sends a Fetch v11+ naming
/// rack-1 to node 2 (`preferred_read_replica`, no records), serves rack-0
/// and rack-less consumers itself; the follower serves a v11+ consumer up
/// to its high watermark and refuses v10 (NOT_LEADER_OR_FOLLOWER, as
/// Kafka). librdkafka with `client.rack=rack-1` reads every record, in
/// order, from node 2. With `replica.fetch.wait.max.ms` at a minute, a
/// consumer parked on the follower still gets a new record at once: the
/// leader answers the follower's parked fetch when the record commits.
#[test]
fn a_consumer_reads_from_an_in_sync_replica_in_its_rack() {
    let mut overrides = FAST_FENCING.to_vec();
    overrides.push((
        "replica.selector.class",
        "org.apache.kafka.common.replica.RackAwareReplicaSelector",
    ));
    overrides.push(("replica.fetch.wait.max.ms", "60000"));
    let cluster = Cluster::start_with(3, &overrides);
    create_topic(&cluster, &[1, 2, 3]);
    wait_state(&cluster, 2, "created", |s| full_isr(s) && s.0 == 1);
    let mut leader = cluster.raw(1);
    let resp = leader
        .produce(TOPIC, 0, plain(&["a", "b", "c"]), -1)
        .unwrap();
    assert_eq!(resp.error_code, 0);

    for version in [11, 12] {
        // Until every follower has fetched past the data, the leader has
        // no in-sync replica to send the consumer to.
        let started = Instant::now();
        let sent = loop {
            let data = fetch_at(&cluster, 1, version, "rack-1", 0);
            if data.preferred_read_replica.0 >= 0 {
                break data;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "never sent elsewhere: {data:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(
            (
                sent.error_code,
                sent.preferred_read_replica.0,
                sent.high_watermark
            ),
            (0, 2, 3)
        );
        assert!(values_of(&sent).is_empty());
        for rack in ["rack-0", ""] {
            let here = fetch_at(&cluster, 1, version, rack, 0);
            assert_eq!((here.error_code, here.preferred_read_replica.0), (0, -1));
            assert_eq!(values_of(&here), ["a", "b", "c"], "rack {rack:?}");
        }
        let started = Instant::now();
        let follower = loop {
            let data = fetch_at(&cluster, 2, version, "rack-1", 0);
            if data.high_watermark == 3 {
                break data;
            }
            assert!(started.elapsed() < DEADLINE, "follower: {data:?}");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(
            (follower.error_code, follower.preferred_read_replica.0),
            (0, -1)
        );
        assert_eq!(values_of(&follower), ["a", "b", "c"]);
    }
    assert_eq!(
        fetch_at(&cluster, 2, 10, "", 0).error_code,
        ResponseError::NotLeaderOrFollower.code()
    );

    let consumer: rdkafka::consumer::BaseConsumer<StatsKeeper> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("group.id", "vltava-tests-unused")
        .set("enable.auto.commit", "false")
        .set("client.rack", "rack-1")
        .set("statistics.interval.ms", "100")
        .create_with_context(StatsKeeper::default())
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let started = Instant::now();
    while got.len() < 3 {
        assert!(started.elapsed() < DEADLINE, "read {got:?}");
        if let Some(msg) = consumer.poll(Duration::from_millis(100)) {
            let msg = msg.expect("consume");
            got.push((
                msg.offset(),
                String::from_utf8(msg.payload().unwrap_or_default().to_vec()).unwrap(),
            ));
        }
    }
    assert_eq!(
        got,
        [
            (0, "a".to_string()),
            (1, "b".to_string()),
            (2, "c".to_string())
        ]
    );
    // librdkafka's own account: it fetches partition 0 from broker 2
    // while broker 1 leads it.
    let started = Instant::now();
    loop {
        let _ = consumer.poll(Duration::from_millis(100));
        let fetched_from = consumer
            .context()
            .0
            .lock()
            .unwrap()
            .as_ref()
            .and_then(|s| s.topics.get(TOPIC).and_then(|t| t.partitions.get(&0)))
            .map(|p| (p.broker, p.leader));
        if fetched_from == Some((2, 1)) {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "librdkafka fetches from (broker, leader) {fetched_from:?}"
        );
    }
    // The follower has the record at once (its fetch waits on the log
    // end); that it is committed it learns only from its leader, whose
    // answer would otherwise wait out replica.fetch.wait.max.ms.
    assert_eq!(
        leader
            .produce(TOPIC, 0, plain(&["d"]), -1)
            .unwrap()
            .error_code,
        0
    );
    let late = fetch_waiting(&cluster, 2, 12, "rack-1", 3, 20_000);
    assert_eq!((late.error_code, late.high_watermark), (0, 4));
    assert_eq!(values_of(&late), ["d"]);
}

/// The vltava tools (vltava-client) across a failover. An idempotent
/// `verifiable-producer` (acks=-1) writes 3,000 records while the leader is
/// SIGKILLed, and a `console-consumer` started before the kill reads them:
/// the producer reports no error and every record acknowledged once, the
/// consumer prints exactly the acknowledged values in offset order, and
/// `get-offsets` agrees once the old leader is back.
#[test]
fn the_tools_keep_working_across_a_leader_failover() {
    let mut cluster = Cluster::start_with(3, FAST_FENCING);
    create_topic(&cluster, &[1, 2, 3]);
    wait_state(&cluster, 2, "created", |s| full_isr(s) && s.0 == 1);
    let bs = cluster.bootstrap();
    let props = cluster.node(2).log_dir().join("producer.properties");
    std::fs::write(&props, "enable.idempotence=true\nretries=300\n").unwrap();
    let producer = {
        let (bs, props) = (bs.clone(), props.display().to_string());
        std::thread::spawn(move || {
            vltava_tests::vltava_tool(
                "verifiable-producer",
                &bs,
                &[
                    "--topic",
                    TOPIC,
                    "--max-messages",
                    "3000",
                    "--throughput",
                    "1000",
                    "--acks",
                    "-1",
                    "--producer.config",
                    &props,
                ],
            )
        })
    };
    let consumer = {
        let bs = bs.clone();
        std::thread::spawn(move || {
            vltava_tests::vltava_tool(
                "console-consumer",
                &bs,
                &[
                    "--topic",
                    TOPIC,
                    "--from-beginning",
                    "--max-messages",
                    "3000",
                    "--timeout-ms",
                    "30000",
                ],
            )
        })
    };
    let started = Instant::now();
    loop {
        let end = cluster
            .raw(1)
            .list_offset(TOPIC, 0, vltava_tests::raw::LATEST_TIMESTAMP)
            .unwrap()
            .offset;
        if end >= 600 {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "only {end} written");
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.nodes[0].kill_sigkill();
    wait_state(&cluster, 2, "failed over", |s| s.0 > 1);

    let produced = vltava_tests::stdout_ok("verifiable-producer", &producer.join().unwrap());
    let mut acked: BTreeMap<i64, String> = BTreeMap::new();
    let mut summary = None;
    for line in produced.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        match event["name"].as_str().unwrap() {
            "producer_send_success" => {
                let offset = event["offset"].as_i64().unwrap();
                let value = event["value"].as_str().unwrap().to_string();
                assert!(
                    acked.insert(offset, value).is_none(),
                    "offset {offset} twice"
                );
            }
            "tool_data" => summary = Some((event["sent"].clone(), event["acked"].clone())),
            "producer_send_error" => panic!("send failed: {line}"),
            _ => {}
        }
    }
    assert_eq!(summary, Some((3000.into(), 3000.into())));
    let expected: Vec<String> = (0..3000).map(|i| i.to_string()).collect();
    let mut values: Vec<String> = acked.values().cloned().collect();
    values.sort_by_key(|v| v.parse::<u32>().unwrap());
    assert_eq!(values, expected, "each value acknowledged once");
    assert_eq!(
        acked.keys().copied().collect::<Vec<_>>(),
        (0..3000).collect::<Vec<i64>>(),
        "acknowledged offsets"
    );

    let consumed = vltava_tests::stdout_ok("console-consumer", &consumer.join().unwrap());
    let read: Vec<&str> = consumed.lines().collect();
    let in_offset_order: Vec<&str> = acked.values().map(String::as_str).collect();
    assert_eq!(read, in_offset_order);

    cluster.nodes[0].restart();
    wait_state(&cluster, 2, "back in sync", full_isr);
    assert_eq!(
        vltava_tests::stdout_ok(
            "get-offsets",
            &vltava_tests::vltava_tool("get-offsets", &bs, &["--topic", TOPIC])
        ),
        format!("{TOPIC}:0:3000\n")
    );
}

/// Produces sent back to back on one connection (as librdkafka pipelines
/// them) are appended while earlier ones still wait for their followers,
/// and answered in order: 40 acks=all produces get consecutive offsets in
/// send order, and a Fetch sent after them on the same connection is
/// answered after them and sees all 40 records, as one request at a time
/// would show it.
#[test]
fn pipelined_produces_are_answered_in_order_before_a_later_fetch() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{BrokerId, FetchRequest, ProduceRequest};
    let cluster = Cluster::start_with(3, FAST_FENCING);
    create_topic(&cluster, &[1, 2, 3]);
    wait_state(&cluster, 2, "created", |s| full_isr(s) && s.0 == 1);
    let mut client = cluster.raw(1);
    let mut sent = Vec::new();
    for i in 0..40 {
        let value = format!("p{i:02}");
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(vltava_tests::raw::topic_name(TOPIC))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(plain(&[value.as_str()])))])]);
        sent.push(client.send(&req, 9).unwrap());
    }
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(vltava_tests::raw::topic_name(TOPIC))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])]);
    let fetch_id = client.send(&fetch, 12).unwrap();
    for (i, correlation_id) in sent.into_iter().enumerate() {
        let resp = client.receive::<ProduceRequest>(9, correlation_id).unwrap();
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (0, i as i64), "produce {i}");
    }
    let fetched = client.receive::<FetchRequest>(12, fetch_id).unwrap();
    let data = &fetched.responses[0].partitions[0];
    assert_eq!((data.error_code, data.high_watermark), (0, 40));
    let expected: Vec<String> = (0..40).map(|i| format!("p{i:02}")).collect();
    assert_eq!(values_of(data), expected);
}
