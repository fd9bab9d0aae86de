//! The storage seam: every byte the log reads or writes in a segment's
//! `.log`, `.index` and `.timeindex` goes through [`SegmentFile`], opened by
//! a [`Storage`]. [`FileStorage`] is the real one; [`FaultyStorage`] wraps
//! it to inject failures in tests (fail after N operations, short writes,
//! fsync errors, a full disk, bit flips on read, and a power cut that
//! discards every write no completed fsync covered).
//!
//! Outside the seam (plain `std::fs`, not worth a trait): directory listing,
//! renames and deletes, directory fsyncs, the small `log-start-offset`,
//! `cleaner-offset-checkpoint` and `<offset>.snapshot` files, and the
//! cleaner's `.cleaned` output
//! (it becomes a segment, through the seam, once swapped in).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;

/// One open file of a segment. Positional I/O only, so readers and the one
/// writer share it without a cursor.
#[allow(clippy::len_without_is_empty)] // a file's length is an I/O result
pub trait SegmentFile: Send + Sync + std::fmt::Debug {
    /// Fills `buf` from `position`, or fails (`UnexpectedEof` past the end).
    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<()>;
    /// Writes all of `buf` at `position`. On error any prefix may be written.
    fn write_at(&self, buf: &[u8], position: u64) -> io::Result<()>;
    /// `fdatasync`.
    fn sync(&self) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    fn modified(&self) -> io::Result<SystemTime>;
    /// The OS file underneath, for zero-copy (`sendfile`) paths; `None` when
    /// the bytes must go through [`SegmentFile::read_at`] (fault injection).
    fn as_file(&self) -> Option<&File>;
}

/// How long a write job waits for the disk before it runs: a simulation's
/// slow disk. The storage calls are synchronous, so a simulator cannot
/// make them take simulated time; the async layers above them (a produce's
/// appends, a follower's fetched batches, a group write, the metadata
/// quorum's appends) await this instead, before the job touches the disk.
/// Production has none.
#[derive(Clone)]
pub struct DiskWait(Arc<dyn Fn() -> std::time::Duration + Send + Sync>);

impl DiskWait {
    pub fn new(wait: impl Fn() -> std::time::Duration + Send + Sync + 'static) -> DiskWait {
        DiskWait(Arc::new(wait))
    }

    /// How long the next job waits.
    pub fn next(&self) -> std::time::Duration {
        (self.0)()
    }
}

impl std::fmt::Debug for DiskWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DiskWait")
    }
}

/// Opens segment files.
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Opens `path` for reading and writing, creating it if missing and
    /// emptying it if `truncate`.
    fn open(&self, path: &Path, truncate: bool) -> io::Result<Arc<dyn SegmentFile>>;
}

/// The real thing: `std::fs::File` with `pread`/`pwrite`/`fdatasync`.
#[derive(Debug, Default, Clone, Copy)]
pub struct FileStorage;

impl Storage for FileStorage {
    fn open(&self, path: &Path, truncate: bool) -> io::Result<Arc<dyn SegmentFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(truncate)
            .open(path)?;
        Ok(Arc::new(file))
    }
}

impl SegmentFile for File {
    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        self.read_exact_at(buf, position)
    }
    fn write_at(&self, buf: &[u8], position: u64) -> io::Result<()> {
        self.write_all_at(buf, position)
    }
    fn sync(&self) -> io::Result<()> {
        self.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn modified(&self) -> io::Result<SystemTime> {
        self.metadata()?.modified()
    }
    fn as_file(&self) -> Option<&File> {
        Some(self)
    }
}

/// True for the errors that mean "no space left", which the log treats as
/// recoverable (writes resume once space is freed), unlike other write
/// errors and every fsync error.
pub fn is_no_space(e: &io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    e.kind() == io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(ENOSPC | EDQUOT))
}

/// What [`FaultyStorage`] does wrong; shared by every file it opened, and
/// changeable while the log runs.
#[derive(Debug, Default)]
pub struct FaultPlan {
    state: Mutex<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    /// Reads, writes, syncs and set_lens so far.
    ops: u64,
    /// Every operation after this many fails with EIO.
    fail_after_ops: Option<u64>,
    /// The next write writes only this many bytes, then fails with EIO.
    short_write_next: Option<usize>,
    /// fsyncs fail with EIO.
    fail_syncs: bool,
    /// Writes that would grow a file write half their bytes and fail with
    /// ENOSPC.
    disk_full: bool,
    /// Reads covering this (file, byte) see its lowest bit flipped.
    flip_on_read: Option<(PathBuf, u64)>,
    /// fsyncs that completed.
    syncs: u64,
    /// Each fsync takes at least this long (a slow disk).
    sync_delay: std::time::Duration,
    /// Power-cut model: per file, what a completed fsync made durable.
    /// `None` until [`FaultPlan::track_power_loss`] turns it on.
    durable: Option<std::collections::HashMap<PathBuf, Durable>>,
}

