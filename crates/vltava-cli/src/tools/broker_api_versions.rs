//! `vltava broker-api-versions`: `kafka-broker-api-versions.sh`.

use super::{BOOTSTRAP_DEFAULT, BOOTSTRAP_ENV};
use clap::Args;
use kafka_protocol::messages::ApiKey;
use vltava_client::connection::client_range;
use vltava_client::Node;

use super::connect;

/// Print the API versions every broker supports (kafka-broker-api-versions.sh).
#[derive(Args, Debug)]
pub struct BrokerApiVersionsArgs {
    /// The server to connect to; default $VLTAVA_BOOTSTRAP, else 127.0.0.1:9092 (the
    /// zero-config broker).
    #[arg(long, env = BOOTSTRAP_ENV, default_value = BOOTSTRAP_DEFAULT, value_name = "String: server(s) to use for bootstrapping")]
    pub bootstrap_server: String,
}

pub async fn run(args: BrokerApiVersionsArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap_server, "vltava-broker-api-versions").await?;
    let brokers = client.cluster().brokers;
    for (id, broker) in brokers {
        let (_, apis) = client.broker_api_versions(Node::Broker(id)).await?;
        let mut keys: Vec<i16> = apis.keys().copied().collect();
        keys.sort();
        let mut lines = Vec::new();
        for key in keys {
            let (min, max) = apis[&key];
            let range = if min == max {
                min.to_string()
            } else {
                format!("{min} to {max}")
            };
            let line = match ApiKey::try_from(key) {
                Ok(api) => {
                    let (cmin, cmax) = client_range(api)
                        .unwrap_or((api.valid_versions().min, api.valid_versions().max));
                    let usable = if cmax < min {
                        "[unusable: node too new]".to_string()
                    } else if cmin > max {
                        "[unusable: node too old]".to_string()
                    } else {
                        format!("[usable: {}]", max.min(cmax))
                    };
                    format!("{api:?}({key}): {range} {usable}")
                }
                Err(_) => format!("UNKNOWN({key}): {range} [unusable: unknown API]"),
            };
            lines.push(line);
        }
        let rack = broker.rack.as_deref().unwrap_or("null");
        println!(
            "{} (id: {} rack: {rack}) -> (\n\t{}\n)",
            broker.addr(),
            id,
            lines.join(",\n\t")
        );
    }
    Ok(())
}
