//! Producer-state snapshots: `<20-digit offset>.snapshot` files in a
//! partition's directory, as Kafka keeps them.
//!
//! A snapshot at offset N holds the idempotent-producer state built from
//! every batch below N. Its payload belongs to the broker (this crate does
//! not read it); this module frames it so that a torn or corrupt file is
//! recognised and skipped, never loaded:
//!
//! ```text
//! magic   "VPSN"         4 bytes
//! version 1              u16 big-endian
//! crc     CRC32C(payload) u32 big-endian
//! length  payload bytes   u32 big-endian
//! payload                 length bytes
//! ```
//!
//! Files are written to `.tmp`, fsynced, renamed and the directory fsynced,
//! so a crash leaves the old set of snapshots or the new one. Recovery takes
//! the newest valid snapshot at or below the log end and replays batch
//! headers from there; one at or above the log end (after a truncation) is
//! deleted.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"VPSN";
const VERSION: u16 = 1;
const HEADER_BYTES: usize = 14;
const SUFFIX: &str = ".snapshot";

/// Snapshots kept per partition; older ones are deleted when a new one is
/// written. Two, so one torn write still leaves a usable one.
pub const SNAPSHOTS_KEPT: usize = 2;

/// Largest payload read back: a snapshot claiming more is treated as
/// corrupt rather than allocated.
pub const SNAPSHOT_BYTES_MAX: usize = 256 * 1024 * 1024;

fn file_name(offset: i64) -> String {
    format!("{offset:020}{SUFFIX}")
}

fn path_for(dir: &Path, offset: i64) -> PathBuf {
    dir.join(file_name(offset))
}

/// The offsets of every snapshot file in `dir`, ascending.
pub fn list(dir: &Path) -> io::Result<Vec<i64>> {
    let mut offsets = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else {
            continue;
        };
        if let Ok(offset) = stem.parse::<i64>() {
            if stem.len() == 20 && offset >= 0 {
                offsets.push(offset);
            }
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

/// Writes a snapshot at `offset` durably and keeps only the newest
/// [`SNAPSHOTS_KEPT`]. A payload over [`SNAPSHOT_BYTES_MAX`] is refused:
/// it could not be read back.
pub fn write(dir: &Path, offset: i64, payload: &[u8]) -> io::Result<()> {
    if payload.len() > SNAPSHOT_BYTES_MAX {
        return Err(io::Error::other(format!(
            "a producer snapshot of {} bytes is over SNAPSHOT_BYTES_MAX ({SNAPSHOT_BYTES_MAX})",
            payload.len()
        )));
    }
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_be_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(payload);
    crate::write_durably(dir, &file_name(offset), &bytes)?;
    let offsets = list(dir)?;
    let excess = offsets.len().saturating_sub(SNAPSHOTS_KEPT);
    for old in &offsets[..excess] {
        remove(dir, *old)?;
    }
    Ok(())
}

/// The newest valid snapshot at or below `max_offset`, as (offset,
/// payload). Invalid ones are logged and skipped; none found is `None`.
pub fn latest(dir: &Path, max_offset: i64) -> io::Result<Option<(i64, Vec<u8>)>> {
    for offset in list(dir)?.into_iter().rev() {
        if offset > max_offset {
            continue;
        }
        match read_file(&path_for(dir, offset))? {
            Ok(payload) => return Ok(Some((offset, payload))),
            Err(reason) => {
                tracing::warn!(dir = %dir.display(), offset, reason, "skipping an unreadable producer snapshot");
            }
        }
    }
    Ok(None)
}

/// Deletes every snapshot above `offset` (after a truncation to it).
pub fn remove_above(dir: &Path, offset: i64) -> io::Result<()> {
    for old in list(dir)?.into_iter().filter(|o| *o > offset) {
        remove(dir, old)?;
    }
    Ok(())
}

fn remove(dir: &Path, offset: i64) -> io::Result<()> {
    match fs::remove_file(path_for(dir, offset)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The payload of the snapshot file at `path`, or why it is not one
/// (the broker reads through [`latest`]; tools look at one file).
pub fn read_file(path: &Path) -> io::Result<Result<Vec<u8>, String>> {
    let bytes = match fs::metadata(path) {
        Ok(m) if m.len() > (HEADER_BYTES + SNAPSHOT_BYTES_MAX) as u64 => {
            return Ok(Err(format!("{} bytes is over SNAPSHOT_BYTES_MAX", m.len())));
        }
        Ok(_) => fs::read(path)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Err("gone".into())),
        Err(e) => return Err(e),
    };
    if bytes.len() < HEADER_BYTES || &bytes[..4] != MAGIC {
        return Ok(Err("no snapshot header".into()));
    }
    let version = u16::from_be_bytes([bytes[4], bytes[5]]);
    if version != VERSION {
        return Ok(Err(format!("unknown snapshot version {version}")));
    }
    let crc = u32::from_be_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]);
    let length = u32::from_be_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]) as usize;
    let payload = &bytes[HEADER_BYTES..];
    if payload.len() != length {
        return Ok(Err(format!(
            "{} payload bytes, {length} declared",
            payload.len()
        )));
    }
    if crc32c::crc32c(payload) != crc {
        return Ok(Err("CRC mismatch".into()));
    }
    Ok(Ok(payload.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_valid_snapshot_at_or_below_wins_and_only_two_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        for offset in [10, 20, 30] {
            write(dir.path(), offset, format!("state-{offset}").as_bytes()).unwrap();
        }
        assert_eq!(list(dir.path()).unwrap(), vec![20, 30]);
        assert_eq!(
            latest(dir.path(), 100).unwrap(),
            Some((30, b"state-30".to_vec()))
        );
        assert_eq!(
            latest(dir.path(), 29).unwrap(),
            Some((20, b"state-20".to_vec()))
        );
        assert_eq!(latest(dir.path(), 19).unwrap(), None);
        // A torn newest snapshot is skipped for the one before it.
        let newest = path_for(dir.path(), 30);
        let len = fs::metadata(&newest).unwrap().len();
        fs::File::options()
            .write(true)
            .open(&newest)
            .unwrap()
            .set_len(len - 1)
            .unwrap();
        assert_eq!(
            latest(dir.path(), 100).unwrap(),
            Some((20, b"state-20".to_vec()))
        );
        // A flipped byte too.
        let mut bytes = fs::read(path_for(dir.path(), 20)).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        fs::write(path_for(dir.path(), 20), bytes).unwrap();
        assert_eq!(latest(dir.path(), 100).unwrap(), None);
        remove_above(dir.path(), 20).unwrap();
        assert_eq!(list(dir.path()).unwrap(), vec![20]);
    }

    #[test]
    fn a_payload_that_could_not_be_read_back_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        // Zeroed pages from the allocator: never touched, so cheap.
        let huge = vec![0u8; SNAPSHOT_BYTES_MAX + 1];
        let e = write(dir.path(), 10, &huge).unwrap_err();
        assert!(e.to_string().contains("over SNAPSHOT_BYTES_MAX"), "{e}");
        assert_eq!(list(dir.path()).unwrap(), Vec::<i64>::new());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