/// What survives a power cut of one file: its length at the last completed
/// fsync, and the bytes that writes or truncations since then replaced in
/// that durable region (to put back, newest first).
#[derive(Debug, Default)]
struct Durable {
    synced_len: u64,
    undo: Vec<(u64, Vec<u8>)>,
}

enum Fault {
    None,
    Fail(io::Error),
    Short(usize, io::Error),
}

impl FaultPlan {
    pub fn new() -> Arc<FaultPlan> {
        Arc::new(FaultPlan::default())
    }

    /// Operations performed so far.
    pub fn ops(&self) -> u64 {
        self.state.lock().ops
    }

    pub fn fail_after_ops(&self, ops: Option<u64>) {
        self.state.lock().fail_after_ops = ops;
    }

    pub fn short_write_next(&self, bytes: usize) {
        self.state.lock().short_write_next = Some(bytes);
    }

    pub fn fail_syncs(&self, fail: bool) {
        self.state.lock().fail_syncs = fail;
    }

    pub fn disk_full(&self, full: bool) {
        self.state.lock().disk_full = full;
    }

    /// From now on, remember what each file's fsyncs made durable, so that
    /// [`FaultPlan::power_cut`] can discard the rest. Files that exist when
    /// they are first opened count as durable as they are.
    pub fn track_power_loss(&self) {
        self.state
            .lock()
            .durable
            .get_or_insert_with(Default::default);
    }

    /// A power cut: every write and truncation that no completed fsync
    /// covered is undone, on every file opened since tracking began. (The
    /// page cache of directories is outside the seam: files keep existing
    /// and renames stay done.) The log must not be used afterwards; reopen
    /// the directory.
    pub fn power_cut(&self) -> io::Result<()> {
        let mut s = self.state.lock();
        let Some(durable) = s.durable.as_mut() else {
            return Ok(());
        };
        for (path, image) in durable.iter_mut() {
            let file = match OpenOptions::new().write(true).open(path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for (position, bytes) in image.undo.drain(..).rev() {
                file.write_all_at(&bytes, position)?;
            }
            file.set_len(image.synced_len)?;
        }
        Ok(())
    }

    /// Remembers the durable bytes `[from, to)` of `path` before they are
    /// overwritten or cut off.
    fn before_change(&self, file: &File, path: &Path, from: u64, to: u64) -> io::Result<()> {
        let mut s = self.state.lock();
        let Some(durable) = s.durable.as_mut() else {
            return Ok(());
        };
        let Some(image) = durable.get_mut(path) else {
            return Ok(());
        };
        // Bytes past the file's current end were saved when a set_len cut
        // them off (a truncation, then a write over the cut region: the
        // simulation found the read past the end failing).
        let to = to.min(image.synced_len).min(file.metadata()?.len());
        if from >= to {
            return Ok(());
        }
        let mut old = vec![0u8; (to - from) as usize];
        file.read_exact_at(&mut old, from)?;
        image.undo.push((from, old));
        Ok(())
    }

    /// Starts tracking `path` as durable at its current length.
    fn on_open(&self, path: &Path, len: u64) {
        let mut s = self.state.lock();
        if let Some(durable) = s.durable.as_mut() {
            durable.entry(path.to_path_buf()).or_insert(Durable {
                synced_len: len,
                undo: Vec::new(),
            });
        }
    }

    /// A completed fsync: everything in `path` up to `len` is durable.
    fn on_sync(&self, path: &Path, len: u64) {
        let mut s = self.state.lock();
        if let Some(image) = s.durable.as_mut().and_then(|d| d.get_mut(path)) {
            image.synced_len = len;
            image.undo.clear();
        }
    }

    /// fsyncs completed so far.
    pub fn syncs(&self) -> u64 {
        self.state.lock().syncs
    }

    /// Makes every fsync take at least `delay`, as a slow disk does.
    pub fn slow_syncs(&self, delay: std::time::Duration) {
        self.state.lock().sync_delay = delay;
    }

    pub fn flip_bit_on_read(&self, path: &Path, position: u64) {
        self.state.lock().flip_on_read = Some((path.to_path_buf(), position));
    }

    /// Counts one operation and decides its fault.
    fn next(&self, kind: OpKind, len: usize) -> Fault {
        let mut s = self.state.lock();
        s.ops += 1;
        if s.fail_after_ops.is_some_and(|n| s.ops > n) {
            return Fault::Fail(eio("injected failure after N operations"));
        }
        match kind {
            OpKind::Sync if s.fail_syncs => Fault::Fail(eio("injected fsync failure")),
            OpKind::Write => {
                if let Some(bytes) = s.short_write_next.take() {
                    return Fault::Short(bytes.min(len), eio("injected short write"));
                }
                if s.disk_full {
                    return Fault::Short(len / 2, io::Error::from_raw_os_error(28));
                }
                Fault::None
            }
            _ => Fault::None,
        }
    }

    fn flip(&self, path: &Path, buf: &mut [u8], position: u64) {
        let s = self.state.lock();
        if let Some((p, at)) = &s.flip_on_read {
            if p == path && (position..position + buf.len() as u64).contains(at) {
                buf[(at - position) as usize] ^= 1;
            }
        }
    }
}

#[derive(Clone, Copy)]
enum OpKind {
    Read,
    Write,
    Sync,
    SetLen,
}

fn eio(what: &str) -> io::Error {
    io::Error::other(what.to_string())
}

/// No files at all: what an offline log stands on. Every read and write
/// fails; lengths are zero.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct NullStorage;

impl Storage for NullStorage {
    fn open(&self, _path: &Path, _truncate: bool) -> io::Result<Arc<dyn SegmentFile>> {
        Ok(Arc::new(NullFile))
    }
}

#[derive(Debug)]
struct NullFile;

fn offline() -> io::Error {
    io::Error::other("the log is offline")
}

impl SegmentFile for NullFile {
    fn read_at(&self, _buf: &mut [u8], _position: u64) -> io::Result<()> {
        Err(offline())
    }
    fn write_at(&self, _buf: &[u8], _position: u64) -> io::Result<()> {
        Err(offline())
    }
    fn sync(&self) -> io::Result<()> {
        Err(offline())
    }
    fn set_len(&self, _len: u64) -> io::Result<()> {
        Err(offline())
    }
    fn len(&self) -> io::Result<u64> {
        Ok(0)
    }
    fn modified(&self) -> io::Result<SystemTime> {
        Ok(SystemTime::UNIX_EPOCH)
    }
    fn as_file(&self) -> Option<&File> {
        None
    }
}

/// Real files with the faults of a shared [`FaultPlan`]. Files it opens
/// report no `as_file`, so every read goes through the faults.
#[derive(Debug, Clone)]
pub struct FaultyStorage {
    pub plan: Arc<FaultPlan>,
}

impl FaultyStorage {
    pub fn new(plan: Arc<FaultPlan>) -> FaultyStorage {
        FaultyStorage { plan }
    }
}

impl Storage for FaultyStorage {
    fn open(&self, path: &Path, truncate: bool) -> io::Result<Arc<dyn SegmentFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        self.plan.on_open(path, file.metadata()?.len());
        if truncate {
            self.plan
                .before_change(&file, path, 0, file.metadata()?.len())?;
            file.set_len(0)?;
        }
        Ok(Arc::new(FaultyFile {
            file,
            path: path.to_path_buf(),
            plan: Arc::clone(&self.plan),
        }))
    }
}

