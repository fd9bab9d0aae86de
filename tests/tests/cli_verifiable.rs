//! `vltava verifiable-producer` and `verifiable-consumer` (Kafka's
//! VerifiableProducer/VerifiableConsumer) against a real broker: every JSON
//! event line parsed, event names and fields in Kafka's order, values,
//! keys, partitions and offsets exact, SIGTERM ending an endless producer
//! with everything sent acknowledged, and the refusals for what the tools
//! do not implement.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use serde_json::Value;
use vltava_tests::{stdout_ok, text, vltava_bin, vltava_tool, TestBroker, TOOL_TIMEOUT};

/// Every stdout line as JSON, with its keys in printed order checked to
/// start with timestamp and name; the timestamp is dropped.
fn events(out: &Output) -> Vec<Value> {
    stdout_ok("verifiable tool", out)
        .lines()
        .map(event)
        .collect()
}

fn event(line: &str) -> Value {
    assert!(line.starts_with("{\"timestamp\":"), "{line}");
    let name_at = line.find(",\"name\":").expect("name second");
    assert!(line[13..name_at].parse::<i64>().is_ok(), "{line}");
    let mut v: Value = serde_json::from_str(line).expect("a JSON line");
    v.as_object_mut().unwrap().remove("timestamp");
    v
}

