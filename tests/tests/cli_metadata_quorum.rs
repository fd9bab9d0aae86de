//! `vltava metadata-quorum` (kafka-metadata-quorum.sh) against a real
//! broker, which is the lone voter of its metadata quorum: `describe
//! --status` and `--replication` (plain and `--human-readable`) with
//! Kafka's layout, the high watermark moving by one per committed change,
//! `--command-config`, and Kafka's messages for the flag combinations it
//! refuses.

use std::process::Command;

use vltava_tests::{run_tool, stdout_ok, text, vltava_bin, vltava_tool, TestBroker, TOOL_TIMEOUT};

fn quorum(broker: &TestBroker, args: &[&str]) -> std::process::Output {
    vltava_tool("metadata-quorum", &broker.bootstrap(), args)
}

fn cluster_id(broker: &TestBroker) -> String {
    let out = vltava_tool("cluster", &broker.bootstrap(), &["cluster-id"]);
    stdout_ok("cluster-id", &out)
        .trim_end()
        .strip_prefix("Cluster ID: ")
        .unwrap()
        .to_string()
}

/// The `HighWatermark` line's value.
fn high_watermark(status: &str) -> i64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("HighWatermark:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn status_names_the_lone_voter_and_moves_with_each_commit() {
    let broker = TestBroker::start(&[]);
    let status = stdout_ok("status", &quorum(&broker, &["describe", "--status"]));
    let hw = high_watermark(&status);
    assert!(hw >= 1, "{status}");
    let epoch_line = status.lines().nth(2).unwrap().to_string();
    assert!(
        epoch_line.starts_with("LeaderEpoch:            "),
        "{status}"
    );
    assert_eq!(
        status,
        format!(
            "ClusterId:              {}\n\
             LeaderId:               1\n\
             {epoch_line}\n\
             HighWatermark:          {hw}\n\
             MaxFollowerLag:         0\n\
             MaxFollowerLagTimeMs:   0\n\
             CurrentVoters:          [{{\"id\": 1}}]\n\
             CurrentObservers:       []\n",
            cluster_id(&broker)
        )
    );

    // One topic creation is one committed entry.
    let out = vltava_tool(
        "topics",
        &broker.bootstrap(),
        &["--create", "--topic", "mq"],
    );
    stdout_ok("create", &out);
    let status = stdout_ok("status", &quorum(&broker, &["describe", "--status"]));
    assert_eq!(high_watermark(&status), hw + 1, "{status}");

    // --command-config is read (client.id only).
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("admin.properties");
    std::fs::write(&config, "client.id=quorum-check\n").unwrap();
    let out = quorum(
        &broker,
        &[
            "--command-config",
            config.to_str().unwrap(),
            "describe",
            "--status",
        ],
    );
    assert_eq!(high_watermark(&stdout_ok("with config", &out)), hw + 1);

    let out = vltava_tests::vltava(&["metadata-quorum", "--version"], "");
    assert_eq!(
        stdout_ok("--version", &out),
        format!("vltava-metadata-quorum {}\n", env!("CARGO_PKG_VERSION"))
    );

    // The wrapper under Kafka's name gives the same answer.
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut wrapper = Command::new(repo.join("bin/kafka-metadata-quorum.sh"));
    wrapper
        .env("VLTAVA_BIN", vltava_bin())
        .env_remove("RUST_LOG")
        .args([
            "--bootstrap-server",
            &broker.bootstrap(),
            "describe",
            "--status",
        ]);
    let out = run_tool(wrapper, "", TOOL_TIMEOUT);
    assert_eq!(stdout_ok("kafka-metadata-quorum.sh", &out), status);
}

#[test]
fn replication_is_kafkas_table() {
    let broker = TestBroker::start(&[]);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let table = stdout_ok(
        "replication",
        &quorum(&broker, &["describe", "--replication"]),
    );
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert_eq!(
        lines[0],
        "NodeId\tDirectoryId           \tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus\t"
    );
    let cells: Vec<&str> = lines[1].split('\t').map(str::trim_end).collect();
    assert_eq!(cells.len(), 8, "{table}");
    assert_eq!(cells[0], "1");
    assert_eq!(cells[1], "AAAAAAAAAAAAAAAAAAAAAA");
    let status = stdout_ok("status", &quorum(&broker, &["describe", "--status"]));
    assert_eq!(cells[2].parse::<i64>().unwrap(), high_watermark(&status));
    assert_eq!(cells[3], "0");
    for cell in [cells[4], cells[5]] {
        let ms: i64 = cell.parse().unwrap();
        assert!(ms >= before, "{table}");
    }
    assert_eq!(cells[6], "Leader");
    assert_eq!(cells[7], "");

    let human = stdout_ok(
        "human",
        &quorum(&broker, &["describe", "--replication", "--human-readable"]),
    );
    let row: Vec<&str> = human
        .lines()
        .nth(1)
        .unwrap()
        .split('\t')
        .map(str::trim_end)
        .collect();
    for cell in [row[4], row[5]] {
        let ms = cell
            .strip_suffix(" ms ago")
            .unwrap_or_else(|| panic!("{human}"));
        ms.parse::<u64>().unwrap();
    }
}

#[test]
fn refused_flag_combinations_say_why() {
    let broker = TestBroker::start(&[]);
    for (args, message) in [
        (
            &["describe"][..],
            "One of --status or --replication must be specified with describe sub-command\n",
        ),
        (
            &["describe", "--status", "--replication"][..],
            "Only one of --status or --replication should be specified with describe sub-command\n",
        ),
        (
            &["describe", "--status", "--human-readable"][..],
            "The option --human-readable is only supported along with --replication\n",
        ),
        (
            &["--bootstrap-controller", "127.0.0.1:9093", "describe", "--status"][..],
            "--bootstrap-controller 127.0.0.1:9093: Vltava's controllers answer DescribeQuorum on their broker listeners, not the controller listener; use --bootstrap-server\n",
        ),
    ] {
        let out = quorum(&broker, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&out.stderr), message, "{args:?}");
        assert_eq!(text(&out.stdout), "", "{args:?}");
    }
}