#[derive(Debug)]
struct FaultyFile {
    file: File,
    path: PathBuf,
    plan: Arc<FaultPlan>,
}

impl SegmentFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        if let Fault::Fail(e) = self.plan.next(OpKind::Read, buf.len()) {
            return Err(e);
        }
        self.file.read_exact_at(buf, position)?;
        self.plan.flip(&self.path, buf, position);
        Ok(())
    }
    fn write_at(&self, buf: &[u8], position: u64) -> io::Result<()> {
        self.plan.before_change(
            &self.file,
            &self.path,
            position,
            position + buf.len() as u64,
        )?;
        match self.plan.next(OpKind::Write, buf.len()) {
            Fault::None => self.file.write_all_at(buf, position),
            Fault::Fail(e) => Err(e),
            Fault::Short(bytes, e) => {
                self.file.write_all_at(&buf[..bytes], position)?;
                Err(e)
            }
        }
    }
    fn sync(&self) -> io::Result<()> {
        match self.plan.next(OpKind::Sync, 0) {
            Fault::None => {
                let delay = self.plan.state.lock().sync_delay;
                std::thread::sleep(delay);
                self.file.sync_data()?;
                self.plan.state.lock().syncs += 1;
                self.plan.on_sync(&self.path, self.file.metadata()?.len());
                Ok(())
            }
            Fault::Fail(e) | Fault::Short(_, e) => Err(e),
        }
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.plan
            .before_change(&self.file, &self.path, len, u64::MAX)?;
        match self.plan.next(OpKind::SetLen, 0) {
            Fault::None => self.file.set_len(len),
            Fault::Fail(e) | Fault::Short(_, e) => Err(e),
        }
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn modified(&self) -> io::Result<SystemTime> {
        self.file.metadata()?.modified()
    }
    fn as_file(&self) -> Option<&File> {
        None
    }
}
