//! `vltava leader-election`: `kafka-leader-election.sh` with the same flags
//! and output. Elects the preferred (first) replica, or for a partition
//! without a leader any live replica (unclean), for one partition, the
//! partitions of a JSON file, or every partition.

use clap::{Args, ValueEnum};
use serde_json::Value;
use vltava_client::consumer::TopicPartition;
use vltava_client::Admin;

use super::{connect_with, fail, java_exception, read_command_config};
use super::{BOOTSTRAP_DEFAULT, BOOTSTRAP_ENV};

/// The partitions file is read whole; a larger one is not a list a broker
/// would take in one request anyway.
const PARTITIONS_JSON_BYTES_MAX: u64 = 16 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "lower")]
pub enum ElectionType {
    Preferred,
    Unclean,
}

impl ElectionType {
    /// As Kafka prints it.
    fn name(self) -> &'static str {
        match self {
            ElectionType::Preferred => "PREFERRED",
            ElectionType::Unclean => "UNCLEAN",
        }
    }
}

/// Elect leaders for partitions (kafka-leader-election.sh).
#[derive(Args, Debug)]
pub struct LeaderElectionArgs {
    /// The server(s) to connect to; default $VLTAVA_BOOTSTRAP, else
    /// 127.0.0.1:9092 (the zero-config broker).
    #[arg(long, env = BOOTSTRAP_ENV, default_value = BOOTSTRAP_DEFAULT, value_name = "host:port")]
    pub bootstrap_server: String,
    /// REQUIRED: "preferred" for the preferred (first) replica where it is not
    /// the leader, "unclean" for any live replica where there is no leader.
    #[arg(long, value_enum, ignore_case = true, value_name = "election type")]
    pub election_type: Option<ElectionType>,
    /// Name of the topic to elect for; needs --partition.
    #[arg(long, value_name = "topic name", conflicts_with_all = ["all_topic_partitions", "path_to_json_file"])]
    pub topic: Option<String>,
    /// Partition to elect for; only with --topic.
    #[arg(long, value_name = "partition id", requires = "topic")]
    pub partition: Option<i32>,
    /// Elect for every partition the election type applies to.
    #[arg(long, conflicts_with = "path_to_json_file")]
    pub all_topic_partitions: bool,
    /// A JSON file naming the partitions: {"partitions": [{"topic": "foo", "partition": 1}]}.
    #[arg(long, value_name = "Path to JSON file")]
    pub path_to_json_file: Option<String>,
    /// Client settings for the admin connection (client.id); security
    /// settings and anything else are refused, never ignored.
    #[arg(long, value_name = "Config file", alias = "admin.config")]
    pub command_config: Option<String>,
}

pub async fn run(args: LeaderElectionArgs) -> anyhow::Result<()> {
    let Some(kind) = args.election_type else {
        return fail("Missing required option(s): election-type");
    };
    let chosen = [
        args.topic.is_some(),
        args.all_topic_partitions,
        args.path_to_json_file.is_some(),
    ]
    .iter()
    .filter(|c| **c)
    .count();
    if chosen != 1 {
        return fail(
            "One and only one of the following options is required: topic, all-topic-partitions, path-to-json-file",
        );
    }
    let partitions: Option<Vec<TopicPartition>> = match (&args.topic, &args.path_to_json_file) {
        (Some(topic), _) => {
            let Some(partition) = args.partition else {
                return fail("Missing required option(s): partition");
            };
            Some(vec![(topic.clone(), partition)])
        }
        (None, Some(path)) => {
            let text =
                super::read_text_capped(path, PARTITIONS_JSON_BYTES_MAX, "a partitions JSON file")?;
            Some(parse_partitions(&text)?)
        }
        (None, None) => None,
    };
    let command = read_command_config(args.command_config.as_deref())?;
    let client = connect_with(&args.bootstrap_server, &command, "vltava-leader-election").await?;
    let results = Admin::new(client)
        .elect_leaders(kind == ElectionType::Unclean, partitions.as_deref())
        .await?;
    let name = |(t, p): &TopicPartition| format!("{t}-{p}");
    let mut succeeded = Vec::new();
    let mut not_needed = Vec::new();
    let mut failed = Vec::new();
    for (partition, result) in &results {
        match result {
            Ok(()) => succeeded.push(name(partition)),
            Err(e) if e.code == 84 => not_needed.push(name(partition)),
            Err(e) => failed.push((name(partition), e)),
        }
    }
    if !succeeded.is_empty() {
        println!(
            "Successfully completed leader election ({}) for partitions {}",
            kind.name(),
            succeeded.join(", ")
        );
    }
    if !not_needed.is_empty() {
        println!(
            "Valid replica already elected for partitions {}",
            not_needed.join(", ")
        );
    }
    if failed.is_empty() {
        return Ok(());
    }
    for (partition, e) in &failed {
        println!(
            "Error completing leader election ({}) for partition: {partition}: {}: {}",
            kind.name(),
            java_exception(e.code),
            e.text()
        );
    }
    fail(format!("{} replica(s) could not be elected", failed.len()))
}

/// Kafka's election JSON: `{"partitions": [{"topic": t, "partition": p}]}`;
/// a partition named twice is refused, as Kafka refuses it.
pub fn parse_partitions(text: &str) -> anyhow::Result<Vec<TopicPartition>> {
    let Ok(json) = serde_json::from_str::<Value>(text) else {
        return fail("The input string is not a valid JSON");
    };
    let Some(list) = json.get("partitions").and_then(Value::as_array) else {
        return fail("Replica election data is missing \"partitions\" field");
    };
    let mut out: Vec<TopicPartition> = Vec::with_capacity(list.len());
    for entry in list {
        let topic = entry.get("topic").and_then(Value::as_str);
        let partition = entry
            .get("partition")
            .and_then(Value::as_i64)
            .and_then(|p| i32::try_from(p).ok());
        let (Some(topic), Some(partition)) = (topic, partition) else {
            return fail(format!(
                "Each partition needs a topic and a partition: {entry}"
            ));
        };
        let tp = (topic.to_string(), partition);
        if out.contains(&tp) {
            return fail(format!(
                "Replica election data contains duplicate partitions: {topic}-{partition}"
            ));
        }
        out.push(tp);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partitions_file_is_read_as_kafka_reads_it() {
        let ok = parse_partitions(
            r#"{"partitions":[{"topic":"a","partition":1},{"topic":"b","partition":0}]}"#,
        )
        .unwrap();
        assert_eq!(ok, [("a".to_string(), 1), ("b".to_string(), 0)]);
        for bad in [
            "nope",
            r#"{"x":[]}"#,
            r#"{"partitions":[{"topic":"a"}]}"#,
            r#"{"partitions":[{"topic":"a","partition":1},{"topic":"a","partition":1}]}"#,
        ] {
            assert!(parse_partitions(bad).is_err(), "{bad}");
        }
    }
}
