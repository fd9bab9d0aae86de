//! One partition on this broker: its log, its place in the replica set
//! (leader, epochs, in-sync replicas), the high watermark, the followers'
//! progress when this broker leads it, and idempotent-producer state.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicUsize, Ordering};

use bytes::BytesMut;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use uuid::Uuid;
use vltava_log::{Log, LogConfig, LogError, ReadSlice};
use vltava_protocol::ResponseError;
use vltava_record::{set_log_append_time, BatchHeader};

use crate::error::ApiError;
use crate::producer_state::{ProducerStateMap, SequenceCheck, SequenceError};

/// Where an accepted batch went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The leader epoch it was appended in: acks=all fails if leadership
    /// changed before the high watermark passed it.
    pub leader_epoch: i32,
    pub base_offset: i64,
    /// The batch's last offset: acks=all waits for the high watermark to
    /// pass it.
    pub last_offset: i64,
    /// The broker's append time for LogAppendTime topics, else -1.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    /// True when the batch was a retry of one already in the log.
    pub duplicate: bool,
}

/// A partition's replica set as the committed metadata says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    /// -1: no leader (every in-sync replica is fenced).
    pub leader: i32,
    pub leader_epoch: i32,
    /// The preferred leader first.
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub partition_epoch: i32,
    /// The eligible leader replicas (KIP-966), as DescribeTopicPartitions
    /// lists them.
    pub elr: Vec<i32>,
}

impl Assignment {
    pub fn from_image(image: &vltava_meta::PartitionImage) -> Assignment {
        Assignment {
            leader: image.leader,
            leader_epoch: image.leader_epoch,
            replicas: image.replicas.clone(),
            isr: image.isr.clone(),
            partition_epoch: image.partition_epoch,
            elr: image.elr.clone(),
        }
    }
}

/// What the leader knows of one follower (Kafka's replica state).
#[derive(Debug, Clone, Copy)]
struct Follower {
    /// The broker epoch (registration) its fetches came from: a restarted
    /// broker's progress starts afresh, since it may have lost what it had
    /// not flushed (KIP-903).
    broker_epoch: i64,
    /// Its log end as its latest fetch said; -1 until it fetched from this
    /// leader epoch.
    log_end: i64,
    /// Its log start as its latest fetch said (-1: not said): a consumer
    /// is only sent to read from it at or above this.
    log_start: i64,
    /// When it last had everything this leader had (Kafka's
    /// lastCaughtUpTimeMs): how the ISR's lag is judged.
    last_caught_up_ms: i64,
    /// When its previous fetch was answered, and this leader's log end then.
    last_fetch_ms: i64,
    leader_end_at_last_fetch: i64,
}

impl Follower {
    fn new(now_ms: i64) -> Follower {
        Follower {
            broker_epoch: -1,
            log_end: -1,
            log_start: -1,
            // Counted as caught up when leadership starts, as in Kafka: a
            // new leader does not drop followers it has not heard from yet.
            last_caught_up_ms: now_ms,
            last_fetch_ms: now_ms,
            leader_end_at_last_fetch: -1,
        }
    }
}

/// The leader's side of replication.
#[derive(Debug, Default)]
struct LeaderState {
    followers: BTreeMap<i32, Follower>,
    /// An ISR change proposed and not yet committed or refused, and when it
    /// was proposed. Until it settles the high watermark counts both the
    /// committed ISR and this one (Kafka's maximal ISR), so no offset is
    /// called committed that a replica counted in-sync by either lacks.
    pending_isr: Option<(Vec<i32>, i64)>,
    /// The log end when this leader epoch began: a follower joins the ISR
    /// only once it has reached it.
    epoch_start_offset: i64,
    /// No ISR change is proposed before this (after a refusal).
    retry_after_ms: i64,
}

/// How long a leader waits after a refused ISR change before proposing one
/// again.
const ISR_RETRY_BACKOFF_MS: i64 = 1_000;

/// How long an ISR change may stay unanswered before the leader proposes
/// again (the controller may have been changing hands).
const PENDING_ISR_TIMEOUT_MS: i64 = 10_000;

/// An ISR change a leader wants the controller to commit (AlterPartition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
    /// The broker epoch each joining member fetched with: the controller
    /// refuses the change if the broker has registered again since.
    pub joining: Vec<(i32, i64)>,
}

/// The leader and leader epoch a follower fetched under: what it does with
/// the answer is dropped if either changed meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerTerm {
    pub leader: i32,
    pub leader_epoch: i32,
}

pub struct Partition {
    pub topic_id: Uuid,
    pub index: i32,
    /// This broker's id.
    node: i32,
    /// Leader, epochs, replicas and ISR; changed only by the metadata
    /// publisher ([`Partition::set_assignment`]).
    assignment: RwLock<Assignment>,
    /// Followers' progress while this broker leads. Lock order: the
    /// writer, then `assignment`, then this.
    leading: Mutex<LeaderState>,
    /// Whether this broker holds its log (it is one of its replicas); a
    /// partition placed elsewhere has no log here.
    hosted: bool,
    dir: PathBuf,
    log: Log,
    leader_epoch: AtomicI32,
    /// Offsets below this are committed and visible to consumers. On a single
    /// replica it follows the log end; replication will hold it back until
    /// the in-sync replicas have the data.
    high_watermark: AtomicI64,
    /// The topic's `min.insync.replicas` (set by the metadata publisher):
    /// while the committed ISR is smaller (or than the replica count, if
    /// that is smaller still), the high watermark stands still.
    min_insync: AtomicUsize,
    /// The partition's single writer: held from the sequence check through
    /// the append so that both see the same state. Never held across an
    /// await (there is none on this path).
    writer: Mutex<ProducerStateMap>,
    /// Per idempotent producer, its batch last refused with a retriable
    /// error before it was appended (an ISR below min.insync.replicas, a
    /// failed disk write); see [`Partition::append`]. Touched only on
    /// refusals and out-of-sequence batches, never on a good append. Lock
    /// order: after the writer. At most [`REFUSED_PRODUCERS_MAX`] entries.
    refused: Mutex<BTreeMap<i64, Refused>>,
    /// Woken when the high watermark moves: consumers' long-poll fetches,
    /// acks=all produces and the group coordinator's writes parked on this
    /// partition.
    high_watermark_advanced: Notify,
    /// Woken when the log end moves (before the high watermark, once
    /// followers exist): what replica fetches will wait on.
    log_end_advanced: Notify,
    #[cfg(test)]
    pub(crate) hooks: tests::Hooks,
}

/// A batch refused before it was appended (see [`Partition::note_refused`]).
#[derive(Debug, Clone, Copy)]
struct Refused {
    epoch: i16,
    base_sequence: i32,
    error: ResponseError,
}

