//! Dynamic broker configs (issue 12, item 9) on a real broker through
//! `vltava configs --entity-type brokers`: cluster-wide and per-broker
//! values, Kafka's precedence and sources in DescribeConfigs, the effect on
//! topics without a restart (a smaller `message.max.bytes` refuses a batch
//! at once), persistence across a restart, and Kafka's errors for static,
//! unknown and invalid keys.

use std::process::{Command, Output};

use bytes::Bytes;
use kafka_protocol::records::Compression;
use vltava_tests::raw::{encode_batch, ProducerStamp, RawClient, TestRecord};
use vltava_tests::{run_tool, vltava_bin, TestBroker, TOOL_TIMEOUT};

const MESSAGE_TOO_LARGE: i16 = 10;

fn configs(bs: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(vltava_bin());
    cmd.args(["configs", "--bootstrap-server", bs])
        .args(args)
        .env_remove("RUST_LOG");
    run_tool(cmd, "", TOOL_TIMEOUT)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(bs: &str, args: &[&str]) -> String {
    let out = configs(bs, args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
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

fn produce(c: &mut RawClient, value_bytes: usize) -> i16 {
    let record = TestRecord {
        key: None,
        value: Some(Bytes::from(vec![b'x'; value_bytes])),
        timestamp_ms: vltava_tests::now_ms(),
        headers: Vec::new(),
    };
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
    assert!(Command::new(vltava_bin())
        .args([
            "topics",
            "--bootstrap-server",
            &bs,
            "--create",
            "--topic",
            "pinned"
        ])
        .args(["--config", "retention.ms=5000"])
        .status()
        .unwrap()
        .success());
    assert_eq!(
        topic_line(&bs, "dyn", "retention.ms"),
        "  retention.ms=86400000 sensitive=false synonyms={STATIC_BROKER_CONFIG:log.retention.ms=86400000, DEFAULT_CONFIG:log.retention.ms=604800000}"
    );

    // Cluster-wide.
    assert_eq!(
        ok(
            &bs,
            &[
                "--entity-type",
                "brokers",
                "--entity-default",
                "--alter",
                "--add-config",
                "log.retention.ms=3600000,log.cleaner.backoff.ms=500"
            ]
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
        ok(
            &bs,
            &[
                "--entity-type",
                "brokers",
                "--entity-name",
                "1",
                "--alter",
                "--add-config",
                "log.retention.hours=2"
            ]
        ),
        "Completed updating config for broker 1.\n"
    );
    assert_eq!(
        ok(&bs, &["--entity-type", "brokers", "--entity-name", "1", "--describe"]),
        "Dynamic configs for broker 1 are:\n\
         \x20 log.retention.ms=7200000 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:log.retention.ms=7200000, DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=3600000, STATIC_BROKER_CONFIG:log.retention.ms=86400000, DEFAULT_CONFIG:log.retention.ms=604800000}\n"
    );
    assert!(topic_line(&bs, "dyn", "retention.ms").starts_with("  retention.ms=7200000 "));
    // A synonym set over the stored ms key replaces it.
    ok(
        &bs,
        &[
            "--entity-type",
            "brokers",
            "--entity-name",
            "1",
            "--alter",
            "--add-config",
            "log.retention.hours=3",
        ],
    );
    assert!(topic_line(&bs, "dyn", "retention.ms").starts_with("  retention.ms=10800000 "));
    ok(
        &bs,
        &[
            "--entity-type",
            "brokers",
            "--entity-name",
            "1",
            "--alter",
            "--add-config",
            "log.retention.hours=2",
        ],
    );

    // Applied without a restart: a smaller message.max.bytes refuses a
    // batch at once; removing it accepts the same batch again.
    assert_eq!(produce(&mut c, 1_000), 0);
    ok(
        &bs,
        &[
            "--entity-type",
            "brokers",
            "--entity-default",
            "--alter",
            "--add-config",
            "message.max.bytes=200",
        ],
    );
    assert_eq!(produce(&mut c, 1_000), MESSAGE_TOO_LARGE);
    assert_eq!(produce(&mut c, 10), 0);
    ok(
        &bs,
        &[
            "--entity-type",
            "brokers",
            "--entity-default",
            "--alter",
            "--delete-config",
            "message.max.bytes",
        ],
    );
    assert_eq!(produce(&mut c, 1_000), 0);

    // Kept in the metadata log: the same after a restart.
    broker.stop_sigterm();
    broker.restart();
    let bs = broker.bootstrap();
    assert!(topic_line(&bs, "dyn", "retention.ms")
        .starts_with("  retention.ms=7200000 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:"));
    ok(
        &bs,
        &[
            "--entity-type",
            "brokers",
            "--entity-name",
            "1",
            "--alter",
            "--delete-config",
            "log.retention.ms",
        ],
    );
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
