//! Three `vltava server` processes on loopback ports, each a voter of one
//! metadata quorum (Kafka's `controller.quorum.voters` settings): topics
//! created through any node are committed by the active controller and
//! served by every node; partitions are spread over all three, and every
//! node's Metadata agrees on leaders and epochs; librdkafka produces and
//! consumes (in a group) through any one bootstrap node and reaches the
//! right leaders; a node asked for a partition it does not lead says
//! NOT_LEADER_OR_FOLLOWER. Then the controller is SIGKILLed: another voter
//! takes over, topics keep being created, and the killed node catches up
//! when it comes back. A node whose data directory belongs to another
//! cluster refuses to join. Every wait is on a condition with a deadline.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{admin, admin_options, producer};
use kafka_protocol::messages::{DescribeQuorumRequest, MetadataRequest};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::ClientConfig;
use vltava_tests::cluster::Cluster;
use vltava_tests::raw::{topic_name, RawClient, TestRecord};

/// How long any condition in these tests may take to come true.
const DEADLINE: Duration = Duration::from_secs(60);

/// What one node's Metadata v12 says: the brokers (id, port, rack), the
/// controller, and each topic's partitions as (leader, epoch, replicas,
/// error code).
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    brokers: Vec<(i32, i32, Option<String>)>,
    controller: i32,
    topics: BTreeMap<String, Vec<PartitionView>>,
}

/// (leader, leader epoch, replicas, error code).
type PartitionView = (i32, i32, Vec<i32>, i16);

/// `after` serves each partition as `before` did (same leader, replicas and
/// error), at a leader epoch no lower: a leader that went away and came
/// back leads at a newer epoch (KIP-320's fencing of what it led before).
fn assert_same_leaders(after: &[PartitionView], before: &[PartitionView]) {
    let placement = |v: &[PartitionView]| -> Vec<(i32, Vec<i32>, i16)> {
        v.iter().map(|p| (p.0, p.2.clone(), p.3)).collect()
    };
    assert_eq!(placement(after), placement(before));
    for (a, b) in after.iter().zip(before) {
        assert!(
            a.1 >= b.1,
            "leader epoch went back: {after:?} after {before:?}"
        );
    }
}

fn view(client: &mut RawClient) -> View {
    let resp = client
        .request(&MetadataRequest::default().with_topics(None), 12)
        .unwrap();
    View {
        brokers: resp
            .brokers
            .iter()
            .map(|b| (b.node_id.0, b.port, b.rack.as_ref().map(|r| r.to_string())))
            .collect(),
        controller: resp.controller_id.0,
        topics: resp
            .topics
            .iter()
            .map(|t| {
                assert_eq!(t.error_code, 0, "{t:?}");
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        (
                            p.leader_id.0,
                            p.leader_epoch,
                            p.replica_nodes.iter().map(|r| r.0).collect(),
                            p.error_code,
                        )
                    })
                    .collect();
                (t.name.as_ref().unwrap().to_string(), partitions)
            })
            .collect(),
    }
}

