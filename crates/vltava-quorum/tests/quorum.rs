//! The metadata quorum on real sockets and real files: one voter and three,
//! commits reaching every node, a proposal at a follower naming the leader,
//! the leader stopped and another elected, a stopped node catching up, a
//! minority refusing changes, snapshots with the log purged below them, and
//! a follower so far behind that only a snapshot can bring it back. Waits
//! are on conditions with deadlines; proposals go to whoever leads.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use vltava_meta::{ConfigResource, MetaRecord, MetadataImage};
use vltava_quorum::{Change, NodeId, ProposeError, Publisher, Quorum, QuorumConfig, TcpConnector};

mod common;
use common::{wait_for, DEADLINE};

/// A config record naming `i`, so images differ per proposal.
fn record(i: usize) -> MetaRecord {
    MetaRecord::Config {
        resource: ConfigResource::Broker(String::new()),
        name: format!("key-{i}"),
        value: Some(i.to_string()),
    }
}

fn image_with(n: usize) -> MetadataImage {
    let mut image = MetadataImage::default();
    for i in 0..n {
        image.apply(&record(i));
    }
    image
}

/// A publisher that rebuilds the image from what it is told: records
/// applied in order, or the whole image on a reset. Any difference from the
/// image it is shown is counted.
#[derive(Default)]
struct Mirror {
    image: std::sync::Mutex<MetadataImage>,
    mismatches: std::sync::atomic::AtomicUsize,
}

