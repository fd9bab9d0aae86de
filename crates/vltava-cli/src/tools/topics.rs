//! `vltava topics`: `kafka-topics.sh` with the same flags and output.

use super::{BOOTSTRAP_DEFAULT, BOOTSTRAP_ENV};
use clap::{ArgGroup, Args};
use vltava_client::admin::{ConfigEntry, NewTopic, ResourceType};
use vltava_client::client::TopicInfo;
use vltava_client::error::codes;
use vltava_client::Admin;

use super::{connect_with, fail, kafka_uuid, parse_pairs};

/// Create, list, describe, alter or delete topics (kafka-topics.sh).
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("action").required(true).args(["create", "list", "describe", "alter", "delete"])))]
pub struct TopicsArgs {
    /// The Kafka server to connect to (host:port[,host:port]); default $VLTAVA_BOOTSTRAP, else 127.0.0.1:9092 (the
    /// zero-config broker).
    #[arg(long, env = BOOTSTRAP_ENV, default_value = BOOTSTRAP_DEFAULT, value_name = "String: server to connect to")]
    pub bootstrap_server: String,
    /// Create a new topic.
    #[arg(long)]
    pub create: bool,
    /// List all available topics.
    #[arg(long)]
    pub list: bool,
    /// List details for the given topics.
    #[arg(long)]
    pub describe: bool,
    /// Alter the number of partitions of a topic.
    #[arg(long)]
    pub alter: bool,
    /// Delete a topic.
    #[arg(long)]
    pub delete: bool,
    /// The topic to create, alter, describe or delete. Except with
    /// --create, a regular expression (matched whole; commas separate
    /// alternatives) selects several; escape `.` as `\\.` to mean a dot.
    #[arg(long, value_name = "String: topic")]
    pub topic: Option<String>,
    /// The number of partitions for the topic being created or altered.
    #[arg(long, value_name = "Integer: # of partitions")]
    pub partitions: Option<i32>,
    /// The replication factor for each partition in the topic being created.
    #[arg(long, value_name = "Integer: replication factor")]
    pub replication_factor: Option<i32>,
    /// A topic configuration override for the topic being created (repeatable).
    #[arg(long = "config", value_name = "String: name=value")]
    pub configs: Vec<String>,
    /// If set when creating topics, the action will only execute if the topic does not already exist.
    #[arg(long)]
    pub if_not_exists: bool,
    /// If set when altering, deleting or describing topics, the action will only execute if the topic exists.
    #[arg(long)]
    pub if_exists: bool,
    /// Exclude internal topics when listing or describing topics.
    #[arg(long)]
    pub exclude_internal: bool,
    /// Manual partition-to-broker assignments for the topic being created
    /// or altered: broker ids of one partition's replicas joined by `:`,
    /// partitions joined by `,`.
    #[arg(
        long,
        value_name = "String: broker_id_for_part1_replica1 : broker_id_for_part1_replica2 , broker_id_for_part2_replica1 : broker_id_for_part2_replica2 , ..."
    )]
    pub replica_assignment: Option<String>,
    /// If set when describing topics, only show under-replicated partitions.
    #[arg(long)]
    pub under_replicated_partitions: bool,
    /// If set when describing topics, only show partitions whose leader is
    /// not available.
    #[arg(long)]
    pub unavailable_partitions: bool,
    /// If set when describing topics, only show partitions whose isr count is
    /// less than the configured minimum.
    #[arg(long)]
    pub under_min_isr_partitions: bool,
    /// If set when describing topics, only show partitions whose isr count is
    /// equal to the configured minimum.
    #[arg(long)]
    pub at_min_isr_partitions: bool,
    /// If set when describing topics, only show topics that have overridden
    /// configs.
    #[arg(long)]
    pub topics_with_overrides: bool,
    /// Client settings for the admin connection (client.id); security
    /// settings and anything else are refused, never ignored.
    #[arg(long, value_name = "String: command config property file")]
    pub command_config: Option<String>,
}

