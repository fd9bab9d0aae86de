//! The Kafka-style tools (`vltava topics`, `console-producer`,
//! `console-consumer`, `consumer-groups`, `configs`, `broker-api-versions`,
//! `cluster`) run as separate processes against a real broker, through the
//! `bin/kafka-*.sh` wrappers where the walkthrough uses them. Output is
//! compared exactly.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use vltava_tests::{
    free_port, run_tool, stdout_ok, text, vltava, vltava_bin, wait_until, TestBroker, TOOL_TIMEOUT,
};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `bin/<script>` with `VLTAVA_BIN` pointing at the binary under test.
fn script(name: &str) -> Command {
    let mut cmd = Command::new(repo().join("bin").join(name));
    cmd.env("VLTAVA_BIN", vltava_bin()).env_remove("RUST_LOG");
    cmd
}

/// Runs `vltava <args>`, asserts exit 0, returns stdout.
fn ok(args: &[&str]) -> String {
    ok_with_input(args, "")
}

fn ok_with_input(args: &[&str], input: &str) -> String {
    stdout_ok(args, &vltava(args, input))
}

/// Runs `vltava <args>`, asserts exit 1, returns (stdout, stderr).
fn fails(args: &[&str]) -> (String, String) {
    let out = vltava(args, "");
    assert_eq!(
        out.status.code(),
        Some(1),
        "vltava {args:?}: {}",
        text(&out.stderr)
    );
    (text(&out.stdout), text(&out.stderr))
}

#[test]
fn walkthrough_letter_for_letter() {
    let broker = TestBroker::start(&[]);
    let bs = "127.0.0.1:".to_string() + &broker.port().to_string();
    let mut create = script("kafka-topics.sh");
    create.args([
        "--bootstrap-server",
        &bs,
        "--create",
        "--topic",
        "demo",
        "--partitions",
        "3",
        "--replication-factor",
        "1",
    ]);
    let out = run_tool(create, "", TOOL_TIMEOUT);
    assert_eq!(stdout_ok("kafka-topics.sh", &out), "Created topic demo.\n");

    // The consumer starts first (no --from-beginning, as in the
    // walkthrough), so the producer must wait until it has a position on
    // every partition; its debug log says so.
    let mut consumer = script("kafka-console-consumer.sh");
    consumer
        .args([
            "--bootstrap-server",
            &bs,
            "--topic",
            "demo",
            "--max-messages",
            "1",
        ])
        .env("RUST_LOG", "vltava_client::consumer=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut consumer = consumer.spawn().expect("spawn consumer");
    let stderr_lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = stderr_lines.clone();
        let stderr = consumer.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        })
    };
    let positioned = wait_until(TOOL_TIMEOUT, || {
        stderr_lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("consumer positioned"))
            .count()
            == 3
    });
    assert!(
        positioned,
        "consumer never positioned: {:?}",
        stderr_lines.lock().unwrap()
    );

    let mut producer = script("kafka-console-producer.sh");
    producer.args([
        "--bootstrap-server",
        &bs,
        "--topic",
        "demo",
        "--property",
        "parse.key=true",
        "--property",
        "key.separator=:",
    ]);
    let out = run_tool(producer, "message1:hello\n", TOOL_TIMEOUT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // No `>` prompt: stdin is a pipe, not a terminal.
    assert_eq!(text(&out.stdout), "");
    assert_eq!(text(&out.stderr), "");

    let mut stdout = consumer.stdout.take().expect("stdout");
    let mut printed = String::new();
    let exited = wait_until(TOOL_TIMEOUT, || consumer.try_wait().unwrap().is_some());
    if !exited {
        let _ = consumer.kill();
    }
    stdout.read_to_string(&mut printed).unwrap();
    reader.join().unwrap();
    assert!(exited, "consumer did not exit after one message");
    assert!(consumer.wait().unwrap().success());
    assert_eq!(printed, "hello\n");
    let lines = stderr_lines.lock().unwrap();
    assert_eq!(
        lines.last().map(String::as_str),
        Some("Processed a total of 1 messages")
    );
}

