//! openraft's log on `vltava-log`: entry `i` is the batch at offset `i`,
//! one record holding the entry as JSON, the batch's partition leader epoch
//! the entry's term (as KRaft's metadata log keeps epochs). Appends are
//! fsynced before openraft is told they are durable; the vote is written to
//! `quorum-state` (temporary file, fsync, rename, directory fsync) before
//! `save_vote` returns, as openraft's storage contract requires.

use std::fmt::Debug;
use std::fs;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;
use vltava_log::{Log, LogConfig};
use vltava_record::{batches, decode_records, BatchBuilder, Compression};

use crate::{NodeId, TypeConfig};

/// Reads of the log are done in chunks of this many bytes.
const READ_BYTES: usize = 1 << 20;
/// The vote file, named as KRaft names it.
const VOTE_FILE: &str = "quorum-state";
/// The last purged log id (entries up to it were removed after a snapshot).
const PURGED_FILE: &str = "purged-log-id";

type Result<T> = std::result::Result<T, StorageError<NodeId>>;

/// The log: cheap to clone (openraft reads through a clone while it
/// appends through the original).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    log: Log,
    /// Where the vote and the purged id live.
    state_dir: PathBuf,
    disk_wait: Option<vltava_log::storage::DiskWait>,
}

impl LogStore {
    /// Opens the log in `log_dir` (recovering its tail as any Vltava log)
    /// and the vote files in `state_dir`.
    pub fn open(
        log_dir: &Path,
        state_dir: &Path,
        storage: Arc<dyn vltava_log::storage::Storage>,
        disk_wait: Option<vltava_log::storage::DiskWait>,
    ) -> io::Result<LogStore> {
        let config = LogConfig {
            retention_ms: -1,
            retention_bytes: -1,
            segment_bytes: 64 << 20,
            // Fsynced once per append call below, not per record.
            flush_messages: u64::MAX,
            ..LogConfig::default()
        };
        let log =
            Log::open_with_storage(log_dir, config, now_ms(), storage).map_err(io::Error::other)?;
        Ok(LogStore {
            inner: Arc::new(Inner {
                log,
                state_dir: state_dir.to_path_buf(),
                disk_wait,
            }),
        })
    }

    /// Whether the node has never held an entry or a vote.
    pub fn is_empty(&self) -> bool {
        self.inner.log.log_end_offset() == 0
            && !self.inner.state_dir.join(VOTE_FILE).exists()
            && !self.inner.state_dir.join(PURGED_FILE).exists()
    }

