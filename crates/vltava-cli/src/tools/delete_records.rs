//! `vltava delete-records`: `kafka-delete-records.sh` with the same flags,
//! JSON file and output. Every record before each partition's offset is
//! deleted (offset -1: up to the high watermark) and the partition's new
//! log start offset, Kafka's "low watermark", is printed.

use std::collections::BTreeMap;

use clap::Args;
use serde_json::Value;
use vltava_client::consumer::TopicPartition;
use vltava_client::Admin;

use super::{connect_with, fail, java_exception, read_command_config};
use super::{BOOTSTRAP_DEFAULT, BOOTSTRAP_ENV};

/// The offset file is read whole; anything larger than this is not a list
/// of partitions a broker would accept in one request anyway.
const OFFSET_JSON_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Delete records of partitions down to an offset (kafka-delete-records.sh).
#[derive(Args, Debug)]
pub struct DeleteRecordsArgs {
    /// The server(s) to connect to; default $VLTAVA_BOOTSTRAP, else
    /// 127.0.0.1:9092 (the zero-config broker).
    #[arg(long, env = BOOTSTRAP_ENV, default_value = BOOTSTRAP_DEFAULT, value_name = "server(s) to use for bootstrapping")]
    pub bootstrap_server: String,
    /// REQUIRED: The JSON file with offset per partition. The format to use
    /// is: {"partitions": [{"topic": "foo", "partition": 1, "offset": 1}], "version": 1}
    #[arg(long, value_name = "Offset json file path")]
    pub offset_json_file: String,
    /// Client settings for the admin connection (client.id); security
    /// settings and anything else are refused, never ignored.
    #[arg(long, value_name = "command config property file path")]
    pub command_config: Option<String>,
}

pub async fn run(args: DeleteRecordsArgs) -> anyhow::Result<()> {
    let command = read_command_config(args.command_config.as_deref())?;
    let text = super::read_text_capped(
        &args.offset_json_file,
        OFFSET_JSON_BYTES_MAX,
        "an offset JSON file",
    )?;
    let offsets = parse_offsets(&text)?;
    let client = connect_with(&args.bootstrap_server, &command, "vltava-delete-records").await?;
    println!("Executing records delete operation");
    let results = Admin::new(client).delete_records(&offsets).await?;
    println!("Records delete operation completed:");
    for ((topic, partition), result) in results {
        match result {
            Ok(low_watermark) => {
                println!("partition: {topic}-{partition}\tlow_watermark: {low_watermark}")
            }
            Err(e) => println!(
                "partition: {topic}-{partition}\terror: {}: {}",
                java_exception(e.code),
                e.text()
            ),
        }
    }
    Ok(())
}

/// Kafka's offset JSON, version 1 (the version field may be left out). A
/// partition named twice is refused, as Kafka refuses it.
pub fn parse_offsets(text: &str) -> anyhow::Result<BTreeMap<TopicPartition, i64>> {
    let Ok(json) = serde_json::from_str::<Value>(text) else {
        return fail("The input string is not a valid JSON");
    };
    let Some(object) = json.as_object() else {
        return fail("The input string is not a JSON object");
    };
    match object.get("version") {
        None => {}
        Some(v) if v.as_i64() == Some(1) => {}
        Some(v) => return fail(format!("Not supported version field value {v}")),
    }
    let Some(partitions) = object.get("partitions") else {
        return fail("Missing partitions field");
    };
    let Some(partitions) = partitions.as_array() else {
        return fail("Expected an array of partitions in the partitions field");
    };
    let mut offsets = BTreeMap::new();
    let mut duplicates = Vec::new();
    for p in partitions {
        let topic = field(p, "topic", Value::as_str)?;
        let partition = field(p, "partition", Value::as_i64)?;
        let offset = field(p, "offset", Value::as_i64)?;
        let Ok(partition) = i32::try_from(partition) else {
            return fail(format!("partition {partition} of {topic} is not an INT32"));
        };
        let key = (topic.to_string(), partition);
        if offsets.insert(key.clone(), offset).is_some() && !duplicates.contains(&key) {
            duplicates.push(key);
        }
    }
    if !duplicates.is_empty() {
        let names: Vec<String> = duplicates.iter().map(|(t, p)| format!("{t}-{p}")).collect();
        return fail(format!(
            "Offset json file contains duplicate topic partitions: {}",
            names.join(",")
        ));
    }
    Ok(offsets)
}

fn field<'a, T>(
    partition: &'a Value,
    name: &str,
    get: impl Fn(&'a Value) -> Option<T>,
) -> anyhow::Result<T> {
    match partition.get(name) {
        None => fail(format!("No such field exists: `{name}` in {partition}")),
        Some(v) => match get(v) {
            Some(value) => Ok(value),
            None => fail(format!("Field `{name}` has the wrong type: {v}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse_offsets(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_kafkas_format_with_and_without_version() {
        let offsets = parse_offsets(
            r#"{"partitions": [{"topic": "foo", "partition": 1, "offset": 7},
                {"topic": "bar", "partition": 0, "offset": -1}], "version": 1}"#,
        )
        .unwrap();
        assert_eq!(
            offsets.into_iter().collect::<Vec<_>>(),
            [(("bar".to_string(), 0), -1), (("foo".to_string(), 1), 7)]
        );
        let offsets =
            parse_offsets(r#"{"partitions": [{"topic": "t", "partition": 0, "offset": 2}]}"#)
                .unwrap();
        assert_eq!(offsets.len(), 1);
    }

    #[test]
    fn refuses_what_kafka_refuses() {
        assert_eq!(error("{"), "The input string is not a valid JSON");
        assert_eq!(error(r#"{"version": 1}"#), "Missing partitions field");
        assert_eq!(
            error(r#"{"partitions": [], "version": 2}"#),
            "Not supported version field value 2"
        );
        assert_eq!(
            error(
                r#"{"partitions": [{"topic": "t", "partition": 0, "offset": 1},
                    {"topic": "t", "partition": 0, "offset": 2}]}"#
            ),
            "Offset json file contains duplicate topic partitions: t-0"
        );
        assert_eq!(
            error(r#"{"partitions": [{"topic": "t", "partition": 0}]}"#),
            r#"No such field exists: `offset` in {"partition":0,"topic":"t"}"#
        );
        assert_eq!(
            error(r#"{"partitions": [{"topic": "t", "partition": 4294967296, "offset": 1}]}"#),
            "partition 4294967296 of t is not an INT32"
        );
        assert_eq!(
            error(r#"{"partitions": [{"topic": 5, "partition": 0, "offset": 1}]}"#),
            "Field `topic` has the wrong type: 5"
        );
    }
}