#[test]
fn unreachable_broker_is_one_clear_line() {
    let port = free_port();
    let bs = format!("127.0.0.1:{port}");
    let expected = format!(
        "Error: cannot reach a Kafka broker at {bs} (Connection refused). Is one running there? Start one with `vltava server`.\n"
    );
    for args in [
        vec!["topics", "--bootstrap-server", &bs, "--list"],
        vec![
            "console-producer",
            "--bootstrap-server",
            &bs,
            "--topic",
            "t",
        ],
        vec![
            "console-consumer",
            "--bootstrap-server",
            &bs,
            "--topic",
            "t",
        ],
        vec!["consumer-groups", "--bootstrap-server", &bs, "--list"],
        vec![
            "configs",
            "--bootstrap-server",
            &bs,
            "--entity-type",
            "topics",
            "--entity-name",
            "t",
            "--describe",
        ],
    ] {
        let (stdout, stderr) = fails(&args);
        assert_eq!(stdout, "", "{args:?}");
        assert_eq!(stderr, expected, "{args:?}");
    }
}

#[test]
fn topics_flags_and_errors() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    let t = |extra: &[&'static str]| {
        let mut v = vec!["topics", "--bootstrap-server", bs.as_str()];
        v.extend_from_slice(extra);
        v
    };
    assert_eq!(
        ok(&t(&[
            "--create",
            "--topic",
            "t1",
            "--partitions",
            "2",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=1000"
        ])),
        "Created topic t1.\n"
    );
    let (_, err) = fails(&t(&["--create", "--topic", "t1", "--partitions", "2"]));
    assert_eq!(
        err,
        "Error while executing topic command : Topic 't1' already exists.\n"
    );
    assert_eq!(
        ok(&t(&[
            "--create",
            "--topic",
            "t1",
            "--partitions",
            "2",
            "--if-not-exists"
        ])),
        ""
    );
    let (_, err) = fails(&t(&["--create", "--topic", "t0", "--partitions", "0"]));
    assert_eq!(
        err,
        "Error while executing topic command : The partitions must be greater than 0\n"
    );
    let (_, err) = fails(&t(&[
        "--create",
        "--topic",
        "t2",
        "--config",
        "no.such.config=1",
    ]));
    assert!(
        err.starts_with("Error while executing topic command : "),
        "{err}"
    );
    assert!(err.contains("no.such.config"), "{err}");
    assert_eq!(
        ok(&t(&["--create", "--topic", "t3"])),
        "Created topic t3.\n"
    );

    assert_eq!(ok(&t(&["--list"])), "t1\nt3\n");

    let describe = ok(&t(&["--describe", "--topic", "t1"]));
    let lines: Vec<&str> = describe.lines().collect();
    assert_eq!(lines.len(), 3, "{describe}");
    let (head, tail) = lines[0]
        .split_once("\tPartitionCount")
        .expect("header line");
    assert!(head.starts_with("Topic: t1\tTopicId: "), "{head}");
    assert_eq!(head.len(), "Topic: t1\tTopicId: ".len() + 22, "{head}");
    assert_eq!(
        tail,
        ": 2\tReplicationFactor: 1\tConfigs: retention.ms=1000"
    );
    assert_eq!(
        lines[1],
        "\tTopic: t1\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1"
    );
    assert_eq!(
        lines[2],
        "\tTopic: t1\tPartition: 1\tLeader: 1\tReplicas: 1\tIsr: 1"
    );

    assert_eq!(
        ok(&t(&["--alter", "--topic", "t1", "--partitions", "4"])),
        ""
    );
    let describe = ok(&t(&["--describe", "--topic", "t1"]));
    assert!(describe.contains("\tPartitionCount: 4\t"), "{describe}");
    assert!(describe.ends_with("\tTopic: t1\tPartition: 3\tLeader: 1\tReplicas: 1\tIsr: 1\n"));
    let (_, err) = fails(&t(&["--alter", "--topic", "t1", "--partitions", "1"]));
    assert_eq!(
        err,
        "Error while executing topic command : Topic currently has 4 partitions, which is higher than the requested 1.\n"
    );

    let (_, err) = fails(&t(&["--describe", "--topic", "nope"]));
    assert_eq!(
        err,
        "Error while executing topic command : Topic 'nope' does not exist as expected\n"
    );
    let (_, err) = fails(&t(&["--delete", "--topic", "nope"]));
    assert_eq!(
        err,
        "Error while executing topic command : Topic 'nope' does not exist as expected\n"
    );
    assert_eq!(ok(&t(&["--delete", "--topic", "nope", "--if-exists"])), "");

    assert_eq!(ok(&t(&["--delete", "--topic", "t3"])), "");
    assert!(wait_until(TOOL_TIMEOUT, || ok(&t(&["--list"])) == "t1\n"));
}

