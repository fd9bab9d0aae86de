use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use vltava_protocol::ResponseError;

use crate::error::ApiError;
use crate::partition::Partition;
use crate::Broker;

const EARLIEST_TIMESTAMP: i64 = -2;
const LATEST_TIMESTAMP: i64 = -1;
const MAX_TIMESTAMP: i64 = -3;

pub fn handle(broker: &Broker, _version: i16, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topic(t.name.0.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let found = topic
                        .as_ref()
                        .and_then(|topic| topic.partition(p.partition_index));
                    let result = match found {
                        Some(partition) => lookup(partition, p.timestamp),
                        None => Err(ApiError::new(ResponseError::UnknownTopicOrPartition, "")),
                    };
                    match result {
                        Ok((offset, timestamp)) => response
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            .with_leader_epoch(found.map_or(-1, |p| p.leader_epoch())),
                        Err(e) => response
                            .with_error_code(e.code())
                            .with_offset(-1)
                            .with_timestamp(-1)
                            .with_leader_epoch(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// The `(offset, timestamp)` answer for one partition. A timestamp past every
/// record answers offset -1, as Kafka does.
fn lookup(partition: &Partition, timestamp: i64) -> Result<(i64, i64), ApiError> {
    let high_watermark = partition.high_watermark();
    match timestamp {
        EARLIEST_TIMESTAMP => Ok((partition.log_start_offset(), -1)),
        LATEST_TIMESTAMP => Ok((high_watermark, -1)),
        MAX_TIMESTAMP => Ok(partition
            .log()
            .max_timestamp_offset()?
            .filter(|(offset, _)| *offset < high_watermark)
            .unwrap_or((-1, -1))),
        ts if ts >= 0 => Ok(partition
            .log()
            .offset_for_timestamp(ts)?
            .filter(|(offset, _)| *offset < high_watermark)
            .unwrap_or((-1, -1))),
        other => Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!("unsupported ListOffsets timestamp {other}"),
        )),
    }
}
