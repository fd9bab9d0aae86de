use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use std::sync::Arc;
use tracing::debug;
use vltava_protocol::ResponseError;
use vltava_record::{
    batches, check_records, validate_batch, BatchHeader, RecordError, RecordFault, RecordRules,
    RecordsRefused,
};

use super::str_bytes;
use crate::broker::{is_internal_topic, Topic};
use crate::error::ApiError;
use crate::partition::{Appended, Partition};
use crate::schema_ids::{validation_of, with_rule, SchemaIds};
use crate::Broker;

/// An acks=all write appended at the leader, waiting for the high
/// watermark to pass it (Kafka's delayed produce).
struct Replicating {
    /// Where its answer is in the response.
    topic: usize,
    partition: usize,
    on: std::sync::Arc<Partition>,
    leader_epoch: i32,
    last_offset: i64,
    min_insync: usize,
}

/// What the connection does with a produce.
pub enum Answer {
    Respond(ProduceResponse),
    /// acks=0, all appended: the client expects no response.
    Nothing,
    /// acks=0 and something failed: no response can say so, so the
    /// connection is closed (Kafka does the same), and the client
    /// refreshes its metadata (a partition led elsewhere) and reconnects.
    Close(String),
}

/// For acks=0 there is no response (see [`Answer`]).
///
/// Checking records (inflating compressed batches) and appending are CPU and
/// file work: they run under one of the broker's produce permits and, on a
/// multi-threaded runtime, off the async workers' task queue
/// (`block_in_place`), so one large or hostile batch never stalls other
/// connections. A request that cannot get a permit within its `timeout_ms`
/// is answered REQUEST_TIMED_OUT for every partition, with nothing
/// appended.
pub async fn handle(broker: &Broker, version: i16, request: ProduceRequest) -> Answer {
    match start(broker, version, request).await {
        Started::Done(answer) => answer,
        Started::Replicating(waiting) => waiting.finish().await,
    }
}

/// Where a produce stands once its batches were checked and appended.
pub enum Started {
    Done(Answer),
    /// acks=all writes appended and waiting for their followers: nothing is
    /// left to do here but wait, so the connection may read (and append)
    /// its next produce meanwhile, answering in order.
    Replicating(Waiting),
}

/// An acks=all produce appended at the leader, waiting for the high
/// watermark to pass each of its writes (Kafka's delayed produce).
pub struct Waiting {
    version: i16,
    acks: i16,
    deadline: tokio::time::Instant,
    response: ProduceResponse,
    writes: Vec<Replicating>,
}

impl Waiting {
    /// The answer, once every write is replicated, failed or timed out.
    pub async fn finish(mut self) -> Answer {
        for wait in &self.writes {
            if let Err(error) = replicated(wait, self.deadline).await {
                let answer =
                    &mut self.response.responses[wait.topic].partition_responses[wait.partition];
                *answer = partition_response(self.version, answer.index, Err(error.into()));
            }
        }
        answer(self.acks, self.response)
    }
}

/// Checks and appends a produce's batches (in the order requests arrive on
/// a connection); acks=all writes then wait in [`Waiting::finish`].
pub async fn start(broker: &Broker, version: i16, request: ProduceRequest) -> Started {
    let timeout = std::time::Duration::from_millis(request.timeout_ms.max(0) as u64);
    let acks = request.acks;
    let deadline = tokio::time::Instant::now() + timeout;
    // Topics with schema validation need the registry's ids as they are
    // now: read before taking a permit, within the request's timeout.
    let validates = request.topic_data.iter().any(|t| {
        broker
            .topic(t.name.0.as_str())
            .is_some_and(|topic| validation_of(&topic).is_some())
    });
    let schema_ids = if validates {
        match tokio::time::timeout_at(deadline, broker.schema_ids_now()).await {
            Ok(ids) => Some(ids),
            Err(_) => Some(Err(
                "the schema registry did not answer within the request's timeout".to_string(),
            )),
        }
    } else {
        None
    };
    let Ok(permit) = tokio::time::timeout_at(deadline, broker.produce_permit()).await else {
        return Started::Done(answer(acks, timed_out(version, request)));
    };
    broker.wait_for_disk().await;
    let (response, writes) =
        super::off_workers(|| handle_now(broker, version, request, schema_ids.as_ref()));
    // The permit bounds appending work, not waiting for followers.
    drop(permit);
    if writes.is_empty() {
        return Started::Done(answer(acks, response));
    }
    Started::Replicating(Waiting {
        version,
        acks,
        deadline,
        response,
        writes,
    })
}

