//! What the quorum's integration tests share.

use std::time::{Duration, Instant};

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
