//! One segment: a `.log` file of verbatim batches plus its two sparse
//! indexes, kept in memory and appended to their files.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use vltava_record::{BatchHeader, RecordError, BATCH_HEADER_BYTES, LOG_OVERHEAD};

use crate::storage::{SegmentFile, Storage};

/// Bytes of one `.index` entry: relative offset and position, each a
/// big-endian u32.
pub const OFFSET_ENTRY_BYTES: usize = 8;
/// Bytes of one `.timeindex` entry: timestamp (big-endian i64) and relative
/// offset (big-endian u32).
pub const TIME_ENTRY_BYTES: usize = 12;

/// `<base offset, 20 digits>.<suffix>` inside `dir`.
pub(crate) fn file_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// One `.index` entry: the batch at `base offset + relative_offset` starts
/// at byte `position` of the `.log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

impl OffsetEntry {
    pub fn to_bytes(self) -> [u8; OFFSET_ENTRY_BYTES] {
        let mut buf = [0u8; OFFSET_ENTRY_BYTES];
        buf[..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        buf[4..].copy_from_slice(&self.position.to_be_bytes());
        buf
    }

    pub fn from_bytes(b: &[u8; OFFSET_ENTRY_BYTES]) -> OffsetEntry {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// One `.timeindex` entry: records up to `timestamp` are found at or
/// before `base offset + relative_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl TimeEntry {
    pub fn to_bytes(self) -> [u8; TIME_ENTRY_BYTES] {
        let mut buf = [0u8; TIME_ENTRY_BYTES];
        buf[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        buf[8..].copy_from_slice(&self.relative_offset.to_be_bytes());
        buf
    }

    pub fn from_bytes(b: &[u8; TIME_ENTRY_BYTES]) -> TimeEntry {
        let mut timestamp = [0u8; 8];
        timestamp.copy_from_slice(&b[..8]);
        TimeEntry {
            timestamp: i64::from_be_bytes(timestamp),
            relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
}

/// The most bytes an index of a `log_bytes`-long segment can hold: at most
/// one entry per batch, and no batch is shorter than its header (one more
/// for the entry a seal adds). A longer file was not written by the log.
pub fn index_file_bytes_max(log_bytes: u64, entry_bytes: usize) -> u64 {
    (log_bytes / BATCH_HEADER_BYTES as u64 + 1).saturating_mul(entry_bytes as u64)
}

/// Everything about a segment that changes on append. Guarded by a short
/// read/write lock; the file bytes past `size` are never looked at by readers.
#[derive(Debug, Clone)]
pub(crate) struct SegmentState {
    /// Bytes of complete batches in the file.
    pub size: u64,
    /// Offset after the last batch, or the base offset when empty.
    pub next_offset: i64,
    /// Largest batch max timestamp so far (-1 when none).
    pub max_timestamp: i64,
    /// Base offset of the first batch that reached `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    /// Max timestamp of the first batch, for time-based rolling.
    pub first_batch_timestamp: Option<i64>,
    /// Wall-clock creation time, for rolling segments without timestamps.
    pub created_ms: i64,
    pub offset_index: Vec<OffsetEntry>,
    pub time_index: Vec<TimeEntry>,
    bytes_since_index_entry: u64,
}

/// A segment's scalars, copied out of [`SegmentState`] without its index
/// entries (which grow with the segment: copying them on every append or
/// retention check cost time in proportion to its size).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentSummary {
    pub size: u64,
    pub next_offset: i64,
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: i64,
    pub first_batch_timestamp: Option<i64>,
    pub created_ms: i64,
}

/// Index entries produced by one appended batch, to be written to the files.
#[derive(Debug, Default)]
pub(crate) struct NewEntries {
    pub offset: Option<OffsetEntry>,
    pub time: Option<TimeEntry>,
}

impl SegmentState {
    pub(crate) fn summary(&self) -> SegmentSummary {
        SegmentSummary {
            size: self.size,
            next_offset: self.next_offset,
            max_timestamp: self.max_timestamp,
            offset_of_max_timestamp: self.offset_of_max_timestamp,
            first_batch_timestamp: self.first_batch_timestamp,
            created_ms: self.created_ms,
        }
    }

    pub fn empty(base_offset: i64) -> SegmentState {
        SegmentState {
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            first_batch_timestamp: None,
            created_ms: 0,
            offset_index: Vec::new(),
            time_index: Vec::new(),
            bytes_since_index_entry: 0,
        }
    }

    /// Accounts for a batch written at `position` (= the old `size`). Returns
    /// the index entries it produced, already pushed to the in-memory indexes.
    pub fn on_batch(
        &mut self,
        base_offset: i64,
        position: u64,
        header: &BatchHeader,
        index_interval_bytes: u32,
    ) -> NewEntries {
        let len = header.total_bytes() as u64;
        debug_assert_eq!(position, self.size);
        self.size = position + len;
        self.next_offset = header.next_offset();
        if self.first_batch_timestamp.is_none() {
            self.first_batch_timestamp = Some(header.max_timestamp);
        }
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.base_offset;
        }
        self.bytes_since_index_entry += len;
        let mut new = NewEntries::default();
        if self.bytes_since_index_entry >= u64::from(index_interval_bytes) {
            self.bytes_since_index_entry = 0;
            let entry = OffsetEntry {
                relative_offset: relative(base_offset, header.base_offset),
                position: position as u32,
            };
            self.offset_index.push(entry);
            new.offset = Some(entry);
            new.time = self.maybe_time_entry(base_offset);
        }
        new
    }

    /// The `.index` and `.timeindex` file contents for the in-memory entries.
    pub fn index_bytes(&self) -> (Vec<u8>, Vec<u8>) {
        let offsets = self.offset_index.iter().flat_map(|e| e.to_bytes());
        let times = self.time_index.iter().flat_map(|e| e.to_bytes());
        (offsets.collect(), times.collect())
    }

    /// A time index entry for the current maximum if it is newer than the
    /// last entry. Also used when the segment is closed.
    pub fn maybe_time_entry(&mut self, base_offset: i64) -> Option<TimeEntry> {
        let last = self.time_index.last().map_or(-1, |e| e.timestamp);
        if self.max_timestamp <= last || self.max_timestamp < 0 {
            return None;
        }
        let entry = TimeEntry {
            timestamp: self.max_timestamp,
            relative_offset: relative(base_offset, self.offset_of_max_timestamp),
        };
        self.time_index.push(entry);
        Some(entry)
    }

    /// The index entry to start scanning from for `offset`: the largest at
    /// or below it; `None` means the segment start.
    pub fn index_entry_for(&self, base_offset: i64, offset: i64) -> Option<OffsetEntry> {
        let target = offset - base_offset;
        let i = self
            .offset_index
            .partition_point(|e| i64::from(e.relative_offset) <= target);
        i.checked_sub(1).map(|i| self.offset_index[i])
    }

    /// Offset to start a timestamp search from: the last time index entry
    /// with a timestamp strictly below `ts`. Every batch before that entry's
    /// offset has a max timestamp below `ts`.
    pub fn offset_for_time(&self, base_offset: i64, ts: i64) -> i64 {
        let i = self.time_index.partition_point(|e| e.timestamp < ts);
        if i == 0 {
            base_offset
        } else {
            base_offset + i64::from(self.time_index[i - 1].relative_offset)
        }
    }
}

fn relative(base_offset: i64, offset: i64) -> u32 {
    let rel = offset - base_offset;
    assert!(
        (0..=i64::from(u32::MAX)).contains(&rel),
        "offset {offset} does not fit segment {base_offset}"
    );
    rel as u32
}

/// An index file opened only while it is being written. Indexes live in
/// memory; keeping their files closed otherwise means an idle partition
/// holds one descriptor (its `.log`), not three, so 10,000 partitions fit
/// a 20,000-descriptor limit.
struct LazyFile {
    path: PathBuf,
    open: parking_lot::Mutex<Option<Arc<dyn SegmentFile>>>,
}

impl LazyFile {
    fn new(path: PathBuf) -> LazyFile {
        LazyFile {
            path,
            open: parking_lot::Mutex::new(None),
        }
    }

    fn get(&self, storage: &dyn Storage) -> io::Result<Arc<dyn SegmentFile>> {
        let mut open = self.open.lock();
        if let Some(file) = &*open {
            return Ok(file.clone());
        }
        let file = storage.open(&self.path, false)?;
        *open = Some(file.clone());
        Ok(file)
    }

    /// Syncs the file if it is open (a closed one has nothing unsynced:
    /// it is closed only after a sync, or after a rewrite of derived data).
    fn sync(&self) -> io::Result<()> {
        let open = self.open.lock().clone();
        open.map_or(Ok(()), |f| f.sync())
    }

    fn release(&self) {
        self.open.lock().take();
    }
}

/// Byte ranges of a segment known to hold whole, CRC-valid batches: written
/// by this process from validated batches, checked by recovery, or checked
/// on an earlier read. Ranges inside it may be sent without being read
/// (zero-copy); anything else is read and checked first.
#[derive(Debug, Default)]
pub struct VerifiedRanges {
    /// Sorted, disjoint, non-adjacent `[start, end)` ranges.
    ranges: parking_lot::Mutex<Vec<(u64, u64)>>,
}

impl VerifiedRanges {
    pub fn contains(&self, start: u64, end: u64) -> bool {
        let ranges = self.ranges.lock();
        let i = ranges.partition_point(|&(_, e)| e < end);
        ranges.get(i).is_some_and(|&(s, e)| s <= start && end <= e)
    }

    pub fn insert(&self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let mut ranges = self.ranges.lock();
        // Merge every range that touches [start, end).
        let first = ranges.partition_point(|&(_, e)| e < start);
        let last = ranges.partition_point(|&(s, _)| s <= end);
        let (mut new_start, mut new_end) = (start, end);
        if first < last {
            new_start = new_start.min(ranges[first].0);
            new_end = new_end.max(ranges[last - 1].1);
        }
        ranges.splice(first..last, [(new_start, new_end)]);
    }
}

pub(crate) struct Segment {
    pub base_offset: i64,
    pub verified: Arc<VerifiedRanges>,
    pub log_path: PathBuf,
    /// Shared with readers for positional reads; writes go through
    /// `write_at` at `size`, so readers never see a torn batch.
    pub file: Arc<dyn SegmentFile>,
    storage: Arc<dyn Storage>,
    offset_index_file: LazyFile,
    time_index_file: LazyFile,
    pub state: RwLock<SegmentState>,
    /// An index entry failed to reach its file (disk full): the in-memory
    /// index is right, the file is rewritten from it before the segment is
    /// sealed.
    indexes_dirty: AtomicBool,
}

impl Segment {
    /// Creates a new, empty segment (files truncated if present).
    pub fn create(storage: &Arc<dyn Storage>, dir: &Path, base_offset: i64) -> io::Result<Segment> {
        let log_path = file_path(dir, base_offset, "log");
        let file = storage.open(&log_path, true)?;
        let index_path = file_path(dir, base_offset, "index");
        let time_path = file_path(dir, base_offset, "timeindex");
        // Created empty now, as Kafka does; opened again when written.
        storage.open(&index_path, true)?;
        storage.open(&time_path, true)?;
        Ok(Segment {
            base_offset,
            verified: Arc::default(),
            file,
            storage: storage.clone(),
            offset_index_file: LazyFile::new(index_path),
            time_index_file: LazyFile::new(time_path),
            log_path,
            state: RwLock::new(SegmentState::empty(base_offset)),
            indexes_dirty: AtomicBool::new(false),
        })
    }

    /// Opens an existing segment without looking at its contents.
    pub fn open(storage: &Arc<dyn Storage>, dir: &Path, base_offset: i64) -> io::Result<Segment> {
        let log_path = file_path(dir, base_offset, "log");
        let file = storage.open(&log_path, false)?;
        let index_path = file_path(dir, base_offset, "index");
        let time_path = file_path(dir, base_offset, "timeindex");
        let mut state = SegmentState::empty(base_offset);
        state.size = file.len()?;
        Ok(Segment {
            base_offset,
            verified: Arc::default(),
            file,
            storage: storage.clone(),
            offset_index_file: LazyFile::new(index_path),
            time_index_file: LazyFile::new(time_path),
            log_path,
            state: RwLock::new(state),
            indexes_dirty: AtomicBool::new(false),
        })
    }

    /// The bytes of the `.index` and `.timeindex` files, or `None` when
    /// either is longer than [`index_file_bytes_max`] allows for this
    /// segment (then it is rebuilt, never read into memory).
    pub fn read_index_files(&self) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
        let size = self.size();
        let offsets = self.offset_index_file.get(&*self.storage)?;
        let times = self.time_index_file.get(&*self.storage)?;
        let offsets_len = offsets.len()?;
        let times_len = times.len()?;
        if offsets_len > index_file_bytes_max(size, OFFSET_ENTRY_BYTES)
            || times_len > index_file_bytes_max(size, TIME_ENTRY_BYTES)
        {
            tracing::warn!(
                segment = %self.log_path.display(),
                log_bytes = size,
                index_bytes = offsets_len,
                time_index_bytes = times_len,
                "index files longer than any index of this segment"
            );
            return Ok(None);
        }
        Ok(Some((
            read_all(&*offsets, offsets_len)?,
            read_all(&*times, times_len)?,
        )))
    }

    pub fn size(&self) -> u64 {
        self.state.read().size
    }

    pub fn write_entries(&self, new: &NewEntries, counts: (usize, usize)) -> io::Result<()> {
        if let Some(e) = new.offset {
            let at = (counts.0 - 1) * OFFSET_ENTRY_BYTES;
            self.offset_index_file
                .get(&*self.storage)?
                .write_at(&e.to_bytes(), at as u64)?;
        }
        if let Some(e) = new.time {
            self.write_time_entry(e, counts.1 - 1)?;
        }
        Ok(())
    }

    pub fn write_time_entry(&self, e: TimeEntry, index: usize) -> io::Result<()> {
        self.time_index_file
            .get(&*self.storage)?
            .write_at(&e.to_bytes(), (index * TIME_ENTRY_BYTES) as u64)
    }

    /// Remembers that the index files lag the in-memory indexes.
    pub fn mark_indexes_dirty(&self) {
        self.indexes_dirty.store(true, Ordering::Release);
    }

    /// Rewrites the index files if an entry failed to reach them.
    pub fn repair_indexes(&self) -> io::Result<()> {
        if self.indexes_dirty.load(Ordering::Acquire) {
            self.rewrite_indexes()?;
            self.indexes_dirty.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// Replaces both index files with the in-memory entries.
    pub fn rewrite_indexes(&self) -> io::Result<()> {
        let (offsets, times) = self.state.read().index_bytes();
        let offset_file = self.offset_index_file.get(&*self.storage)?;
        offset_file.set_len(0)?;
        offset_file.write_at(&offsets, 0)?;
        let time_file = self.time_index_file.get(&*self.storage)?;
        time_file.set_len(0)?;
        time_file.write_at(&times, 0)
    }

    /// Closes the index files until the next write needs them.
    pub fn release_index_files(&self) {
        self.offset_index_file.release();
        self.time_index_file.release();
    }

    pub fn sync_data(&self) -> io::Result<()> {
        self.file.sync()
    }

    pub fn sync_all(&self) -> io::Result<()> {
        self.file.sync()?;
        self.offset_index_file.sync()?;
        self.time_index_file.sync()
    }

    /// Closes the segment for appends: records the final max timestamp in the
    /// time index, so a reopened closed segment knows its max from the index.
    pub fn seal(&self) -> io::Result<()> {
        let mut state = self.state.write();
        if let Some(e) = state.maybe_time_entry(self.base_offset) {
            let index = state.time_index.len() - 1;
            drop(state);
            if let Err(e) = self.write_time_entry(e, index) {
                // The entry is in memory; a retried seal rewrites the file.
                self.mark_indexes_dirty();
                return Err(e);
            }
        }
        self.repair_indexes()
    }

    /// Reads the batch header at `position`; `None` at or past `end`.
    pub fn header_at(&self, position: u64, end: u64) -> io::Result<Option<BatchHeader>> {
        if position >= end {
            return Ok(None);
        }
        let mut buf = [0u8; BATCH_HEADER_BYTES];
        self.file.read_at(&mut buf, position)?;
        let header = BatchHeader::parse(&buf).map_err(corrupt)?;
        if position + header.total_bytes() as u64 > end {
            return Err(corrupt(RecordError::Truncated {
                needed: header.total_bytes(),
                available: (end - position) as usize,
            }));
        }
        Ok(Some(header))
    }

    /// Reads one whole batch.
    pub fn batch_at(&self, position: u64, header: &BatchHeader) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; header.total_bytes()];
        self.file.read_at(&mut buf, position)?;
        Ok(buf)
    }

    /// Rebuilds the in-memory state by walking batch headers up to the file
    /// size, trusting the data (used for closed segments whose indexes are
    /// missing or invalid).
    pub fn rebuild_from_headers(&self, index_interval_bytes: u32) -> io::Result<()> {
        let end = self.file.len()?;
        let mut state = SegmentState::empty(self.base_offset);
        let mut position = 0;
        while let Some(header) = self.header_at(position, end)? {
            state.on_batch(self.base_offset, position, &header, index_interval_bytes);
            position += header.total_bytes() as u64;
        }
        state.maybe_time_entry(self.base_offset);
        *self.state.write() = state;
        self.rewrite_indexes()
    }

    /// Loads the indexes of a closed segment from their file bytes, checking
    /// them against the log file. Returns false if they are not trustworthy.
    pub fn load_indexes(
        &self,
        offset_bytes: &[u8],
        time_bytes: &[u8],
        next_base_offset: i64,
    ) -> io::Result<bool> {
        let size = self.size();
        let Some(offsets) = parse_offset_index(offset_bytes, size) else {
            return Ok(false);
        };
        let span = next_base_offset - self.base_offset;
        let Some(times) = parse_time_index(time_bytes, span) else {
            return Ok(false);
        };
        // A closed segment with data always has at least one time entry: the
        // final maximum written when it was sealed.
        if size > 0 && times.is_empty() {
            return Ok(false);
        }
        let tail_from = match offsets.last() {
            Some(last) => {
                let header = match self.header_at(u64::from(last.position), size) {
                    Ok(Some(h)) => h,
                    _ => return Ok(false),
                };
                if header.base_offset != self.base_offset + i64::from(last.relative_offset) {
                    return Ok(false);
                }
                u64::from(last.position)
            }
            None => 0,
        };
        // The batches after the last offset entry (at most about
        // index.interval.bytes of them) must chain exactly to the end of the
        // file, and the final time entry must be at least their newest
        // timestamp: a time index cut short (or stale) fails this.
        let Some(tail_max_timestamp) = self.max_timestamp_from(tail_from, size) else {
            return Ok(false);
        };
        if times.last().map_or(-1, |t| t.timestamp) < tail_max_timestamp {
            return Ok(false);
        }
        let mut state = self.state.write();
        state.next_offset = next_base_offset;
        if let Some(last) = times.last() {
            state.max_timestamp = last.timestamp;
            state.offset_of_max_timestamp = self.base_offset + i64::from(last.relative_offset);
        }
        state.first_batch_timestamp = Some(state.max_timestamp);
        state.offset_index = offsets;
        state.time_index = times;
        Ok(true)
    }
}

impl Segment {
    /// The newest batch timestamp from `position` to `end`, walking headers;
    /// `None` if they do not chain exactly to `end`.
    fn max_timestamp_from(&self, mut position: u64, end: u64) -> Option<i64> {
        let mut max = -1;
        while position < end {
            let header = self.header_at(position, end).ok()??;
            max = max.max(header.max_timestamp);
            position += header.total_bytes() as u64;
        }
        Some(max)
    }
}

fn parse_offset_index(bytes: &[u8], file_size: u64) -> Option<Vec<OffsetEntry>> {
    let chunks = bytes.chunks_exact(OFFSET_ENTRY_BYTES);
    if !chunks.remainder().is_empty() {
        return None;
    }
    let mut entries: Vec<OffsetEntry> = Vec::with_capacity(bytes.len() / OFFSET_ENTRY_BYTES);
    for chunk in chunks {
        let e = OffsetEntry::from_bytes(chunk.try_into().ok()?);
        if u64::from(e.position) >= file_size {
            return None;
        }
        if let Some(prev) = entries.last() {
            if e.relative_offset <= prev.relative_offset || e.position <= prev.position {
                return None;
            }
        }
        entries.push(e);
    }
    Some(entries)
}

fn parse_time_index(bytes: &[u8], offset_span: i64) -> Option<Vec<TimeEntry>> {
    let chunks = bytes.chunks_exact(TIME_ENTRY_BYTES);
    if !chunks.remainder().is_empty() {
        return None;
    }
    let mut entries: Vec<TimeEntry> = Vec::with_capacity(bytes.len() / TIME_ENTRY_BYTES);
    for chunk in chunks {
        let e = TimeEntry::from_bytes(chunk.try_into().ok()?);
        if i64::from(e.relative_offset) >= offset_span || e.timestamp < 0 {
            return None;
        }
        if let Some(prev) = entries.last() {
            if e.timestamp <= prev.timestamp || e.relative_offset < prev.relative_offset {
                return None;
            }
        }
        entries.push(e);
    }
    Some(entries)
}

fn corrupt(e: RecordError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn read_all(file: &dyn SegmentFile, len: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    file.read_at(&mut buf, 0)?;
    Ok(buf)
}

/// Minimum bytes needed to read a batch's length field.
pub(crate) const LENGTH_PREFIX_BYTES: usize = LOG_OVERHEAD;

#[cfg(test)]
mod verified_tests {
    use super::VerifiedRanges;

    #[test]
    fn ranges_merge_and_answer_containment() {
        let v = VerifiedRanges::default();
        v.insert(10, 20);
        v.insert(30, 40);
        assert!(v.contains(12, 18));
        assert!(!v.contains(15, 35));
        v.insert(20, 30);
        assert!(v.contains(10, 40));
        assert!(!v.contains(5, 12));
        v.insert(0, 50);
        assert!(v.contains(0, 50));
        assert!(!v.contains(0, 51));
    }
}
