//! librdkafka round trip, once per compression codec: 10,000 keyed messages
//! with headers and explicit timestamps go in through a FutureProducer and
//! come back through an assigned consumer byte for byte, at exactly the
//! (partition, offset) the delivery reports named.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::{admin, assert_dense, consume_all, create_topic, producer, Seen};
use rdkafka::message::{Header, OwnedHeaders, Timestamp};
use rdkafka::producer::FutureRecord;
use vltava_tests::{now_ms, TestBroker};

const MESSAGES: usize = 10_000;
const KEYS: usize = 500;
const PARTITIONS: i32 = 3;

async fn roundtrip(codec: &str) {
    let broker = TestBroker::start(&[]);
    let topic = format!("roundtrip-{codec}");
    create_topic(&admin(&broker.bootstrap()), &topic, PARTITIONS).await;

    let producer = producer(
        &broker.bootstrap(),
        &[
            ("compression.type", codec),
            ("linger.ms", "5"),
            ("batch.num.messages", "1000"),
            ("acks", "all"),
        ],
    );
    let base_ts = now_ms() - 60_000;
    let mut expected: Vec<Seen> = Vec::with_capacity(MESSAGES);
    let mut pending = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES {
        let key = format!("k{}", i % KEYS);
        // Compressible but unique values of varying length.
        let value = format!("{codec}-value-{i:05}-{}", "abcdefgh".repeat(i % 20));
        let ts = base_ts + i as i64;
        let i_str = i.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "i",
                value: Some(&i_str),
            })
            .insert(Header {
                key: "codec",
                value: Some(codec),
            })
            .insert(Header {
                key: "null-header",
                value: None::<&str>,
            });
        expected.push(Seen {
            key: Some(key.clone().into_bytes()),
            value: Some(value.clone().into_bytes()),
            headers: vec![
                ("i".into(), Some(i_str.clone().into_bytes())),
                ("codec".into(), Some(codec.as_bytes().to_vec())),
                ("null-header".into(), None),
            ],
            timestamp: Timestamp::CreateTime(ts),
        });
        let record = FutureRecord::to(&topic)
            .key(&key)
            .payload(&value)
            .timestamp(ts)
            .headers(headers);
        let fut = producer
            .send_result(record)
            .map_err(|(e, _)| e)
            .expect("enqueue message");
        pending.push(fut);
    }

    // Delivery reports name the (partition, offset) of every message.
    let mut by_position: BTreeMap<(i32, i64), Seen> = BTreeMap::new();
    let mut key_partition: HashMap<Vec<u8>, i32> = HashMap::new();
    for (i, fut) in pending.into_iter().enumerate() {
        let delivery = fut
            .await
            .expect("delivery future dropped")
            .unwrap_or_else(|(e, _)| panic!("{codec}: message {i} failed: {e}"));
        assert!((0..PARTITIONS).contains(&delivery.partition));
        assert!(delivery.offset >= 0);
        let key = expected[i].key.clone().unwrap();
        let p = *key_partition.entry(key).or_insert(delivery.partition);
        assert_eq!(
            p,
            delivery.partition,
            "{codec}: key k{} went to two partitions",
            i % KEYS
        );
        let prev = by_position.insert((delivery.partition, delivery.offset), expected[i].clone());
        assert!(
            prev.is_none(),
            "{codec}: two messages delivered at ({}, {})",
            delivery.partition,
            delivery.offset
        );
    }
    assert_eq!(key_partition.len(), KEYS);
    assert_eq!(by_position.len(), MESSAGES);
    assert_dense(&topic, &by_position);

    let consumed = consume_all(&broker.bootstrap(), &topic, PARTITIONS, MESSAGES);
    assert_eq!(consumed.len(), MESSAGES);
    for (pos, want) in &by_position {
        let got = consumed
            .get(pos)
            .unwrap_or_else(|| panic!("{codec}: nothing consumed at {pos:?}"));
        assert_eq!(got, want, "{codec}: message at {pos:?} differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundtrip_none() {
    roundtrip("none").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundtrip_gzip() {
    roundtrip("gzip").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundtrip_snappy() {
    roundtrip("snappy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundtrip_lz4() {
    roundtrip("lz4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundtrip_zstd() {
    roundtrip("zstd").await;
}
