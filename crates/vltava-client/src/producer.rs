//! The producer: records are partitioned (murmur2 for keys, sticky for
//! keyless), collected per partition until `batch.size` bytes or
//! `linger.ms` pass, encoded as one v2 batch each with
//! `vltava_record::BatchBuilder`, and sent by one background task, one
//! Produce request per leader. With idempotence the task owns the producer
//! id and per-partition sequence numbers and keeps one batch in flight per
//! partition, so a retried batch can never overtake or duplicate another.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, ProducerId};
use rand::Rng;
use tokio::sync::{oneshot, Notify};
use tracing::debug;
use vltava_record::{BatchBuilder, Compression};

use crate::client::{is_stale_metadata, topic_name, Client, Node};
use crate::error::{codes, Error, KafkaError};
use crate::partitioner::partition_for_key;

/// Producer settings, named after the Java client's.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// `acks`: 0, 1 or -1 (all).
    pub acks: i16,
    /// `linger.ms`.
    pub linger: Duration,
    /// `batch.size` in bytes (of uncompressed key + value + headers).
    pub batch_size_bytes: usize,
    /// `compression.type`.
    pub compression: Compression,
    /// `enable.idempotence`; needs `acks=-1`.
    pub idempotence: bool,
    /// `request.timeout.ms`, sent to the broker as the produce timeout.
    pub request_timeout: Duration,
    /// `retries` for retriable errors.
    pub retries: u32,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: -1,
            linger: Duration::from_millis(5),
            batch_size_bytes: 16 * 1024,
            compression: Compression::None,
            idempotence: true,
            request_timeout: Duration::from_secs(30),
            retries: 10,
        }
    }
}

/// A record to send. `partition: None` lets the partitioner choose.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    pub topic: String,
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// CreateTime in ms; `None` means now.
    pub timestamp_ms: Option<i64>,
}

impl ProducerRecord {
    pub fn new(topic: &str, key: Option<&[u8]>, value: &[u8]) -> ProducerRecord {
        ProducerRecord {
            topic: topic.to_string(),
            key: key.map(Bytes::copy_from_slice),
            value: Some(Bytes::copy_from_slice(value)),
            ..Default::default()
        }
    }
}

/// Where an acknowledged record landed. `offset` is -1 with `acks=0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
}

/// Resolves when the record is acknowledged (or failed).
pub type DeliveryFuture = oneshot::Receiver<Result<RecordMetadata, Error>>;

type Tp = (String, i32);

struct Pending {
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(String, Option<Bytes>)>,
    timestamp_ms: i64,
    reply: oneshot::Sender<Result<RecordMetadata, Error>>,
}

#[derive(Default)]
struct OpenBatch {
    records: Vec<Pending>,
    bytes: usize,
    opened: Option<Instant>,
}

#[derive(Default)]
struct Accumulator {
    /// Per partition, closed batches then the open one (at the back), as
    /// the Java client's accumulator: a batch closes when the next record
    /// would take it past `batch.size`.
    batches: BTreeMap<Tp, VecDeque<OpenBatch>>,
    /// Records handed to the sender and not yet answered.
    in_flight: usize,
    flushes: usize,
    closed: bool,
    /// Sticky partition per topic for keyless records.
    sticky: HashMap<String, i32>,
}

struct Shared {
    // std Mutex: short sections only, never held across an await.
    acc: Mutex<Accumulator>,
    wake_sender: Notify,
    idle: Notify,
}

/// An asynchronous producer. `send` queues; `flush` waits until everything
/// queued so far is answered; `close` flushes and stops the sender task.
pub struct Producer {
    client: Client,
    config: ProducerConfig,
    shared: Arc<Shared>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Producer {
    /// Starts a producer; with idempotence it first gets a producer id
    /// (InitProducerId).
    pub async fn new(client: Client, config: ProducerConfig) -> Result<Producer, Error> {
        if config.idempotence && config.acks != -1 {
            return Err(Error::Invalid(
                "Must set acks to all in order to use the idempotent producer.".into(),
            ));
        }
        let producer_id = if config.idempotence {
            let response = client
                .send(Node::Any, |_| {
                    InitProducerIdRequest::default()
                        .with_transactional_id(None)
                        .with_transaction_timeout_ms(60_000)
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1)
                })
                .await?;
            KafkaError::check(response.error_code, None)?;
            Some((response.producer_id.0, response.producer_epoch))
        } else {
            None
        };
        let shared = Arc::new(Shared {
            acc: Mutex::new(Accumulator::default()),
            wake_sender: Notify::new(),
            idle: Notify::new(),
        });
        let sender = Sender {
            client: client.clone(),
            config: config.clone(),
            shared: shared.clone(),
            producer_id,
            sequences: HashMap::new(),
        };
        let task = tokio::spawn(sender.run());
        Ok(Producer {
            client,
            config,
            shared,
            task: Some(task),
        })
    }

