//! `vltava storage` (kafka-storage.sh): `random-uuid`, `format` (Kafka's
//! messages for formatted directories) and `info`, and a broker started on
//! a formatted directory using that cluster id.

use std::path::Path;
use std::process::{Command, Output};

use vltava_tests::{run_tool, stdout_ok, text, vltava, vltava_bin, TestBroker, TOOL_TIMEOUT};

fn storage(args: &[&str]) -> Output {
    let mut all = vec!["storage"];
    all.extend_from_slice(args);
    vltava(&all, "")
}

fn random_uuid() -> String {
    let out = storage(&["random-uuid"]);
    assert!(out.status.success());
    let id = text(&out.stdout).trim_end().to_string();
    assert_eq!(id.len(), 22, "{id}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{id}"
    );
    id
}

#[test]
fn format_info_and_a_broker_on_the_formatted_directory() {
    let first = random_uuid();
    assert_ne!(first, random_uuid());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let dirs = format!("log.dirs={}", data.display());
    let format = |id: &str, extra: &[&str]| {
        let mut args = vec![
            "format",
            "--cluster-id",
            id,
            "--override",
            &dirs,
            "--override",
            "node.id=3",
        ];
        args.extend_from_slice(extra);
        storage(&args)
    };

    let out = storage(&["info", "--override", &dirs]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        format!(
            "Found log directory:\n  {0}\n\nFound problem:\n  {0} is not formatted.\n\n",
            data.display()
        )
    );

    let out = format(&first, &[]);
    assert_eq!(
        stdout_ok("storage format", &out),
        format!(
            "Formatting metadata directory {} with cluster.id {first} and node.id 3.\n",
            data.display()
        )
    );
    assert_eq!(
        std::fs::read_to_string(data.join("meta.properties")).unwrap(),
        format!("version=1\ncluster.id={first}\nnode.id=3\n")
    );
    let out = storage(&["info", "--override", &dirs]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        format!(
            "Found log directory:\n  {}\n\nFound metadata: {{cluster.id={first}, node.id=3, version=1}}\n\n",
            data.display()
        )
    );

    // Formatted already: refused, skipped with -g, refused for another id.
    let out = format(&first, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "Log directory {} is already formatted. Use --ignore-formatted to ignore this directory and format the others.\n",
            data.display()
        )
    );
    let out = format(&first, &["--ignore-formatted"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        "All of the log directories are already formatted.\n"
    );
    let other = random_uuid();
    let out = format(&other, &["-g"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "Invalid cluster.id in: {}. Expected {other}, but read {first}.\n",
            data.join("meta.properties").display()
        )
    );
    let out = format("not-a-cluster-id", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("Error: cluster id not-a-cluster-id is not 22 characters")
    );

    // A broker started on a formatted directory uses its cluster id.
    let mut broker = TestBroker::start(&[("node.id", "3")]);
    broker.stop_sigterm();
    let log_dir = broker.log_dir();
    std::fs::remove_dir_all(&log_dir).unwrap();
    let broker_dirs = format!("log.dirs={}", log_dir.display());
    let out = storage(&[
        "format",
        "-t",
        &first,
        "--override",
        &broker_dirs,
        "--override",
        "node.id=3",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    broker.restart();
    let out = vltava(
        &[
            "cluster",
            "cluster-id",
            "--bootstrap-server",
            &broker.bootstrap(),
        ],
        "",
    );
    assert_eq!(text(&out.stdout), format!("Cluster ID: {first}\n"));

    // The wrapper runs the same tool.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut wrapper = Command::new(repo.join("bin/kafka-storage.sh"));
    wrapper.arg("random-uuid").env("VLTAVA_BIN", vltava_bin());
    let out = run_tool(wrapper, "", TOOL_TIMEOUT);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim_end().len(), 22);
}