pub async fn run(args: TopicsArgs) -> anyhow::Result<()> {
    check_args(&args)?;
    let command = super::read_command_config(args.command_config.as_deref())?;
    let client = connect_with(&args.bootstrap_server, &command, "vltava-topics").await?;
    let admin = Admin::new(client);
    if args.create {
        create(&admin, &args).await
    } else if args.list {
        list(&admin, &args).await
    } else if args.describe {
        describe(&admin, &args).await
    } else if args.alter {
        alter(&admin, &args).await
    } else {
        delete(&admin, &args).await
    }
}

/// Kafka's checks of which options go with which action, with its words.
fn check_args(args: &TopicsArgs) -> anyhow::Result<()> {
    let action = if args.create {
        "create"
    } else if args.list {
        "list"
    } else if args.describe {
        "describe"
    } else if args.alter {
        "alter"
    } else {
        "delete"
    };
    let cannot = |option: &str, with: &str| {
        fail::<()>(format!(
            "Option \"[{option}]\" can't be used with option \"[{with}]\""
        ))
    };
    let used = |set: bool, option: &'static str, allowed: &[&str]| -> anyhow::Result<()> {
        if set && !allowed.contains(&action) {
            return cannot(option, action);
        }
        Ok(())
    };
    used(!args.configs.is_empty(), "config", &["create"])?;
    used(
        args.partitions.is_some(),
        "partitions",
        &["create", "alter"],
    )?;
    used(
        args.replication_factor.is_some(),
        "replication-factor",
        &["create"],
    )?;
    used(
        args.replica_assignment.is_some(),
        "replica-assignment",
        &["create", "alter"],
    )?;
    used(
        args.if_exists,
        "if-exists",
        &["alter", "delete", "describe"],
    )?;
    used(args.if_not_exists, "if-not-exists", &["create"])?;
    used(
        args.exclude_internal,
        "exclude-internal",
        &["list", "describe"],
    )?;
    let reports = [
        (
            args.under_replicated_partitions,
            "under-replicated-partitions",
        ),
        (args.under_min_isr_partitions, "under-min-isr-partitions"),
        (args.at_min_isr_partitions, "at-min-isr-partitions"),
        (args.unavailable_partitions, "unavailable-partitions"),
    ];
    for (set, option) in reports {
        used(set, option, &["describe"])?;
        if set && args.topics_with_overrides {
            return cannot(option, "topics-with-overrides");
        }
    }
    used(
        args.topics_with_overrides,
        "topics-with-overrides",
        &["describe"],
    )?;
    if args.create && args.replica_assignment.is_some() {
        if args.partitions.is_some() {
            return cannot("replica-assignment", "partitions");
        }
        if args.replication_factor.is_some() {
            return cannot("replica-assignment", "replication-factor");
        }
    }
    Ok(())
}

/// `--replica-assignment`: partition `i`'s broker ids, Kafka's way (a
/// broker twice in one partition and partitions of different replication
/// factors are refused).
pub fn parse_replica_assignment(list: &str) -> anyhow::Result<Vec<Vec<i32>>> {
    let mut out: Vec<Vec<i32>> = Vec::new();
    // Java's split drops trailing empty strings: "1,2," is two partitions.
    for (i, partition) in list.trim_end_matches(',').split(',').enumerate() {
        let mut brokers = Vec::new();
        for id in partition.split(':') {
            match id.trim().parse::<i32>() {
                Ok(b) => brokers.push(b),
                Err(_) => {
                    return command_error(format!(
                        "For input string: \"{}\" in --replica-assignment {list}",
                        id.trim()
                    ))
                }
            }
        }
        // Each broker named more than once, once, in order.
        let duplicates: std::collections::BTreeSet<i32> = brokers
            .iter()
            .enumerate()
            .filter(|(j, b)| brokers[..*j].contains(b))
            .map(|(_, b)| *b)
            .collect();
        if !duplicates.is_empty() {
            let ids: Vec<String> = duplicates.iter().map(i32::to_string).collect();
            return command_error(format!(
                "Partition replica lists may not contain duplicate entries: {}",
                ids.join(",")
            ));
        }
        if out
            .first()
            .is_some_and(|first| first.len() != brokers.len())
        {
            let ids: Vec<String> = brokers.iter().map(i32::to_string).collect();
            return command_error(format!(
                "Partition {i} has different replication factor: [{}]",
                ids.join(", ")
            ));
        }
        out.push(brokers);
    }
    Ok(out)
}

