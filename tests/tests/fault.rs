//! The fault harness (`vltava_tests::fault`) on a fixed seed: three nodes
//! in their own network namespaces under two minutes of mixed faults, then
//! Jepsen's queue checks, a liveness bound and the replicas compared byte
//! for byte. Seed 1's schedule holds a full disk on a leader, which found
//! duplicates (partition::tests::a_batch_after_a_failed_append_gets_the_storage_error).
//! Longer runs: docs/reliability.md.

use std::time::Duration;

use vltava_tests::fault::{run, FaultConfig};

/// The schedule's length in the test suite.
const SHORT_RUN: Duration = Duration::from_secs(100);

#[test]
fn fault_schedule_seed_1_loses_nothing() {
    let report = run(FaultConfig::new(1, SHORT_RUN)).expect("the harness ran");
    println!("{report}");
    // Every check, the replicas of all four partitions compared included.
    assert!(report.passed(), "{report}");
    // The workload got through the faults, not just started.
    assert!(report.acked >= 10_000, "{report}");
}
