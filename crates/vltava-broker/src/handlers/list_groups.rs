use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::str_bytes;
use crate::Broker;

/// Filters match case-insensitively, as Kafka's do; an empty filter matches all.
pub fn handle(broker: &Broker, request: ListGroupsRequest) -> ListGroupsResponse {
    let matches = |filter: &[kafka_protocol::protocol::StrBytes], value: &str| {
        filter.is_empty()
            || filter
                .iter()
                .any(|f| f.as_str().eq_ignore_ascii_case(value))
    };
    let groups = broker
        .groups()
        .list()
        .into_iter()
        .filter(|g| {
            matches(&request.states_filter, &g.state)
                && matches(&request.types_filter, g.group_type)
        })
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(str_bytes(g.group_id)))
                .with_protocol_type(str_bytes(g.protocol_type))
                .with_group_state(str_bytes(g.state))
                .with_group_type(str_bytes(g.group_type))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
