//! `vltava configs`: `kafka-configs.sh` for topics and brokers, altering
//! with IncrementalAlterConfigs.

use super::{BOOTSTRAP_DEFAULT, BOOTSTRAP_ENV};
use clap::{ArgGroup, Args};
use vltava_client::admin::{AlterOp, ConfigEntry, ResourceType};
use vltava_client::Admin;

use super::{fail, java_exception};

/// Describe or alter topic and broker configs (kafka-configs.sh).
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("action").required(true).args(["describe", "alter"])))]
pub struct ConfigsArgs {
    /// The Kafka server to connect to; default $VLTAVA_BOOTSTRAP, else 127.0.0.1:9092 (the
    /// zero-config broker).
    #[arg(long, env = BOOTSTRAP_ENV, default_value = BOOTSTRAP_DEFAULT, value_name = "String: server to connect to")]
    pub bootstrap_server: String,
    /// Client settings for the admin connection (client.id); security
    /// settings and anything else are refused, never ignored.
    #[arg(long, value_name = "String: command config property file")]
    pub command_config: Option<String>,
    /// topics or brokers.
    #[arg(long, value_name = "String")]
    pub entity_type: String,
    /// Name of the entity (topic name or broker id).
    #[arg(long, value_name = "String")]
    pub entity_name: Option<String>,
    /// The cluster-wide default broker config.
    #[arg(long)]
    pub entity_default: bool,
    /// Shortcut for --entity-type topics --entity-name <topic>.
    #[arg(long, value_name = "String: topic")]
    pub topic: Option<String>,
    /// Shortcut for --entity-type brokers --entity-name <id>.
    #[arg(long, value_name = "String: broker id")]
    pub broker: Option<String>,
    /// List configs for the given entity.
    #[arg(long)]
    pub describe: bool,
    /// Alter the configuration for the entity.
    #[arg(long)]
    pub alter: bool,
    /// List all configs, not only the dynamic ones.
    #[arg(long)]
    pub all: bool,
    /// Key-value pairs to add or update: 'k1=v1,k2=[v1,v2,v2],k3=v3'.
    #[arg(long, value_name = "String")]
    pub add_config: Option<String>,
    /// A properties file of configs to add or update (instead of
    /// --add-config).
    #[arg(long, value_name = "String")]
    pub add_config_file: Option<String>,
    /// Config keys to remove: 'k1,k2'.
    #[arg(long, value_name = "String")]
    pub delete_config: Option<String>,
}

/// Splits `k1=v1,k2=[a,b]` at commas outside square brackets; brackets are
/// removed from the value, as Kafka's ConfigCommand does.
pub fn parse_add_config(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in text.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    items.push(current);
    items
        .into_iter()
        .filter(|i| !i.trim().is_empty())
        .map(|i| match i.split_once('=') {
            Some((k, v)) => {
                let v = v.trim();
                let v = v.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(v);
                Ok((k.trim().to_string(), v.to_string()))
            }
            None => Err(format!("Invalid entity config: all configs to be added must be in the format \"key=val\". Got '{i}'")),
        })
        .collect()
}

pub async fn run(args: ConfigsArgs, raw_args: &str) -> anyhow::Result<()> {
    let (resource_type, name, label) = entity(&args)?;
    let command = super::read_command_config(args.command_config.as_deref())?;
    let client = super::connect_with(&args.bootstrap_server, &command, "vltava-configs").await?;
    let admin = Admin::new(client);
    let result = if args.describe {
        describe(&admin, resource_type, &name, &label, args.all).await
    } else {
        alter(&admin, &args, resource_type, &name, &label).await
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) => match e.downcast::<vltava_client::Error>() {
            Ok(e) => {
                let class = e
                    .kafka()
                    .map_or("org.apache.kafka.common.KafkaException", |k| {
                        java_exception(k.code)
                    });
                fail(format!(
                    "Error while executing config command with args '{raw_args}'\n{class}: {e}"
                ))
            }
            Err(e) => Err(e),
        },
    }
}

