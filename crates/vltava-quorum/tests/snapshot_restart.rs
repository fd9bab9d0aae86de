//! Found by the simulation (tests/src/sim): a voter that fell so far
//! behind that it had to install a snapshot, then appended entries after
//! it and restarted, could not start (openraft asked for log index 0: the
//! log began after the snapshot and nothing recorded the entries before as
//! purged). It must start, and hold everything.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use vltava_meta::ConfigResource;
use vltava_quorum::memory::MemoryNetwork;
use vltava_quorum::{NodeId, Quorum, QuorumConfig};

mod common;
use common::{propose, wait_for};

fn count(q: &Quorum) -> usize {
    q.image()
        .configs_of(&ConfigResource::Broker(String::new()))
        .len()
}

fn addr(id: NodeId) -> String {
    format!("node-{id}")
}

async fn start(
    network: &MemoryNetwork,
    voters: &BTreeMap<NodeId, String>,
    root: &std::path::Path,
    id: NodeId,
) -> Quorum {
    let mut config = QuorumConfig::new(id, voters.clone(), root.join(addr(id)));
    config.snapshot_after_entries = 20;
    config.entries_kept_after_snapshot = 5;
    config.propose_timeout = Duration::from_secs(2);
    Quorum::start(
        config,
        Box::new(network.listen(&addr(id))),
        Arc::new(network.connector(&addr(id))),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_restarts_after_installing_a_snapshot_and_appending() {
    let root = tempfile::tempdir().unwrap();
    let network = MemoryNetwork::new();
    let voters: BTreeMap<NodeId, String> = (1..=3).map(|id| (id, addr(id))).collect();
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        nodes.insert(id, start(&network, &voters, root.path(), id).await);
    }
    wait_for("a leader", || nodes[&1].leader().is_some()).await;
    // Node 3 away while the others commit (and purge) well past a snapshot.
    let leader = nodes[&1].leader().unwrap();
    let away = if leader == 3 { 2 } else { 3 };
    let present: Vec<NodeId> = (1..=3).filter(|id| *id != away).collect();
    network.isolate(&addr(away));
    for i in 0..60 {
        propose(&nodes, &present, &format!("behind-{i}")).await;
    }
    // Back: it installs the snapshot, then appends what follows it.
    network.heal(&addr(away));
    for i in 0..5 {
        propose(&nodes, &present, &format!("after-{i}")).await;
    }
    wait_for("the returning voter to catch up", || {
        count(&nodes[&away]) == 65
    })
    .await;
    // And restarts.
    nodes.remove(&away).unwrap().shutdown().await;
    let restarted = start(&network, &voters, root.path(), away).await;
    nodes.insert(away, restarted);
    propose(&nodes, &present, "last").await;
    wait_for("the restarted voter to hold everything", || {
        count(&nodes[&away]) == 66
    })
    .await;
    for (_, q) in nodes {
        q.shutdown().await;
    }
}