fn command_error<T>(message: impl std::fmt::Display) -> anyhow::Result<T> {
    fail(format!("Error while executing topic command : {message}"))
}

fn required_topic(args: &TopicsArgs, action: &str) -> anyhow::Result<String> {
    match &args.topic {
        Some(t) => Ok(t.clone()),
        None => fail(format!(
            "Missing required argument \"[topic]\" for {action}"
        )),
    }
}

async fn create(admin: &Admin, args: &TopicsArgs) -> anyhow::Result<()> {
    let topic = required_topic(args, "--create")?;
    if let Some(rf) = args.replication_factor {
        if !(1..=i32::from(i16::MAX)).contains(&rf) {
            return command_error(format!(
                "The replication factor must be between 1 and {} inclusive",
                i16::MAX
            ));
        }
    }
    if args.partitions.is_some_and(|p| p < 1) {
        return command_error("The partitions must be greater than 0");
    }
    let configs: Vec<(String, String)> = parse_pairs("--config", &args.configs)?
        .into_iter()
        .collect();
    let assignments = match &args.replica_assignment {
        Some(list) => parse_replica_assignment(list)?,
        None => Vec::new(),
    };
    let new = NewTopic {
        name: topic.clone(),
        partitions: args.partitions.unwrap_or(-1),
        replication_factor: args.replication_factor.map_or(-1, |r| r as i16),
        configs,
        assignments,
    };
    let results = admin.create_topics(&[new], false).await?;
    for (_, result) in results {
        match result {
            Ok(()) => println!("Created topic {topic}."),
            Err(e) if e.code == codes::TOPIC_ALREADY_EXISTS && args.if_not_exists => {}
            Err(e) => return command_error(e),
        }
    }
    Ok(())
}

async fn list(admin: &Admin, args: &TopicsArgs) -> anyhow::Result<()> {
    for t in selected(admin, args).await? {
        println!("{}", t.name);
    }
    Ok(())
}

/// The topics `--topic` matches (every topic without it), sorted, internal
/// ones left out with `--exclude-internal`; a `--topic` that matches
/// nothing is an error unless `--if-exists` (or `--list`).
async fn selected(admin: &Admin, args: &TopicsArgs) -> anyhow::Result<Vec<TopicInfo>> {
    let filter = args
        .topic
        .as_deref()
        .map(|t| super::include_list(t, "--topic"))
        .transpose()?;
    let topics: Vec<TopicInfo> = admin
        .list_topics()
        .await?
        .into_iter()
        .filter(|t| !(args.exclude_internal && t.is_internal))
        .filter(|t| filter.as_ref().is_none_or(|f| f.is_match(&t.name)))
        .collect();
    if let Some(name) = &args.topic {
        if topics.is_empty() && !args.if_exists && !args.list {
            return command_error(format!("Topic '{name}' does not exist as expected"));
        }
    }
    Ok(topics)
}

/// Which lines `--describe` prints, from the report flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct Report {
    pub under_replicated: bool,
    pub unavailable: bool,
    pub under_min_isr: bool,
    pub at_min_isr: bool,
    pub overridden_configs: bool,
}

impl Report {
    fn any_partition_report(&self) -> bool {
        self.under_replicated || self.unavailable || self.under_min_isr || self.at_min_isr
    }
}