#[test]
fn configs_describe_and_alter() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    ok(&[
        "topics",
        "--bootstrap-server",
        &bs,
        "--create",
        "--topic",
        "c1",
    ]);
    let c = |extra: &[&'static str]| {
        let mut v = vec![
            "configs",
            "--bootstrap-server",
            bs.as_str(),
            "--entity-type",
            "topics",
            "--entity-name",
            "c1",
        ];
        v.extend_from_slice(extra);
        v
    };
    assert_eq!(
        ok(&c(&["--describe"])),
        "Dynamic configs for topic c1 are:\n"
    );
    assert_eq!(
        ok(&c(&[
            "--alter",
            "--add-config",
            "retention.ms=5000,cleanup.policy=[compact,delete]"
        ])),
        "Completed updating config for topic c1.\n"
    );
    let described = ok(&c(&["--describe"]));
    let lines: Vec<&str> = described.lines().collect();
    assert_eq!(lines[0], "Dynamic configs for topic c1 are:");
    assert_eq!(lines.len(), 3, "{described}");
    assert!(lines[1].starts_with("  cleanup.policy=compact,delete sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:cleanup.policy=compact,delete"), "{described}");
    assert!(
        lines[2].starts_with(
            "  retention.ms=5000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=5000"
        ),
        "{described}"
    );
    assert_eq!(
        ok(&c(&["--alter", "--delete-config", "cleanup.policy"])),
        "Completed updating config for topic c1.\n"
    );
    let described = ok(&c(&["--describe"]));
    assert_eq!(described.lines().count(), 2, "{described}");
    assert!(ok(&c(&["--describe", "--all"])).starts_with("All configs for topic c1 are:\n"));

    let (_, err) = fails(&c(&["--alter", "--add-config", "no.such.config=1"]));
    let mut err_lines = err.lines();
    assert_eq!(
        err_lines.next().unwrap(),
        format!("Error while executing config command with args '--bootstrap-server {bs} --entity-type topics --entity-name c1 --alter --add-config no.such.config=1'")
    );
    assert!(err_lines
        .next()
        .unwrap()
        .starts_with("org.apache.kafka.common.errors.InvalidConfigurationException: "));

    let broker_describe = ok(&[
        "configs",
        "--bootstrap-server",
        &bs,
        "--entity-type",
        "brokers",
        "--entity-name",
        "1",
        "--describe",
    ]);
    assert_eq!(
        broker_describe.lines().next(),
        Some("Dynamic configs for broker 1 are:")
    );
}

