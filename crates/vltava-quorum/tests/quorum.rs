//! The metadata quorum on real sockets and real files: one voter and three,
//! commits reaching every node, a proposal at a follower naming the leader,
//! the leader stopped and another elected, a stopped node catching up from
//! its own log, a minority refusing changes, and snapshots bounding what a
//! restart replays. Waits are on conditions with deadlines.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use vltava_meta::{ConfigResource, MetaRecord, MetadataImage};
use vltava_quorum::{NodeId, ProposeError, Quorum, QuorumConfig, TcpConnector};

const DEADLINE: Duration = Duration::from_secs(20);

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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

struct Cluster {
    dirs: BTreeMap<NodeId, PathBuf>,
    addrs: BTreeMap<NodeId, SocketAddr>,
    nodes: BTreeMap<NodeId, Quorum>,
    snapshot_after: u64,
}

impl Cluster {
    async fn start(root: &Path, n: u64, snapshot_after: u64) -> Cluster {
        let mut listeners = BTreeMap::new();
        for id in 1..=n {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listeners.insert(id, listener);
        }
        let addrs: BTreeMap<NodeId, SocketAddr> = listeners
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
        let quorum = Quorum::start(self.config(id), listener, Arc::new(TcpConnector))
            .await
            .unwrap();
        self.nodes.insert(id, quorum);
    }

    async fn stop(&mut self, id: NodeId) {
        self.nodes.remove(&id).unwrap().shutdown().await;
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

    async fn all_have(&self, n: usize) {
        let want = image_with(n);
        wait_for(
            &format!("every running node's image to hold {n} records"),
            || self.nodes.values().all(|q| q.image() == want),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_voter_commits_and_keeps_everything_across_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(root.path(), 1, 5_000).await;
    assert_eq!(cluster.leader().await, 1);
    for i in 0..5 {
        let index = cluster.nodes[&1].propose(vec![record(i)]).await.unwrap();
        assert!(cluster.nodes[&1].applied_index() >= Some(index));
    }
    assert_eq!(cluster.nodes[&1].image(), image_with(5));
    let term = cluster.nodes[&1].term();
    cluster.stop(1).await;
    cluster.restart(1).await;
    assert_eq!(cluster.leader().await, 1);
    cluster.all_have(5).await;
    // Terms only grow (a lone voter may keep its term across a restart).
    assert!(cluster.nodes[&1].term() >= term);
    cluster.nodes[&1].propose(vec![record(5)]).await.unwrap();
    assert_eq!(cluster.nodes[&1].image(), image_with(6));
    cluster.stop(1).await;
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
        cluster.nodes[&leader]
            .propose(vec![record(i)])
            .await
            .unwrap();
    }
    cluster.all_have(10).await;

    // A follower refuses and names the leader.
    let follower = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    assert_eq!(
        cluster.nodes[&follower].propose(vec![record(99)]).await,
        Err(ProposeError::NotLeader {
            leader: Some(leader)
        })
    );

    // The leader stops: the two others elect one of them and go on.
    cluster.stop(leader).await;
    let next = cluster.leader().await;
    assert_ne!(next, leader);
    for i in 10..15 {
        cluster.nodes[&next].propose(vec![record(i)]).await.unwrap();
    }
    cluster.all_have(15).await;

    // The old leader comes back from its own log and catches up.
    cluster.restart(leader).await;
    cluster.all_have(15).await;
    for id in [1, 2, 3] {
        cluster.stop(id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_refuses_changes_until_the_majority_is_back() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(root.path(), 3, 5_000).await;
    let leader = cluster.leader().await;
    cluster.nodes[&leader]
        .propose(vec![record(0)])
        .await
        .unwrap();
    cluster.all_have(1).await;
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
    let leader = cluster.leader().await;
    cluster.nodes[&leader]
        .propose(vec![record(2)])
        .await
        .unwrap();
    // record(1) may or may not have been committed once the majority came
    // back (it was in the old leader's log); record(0) and record(2) are.
    wait_for("the majority's commits everywhere", || {
        cluster.nodes.values().all(|q| {
            let image = q.image();
            let broker = image.configs_of(&ConfigResource::Broker(String::new()));
            broker.contains_key("key-0") && broker.contains_key("key-2")
        })
    })
    .await;
    for id in [1, 2, 3] {
        cluster.stop(id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_bound_what_a_restart_replays() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(root.path(), 1, 10).await;
    cluster.leader().await;
    for i in 0..40 {
        cluster.nodes[&1].propose(vec![record(i)]).await.unwrap();
    }
    let snapshot = cluster.dirs[&1].join("snapshot.json");
    let log_start = cluster.dirs[&1].join("log/log-start-offset");
    // The snapshot is taken and the log below it purged: the restart below
    // can only get the early records from the snapshot.
    wait_for("a snapshot and a purged log", || {
        snapshot.exists()
            && std::fs::read_to_string(&log_start)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .is_some_and(|start| start >= 10)
    })
    .await;
    cluster.stop(1).await;
    cluster.restart(1).await;
    cluster.leader().await;
    cluster.all_have(40).await;
    cluster.stop(1).await;
}
