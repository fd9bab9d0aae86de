use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use vltava_protocol::ResponseError;

use crate::group::classic::SyncArgs;
use crate::group::Reply;
use crate::Broker;

pub async fn handle(broker: &Broker, request: SyncGroupRequest) -> SyncGroupResponse {
    let fail = |error: ResponseError| SyncGroupResponse::default().with_error_code(error.code());
    if request.group_id.0.is_empty() {
        return fail(ResponseError::InvalidGroupId);
    }
    let args = SyncArgs {
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        protocol_type: request.protocol_type.as_ref().map(|s| s.to_string()),
        protocol_name: request.protocol_name.as_ref().map(|s| s.to_string()),
        assignments: request
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    match broker
        .groups()
        .sync(broker, request.group_id.0.as_str(), args)
        .await
    {
        Reply::Now(response) => response,
        Reply::Later(rx) => rx
            .await
            .unwrap_or_else(|_| fail(ResponseError::CoordinatorNotAvailable)),
    }
}