/// Producers whose last refusal a partition remembers.
pub const REFUSED_PRODUCERS_MAX: usize = 10_000;

impl Partition {
    pub fn dir_name(topic: &str, index: i32) -> String {
        format!("{topic}-{index}")
    }

    pub fn open(
        data_dir: &Path,
        topic: &str,
        topic_id: Uuid,
        index: i32,
        leader_epoch: i32,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<Partition, LogError> {
        let storage: std::sync::Arc<dyn vltava_log::storage::Storage> =
            std::sync::Arc::new(vltava_log::storage::FileStorage);
        Self::open_with_storage(
            &storage,
            data_dir,
            topic,
            topic_id,
            index,
            leader_epoch,
            config,
            now_ms,
        )
    }

    /// [`Partition::open`] with the log's files opened through `storage`.
    #[allow(clippy::too_many_arguments)]
    pub fn open_with_storage(
        storage: &std::sync::Arc<dyn vltava_log::storage::Storage>,
        data_dir: &Path,
        topic: &str,
        topic_id: Uuid,
        index: i32,
        leader_epoch: i32,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<Partition, LogError> {
        let dir = data_dir.join(Self::dir_name(topic, index));
        let log = Log::open_with_storage(&dir, config, now_ms, std::sync::Arc::clone(storage))?;
        Self::from_log(dir, log, topic_id, index, leader_epoch)
    }

    fn from_log(
        dir: PathBuf,
        log: Log,
        topic_id: Uuid,
        index: i32,
        leader_epoch: i32,
    ) -> Result<Partition, LogError> {
        let producers = rebuild_producers(&log)?;
        Ok(Self::assemble(
            dir,
            log,
            topic_id,
            index,
            leader_epoch,
            producers,
        ))
    }

    /// A partition whose log could not be opened: it is listed, and every
    /// read and write on it answers KAFKA_STORAGE_ERROR (the log says
    /// `reason`), while the broker serves its other partitions.
    pub fn offline(
        data_dir: &Path,
        topic: &str,
        topic_id: Uuid,
        index: i32,
        leader_epoch: i32,
        reason: String,
    ) -> Partition {
        let dir = data_dir.join(Self::dir_name(topic, index));
        let log = Log::offline(&dir, reason);
        let producers = ProducerStateMap::default();
        Self::assemble(dir, log, topic_id, index, leader_epoch, producers)
    }

    /// A partition whose replicas are all on other brokers: listed with
    /// its leader, and answered NOT_LEADER_OR_FOLLOWER by the handlers (its
    /// log here is an offline one that nothing reads, writes or removes).
    pub fn remote(
        data_dir: &Path,
        topic: &str,
        topic_id: Uuid,
        index: i32,
        node: i32,
        assignment: Assignment,
    ) -> Partition {
        let mut partition = Self::offline(
            data_dir,
            topic,
            topic_id,
            index,
            assignment.leader_epoch,
            format!("placed on brokers {:?}", assignment.replicas),
        );
        partition.hosted = false;
        partition.placed(node, assignment, 0)
    }

    /// Whether this broker cannot serve it: its log could not be opened,
    /// or another broker leads it.
    pub fn is_offline(&self) -> bool {
        self.log.offline_reason().is_some()
    }

    /// The partition on broker `node`, placed as `assignment` says (a
    /// partition opened on its own leads itself, as node 0, until placed).
    pub fn placed(self, node: i32, assignment: Assignment, now_ms: i64) -> Partition {
        let partition = Partition { node, ..self };
        // What a replicated log holds past its log start is not known to be
        // committed until the leader says so (no high-watermark checkpoint
        // is kept): it starts there, and the leader's ISR or the follower's
        // leader moves it up. Alone, everything it holds is committed.
        if assignment.replicas.len() > 1 {
            partition
                .high_watermark
                .store(partition.log.log_start_offset(), Ordering::Release);
        }
        partition.set_assignment(assignment, now_ms);
        partition
    }

    /// Whether this broker holds the partition's log (it is a replica).
    pub fn is_hosted(&self) -> bool {
        self.hosted
    }

    /// Whether this broker leads it: the only replica that takes produce
    /// requests and serves consumers.
    pub fn is_leader(&self) -> bool {
        self.hosted && self.assignment.read().leader == self.node
    }

    /// Whether this broker is a follower with a leader to fetch from (a
    /// log this broker holds, for a partition whose replicas include it:
    /// not one it is giving up).
    pub fn is_following(&self) -> bool {
        let a = self.assignment.read();
        self.hosted && a.leader != self.node && a.leader >= 0 && a.replicas.contains(&self.node)
    }

    /// The broker that leads it (-1: none).
    pub fn leader(&self) -> i32 {
        self.assignment.read().leader
    }

    pub fn assignment(&self) -> Assignment {
        self.assignment.read().clone()
    }

    /// Takes the committed state of the partition (from the metadata
    /// publisher). Becoming leader (a new leader epoch naming this broker)
    /// starts follower tracking afresh; an ISR change settles a pending
    /// one; becoming a follower drops it. Waiters are woken either way, so
    /// an acks=all produce learns that leadership moved. An older leader
    /// epoch than the one held is ignored.
    pub fn set_assignment(&self, assignment: Assignment, now_ms: i64) {
        // The writer first (the lock order): no append or replica write is
        // half done while the role changes.
        let _writer = self.writer.lock();
        let mut current = self.assignment.write();
        if assignment.leader_epoch < current.leader_epoch
            || (assignment.leader_epoch == current.leader_epoch
                && assignment.partition_epoch < current.partition_epoch)
        {
            return;
        }
        let mut leading = self.leading.lock();
        let new_term =
            assignment.leader_epoch != current.leader_epoch || assignment.leader != current.leader;
        let fresh = current.replicas.is_empty();
        if assignment.leader == self.node && (new_term || fresh) {
            let end = self.log.log_end_offset();
            // As Kafka's makeLeader: the new epoch starts at the log end in
            // the epoch cache, so a follower's older epoch is answered with
            // where it ended here even before this leader writes.
            if self.hosted && !self.is_offline() {
                if let Err(e) = self.log.begin_leader_epoch(assignment.leader_epoch) {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "leader epoch not recorded");
                }
            }
            *leading = LeaderState {
                followers: assignment
                    .replicas
                    .iter()
                    .filter(|id| **id != self.node)
                    .map(|id| (*id, Follower::new(now_ms)))
                    .collect(),
                pending_isr: None,
                epoch_start_offset: end,
                retry_after_ms: 0,
            };
        } else if assignment.leader == self.node {
            for id in assignment.replicas.iter().filter(|id| **id != self.node) {
                // A follower the controller took out of the ISR (fenced,
                // lagging) must fetch again before it may rejoin: what it
                // fetched before says nothing about it now.
                let left = current.isr.contains(id) && !assignment.isr.contains(id);
                let state = leading
                    .followers
                    .entry(*id)
                    .or_insert_with(|| Follower::new(now_ms));
                if left {
                    *state = Follower::new(now_ms);
                }
            }
            leading
                .followers
                .retain(|id, _| assignment.replicas.contains(id));
            leading.pending_isr = None;
        } else {
            *leading = LeaderState::default();
        }
        self.leader_epoch
            .store(assignment.leader_epoch, Ordering::Release);
        *current = assignment;
        if current.leader == self.node && self.hosted {
            self.advance_leader_high_watermark(&current, &leading);
        }
        drop(leading);
        drop(current);
        self.high_watermark_advanced.notify_waiters();
        self.log_end_advanced.notify_waiters();
    }

    /// The leader's high watermark: the least log end over the in-sync
    /// replicas (the committed ISR and any pending change), and no
    /// further while one of them has not fetched in this leader epoch.
    /// Never moves back.
    ///
    /// KIP-966's strict rule: not at all while the committed ISR holds
    /// fewer than `min.insync.replicas` (at most the replica count). So a
    /// replica that leaves an ISR that small still holds every committed
    /// record, and the controller may elect it (`PartitionImage::elr`)
    /// when this leader is lost; and a write acknowledged with acks=all is
    /// on `min.insync.replicas` replicas whatever happened between its
    /// append and its acknowledgement.
    fn advance_leader_high_watermark(&self, assignment: &Assignment, leading: &LeaderState) {
        // No replica list: a partition opened alone (tests, tools), not
        // placed by the metadata.
        let required = self
            .min_insync
            .load(Ordering::Acquire)
            .min(assignment.replicas.len());
        if assignment.isr.len() < required {
            return;
        }
        let mut members: BTreeSet<i32> = assignment.isr.iter().copied().collect();
        if let Some((pending, _)) = &leading.pending_isr {
            members.extend(pending.iter().copied());
        }
        let mut high_watermark = self.log.log_end_offset();
        for id in members.iter().filter(|id| **id != self.node) {
            match leading.followers.get(id) {
                Some(f) if f.log_end >= 0 => high_watermark = high_watermark.min(f.log_end),
                _ => return,
            }
        }
        self.advance_high_watermark(high_watermark);
    }

    /// A follower's fetch from `fetch_offset` reached this leader: its log
    /// ends there. Moves the high watermark if that lets it move. A fetch
    /// from a new incarnation of the follower (`broker_epoch`) starts its
    /// progress afresh.
    pub fn record_follower_fetch(
        &self,
        follower: i32,
        broker_epoch: i64,
        fetch_offset: i64,
        follower_log_start: i64,
        now_ms: i64,
    ) -> Result<(), ApiError> {
        let assignment = self.assignment.read();
        if assignment.leader != self.node {
            return Err(not_leader(self.index, assignment.leader));
        }
        let mut leading = self.leading.lock();
        let leader_end = self.log.log_end_offset();
        let Some(f) = leading.followers.get_mut(&follower) else {
            return Err(ApiError::new(
                vltava_protocol::ResponseError::NotLeaderOrFollower,
                format!(
                    "broker {follower} is not a replica of partition {} (replicas {:?})",
                    self.index, assignment.replicas
                ),
            ));
        };
        if f.broker_epoch != broker_epoch {
            let kept_caught_up = f.last_caught_up_ms;
            *f = Follower::new(now_ms);
            f.broker_epoch = broker_epoch;
            f.last_caught_up_ms = kept_caught_up;
        }
        if fetch_offset >= leader_end {
            f.last_caught_up_ms = now_ms;
        } else if f.leader_end_at_last_fetch >= 0 && fetch_offset >= f.leader_end_at_last_fetch {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end = fetch_offset.min(leader_end);
        f.log_start = follower_log_start;
        f.last_fetch_ms = now_ms;
        f.leader_end_at_last_fetch = leader_end;
        self.advance_leader_high_watermark(&assignment, &leading);
        Ok(())
    }

    /// The ISR this leader wants, if it differs from the committed one and
    /// no change is in flight: followers not caught up for longer than
    /// `lag_max_ms` leave it, and followers that reached the high watermark
    /// and this epoch's start join it. The change is then pending until the
    /// controller commits it (see [`Partition::set_assignment`]) or refuses
    /// it ([`Partition::isr_change_refused`]).
    pub fn wanted_isr_change(&self, now_ms: i64, lag_max_ms: i64) -> Option<IsrChange> {
        let assignment = self.assignment.read();
        if assignment.leader != self.node || !self.hosted {
            return None;
        }
        let mut leading = self.leading.lock();
        if let Some((_, since)) = &leading.pending_isr {
            if now_ms - since < PENDING_ISR_TIMEOUT_MS {
                return None;
            }
        }
        if now_ms < leading.retry_after_ms {
            return None;
        }
        let high_watermark = self.high_watermark();
        let mut isr: Vec<i32> = assignment
            .replicas
            .iter()
            .copied()
            .filter(|id| {
                if *id == self.node {
                    return true;
                }
                let Some(f) = leading.followers.get(id) else {
                    return false;
                };
                match assignment.isr.contains(id) {
                    true => now_ms - f.last_caught_up_ms <= lag_max_ms,
                    false => {
                        f.log_end >= 0
                            && f.log_end >= high_watermark
                            && f.log_end >= leading.epoch_start_offset
                    }
                }
            })
            .collect();
        // Members outside the replica list (none, normally) stay as they are.
        isr.extend(
            assignment
                .isr
                .iter()
                .filter(|id| !assignment.replicas.contains(id)),
        );
        let same: BTreeSet<i32> = isr.iter().copied().collect();
        if same == assignment.isr.iter().copied().collect::<BTreeSet<i32>>() {
            return None;
        }
        let joining = isr
            .iter()
            .filter(|id| !assignment.isr.contains(id))
            .filter_map(|id| leading.followers.get(id).map(|f| (*id, f.broker_epoch)))
            .collect();
        leading.pending_isr = Some((isr.clone(), now_ms));
        Some(IsrChange {
            leader_epoch: assignment.leader_epoch,
            partition_epoch: assignment.partition_epoch,
            isr,
            joining,
        })
    }

    /// The controller refused (or never answered) the pending ISR change.
    pub fn isr_change_refused(&self, now_ms: i64) {
        let assignment = self.assignment.read();
        let mut leading = self.leading.lock();
        leading.pending_isr = None;
        leading.retry_after_ms = now_ms + ISR_RETRY_BACKOFF_MS;
        if assignment.leader == self.node && self.hosted {
            self.advance_leader_high_watermark(&assignment, &leading);
        }
    }

    /// The in-sync followers of a partition this broker leads that have
    /// fetched in this leader epoch, with the log start and log end their
    /// latest fetch gave (where a consumer may be sent to read, KIP-392).
    /// Empty when this broker does not lead.
    pub fn in_sync_follower_logs(&self) -> Vec<(i32, i64, i64)> {
        let assignment = self.assignment.read();
        if assignment.leader != self.node {
            return Vec::new();
        }
        let leading = self.leading.lock();
        assignment
            .isr
            .iter()
            .filter_map(|id| {
                leading
                    .followers
                    .get(id)
                    .map(|f| (*id, f.log_start, f.log_end))
            })
            .filter(|(_, _, end)| *end >= 0)
            .collect()
    }

    /// The log end this broker's leader epoch began at, while the high
    /// watermark is still below it: a new leader learns how far the
    /// previous one committed only as its followers fetch, so until then
    /// its high watermark may be lower than one clients already saw, and
    /// answers that name it (ListOffsets) wait (Kafka's
    /// OFFSET_NOT_AVAILABLE). `None` when this broker does not lead or the
    /// high watermark has caught up.
    pub fn high_watermark_behind_epoch_start(&self) -> Option<i64> {
        let assignment = self.assignment.read();
        if assignment.leader != self.node {
            return None;
        }
        let start = self.leading.lock().epoch_start_offset;
        (start > self.high_watermark()).then_some(start)
    }

    /// Takes the topic's `min.insync.replicas` (at start and when the
    /// topic's config changes); a leader whose high watermark it held back
    /// moves it at once if it no longer does.
    pub fn set_min_insync(&self, min_insync: usize) {
        let min = min_insync.max(1);
        if self.min_insync.swap(min, Ordering::AcqRel) == min {
            return;
        }
        let assignment = self.assignment.read();
        if assignment.leader == self.node && self.hosted {
            let leading = self.leading.lock();
            self.advance_leader_high_watermark(&assignment, &leading);
        }
    }

    /// The in-sync replicas, counted for min.insync.replicas.
    pub fn isr_len(&self) -> usize {
        self.assignment.read().isr.len()
    }

    /// This broker's id.
    pub fn node(&self) -> i32 {
        self.node
    }

    fn assemble(
        dir: PathBuf,
        log: Log,
        topic_id: Uuid,
        index: i32,
        leader_epoch: i32,
        producers: ProducerStateMap,
    ) -> Partition {
        let high_watermark = AtomicI64::new(log.log_end_offset());
        Partition {
            topic_id,
            index,
            node: 0,
            assignment: RwLock::new(Assignment {
                leader: 0,
                leader_epoch,
                replicas: Vec::new(),
                isr: Vec::new(),
                partition_epoch: 0,
                elr: Vec::new(),
            }),
            leading: Mutex::new(LeaderState::default()),
            hosted: true,
            dir,
            log,
            leader_epoch: AtomicI32::new(leader_epoch),
            high_watermark,
            min_insync: AtomicUsize::new(1),
            writer: Mutex::new(producers),
            refused: Mutex::new(BTreeMap::new()),
            high_watermark_advanced: Notify::new(),
            log_end_advanced: Notify::new(),
            #[cfg(test)]
            hooks: tests::Hooks::default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    /// Moves the high watermark up to `offset` (never back: a lower
    /// offset leaves it where it is) and wakes the fetches and acks=all
    /// produces waiting on this partition.
    fn advance_high_watermark(&self, offset: i64) {
        // fetch_max: it only ever grows here, whatever order callers race
        // in. Only a follower truncating below it (after an unclean
        // election) lowers it, under the writer lock.
        let previous = self.high_watermark.fetch_max(offset, Ordering::AcqRel);
        if offset > previous {
            self.high_watermark_advanced.notify_waiters();
        }
    }

    /// Waits until the high watermark passes `appended` (every in-sync
    /// replica has it), for the group coordinator's writes. Fails with
    /// NOT_LEADER_OR_FOLLOWER if leadership moved meanwhile (a change of
    /// assignment wakes the wait) and REQUEST_TIMED_OUT after `timeout`.
    pub async fn wait_committed(
        &self,
        appended: &Appended,
        timeout: std::time::Duration,
    ) -> Result<(), ApiError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let advanced = self.high_watermark_advanced.notified();
            tokio::pin!(advanced);
            advanced.as_mut().enable();
            if !self.is_leader() || self.leader_epoch() != appended.leader_epoch {
                return Err(not_leader(self.index, self.leader()));
            }
            if self.high_watermark() > appended.last_offset {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, advanced).await.is_err() {
                let followers: Vec<(i32, i64)> = self
                    .leading
                    .lock()
                    .followers
                    .iter()
                    .map(|(id, f)| (*id, f.log_end))
                    .collect();
                return Err(ApiError::new(
                    vltava_protocol::ResponseError::RequestTimedOut,
                    format!(
                        "the in-sync replicas did not all have offset {} in time (high watermark {}, log end {}, followers' log ends {followers:?}, ISR {:?})",
                        appended.last_offset,
                        self.high_watermark(),
                        self.log_end_offset(),
                        self.assignment.read().isr
                    ),
                ));
            }
        }
    }

    /// Whether this broker still follows `term`'s leader at its epoch.
    fn follows(&self, term: FollowerTerm) -> Result<(), ApiError> {
        let a = self.assignment.read();
        match a.leader == term.leader && a.leader_epoch == term.leader_epoch && a.leader != self.node {
            true => Ok(()),
            false => Err(ApiError::new(
                vltava_protocol::ResponseError::NotLeaderOrFollower,
                format!(
                    "partition {} is now led by {} at epoch {}; an answer from {} at epoch {} is dropped",
                    self.index, a.leader, a.leader_epoch, term.leader, term.leader_epoch
                ),
            )),
        }
    }

    /// A follower learns its leader's high watermark and log start: its own
    /// high watermark is that, within its own log; its log start moves up to
    /// the leader's (records the leader deleted are deleted here too).
    pub fn follow_leader_offsets(
        &self,
        term: FollowerTerm,
        leader_high_watermark: i64,
        leader_log_start: i64,
    ) -> Result<(), ApiError> {
        let _writer = self.writer.lock();
        self.follows(term)?;
        self.advance_high_watermark(leader_high_watermark.min(self.log.log_end_offset()));
        if leader_log_start > self.log.log_start_offset()
            && leader_log_start <= self.log.log_end_offset()
        {
            self.log.delete_records_before(leader_log_start)?;
        }
        Ok(())
    }

    /// Notified when the high watermark moves.
    pub fn high_watermark_advanced(&self) -> &Notify {
        &self.high_watermark_advanced
    }

    /// Notified when the log end moves.
    pub fn log_end_advanced(&self) -> &Notify {
        &self.log_end_advanced
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Remembers that `header`'s batch was refused with `error` (retriable,
    /// nothing appended), so that its producer's next batch gets the same
    /// error rather than OUT_OF_ORDER_SEQUENCE_NUMBER (see `append`).
    pub fn note_refused(&self, header: &BatchHeader, error: ResponseError) {
        if header.producer_id < 0 || header.base_sequence < 0 {
            return;
        }
        let mut refused = self.refused.lock();
        if refused.len() >= REFUSED_PRODUCERS_MAX && !refused.contains_key(&header.producer_id) {
            // Bounded: forgetting only costs the old behaviour (an
            // out-of-order error) for those producers.
            refused.clear();
        }
        refused.insert(
            header.producer_id,
            Refused {
                epoch: header.producer_epoch,
                base_sequence: header.base_sequence,
                error,
            },
        );
    }

    /// Appends one validated batch, enforcing idempotent-producer sequences.
    pub fn append(
        &self,
        mut batch: BytesMut,
        header: &BatchHeader,
        log_append_time: bool,
        now_ms: i64,
    ) -> Result<Appended, ApiError> {
        let mut producers = self.writer.lock();
        // Held through the append: leadership cannot move in between, so
        // nothing is appended in an epoch this broker no longer leads.
        let assignment = self.assignment.read();
        if assignment.leader != self.node || !self.hosted {
            return Err(not_leader(self.index, assignment.leader));
        }
        // A batch whose predecessor was refused (not appended) with a
        // retriable error is out of order only because of that refusal.
        // OUT_OF_ORDER_SEQUENCE_NUMBER would make librdkafka bump its
        // producer epoch and renumber what it has in flight on every
        // partition, writing again batches that other leaders had appended
        // but not yet acknowledged: duplicates, found by the fault harness
        // (a full disk on a leader; an ISR growing back between two
        // pipelined batches). The predecessor's error is what this batch
        // gets instead: retriable, not persisted, so the producer retries
        // the two in order.
        let check = match producers.check(header) {
            Err(SequenceError::OutOfOrder { expected, received }) => {
                let refused = self.refused.lock().get(&header.producer_id).copied();
                return Err(match refused {
                    Some(r) if r.epoch == header.producer_epoch && r.base_sequence == expected => {
                        ApiError::new(
                            r.error,
                            format!(
                                "the batch before this one (sequence {expected}) was refused with {:?}; retry it first (this one starts at {received})",
                                r.error
                            ),
                        )
                    }
                    _ => SequenceError::OutOfOrder { expected, received }.into(),
                });
            }
            other => other?,
        };
        if let SequenceCheck::Duplicate {
            base_offset,
            timestamp_ms,
        } = check
        {
            return Ok(Appended {
                leader_epoch: assignment.leader_epoch,
                base_offset,
                last_offset: base_offset + i64::from(header.last_offset_delta),
                log_append_time_ms: timestamp_ms,
                log_start_offset: self.log.log_start_offset(),
                duplicate: true,
            });
        }
        let log_append_time_ms = if log_append_time {
            set_log_append_time(&mut batch, now_ms);
            now_ms
        } else {
            -1
        };
        let (info, flush_to) =
            match self
                .log
                .append_without_flush(batch, assignment.leader_epoch, now_ms)
            {
                // A refusal needs no clearing here: once its batch is in,
                // the expected sequence is past it and it matches nothing.
                Ok(appended) => appended,
                Err(e) => {
                    let e = ApiError::from(e);
                    if e.error == ResponseError::KafkaStorageError {
                        self.note_refused(header, e.error);
                    }
                    return Err(e);
                }
            };
        self.log_end_advanced.notify_waiters();
        producers.record(header, info.base_offset, log_append_time_ms);
        // Kafka's rule: a snapshot at every roll, so a restart replays at
        // most the active segment's headers. The state is taken under the
        // lock; the file (an fsync and a rename) is written after it.
        let snapshot = info
            .rolled
            .then(|| (info.last_offset + 1, producers.to_snapshot()));
        #[cfg(test)]
        self.hooks.before_publish();
        // Alone in the ISR, everything appended is committed; otherwise the
        // followers' fetches move the high watermark.
        self.advance_leader_high_watermark(&assignment, &self.leading.lock());
        let leader_epoch = assignment.leader_epoch;
        drop(assignment);
        drop(producers);
        if let Some((offset, payload)) = snapshot {
            // A failed snapshot costs only a longer replay at start-up.
            if let Err(e) = self.log.write_producer_snapshot(offset, &payload) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "producer snapshot not written");
            }
        }
        // The fsync the flush policy asks for (flush.messages) runs outside
        // the writer lock, so appends to this partition go on meanwhile and
        // one fsync covers every batch written before it started. The
        // producer is answered only once its batch is covered.
        if let Some(offset) = flush_to {
            self.log.flush_appended(offset, now_ms)?;
        }
        Ok(Appended {
            leader_epoch,
            base_offset: info.base_offset,
            last_offset: info.last_offset,
            log_append_time_ms,
            log_start_offset: info.log_start_offset,
            duplicate: false,
        })
    }

    /// Appends batches fetched from the leader, as the leader wrote them
    /// (offsets and epochs kept), and records their producers. `records`
    /// comes off the wire: each batch is checked whole (length, CRC) before
    /// anything is written, and a partial batch at the end (a leader may
    /// cut its answer mid-batch) is left for the next fetch. Returns the
    /// number of batches appended.
    pub fn append_replica(
        &self,
        term: FollowerTerm,
        records: &[u8],
        now_ms: i64,
    ) -> Result<usize, ApiError> {
        let mut batches = Vec::new();
        let mut at = 0usize;
        while records.len() - at >= vltava_record::BATCH_HEADER_BYTES {
            let Ok(header) = BatchHeader::parse(&records[at..]) else {
                break;
            };
            let Some(end) = at.checked_add(header.total_bytes()) else {
                break;
            };
            if end > records.len() {
                break;
            }
            let batch = &records[at..end];
            let header = vltava_record::validate_stored_batch(batch).map_err(|e| {
                ApiError::new(
                    vltava_protocol::ResponseError::CorruptMessage,
                    format!(
                        "batch fetched from the leader at offset {}: {e}",
                        header.base_offset
                    ),
                )
            })?;
            batches.push((BytesMut::from(batch), header));
            at = end;
        }
        let count = batches.len();
        let mut flush_to = None;
        let mut producers = self.writer.lock();
        self.follows(term)?;
        // A log reset to its leader's log start, which lies inside the
        // leader's first batch (DeleteRecords mid-batch): the log restarts
        // at that batch, as Kafka's follower does.
        if let Some((_, first)) = batches.first() {
            let end = self.log.log_end_offset();
            if first.base_offset < end
                && first.last_offset() >= end
                && self.log.log_start_offset() == end
            {
                self.log.reset_empty_at(first.base_offset, now_ms)?;
                *producers = ProducerStateMap::default();
            }
        }
        for (batch, header) in batches {
            let (info, flush) = self.log.append_replica(batch, now_ms)?;
            let timestamp = match header.is_log_append_time() {
                true => header.max_timestamp,
                false => -1,
            };
            producers.record(&header, header.base_offset, timestamp);
            if info.rolled {
                let payload = producers.to_snapshot();
                if let Err(e) = self.log.write_producer_snapshot(info.base_offset, &payload) {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "producer snapshot not written");
                }
            }
            flush_to = flush.or(flush_to);
        }
        drop(producers);
        if count > 0 {
            self.log_end_advanced.notify_waiters();
        }
        if let Some(offset) = flush_to {
            self.log.flush_appended(offset, now_ms)?;
        }
        Ok(count)
    }

