use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use tokio::sync::futures::Notified;
use tokio::time::Instant;
use uuid::Uuid;
use vltava_log::Sendable;
use vltava_protocol::{RecordsPlaceholder, ResponseError};

use super::FileRange;
use crate::broker::Topic;
use crate::error::ApiError;
use crate::partition::Partition;
use crate::Broker;

/// First version whose topics are named by id instead of by name.
const TOPIC_ID_VERSION: i16 = 13;
/// First version that carries a replica's last fetched epoch (KIP-595's
/// divergence check) and answers a diverging epoch.
const LAST_FETCHED_EPOCH_VERSION: i16 = 12;
/// First version that names the fetching replica in `replica_state`.
const REPLICA_STATE_VERSION: i16 = 15;
/// First version whose consumers name their rack and may read from a
/// follower (KIP-392).
const FOLLOWER_FETCH_VERSION: i16 = 11;

/// Who sent a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetcher {
    Consumer,
    /// A follower: its broker id and the epoch of its registration.
    Replica(i32, i64),
    /// Claims a broker id, but not as a live broker would: an older
    /// version (without the broker epoch), or an epoch that is not the
    /// broker's current unfenced registration. Refused, never trusted with
    /// the follower's progress (which moves the high watermark).
    Refused,
}

fn fetch_of(broker: &Broker, version: i16, request: &FetchRequest) -> Fetcher {
    let id = match version >= REPLICA_STATE_VERSION {
        true => request.replica_state.replica_id.0,
        false => request.replica_id.0,
    };
    if id < 0 {
        return Fetcher::Consumer;
    }
    let epoch = request.replica_state.replica_epoch;
    match version >= REPLICA_STATE_VERSION && broker.live_broker_epoch(id) == Some(epoch) {
        true => Fetcher::Replica(id, epoch),
        false => Fetcher::Refused,
    }
}
const READ_COMMITTED: i8 = 1;

/// A long-poll fetch: reads what is there and, while fewer than `min_bytes`
/// are available and `max_wait_ms` has not passed, waits for the next append.
/// Fetch sessions (KIP-227) are not kept: every response says session 0, so
/// clients send full requests.
///
/// Records already known good on disk are not copied: their field holds a
/// placeholder and the range goes back beside the response, for the server
/// to `sendfile`.
pub async fn handle(
    broker: &Broker,
    version: i16,
    request: FetchRequest,
) -> (FetchResponse, Vec<FileRange>) {
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let replica = matches!(fetch_of(broker, version, &request), Fetcher::Replica(..));
    // With rack-aware reads, consumers read from followers, so a follower
    // learns each move of the high watermark at once: its parked fetch
    // returns then too (else it would learn it with its next data, up to
    // replica.fetch.wait.max.ms later).
    let follower_wakes_on_commit = replica && broker.config.replication.rack_aware_reads;
    // The high watermarks when the fetch arrived: a follower's fetch
    // returns (even empty) once one of them has moved.
    let mut arrived_at: Option<Vec<i64>> = None;
    loop {
        // Registered before reading, so an append between the read and the
        // wait still wakes us; only the partitions asked for can. A
        // follower waits for the log end, a consumer for the high
        // watermark.
        let watched = requested_partitions(broker, version, &request);
        let mut advanced: Vec<Pin<Box<Notified<'_>>>> = Vec::with_capacity(watched.len());
        for p in &watched {
            if replica {
                advanced.push(Box::pin(p.log_end_advanced().notified()));
            }
            if !replica || follower_wakes_on_commit {
                advanced.push(Box::pin(p.high_watermark_advanced().notified()));
            }
        }
        for wait in &mut advanced {
            wait.as_mut().enable();
        }
        let mut committed_more = false;
        if follower_wakes_on_commit {
            let now: Vec<i64> = watched.iter().map(|p| p.high_watermark()).collect();
            let first = arrived_at.get_or_insert_with(|| now.clone());
            committed_more = now.iter().zip(first.iter()).any(|(n, f)| n > f);
        }
        let read = read_once(broker, version, &request);
        let enough = read.bytes >= request.min_bytes.max(0) as usize;
        if enough
            || committed_more
            || read.any_error
            || read.redirected
            || Instant::now() >= deadline
        {
            return served(broker, replica, read);
        }
        let any = std::future::poll_fn(|cx| {
            match advanced.iter_mut().any(|w| w.as_mut().poll(cx).is_ready()) {
                true => Poll::Ready(()),
                false => Poll::Pending,
            }
        });
        if tokio::time::timeout_at(deadline, any).await.is_err() {
            let read = read_once(broker, version, &request);
            return served(broker, replica, read);
        }
    }
}

