//! `vltava perf producer | consumer | end-to-end` run as separate processes
//! against a real broker. Counts, byte totals and the shape of Kafka's output
//! lines are asserted exactly; timing values never are.

use std::process::Command;

use regex::Regex;
use vltava_tests::{run_tool, stdout_ok, text, vltava, vltava_bin, TestBroker, TOOL_TIMEOUT};

/// Succeeds with an empty stderr; returns stdout.
fn ok(args: &[&str]) -> String {
    let out = vltava(args, "");
    let stdout = stdout_ok(args, &out);
    assert_eq!(text(&out.stderr), "", "vltava {args:?}");
    stdout
}

fn create_topic(bs: &str, topic: &str, partitions: &str) {
    let out = ok(&[
        "topics",
        "--bootstrap-server",
        bs,
        "--create",
        "--topic",
        topic,
        "--partitions",
        partitions,
    ]);
    assert_eq!(out, format!("Created topic {topic}.\n"));
}

/// Kafka's `ProducerPerformance.printTotal` line for `count` records.
fn producer_total(count: u64) -> Regex {
    Regex::new(&format!(
        r"^{count} records sent, \d+\.\d{{6}} records/sec \(\d+\.\d{{2}} MB/sec\), \d+\.\d{{2}} ms avg latency, \d+\.\d{{2}} ms max latency, \d+ ms 50th, \d+ ms 95th, \d+ ms 99th, \d+ ms 99\.9th\.$"
    ))
    .expect("regex")
}

const CONSUMER_HEADER: &str = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec";

/// The fields of `ConsumerPerformance`'s result line: two dates, then
/// MB, MB/s, messages, messages/s, rebalance ms, fetch ms, fetch MB/s and
/// fetch messages/s.
fn consumer_fields(line: &str) -> Vec<String> {
    let date = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}:\d{3}";
    let re = Regex::new(&format!(
        r"^({date}), ({date}), (\d+\.\d{{4}}), (\d+\.\d{{4}}), (\d+), (\d+\.\d{{4}}), (\d+), (\d+), (\d+\.\d{{4}}), (\d+\.\d{{4}})$"
    ))
    .expect("regex");
    let caps = re
        .captures(line)
        .unwrap_or_else(|| panic!("not a consumer perf line: {line:?}"));
    caps.iter()
        .skip(1)
        .map(|c| c.expect("group").as_str().to_string())
        .collect()
}

#[test]
fn producer_then_consumer_count_every_record_and_byte() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    create_topic(&bs, "perf", "3");
    let out = ok(&[
        "perf",
        "producer",
        "--topic",
        "perf",
        "--num-records",
        "5000",
        "--record-size",
        "100",
        "--throughput",
        "-1",
        "--producer-props",
        &format!("bootstrap.servers={bs}"),
        "acks=1",
        "linger.ms=5",
        "batch.size=16384",
    ]);
    // Fewer than 5 s of work: the final line only, no window lines.
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(producer_total(5000).is_match(lines[0]), "{out}");

    let out = ok(&[
        "perf",
        "consumer",
        "--bootstrap-server",
        &bs,
        "--topic",
        "perf",
        "--messages",
        "5000",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], CONSUMER_HEADER);
    let fields = consumer_fields(lines[1]);
    // 5,000 values of 100 bytes, no keys: 500,000 bytes = 0.4768 MiB.
    assert_eq!(fields[2], "0.4768");
    assert_eq!(fields[4], "5000");
    assert_eq!(fields[6], "0");
}

#[test]
fn producer_with_compression_and_idempotence_writes_exactly_num_records() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    let out = ok(&[
        "perf",
        "producer",
        "--bootstrap-server",
        &bs,
        "--topic",
        "perf-zstd",
        "--num-records",
        "2000",
        "--record-size",
        "1024",
        "--throughput",
        "-1",
        "--producer-props",
        "acks=all",
        "compression.type=zstd",
        "batch.size=65536",
    ]);
    assert!(producer_total(2000).is_match(out.trim_end()), "{out}");

    let out = ok(&[
        "perf",
        "consumer",
        "--bootstrap-server",
        &bs,
        "--topic",
        "perf-zstd",
        "--messages",
        "2000",
        "--hide-header",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let fields = consumer_fields(lines[0]);
    // 2,000 × 1,024 bytes = 1.953125 MiB.
    assert_eq!(fields[2], "1.9531");
    assert_eq!(fields[4], "2000");
}

#[test]
fn consumer_warns_when_the_timeout_passes_before_all_messages() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    create_topic(&bs, "empty", "1");
    let out = ok(&[
        "perf",
        "consumer",
        "--bootstrap-server",
        &bs,
        "--topic",
        "empty",
        "--messages",
        "10",
        "--timeout",
        "1000",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], CONSUMER_HEADER);
    assert_eq!(
        lines[1],
        "WARNING: Exiting before consuming the expected number of messages: timeout (1000 ms) exceeded. You can use the --timeout option to increase the timeout."
    );
    let fields = consumer_fields(lines[2]);
    assert_eq!(fields[2], "0.0000");
    assert_eq!(fields[4], "0");
}

