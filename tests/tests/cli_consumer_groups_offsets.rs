//! `vltava consumer-groups` offset tools against a real broker, output
//! compared exactly: `--reset-offsets --export` (Kafka's CSV, with the group
//! column when several groups), `--from-file` (both CSV forms, offsets moved
//! into the log's range), `--delete-offsets` (Kafka's table, per-partition
//! and group errors) and `--timeout` against a peer that never answers.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use vltava_tests::raw::{RawClient, TestRecord};
use vltava_tests::{stdout_ok, text, vltava_tool, TestBroker};

fn groups(bs: &str, args: &[&str]) -> Output {
    vltava_tool("consumer-groups", bs, args)
}

/// Succeeds with an empty stderr; returns stdout.
fn ok(bs: &str, args: &[&str]) -> String {
    let out = groups(bs, args);
    let stdout = stdout_ok(args, &out);
    assert_eq!(text(&out.stderr), "", "{args:?}");
    stdout
}

/// `count` records `v0`, `v1`, … at timestamp 1000.
fn produce(c: &mut RawClient, topic: &str, partition: i32, count: usize) {
    let records: Vec<TestRecord> = (0..count)
        .map(|i| TestRecord::value_at(format!("v{i}").as_bytes(), 1_000))
        .collect();
    c.produce_ok(topic, partition, &records);
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_string_lossy().into_owned()
}

/// Sets `group`'s committed offset on every partition of `topic`.
fn commit(bs: &str, group: &str, topic: &str, offset: &str) {
    ok(
        bs,
        &[
            "--reset-offsets",
            "--group",
            group,
            "--topic",
            topic,
            "--to-offset",
            offset,
            "--execute",
        ],
    );
}

/// `group`'s committed offsets as the single-group CSV.
fn committed(bs: &str, group: &str) -> String {
    ok(
        bs,
        &[
            "--reset-offsets",
            "--group",
            group,
            "--all-topics",
            "--to-current",
            "--dry-run",
            "--export",
        ],
    )
}

