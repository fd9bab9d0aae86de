//! `vltava topics` flags beyond the walkthrough, against a real broker with
//! exact output: `--topic` as a regular expression, `--topics-with-overrides`,
//! the partition reports (`--under-replicated-partitions`,
//! `--under-min-isr-partitions`, `--at-min-isr-partitions`,
//! `--unavailable-partitions`, the last on a partition that cannot be
//! opened), `--replica-assignment`, Kafka's option conflicts and `--version`.

use std::process::Output;

use vltava_tests::{stdout_ok, text, vltava_tool, TestBroker};

fn topics(bs: &str, args: &[&str]) -> Output {
    vltava_tool("topics", bs, args)
}

/// Succeeds with an empty stderr; returns stdout.
fn ok(bs: &str, args: &[&str]) -> String {
    let out = topics(bs, args);
    let stdout = stdout_ok(("topics", args), &out);
    assert_eq!(text(&out.stderr), "", "topics {args:?}");
    stdout
}

fn fails(bs: &str, args: &[&str]) -> String {
    let out = topics(bs, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "topics {args:?}: {}",
        text(&out.stdout)
    );
    assert_eq!(text(&out.stdout), "", "topics {args:?}");
    text(&out.stderr)
}

/// The describe output with each topic line's `TopicId: ...` taken out,
/// since ids are random.
fn without_ids(describe: &str) -> String {
    describe
        .lines()
        .map(|l| match l.split_once("\tTopicId: ") {
            Some((head, rest)) => {
                let tail = rest.split_once('\t').map_or("", |(_, t)| t);
                format!("{head}\t{tail}\n")
            }
            None => format!("{l}\n"),
        })
        .collect()
}

#[test]
fn regex_overrides_and_min_isr_reports() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    assert_eq!(
        ok(
            &bs,
            &["--create", "--topic", "orders.eu", "--partitions", "2"]
        ),
        "Created topic orders.eu.\n"
    );
    assert_eq!(
        ok(
            &bs,
            &[
                "--create",
                "--topic",
                "orders_us",
                "--config",
                "min.insync.replicas=2"
            ]
        ),
        "Created topic orders_us.\n"
    );
    assert_eq!(
        ok(
            &bs,
            &[
                "--create",
                "--topic",
                "audit",
                "--config",
                "retention.ms=60000"
            ]
        ),
        "Created topic audit.\n"
    );

    // --topic is a regular expression matched against whole names; commas
    // separate alternatives; an escaped dot is a dot.
    assert_eq!(
        ok(&bs, &["--list", "--topic", "orders.*"]),
        "orders.eu\norders_us\n"
    );
    assert_eq!(
        ok(&bs, &["--list", "--topic", "orders\\.eu"]),
        "orders.eu\n"
    );
    assert_eq!(
        ok(&bs, &["--list", "--topic", "audit, orders_us"]),
        "audit\norders_us\n"
    );
    assert_eq!(ok(&bs, &["--list", "--topic", "order"]), "");
    assert_eq!(
        without_ids(&ok(&bs, &["--describe", "--topic", "orders.*"])),
        "Topic: orders.eu\tPartitionCount: 2\tReplicationFactor: 1\tConfigs: \n\
         \tTopic: orders.eu\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1\n\
         \tTopic: orders.eu\tPartition: 1\tLeader: 1\tReplicas: 1\tIsr: 1\n\
         Topic: orders_us\tPartitionCount: 1\tReplicationFactor: 1\tConfigs: min.insync.replicas=2\n\
         \tTopic: orders_us\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1\n"
    );

    // Only the topics with overrides, and only their topic lines.
    assert_eq!(
        without_ids(&ok(&bs, &["--describe", "--topics-with-overrides"])),
        "Topic: audit\tPartitionCount: 1\tReplicationFactor: 1\tConfigs: retention.ms=60000\n\
         Topic: orders_us\tPartitionCount: 1\tReplicationFactor: 1\tConfigs: min.insync.replicas=2\n"
    );
    // One in-sync replica: orders_us (min 2) is under its minimum; the
    // others (min 1) are at theirs; a single broker is never
    // under-replicated.
    assert_eq!(
        ok(&bs, &["--describe", "--under-min-isr-partitions"]),
        "\tTopic: orders_us\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1\n"
    );
    assert_eq!(
        ok(
            &bs,
            &[
                "--describe",
                "--at-min-isr-partitions",
                "--topic",
                "orders.*"
            ]
        ),
        "\tTopic: orders.eu\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1\n\
         \tTopic: orders.eu\tPartition: 1\tLeader: 1\tReplicas: 1\tIsr: 1\n"
    );
    assert_eq!(
        ok(&bs, &["--describe", "--under-replicated-partitions"]),
        ""
    );
    assert_eq!(ok(&bs, &["--describe", "--unavailable-partitions"]), "");

    // --alter grows every matching topic.
    assert_eq!(
        ok(
            &bs,
            &["--alter", "--topic", "orders.*", "--partitions", "3"]
        ),
        ""
    );
    assert_eq!(
        without_ids(&ok(&bs, &["--describe", "--topic", "orders_us"])),
        "Topic: orders_us\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: min.insync.replicas=2\n\
         \tTopic: orders_us\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1\n\
         \tTopic: orders_us\tPartition: 1\tLeader: 1\tReplicas: 1\tIsr: 1\n\
         \tTopic: orders_us\tPartition: 2\tLeader: 1\tReplicas: 1\tIsr: 1\n"
    );
    // --delete too, and --topic with no match is Kafka's error.
    assert_eq!(ok(&bs, &["--delete", "--topic", "orders.*"]), "");
    assert_eq!(
        fails(&bs, &["--describe", "--topic", "orders.*"]),
        "Error while executing topic command : Topic 'orders.*' does not exist as expected\n"
    );
    assert_eq!(
        ok(&bs, &["--describe", "--topic", "orders.*", "--if-exists"]),
        ""
    );
}

