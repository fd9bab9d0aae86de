//! Log compaction: Kafka's log cleaner for one partition's log.
//!
//! A pass ([`Log::clean`]) keeps the latest record of every key in the
//! closed segments and drops the rest, preserving offsets. It follows
//! Kafka's `LogCleaner` (the semantics are spelled out in
//! `docs/log-format.md`, *Compaction*):
//!
//! - The *cleaner checkpoint* is the offset below which the log was cleaned
//!   before. `[checkpoint, first uncleanable)` is the dirty range; the first
//!   uncleanable offset is the active segment's base, or the base of the
//!   first closed segment whose newest record is younger than
//!   `min.compaction.lag.ms`.
//! - A pass runs when the dirty share of the closed segments' bytes is at
//!   least `min.cleanable.dirty.ratio`, when a dirty segment's first batch is
//!   older than `max.compaction.lag.ms`, or when a retained tombstone's
//!   `delete.retention.ms` has run out.
//! - The offset map (key hash → latest offset) is built from the dirty range,
//!   batch by batch, until it would exceed its capacity
//!   (`log.cleaner.dedupe.buffer.size`); the pass then cleans up to where the
//!   map got and the checkpoint moves there.
//! - Every closed segment below that offset is rewritten, in groups that fit
//!   one segment, keeping a record unless a later offset for its key is in
//!   the map, it has no key, or it is an expired tombstone.
//! - Cleaned groups are swapped in one at a time with Kafka's
//!   `.cleaned` → `.swap` → rename protocol; recovery finishes a swap whose
//!   `.log.swap` exists and discards one that has only `.cleaned` files.
//!
//! I/O is bounded by a token bucket over bytes read and written
//! ([`Throttler`]) and memory by the map's capacity.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasherDefault, DefaultHasher, Hasher};
use std::io;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use parking_lot::Mutex;
use vltava_record::{BatchHeader, Record, BATCH_HEADER_BYTES};

use crate::segment::{self, Segment, SegmentState};
use crate::{
    delete_segment_files, for_each_batch, open_closed_segment, sync_dir, write_durably, Log,
    LogError,
};

/// Per-partition file holding the cleaner checkpoint.
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// Bytes Kafka charges one offset-map entry (a 16-byte MD5 and an 8-byte
/// offset); the capacity is computed the same way.
pub const OFFSET_MAP_ENTRY_BYTES: u64 = 24;
/// Kafka's `log.cleaner.io.buffer.load.factor` default.
const OFFSET_MAP_LOAD_FACTOR: f64 = 0.9;

/// The topic configs that steer compaction of one log (Kafka's names).
#[derive(Debug, Clone, PartialEq)]
pub struct CleanConfig {
    /// `delete.retention.ms`: how long a tombstone outlives its first
    /// cleaning.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this are not cleaned.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a dirty segment older than this forces a
    /// pass whatever the dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
}

impl Default for CleanConfig {
    fn default() -> CleanConfig {
        CleanConfig {
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
        }
    }
}

/// Time as the throttler sees it, injectable for tests.
pub trait ThrottleTime: Send {
    /// A monotonic reading.
    fn now(&self) -> Duration;
    fn sleep(&mut self, duration: Duration);
}

/// The real monotonic clock and `thread::sleep`.
pub struct RealTime(Instant);

impl ThrottleTime for RealTime {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }

    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// A token bucket over bytes (`log.cleaner.io.max.bytes.per.second`): it
/// holds at most one second's worth and refills at the rate; taking more
/// than it holds sleeps until the debt is paid. Every batch a pass reads or
/// writes goes through it, so it is also where a pass notices a stop
/// request.
pub struct Throttler {
    bytes_per_second: f64,
    tokens: f64,
    last: Duration,
    time: Box<dyn ThrottleTime>,
    slept: Duration,
    stop: Arc<AtomicBool>,
}

impl Throttler {
    /// Changes the rate (a dynamic `log.cleaner.io.max.bytes.per.second`);
    /// not positive and finite means no limit.
    pub fn set_rate(&mut self, bytes_per_second: f64) {
        let limited = bytes_per_second.is_finite() && bytes_per_second > 0.0;
        self.bytes_per_second = if limited { bytes_per_second } else { 0.0 };
        self.tokens = self.tokens.min(self.bytes_per_second);
    }

    /// `bytes_per_second` that is not positive and finite means no limit
    /// (Kafka's default is `Double.MAX_VALUE`).
    pub fn new(bytes_per_second: f64) -> Throttler {
        Throttler::with_time(bytes_per_second, Box::new(RealTime(Instant::now())))
    }