async fn describe(admin: &Admin, args: &TopicsArgs) -> anyhow::Result<()> {
    let report = Report {
        under_replicated: args.under_replicated_partitions,
        unavailable: args.unavailable_partitions,
        under_min_isr: args.under_min_isr_partitions,
        at_min_isr: args.at_min_isr_partitions,
        overridden_configs: args.topics_with_overrides,
    };
    let live: Vec<i32> = admin.live_broker_ids().await?.into_iter().collect();
    for t in selected(admin, args).await? {
        let configs = admin
            .describe_configs(ResourceType::Topic, &t.name)
            .await
            .unwrap_or_default();
        print!("{}", describe_lines(&t, &configs, report, &live));
    }
    Ok(())
}

/// Kafka's `TopicDescription` and `PartitionDescription` lines: the topic
/// line unless a partition report is asked for (and, with
/// `--topics-with-overrides`, only for a topic with overrides), and the
/// partition lines that pass the report filters (none with
/// `--topics-with-overrides`). `live` is the brokers the cluster lists.
pub fn describe_lines(
    t: &TopicInfo,
    configs: &[ConfigEntry],
    report: Report,
    live: &[i32],
) -> String {
    let min_isr = configs
        .iter()
        .find(|c| c.name == "min.insync.replicas")
        .and_then(|c| c.value.as_deref())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1);
    let configs: Vec<String> = configs
        .iter()
        .filter(|c| !c.is_default())
        .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("null")))
        .collect();
    let replication_factor = t.partitions.first().map_or(0, |p| p.replicas.len());
    let mut out = String::new();
    let topic_line = if report.overridden_configs {
        !configs.is_empty()
    } else {
        !report.any_partition_report()
    };
    if topic_line {
        out.push_str(&format!("Topic: {}", t.name));
        if !t.topic_id.is_nil() {
            out.push_str(&format!("\tTopicId: {}", kafka_uuid(&t.topic_id)));
        }
        out.push_str(&format!(
            "\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}\n",
            t.partitions.len(),
            replication_factor,
            configs.join(",")
        ));
    }
    if report.overridden_configs {
        return out;
    }
    let join = |ids: &[i32]| ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    for p in &t.partitions {
        let has_leader = p.leader >= 0;
        let shown = !report.any_partition_report()
            || (report.under_replicated && p.replicas.len() > p.isr.len())
            || (report.unavailable && (!has_leader || !live.contains(&p.leader)))
            || (report.under_min_isr && (!has_leader || p.isr.len() < min_isr))
            || (report.at_min_isr && p.isr.len() == min_isr);
        if !shown {
            continue;
        }
        let leader = if p.leader >= 0 {
            p.leader.to_string()
        } else {
            "none".to_string()
        };
        out.push_str(&format!(
            "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
            t.name,
            p.partition,
            leader,
            join(&p.replicas),
            join(&p.isr)
        ));
        if p.leader < 0 {
            out.push_str(&format!("\tOffline: {}", join(&p.offline)));
        }
        out.push('\n');
    }
    out
}

async fn alter(admin: &Admin, args: &TopicsArgs) -> anyhow::Result<()> {
    required_topic(args, "--alter")?;
    let Some(count) = args.partitions else {
        return command_error("--partitions is required with --alter");
    };
    let assignment = match &args.replica_assignment {
        Some(list) => Some(parse_replica_assignment(list)?),
        None => None,
    };
    // Every matching topic grows to `count`; with --replica-assignment the
    // list covers all partitions and the new ones take its tail.
    for t in selected(admin, args).await? {
        let new = assignment.as_ref().map(|a| {
            a.iter()
                .skip(t.partitions.len())
                .cloned()
                .collect::<Vec<_>>()
        });
        if let Err(e) = admin
            .create_partitions(&t.name, count, new.as_deref())
            .await
        {
            return command_error(e);
        }
    }
    Ok(())
}

async fn delete(admin: &Admin, args: &TopicsArgs) -> anyhow::Result<()> {
    required_topic(args, "--delete")?;
    let names: Vec<String> = selected(admin, args)
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    for (_, result) in admin.delete_topics(&names).await? {
        if let Err(e) = result {
            return command_error(e);
        }
    }
    Ok(())
}
