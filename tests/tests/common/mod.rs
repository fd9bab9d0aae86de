//! rdkafka helpers shared by the integration tests that use librdkafka.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, Timestamp};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};

/// A record as the tests compare it, keyed elsewhere by (partition, offset).
#[derive(Clone, PartialEq, Eq)]
pub struct Seen {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Timestamp,
}

/// Shows bytes as (lossy) text so a failed comparison is readable.
impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text =
            |b: &Option<Vec<u8>>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
        f.debug_struct("Seen")
            .field("key", &text(&self.key))
            .field("value", &text(&self.value))
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(k, v)| (k, text(v)))
                    .collect::<Vec<_>>(),
            )
            .field("timestamp", &self.timestamp)
            .finish()
    }
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

pub fn admin_options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)))
}

/// Creates a topic and asserts success.
pub async fn create_topic(admin: &AdminClient<DefaultClientContext>, name: &str, partitions: i32) {
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics([&topic], &admin_options())
        .await
        .expect("CreateTopics request");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0], Ok(name.to_string()), "create topic {name}");
}

/// A producer with the given extra settings.
pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "30000");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("producer")
}

/// A consumer that is only ever assigned partitions (no group protocol).
pub fn consumer(bootstrap: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        // Required by librdkafka's config; no group API is used with assign().
        .set("group.id", "vltava-tests-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("consumer")
}

pub fn seen_of<M: Message>(msg: &M) -> Seen {
    let headers = msg
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default();
    Seen {
        key: msg.key().map(<[u8]>::to_vec),
        value: msg.payload().map(<[u8]>::to_vec),
        headers,
        timestamp: msg.timestamp(),
    }
}

/// Assigns every partition of `topic` from the beginning and reads exactly
/// `expected` messages, then checks that nothing more arrives for a moment.
pub fn consume_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
) -> BTreeMap<(i32, i64), Seen> {
    let consumer = consumer(bootstrap, &[]);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < expected {
        assert!(
            Instant::now() < deadline,
            "{topic}: consumed {} of {expected} messages within 60 s",
            out.len()
        );
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let msg = msg.unwrap_or_else(|e| panic!("{topic}: consume error {e}"));
        assert_eq!(msg.topic(), topic);
        let prev = out.insert((msg.partition(), msg.offset()), seen_of(&msg));
        assert!(
            prev.is_none(),
            "{topic}: ({}, {}) consumed twice",
            msg.partition(),
            msg.offset()
        );
    }
    // Nothing beyond what was produced.
    let quiet_until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < quiet_until {
        if let Some(msg) = consumer.poll(Duration::from_millis(100)) {
            let msg = msg.expect("consume");
            panic!(
                "{topic}: unexpected extra message at ({}, {})",
                msg.partition(),
                msg.offset()
            );
        }
    }
    out
}

/// Offsets within each partition are exactly 0..n.
pub fn assert_dense(topic: &str, map: &BTreeMap<(i32, i64), Seen>) {
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for &(p, o) in map.keys() {
        let n = next.entry(p).or_insert(0);
        assert_eq!(
            o, *n,
            "{topic}: partition {p} has a gap or does not start at 0"
        );
        *n += 1;
    }
}