#[test]
fn producer_and_consumer_flags() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    ok(&[
        "topics",
        "--bootstrap-server",
        &bs,
        "--create",
        "--topic",
        "p",
        "--partitions",
        "1",
    ]);
    let produce = |extra: &[&str], input: &str| {
        let mut v = vec![
            "console-producer",
            "--bootstrap-server",
            bs.as_str(),
            "--topic",
            "p",
        ];
        v.extend_from_slice(extra);
        assert_eq!(ok_with_input(&v, input), "");
    };
    produce(
        &[
            "--property",
            "parse.key=true",
            "--property",
            "parse.headers=true",
        ],
        "h1:a,h2:b\tk0\tv0\n",
    );
    for codec in ["gzip", "snappy", "lz4", "zstd", "none"] {
        produce(&["--compression-codec", codec], &format!("{codec}\n"));
    }
    produce(&["--request-required-acks", "1", "--sync"], "acks1\n");
    produce(
        &[
            "--producer-property",
            "acks=0",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=|",
        ],
        "k|acks0\n",
    );
    let out = vltava(
        &[
            "console-producer",
            "--bootstrap-server",
            &bs,
            "--topic",
            "p",
            "--property",
            "parse.key=true",
        ],
        "nokey\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "org.apache.kafka.common.KafkaException: No key separator found on line number 1: 'nokey'\n"
    );

    let consume = |extra: &[&str]| {
        let mut v = vec![
            "console-consumer",
            "--bootstrap-server",
            bs.as_str(),
            "--topic",
            "p",
        ];
        v.extend_from_slice(extra);
        let out = vltava(&v, "");
        (stdout_ok(&v, &out), text(&out.stderr))
    };
    let (printed, err) = consume(&[
        "--partition",
        "0",
        "--offset",
        "0",
        "--max-messages",
        "8",
        "--property",
        "print.key=true",
        "--property",
        "print.headers=true",
        "--property",
        "print.offset=true",
        "--property",
        "print.partition=true",
    ]);
    assert_eq!(
        printed,
        "Partition:0\tOffset:0\th1:a,h2:b\tk0\tv0\n\
         Partition:0\tOffset:1\tNO_HEADERS\tnull\tgzip\n\
         Partition:0\tOffset:2\tNO_HEADERS\tnull\tsnappy\n\
         Partition:0\tOffset:3\tNO_HEADERS\tnull\tlz4\n\
         Partition:0\tOffset:4\tNO_HEADERS\tnull\tzstd\n\
         Partition:0\tOffset:5\tNO_HEADERS\tnull\tnone\n\
         Partition:0\tOffset:6\tNO_HEADERS\tnull\tacks1\n\
         Partition:0\tOffset:7\tNO_HEADERS\tk\tacks0\n"
    );
    assert_eq!(err, "Processed a total of 8 messages\n");
    let (printed, _) = consume(&["--from-beginning", "--max-messages", "2"]);
    assert_eq!(printed, "v0\ngzip\n");
    let (printed, _) = consume(&[
        "--partition",
        "0",
        "--offset",
        "6",
        "--max-messages",
        "1",
        "--property",
        "print.value=false",
        "--property",
        "print.offset=true",
    ]);
    assert_eq!(printed, "Offset:6\n");
    let (printed, _) = consume(&[
        "--partition",
        "0",
        "--offset",
        "earliest",
        "--max-messages",
        "1",
        "--property",
        "print.timestamp=true",
        "--property",
        "key.separator=|",
    ]);
    let (ts, value) = printed.trim_end().split_once('|').expect("two columns");
    assert_eq!(value, "v0");
    let ms: i64 = ts
        .strip_prefix("CreateTime:")
        .expect("CreateTime")
        .parse()
        .expect("ms");
    assert!((vltava_tests::now_ms() - ms).abs() < 600_000, "{ms}");
    let (printed, err) = consume(&["--from-beginning", "--timeout-ms", "1500"]);
    assert_eq!(printed, "v0\ngzip\nsnappy\nlz4\nzstd\nnone\nacks1\nacks0\n");
    assert!(err.ends_with("Processed a total of 8 messages\n"), "{err}");

    let (_, err) = fails(&[
        "console-consumer",
        "--bootstrap-server",
        &bs,
        "--topic",
        "p",
        "--offset",
        "3",
    ]);
    assert_eq!(err, "The partition is required when offset is specified.\n");
}

/// Produces `values` (one per line) to `topic`.
fn produce_lines(bs: &str, topic: &str, values: &[String]) {
    let input: String = values.iter().map(|v| format!("{v}\n")).collect();
    assert_eq!(
        ok_with_input(
            &[
                "console-producer",
                "--bootstrap-server",
                bs,
                "--topic",
                topic
            ],
            &input
        ),
        ""
    );
}

fn group_consume(bs: &str, topic: &str, group: &str, max: &str) -> String {
    ok(&[
        "console-consumer",
        "--bootstrap-server",
        bs,
        "--topic",
        topic,
        "--group",
        group,
        "--from-beginning",
        "--max-messages",
        max,
    ])
}

