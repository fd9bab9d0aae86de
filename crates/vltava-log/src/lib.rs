//! One partition's log on disk, in Kafka's layout.
//!
//! A [`Log`] owns a directory of segments (`<base offset, 20 digits>.log`)
//! holding v2 record batches verbatim, each with a sparse offset index
//! (`.index`) and time index (`.timeindex`), plus a `log-start-offset` file.
//! It appends validated batches (assigning offsets by patching the header),
//! serves reads as file ranges, rolls segments, applies retention and
//! DeleteRecords, compacts closed segments ([`cleaner`]), and recovers after
//! a crash, finishing an interrupted swap of cleaned segments. It knows nothing of Kafka
//! requests. The byte layout and the crash argument are in
//! `docs/log-format.md`.
//!
//! Invariants:
//! - Indexes are derived data: they can always be rebuilt from the `.log`
//!   files, and are on open whenever they do not check out.
//! - Readers never see a torn batch: a segment's `size` only covers complete
//!   batches, and it advances after the bytes are written.
//! - One writer at a time (the writer mutex); readers never take it.
//! - The cleaner only rewrites closed segments, never the active one, and
//!   swaps a cleaned segment in under the writer mutex.

pub mod cleaner;
pub mod epochs;
mod segment;
pub mod snapshot;
pub mod storage;

use std::fs::{self, File};
use std::io;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::{Mutex, RwLock};
use vltava_record::{BatchHeader, RecordError};

pub use segment::{
    index_file_bytes_max, OffsetEntry, TimeEntry, OFFSET_ENTRY_BYTES, TIME_ENTRY_BYTES,
};
use segment::{Segment, SegmentState};
use storage::{FileStorage, SegmentFile, Storage};

/// Name of the file holding the durable log start offset.
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset";

/// Per-partition log settings (Kafka's topic-level names in comments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would exceed this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first batch is this old.
    pub segment_ms: i64,
    /// `retention.ms`: -1 keeps data forever.
    pub retention_ms: i64,
    /// `retention.bytes`: -1 means no size limit.
    pub retention_bytes: i64,
    /// `index.interval.bytes`: bytes between offset index entries.
    pub index_interval_bytes: u32,
    /// `flush.messages`: fsync after this many records; `u64::MAX` never.
    pub flush_messages: u64,
    /// `flush.ms`: fsync when the last one is this old; `i64::MAX` never.
    pub flush_ms: i64,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            flush_messages: u64::MAX,
            flush_ms: i64::MAX,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("offset {requested} out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        requested: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] RecordError),
    /// An earlier write or fsync failed; the log accepts no more writes.
    #[error("log storage failed: {0}")]
    StorageFailed(String),
    /// The disk is full. Unlike `StorageFailed` this does not stick: the
    /// write that hit it was undone and the next one is tried again.
    #[error("no space left for the log: {0}")]
    NoSpace(String),
    /// The log was fenced (its partition deleted, or the broker shutting
    /// down); nothing writes through it again.
    #[error("log in {0} is closed: its partition was deleted or the broker is shutting down")]
    Closed(String),
    /// Bytes read back from a segment are not a valid batch (CRC, magic,
    /// length or offsets): the disk returned something that was not written.
    #[error("corrupt batch in {path} at position {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// A replica's batch starts below the log end: it would rewrite offsets
    /// the log holds (the replica must truncate first).
    #[error("batch at offset {base_offset} overlaps the log, which ends at {log_end}")]
    OffsetOverlap { base_offset: i64, log_end: i64 },
}

/// How an appended batch gets its offsets and leader epoch.
#[derive(Debug, Clone, Copy)]
enum Placement {
    /// The next offsets, stamped with this epoch (a leader's append).
    Assign { leader_epoch: i32 },
    /// As the batch says (a replica's copy of its leader's batch).
    AsWritten,
}

/// Offsets assigned to an appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_start_offset: i64,
    pub max_timestamp: i64,
    /// The batch started a new segment.
    pub rolled: bool,
}

/// A byte range of one segment file holding whole batches.
#[derive(Debug, Clone)]
pub struct ReadSlice {
    /// `file.as_file()` is the OS file for a zero-copy path.
    pub file: Arc<dyn SegmentFile>,
    /// The segment's checked byte ranges (see [`Self::to_sendable`]).
    verified: Arc<segment::VerifiedRanges>,
    /// The segment's `.log` path, for reports.
    pub path: PathBuf,
    pub position: u64,
    pub len: usize,
}

impl ReadSlice {
    fn empty(segment: &Segment) -> ReadSlice {
        ReadSlice {
            file: Arc::clone(&segment.file),
            verified: Arc::clone(&segment.verified),
            path: segment.log_path.clone(),
            position: 0,
            len: 0,
        }
    }

    /// Copies the range into memory without looking at it.
    pub fn to_bytes(&self) -> io::Result<Bytes> {
        let mut buf = BytesMut::zeroed(self.len);
        self.file.read_at(&mut buf, self.position)?;
        Ok(buf.freeze())
    }

    /// Copies the range into memory and checks every batch in it (length,
    /// magic, CRC-32C, increasing offsets), so that a consumer is never
    /// served bytes the disk corrupted. Returns the whole batches before the
    /// first bad one; if the first batch is bad, `LogError::Corrupt` naming
    /// the file and position (and logs it).
    pub fn to_verified_bytes(&self) -> Result<Bytes, LogError> {
        let bytes = self.to_bytes()?;
        let valid = verified_prefix(&bytes);
        if valid.len == bytes.len() {
            return Ok(bytes);
        }
        let position = self.position + valid.len as u64;
        let reason = valid.error.unwrap_or_default();
        tracing::error!(
            file = %self.path.display(),
            position,
            %reason,
            "corrupt batch on disk; not serving it"
        );
        if valid.len == 0 {
            return Err(LogError::Corrupt {
                path: self.path.clone(),
                position,
                reason,
            });
        }
        Ok(bytes.slice(..valid.len))
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What a fetch sends: the range itself, untouched, when every byte of
    /// it is known good and the storage is a real file (the caller may then
    /// `sendfile` it); otherwise the checked bytes of
    /// [`Self::to_verified_bytes`], after which the range counts as known
    /// good. Each byte is thus read and CRC-checked once per process, not
    /// once per fetch; a disk that corrupts data after that is caught by the
    /// client's own CRC check, as with Kafka.
    pub fn to_sendable(&self) -> Result<Sendable, LogError> {
        let end = self.position + self.len as u64;
        if self.len > 0
            && self.file.as_file().is_some()
            && self.verified.contains(self.position, end)
        {
            return Ok(Sendable::File(self.clone()));
        }
        let bytes = self.to_verified_bytes()?;
        self.verified
            .insert(self.position, self.position + bytes.len() as u64);
        Ok(Sendable::Bytes(bytes))
    }
}

/// A fetch's bytes for one partition: in memory, or a checked file range.
#[derive(Debug, Clone)]
pub enum Sendable {
    Bytes(Bytes),
    File(ReadSlice),
}

/// State only the writer touches.
struct WriterState {
    records_since_flush: u64,
}

/// Group commit: the offset below which everything is known to be fsynced.
struct FlushState {
    flushed_offset: i64,
    last_flush_ms: i64,
}

/// What [`Log::open`] found and repaired: the active segment is always
/// scanned batch by batch (CRC included) and cut at the first byte that is
/// not a valid batch; closed segments get their indexes rebuilt when those
/// do not check out; leftovers of interrupted operations are removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    /// Valid bytes and batches of the active segment, all checked.
    pub scanned_bytes: u64,
    pub scanned_batches: u64,
    /// Bytes cut from the active segment's tail.
    pub truncated_bytes: u64,
    /// Closed segments whose indexes were rebuilt from the log.
    pub rebuilt_indexes: usize,
    /// Leftover files of interrupted operations removed, and interrupted
    /// swaps of cleaned segments completed.
    pub removed_files: usize,
}

