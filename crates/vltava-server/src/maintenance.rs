//! Background work on a timer: retention, time-based flushes, the log
//! cleaner, and the broker's heartbeat (with fencing on the controller).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use vltava_broker::Broker;

/// Group timers (sessions, rebalances) are checked this often.
const GROUP_TICK: Duration = Duration::from_millis(100);

pub async fn run(broker: Arc<Broker>, shutdown: CancellationToken) {
    // A cleaner run can take long (it is rate-limited), so it has its own
    // task and never delays retention, flushes or group timers.
    tokio::spawn(run_cleaner(broker.clone(), shutdown.clone()));
    // Heartbeats and fencing wait on the controller: their own task.
    let heartbeat = Duration::from_millis(broker.config.broker_heartbeat_interval_ms);
    tokio::spawn(run_every(
        broker.clone(),
        shutdown.clone(),
        heartbeat,
        |broker| Box::pin(async move { broker.cluster_tick().await }),
    ));
    // So do leaders' ISR changes.
    tokio::spawn(run_every(
        broker.clone(),
        shutdown.clone(),
        REPLICATION_TICK,
        |broker| Box::pin(async move { broker.replication_tick().await }),
    ));
    // Group timers write group metadata and wait for it to commit.
    tokio::spawn(run_every(
        broker.clone(),
        shutdown.clone(),
        GROUP_TICK,
        |broker| Box::pin(async move { broker.group_tick().await }),
    ));
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
        let _ = off_runtime(move || task(&broker)).await;
    }
}

/// Runs file work on a blocking thread, off the async workers; on a
/// single-threaded runtime (a simulation, where every node shares one
/// thread and one clock) it runs in place, so the run stays
/// deterministic.
pub(crate) async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::CurrentThread => Ok(work()),
        _ => tokio::task::spawn_blocking(work).await,
    }
}

/// A tick of work that waits on the controller.
type Tick = fn(Arc<Broker>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Leaders' ISR changes (followers lagging past replica.lag.time.max.ms
/// out, caught-up ones in), checked this often.
const REPLICATION_TICK: Duration = Duration::from_millis(250);

/// Runs `task` every `period` in a task of its own, one run at a time,
/// until `shutdown`: for work that waits on the controller (this broker's
/// heartbeat and the controller's fencing; leaders' ISR changes), so it
/// never delays retention, flushes or group timers.
async fn run_every(broker: Arc<Broker>, shutdown: CancellationToken, period: Duration, task: Tick) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        task(broker.clone()).await;
    }
}

/// The log cleaner: one run every `log.cleaner.backoff.ms`, off the async
/// workers, never two at once. The cleaner (offset map, throttle) moves into
/// each run and back.
async fn run_cleaner(broker: Arc<Broker>, shutdown: CancellationToken) {
    let mut cleaner = Some(broker.log_cleaner());
    let stop = cleaner.as_ref().map(|c| c.stop_flag());
    let mut first = true;
    loop {
        // Read each time: log.cleaner.backoff.ms is dynamic. The first run
        // starts at once, as the interval timer it replaces did.
        let backoff = if first {
            Duration::ZERO
        } else {
            Duration::from_millis(broker.cleaner_backoff_ms())
        };
        first = false;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        let Some(mut owned) = cleaner.take() else {
            return;
        };
        let broker = broker.clone();
        let run = off_runtime(move || {
            broker.clean_compacted(&mut owned);
            owned
        });
        let finished = tokio::select! {
            finished = run => finished,
            _ = shutdown.cancelled() => {
                // A throttled pass could run for minutes: make it stop at
                // its next batch (it leaves what a crash would) rather than
                // hold up the runtime's shutdown.
                if let Some(stop) = &stop {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                return;
            }
        };
        match finished {
            Ok(owned) => cleaner = Some(owned),
            Err(e) => {
                tracing::error!(error = %e, "log cleaner run panicked; the cleaner is stopped");
                return;
            }
        }
    }
}
