//! Followers fetch from their leaders: one task and one connection per
//! source broker, each request carrying every partition this broker
//! follows from it (Kafka's ReplicaFetcherThread, with one fetcher per
//! source broker). A request is a Fetch v15+ naming this broker in
//! `replica_state`, with each partition's log end as its fetch offset (which
//! is how the leader learns its progress and moves the high watermark),
//! the partition's leader epoch (KIP-320) and the last epoch in our log (the
//! leader answers a diverging epoch when our tail is not its own). The
//! answers are applied by the broker (`Broker::apply_fetched`) off the async
//! workers.
//!
//! Decided: every request is a full one (session 0): the leader keeps no
//! fetch sessions (KIP-227), and one request per source broker still
//! carries all its partitions.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use uuid::Uuid;
use vltava_broker::{Broker, Fetched, FollowerTerm, Partition};
use vltava_client::connection::{Connection, Dialer, Timeouts};

/// The Fetch version followers send: 15 names the replica in
/// `replica_state` (and 12+ carries `last_fetched_epoch`).
const REPLICA_FETCH_VERSION: i16 = 15;

/// How often the set of fetchers is checked even without a change
/// notice (a leader's address can appear after its partitions did).
const RESCAN_INTERVAL: Duration = Duration::from_secs(1);

/// Runs a fetcher for each broker this broker follows partitions from,
/// until `shutdown`.
/// Leaders are dialed through `dialer`.
pub async fn run(broker: Arc<Broker>, dialer: Arc<dyn Dialer>, shutdown: CancellationToken) {
    // Ordered: fetchers stop in the same order every run (a simulation
    // replays a seed exactly).
    let mut fetchers: BTreeMap<i32, CancellationToken> = BTreeMap::new();
    let mut tasks = JoinSet::new();
    loop {
        let changed = broker.roles_changed().notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let followed = broker.followed();
        fetchers.retain(|leader, stop| {
            let keep = followed.contains_key(leader) && !stop.is_cancelled();
            if !keep {
                stop.cancel();
            }
            keep
        });
        for leader in followed.keys() {
            if fetchers.contains_key(leader) {
                continue;
            }
            let stop = shutdown.child_token();
            fetchers.insert(*leader, stop.clone());
            tasks.spawn(fetch_from(broker.clone(), dialer.clone(), *leader, stop));
        }
        while tasks.try_join_next().is_some() {}
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = &mut changed => {}
            _ = tokio::time::sleep(RESCAN_INTERVAL) => {}
        }
    }
    tasks.abort_all();
}

/// One source broker's fetcher: fetches until it follows nothing from
/// `leader` or is stopped.
async fn fetch_from(
    broker: Arc<Broker>,
    dialer: Arc<dyn Dialer>,
    leader: i32,
    stop: CancellationToken,
) {
    let settings = broker.config.replication.clone();
    let backoff = Duration::from_millis(settings.fetch_backoff_ms);
    let timeouts = Timeouts {
        connect: Duration::from_secs(10),
        request: Duration::from_secs(30)
            + Duration::from_millis(settings.fetch_wait_max_ms.max(0) as u64),
    };
    let mut connection: Option<Connection> = None;
    // Partitions the leader refused, by (topic id, index), until when.
    let mut resting: HashMap<(Uuid, i32), Instant> = HashMap::new();
    let mut failures = 0u32;
    info!(leader, "replica fetcher started");
    loop {
        if stop.is_cancelled() {
            break;
        }
        let Some(partitions) = broker.followed().remove(&leader) else {
            break;
        };
        let now = Instant::now();
        resting.retain(|_, until| *until > now);
        let wanted: Vec<Arc<Partition>> = partitions
            .into_iter()
            .filter(|p| !resting.contains_key(&(p.topic_id, p.index)))
            .collect();
        if wanted.is_empty() {
            pause(&stop, backoff).await;
            continue;
        }
        let conn = match connection.take().filter(Connection::is_usable) {
            Some(conn) => conn,
            None => match connect(&broker, &*dialer, leader, timeouts).await {
                Ok(conn) => conn,
                Err(e) => {
                    note_failure(&mut failures, leader, "cannot reach the leader", &e);
                    pause(&stop, backoff).await;
                    continue;
                }
            },
        };
        let mut conn = conn;
        // The leader and epoch each partition is fetched under: the
        // answer is applied only if they still hold.
        let terms: Vec<FollowerTerm> = wanted
            .iter()
            .map(|p| {
                let a = p.assignment();
                FollowerTerm {
                    leader: a.leader,
                    leader_epoch: a.leader_epoch,
                }
            })
            .collect();
        let request = fetch_request(&broker, &wanted, &terms, &settings);
        let sent = Instant::now();
        let answer = tokio::select! {
            _ = stop.cancelled() => break,
            answer = conn.request_at(&request, REPLICA_FETCH_VERSION) => answer,
        };
        debug!(
            leader,
            partitions = wanted.len(),
            took_ms = sent.elapsed().as_millis() as u64,
            "replica fetch answered"
        );
        let response = match answer {
            Ok(response) => response,
            Err(e) => {
                note_failure(&mut failures, leader, "fetch failed", &e.to_string());
                pause(&stop, backoff).await;
                continue;
            }
        };
        failures = 0;
        connection = Some(conn);
        if response.error_code != 0 {
            debug!(leader, code = response.error_code, "replica fetch refused");
            pause(&stop, backoff).await;
            continue;
        }
        let by_id: BTreeMap<(Uuid, i32), (Arc<Partition>, FollowerTerm)> = wanted
            .iter()
            .zip(terms)
            .map(|(p, term)| ((p.topic_id, p.index), (p.clone(), term)))
            .collect();
        let writes = response
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .any(|d| d.records.as_ref().is_some_and(|r| !r.is_empty()));
        if writes {
            broker.wait_for_disk().await;
        }
        let broker2 = broker.clone();
        let applied = crate::maintenance::off_runtime(move || {
            let mut refused = Vec::new();
            for topic in &response.responses {
                for data in &topic.partitions {
                    let key = (topic.topic_id, data.partition_index);
                    // Only what we asked for: anything else in the answer
                    // is ignored, never written.
                    let Some((partition, term)) = by_id.get(&key) else {
                        continue;
                    };
                    if let Fetched::Backoff(reason) = broker2.apply_fetched(partition, *term, data) {
                        debug!(partition = partition.index, %reason, "replica fetch of a partition backs off");
                        refused.push(key);
                    }
                }
            }
            refused
        })
        .await;
        match applied {
            Ok(refused) => {
                let until = Instant::now() + backoff;
                resting.extend(refused.into_iter().map(|key| (key, until)));
            }
            Err(e) => {
                warn!(leader, error = %e, "applying fetched data failed");
                pause(&stop, backoff).await;
            }
        }
    }
    // Marks this fetcher gone for `run`, which otherwise would keep its
    // entry (and start none) if this broker follows `leader` again before
    // `run` next looks.
    stop.cancel();
    // And `run` looks now: a roles change that landed while this fetcher
    // was deciding to stop has been taken already.
    broker.roles_changed().notify_one();
    info!(leader, "replica fetcher stopped");
}

