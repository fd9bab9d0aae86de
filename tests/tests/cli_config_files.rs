//! Settings read from files, against a real broker with exact output:
//! `configs --add-config-file` and `console-producer --reader-config`
//! (`--property` winning over the file), and `configs --entity-type
//! users|clients` refused while quotas and SCRAM do not exist.

use vltava_tests::{stdout_ok, text, vltava, TestBroker};

fn ok(args: &[&str], stdin: &str) -> String {
    stdout_ok(args, &vltava(args, stdin))
}

#[test]
fn add_config_file_and_reader_config() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let configs = dir.path().join("topic.properties");
    std::fs::write(
        &configs,
        "# a retention override\nretention.ms=7200000\ncleanup.policy=compact\n",
    )
    .unwrap();
    let configs = configs.to_string_lossy().into_owned();
    assert_eq!(
        ok(
            &[
                "topics",
                "--bootstrap-server",
                &bs,
                "--create",
                "--topic",
                "files"
            ],
            ""
        ),
        "Created topic files.\n"
    );
    let entity = [
        "configs",
        "--bootstrap-server",
        &bs,
        "--entity-type",
        "topics",
        "--entity-name",
        "files",
    ];
    let mut alter = entity.to_vec();
    alter.extend(["--alter", "--add-config-file", &configs]);
    assert_eq!(
        ok(&alter, ""),
        "Completed updating config for topic files.\n"
    );
    let mut describe = entity.to_vec();
    describe.push("--describe");
    let described = ok(&describe, "");
    let names: Vec<&str> = described
        .lines()
        .skip(1)
        .map(|l| l.trim_start().split(' ').next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["cleanup.policy=compact", "retention.ms=7200000"],
        "{described}"
    );

    let mut both = entity.to_vec();
    both.extend([
        "--alter",
        "--add-config-file",
        &configs,
        "--add-config",
        "retention.ms=1",
    ]);
    let out = vltava(&both, "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Only one of --add-config or --add-config-file must be specified\n"
    );

    // The reader's settings from a file; --property overrides one of them.
    let reader = dir.path().join("reader.properties");
    std::fs::write(
        &reader,
        "parse.key=true\nkey.separator=:\nnull.marker=NULL\n",
    )
    .unwrap();
    let reader = reader.to_string_lossy().into_owned();
    let produce = [
        "console-producer",
        "--bootstrap-server",
        &bs,
        "--topic",
        "files",
        "--reader-config",
        &reader,
        "--property",
        "key.separator=|",
    ];
    assert_eq!(ok(&produce, "k1|v1\nk2|NULL\n"), "");
    let consumed = ok(
        &[
            "console-consumer",
            "--bootstrap-server",
            &bs,
            "--topic",
            "files",
            "--from-beginning",
            "--max-messages",
            "2",
            "--property",
            "print.key=true",
        ],
        "",
    );
    assert_eq!(consumed, "k1\tv1\nk2\tnull\n");
}

#[test]
fn quota_entities_are_refused() {
    for kind in ["users", "clients"] {
        let out = vltava(
            &[
                "configs",
                "--bootstrap-server",
                "127.0.0.1:1",
                "--entity-type",
                kind,
                "--entity-name",
                "x",
                "--describe",
            ],
            "",
        );
        assert_eq!(out.status.code(), Some(1), "{kind}");
        assert_eq!(
            text(&out.stderr),
            format!("Error: --entity-type {kind} is not supported yet: Vltava has no client quotas or SCRAM credentials, so there are no {kind} configs to describe or alter\n")
        );
    }
}

