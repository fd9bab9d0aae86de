use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use tracing::debug;
use vltava_protocol::ResponseError;
use vltava_record::{batches, decode_records, validate_batch, BatchHeader, RecordError};

use super::str_bytes;
use crate::broker::{is_internal_topic, Topic};
use crate::error::ApiError;
use crate::partition::Appended;
use crate::Broker;

/// Returns `None` for acks=0: the client expects no response.
pub fn handle(broker: &Broker, version: i16, request: ProduceRequest) -> Option<ProduceResponse> {
    let acks = request.acks;
    let now_ms = broker.now_ms();
    let mut any_appended = false;
    let responses = request
        .topic_data
        .into_iter()
        .map(|topic_data| {
            let topic = broker.topic(topic_data.name.0.as_str());
            let partition_responses = topic_data
                .partition_data
                .into_iter()
                .map(|p| {
                    let result = if !matches!(acks, -1..=1) {
                        Err(ApiError::new(
                            ResponseError::InvalidRequiredAcks,
                            format!("invalid acks {acks}"),
                        ))
                    } else {
                        produce_partition(topic.as_deref(), p.index, p.records, acks, now_ms)
                    };
                    any_appended |= result.as_ref().is_ok_and(|a| !a.duplicate);
                    partition_response(version, p.index, result)
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partition_responses)
        })
        .collect();
    if any_appended {
        broker.appended().notify_waiters();
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

fn partition_response(
    version: i16,
    index: i32,
    result: Result<Appended, ApiError>,
) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default().with_index(index);
    match result {
        Ok(appended) => response
            .with_base_offset(appended.base_offset)
            .with_log_append_time_ms(appended.log_append_time_ms)
            .with_log_start_offset(appended.log_start_offset),
        Err(e) => {
            debug!(partition = index, error = %e, "produce refused");
            response
                .with_error_code(e.code())
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1)
                .with_error_message((version >= 8).then(|| str_bytes(e.message)))
        }
    }
}

fn produce_partition(
    topic: Option<&Topic>,
    index: i32,
    records: Option<Bytes>,
    acks: i16,
    now_ms: i64,
) -> Result<Appended, ApiError> {
    let unknown = || {
        ApiError::new(
            ResponseError::UnknownTopicOrPartition,
            "This server does not host this topic-partition.",
        )
    };
    let topic = topic.ok_or_else(unknown)?;
    if is_internal_topic(&topic.name) {
        return Err(ApiError::new(
            ResponseError::InvalidTopicException,
            format!("Cannot append to internal topic {}", topic.name),
        ));
    }
    let partition = topic.partition(index).ok_or_else(unknown)?;
    let (batch, header) = single_batch(records.unwrap_or_default())?;
    if batch.len() > topic.config.max_message_bytes() {
        return Err(ApiError::new(
            ResponseError::MessageTooLarge,
            format!(
                "The record batch of {} bytes exceeds max.message.bytes={}",
                batch.len(),
                topic.config.max_message_bytes()
            ),
        ));
    }
    if header.is_transactional() || header.is_control() {
        return Err(ApiError::new(
            ResponseError::InvalidTxnState,
            "transactional produce is not supported yet",
        ));
    }
    if topic.config.is_compacted() {
        reject_keyless(&batch)?;
    }
    if acks == -1 && topic.config.min_insync_replicas() > 1 {
        return Err(ApiError::new(
            ResponseError::NotEnoughReplicas,
            format!(
                "min.insync.replicas={} but the partition has 1 in-sync replica",
                topic.config.min_insync_replicas()
            ),
        ));
    }
    partition.append(
        BytesMut::from(&batch[..]),
        &header,
        topic.config.log_append_time(),
        now_ms,
    )
}

/// Produce v3+ carries exactly one v2 batch per partition; it is checked
/// whole (length, magic, CRC) without decoding its records.
fn single_batch(records: Bytes) -> Result<(Bytes, BatchHeader), ApiError> {
    let invalid = |message: String| ApiError::new(ResponseError::InvalidRecord, message);
    let mut iter = batches(&records);
    let batch = match iter.next() {
        Some(Ok(batch)) => batch,
        Some(Err(e)) => return Err(record_error(e)),
        None => {
            return Err(invalid(
                "the produce request carries no record batch".into(),
            ))
        }
    };
    if iter.next().is_some() {
        return Err(invalid(
            "Produce requests with version 3 and above must contain exactly one record batch"
                .into(),
        ));
    }
    let header = validate_batch(&batch).map_err(record_error)?;
    Ok((batch, header))
}

fn record_error(e: RecordError) -> ApiError {
    let error = match e {
        RecordError::BadMagic(_) => ResponseError::InvalidRecord,
        _ => ResponseError::CorruptMessage,
    };
    ApiError::new(error, e.to_string())
}

fn reject_keyless(batch: &[u8]) -> Result<(), ApiError> {
    let records = decode_records(batch).map_err(record_error)?;
    if records.iter().any(|r| r.key.is_none()) {
        return Err(ApiError::new(
            ResponseError::InvalidRecord,
            "Compacted topic cannot accept message without key",
        ));
    }
    Ok(())
}