async fn connect(
    broker: &Broker,
    dialer: &dyn Dialer,
    leader: i32,
    timeouts: Timeouts,
) -> Result<Connection, String> {
    let address = broker.replica_address(leader).ok_or_else(|| {
        format!(
            "broker {leader} has no registered address on listener {}",
            broker.config.replication.inter_broker_listener
        )
    })?;
    let client_id = format!("vltava-replica-fetcher-{}", broker.node_id());
    let conn = Connection::connect_with(dialer, &address, &client_id, timeouts)
        .await
        .map_err(|e| e.to_string())?;
    match conn.broker_apis().get(&(ApiKey::Fetch as i16)) {
        Some((min, max)) if (*min..=*max).contains(&REPLICA_FETCH_VERSION) => Ok(conn),
        other => Err(format!(
            "broker {leader} at {address} does not take Fetch v{REPLICA_FETCH_VERSION} (it offers {other:?})"
        )),
    }
}

fn fetch_request(
    broker: &Broker,
    partitions: &[Arc<Partition>],
    terms: &[FollowerTerm],
    settings: &vltava_broker::config::ReplicationSettings,
) -> FetchRequest {
    let mut topics: BTreeMap<Uuid, Vec<FetchPartition>> = BTreeMap::new();
    for (p, term) in partitions.iter().zip(terms) {
        topics.entry(p.topic_id).or_default().push(
            FetchPartition::default()
                .with_partition(p.index)
                .with_current_leader_epoch(term.leader_epoch)
                .with_fetch_offset(p.log_end_offset())
                .with_last_fetched_epoch(p.log().latest_leader_epoch().unwrap_or(-1))
                .with_log_start_offset(p.log_start_offset())
                .with_partition_max_bytes(settings.fetch_max_bytes),
        );
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(broker.node_id()))
                .with_replica_epoch(broker.epoch()),
        )
        .with_max_wait_ms(settings.fetch_wait_max_ms)
        .with_min_bytes(1)
        .with_max_bytes(settings.fetch_response_max_bytes)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(topic_id, partitions)| {
                    FetchTopic::default()
                        .with_topic_id(topic_id)
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

/// Failures in a row are logged at the first and every
/// [`FAILURES_LOGGED_EVERY`]th, so a leader that is down for long does not
/// flood the log.
const FAILURES_LOGGED_EVERY: u32 = 30;

fn note_failure(failures: &mut u32, leader: i32, what: &str, error: &str) {
    *failures += 1;
    if *failures == 1 || failures.is_multiple_of(FAILURES_LOGGED_EVERY) {
        warn!(leader, failures = *failures, %error, "replica fetcher: {what}");
    }
}

async fn pause(stop: &CancellationToken, backoff: Duration) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(backoff) => {}
    }
}