impl Publisher for Mirror {
    fn publish(&self, image: &MetadataImage, change: Change<'_>) {
        let mut mine = self.image.lock().unwrap();
        match change {
            Change::Records(records) => records.iter().for_each(|r| mine.apply(r)),
            Change::Reset => *mine = image.clone(),
        }
        if *mine != *image {
            self.mismatches
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// A controller that commits the record a forwarded request names
/// (`record(n)` for the request `n`) through its own node, and replies with
/// its node id and the entry's index.
struct Committer {
    node: NodeId,
    quorum: std::sync::OnceLock<std::sync::Weak<Quorum>>,
    runtime: tokio::runtime::Handle,
}

impl vltava_quorum::Controller for Committer {
    fn handle(&self, request: &[u8]) -> Vec<u8> {
        let n: usize = std::str::from_utf8(request).unwrap().parse().unwrap();
        let quorum = self.quorum.get().and_then(|q| q.upgrade()).unwrap();
        let index = self
            .runtime
            .block_on(quorum.propose(vec![record(n)]))
            .unwrap();
        format!("{}:{index}", self.node).into_bytes()
    }
}

struct Cluster {
    dirs: BTreeMap<NodeId, PathBuf>,
    addrs: BTreeMap<NodeId, SocketAddr>,
    nodes: BTreeMap<NodeId, Arc<Quorum>>,
    /// Each running node's publisher.
    mirrors: BTreeMap<NodeId, Arc<Mirror>>,
    snapshot_after: u64,
}

impl Cluster {
    async fn start(root: &Path, n: u64, snapshot_after: u64) -> Cluster {
        let mut listeners = BTreeMap::new();
        for id in 1..=n {
            listeners.insert(id, TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let addrs = listeners
            .iter()
            .map(|(id, l)| (*id, l.local_addr().unwrap()))
            .collect();
        let dirs = (1..=n)
            .map(|id| (id, root.join(format!("node-{id}"))))
            .collect();
        let mut cluster = Cluster {
            dirs,
            addrs,
            nodes: BTreeMap::new(),
            mirrors: BTreeMap::new(),
            snapshot_after,
        };
        for (id, listener) in listeners {
            cluster.launch(id, listener).await;
        }
        cluster
    }

    fn config(&self, id: NodeId) -> QuorumConfig {
        let voters = self
            .addrs
            .iter()
            .map(|(id, a)| (*id, a.to_string()))
            .collect();
        let mut config = QuorumConfig::new(id, voters, self.dirs[&id].clone());
        config.snapshot_after_entries = self.snapshot_after;
        config.entries_kept_after_snapshot = 0;
        config.propose_timeout = Duration::from_secs(2);
        config
    }

    async fn launch(&mut self, id: NodeId, listener: TcpListener) {
        let mirror = Arc::new(Mirror::default());
        let committer = Arc::new(Committer {
            node: id,
            quorum: Default::default(),
            runtime: tokio::runtime::Handle::current(),
        });
        let mut config = self.config(id);
        config.publisher = Some(mirror.clone());
        config.controller = Some(committer.clone());
        let quorum = Arc::new(
            Quorum::start(config, Box::new(listener), Arc::new(TcpConnector))
                .await
                .unwrap(),
        );
        committer.quorum.set(Arc::downgrade(&quorum)).unwrap();
        self.nodes.insert(id, quorum);
        self.mirrors.insert(id, mirror);
    }

    async fn stop(&mut self, id: NodeId) {
        self.nodes.remove(&id).unwrap().shutdown().await;
        self.mirrors.remove(&id);
    }

    async fn restart(&mut self, id: NodeId) {
        let listener = TcpListener::bind(self.addrs[&id]).await.unwrap();
        self.launch(id, listener).await;
    }

    /// The leader every running node agrees on.
    async fn leader(&self) -> NodeId {
        let mut agreed = None;
        wait_for("one leader all running nodes know", || {
            let leaders: Vec<Option<NodeId>> = self.nodes.values().map(|q| q.leader()).collect();
            agreed = leaders[0]
                .filter(|l| self.nodes.contains_key(l) && leaders.iter().all(|x| *x == Some(*l)));
            agreed.is_some()
        })
        .await;
        agreed.unwrap()
    }

    /// Proposes through whoever leads, looking the leader up again when
    /// leadership moved meanwhile (these records are safe to repeat).
    async fn propose(&self, records: Vec<MetaRecord>) {
        let start = Instant::now();
        loop {
            let leader = self.leader().await;
            match self.nodes[&leader].propose(records.clone()).await {
                Ok(index) => {
                    // Answered once applied at the leader.
                    assert!(self.nodes[&leader].applied_index() >= Some(index));
                    return;
                }
                Err(e) => {
                    assert!(start.elapsed() < DEADLINE, "no leader committed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn all_have(&self, n: usize) {
        let want = image_with(n);
        wait_for(
            &format!("every running node's image to hold {n} records"),
            // The publishers too were told every change: a restart's
            // restored snapshot, the entries after it, an installed one.
            || {
                self.nodes.values().all(|q| q.image() == want)
                    && self
                        .mirrors
                        .values()
                        .all(|m| *m.image.lock().unwrap() == want)
            },
        )
        .await;
        for (id, mirror) in &self.mirrors {
            let mismatches = mirror.mismatches.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(mismatches, 0, "node {id}'s publisher");
        }
    }

    /// A node's log start offset (0 until its log is first purged).
    fn log_start(&self, id: NodeId) -> u64 {
        std::fs::read_to_string(self.dirs[&id].join("log/log-start-offset"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    async fn stop_all(mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_voter_commits_and_keeps_everything_across_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(root.path(), 1, 5_000).await;
    assert_eq!(cluster.leader().await, 1);
    for i in 0..5 {
        cluster.propose(vec![record(i)]).await;
    }
    assert_eq!(cluster.nodes[&1].image(), image_with(5));
    let term = cluster.nodes[&1].term();
    cluster.stop(1).await;
    cluster.restart(1).await;
    assert_eq!(cluster.leader().await, 1);
    cluster.all_have(5).await;
    // Terms only grow (a lone voter may keep its term across a restart).
    assert!(cluster.nodes[&1].term() >= term);
    cluster.propose(vec![record(5)]).await;
    assert_eq!(cluster.nodes[&1].image(), image_with(6));
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_replicate_fail_over_and_catch_up() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(root.path(), 3, 5_000).await;
    let leader = cluster.leader().await;
    assert_eq!(
        cluster.nodes[&leader]
            .voters()
            .into_iter()
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    for i in 0..10 {
        cluster.propose(vec![record(i)]).await;
    }
    cluster.all_have(10).await;

    // A follower refuses and names a leader other than itself.
    let leader = cluster.leader().await;
    let follower = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    wait_for("the follower to know a leader", || {
        cluster.nodes[&follower].leader().is_some()
    })
    .await;
    match cluster.nodes[&follower].propose(vec![record(99)]).await {
        Err(ProposeError::NotLeader {
            leader: Some(named),
        }) => assert_ne!(named, follower),
        other => panic!("a follower proposed: {other:?}"),
    }

    // The leader reports every voter caught up, with the times it last
    // heard from each; a follower knows no one's progress.
    wait_for("the leader to see every voter caught up", || {
        let status = cluster.nodes[&leader].status();
        status.leader == Some(leader)
            && status.voters.len() == 3
            && status.voters.iter().all(|v| {
                v.log_end == Some(status.high_watermark)
                    && v.last_fetch_ms.is_some()
                    && v.last_caught_up_ms.is_some()
            })
    })
    .await;
    let status = cluster.nodes[&follower].status();
    assert_eq!(status.leader, Some(leader));
    assert!(
        status.voters.iter().all(|v| v.log_end.is_none()),
        "{status:?}"
    );

    // The leader stops: the two others elect one of them and go on.
    cluster.stop(leader).await;
    let next = cluster.leader().await;
    assert_ne!(next, leader);
    for i in 10..15 {
        cluster.propose(vec![record(i)]).await;
    }
    cluster.all_have(15).await;

    // The old leader comes back from its own log and catches up.
    cluster.restart(leader).await;
    cluster.all_have(15).await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_forward_controller_work_to_the_leader() {
    let root = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(root.path(), 3, 1_000).await;
    let leader = cluster.leader().await;
    let followers: Vec<NodeId> = cluster
        .nodes
        .keys()
        .copied()
        .filter(|id| *id != leader)
        .collect();
    for (n, follower) in followers.iter().enumerate() {
        wait_for("the follower to know the leader", || {
            cluster.nodes[follower].leader() == Some(leader)
        })
        .await;
        let started = Instant::now();
        let reply = loop {
            match cluster.nodes[follower]
                .forward(n.to_string().into_bytes())
                .await
            {
                Ok(reply) => break reply,
                // A re-election on a loaded machine: the leader it knew
                // stepped down; the work is safe to repeat.
                Err(e) => {
                    assert!(started.elapsed() < DEADLINE, "forwarding failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let reply = String::from_utf8(reply).unwrap();
        // The leader's controller ran it, and the follower answered only
        // once it had applied what that committed.
        assert!(reply.contains(':'), "{reply}");
        assert!(cluster.nodes[follower]
            .image()
            .configs_of(&ConfigResource::Broker(String::new()))
            .contains_key(&format!("key-{n}")));
    }
    cluster.all_have(2).await;
    // The leader runs its controller itself.
    match cluster.nodes[&leader].forward(b"9".to_vec()).await {
        Err(ProposeError::NotLeader {
            leader: Some(named),
        }) => assert_eq!(named, leader),
        other => panic!("the leader forwarded: {other:?}"),
    }
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_refuses_changes_until_the_majority_is_back() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(root.path(), 3, 5_000).await;
    cluster.propose(vec![record(0)]).await;
    cluster.all_have(1).await;
    let leader = cluster.leader().await;
    let others: Vec<NodeId> = [1, 2, 3].into_iter().filter(|id| *id != leader).collect();
    for id in &others {
        cluster.stop(*id).await;
    }
    // Alone, the old leader cannot commit: a clear error, not a hang.
    let refused = cluster.nodes[&leader].propose(vec![record(1)]).await;
    assert!(
        matches!(
            refused,
            Err(ProposeError::Unavailable(_)) | Err(ProposeError::NotLeader { .. })
        ),
        "{refused:?}"
    );
    for id in &others {
        cluster.restart(*id).await;
    }
    cluster.propose(vec![record(2)]).await;
    // record(1) may or may not commit once the majority is back (it was in
    // the old leader's log); record(0) and record(2) are committed.
    wait_for("the majority's commits everywhere", || {
        cluster.nodes.values().all(|q| {
            let broker = q.image().configs_of(&ConfigResource::Broker(String::new()));
            broker.contains_key("key-0") && broker.contains_key("key-2")
        })
    })
    .await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_with_the_log_purged_below_them_restore_the_image() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(root.path(), 1, 10).await;
    for i in 0..40 {
        cluster.propose(vec![record(i)]).await;
    }
    let snapshot = cluster.dirs[&1].join("snapshot.json");
    // Snapshot taken and the log below it purged: after the restart the
    // early records can only come from the snapshot.
    wait_for("a snapshot and a purged log", || {
        snapshot.exists() && cluster.log_start(1) >= 10
    })
    .await;
    cluster.stop(1).await;
    cluster.restart(1).await;
    cluster.all_have(40).await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_purged_log_installs_a_snapshot_and_goes_on() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(root.path(), 3, 10).await;
    cluster.propose(vec![record(0)]).await;
    cluster.all_have(1).await;
    let leader = cluster.leader().await;
    let behind = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    let behind_end = cluster.log_start(behind);
    cluster.stop(behind).await;
    // Past several snapshots, the logs purged below each: the stopped
    // node's next entry is gone from every log that is running.
    for i in 1..50 {
        cluster.propose(vec![record(i)]).await;
    }
    cluster.all_have(50).await;
    wait_for("the running logs purged past the stopped node", || {
        cluster.nodes.keys().all(|id| cluster.log_start(*id) > 10)
    })
    .await;
    cluster.restart(behind).await;
    cluster.all_have(50).await;
    // It goes on appending after the snapshot it installed, its log
    // restarted past its old end.
    for i in 50..55 {
        cluster.propose(vec![record(i)]).await;
    }
    cluster.all_have(55).await;
    assert!(cluster.log_start(behind) > behind_end.max(10));
    cluster.stop_all().await;
}

/// An existing single-node metadata log's image, imported once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_image_is_imported_once_and_survives_restarts() {
    use vltava_meta::MetadataStore;
    let root = tempfile::tempdir().unwrap();
    // The legacy store, as a single node writes it today.
    let legacy_dir = root.path().join("legacy");
    let mut legacy = MetadataStore::open(&legacy_dir, 0).unwrap();
    let topic_id = uuid_from(9);
    legacy
        .append(
            &[
                MetaRecord::Topic {
                    name: "orders".into(),
                    topic_id,
                },
                MetaRecord::Partition {
                    topic_id,
                    partition: 0,
                    replicas: vec![1],
                    leader: 1,
                    leader_epoch: 0,
                },
                MetaRecord::Partition {
                    topic_id,
                    partition: 1,
                    replicas: vec![1],
                    leader: 1,
                    leader_epoch: 2,
                },
                MetaRecord::ProducerIds {
                    next_producer_id: 1000,
                },
                record(0),
            ],
            0,
        )
        .unwrap();
    let image = legacy.image().clone();

    let dir = root.path().join("quorum");
    let start = |initial: Vec<MetaRecord>| {
        let dir = dir.clone();
        async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let mut config = QuorumConfig::new(1, BTreeMap::from([(1, addr)]), dir);
            config.initial_records = initial;
            Quorum::start(config, Box::new(listener), Arc::new(TcpConnector))
                .await
                .unwrap()
        }
    };
    let quorum = start(image.to_records()).await;
    assert_eq!(quorum.image(), image);
    quorum.shutdown().await;

    // Imported already: records offered again are not proposed again.
    let quorum = start(vec![record(1)]).await;
    wait_for("the restarted node to apply its log", || {
        quorum.image() == image
    })
    .await;
    assert_eq!(quorum.image(), image);
    quorum.shutdown().await;

    // A crash before the marker was written: the import runs again and
    // changes nothing.
    std::fs::remove_file(dir.join("imported")).unwrap();
    let quorum = start(image.to_records()).await;
    // It did run: the marker is back.
    assert!(dir.join("imported").exists());
    wait_for("the image after a second import", || {
        quorum.image() == image
    })
    .await;
    quorum.shutdown().await;
}

fn uuid_from(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}
