//! The state machine: committed `MetaBatch`es applied to a
//! `MetadataImage`, in log order. A snapshot is the image written as the
//! records that rebuild it (`MetadataImage::to_records`), with the last
//! applied log id and membership, in `snapshot.json` (written durably);
//! opening restores it, so start-up replays only the log after it.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use vltava_meta::{MetaRecord, MetadataImage};

use crate::log_store::{read_json, write_json};
use crate::{NodeId, TypeConfig};

/// What a [`Publisher`] is told after the image changed.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// One committed entry's records were applied, in order.
    Records(&'a [MetaRecord]),
    /// The image was replaced as a whole (a snapshot was installed or
    /// restored): anything may have changed.
    Reset,
}

/// Told of every change to the image, in log order, with the image as it
/// is after the change. It runs on the state machine's task between two
/// applies, with the image read-locked: it may do file work (it runs where
/// blocking is allowed) but must not wait for the quorum. It is how a
/// broker follows the committed metadata, and the only writer of what the
/// broker derives from it.
pub trait Publisher: Send + Sync + 'static {
    fn publish(&self, image: &MetadataImage, change: Change<'_>);
}

impl std::fmt::Debug for dyn Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Publisher")
    }
}

const SNAPSHOT_FILE: &str = "snapshot.json";

type Result<T> = std::result::Result<T, StorageError<NodeId>>;

/// What has been applied, shared with [`crate::Quorum`] for reads.
#[derive(Debug, Default)]
pub struct Applied {
    pub last_applied: Option<LogId<NodeId>>,
    pub membership: StoredMembership<NodeId, BasicNode>,
    pub image: MetadataImage,
    /// The last entries applied, oldest first, each with its records (none
    /// for openraft's own entries): what observers fetch. At most
    /// [`RECENT_ENTRIES_MAX`]; an observer further behind gets the image.
    pub recent: std::collections::VecDeque<(u64, Arc<Vec<MetaRecord>>)>,
}

/// Applied entries kept in memory for observers to fetch.
pub const RECENT_ENTRIES_MAX: usize = 4096;

pub type Shared = Arc<RwLock<Applied>>;

/// A snapshot as stored and sent: its meta and the image's records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    records: Vec<MetaRecord>,
}

#[derive(Clone)]
pub struct StateMachine {
    shared: Shared,
    dir: PathBuf,
    /// Serialises writes of `snapshot.json`: openraft builds snapshots on
    /// its own task while it may be installing one.
    writing: Arc<parking_lot::Mutex<()>>,
    publisher: Option<Arc<dyn Publisher>>,
}

/// The last log index `snapshot.json` in `dir` covers, if there is one.
pub fn durable_snapshot_last_index(dir: &Path) -> Option<u64> {
    durable_snapshot_last_log_id(dir).map(|l| l.index)
}

/// The last log id `snapshot.json` in `dir` covers, if there is one.
pub fn durable_snapshot_last_log_id(dir: &Path) -> Option<openraft::LogId<NodeId>> {
    /// Only the meta of `snapshot.json`: its records are skipped, not built.
    #[derive(Deserialize)]
    struct MetaOnly {
        meta: SnapshotMeta<NodeId, BasicNode>,
    }
    read_json::<MetaOnly>(&dir.join(SNAPSHOT_FILE))
        .ok()
        .flatten()
        .and_then(|s| s.meta.last_log_id)
}

/// Writes `stored` as the snapshot unless the one on disk covers as much
/// (an older build finishing after a newer install must not replace it).
fn write_snapshot(
    dir: &Path,
    writing: &parking_lot::Mutex<()>,
    stored: &StoredSnapshot,
) -> io::Result<()> {
    let _writing = writing.lock();
    let new = stored.meta.last_log_id.map(|l| l.index);
    let current = durable_snapshot_last_index(dir);
    if current.is_some() && current >= new {
        return Ok(());
    }
    write_json(dir, SNAPSHOT_FILE, stored)
}

