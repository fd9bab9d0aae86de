use std::collections::BTreeMap;

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use uuid::Uuid;
use vltava_protocol::ResponseError;

use super::{authorized_operations, str_bytes};
use crate::group::assignor;
use crate::Broker;

const GROUP_OPERATIONS: &[u8] = &[3, 6, 8];
/// Member type reported for members speaking the consumer protocol.
const MEMBER_TYPE_CONSUMER: i8 = 1;

pub fn handle(
    broker: &Broker,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let ids: BTreeMap<String, Uuid> = broker
        .topics()
        .iter()
        .map(|t| (t.name.clone(), t.id))
        .collect();
    let to_assignment = |a: &assignor::Assignment| {
        Assignment::default().with_topic_partitions(
            a.iter()
                .map(|(topic, partitions)| {
                    TopicPartitions::default()
                        .with_topic_id(ids.get(topic).copied().unwrap_or_default())
                        .with_topic_name(TopicName(str_bytes(topic.clone())))
                        .with_partitions(partitions.iter().copied().collect())
                })
                .collect(),
        )
    };
    let ops = authorized_operations(request.include_authorized_operations, GROUP_OPERATIONS);
    let groups = request
        .group_ids
        .into_iter()
        .map(|group_id| {
            if let Err(e) = broker.groups().coordinates(broker, group_id.0.as_str()) {
                return DescribedGroup::default()
                    .with_group_id(group_id)
                    .with_error_code(e.code());
            }
            let described = broker.groups().with_consumer(group_id.0.as_str(), |g| {
                let members = g
                    .members
                    .values()
                    .map(|m| {
                        Member::default()
                            .with_member_id(str_bytes(m.member_id.clone()))
                            .with_instance_id(m.instance_id.clone().map(str_bytes))
                            .with_rack_id(m.rack_id.clone().map(str_bytes))
                            .with_member_epoch(m.member_epoch)
                            .with_client_id(str_bytes(m.client_id.clone()))
                            .with_client_host(str_bytes(m.client_host.clone()))
                            .with_subscribed_topic_names(
                                m.subscribed_topic_names
                                    .iter()
                                    .map(|t| TopicName(str_bytes(t.clone())))
                                    .collect(),
                            )
                            .with_subscribed_topic_regex(
                                m.subscribed_topic_regex.clone().map(str_bytes),
                            )
                            .with_assignment(to_assignment(&m.assigned))
                            .with_target_assignment(to_assignment(
                                &g.target.get(&m.member_id).cloned().unwrap_or_default(),
                            ))
                            .with_member_type(MEMBER_TYPE_CONSUMER)
                    })
                    .collect();
                DescribedGroup::default()
                    .with_group_state(str_bytes(g.state().name()))
                    .with_group_epoch(g.group_epoch)
                    .with_assignment_epoch(g.assignment_epoch)
                    .with_assignor_name(str_bytes(g.assignor_name()))
                    .with_members(members)
                    .with_authorized_operations(ops)
            });
            described
                .unwrap_or_else(|| {
                    DescribedGroup::default()
                        .with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_error_message(Some(str_bytes(format!(
                            "Group {} not found.",
                            group_id.0.as_str()
                        ))))
                        .with_group_state(str_bytes("Dead"))
                })
                .with_group_id(group_id)
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
