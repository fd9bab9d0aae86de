//! Test-only storage faults for the fault harness (`tests/src/fault`):
//! with `unsafe.testing.storage.fault.file` set, every partition log is
//! opened through `vltava_log::storage::FaultyStorage`, and a thread reads
//! the named control file every [`CONTROL_POLL_INTERVAL`] and switches the
//! faults it names on or off for the whole broker:
//!
//! | file holds        | effect                                              |
//! |-------------------|-----------------------------------------------------|
//! | nothing, `none`   | no faults                                           |
//! | `fsync-fail`      | every fsync fails with EIO (the log then refuses writes until a restart) |
//! | `disk-full`       | writes that grow a file fail with ENOSPC            |
//! | `slow-fsync <ms>` | every fsync takes at least that long                |
//!
//! The broker refuses the setting unless the environment names it too
//! ([`UNSAFE_TESTING_ENV`]): a copied test configuration must not make a
//! production broker fail its own disk. The metadata quorum's log keeps the
//! real storage: the harness fails the data path, where the broker's
//! answer is KAFKA_STORAGE_ERROR, not the quorum's.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, warn};
use vltava_log::storage::{FaultPlan, FaultyStorage, FileStorage, Storage};

/// The environment variable that must be `1` for the broker to read
/// `unsafe.testing.storage.fault.file`.
pub const UNSAFE_TESTING_ENV: &str = "VLTAVA_UNSAFE_TESTING";

/// How often the control file is read.
pub const CONTROL_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Slow fsyncs are capped at this, whatever the file asks.
pub const SLOW_FSYNC_MAX: Duration = Duration::from_secs(10);

/// A fault the control file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    None,
    FsyncFail,
    DiskFull,
    SlowFsync(Duration),
}

impl StorageFault {
    /// Parses the control file's contents; `None` (the Rust one) for text
    /// that names no fault.
    pub fn parse(text: &str) -> Option<StorageFault> {
        let mut words = text.split_whitespace();
        let fault = match (words.next(), words.next()) {
            (None | Some("none"), None) => StorageFault::None,
            (Some("fsync-fail"), None) => StorageFault::FsyncFail,
            (Some("disk-full"), None) => StorageFault::DiskFull,
            (Some("slow-fsync"), Some(ms)) => {
                let ms: u64 = ms.parse().ok()?;
                StorageFault::SlowFsync(Duration::from_millis(ms).min(SLOW_FSYNC_MAX))
            }
            _ => return None,
        };
        words.next().is_none().then_some(fault)
    }

    fn apply(self, plan: &FaultPlan) {
        plan.fail_syncs(self == StorageFault::FsyncFail);
        plan.disk_full(self == StorageFault::DiskFull);
        plan.slow_syncs(match self {
            StorageFault::SlowFsync(delay) => delay,
            _ => Duration::ZERO,
        });
    }
}

/// The storage partition logs are opened with: the real files, or with
/// `control` set, faulty files steered by it (see the module doc).
pub fn storage_for(control: Option<&Path>) -> Arc<dyn Storage> {
    let Some(control) = control else {
        return Arc::new(FileStorage);
    };
    warn!(control = %control.display(),
        "unsafe.testing.storage.fault.file is set: this broker fails its own disk on request (test-only)");
    let plan = FaultPlan::new();
    let watched = Arc::clone(&plan);
    let path = control.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("storage-faults".into())
        .spawn(move || watch(&path, &watched));
    if let Err(e) = spawned {
        error!(error = %e, "could not start the storage fault thread; no faults will be injected");
    }
    Arc::new(FaultyStorage::new(plan))
}

/// Applies each change of the control file for the life of the process.
fn watch(control: &Path, plan: &FaultPlan) {
    let mut current = StorageFault::None;
    let mut last_text = String::new();
    loop {
        let text = std::fs::read_to_string(control).unwrap_or_default();
        match StorageFault::parse(&text) {
            Some(fault) if fault != current => {
                warn!(?fault, "storage fault switched (test-only)");
                fault.apply(plan);
                current = fault;
            }
            Some(_) => {}
            // Said once per new text, not at every poll.
            None if text != last_text => warn!(
                control = %control.display(),
                text = %text.trim(),
                "storage fault control file names no fault (none, fsync-fail, disk-full, slow-fsync <ms>); ignored"
            ),
            None => {}
        }
        last_text = text;
        std::thread::sleep(CONTROL_POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_file_contents() {
        assert_eq!(StorageFault::parse(""), Some(StorageFault::None));
        assert_eq!(StorageFault::parse("none\n"), Some(StorageFault::None));
        assert_eq!(
            StorageFault::parse("fsync-fail"),
            Some(StorageFault::FsyncFail)
        );
        assert_eq!(
            StorageFault::parse(" disk-full \n"),
            Some(StorageFault::DiskFull)
        );
        assert_eq!(
            StorageFault::parse("slow-fsync 250"),
            Some(StorageFault::SlowFsync(Duration::from_millis(250)))
        );
        assert_eq!(
            StorageFault::parse("slow-fsync 999999999"),
            Some(StorageFault::SlowFsync(SLOW_FSYNC_MAX))
        );
        for bad in ["slow-fsync", "slow-fsync x", "fsync-fail now", "melt"] {
            assert_eq!(StorageFault::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn faults_switch_on_and_off() {
        let plan = FaultPlan::new();
        let dir = tempfile::tempdir().unwrap();
        let storage = FaultyStorage::new(Arc::clone(&plan));
        let file = storage.open(&dir.path().join("f"), false).unwrap();
        StorageFault::FsyncFail.apply(&plan);
        assert!(file.sync().is_err());
        StorageFault::None.apply(&plan);
        file.sync().unwrap();
        StorageFault::DiskFull.apply(&plan);
        let e = file.write_at(&[1; 64], 0).unwrap_err();
        assert!(vltava_log::storage::is_no_space(&e), "{e}");
        StorageFault::None.apply(&plan);
        file.write_at(&[1; 64], 0).unwrap();
    }
}
