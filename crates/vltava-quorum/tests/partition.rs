//! Network partitions on the in-memory network (the seam a simulator uses):
//! the leader cut off from both followers cannot commit, the two others
//! elect a leader and go on, and after healing the old leader follows the
//! new one and holds exactly the majority's history. Nothing the isolated
//! leader was asked to write appears anywhere.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use vltava_meta::ConfigResource;
use vltava_quorum::memory::MemoryNetwork;
use vltava_quorum::{NodeId, ProposeError, Quorum, QuorumConfig};

mod common;
use common::{propose, record, wait_for};

fn keys(q: &Quorum) -> Vec<String> {
    q.image()
        .configs_of(&ConfigResource::Broker(String::new()))
        .into_keys()
        .collect()
}

fn addr(id: NodeId) -> String {
    format!("node-{id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_cannot_commit_and_follows_after_healing() {
    let root = tempfile::tempdir().unwrap();
    let network = MemoryNetwork::new();
    let voters: BTreeMap<NodeId, String> = (1..=3).map(|id| (id, addr(id))).collect();
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        let mut config = QuorumConfig::new(id, voters.clone(), root.path().join(addr(id)));
        config.propose_timeout = Duration::from_secs(2);
        let quorum = Quorum::start(
            config,
            Box::new(network.listen(&addr(id))),
            Arc::new(network.connector(&addr(id))),
        )
        .await
        .unwrap();
        nodes.insert(id, quorum);
    }
    let mut leader = 0;
    wait_for("a leader", || {
        let known: Vec<Option<NodeId>> = nodes.values().map(|q| q.leader()).collect();
        leader = known[0]
            .filter(|l| known.iter().all(|k| *k == Some(*l)))
            .unwrap_or(0);
        leader != 0
    })
    .await;
    propose(&nodes, &[1, 2, 3], "before").await;
    wait_for("every node to apply it", || {
        nodes.values().all(|q| keys(q) == ["before"])
    })
    .await;

    // The leader is cut off: it cannot commit...
    network.isolate(&addr(leader));
    let refused = nodes[&leader].propose(vec![record("lost")]).await;
    assert!(
        matches!(
            refused,
            Err(ProposeError::Unavailable(_)) | Err(ProposeError::NotLeader { .. })
        ),
        "{refused:?}"
    );
    // ...while the two others elect one of them and commit.
    let others: Vec<NodeId> = (1..=3).filter(|id| *id != leader).collect();
    let mut next = 0;
    wait_for("a new leader among the majority", || {
        let known: Vec<Option<NodeId>> = others.iter().map(|id| nodes[id].leader()).collect();
        next = known[0]
            .filter(|l| *l != leader && known.iter().all(|k| *k == Some(*l)))
            .unwrap_or(0);
        next != 0
    })
    .await;
    propose(&nodes, &others, "during").await;
    wait_for("the majority to apply it", || {
        others
            .iter()
            .all(|id| keys(&nodes[id]) == ["before", "during"])
    })
    .await;
    assert_eq!(keys(&nodes[&leader]), ["before"]);

    // Healed: the old leader follows the new one and drops what it alone
    // had; the refused write never shows up anywhere.
    network.heal(&addr(leader));
    propose(&nodes, &others, "after").await;
    wait_for("every node to hold the majority's history", || {
        nodes
            .values()
            .all(|q| keys(q) == ["after", "before", "during"])
    })
    .await;
    wait_for("the old leader to follow the majority's leader", || {
        nodes[&leader].leader().is_some_and(|l| l != leader)
    })
    .await;
    for (_, q) in nodes {
        q.shutdown().await;
    }
}