#[test]
fn consumer_groups_lag_reset_and_delete() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    ok(&[
        "topics",
        "--bootstrap-server",
        &bs,
        "--create",
        "--topic",
        "g",
        "--partitions",
        "1",
    ]);
    let values: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
    produce_lines(&bs, "g", &values);

    // A member reads four records and commits offset 4 when it leaves.
    assert_eq!(group_consume(&bs, "g", "grp", "4"), "v0\nv1\nv2\nv3\n");
    assert_eq!(
        ok(&["consumer-groups", "--bootstrap-server", &bs, "--list"]),
        "grp\n"
    );
    let describe = |extra: &[&str]| {
        let mut v = vec![
            "consumer-groups",
            "--bootstrap-server",
            bs.as_str(),
            "--describe",
            "--group",
            "grp",
        ];
        v.extend_from_slice(extra);
        let out = vltava(&v, "");
        (stdout_ok(&v, &out), text(&out.stderr))
    };
    let (table, err) = describe(&[]);
    assert_eq!(err, "\nConsumer group 'grp' has no active members.\n");
    // LAG = LOG-END-OFFSET (10) - CURRENT-OFFSET (4).
    assert_eq!(
        table,
        "\nGROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID     HOST            CLIENT-ID\n\
         grp             g               0          4               10              6               -               -               -\n"
    );
    let (state, _) = describe(&["--state"]);
    let state_lines: Vec<&str> = state.lines().collect();
    assert_eq!(
        state_lines[1].split_whitespace().collect::<Vec<_>>(),
        [
            "GROUP",
            "COORDINATOR",
            "(ID)",
            "ASSIGNMENT-STRATEGY",
            "STATE",
            "#MEMBERS"
        ]
    );
    let row: Vec<&str> = state_lines[2].split_whitespace().collect();
    assert_eq!(row[0], "grp");
    assert_eq!(row[row.len() - 2..], ["Empty", "0"]);

    let reset = |extra: &[&str]| {
        let mut v = vec![
            "consumer-groups",
            "--bootstrap-server",
            bs.as_str(),
            "--reset-offsets",
            "--group",
            "grp",
            "--topic",
            "g",
        ];
        v.extend_from_slice(extra);
        ok(&v)
    };
    let table = |offset: i64| {
        format!(
            "\nGROUP                          TOPIC                          PARTITION  NEW-OFFSET     \n\
             grp                            g                              0          {offset:<15}\n"
        )
    };
    // Dry run by default: prints, changes nothing.
    assert_eq!(reset(&["--to-earliest", "--dry-run"]), table(0));
    assert!(describe(&[])
        .0
        .contains(" 4               10              6 "));
    assert_eq!(reset(&["--shift-by", "-1", "--dry-run"]), table(3));
    assert_eq!(reset(&["--to-offset", "99", "--dry-run"]), table(10));
    assert_eq!(reset(&["--to-latest", "--dry-run"]), table(10));
    assert_eq!(reset(&["--by-duration", "P1D", "--dry-run"]), table(0));
    assert_eq!(
        reset(&["--to-datetime", "2999-01-01T00:00:00.000", "--dry-run"]),
        table(10)
    );

    assert_eq!(reset(&["--to-offset", "7", "--execute"]), table(7));
    assert!(describe(&[])
        .0
        .contains(" 7               10              3 "));
    // A consumer in the group resumes exactly there.
    assert_eq!(group_consume(&bs, "g", "grp", "1"), "v7\n");
    assert!(describe(&[])
        .0
        .contains(" 8               10              2 "));

    assert_eq!(
        ok(&[
            "consumer-groups",
            "--bootstrap-server",
            &bs,
            "--delete",
            "--group",
            "grp"
        ]),
        "Deletion of requested consumer groups ('grp') was successful.\n"
    );
    assert_eq!(
        ok(&["consumer-groups", "--bootstrap-server", &bs, "--list"]),
        ""
    );
}

#[test]
fn broker_api_versions_and_cluster() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    let versions = ok(&["broker-api-versions", "--bootstrap-server", &bs]);
    let lines: Vec<&str> = versions.lines().collect();
    assert_eq!(lines[0], format!("{bs} (id: 1 rack: null) -> ("));
    assert_eq!(lines[1], "\tProduce(0): 3 to 11 [usable: 11],");
    assert!(
        lines.contains(&"\tApiVersions(18): 0 to 4 [usable: 3],"),
        "{versions}"
    );
    assert_eq!(lines.last(), Some(&")"));
    let cluster = ok(&["cluster", "--bootstrap-server", &bs]);
    let lines: Vec<&str> = cluster.lines().collect();
    assert!(lines[0].starts_with("Cluster ID: ") && lines[0].len() > "Cluster ID: ".len());
    assert_eq!(
        lines[1..],
        [
            format!("Controller: 1 ({bs})"),
            "Brokers:".to_string(),
            format!("  1 {bs} rack: null")
        ]
    );
    // kafka-cluster.sh's subcommands: the same id, and a clear refusal to
    // unregister a broker that is alive, or one never registered.
    let mut cluster_id = script("kafka-cluster.sh");
    cluster_id.args(["cluster-id", "--bootstrap-server", &bs]);
    let out = run_tool(cluster_id, "", TOOL_TIMEOUT);
    assert_eq!(
        stdout_ok("kafka-cluster.sh", &out),
        format!("{}\n", lines[0])
    );
    let (stdout, stderr) = fails(&[
        "cluster",
        "unregister",
        "--bootstrap-server",
        &bs,
        "--id",
        "1",
    ]);
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        "Error: Broker 1 is alive (not fenced): stop it before unregistering it\n"
    );
    let (stdout, stderr) = fails(&[
        "cluster",
        "unregister",
        "--bootstrap-server",
        &bs,
        "--id",
        "7",
    ]);
    assert_eq!(stdout, "");
    assert_eq!(stderr, "Error: Broker ID 7 is not currently registered\n");
}
