use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use vltava_protocol::ResponseError;

use super::find_coordinator::TRANSACTIONS_UNSUPPORTED;
use super::ClientInfo;
use crate::Broker;

/// An idempotent producer (no transactional id) gets a fresh producer id at
/// epoch 0, as Kafka does, whatever id and epoch it sends (KIP-360).
pub async fn handle(
    broker: &Broker,
    client: &ClientInfo,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let failed = |error: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(error.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    match request.transactional_id.as_ref().map(|id| id.as_str()) {
        // Kafka refuses an empty transactional id as a bad request.
        Some("") => return failed(ResponseError::InvalidRequest),
        Some(_) => {
            broker.warn_once(&client.client_id, "transactions", TRANSACTIONS_UNSUPPORTED);
            return failed(ResponseError::TransactionalIdAuthorizationFailed);
        }
        None => {}
    }
    match broker.allocate_producer_id().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        // No producer-id block could be committed (the metadata quorum is
        // unavailable): Kafka answers COORDINATOR_LOAD_IN_PROGRESS while it
        // has no block, which every client retries.
        Err(e)
            if matches!(
                e.error,
                ResponseError::NotController | ResponseError::RequestTimedOut
            ) =>
        {
            failed(ResponseError::CoordinatorLoadInProgress)
        }
        Err(e) => failed(e.error),
    }
}