    /// Reads from `offset` up to the log end, for a follower's fetch.
    pub fn read_replica(&self, offset: i64, max_bytes: usize) -> Result<ReadSlice, LogError> {
        self.log.read(offset, self.log.log_end_offset(), max_bytes)
    }

    /// Flushes the log and snapshots producer state at the log end, for a
    /// clean shutdown.
    pub fn close(&self) -> Result<(), LogError> {
        let producers = self.writer.lock();
        // Fenced whatever happens: once the broker records a clean
        // shutdown, no write may land after the final flush.
        let closed = self.log.close().and_then(|()| {
            self.log
                .write_producer_snapshot(self.log.log_end_offset(), &producers.to_snapshot())
        });
        self.log.fence();
        closed
    }

    /// Forgets idle producers (`producer.id.expiration.ms`).
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.writer.lock().expire(now_ms, expiration_ms)
    }

    /// Removes every batch from the one holding `offset` on, and rolls
    /// producer state back to match (what a follower's truncation does,
    /// without its checks).
    #[cfg(test)]
    pub(crate) fn truncate_to(&self, offset: i64) -> Result<(), ApiError> {
        let mut producers = self.writer.lock();
        self.log.truncate_to(offset)?;
        *producers = rebuild_producers(&self.log)?;
        let end = self.log.log_end_offset();
        if self.high_watermark() > end {
            // Only a follower truncates, and only above its high watermark
            // would it ever need to; on one replica this cannot happen.
            self.high_watermark.store(end, Ordering::Release);
        }
        Ok(())
    }

    /// A follower's truncation to where its log and its leader's agree
    /// (see [`Partition::truncate_to`]), if it still follows `term`. The
    /// high watermark comes down with the log only after an unclean
    /// election (committed data is never cut otherwise), logged.
    pub fn truncate_as_follower(&self, term: FollowerTerm, offset: i64) -> Result<(), ApiError> {
        let mut producers = self.writer.lock();
        self.follows(term)?;
        self.log.truncate_to(offset)?;
        *producers = rebuild_producers(&self.log)?;
        let end = self.log.log_end_offset();
        let high_watermark = self.high_watermark();
        if high_watermark > end {
            tracing::warn!(dir = %self.dir.display(), high_watermark, end,
                "truncated below the high watermark: the leader lacks records this replica counted as committed (an unclean election)");
            self.high_watermark.store(end, Ordering::Release);
        }
        Ok(())
    }

    /// Empties the log and restarts it at `offset` (a follower whose log
    /// ends before its leader's log start: what it has is gone at the
    /// leader). Producer state goes with the batches.
    pub fn reset_to(&self, term: FollowerTerm, offset: i64, now_ms: i64) -> Result<(), ApiError> {
        let mut producers = self.writer.lock();
        self.follows(term)?;
        self.log.truncate_fully_and_start_at(offset, now_ms)?;
        *producers = ProducerStateMap::default();
        drop(producers);
        self.advance_high_watermark(offset);
        Ok(())
    }

    /// Reads from `offset` up to the high watermark.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadSlice, LogError> {
        self.log.read(offset, self.high_watermark(), max_bytes)
    }

    /// DeleteRecords: `offset` -1 means the high watermark.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, ApiError> {
        let high_watermark = self.high_watermark();
        let target = if offset == -1 { high_watermark } else { offset };
        if target < 0 || target > high_watermark {
            return Err(ApiError::new(
                vltava_protocol::ResponseError::OffsetOutOfRange,
                format!(
                    "cannot delete records before {target}: the high watermark is {high_watermark}"
                ),
            ));
        }
        let _writer = self.writer.lock();
        Ok(self.log.delete_records_before(target)?)
    }
}

