//! `vltava delete-records` (kafka-delete-records.sh) against a real broker:
//! Kafka's JSON file in, exact `partition: ... low_watermark:` lines out,
//! per-partition errors, and the records really gone for a consumer.

use std::path::Path;
use std::process::Command;

use vltava_tests::raw::{RawClient, TestRecord};
use vltava_tests::{
    run_tool, stdout_ok, text, vltava, vltava_bin, vltava_tool, TestBroker, TOOL_TIMEOUT,
};

fn produce(c: &mut RawClient, topic: &str, partition: i32, values: &[&str]) {
    let records: Vec<TestRecord> = values
        .iter()
        .map(|v| TestRecord::value_at(v.as_bytes(), 1_000))
        .collect();
    c.produce_ok(topic, partition, &records);
}

fn write(dir: &Path, name: &str, json: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, json).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn deletes_before_offsets_and_reports_each_partition() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(c.create_topic_code("dr", 3).unwrap(), 0);
    produce(&mut c, "dr", 0, &["a", "b", "c", "d", "e"]);
    produce(&mut c, "dr", 1, &["x", "y", "z"]);
    produce(&mut c, "dr", 2, &["only"]);
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "offsets.json",
        r#"{"partitions": [
            {"topic": "dr", "partition": 0, "offset": 3},
            {"topic": "dr", "partition": 1, "offset": -1},
            {"topic": "dr", "partition": 2, "offset": 9},
            {"topic": "dr", "partition": 7, "offset": 0},
            {"topic": "nope", "partition": 0, "offset": 0}
        ], "version": 1}"#,
    );
    let out = vltava_tool("delete-records", &bs, &["--offset-json-file", &file]);
    assert_eq!(
        stdout_ok("delete-records", &out),
        "Executing records delete operation\n\
         Records delete operation completed:\n\
         partition: dr-0\tlow_watermark: 3\n\
         partition: dr-1\tlow_watermark: 3\n\
         partition: dr-2\terror: org.apache.kafka.common.errors.OffsetOutOfRangeException: The requested offset is not within the range of offsets maintained by the server.\n\
         partition: dr-7\terror: org.apache.kafka.common.errors.UnknownTopicOrPartitionException: topic dr has 3 partitions; there is no partition 7\n\
         partition: nope-0\terror: org.apache.kafka.common.errors.UnknownTopicOrPartitionException: Topic 'nope' does not exist.\n"
    );

    // The log start offsets moved; the log ends did not.
    let out = vltava_tool("get-offsets", &bs, &["--topic", "dr", "--time", "-2"]);
    assert_eq!(text(&out.stdout), "dr:0:3\ndr:1:3\ndr:2:0\n");
    let out = vltava_tool("get-offsets", &bs, &["--topic", "dr"]);
    assert_eq!(text(&out.stdout), "dr:0:5\ndr:1:3\ndr:2:1\n");
    // A consumer from the beginning of partition 0 reads only d and e.
    let consume = [
        "--topic",
        "dr",
        "--partition",
        "0",
        "--offset",
        "earliest",
        "--max-messages",
        "2",
        "--property",
        "print.offset=true",
    ];
    let out = vltava_tool("console-consumer", &bs, &consume);
    assert_eq!(stdout_ok(consume, &out), "Offset:3\td\nOffset:4\te\n");

    // The kafka-delete-records.sh wrapper runs the same tool; deleting
    // again below the log start leaves it where it is.
    let again = write(
        dir.path(),
        "again.json",
        r#"{"partitions": [{"topic": "dr", "partition": 0, "offset": 1}]}"#,
    );
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut wrapper = Command::new(repo.join("bin/kafka-delete-records.sh"));
    wrapper
        .args(["--bootstrap-server", &bs, "--offset-json-file", &again])
        .env("VLTAVA_BIN", vltava_bin())
        .env_remove("RUST_LOG");
    let out = run_tool(wrapper, "", TOOL_TIMEOUT);
    assert_eq!(
        stdout_ok("kafka-delete-records.sh", &out),
        "Executing records delete operation\nRecords delete operation completed:\npartition: dr-0\tlow_watermark: 3\n"
    );
}

#[test]
fn a_bad_offset_file_is_refused_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 has no broker: the file is checked first, so its error wins.
    let cases = [
        ("not json", "The input string is not a valid JSON\n"),
        (r#"{"version": 1}"#, "Missing partitions field\n"),
        (
            r#"{"partitions": [{"topic": "t", "partition": 0, "offset": 1}, {"topic": "t", "partition": 0, "offset": 2}]}"#,
            "Offset json file contains duplicate topic partitions: t-0\n",
        ),
    ];
    for (i, (json, message)) in cases.into_iter().enumerate() {
        let file = write(dir.path(), &format!("{i}.json"), json);
        let out = vltava_tool(
            "delete-records",
            "127.0.0.1:1",
            &["--offset-json-file", &file],
        );
        assert_eq!(out.status.code(), Some(1), "{json}");
        assert_eq!(text(&out.stdout), "", "{json}");
        assert_eq!(text(&out.stderr), message, "{json}");
    }
    let missing = dir.path().join("missing.json");
    let out = vltava(
        &[
            "delete-records",
            "--offset-json-file",
            &missing.to_string_lossy(),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with(&format!("Error: cannot read {}: ", missing.display())),
        "{}",
        text(&out.stderr)
    );
}
