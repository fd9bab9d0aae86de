//! The group coordinator: classic and KIP-848 consumer groups and their
//! committed offsets, persisted in `__consumer_offsets`.
//!
//! All group state sits behind one mutex. Every transition is synchronous
//! (no await inside); responses that must wait for other members are
//! returned as [`Reply::Later`] receivers that a later transition
//! completes. Changes are written to the group's `__consumer_offsets`
//! partition before they are acknowledged, and replayed at start-up, so a
//! restarted broker resumes every group where it was.
//!
//! Timers (session and rebalance timeouts) are driven by [`GroupCoordinator::tick`]
//! with the broker's clock, so tests can move time by hand.

pub mod assignor;
pub mod classic;
pub mod consumer;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tracing::{info, warn};
use vltava_protocol::ResponseError;
use vltava_record::{
    batches, decode_records, validate_batch, validate_stored_batch, BatchBuilder, Compression,
};

use crate::error::ApiError;
use crate::Broker;
use classic::{ClassicGroup, JoinArgs, SyncArgs};
use consumer::{ConsumerGroup, HeartbeatArgs, HeartbeatError, HeartbeatOutcome};
use store::{ClassicGroupValue, ConsumerGroupValue, OffsetValue, RecordKey, OFFSETS_TOPIC};

/// A response now, or one that another member's action will produce.
pub enum Reply<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

/// Group settings, by Kafka's broker config names.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    /// group.min.session.timeout.ms / group.max.session.timeout.ms
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// group.initial.rebalance.delay.ms
    pub initial_rebalance_delay_ms: i64,
    /// group.max.size
    pub max_size: usize,
    /// offsets.topic.num.partitions
    pub offsets_partitions: i32,
    /// offsets.topic.segment.bytes
    pub offsets_segment_bytes: i64,
    /// offsets.topic.replication.factor
    pub offsets_replication_factor: u16,
    /// offset.metadata.max.bytes
    pub offset_metadata_max_bytes: usize,
    /// group.consumer.session.timeout.ms
    pub consumer_session_timeout_ms: i32,
    /// group.consumer.heartbeat.interval.ms
    pub consumer_heartbeat_interval_ms: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp_ms: i64,
}

/// Committed offsets by topic, then partition (`None`: nothing committed).
pub type FetchedOffsets = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

/// How an OffsetCommit identifies its sender.
pub struct CommitIdentity<'a> {
    pub generation_or_member_epoch: i32,
    pub member_id: &'a str,
    pub group_instance_id: Option<&'a str>,
}

#[derive(Default)]
/// Ordered maps: timers and deleted topics walk the groups in the same
/// order every run (a simulation replays a seed exactly).
struct Groups {
    classic: BTreeMap<String, ClassicGroup>,
    consumer: BTreeMap<String, ConsumerGroup>,
    offsets: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>,
    /// `__consumer_offsets` partitions whose load stopped at a record that
    /// could not be read: their groups are not served (COORDINATOR_NOT_
    /// AVAILABLE) rather than served from a state that misses changes.
    unloaded: BTreeSet<i32>,
    /// `__consumer_offsets` partitions this broker leads and has loaded, by
    /// the leader epoch it loaded them in. A led partition missing here is
    /// loading (COORDINATOR_LOAD_IN_PROGRESS); a partition led elsewhere
    /// has its groups dropped from memory.
    loaded: BTreeMap<i32, i32>,
}

impl Groups {
    /// Drops every group of `__consumer_offsets` partition `index` (of
    /// `partitions`) from memory: another broker coordinates them now.
    fn unload(&mut self, index: i32, partitions: i32) {
        let theirs = |id: &String| store::partition_for(id, partitions) == index;
        self.classic.retain(|id, _| !theirs(id));
        self.consumer.retain(|id, _| !theirs(id));
        self.offsets.retain(|id, _| !theirs(id));
        self.unloaded.remove(&index);
        self.loaded.remove(&index);
    }
}

/// A group as ListGroups and DescribeGroups show it.
pub struct GroupSummary {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
    /// "classic" or "consumer".
    pub group_type: &'static str,
}

pub struct GroupCoordinator {
    pub settings: GroupSettings,
    /// Group state. Held only for in-memory work, never across a write to
    /// `__consumer_offsets`.
    groups: Mutex<Groups>,
    /// Orders the writes to each `__consumer_offsets` partition (striped by
    /// partition index): held from taking a change's records through the
    /// append to applying it, so memory follows the order on disk (held
    /// across the wait for the write to commit, hence tokio's). Taken
    /// before `groups`, never while holding it.
    write_order: Vec<tokio::sync::Mutex<()>>,
}

/// How long a write to `__consumer_offsets` may wait for the in-sync
/// replicas (Kafka's `offsets.commit.timeout.ms` default).
const OFFSETS_COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Stripes of [`GroupCoordinator::write_order`].
const WRITE_ORDER_STRIPES: usize = 64;

/// Longest group id a group may be created under: its `__consumer_offsets`
/// keys store it with an `i16` length, as Kafka's do, and it is never cut.
pub const GROUP_ID_BYTES_MAX: usize = i16::MAX as usize;

/// Refuses group ids that could not be stored whole.
fn check_group_id(group_id: &str) -> Result<(), ResponseError> {
    if group_id.len() > GROUP_ID_BYTES_MAX {
        return Err(ResponseError::InvalidGroupId);
    }
    Ok(())
}

