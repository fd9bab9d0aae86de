use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use vltava_protocol::ResponseError;

use crate::group::{CommitIdentity, CommittedOffset};
use crate::Broker;

pub async fn handle(broker: &Broker, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let now_ms = broker.now_ms();
    let offsets: Vec<(String, i32, CommittedOffset)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        commit_timestamp_ms: now_ms,
                    },
                )
            })
        })
        .collect();
    let results = if request.group_id.0.is_empty() {
        Err(ResponseError::InvalidGroupId)
    } else {
        broker
            .groups()
            .commit(
                broker,
                request.group_id.0.as_str(),
                CommitIdentity {
                    generation_or_member_epoch: request.generation_id_or_member_epoch,
                    member_id: request.member_id.as_str(),
                    group_instance_id: request.group_instance_id.as_ref().map(|s| s.as_str()),
                },
                offsets,
            )
            .await
    };
    let mut per_partition = match &results {
        Ok(r) => r
            .iter()
            .map(|r| r.err().map_or(0, |e| e.code()))
            .collect::<Vec<_>>()
            .into_iter(),
        Err(e) => {
            vec![e.code(); request.topics.iter().map(|t| t.partitions.len()).sum()].into_iter()
        }
    };
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(per_partition.next().unwrap_or(0))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
