//! The consumer: assigned partitions, a position per partition, ListOffsets
//! to turn "earliest"/"latest"/a timestamp into an offset, and a fetch loop
//! against each partition's leader. Group membership lives in
//! [`crate::group`] and drives `assign`/`seek` from outside.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, ListOffsetsRequest};
use tracing::debug;
use vltava_record::{batches, decode_records, BatchHeader, TimestampType};

use crate::client::{is_stale_metadata, topic_name, Client, Node};
use crate::error::{codes, Error, KafkaError};

/// First Fetch version that carries the client's current leader epoch
/// (KIP-320).
const FETCH_LEADER_EPOCH_VERSION: i16 = 9;
/// First ListOffsets version that carries it.
const LIST_OFFSETS_LEADER_EPOCH_VERSION: i16 = 4;

/// `topic`, `partition`.
pub type TopicPartition = (String, i32);

/// A logical position to resolve with ListOffsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// The first offset whose timestamp is at or after this (ms); the log
    /// end when there is none.
    Timestamp(i64),
    /// The offset of the record with the largest timestamp (KIP-734,
    /// ListOffsets v7+); -1 when the partition is empty.
    MaxTimestamp,
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(ts) => ts,
            OffsetSpec::MaxTimestamp => -3,
        }
    }
}

/// `isolation.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    ReadUncommitted,
    ReadCommitted,
}

/// Consumer settings, named after the Java client's.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// `auto.offset.reset`: where a partition without a position starts.
    pub auto_offset_reset: OffsetSpec,
    /// `fetch.max.wait.ms`.
    pub fetch_max_wait: Duration,
    /// `fetch.min.bytes`.
    pub fetch_min_bytes: i32,
    /// `fetch.max.bytes`.
    pub fetch_max_bytes: i32,
    /// `max.partition.fetch.bytes`.
    pub partition_max_bytes: i32,
    pub isolation_level: IsolationLevel,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            auto_offset_reset: OffsetSpec::Latest,
            fetch_max_wait: Duration::from_millis(500),
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
            isolation_level: IsolationLevel::ReadUncommitted,
        }
    }
}

/// One consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    /// `CreateTime` or `LogAppendTime`, as Kafka prints them.
    pub timestamp_type: &'static str,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// The partition leader epoch of the record's batch; `None` when the
    /// batch carries none (-1).
    pub leader_epoch: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    Offset(i64),
    Reset(OffsetSpec),
}

/// A consumer of explicitly assigned partitions.
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    positions: BTreeMap<TopicPartition, Position>,
    buffered: VecDeque<ConsumerRecord>,
}

impl Consumer {
    pub fn new(client: Client, config: ConsumerConfig) -> Consumer {
        Consumer {
            client,
            config,
            positions: BTreeMap::new(),
            buffered: VecDeque::new(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Replaces the assignment. Partitions kept keep their position; new
    /// ones start at `auto.offset.reset` unless sought.
    pub fn assign(&mut self, partitions: Vec<TopicPartition>) {
        let mut next = BTreeMap::new();
        for tp in partitions {
            let pos = self
                .positions
                .get(&tp)
                .copied()
                .unwrap_or(Position::Reset(self.config.auto_offset_reset));
            next.insert(tp, pos);
        }
        self.positions = next;
        self.buffered
            .retain(|r| self.positions.contains_key(&(r.topic.clone(), r.partition)));
    }

    /// Every partition of `topic`, assigned.
    pub async fn assign_topic(&mut self, topic: &str) -> Result<Vec<TopicPartition>, Error> {
        let info = self.client.topic(topic, false).await?;
        let tps: Vec<TopicPartition> = info
            .partitions
            .iter()
            .map(|p| (topic.to_string(), p.partition))
            .collect();
        let mut all: Vec<TopicPartition> = self.positions.keys().cloned().collect();
        all.extend(tps.iter().cloned());
        all.sort();
        all.dedup();
        self.assign(all);
        Ok(tps)
    }

    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.positions.keys().cloned().collect()
    }

    /// Sets the next offset to read.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) {
        self.positions.insert(tp.clone(), Position::Offset(offset));
        self.drop_buffered(tp);
    }

    /// Resolves the position with ListOffsets on the next poll.
    pub fn seek_to(&mut self, tp: &TopicPartition, spec: OffsetSpec) {
        self.positions.insert(tp.clone(), Position::Reset(spec));
        self.drop_buffered(tp);
    }

    fn drop_buffered(&mut self, tp: &TopicPartition) {
        self.buffered
            .retain(|r| !(r.topic == tp.0 && r.partition == tp.1));
    }

    /// The next offset to be returned for `tp`, once known. Records already
    /// fetched but not yet returned by `poll` count as not consumed.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        if let Some(r) = self
            .buffered
            .iter()
            .find(|r| r.topic == tp.0 && r.partition == tp.1)
        {
            return Some(r.offset);
        }
        match self.positions.get(tp)? {
            Position::Offset(o) => Some(*o),
            Position::Reset(_) => None,
        }
    }