fn entity(args: &ConfigsArgs) -> anyhow::Result<(ResourceType, String, String)> {
    let (kind, name) = match (&args.topic, &args.broker) {
        (Some(t), _) => ("topics", Some(t.clone())),
        (_, Some(b)) => ("brokers", Some(b.clone())),
        _ => (args.entity_type.as_str(), args.entity_name.clone()),
    };
    match kind {
        "topics" => match name {
            Some(n) => Ok((ResourceType::Topic, n.clone(), format!("topic {n}"))),
            None => fail("--entity-name must be specified with --entity-type topics"),
        },
        "brokers" => match (name, args.entity_default) {
            (Some(n), _) => {
                if n.parse::<i32>().is_err() {
                    return fail(format!("The entity name for brokers must be a valid integer broker id, but it is: {n}"));
                }
                Ok((ResourceType::Broker, n.clone(), format!("broker {n}")))
            }
            (None, true) => Ok((
                ResourceType::Broker,
                String::new(),
                "brokers in the cluster".into(),
            )),
            (None, false) => fail(
                "an entity name must be specified with --alter of brokers (or --entity-default)",
            ),
        },
        "users" | "clients" | "ips" => fail(format!(
            "Error: --entity-type {kind} is not supported yet: Vltava has no client quotas or SCRAM credentials, so there are no {kind} configs to describe or alter"
        )),
        other => fail(format!(
            "Invalid entity type {other}, the entity type must be one of topics, brokers"
        )),
    }
}

async fn describe(
    admin: &Admin,
    resource_type: ResourceType,
    name: &str,
    label: &str,
    all: bool,
) -> anyhow::Result<()> {
    let wanted_source = match resource_type {
        ResourceType::Topic => 1,
        ResourceType::Broker if name.is_empty() => 3,
        ResourceType::Broker => 2,
    };
    let mut entries: Vec<ConfigEntry> = admin
        .describe_configs(resource_type, name)
        .await?
        .into_iter()
        .filter(|e| all || e.source == wanted_source)
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let tag = if all {
        "All"
    } else if name.is_empty() {
        "Default"
    } else {
        "Dynamic"
    };
    println!("{tag} configs for {label} are:");
    for e in entries {
        let synonyms: Vec<String> = e
            .synonyms
            .iter()
            .map(|(n, v, s)| {
                format!(
                    "{}:{}={}",
                    ConfigEntry::source_name(*s),
                    n,
                    v.as_deref().unwrap_or("null")
                )
            })
            .collect();
        println!(
            "  {}={} sensitive={} synonyms={{{}}}",
            e.name,
            e.value.as_deref().unwrap_or("null"),
            e.is_sensitive,
            synonyms.join(", ")
        );
    }
    Ok(())
}

async fn alter(
    admin: &Admin,
    args: &ConfigsArgs,
    resource_type: ResourceType,
    name: &str,
    label: &str,
) -> anyhow::Result<()> {
    let mut ops = Vec::new();
    if args.add_config.is_some() && args.add_config_file.is_some() {
        return fail("Only one of --add-config or --add-config-file must be specified");
    }
    if let Some(text) = &args.add_config {
        for (k, v) in parse_add_config(text).or_else(fail)? {
            ops.push((k, AlterOp::Set, Some(v)));
        }
    }
    if let Some(path) = &args.add_config_file {
        for (k, v) in super::read_properties(path)? {
            ops.push((k, AlterOp::Set, Some(v)));
        }
    }
    if let Some(text) = &args.delete_config {
        for k in text.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            ops.push((k.to_string(), AlterOp::Delete, None));
        }
    }
    if ops.is_empty() {
        return fail(
            "At least one of --add-config, --add-config-file, or --delete-config must be specified with --alter",
        );
    }
    if resource_type == ResourceType::Topic {
        let topics = admin.describe_topics(&[name.to_string()]).await?;
        if !topics.iter().any(|t| t.error_code == 0) {
            return Err(vltava_client::Error::Kafka(vltava_client::KafkaError {
                code: 3,
                message: Some(format!("The topic '{name}' does not exist.")),
            })
            .into());
        }
    }
    admin
        .incremental_alter_configs(resource_type, name, &ops)
        .await?;
    if name.is_empty() {
        println!("Completed updating default config for brokers in the cluster.");
    } else {
        println!("Completed updating config for {label}.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_config_keeps_bracketed_lists_together() {
        assert_eq!(
            parse_add_config("retention.ms=1000,cleanup.policy=[compact,delete]").unwrap(),
            vec![
                ("retention.ms".to_string(), "1000".to_string()),
                ("cleanup.policy".to_string(), "compact,delete".to_string())
            ]
        );
        assert!(parse_add_config("novalue").is_err());
    }
}