/// Waits until every node in `ids` answers Metadata with the same view, in
/// which every topic of `topics` exists; returns it.
fn agreed_view(cluster: &Cluster, ids: &[i32], topics: &[&str]) -> View {
    let started = Instant::now();
    loop {
        let views: Vec<View> = ids
            .iter()
            .filter_map(|id| RawClient::connect(cluster.node(*id).addr()).ok())
            .map(|mut c| view(&mut c))
            .collect();
        let agreed = views.len() == ids.len()
            && views.iter().all(|v| *v == views[0])
            && topics.iter().all(|t| views[0].topics.contains_key(*t));
        if agreed {
            return views[0].clone();
        }
        assert!(
            started.elapsed() < DEADLINE,
            "nodes {ids:?} did not agree on metadata with {topics:?}: {views:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The quorum's leader as node `id` reports it (DescribeQuorum v2).
fn quorum_leader(cluster: &Cluster, id: i32) -> Option<i32> {
    let mut client = RawClient::connect(cluster.node(id).addr()).ok()?;
    let req = DescribeQuorumRequest::default().with_topics(vec![
        kafka_protocol::messages::describe_quorum_request::TopicData::default()
            .with_topic_name(topic_name("__cluster_metadata"))
            .with_partitions(vec![
                kafka_protocol::messages::describe_quorum_request::PartitionData::default(),
            ]),
    ]);
    let resp = client.request(&req, 2).ok()?;
    let leader = resp.topics.first()?.partitions.first()?.leader_id.0;
    (leader >= 0).then_some(leader)
}

/// Creates `name` through node `via` with raw CreateTopics, retrying the
/// retriable answers (an election under way) until the deadline.
fn create_through(cluster: &Cluster, via: i32, name: &str, partitions: i32) {
    let started = Instant::now();
    let mut retried = false;
    loop {
        let code = RawClient::connect(cluster.node(via).addr())
            .and_then(|mut c| c.create_topic_code(name, partitions));
        match code {
            Ok(0) => return,
            // An earlier attempt whose answer was lost (an election) may
            // have committed: TOPIC_ALREADY_EXISTS then means done.
            Ok(36) if retried => return,
            // NOT_CONTROLLER, REQUEST_TIMED_OUT: retriable.
            Ok(41 | 7) | Err(_) if started.elapsed() < DEADLINE => {
                retried = true;
                std::thread::sleep(Duration::from_millis(100));
            }
            other => panic!("creating {name} through node {via}: {other:?}"),
        }
    }
}

/// The coordinator FindCoordinator (v3, one key) names for `group` at
/// node `via`.
fn coordinator(cluster: &Cluster, via: i32, group: &str) -> i32 {
    let req = kafka_protocol::messages::FindCoordinatorRequest::default().with_key(
        kafka_protocol::protocol::StrBytes::from_string(group.to_string()),
    );
    let resp = cluster.raw(via).request(&req, 3).unwrap();
    assert_eq!(resp.error_code, 0, "{resp:?}");
    resp.node_id.0
}

#[test]
fn three_voters_share_topics_spread_partitions_and_serve_clients_through_any_node() {
    let cluster = Cluster::start(3);
    // Through each node in turn: followers hand the change to the leader.
    for via in 1..=3 {
        create_through(&cluster, via, &format!("via-{via}"), 6);
    }
    let view = agreed_view(&cluster, &[1, 2, 3], &["via-1", "via-2", "via-3"]);
    assert_eq!(
        view.brokers.iter().map(|b| b.0).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // Every broker is registered with its own port and rack.
    for (id, port, rack) in &view.brokers {
        assert_eq!(*port, i32::from(cluster.node(*id).port()));
        assert_eq!(
            rack.as_deref(),
            Some(format!("rack-{}", (id - 1) % 2).as_str())
        );
    }
    assert_eq!(quorum_leader(&cluster, 1), Some(view.controller));
    // Six partitions over three brokers: two each, each on its one replica.
    for via in 1..=3 {
        let partitions = &view.topics[&format!("via-{via}")];
        let mut per_broker: BTreeMap<i32, usize> = BTreeMap::new();
        for (leader, epoch, replicas, error) in partitions {
            assert_eq!(
                (*epoch, replicas.as_slice(), *error),
                (0, [*leader].as_slice(), 0)
            );
            *per_broker.entry(*leader).or_default() += 1;
        }
        assert_eq!(per_broker, BTreeMap::from([(1, 2), (2, 2), (3, 2)]));
    }

    // A node asked to write a partition another node leads sends the
    // client away; the leader takes it.
    let partitions = &view.topics["via-1"];
    let (p, (leader, ..)) = partitions.iter().enumerate().next().unwrap();
    let other = (1..=3).find(|id| id != leader).unwrap();
    let batch = vltava_tests::raw::encode_batch(
        &[TestRecord::kv("k", "v")],
        vltava_tests::raw::ProducerStamp::NONE,
        kafka_protocol::records::Compression::None,
    );
    let resp = cluster
        .raw(other)
        .produce("via-1", p as i32, batch, -1)
        .unwrap();
    assert_eq!(resp.error_code, 6, "NOT_LEADER_OR_FOLLOWER: {resp:?}");
    cluster
        .raw(*leader)
        .produce_ok("via-1", p as i32, &[TestRecord::kv("k", "v")]);

    // With acks=0 there is no answer to carry NOT_LEADER_OR_FOLLOWER: the
    // node closes the connection, so the client looks the leader up again.
    let batch = vltava_tests::raw::encode_batch(
        &[TestRecord::kv("k", "v")],
        vltava_tests::raw::ProducerStamp::NONE,
        kafka_protocol::records::Compression::None,
    );
    let mut silent = cluster.raw(other);
    let req = kafka_protocol::messages::ProduceRequest::default()
        .with_acks(0)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            kafka_protocol::messages::produce_request::TopicProduceData::default()
                .with_name(topic_name("via-1"))
                .with_partition_data(vec![
                    kafka_protocol::messages::produce_request::PartitionProduceData::default()
                        .with_index(p as i32)
                        .with_records(Some(batch)),
                ]),
        ]);
    silent.send(&req, 9).unwrap();
    assert!(silent.closed_within(Duration::from_secs(10)));

    // librdkafka with one bootstrap node reaches every leader.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let topic = "clients";
    runtime.block_on(async {
        let admin = admin(&cluster.node(2).bootstrap());
        let results = admin
            .create_topics(
                [&NewTopic::new(topic, 6, TopicReplication::Fixed(1))],
                &admin_options(),
            )
            .await
            .unwrap();
        assert_eq!(results, [Ok(topic.to_string())]);
    });
    let view = agreed_view(&cluster, &[1, 2, 3], &[topic]);
    let leaders: BTreeSet<i32> = view.topics[topic].iter().map(|p| p.0).collect();
    assert_eq!(leaders, BTreeSet::from([1, 2, 3]));
    let producer = producer(&cluster.node(3).bootstrap(), &[("acks", "all")]);
    let mut sent: BTreeMap<(i32, i64), (String, String)> = BTreeMap::new();
    runtime.block_on(async {
        for i in 0..120 {
            let (key, value) = (format!("key-{i}"), format!("value-{i}"));
            let delivery = producer
                .send(
                    FutureRecord::to(topic).key(&key).payload(&value),
                    Duration::from_secs(30),
                )
                .await
                .unwrap_or_else(|(e, _)| panic!("delivery of {key}: {e}"));
            sent.insert((delivery.partition, delivery.offset), (key, value));
        }
    });
    let partitions_written: BTreeSet<i32> = sent.keys().map(|(p, _)| *p).collect();
    assert!(partitions_written.len() > 1, "{partitions_written:?}");
    // A group consumer bootstrapped from node 1: its coordinator is the
    // leader of the group's __consumer_offsets partition, wherever it is.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.node(1).bootstrap())
        .set("group.id", "cluster-readers")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut read: BTreeMap<(i32, i64), (String, String)> = BTreeMap::new();
    let started = Instant::now();
    while read.len() < sent.len() {
        assert!(
            started.elapsed() < DEADLINE,
            "read {} of {} messages",
            read.len(),
            sent.len()
        );
        if let Some(msg) = consumer.poll(Duration::from_millis(200)) {
            let msg = msg.unwrap();
            let key = String::from_utf8(msg.key().unwrap().to_vec()).unwrap();
            let value = String::from_utf8(msg.payload().unwrap().to_vec()).unwrap();
            assert!(read
                .insert((msg.partition(), msg.offset()), (key, value))
                .is_none());
        }
    }
    assert_eq!(read, sent);
    consumer
        .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        .unwrap();
    // Every node names the same coordinator for the group; the others
    // answer its requests NOT_COORDINATOR.
    let coordinating = coordinator(&cluster, 1, "cluster-readers");
    for via in 2..=3 {
        assert_eq!(coordinator(&cluster, via, "cluster-readers"), coordinating);
    }
    for id in (1..=3).filter(|id| *id != coordinating) {
        let req = kafka_protocol::messages::OffsetFetchRequest::default()
            .with_group_id(kafka_protocol::messages::GroupId(
                kafka_protocol::protocol::StrBytes::from_static_str("cluster-readers"),
            ))
            .with_topics(None);
        let resp = cluster.raw(id).request(&req, 7).unwrap();
        assert_eq!(
            resp.error_code, 16,
            "NOT_COORDINATOR from node {id}: {resp:?}"
        );
    }
    // The group's coordinator stored the positions: the offset after the
    // last message of every partition written to.
    let committed: BTreeMap<i32, i64> = consumer
        .committed(Duration::from_secs(30))
        .unwrap()
        .elements()
        .iter()
        .filter_map(|e| Some((e.partition(), e.offset().to_raw()?)))
        .filter(|(_, offset)| *offset >= 0)
        .collect();
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o) in sent.keys() {
        ends.insert(*p, o + 1);
    }
    assert_eq!(committed, ends);
}

#[test]
fn the_same_topic_created_through_every_node_at_once_is_created_once() {
    let cluster = Cluster::start(3);
    for round in 0..5 {
        let name = format!("contested-{round}");
        let barrier = std::sync::Barrier::new(3);
        let clients: Vec<RawClient> = (1..=3).map(|via| cluster.raw(via)).collect();
        let codes: Vec<i16> = std::thread::scope(|scope| {
            let racers: Vec<_> = clients
                .into_iter()
                .map(|mut client| {
                    let (barrier, name) = (&barrier, &name);
                    scope.spawn(move || {
                        barrier.wait();
                        client.create_topic_code(name, 2).unwrap()
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        // One success; the others TOPIC_ALREADY_EXISTS.
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 36, 36], "{name}: {codes:?}");
        let view = agreed_view(&cluster, &[1, 2, 3], &[&name]);
        assert_eq!(view.topics[&name].len(), 2);
    }
}

#[test]
fn the_controller_is_killed_and_another_voter_takes_over() {
    let mut cluster = Cluster::start(3);
    create_through(&cluster, 1, "before", 3);
    let view = agreed_view(&cluster, &[1, 2, 3], &["before"]);
    // One record in each partition, on each broker, before the kill.
    for (p, (leader, ..)) in view.topics["before"].iter().enumerate() {
        cluster.raw(*leader).produce_ok(
            "before",
            p as i32,
            &[TestRecord::kv("k", &format!("v{p}"))],
        );
    }
    let controller = view.controller;
    let survivors: Vec<i32> = (1..=3).filter(|id| *id != controller).collect();
    cluster.nodes[(controller - 1) as usize].kill_sigkill();
    // The survivors elect one of themselves and keep taking changes.
    let started = Instant::now();
    while !survivors
        .iter()
        .all(|id| quorum_leader(&cluster, *id).is_some_and(|l| survivors.contains(&l)))
    {
        assert!(
            started.elapsed() < DEADLINE,
            "no new controller was elected"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for (i, via) in survivors.iter().enumerate() {
        create_through(&cluster, *via, &format!("after-{i}"), 2);
    }
    let after = agreed_view(&cluster, &survivors, &["before", "after-0", "after-1"]);
    assert_ne!(after.controller, controller);
    assert!(survivors.contains(&after.controller));
    // The killed node comes back from its own log and catches up.
    cluster.nodes[(controller - 1) as usize].restart();
    let caught_up = agreed_view(&cluster, &[1, 2, 3], &["before", "after-0", "after-1"]);
    assert_same_leaders(&caught_up.topics["before"], &view.topics["before"]);
    // Every record survived, on the restarted node too.
    for (p, (leader, ..)) in view.topics["before"].iter().enumerate() {
        let data = cluster.raw(*leader).fetch("before", p as i32, 0).unwrap();
        assert_eq!(data.error_code, 0, "partition {p}");
        let records: Vec<(i64, Vec<u8>, Vec<u8>)> =
            vltava_tests::raw::decode_batches(&data.records.unwrap())
                .iter()
                .flat_map(|set| set.records.iter())
                .map(|r| {
                    (
                        r.offset,
                        r.key.as_ref().unwrap().to_vec(),
                        r.value.as_ref().unwrap().to_vec(),
                    )
                })
                .collect();
        assert_eq!(
            records,
            vec![(0, b"k".to_vec(), format!("v{p}").into_bytes())],
            "partition {p}"
        );
    }
    // And the cluster still takes changes through it.
    create_through(&cluster, controller, "after-restart", 1);
    agreed_view(&cluster, &[1, 2, 3], &["after-restart"]);
}

#[test]
fn a_node_whose_data_belongs_to_another_cluster_is_refused() {
    let mut cluster = Cluster::start(3);
    create_through(&cluster, 1, "t", 1);
    agreed_view(&cluster, &[1, 2, 3], &["t"]);
    let node = &mut cluster.nodes[2];
    node.stop_sigterm();
    let meta = node.log_dir().join("meta.properties");
    let text = std::fs::read_to_string(&meta).unwrap();
    let cluster_id = text
        .lines()
        .find_map(|l| l.strip_prefix("cluster.id="))
        .unwrap()
        .to_string();
    std::fs::write(&meta, text.replace(&cluster_id, "AnotherClusterIdAAAAAA")).unwrap();
    let status = node.restart_expecting_exit(DEADLINE);
    assert!(!status.success());
    let log = node.stderr_log();
    assert!(
        log.contains(&format!(
            "INCONSISTENT_CLUSTER_ID: {} belongs to cluster AnotherClusterIdAAAAAA, but the metadata quorum's cluster is {cluster_id}",
            meta.display()
        )),
        "{log}"
    );
    // The rest go on.
    create_through(&cluster, 1, "still", 1);
    agreed_view(&cluster, &[1, 2], &["still"]);
}

/// (id, fenced) of every broker DescribeCluster v2 at node `via` lists when
/// asked for fenced ones too.
fn described_with_fenced(cluster: &Cluster, via: i32) -> Vec<(i32, bool)> {
    let req = kafka_protocol::messages::DescribeClusterRequest::default()
        .with_include_fenced_brokers(true);
    let resp = cluster.raw(via).request(&req, 2).unwrap();
    resp.brokers
        .iter()
        .map(|b| (b.broker_id.0, b.is_fenced))
        .collect()
}

/// Every broker id a node's Metadata lists.
fn listed(cluster: &Cluster, id: i32) -> Vec<i32> {
    view(&mut cluster.raw(id))
        .brokers
        .iter()
        .map(|b| b.0)
        .collect()
}

fn wait_listed(cluster: &Cluster, ids: &[i32], want: &[i32]) {
    let started = Instant::now();
    while !ids.iter().all(|id| listed(cluster, *id) == want) {
        assert!(
            started.elapsed() < DEADLINE,
            "nodes {ids:?} did not come to list brokers {want:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_silent_broker_is_fenced_unregistered_and_comes_back() {
    let cluster = Cluster::start_with(
        3,
        &[
            ("broker.heartbeat.interval.ms", "400"),
            ("broker.session.timeout.ms", "4000"),
        ],
    );
    create_through(&cluster, 1, "spread", 3);
    let view = agreed_view(&cluster, &[1, 2, 3], &["spread"]);
    wait_listed(&cluster, &[1, 2, 3], &[1, 2, 3]);
    // A broker that is not the controller goes silent: paused, as a long
    // GC pause or a hung disk would leave it.
    let victim = (1..=3).find(|id| *id != view.controller).unwrap();
    let survivors: Vec<i32> = (1..=3).filter(|id| *id != victim).collect();
    let paused = cluster.node(victim).pid().unwrap().to_string();
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &paused])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    wait_listed(&cluster, &survivors, &survivors);
    // Its partition has no leader now; the others are served as before.
    let fenced_view = view_of(&cluster, survivors[0]);
    for (p, (leader, _, replicas, error)) in fenced_view.topics["spread"].iter().enumerate() {
        let was = view.topics["spread"][p].0;
        if was == victim {
            assert_eq!(
                (*leader, *error),
                (-1, 5),
                "LEADER_NOT_AVAILABLE for partition {p}"
            );
            assert_eq!(replicas, &[victim]);
        } else {
            assert_eq!((*leader, *error), (was, 0));
        }
    }
    // DescribeCluster v2 lists it as fenced when asked, and `vltava
    // cluster` says so.
    let want: Vec<(i32, bool)> = (1..=3).map(|id| (id, id == victim)).collect();
    assert_eq!(described_with_fenced(&cluster, survivors[0]), want);
    let shown = vltava_tests::stdout_ok(
        "vltava cluster",
        &vltava_tests::vltava_tool("cluster", &cluster.node(survivors[0]).bootstrap(), &[]),
    );
    let fenced_port = cluster.node(victim).port();
    assert!(
        shown.ends_with(&format!(
            "Fenced brokers:\n  {victim} 127.0.0.1:{fenced_port} rack: rack-{}\n",
            (victim - 1) % 2
        )),
        "{shown}"
    );
    // It wakes up: heard from again, it is unfenced; paused again, fenced
    // again.
    signal("-CONT");
    wait_listed(&cluster, &[1, 2, 3], &[1, 2, 3]);
    signal("-STOP");
    wait_listed(&cluster, &survivors, &survivors);
    // New partitions go to the brokers that are alive.
    create_through(&cluster, survivors[0], "after-fence", 4);
    let after = agreed_view(&cluster, &survivors, &["after-fence"]);
    assert!(after.topics["after-fence"]
        .iter()
        .all(|p| survivors.contains(&p.0)));
    // Taken out for good: unregistered, it is no longer described at all.
    let bs = cluster.node(survivors[1]).bootstrap();
    let out =
        vltava_tests::vltava_tool("cluster", &bs, &["unregister", "--id", &victim.to_string()]);
    assert_eq!(
        vltava_tests::stdout_ok("unregister", &out),
        format!("Broker {victim} is no longer registered.\n")
    );
    let alive: Vec<(i32, bool)> = survivors.iter().map(|id| (*id, false)).collect();
    assert_eq!(described_with_fenced(&cluster, survivors[0]), alive);
    // It wakes up: finding itself unregistered, it registers again and is
    // listed again, serving what it served.
    signal("-CONT");
    wait_listed(&cluster, &[1, 2, 3], &[1, 2, 3]);
    // The others can list it as soon as its registration commits, a moment
    // before its own log says why it registered: wait for the line.
    assert!(
        vltava_tests::wait_until(Duration::from_secs(10), || cluster
            .node(victim)
            .stderr_log()
            .contains("registered again: this broker's registration had been removed")),
        "{}",
        cluster.node(victim).stderr_log()
    );
    assert_same_leaders(
        &agreed_view(&cluster, &[1, 2, 3], &["spread"]).topics["spread"],
        &view.topics["spread"],
    );
}

#[test]
fn a_broker_stopped_with_sigterm_is_fenced_at_once() {
    // A session far longer than the wait below: only the controlled
    // shutdown can take the broker out of Metadata in time.
    let mut cluster = Cluster::start_with(
        3,
        &[
            ("broker.session.timeout.ms", "600000"),
            ("broker.heartbeat.interval.ms", "200"),
        ],
    );
    wait_listed(&cluster, &[1, 2, 3], &[1, 2, 3]);
    let controller = view_of(&cluster, 1).controller;
    let stopping = (1..=3).find(|id| *id != controller).unwrap();
    let survivors: Vec<i32> = (1..=3).filter(|id| *id != stopping).collect();
    cluster.nodes[(stopping - 1) as usize].stop_sigterm();
    let log = cluster.node(stopping).stderr_log();
    assert!(
        log.contains("controlled shutdown: this broker is fenced"),
        "{log}"
    );
    wait_listed(&cluster, &survivors, &survivors);
}

fn view_of(cluster: &Cluster, id: i32) -> View {
    view(&mut cluster.raw(id))
}

#[test]
fn a_minority_left_alone_refuses_changes_until_the_majority_is_back() {
    let mut cluster = Cluster::start(3);
    create_through(&cluster, 1, "before", 1);
    agreed_view(&cluster, &[1, 2, 3], &["before"]);
    cluster.nodes[1].kill_sigkill();
    cluster.nodes[2].kill_sigkill();
    // Node 1 alone: its change is refused with a retriable error
    // (REQUEST_TIMED_OUT, or NOT_CONTROLLER once it knows no leader),
    // after the broker's retries, and nothing is committed.
    let started = Instant::now();
    let mut client = cluster.raw(1);
    client.stream().set_read_timeout(Some(DEADLINE)).unwrap();
    let code = client.create_topic_code("alone", 1).unwrap();
    assert!(matches!(code, 7 | 41), "error code {code}");
    assert!(started.elapsed() < DEADLINE);
    // The majority is back: the same change goes through, and all three
    // agree on it.
    cluster.nodes[1].restart();
    create_through(&cluster, 1, "alone", 1);
    cluster.nodes[2].restart();
    let view = agreed_view(&cluster, &[1, 2, 3], &["before", "alone"]);
    assert_eq!(view.topics["alone"].len(), 1);
}

#[test]
fn a_broker_only_node_joins_follows_the_metadata_and_receives_partitions() {
    let mut cluster = Cluster::start(3);
    create_through(&cluster, 1, "before", 3);
    agreed_view(&cluster, &[1, 2, 3], &["before"]);
    let fourth = cluster.add_broker_only();
    // It has every committed topic, every node lists it, and it takes
    // changes like any other node.
    wait_listed(&cluster, &[1, 2, 3, fourth], &[1, 2, 3, fourth]);
    create_through(&cluster, fourth, "after", 8);
    let view = agreed_view(&cluster, &[1, 2, 3, fourth], &["before", "after"]);
    // New partitions are spread over all four: two each.
    let mut per_broker: BTreeMap<i32, usize> = BTreeMap::new();
    for p in &view.topics["after"] {
        *per_broker.entry(p.0).or_default() += 1;
    }
    assert_eq!(
        per_broker,
        BTreeMap::from([(1, 2), (2, 2), (3, 2), (fourth, 2)])
    );
    // It serves its own partitions: produce and read back through it.
    let (p, _) = view.topics["after"]
        .iter()
        .enumerate()
        .find(|(_, p)| p.0 == fourth)
        .unwrap();
    cluster.raw(fourth).produce_ok(
        "after",
        p as i32,
        &[TestRecord::kv("k", "on-the-broker-only-node")],
    );
    let data = cluster.raw(fourth).fetch("after", p as i32, 0).unwrap();
    let values: Vec<Vec<u8>> = vltava_tests::raw::decode_batches(&data.records.unwrap())
        .iter()
        .flat_map(|set| set.records.iter())
        .map(|r| r.value.as_ref().unwrap().to_vec())
        .collect();
    assert_eq!(values, vec![b"on-the-broker-only-node".to_vec()]);
    // The leader lists it as an observer of the metadata quorum, asked
    // through the broker-only node itself.
    let req = DescribeQuorumRequest::default().with_topics(vec![
        kafka_protocol::messages::describe_quorum_request::TopicData::default()
            .with_topic_name(topic_name("__cluster_metadata"))
            .with_partitions(vec![
                kafka_protocol::messages::describe_quorum_request::PartitionData::default(),
            ]),
    ]);
    let started = Instant::now();
    loop {
        let resp = cluster.raw(fourth).request(&req, 2).unwrap();
        let partition = &resp.topics[0].partitions[0];
        let voters: Vec<i32> = partition
            .current_voters
            .iter()
            .map(|v| v.replica_id.0)
            .collect();
        let observers: Vec<i32> = partition.observers.iter().map(|o| o.replica_id.0).collect();
        if partition.error_code == 0 && voters == [1, 2, 3] && observers == [fourth] {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "{resp:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Restarted, it starts again from the leader's image.
    cluster.nodes[(fourth - 1) as usize].stop_sigterm();
    cluster.nodes[(fourth - 1) as usize].restart();
    wait_listed(&cluster, &[1, 2, 3, fourth], &[1, 2, 3, fourth]);
    let again = agreed_view(&cluster, &[1, 2, 3, fourth], &["before", "after"]);
    assert_eq!(
        again.topics.keys().collect::<Vec<_>>(),
        view.topics.keys().collect::<Vec<_>>()
    );
    for (name, partitions) in &view.topics {
        assert_same_leaders(&again.topics[name], partitions);
    }
}

/// `vltava configs` through node `via`, asserting exit 0; returns stdout.
fn configs(cluster: &Cluster, via: i32, args: &[&str]) -> String {
    let bs = cluster.node(via).bootstrap();
    vltava_tests::stdout_ok(args, &vltava_tests::vltava_tool("configs", &bs, args))
}

#[test]
fn dynamic_broker_configs_go_through_the_controller_to_every_broker() {
    let cluster = Cluster::start(3);
    // Cluster-wide, set through node 1: every node describes it.
    assert_eq!(
        configs(
            &cluster,
            1,
            &[
                "--entity-type",
                "brokers",
                "--entity-default",
                "--alter",
                "--add-config",
                "log.retention.ms=3600000"
            ]
        ),
        "Completed updating default config for brokers in the cluster.\n"
    );
    // For broker 2 only, set with node 3 as bootstrap (the tool sends it
    // to broker 2, as Kafka's admin client does).
    assert_eq!(
        configs(
            &cluster,
            3,
            &[
                "--entity-type",
                "brokers",
                "--entity-name",
                "2",
                "--alter",
                "--add-config",
                "log.retention.ms=7200000"
            ]
        ),
        "Completed updating config for broker 2.\n"
    );
    let started = Instant::now();
    loop {
        let seen: Vec<String> = (1..=3)
            .map(|via| {
                configs(
                    &cluster,
                    via,
                    &["--entity-type", "brokers", "--entity-default", "--describe"],
                )
            })
            .collect();
        let want = "Default configs for brokers in the cluster are:\n  log.retention.ms=3600000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=3600000}\n";
        if seen.iter().all(|s| s == want) {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "{seen:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        configs(&cluster, 1, &["--entity-type", "brokers", "--entity-name", "2", "--describe"]),
        "Dynamic configs for broker 2 are:\n  log.retention.ms=7200000 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:log.retention.ms=7200000, DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=3600000, DEFAULT_CONFIG:log.retention.ms=604800000}\n"
    );
    assert_eq!(
        configs(
            &cluster,
            2,
            &[
                "--entity-type",
                "brokers",
                "--entity-name",
                "3",
                "--describe"
            ]
        ),
        "Dynamic configs for broker 3 are:\n"
    );
}