/// The line's top-level fields appear in this order (Kafka's).
fn assert_field_order(line: &str, fields: &[&str]) {
    let positions: Vec<usize> = fields
        .iter()
        .map(|f| {
            line.find(&format!("\"{f}\":"))
                .unwrap_or_else(|| panic!("{f} in {line}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "{fields:?} in {line}"
    );
}

fn names(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["name"].as_str().unwrap()).collect()
}

#[test]
fn producer_then_consumer_events() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    assert!(vltava_tool(
        "topics",
        &bs,
        &["--create", "--topic", "ver", "--partitions", "2"]
    )
    .status
    .success());
    let out = vltava_tool(
        "verifiable-producer",
        &bs,
        &[
            "--topic",
            "ver",
            "--max-messages",
            "6",
            "--repeating-keys",
            "2",
            "--value-prefix",
            "9",
            "--message-create-time",
            "1700000000000",
        ],
    );
    let produced = events(&out);
    assert_eq!(
        names(&produced),
        [
            "startup_complete",
            "producer_send_success",
            "producer_send_success",
            "producer_send_success",
            "producer_send_success",
            "producer_send_success",
            "producer_send_success",
            "shutdown_complete",
            "tool_data"
        ]
    );
    // Keys cycle 0,1; the same key always lands in the same partition and
    // each partition's offsets count up from 0.
    let mut next_offset = [0i64; 2];
    let mut partition_of_key = [None, None];
    let raw = text(&out.stdout);
    let raw_lines: Vec<&str> = raw.lines().collect();
    for (i, e) in produced[1..7].iter().enumerate() {
        assert_field_order(
            raw_lines[i + 1],
            &[
                "timestamp",
                "name",
                "key",
                "value",
                "topic",
                "partition",
                "offset",
            ],
        );
        assert_eq!(e["key"], Value::String((i % 2).to_string()));
        assert_eq!(e["value"], Value::String(format!("9.{i}")));
        assert_eq!(e["topic"], "ver");
        let p = e["partition"].as_i64().unwrap() as usize;
        assert_eq!(*partition_of_key[i % 2].get_or_insert(p), p, "{e}");
        assert_eq!(e["offset"].as_i64().unwrap(), next_offset[p], "{e}");
        next_offset[p] += 1;
    }
    assert_field_order(
        raw_lines[8],
        &[
            "timestamp",
            "name",
            "sent",
            "acked",
            "target_throughput",
            "avg_throughput",
        ],
    );
    let data = &produced[8];
    assert_eq!(
        (data["sent"].as_i64(), data["acked"].as_i64()),
        (Some(6), Some(6))
    );
    assert_eq!(data["target_throughput"], -1);
    assert!(data["avg_throughput"].as_f64().unwrap() > 0.0);
    // --message-create-time set the records' CreateTime.
    let first = vltava_tool(
        "console-consumer",
        &bs,
        &[
            "--topic",
            "ver",
            "--from-beginning",
            "--max-messages",
            "1",
            "--property",
            "print.timestamp=true",
        ],
    );
    assert!(
        text(&first.stdout).starts_with("CreateTime:17000000000"),
        "{}",
        text(&first.stdout)
    );

    let out = vltava_tool(
        "verifiable-consumer",
        &bs,
        &[
            "--topic",
            "ver",
            "--group-id",
            "vg",
            "--max-messages",
            "6",
            "--verbose",
        ],
    );
    let consumed = events(&out);
    let raw = text(&out.stdout);
    for line in raw.lines() {
        if line.contains("records_consumed") {
            assert_field_order(
                line,
                &[
                    "timestamp",
                    "name",
                    "count",
                    "partitions",
                    "minOffset",
                    "maxOffset",
                ],
            );
        }
        if line.contains("offsets_committed") {
            assert_field_order(line, &["timestamp", "name", "offsets", "success"]);
        }
        if line.contains("record_data") {
            assert_field_order(
                line,
                &[
                    "timestamp",
                    "name",
                    "key",
                    "value",
                    "topic",
                    "partition",
                    "offset",
                ],
            );
        }
    }
    assert_eq!(consumed[0]["name"], "startup_complete");
    assert_eq!(
        consumed[1],
        serde_json::json!({"name": "partitions_assigned", "partitions": [
            {"topic": "ver", "partition": 0}, {"topic": "ver", "partition": 1}]})
    );
    assert_eq!(consumed.last().unwrap()["name"], "shutdown_complete");
    // Every record once, each records_consumed followed by its commit.
    let mut values: Vec<String> = Vec::new();
    let mut total = 0;
    for (i, e) in consumed.iter().enumerate() {
        match e["name"].as_str().unwrap() {
            "record_data" => values.push(e["value"].as_str().unwrap().to_string()),
            "records_consumed" => {
                total += e["count"].as_i64().unwrap();
                let commit = &consumed[i + 1];
                assert_eq!(commit["name"], "offsets_committed", "{commit}");
                assert_eq!(commit["success"], true);
                for (summary, offset) in e["partitions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .zip(commit["offsets"].as_array().unwrap())
                {
                    assert_eq!(summary["partition"], offset["partition"]);
                    assert_eq!(
                        summary["maxOffset"].as_i64().unwrap() + 1,
                        offset["offset"].as_i64().unwrap()
                    );
                    assert_eq!(
                        summary["count"].as_i64().unwrap(),
                        summary["maxOffset"].as_i64().unwrap()
                            - summary["minOffset"].as_i64().unwrap()
                            + 1
                    );
                }
            }
            _ => {}
        }
    }
    assert_eq!(total, 6);
    values.sort();
    assert_eq!(values, ["9.0", "9.1", "9.2", "9.3", "9.4", "9.5"]);
    let committed = vltava_tool(
        "consumer-groups",
        &bs,
        &[
            "--group",
            "vg",
            "--reset-offsets",
            "--all-topics",
            "--to-current",
            "--dry-run",
            "--export",
        ],
    );
    assert_eq!(text(&committed.stdout), "ver,0,3\nver,1,3\n\n");

    // reset-policy none with nothing committed: Kafka's error, then close.
    let out = vltava_tool(
        "verifiable-consumer",
        &bs,
        &[
            "--topic",
            "ver",
            "--group-id",
            "fresh",
            "--reset-policy",
            "none",
            "--max-messages",
            "1",
        ],
    );
    assert_eq!(
        names(&events(&out)),
        [
            "startup_complete",
            "partitions_assigned",
            "shutdown_complete"
        ]
    );
    assert_eq!(
        text(&out.stderr),
        "Error during processing, terminating consumer process: org.apache.kafka.clients.consumer.NoOffsetForPartitionException: Undefined offset with no reset policy for partitions: [ver-0, ver-1]\n"
    );

    for (args, message) in [
        (&["--group-protocol", "consumer"][..], "Error: --group-protocol consumer is not supported by this tool yet; it joins groups with the classic protocol\n"),
        (&["--assignment-strategy", "org.apache.kafka.clients.consumer.RoundRobinAssignor"][..], "Error: --assignment-strategy org.apache.kafka.clients.consumer.RoundRobinAssignor is not supported; this tool assigns with Kafka's RangeAssignor\n"),
        (&["--group-instance-id", "i1"][..], "Error: --group-instance-id (static membership) is not supported by this tool yet\n"),
    ] {
        let mut all = vec!["--topic", "ver", "--group-id", "x"];
        all.extend_from_slice(args);
        let out = vltava_tool("verifiable-consumer", &bs, &all);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&out.stderr), message);
    }
}