    /// Queues `record`; the returned future resolves with its offset.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture, Error> {
        let partition = match record.partition {
            Some(p) => p,
            None => self.choose_partition(&record).await?,
        };
        let (reply, delivery) = oneshot::channel();
        let size = record_size(&record.key, &record.value, &record.headers);
        let full = {
            let mut acc = self.shared.acc.lock().expect("poisoned");
            if acc.closed {
                return Err(Error::Invalid("the producer is closed".into()));
            }
            let queue = acc
                .batches
                .entry((record.topic.clone(), partition))
                .or_default();
            let pending = Pending {
                key: record.key,
                value: record.value,
                headers: record.headers,
                timestamp_ms: record.timestamp_ms.unwrap_or_else(now_ms),
                reply,
            };
            append_record(queue, pending, size, self.config.batch_size_bytes)
        };
        if full {
            // A new batch starts its linger clock; a full one is ready now.
            self.shared.wake_sender.notify_one();
        }
        Ok(delivery)
    }

    async fn choose_partition(&self, record: &ProducerRecord) -> Result<i32, Error> {
        let count = match self.client.cached_topic(&record.topic) {
            Some(t) if !t.partitions.is_empty() => t.partitions.len() as i32,
            _ => self
                .client
                .topic(&record.topic, true)
                .await?
                .partitions
                .len() as i32,
        };
        if count == 0 {
            return Err(Error::Kafka(crate::client::unknown_topic(&record.topic)));
        }
        if let Some(key) = &record.key {
            return Ok(partition_for_key(key, count));
        }
        let mut acc = self.shared.acc.lock().expect("poisoned");
        let sticky = acc
            .sticky
            .entry(record.topic.clone())
            .or_insert_with(|| rand::rng().random_range(0..count));
        if *sticky >= count {
            *sticky = rand::rng().random_range(0..count);
        }
        Ok(*sticky)
    }

    /// Sends everything queued so far, ignoring `linger.ms`, and waits until
    /// all of it is answered.
    pub async fn flush(&self) {
        self.shared.acc.lock().expect("poisoned").flushes += 1;
        self.shared.wake_sender.notify_one();
        loop {
            let idle = self.shared.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            {
                let acc = self.shared.acc.lock().expect("poisoned");
                if acc.batches.is_empty() && acc.in_flight == 0 {
                    break;
                }
            }
            idle.await;
        }
        self.shared.acc.lock().expect("poisoned").flushes -= 1;
    }

    /// Flushes and stops the background sender.
    pub async fn close(mut self) {
        self.flush().await;
        self.shared.acc.lock().expect("poisoned").closed = true;
        self.shared.wake_sender.notify_one();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The bytes a record counts against `batch.size`: key, value and headers
/// plus a fixed allowance for its framing.
fn record_size(
    key: &Option<Bytes>,
    value: &Option<Bytes>,
    headers: &[(String, Option<Bytes>)],
) -> usize {
    key.as_ref().map_or(0, Bytes::len)
        + value.as_ref().map_or(0, Bytes::len)
        + headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len))
            .sum::<usize>()
        + 16
}

/// Adds a record to a partition's queue, opening a new batch when it would
/// take the open one past `batch_size_bytes` (a record larger than that
/// gets a batch of its own). Records keep arriving while a Produce is in
/// flight; a batch that grew without bound would exceed the broker's
/// `max.message.bytes`. True when the sender should look now: a batch is
/// full, or the first one starts its linger clock.
fn append_record(
    queue: &mut VecDeque<OpenBatch>,
    record: Pending,
    size: usize,
    batch_size_bytes: usize,
) -> bool {
    let fits = queue
        .back()
        .is_some_and(|b| b.records.is_empty() || b.bytes + size <= batch_size_bytes);
    if !fits {
        queue.push_back(OpenBatch::default());
    }
    let queued = queue.len();
    let batch = queue.back_mut().expect("just ensured");
    batch.opened.get_or_insert_with(Instant::now);
    batch.bytes += size;
    batch.records.push(record);
    queued > 1 || batch.bytes >= batch_size_bytes || batch.records.len() == 1
}

struct ReadyBatch {
    tp: Tp,
    records: Vec<Pending>,
    base_sequence: i32,
    encoded: Bytes,
}

struct Sender {
    client: Client,
    config: ProducerConfig,
    shared: Arc<Shared>,
    producer_id: Option<(i64, i16)>,
    sequences: HashMap<Tp, i32>,
}

