use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use vltava_protocol::ResponseError;

use crate::Broker;

pub fn handle(broker: &Broker, request: HeartbeatRequest) -> HeartbeatResponse {
    let result = if request.group_id.0.is_empty() {
        Err(ResponseError::InvalidGroupId)
    } else {
        broker.groups().heartbeat(
            broker,
            request.group_id.0.as_str(),
            request.member_id.as_str(),
            request.group_instance_id.as_ref().map(|s| s.as_str()),
            request.generation_id,
        )
    };
    HeartbeatResponse::default().with_error_code(result.err().map_or(0, |e| e.code()))
}
