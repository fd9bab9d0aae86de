//! The metadata quorum on real sockets and real files: one voter and three,
//! commits reaching every node, a proposal at a follower naming the leader,
//! the leader stopped and another elected, a stopped node catching up, a
//! minority refusing changes, snapshots with the log purged below them, and
//! a follower so far behind that only a snapshot can bring it back,
//! conditional proposals from any node, and Raft requests from non-voters
//! refused. Waits are on conditions with deadlines; proposals go to
//! whoever leads.

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
    /// How many times it was given a whole image.
    resets: std::sync::atomic::AtomicUsize,
}

impl Publisher for Mirror {
    fn publish(&self, image: &MetadataImage, change: Change<'_>) {
        let mut mine = self.image.lock().unwrap();
        match change {
            Change::Records(records) => records.iter().for_each(|r| mine.apply(r)),
            Change::Reset => {
                self.resets
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                *mine = image.clone()
            }
        }
        if *mine != *image {
            self.mismatches
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
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
        let mut config = self.config(id);
        config.publisher = Some(mirror.clone());
        let quorum = Arc::new(
            Quorum::start(config, Box::new(listener), Arc::new(TcpConnector))
                .await
                .unwrap(),
        );
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

/// Proposes `records` at `id` if its image is still the one at the index
/// it had applied when it read it, checking again after `Stale` and while
/// leadership moves; returns how many `Stale` answers it took.
async fn propose_checked(q: &Quorum, records: Vec<MetaRecord>) -> usize {
    let started = Instant::now();
    let mut stale = 0;
    loop {
        let expected = q.with_image_at(|_, applied| applied);
        match q.propose_if(expected, records.clone()).await {
            Ok(index) => {
                // Answered once applied here, wherever the leader is.
                assert!(q.applied_index() >= Some(index));
                return stale;
            }
            Err(ProposeError::Stale { applied }) => {
                stale += 1;
                if let Some(index) = applied {
                    q.wait_applied(index, DEADLINE).await;
                }
            }
            // An election on a loaded machine: safe to repeat.
            Err(e) => {
                assert!(started.elapsed() < DEADLINE, "proposing failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_proposes_conditionally_and_a_stale_check_commits_nothing() {
    let root = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(root.path(), 3, 1_000).await;
    let leader = cluster.leader().await;
    // Each node in turn, followers sending their proposal to the leader.
    for (n, q) in cluster.nodes.values().enumerate() {
        propose_checked(q, vec![record(n)]).await;
        assert!(q
            .image()
            .configs_of(&ConfigResource::Broker(String::new()))
            .contains_key(&format!("key-{n}")));
    }
    cluster.all_have(3).await;
    // A proposal checked against an image from before the last change is
    // refused, at the leader and through a follower, and commits nothing.
    let follower = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    for id in [leader, follower] {
        let q = &cluster.nodes[&id];
        let current = q.applied_index().unwrap();
        match q.propose_if(Some(current - 1), vec![record(99)]).await {
            Err(ProposeError::Stale { applied }) => assert!(applied >= Some(current)),
            other => panic!("node {id} committed a stale proposal: {other:?}"),
        }
    }
    // Nodes racing with proposals checked against the same image: every
    // one is committed exactly once, some after being told to check again.
    let mut racers = Vec::new();
    for (i, q) in cluster.nodes.values().enumerate() {
        let q = q.clone();
        racers.push(tokio::spawn(async move {
            let mut stale = 0;
            for j in 0..3 {
                stale += propose_checked(&q, vec![record(3 + i * 3 + j)]).await;
            }
            stale
        }));
    }
    for racer in racers {
        racer.await.unwrap();
    }
    cluster.all_have(12).await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_requests_from_a_node_that_is_not_a_voter_are_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let root = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(root.path(), 3, 1_000).await;
    let leader = cluster.leader().await;
    let term = cluster.nodes[&leader].term();
    async fn exchange(addr: SocketAddr, body: &str) -> Option<Vec<u8>> {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(&(body.len() as u32).to_be_bytes())
            .await
            .unwrap();
        s.write_all(body.as_bytes()).await.unwrap();
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await.ok()?;
        let mut answer = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut answer).await.ok()?;
        Some(answer)
    }
    let vote = |node: u64, term: u64| {
        format!(
            r#"{{"Vote":{{"vote":{{"leader_id":{{"term":{term},"node_id":{node}}},"committed":false}},"last_log_id":null}}}}"#
        )
    };
    // Node 7 is no voter: a vote request with a far higher term is not
    // answered and deposes nobody.
    assert_eq!(
        exchange(cluster.addrs[&leader], &vote(7, term + 50)).await,
        None
    );
    assert_eq!(cluster.nodes[&leader].term(), term);
    assert_eq!(cluster.nodes[&leader].leader(), Some(leader));
    // The same frame from a voter's id (with an old term, so nothing
    // changes) is answered: the refusal above is the sender check.
    let answer = exchange(
        cluster.addrs[&leader],
        &vote(follower_of(&cluster, leader), 0),
    )
    .await;
    assert!(answer.is_some_and(|a| String::from_utf8_lossy(&a).contains("Vote")));
    assert_eq!(cluster.nodes[&leader].term(), term);
    // Requests any node may send, with values from the wire at their
    // limits: a fetch after the largest index is answered with nothing
    // (no overflow), and a heartbeat for a broker never registered is
    // refused rather than remembered.
    let fetch = r#"{"Fetch":{"node_id":9,"after":18446744073709551615}}"#;
    let answer = exchange(cluster.addrs[&leader], fetch).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.contains(r#""entries":[]"#), "{answer}");
    let heartbeat = r#"{"Heartbeat":{"node_id":77,"epoch":0}}"#;
    let answer = exchange(cluster.addrs[&leader], heartbeat).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.contains("broker 77 is not registered"), "{answer}");
    cluster.stop_all().await;
}

fn follower_of(cluster: &Cluster, leader: NodeId) -> NodeId {
    *cluster.nodes.keys().find(|id| **id != leader).unwrap()
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
                    isr: None,
                    partition_epoch: 0,
                    adding: vec![],
                    removing: vec![],
                    elr: vec![],
                },
                MetaRecord::Partition {
                    topic_id,
                    partition: 1,
                    replicas: vec![1],
                    leader: 1,
                    leader_epoch: 2,
                    isr: None,
                    partition_epoch: 0,
                    adding: vec![],
                    removing: vec![],
                    elr: vec![],
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_log_holds_other_voters_is_refused() {
    let root = tempfile::tempdir().unwrap();
    // A lone voter with a log...
    let mut alone = Cluster::start(root.path(), 1, 1_000).await;
    alone.propose(vec![record(0)]).await;
    alone.stop(1).await;
    // ...restarted as one of three would be a second majority.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut voters = BTreeMap::from([(1, alone.addrs[&1].to_string())]);
    voters.insert(2, "127.0.0.1:1".into());
    voters.insert(3, "127.0.0.1:2".into());
    let config = QuorumConfig::new(1, voters, alone.dirs[&1].clone());
    let refused = Quorum::start(config, Box::new(listener), Arc::new(TcpConnector)).await;
    match refused {
        Err(vltava_quorum::QuorumError::VotersChanged { stored, configured }) => {
            assert_eq!(stored, format!("1@{}", alone.addrs[&1]));
            assert!(
                configured.ends_with(",2@127.0.0.1:1,3@127.0.0.1:2"),
                "{configured}"
            );
        }
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("a lone voter's log started as one of three voters"),
    }
    // With its own voter set it starts, its record kept (a lone voter's
    // address is never dialed, so it may change).
    alone.restart(1).await;
    alone.all_have(1).await;
    alone.stop_all().await;

    // One of three voters whose peer moved to another address is refused.
    let root = tempfile::tempdir().unwrap();
    let mut three = Cluster::start(root.path(), 3, 1_000).await;
    three.propose(vec![record(0)]).await;
    three.stop(3).await;
    let mut config = three.config(3);
    config.voters.insert(2, "127.0.0.1:9".into());
    // Refused before it serves: any listener does.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    assert!(matches!(
        Quorum::start(config, Box::new(listener), Arc::new(TcpConnector)).await,
        Err(vltava_quorum::QuorumError::VotersChanged { .. })
    ));
    three.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_follows_the_committed_metadata_and_proposes_through_the_leader() {
    let root = tempfile::tempdir().unwrap();
    // Snapshots every two entries: after the restart below the voters keep
    // only the entries since their snapshot, so a fresh observer gets the
    // image first, then entries.
    let mut cluster = Cluster::start(root.path(), 3, 2).await;
    for i in 0..5 {
        cluster.propose(vec![record(i)]).await;
    }
    for id in [1, 2, 3] {
        cluster.stop(id).await;
        cluster.restart(id).await;
    }
    cluster.all_have(5).await;
    let mirror = Arc::new(Mirror::default());
    let voters = cluster
        .addrs
        .iter()
        .map(|(id, a)| (*id, a.to_string()))
        .collect();
    let observer = vltava_quorum::Observer::start(
        vltava_quorum::ObserverConfig {
            node_id: 9,
            voters,
            publisher: Some(mirror.clone()),
            forward_timeout: Duration::from_secs(10),
        },
        Arc::new(TcpConnector),
    );
    assert!(observer.wait_started(DEADLINE).await);
    wait_for("the observer to hold the image", || {
        observer.with_image(|image| *image == image_with(5))
    })
    .await;
    // New entries reach it, and its publisher, in order.
    cluster.propose(vec![record(5)]).await;
    wait_for("the observer to apply the new entry", || {
        observer.with_image(|image| *image == image_with(6))
    })
    .await;
    // It proposes through the leader, at the voters' indexes.
    let started = Instant::now();
    loop {
        let expected = observer.with_image_at(|_, applied| applied);
        match observer.propose_if(expected, vec![record(6)]).await {
            Ok(index) => {
                assert!(observer.applied_index() >= Some(index));
                break;
            }
            Err(ProposeError::Stale { applied: Some(a) }) => {
                observer.wait_applied(a, DEADLINE).await;
            }
            Err(e) => {
                assert!(started.elapsed() < DEADLINE, "{e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    cluster.all_have(7).await;
    assert_eq!(*mirror.image.lock().unwrap(), image_with(7));
    assert_eq!(
        mirror.mismatches.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    // It started from the image (the voters no longer had entry 0), once.
    assert_eq!(mirror.resets.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The leader lists it as an observer, caught up.
    let leader = cluster.leader().await;
    wait_for("the leader to list the observer", || {
        let status = cluster.nodes[&leader].status();
        status
            .observers
            .iter()
            .any(|o| o.id == 9 && o.log_end == Some(status.high_watermark))
    })
    .await;
    assert_eq!(observer.leader_status().await.unwrap().leader, Some(leader));
    observer.shutdown().await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_voter_rejoins_without_voting_until_it_caught_up() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(root.path(), 3, 1_000).await;
    for i in 0..4 {
        cluster.propose(vec![record(i)]).await;
    }
    cluster.all_have(4).await;
    let leader = cluster.leader().await;
    let wiped = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    cluster.stop(wiped).await;
    std::fs::remove_dir_all(&cluster.dirs[&wiped]).unwrap();
    cluster.restart(wiped).await;
    // Its peers had committed entries: it did not initialize a cluster of
    // its own, and it holds everything once it caught up, voting again.
    assert!(cluster.nodes[&wiped].started_rejoining());
    cluster.all_have(4).await;
    wait_for("the wiped voter to vote again", || {
        !cluster.nodes[&wiped].is_rejoining()
    })
    .await;
    cluster.propose(vec![record(4)]).await;
    cluster.all_have(5).await;
    cluster.stop_all().await;
}
