//! Acknowledged data and topic configuration survive a clean restart
//! (SIGTERM, exit 0) and a hard kill (SIGKILL): the same messages at the same
//! (partition, offset), and new writes continue after the old log end.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{admin, admin_options, assert_dense, consume_all, create_topic, producer, Seen};
use rdkafka::admin::{AlterConfig, ConfigSource, ResourceSpecifier};
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, OwnedHeaders, Timestamp};
use rdkafka::producer::FutureRecord;
use vltava_tests::{now_ms, wait_until, TestBroker};

const MESSAGES: usize = 3_000;
const PARTITIONS: i32 = 3;
const TOPIC: &str = "durable";

async fn produce(broker: &TestBroker, from: usize, count: usize) -> BTreeMap<(i32, i64), Seen> {
    let producer = producer(
        &broker.bootstrap(),
        &[
            ("acks", "all"),
            ("linger.ms", "5"),
            ("compression.type", "lz4"),
        ],
    );
    let base_ts = now_ms() - 10_000;
    let mut pending = Vec::new();
    for i in from..from + count {
        let key = format!("key-{}", i % 101);
        let value = format!("value-{i}-{}", "z".repeat(i % 50));
        let ts = base_ts + i as i64;
        let i_str = i.to_string();
        let seen = Seen {
            key: Some(key.clone().into_bytes()),
            value: Some(value.clone().into_bytes()),
            headers: vec![("n".into(), Some(i_str.clone().into_bytes()))],
            timestamp: Timestamp::CreateTime(ts),
        };
        let record = FutureRecord::to(TOPIC)
            .key(&key)
            .payload(&value)
            .timestamp(ts)
            .headers(OwnedHeaders::new().insert(Header {
                key: "n",
                value: Some(&i_str),
            }));
        let fut = producer
            .send_result(record)
            .map_err(|(e, _)| e)
            .expect("enqueue");
        pending.push((seen, fut));
    }
    let mut out = BTreeMap::new();
    for (seen, fut) in pending {
        let d = fut
            .await
            .expect("delivery future")
            .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
        assert!(out.insert((d.partition, d.offset), seen).is_none());
    }
    out
}

async fn retention_ms(broker: &TestBroker) -> (Option<String>, ConfigSource) {
    let admin = admin(&broker.bootstrap());
    let res = admin
        .describe_configs([&ResourceSpecifier::Topic(TOPIC)], &admin_options())
        .await
        .unwrap();
    let mut res = res.into_iter().next().unwrap().expect("describe configs");
    let idx = res
        .entries
        .iter()
        .position(|e| e.name == "retention.ms")
        .expect("retention.ms described");
    let e = res.entries.swap_remove(idx);
    (e.value, e.source)
}

fn assert_same(label: &str, want: &BTreeMap<(i32, i64), Seen>, got: &BTreeMap<(i32, i64), Seen>) {
    assert_eq!(got.len(), want.len(), "{label}: message count");
    for (pos, w) in want {
        assert_eq!(got.get(pos), Some(w), "{label}: message at {pos:?}");
    }
}

fn log_ends(broker: &TestBroker) -> Vec<(i64, i64)> {
    let c = common::consumer(&broker.bootstrap(), &[]);
    (0..PARTITIONS)
        .map(|p| {
            c.fetch_watermarks(TOPIC, p, Duration::from_secs(10))
                .unwrap()
        })
        .collect()
}

