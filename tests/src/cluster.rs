//! A cluster of `vltava server` processes on loopback ports for the
//! integration tests: `n` combined voters of one metadata quorum (Kafka's
//! `controller.quorum.voters`), optionally joined by broker-only nodes.

use std::time::{Duration, Instant};

use kafka_protocol::messages::MetadataRequest;

use crate::raw::RawClient;
use crate::{free_port, TestBroker};

/// How long a created topic's brokers may take to be listed.
const DEADLINE: Duration = Duration::from_secs(90);

/// Node `i + 1` of a cluster at index `i`.
pub struct Cluster {
    /// Node `i + 1` at index `i`.
    pub nodes: Vec<TestBroker>,
    /// `controller.quorum.voters`.
    pub voters: String,
    /// Each voter's admin server, HOST:PORT (`/metrics`, `/ready`).
    pub admin: Vec<String>,
    /// Each voter's schema registry, HOST:PORT.
    pub registry: Vec<String>,
    /// Each voter's REST proxy, HOST:PORT.
    pub rest: Vec<String>,
}

impl Cluster {
    pub fn start(n: usize) -> Cluster {
        Cluster::start_with(n, &[])
    }

    /// `n` voters with `extra` overrides on each.
    pub fn start_with(n: usize, extra: &[(&str, &str)]) -> Cluster {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let admin: Vec<String> = (0..n)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let registry: Vec<String> = (0..n)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let rest: Vec<String> = (0..n)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
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
                let rack = format!("rack-{}", i % 2);
                let admin_listeners = format!("http://{}", admin[i]);
                let registry_listeners = format!("http://{}", registry[i]);
                let rest_listeners = format!("http://{}", rest[i]);
                let mut overrides = vec![
                    ("admin.listeners", admin_listeners.as_str()),
                    ("schema.registry.listeners", registry_listeners.as_str()),
                    ("rest.proxy.listeners", rest_listeners.as_str()),
                    ("node.id", id.as_str()),
                    ("process.roles", "broker,controller"),
                    ("listeners", listeners.as_str()),
                    ("controller.listener.names", "CONTROLLER"),
                    (
                        "listener.security.protocol.map",
                        "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    ),
                    ("controller.quorum.voters", voters.as_str()),
                    ("broker.rack", rack.as_str()),
                ];
                overrides.extend_from_slice(extra);
                TestBroker::launch_at(*port, &overrides)
            })
            .collect();
        for node in &mut nodes {
            node.wait_started();
        }
        Cluster {
            nodes,
            voters,
            admin,
            registry,
            rest,
        }
    }

    /// Creates topic `name` with one partition on `replicas`, through node
    /// 1 once it lists every one of them.
    pub fn create_topic_on(&self, name: &str, replicas: &[i32], configs: &[(&str, &str)]) {
        // Node 1 must know every replica's registration (broker-only nodes
        // register through the controller, and node 1 applies it a moment
        // later).
        let started = Instant::now();
        loop {
            let mut client = RawClient::connect(self.node(1).addr()).unwrap();
            let resp = client
                .request(&MetadataRequest::default().with_topics(Some(vec![])), 12)
                .unwrap();
            let listed: Vec<i32> = resp.brokers.iter().map(|b| b.node_id.0).collect();
            if replicas.iter().all(|id| listed.contains(id)) {
                break;
            }
            assert!(started.elapsed() < DEADLINE, "brokers listed: {listed:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut admin = RawClient::connect(self.node(1).addr()).unwrap();
        let req = kafka_protocol::messages::CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![
                kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                    .with_name(crate::raw::topic_name(name))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
                    .with_assignments(vec![
                        kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment::default()
                            .with_partition_index(0)
                            .with_broker_ids(
                                replicas
                                    .iter()
                                    .map(|id| kafka_protocol::messages::BrokerId(*id))
                                    .collect(),
                            ),
                    ])
                    .with_configs(
                        configs
                            .iter()
                            .map(|(k, v)| {
                                kafka_protocol::messages::create_topics_request::CreatableTopicConfig::default()
                                    .with_name(k.to_string().into())
                                    .with_value(Some(v.to_string().into()))
                            })
                            .collect(),
                    ),
            ]);
        let resp = admin.request(&req, 7).unwrap();
        assert_eq!(resp.topics[0].error_code, 0, "{resp:?}");
    }

    /// Starts node `nodes.len() + 1` as a broker-only node (not a voter).
    pub fn add_broker_only(&mut self) -> i32 {
        self.add_broker_only_with(&[])
    }

    /// [`Cluster::add_broker_only`] with `extra` overrides.
    pub fn add_broker_only_with(&mut self, extra: &[(&str, &str)]) -> i32 {
        let id = self.nodes.len() as i32 + 1;
        let port = free_port();
        let id_text = id.to_string();
        let listeners = format!("PLAINTEXT://127.0.0.1:{port}");
        let mut overrides = vec![
            ("node.id", id_text.as_str()),
            ("process.roles", "broker"),
            ("listeners", listeners.as_str()),
            ("controller.listener.names", "CONTROLLER"),
            ("controller.quorum.voters", self.voters.as_str()),
        ];
        overrides.extend_from_slice(extra);
        let node = TestBroker::start_at(port, &overrides);
        self.nodes.push(node);
        id
    }

    /// Every node's bootstrap address, comma-separated.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.bootstrap())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn node(&self, id: i32) -> &TestBroker {
        &self.nodes[(id - 1) as usize]
    }

    pub fn raw(&self, id: i32) -> RawClient {
        RawClient::connect(self.node(id).addr()).unwrap()
    }
}
