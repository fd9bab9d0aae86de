use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};

use super::str_bytes;
use crate::group::{CommittedOffset, FetchedOffsets};
use crate::Broker;

/// From this version several groups are fetched at once.
const BATCHED_VERSION: i16 = 8;

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
                let checked = match (&g.member_id, g.member_epoch) {
                    (Some(member), epoch) if epoch >= 0 => broker.groups().check_fetch_member(
                        g.group_id.0.as_str(),
                        member.as_str(),
                        epoch,
                    ),
                    _ => Ok(()),
                };
                let response =
                    OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                match checked {
                    Err(e) => response.with_error_code(e.code()),
                    Ok(()) => response.with_topics(
                        fetch(broker, &g.group_id, wanted)
                            .into_iter()
                            .map(|(topic, partitions)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(str_bytes(topic)))
                                    .with_partitions(
                                        partitions
                                            .into_iter()
                                            .map(|(p, c)| {
                                                let (offset, epoch, metadata) = fields(c);
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_committed_offset(offset)
                                                    .with_committed_leader_epoch(epoch)
                                                    .with_metadata(Some(str_bytes(metadata)))
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
                }
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let topics = fetch(broker, &request.group_id, wanted)
        .into_iter()
        .map(|(topic, partitions)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(str_bytes(topic)))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(p, c)| {
                            let (offset, epoch, metadata) = fields(c);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(Some(str_bytes(metadata)))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

fn fetch(
    broker: &Broker,
    group: &GroupId,
    wanted: Option<Vec<(String, Vec<i32>)>>,
) -> FetchedOffsets {
    if group.0.is_empty() {
        return Vec::new();
    }
    broker.groups().fetch_offsets(group.0.as_str(), wanted)
}

/// Kafka answers "no committed offset" with offset -1, no epoch and empty
/// metadata, without an error.
fn fields(committed: Option<CommittedOffset>) -> (i64, i32, String) {
    match committed {
        Some(c) => (c.offset, c.leader_epoch, c.metadata.unwrap_or_default()),
        None => (-1, -1, String::new()),
    }
}