/// The watermarks reach exactly `want` (a restarted leader may take a moment
/// to advance its high watermark to the recovered log end).
fn assert_watermarks(broker: &TestBroker, want: &[(i64, i64)], label: &str) {
    let mut last = Vec::new();
    let reached = wait_until(Duration::from_secs(10), || {
        last = log_ends(broker);
        last == want
    });
    assert!(reached, "{label}: watermarks {last:?}, expected {want:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_and_config_survive_sigterm_and_sigkill() {
    let mut broker = TestBroker::start(&[]);
    create_topic(&admin(&broker.bootstrap()), TOPIC, PARTITIONS).await;
    let alter = AlterConfig::new(ResourceSpecifier::Topic(TOPIC)).set("retention.ms", "86400000");
    let res = admin(&broker.bootstrap())
        .alter_configs([&alter], &admin_options())
        .await
        .unwrap();
    assert!(res[0].is_ok(), "alter configs: {:?}", res[0]);

    let mut expected = produce(&broker, 0, MESSAGES).await;
    assert_eq!(expected.len(), MESSAGES);
    assert_dense(TOPIC, &expected);
    let ends_before = log_ends(&broker);
    assert_eq!(
        ends_before.iter().map(|(_, hi)| hi).sum::<i64>(),
        MESSAGES as i64
    );
    assert!(
        ends_before.iter().all(|(_, hi)| *hi > 0),
        "a partition got no data: {ends_before:?}"
    );

    // Clean shutdown.
    broker.stop_sigterm();
    broker.restart();
    assert_watermarks(&broker, &ends_before, "after SIGTERM restart");
    let got = consume_all(&broker.bootstrap(), TOPIC, PARTITIONS, MESSAGES);
    assert_same("after SIGTERM restart", &expected, &got);
    assert_eq!(
        retention_ms(&broker).await,
        (Some("86400000".to_string()), ConfigSource::DynamicTopic),
        "topic config after SIGTERM restart"
    );

    // More writes continue after the old log end offsets.
    let more = produce(&broker, MESSAGES, 300).await;
    for &(p, o) in more.keys() {
        assert!(
            o >= ends_before[p as usize].1,
            "offset ({p}, {o}) reused after restart"
        );
    }
    expected.extend(more);
    assert_dense(TOPIC, &expected);
    let ends_before_kill = log_ends(&broker);

    // Hard kill: everything acknowledged is in the page cache and survives.
    broker.kill_sigkill();
    broker.restart();
    assert_watermarks(&broker, &ends_before_kill, "after SIGKILL restart");
    let got = consume_all(&broker.bootstrap(), TOPIC, PARTITIONS, expected.len());
    assert_same("after SIGKILL restart", &expected, &got);
    assert_eq!(
        retention_ms(&broker).await,
        (Some("86400000".to_string()), ConfigSource::DynamicTopic),
        "topic config after SIGKILL restart"
    );

    // And once more cleanly, to see recovery left a usable log.
    let more = produce(&broker, MESSAGES + 300, 30).await;
    expected.extend(more);
    assert_dense(TOPIC, &expected);
    broker.stop_sigterm();
    broker.restart();
    let got = consume_all(&broker.bootstrap(), TOPIC, PARTITIONS, expected.len());
    assert_same("after the final restart", &expected, &got);
    broker.stop_sigterm();
}

/// The broker's log after the `n`th start (1-based).
fn start_log(broker: &TestBroker, n: usize) -> String {
    let log = broker.stderr_log();
    let marker = format!("===== vltava-tests: start #{n} =====");
    let from = log.find(&marker).expect("that start is in the log");
    let rest = &log[from + marker.len()..];
    rest.split("===== vltava-tests: start #")
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn recovery_is_reported_at_info_and_knows_a_clean_stop_from_a_crash() {
    use vltava_tests::raw::{encode_batch, ProducerStamp, RawClient, TestRecord};
    let mut broker = TestBroker::start(&[]);
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(c.create_topic_code("rec", 1).unwrap(), 0);
    let record = TestRecord {
        key: None,
        value: Some(bytes::Bytes::from_static(b"v")),
        // Recent, or retention would delete it at the restart.
        timestamp_ms: now_ms(),
        headers: Vec::new(),
    };
    let batch = encode_batch(
        &[record],
        ProducerStamp::NONE,
        kafka_protocol::records::Compression::None,
    );
    let batch_bytes = batch.len();
    assert_eq!(c.produce("rec", 0, batch, -1).unwrap().error_code, 0);

    broker.stop_sigterm();
    broker.restart();
    let second = start_log(&broker, 2);
    assert!(
        second.contains(&format!(
            "logs opened after a clean shutdown partitions=1 segments=1 scanned_bytes={batch_bytes} scanned_batches=1 truncated_partitions=0 truncated_bytes=0 rebuilt_indexes=0 removed_files=0"
        )),
        "{second}"
    );
    assert!(!second.contains("partition repaired on open"), "{second}");

    // A crash, and a torn write after the last batch.
    broker.kill_sigkill();
    let segment = broker.log_dir().join("rec-0/00000000000000000000.log");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend_from_slice(b"torn!!!");
    std::fs::write(&segment, bytes).unwrap();
    broker.restart();
    let third = start_log(&broker, 3);
    assert!(
        third.contains(&format!(
            "partition repaired on open topic=rec partition=0 scanned_bytes={batch_bytes} scanned_batches=1 truncated_bytes=7 rebuilt_indexes=0 removed_files=0"
        )),
        "{third}"
    );
    assert!(
        third.contains(&format!(
            "logs recovered after an unclean shutdown partitions=1 segments=1 scanned_bytes={batch_bytes} scanned_batches=1 truncated_partitions=1 truncated_bytes=7 rebuilt_indexes=0 removed_files=0"
        )),
        "{third}"
    );
    broker.assert_running();
}