#[test]
fn end_to_end_prints_progress_average_and_percentiles() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    create_topic(&bs, "e2e", "1");
    let out = ok(&["perf", "end-to-end", &bs, "e2e", "1001", "all", "64"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(
        Regex::new(r"^0\t\d+\.\d+$").unwrap().is_match(lines[0]),
        "{out}"
    );
    assert!(
        Regex::new(r"^1000\t\d+\.\d+$").unwrap().is_match(lines[1]),
        "{out}"
    );
    assert!(
        Regex::new(r"^Avg latency: \d+\.\d{4} ms$")
            .unwrap()
            .is_match(lines[2]),
        "{out}"
    );
    assert_eq!(lines[3], "");
    assert!(
        Regex::new(r"^Percentiles: 50th = \d+, 99th = \d+, 99\.9th = \d+$")
            .unwrap()
            .is_match(lines[4]),
        "{out}"
    );

    // Every message was read back exactly once: the topic holds 1,001.
    let out = ok(&[
        "perf",
        "consumer",
        "--bootstrap-server",
        &bs,
        "--topic",
        "e2e",
        "--messages",
        "1001",
        "--hide-header",
    ]);
    let fields = consumer_fields(out.trim_end());
    assert_eq!(fields[4], "1001");
}

#[test]
fn misuse_is_one_line_and_exit_1() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    let out = vltava(&["perf", "end-to-end", &bs, "e2e", "10", "0", "64"], "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Latency testing requires synchronous acknowledgement. Please use 1 or all\n"
    );
    let out = vltava(
        &[
            "perf",
            "producer",
            "--topic",
            "t",
            "--num-records",
            "1",
            "--record-size",
            "1",
            "--throughput",
            "-1",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Either --bootstrap-server or bootstrap.servers in --producer-props or --producer.config must be specified\n"
    );
}

/// `bin/<script>` with `VLTAVA_BIN` pointing at the binary under test,
/// run to completion; stdout when it succeeds with nothing on stderr.
fn script_ok(name: &str, args: &[&str]) -> String {
    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = Command::new(repo.join("bin").join(name));
    cmd.args(args)
        .env("VLTAVA_BIN", vltava_bin())
        .env_remove("RUST_LOG");
    let out = run_tool(cmd, "", TOOL_TIMEOUT);
    let stdout = stdout_ok((name, args), &out);
    assert_eq!(text(&out.stderr), "", "{name} {args:?}");
    stdout
}

#[test]
fn kafka_script_names_run_the_same_tools() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    create_topic(&bs, "wrapped", "1");
    let out = script_ok(
        "kafka-producer-perf-test.sh",
        &[
            "--topic",
            "wrapped",
            "--num-records",
            "300",
            "--record-size",
            "10",
            "--throughput",
            "-1",
            "--producer-props",
            &format!("bootstrap.servers={bs}"),
        ],
    );
    assert!(producer_total(300).is_match(out.trim_end()), "{out}");
    let out = script_ok("kafka-e2e-latency.sh", &[&bs, "wrapped", "20", "1", "10"]);
    assert!(
        out.lines()
            .any(|l| Regex::new(r"^Avg latency: \d+\.\d{4} ms$")
                .unwrap()
                .is_match(l)),
        "{out}"
    );
    let out = script_ok(
        "kafka-consumer-perf-test.sh",
        &[
            "--bootstrap-server",
            &bs,
            "--topic",
            "wrapped",
            "--messages",
            "320",
            "--hide-header",
        ],
    );
    let fields = consumer_fields(out.trim_end());
    // 300 values of 10 bytes and 20 of 10 bytes: 3,200 bytes.
    assert_eq!(fields[4], "320");
    assert_eq!(fields[2], "0.0031");
}