#[test]
fn server_help_says_what_runs_and_where_the_configs_are() {
    let out = vltava(&["server", "--help"], "");
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(
        help.starts_with(
            "Run a broker: one node, or a cluster's voter (controller.quorum.voters).\n"
        ),
        "{help}"
    );
    assert!(help.contains("docs/configuration.md"), "{help}");
    // Every key that file lists is one the broker reads: unknown keys are
    // warned about at start, so none of these may be.
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md"),
    )
    .unwrap();
    let keys: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.trim_start_matches("| `").split('`').next().unwrap())
        .collect();
    assert!(keys.len() > 40, "{keys:?}");
    let broker_keys: Vec<&str> = doc
        .split("## Topic")
        .next()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.trim_start_matches("| `").split('`').next().unwrap())
        .collect();
    let mut known: Vec<(&str, &str)> = broker_keys
        .iter()
        .filter(|k| {
            !matches!(
                **k,
                "listeners" | "log.dirs" | "node.id" | "advertised.listeners"
            )
        })
        .map(|k| {
            let line = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{k}` |")))
                .unwrap();
            let default = line.split('|').nth(2).unwrap().trim().trim_matches('`');
            (*k, if default == "(empty)" { "" } else { default })
        })
        .collect();
    known.push(UNKNOWN);
    let broker = vltava_tests::TestBroker::start(&known);
    assert_only_unknown_is_warned(&broker.stderr_log());
    // The broker keys that set topic defaults (the topic table's fifth
    // column) are read too: each set to its topic default.
    let topic_defaults: Vec<(String, String)> = doc
        .split("## Topic")
        .nth(1)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (
                cells[5].trim_matches('`').to_string(),
                cells[2].trim_matches('`').to_string(),
            )
        })
        .collect();
    assert_eq!(topic_defaults.len(), keys.len() - broker_keys.len());
    let mut pairs: Vec<(&str, &str)> = topic_defaults
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pairs.push(UNKNOWN);
    let broker = vltava_tests::TestBroker::start(&pairs);
    assert_only_unknown_is_warned(&broker.stderr_log());
}

/// A key no broker reads, given alongside the documented ones: its warning
/// shows the check below still recognises one.
const UNKNOWN: (&str, &str) = ("vltava.no.such.key", "1");

/// The start-up log warns about [`UNKNOWN`] and about nothing else.
fn assert_only_unknown_is_warned(log: &str) {
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("isn't a known config"))
        .collect();
    assert_eq!(warned.len(), 1, "{log}");
    assert!(warned[0].contains(UNKNOWN.0), "{}", warned[0]);
}

#[test]
fn a_voter_list_without_this_node_is_refused_not_run_as_a_lone_node() {
    let dir = tempfile::tempdir().unwrap();
    let dirs = format!("log.dirs={}", dir.path().join("data").display());
    let out = vltava(
        &[
            "server",
            "--override",
            &dirs,
            "--override",
            "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0",
            "--override",
            "controller.listener.names=CONTROLLER",
            "--override",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "--override",
            "controller.quorum.voters=1@127.0.0.1:19093,2@127.0.0.1:29093,3@127.0.0.1:39093",
            "--override",
            "node.id=4",
            "--override",
            "admin.listeners=",
            "--override",
            "schema.registry.listeners=",
            "--override",
            "rest.proxy.listeners=",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).lines().last().unwrap(),
        "Error: controller.quorum.voters=1@127.0.0.1:19093,2@127.0.0.1:29093,3@127.0.0.1:39093 does not name this node (node.id=4): a voter is among them; a broker-only node says process.roles=broker"
    );
    // Nothing was written: the data directory was never created.
    assert!(!dir.path().join("data").exists());
}

/// `LeaderId` and `LeaderEpoch` of `metadata-quorum describe --status`.
fn quorum_epoch(broker: &vltava_tests::TestBroker) -> (String, String) {
    let out = vltava_tests::vltava_tool(
        "metadata-quorum",
        &broker.bootstrap(),
        &["describe", "--status"],
    );
    let status = vltava_tests::stdout_ok("metadata-quorum", &out);
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{status}"))
            .trim()
            .to_string()
    };
    let ids = (field("LeaderId:"), field("LeaderEpoch:"));
    assert_eq!(ids.0, "1", "{status}");
    ids
}