/// The partitions a fetch names that exist here.
fn requested_partitions(
    broker: &Broker,
    version: i16,
    request: &FetchRequest,
) -> Vec<Arc<Partition>> {
    let mut partitions = Vec::new();
    for t in &request.topics {
        let topic = match version >= TOPIC_ID_VERSION {
            true => broker.topic_by_id(t.topic_id),
            false => broker.topic(t.topic.0.as_str()),
        };
        let Some(topic) = topic else { continue };
        partitions.extend(
            t.partitions
                .iter()
                .filter_map(|p| topic.partition(p.partition).cloned()),
        );
    }
    partitions
}

struct Read {
    response: FetchResponse,
    file_ranges: Vec<FileRange>,
    /// Record bytes by topic name.
    by_topic: Vec<(String, usize)>,
    bytes: usize,
    any_error: bool,
    /// Some partition was answered with a preferred read replica: the
    /// consumer goes there, so the answer is not held back.
    redirected: bool,
}

/// What a leader needs to send a consumer to a replica in its rack.
struct RackAware {
    client_rack: String,
    /// The rack of each live broker that has one.
    racks: std::collections::BTreeMap<i32, String>,
    node: i32,
}

impl RackAware {
    /// Kafka's RackAwareReplicaSelector: the leader if it is in the
    /// consumer's rack, else the in-sync follower there with the longest
    /// log that holds `fetch_offset` (its log start, as its fetches say,
    /// at or below it; its log end at or above), else the leader. `None`
    /// means the leader.
    fn preferred(&self, partition: &Partition, fetch_offset: i64) -> Option<i32> {
        if self.racks.get(&self.node) == Some(&self.client_rack) {
            return None;
        }
        partition
            .in_sync_follower_logs()
            .into_iter()
            .filter(|(id, start, end)| {
                (0..=fetch_offset).contains(start)
                    && *end >= fetch_offset
                    && self.racks.get(id) == Some(&self.client_rack)
            })
            .max_by_key(|(id, _, end)| (*end, -*id))
            .map(|(id, ..)| id)
    }
}

/// The answer, its bytes counted as sent to a consumer unless a follower
/// asked (Kafka counts those as replication apart).
fn served(broker: &Broker, replica: bool, read: Read) -> (FetchResponse, Vec<FileRange>) {
    if !replica {
        for (topic, bytes) in &read.by_topic {
            broker.metrics().consumed(topic, *bytes as u64);
        }
    }
    (read.response, read.file_ranges)
}