/// Waits until the high watermark covers an acks=all write, as long as this
/// broker leads the partition and the deadline allows. Then the ISR must
/// still hold `min.insync.replicas` (NOT_ENOUGH_REPLICAS_AFTER_APPEND: the
/// write is in the log, but fewer replicas than asked for have it).
async fn replicated(wait: &Replicating, deadline: tokio::time::Instant) -> Result<(), ApiError> {
    loop {
        let advanced = wait.on.high_watermark_advanced().notified();
        tokio::pin!(advanced);
        advanced.as_mut().enable();
        // Leadership lost, even if regained since: the offsets may hold
        // another leader's records now.
        if !wait.on.is_leader() || wait.on.leader_epoch() != wait.leader_epoch {
            return Err(crate::partition::not_leader(
                wait.on.index,
                wait.on.leader(),
            ));
        }
        if wait.on.high_watermark() > wait.last_offset {
            let isr = wait.on.isr_len();
            if isr < wait.min_insync {
                return Err(ApiError::new(
                    ResponseError::NotEnoughReplicasAfterAppend,
                    format!(
                        "The write is in the log, but the ISR ({isr}) fell below min.insync.replicas={} before it was replicated",
                        wait.min_insync
                    ),
                ));
            }
            return Ok(());
        }
        if tokio::time::timeout_at(deadline, advanced).await.is_err() {
            return Err(ApiError::new(
                ResponseError::RequestTimedOut,
                format!(
                    "the in-sync replicas did not all have the write (offset {}) within timeout_ms",
                    wait.last_offset
                ),
            ));
        }
    }
}

fn answer(acks: i16, response: ProduceResponse) -> Answer {
    if acks != 0 {
        return Answer::Respond(response);
    }
    let failed = response.responses.iter().find_map(|t| {
        t.partition_responses
            .iter()
            .find(|p| p.error_code != 0)
            .map(|p| {
                (
                    t.name.0.to_string(),
                    p.index,
                    p.error_code,
                    p.error_message.clone(),
                )
            })
    });
    match failed {
        None => Answer::Nothing,
        Some((topic, partition, code, message)) => Answer::Close(format!(
            "{topic}-{partition}: error code {code}{}",
            message.map(|m| format!(" ({m})")).unwrap_or_default()
        )),
    }
}

