//! `vltava log-dirs --describe`: `kafka-log-dirs.sh` with the same flags and
//! output: each broker's log directories and the size and lag of every
//! partition replica in them, as one line of JSON.

use std::collections::BTreeSet;

use clap::Args;
use vltava_client::Admin;

use super::{connect_with, fail, read_command_config};
use super::{BOOTSTRAP_DEFAULT, BOOTSTRAP_ENV};

/// Query the log directories of brokers (kafka-log-dirs.sh).
#[derive(Args, Debug)]
pub struct LogDirsArgs {
    /// REQUIRED: the server(s) to use for bootstrapping; default
    /// $VLTAVA_BOOTSTRAP, else 127.0.0.1:9092.
    #[arg(long, env = BOOTSTRAP_ENV, default_value = BOOTSTRAP_DEFAULT, value_name = "The server(s) to use for bootstrapping")]
    pub bootstrap_server: String,
    /// REQUIRED: describe the log directories on the brokers.
    #[arg(long)]
    pub describe: bool,
    /// Topics to show, "topic1,topic2"; all when empty.
    #[arg(long, default_value = "", value_name = "Topic list")]
    pub topic_list: String,
    /// Brokers to query, "0,1,2"; every broker when empty.
    #[arg(long, default_value = "", value_name = "Broker list")]
    pub broker_list: String,
    /// Client settings for the admin connection (client.id); security
    /// settings and anything else are refused, never ignored.
    #[arg(long, value_name = "Admin client property file")]
    pub command_config: Option<String>,
}

pub async fn run(args: LogDirsArgs) -> anyhow::Result<()> {
    if !args.describe {
        return fail("Missing required argument \"[describe]\"");
    }
    let topics: BTreeSet<String> = split(&args.topic_list).map(str::to_string).collect();
    let mut asked = BTreeSet::new();
    for id in split(&args.broker_list) {
        match id.trim().parse::<i32>() {
            Ok(id) => {
                asked.insert(id);
            }
            Err(_) => return fail(format!("Invalid broker id in --broker-list: {id}")),
        }
    }
    let command = read_command_config(args.command_config.as_deref())?;
    let client = connect_with(&args.bootstrap_server, &command, "log-dirs-tool").await?;
    let admin = Admin::new(client);
    let cluster = admin.live_broker_ids().await?;
    let missing: Vec<String> = asked.difference(&cluster).map(i32::to_string).collect();
    if !missing.is_empty() {
        return fail(format!(
            "ERROR: The given brokers do not exist from --broker-list: {}. Current existent brokers: {}",
            missing.join(","),
            joined(&cluster)
        ));
    }
    let brokers = if asked.is_empty() { cluster } else { asked };
    println!("Querying brokers for log directories information");
    let mut described = Vec::new();
    for broker in &brokers {
        let dirs = admin.describe_log_dirs(*broker).await?;
        let dirs: Vec<String> = dirs
            .iter()
            .map(|d| {
                let partitions: Vec<String> = d
                    .replicas
                    .iter()
                    .filter(|(t, ..)| topics.is_empty() || topics.contains(t))
                    .map(|(t, p, size, lag)| {
                        format!(
                            "{{\"partition\":{},\"size\":{size},\"offsetLag\":{lag},\"isFuture\":false}}",
                            json_string(&format!("{t}-{p}"))
                        )
                    })
                    .collect();
                let error = match &d.error {
                    Some(e) => json_string(super::java_exception(e.code)),
                    None => "null".to_string(),
                };
                format!(
                    "{{\"partitions\":[{}],\"error\":{error},\"logDir\":{}}}",
                    partitions.join(","),
                    json_string(&d.dir)
                )
            })
            .collect();
        described.push(format!(
            "{{\"broker\":{broker},\"logDirs\":[{}]}}",
            dirs.join(",")
        ));
    }
    println!(
        "Received log directory information from brokers {}",
        joined(&brokers)
    );
    println!("{{\"brokers\":[{}],\"version\":1}}", described.join(","));
    Ok(())
}

fn split(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn joined(ids: &BTreeSet<i32>) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}