impl RecoveryReport {
    /// Whether opening changed anything on disk.
    pub fn repaired(&self) -> bool {
        self.truncated_bytes > 0 || self.rebuilt_indexes > 0 || self.removed_files > 0
    }
}

/// One partition's log. `Send + Sync`; every method takes `&self`.
pub struct Log {
    dir: PathBuf,
    config: RwLock<LogConfig>,
    /// Sorted by base offset; never empty; the last one is active. Held only
    /// long enough to clone an `Arc`.
    segments: RwLock<Vec<Arc<Segment>>>,
    /// Serialises writers (append, roll, retention, truncation). Nothing in
    /// this crate awaits, so a blocking mutex held across file writes is fine;
    /// readers never take it.
    writer: Mutex<WriterState>,
    /// Serialises fsyncs, outside the writer mutex, so appenders waiting for
    /// durability share one fsync.
    flusher: Mutex<FlushState>,
    log_start_offset: AtomicI64,
    log_end_offset: AtomicI64,
    failure: RwLock<Option<String>>,
    /// Set when the partition is deleted: nothing may write through this
    /// log again, since its directory name may soon belong to a new topic.
    closed: std::sync::atomic::AtomicBool,
    /// Why the log could not be opened, for an offline log: reads fail as
    /// well as writes.
    offline: Option<String>,
    /// Opens segment files: the real file system, or a fault injector.
    storage: Arc<dyn Storage>,
    /// Cleaner progress (`cleaner-offset-checkpoint`) and the lock that
    /// serialises cleaning passes on this log.
    cleaner_state: cleaner::CleanerState,
    /// What opening the log found and repaired.
    recovery: RecoveryReport,
    /// Leader epoch → first offset (`leader-epoch-checkpoint`); changed
    /// only under the writer mutex.
    epochs: Mutex<epochs::EpochCache>,
    #[cfg(test)]
    fail_next_write: std::sync::atomic::AtomicBool,
    #[cfg(test)]
    crash_swap_after_step: std::sync::atomic::AtomicU8,
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovering from any crash.
    pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> Result<Log, LogError> {
        Log::open_with_storage(dir, config, now_ms, Arc::new(FileStorage))
    }

    /// [`Log::open`] with segment files opened through `storage` (tests
    /// inject faults with [`storage::FaultyStorage`]).
    pub fn open_with_storage(
        dir: &Path,
        config: LogConfig,
        now_ms: i64,
        storage: Arc<dyn Storage>,
    ) -> Result<Log, LogError> {
        fs::create_dir_all(dir)?;
        let (bases, removed_files) = list_segments(dir)?;
        let mut recovery = RecoveryReport {
            segments: bases.len(),
            removed_files,
            ..RecoveryReport::default()
        };
        let mut segments = Vec::with_capacity(bases.len().max(1));
        for (i, &base) in bases.iter().enumerate() {
            let segment = match bases.get(i + 1) {
                Some(&next) => {
                    let (segment, rebuilt) =
                        open_closed_segment(&storage, dir, base, next, &config)?;
                    recovery.rebuilt_indexes += usize::from(rebuilt);
                    segment
                }
                None => {
                    let (segment, scan) = recover_last_segment(&storage, dir, base, &config)?;
                    recovery.scanned_bytes = scan.valid_bytes;
                    recovery.scanned_batches = scan.batches;
                    recovery.truncated_bytes = scan.truncated_bytes;
                    segment
                }
            };
            segments.push(Arc::new(segment));
        }
        if segments.is_empty() {
            segments.push(Arc::new(Segment::create(&storage, dir, 0)?));
            sync_dir(dir)?;
        }
        if let Some(active) = segments.last() {
            active.state.write().created_ms = now_ms;
        }
        let log_end = segments.last().map_or(0, |s| s.state.read().next_offset);
        let first_base = segments[0].base_offset;
        let log_start = read_log_start(dir)?.unwrap_or(first_base).max(first_base);
        let log_start = log_start.min(log_end);
        let cleaner_state = cleaner::CleanerState::open(dir)?;
        let loaded_epochs = epochs::EpochCache::load(dir)?;
        let log = Log {
            dir: dir.to_path_buf(),
            config: RwLock::new(config),
            segments: RwLock::new(segments),
            writer: Mutex::new(WriterState {
                records_since_flush: 0,
            }),
            flusher: Mutex::new(FlushState {
                flushed_offset: log_end,
                last_flush_ms: now_ms,
            }),
            log_start_offset: AtomicI64::new(log_start),
            log_end_offset: AtomicI64::new(log_end),
            failure: RwLock::new(None),
            closed: std::sync::atomic::AtomicBool::new(false),
            offline: None,
            storage,
            cleaner_state,
            recovery,
            epochs: Mutex::new(loaded_epochs.clone().unwrap_or_default()),
            #[cfg(test)]
            fail_next_write: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            crash_swap_after_step: std::sync::atomic::AtomicU8::new(0),
        };
        log.recover_epochs(loaded_epochs.is_none())?;
        Ok(log)
    }

    /// Brings the leader-epoch cache in line with the recovered log: rebuilt
    /// from the batch headers when its file was missing or damaged, then cut
    /// to the log's range, and saved when that changed anything.
    fn recover_epochs(&self, rebuild: bool) -> Result<(), LogError> {
        let mut cache = self.epochs.lock();
        let mut changed = false;
        if rebuild {
            let mut rebuilt = epochs::EpochCache::default();
            self.for_each_batch_header(self.log_start_offset(), |header| {
                rebuilt.assign(header.partition_leader_epoch, header.base_offset);
            })?;
            changed = !rebuilt.entries().is_empty();
            *cache = rebuilt;
        }
        changed |= cache.truncate_from_end(self.log_end_offset());
        changed |= cache.truncate_from_start(self.log_start_offset());
        if changed {
            cache.save(&self.dir, true)?;
        }
        Ok(())
    }

    /// Applies `change` to the leader-epoch cache and saves it if it
    /// changed. Caller holds the writer mutex.
    fn change_epochs(
        &self,
        change: impl FnOnce(&mut epochs::EpochCache) -> bool,
    ) -> Result<(), LogError> {
        self.change_epochs_with(change, true)
    }

    /// [`Log::change_epochs`], the file fsynced only when `durable` (or when
    /// an earlier unsynced change is still pending and this one is durable).
    fn change_epochs_with(
        &self,
        change: impl FnOnce(&mut epochs::EpochCache) -> bool,
        durable: bool,
    ) -> Result<(), LogError> {
        let mut cache = self.epochs.lock();
        let changed = change(&mut cache);
        if changed || (durable && cache.unsynced()) {
            cache
                .save(&self.dir, durable)
                .map_err(|e| self.fail("leader epoch checkpoint write", e))?;
        }
        Ok(())
    }

