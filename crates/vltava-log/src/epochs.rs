//! The leader-epoch cache: for each leader epoch that wrote to this log, the
//! offset of its first batch. Replicas compare it to find where their log
//! and their leader's part (OffsetForLeaderEpoch, and Fetch's
//! `LastFetchedEpoch` / `DivergingEpoch`).
//!
//! Kept in memory and in `leader-epoch-checkpoint`, in Kafka's layout, so
//! the file reads the same to Kafka's tools:
//!
//! ```text
//! 0            version
//! 2            number of entries
//! 0 0          epoch start-offset
//! 3 1500
//! ```
//!
//! Entries have strictly growing epochs and start offsets. The file is
//! replaced durably (temporary file, fsync, rename) whenever the cache
//! changes: when a batch of a new epoch is appended (written before the
//! batch, so the file never lacks an epoch the log holds; an entry whose
//! batch never made it is cut at the next open, as it starts at the log
//! end), when the log is truncated (entries from the cut on are dropped) and
//! when the log start moves (the entry covering the new start begins
//! there). A new leader's epoch, recorded at its log end when it is elected
//! (`Log::begin_leader_epoch`), is written without an fsync, since an
//! election touches many partitions at once; the next batch appended syncs
//! it first. A missing or damaged file is rebuilt from the batch headers.

use std::fs;
use std::io;
use std::path::Path;

/// The checkpoint's file name in a partition's directory (Kafka's).
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// Most entries read from a checkpoint; a file claiming more is treated as
/// damaged and the cache rebuilt from the log.
pub const LEADER_EPOCH_ENTRIES_MAX: usize = 1 << 20;

/// Largest checkpoint file read (about 40 bytes per entry at most).
const CHECKPOINT_BYTES_MAX: u64 = 48 << 20;

const VERSION: &str = "0";

/// Epoch `epoch` wrote its first batch at `start_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// What `end_offset_for` answers for an epoch no entry covers (Kafka's
/// UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET).
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct EpochCache {
    entries: Vec<EpochEntry>,
    /// The file holds these entries but was not fsynced (a new leader's
    /// epoch, recorded before it wrote anything): synced before the next
    /// batch is written, so the file never lacks an epoch the log holds.
    unsynced: bool,
}

impl EpochCache {
    /// The checkpoint in `dir`: `Ok(None)` when there is none or it is
    /// damaged (logged), so the caller rebuilds it from the log.
    pub(crate) fn load(dir: &Path) -> io::Result<Option<EpochCache>> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        let len = match fs::metadata(&path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if len > CHECKPOINT_BYTES_MAX {
            tracing::warn!(file = %path.display(), len, "leader epoch checkpoint too large; rebuilding it from the log");
            return Ok(None);
        }
        let bytes = fs::read(&path)?;
        match std::str::from_utf8(&bytes)
            .map_err(|_| "not UTF-8".to_string())
            .and_then(parse)
        {
            Ok(entries) => Ok(Some(EpochCache {
                entries,
                unsynced: false,
            })),
            Err(reason) => {
                tracing::warn!(file = %path.display(), %reason, "leader epoch checkpoint damaged; rebuilding it from the log");
                Ok(None)
            }
        }
    }

    /// Writes the checkpoint (replaced by rename, so a crash leaves the old
    /// file or the new one), fsynced when `durable`.
    pub(crate) fn save(&mut self, dir: &Path, durable: bool) -> io::Result<()> {
        let mut text = format!("{VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        match durable {
            true => crate::write_durably(dir, LEADER_EPOCH_CHECKPOINT_FILE, text.as_bytes())?,
            false => crate::write_replacing(dir, LEADER_EPOCH_CHECKPOINT_FILE, text.as_bytes())?,
        }
        self.unsynced = !durable;
        Ok(())
    }