impl GroupCoordinator {
    pub fn new(settings: GroupSettings) -> GroupCoordinator {
        GroupCoordinator {
            settings,
            groups: Mutex::new(Groups::default()),
            write_order: (0..WRITE_ORDER_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// Replays the `__consumer_offsets` partitions this broker leads (if
    /// the topic exists) into memory, at start-up.
    pub fn load(&self, broker: &Broker) -> Result<(), ApiError> {
        let records = self.follow_leadership(broker);
        let groups = self.groups.lock();
        info!(
            records,
            classic_groups = groups.classic.len(),
            consumer_groups = groups.consumer.len(),
            "group state loaded"
        );
        Ok(())
    }

    /// Coordinators follow the leadership of `__consumer_offsets`: each
    /// partition this broker came to lead (or leads at a new epoch) is
    /// loaded once its high watermark has reached its log end (everything
    /// it holds is committed: a new leader's followers have fetched), and
    /// each partition it no longer leads has its groups dropped. Returns
    /// the records replayed. Run at start-up and on every group tick.
    fn follow_leadership(&self, broker: &Broker) -> usize {
        let Some(topic) = broker.topic(OFFSETS_TOPIC) else {
            return 0;
        };
        let count = topic.partitions.len() as i32;
        let now_ms = broker.now_ms();
        let mut records = 0usize;
        for partition in &topic.partitions {
            let index = partition.index;
            let leading = partition.is_leader().then(|| partition.leader_epoch());
            let loaded = self.groups.lock().loaded.get(&index).copied();
            if leading.is_some() && loaded == leading {
                continue;
            }
            let mut groups = self.groups.lock();
            // Another caller (the tick, or a creation of the topic) may have
            // loaded it since the check above.
            if leading.is_some() && groups.loaded.get(&index).copied() == leading {
                continue;
            }
            if loaded.is_some() || groups.unloaded.contains(&index) {
                groups.unload(index, count);
                if leading.is_none() {
                    info!(
                        partition = index,
                        "no longer coordinating the groups of {OFFSETS_TOPIC}-{index}"
                    );
                }
            }
            let Some(epoch) = leading else {
                continue;
            };
            let log_end = partition.log_end_offset();
            if partition.high_watermark() < log_end {
                continue;
            }
            // The log is read without the group lock, so requests for other
            // groups are served meanwhile; this partition's groups answer
            // COORDINATOR_LOAD_IN_PROGRESS until it is in.
            drop(groups);
            let mut fresh = Groups::default();
            let read = load_partition(&mut fresh, partition, now_ms);
            let mut groups = self.groups.lock();
            if groups.loaded.get(&index).copied() == leading {
                continue;
            }
            // A write that passed its checks before this load began may have
            // appended since the log was read, and may apply to memory before
            // the state read here replaces it: that change would be in
            // neither. Such a load is thrown away and the next tick reads the
            // log again. (A write appending after this check applies after
            // the state below is in, under the group lock.)
            if partition.log_end_offset() != log_end {
                continue;
            }
            // Whatever memory still holds for this partition (a change
            // applied after its groups were dropped) is replaced by the log.
            groups.unload(index, count);
            match read {
                Ok(n) => {
                    records += n;
                    groups.classic.extend(fresh.classic);
                    groups.consumer.extend(fresh.consumer);
                    groups.offsets.extend(fresh.offsets);
                    groups.loaded.insert(index, epoch);
                }
                Err(e) => {
                    tracing::error!(
                        partition = index,
                        error = %e,
                        "{OFFSETS_TOPIC}-{index} cannot be loaded; its groups are unavailable until it is repaired"
                    );
                    groups.unloaded.insert(index);
                    groups.loaded.insert(index, epoch);
                }
            }
        }
        records
    }

    /// Up to `limit` of the committed offsets this coordinator holds, as
    /// (group, topic, partition, offset) in group order, and how many more
    /// there are: for the lag metrics, which copy no more than they show.
    pub(crate) fn committed_offsets(
        &self,
        limit: usize,
    ) -> (Vec<(String, String, i32, i64)>, usize) {
        let groups = self.groups.lock();
        let all: usize = groups.offsets.values().map(BTreeMap::len).sum();
        let some = groups
            .offsets
            .iter()
            .flat_map(|(group, offsets)| {
                offsets.iter().map(move |((topic, index), committed)| {
                    (group.clone(), topic.clone(), *index, committed.offset)
                })
            })
            .take(limit)
            .collect::<Vec<_>>();
        let more = all - some.len();
        (some, more)
    }

    /// NOT_COORDINATOR for a group whose `__consumer_offsets` partition
    /// another broker leads (that broker coordinates it: the client asks
    /// FindCoordinator again), COORDINATOR_NOT_AVAILABLE for one whose
    /// partition could not be loaded.
    fn check_loaded(
        &self,
        broker: &Broker,
        groups: &Groups,
        group_id: &str,
    ) -> Result<(), ResponseError> {
        self.coordinates(broker, group_id)?;
        let Some(topic) = broker.topic(OFFSETS_TOPIC) else {
            return Ok(());
        };
        let index = store::partition_for(group_id, topic.partitions.len() as i32);
        let epoch = topic.partition(index).map(|p| p.leader_epoch());
        if groups.loaded.get(&index).copied() != epoch {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        if groups.unloaded.contains(&index) {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        Ok(())
    }

    /// Creates `__consumer_offsets` on first use, compacted, with the
    /// configured partition count.
    async fn offsets_topic(
        &self,
        broker: &Broker,
    ) -> Result<std::sync::Arc<crate::Topic>, ApiError> {
        if let Some(topic) = broker.topic(OFFSETS_TOPIC) {
            return Ok(topic);
        }
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            (
                "segment.bytes".to_string(),
                self.settings.offsets_segment_bytes.to_string(),
            ),
        ]);
        let created = broker
            .create_internal_topic(OFFSETS_TOPIC, self.settings.offsets_partitions, configs)
            .await;
        match created {
            Ok(_) => {}
            Err(e) if e.error == ResponseError::TopicAlreadyExists => {}
            Err(e) => return Err(e),
        }
        let published = broker.published_topic(OFFSETS_TOPIC).await;
        let topic = published.ok_or_else(|| {
            ApiError::new(
                ResponseError::CoordinatorNotAvailable,
                "offsets topic missing",
            )
        })?;
        // Empty and led here: served at once rather than after a tick.
        crate::handlers::off_workers(|| self.follow_leadership(broker));
        Ok(topic)
    }

    /// Makes sure the coordinator's topic exists (FindCoordinator does this,
    /// as Kafka does, so the first group operation does not pay for it).
    pub async fn ensure_ready(&self, broker: &Broker) -> Result<(), ApiError> {
        self.offsets_topic(broker).await.map(|_| ())
    }

    /// NOT_COORDINATOR unless this broker coordinates `group_id` (leads its
    /// `__consumer_offsets` partition; before the topic exists, every
    /// broker answers for itself, and FindCoordinator creates it).
    pub fn coordinates(&self, broker: &Broker, group_id: &str) -> Result<(), ResponseError> {
        if let Some(topic) = broker.topic(OFFSETS_TOPIC) {
            let index = store::partition_for(group_id, topic.partitions.len() as i32);
            if topic.partition(index).is_some_and(|p| !p.is_leader()) {
                return Err(ResponseError::NotCoordinator);
            }
        }
        Ok(())
    }

    /// The broker that coordinates `group_id`: the leader of its
    /// `__consumer_offsets` partition (the topic is created if missing).
    pub async fn coordinator_of(&self, broker: &Broker, group_id: &str) -> Result<i32, ApiError> {
        let topic = self.offsets_topic(broker).await?;
        let index = store::partition_for(group_id, topic.partitions.len() as i32);
        match topic.partition(index).map(|p| p.leader()) {
            Some(leader) if leader >= 0 => Ok(leader),
            _ => Err(ApiError::new(
                ResponseError::CoordinatorNotAvailable,
                format!("{OFFSETS_TOPIC}-{index} has no leader"),
            )),
        }
    }

    /// Writes records of one group durably (one batch, one partition).
    async fn persist(
        &self,
        broker: &Broker,
        group: &str,
        records: Vec<(RecordKey, Option<Vec<u8>>)>,
    ) -> Result<(), ApiError> {
        if records.is_empty() {
            return Ok(());
        }
        let topic = self.offsets_topic(broker).await?;
        let index = store::partition_for(group, topic.partitions.len() as i32);
        let partition = topic.partition(index).ok_or_else(|| {
            ApiError::new(
                ResponseError::CoordinatorNotAvailable,
                "offsets partition missing",
            )
        })?;
        let now_ms = broker.now_ms();
        let mut builder = BatchBuilder::new(Compression::None);
        for (key, value) in records {
            builder = builder.record(
                Some(key.encode()),
                value.map(Bytes::from),
                Vec::new(),
                now_ms,
            );
        }
        let batch = builder.build();
        let header = validate_batch(&batch)
            .map_err(|e| ApiError::new(ResponseError::UnknownServerError, e.to_string()))?;
        // File work: off the async workers.
        broker.wait_for_disk().await;
        let appended =
            crate::handlers::off_workers(|| partition.append(batch, &header, false, now_ms))?;
        // Durable only once every in-sync replica has it: a commit is
        // answered (and group state kept) after that, as Kafka's coordinator
        // writes with acks=all.
        partition
            .wait_committed(&appended, OFFSETS_COMMIT_TIMEOUT)
            .await?;
        Ok(())
    }

    /// The write-order lock of `group_id`'s `__consumer_offsets` partition.
    async fn write_order(
        &self,
        broker: &Broker,
        group_id: &str,
    ) -> tokio::sync::MutexGuard<'_, ()> {
        let partitions = broker
            .topic(OFFSETS_TOPIC)
            .map_or(self.settings.offsets_partitions, |t| {
                t.partitions.len() as i32
            });
        let index = store::partition_for(group_id, partitions.max(1)) as usize;
        self.write_order[index % WRITE_ORDER_STRIPES].lock().await
    }

    /// Writes a group's metadata if it changed since it was last written.
    /// The record is taken under the write-order lock, so the last write is
    /// of the latest state; the group lock is not held across the append. A
    /// failed write is logged, the group stays marked changed (the next
    /// tick, 100 ms later, writes it again) and the error is returned for
    /// the caller to answer with.
    async fn store_group(&self, broker: &Broker, group_id: &str) -> Result<(), ResponseError> {
        let _order = self.write_order(broker, group_id).await;
        let Some((key, value)) = self.groups.lock().take_changed(group_id) else {
            return Ok(());
        };
        if let Err(e) = self
            .persist(broker, group_id, vec![(key, Some(value))])
            .await
        {
            self.groups.lock().mark_changed(group_id);
            warn!(group = %group_id, error = %e, "could not persist group metadata; will retry");
            return Err(coordinator_error(&e));
        }
        Ok(())
    }

    pub async fn join(
        &self,
        broker: &Broker,
        group_id: &str,
        args: JoinArgs,
    ) -> Reply<kafka_protocol::messages::JoinGroupResponse> {
        let now_ms = broker.now_ms();
        if let Err(error) = check_group_id(group_id) {
            return Reply::Now(
                kafka_protocol::messages::JoinGroupResponse::default()
                    .with_error_code(error.code())
                    .with_generation_id(-1),
            );
        }
        let reply = {
            let mut groups = self.groups.lock();
            if let Err(error) = self.check_loaded(broker, &groups, group_id) {
                return Reply::Now(
                    kafka_protocol::messages::JoinGroupResponse::default()
                        .with_error_code(error.code())
                        .with_generation_id(-1),
                );
            }
            if groups
                .consumer
                .get(group_id)
                .is_some_and(|g| !g.members.is_empty())
            {
                return Reply::Now(
                    kafka_protocol::messages::JoinGroupResponse::default()
                        .with_error_code(ResponseError::InconsistentGroupProtocol.code())
                        .with_generation_id(-1),
                );
            }
            let group = groups
                .classic
                .entry(group_id.to_string())
                .or_insert_with(|| ClassicGroup::new(group_id));
            group.join(args, &self.settings, now_ms)
        };
        // Membership alone is written again on the next tick if this
        // fails; what a member was told stays true in memory.
        let _ = self.store_group(broker, group_id).await;
        reply
    }

    pub async fn sync(
        &self,
        broker: &Broker,
        group_id: &str,
        args: SyncArgs,
    ) -> Reply<kafka_protocol::messages::SyncGroupResponse> {
        let now_ms = broker.now_ms();
        let reply = {
            let mut groups = self.groups.lock();
            if let Err(error) = self.check_loaded(broker, &groups, group_id) {
                return Reply::Now(
                    kafka_protocol::messages::SyncGroupResponse::default()
                        .with_error_code(error.code()),
                );
            }
            let Some(group) = groups.classic.get_mut(group_id) else {
                return Reply::Now(
                    kafka_protocol::messages::SyncGroupResponse::default()
                        .with_error_code(ResponseError::UnknownMemberId.code()),
                );
            };
            group.sync(args, now_ms)
        };
        // The answers the leader's assignment produced go out only once it
        // is written; if the write fails every member is told and syncs
        // again (the next tick retries the write).
        let stored = self.store_group(broker, group_id).await.err();
        if let Some(group) = self.groups.lock().classic.get_mut(group_id) {
            group.release_syncs(stored);
        }
        reply
    }

    pub fn heartbeat(
        &self,
        broker: &Broker,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        let mut groups = self.groups.lock();
        self.check_loaded(broker, &groups, group_id)?;
        let group = groups
            .classic
            .get_mut(group_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        group.heartbeat(member_id, instance_id, generation, broker.now_ms())
    }

    /// LeaveGroup for each `(member_id, instance_id)`; per-member results.
    pub async fn leave(
        &self,
        broker: &Broker,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
        let now_ms = broker.now_ms();
        let results = {
            let mut groups = self.groups.lock();
            self.check_loaded(broker, &groups, group_id)?;
            let group = groups
                .classic
                .get_mut(group_id)
                .ok_or(ResponseError::UnknownMemberId)?;
            let results = members
                .iter()
                .map(|(member, instance)| {
                    group.leave(member, instance.as_deref(), &self.settings, now_ms)
                })
                .collect();
            results
        };
        let _ = self.store_group(broker, group_id).await;
        Ok(results)
    }

    /// KIP-848 heartbeat. `resolve` maps the request's topic ids to names.
    pub async fn consumer_heartbeat(
        &self,
        broker: &Broker,
        group_id: &str,
        args: HeartbeatArgs,
    ) -> Result<HeartbeatOutcome, (ResponseError, String)> {
        let now_ms = broker.now_ms();
        check_group_id(group_id).map_err(|e| {
            (
                e,
                format!("group ids are limited to {GROUP_ID_BYTES_MAX} bytes (GROUP_ID_BYTES_MAX)"),
            )
        })?;
        let all_topics: BTreeMap<String, i32> = broker
            .topics()
            .iter()
            .filter(|t| t.name != OFFSETS_TOPIC)
            .map(|t| (t.name.clone(), t.partitions.len() as i32))
            .collect();
        let outcome = {
            let mut groups = self.groups.lock();
            self.check_loaded(broker, &groups, group_id).map_err(|e| {
                (
                    e,
                    format!(
                        "the partition of {OFFSETS_TOPIC} holding this group could not be loaded"
                    ),
                )
            })?;
            if groups.classic.get(group_id).is_some_and(|g| !g.is_empty()) {
                return Err((
                    ResponseError::GroupIdNotFound,
                    format!("Group {group_id} is not a consumer group."),
                ));
            }
            // Only a member joining (epoch 0) creates a group, as in Kafka;
            // anyone else naming a missing group is told so, and nothing is
            // created for it.
            if args.member_epoch != 0 && !groups.consumer.contains_key(group_id) {
                let message = match groups.classic.contains_key(group_id) {
                    true => format!("Group {group_id} is not a consumer group."),
                    false => format!("Consumer group {group_id} not found."),
                };
                return Err((ResponseError::GroupIdNotFound, message));
            }
            groups.classic.remove(group_id);
            let group = groups
                .consumer
                .entry(group_id.to_string())
                .or_insert_with(|| ConsumerGroup::new(group_id));
            group
                .heartbeat(args, &all_topics, now_ms)
                .map_err(|e| match e {
                    HeartbeatError::UnknownMember => {
                        (ResponseError::UnknownMemberId, String::new())
                    }
                    HeartbeatError::FencedEpoch => {
                        (ResponseError::FencedMemberEpoch, String::new())
                    }
                    HeartbeatError::InvalidRequest(m) => (ResponseError::InvalidRequest, m),
                })?
        };
        let _ = self.store_group(broker, group_id).await;
        Ok(outcome)
    }

    /// Validates and stores committed offsets. A group-level error applies
    /// to every partition; otherwise each partition has its own result.
    pub async fn commit(
        &self,
        broker: &Broker,
        group_id: &str,
        identity: CommitIdentity<'_>,
        offsets: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
        check_group_id(group_id)?;
        let _order = self.write_order(broker, group_id).await;
        let (results, records, accepted) = {
            let groups = self.groups.lock();
            self.check_loaded(broker, &groups, group_id)?;
            groups.check_commit(group_id, &identity)?;
            let mut results = Vec::with_capacity(offsets.len());
            let mut records = Vec::new();
            let mut accepted = Vec::new();
            for (topic, partition, committed) in offsets {
                let known = broker
                    .topic(&topic)
                    .is_some_and(|t| t.partition(partition).is_some());
                let result = if committed
                    .metadata
                    .as_ref()
                    .is_some_and(|m| m.len() > self.settings.offset_metadata_max_bytes)
                {
                    Err(ResponseError::OffsetMetadataTooLarge)
                } else if !known {
                    Err(ResponseError::UnknownTopicOrPartition)
                } else {
                    let value = OffsetValue {
                        offset: committed.offset,
                        leader_epoch: committed.leader_epoch,
                        metadata: committed.metadata.clone(),
                        commit_timestamp_ms: committed.commit_timestamp_ms,
                    };
                    let key = RecordKey::Offset {
                        group: group_id.to_string(),
                        topic: topic.clone(),
                        partition,
                    };
                    records.push((
                        key,
                        Some(serde_json::to_vec(&value).expect("offsets serialise")),
                    ));
                    accepted.push((topic, partition, committed));
                    Ok(())
                };
                results.push(result);
            }
            (results, records, accepted)
        };
        if let Err(e) = self.persist(broker, group_id, records).await {
            warn!(group = group_id, error = %e, "offset commit could not be written");
            return Err(coordinator_error(&e));
        }
        let mut groups = self.groups.lock();
        let stored = groups.offsets.entry(group_id.to_string()).or_default();
        for (topic, partition, committed) in accepted {
            stored.insert((topic, partition), committed);
        }
        if !groups.consumer.contains_key(group_id) {
            groups
                .classic
                .entry(group_id.to_string())
                .or_insert_with(|| ClassicGroup::new(group_id));
        }
        Ok(results)
    }

    /// Committed offsets of a group: all of them (`None`) or the listed
    /// partitions (absent ones are `None`). A group whose partition could
    /// not be loaded is an error, never "nothing committed": a consumer
    /// would reset its position.
    pub fn fetch_offsets(
        &self,
        broker: &Broker,
        group_id: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<FetchedOffsets, ResponseError> {
        let groups = self.groups.lock();
        self.check_loaded(broker, &groups, group_id)?;
        let stored = groups.offsets.get(group_id);
        Ok(match wanted {
            Some(topics) => topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let found = partitions
                        .into_iter()
                        .map(|p| (p, stored.and_then(|s| s.get(&(topic.clone(), p)).cloned())))
                        .collect();
                    (topic, found)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>> =
                    BTreeMap::new();
                for ((topic, partition), committed) in stored.into_iter().flatten() {
                    by_topic
                        .entry(topic.clone())
                        .or_default()
                        .push((*partition, Some(committed.clone())));
                }
                by_topic.into_iter().collect()
            }
        })
    }

    /// Checks a KIP-848 member's identity for OffsetFetch v9 (on the
    /// group's coordinator only).
    pub fn check_fetch_member(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
    ) -> Result<(), ResponseError> {
        let groups = self.groups.lock();
        let Some(group) = groups.consumer.get(group_id) else {
            return Err(ResponseError::GroupIdNotFound);
        };
        let member = group
            .members
            .get(member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        if member.member_epoch != member_epoch {
            return Err(ResponseError::StaleMemberEpoch);
        }
        Ok(())
    }

    pub fn list(&self) -> Vec<GroupSummary> {
        let groups = self.groups.lock();
        let mut out: Vec<GroupSummary> = groups
            .classic
            .values()
            .map(|g| GroupSummary {
                group_id: g.group_id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state.name().to_string(),
                group_type: "classic",
            })
            .chain(groups.consumer.values().map(|g| GroupSummary {
                group_id: g.group_id.clone(),
                protocol_type: "consumer".to_string(),
                state: g.state().name().to_string(),
                group_type: "consumer",
            }))
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// Runs `f` on a classic group, if there is one.
    pub fn with_classic<T>(&self, group_id: &str, f: impl FnOnce(&ClassicGroup) -> T) -> Option<T> {
        self.groups.lock().classic.get(group_id).map(f)
    }

    /// Runs `f` on a consumer group, if there is one.
    pub fn with_consumer<T>(
        &self,
        group_id: &str,
        f: impl FnOnce(&ConsumerGroup) -> T,
    ) -> Option<T> {
        self.groups.lock().consumer.get(group_id).map(f)
    }

    /// DeleteGroups: only groups without members; removes their offsets too.
    pub async fn delete_group(&self, broker: &Broker, group_id: &str) -> Result<(), ResponseError> {
        let _order = self.write_order(broker, group_id).await;
        let records = {
            let groups = self.groups.lock();
            self.check_loaded(broker, &groups, group_id)?;
            let classic = groups.classic.get(group_id).map(ClassicGroup::is_empty);
            let consumer = groups.consumer.get(group_id).map(|g| g.members.is_empty());
            match (classic, consumer) {
                (None, None) if !groups.offsets.contains_key(group_id) => {
                    return Err(ResponseError::GroupIdNotFound)
                }
                (Some(false), _) | (_, Some(false)) => return Err(ResponseError::NonEmptyGroup),
                _ => {}
            }
            let mut records: Vec<(RecordKey, Option<Vec<u8>>)> = groups
                .offsets
                .get(group_id)
                .into_iter()
                .flat_map(|o| o.keys())
                .map(|(topic, partition)| {
                    (
                        RecordKey::Offset {
                            group: group_id.to_string(),
                            topic: topic.clone(),
                            partition: *partition,
                        },
                        None,
                    )
                })
                .collect();
            records.push((
                RecordKey::ClassicGroup {
                    group: group_id.to_string(),
                },
                None,
            ));
            records.push((
                RecordKey::ConsumerGroup {
                    group: group_id.to_string(),
                },
                None,
            ));
            records
        };
        self.persist(broker, group_id, records)
            .await
            .map_err(|e| coordinator_error(&e))?;
        let mut groups = self.groups.lock();
        groups.offsets.remove(group_id);
        groups.classic.remove(group_id);
        groups.consumer.remove(group_id);
        info!(group = group_id, "deleted group");
        Ok(())
    }

    /// OffsetDelete: refuses topics the group's members subscribe to.
    pub async fn delete_offsets(
        &self,
        broker: &Broker,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
        let _order = self.write_order(broker, group_id).await;
        let (records, results) = {
            let groups = self.groups.lock();
            self.check_loaded(broker, &groups, group_id)?;
            let all_topics: BTreeMap<String, i32> = broker
                .topics()
                .iter()
                .map(|t| (t.name.clone(), t.partitions.len() as i32))
                .collect();
            let subscribed: BTreeSet<String> =
                match (groups.classic.get(group_id), groups.consumer.get(group_id)) {
                    (Some(g), _) if !g.is_empty() => g.subscribed_topics(),
                    (_, Some(g)) => g.subscribed_topics(&all_topics),
                    (None, None) if !groups.offsets.contains_key(group_id) => {
                        return Err(ResponseError::GroupIdNotFound)
                    }
                    _ => BTreeSet::new(),
                };
            let mut records = Vec::new();
            let results: Vec<Result<(), ResponseError>> = partitions
                .iter()
                .map(|(topic, partition)| {
                    if subscribed.contains(topic) {
                        return Err(ResponseError::GroupSubscribedToTopic);
                    }
                    records.push((
                        RecordKey::Offset {
                            group: group_id.to_string(),
                            topic: topic.clone(),
                            partition: *partition,
                        },
                        None,
                    ));
                    Ok(())
                })
                .collect();
            (records, results)
        };
        self.persist(broker, group_id, records)
            .await
            .map_err(|e| coordinator_error(&e))?;
        let mut groups = self.groups.lock();
        if let Some(stored) = groups.offsets.get_mut(group_id) {
            for ((topic, partition), result) in partitions.iter().zip(&results) {
                if result.is_ok() {
                    stored.remove(&(topic.clone(), *partition));
                }
            }
        }
        Ok(results)
    }

    /// Drops committed offsets of a deleted topic from every group, on disk
    /// (tombstones) and in memory, so a topic created later under the same
    /// name does not inherit them after a restart.
    pub async fn forget_topic(&self, broker: &Broker, topic: &str) {
        let doomed: Vec<(String, Vec<i32>)> = self
            .groups
            .lock()
            .offsets
            .iter()
            .map(|(group, stored)| {
                let partitions = stored
                    .keys()
                    .filter(|(t, _)| t == topic)
                    .map(|(_, p)| *p)
                    .collect::<Vec<_>>();
                (group.clone(), partitions)
            })
            .filter(|(_, partitions)| !partitions.is_empty())
            .collect();
        for (group, partitions) in doomed {
            let _order = self.write_order(broker, &group).await;
            let records = partitions
                .iter()
                .map(|&partition| {
                    let key = RecordKey::Offset {
                        group: group.clone(),
                        topic: topic.to_string(),
                        partition,
                    };
                    (key, None)
                })
                .collect();
            if let Err(e) = self.persist(broker, &group, records).await {
                tracing::error!(group = %group, topic, error = %e,
                    "could not write tombstones for a deleted topic's offsets; they return after a restart");
            }
            if let Some(stored) = self.groups.lock().offsets.get_mut(&group) {
                stored.retain(|(t, _), _| t != topic);
            }
        }
    }

    /// Advances every group's timers to `now_ms`.
    pub async fn tick(&self, broker: &Broker) {
        // Loading a partition reads its log: off the async workers.
        crate::handlers::off_workers(|| self.follow_leadership(broker));
        let now_ms = broker.now_ms();
        let changed: Vec<String> = {
            let mut groups = self.groups.lock();
            let mut changed = Vec::new();
            for (id, group) in groups.classic.iter_mut() {
                group.tick(&self.settings, now_ms);
                if group.dirty {
                    changed.push(id.clone());
                }
            }
            let session_timeout_ms = i64::from(self.settings.consumer_session_timeout_ms);
            for (id, group) in groups.consumer.iter_mut() {
                group.tick(session_timeout_ms, now_ms);
                if group.dirty {
                    changed.push(id.clone());
                }
            }
            changed
        };
        for id in changed {
            let _ = self.store_group(broker, &id).await;
        }
    }
}

/// The error a group request gets when its `__consumer_offsets` write
/// failed, as Kafka's coordinator maps append errors.
fn coordinator_error(e: &ApiError) -> ResponseError {
    match e.error {
        ResponseError::UnknownTopicOrPartition
        | ResponseError::NotEnoughReplicas
        | ResponseError::NotEnoughReplicasAfterAppend
        | ResponseError::CoordinatorNotAvailable
        // The metadata quorum could not commit `__consumer_offsets`' creation:
        // retriable, as Kafka's coordinator answers while it cannot load.
        | ResponseError::NotController
        | ResponseError::RequestTimedOut => ResponseError::CoordinatorNotAvailable,
        ResponseError::NotLeaderOrFollower | ResponseError::KafkaStorageError => {
            ResponseError::NotCoordinator
        }
        ResponseError::MessageTooLarge
        | ResponseError::RecordListTooLarge
        | ResponseError::InvalidFetchSize => ResponseError::InvalidCommitOffsetSize,
        _ => ResponseError::UnknownServerError,
    }
}

/// Replays one `__consumer_offsets` partition into `groups`. Stops at the
/// first record that cannot be read: applying the ones after it would build
/// a state that never existed.
fn load_partition(
    groups: &mut Groups,
    partition: &crate::partition::Partition,
    now_ms: i64,
) -> Result<usize, String> {
    let end = partition.high_watermark();
    let mut offset = partition.log_start_offset();
    let mut records = 0usize;
    while offset < end {
        let bytes = partition
            .read(offset, 1 << 20)
            .and_then(|slice| slice.to_bytes().map_err(vltava_log::LogError::from))
            .map_err(|e| format!("read at offset {offset}: {e}"))?;
        if bytes.is_empty() {
            break;
        }
        for batch in batches(&bytes) {
            let at = |e: &dyn std::fmt::Display| format!("batch at offset {offset}: {e}");
            let batch = batch.map_err(|e| at(&e))?;
            // Compaction may have thinned these batches.
            let header = validate_stored_batch(&batch).map_err(|e| at(&e))?;
            for record in decode_records(&batch).map_err(|e| at(&e))? {
                if let Some(key) = record.key.as_deref().and_then(RecordKey::decode) {
                    groups
                        .apply(key, record.value.as_deref(), now_ms)
                        .map_err(|e| format!("record at offset {}: {e}", record.offset))?;
                    records += 1;
                }
            }
            offset = header.next_offset();
        }
    }
    Ok(records)
}

/// A group whose metadata is one record in `__consumer_offsets`.
trait StoredGroup {
    fn dirty(&mut self) -> &mut bool;
    fn record(&self) -> (RecordKey, Vec<u8>);
}

impl StoredGroup for ClassicGroup {
    fn dirty(&mut self) -> &mut bool {
        &mut self.dirty
    }

    fn record(&self) -> (RecordKey, Vec<u8>) {
        let key = RecordKey::ClassicGroup {
            group: self.group_id.clone(),
        };
        (
            key,
            serde_json::to_vec(&self.to_value()).expect("group values serialise"),
        )
    }
}

impl StoredGroup for ConsumerGroup {
    fn dirty(&mut self) -> &mut bool {
        &mut self.dirty
    }

    fn record(&self) -> (RecordKey, Vec<u8>) {
        let key = RecordKey::ConsumerGroup {
            group: self.group_id.clone(),
        };
        (
            key,
            serde_json::to_vec(&self.to_value()).expect("group values serialise"),
        )
    }
}

/// A stored value: `None` for a tombstone, an error for bytes that do not
/// decode (never read as a tombstone: that would delete what was there).
fn decode_value<T: serde::de::DeserializeOwned>(value: Option<&[u8]>) -> Result<Option<T>, String> {
    value
        .map(|v| serde_json::from_slice(v).map_err(|e| format!("undecodable value: {e}")))
        .transpose()
}

impl Groups {
    /// The metadata record of `group_id` if it changed since it was last
    /// taken (and marks it unchanged).
    fn take_changed(&mut self, group_id: &str) -> Option<(RecordKey, Vec<u8>)> {
        if let Some(group) = self.classic.get_mut(group_id) {
            if std::mem::take(group.dirty()) {
                return Some(group.record());
            }
        }
        let group = self.consumer.get_mut(group_id)?;
        std::mem::take(group.dirty()).then(|| group.record())
    }

    /// Marks `group_id` changed again after its write failed.
    fn mark_changed(&mut self, group_id: &str) {
        if let Some(group) = self.classic.get_mut(group_id) {
            *group.dirty() = true;
        }
        if let Some(group) = self.consumer.get_mut(group_id) {
            *group.dirty() = true;
        }
    }

    fn apply(&mut self, key: RecordKey, value: Option<&[u8]>, now_ms: i64) -> Result<(), String> {
        match key {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => match decode_value::<OffsetValue>(value)? {
                Some(v) => {
                    self.offsets.entry(group.clone()).or_default().insert(
                        (topic, partition),
                        CommittedOffset {
                            offset: v.offset,
                            leader_epoch: v.leader_epoch,
                            metadata: v.metadata,
                            commit_timestamp_ms: v.commit_timestamp_ms,
                        },
                    );
                    if !self.consumer.contains_key(&group) {
                        self.classic
                            .entry(group.clone())
                            .or_insert_with(|| ClassicGroup::new(&group));
                    }
                }
                None => {
                    if let Some(stored) = self.offsets.get_mut(&group) {
                        stored.remove(&(topic, partition));
                    }
                }
            },
            RecordKey::ClassicGroup { group } => match decode_value::<ClassicGroupValue>(value)? {
                Some(v) => {
                    self.classic
                        .insert(group.clone(), ClassicGroup::from_value(&group, v, now_ms));
                }
                None => {
                    self.classic.remove(&group);
                    self.offsets.remove(&group);
                }
            },
            RecordKey::ConsumerGroup { group } => {
                match decode_value::<ConsumerGroupValue>(value)? {
                    Some(v) => {
                        self.classic.remove(&group);
                        self.consumer
                            .insert(group.clone(), ConsumerGroup::from_value(&group, v, now_ms));
                    }
                    None => {
                        self.consumer.remove(&group);
                    }
                }
            }
        }
        Ok(())
    }

    fn check_commit(
        &self,
        group_id: &str,
        identity: &CommitIdentity<'_>,
    ) -> Result<(), ResponseError> {
        let simple = identity.generation_or_member_epoch < 0 && identity.member_id.is_empty();
        if let Some(group) = self.consumer.get(group_id) {
            if simple && group.members.is_empty() {
                return Ok(());
            }
            let member = group
                .members
                .get(identity.member_id)
                .ok_or(ResponseError::UnknownMemberId)?;
            if member.member_epoch != identity.generation_or_member_epoch {
                return Err(ResponseError::StaleMemberEpoch);
            }
            return Ok(());
        }
        match self.classic.get(group_id) {
            None if simple => Ok(()),
            None => Err(ResponseError::IllegalGeneration),
            Some(group) if simple && group.is_empty() => Ok(()),
            Some(group) => {
                group.check_member(
                    identity.member_id,
                    identity.group_instance_id,
                    identity.generation_or_member_epoch,
                )?;
                match group.state {
                    classic::ClassicState::Stable => Ok(()),
                    _ => Err(ResponseError::RebalanceInProgress),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{BrokerConfig, ManualClock};

    const PARTITIONS: i32 = 4;

    fn open(dir: &std::path::Path) -> Broker {
        let pairs = [
            ("log.dirs", dir.display().to_string()),
            ("offsets.topic.num.partitions", PARTITIONS.to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v));
        let (config, _) = BrokerConfig::from_pairs(&pairs).unwrap();
        futures_executor::block_on(Broker::open(config, Arc::new(ManualClock::new(1_000_000))))
            .unwrap()
    }

    /// Runs coordinator work (its waits for commits use tokio's timers).
    fn run<T>(work: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(work)
    }

    fn commit(broker: &Broker, group: &str, topic: &str, offset: i64) -> Result<(), ResponseError> {
        let identity = CommitIdentity {
            generation_or_member_epoch: -1,
            member_id: "",
            group_instance_id: None,
        };
        let committed = CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: None,
            commit_timestamp_ms: 1,
        };
        let results = run(broker.groups().commit(
            broker,
            group,
            identity,
            vec![(topic.to_string(), 0, committed)],
        ))?;
        results.into_iter().collect()
    }

    fn committed(broker: &Broker, group: &str, topic: &str) -> Result<Option<i64>, ResponseError> {
        let fetched = broker.groups().fetch_offsets(
            broker,
            group,
            Some(vec![(topic.to_string(), vec![0])]),
        )?;
        Ok(fetched[0].1[0].1.as_ref().map(|c| c.offset))
    }

    /// Two group ids on different `__consumer_offsets` partitions.
    fn two_groups() -> (String, String) {
        let a = "group-a".to_string();
        let b = (0..)
            .map(|i| format!("group-b{i}"))
            .find(|b| store::partition_for(b, PARTITIONS) != store::partition_for(&a, PARTITIONS))
            .unwrap();
        (a, b)
    }

    #[test]
    fn an_unreadable_value_stops_only_the_load_of_its_partition() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = two_groups();
        {
            let broker = open(dir.path());
            broker
                .block_on(broker.create_topic("t", 1, BTreeMap::new(), false))
                .unwrap();
            commit(&broker, &a, "t", 5).unwrap();
            commit(&broker, &b, "t", 7).unwrap();
            // A value that does not decode, under a valid key of group a.
            let key = RecordKey::Offset {
                group: a.clone(),
                topic: "t".into(),
                partition: 0,
            };
            let batch = BatchBuilder::new(Compression::None)
                .record(
                    Some(key.encode()),
                    Some(Bytes::from_static(b"{not json")),
                    vec![],
                    1,
                )
                .build();
            let header = validate_batch(&batch).unwrap();
            let offsets = broker.topic(OFFSETS_TOPIC).unwrap();
            let partition = offsets
                .partition(store::partition_for(&a, PARTITIONS))
                .unwrap();
            partition.append(batch, &header, false, 1).unwrap();
            broker.block_on(broker.close());
        }
        let broker = open(dir.path());
        assert_eq!(
            committed(&broker, &a, "t"),
            Err(ResponseError::CoordinatorNotAvailable)
        );
        assert_eq!(
            commit(&broker, &a, "t", 6),
            Err(ResponseError::CoordinatorNotAvailable)
        );
        assert_eq!(committed(&broker, &b, "t"), Ok(Some(7)));
    }

    /// While one group's commit is inside its `__consumer_offsets` append,
    /// other groups are served: the coordinator's lock is not held across
    /// the write.
    #[test]
    fn no_group_lock_is_held_across_an_offsets_write() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = two_groups();
        let broker = open(dir.path());
        broker
            .block_on(broker.create_topic("t", 1, BTreeMap::new(), false))
            .unwrap();
        commit(&broker, &a, "t", 1).unwrap();
        let offsets = broker.topic(OFFSETS_TOPIC).unwrap();
        let partition = offsets
            .partition(store::partition_for(&a, PARTITIONS))
            .unwrap();
        let (paused_tx, paused_rx) = std::sync::mpsc::channel::<()>();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let go_rx = Mutex::new(go_rx);
        partition.hooks.pause_next_publish(Box::new(move || {
            let _ = paused_tx.send(());
            let _ = go_rx.lock().recv();
        }));
        std::thread::scope(|scope| {
            let committer = scope.spawn(|| commit(&broker, &a, "t", 9));
            paused_rx.recv().unwrap();
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            let (broker, b) = (&broker, &b);
            scope.spawn(move || {
                let listed = broker.groups().list().len();
                let other = commit(broker, b, "t", 3);
                let _ = done_tx.send((listed, other));
            });
            let served = done_rx.recv_timeout(std::time::Duration::from_secs(10));
            go_tx.send(()).unwrap();
            let (listed, other) = served.expect("other groups waited for a's write");
            assert_eq!((listed, other), (1, Ok(())));
            assert_eq!(committer.join().unwrap(), Ok(()));
        });
        assert_eq!(committed(&broker, &a, "t"), Ok(Some(9)));
        assert_eq!(committed(&broker, &b, "t"), Ok(Some(3)));
    }

    #[test]
    fn a_deleted_topics_offsets_stay_deleted_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let broker = open(dir.path());
            broker
                .block_on(broker.create_topic("t", 1, BTreeMap::new(), false))
                .unwrap();
            commit(&broker, "g", "t", 42).unwrap();
            run(broker.delete_topic("t")).unwrap();
            broker
                .block_on(broker.create_topic("t", 1, BTreeMap::new(), false))
                .unwrap();
            assert_eq!(committed(&broker, "g", "t"), Ok(None));
            broker.block_on(broker.close());
        }
        let broker = open(dir.path());
        assert_eq!(committed(&broker, "g", "t"), Ok(None));
    }
}
