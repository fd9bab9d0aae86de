use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use vltava_protocol::ResponseError;

use crate::Broker;

/// From this version several members (by id or instance id) leave at once.
const BATCH_VERSION: i16 = 3;

pub async fn handle(
    broker: &Broker,
    version: i16,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let members: Vec<(String, Option<String>)> = if version >= BATCH_VERSION {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    if request.group_id.0.is_empty() {
        return LeaveGroupResponse::default().with_error_code(ResponseError::InvalidGroupId.code());
    }
    match broker
        .groups()
        .leave(broker, request.group_id.0.as_str(), &members)
        .await
    {
        Err(e) => LeaveGroupResponse::default().with_error_code(e.code()),
        Ok(results) if version < BATCH_VERSION => {
            LeaveGroupResponse::default().with_error_code(results[0].err().map_or(0, |e| e.code()))
        }
        Ok(results) => LeaveGroupResponse::default().with_members(
            request
                .members
                .into_iter()
                .zip(results)
                .map(|(m, r)| {
                    MemberResponse::default()
                        .with_member_id(m.member_id)
                        .with_group_instance_id(m.group_instance_id)
                        .with_error_code(r.err().map_or(0, |e| e.code()))
                })
                .collect(),
        ),
    }
}
