//! The metadata quorum: Vltava's metadata log (`MetaRecord`s) replicated
//! among the controller voters by openraft, and the image every node
//! builds from the committed records.
//!
//! - [`log_store`]: openraft's log on `vltava-log` (one batch per entry,
//!   the batch's leader epoch is the entry's term), with the vote in a
//!   `quorum-state` file written durably before openraft is answered.
//! - [`state_machine`]: applies committed batches to a `MetadataImage`;
//!   snapshots are the records that rebuild the image, so start-up and a
//!   lagging node do not replay the whole history.
//! - [`network`]: openraft's RPCs as length-prefixed JSON frames over a
//!   [`network::Connector`] seam (TCP in production; a simulator can put
//!   its own streams behind it).
//! - [`Quorum`]: one voter: start, propose records (conditionally, from
//!   any node: [`Quorum::propose_if`]), read the image, see the leader,
//!   take brokers' heartbeats while leading, shut down.
//! - [`observer`]: a node that is not a voter (a broker-only node): it
//!   fetches the committed entries from the voters.
//!
//! A [`Publisher`] is told of every change to the image: it is how a
//! broker follows the committed metadata, on a voter or an observer.

// openraft's own error types (StorageError, RaftError) are large by its
// design; its storage and network traits return them.
#![allow(clippy::result_large_err)]

pub mod log_store;
pub mod memory;
pub mod network;
pub mod observer;
pub mod runtime;
pub mod state_machine;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, Config, Raft};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use vltava_meta::{MetaRecord, MetadataImage};

pub use network::{Acceptor, Connector, NoPeers, PeerAcks, TcpConnector};
pub use observer::{Observer, ObserverConfig};
pub use state_machine::{Change, Publisher};

/// A node id: Kafka's `node.id`.
pub type NodeId = u64;

/// What one proposal commits: metadata records applied together (all or
/// nothing), as one entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaBatch(pub Vec<MetaRecord>);

openraft::declare_raft_types!(
    /// The metadata quorum's openraft types.
    pub TypeConfig:
        D = MetaBatch,
        R = (),
        NodeId = NodeId,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = runtime::VltavaRuntime,
);

/// One node's settings.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    pub node_id: NodeId,
    /// Every voter and its quorum address (`controller.quorum.voters`).
    pub voters: BTreeMap<NodeId, String>,
    /// Where the log, the vote and snapshots live.
    pub dir: PathBuf,
    pub heartbeat_interval: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Committed entries after which a snapshot is taken.
    pub snapshot_after_entries: u64,
    /// Entries kept in the log below the last snapshot (so a follower that
    /// is slightly behind catches up from the log, not a snapshot).
    pub entries_kept_after_snapshot: u64,
    /// How long a proposal may wait for a majority before it fails (a
    /// minority left alone stops accepting changes with a clear error).
    pub propose_timeout: Duration,
    /// Records committed once, right after a single voter first starts: the
    /// image of an existing single-node metadata log being upgraded in place
    /// (`MetadataImage::to_records`). Committing them is idempotent, and an
    /// `imported` marker, written after the commit, keeps later starts from
    /// proposing them again.
    pub initial_records: Vec<MetaRecord>,
    /// Told of every change to the image (see [`Publisher`]).
    pub publisher: Option<Arc<dyn Publisher>>,
    /// How long a proposal sent to the leader may take there, its commit
    /// included, and how long this node then waits to apply it.
    pub forward_timeout: Duration,
    /// What the log's segment files are opened through (the real files;
    /// a simulator's `FaultyStorage` loses what no fsync covered when it
    /// crashes a node).
    pub storage: Arc<dyn vltava_log::storage::Storage>,
    /// Awaited before each append reaches the log (a simulator's slow
    /// disk); `None`: no wait.
    pub disk_wait: Option<vltava_log::storage::DiskWait>,
}

/// The marker in the quorum's directory written once `initial_records` are
/// committed (an upgrading broker checks it before removing the old log).
pub const IMPORTED_FILE: &str = "imported";

