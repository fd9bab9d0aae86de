use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use vltava_protocol::ResponseError;

use super::ClientInfo;
use crate::group::classic::JoinArgs;
use crate::group::Reply;
use crate::Broker;

pub async fn handle(
    broker: &Broker,
    version: i16,
    client: &ClientInfo,
    request: JoinGroupRequest,
) -> JoinGroupResponse {
    let fail = |error: ResponseError| {
        JoinGroupResponse::default()
            .with_error_code(error.code())
            .with_generation_id(-1)
            .with_member_id(request.member_id.clone())
    };
    if request.group_id.0.is_empty() {
        return fail(ResponseError::InvalidGroupId);
    }
    let args = JoinArgs {
        version,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: client.client_id.clone(),
        client_host: client.client_host.clone(),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout serves as both.
        rebalance_timeout_ms: if version == 0 {
            request.session_timeout_ms
        } else {
            request.rebalance_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
    };
    match broker
        .groups()
        .join(broker, request.group_id.0.as_str(), args)
        .await
    {
        Reply::Now(response) => response,
        Reply::Later(rx) => rx
            .await
            .unwrap_or_else(|_| fail(ResponseError::CoordinatorNotAvailable)),
    }
}
