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
    /// The topic to create, alter, describe or delete.
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
    /// Client settings for the admin connection (client.id); security
    /// settings and anything else are refused, never ignored.
    #[arg(long, value_name = "String: command config property file")]
    pub command_config: Option<String>,
}

pub async fn run(args: TopicsArgs) -> anyhow::Result<()> {
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
    let new = NewTopic {
        name: topic.clone(),
        partitions: args.partitions.unwrap_or(-1),
        replication_factor: args.replication_factor.map_or(-1, |r| r as i16),
        configs,
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
    for t in admin.list_topics().await? {
        if args.exclude_internal && t.is_internal {
            continue;
        }
        if args.topic.as_ref().is_some_and(|want| *want != t.name) {
            continue;
        }
        println!("{}", t.name);
    }
    Ok(())
}

/// The named topic (or every topic), checked to exist unless `--if-exists`.
async fn selected(admin: &Admin, args: &TopicsArgs) -> anyhow::Result<Vec<TopicInfo>> {
    let topics: Vec<TopicInfo> = match &args.topic {
        Some(name) => admin
            .describe_topics(std::slice::from_ref(name))
            .await?
            .into_iter()
            .filter(|t| t.error_code == 0)
            .collect(),
        None => admin.list_topics().await?,
    };
    if let Some(name) = &args.topic {
        if topics.is_empty() && !args.if_exists {
            return command_error(format!("Topic '{name}' does not exist as expected"));
        }
    }
    Ok(topics
        .into_iter()
        .filter(|t| !(args.exclude_internal && t.is_internal))
        .collect())
}

async fn describe(admin: &Admin, args: &TopicsArgs) -> anyhow::Result<()> {
    for t in selected(admin, args).await? {
        let configs = admin
            .describe_configs(ResourceType::Topic, &t.name)
            .await
            .unwrap_or_default();
        print!("{}", describe_lines(&t, &configs));
    }
    Ok(())
}

/// Kafka's `TopicDescription` and `PartitionDescription` lines.
pub fn describe_lines(t: &TopicInfo, configs: &[ConfigEntry]) -> String {
    let configs: Vec<String> = configs
        .iter()
        .filter(|c| !c.is_default())
        .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("null")))
        .collect();
    let replication_factor = t.partitions.first().map_or(0, |p| p.replicas.len());
    let mut out = format!("Topic: {}", t.name);
    if !t.topic_id.is_nil() {
        out.push_str(&format!("\tTopicId: {}", kafka_uuid(&t.topic_id)));
    }
    out.push_str(&format!(
        "\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}\n",
        t.partitions.len(),
        replication_factor,
        configs.join(",")
    ));
    let join = |ids: &[i32]| ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    for p in &t.partitions {
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
    let topic = required_topic(args, "--alter")?;
    let Some(count) = args.partitions else {
        return command_error("--partitions is required with --alter");
    };
    if selected(admin, args).await?.is_empty() {
        return Ok(()); // --if-exists and no such topic
    }
    if let Err(e) = admin.create_partitions(&topic, count).await {
        return command_error(e);
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
