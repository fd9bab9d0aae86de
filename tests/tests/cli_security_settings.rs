//! The tools refuse client settings they cannot honour (TLS, SASL, unknown
//! admin settings) with one clear line and exit 1, instead of connecting
//! over plaintext as if nothing had been asked (issue 17, bug 4).

use std::process::Output;

use vltava_tests::raw::RawClient;
use vltava_tests::{stdout_ok, text, vltava, vltava_tool, TestBroker};

fn assert_refused(out: &Output, expected: &str, what: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
    assert!(
        stderr.contains(expected),
        "{what}: stderr {stderr:?} lacks {expected:?}"
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "{what}: one line, got {stderr:?}"
    );
}

#[test]
fn security_settings_are_refused_not_ignored() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(c.create_topic_code("secure", 1).unwrap(), 0);
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let ssl = file(
        "ssl.properties",
        "security.protocol=SSL\nssl.truststore.location=/x\n",
    );
    let sasl = file("sasl.properties", "sasl.mechanism=PLAIN\n");
    let other = file("other.properties", "request.timeout.ms=1000\n");
    let plain = file(
        "plain.properties",
        "security.protocol=PLAINTEXT\nclient.id=ops\n",
    );

    let protocol = "security.protocol=SSL";
    for (tool, args) in [
        (
            "topics",
            vec![
                "topics",
                "--bootstrap-server",
                &bs,
                "--list",
                "--command-config",
                &ssl,
            ],
        ),
        (
            "consumer-groups",
            vec![
                "consumer-groups",
                "--bootstrap-server",
                &bs,
                "--list",
                "--command-config",
                &ssl,
            ],
        ),
        (
            "configs",
            vec![
                "configs",
                "--bootstrap-server",
                &bs,
                "--entity-type",
                "topics",
                "--entity-name",
                "secure",
                "--describe",
                "--command-config",
                &ssl,
            ],
        ),
        (
            "leader-election",
            vec![
                "leader-election",
                "--bootstrap-server",
                &bs,
                "--election-type",
                "preferred",
                "--all-topic-partitions",
                "--command-config",
                &ssl,
            ],
        ),
        (
            "reassign-partitions",
            vec![
                "reassign-partitions",
                "--bootstrap-server",
                &bs,
                "--list",
                "--command-config",
                &ssl,
            ],
        ),
        (
            "log-dirs",
            vec![
                "log-dirs",
                "--bootstrap-server",
                &bs,
                "--describe",
                "--command-config",
                &ssl,
            ],
        ),
        (
            "console-producer",
            vec![
                "console-producer",
                "--bootstrap-server",
                &bs,
                "--topic",
                "secure",
                "--producer.config",
                &ssl,
            ],
        ),
        (
            "console-consumer",
            vec![
                "console-consumer",
                "--bootstrap-server",
                &bs,
                "--topic",
                "secure",
                "--consumer.config",
                &ssl,
                "--timeout-ms",
                "1000",
            ],
        ),
    ] {
        assert_refused(&vltava(&args, "never-sent\n"), protocol, tool);
    }
    let out = vltava(
        &[
            "console-producer",
            "--bootstrap-server",
            &bs,
            "--topic",
            "secure",
            "--producer-property",
            "security.protocol=SASL_SSL",
        ],
        "never-sent\n",
    );
    assert_refused(&out, "security.protocol=SASL_SSL", "--producer-property");
    let out = vltava_tool("topics", &bs, &["--list", "--command-config", &sasl]);
    assert_refused(&out, "sasl.mechanism", "a SASL setting");
    let out = vltava_tool("topics", &bs, &["--list", "--command-config", &other]);
    assert_refused(&out, "request.timeout.ms", "an unimplemented admin setting");

    // Nothing was produced by the refused producers.
    let end = c
        .list_offset("secure", 0, vltava_tests::raw::LATEST_TIMESTAMP)
        .unwrap();
    assert_eq!(end.offset, 0);

    // PLAINTEXT and client.id are what the tools do, so they pass.
    let list = ["--list", "--command-config", &plain];
    let out = vltava_tool("topics", &bs, &list);
    assert_eq!(stdout_ok("topics", &out), "secure\n");
    let out = vltava_tool("consumer-groups", &bs, &list);
    assert_eq!(stdout_ok("consumer-groups", &out), "");
    let args = [
        "--entity-type",
        "topics",
        "--entity-name",
        "secure",
        "--describe",
        "--command-config",
        &plain,
    ];
    let out = vltava_tool("configs", &bs, &args);
    assert!(stdout_ok("configs", &out).starts_with("Dynamic configs for topic secure"));
    let out = vltava_tool("reassign-partitions", &bs, &list);
    assert_eq!(
        stdout_ok("reassign-partitions", &out),
        "No partition reassignments found.\n"
    );
}
