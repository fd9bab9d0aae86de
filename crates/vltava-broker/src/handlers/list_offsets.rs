use kafka_protocol::messages::list_offsets_request::ListOffsetsPartition;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use vltava_protocol::ResponseError;

use super::fetch::check_leader_epoch;
use crate::error::ApiError;
use crate::partition::Partition;
use crate::Broker;

const EARLIEST_TIMESTAMP: i64 = -2;
const LATEST_TIMESTAMP: i64 = -1;
const MAX_TIMESTAMP: i64 = -3;
/// First version whose answers carry the leader epoch (KIP-320).
const LEADER_EPOCH_VERSION: i16 = 4;

/// The replica id a consumer's (not a follower's or a tool's) request
/// carries.
const CONSUMER_REPLICA_ID: i32 = -1;

pub fn handle(broker: &Broker, version: i16, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let from_consumer = request.replica_id.0 == CONSUMER_REPLICA_ID;
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topic(t.name.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let found = topic.as_ref().and_then(|t| t.partition(p.partition_index));
                    answer(version, found.map(|p| p.as_ref()), p, from_consumer)
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

fn answer(
    version: i16,
    partition: Option<&Partition>,
    request: &ListOffsetsPartition,
    from_consumer: bool,
) -> ListOffsetsPartitionResponse {
    let response =
        ListOffsetsPartitionResponse::default().with_partition_index(request.partition_index);
    let result = match partition {
        Some(partition) => check_leader_epoch(partition, request.current_leader_epoch)
            .and_then(|()| lookup(partition, request.timestamp, from_consumer))
            .map(|found| (partition, found)),
        None => Err(ApiError::new(ResponseError::UnknownTopicOrPartition, "")),
    };
    match result {
        // Versions before 4 have no epoch field (a set one makes the
        // response unencodable); no offset found has no epoch, as in Kafka.
        Ok((partition, (offset, timestamp))) if version >= LEADER_EPOCH_VERSION && offset >= 0 => {
            response
                .with_offset(offset)
                .with_timestamp(timestamp)
                .with_leader_epoch(partition.leader_epoch())
        }
        Ok((_, (offset, timestamp))) => response.with_offset(offset).with_timestamp(timestamp),
        Err(e) => response
            .with_error_code(e.code())
            .with_offset(-1)
            .with_timestamp(-1),
    }
}

/// The `(offset, timestamp)` answer for one partition. A timestamp past every
/// record answers offset -1, as Kafka does. A consumer asking a new leader
/// whose high watermark has not yet reached the start of its epoch gets
/// OFFSET_NOT_AVAILABLE (retriable) instead of an offset that may be below
/// one it was already given, for the latest offset and for a time found
/// at or past the high watermark, as in Kafka.
fn lookup(
    partition: &Partition,
    timestamp: i64,
    from_consumer: bool,
) -> Result<(i64, i64), ApiError> {
    if let Some(reason) = partition.log().offline_reason() {
        return Err(ApiError::new(ResponseError::KafkaStorageError, reason));
    }
    let high_watermark = partition.high_watermark();
    let not_yet = || {
        match partition.high_watermark_behind_epoch_start() {
        Some(start) if from_consumer => Err(ApiError::new(
            ResponseError::OffsetNotAvailable,
            format!(
                "the high watermark ({high_watermark}) is behind the start of this leader epoch ({start})"
            ),
        )),
        _ => Ok((-1, -1)),
    }
    };
    let below_high_watermark = |found: Option<(i64, i64)>| match found {
        Some(found) if found.0 < high_watermark => Ok(found),
        _ => not_yet(),
    };
    match timestamp {
        EARLIEST_TIMESTAMP => Ok((partition.log_start_offset(), -1)),
        LATEST_TIMESTAMP => not_yet().map(|_| (high_watermark, -1)),
        MAX_TIMESTAMP => below_high_watermark(partition.log().max_timestamp_offset()?),
        ts if ts >= 0 => below_high_watermark(partition.log().offset_for_timestamp(ts)?),
        other => Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!("unsupported ListOffsets timestamp {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::tests::new_leader_behind;

    #[test]
    fn a_new_leader_answers_consumers_offset_not_available_until_its_high_watermark_catches_up() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _) = new_leader_behind(dir.path());
        let code = |r: Result<(i64, i64), ApiError>| r.map_err(|e| e.code());
        let not_available = Err(ResponseError::OffsetNotAvailable.code());
        assert_eq!(code(lookup(&p, LATEST_TIMESTAMP, true)), not_available);
        // A time found at or past the high watermark waits too; the
        // earliest offset does not.
        assert_eq!(code(lookup(&p, 0, true)), not_available);
        assert_eq!(code(lookup(&p, MAX_TIMESTAMP, true)), not_available);
        assert_eq!(code(lookup(&p, EARLIEST_TIMESTAMP, true)), Ok((0, -1)));
        // A follower or a tool (not a consumer) is answered as before.
        assert_eq!(code(lookup(&p, LATEST_TIMESTAMP, false)), Ok((0, -1)));
        assert_eq!(code(lookup(&p, 0, false)), Ok((-1, -1)));
        // The follower fetches: the high watermark reaches the log end.
        p.record_follower_fetch(2, 0, 2, 0, 0).unwrap();
        assert_eq!(code(lookup(&p, LATEST_TIMESTAMP, true)), Ok((2, -1)));
        assert_eq!(code(lookup(&p, 0, true)), Ok((0, 1)));
        assert_eq!(code(lookup(&p, 5, true)), Ok((-1, -1)));
    }
}
