//! `vltava cluster`: the cluster id, the controller and the brokers (and
//! the fenced ones) in one short listing; `vltava cluster cluster-id` and `unregister` are
//! `kafka-cluster.sh`'s subcommands with its output.

use super::{BOOTSTRAP_DEFAULT, BOOTSTRAP_ENV};
use clap::{Args, Subcommand};
use vltava_client::Admin;

use super::{connect_with, fail, read_command_config};

/// Show the cluster id, the controller and the brokers.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: Option<ClusterCommand>,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Args, Debug)]
pub struct Connection {
    /// The server to connect to; default $VLTAVA_BOOTSTRAP, else 127.0.0.1:9092 (the
    /// zero-config broker).
    #[arg(long, short = 'b', global = true, env = BOOTSTRAP_ENV, default_value = BOOTSTRAP_DEFAULT, value_name = "String: server to connect to")]
    pub bootstrap_server: String,
    /// Client settings for the admin connection (client.id); security
    /// settings and anything else are refused, never ignored.
    #[arg(long, short = 'c', global = true, value_name = "config file")]
    pub config: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Print the cluster id (kafka-cluster.sh cluster-id).
    ClusterId,
    /// Unregister a broker (kafka-cluster.sh unregister).
    Unregister {
        /// The id of the broker to unregister.
        #[arg(long, value_name = "ID")]
        id: i32,
    },
}

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let command = read_command_config(args.connection.config.as_deref())?;
    let client = connect_with(
        &args.connection.bootstrap_server,
        &command,
        "vltava-cluster",
    )
    .await?;
    let admin = Admin::new(client);
    let c = admin.describe_cluster().await?;
    match args.command {
        Some(ClusterCommand::ClusterId) => {
            println!("Cluster ID: {}", c.cluster_id.as_deref().unwrap_or("null"));
            return Ok(());
        }
        Some(ClusterCommand::Unregister { id }) => {
            return match admin.unregister_broker(id).await {
                Ok(()) => {
                    println!("Broker {id} is no longer registered.");
                    Ok(())
                }
                Err(e) => fail(format!("Error: {e}")),
            };
        }
        None => {}
    }
    println!("Cluster ID: {}", c.cluster_id.as_deref().unwrap_or("null"));
    match c.brokers.iter().find(|b| b.id == c.controller_id) {
        Some(b) => println!("Controller: {} ({})", b.id, b.addr()),
        None => println!("Controller: {}", c.controller_id),
    }
    print_brokers("Brokers:", &c.brokers);
    // Registered but fenced: silent past the session timeout, or shut down.
    if !c.fenced.is_empty() {
        print_brokers("Fenced brokers:", &c.fenced);
    }
    Ok(())
}

fn print_brokers(title: &str, brokers: &[vltava_client::client::BrokerInfo]) {
    println!("{title}");
    for b in brokers {
        println!(
            "  {} {} rack: {}",
            b.id,
            b.addr(),
            b.rack.as_deref().unwrap_or("null")
        );
    }
}
