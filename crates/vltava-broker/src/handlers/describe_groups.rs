use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use vltava_protocol::ResponseError;

use super::{authorized_operations, str_bytes, AUTHORIZED_OPERATIONS_OMITTED};
use crate::group::classic::ClassicState;
use crate::Broker;

/// ACL operations on a group (READ, DELETE, DESCRIBE).
const GROUP_OPERATIONS: &[u8] = &[3, 6, 8];
/// From this version an unknown group is an error rather than "Dead".
const NOT_FOUND_VERSION: i16 = 6;

pub fn handle(
    broker: &Broker,
    version: i16,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let ops = authorized_operations(request.include_authorized_operations, GROUP_OPERATIONS);
    let groups = request
        .groups
        .into_iter()
        .map(|group_id| {
            if let Err(e) = broker.groups().coordinates(broker, group_id.0.as_str()) {
                return DescribedGroup::default()
                    .with_group_id(group_id)
                    .with_error_code(e.code())
                    .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
            }
            let described = broker.groups().with_classic(group_id.0.as_str(), |g| {
                let with_data = matches!(
                    g.state,
                    ClassicState::Stable | ClassicState::CompletingRebalance { .. }
                );
                let protocol = g.protocol.clone().unwrap_or_default();
                let members = g
                    .members
                    .iter()
                    .map(|m| {
                        let metadata = m
                            .protocols
                            .iter()
                            .find(|(n, _)| *n == protocol)
                            .map(|(_, b)| b.clone())
                            .unwrap_or_default();
                        DescribedGroupMember::default()
                            .with_member_id(str_bytes(m.member_id.clone()))
                            .with_group_instance_id(m.group_instance_id.clone().map(str_bytes))
                            .with_client_id(str_bytes(m.client_id.clone()))
                            .with_client_host(str_bytes(m.client_host.clone()))
                            .with_member_metadata(if with_data {
                                metadata
                            } else {
                                Default::default()
                            })
                            .with_member_assignment(if with_data {
                                m.assignment.clone()
                            } else {
                                Default::default()
                            })
                    })
                    .collect();
                DescribedGroup::default()
                    .with_group_state(str_bytes(g.state.name()))
                    .with_protocol_type(str_bytes(g.protocol_type.clone().unwrap_or_default()))
                    .with_protocol_data(str_bytes(protocol))
                    .with_members(members)
                    .with_authorized_operations(ops)
            });
            let is_consumer_group = broker
                .groups()
                .with_consumer(group_id.0.as_str(), |_| ())
                .is_some();
            let described = described.unwrap_or_else(|| {
                let base = DescribedGroup::default().with_group_state(str_bytes("Dead"));
                if version < NOT_FOUND_VERSION {
                    // Before v6 an unknown group is a successful "Dead" answer, and Java
                    // fills in the authorized operations of every successful answer when
                    // asked (kafka-python always asks and fails on the omitted marker).
                    return base.with_authorized_operations(ops);
                }
                let base = base.with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
                let message = if is_consumer_group {
                    format!("Group {} is not a classic group.", group_id.0.as_str())
                } else {
                    format!("Group {} not found.", group_id.0.as_str())
                };
                base.with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(str_bytes(message)))
            });
            described.with_group_id(group_id)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