impl QuorumConfig {
    /// Defaults near KRaft's (`controller.quorum.election.timeout.ms` 1000,
    /// fetches every 500 ms). openraft also uses the heartbeat interval as
    /// the append timeout, which includes the follower's fsync, so it is
    /// not set lower.
    pub fn new(node_id: NodeId, voters: BTreeMap<NodeId, String>, dir: PathBuf) -> QuorumConfig {
        QuorumConfig {
            node_id,
            voters,
            dir,
            heartbeat_interval: Duration::from_millis(300),
            election_timeout_min: Duration::from_millis(1500),
            election_timeout_max: Duration::from_millis(3000),
            snapshot_after_entries: 5_000,
            entries_kept_after_snapshot: 1_000,
            propose_timeout: Duration::from_secs(5),
            initial_records: Vec::new(),
            publisher: None,
            forward_timeout: Duration::from_secs(60),
            storage: Arc::new(vltava_log::storage::FileStorage),
            disk_wait: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("metadata quorum storage: {0}")]
    Storage(String),
    #[error("metadata quorum: {0}")]
    Raft(String),
    #[error("node {node_id} is not one of the voters {voters:?}")]
    NotAVoter {
        node_id: NodeId,
        voters: Vec<NodeId>,
    },
    #[error("this node's metadata log belongs to a quorum with the voters {stored}, but controller.quorum.voters names {configured}: a node cannot change quorums, and changing the voters of a cluster is not supported yet. Start it with its old voters, or give it an empty log.dirs to join the new quorum")]
    VotersChanged { stored: String, configured: String },
}

/// Why a proposal was not committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ProposeError {
    /// Only the leader proposes; `leader` is who it is, when known.
    #[error("this node is not the metadata leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// No majority acknowledged the leader in time: retriable.
    #[error("the metadata quorum could not commit: {0}")]
    Unavailable(String),
    /// openraft stopped (shutdown, or a storage failure it cannot go on
    /// from): not retriable on this node.
    #[error("the metadata quorum stopped: {0}")]
    Stopped(String),
    /// A conditional proposal ([`Quorum::propose_if`]) was checked against
    /// an image the leader no longer has: apply up to `applied`, check
    /// again and propose again. Nothing was committed.
    #[error("the metadata changed since the change was checked (the leader is at {applied:?})")]
    Stale { applied: Option<u64> },
}

/// The quorum as one node sees it (see [`Quorum::status`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumStatus {
    pub leader: Option<NodeId>,
    /// The current term: Kafka's quorum epoch.
    pub term: u64,
    /// One past the last entry this node applied: Kafka's high watermark
    /// of the metadata log, as offsets of its entries.
    pub high_watermark: u64,
    pub voters: Vec<ReplicaStatus>,
    /// Observers (broker-only nodes) that fetched from this leader: how far
    /// each had applied when it last fetched, and when.
    pub observers: Vec<ReplicaStatus>,
}

/// One voter's replication, as the leader knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    pub id: NodeId,
    /// One past the last entry known to be in its log.
    pub log_end: Option<u64>,
    /// When it last acknowledged an append (ms since the epoch).
    pub last_fetch_ms: Option<i64>,
    /// When it was last known to hold everything the leader held.
    pub last_caught_up_ms: Option<i64>,
}

/// Follows openraft's metrics: logs each change of leader, and notes,
/// whenever this node leads, the time each follower was seen holding the
/// leader's whole log (Kafka's "last caught up"; openraft keeps no such
/// time).
async fn watch_caught_up(core: Arc<Proposer>, mut stopped: watch::Receiver<bool>) {
    let caught_up = &core.caught_up;
    let mut metrics = core.raft.metrics();
    let mut known_leader = None;
    loop {
        {
            let m = metrics.borrow_and_update();
            {
                let mut rejoining = core.rejoining.lock();
                let applied_end = m.last_applied.map_or(0, |l| l.index + 1);
                if rejoining.is_some_and(|target| applied_end >= target) {
                    *rejoining = None;
                    tracing::info!(
                        applied = applied_end,
                        "this voter caught up with what its peers had committed: it votes again"
                    );
                }
            }
            if m.current_leader != known_leader {
                known_leader = m.current_leader;
                match known_leader {
                    Some(leader) => {
                        tracing::info!(leader, term = m.current_term, "metadata quorum leader")
                    }
                    None => tracing::info!(term = m.current_term, "metadata quorum has no leader"),
                }
            }
            if let (Some(replication), Some(last)) = (&m.replication, m.last_log_index) {
                let now = log_store::now_ms();
                let mut caught_up = caught_up.lock();
                for (id, matched) in replication {
                    if matched.is_some_and(|l| l.index >= last) {
                        caught_up.insert(*id, now);
                    }
                }
            }
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = stopped.changed() => return,
        }
    }
}

