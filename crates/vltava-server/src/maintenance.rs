//! Background work on a timer: retention and time-based flushes.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use vltava_broker::Broker;

pub async fn run(broker: Arc<Broker>, shutdown: CancellationToken) {
    let mut retention = tokio::time::interval(Duration::from_millis(
        broker.config.log_retention_check_interval_ms,
    ));
    let mut flush = tokio::time::interval(Duration::from_millis(
        broker.config.log_flush_scheduler_interval_ms,
    ));
    retention.set_missed_tick_behavior(MissedTickBehavior::Delay);
    flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let task: fn(&Broker) = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = retention.tick() => Broker::enforce_retention,
            _ = flush.tick() => Broker::flush_due,
        };
        // File work runs off the async workers.
        let broker = broker.clone();
        let _ = tokio::task::spawn_blocking(move || task(&broker)).await;
    }
}
