//! `vltava cluster`: the cluster id, the controller and the brokers
//! (what `kafka-cluster.sh cluster-id` and `kafka-metadata-quorum.sh` show,
//! in one short listing).

use super::{BOOTSTRAP_DEFAULT, BOOTSTRAP_ENV};
use clap::Args;
use vltava_client::Admin;

use super::connect;

/// Show the cluster id, the controller and the brokers.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// The server to connect to; default $VLTAVA_BOOTSTRAP, else 127.0.0.1:9092 (the
    /// zero-config broker).
    #[arg(long, env = BOOTSTRAP_ENV, default_value = BOOTSTRAP_DEFAULT, value_name = "String: server to connect to")]
    pub bootstrap_server: String,
}

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap_server, "vltava-cluster").await?;
    let c = Admin::new(client).describe_cluster().await?;
    println!("Cluster ID: {}", c.cluster_id.as_deref().unwrap_or("null"));
    match c.brokers.iter().find(|b| b.id == c.controller_id) {
        Some(b) => println!("Controller: {} ({})", b.id, b.addr()),
        None => println!("Controller: {}", c.controller_id),
    }
    println!("Brokers:");
    for b in &c.brokers {
        println!(
            "  {} {} rack: {}",
            b.id,
            b.addr(),
            b.rack.as_deref().unwrap_or("null")
        );
    }
    Ok(())
}