/// A node with a log holds the voter set it was initialized with, and
/// openraft goes by that set, not by the configuration: a node started with
/// other voters (a single node restarted as one of three, a voter list
/// edited on one node) would form a second majority beside the first, and
/// the two would overwrite each other's committed entries. So the stored
/// set must be the configured one (ids; and addresses when there are peers
/// to dial: a lone voter's address is never used). Changing the voters of
/// a running cluster needs dynamic membership, which is not built.
async fn check_stored_voters(
    raft: &Raft<TypeConfig>,
    configured: &BTreeMap<NodeId, String>,
) -> Result<(), QuorumError> {
    // Read from openraft's state (its metrics may not show the stored
    // membership yet right after it started).
    let stored: BTreeMap<NodeId, String> = raft
        .with_raft_state(|state| {
            let membership = state.membership_state.effective().membership();
            membership
                .voter_ids()
                .map(|id| {
                    let addr = membership.get_node(&id).map(|n| n.addr.clone());
                    (id, addr.unwrap_or_default())
                })
                .collect()
        })
        .await
        .map_err(|e| QuorumError::Raft(e.to_string()))?;
    if stored.is_empty() {
        return Ok(());
    }
    let same = match configured.len() {
        1 => stored.keys().eq(configured.keys()),
        _ => stored == *configured,
    };
    if same {
        return Ok(());
    }
    let show = |voters: &BTreeMap<NodeId, String>| {
        voters
            .iter()
            .map(|(id, addr)| format!("{id}@{addr}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    Err(QuorumError::VotersChanged {
        stored: show(&stored),
        configured: show(configured),
    })
}

/// The most any reachable peer has applied (as one past its last applied
/// index), if any has applied something: the cluster exists. Peers that do
/// not answer within a moment are left out (all of them down or not yet
/// started reads as a fresh cluster, the one case the guard cannot see).
async fn committed_elsewhere(config: &QuorumConfig, connector: &dyn Connector) -> Option<u64> {
    let mut most = None;
    for (id, addr) in &config.voters {
        if *id == config.node_id {
            continue;
        }
        if let Ok(status) = network::status_at(connector, *id, addr, PEER_STATUS_TIMEOUT).await {
            if status.high_watermark > 0 {
                most = most.max(Some(status.high_watermark));
            }
        }
    }
    most
}

/// A proposal the leader committed at `index` that this node did not apply
/// within `timeout`.
pub(crate) fn not_applied(index: u64, timeout: Duration) -> ProposeError {
    ProposeError::Unavailable(format!(
        "the leader committed entry {index}, and this node did not apply it within {} s",
        timeout.as_secs()
    ))
}

/// How long `shutdown` waits for the aborted server task (and its listener)
/// to be gone.
const SERVER_STOP_WAIT: Duration = Duration::from_secs(1);

/// How long an empty voter waits for each peer's answer at start.
const PEER_STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// One member of the metadata quorum.
pub struct Quorum {
    node_id: NodeId,
    started_rejoining: bool,
    last_index_at_start: Option<u64>,
    connector: Arc<dyn Connector>,
    forward_timeout: Duration,
    proposer: Arc<Proposer>,
    raft: Raft<TypeConfig>,
    state: state_machine::Shared,
    server: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
}

/// What commits proposals while this node leads: its own, and conditional
/// ones other nodes send it (served by [`network::serve`]).
pub(crate) struct Proposer {
    node_id: NodeId,
    raft: Raft<TypeConfig>,
    state: state_machine::Shared,
    /// Held from a conditional proposal's check to its apply, so no two
    /// pass their check against the same image.
    proposing: tokio::sync::Mutex<()>,
    propose_timeout: Duration,
    /// When each peer last acknowledged an append (ms since the epoch).
    acks: PeerAcks,
    /// When each follower last held everything the leader held (ms since
    /// the epoch), while this node leads.
    caught_up: PeerAcks,
    /// Brokers' heartbeats while this node leads: the broker epoch each
    /// last sent and when (cleared when leadership is won).
    heartbeats: parking_lot::Mutex<Heartbeats>,
    /// Observers' fetches: one past the index each had applied, and when
    /// (ms since the epoch).
    observers: parking_lot::Mutex<BTreeMap<NodeId, (u64, i64)>>,
    /// Set while a voter that lost its state rejoins: the peers' applied
    /// log end it must reach before it votes again (see `Quorum::start`).
    pub(crate) rejoining: parking_lot::Mutex<Option<u64>>,
}

/// How long a voter holds an observer's fetch open waiting for a new entry
/// (a long poll: changes reach observers at once, idle ones cost little).
pub const FETCH_WAIT: Duration = Duration::from_millis(500);

/// Entries one fetch answer carries at most (the rest come with the next):
/// keeps a frame far below `RPC_FRAME_BYTES_MAX`.
const FETCH_ENTRIES_MAX: usize = 256;

/// Observers remembered by a leader: past this, the stalest is forgotten.
const OBSERVERS_MAX: usize = 1024;

/// The heartbeats a leader has received since it won leadership.
#[derive(Debug, Clone)]
pub struct Heartbeats {
    /// The term they were received in: a leader of a later term starts
    /// afresh.
    pub term: u64,
    /// When this node became the leader: every broker counts as heard from
    /// then (a new leader gives each a full session to reach it).
    pub leading_since: tokio::time::Instant,
    /// Per broker: the epoch it named and when it was last heard from.
    pub last: BTreeMap<NodeId, (i64, tokio::time::Instant)>,
}

impl Proposer {
    /// See [`Quorum::propose`].
    async fn propose(&self, records: Vec<MetaRecord>) -> Result<u64, ProposeError> {
        let write = self.raft.client_write(MetaBatch(records));
        tokio::pin!(write);
        let written = loop {
            match tokio::time::timeout(self.propose_timeout, &mut write).await {
                Ok(written) => break written,
                Err(_) if self.holds_majority() => continue,
                Err(_) => {
                    return Err(ProposeError::Unavailable(format!(
                        "no majority of voters acknowledged this leader within {} ms",
                        self.propose_timeout.as_millis()
                    )))
                }
            }
        };
        match written {
            // client_write answers once applied on the leader.
            Ok(response) => Ok(response.log_id.index),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ProposeError::NotLeader {
                    leader: f.leader_id,
                })
            }
            Err(RaftError::Fatal(e)) => Err(ProposeError::Stopped(e.to_string())),
            Err(e) => Err(ProposeError::Unavailable(e.to_string())),
        }
    }

    /// Commits `records` only if this node leads and its image is the one
    /// at `expected` (see [`Quorum::propose_if`]).
    pub(crate) async fn propose_if(
        &self,
        expected: Option<u64>,
        records: Vec<MetaRecord>,
    ) -> Result<u64, ProposeError> {
        let _one_at_a_time = self.proposing.lock().await;
        // A new leader's log may end in entries of earlier terms that are
        // not applied yet; the read barrier commits and applies them (and
        // confirms the leadership with a majority) before the image is
        // compared.
        let barrier = tokio::time::timeout(self.propose_timeout, self.raft.ensure_linearizable());
        match barrier.await {
            Ok(Ok(_)) => {}
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                return Err(ProposeError::NotLeader {
                    leader: f.leader_id,
                })
            }
            Ok(Err(RaftError::Fatal(e))) => return Err(ProposeError::Stopped(e.to_string())),
            Ok(Err(e)) => return Err(ProposeError::Unavailable(e.to_string())),
            Err(_) => {
                return Err(ProposeError::Unavailable(format!(
                    "no majority of voters confirmed this leader within {} ms",
                    self.propose_timeout.as_millis()
                )))
            }
        }
        let applied = self.state.read_recursive().last_applied.map(|l| l.index);
        // An entry appended and not applied (an earlier proposal that timed
        // out and may still commit) could change what the check saw.
        let last = self.raft.metrics().borrow().last_log_index;
        if applied != expected || last > applied {
            return Err(ProposeError::Stale {
                applied: applied.max(last),
            });
        }
        self.propose(records).await
    }

    /// The quorum as this node sees it, for DescribeQuorum. Replication
    /// progress is known only on the leader; elsewhere each voter's fields
    /// are `None`.
    pub(crate) fn status(&self) -> QuorumStatus {
        let metrics = self.raft.metrics().borrow().clone();
        let now = log_store::now_ms();
        let leader_end = metrics.last_log_index.map_or(0, |i| i + 1);
        let is_leader = metrics.current_leader == Some(self.node_id);
        let acks = self.acks.lock().clone();
        let caught_up = self.caught_up.lock().clone();
        let voters = metrics
            .membership_config
            .membership()
            .voter_ids()
            .map(|id| {
                if !is_leader {
                    return ReplicaStatus {
                        id,
                        log_end: None,
                        last_fetch_ms: None,
                        last_caught_up_ms: None,
                    };
                }
                if id == self.node_id {
                    // The leader is its own latest fetch and always caught up.
                    return ReplicaStatus {
                        id,
                        log_end: Some(leader_end),
                        last_fetch_ms: Some(now),
                        last_caught_up_ms: Some(now),
                    };
                }
                let log_end = metrics
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&id).copied().flatten())
                    .map(|matched| matched.index + 1);
                let last_fetch_ms = acks.get(&id).copied();
                let last_caught_up_ms = caught_up.get(&id).copied();
                ReplicaStatus {
                    id,
                    log_end,
                    last_fetch_ms,
                    last_caught_up_ms,
                }
            })
            .collect();
        let observers = match is_leader {
            false => Vec::new(),
            true => self
                .observers
                .lock()
                .iter()
                .map(|(id, (end, at))| ReplicaStatus {
                    id: *id,
                    log_end: Some(*end),
                    last_fetch_ms: Some(*at),
                    last_caught_up_ms: (*end >= leader_end).then_some(*at),
                })
                .collect(),
        };
        QuorumStatus {
            leader: metrics.current_leader,
            term: metrics.current_term,
            high_watermark: metrics.last_applied.map_or(0, |l| l.index + 1),
            voters,
            observers,
        }
    }

    /// Answers an observer: the committed entries after `after`, waiting up
    /// to [`FETCH_WAIT`] for one when there are none, or the whole image
    /// when it is further behind than the entries kept.
    pub(crate) async fn serve_fetch(
        &self,
        node_id: NodeId,
        after: Option<u64>,
    ) -> network::FetchReply {
        // From the wire: an index past any log saturates instead of
        // wrapping, and is answered with nothing (nothing follows it).
        let next = after.map_or(0, |a| a.saturating_add(1));
        let _ = self
            .raft
            .wait(Some(FETCH_WAIT))
            .applied_index_at_least(Some(next), "observer fetch")
            .await;
        // An isolated old leader still names itself: only one that holds
        // its majority is named, so the observer looks elsewhere.
        let leader = self
            .raft
            .metrics()
            .borrow()
            .current_leader
            .filter(|l| *l != self.node_id || self.holds_majority());
        if leader == Some(self.node_id) {
            let mut observers = self.observers.lock();
            if observers.len() >= OBSERVERS_MAX && !observers.contains_key(&node_id) {
                let stalest = observers
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(id, _)| *id);
                observers.remove(&stalest.unwrap_or(node_id));
            }
            observers.insert(node_id, (next, log_store::now_ms()));
        }
        let applied = self.state.read_recursive();
        let last = applied.last_applied.map(|l| l.index);
        if last.is_none_or(|l| l < next) {
            return network::FetchReply::Entries {
                leader,
                entries: Vec::new(),
            };
        }
        match applied.recent.front() {
            Some((first, _)) if *first <= next => network::FetchReply::Entries {
                leader,
                entries: applied
                    .recent
                    .iter()
                    .skip((next - first) as usize)
                    .take(FETCH_ENTRIES_MAX)
                    .map(|(index, records)| (*index, records.as_ref().clone()))
                    .collect(),
            },
            _ => network::FetchReply::Image {
                leader,
                applied: last,
                records: applied.image.to_records(),
            },
        }
    }

    /// Records a broker's heartbeat, if this node leads.
    pub(crate) fn heartbeat(&self, node_id: NodeId, epoch: i64) -> Result<(), ProposeError> {
        // From the wire: only registered brokers are remembered, so the map
        // is bounded by the registrations, not by what peers claim.
        let registered = i32::try_from(node_id)
            .is_ok_and(|id| self.state.read_recursive().image.brokers.contains_key(&id));
        if !registered {
            return Err(ProposeError::Unavailable(format!(
                "broker {node_id} is not registered: register before heartbeating"
            )));
        }
        let Some(mut heard) = self.leading_heartbeats() else {
            let leader = self.raft.metrics().borrow().current_leader;
            return Err(ProposeError::NotLeader { leader });
        };
        heard
            .last
            .insert(node_id, (epoch, tokio::time::Instant::now()));
        Ok(())
    }

    /// The heartbeats of this node's current term of leadership (started
    /// afresh the first time they are touched in a new term), or `None`
    /// when it does not lead.
    fn leading_heartbeats(&self) -> Option<parking_lot::MutexGuard<'_, Heartbeats>> {
        let (leader, term) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (m.current_leader, m.current_term)
        };
        if leader != Some(self.node_id) {
            return None;
        }
        let mut heard = self.heartbeats.lock();
        if heard.term != term {
            *heard = Heartbeats {
                term,
                leading_since: tokio::time::Instant::now(),
                last: BTreeMap::new(),
            };
        }
        Some(heard)
    }

    /// Whether this node leads and a majority acknowledged it within the
    /// propose timeout (a lone voter is its own majority).
    fn holds_majority(&self) -> bool {
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.running_state.is_err() || metrics.current_leader != Some(self.node_id) {
            return false;
        }
        let mut voters = metrics.membership_config.membership().voter_ids();
        if voters.next() == Some(self.node_id) && voters.next().is_none() {
            return true;
        }
        metrics
            .millis_since_quorum_ack
            .is_some_and(|ms| u128::from(ms) < self.propose_timeout.as_millis())
    }
}