    /// Whether the file was written without an fsync since.
    pub(crate) fn unsynced(&self) -> bool {
        self.unsynced
    }

    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub(crate) fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Notes that `epoch` starts at `start_offset` (its first batch, or a
    /// new leader's log end at election); returns whether the cache
    /// changed. As Kafka's `assign`: the latest epoch again at or after its
    /// start changes nothing; otherwise every entry that would no longer
    /// grow monotonically (an epoch at or above this one, or a start at or
    /// after this one) goes, with a log line when that drops a newer
    /// epoch, and the entry is added. Negative epochs (batches written
    /// before epochs existed) are not tracked.
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 {
            return false;
        }
        if let Some(latest) = self.latest() {
            if latest.epoch == epoch && start_offset >= latest.start_offset {
                return false;
            }
            if latest.epoch > epoch {
                tracing::warn!(
                    epoch,
                    start_offset,
                    latest = latest.epoch,
                    "leader epoch older than the log's latest; dropping the newer entries"
                );
            }
        }
        self.entries
            .retain(|e| e.epoch < epoch && e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Drops the entries of epochs that start at or after `end` (the log
    /// was truncated there).
    pub(crate) fn truncate_from_end(&mut self, end: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end);
        self.entries.len() != before
    }

    /// The log now starts at `start`: entries wholly below it go, and the
    /// one covering it starts there.
    pub(crate) fn truncate_from_start(&mut self, start: i64) -> bool {
        let covering = self.entries.partition_point(|e| e.start_offset <= start);
        if covering == 0 {
            return false;
        }
        let first = covering - 1;
        if first == 0 && self.entries[0].start_offset == start {
            return false;
        }
        self.entries.drain(..first);
        self.entries[0].start_offset = start;
        true
    }

    pub(crate) fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    /// Kafka's `endOffsetFor`: the largest epoch at or below `epoch` this
    /// log holds and the offset where it ended (the start of the next epoch,
    /// or `log_end` for the latest). An epoch above every one known, or a
    /// log without epochs, gives (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
    /// an epoch below every one known gives (`epoch`, the first start).
    pub(crate) fn end_offset_for(&self, epoch: i32, log_end: i64) -> (i32, i64) {
        if epoch < 0 {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        match self.latest() {
            None => (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET),
            Some(latest) if latest.epoch == epoch => (epoch, log_end),
            Some(_) => {
                let higher = self.entries.partition_point(|e| e.epoch <= epoch);
                let Some(next) = self.entries.get(higher) else {
                    return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
                };
                match higher.checked_sub(1).map(|i| self.entries[i]) {
                    Some(floor) => (floor.epoch, next.start_offset),
                    None => (epoch, next.start_offset),
                }
            }
        }
    }
}

fn parse(text: &str) -> Result<Vec<EpochEntry>, String> {
    let mut lines = text.lines();
    if lines.next() != Some(VERSION) {
        return Err("unknown version".into());
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("no entry count")?;
    if count > LEADER_EPOCH_ENTRIES_MAX {
        return Err(format!(
            "{count} entries, more than {LEADER_EPOCH_ENTRIES_MAX}"
        ));
    }
    let mut entries: Vec<EpochEntry> = Vec::with_capacity(count);
    for _ in 0..count {
        let line = lines.next().ok_or("fewer entries than counted")?;
        let mut fields = line.split_whitespace();
        let (Some(epoch), Some(start), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(format!("malformed entry {line:?}"));
        };
        let entry = EpochEntry {
            epoch: epoch.parse().map_err(|_| format!("bad epoch {epoch:?}"))?,
            start_offset: start.parse().map_err(|_| format!("bad offset {start:?}"))?,
        };
        if entry.epoch < 0 || entry.start_offset < 0 {
            return Err(format!("negative entry {line:?}"));
        }
        if let Some(previous) = entries.last() {
            if entry.epoch <= previous.epoch || entry.start_offset <= previous.start_offset {
                return Err(format!("entry {line:?} does not follow the one before"));
            }
        }
        entries.push(entry);
    }
    if lines.any(|l| !l.trim().is_empty()) {
        return Err("more entries than counted".into());
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        let mut c = EpochCache::default();
        for &(epoch, start) in entries {
            assert!(c.assign(epoch, start));
        }
        c
    }

    fn pairs(c: &EpochCache) -> Vec<(i32, i64)> {
        c.entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    #[test]
    fn assign_keeps_epochs_and_offsets_growing() {
        let mut c = cache(&[(0, 0), (2, 10)]);
        assert!(!c.assign(2, 15), "the latest epoch later on adds nothing");
        assert!(!c.assign(-1, 20));
        // A new epoch at an offset an entry already starts at replaces it.
        assert!(c.assign(5, 10));
        assert_eq!(pairs(&c), [(0, 0), (5, 10)]);
        // The latest epoch at an earlier start moves its start back.
        assert!(c.assign(5, 7));
        assert_eq!(pairs(&c), [(0, 0), (5, 7)]);
        // An older epoch drops every entry it does not follow.
        assert!(c.assign(3, 20));
        assert_eq!(pairs(&c), [(0, 0), (3, 20)]);
    }

    /// Kafka's `endOffsetFor` cases.
    #[test]
    fn end_offset_for_epochs_known_unknown_and_between() {
        let c = cache(&[(1, 0), (3, 10), (6, 25)]);
        assert_eq!(c.end_offset_for(6, 40), (6, 40), "latest: the log end");
        assert_eq!(c.end_offset_for(3, 40), (3, 25));
        assert_eq!(c.end_offset_for(4, 40), (3, 25), "between: the floor epoch");
        assert_eq!(c.end_offset_for(0, 40), (0, 0), "below all: first start");
        assert_eq!(c.end_offset_for(7, 40), (-1, -1), "above all");
        assert_eq!(c.end_offset_for(-1, 40), (-1, -1));
        assert_eq!(EpochCache::default().end_offset_for(0, 5), (-1, -1));
    }

    #[test]
    fn truncation_from_either_end() {
        let mut c = cache(&[(1, 0), (3, 10), (6, 25)]);
        assert!(c.truncate_from_end(25));
        assert_eq!(pairs(&c), [(1, 0), (3, 10)]);
        assert!(!c.truncate_from_end(30));
        assert!(c.truncate_from_start(12));
        assert_eq!(pairs(&c), [(3, 12)]);
        assert!(!c.truncate_from_start(12));
        assert!(!c.truncate_from_start(5), "below every entry: unchanged");
        let mut c = cache(&[(1, 0), (3, 10)]);
        assert!(c.truncate_from_start(10));
        assert_eq!(pairs(&c), [(3, 10)]);
    }

    #[test]
    fn the_checkpoint_round_trips_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(EpochCache::load(dir.path()).unwrap(), None);
        let mut c = cache(&[(0, 0), (4, 7)]);
        c.save(dir.path(), true).unwrap();
        let text = fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n2\n0 0\n4 7\n");
        assert_eq!(EpochCache::load(dir.path()).unwrap(), Some(c));
        for bad in [
            "1\n0\n",
            "0\n2\n0 0\n",
            "0\n1\n0 0\n1 5\n",
            "0\n2\n3 0\n2 5\n",
            "0\n2\n0 5\n1 5\n",
            "0\n1\n-1 0\n",
            "0\n1\n0 0 0\n",
            "0\n99999999999\n",
            "0\nx\n",
        ] {
            fs::write(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE), bad).unwrap();
            assert_eq!(EpochCache::load(dir.path()).unwrap(), None, "{bad:?}");
        }
    }
}