impl Sender {
    async fn run(mut self) {
        loop {
            let (ready, wait) = self.take_ready();
            if ready.is_empty() {
                if wait.is_none() && self.shared.acc.lock().expect("poisoned").closed {
                    return;
                }
                self.shared.idle.notify_waiters();
                match wait {
                    Some(d) => {
                        let _ = tokio::time::timeout(d, self.shared.wake_sender.notified()).await;
                    }
                    None => self.shared.wake_sender.notified().await,
                }
                continue;
            }
            let count: usize = ready.iter().map(|b| b.records.len()).sum();
            self.send_all(ready).await;
            self.shared.acc.lock().expect("poisoned").in_flight -= count;
            self.shared.idle.notify_waiters();
        }
    }

    /// Moves ready batches out of the accumulator; also returns how long
    /// until the next one would be ready.
    fn take_ready(&mut self) -> (Vec<ReadyBatch>, Option<Duration>) {
        let mut acc = self.shared.acc.lock().expect("poisoned");
        let now = Instant::now();
        let force = acc.flushes > 0 || acc.closed;
        let mut ready_keys = Vec::new();
        let mut wait: Option<Duration> = None;
        for (tp, queue) in &acc.batches {
            let Some(batch) = queue.front() else { continue };
            let age = batch.opened.map_or(Duration::ZERO, |o| now - o);
            let closed = queue.len() > 1 || batch.bytes >= self.config.batch_size_bytes;
            if force || closed || age >= self.config.linger {
                ready_keys.push(tp.clone());
            } else {
                let left = self.config.linger - age;
                wait = Some(wait.map_or(left, |w: Duration| w.min(left)));
            }
        }
        let mut ready = Vec::new();
        for tp in ready_keys {
            // One batch per partition per Produce (Kafka requires it); the
            // partition's next batch goes in the next request.
            let queue = acc.batches.get_mut(&tp).expect("key just listed");
            let batch = queue.pop_front().expect("listed as ready");
            if queue.is_empty() {
                acc.batches.remove(&tp);
            }
            // The sticky partition moves on once its batch is sent (KIP-480).
            if acc.sticky.get(&tp.0) == Some(&tp.1) {
                acc.sticky.remove(&tp.0);
            }
            acc.in_flight += batch.records.len();
            let base_sequence = match self.producer_id {
                Some(_) => {
                    let next = self.sequences.entry(tp.clone()).or_insert(0);
                    let base = *next;
                    *next = vltava_record::increment_sequence(base, batch.records.len() as i32);
                    base
                }
                None => vltava_record::NO_SEQUENCE,
            };
            let encoded = self.encode(&batch.records, base_sequence);
            ready.push(ReadyBatch {
                tp,
                records: batch.records,
                base_sequence,
                encoded,
            });
        }
        (ready, wait)
    }

    fn encode(&self, records: &[Pending], base_sequence: i32) -> Bytes {
        let mut builder = BatchBuilder::new(self.config.compression);
        if let Some((id, epoch)) = self.producer_id {
            builder = builder.producer(id, epoch, base_sequence);
        }
        for r in records {
            builder = builder.record(
                r.key.clone(),
                r.value.clone(),
                r.headers.clone(),
                r.timestamp_ms,
            );
        }
        builder.build().freeze()
    }

    /// Sends the batches grouped by leader, retrying the ones that failed
    /// with retriable errors after a metadata refresh.
    async fn send_all(&mut self, mut batches: Vec<ReadyBatch>) {
        let mut attempt = 0;
        while !batches.is_empty() {
            let mut by_leader: BTreeMap<i32, Vec<ReadyBatch>> = BTreeMap::new();
            let mut retry = Vec::new();
            for batch in batches.drain(..) {
                match self.client.leader(&batch.tp.0, batch.tp.1).await {
                    Ok(leader) => by_leader.entry(leader).or_default().push(batch),
                    Err(e) if attempt < self.config.retries && retriable(&e) => retry.push(batch),
                    Err(e) => fail(batch, &e),
                }
            }
            for (leader, group) in by_leader {
                retry.extend(self.produce(leader, group, attempt).await);
            }
            if !retry.is_empty() {
                attempt += 1;
                for b in &retry {
                    self.client.invalidate(&b.tp.0);
                }
                tokio::time::sleep(self.client.config().retry_backoff).await;
            }
            batches = retry;
        }
    }