#[test]
fn replica_assignment_places_partitions() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    assert_eq!(
        ok(
            &bs,
            &[
                "--create",
                "--topic",
                "placed",
                "--replica-assignment",
                "1,1, 1"
            ]
        ),
        "Created topic placed.\n"
    );
    assert_eq!(
        without_ids(&ok(&bs, &["--describe", "--topic", "placed"])),
        "Topic: placed\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: \n\
         \tTopic: placed\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1\n\
         \tTopic: placed\tPartition: 1\tLeader: 1\tReplicas: 1\tIsr: 1\n\
         \tTopic: placed\tPartition: 2\tLeader: 1\tReplicas: 1\tIsr: 1\n"
    );
    // On --alter the list covers every partition; the new ones take its tail.
    assert_eq!(
        ok(
            &bs,
            &[
                "--alter",
                "--topic",
                "placed",
                "--partitions",
                "4",
                "--replica-assignment",
                "1,1,1,1"
            ]
        ),
        ""
    );
    assert!(ok(&bs, &["--describe", "--topic", "placed"]).contains("\tPartitionCount: 4\t"));
    // The broker refuses placements on brokers it does not have.
    let err = fails(
        &bs,
        &["--create", "--topic", "far", "--replica-assignment", "2"],
    );
    assert_eq!(
        err,
        "Error while executing topic command : The manual partition assignment includes broker 2, but no such broker is registered.\n"
    );
    assert_eq!(
        fails(&bs, &["--create", "--topic", "dup", "--replica-assignment", "1:1"]),
        "Error while executing topic command : Partition replica lists may not contain duplicate entries: 1\n"
    );
    assert_eq!(
        fails(&bs, &["--create", "--topic", "dup", "--replica-assignment", "2:1:2:1:2"]),
        "Error while executing topic command : Partition replica lists may not contain duplicate entries: 1,2\n"
    );
    // A trailing comma is ignored, as Java's split ignores it.
    assert_eq!(
        ok(
            &bs,
            &[
                "--create",
                "--topic",
                "trailing",
                "--replica-assignment",
                "1,1,"
            ]
        ),
        "Created topic trailing.\n"
    );
    assert!(ok(&bs, &["--describe", "--topic", "trailing"]).contains("\tPartitionCount: 2\t"));
    assert_eq!(
        fails(&bs, &["--create", "--topic", "uneven", "--replica-assignment", "1,1:2"]),
        "Error while executing topic command : Partition 1 has different replication factor: [1, 2]\n"
    );
    assert_eq!(ok(&bs, &["--list"]), "placed\ntrailing\n");
}

#[test]
fn option_conflicts_and_version() {
    // Checked before connecting: port 1 has no broker.
    let bs = "127.0.0.1:1";
    let cases: [(&[&str], &str); 6] = [
        (
            &["--create", "--topic", "t", "--replica-assignment", "1", "--partitions", "1"],
            "Option \"[replica-assignment]\" can't be used with option \"[partitions]\"\n",
        ),
        (
            &["--create", "--topic", "t", "--under-replicated-partitions"],
            "Option \"[under-replicated-partitions]\" can't be used with option \"[create]\"\n",
        ),
        (
            &["--describe", "--unavailable-partitions", "--topics-with-overrides"],
            "Option \"[unavailable-partitions]\" can't be used with option \"[topics-with-overrides]\"\n",
        ),
        (
            &["--list", "--topics-with-overrides"],
            "Option \"[topics-with-overrides]\" can't be used with option \"[list]\"\n",
        ),
        (
            &["--delete", "--topic", "t", "--replication-factor", "1"],
            "Option \"[replication-factor]\" can't be used with option \"[delete]\"\n",
        ),
        (
            &["--alter", "--topic", "t", "--partitions", "2", "--if-not-exists"],
            "Option \"[if-not-exists]\" can't be used with option \"[alter]\"\n",
        ),
    ];
    for (args, message) in cases {
        assert_eq!(fails(bs, args), message, "{args:?}");
    }
    let out = topics(bs, &["--version"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        format!("vltava-topics {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_partition_that_cannot_be_opened_is_unavailable() {
    let mut broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    assert_eq!(
        ok(&bs, &["--create", "--topic", "split", "--partitions", "2"]),
        "Created topic split.\n"
    );
    broker.stop_sigterm();
    let segment = broker.log_dir().join("split-1/00000000000000000000.log");
    std::fs::remove_file(&segment).unwrap();
    std::fs::create_dir(&segment).unwrap();
    broker.restart();
    let bs = broker.bootstrap();
    // Its one replica stays the ISR (it leads again once its log opens).
    let offline = "\tTopic: split\tPartition: 1\tLeader: none\tReplicas: 1\tIsr: 1\tOffline: 1\n";
    assert_eq!(
        ok(&bs, &["--describe", "--unavailable-partitions"]),
        offline
    );
    assert_eq!(
        ok(&bs, &["--describe", "--under-min-isr-partitions"]),
        offline
    );
    // Its ISR is as large as its replica set: not under-replicated (Kafka's
    // rule compares the two), only unavailable and under min ISR.
    assert_eq!(
        ok(&bs, &["--describe", "--under-replicated-partitions"]),
        ""
    );
}
