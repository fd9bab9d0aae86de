//! Dynamic broker configs (issue 12, item 9) on a real broker through
//! `vltava configs --entity-type brokers`: cluster-wide and per-broker
//! values, Kafka's precedence and sources in DescribeConfigs, the effect on
//! topics without a restart (a smaller `message.max.bytes` refuses a batch
//! at once), persistence across a restart, and Kafka's errors for static,
//! unknown and invalid keys.

use std::process::Output;

use kafka_protocol::records::Compression;
use vltava_tests::raw::{encode_batch, ProducerStamp, RawClient, TestRecord};
use vltava_tests::{now_ms, stdout_ok, text, vltava_tool, TestBroker};

const MESSAGE_TOO_LARGE: i16 = 10;
/// The cluster-wide broker entity.
const DEFAULT: &[&str] = &["--entity-default"];
/// The one broker's own entity.
const BROKER_1: &[&str] = &["--entity-name", "1"];

fn configs(bs: &str, args: &[&str]) -> Output {
    vltava_tool("configs", bs, args)
}

fn ok(bs: &str, args: &[&str]) -> String {
    stdout_ok(args, &configs(bs, args))
}

/// `--entity-type brokers <entity> --alter <op> <kv>`; returns stdout.
fn alter(bs: &str, entity: &[&str], op: &str, kv: &str) -> String {
    let mut args = vec!["--entity-type", "brokers"];
    args.extend_from_slice(entity);
    args.extend(["--alter", op, kv]);
    ok(bs, &args)
}

/// The `--describe --all` line of one topic config.
fn topic_line(bs: &str, topic: &str, key: &str) -> String {
    let all = ok(
        bs,
        &[
            "--entity-type",
            "topics",
            "--entity-name",
            topic,
            "--describe",
            "--all",
        ],
    );
    all.lines()
        .find(|l| l.starts_with(&format!("  {key}=")))
        .unwrap_or_else(|| panic!("{key} in {all}"))
        .to_string()
}

/// Produces one record of `value_bytes` to `dyn`; returns the error code.
fn produce(c: &mut RawClient, value_bytes: usize) -> i16 {
    let record = TestRecord::value_at(&vec![b'x'; value_bytes], now_ms());
    let batch = encode_batch(&[record], ProducerStamp::NONE, Compression::None);
    c.produce("dyn", 0, batch, -1).unwrap().error_code
}

