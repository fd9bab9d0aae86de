//! The deterministic simulation of the metadata quorum
//! (`vltava_tests::sim`) on fixed seeds, and a seed replayed to the same
//! trace. What the seeds found is kept as direct regression tests: the
//! power-cut model reading past a file's end after a truncation
//! (vltava-log `a_power_cut_after_a_cut_and_a_rewrite_restores_the_synced_file`)
//! and a voter unable to restart after installing a snapshot
//! (vltava-quorum `tests/snapshot_restart.rs`). Many seeds:
//! `cargo run --release -p vltava-tests --bin vltava-sim -- --seeds 1000`.

use std::time::Duration;

use vltava_tests::sim::{run, SimConfig};

/// Simulated time under faults per seed (then `sim::SETTLE`).
const SIMULATED: Duration = Duration::from_secs(20);

fn config(seed: u64, nodes: usize) -> SimConfig {
    SimConfig {
        seed,
        nodes,
        duration: SIMULATED,
    }
}

#[test]
fn fixed_seeds_keep_every_invariant() {
    for (seed, nodes) in [(1, 3), (2, 3), (4, 3), (7, 5)] {
        let report = run(config(seed, nodes)).expect("the simulation ran");
        println!("{report}");
        assert!(report.passed(), "{report}");
        // The schedule did something: faults, crashes, commits.
        assert!(report.faults > 0 && report.acked > 50, "{report}");
    }
}

#[test]
fn a_seed_replays_to_the_same_trace() {
    let first = run(config(4, 3)).expect("the simulation ran");
    let second = run(config(4, 3)).expect("the simulation ran");
    assert!(first.crashes > 0, "{first}");
    assert_eq!(first.trace.len(), second.trace.len());
    assert_eq!(first.trace, second.trace);
}