fn read_once(broker: &Broker, version: i16, request: &FetchRequest) -> Read {
    let fetcher = fetch_of(broker, version, request);
    let consumer_names_rack = fetcher == Fetcher::Consumer
        && version >= FOLLOWER_FETCH_VERSION
        && !request.rack_id.is_empty();
    let rack_aware =
        (consumer_names_rack && broker.config.replication.rack_aware_reads).then(|| RackAware {
            client_rack: request.rack_id.to_string(),
            racks: broker.live_broker_racks().into_iter().collect(),
            node: broker.node_id(),
        });
    let reader = Reader {
        fetcher,
        divergence_checked: version >= LAST_FETCHED_EPOCH_VERSION,
        follower_reads: fetcher == Fetcher::Consumer && version >= FOLLOWER_FETCH_VERSION,
        rack_aware,
        now_ms: broker.now_ms(),
    };
    let mut bytes_left = if request.max_bytes > 0 {
        request.max_bytes as usize
    } else {
        usize::MAX
    };
    let mut total = 0usize;
    let mut any_error = false;
    let mut redirected = false;
    let mut file_ranges = Vec::new();
    let mut by_topic = Vec::new();
    let read_committed = request.isolation_level == READ_COMMITTED;
    let responses = request
        .topics
        .iter()
        .map(|t| {
            let before = total;
            let (topic, missing) = if version >= TOPIC_ID_VERSION {
                (
                    broker.topic_by_id(t.topic_id),
                    ResponseError::UnknownTopicId,
                )
            } else {
                (
                    broker.topic(t.topic.0.as_str()),
                    ResponseError::UnknownTopicOrPartition,
                )
            };
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let data = PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_preferred_read_replica(BrokerId(-1))
                        .with_aborted_transactions(read_committed.then(Vec::new));
                    let read = read_partition(
                        &reader,
                        topic.as_deref(),
                        missing,
                        p,
                        bytes_left,
                        total == 0,
                    );
                    match read {
                        Ok(Served::Elsewhere(partition, replica)) => {
                            redirected = true;
                            data.with_high_watermark(partition.high_watermark())
                                .with_last_stable_offset(partition.high_watermark())
                                .with_log_start_offset(partition.log_start_offset())
                                .with_preferred_read_replica(BrokerId(replica))
                                .with_records(Some(Bytes::new()))
                        }
                        Ok(Served::Diverged(partition, epoch, end_offset)) => data
                            .with_high_watermark(partition.high_watermark())
                            .with_last_stable_offset(partition.high_watermark())
                            .with_log_start_offset(partition.log_start_offset())
                            .with_diverging_epoch(
                                kafka_protocol::messages::fetch_response::EpochEndOffset::default()
                                    .with_epoch(epoch)
                                    .with_end_offset(end_offset),
                            )
                            .with_records(Some(Bytes::new())),
                        Ok(Served::Data(partition, sendable)) => {
                            let (records, len) = match sendable {
                                Sendable::Bytes(bytes) => {
                                    let len = bytes.len();
                                    (bytes, len)
                                }
                                Sendable::File(slice) => {
                                    let len = slice.len;
                                    let placeholder = RecordsPlaceholder {
                                        marker: *Uuid::new_v4().as_bytes(),
                                        len,
                                    };
                                    let marker = Bytes::copy_from_slice(&placeholder.marker);
                                    file_ranges.push((placeholder, slice));
                                    (marker, len)
                                }
                            };
                            total += len;
                            bytes_left = bytes_left.saturating_sub(len);
                            data.with_high_watermark(partition.high_watermark())
                                .with_last_stable_offset(partition.high_watermark())
                                .with_log_start_offset(partition.log_start_offset())
                                .with_records(Some(records))
                        }
                        Err((e, partition)) => {
                            any_error = true;
                            data.with_error_code(e.code())
                                .with_high_watermark(partition.map_or(-1, |p| p.high_watermark()))
                                .with_last_stable_offset(
                                    partition.map_or(-1, |p| p.high_watermark()),
                                )
                                .with_log_start_offset(
                                    partition.map_or(-1, |p| p.log_start_offset()),
                                )
                                .with_records(Some(Bytes::new()))
                        }
                    }
                })
                .collect();
            if let Some(topic) = &topic {
                if total > before {
                    by_topic.push((topic.name.clone(), total - before));
                }
            }
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    Read {
        response: FetchResponse::default().with_responses(responses),
        file_ranges,
        by_topic,
        bytes: total,
        any_error,
        redirected,
    }
}