#[test]
fn cluster_and_broker_values_apply_at_once_and_survive_a_restart() {
    let mut broker = TestBroker::start(&[("log.retention.ms", "86400000")]);
    let bs = broker.bootstrap();
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(c.create_topic_code("dyn", 1).unwrap(), 0);
    let topics = ["--entity-type", "topics", "--entity-name", "pinned"];
    let create = [
        "--create",
        "--topic",
        "pinned",
        "--config",
        "retention.ms=5000",
    ];
    stdout_ok(create, &vltava_tool("topics", &bs, &create));
    assert_eq!(
        topic_line(&bs, "dyn", "retention.ms"),
        "  retention.ms=86400000 sensitive=false synonyms={STATIC_BROKER_CONFIG:log.retention.ms=86400000, DEFAULT_CONFIG:log.retention.ms=604800000}"
    );

    // Cluster-wide.
    assert_eq!(
        alter(
            &bs,
            DEFAULT,
            "--add-config",
            "log.retention.ms=3600000,log.cleaner.backoff.ms=500"
        ),
        "Completed updating default config for brokers in the cluster.\n"
    );
    assert_eq!(
        ok(&bs, &["--entity-type", "brokers", "--entity-default", "--describe"]),
        "Default configs for brokers in the cluster are:\n\
         \x20 log.cleaner.backoff.ms=500 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:log.cleaner.backoff.ms=500}\n\
         \x20 log.retention.ms=3600000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=3600000}\n"
    );
    assert_eq!(
        topic_line(&bs, "dyn", "retention.ms"),
        "  retention.ms=3600000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=3600000, STATIC_BROKER_CONFIG:log.retention.ms=86400000, DEFAULT_CONFIG:log.retention.ms=604800000}"
    );
    // A topic's own override still wins.
    let mut pinned = topics.to_vec();
    pinned.extend(["--describe"]);
    assert!(ok(&bs, &pinned).contains("  retention.ms=5000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=5000, DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=3600000"));

    // Per broker, given as a time synonym: stored as log.retention.ms.
    assert_eq!(
        alter(&bs, BROKER_1, "--add-config", "log.retention.hours=2"),
        "Completed updating config for broker 1.\n"
    );
    assert_eq!(
        ok(&bs, &["--entity-type", "brokers", "--entity-name", "1", "--describe"]),
        "Dynamic configs for broker 1 are:\n\
         \x20 log.retention.ms=7200000 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:log.retention.ms=7200000, DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=3600000, STATIC_BROKER_CONFIG:log.retention.ms=86400000, DEFAULT_CONFIG:log.retention.ms=604800000}\n"
    );
    assert!(topic_line(&bs, "dyn", "retention.ms").starts_with("  retention.ms=7200000 "));
    // A synonym set over the stored ms key replaces it.
    alter(&bs, BROKER_1, "--add-config", "log.retention.hours=3");
    assert!(topic_line(&bs, "dyn", "retention.ms").starts_with("  retention.ms=10800000 "));
    alter(&bs, BROKER_1, "--add-config", "log.retention.hours=2");

    // Applied without a restart: a smaller message.max.bytes refuses a
    // batch at once; removing it accepts the same batch again.
    assert_eq!(produce(&mut c, 1_000), 0);
    alter(&bs, DEFAULT, "--add-config", "message.max.bytes=200");
    assert_eq!(produce(&mut c, 1_000), MESSAGE_TOO_LARGE);
    assert_eq!(produce(&mut c, 10), 0);
    alter(&bs, DEFAULT, "--delete-config", "message.max.bytes");
    assert_eq!(produce(&mut c, 1_000), 0);

    // Kept in the metadata log: the same after a restart.
    broker.stop_sigterm();
    broker.restart();
    let bs = broker.bootstrap();
    assert!(topic_line(&bs, "dyn", "retention.ms")
        .starts_with("  retention.ms=7200000 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:"));
    alter(&bs, BROKER_1, "--delete-config", "log.retention.ms");
    assert!(topic_line(&bs, "dyn", "retention.ms").starts_with(
        "  retention.ms=3600000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:"
    ));
}

#[test]
fn static_unknown_and_invalid_keys_are_refused_as_kafka_does() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    let cases = [
        (
            &["--entity-default", "--add-config", "listeners=PLAINTEXT://127.0.0.1:1"][..],
            "org.apache.kafka.common.errors.InvalidRequestException: Cannot update these configs dynamically: Set(listeners)",
        ),
        (
            &["--entity-default", "--add-config", "no.such.config=1"][..],
            "org.apache.kafka.common.errors.InvalidConfigurationException: Unknown broker config: no.such.config",
        ),
        (
            &["--entity-name", "1", "--add-config", "log.retention.ms=soon"][..],
            "org.apache.kafka.common.errors.InvalidConfigurationException: Invalid value soon for configuration log.retention.ms: not a number",
        ),
        // A broker's own configs go to that broker, which must exist.
        (
            &["--entity-name", "7", "--add-config", "log.retention.ms=1000"][..],
            "org.apache.kafka.common.KafkaException: broker 7 is not in the cluster metadata",
        ),
    ];
    for (args, message) in cases {
        let mut all = vec!["--entity-type", "brokers", "--alter"];
        all.extend_from_slice(args);
        let out = configs(&bs, &all);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().nth(1), Some(message), "{stderr}");
    }
    // Nothing was stored.
    assert_eq!(
        ok(
            &bs,
            &["--entity-type", "brokers", "--entity-default", "--describe"]
        ),
        "Default configs for brokers in the cluster are:\n"
    );
}