    /// Resolves every pending position with ListOffsets.
    pub async fn resolve_positions(&mut self) -> Result<(), Error> {
        let pending: Vec<(TopicPartition, OffsetSpec)> = self
            .positions
            .iter()
            .filter_map(|(tp, p)| match p {
                Position::Reset(spec) => Some((tp.clone(), *spec)),
                Position::Offset(_) => None,
            })
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        let resolved = list_offsets(&self.client, &pending, self.config.isolation_level).await?;
        for (tp, offset) in resolved {
            debug!(topic = %tp.0, partition = tp.1, offset, "consumer positioned");
            self.positions.insert(tp, Position::Offset(offset));
        }
        Ok(())
    }

    /// Returns the next records: buffered ones first, else one fetch round
    /// (which waits up to `fetch.max.wait.ms` for data).
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>, Error> {
        if self.buffered.is_empty() {
            self.fetch_round().await?;
        }
        Ok(self.buffered.drain(..).collect())
    }

    async fn fetch_round(&mut self) -> Result<(), Error> {
        self.resolve_positions().await?;
        if self.positions.is_empty() {
            tokio::time::sleep(self.config.fetch_max_wait).await;
            return Ok(());
        }
        let mut by_leader: BTreeMap<i32, Vec<(TopicPartition, i64, i32)>> = BTreeMap::new();
        for (tp, pos) in &self.positions {
            if let Position::Offset(offset) = pos {
                match self.client.leader_and_epoch(&tp.0, tp.1).await {
                    Ok((leader, epoch)) => {
                        by_leader
                            .entry(leader)
                            .or_default()
                            .push((tp.clone(), *offset, epoch))
                    }
                    Err(e) if is_retriable(&e) => {
                        self.client.invalidate(&tp.0);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if by_leader.is_empty() {
            tokio::time::sleep(self.client.config().retry_backoff).await;
        }
        // With several leaders each long poll is shortened so one quiet
        // broker does not hold up the others for long.
        let wait = if by_leader.len() > 1 {
            Duration::from_millis(50)
        } else {
            self.config.fetch_max_wait
        };
        for (leader, parts) in by_leader {
            match self.fetch_from(leader, &parts, wait).await {
                Ok(()) => {}
                Err(e) if is_retriable(&e) => {
                    debug!(leader, error = %e, "fetch failed; refreshing metadata");
                    for (tp, ..) in &parts {
                        self.client.invalidate(&tp.0);
                    }
                    tokio::time::sleep(self.client.config().retry_backoff).await;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// One Fetch to `leader` for `parts` (partition, offset, the leader
    /// epoch the metadata gave).
    async fn fetch_from(
        &mut self,
        leader: i32,
        parts: &[(TopicPartition, i64, i32)],
        wait: Duration,
    ) -> Result<(), Error> {
        let config = &self.config;
        let response = self
            .client
            .send(Node::Broker(leader), |version| {
                let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
                for ((topic, partition), offset, epoch) in parts {
                    let mut p = FetchPartition::default()
                        .with_partition(*partition)
                        .with_fetch_offset(*offset)
                        .with_partition_max_bytes(config.partition_max_bytes);
                    if version >= FETCH_LEADER_EPOCH_VERSION {
                        p = p.with_current_leader_epoch(*epoch);
                    }
                    topics.entry(topic).or_default().push(p);
                }
                FetchRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_max_wait_ms(wait.as_millis() as i32)
                    .with_min_bytes(config.fetch_min_bytes)
                    .with_max_bytes(config.fetch_max_bytes)
                    .with_isolation_level(match config.isolation_level {
                        IsolationLevel::ReadUncommitted => 0,
                        IsolationLevel::ReadCommitted => 1,
                    })
                    .with_topics(
                        topics
                            .iter()
                            .map(|(t, p)| {
                                FetchTopic::default()
                                    .with_topic(topic_name(t))
                                    .with_partitions(p.clone())
                            })
                            .collect(),
                    )
            })
            .await?;
        KafkaError::check(response.error_code, None)?;
        for t in &response.responses {
            for p in &t.partitions {
                let tp = (t.topic.to_string(), p.partition_index);
                let Some(Position::Offset(position)) = self.positions.get(&tp).copied() else {
                    continue;
                };
                match p.error_code {
                    0 => {}
                    codes::OFFSET_OUT_OF_RANGE => {
                        debug!(topic = %tp.0, partition = tp.1, position, "offset out of range; resetting");
                        self.positions
                            .insert(tp, Position::Reset(self.config.auto_offset_reset));
                        continue;
                    }
                    code if is_stale_metadata(code) => {
                        self.client.invalidate(&tp.0);
                        continue;
                    }
                    code => return Err(KafkaError::check(code, None).unwrap_err()),
                }
                let Some(records) = &p.records else { continue };
                let next = self.absorb(&tp, position, records)?;
                self.positions.insert(tp, Position::Offset(next));
            }
        }
        Ok(())
    }

    /// Decodes the batches of one partition's record set, buffers records at
    /// or after `position`, and returns the next position. A partial batch
    /// at the end (the broker cut at the byte limit) is left for next time.
    fn absorb(
        &mut self,
        tp: &TopicPartition,
        position: i64,
        records: &Bytes,
    ) -> Result<i64, Error> {
        let mut next = position;
        for batch in batches(records) {
            let Ok(batch) = batch else { break };
            let header = BatchHeader::parse(&batch).map_err(|e| corrupt(tp, e))?;
            if header.next_offset() <= next {
                continue;
            }
            if header.is_control() {
                next = header.next_offset();
                continue;
            }
            let timestamp_type = if header.is_log_append_time() {
                "LogAppendTime"
            } else {
                "CreateTime"
            };
            for record in decode_records(&batch).map_err(|e| corrupt(tp, e))? {
                if record.offset < next {
                    continue;
                }
                self.buffered.push_back(ConsumerRecord {
                    topic: tp.0.clone(),
                    partition: tp.1,
                    offset: record.offset,
                    timestamp_ms: record.timestamp,
                    timestamp_type: match record.timestamp_type {
                        TimestampType::LogAppend => "LogAppendTime",
                        TimestampType::Creation => timestamp_type,
                    },
                    key: record.key,
                    value: record.value,
                    headers: record
                        .headers
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                    leader_epoch: (header.partition_leader_epoch >= 0)
                        .then_some(header.partition_leader_epoch),
                });
            }
            next = header.next_offset();
        }
        Ok(next)
    }
}

fn corrupt(tp: &TopicPartition, e: vltava_record::RecordError) -> Error {
    Error::Protocol {
        addr: format!("leader of {}-{}", tp.0, tp.1),
        message: format!("corrupt record batch: {e}"),
    }
}

fn is_retriable(e: &Error) -> bool {
    e.is_transport()
        || e.kafka()
            .is_some_and(|k| k.is_retriable() || is_stale_metadata(k.code))
}

/// Resolves each `(partition, spec)` to an offset with ListOffsets sent to
/// the partition's leader, retrying on stale metadata.
pub async fn list_offsets(
    client: &Client,
    wanted: &[(TopicPartition, OffsetSpec)],
    isolation_level: IsolationLevel,
) -> Result<BTreeMap<TopicPartition, i64>, Error> {
    let mut out = BTreeMap::new();
    let mut todo: Vec<(TopicPartition, OffsetSpec)> = wanted.to_vec();
    let mut attempt = 0;
    let started = tokio::time::Instant::now();
    while !todo.is_empty() {
        // Partitions retried only to wait for a high watermark: they do
        // not use up the retry count.
        let mut waiting_for_high_watermark = 0usize;
        let mut by_leader: BTreeMap<i32, Vec<(TopicPartition, OffsetSpec, i32)>> = BTreeMap::new();
        let mut retry = Vec::new();
        for (tp, spec) in todo.drain(..) {
            match client.leader_and_epoch(&tp.0, tp.1).await {
                Ok((l, epoch)) => by_leader.entry(l).or_default().push((tp, spec, epoch)),
                Err(e) if is_retriable(&e) && attempt < client.config().retries => {
                    retry.push((tp, spec))
                }
                Err(e) => return Err(e),
            }
        }
        for (leader, parts) in by_leader {
            let response = client
                .send(Node::Broker(leader), |version| {
                    let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
                    for ((t, p), spec, epoch) in &parts {
                        let mut partition = ListOffsetsPartition::default()
                            .with_partition_index(*p)
                            .with_timestamp(spec.wire());
                        if version >= LIST_OFFSETS_LEADER_EPOCH_VERSION {
                            partition = partition.with_current_leader_epoch(*epoch);
                        }
                        topics.entry(t).or_default().push(partition);
                    }
                    let mut r = ListOffsetsRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_topics(
                            topics
                                .iter()
                                .map(|(t, p)| {
                                    ListOffsetsTopic::default()
                                        .with_name(topic_name(t))
                                        .with_partitions(p.clone())
                                })
                                .collect(),
                        );
                    if version >= 2 && isolation_level == IsolationLevel::ReadCommitted {
                        r = r.with_isolation_level(1);
                    }
                    r
                })
                .await;
            let response = match response {
                Ok(r) => r,
                Err(e) if is_retriable(&e) && attempt < client.config().retries => {
                    // The leader may be gone: learn the leaders afresh.
                    for ((topic, _), ..) in &parts {
                        client.invalidate(topic);
                    }
                    retry.extend(parts.into_iter().map(|(tp, spec, _)| (tp, spec)));
                    continue;
                }
                Err(e) => return Err(e),
            };
            for t in &response.topics {
                for p in &t.partitions {
                    let tp = (t.name.to_string(), p.partition_index);
                    match p.error_code {
                        0 => {
                            out.insert(tp, p.offset);
                        }
                        // A new leader's high watermark catches up once a
                        // follower fetches: waited for up to a deadline of
                        // its own (the Java client waits its API timeout),
                        // not the retry count.
                        codes::OFFSET_NOT_AVAILABLE
                            if started.elapsed() < OFFSET_NOT_AVAILABLE_PATIENCE =>
                        {
                            waiting_for_high_watermark += 1;
                            if let Some(spec) = parts.iter().find(|(x, ..)| *x == tp).map(|x| x.1) {
                                retry.push((tp, spec));
                            }
                        }
                        code if (is_stale_metadata(code)
                            || code == codes::LEADER_NOT_AVAILABLE)
                            && attempt < client.config().retries =>
                        {
                            client.invalidate(&tp.0);
                            if let Some(spec) = parts.iter().find(|(x, ..)| *x == tp).map(|x| x.1) {
                                retry.push((tp, spec));
                            }
                        }
                        code => return Err(KafkaError::check(code, None).unwrap_err()),
                    }
                }
            }
        }
        if !retry.is_empty() {
            if retry.len() > waiting_for_high_watermark {
                attempt += 1;
            }
            tokio::time::sleep(client.config().retry_backoff).await;
        }
        todo = retry;
    }
    Ok(out)
}

/// How long ListOffsets waits for a new leader's high watermark to reach
/// the start of its epoch (OFFSET_NOT_AVAILABLE) before giving up.
pub const OFFSET_NOT_AVAILABLE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI32, Ordering};
    use std::sync::{Arc, Mutex};

    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::list_offsets_response::{
        ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
    };
    use kafka_protocol::messages::metadata_response::{
        MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::{ApiKey, FetchResponse, ListOffsetsResponse};

    use super::*;
    use crate::test_broker::{self, Received};
    use crate::ClientConfig;

    /// The test broker's metadata: topic "t" with one partition, led by
    /// broker 1 in `epoch`.
    fn one_partition(r: &Received, epoch: i32) -> Bytes {
        r.reply(
            test_broker::metadata(r.port).with_topics(vec![MetadataResponseTopic::default()
                .with_name(Some(topic_name("t")))
                .with_partitions(vec![MetadataResponsePartition::default()
                    .with_leader_id(BrokerId(1))
                    .with_leader_epoch(epoch)
                    .with_replica_nodes(vec![BrokerId(1)])
                    .with_isr_nodes(vec![BrokerId(1)])])]),
        )
    }

    /// OFFSET_NOT_AVAILABLE (a new leader's high watermark catching up) is
    /// waited out past the retry count, until its own deadline.
    #[tokio::test]
    async fn a_new_leaders_offset_not_available_is_waited_out() {
        let asked = Arc::new(AtomicI32::new(0));
        let (addr, _) = {
            let asked = asked.clone();
            test_broker::start(move |r: Received| {
                let asked = asked.clone();
                async move {
                    match r.key {
                        ApiKey::ApiVersions => r.reply(test_broker::api_versions(&[
                            (ApiKey::ApiVersions, 0, 3),
                            (ApiKey::Metadata, 1, 12),
                            (ApiKey::ListOffsets, 1, 8),
                        ])),
                        ApiKey::Metadata => one_partition(&r, 0),
                        ApiKey::ListOffsets => {
                            // Twice the retry count of refusals, then 42.
                            let n = asked.fetch_add(1, Ordering::SeqCst);
                            let p = match n < 20 {
                                true => ListOffsetsPartitionResponse::default()
                                    .with_error_code(codes::OFFSET_NOT_AVAILABLE),
                                false => ListOffsetsPartitionResponse::default().with_offset(42),
                            };
                            r.reply(ListOffsetsResponse::default().with_topics(vec![
                                ListOffsetsTopicResponse::default()
                                    .with_name(topic_name("t"))
                                    .with_partitions(vec![p]),
                            ]))
                        }
                        other => panic!("the test broker does not answer {other:?}"),
                    }
                }
            })
            .await
        };
        let mut config = ClientConfig::new(&addr);
        config.retry_backoff = Duration::from_millis(1);
        let client = Client::connect(config).await.unwrap();
        let tp = ("t".to_string(), 0);
        let got = list_offsets(
            &client,
            &[(tp.clone(), OffsetSpec::Latest)],
            IsolationLevel::ReadUncommitted,
        )
        .await
        .unwrap();
        assert_eq!(got[&tp], 42);
        assert_eq!(asked.load(Ordering::SeqCst), 21);
    }

    /// KIP-320: ListOffsets and Fetch carry the leader epoch the metadata
    /// gave; a FENCED_LEADER_EPOCH answer sends the consumer back to the
    /// metadata, and its next Fetch carries the new epoch.
    #[tokio::test]
    async fn requests_carry_the_leader_epoch_and_a_fenced_one_is_refreshed() {
        let seen: Arc<Mutex<Vec<(ApiKey, i32)>>> = Arc::default();
        // The partition's leader epoch as the broker's metadata says it.
        let epoch = Arc::new(AtomicI32::new(7));
        let (addr, _) = {
            let (seen, epoch) = (seen.clone(), epoch.clone());
            test_broker::start(move |r: Received| {
                let (seen, epoch) = (seen.clone(), epoch.clone());
                async move {
                    match r.key {
                        ApiKey::ApiVersions => r.reply(test_broker::api_versions(&[
                            (ApiKey::ApiVersions, 0, 3),
                            (ApiKey::Metadata, 1, 12),
                            (ApiKey::ListOffsets, 1, 8),
                            (ApiKey::Fetch, 4, 12),
                        ])),
                        ApiKey::Metadata => one_partition(&r, epoch.load(Ordering::SeqCst)),
                        ApiKey::ListOffsets => {
                            let req: ListOffsetsRequest = r.decode();
                            let asked = req.topics[0].partitions[0].current_leader_epoch;
                            seen.lock().unwrap().push((r.key, asked));
                            r.reply(ListOffsetsResponse::default().with_topics(vec![
                                ListOffsetsTopicResponse::default()
                                    .with_name(topic_name("t"))
                                    .with_partitions(vec![ListOffsetsPartitionResponse::default()
                                        .with_offset(0)]),
                            ]))
                        }
                        ApiKey::Fetch => {
                            let req: FetchRequest = r.decode();
                            let asked = req.topics[0].partitions[0].current_leader_epoch;
                            seen.lock().unwrap().push((r.key, asked));
                            // The first fetch finds the leader moved on.
                            let code = match epoch.compare_exchange(
                                7,
                                8,
                                Ordering::SeqCst,
                                Ordering::SeqCst,
                            ) {
                                Ok(_) => codes::FENCED_LEADER_EPOCH,
                                Err(_) => 0,
                            };
                            r.reply(FetchResponse::default().with_responses(vec![
                                FetchableTopicResponse::default()
                                    .with_topic(topic_name("t"))
                                    .with_partitions(vec![PartitionData::default()
                                        .with_error_code(code)
                                        .with_high_watermark(0)
                                        .with_records(Some(Bytes::new()))]),
                            ]))
                        }
                        other => panic!("the test broker does not answer {other:?}"),
                    }
                }
            })
            .await
        };
        let mut config = ClientConfig::new(&addr);
        config.retry_backoff = Duration::from_millis(1);
        let client = Client::connect(config).await.unwrap();
        let mut consumer = Consumer::new(
            client,
            ConsumerConfig {
                fetch_max_wait: Duration::from_millis(1),
                ..ConsumerConfig::default()
            },
        );
        consumer.assign(vec![("t".to_string(), 0)]);
        while seen.lock().unwrap().len() < 3 {
            consumer.poll().await.unwrap();
        }
        assert_eq!(
            seen.lock().unwrap()[..3],
            [
                (ApiKey::ListOffsets, 7),
                (ApiKey::Fetch, 7),
                (ApiKey::Fetch, 8)
            ]
        );
    }
}
