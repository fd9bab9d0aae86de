use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use vltava_protocol::ResponseError;

use super::str_bytes;
use crate::group::CommittedOffset;
use crate::Broker;

/// From this version several groups are fetched at once.
const BATCHED_VERSION: i16 = 8;
/// From this version the response has a group-level error code.
const TOP_LEVEL_ERROR_VERSION: i16 = 2;

type Wanted = Option<Vec<(String, Vec<i32>)>>;

pub fn handle(broker: &Broker, version: i16, request: OffsetFetchRequest) -> OffsetFetchResponse {
    if version >= BATCHED_VERSION {
        let groups = request
            .groups
            .into_iter()
            .map(|g| {
                let wanted = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                // v9 consumers identify themselves; their epoch must be current.
                let coordinated = broker.groups().coordinates(broker, g.group_id.0.as_str());
                let member = coordinated.and_then(|()| match (&g.member_id, g.member_epoch) {
                    (Some(member), epoch) if epoch >= 0 => broker.groups().check_fetch_member(
                        g.group_id.0.as_str(),
                        member.as_str(),
                        epoch,
                    ),
                    _ => Ok(()),
                });
                one_group(broker, g.group_id, wanted, member)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    // Versions before 8 carry one group's topics at the top level.
    let group = one_group(broker, request.group_id, wanted.clone(), Ok(()));
    if group.error_code != 0 && version < TOP_LEVEL_ERROR_VERSION {
        // v1 has no group-level error: every partition asked for carries it.
        return OffsetFetchResponse::default()
            .with_topics(partition_errors(wanted, group.error_code));
    }
    let topics = group
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_committed_offset(p.committed_offset)
                        .with_committed_leader_epoch(p.committed_leader_epoch)
                        .with_metadata(p.metadata)
                        .with_error_code(p.error_code)
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default()
        .with_error_code(group.error_code)
        .with_topics(topics)
}

fn one_group(
    broker: &Broker,
    group_id: GroupId,
    wanted: Wanted,
    member: Result<(), ResponseError>,
) -> OffsetFetchResponseGroup {
    let response = OffsetFetchResponseGroup::default().with_group_id(group_id.clone());
    if let Err(e) = member {
        return response.with_error_code(e.code());
    }
    if group_id.0.is_empty() {
        return response;
    }
    let fetched = match broker
        .groups()
        .fetch_offsets(broker, group_id.0.as_str(), wanted)
    {
        Ok(fetched) => fetched,
        Err(e) => return response.with_error_code(e.code()),
    };
    let topics = fetched
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(p, committed)| {
                    let (offset, epoch, metadata) = fields(committed);
                    OffsetFetchResponsePartitions::default()
                        .with_partition_index(p)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(str_bytes(metadata)))
                })
                .collect();
            OffsetFetchResponseTopics::default()
                .with_name(TopicName(str_bytes(topic)))
                .with_partitions(partitions)
        })
        .collect();
    response.with_topics(topics)
}

/// `error` on every partition the request named, for v1.
fn partition_errors(wanted: Wanted, error: i16) -> Vec<OffsetFetchResponseTopic> {
    wanted
        .into_iter()
        .flatten()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|p| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(-1)
                        .with_error_code(error)
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(str_bytes(topic)))
                .with_partitions(partitions)
        })
        .collect()
}

/// Kafka answers "no committed offset" with offset -1, no epoch and empty
/// metadata, without an error.
fn fields(committed: Option<CommittedOffset>) -> (i64, i32, String) {
    match committed {
        Some(c) => (c.offset, c.leader_epoch, c.metadata.unwrap_or_default()),
        None => (-1, -1, String::new()),
    }
}