    fn entries(&self, from: u64, to: u64) -> Result<Vec<Entry<TypeConfig>>> {
        let log = &self.inner.log;
        let end = (to as i64).min(log.log_end_offset());
        let mut offset = (from as i64).max(log.log_start_offset());
        let mut out = Vec::new();
        while offset < end {
            let slice = log
                .read(offset, end, READ_BYTES)
                .map_err(|e| StorageIOError::read_logs(&e))?;
            let bytes = slice
                .to_bytes()
                .map_err(|e| StorageIOError::read_logs(&e))?;
            if bytes.is_empty() {
                break;
            }
            for batch in batches(&bytes) {
                let batch = batch.map_err(|e| StorageIOError::read_logs(&e))?;
                for record in decode_records(&batch).map_err(|e| StorageIOError::read_logs(&e))? {
                    if record.offset < offset || record.offset >= end {
                        continue;
                    }
                    let value = record.value.unwrap_or_default();
                    let entry: Entry<TypeConfig> = serde_json::from_slice(&value)
                        .map_err(|e| StorageIOError::read_logs(&e))?;
                    // The invariant the layout rests on: entry i at offset i.
                    if entry.log_id.index != record.offset as u64 {
                        return Err(StorageIOError::read_logs(&io::Error::other(format!(
                            "log entry {} found at offset {}",
                            entry.log_id.index, record.offset
                        )))
                        .into());
                    }
                    offset = record.offset + 1;
                    out.push(entry);
                }
            }
        }
        Ok(out)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>> {
        let from = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(x) => x.saturating_add(1),
            Bound::Excluded(x) => *x,
            Bound::Unbounded => u64::MAX,
        };
        // Offsets are i64: keep both ends in range before they are cast.
        let cap = i64::MAX as u64;
        self.entries(from.min(cap), to.min(cap))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId<NodeId>> =
            read_json(&self.inner.state_dir.join(PURGED_FILE))
                .map_err(|e| StorageIOError::read_logs(&e))?;
        let end = self.inner.log.log_end_offset();
        let last = if end > self.inner.log.log_start_offset() {
            self.entries(end as u64 - 1, end as u64)?
                .pop()
                .map(|e| e.log_id)
        } else {
            None
        };
        // After a crash between recording a purge and deleting, the log may
        // end below the purged id: the last id is the larger.
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last.max(last_purged_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<()> {
        blocking(|| write_json(&self.inner.state_dir, VOTE_FILE, vote))
            .map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>> {
        Ok(read_json(&self.inner.state_dir.join(VOTE_FILE))
            .map_err(|e| StorageIOError::read_vote(&e))?)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        if let Some(wait) = &self.inner.disk_wait {
            tokio::time::sleep(wait.next()).await;
        }
        let log = &self.inner.log;
        let now = now_ms();
        for entry in entries {
            let mut expected = log.log_end_offset() as u64;
            // After a snapshot newer than the whole log was installed, the
            // next entry follows the snapshot: restart the log there.
            // The snapshot file is read only for an entry past the log end
            // (rare): not on every append.
            let snapshot = (entry.log_id.index > expected)
                .then(|| crate::state_machine::durable_snapshot_last_log_id(&self.inner.state_dir))
                .flatten()
                .filter(|last| last.index.saturating_add(1) == entry.log_id.index);
            if let Some(snapshot) = snapshot {
                // The entries before it are in the snapshot: recorded as
                // purged first, as a purge does, or the next start finds a
                // log beginning past index 0 with nothing purged and cannot
                // start (found by the simulation: a voter that installed a
                // snapshot, appended and restarted).
                let state_dir = &self.inner.state_dir;
                blocking(|| {
                    write_json(state_dir, PURGED_FILE, &snapshot)?;
                    log.truncate_fully_and_start_at(entry.log_id.index as i64, now)
                        .map_err(io::Error::other)
                })
                .map_err(|e| StorageIOError::write_logs(&e))?;
                expected = entry.log_id.index;
            }
            if entry.log_id.index != expected {
                let e = io::Error::other(format!(
                    "append of entry {} at log end {expected}: the log must have no holes",
                    entry.log_id.index
                ));
                callback.log_io_completed(Err(io::Error::other(e.to_string())));
                return Err(StorageIOError::write_logs(&e).into());
            }
            let value = serde_json::to_vec(&entry).map_err(|e| StorageIOError::write_logs(&e))?;
            let batch = BatchBuilder::new(Compression::None)
                .record(None, Some(Bytes::from(value)), Vec::new(), now)
                .build();
            let term = i32::try_from(entry.log_id.leader_id.term).unwrap_or(i32::MAX);
            blocking(|| log.append(batch, term, now))
                .map_err(|e| StorageIOError::write_logs(&e))?;
        }
        match blocking(|| log.flush()) {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(&e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        // Removes entries from `log_id.index` on (a follower's conflicting tail).
        let log = &self.inner.log;
        blocking(|| {
            log.truncate_to(log_id.index as i64)?;
            log.flush()
        })
        .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        // Entries up to and including `log_id` are in a snapshot now, or
        // about to be: openraft may ask for a purge while the snapshot that
        // covers it is still being installed. Only what the durable
        // snapshot covers is removed; the rest goes at a later purge.
        let Some(covered) = snapshot_last_index(&self.inner.state_dir) else {
            return Ok(());
        };
        let upto = log_id.index.min(covered);
        let recorded = if upto == log_id.index {
            log_id
        } else {
            match self.entries(upto, upto + 1)?.pop() {
                Some(entry) => entry.log_id,
                None => return Ok(()),
            }
        };
        let state_dir = &self.inner.state_dir;
        let log = &self.inner.log;
        blocking(|| {
            // Recorded first: a crash after it leaves entries the purged id
            // covers, which get_log_state and the next purge deal with.
            write_json(state_dir, PURGED_FILE, &recorded)?;
            let start = upto as i64 + 1;
            if start > log.log_end_offset() {
                log.truncate_fully_and_start_at(start, now_ms())
                    .map_err(io::Error::other)
            } else {
                log.delete_records_before(start)
                    .map(|_| ())
                    .map_err(io::Error::other)
            }
        })
        .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}

/// The last log index the durable snapshot (`snapshot.json`) covers.
fn snapshot_last_index(dir: &Path) -> Option<u64> {
    crate::state_machine::durable_snapshot_last_index(dir)
}

/// Runs file work that blocks (writes, fsyncs, segment copies) without
/// stalling the async workers that carry heartbeats.
pub(crate) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Wall-clock milliseconds since the epoch (entry timestamps, and the
/// peer times DescribeQuorum reports).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Largest state file (vote, purged id, snapshot) written or read back: a
/// file claiming more is refused rather than allocated.
pub(crate) const STATE_FILE_BYTES_MAX: u64 = 512 * 1024 * 1024;

/// Writes `value` as JSON to `dir/name` durably (see
/// [`vltava_log::write_durably`]).
pub(crate) fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    if bytes.len() as u64 > STATE_FILE_BYTES_MAX {
        return Err(io::Error::other(format!(
            "{name}: {} bytes is over STATE_FILE_BYTES_MAX ({STATE_FILE_BYTES_MAX})",
            bytes.len()
        )));
    }
    vltava_log::write_durably(dir, name, &bytes)
}

/// Reads JSON from `path`; `None` when the file does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match fs::metadata(path) {
        Ok(m) if m.len() > STATE_FILE_BYTES_MAX => {
            return Err(io::Error::other(format!(
                "{}: {} bytes is over STATE_FILE_BYTES_MAX ({STATE_FILE_BYTES_MAX})",
                path.display(),
                m.len()
            )));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::other(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