    pub fn with_time(bytes_per_second: f64, time: Box<dyn ThrottleTime>) -> Throttler {
        let limited = bytes_per_second.is_finite() && bytes_per_second > 0.0;
        let bytes_per_second = if limited { bytes_per_second } else { 0.0 };
        Throttler {
            bytes_per_second,
            tokens: bytes_per_second,
            last: time.now(),
            time,
            slept: Duration::ZERO,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Setting this flag makes the running pass (and every later one) fail
    /// with `ErrorKind::Interrupted` at its next batch, leaving the log as a
    /// crash there would (for shutdown).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    pub fn unlimited() -> Throttler {
        Throttler::new(f64::INFINITY)
    }

    /// Accounts for `bytes` of I/O, sleeping if over the rate. Fails once
    /// the stop flag is set.
    pub fn throttle(&mut self, bytes: usize) -> io::Result<()> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "log cleaner stopped",
            ));
        }
        if self.bytes_per_second == 0.0 {
            return Ok(());
        }
        let now = self.time.now();
        let refill = now.saturating_sub(self.last).as_secs_f64() * self.bytes_per_second;
        self.last = now;
        self.tokens = (self.tokens + refill).min(self.bytes_per_second) - bytes as f64;
        if self.tokens < 0.0 {
            let wait = Duration::from_secs_f64(-self.tokens / self.bytes_per_second);
            self.time.sleep(wait);
            self.slept += wait;
            self.last = self.time.now();
            self.tokens = 0.0;
        }
        Ok(())
    }

    /// Total time spent sleeping so far.
    pub fn slept(&self) -> Duration {
        self.slept
    }
}

/// The passes' shared resources: the offset map (reused across logs) and
/// the I/O throttle. One per broker, as Kafka's single cleaner thread.
pub struct Cleaner {
    map: OffsetMap,
    map_capacity: usize,
    throttler: Throttler,
}

type OffsetMap = HashMap<u128, i64, BuildHasherDefault<PreHashed>>;

impl Cleaner {
    /// The throttle, to change its rate between passes.
    pub fn throttler_mut(&mut self) -> &mut Throttler {
        &mut self.throttler
    }

    /// `dedupe_buffer_bytes` is `log.cleaner.dedupe.buffer.size`.
    pub fn new(dedupe_buffer_bytes: u64, throttler: Throttler) -> Cleaner {
        let slots = dedupe_buffer_bytes / OFFSET_MAP_ENTRY_BYTES;
        let map_capacity = ((slots as f64 * OFFSET_MAP_LOAD_FACTOR) as usize).max(1);
        Cleaner {
            map: OffsetMap::default(),
            map_capacity,
            throttler,
        }
    }

    /// Keys the offset map holds at most.
    pub fn map_capacity(&self) -> usize {
        self.map_capacity
    }

    pub fn throttler(&self) -> &Throttler {
        &self.throttler
    }

    /// See [`Throttler::stop_flag`].
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.throttler.stop_flag()
    }
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanSummary {
    /// Start of the dirty range (the old checkpoint, or the log start).
    pub first_dirty_offset: i64,
    /// The new checkpoint.
    pub clean_offset: i64,
    /// True when the offset map filled before the dirty range ended.
    pub map_full: bool,
    pub segments_read: usize,
    pub segments_written: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_removed: u64,
}

/// The persisted progress of the cleaner on one log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checkpoint {
    /// Offsets below this were in the offset map of an earlier pass; -1
    /// when the log was never cleaned.
    clean_offset: i64,
    /// Earliest time a retained tombstone may be removed; -1 for none.
    tombstone_due_ms: i64,
}

/// Lives in [`Log`]: the checkpoint, the lock serialising passes, and a
/// truncation counter so a pass never publishes a checkpoint over offsets
/// that were truncated and rewritten while it ran.
pub(crate) struct CleanerState {
    /// Held for the whole pass, outside the writer mutex.
    pub(crate) pass: Mutex<()>,
    /// Short critical sections only; taken after the writer mutex.
    checkpoint: Mutex<Checkpoint>,
    truncations: AtomicU64,
}