#[test]
fn sigterm_stops_an_endless_producer_with_everything_acknowledged() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut child = Command::new(repo.join("bin/kafka-verifiable-producer.sh"))
        .args([
            "--bootstrap-server",
            &bs,
            "--topic",
            "endless",
            "--throughput",
            "200",
        ])
        .env("VLTAVA_BIN", vltava_bin())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + TOOL_TIMEOUT;
    // Wait for twenty acknowledgements, then stop it.
    while lines
        .iter()
        .filter(|l: &&String| l.contains("producer_send_success"))
        .count()
        < 20
    {
        let left = deadline.saturating_duration_since(Instant::now());
        lines.push(
            rx.recv_timeout(left)
                .expect("acknowledgements before the deadline"),
        );
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        lines.push(line);
    }
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let all: Vec<Value> = lines.iter().map(|l| event(l)).collect();
    let n = all.len();
    assert_eq!(all[n - 2]["name"], "shutdown_complete");
    let data = &all[n - 1];
    assert_eq!(data["name"], "tool_data");
    assert_eq!(data["target_throughput"], 200);
    let acked = all
        .iter()
        .filter(|e| e["name"] == "producer_send_success")
        .count() as i64;
    assert_eq!(data["sent"].as_i64(), Some(acked));
    assert_eq!(data["acked"].as_i64(), Some(acked));
    // Values are consecutive from 0 and offsets match them (one partition).
    for (i, e) in all
        .iter()
        .filter(|e| e["name"] == "producer_send_success")
        .enumerate()
    {
        assert_eq!(e["value"], Value::String(i.to_string()));
        assert_eq!(e["offset"].as_i64(), Some(i as i64));
        assert_eq!(e["key"], Value::Null);
    }
}

/// `--acks`, `--producer.config`, `--enable-autocommit`,
/// `--session-timeout` and `--consumer.config` each reach the client: the
/// file's settings win over the flags as in Kafka's tools.
#[test]
fn settings_from_flags_and_config_files_reach_the_clients() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let offsets = |out: &Output| -> Vec<i64> {
        events(out)
            .iter()
            .filter(|e| e["name"] == "producer_send_success")
            .map(|e| e["offset"].as_i64().unwrap())
            .collect()
    };
    let produce = |extra: &[&str]| {
        let mut args = vec!["--topic", "settings", "--max-messages", "3"];
        args.extend_from_slice(extra);
        vltava_tool("verifiable-producer", &bs, &args)
    };
    // acks=0: the broker never answers, so no offsets are known.
    assert_eq!(offsets(&produce(&["--acks", "0"])), [-1, -1, -1]);
    // The file's acks=1 wins over --acks 0: offsets come back.
    let acks_one = file("acks-one.properties", "acks=1\nlinger.ms=0\n");
    assert_eq!(
        offsets(&produce(&["--acks", "0", "--producer.config", &acks_one])),
        [3, 4, 5]
    );
    let idempotent = file("idempotent.properties", "enable.idempotence=true\n");
    let out = produce(&["--acks", "1", "--producer.config", &idempotent]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Must set acks to all in order to use the idempotent producer. Otherwise we cannot guarantee idempotence.\n"
    );

    let consume = |group: &str, extra: &[&str]| {
        let mut args = vec!["--topic", "settings", "--group-id", group];
        args.extend_from_slice(extra);
        vltava_tool("verifiable-consumer", &bs, &args)
    };
    let committed = |group: &str| {
        let export = [
            "--group",
            group,
            "--reset-offsets",
            "--all-topics",
            "--to-current",
            "--dry-run",
            "--export",
        ];
        stdout_ok(group, &vltava_tool("consumer-groups", &bs, &export))
    };
    // Auto-commit: no commit per poll, the positions committed on close.
    let out = consume("auto", &["--max-messages", "6", "--enable-autocommit"]);
    let seen = names(&events(&out)).join(",");
    assert!(!seen.contains("offsets_committed"), "{seen}");
    assert!(
        seen.ends_with("records_consumed,shutdown_complete"),
        "{seen}"
    );
    assert_eq!(committed("auto"), "settings,0,6\n\n");
    // A session timeout under the broker's group.min.session.timeout.ms
    // (6000) is refused by the broker at the join.
    let out = consume(
        "short",
        &["--max-messages", "1", "--session-timeout", "1000"],
    );
    assert_eq!(
        names(&events(&out)),
        ["startup_complete", "shutdown_complete"]
    );
    assert_eq!(
        text(&out.stderr),
        "Error during processing, terminating consumer process: org.apache.kafka.common.errors.InvalidSessionTimeoutException: The session timeout is not within the range allowed by the broker (as configured by group.min.session.timeout.ms and group.max.session.timeout.ms).\n"
    );
    let secure = file("ssl.properties", "security.protocol=SSL\n");
    let out = consume("ssl", &["--consumer.config", &secure]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error: security.protocol=SSL (--consumer.config) is not supported by Vltava's tools yet: they connect over PLAINTEXT only, and will not connect without the security you asked for\n"
    );
}