/// NOT_LEADER_OR_FOLLOWER, naming the leader.
pub fn not_leader(index: i32, leader: i32) -> ApiError {
    let message = match leader {
        -1 => format!("partition {index} has no leader at the moment"),
        _ => format!("This broker is not the leader of partition {index}; broker {leader} is"),
    };
    ApiError::new(vltava_protocol::ResponseError::NotLeaderOrFollower, message)
}

/// Producer state as of the log end: the newest snapshot, then the header
/// of every batch after it.
fn rebuild_producers(log: &Log) -> Result<ProducerStateMap, LogError> {
    let (mut producers, from) = match log.latest_producer_snapshot()? {
        Some((offset, payload)) => match ProducerStateMap::from_snapshot(&payload) {
            Ok(producers) => (producers, offset),
            Err(e) => {
                tracing::warn!(dir = %log.dir().display(), offset, error = %e,
                    "producer snapshot does not decode; rebuilding from the log start");
                (ProducerStateMap::default(), log.log_start_offset())
            }
        },
        None => (ProducerStateMap::default(), log.log_start_offset()),
    };
    log.for_each_batch_header(from, |header| {
        let timestamp = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            -1
        };
        producers.record(header, header.base_offset, timestamp);
    })?;
    Ok(producers)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use vltava_record::{validate_batch, BatchBuilder, Compression};

    use super::*;

    /// Test-only pause points inside `append`.
    #[derive(Default)]
    pub(crate) struct Hooks {
        before_publish: Mutex<Option<Box<dyn Fn() + Send>>>,
    }

    impl Hooks {
        /// Makes the next append call `hook` between writing its batch and
        /// publishing it (with the partition's writer lock held).
        pub(crate) fn pause_next_publish(&self, hook: Box<dyn Fn() + Send>) {
            *self.before_publish.lock() = Some(hook);
        }

        /// Runs the hook once (it is taken out, so later appends pass).
        pub(crate) fn before_publish(&self) {
            let hook = self.before_publish.lock().take();
            if let Some(hook) = hook {
                hook();
            }
        }
    }

    /// Many producers on one partition with `flush.messages=1` and a slow
    /// disk: each is answered only after an fsync that covers its batch,
    /// and fsyncs are shared rather than taken one after another under the
    /// partition's writer lock.
    #[test]
    fn concurrent_appends_share_fsyncs() {
        use vltava_log::storage::{FaultPlan, FaultyStorage};
        const PRODUCERS: usize = 8;
        const APPENDS: usize = 5;
        let dir = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        let config = LogConfig {
            flush_messages: 1,
            ..LogConfig::default()
        };
        let storage = Arc::new(FaultyStorage::new(plan.clone()));
        let log = Log::open_with_storage(&dir.path().join("t-0"), config, 0, storage).unwrap();
        let partition =
            Arc::new(Partition::from_log(dir.path().join("t-0"), log, Uuid::nil(), 0, 0).unwrap());
        plan.slow_syncs(Duration::from_millis(20));
        let syncs_before = plan.syncs();
        let threads: Vec<_> = (0..PRODUCERS)
            .map(|_| {
                let partition = partition.clone();
                std::thread::spawn(move || {
                    for _ in 0..APPENDS {
                        let appended = append_one(&partition);
                        // Answered only once an fsync covered the batch.
                        let flushed = partition.log().flushed_offset();
                        assert!(
                            flushed > appended.base_offset,
                            "{appended:?} answered with only {flushed} fsynced"
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let syncs = plan.syncs() - syncs_before;
        let appends = (PRODUCERS * APPENDS) as u64;
        assert_eq!(partition.log_end_offset(), appends as i64);
        assert!(
            syncs < appends,
            "{syncs} fsyncs for {appends} appends: none shared"
        );
        println!("{appends} appends, {syncs} fsyncs");
    }

    fn idempotent(sequence: i32) -> BytesMut {
        BatchBuilder::new(Compression::None)
            .producer(77, 0, sequence)
            .record(
                None,
                Some(Bytes::from(vec![b'x'; 400])),
                vec![],
                1_000 + i64::from(sequence),
            )
            .build()
    }

    fn append_idempotent(partition: &Partition, sequence: i32) -> Appended {
        try_append_idempotent(partition, sequence).unwrap()
    }

    fn try_append_idempotent(partition: &Partition, sequence: i32) -> Result<Appended, ApiError> {
        let batch = idempotent(sequence);
        let header = validate_batch(&batch).unwrap();
        partition.append(batch, &header, false, 1)
    }

    fn open_small_segments(dir: &Path) -> Partition {
        let config = LogConfig {
            segment_bytes: 2_000,
            ..LogConfig::default()
        };
        Partition::open(dir, "t", Uuid::nil(), 0, 0, config, 0).unwrap()
    }

    /// A retry of a batch that is several segments back, after a crash
    /// (no clean-shutdown snapshot): the roll snapshots must still know it.
    #[test]
    fn retries_are_recognised_across_rolls_and_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        {
            let partition = open_small_segments(dir.path());
            for sequence in 0..20 {
                assert_eq!(
                    append_idempotent(&partition, sequence).base_offset,
                    i64::from(sequence)
                );
            }
            assert!(partition.log().segment_count() > 4);
            // Dropped without close(): as after SIGKILL.
        }
        let snapshots = vltava_log::snapshot::list(&dir.path().join("t-0")).unwrap();
        assert!(!snapshots.is_empty(), "no snapshot written at a roll");
        let partition = open_small_segments(dir.path());
        // The last five batches are cached; a retry of each is a duplicate.
        for sequence in 15..20 {
            let again = append_idempotent(&partition, sequence);
            assert!(again.duplicate, "sequence {sequence} appended twice");
            assert_eq!(again.base_offset, i64::from(sequence));
        }
        assert_eq!(partition.log_end_offset(), 20);
        // And the sequence continues where it was.
        assert_eq!(append_idempotent(&partition, 20).base_offset, 20);
        let batch = idempotent(22);
        let header = validate_batch(&batch).unwrap();
        let gap = partition.append(batch, &header, false, 1).unwrap_err();
        assert_eq!(
            gap.error,
            vltava_protocol::ResponseError::OutOfOrderSequenceNumber
        );
    }

    /// Found by the fault harness (seed 1, a full disk on a leader): the
    /// batch after one that failed on the disk gets KAFKA_STORAGE_ERROR,
    /// not OUT_OF_ORDER_SEQUENCE_NUMBER (which makes librdkafka renumber
    /// its in-flight batches everywhere, writing duplicates), until the
    /// failed one is in.
    #[test]
    fn a_batch_after_a_failed_append_gets_the_storage_error() {
        use vltava_log::storage::{FaultPlan, FaultyStorage, Storage};
        use vltava_protocol::ResponseError;
        let dir = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        let storage: Arc<dyn Storage> = Arc::new(FaultyStorage::new(plan.clone()));
        let partition = Partition::open_with_storage(
            &storage,
            dir.path(),
            "t",
            Uuid::nil(),
            0,
            0,
            LogConfig::default(),
            0,
        )
        .unwrap();
        append_idempotent(&partition, 0);
        let append = |sequence| try_append_idempotent(&partition, sequence);
        plan.disk_full(true);
        assert_eq!(
            append(1).unwrap_err().error,
            ResponseError::KafkaStorageError
        );
        assert_eq!(
            append(2).unwrap_err().error,
            ResponseError::KafkaStorageError
        );
        plan.disk_full(false);
        // Space again, but nothing appended since: still the storage error.
        refused_then_in_order(&partition, ResponseError::KafkaStorageError);
    }

    /// Found by the fault harness: NOT_ENOUGH_REPLICAS for one batch and
    /// then OUT_OF_ORDER_SEQUENCE_NUMBER for the next (the ISR grew back
    /// in between) made librdkafka renumber its batches (duplicates). The
    /// next batch gets the refusal's error until the refused one is in.
    #[test]
    fn a_batch_after_a_refused_one_gets_its_error() {
        use vltava_protocol::ResponseError;
        let dir = tempfile::tempdir().unwrap();
        let partition =
            Partition::open(dir.path(), "t", Uuid::nil(), 0, 0, LogConfig::default(), 0).unwrap();
        append_idempotent(&partition, 0);
        let refused = validate_batch(&idempotent(1)).unwrap();
        partition.note_refused(&refused, ResponseError::NotEnoughReplicas);
        refused_then_in_order(&partition, ResponseError::NotEnoughReplicas);
    }

    /// Sequence 1 was refused with `error`: sequence 2 gets it too, then
    /// both go in, in order, and a real gap is a gap again.
    fn refused_then_in_order(partition: &Partition, error: vltava_protocol::ResponseError) {
        let append = |sequence| try_append_idempotent(partition, sequence);
        assert_eq!(append(2).unwrap_err().error, error);
        assert_eq!(append(1).unwrap().base_offset, 1);
        assert_eq!(append(2).unwrap().base_offset, 2);
        assert_eq!(
            append(4).unwrap_err().error,
            vltava_protocol::ResponseError::OutOfOrderSequenceNumber
        );
    }

    #[test]
    fn truncation_rolls_producer_state_back() {
        let dir = tempfile::tempdir().unwrap();
        let partition = open_small_segments(dir.path());
        for sequence in 0..12 {
            append_idempotent(&partition, sequence);
        }
        partition.truncate_to(8).unwrap();
        assert_eq!(partition.log_end_offset(), 8);
        // Sequence 8 is new again (it was truncated away), 7 a duplicate.
        assert!(append_idempotent(&partition, 7).duplicate);
        let next = append_idempotent(&partition, 8);
        assert_eq!((next.duplicate, next.base_offset), (false, 8));
    }

    #[test]
    fn idle_producers_expire() {
        let dir = tempfile::tempdir().unwrap();
        let partition = open_small_segments(dir.path());
        append_idempotent(&partition, 0);
        // Its batch's timestamp is 1000: not expired at 1000 + 500 with a
        // 1000 ms expiration, expired at 1000 + 1001.
        assert_eq!(partition.expire_producers(1_500, 1_000), 0);
        assert_eq!(partition.expire_producers(2_001, 1_000), 1);
        // An expired producer may start again anywhere.
        assert!(!append_idempotent(&partition, 0).duplicate);
    }

    fn append_one(partition: &Partition) -> Appended {
        let batch = BatchBuilder::new(Compression::None)
            .record(None, Some(Bytes::from_static(b"v")), vec![], 1)
            .build();
        let header = validate_batch(&batch).unwrap();
        partition.append(batch, &header, false, 1).unwrap()
    }

    /// KIP-966's strict rule: a leader whose ISR is below
    /// min.insync.replicas holds its high watermark where it is, however
    /// far its log runs ahead; a lowered setting releases it at once.
    #[test]
    fn an_isr_below_min_insync_holds_the_high_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let partition =
            Partition::open(dir.path(), "t", Uuid::nil(), 0, 0, LogConfig::default(), 0).unwrap();
        partition.set_min_insync(2);
        let assignment = Assignment {
            leader: 1,
            leader_epoch: 0,
            replicas: vec![1, 2, 3],
            isr: vec![1],
            partition_epoch: 0,
            elr: vec![2, 3],
        };
        let partition = partition.placed(1, assignment, 0);
        append_one(&partition);
        append_one(&partition);
        assert_eq!(
            (partition.log_end_offset(), partition.high_watermark()),
            (2, 0)
        );
        partition.set_min_insync(1);
        assert_eq!(partition.high_watermark(), 2);
    }

    /// Node 1 leading replicas [1, 2] with two records (timestamp 1)
    /// appended in epoch 0 before follower 2 fetched (high watermark 0),
    /// then placed again in epoch 1, which began at offset 2: a new
    /// leader whose high watermark is behind its epoch's start. Also the
    /// assignment it was placed with.
    pub(crate) fn new_leader_behind(dir: &std::path::Path) -> (Partition, Assignment) {
        let partition =
            Partition::open(dir, "t", Uuid::nil(), 0, 0, LogConfig::default(), 0).unwrap();
        let mut assignment = Assignment {
            leader: 1,
            leader_epoch: 0,
            replicas: vec![1, 2],
            isr: vec![1, 2],
            partition_epoch: 0,
            elr: Vec::new(),
        };
        let partition = partition.placed(1, assignment.clone(), 0);
        append_one(&partition);
        append_one(&partition);
        // Follower 2 has not fetched: the high watermark stays at 0, and
        // epoch 0 began at 0, so nothing is behind it.
        assert_eq!(partition.high_watermark(), 0);
        assert_eq!(partition.high_watermark_behind_epoch_start(), None);
        assignment.leader_epoch = 1;
        partition.set_assignment(assignment.clone(), 0);
        (partition, assignment)
    }

    #[test]
    fn a_new_leader_reports_its_high_watermark_behind_the_epoch_start_until_followers_fetch() {
        let dir = tempfile::tempdir().unwrap();
        let (partition, mut assignment) = new_leader_behind(dir.path());
        assert_eq!(partition.high_watermark_behind_epoch_start(), Some(2));
        partition.record_follower_fetch(2, 0, 2, 0, 0).unwrap();
        assert_eq!(partition.high_watermark(), 2);
        assert_eq!(partition.high_watermark_behind_epoch_start(), None);
        // A follower never reports it.
        assignment.leader = 2;
        assignment.leader_epoch = 2;
        partition.set_assignment(assignment, 0);
        assert_eq!(partition.high_watermark_behind_epoch_start(), None);
    }

    /// Two appends race: the first is held between writing its batch and
    /// publishing its high watermark while the second tries to append. The
    /// second must not publish first, or the first would then move the
    /// high watermark back over the second's acknowledged record.
    #[test]
    fn a_slow_publisher_never_moves_the_high_watermark_back() {
        let dir = tempfile::tempdir().unwrap();
        let partition = Arc::new(
            Partition::open(dir.path(), "t", Uuid::nil(), 0, 0, LogConfig::default(), 0).unwrap(),
        );
        let (paused_tx, paused_rx) = mpsc::channel::<()>();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let go_rx = Mutex::new(go_rx);
        *partition.hooks.before_publish.lock() = Some(Box::new(move || {
            let _ = paused_tx.send(());
            let _ = go_rx.lock().recv();
        }));

        let first = {
            let partition = partition.clone();
            std::thread::spawn(move || append_one(&partition))
        };
        paused_rx.recv().unwrap();
        let second = {
            let partition = partition.clone();
            std::thread::spawn(move || append_one(&partition))
        };
        // Give the second append every chance to overtake: wait until it
        // finished or a deadline passed (it cannot finish while the first
        // holds the writer lock).
        let deadline = Instant::now() + Duration::from_millis(300);
        while !second.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        // With the old ordering the second append finished (and published)
        // while the first was paused.
        let overtook = second.is_finished();
        go_tx.send(()).unwrap();
        let offsets = [first.join().unwrap(), second.join().unwrap()].map(|a| a.base_offset);
        assert!(
            !overtook,
            "an append completed while an earlier one had not published"
        );
        assert_eq!(offsets, [0, 1]);
        assert_eq!(partition.log_end_offset(), 2);
        assert_eq!(partition.high_watermark(), 2);
    }
}