impl CleanerState {
    pub(crate) fn open(dir: &Path) -> Result<CleanerState, LogError> {
        let path = dir.join(CLEANER_CHECKPOINT_FILE);
        let mut checkpoint = Checkpoint {
            clean_offset: -1,
            tombstone_due_ms: -1,
        };
        match fs::read_to_string(&path) {
            Ok(text) => {
                let mut fields = text.split_whitespace().map(str::parse::<i64>);
                match (fields.next(), fields.next()) {
                    (Some(Ok(offset)), Some(Ok(due))) => {
                        checkpoint = Checkpoint {
                            clean_offset: offset,
                            tombstone_due_ms: due,
                        };
                    }
                    // Only ever replaced by rename: this is outside damage.
                    // Starting from scratch is safe, merely slower.
                    _ => {
                        tracing::warn!(file = %path.display(), "ignoring unreadable cleaner checkpoint")
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        Ok(CleanerState {
            pass: Mutex::new(()),
            checkpoint: Mutex::new(checkpoint),
            truncations: AtomicU64::new(0),
        })
    }

    /// The state of an offline log: never cleaned, nothing read from disk.
    pub(crate) fn offline() -> CleanerState {
        CleanerState {
            pass: Mutex::new(()),
            checkpoint: Mutex::new(Checkpoint {
                clean_offset: -1,
                tombstone_due_ms: -1,
            }),
            truncations: AtomicU64::new(0),
        }
    }

    /// Called by `truncate_to` (writer mutex held) with the new log end.
    pub(crate) fn on_truncate(&self, dir: &Path, end: i64) -> io::Result<()> {
        self.truncations.fetch_add(1, Ordering::AcqRel);
        let mut checkpoint = self.checkpoint.lock();
        if checkpoint.clean_offset > end {
            checkpoint.clean_offset = end;
            write_checkpoint(dir, &checkpoint)?;
        }
        Ok(())
    }

    /// The cleaner checkpoint, -1 if the log was never cleaned.
    pub(crate) fn clean_offset(&self) -> i64 {
        self.checkpoint.lock().clean_offset
    }
}

fn write_checkpoint(dir: &Path, checkpoint: &Checkpoint) -> io::Result<()> {
    let text = format!(
        "{} {}\n",
        checkpoint.clean_offset, checkpoint.tombstone_due_ms
    );
    write_durably(dir, CLEANER_CHECKPOINT_FILE, text.as_bytes())
}

/// What a pass will do.
struct Plan {
    first_dirty: i64,
    first_uncleanable: i64,
    /// False for a pass that only removes expired tombstones.
    build_map: bool,
}

/// Per-group inputs of the record filter.
struct Filter<'a> {
    map: &'a OffsetMap,
    producers: &'a HashMap<i64, i64>,
    first_dirty: i64,
    end_offset: i64,
    now_ms: i64,
    delete_retention_ms: i64,
    group_mtime_ms: i64,
}

/// One closed segment and the base of the segment after it.
type Source = (Arc<Segment>, i64);

/// A cleaned group written to `.cleaned` files, not yet swapped in.
struct Cleaned {
    base: i64,
    next_base: i64,
    tombstone_due_ms: Option<i64>,
}

impl Log {
    /// The cleaner checkpoint: offsets below it have been compacted at least
    /// once. -1 if the log was never cleaned.
    pub fn cleaner_checkpoint(&self) -> i64 {
        self.cleaner_state.clean_offset()
    }

    /// One compaction pass if one is due (see the module docs). Returns
    /// `None` when nothing was due, another pass is running on this log, or
    /// the segments changed under the pass (retention, truncation), in which
    /// case the next pass starts over. Appends and reads go on meanwhile;
    /// only the swap of each cleaned group takes the writer mutex.
    ///
    /// Nothing at or above `high_watermark` is cleaned: the segment holding
    /// it and every later one are left as written, since records there are
    /// not yet committed and a follower may still truncate them.
    pub fn clean(
        &self,
        cleaner: &mut Cleaner,
        config: &CleanConfig,
        high_watermark: i64,
        now_ms: i64,
    ) -> Result<Option<CleanSummary>, LogError> {
        let Some(_pass) = self.cleaner_state.pass.try_lock() else {
            return Ok(None);
        };
        self.check_not_failed()?;
        let truncations = self.cleaner_state.truncations.load(Ordering::Acquire);
        let segments = self.snapshot();
        let checkpoint = *self.cleaner_state.checkpoint.lock();
        let Some(plan) = self.plan(&segments, &checkpoint, config, high_watermark, now_ms)? else {
            return Ok(None);
        };
        let mut summary = CleanSummary {
            first_dirty_offset: plan.first_dirty,
            ..CleanSummary::default()
        };
        cleaner.map.clear();
        let end_offset = if plan.build_map {
            let (end, full) = build_offset_map(self, &segments, &plan, cleaner, &mut summary)?;
            if end == plan.first_dirty {
                tracing::warn!(dir = %self.dir.display(), capacity = cleaner.map_capacity,
                    "log.cleaner.dedupe.buffer.size too small for one batch; not cleaning");
                return Ok(None);
            }
            summary.map_full = full;
            end
        } else {
            plan.first_dirty
        };
        let producers = last_batch_of_each_producer(&segments)?;
        let log_start = self.log_start_offset();
        let sources: Vec<Source> = segments
            .windows(2)
            .filter(|w| w[0].base_offset < end_offset && w[1].base_offset > log_start)
            .map(|w| (Arc::clone(&w[0]), w[1].base_offset))
            .collect();
        let mut due: Option<i64> = None;
        for group in group_segments(sources, self.config().segment_bytes, plan.first_dirty) {
            let filter = Filter {
                map: &cleaner.map,
                producers: &producers,
                first_dirty: plan.first_dirty,
                end_offset,
                now_ms,
                delete_retention_ms: config.delete_retention_ms,
                group_mtime_ms: group_mtime_ms(&group, plan.first_dirty, now_ms)?,
            };
            let cleaned =
                self.write_cleaned(&group, &filter, &mut cleaner.throttler, &mut summary)?;
            due = min_some(due, cleaned.tombstone_due_ms);
            if !self.swap_in(&group, &cleaned)? {
                return Ok(None);
            }
            summary.segments_read += group.len();
            summary.segments_written += 1;
        }
        summary.clean_offset = end_offset;
        self.publish_checkpoint(end_offset, due, truncations)?;
        Ok(Some(summary))
    }

    /// Decides whether a pass is due and over which range.
    fn plan(
        &self,
        segments: &[Arc<Segment>],
        checkpoint: &Checkpoint,
        config: &CleanConfig,
        high_watermark: i64,
        now_ms: i64,
    ) -> Result<Option<Plan>, LogError> {
        let Some(active) = segments.last().filter(|_| segments.len() > 1) else {
            return Ok(None);
        };
        let log_start = self.log_start_offset();
        let in_range = (log_start..=self.log_end_offset()).contains(&checkpoint.clean_offset);
        let first_dirty = if in_range {
            checkpoint.clean_offset
        } else {
            log_start
        };
        let mut first_uncleanable = active.base_offset;
        let holding_high_watermark = segments
            .windows(2)
            .find(|w| w[1].base_offset > high_watermark);
        if let Some(w) = holding_high_watermark {
            first_uncleanable = first_uncleanable.min(w[0].base_offset);
        }
        if config.min_compaction_lag_ms > 0 {
            let horizon = now_ms.saturating_sub(config.min_compaction_lag_ms);
            let young = segments.windows(2).find(|w| {
                w[1].base_offset > first_dirty && w[0].state.read().max_timestamp > horizon
            });
            if let Some(w) = young {
                first_uncleanable = w[0].base_offset;
            }
        }
        let first_uncleanable = first_uncleanable.max(first_dirty);
        let (mut clean_bytes, mut dirty_bytes) = (0u64, 0u64);
        let mut earliest_dirty_ms = i64::MAX;
        for w in segments.windows(2) {
            let (segment, next_base) = (&w[0], w[1].base_offset);
            if next_base <= log_start {
                continue;
            }
            if next_base <= first_dirty {
                clean_bytes += segment.size();
            } else if segment.base_offset < first_uncleanable {
                dirty_bytes += segment.size();
                if let Some(header) = segment.header_at(0, segment.size())? {
                    if header.max_timestamp >= 0 {
                        earliest_dirty_ms = earliest_dirty_ms.min(header.max_timestamp);
                    }
                }
            }
        }
        let ratio = if dirty_bytes == 0 {
            0.0
        } else {
            dirty_bytes as f64 / (clean_bytes + dirty_bytes) as f64
        };
        let overdue = earliest_dirty_ms != i64::MAX
            && now_ms.saturating_sub(earliest_dirty_ms) > config.max_compaction_lag_ms;
        let build_map = dirty_bytes > 0 && (ratio >= config.min_cleanable_dirty_ratio || overdue);
        let tombstones_due =
            checkpoint.tombstone_due_ms >= 0 && now_ms >= checkpoint.tombstone_due_ms;
        if !build_map && !tombstones_due {
            return Ok(None);
        }
        tracing::debug!(dir = %self.dir.display(), first_dirty, first_uncleanable, ratio,
            overdue, tombstones_due, "cleaning");
        Ok(Some(Plan {
            first_dirty,
            first_uncleanable,
            build_map,
        }))
    }

    /// Writes `<base>.log.cleaned` and its indexes for one group.
    fn write_cleaned(
        &self,
        group: &[Source],
        filter: &Filter<'_>,
        throttler: &mut Throttler,
        summary: &mut CleanSummary,
    ) -> Result<Cleaned, LogError> {
        let base = group[0].0.base_offset;
        let next_base = group[group.len() - 1].1;
        let index_interval_bytes = self.config().index_interval_bytes;
        let file = create(&segment::file_path(&self.dir, base, "log.cleaned"))?;
        let mut state = SegmentState::empty(base);
        let mut due = None;
        for (source, _) in group {
            let expired =
                mtime_ms(&source.file)?.saturating_add(filter.delete_retention_ms) <= filter.now_ms;
            for_each_batch(source, source.base_offset, i64::MAX, |position, header| {
                // A log closed for deletion stops here: its directory may be
                // renamed, and its name taken by a new topic, at any moment.
                self.check_not_failed()?;
                let batch = source.batch_at(position, header)?;
                throttler.throttle(batch.len())?;
                summary.bytes_read += batch.len() as u64;
                let kept = filter_batch(&batch, header, filter, expired, summary, &mut due)?;
                let Some(kept) = kept else {
                    return Ok(ControlFlow::Continue(()));
                };
                let bytes: &[u8] = kept.as_deref().unwrap_or(&batch);
                // Paired with recovery's check: never write a batch that
                // would not read back.
                let written = vltava_record::validate_stored_batch(bytes)
                    .unwrap_or_else(|e| panic!("cleaner produced an invalid batch: {e}"));
                assert!(written.base_offset >= header.base_offset);
                assert_eq!(written.last_offset(), header.last_offset());
                file.write_all_at(bytes, state.size)?;
                throttler.throttle(bytes.len())?;
                summary.bytes_written += bytes.len() as u64;
                let position = state.size;
                state.on_batch(base, position, &written, index_interval_bytes);
                Ok(ControlFlow::Continue(()))
            })?;
        }
        state.maybe_time_entry(base);
        let (offsets, times) = state.index_bytes();
        for (suffix, bytes) in [("index.cleaned", offsets), ("timeindex.cleaned", times)] {
            let index = create(&segment::file_path(&self.dir, base, suffix))?;
            index.write_all_at(&bytes, 0)?;
            index.sync_all()?;
        }
        // The mtime says when the group's tombstones were first cleaned (see
        // `group_mtime_ms`); set it after the last write.
        file.set_modified(system_time(filter.group_mtime_ms))?;
        file.sync_all()?;
        sync_dir(&self.dir)?;
        self.maybe_crash(1)?;
        Ok(Cleaned {
            base,
            next_base,
            tombstone_due_ms: due,
        })
    }

    /// Swaps a cleaned group in under the writer mutex. Returns false (and
    /// discards the cleaned files) if the group's segments are no longer
    /// exactly those in the log.
    fn swap_in(&self, group: &[Source], cleaned: &Cleaned) -> Result<bool, LogError> {
        let _writer = self.writer.lock();
        self.check_not_failed()?;
        let at = {
            let segments = self.segments.read();
            segments
                .iter()
                .position(|s| Arc::ptr_eq(s, &group[0].0))
                .filter(|&at| {
                    at + group.len() < segments.len()
                        && group
                            .iter()
                            .zip(&segments[at..])
                            .all(|((g, _), s)| Arc::ptr_eq(g, s))
                })
        };
        let Some(at) = at else {
            tracing::info!(dir = %self.dir.display(), "segments changed during cleaning; retrying later");
            for suffix in ["log.cleaned", "index.cleaned", "timeindex.cleaned"] {
                remove_if_exists(&segment::file_path(&self.dir, cleaned.base, suffix))?;
            }
            return Ok(false);
        };
        self.swap_files(group, cleaned.base)
            .map_err(|e| self.fail("cleaner swap", e))?;
        let config = self.config();
        let (segment, _rebuilt) = open_closed_segment(
            &self.storage,
            &self.dir,
            cleaned.base,
            cleaned.next_base,
            &config,
        )
        .map_err(|e| match e {
            LogError::Io(e) => self.fail("cleaner swap", e),
            other => other,
        })?;
        self.segments
            .write()
            .splice(at..at + group.len(), [Arc::new(segment)]);
        for (source, _) in group {
            for suffix in ["log.deleted", "index.deleted", "timeindex.deleted"] {
                remove_if_exists(&segment::file_path(&self.dir, source.base_offset, suffix))?;
            }
        }
        Ok(true)
    }

    /// The renames of the swap protocol, each phase made durable before the
    /// next (the crash argument is in `docs/log-format.md`).
    fn swap_files(&self, group: &[Source], base: i64) -> io::Result<()> {
        let path = |base: i64, suffix: &str| segment::file_path(&self.dir, base, suffix);
        let mut step = 1;
        // 1. Commit: `.cleaned` → `.swap`, the log file last. A `.log.swap`
        //    means the cleaned segment is complete and replaces the group.
        for suffix in ["index", "timeindex", "log"] {
            fs::rename(
                path(base, &format!("{suffix}.cleaned")),
                path(base, &format!("{suffix}.swap")),
            )?;
            step += 1;
            self.maybe_crash(step)?;
        }
        sync_dir(&self.dir)?;
        // 2. The group's old files become `.deleted`.
        for (source, _) in group {
            for suffix in ["log", "index", "timeindex"] {
                let from = path(source.base_offset, suffix);
                match fs::rename(
                    &from,
                    path(source.base_offset, &format!("{suffix}.deleted")),
                ) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                step += 1;
                self.maybe_crash(step)?;
            }
        }
        sync_dir(&self.dir)?;
        // 3. `.swap` → final names, the log file last.
        for suffix in ["index", "timeindex", "log"] {
            fs::rename(path(base, &format!("{suffix}.swap")), path(base, suffix))?;
            step += 1;
            self.maybe_crash(step)?;
        }
        sync_dir(&self.dir)
    }

    /// Publishes the new checkpoint unless the log was truncated meanwhile.
    fn publish_checkpoint(
        &self,
        clean_offset: i64,
        tombstone_due_ms: Option<i64>,
        truncations: u64,
    ) -> Result<(), LogError> {
        let _writer = self.writer.lock();
        if self.cleaner_state.truncations.load(Ordering::Acquire) != truncations {
            return Ok(());
        }
        let mut checkpoint = self.cleaner_state.checkpoint.lock();
        let next = Checkpoint {
            clean_offset,
            tombstone_due_ms: tombstone_due_ms.unwrap_or(-1),
        };
        write_checkpoint(&self.dir, &next).map_err(|e| self.fail("cleaner checkpoint write", e))?;
        *checkpoint = next;
        Ok(())
    }

    /// Test hook: fails the pass after the `step`-th durable change (1 =
    /// cleaned files written, then one step per rename), leaving the files
    /// as a crash there would.
    #[cfg(test)]
    fn maybe_crash(&self, step: u8) -> io::Result<()> {
        if self.crash_swap_after_step.load(Ordering::SeqCst) == step {
            return Err(io::Error::other(format!(
                "injected crash after step {step}"
            )));
        }
        Ok(())
    }

    #[cfg(not(test))]
    fn maybe_crash(&self, _step: u8) -> io::Result<()> {
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn crash_cleaner_after_step(&self, step: u8) {
        self.crash_swap_after_step.store(step, Ordering::SeqCst);
    }
}

/// Builds the offset map from the dirty range. Returns the offset it got to
/// (the new checkpoint) and whether the map filled up first.
fn build_offset_map(
    log: &Log,
    segments: &[Arc<Segment>],
    plan: &Plan,
    cleaner: &mut Cleaner,
    summary: &mut CleanSummary,
) -> Result<(i64, bool), LogError> {
    let mut end = plan.first_dirty;
    let mut full = false;
    for w in segments.windows(2) {
        let (segment, next_base) = (&w[0], w[1].base_offset);
        if next_base <= plan.first_dirty {
            continue;
        }
        if segment.base_offset >= plan.first_uncleanable {
            break;
        }
        for_each_batch(
            segment,
            plan.first_dirty,
            plan.first_uncleanable,
            |position, header| {
                if header.last_offset() < plan.first_dirty {
                    return Ok(ControlFlow::Continue(()));
                }
                if header.is_control() || header.records_count == 0 {
                    end = header.next_offset();
                    return Ok(ControlFlow::Continue(()));
                }
                // A log fenced for deletion stops here too, so the fence
                // (and the metadata publisher waiting on it) is never held
                // up for the rest of a pass.
                log.check_not_failed()?;
                let batch = segment.batch_at(position, header)?;
                cleaner.throttler.throttle(batch.len())?;
                summary.bytes_read += batch.len() as u64;
                let records = vltava_record::decode_records(&batch)?;
                let keyed = || {
                    records
                        .iter()
                        .filter(|r| r.offset >= plan.first_dirty)
                        .filter_map(|r| r.key.as_ref().map(|k| (k, r.offset)))
                };
                if cleaner.map.len() + keyed().count() > cleaner.map_capacity {
                    full = true;
                    return Ok(ControlFlow::Break(()));
                }
                for (key, offset) in keyed() {
                    cleaner.map.insert(key_hash(key), offset);
                }
                end = header.next_offset();
                Ok(ControlFlow::Continue(()))
            },
        )?;
        if full {
            return Ok((end, true));
        }
        end = next_base.min(plan.first_uncleanable);
    }
    Ok((end.max(plan.first_dirty), false))
}

/// The last offset of the newest batch of every producer id in the log.
/// Such a batch is kept, emptied if need be, so the producer's last
/// sequence survives cleaning.
fn last_batch_of_each_producer(segments: &[Arc<Segment>]) -> Result<HashMap<i64, i64>, LogError> {
    let mut last = HashMap::new();
    for segment in segments {
        for_each_batch(segment, segment.base_offset, i64::MAX, |_, header| {
            if header.producer_id >= 0 {
                last.insert(header.producer_id, header.last_offset());
            }
            Ok(ControlFlow::Continue(()))
        })?;
    }
    Ok(last)
}

/// Consecutive segments whose total size fits one segment and whose offsets
/// fit the index's 32-bit relative offsets (Kafka's `groupSegmentsBySize`).
/// Unlike Kafka, a segment with dirty data never joins a group of clean
/// ones: the group's mtime would jump to now and postpone the removal of
/// the clean segments' tombstones (see `group_mtime_ms`).
fn group_segments(sources: Vec<Source>, segment_bytes: u64, first_dirty: i64) -> Vec<Vec<Source>> {
    let mut groups: Vec<Vec<Source>> = Vec::new();
    let mut size = 0u64;
    for (segment, next_base) in sources {
        let fits = groups.last().is_some_and(|g| {
            let last_next_base = g[g.len() - 1].1;
            let crosses_dirty = last_next_base <= first_dirty && next_base > first_dirty;
            size + segment.size() <= segment_bytes
                && !crosses_dirty
                && next_base - 1 - g[0].0.base_offset <= i64::from(i32::MAX)
        });
        if fits {
            size += segment.size();
            groups
                .last_mut()
                .expect("checked")
                .push((segment, next_base));
        } else {
            size = segment.size();
            groups.push(vec![(segment, next_base)]);
        }
    }
    groups
}

/// The mtime a cleaned group gets. A group holding dirty data gets the time
/// of this pass: from then on its tombstones have been cleaned once, and
/// `delete.retention.ms` counts from here (Kafka 3's delete horizon,
/// KIP-534). A group of already clean segments keeps their newest mtime, as
/// Kafka keeps `lastModified` of cleaned segments.
fn group_mtime_ms(group: &[Source], first_dirty: i64, now_ms: i64) -> io::Result<i64> {
    if group.iter().any(|(_, next_base)| *next_base > first_dirty) {
        return Ok(now_ms);
    }
    let mut newest = 0;
    for (segment, _) in group {
        newest = newest.max(mtime_ms(&segment.file)?);
    }
    Ok(newest)
}

/// The bytes to write for one batch: `Some(None)` to copy it verbatim,
/// `Some(Some(bytes))` for a rebuilt or empty batch, `None` to drop it.
fn filter_batch(
    batch: &[u8],
    header: &BatchHeader,
    filter: &Filter<'_>,
    tombstones_expired: bool,
    summary: &mut CleanSummary,
    due: &mut Option<i64>,
) -> Result<Option<Option<BytesMut>>, LogError> {
    if header.is_control() {
        return Ok(Some(None));
    }
    let records = vltava_record::decode_records(batch)?;
    let total = records.len();
    let kept: Vec<Record> = records
        .into_iter()
        .filter(|r| retain(r, filter, tombstones_expired))
        .collect();
    summary.records_removed += (total - kept.len()) as u64;
    for r in &kept {
        if r.value.is_none() && r.offset < filter.end_offset {
            let removable_at = filter
                .group_mtime_ms
                .saturating_add(filter.delete_retention_ms);
            *due = min_some(*due, Some(removable_at));
        }
    }
    if !kept.is_empty() && kept.len() == total {
        return Ok(Some(None));
    }
    if !kept.is_empty() {
        return Ok(Some(Some(vltava_record::rebuild_batch(header, &kept)?)));
    }
    let last_of_producer = header.producer_id >= 0
        && filter.producers.get(&header.producer_id) == Some(&header.last_offset());
    if last_of_producer {
        return Ok(Some(Some(vltava_record::empty_batch_like(header))));
    }
    Ok(None)
}

/// Kafka's `shouldRetainRecord`, with the tombstone rule explained in
/// `docs/log-format.md`.
fn retain(record: &Record, filter: &Filter<'_>, tombstones_expired: bool) -> bool {
    let Some(key) = &record.key else {
        // Only possible for records written before the topic was compacted;
        // Kafka's cleaner drops them too.
        return false;
    };
    if let Some(&latest) = filter.map.get(&key_hash(key)) {
        if record.offset < latest {
            return false;
        }
    }
    let tombstone = record.value.is_none();
    !(tombstone && tombstones_expired && record.offset < filter.first_dirty)
}

/// A 128-bit key hash (two independent SipHash-1-3 runs), in the role of
/// Kafka's MD5: a collision would make the older key's latest record look
/// superseded; with `n` keys in one pass its chance is about `n² / 2^129`.
fn key_hash(key: &[u8]) -> u128 {
    let half = |seed: u8| {
        let mut h = DefaultHasher::new();
        h.write_u8(seed);
        h.write(key);
        h.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

/// The map's keys are already hashes: use their low bits as they are.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes.iter().take(8) {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u128(&mut self, value: u128) {
        self.0 = value as u64;
    }
}

fn min_some(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn create(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn mtime_ms(file: &Arc<dyn crate::storage::SegmentFile>) -> io::Result<i64> {
    let modified = file.modified()?;
    Ok(modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64))
}

fn system_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// Recovery, before segments are listed: removes `.cleaned` and `.deleted`
/// files and completes every swap whose `.log.swap` exists (see
/// `docs/log-format.md`, *Crash argument*). Other `.swap` files are left
/// for the caller to remove. Returns how many files it removed or swapped
/// in.
pub(crate) fn finish_interrupted_swaps(dir: &Path) -> Result<usize, LogError> {
    let mut changed = 0;
    let mut swaps = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(".cleaned") || name.ends_with(".deleted") {
            tracing::warn!(file = %path.display(), "removing leftover file");
            fs::remove_file(&path)?;
            changed += 1;
        } else if let Some(base) = name.strip_suffix(".log.swap").and_then(parse_base) {
            swaps.push(base);
        }
    }
    swaps.sort_unstable();
    for &base in &swaps {
        let swap = segment::file_path(dir, base, "log.swap");
        let end = next_offset_of(&swap, base)?;
        for old in log_bases(dir)? {
            if old == base || (old > base && old < end) {
                delete_segment_files(dir, old)?;
            }
        }
        // Indexes are derived: rebuilt when the segment is opened.
        for suffix in ["index", "timeindex", "index.swap", "timeindex.swap"] {
            remove_if_exists(&segment::file_path(dir, base, suffix))?;
        }
        fs::rename(&swap, segment::file_path(dir, base, "log"))?;
        tracing::warn!(dir = %dir.display(), base, end, "completed an interrupted swap of a cleaned segment");
        changed += 1;
    }
    if !swaps.is_empty() {
        sync_dir(dir)?;
    }
    Ok(changed)
}

fn parse_base(stem: &str) -> Option<i64> {
    match stem.parse::<i64>() {
        Ok(base) if stem.len() == 20 && base >= 0 => Some(base),
        _ => None,
    }
}

fn log_bases(dir: &Path) -> io::Result<Vec<i64>> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(base) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(parse_base)
        {
            bases.push(base);
        }
    }
    Ok(bases)
}

/// The offset after the last batch of a complete (fsynced) segment file.
fn next_offset_of(path: &Path, base: i64) -> Result<i64, LogError> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut next = base;
    let mut position = 0u64;
    let mut buf = [0u8; BATCH_HEADER_BYTES];
    while position < len {
        let at = position;
        let corrupt = |what: String| {
            LogError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {what} at {at}", path.display()),
            ))
        };
        if len - position < BATCH_HEADER_BYTES as u64 {
            return Err(corrupt("partial batch header".into()));
        }
        file.read_exact_at(&mut buf, position)?;
        let header = BatchHeader::parse(&buf).map_err(|e| corrupt(e.to_string()))?;
        position += header.total_bytes() as u64;
        if position > len {
            return Err(corrupt("partial batch".into()));
        }
        next = header.next_offset();
    }
    Ok(next)
}

#[cfg(test)]
mod tests;
