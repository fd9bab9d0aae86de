//! OffsetForLeaderEpoch (key 23): where a leader epoch ended in this
//! partition's log, for a consumer checking its position after a leader
//! change (KIP-320) and for a replica looking for where its log and its
//! leader's part.

use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderPartition;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use vltava_protocol::ResponseError;

use super::fetch::check_leader_epoch;
use crate::error::ApiError;
use crate::partition::Partition;
use crate::Broker;

pub fn handle(
    broker: &Broker,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topic(t.topic.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let found = topic.as_ref().and_then(|t| t.partition(p.partition));
                    answer(found.map(|p| p.as_ref()), p)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

/// Kafka's answer: the largest epoch at or below the one asked for and the
/// offset where it ended (the log end for the current epoch); -1 and -1
/// when the log holds no such epoch. Only the leader answers, at the
/// client's current epoch (KIP-320).
fn answer(partition: Option<&Partition>, request: &OffsetForLeaderPartition) -> EpochEndOffset {
    let response = EpochEndOffset::default()
        .with_partition(request.partition)
        .with_leader_epoch(-1)
        .with_end_offset(-1);
    let result =
        match partition {
            Some(partition) => check_leader_epoch(partition, request.current_leader_epoch)
                .and_then(|()| match partition.log().offline_reason() {
                    Some(reason) => Err(ApiError::new(ResponseError::KafkaStorageError, reason)),
                    None => Ok(partition.log().end_offset_for_epoch(request.leader_epoch)),
                }),
            None => Err(ApiError::new(ResponseError::UnknownTopicOrPartition, "")),
        };
    match result {
        Ok((epoch, end_offset)) => response
            .with_leader_epoch(epoch)
            .with_end_offset(end_offset),
        Err(e) => response.with_error_code(e.code()),
    }
}
