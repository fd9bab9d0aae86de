//! How fast the metadata quorum commits: `cargo run --release -p
//! vltava-quorum --example propose_rate -- [voters] [proposals]` starts that
//! many voters on loopback TCP with data in a temporary directory, proposes
//! one-record batches one after another (each waits for its commit, as a
//! topic creation would), and prints commits per second and latency
//! percentiles, then the same for conditional proposals (`propose_if`, what
//! a broker's controller work does) at the leader and through a follower.
//! Every commit is fsynced by a majority. `-- store
//! [proposals]` measures the broker's present single-node path instead
//! (`MetadataStore::append`, one fsync per change) for comparison.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use vltava_meta::{ConfigResource, MetaRecord};
use vltava_quorum::{Quorum, QuorumConfig, TcpConnector};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let first = args.next().unwrap_or_else(|| "3".into());
    let proposals: usize = args.next().map_or(2_000, |a| a.parse().expect("proposals"));
    let root = tempfile::tempdir().expect("temp dir");
    if first == "store" {
        let mut store = vltava_meta::MetadataStore::open(root.path(), 0).expect("open");
        let mut latencies = Vec::with_capacity(proposals);
        let start = Instant::now();
        for i in 0..proposals {
            let sent = Instant::now();
            store.append(&[record(i)], 0).expect("append");
            latencies.push(sent.elapsed());
        }
        report(
            "MetadataStore (no quorum)",
            proposals,
            start.elapsed(),
            latencies,
        );
        return;
    }
    let voters: u64 = first.parse().expect("voters");
    let mut listeners = BTreeMap::new();
    for id in 1..=voters {
        listeners.insert(id, TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    }
    let addrs: BTreeMap<u64, String> = listeners
        .iter()
        .map(|(id, l)| (*id, l.local_addr().expect("addr").to_string()))
        .collect();
    let mut nodes = BTreeMap::new();
    for (id, listener) in listeners {
        let config = QuorumConfig::new(id, addrs.clone(), root.path().join(format!("node-{id}")));
        let quorum = Quorum::start(config, Box::new(listener), Arc::new(TcpConnector))
            .await
            .expect("start");
        nodes.insert(id, quorum);
    }
    let leader = loop {
        let known: Vec<Option<u64>> = nodes.values().map(|q| q.leader()).collect();
        if let Some(l) = known[0].filter(|l| known.iter().all(|k| *k == Some(*l))) {
            break l;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut latencies = Vec::with_capacity(proposals);
    let start = Instant::now();
    for i in 0..proposals {
        let sent = Instant::now();
        nodes[&leader]
            .propose(vec![record(i)])
            .await
            .expect("commit");
        latencies.push(sent.elapsed());
    }
    report(
        &format!("{voters} voter(s)"),
        proposals,
        start.elapsed(),
        latencies,
    );
    // What a broker does: a conditional proposal checked against the image
    // it read, at the leader and (with several voters) through a follower,
    // which sends it to the leader and answers once it applied it.
    let mut at = vec![("leader", leader)];
    if let Some(follower) = nodes.keys().copied().find(|id| *id != leader) {
        at.push(("follower", follower));
    }
    for (role, id) in at {
        let node = &nodes[&id];
        let mut latencies = Vec::with_capacity(proposals);
        let mut stale = 0;
        let start = Instant::now();
        for i in 0..proposals {
            let sent = Instant::now();
            // As a broker does: a proposal checked against an image the
            // leader has moved past is checked again once caught up.
            loop {
                let expected = node.with_image_at(|_, applied| applied);
                match node
                    .propose_if(expected, vec![record(proposals * 2 + i)])
                    .await
                {
                    Ok(_) => break,
                    Err(vltava_quorum::ProposeError::Stale { applied }) => {
                        stale += 1;
                        if let Some(index) = applied {
                            node.wait_applied(index, Duration::from_secs(10)).await;
                        }
                    }
                    Err(e) => panic!("commit: {e}"),
                }
            }
            latencies.push(sent.elapsed());
        }
        report(
            &format!("{voters} voter(s), propose_if at the {role} ({stale} stale, checked again)"),
            proposals,
            start.elapsed(),
            latencies,
        );
    }
    for (_, q) in nodes {
        q.shutdown().await;
    }
}

fn record(i: usize) -> MetaRecord {
    MetaRecord::Config {
        resource: ConfigResource::Broker(String::new()),
        name: format!("key-{i}"),
        value: Some(i.to_string()),
    }
}

fn report(what: &str, proposals: usize, elapsed: Duration, mut latencies: Vec<Duration>) {
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "{what}, {proposals} sequential changes: {:.0} commits/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        proposals as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
        latencies.last().expect("some").as_secs_f64() * 1000.0,
    );
}