    /// Records that leader epoch `epoch` begins at the log end (Kafka does
    /// this when a replica becomes leader, before it writes anything), so
    /// followers asking about older epochs learn where they ended.
    /// Not fsynced (a leader election touches many partitions at once, and
    /// the entry says nothing about data yet); the first batch written after
    /// it syncs it, and a crash before that only loses an entry no batch
    /// needs.
    pub fn begin_leader_epoch(&self, epoch: i32) -> Result<(), LogError> {
        let _writer = self.writer.lock();
        self.check_not_failed()?;
        self.change_epochs_with(|c| c.assign(epoch, self.log_end_offset()), false)
    }

    /// Every (leader epoch, first offset) this log holds, oldest first.
    pub fn leader_epochs(&self) -> Vec<epochs::EpochEntry> {
        self.epochs.lock().entries().to_vec()
    }

    /// The newest leader epoch that wrote to this log, if any.
    pub fn latest_leader_epoch(&self) -> Option<i32> {
        self.epochs.lock().latest().map(|e| e.epoch)
    }

    /// The largest epoch at or below `epoch` in this log and the offset it
    /// ended at (Kafka's `endOffsetFor`; see [`epochs`]).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let cache = self.epochs.lock();
        cache.end_offset_for(epoch, self.log_end_offset())
    }

    /// What opening this log scanned and repaired.
    pub fn recovery(&self) -> RecoveryReport {
        self.recovery
    }

    /// A log that could not be opened (its directory unreadable, a segment
    /// that is not a file, …): it holds nothing and refuses every read and
    /// write with `StorageFailed(reason)`, so its partition answers
    /// KAFKA_STORAGE_ERROR while the broker serves the others. Nothing in
    /// `dir` is touched.
    pub fn offline(dir: &Path, reason: String) -> Log {
        let storage: Arc<dyn Storage> = Arc::new(storage::NullStorage);
        let segment = Segment::create(&storage, dir, 0).expect("null storage never fails to open");
        Log {
            dir: dir.to_path_buf(),
            config: RwLock::new(LogConfig::default()),
            segments: RwLock::new(vec![Arc::new(segment)]),
            writer: Mutex::new(WriterState {
                records_since_flush: 0,
            }),
            flusher: Mutex::new(FlushState {
                flushed_offset: 0,
                last_flush_ms: 0,
            }),
            log_start_offset: AtomicI64::new(0),
            log_end_offset: AtomicI64::new(0),
            failure: RwLock::new(Some(reason.clone())),
            closed: std::sync::atomic::AtomicBool::new(false),
            offline: Some(reason),
            storage,
            cleaner_state: cleaner::CleanerState::offline(),
            recovery: RecoveryReport::default(),
            epochs: Mutex::new(epochs::EpochCache::default()),
            #[cfg(test)]
            fail_next_write: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            crash_swap_after_step: std::sync::atomic::AtomicU8::new(0),
        }
    }

    /// Why the log is offline, if it is.
    pub fn offline_reason(&self) -> Option<&str> {
        self.offline.as_deref()
    }

    fn check_online(&self) -> Result<(), LogError> {
        match &self.offline {
            Some(reason) => Err(LogError::StorageFailed(reason.clone())),
            None => Ok(()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }

    pub fn config(&self) -> LogConfig {
        self.config.read().clone()
    }

    pub fn set_config(&self, config: LogConfig) {
        *self.config.write() = config;
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.read().iter().map(|s| s.size()).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.read().len()
    }

    /// The base offset of every segment, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.read().iter().map(|s| s.base_offset).collect()
    }

    /// Calls `f` with the header of every batch that ends at or after
    /// `from`, oldest first, up to the log end: what producer state is
    /// rebuilt from after its snapshot.
    pub fn for_each_batch_header(
        &self,
        from: i64,
        mut f: impl FnMut(&BatchHeader),
    ) -> Result<(), LogError> {
        let end = self.log_end_offset();
        let segments = self.snapshot();
        for (i, segment) in segments.iter().enumerate() {
            let next_base = segments.get(i + 1).map_or(i64::MAX, |s| s.base_offset);
            if next_base <= from {
                continue;
            }
            for_each_batch(segment, from.max(segment.base_offset), end, |_, header| {
                if header.last_offset() >= from {
                    f(header);
                }
                Ok(ControlFlow::Continue(()))
            })?;
        }
        Ok(())
    }

    /// Writes a producer-state snapshot at `offset` (see [`snapshot`]).
    pub fn write_producer_snapshot(&self, offset: i64, payload: &[u8]) -> Result<(), LogError> {
        self.check_not_failed()?;
        snapshot::write(&self.dir, offset, payload).map_err(LogError::from)
    }

    /// The newest valid producer-state snapshot at or below the log end.
    pub fn latest_producer_snapshot(&self) -> Result<Option<(i64, Vec<u8>)>, LogError> {
        Ok(snapshot::latest(&self.dir, self.log_end_offset())?)
    }

    fn active(&self) -> Arc<Segment> {
        Arc::clone(
            self.segments
                .read()
                .last()
                .expect("a log always has a segment"),
        )
    }

    fn check_not_failed(&self) -> Result<(), LogError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed(self.dir.display().to_string()));
        }
        match &*self.failure.read() {
            Some(reason) => Err(LogError::StorageFailed(reason.clone())),
            None => Ok(()),
        }
    }

    /// Records an environmental failure: from now on writes are refused.
    /// Except a full disk, outside fsync: the caller undid its write, and
    /// writes resume when space is freed. A failed fsync always sticks, as
    /// the kernel may have dropped the dirty pages it could not write.
    fn fail(&self, what: &str, e: io::Error) -> LogError {
        if storage::is_no_space(&e) && !what.starts_with("fsync") {
            let reason = format!("{what} in {}: {e}", self.dir.display());
            tracing::warn!(%reason, "disk full; write refused, will retry on the next one");
            return LogError::NoSpace(reason);
        }
        let reason = format!("{what} in {}: {e}", self.dir.display());
        tracing::error!(%reason, "log storage failed; refusing further writes");
        self.failure.write().get_or_insert(reason);
        LogError::Io(e)
    }

    /// Appends one batch that the caller already validated. Assigns it the
    /// next offsets by patching its base offset and leader epoch, and
    /// fsyncs when the flush policy says so before returning.
    pub fn append(
        &self,
        batch: BytesMut,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let (info, flush_to) = self.append_without_flush(batch, leader_epoch, now_ms)?;
        if let Some(offset) = flush_to {
            self.flush_to(offset, now_ms, false)?;
        }
        Ok(info)
    }

    /// [`Log::append`] without the fsync: returns the offset the flush
    /// policy wants durable, if any, for the caller to pass to
    /// [`Log::flush_appended`] once it has released its own locks. Appenders
    /// that flush concurrently share one fsync (group commit).
    pub fn append_without_flush(
        &self,
        batch: BytesMut,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<(AppendInfo, Option<i64>), LogError> {
        self.append_batch(batch, Placement::Assign { leader_epoch }, now_ms)
    }

    /// Appends a batch exactly as the partition's leader wrote it (a
    /// replica following its leader): its base offset and leader epoch are
    /// kept, and must not lie below the log end (a leader's compaction can
    /// leave gaps between offsets, never overlaps). Returns the offset to
    /// pass to [`Log::flush_appended`], as [`Log::append_without_flush`].
    pub fn append_replica(
        &self,
        batch: BytesMut,
        now_ms: i64,
    ) -> Result<(AppendInfo, Option<i64>), LogError> {
        self.append_batch(batch, Placement::AsWritten, now_ms)
    }

    fn append_batch(
        &self,
        mut batch: BytesMut,
        placement: Placement,
        now_ms: i64,
    ) -> Result<(AppendInfo, Option<i64>), LogError> {
        let header = BatchHeader::parse(&batch)?;
        if header.total_bytes() != batch.len() {
            return Err(LogError::InvalidBatch(RecordError::LengthMismatch {
                declared: header.total_bytes(),
                actual: batch.len(),
            }));
        }
        let config = self.config();
        let (info, flush_to) = {
            let mut writer = self.writer.lock();
            self.check_not_failed()?;
            let end = self.log_end_offset();
            let header = match placement {
                Placement::Assign { leader_epoch } => {
                    vltava_record::set_base_offset(&mut batch, end);
                    vltava_record::set_partition_leader_epoch(&mut batch, leader_epoch);
                    BatchHeader {
                        base_offset: end,
                        partition_leader_epoch: leader_epoch,
                        ..header
                    }
                }
                Placement::AsWritten => {
                    if header.base_offset < end {
                        return Err(LogError::OffsetOverlap {
                            base_offset: header.base_offset,
                            log_end: end,
                        });
                    }
                    header
                }
            };
            // The log end only moves forward: a batch that claims no offsets
            // (or offsets past i64) would hand out offsets already used.
            let advances = header.last_offset_delta >= 0
                && header
                    .base_offset
                    .checked_add(i64::from(header.last_offset_delta) + 1)
                    .is_some();
            if !advances {
                return Err(LogError::InvalidBatch(RecordError::BadRecordCount {
                    records_count: header.records_count,
                    last_offset_delta: header.last_offset_delta,
                }));
            }
            let base_offset = header.base_offset;
            let rolled = self.maybe_roll(&header, &config, now_ms)?;
            // Before the batch: the checkpoint never lacks an epoch the log
            // holds (an entry whose batch is lost is cut at the next open).
            self.change_epochs(|c| c.assign(header.partition_leader_epoch, base_offset))?;
            self.write_batch(&batch, &header, &config)?;
            let info = AppendInfo {
                base_offset,
                last_offset: header.last_offset(),
                log_start_offset: self.log_start_offset(),
                max_timestamp: header.max_timestamp,
                rolled,
            };
            writer.records_since_flush += header.records_count.max(1) as u64;
            let due = writer.records_since_flush >= config.flush_messages;
            if due {
                writer.records_since_flush = 0;
            }
            (info, due.then(|| header.next_offset()))
        };
        Ok((info, flush_to))
    }

    /// The offset below which every batch is known to be fsynced.
    pub fn flushed_offset(&self) -> i64 {
        self.flusher.lock().flushed_offset
    }

    /// Makes everything below `offset` durable, unless an fsync that
    /// covered it already happened (group commit).
    pub fn flush_appended(&self, offset: i64, now_ms: i64) -> Result<(), LogError> {
        self.flush_to(offset, now_ms, false)
    }

    /// Writes the batch at the end of the active segment, then publishes it.
    fn write_batch(
        &self,
        batch: &[u8],
        header: &BatchHeader,
        config: &LogConfig,
    ) -> Result<(), LogError> {
        let active = self.active();
        let position = active.size();
        #[cfg(test)]
        if self.fail_next_write.swap(false, Ordering::SeqCst) {
            return Err(self.fail("write", io::Error::other("injected write failure")));
        }
        if let Err(e) = active.file.write_at(batch, position) {
            // Readers never look past `size`, but a crash would leave the
            // partial write for recovery to cut; cut it now where we can.
            let _ = active.file.set_len(position);
            return Err(self.fail("write", e));
        }
        // Written from a batch the broker validated (CRC included).
        active
            .verified
            .insert(position, position + batch.len() as u64);
        let (new, counts) = {
            let mut state = active.state.write();
            let new = state.on_batch(
                active.base_offset,
                position,
                header,
                config.index_interval_bytes,
            );
            (new, (state.offset_index.len(), state.time_index.len()))
        };
        if let Err(e) = active.write_entries(&new, counts) {
            if !storage::is_no_space(&e) {
                return Err(self.fail("index write", e));
            }
            // The batch is written and published; only the derived index
            // file lags, and it is rewritten before the segment is sealed.
            tracing::warn!(dir = %self.dir.display(), error = %e, "index entry not written (disk full); will rewrite");
            active.mark_indexes_dirty();
        }
        let previous = self
            .log_end_offset
            .swap(header.next_offset(), Ordering::AcqRel);
        assert!(
            header.next_offset() > previous,
            "log end offset of {} would move from {previous} to {}",
            self.dir.display(),
            header.next_offset()
        );
        Ok(())
    }

    /// Rolls before `header`'s batch if the active segment is full or old;
    /// returns whether it rolled.
    fn maybe_roll(
        &self,
        header: &BatchHeader,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<bool, LogError> {
        let active = self.active();
        let state = active.state.read().summary();
        if state.size == 0 {
            return Ok(false);
        }
        let size_limit = config.segment_bytes.min(u64::from(u32::MAX));
        let too_big = state.size + header.total_bytes() as u64 > size_limit;
        // Like Kafka, age is measured in record time (this batch's max
        // timestamp minus the first batch's) when records carry timestamps,
        // and in wall-clock time since the segment was created otherwise.
        let age_ms = match state.first_batch_timestamp {
            Some(first) if first >= 0 => header.max_timestamp.saturating_sub(first),
            _ => now_ms.saturating_sub(state.created_ms),
        };
        let too_old = age_ms >= config.segment_ms;
        let offsets_overflow = header.last_offset() - active.base_offset > i64::from(i32::MAX);
        if too_big || too_old || offsets_overflow {
            self.roll(header.base_offset, now_ms)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Seals and fsyncs the active segment, then starts a new one at
    /// `base_offset`. Caller holds the writer mutex.
    fn roll(&self, base_offset: i64, now_ms: i64) -> Result<(), LogError> {
        let old = self.active();
        old.seal().map_err(|e| self.fail("index write", e))?;
        // Every segment but the last is durable before the next exists, so
        // recovery only has to check the last one.
        old.sync_all().map_err(|e| self.fail("fsync", e))?;
        old.release_index_files();
        let new = Segment::create(&self.storage, &self.dir, base_offset)
            .map_err(|e| self.fail("roll", e))?;
        new.state.write().created_ms = now_ms;
        sync_dir(&self.dir).map_err(|e| self.fail("fsync dir", e))?;
        self.segments.write().push(Arc::new(new));
        tracing::debug!(dir = %self.dir.display(), base_offset, "rolled segment");
        Ok(())
    }

    /// fsyncs everything below `offset` unless a concurrent flush already
    /// did (group commit).
    fn flush_to(&self, offset: i64, now_ms: i64, with_indexes: bool) -> Result<(), LogError> {
        let mut flush = self.flusher.lock();
        if flush.flushed_offset >= offset && !with_indexes {
            return Ok(());
        }
        self.check_not_failed()?;
        // Read the end before choosing the segment: anything below it is in
        // this segment or in an earlier one, which a roll already fsynced.
        let end = self.log_end_offset();
        let active = self.active();
        let synced = if with_indexes {
            active.sync_all()
        } else {
            // The active segment's indexes are rebuilt on recovery anyway.
            active.sync_data()
        };
        synced.map_err(|e| self.fail("fsync", e))?;
        flush.flushed_offset = flush.flushed_offset.max(end);
        flush.last_flush_ms = now_ms;
        Ok(())
    }

    /// Refuses every write from now on, after an in-flight append, roll,
    /// retention or cleaner pass has finished (a pass stops at its next
    /// batch). Whoever still holds the log can read. A deleted partition is
    /// fenced before its directory is renamed away, so nothing renames,
    /// creates or deletes files under a name a re-created topic may already
    /// own; a shut-down broker fences after its final flush, so nothing
    /// lands after it.
    pub fn fence(&self) {
        {
            let _writer = self.writer.lock();
            self.closed.store(true, Ordering::Release);
        }
        let _pass = self.cleaner_state.pass.lock();
    }

    /// fsyncs the active segment and its indexes.
    pub fn flush(&self) -> Result<(), LogError> {
        let now_ms = self.flusher.lock().last_flush_ms;
        self.flush_to(self.log_end_offset(), now_ms, true)
    }

    /// fsyncs if unflushed data is older than `flush_ms`.
    pub fn flush_if_due(&self, now_ms: i64) -> Result<(), LogError> {
        let flush_ms = self.config.read().flush_ms;
        let due = {
            let flush = self.flusher.lock();
            flush.flushed_offset < self.log_end_offset()
                && now_ms.saturating_sub(flush.last_flush_ms) >= flush_ms
        };
        if due {
            self.flush_to(self.log_end_offset(), now_ms, false)?;
        }
        Ok(())
    }

    /// Flushes everything for shutdown.
    pub fn close(&self) -> Result<(), LogError> {
        let _writer = self.writer.lock();
        self.flush()
    }

    /// Removes the partition directory (topic deletion).
    pub fn delete(self) -> Result<(), LogError> {
        let _writer = self.writer.lock();
        fs::remove_dir_all(&self.dir)?;
        Ok(())
    }

    fn out_of_range(&self, requested: i64) -> LogError {
        LogError::OffsetOutOfRange {
            requested,
            log_start: self.log_start_offset(),
            log_end: self.log_end_offset(),
        }
    }

    /// The segment that holds `offset`: the last one starting at or below it.
    fn segment_for(&self, offset: i64) -> Arc<Segment> {
        let segments = self.segments.read();
        let i = segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        Arc::clone(&segments[i])
    }

    /// Bytes for a fetch starting at `offset`: the batch holding it and the
    /// whole batches after it in the same segment that start below
    /// `end_offset_exclusive`, within `max_bytes` except that the first batch
    /// is always whole (KIP-74).
    pub fn read(
        &self,
        offset: i64,
        end_offset_exclusive: i64,
        max_bytes: usize,
    ) -> Result<ReadSlice, LogError> {
        self.check_online()?;
        let log_end = self.log_end_offset();
        if offset < self.log_start_offset() || offset > log_end {
            return Err(self.out_of_range(offset));
        }
        let end = end_offset_exclusive.min(log_end);
        let mut segment = self.segment_for(offset);
        if offset >= end {
            return Ok(ReadSlice::empty(&segment));
        }
        loop {
            if let Some(slice) = read_segment(&segment, offset, end, max_bytes)? {
                return Ok(slice);
            }
            // The offset lies past this segment's last batch (a gap); move on.
            let next = {
                let segments = self.segments.read();
                let i = segments.partition_point(|s| s.base_offset <= segment.base_offset);
                segments.get(i).map(Arc::clone)
            };
            match next {
                Some(next) => segment = next,
                None => return Ok(ReadSlice::empty(&segment)),
            }
        }
    }

    fn snapshot(&self) -> Vec<Arc<Segment>> {
        self.segments.read().clone()
    }

    /// The first record with timestamp >= `ts`, as `(offset, timestamp)`.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        self.check_online()?;
        let log_start = self.log_start_offset();
        let log_end = self.log_end_offset();
        for segment in self.snapshot() {
            let (max_ts, start_offset) = {
                let state = segment.state.read();
                (
                    state.max_timestamp,
                    state.offset_for_time(segment.base_offset, ts),
                )
            };
            if max_ts < ts || segment.state.read().next_offset <= log_start {
                continue;
            }
            let from = start_offset.max(log_start);
            let mut found = None;
            for_each_batch(&segment, from, log_end, |position, header| {
                if header.max_timestamp < ts {
                    return Ok(ControlFlow::Continue(()));
                }
                let batch = segment.batch_at(position, header)?;
                let records = vltava_record::decode_records(&batch)?;
                found = records
                    .iter()
                    .find(|r| r.offset >= log_start && r.timestamp >= ts)
                    .map(|r| (r.offset, r.timestamp));
                Ok(if found.is_some() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                })
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Offset and timestamp of the first record carrying the log's largest
    /// timestamp (ListOffsets MAX_TIMESTAMP); `None` for an empty log.
    pub fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>, LogError> {
        self.check_online()?;
        let log_start = self.log_start_offset();
        let log_end = self.log_end_offset();
        let mut best: Option<(i64, Arc<Segment>, u64, BatchHeader)> = None;
        for segment in self.snapshot() {
            let state = segment.state.read().summary();
            let best_ts = best.as_ref().map_or(-1, |b| b.0);
            // The cached maximum is an upper bound (exact unless DeleteRecords
            // cut the segment), so most segments need no scan at all.
            if state.next_offset <= log_start || state.max_timestamp <= best_ts {
                continue;
            }
            let from = if segment.base_offset >= log_start {
                state.offset_of_max_timestamp
            } else {
                log_start
            };
            let mut segment_best: Option<(u64, BatchHeader)> = None;
            for_each_batch(&segment, from, log_end, |position, h| {
                if h.base_offset + i64::from(h.last_offset_delta) < from {
                    return Ok(ControlFlow::Continue(()));
                }
                if segment_best.is_none_or(|(_, b)| h.max_timestamp > b.max_timestamp) {
                    segment_best = Some((position, *h));
                }
                Ok(if h.max_timestamp >= state.max_timestamp {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                })
            })?;
            if let Some((position, h)) = segment_best {
                if h.max_timestamp > best_ts {
                    best = Some((h.max_timestamp, Arc::clone(&segment), position, h));
                }
            }
        }
        let Some((_, segment, position, header)) = best else {
            return Ok(None);
        };
        let batch = segment.batch_at(position, &header)?;
        let records = vltava_record::decode_records(&batch)?;
        Ok(records
            .iter()
            .filter(|r| r.offset >= log_start)
            .max_by_key(|r| (r.timestamp, std::cmp::Reverse(r.offset)))
            .map(|r| (r.offset, r.timestamp)))
    }

    /// DeleteRecords: moves the log start to `offset`, durably, and deletes
    /// the segments that lie wholly below it. Returns the new log start.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let _writer = self.writer.lock();
        self.check_not_failed()?;
        if offset > self.log_end_offset() || offset < 0 {
            return Err(self.out_of_range(offset));
        }
        if offset <= self.log_start_offset() {
            return Ok(self.log_start_offset());
        }
        self.advance_log_start(offset)?;
        self.delete_segments_below_start()?;
        Ok(offset)
    }

    /// Persists a new log start (tmp file, fsync, rename, fsync dir) and then
    /// publishes it. Caller holds the writer mutex.
    fn advance_log_start(&self, offset: i64) -> Result<(), LogError> {
        write_log_start(&self.dir, offset).map_err(|e| self.fail("log start write", e))?;
        self.log_start_offset.fetch_max(offset, Ordering::AcqRel);
        self.change_epochs(|c| c.truncate_from_start(offset))
    }

    /// Deletes every segment whose successor starts at or below the log start.
    fn delete_segments_below_start(&self) -> Result<usize, LogError> {
        let log_start = self.log_start_offset();
        let removed: Vec<Arc<Segment>> = {
            let mut segments = self.segments.write();
            let keep_from = segments
                .windows(2)
                .take_while(|w| w[1].base_offset <= log_start)
                .count();
            segments.drain(..keep_from).collect()
        };
        for segment in &removed {
            delete_segment_files(&self.dir, segment.base_offset)
                .map_err(|e| self.fail("segment delete", e))?;
        }
        Ok(removed.len())
    }

    /// Deletes the oldest segments that are past `retention_ms` or beyond
    /// `retention_bytes`. Returns how many were deleted.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        self.apply_retention_below(now_ms, i64::MAX)
    }

    /// [`Log::apply_retention`] for segments that end at or below `upper`
    /// only: a replicated partition passes its high watermark, so nothing
    /// its followers may still need, and no acks=all write still waiting
    /// for them, is deleted (Kafka's rule).
    pub fn apply_retention_below(&self, now_ms: i64, upper: i64) -> Result<usize, LogError> {
        let _writer = self.writer.lock();
        self.check_not_failed()?;
        let config = self.config();
        let segments = self.snapshot();
        let mut excess_bytes = if config.retention_bytes >= 0 {
            segments.iter().map(|s| s.size() as i64).sum::<i64>() - config.retention_bytes
        } else {
            i64::MIN
        };
        let mut expired = 0;
        for (i, segment) in segments.iter().enumerate() {
            let state = segment.state.read().summary();
            let end = segments
                .get(i + 1)
                .map_or(state.next_offset, |next| next.base_offset);
            if end > upper {
                break;
            }
            // Compaction can leave a closed segment empty: it holds nothing
            // to keep, so it must not stop retention of the ones after it.
            let empty_closed = state.size == 0 && i + 1 < segments.len();
            if empty_closed && (config.retention_ms >= 0 || excess_bytes >= 0) {
                expired += 1;
                continue;
            }
            let by_time = config.retention_ms >= 0
                && state.max_timestamp >= 0
                && now_ms - state.max_timestamp > config.retention_ms;
            let by_size = excess_bytes != i64::MIN && excess_bytes - state.size as i64 >= 0;
            if !(by_time || by_size) || state.size == 0 {
                break;
            }
            if by_size {
                excess_bytes -= state.size as i64;
            }
            expired += 1;
        }
        if expired == 0 {
            return self.delete_segments_below_start();
        }
        if expired == segments.len() {
            // Never leave the log without an active segment.
            self.roll(self.log_end_offset(), now_ms)?;
        }
        let new_start = self.segments.read()[expired].base_offset;
        if new_start > self.log_start_offset() {
            self.advance_log_start(new_start)?;
        }
        self.delete_segments_below_start()
    }

    /// Empties the log and restarts it at `offset`, at or past the log end
    /// (Kafka's `truncateFullyAndStartAt`): for a replica that installs a
    /// snapshot newer than its whole log. A new empty segment at `offset`
    /// is made durable, then the log start, then the old segments go; a
    /// crash in between leaves a log that ends at `offset` and a start that
    /// a retry moves up.
    pub fn truncate_fully_and_start_at(&self, offset: i64, now_ms: i64) -> Result<(), LogError> {
        let _writer = self.writer.lock();
        self.check_not_failed()?;
        let end = self.log_end_offset();
        if offset < end {
            return Err(self.out_of_range(offset));
        }
        self.change_epochs(epochs::EpochCache::clear)?;
        if offset > end {
            self.roll(offset, now_ms)?;
            self.log_end_offset.store(offset, Ordering::Release);
            let mut flush = self.flusher.lock();
            flush.flushed_offset = flush.flushed_offset.max(offset);
        }
        if offset > self.log_start_offset() {
            self.advance_log_start(offset)?;
        }
        self.delete_segments_below_start()?;
        Ok(())
    }

    /// Restarts a log that holds no records at `offset`, which may lie
    /// below its log start (a replica reset to its leader's log start, whose
    /// first batch begins before it, as after DeleteRecords mid-batch).
    /// A new empty segment at `offset` is made durable before the old ones
    /// are removed: a crash in between leaves an empty log that a retry
    /// resets again.
    pub fn reset_empty_at(&self, offset: i64, now_ms: i64) -> Result<(), LogError> {
        let _writer = self.writer.lock();
        self.check_not_failed()?;
        if self.log_start_offset() != self.log_end_offset() || offset < 0 {
            return Err(self.out_of_range(offset));
        }
        // The old files go first (what they hold is below the log start,
        // invisible, and must not become visible at a lower start); a crash
        // before the new segment exists leaves an empty log that opens at 0,
        // whose replica is reset again.
        let old: Vec<Arc<Segment>> = self.segments.read().clone();
        for segment in &old {
            delete_segment_files(&self.dir, segment.base_offset)
                .map_err(|e| self.fail("segment delete", e))?;
        }
        let fresh = Segment::create(&self.storage, &self.dir, offset)
            .map_err(|e| self.fail("segment create", e))?;
        fresh.state.write().created_ms = now_ms;
        sync_dir(&self.dir).map_err(|e| self.fail("segment create", e))?;
        *self.segments.write() = vec![Arc::new(fresh)];
        write_log_start(&self.dir, offset).map_err(|e| self.fail("log start write", e))?;
        self.log_start_offset.store(offset, Ordering::Release);
        self.log_end_offset.store(offset, Ordering::Release);
        self.flusher.lock().flushed_offset = offset;
        self.change_epochs(epochs::EpochCache::clear)
    }

    /// Removes every batch at or after the batch holding `offset` (for
    /// replication). The log end becomes the start of that batch.
    pub fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        let _writer = self.writer.lock();
        self.check_not_failed()?;
        if offset >= self.log_end_offset() {
            // Nothing to cut but epochs that start there (a leader's epoch
            // recorded at election, before it wrote anything).
            return self.change_epochs(|c| c.truncate_from_end(offset));
        }
        if offset < self.log_start_offset() {
            return Err(self.out_of_range(offset));
        }
        let removed: Vec<Arc<Segment>> = {
            let mut segments = self.segments.write();
            let keep = segments.partition_point(|s| s.base_offset <= offset).max(1);
            segments.drain(keep..).collect()
        };
        for segment in removed.iter().rev() {
            delete_segment_files(&self.dir, segment.base_offset)
                .map_err(|e| self.fail("segment delete", e))?;
        }
        let active = self.active();
        let mut cut = active.size();
        for_each_batch(&active, offset, i64::MAX, |position, header| {
            if header.last_offset() >= offset {
                cut = position;
                return Ok(ControlFlow::Break(()));
            }
            Ok(ControlFlow::Continue(()))
        })?;
        // Never shrink the file in place: a fetch may hold a range of it
        // (sendfile) that appends would then overwrite with other batches.
        // The kept prefix goes to a new file swapped in under the name; the
        // old segment keeps its file (and its bytes) for whoever holds it.
        let interval = self.config.read().index_interval_bytes;
        let replacement = (|| {
            let replacement = copy_prefix(&self.storage, &self.dir, &active, cut)?;
            replacement.rebuild_from_headers(interval)?;
            Ok::<_, io::Error>(Arc::new(replacement))
        })()
        .map_err(|e| self.fail("truncate", e))?;
        if let Some(last) = self.segments.write().last_mut() {
            *last = Arc::clone(&replacement);
        }
        let end = replacement.state.read().next_offset;
        // Producer state above the new end described batches that are gone.
        snapshot::remove_above(&self.dir, end).map_err(|e| self.fail("snapshot delete", e))?;
        self.log_end_offset.store(end, Ordering::Release);
        self.log_start_offset.fetch_min(end, Ordering::AcqRel);
        self.change_epochs(|c| c.truncate_from_end(end))?;
        // Offsets at or above `end` will be written again and were never
        // seen by the cleaner: its checkpoint must not cover them.
        self.cleaner_state
            .on_truncate(&self.dir, end)
            .map_err(|e| self.fail("cleaner checkpoint write", e))?;
        let mut flush = self.flusher.lock();
        flush.flushed_offset = flush.flushed_offset.min(end);
        Ok(())
    }

    #[cfg(test)]
    fn inject_write_failure(&self) {
        self.fail_next_write.store(true, Ordering::SeqCst);
    }
}

/// Reads from `segment` starting at the batch holding `offset`. `None` if no
/// batch in the segment ends at or after `offset`.
fn read_segment(
    segment: &Arc<Segment>,
    offset: i64,
    end: i64,
    max_bytes: usize,
) -> Result<Option<ReadSlice>, LogError> {
    let mut start: Option<u64> = None;
    let mut len = 0usize;
    for_each_batch(segment, offset, end, |position, header| {
        let total = header.total_bytes();
        if start.is_none() {
            if header.last_offset() >= offset {
                start = Some(position);
                len = total;
            }
            return Ok(ControlFlow::Continue(()));
        }
        if len + total > max_bytes {
            return Ok(ControlFlow::Break(()));
        }
        len += total;
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(start.map(|position| ReadSlice {
        file: Arc::clone(&segment.file),
        verified: Arc::clone(&segment.verified),
        path: segment.log_path.clone(),
        position,
        len,
    }))
}

/// Calls `f` with each batch header of `segment`, starting from the index
/// position for `from_offset`, until `f` breaks, the segment's published
/// size is reached, or a batch starts at or after `end_offset`.
fn for_each_batch<F>(
    segment: &Segment,
    from_offset: i64,
    end_offset: i64,
    mut f: F,
) -> Result<(), LogError>
where
    F: FnMut(u64, &BatchHeader) -> Result<ControlFlow<()>, LogError>,
{
    let (entry, size) = {
        let state = segment.state.read();
        (
            state.index_entry_for(segment.base_offset, from_offset),
            state.size,
        )
    };
    let mut position = match entry {
        Some(e) if index_entry_matches(segment, e, size) => u64::from(e.position),
        Some(e) => {
            // Indexes are checked on open only as far as is cheap; an entry
            // that points elsewhere than it says must not send a read to the
            // wrong batch (found by the index_lookup fuzz smoke test).
            tracing::warn!(
                segment = %segment.log_path.display(),
                relative_offset = e.relative_offset,
                position = e.position,
                "offset index entry does not match the log; scanning from the segment start"
            );
            0
        }
        None => 0,
    };
    while let Some(header) = segment.header_at(position, size)? {
        if header.base_offset >= end_offset {
            break;
        }
        if f(position, &header)?.is_break() {
            break;
        }
        position += header.total_bytes() as u64;
    }
    Ok(())
}

/// True if the batch at the entry's position has the entry's offset.
fn index_entry_matches(segment: &Segment, entry: segment::OffsetEntry, size: u64) -> bool {
    let expected = segment.base_offset + i64::from(entry.relative_offset);
    matches!(
        segment.header_at(u64::from(entry.position), size),
        Ok(Some(h)) if h.base_offset == expected
    )
}

fn read_dir_paths(dir: &Path) -> Result<Vec<std::path::PathBuf>, LogError> {
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir)? {
        paths.push(entry?.path());
    }
    Ok(paths)
}

/// Base offsets of the `*.log` files in `dir`, sorted; removes leftovers of
/// interrupted operations and index files without a log.
fn list_segments(dir: &Path) -> Result<(Vec<i64>, usize), LogError> {
    let mut paths = read_dir_paths(dir)?;
    // A swap or cleaner leftover is rare: only then is the cleaner's
    // completion run and the directory read again (one read per start
    // otherwise, with 10,000 partitions to open).
    let mut removed = 0;
    let interrupted = paths.iter().any(|p| {
        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
            n.ends_with(".log.swap") || n.ends_with(".cleaned") || n.ends_with(".deleted")
        })
    });
    if interrupted {
        removed = cleaner::finish_interrupted_swaps(dir)?;
        paths = read_dir_paths(dir)?;
    }
    let mut bases = Vec::new();
    let mut index_files = Vec::new();
    for path in paths {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(".cleaned")
            || name.ends_with(".truncated")
            || name.ends_with(".swap")
            || name.ends_with(".deleted")
            || name.ends_with(".tmp")
        {
            tracing::warn!(file = %path.display(), "removing leftover file");
            fs::remove_file(&path)?;
            removed += 1;
            continue;
        }
        let Some((stem, ext)) = name.split_once('.') else {
            continue;
        };
        let base = match stem.parse::<i64>() {
            Ok(base) if stem.len() == 20 && base >= 0 => base,
            _ => continue,
        };
        match ext {
            "log" => bases.push(base),
            "index" | "timeindex" => index_files.push((base, path)),
            _ => {}
        }
    }
    bases.sort_unstable();
    for (base, path) in index_files {
        if bases.binary_search(&base).is_err() {
            tracing::warn!(file = %path.display(), "removing index without a log file");
            fs::remove_file(&path)?;
            removed += 1;
        }
    }
    Ok((bases, removed))
}

fn open_closed_segment(
    storage: &Arc<dyn Storage>,
    dir: &Path,
    base: i64,
    next_base: i64,
    config: &LogConfig,
) -> Result<(Segment, bool), LogError> {
    let segment = Segment::open(storage, dir, base)?;
    let rebuilt = match segment.read_index_files()? {
        Some((offsets, times)) => !segment.load_indexes(&offsets, &times, next_base)?,
        None => true,
    };
    if rebuilt {
        tracing::warn!(segment = %segment.log_path.display(), "rebuilding indexes");
        segment.rebuild_from_headers(config.index_interval_bytes)?;
    }
    segment.release_index_files();
    Ok((segment, rebuilt))
}

/// What scanning the active segment found.
struct TailScan {
    valid_bytes: u64,
    batches: u64,
    truncated_bytes: u64,
}

/// Opens the last segment, validating every batch (CRC included) and cutting
/// the file at the first byte that is not part of a valid batch.
fn recover_last_segment(
    storage: &Arc<dyn Storage>,
    dir: &Path,
    base: i64,
    config: &LogConfig,
) -> Result<(Segment, TailScan), LogError> {
    let segment = Segment::open(storage, dir, base)?;
    let file_len = segment.size();
    let mut state = SegmentState::empty(base);
    let mut position = 0u64;
    let mut batches = 0u64;
    let mut reason = None;
    while position < file_len {
        match next_valid_batch(&segment, position, file_len, state.next_offset) {
            Ok(header) => {
                state.on_batch(base, position, &header, config.index_interval_bytes);
                position += header.total_bytes() as u64;
                batches += 1;
            }
            Err(e) => {
                reason = Some(e);
                break;
            }
        }
    }
    if let Some(reason) = reason {
        tracing::warn!(
            segment = %segment.log_path.display(),
            position,
            bytes = file_len - position,
            %reason,
            "truncating invalid tail of the log"
        );
        segment.file.set_len(position)?;
        segment.file.sync()?;
    }
    *segment.state.write() = state;
    segment.rewrite_indexes()?;
    segment.release_index_files();
    // Every batch up to `position` was just CRC-checked.
    segment.verified.insert(0, position);
    let scan = TailScan {
        valid_bytes: position,
        batches,
        truncated_bytes: file_len - position,
    };
    Ok((segment, scan))
}

/// Reads and fully validates the batch at `position`.
fn next_valid_batch(
    segment: &Segment,
    position: u64,
    file_len: u64,
    expected_offset: i64,
) -> Result<BatchHeader, String> {
    let available = (file_len - position) as usize;
    let mut prefix = [0u8; segment::LENGTH_PREFIX_BYTES];
    if available < prefix.len() {
        return Err(format!("partial batch length ({available} bytes)"));
    }
    segment
        .file
        .read_at(&mut prefix, position)
        .map_err(|e| e.to_string())?;
    let total = vltava_record::batch_total_bytes(&prefix).map_err(|e| e.to_string())?;
    if total > available {
        return Err(format!("partial batch ({available} of {total} bytes)"));
    }
    let mut batch = vec![0u8; total];
    segment
        .file
        .read_at(&mut batch, position)
        .map_err(|e| e.to_string())?;
    // Stored, not produced: a compacted batch may hold fewer records than its
    // offset range (a closed, cleaned segment becomes the last after
    // truncation).
    let header = vltava_record::validate_stored_batch(&batch).map_err(|e| e.to_string())?;
    if header.base_offset < expected_offset {
        return Err(format!(
            "offset {} goes backwards (expected >= {expected_offset})",
            header.base_offset
        ));
    }
    if header.last_offset() - segment.base_offset > i64::from(u32::MAX) {
        return Err(format!(
            "offset {} beyond segment range",
            header.last_offset()
        ));
    }
    Ok(header)
}

/// How much of a read range is whole, valid batches.
struct VerifiedPrefix {
    len: usize,
    error: Option<String>,
}

/// Walks the batches in `bytes` and stops at the first that is not whole,
/// not CRC-valid or whose base offset goes backwards.
fn verified_prefix(bytes: &[u8]) -> VerifiedPrefix {
    let mut position = 0;
    let mut next_offset = i64::MIN;
    while position < bytes.len() {
        let rest = &bytes[position..];
        let checked = vltava_record::batch_total_bytes(rest)
            .and_then(|total| {
                let batch = rest.get(..total).ok_or(RecordError::Truncated {
                    needed: total,
                    available: rest.len(),
                })?;
                vltava_record::validate_stored_batch(batch)
            })
            .map_err(|e| e.to_string())
            .and_then(|header| {
                if header.base_offset < next_offset {
                    return Err(format!("offset {} goes backwards", header.base_offset));
                }
                Ok(header)
            });
        match checked {
            Ok(header) => {
                next_offset = header.next_offset();
                position += header.total_bytes();
            }
            Err(reason) => {
                return VerifiedPrefix {
                    len: position,
                    error: Some(reason),
                }
            }
        }
    }
    VerifiedPrefix {
        len: position,
        error: None,
    }
}

fn delete_segment_files(dir: &Path, base: i64) -> io::Result<()> {
    // The .log goes first: a crash after it leaves only orphaned indexes,
    // which open() removes.
    for suffix in ["log", "index", "timeindex"] {
        match fs::remove_file(segment::file_path(dir, base, suffix)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn read_log_start(dir: &Path) -> Result<Option<i64>, LogError> {
    let path = dir.join(LOG_START_OFFSET_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match text.trim().parse::<i64>() {
        Ok(offset) => Ok(Some(offset)),
        Err(_) => {
            // It is only ever replaced by rename, so this means outside damage.
            tracing::warn!(file = %path.display(), "ignoring unreadable log start offset");
            Ok(None)
        }
    }
}

fn write_log_start(dir: &Path, offset: i64) -> io::Result<()> {
    write_durably(dir, LOG_START_OFFSET_FILE, format!("{offset}\n").as_bytes())
}

/// Replaces `dir/name` with `bytes` so that a crash leaves the old file or
/// the new one, never a mix: written to `name.tmp`, fsynced, renamed over
/// `name`, then the directory fsynced. Every small state file of the broker
/// is written this way.
/// [`write_durably`] without the fsyncs: a crash leaves the old file, the
/// new one, or (on some file systems) an empty one; for state that can be
/// rebuilt or is made durable later.
pub fn write_replacing(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let file = File::create(&tmp)?;
    file.write_all_at(bytes, 0)?;
    fs::rename(&tmp, dir.join(name))
}

pub fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let file = File::create(&tmp)?;
    file.write_all_at(bytes, 0)?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Chunk size for copying a segment's kept prefix on truncation.
const TRUNCATE_COPY_CHUNK_BYTES: u64 = 1 << 20;

/// Writes the first `len` bytes of `segment` to `<base>.log.truncated`,
/// fsyncs it, renames it over the segment's file and opens it as a new
/// segment. A crash before the rename leaves the old file (recovery removes
/// the `.truncated` leftover); after it, the new one.
fn copy_prefix(
    storage: &Arc<dyn Storage>,
    dir: &Path,
    segment: &Segment,
    len: u64,
) -> io::Result<Segment> {
    let tmp = segment::file_path(dir, segment.base_offset, "log.truncated");
    let out = storage.open(&tmp, true)?;
    let mut buf = vec![0u8; TRUNCATE_COPY_CHUNK_BYTES.min(len) as usize];
    let mut at = 0u64;
    while at < len {
        let n = (len - at).min(TRUNCATE_COPY_CHUNK_BYTES) as usize;
        segment.file.read_at(&mut buf[..n], at)?;
        out.write_at(&buf[..n], at)?;
        at += n as u64;
    }
    out.sync()?;
    drop(out);
    fs::rename(&tmp, &segment.log_path)?;
    sync_dir(dir)?;
    Segment::open(storage, dir, segment.base_offset)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
