//! `vltava get-offsets` (kafka-get-offsets.sh) against a real broker: exact
//! `topic:partition:offset` lines for latest, earliest, max-timestamp and a
//! timestamp, the topic regex and partition filters, and Kafka's errors.

use std::process::{Command, Output};

use kafka_protocol::messages::FindCoordinatorRequest;
use kafka_protocol::protocol::StrBytes;
use vltava_tests::raw::{RawClient, TestRecord};
use vltava_tests::{run_tool, stdout_ok, text, vltava_bin, vltava_tool, TestBroker, TOOL_TIMEOUT};

fn get_offsets(bootstrap: &str, args: &[&str]) -> Output {
    vltava_tool("get-offsets", bootstrap, args)
}

/// Succeeds; returns stdout.
fn ok(bootstrap: &str, args: &[&str]) -> String {
    stdout_ok(args, &get_offsets(bootstrap, args))
}

fn produce_at(c: &mut RawClient, topic: &str, partition: i32, timestamp_ms: i64) {
    c.produce_ok(
        topic,
        partition,
        &[TestRecord::value_at(b"v", timestamp_ms)],
    );
}

#[test]
fn offsets_at_every_time_spec_and_filter() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(c.create_topic_code("go-a", 2).unwrap(), 0);
    assert_eq!(c.create_topic_code("go-b", 1).unwrap(), 0);
    for ts in [1_000, 3_000, 2_000] {
        produce_at(&mut c, "go-a", 0, ts);
    }
    produce_at(&mut c, "go-a", 1, 5_000);

    assert_eq!(ok(&bs, &["--topic", "go-a"]), "go-a:0:3\ngo-a:1:1\n");
    assert_eq!(
        ok(&bs, &["--topic", "go-.*", "--time", "-2"]),
        "go-a:0:0\ngo-a:1:0\ngo-b:0:0\n"
    );
    assert_eq!(
        ok(&bs, &["--topic", "go-.*", "--time", "latest"]),
        "go-a:0:3\ngo-a:1:1\ngo-b:0:0\n"
    );
    // The first record at or after 2000 ms is offset 1 (3000); partition 1's
    // only record (5000) is offset 0.
    assert_eq!(
        ok(&bs, &["--topic", "go-a", "--time", "2000"]),
        "go-a:0:1\ngo-a:1:0\n"
    );
    // Nothing at or after 4000 ms in partition 0: left out, as Kafka does.
    assert_eq!(
        ok(&bs, &["--topic", "go-a", "--time", "4000"]),
        "go-a:1:0\n"
    );
    // The largest timestamp (3000) is at offset 1; an empty partition has none.
    assert_eq!(
        ok(&bs, &["--topic", "go-.*", "--time", "max-timestamp"]),
        "go-a:0:1\ngo-a:1:0\n"
    );
    assert_eq!(
        ok(
            &bs,
            &["--topic", "go-a", "--partitions", "1", "--time", "-3"]
        ),
        "go-a:1:0\n"
    );

    // Internal topics are listed unless excluded (FindCoordinator makes the
    // broker create __consumer_offsets).
    let find = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g"));
    assert_eq!(c.request(&find, 3).unwrap().error_code, 0);
    let all = ok(&bs, &["--time", "earliest"]);
    assert!(all.starts_with("__consumer_offsets:0:0\n"), "{all}");
    assert!(all.ends_with("go-a:0:0\ngo-a:1:0\ngo-b:0:0\n"), "{all}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("admin.properties");
    std::fs::write(&config, "client.id=ops\n").unwrap();
    let config = config.display().to_string();
    assert_eq!(
        ok(
            &bs,
            &[
                "--time",
                "earliest",
                "--exclude-internal-topics",
                "--command-config",
                &config
            ]
        ),
        "go-a:0:0\ngo-a:1:0\ngo-b:0:0\n"
    );

    let out = get_offsets(&bs, &["--topic", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Could not match any topic-partitions with the specified filters\n"
    );
    let out = get_offsets(&bs, &["--topic", "go-a", "--time", "yesterday"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("Malformed time argument yesterday."));

    // The kafka-get-offsets.sh wrapper runs the same tool.
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let mut wrapper = Command::new(repo.join("bin/kafka-get-offsets.sh"));
    wrapper
        .args(["--bootstrap-server", &bs, "--topic", "go-b"])
        .env("VLTAVA_BIN", vltava_bin());
    let out = run_tool(wrapper, "", TOOL_TIMEOUT);
    assert_eq!(stdout_ok("kafka-get-offsets.sh", &out), "go-b:0:0\n");
}

#[test]
fn topic_partitions_rules() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(c.create_topic_code("tp-a", 5).unwrap(), 0);
    assert_eq!(c.create_topic_code("tp-b", 2).unwrap(), 0);
    for p in 0..5 {
        for _ in 0..=p {
            produce_at(&mut c, "tp-a", p, 1_000);
        }
    }
    let rules = |spec: &str| ok(&bs, &["--topic-partitions", spec]);
    // A number, a range with an exclusive upper end, open ends, and a bare
    // topic regex (every partition); a partition any rule matches is listed.
    assert_eq!(rules("tp-a:3"), "tp-a:3:4\n");
    assert_eq!(rules("tp-a:1-3"), "tp-a:1:2\ntp-a:2:3\n");
    assert_eq!(rules("tp-a:3-"), "tp-a:3:4\ntp-a:4:5\n");
    assert_eq!(rules("tp-a:-1,tp-b"), "tp-a:0:1\ntp-b:0:0\ntp-b:1:0\n");
    assert_eq!(rules(":1"), "tp-a:1:2\ntp-b:1:0\n");
    assert_eq!(rules("tp-.:0,tp-a:4"), "tp-a:0:1\ntp-a:4:5\ntp-b:0:0\n");

    let out = get_offsets(&bs, &["--topic-partitions", "tp-a:x"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "Invalid rule specification: tp-a:x\n");
    let out = get_offsets(&bs, &["--topic-partitions", "tp-a", "--topic", "tp-a"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "--topic-partitions cannot be used with --topic or --partitions\n"
    );
}
