//! What the quorum's integration tests share (each test binary uses a
//! part of it).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use vltava_meta::{ConfigResource, MetaRecord};
use vltava_quorum::{NodeId, Quorum};

/// How long any wait in these tests may take.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Waits until `cond` holds, failing the test after [`DEADLINE`].
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A cluster-wide config record named `name`: safe to commit twice.
pub fn record(name: &str) -> MetaRecord {
    MetaRecord::Config {
        resource: ConfigResource::Broker(String::new()),
        name: name.to_string(),
        value: Some("1".into()),
    }
}

/// Proposes `name` through whichever of `ids` leads, trying again while
/// leadership moves (the record is safe to repeat).
pub async fn propose(nodes: &BTreeMap<NodeId, Quorum>, ids: &[NodeId], name: &str) {
    let start = Instant::now();
    loop {
        for id in ids {
            if nodes[id].leader() == Some(*id)
                && nodes[id].propose(vec![record(name)]).await.is_ok()
            {
                return;
            }
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no leader among {ids:?} committed {name}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