impl StateMachine {
    /// Applies one committed entry to the image and tells the publisher.
    fn apply_one(&self, entry: openraft::Entry<TypeConfig>) {
        let mut applied = self.shared.write();
        // Applied strictly in order: an entry at or below the last one
        // would be a replay, which openraft never asks for.
        debug_assert!(applied
            .last_applied
            .is_none_or(|l| l.index < entry.log_id.index));
        applied.last_applied = Some(entry.log_id);
        if applied.recent.len() == RECENT_ENTRIES_MAX {
            applied.recent.pop_front();
        }
        let records = match &entry.payload {
            EntryPayload::Normal(batch) => Arc::new(batch.0.clone()),
            _ => Arc::default(),
        };
        applied.recent.push_back((entry.log_id.index, records));
        match entry.payload {
            EntryPayload::Blank => {}
            EntryPayload::Normal(batch) => {
                for record in &batch.0 {
                    applied.image.apply(record);
                }
                // Readers see the new image while the publisher works.
                let applied = parking_lot::RwLockWriteGuard::downgrade(applied);
                self.publish(&applied.image, Change::Records(&batch.0));
            }
            EntryPayload::Membership(membership) => {
                applied.membership = StoredMembership::new(Some(entry.log_id), membership);
            }
        }
    }

    /// Opens the state machine in `dir`, restoring the last snapshot.
    pub fn open(
        dir: &Path,
        publisher: Option<Arc<dyn Publisher>>,
    ) -> io::Result<(StateMachine, Shared)> {
        let shared: Shared = Arc::default();
        let sm = StateMachine {
            shared: shared.clone(),
            dir: dir.to_path_buf(),
            writing: Arc::default(),
            publisher,
        };
        if let Some(snapshot) = read_json::<StoredSnapshot>(&dir.join(SNAPSHOT_FILE))? {
            sm.restore(&snapshot);
        }
        Ok((sm, shared))
    }

    fn restore(&self, snapshot: &StoredSnapshot) {
        let mut image = MetadataImage::default();
        for record in &snapshot.records {
            image.apply(record);
        }
        let mut applied = self.shared.write();
        applied.image = image;
        applied.last_applied = snapshot.meta.last_log_id;
        // Entries before the snapshot no longer follow from what is kept.
        applied.recent.clear();
        applied.membership = snapshot.meta.last_membership.clone();
        let applied = parking_lot::RwLockWriteGuard::downgrade(applied);
        self.publish(&applied.image, Change::Reset);
    }

    fn publish(&self, image: &MetadataImage, change: Change<'_>) {
        if let Some(publisher) = &self.publisher {
            crate::log_store::blocking(|| publisher.publish(image, change));
        }
    }

    fn current(&self) -> io::Result<Option<StoredSnapshot>> {
        read_json(&self.dir.join(SNAPSHOT_FILE))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>> {
        let stored = {
            let applied = self.shared.read();
            let snapshot_id = match applied.last_applied {
                Some(l) => format!("{}-{}", l.leader_id, l.index),
                None => "empty".to_string(),
            };
            StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: applied.last_applied,
                    last_membership: applied.membership.clone(),
                    snapshot_id,
                },
                records: applied.image.to_records(),
            }
        };
        crate::log_store::blocking(|| write_snapshot(&self.dir, &self.writing, &stored))
            .map_err(|e| StorageIOError::write_snapshot(Some(stored.meta.signature()), &e))?;
        let data = serde_json::to_vec(&stored)
            .map_err(|e| StorageIOError::write_snapshot(Some(stored.meta.signature()), &e))?;
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>)> {
        let applied = self.shared.read();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut replies = Vec::new();
        for entry in entries {
            // Taking the image's write lock waits for readers (a broker
            // opening every partition under a read lock at start-up), and
            // the publisher does file work: neither may stall the runtime
            // that carries the quorum's heartbeats.
            crate::log_store::blocking(|| self.apply_one(entry));
            replies.push(());
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<()> {
        let mut stored: StoredSnapshot = serde_json::from_slice(snapshot.get_ref())
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        stored.meta = meta.clone();
        crate::log_store::blocking(|| write_snapshot(&self.dir, &self.writing, &stored))
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.restore(&stored);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>> {
        let Some(stored) = self
            .current()
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?
        else {
            return Ok(None);
        };
        let data = serde_json::to_vec(&stored)
            .map_err(|e| StorageIOError::read_snapshot(Some(stored.meta.signature()), &e))?;
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