#[test]
fn export_then_reset_from_the_file() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(c.create_topic_code("cg", 2).unwrap(), 0);
    produce(&mut c, "cg", 0, 5);
    produce(&mut c, "cg", 1, 3);
    commit(&bs, "g1", "cg", "1");
    commit(&bs, "g2", "cg", "2");

    // One group: topic,partition,offset; Kafka prints a blank line after.
    assert_eq!(committed(&bs, "g1"), "cg,0,1\ncg,1,1\n\n");
    assert_eq!(
        ok(
            &bs,
            &[
                "--reset-offsets",
                "--group",
                "g1",
                "--topic",
                "cg",
                "--to-latest",
                "--dry-run",
                "--export"
            ]
        ),
        "cg,0,5\ncg,1,3\n\n"
    );
    // Several groups: the group comes first.
    assert_eq!(
        ok(
            &bs,
            &[
                "--reset-offsets",
                "--group",
                "g1",
                "--group",
                "g2",
                "--topic",
                "cg:1",
                "--to-earliest",
                "--dry-run",
                "--export",
            ]
        ),
        "g1,cg,1,0\ng2,cg,1,0\n\n"
    );

    // A plan for one group; an offset past the log end becomes the log end.
    let dir = tempfile::tempdir().unwrap();
    let plan = write(dir.path(), "g1.csv", "cg,0,4\ncg,1,9\n");
    assert_eq!(
        ok(&bs, &["--reset-offsets", "--group", "g1", "--from-file", &plan, "--execute"]),
        format!(
            "\n{:<30} {:<30} {:<10} {:<15}\n{:<30} {:<30} {:<10} {:<15}\n{:<30} {:<30} {:<10} {:<15}\n",
            "GROUP", "TOPIC", "PARTITION", "NEW-OFFSET", "g1", "cg", "0", "4", "g1", "cg", "1", "3"
        )
    );
    assert_eq!(committed(&bs, "g1"), "cg,0,4\ncg,1,3\n\n");

    // A plan for two groups, as --export writes it for several.
    let plan = write(dir.path(), "both.csv", "g1,cg,0,0\ng2,cg,0,3\ng2,cg,1,1\n");
    ok(
        &bs,
        &[
            "--reset-offsets",
            "--group",
            "g1",
            "--group",
            "g2",
            "--from-file",
            &plan,
            "--execute",
        ],
    );
    assert_eq!(committed(&bs, "g1"), "cg,0,0\ncg,1,3\n\n");
    assert_eq!(committed(&bs, "g2"), "cg,0,3\ncg,1,1\n\n");

    // A group the plan does not name is reported and left alone.
    let out = groups(
        &bs,
        &[
            "--reset-offsets",
            "--group",
            "g3",
            "--group",
            "g2",
            "--from-file",
            &plan,
            "--dry-run",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "\nError: No reset plan for group g3 found\n"
    );

    // A plan naming a partition that does not exist is refused, not
    // committed blindly.
    let ghost = write(dir.path(), "ghost.csv", "cg,7,1\n");
    let out = groups(
        &bs,
        &[
            "--reset-offsets",
            "--group",
            "g1",
            "--from-file",
            &ghost,
            "--execute",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error: topic cg has 2 partitions; there is no partition 7\n"
    );
    assert_eq!(committed(&bs, "g1"), "cg,0,0\ncg,1,3\n\n");

    let bad = write(dir.path(), "bad.csv", "cg,zero,1\n");
    let out = groups(
        &bs,
        &[
            "--reset-offsets",
            "--group",
            "g1",
            "--from-file",
            &bad,
            "--dry-run",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error: reading the reset plan: partition and offset must be numbers in line 'cg,zero,1'\n"
    );
}

fn table(rows: &[(&str, &str, &str)]) -> String {
    let mut out = format!("\n{:<30} {:<15} {:<15}", "TOPIC", "PARTITION", "STATUS");
    for (t, p, s) in rows {
        out.push_str(&format!("\n{t:<30} {p:<15} {s:<15}"));
    }
    out.push('\n');
    out
}

#[test]
fn delete_offsets_per_partition_and_group_errors() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(c.create_topic_code("cg", 2).unwrap(), 0);
    assert_eq!(c.create_topic_code("other", 1).unwrap(), 0);
    produce(&mut c, "cg", 0, 5);
    produce(&mut c, "cg", 1, 3);
    produce(&mut c, "other", 0, 2);
    commit(&bs, "g1", "cg", "2");
    commit(&bs, "g1", "other", "1");

    assert_eq!(
        ok(
            &bs,
            &["--delete-offsets", "--group", "g1", "--topic", "cg:0"]
        ),
        format!(
            "Request succeed for deleting offsets with topic cg:0 group g1\n{}",
            table(&[("cg", "0", "Successful")])
        )
    );
    let csv = ok(
        &bs,
        &[
            "--reset-offsets",
            "--group",
            "g1",
            "--all-topics",
            "--to-current",
            "--dry-run",
            "--export",
        ],
    );
    assert_eq!(csv, "cg,1,2\nother,0,1\n\n");

    // A topic that does not exist is "Not Provided"; the others still go.
    let out = groups(
        &bs,
        &[
            "--delete-offsets",
            "--group",
            "g1",
            "--topic",
            "other",
            "--topic",
            "gone",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "\nError: Encounter some partition level error, see the follow-up details:\n"
    );
    assert_eq!(
        text(&out.stdout),
        table(&[
            (
                "gone",
                "Not Provided",
                "Error: :org.apache.kafka.common.errors.UnknownTopicOrPartitionException: Topic 'gone' does not exist."
            ),
            ("other", "0", "Successful"),
        ])
    );

    let out = groups(
        &bs,
        &["--delete-offsets", "--group", "nope", "--topic", "cg"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "\nError: 'nope' does not exist.\n");
    let status = "Error: :org.apache.kafka.common.errors.GroupIdNotFoundException: The group id does not exist.";
    assert_eq!(
        text(&out.stdout),
        table(&[("cg", "0", status), ("cg", "1", status)])
    );

    let out = groups(
        &bs,
        &[
            "--delete-offsets",
            "--group",
            "g1",
            "--group",
            "g2",
            "--topic",
            "cg",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Option [delete-offsets] supports one consumer group at a time\n"
    );

    let out = groups(&bs, &["--delete-offsets", "--group", "g1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Option [delete-offsets] takes the following options: [group], [topic]\n"
    );
}

#[test]
fn timeout_bounds_each_request() {
    // A peer that accepts connections (the kernel's backlog does) and
    // never answers: nobody calls accept, nothing is read.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let out = groups(&addr, &["--list", "--timeout", "300"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // Well under the 5 s default: --timeout was used.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(
        text(&out.stderr),
        format!("Error: request ApiVersions to {addr} timed out after 300 ms\n")
    );
    drop(silent);
}