/// Every partition of `request` answered REQUEST_TIMED_OUT.
fn timed_out(version: i16, request: ProduceRequest) -> ProduceResponse {
    let responses = request
        .topic_data
        .into_iter()
        .map(|topic_data| {
            let partitions = topic_data
                .partition_data
                .iter()
                .map(|p| {
                    let error = ApiError::new(
                        ResponseError::RequestTimedOut,
                        "the broker was busy with other produce requests for the whole timeout_ms",
                    );
                    partition_response(version, p.index, Err(error.into()))
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partitions)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

fn handle_now(
    broker: &Broker,
    version: i16,
    request: ProduceRequest,
    schema_ids: Option<&Result<Arc<SchemaIds>, String>>,
) -> (ProduceResponse, Vec<Replicating>) {
    let acks = request.acks;
    let now_ms = broker.now_ms();
    let mut replicating = Vec::new();
    let responses = request
        .topic_data
        .into_iter()
        .enumerate()
        .map(|(t, topic_data)| {
            let topic = broker.topic(topic_data.name.0.as_str());
            let partition_responses = topic_data
                .partition_data
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    let bytes = p.records.as_ref().map_or(0, |r| r.len() as u64);
                    let result = if !matches!(acks, -1..=1) {
                        Err(ApiError::new(
                            ResponseError::InvalidRequiredAcks,
                            format!("invalid acks {acks}"),
                        )
                        .into())
                    } else {
                        produce_partition(
                            topic.as_deref(),
                            p.index,
                            p.records,
                            acks,
                            now_ms,
                            schema_ids,
                        )
                    };
                    let result = result.map(|(appended, on)| {
                        if let (Some(topic), false) = (&topic, appended.duplicate) {
                            let records = appended.last_offset - appended.base_offset + 1;
                            broker
                                .metrics()
                                .produced(&topic.name, records.max(0) as u64, bytes);
                        }
                        if acks == -1 && on.high_watermark() <= appended.last_offset {
                            let min_insync =
                                topic.as_ref().map_or(1, |t| t.config.min_insync_replicas());
                            replicating.push(Replicating {
                                topic: t,
                                partition: i,
                                on,
                                leader_epoch: appended.leader_epoch,
                                last_offset: appended.last_offset,
                                min_insync,
                            });
                        }
                        appended
                    });
                    partition_response(version, p.index, result)
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partition_responses)
        })
        .collect();
    (
        ProduceResponse::default().with_responses(responses),
        replicating,
    )
}

/// Why one partition's data was refused: the error, and for KIP-467 the
/// records at fault (empty when the whole batch is at fault).
struct Refusal {
    error: ApiError,
    record_errors: Vec<RecordFault>,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Refusal {
        Refusal {
            error,
            record_errors: Vec::new(),
        }
    }
}

fn partition_response(
    version: i16,
    index: i32,
    result: Result<Appended, Refusal>,
) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default().with_index(index);
    match result {
        Ok(appended) => response
            .with_base_offset(appended.base_offset)
            .with_log_append_time_ms(appended.log_append_time_ms)
            .with_log_start_offset(appended.log_start_offset),
        Err(Refusal {
            error,
            record_errors,
        }) => {
            debug!(partition = index, error = %error, "produce refused");
            let response = response
                .with_error_code(error.code())
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            if version < 8 {
                return response;
            }
            let record_errors = record_errors
                .into_iter()
                .map(|fault| {
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(fault.batch_index)
                        .with_batch_index_error_message(Some(str_bytes(fault.message)))
                })
                .collect();
            response
                .with_error_message(Some(str_bytes(error.message)))
                .with_record_errors(record_errors)
        }
    }
}

fn produce_partition(
    topic: Option<&Topic>,
    index: i32,
    records: Option<Bytes>,
    acks: i16,
    now_ms: i64,
    schema_ids: Option<&Result<Arc<SchemaIds>, String>>,
) -> Result<(Appended, std::sync::Arc<Partition>), Refusal> {
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
        )
        .into());
    }
    let partition = topic.partition(index).ok_or_else(unknown)?;
    super::fetch::check_hosted(partition)?;
    let (batch, header) = single_batch(records.unwrap_or_default())?;
    if batch.len() > topic.config.max_message_bytes() {
        return Err(ApiError::new(
            ResponseError::MessageTooLarge,
            format!(
                "The record batch of {} bytes exceeds max.message.bytes={}",
                batch.len(),
                topic.config.max_message_bytes()
            ),
        )
        .into());
    }
    if header.is_transactional() || header.is_control() {
        return Err(ApiError::new(
            ResponseError::InvalidTxnState,
            "transactional produce is not supported yet",
        )
        .into());
    }
    let validation = validation_of(topic);
    let no_ids = SchemaIds::default();
    let ids = match (validation.is_some(), schema_ids) {
        (false, _) => &no_ids,
        (true, Some(Ok(ids))) => ids.as_ref(),
        // Not a verdict on the records: the client retries.
        (true, Some(Err(why))) => {
            return Err(ApiError::new(
                ResponseError::RequestTimedOut,
                format!("cannot check schema ids for {}: {why}", topic.name),
            )
            .into())
        }
        (true, None) => {
            return Err(ApiError::new(
                ResponseError::RequestTimedOut,
                format!(
                    "cannot check schema ids for {}: validation was turned on meanwhile",
                    topic.name
                ),
            )
            .into())
        }
    };
    with_rule(validation, ids, &topic.name, |schema_rule| {
        let rules = RecordRules {
            key_required: topic.config.is_compacted(),
            decompressed_bytes_max: topic.config.decompressed_batch_bytes_max(),
            schema_ids: schema_rule,
        };
        check_records(&batch, &header, &rules)
    })
    .map_err(records_refused)?;
    let isr = partition.isr_len().max(1);
    if acks == -1 && isr < topic.config.min_insync_replicas() {
        partition.note_refused(&header, ResponseError::NotEnoughReplicas);
        return Err(ApiError::new(
            ResponseError::NotEnoughReplicas,
            format!(
                "The size of the current ISR ({isr}) is insufficient to satisfy the min.isr requirement of {} for partition {}-{index}",
                topic.config.min_insync_replicas(),
                topic.name
            ),
        )
        .into());
    }
    let appended = partition.append(
        BytesMut::from(&batch[..]),
        &header,
        topic.config.log_append_time(),
        now_ms,
    )?;
    Ok((appended, partition.clone()))
}

