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
use vltava_tests::raw::{topic_name, RawClient, TestRecord};
use vltava_tests::{free_port, TestBroker};

/// How long any condition in these tests may take to come true.
const DEADLINE: Duration = Duration::from_secs(60);

struct Cluster {
    /// Node `i + 1` at index `i`.
    nodes: Vec<TestBroker>,
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let voters = ports
            .iter()
            .enumerate()
            .map(|(i, (_, c))| format!("{}@127.0.0.1:{c}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes: Vec<TestBroker> = ports
            .iter()
            .enumerate()
            .map(|(i, (port, controller))| {
                let id = (i + 1).to_string();
                let listeners =
                    format!("PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}");
                TestBroker::launch_at(
                    *port,
                    &[
                        ("node.id", &id),
                        ("process.roles", "broker,controller"),
                        ("listeners", &listeners),
                        ("controller.listener.names", "CONTROLLER"),
                        (
                            "listener.security.protocol.map",
                            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                        ),
                        ("controller.quorum.voters", &voters),
                        ("broker.rack", &format!("rack-{}", i % 2)),
                    ],
                )
            })
            .collect();
        for node in &mut nodes {
            node.wait_started();
        }
        Cluster { nodes }
    }

    fn node(&self, id: i32) -> &TestBroker {
        &self.nodes[(id - 1) as usize]
    }

    fn raw(&self, id: i32) -> RawClient {
        RawClient::connect(self.node(id).addr()).unwrap()
    }
}

/// What one node's Metadata v12 says: the brokers (id, port, rack), the
/// controller, and each topic's partitions as (leader, epoch, replicas).
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    brokers: Vec<(i32, i32, Option<String>)>,
    controller: i32,
    topics: BTreeMap<String, Vec<(i32, i32, Vec<i32>)>>,
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
                        assert_eq!(p.error_code, 0, "{p:?}");
                        (
                            p.leader_id.0,
                            p.leader_epoch,
                            p.replica_nodes.iter().map(|r| r.0).collect(),
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
    loop {
        let code = RawClient::connect(cluster.node(via).addr())
            .and_then(|mut c| c.create_topic_code(name, partitions));
        match code {
            Ok(0) => return,
            // NOT_CONTROLLER, REQUEST_TIMED_OUT: retriable.
            Ok(41 | 7) | Err(_) if started.elapsed() < DEADLINE => {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => panic!("creating {name} through node {via}: {other:?}"),
        }
    }
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
        for (leader, epoch, replicas) in partitions {
            assert_eq!((*epoch, replicas.as_slice()), (0, [*leader].as_slice()));
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
fn the_controller_is_killed_and_another_voter_takes_over() {
    let mut cluster = Cluster::start(3);
    create_through(&cluster, 1, "before", 3);
    let view = agreed_view(&cluster, &[1, 2, 3], &["before"]);
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
    assert_eq!(caught_up.topics["before"], view.topics["before"]);
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
