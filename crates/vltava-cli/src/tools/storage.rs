//! `vltava storage`: `kafka-storage.sh` for people with KRaft habits.
//! Formatting is optional: a broker formats its own `log.dirs` at first
//! start. `random-uuid` prints a cluster id in Kafka's form, `format`
//! writes `meta.properties` with that id before the first start (so every
//! node of a future cluster can share it), `info` shows what a directory
//! holds.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use vltava_broker::config::parse_properties;
use vltava_broker::{write_meta_properties, BrokerConfig, META_PROPERTIES_FILE};

use super::{fail, random_kafka_uuid};

#[derive(Args, Debug)]
pub struct StorageArgs {
    #[command(subcommand)]
    pub command: StorageCommand,
}

#[derive(Subcommand, Debug)]
pub enum StorageCommand {
    /// Print a random cluster id (Kafka's 22-character form).
    RandomUuid,
    /// Write meta.properties (cluster id, node id) into log.dirs.
    Format {
        /// The cluster id, e.g. from `vltava storage random-uuid`.
        #[arg(long, short = 't', value_name = "CLUSTER_ID")]
        cluster_id: String,
        /// The broker's server.properties (for log.dirs and node.id).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
        /// Set one config, e.g. --override log.dirs=/tmp/data (repeatable).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Skip a directory that is already formatted instead of failing.
        #[arg(long, short = 'g')]
        ignore_formatted: bool,
    },
    /// Show the log directory and what its meta.properties holds.
    Info {
        /// The broker's server.properties (for log.dirs).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
        /// Set one config (repeatable).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
}

pub fn run(args: StorageArgs) -> anyhow::Result<()> {
    match args.command {
        StorageCommand::RandomUuid => {
            println!("{}", random_kafka_uuid());
            Ok(())
        }
        StorageCommand::Format {
            cluster_id,
            config,
            overrides,
            ignore_formatted,
        } => {
            let config = broker_config(config.as_deref(), &overrides)?;
            format(&config, &cluster_id, ignore_formatted)
        }
        StorageCommand::Info { config, overrides } => {
            let config = broker_config(config.as_deref(), &overrides)?;
            info(&config)
        }
    }
}

/// The broker config the tool reads log.dirs and node.id from: the file,
/// then overrides, as `vltava server` reads them.
fn broker_config(file: Option<&Path>, overrides: &[String]) -> anyhow::Result<BrokerConfig> {
    let mut pairs = match file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => parse_properties(&text),
            Err(e) => return fail(format!("Error: cannot read {}: {e}", path.display())),
        },
        None => Vec::new(),
    };
    for o in overrides {
        match o.split_once('=') {
            Some((k, v)) => pairs.push((k.to_string(), v.to_string())),
            None => return fail(format!("Error: --override {o}: expected KEY=VALUE")),
        }
    }
    match BrokerConfig::from_pairs(&pairs) {
        Ok((config, _unknown)) => Ok(config),
        Err(e) => fail(format!("Error: {e}")),
    }
}

/// Kafka's cluster id form: 22 characters of URL-safe base64.
fn valid_cluster_id(id: &str) -> bool {
    id.len() == 22
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `key=value` pairs of a meta.properties file, if there is one.
fn read_meta(dir: &Path) -> anyhow::Result<Option<Vec<(String, String)>>> {
    let path = dir.join(META_PROPERTIES_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(parse_properties(&text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => fail(format!("Error: cannot read {}: {e}", path.display())),
    }
}

fn format(config: &BrokerConfig, cluster_id: &str, ignore_formatted: bool) -> anyhow::Result<()> {
    if !valid_cluster_id(cluster_id) {
        return fail(format!(
            "Error: cluster id {cluster_id} is not 22 characters of URL-safe base64; make one with `vltava storage random-uuid`"
        ));
    }
    let dir = config.data_dir();
    if let Some(props) = read_meta(dir)? {
        if !ignore_formatted {
            return fail(format!(
                "Log directory {} is already formatted. Use --ignore-formatted to ignore this directory and format the others.",
                dir.display()
            ));
        }
        let stored = props
            .iter()
            .find(|(k, _)| k == "cluster.id")
            .map(|(_, v)| v.as_str());
        if stored.is_some_and(|s| s != cluster_id) {
            return fail(format!(
                "Invalid cluster.id in: {}. Expected {cluster_id}, but read {}.",
                dir.join(META_PROPERTIES_FILE).display(),
                stored.unwrap_or_default()
            ));
        }
        println!("All of the log directories are already formatted.");
        return Ok(());
    }
    println!(
        "Formatting metadata directory {} with cluster.id {cluster_id} and node.id {}.",
        dir.display(),
        config.node_id
    );
    if let Err(e) = write_meta_properties(dir, cluster_id, config.node_id) {
        return fail(format!(
            "Error while writing meta.properties file {}: {e}",
            dir.join(META_PROPERTIES_FILE).display()
        ));
    }
    Ok(())
}

fn info(config: &BrokerConfig) -> anyhow::Result<()> {
    let dir = config.data_dir();
    println!("Found log directory:\n  {}\n", dir.display());
    match read_meta(dir)? {
        Some(mut props) => {
            props.sort();
            let fields: Vec<String> = props.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!("Found metadata: {{{}}}\n", fields.join(", "));
            Ok(())
        }
        None => {
            println!("Found problem:\n  {} is not formatted.\n", dir.display());
            fail("")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_are_kafkas_form() {
        assert!(valid_cluster_id(&random_kafka_uuid()));
        assert!(valid_cluster_id("MkU3OEVBNTcwNTJENDM2Qk"));
        assert!(!valid_cluster_id("short"));
        assert!(!valid_cluster_id("MkU3OEVBNTcwNTJENDM2Q!"));
    }
}
