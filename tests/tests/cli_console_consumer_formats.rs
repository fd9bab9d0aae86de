//! `vltava console-consumer --formatter`, `--formatter-config`,
//! `--key-deserializer`/`--value-deserializer` and `--include` against a
//! real broker, output compared byte for byte.

use std::process::Output;

use bytes::Bytes;
use vltava_tests::raw::{RawClient, TestRecord};
use vltava_tests::{stdout_ok, text, vltava_tool, TestBroker};

fn consumer(bs: &str, args: &[&str]) -> Output {
    vltava_tool("console-consumer", bs, args)
}

/// Runs the consumer on partition 0 of `topic` from offset 0 for `count`
/// records; returns stdout after checking the exit and the summary line.
fn read(bs: &str, topic: &str, count: usize, extra: &[&str]) -> String {
    let count_text = count.to_string();
    let mut args = vec![
        "--topic",
        topic,
        "--partition",
        "0",
        "--offset",
        "0",
        "--max-messages",
        &count_text,
    ];
    args.extend_from_slice(extra);
    let out = consumer(bs, &args);
    let stdout = stdout_ok(extra, &out);
    assert_eq!(
        text(&out.stderr),
        format!("Processed a total of {count} messages\n"),
        "{extra:?}"
    );
    stdout
}

fn record(key: Option<&[u8]>, value: Option<&[u8]>, headers: &[(&str, &[u8])]) -> TestRecord {
    TestRecord {
        key: key.map(Bytes::copy_from_slice),
        value: value.map(Bytes::copy_from_slice),
        timestamp_ms: 1_700_000_000_000,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), Some(Bytes::copy_from_slice(v))))
            .collect(),
    }
}

#[test]
fn formatters_and_deserializers() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(c.create_topic_code("fmt", 1).unwrap(), 0);
    c.produce_ok(
        "fmt",
        0,
        &[
            record(Some(&42i64.to_be_bytes()), Some(b"hello"), &[("h", b"v")]),
            record(None, Some(&[0xff, 0x00]), &[]),
        ],
    );

    // Kafka's class names, any package, with Kafka's properties.
    let long_key = [
        "--formatter",
        "kafka.tools.DefaultMessageFormatter",
        "--property",
        "print.key=true",
        "--property",
        "print.offset=true",
        "--property",
        "print.epoch=true",
        "--key-deserializer",
        "org.apache.kafka.common.serialization.LongDeserializer",
    ];
    assert_eq!(
        read(&bs, "fmt", 1, &long_key),
        "Offset:0\tEpoch:0\t42\thello\n"
    );

    // One JSON object per record; bytes that are not UTF-8 are base64.
    assert_eq!(
        read(&bs, "fmt", 2, &["--formatter", "json"]),
        concat!(
            r#"{"topic":"fmt","partition":0,"offset":0,"timestamp":1700000000000,"timestampType":"CreateTime","leaderEpoch":0,"headers":[{"key":"h","value":"v"}],"key":"\u0000\u0000\u0000\u0000\u0000\u0000\u0000*","value":"hello"}"#,
            "\n",
            r#"{"topic":"fmt","partition":0,"offset":1,"timestamp":1700000000000,"timestampType":"CreateTime","leaderEpoch":0,"headers":[],"key":null,"value":"/wA=","valueEncoding":"base64"}"#,
            "\n"
        )
    );
    assert_eq!(
        read(
            &bs,
            "fmt",
            2,
            &[
                "--formatter",
                "org.apache.kafka.tools.consumer.NoOpMessageFormatter"
            ]
        ),
        ""
    );

    // --property wins over --formatter-config.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("formatter.properties");
    std::fs::write(
        &config,
        "print.offset=true\nprint.partition=true\nkey.separator=|\n",
    )
    .unwrap();
    let config = config.to_string_lossy().into_owned();
    assert_eq!(
        read(
            &bs,
            "fmt",
            1,
            &[
                "--formatter-config",
                &config,
                "--property",
                "print.offset=false"
            ]
        ),
        "Partition:0|hello\n"
    );

    // A value the deserializer cannot read stops the consumer, as Kafka's
    // does, unless --skip-message-on-error.
    let out = consumer(
        &bs,
        &[
            "--topic",
            "fmt",
            "--partition",
            "0",
            "--offset",
            "0",
            "--max-messages",
            "2",
            "--value-deserializer",
            "org.apache.kafka.common.serialization.IntegerDeserializer",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        "Processed a total of 0 messages\nError processing message, terminating consumer process: org.apache.kafka.common.errors.SerializationException: Size of data received by IntegerDeserializer is not 4\n"
    );
    let out = consumer(
        &bs,
        &[
            "--topic",
            "fmt",
            "--partition",
            "0",
            "--offset",
            "0",
            "--max-messages",
            "2",
            "--property",
            "value.deserializer=ShortDeserializer",
            "--skip-message-on-error",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // "hello" is 5 bytes and skipped; 0xff00 is the short -256.
    assert_eq!(text(&out.stdout), "-256\n");
    assert_eq!(
        text(&out.stderr),
        "Error processing message, skipping this message: org.apache.kafka.common.errors.SerializationException: Size of data received by ShortDeserializer is not 2\nProcessed a total of 2 messages\n"
    );

    let out = consumer(
        &bs,
        &[
            "--topic",
            "fmt",
            "--formatter",
            "kafka.tools.Fancy",
            "--max-messages",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("Error: unknown formatter kafka.tools.Fancy: "),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn include_selects_topics_by_regex() {
    let broker = TestBroker::start(&[]);
    let bs = broker.bootstrap();
    let mut c = RawClient::connect(broker.addr()).unwrap();
    for topic in ["inc-a", "inc-b", "other"] {
        assert_eq!(c.create_topic_code(topic, 1).unwrap(), 0);
        c.produce_ok(topic, 0, &[record(None, Some(topic.as_bytes()), &[])]);
    }
    // Kafka's include list: commas separate alternatives.
    let out = consumer(
        &bs,
        &[
            "--include",
            "inc-a, inc-b",
            "--from-beginning",
            "--max-messages",
            "2",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut lines: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    lines.sort();
    assert_eq!(lines, ["inc-a", "inc-b"]);

    // In a group the member subscribes to every match and commits both.
    let out = consumer(
        &bs,
        &[
            "--include",
            "inc-a|other",
            "--group",
            "gi",
            "--from-beginning",
            "--max-messages",
            "2",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut lines: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    lines.sort();
    assert_eq!(lines, ["inc-a", "other"]);
    let out = vltava_tool(
        "consumer-groups",
        &bs,
        &[
            "--group",
            "gi",
            "--reset-offsets",
            "--all-topics",
            "--to-current",
            "--dry-run",
            "--export",
        ],
    );
    assert_eq!(text(&out.stdout), "inc-a,0,1\nother,0,1\n\n");

    for (args, message) in [
        (
            &["--include", "inc-.*", "--topic", "inc-a"][..],
            "Exactly one of --include/--topic is required. \n",
        ),
        (
            &["--max-messages", "1"][..],
            "Exactly one of --include/--topic is required. \n",
        ),
        (
            &["--include", "inc-.*", "--partition", "0"][..],
            "The topic is required when partition is specified.\n",
        ),
        (
            &["--include", "nothing-.*"][..],
            "Error: no topic matches --include nothing-.*\n",
        ),
    ] {
        let out = consumer(&bs, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&out.stderr), message, "{args:?}");
    }
}
