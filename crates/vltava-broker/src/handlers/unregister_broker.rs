//! UnregisterBroker (key 64): removes a broker's registration, as
//! `kafka-cluster.sh unregister` does for a broker taken out of the cluster
//! for good. Its partitions stay, without a leader, until reassigned.

use kafka_protocol::messages::{UnregisterBrokerRequest, UnregisterBrokerResponse};

use super::str_bytes;
use crate::Broker;

pub async fn handle(broker: &Broker, request: UnregisterBrokerRequest) -> UnregisterBrokerResponse {
    match broker.unregister_broker(request.broker_id.0).await {
        Ok(()) => UnregisterBrokerResponse::default(),
        Err(e) => UnregisterBrokerResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(e.message))),
    }
}