/// Produce v3+ carries exactly one v2 batch per partition; its header,
/// length and CRC are checked here, its records by [`check_records`].
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

/// Kafka's codes: bytes that fail their CRC or framing are CORRUPT_MESSAGE;
/// a well-framed batch whose contents break the rules is INVALID_RECORD.
fn record_error(e: RecordError) -> ApiError {
    let error = match e {
        RecordError::BadMagic(_)
        | RecordError::BadRecordCount { .. }
        | RecordError::InvalidRecord(_)
        | RecordError::DecompressedTooLarge { .. } => ResponseError::InvalidRecord,
        RecordError::Truncated { .. }
        | RecordError::BadLength(_)
        | RecordError::LengthMismatch { .. }
        | RecordError::CrcMismatch { .. }
        | RecordError::UnknownCompression(_) => ResponseError::CorruptMessage,
    };
    ApiError::new(error, e.to_string())
}

fn records_refused(refused: RecordsRefused) -> Refusal {
    match refused {
        RecordsRefused::Batch(e) => record_error(e).into(),
        RecordsRefused::Records { faults, total } => {
            let first = faults.first().map_or("", |f| f.message.as_str());
            let message = format!(
                "{total} record(s) in the batch were refused; the first (index {}): {first}",
                faults.first().map_or(-1, |f| f.batch_index)
            );
            Refusal {
                error: ApiError::new(ResponseError::InvalidRecord, message),
                record_errors: faults,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::TopicName;
    use vltava_record::{BatchBuilder, Compression};

    use super::*;
    use crate::{BrokerConfig, ManualClock};

    /// With every produce permit taken, a request waits at most its
    /// `timeout_ms`, then gets REQUEST_TIMED_OUT and appends nothing.
    #[test]
    fn a_request_that_cannot_start_within_its_timeout_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let pairs = [("log.dirs".to_string(), dir.path().display().to_string())];
        let (config, _) = BrokerConfig::from_pairs(&pairs).unwrap();
        let broker =
            futures_executor::block_on(Broker::open(config, Arc::new(ManualClock::new(1_000))))
                .unwrap();
        broker
            .block_on(broker.create_topic("t", 1, BTreeMap::new(), false))
            .unwrap();
        let batch = BatchBuilder::new(Compression::None)
            .record(None, Some(Bytes::from_static(b"v")), vec![], 1)
            .build()
            .freeze();
        let request = |timeout_ms| {
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(timeout_ms)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(str_bytes("t")))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch.clone()))])])
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut held = Vec::new();
            for _ in 0..crate::broker::PRODUCE_REQUESTS_IN_PROGRESS_MAX {
                held.push(broker.produce_permit().await);
            }
            let started = std::time::Instant::now();
            let Answer::Respond(response) = handle(&broker, 9, request(50)).await else {
                panic!("acks=-1 is answered");
            };
            let partition = &response.responses[0].partition_responses[0];
            assert_eq!(partition.error_code, ResponseError::RequestTimedOut.code());
            assert!(started.elapsed() >= std::time::Duration::from_millis(50));
            assert_eq!(broker.topic("t").unwrap().partitions[0].log_end_offset(), 0);
            drop(held);
            let Answer::Respond(response) = handle(&broker, 9, request(50)).await else {
                panic!("acks=-1 is answered");
            };
            let partition = &response.responses[0].partition_responses[0];
            assert_eq!((partition.error_code, partition.base_offset), (0, 0));
        });
    }
}