/// Kafka's single-node KRaft server.properties (its keys and values, on
/// free ports) runs as it is: the node is the lone voter on its CONTROLLER
/// listener, which is bound, never given to clients, and named by
/// DescribeQuorum; across a restart.
#[test]
fn kafkas_single_node_kraft_settings_run_as_they_are() {
    let port = vltava_tests::free_port();
    let controller = vltava_tests::free_port();
    let listeners = format!("PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}");
    let voters = format!("1@127.0.0.1:{controller}");
    let advertised = format!("PLAINTEXT://127.0.0.1:{port}");
    let mut broker = vltava_tests::TestBroker::start_at(
        port,
        &[
            ("process.roles", "broker,controller"),
            ("controller.quorum.voters", &voters),
            ("listeners", &listeners),
            ("inter.broker.listener.name", "PLAINTEXT"),
            ("advertised.listeners", &advertised),
            ("controller.listener.names", "CONTROLLER"),
            (
                "listener.security.protocol.map",
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
            ),
        ],
    );
    for round in 0..2 {
        // The controller listener is bound, but a lone voter has no peer:
        // whatever arrives there is closed unread, and this node stays the
        // leader in the same epoch. The frame is a real one: an append from
        // a "leader" 99 in a far later term, which openraft would obey.
        let epoch_before = quorum_epoch(&broker);
        let mut peer = std::net::TcpStream::connect(("127.0.0.1", controller))
            .unwrap_or_else(|e| panic!("round {round}: the controller listener is not bound: {e}"));
        let vote = br#"{"AppendEntries":{"vote":{"leader_id":{"term":1000,"node_id":99},"committed":true},"prev_log_id":null,"leader_commit":null,"entries":[]}}"#;
        use std::io::{Read, Write};
        let _ = peer.write_all(&(vote.len() as u32).to_be_bytes());
        let _ = peer.write_all(vote);
        peer.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(
            peer.read(&mut buf).unwrap_or(0),
            0,
            "round {round}: the controller answered"
        );
        assert_eq!(quorum_epoch(&broker), epoch_before, "round {round}");
        let mut client = vltava_tests::raw::RawClient::connect(broker.addr()).unwrap();
        let brokers = client.metadata(Some(&[])).unwrap().brokers;
        let listed: Vec<(i32, String, i32)> = brokers
            .iter()
            .map(|b| (b.node_id.0, b.host.to_string(), b.port))
            .collect();
        assert_eq!(listed, vec![(1, "127.0.0.1".to_string(), i32::from(port))]);
        let out = vltava_tests::vltava_tool(
            "metadata-quorum",
            &broker.bootstrap(),
            &["describe", "--status"],
        );
        let status = vltava_tests::stdout_ok("metadata-quorum", &out);
        assert!(
            status.contains(&format!(
                "CurrentVoters:          [{{\"id\": 1, \"endpoints\": [\"CONTROLLER://127.0.0.1:{controller}\"]}}]\n"
            )),
            "{status}"
        );
        // None of these keys is unknown to the broker.
        assert!(
            !broker.stderr_log().contains("isn't a known config"),
            "{}",
            broker.stderr_log()
        );
        broker.stop_sigterm();
        broker.restart();
    }
}

/// Kafka 4's single-node form: `controller.quorum.bootstrap.servers` and an
/// advertised CONTROLLER entry (KIP-853). The node runs as the lone voter,
/// peers are told the advertised controller address, clients only PLAINTEXT.
#[test]
fn kafka_4s_bootstrap_servers_form_runs_as_it_is() {
    let port = vltava_tests::free_port();
    let controller = vltava_tests::free_port();
    let listeners = format!("PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}");
    let bootstrap = format!("localhost:{controller}");
    let advertised = format!("PLAINTEXT://127.0.0.1:{port},CONTROLLER://localhost:{controller}");
    let broker = vltava_tests::TestBroker::start_at(
        port,
        &[
            ("process.roles", "broker,controller"),
            ("controller.quorum.bootstrap.servers", &bootstrap),
            ("listeners", &listeners),
            ("advertised.listeners", &advertised),
            ("controller.listener.names", "CONTROLLER"),
            (
                "listener.security.protocol.map",
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            ),
        ],
    );
    let mut client = vltava_tests::raw::RawClient::connect(broker.addr()).unwrap();
    let brokers = client.metadata(Some(&[])).unwrap().brokers;
    let listed: Vec<(String, i32)> = brokers
        .iter()
        .map(|b| (b.host.to_string(), b.port))
        .collect();
    assert_eq!(listed, vec![("127.0.0.1".to_string(), i32::from(port))]);
    let out = vltava_tests::vltava_tool(
        "metadata-quorum",
        &broker.bootstrap(),
        &["describe", "--status"],
    );
    let status = vltava_tests::stdout_ok("metadata-quorum", &out);
    assert!(
        status.contains(&format!(
            "CurrentVoters:          [{{\"id\": 1, \"endpoints\": [\"CONTROLLER://localhost:{controller}\"]}}]\n"
        )),
        "{status}"
    );
    assert!(
        !broker.stderr_log().contains("isn't a known config"),
        "{}",
        broker.stderr_log()
    );
}