/// Who is reading, for every partition of one fetch.
struct Reader {
    fetcher: Fetcher,
    /// Whether the version carries `last_fetched_epoch`.
    divergence_checked: bool,
    /// A consumer at a version that may read from a follower (KIP-392):
    /// a follower serves it up to its high watermark.
    follower_reads: bool,
    /// Set when this broker sends consumers to replicas in their rack.
    rack_aware: Option<RackAware>,
    now_ms: i64,
}

/// One partition's part of a fetch answer.
enum Served<'a> {
    Data(&'a Partition, Sendable),
    /// The fetcher's log parts from ours after this epoch, at this offset
    /// (it truncates there and fetches again).
    Diverged(&'a Partition, i32, i64),
    /// A consumer should read this partition from that replica (KIP-392).
    Elsewhere(&'a Partition, i32),
}

type PartitionRead<'a> = Result<Served<'a>, (ApiError, Option<&'a Partition>)>;

/// Reads one partition: up to the high watermark for a consumer, up to
/// the log end for a follower, whose fetch offset is its log end (that
/// moves the high watermark). Only the first partition with data may
/// exceed the response's byte budget (its first batch is always whole,
/// KIP-74).
fn read_partition<'a>(
    reader: &Reader,
    topic: Option<&'a Topic>,
    missing: ResponseError,
    request: &FetchPartition,
    bytes_left: usize,
    first_with_data: bool,
) -> PartitionRead<'a> {
    let partition: &Partition = topic
        .and_then(|t| t.partition(request.partition))
        .map(|p| p.as_ref())
        .ok_or_else(|| (ApiError::new(missing, ""), None))?;
    if reader.fetcher == Fetcher::Refused {
        return Err((
            ApiError::new(
                ResponseError::NotLeaderOrFollower,
                "replica fetches come from live brokers, at Fetch v15+ with their broker epoch",
            ),
            Some(partition),
        ));
    }
    match reader.follower_reads {
        true => check_replica_epoch(partition, request.current_leader_epoch),
        false => check_leader_epoch(partition, request.current_leader_epoch),
    }
    .map_err(|e| (e, Some(partition)))?;
    let out_of_range = || {
        Err((
            ApiError::new(
                ResponseError::OffsetOutOfRange,
                format!(
                    "fetch offset {} is outside the log [{}, {}]",
                    request.fetch_offset,
                    partition.log_start_offset(),
                    partition.log_end_offset()
                ),
            ),
            Some(partition),
        ))
    };
    // KIP-595's check: the fetcher's last epoch must end at or after its
    // fetch offset in our log, else its tail is not ours. An epoch this log
    // cannot place at all is out of range (Kafka's answer too).
    if reader.divergence_checked && request.last_fetched_epoch >= 0 {
        let last = request.last_fetched_epoch;
        let (epoch, end_offset) = partition.log().end_offset_for_epoch(last);
        if epoch < 0 || end_offset < 0 {
            return out_of_range();
        }
        if end_offset < request.fetch_offset || epoch < last {
            return Ok(Served::Diverged(partition, epoch, end_offset));
        }
    }
    if let Some(rack_aware) = &reader.rack_aware {
        if let Some(replica) = rack_aware.preferred(partition, request.fetch_offset) {
            return Ok(Served::Elsewhere(partition, replica));
        }
    }
    let replica = match reader.fetcher {
        Fetcher::Replica(follower, broker_epoch) => Some((follower, broker_epoch)),
        _ => None,
    };
    if let Some((follower, broker_epoch)) = replica {
        if request.fetch_offset > partition.log_end_offset()
            || request.fetch_offset < partition.log_start_offset()
        {
            return out_of_range();
        }
        partition
            .record_follower_fetch(
                follower,
                broker_epoch,
                request.fetch_offset,
                request.log_start_offset,
                reader.now_ms,
            )
            .map_err(|e| (e, Some(partition)))?;
    }
    if bytes_left == 0 {
        return Ok(Served::Data(partition, Sendable::Bytes(Bytes::new())));
    }
    let max_bytes = (request.partition_max_bytes.max(0) as usize).min(bytes_left);
    let slice = match replica {
        Some(_) => partition.read_replica(request.fetch_offset, max_bytes.max(1)),
        None => partition.read(request.fetch_offset, max_bytes.max(1)),
    }
    .map_err(|e| (ApiError::from(e), Some(partition)))?;
    if !first_with_data && slice.len > bytes_left {
        return Ok(Served::Data(partition, Sendable::Bytes(Bytes::new())));
    }
    // Bytes are CRC-checked batch by batch the first time they are served:
    // corruption on disk is reported as KAFKA_STORAGE_ERROR, never served
    // as data (docs/reliability.md); known-good ranges go out zero-copy.
    let sendable = slice
        .to_sendable()
        .map_err(|e| (ApiError::from(e), Some(partition)))?;
    Ok(Served::Data(partition, sendable))
}

/// KIP-320: a client that knows a newer epoch than ours is ahead of us; one
/// that knows an older epoch has been fenced. -1 skips the check.
/// Whether this broker leads `partition` at the epoch the client named:
/// NOT_LEADER_OR_FOLLOWER for one another broker leads (the client
/// refreshes its metadata and goes there), then KIP-320's epoch checks.
pub(super) fn check_leader_epoch(partition: &Partition, requested: i32) -> Result<(), ApiError> {
    check_hosted(partition)?;
    check_epoch(partition, requested)
}

/// For a consumer that may read from a follower (KIP-392): this broker
/// holds a replica with a leader to follow (or leads it), at the epoch the
/// client named.
fn check_replica_epoch(partition: &Partition, requested: i32) -> Result<(), ApiError> {
    if !partition.is_leader() && !partition.is_following() {
        return Err(crate::partition::not_leader(
            partition.index,
            partition.leader(),
        ));
    }
    check_epoch(partition, requested)
}

fn check_epoch(partition: &Partition, requested: i32) -> Result<(), ApiError> {
    let current = partition.leader_epoch();
    match requested {
        -1 => Ok(()),
        r if r > current => Err(ApiError::new(ResponseError::UnknownLeaderEpoch, "")),
        r if r < current => Err(ApiError::new(ResponseError::FencedLeaderEpoch, "")),
        _ => Ok(()),
    }
}

/// NOT_LEADER_OR_FOLLOWER unless this broker leads the partition (one
/// placed elsewhere, or one this broker only follows).
pub(super) fn check_hosted(partition: &Partition) -> Result<(), ApiError> {
    match partition.is_leader() {
        true => Ok(()),
        false => Err(crate::partition::not_leader(
            partition.index,
            partition.leader(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Wake, Waker};

    use kafka_protocol::messages::fetch_request::FetchTopic;
    use kafka_protocol::messages::TopicName;
    use vltava_record::{validate_batch, BatchBuilder, Compression};

    use super::*;
    use crate::{BrokerConfig, ManualClock};

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn one_batch() -> bytes::BytesMut {
        BatchBuilder::new(Compression::None)
            .record(None, Some(Bytes::from_static(b"v")), vec![], 1)
            .build()
    }

    fn append_one(broker: &Broker, topic: &str) {
        let batch = one_batch();
        let header = validate_batch(&batch).unwrap();
        let topic = broker.topic(topic).unwrap();
        topic
            .partition(0)
            .unwrap()
            .append(batch, &header, false, 1)
            .unwrap();
    }

    /// The rack-aware selector sends a consumer only to an in-sync
    /// follower in its rack whose log (as its fetches said) holds the
    /// offset: below the follower's log start, or past its log end, the
    /// leader serves; in the leader's own rack, too.
    #[test]
    fn the_selector_picks_an_in_sync_follower_holding_the_offset() {
        use crate::partition::Assignment;
        let dir = tempfile::tempdir().unwrap();
        let partition = Partition::open(
            dir.path(),
            "t",
            Uuid::nil(),
            0,
            0,
            vltava_log::LogConfig::default(),
            0,
        )
        .unwrap()
        .placed(
            1,
            Assignment {
                leader: 1,
                leader_epoch: 0,
                replicas: vec![1, 2, 3],
                isr: vec![1, 2],
                partition_epoch: 0,
                elr: vec![],
            },
            0,
        );
        for _ in 0..10 {
            let batch = one_batch();
            let header = validate_batch(&batch).unwrap();
            partition.append(batch, &header, false, 1).unwrap();
        }
        // Follower 2 (in sync) holds [4, 10); follower 3 is not in sync.
        partition.record_follower_fetch(2, 0, 10, 4, 1).unwrap();
        partition.record_follower_fetch(3, 0, 10, 0, 1).unwrap();
        let selector = |client_rack: &str| RackAware {
            client_rack: client_rack.to_string(),
            racks: [(1, "r1"), (2, "r2"), (3, "r2")]
                .into_iter()
                .map(|(id, r)| (id, r.to_string()))
                .collect(),
            node: 1,
        };
        let r2 = selector("r2");
        assert_eq!(r2.preferred(&partition, 4), Some(2));
        assert_eq!(r2.preferred(&partition, 10), Some(2));
        assert_eq!(r2.preferred(&partition, 3), None, "below its log start");
        assert_eq!(r2.preferred(&partition, 11), None, "past its log end");
        assert_eq!(
            selector("r1").preferred(&partition, 4),
            None,
            "the leader's rack"
        );
        assert_eq!(
            selector("r9").preferred(&partition, 4),
            None,
            "no such rack"
        );
    }

    /// A fetch parked on one partition is woken by appends to that
    /// partition only: with a broker-wide wake-up, every produce cost every
    /// parked fetch a re-read.
    #[test]
    fn a_parked_fetch_wakes_only_for_its_own_partition() {
        let dir = tempfile::tempdir().unwrap();
        let pairs = [("log.dirs".to_string(), dir.path().display().to_string())];
        let (config, _) = BrokerConfig::from_pairs(&pairs).unwrap();
        let broker =
            futures_executor::block_on(Broker::open(config, Arc::new(ManualClock::new(1_000))))
                .unwrap();
        for name in ["quiet", "busy"] {
            broker
                .block_on(broker.create_topic(name, 1, BTreeMap::new(), false))
                .unwrap();
        }
        let request = FetchRequest::default()
            .with_max_wait_ms(60_000)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(crate::handlers::str_bytes("quiet")))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_current_leader_epoch(-1)
                    .with_partition_max_bytes(1 << 20)])]);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let wakes = Arc::new(CountingWaker(AtomicUsize::new(0)));
            let waker = Waker::from(wakes.clone());
            let mut cx = Context::from_waker(&waker);
            let mut fetch = Box::pin(handle(&broker, 12, request));
            assert!(fetch.as_mut().poll(&mut cx).is_pending());
            for _ in 0..10 {
                append_one(&broker, "busy");
            }
            assert_eq!(
                wakes.0.load(Ordering::SeqCst),
                0,
                "woken by another partition"
            );
            append_one(&broker, "quiet");
            assert!(
                wakes.0.load(Ordering::SeqCst) > 0,
                "not woken by its own partition"
            );
            let Poll::Ready((response, ranges)) = fetch.as_mut().poll(&mut cx) else {
                panic!("the fetch did not complete once its partition had data");
            };
            let data = &response.responses[0].partitions[0];
            assert_eq!((data.error_code, data.high_watermark), (0, 1));
            // The one batch comes back whole, as bytes or as a file range.
            let served = ranges.iter().map(|(p, _)| p.len).sum::<usize>()
                + data
                    .records
                    .as_ref()
                    .filter(|_| ranges.is_empty())
                    .map_or(0, |r| r.len());
            assert_eq!(served, one_batch().len());
        });
    }
}
