use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use tracing::warn;
use vltava_protocol::ResponseError;

use crate::Broker;

/// An idempotent producer (no transactional id) gets a fresh producer id at
/// epoch 0, as Kafka does, whatever id and epoch it sends (KIP-360).
pub fn handle(broker: &Broker, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let failed = |error: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(error.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if request.transactional_id.is_some() {
        warn!("InitProducerId with a transactional id refused: transactions are not supported yet");
        return failed(ResponseError::InvalidRequest);
    }
    match broker.allocate_producer_id() {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => failed(e.error),
    }
}