impl Quorum {
    /// Opens the node's storage, starts openraft and serves its RPCs on
    /// the streams `acceptor` yields (a `TcpListener`, or a simulator's). A node whose storage is empty initializes the cluster with
    /// the voters (every voter may: openraft accepts the same membership on
    /// each, and refuses it once a node holds any log or vote).
    pub async fn start(
        config: QuorumConfig,
        acceptor: Box<dyn Acceptor>,
        connector: Arc<dyn Connector>,
    ) -> Result<Quorum, QuorumError> {
        if !config.voters.contains_key(&config.node_id) {
            return Err(QuorumError::NotAVoter {
                node_id: config.node_id,
                voters: config.voters.keys().copied().collect(),
            });
        }
        std::fs::create_dir_all(&config.dir).map_err(|e| QuorumError::Storage(e.to_string()))?;
        let mut log = log_store::LogStore::open(
            &config.dir.join("log"),
            &config.dir,
            config.storage.clone(),
            config.disk_wait.clone(),
        )
        .map_err(|e| QuorumError::Storage(e.to_string()))?;
        let fresh = log.is_empty();
        let last_index_at_start = openraft::storage::RaftLogStorage::get_log_state(&mut log)
            .await
            .map_err(|e| QuorumError::Storage(e.to_string()))?
            .last_log_id
            .map(|l| l.index);
        let (sm, state) = state_machine::StateMachine::open(&config.dir, config.publisher.clone())
            .map_err(|e| QuorumError::Storage(e.to_string()))?;
        let raft_config = Config {
            cluster_name: "vltava-metadata".into(),
            heartbeat_interval: config.heartbeat_interval.as_millis() as u64,
            election_timeout_min: config.election_timeout_min.as_millis() as u64,
            election_timeout_max: config.election_timeout_max.as_millis() as u64,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_after_entries),
            max_in_snapshot_log_to_keep: config.entries_kept_after_snapshot,
            install_snapshot_timeout: 10_000,
            ..Config::default()
        };
        let raft_config = Arc::new(
            raft_config
                .validate()
                .map_err(|e| QuorumError::Raft(e.to_string()))?,
        );
        let acks = network::PeerAcks::default();
        let network = network::Network::new(connector.clone(), acks.clone());
        let raft = Raft::new(config.node_id, raft_config, network, log, sm)
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))?;
        if let Err(e) = check_stored_voters(&raft, &config.voters).await {
            let _ = raft.shutdown().await;
            return Err(e);
        }
        let proposer = Arc::new(Proposer {
            node_id: config.node_id,
            raft: raft.clone(),
            state: state.clone(),
            proposing: tokio::sync::Mutex::new(()),
            propose_timeout: config.propose_timeout,
            acks: acks.clone(),
            caught_up: PeerAcks::default(),
            heartbeats: parking_lot::Mutex::new(Heartbeats {
                term: 0,
                leading_since: tokio::time::Instant::now(),
                last: BTreeMap::new(),
            }),
            observers: parking_lot::Mutex::new(BTreeMap::new()),
            rejoining: parking_lot::Mutex::new(None),
        });
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(network::serve(
            acceptor,
            proposer.clone(),
            Arc::new(config.voters.keys().copied().collect()),
            stopped.clone(),
        ));
        // An empty voter of several may be a wiped one: if a peer has
        // already applied entries, the cluster exists, and this node must
        // neither initialize it again nor vote (it may already have voted
        // in the current term before it lost its state) until it holds
        // what the peers had committed.
        let rejoining = match fresh && config.voters.len() > 1 {
            true => committed_elsewhere(&config, &*connector).await,
            false => None,
        };
        if let Some(target) = rejoining {
            tracing::warn!(
                committed = target,
                "this voter's metadata log is empty but its peers hold committed entries (it joins a running cluster late, or its data was lost): it takes part without voting until it has caught up"
            );
            *proposer.rejoining.lock() = Some(target);
        }
        tokio::spawn(watch_caught_up(proposer.clone(), stopped));
        if fresh && rejoining.is_none() {
            let members: BTreeMap<NodeId, BasicNode> = config
                .voters
                .iter()
                .map(|(id, addr)| (*id, BasicNode::new(addr)))
                .collect();
            match raft.initialize(members).await {
                Ok(()) => {}
                // Another voter got there first and replicated to us.
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => {
                    let _ = stop.send(true);
                    let _ = raft.shutdown().await;
                    server.abort();
                    return Err(QuorumError::Raft(e.to_string()));
                }
            }
        }
        let quorum = Quorum {
            node_id: config.node_id,
            started_rejoining: rejoining.is_some(),
            last_index_at_start,
            connector: connector.clone(),
            forward_timeout: config.forward_timeout,
            proposer,
            raft,
            state,
            server,
            stop,
        };
        if let Err(e) = quorum.import(&config).await {
            quorum.shutdown().await;
            return Err(e);
        }
        Ok(quorum)
    }

    /// Commits `initial_records` unless an earlier start did. A crash between
    /// the commit and the marker proposes them again, which leaves the image
    /// as it was: applying an image's records to itself changes nothing.
    async fn import(&self, config: &QuorumConfig) -> Result<(), QuorumError> {
        let marker = config.dir.join(IMPORTED_FILE);
        if config.initial_records.is_empty() || marker.exists() {
            return Ok(());
        }
        if config.voters.len() != 1 {
            return Err(QuorumError::Raft(
                "initial records can only be imported by a single voter (an upgraded single node)"
                    .into(),
            ));
        }
        let started = tokio::time::Instant::now();
        loop {
            match self.propose(config.initial_records.clone()).await {
                Ok(_) => break,
                Err(e) if started.elapsed() < config.propose_timeout * 2 => {
                    tracing::debug!(error = %e, "waiting to import the metadata image");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => {
                    return Err(QuorumError::Raft(format!(
                        "importing the metadata image: {e}"
                    )))
                }
            }
        }
        log_store::blocking(|| log_store::write_json(&config.dir, IMPORTED_FILE, &true))
            .map_err(|e| QuorumError::Storage(e.to_string()))?;
        tracing::info!(
            records = config.initial_records.len(),
            "imported the metadata image into the quorum"
        );
        Ok(())
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Commits `records` as one entry through the leader; returns its log
    /// index once a majority has it and this node has applied it (its
    /// publisher included). `Unavailable` comes when the leader has not
    /// heard from a majority for `propose_timeout`, or openraft stopped; a
    /// leader that still has its majority keeps waiting, however long the
    /// state machine takes to apply a large change, so a caller never gives
    /// up on (and retries) a change that is about to apply. An
    /// `Unavailable` does not mean "not committed": the entry may still
    /// commit later, so proposals should be safe to repeat.
    pub async fn propose(&self, records: Vec<MetaRecord>) -> Result<u64, ProposeError> {
        self.proposer.propose(records).await
    }

    /// Commits `records` only if the leader's image is still the one this
    /// node had applied up to `expected` when it decided on them (its
    /// [`Quorum::applied_index`] then), from any node: a follower sends the
    /// proposal to the leader and answers once it has applied the entry
    /// itself. This is how brokers hand controller work to the active
    /// controller: the checks run where the request arrived, against the
    /// committed image, and the leader's comparison makes sure no other
    /// change came in between (optimistic concurrency). `Stale` says to
    /// apply further, check again and propose again; `NotLeader` with no
    /// leader, that an election is under way.
    pub async fn propose_if(
        &self,
        expected: Option<u64>,
        records: Vec<MetaRecord>,
    ) -> Result<u64, ProposeError> {
        let (leader, addr) = self.leader_address();
        let Some(leader) = leader else {
            return Err(ProposeError::NotLeader { leader: None });
        };
        if leader == self.node_id {
            return self.proposer.propose_if(expected, records).await;
        }
        let Some(addr) = addr else {
            return Err(ProposeError::NotLeader { leader: None });
        };
        let index = network::propose_at(
            &*self.connector,
            leader,
            &addr,
            expected,
            records,
            self.forward_timeout,
        )
        .await?;
        match self.wait_applied(index, self.forward_timeout).await {
            true => Ok(index),
            false => Err(not_applied(index, self.forward_timeout)),
        }
    }

    /// Reads the image as of the last applied entry, with that entry's
    /// index (what [`Quorum::propose_if`] expects), without copying it. No
    /// entry is applied while `read` runs.
    pub fn with_image_at<R>(&self, read: impl FnOnce(&MetadataImage, Option<u64>) -> R) -> R {
        let applied = self.state.read_recursive();
        read(&applied.image, applied.last_applied.map(|l| l.index))
    }

    /// The image as of the last applied entry.
    pub fn image(&self) -> MetadataImage {
        self.state.read_recursive().image.clone()
    }

    /// Reads the image as of the last applied entry without copying it.
    /// No entry is applied (and no publisher runs) while `read` runs.
    ///
    /// Readers take the lock without queueing behind a waiting writer
    /// (`read_recursive`): the publisher holds it for reading while it opens
    /// partitions, the state machine then waits to write, and a heartbeat or
    /// a metadata answer must not wait behind both.
    pub fn with_image<R>(&self, read: impl FnOnce(&MetadataImage) -> R) -> R {
        read(&self.state.read_recursive().image)
    }

    /// The index of the last entry this node's log held when it started
    /// (`None` when empty). A lone voter committed all of it, so once it
    /// has applied this far its image is the one it had when it stopped.
    pub fn last_index_at_start(&self) -> Option<u64> {
        self.last_index_at_start
    }

    /// The index of the last entry this node applied (`None` before any).
    pub fn applied_index(&self) -> Option<u64> {
        self.state.read_recursive().last_applied.map(|l| l.index)
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Whether this voter is rejoining after losing its state and does not
    /// vote yet (see [`Quorum::start`]).
    pub fn is_rejoining(&self) -> bool {
        self.proposer.rejoining.lock().is_some()
    }

    /// Whether this voter started empty in an existing cluster (and so
    /// rejoined without voting until it caught up).
    pub fn started_rejoining(&self) -> bool {
        self.started_rejoining
    }

    /// The current term (Kafka's quorum epoch).
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// The quorum as this node sees it, for DescribeQuorum. Replication
    /// progress is known only on the leader; elsewhere each voter's fields
    /// are `None`.
    pub fn status(&self) -> QuorumStatus {
        self.proposer.status()
    }

    /// The quorum as its leader sees it (replication progress is known
    /// only there): this node's status if it leads, else the leader's,
    /// asked over the quorum's connection (Kafka forwards DescribeQuorum
    /// to the active controller the same way).
    pub async fn leader_status(&self) -> Result<QuorumStatus, ProposeError> {
        let (leader, addr) = self.leader_address();
        match leader {
            None => Err(ProposeError::NotLeader { leader: None }),
            Some(l) if l == self.node_id => Ok(self.status()),
            Some(l) => {
                let addr = addr.ok_or(ProposeError::NotLeader { leader: None })?;
                network::status_at(&*self.connector, l, &addr, self.forward_timeout).await
            }
        }
    }

    /// Tells the leader that broker `node_id` (registered with `epoch`) is
    /// alive: Kafka's BrokerHeartbeat, carried by the quorum's connections.
    pub async fn heartbeat(&self, node_id: NodeId, epoch: i64) -> Result<(), ProposeError> {
        let (leader, addr) = self.leader_address();
        match leader {
            None => Err(ProposeError::NotLeader { leader: None }),
            Some(l) if l == self.node_id => self.proposer.heartbeat(node_id, epoch),
            Some(l) => {
                let addr = addr.ok_or(ProposeError::NotLeader { leader: None })?;
                network::heartbeat_at(
                    &*self.connector,
                    l,
                    &addr,
                    node_id,
                    epoch,
                    self.forward_timeout,
                )
                .await
            }
        }
    }

    /// The heartbeats received while this node leads (`None` when it does
    /// not): what the controller fences and unfences brokers by.
    pub fn heartbeats(&self) -> Option<Heartbeats> {
        self.proposer.leading_heartbeats().map(|h| h.clone())
    }

    /// [`Quorum::propose_if`] only where this node leads: `NotLeader`
    /// otherwise, never sent on (for decisions only the leader may take,
    /// such as fencing brokers by the heartbeats it received).
    pub async fn propose_if_leading(
        &self,
        expected: Option<u64>,
        records: Vec<MetaRecord>,
    ) -> Result<u64, ProposeError> {
        let leader = self.leader();
        if leader != Some(self.node_id) {
            return Err(ProposeError::NotLeader { leader });
        }
        self.proposer.propose_if(expected, records).await
    }

    /// The leader this node knows of, and its quorum address.
    fn leader_address(&self) -> (Option<NodeId>, Option<String>) {
        let m = self.raft.metrics();
        let m = m.borrow();
        let leader = m.current_leader;
        let addr = leader.and_then(|l| {
            m.membership_config
                .membership()
                .get_node(&l)
                .map(|n| n.addr.clone())
        });
        (leader, addr)
    }

    /// The voters of the committed membership.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    /// Waits until some node leads (this one's view), or `timeout`; returns
    /// the leader. A lone voter leads moments after it starts, but not
    /// before `start` returns.
    pub async fn wait_leader(&self, timeout: Duration) -> Option<NodeId> {
        self.raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "wait_leader")
            .await
            .ok()
            .and_then(|m| m.current_leader)
    }

    /// Waits until this node has applied at least `index`, or `timeout`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "wait_applied")
            .await
            .is_ok()
    }

    /// Stops serving and shuts openraft down (its storage is already
    /// durable: nothing is lost by stopping at any point).
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let _ = self.raft.shutdown().await;
        self.server.abort();
        // The listener is dropped with the server task: wait for it, so the
        // port is free when this returns (a restart binds it again).
        let started = tokio::time::Instant::now();
        while !self.server.is_finished() && started.elapsed() < SERVER_STOP_WAIT {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