    /// One Produce request; returns the batches worth retrying.
    async fn produce(
        &mut self,
        leader: i32,
        batches: Vec<ReadyBatch>,
        attempt: u32,
    ) -> Vec<ReadyBatch> {
        let mut topics: BTreeMap<&str, Vec<PartitionProduceData>> = BTreeMap::new();
        for b in &batches {
            topics.entry(&b.tp.0).or_default().push(
                PartitionProduceData::default()
                    .with_index(b.tp.1)
                    .with_records(Some(b.encoded.clone())),
            );
        }
        let request = |_version: i16| {
            ProduceRequest::default()
                .with_acks(self.config.acks)
                .with_timeout_ms(self.config.request_timeout.as_millis() as i32)
                .with_topic_data(
                    topics
                        .iter()
                        .map(|(name, parts)| {
                            TopicProduceData::default()
                                .with_name(topic_name(name))
                                .with_partition_data(parts.clone())
                        })
                        .collect(),
                )
        };
        if self.config.acks == 0 {
            let result = self.client.send_only(Node::Broker(leader), request).await;
            for b in batches {
                match &result {
                    Ok(()) => succeed(b, -1, -1),
                    Err(e) => fail(b, e),
                }
            }
            return Vec::new();
        }
        let response = match self.client.send(Node::Broker(leader), request).await {
            Ok(r) => r,
            Err(e) => {
                // Safe to resend with idempotence (the broker drops the
                // duplicate); without it Kafka's producer retries too.
                debug!(error = %e, "produce request failed");
                return batches
                    .into_iter()
                    .filter_map(|b| {
                        if e.is_transport() && attempt < self.config.retries {
                            Some(b)
                        } else {
                            fail(b, &e);
                            None
                        }
                    })
                    .collect();
            }
        };
        let mut results = HashMap::new();
        for t in &response.responses {
            for p in &t.partition_responses {
                results.insert((t.name.to_string(), p.index), p.clone());
            }
        }
        let mut retry = Vec::new();
        for b in batches {
            let Some(p) = results.remove(&b.tp) else {
                fail(
                    b,
                    &Error::Invalid("the broker did not answer for this partition".into()),
                );
                continue;
            };
            match p.error_code {
                0 => succeed(b, p.base_offset, p.log_append_time_ms),
                codes::DUPLICATE_SEQUENCE_NUMBER => succeed(b, -1, -1),
                code if (is_stale_metadata(code)
                    || KafkaError::from_code(code, None).is_some_and(|e| e.is_retriable()))
                    && attempt < self.config.retries =>
                {
                    debug!(topic = %b.tp.0, partition = b.tp.1, sequence = b.base_sequence, code, "retrying batch");
                    retry.push(b)
                }
                code => {
                    let message = p.error_message.as_ref().map(|m| m.to_string());
                    fail(
                        b,
                        &Error::Kafka(
                            KafkaError::from_code(code, message.as_deref()).expect("non-zero"),
                        ),
                    );
                }
            }
        }
        retry
    }
}

fn retriable(e: &Error) -> bool {
    e.is_transport()
        || e.kafka()
            .is_some_and(|k| k.is_retriable() || is_stale_metadata(k.code))
}

fn succeed(batch: ReadyBatch, base_offset: i64, log_append_time_ms: i64) {
    for (i, r) in batch.records.into_iter().enumerate() {
        let offset = if base_offset < 0 {
            -1
        } else {
            base_offset + i as i64
        };
        let timestamp_ms = if log_append_time_ms >= 0 {
            log_append_time_ms
        } else {
            r.timestamp_ms
        };
        let _ = r.reply.send(Ok(RecordMetadata {
            topic: batch.tp.0.clone(),
            partition: batch.tp.1,
            offset,
            timestamp_ms,
        }));
    }
}

fn fail(batch: ReadyBatch, e: &Error) {
    let text = e.to_string();
    let code = e.kafka().map(|k| k.code);
    for r in batch.records {
        let err = match code {
            Some(code) => Error::Kafka(KafkaError {
                code,
                message: Some(text.clone()),
            }),
            None => Error::Invalid(text.clone()),
        };
        let _ = r.reply.send(Err(err));
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(value_bytes: usize) -> Pending {
        Pending {
            key: None,
            value: Some(Bytes::from(vec![b'x'; value_bytes])),
            headers: Vec::new(),
            timestamp_ms: 0,
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn batches_close_before_they_pass_batch_size() {
        let mut queue = VecDeque::new();
        // Ten records of 84 + 16 = 100 counted bytes each; batch.size 250.
        let ready: Vec<bool> = (0..10)
            .map(|_| append_record(&mut queue, pending(84), 100, 250))
            .collect();
        let sizes: Vec<usize> = queue.iter().map(|b| b.records.len()).collect();
        assert_eq!(sizes, vec![2, 2, 2, 2, 2]);
        assert!(queue.iter().all(|b| b.bytes == 200));
        // The first record starts the linger clock; later ones make the
        // sender look because a closed batch waits behind the open one.
        assert_eq!(
            ready,
            vec![true, false, true, true, true, true, true, true, true, true]
        );
        // A record larger than batch.size goes alone.
        let mut queue = VecDeque::new();
        append_record(&mut queue, pending(10), 26, 250);
        append_record(&mut queue, pending(1000), 1016, 250);
        append_record(&mut queue, pending(10), 26, 250);
        let sizes: Vec<usize> = queue.iter().map(|b| b.records.len()).collect();
        assert_eq!(sizes, vec![1, 1, 1]);
    }
}
