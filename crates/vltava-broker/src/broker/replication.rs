//! The broker's side of replication that needs no sockets: which
//! partitions this broker follows and from whom, what a follower does with
//! its leader's fetch answer (append, move its high watermark and log
//! start, truncate where its log diverged), and the leader's ISR changes,
//! proposed to the controller. The fetching itself (connections, one
//! request per leader) is `vltava-server`'s.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::fetch_response::PartitionData;
use tracing::{info, warn};
use vltava_protocol::ResponseError;

use super::elections::{self, ElectionKind};
use super::{Broker, Route};
use crate::error::ApiError;
use crate::partition::{FollowerTerm, Partition};

/// One partition's answer to an admin request that acts per partition
/// (ElectLeaders, AlterPartitionReassignments): topic, index, result.
pub type PartitionOutcome = (String, i32, Result<(), ApiError>);

/// What a follower should do next about one partition after its leader's
/// answer was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Applied (possibly nothing new): fetch again from the log end.
    Applied { batches: usize },
    /// Truncated to where the leader's log and ours agree: fetch again.
    Truncated { to: i64 },
    /// The leader refused for a reason that passes (a newer or older
    /// leader epoch on one side, the leader moved): wait for the metadata
    /// to settle before asking again.
    Backoff(String),
}

impl Broker {
    /// Wakes when partitions were opened, removed or changed leader.
    pub fn roles_changed(&self) -> &Arc<tokio::sync::Notify> {
        &self.roles_changed
    }

    /// The partitions this broker follows, by the broker that leads them.
    pub fn followed(&self) -> BTreeMap<i32, Vec<Arc<Partition>>> {
        let mut out: BTreeMap<i32, Vec<Arc<Partition>>> = BTreeMap::new();
        for topic in self.topics.read().values() {
            for p in topic.partitions.iter().filter(|p| p.is_following()) {
                out.entry(p.leader()).or_default().push(Arc::clone(p));
            }
        }
        out
    }

    /// Broker `id`'s epoch if it is registered and unfenced: a replica
    /// fetch must carry it.
    pub fn live_broker_epoch(&self, id: i32) -> Option<i64> {
        self.metadata.with_image(|image| {
            image
                .brokers
                .get(&id)
                .filter(|b| !b.fenced)
                .map(|b| b.epoch)
        })
    }

    /// The rack of every live broker that has one (`broker.rack`): where
    /// a leader may send a consumer in the same rack (KIP-392).
    pub fn live_broker_racks(&self) -> Vec<(i32, String)> {
        self.metadata.with_image(|image| {
            image
                .brokers
                .iter()
                .filter(|(_, b)| !b.fenced)
                .filter_map(|(id, b)| Some((*id, b.rack.clone()?)))
                .collect()
        })
    }

    /// Where a follower fetches from broker `leader`: its registered
    /// address on `inter.broker.listener.name`.
    pub fn replica_address(&self, leader: i32) -> Option<String> {
        let listener = &self.config.replication.inter_broker_listener;
        self.address_on(leader, listener)
            .map(|(host, port)| format!("{host}:{port}"))
    }

    /// Applies the leader's answer for one followed partition (file work:
    /// call it off the async workers), if this broker still follows `term`
    /// (the leader and epoch the fetch was sent under; anything else is
    /// dropped, so an old leader's answer never touches a log this broker
    /// now leads). `data` comes off the wire: every batch is checked before
    /// it is written, and offsets from it are checked against the log.
    pub fn apply_fetched(
        &self,
        partition: &Partition,
        term: FollowerTerm,
        data: &PartitionData,
    ) -> Fetched {
        match self.try_apply_fetched(partition, term, data) {
            Ok(fetched) => fetched,
            Err(e) => Fetched::Backoff(e.to_string()),
        }
    }

    fn try_apply_fetched(
        &self,
        partition: &Partition,
        term: FollowerTerm,
        data: &PartitionData,
    ) -> Result<Fetched, ApiError> {
        let now_ms = self.now_ms();
        let end = partition.log_end_offset();
        match ResponseError::try_from_code(data.error_code) {
            None => {}
            Some(ResponseError::OffsetOutOfRange) => {
                // Our log end is outside the leader's log: before its start
                // (retention moved on while we were away) or past its end
                // (an unclean election left the leader shorter).
                let leader_start = data.log_start_offset;
                if leader_start > end {
                    warn!(
                        partition = partition.index,
                        from = end,
                        to = leader_start,
                        "follower behind the leader's log start; restarting its log there"
                    );
                    partition.reset_to(term, leader_start, now_ms)?;
                    return Ok(Fetched::Truncated { to: leader_start });
                }
                // Decided: the leader's high watermark, the one offset its
                // answer gives (Kafka asks for the leader's log end first).
                // Whatever is cut above it the leader still has, and sends
                // again.
                let to = data.high_watermark.clamp(partition.log_start_offset(), end);
                warn!(
                    partition = partition.index,
                    from = end,
                    to,
                    "follower past the leader's log end; truncating"
                );
                partition.truncate_as_follower(term, to)?;
                return Ok(Fetched::Truncated { to });
            }
            Some(error) => {
                return Ok(Fetched::Backoff(format!("leader answered {error:?}")));
            }
        }
        let diverging = &data.diverging_epoch;
        if diverging.epoch >= 0 || diverging.end_offset >= 0 {
            let to = truncation_point(partition, diverging.epoch, diverging.end_offset)
                .max(partition.log_start_offset());
            info!(
                partition = partition.index,
                from = end,
                to,
                epoch = diverging.epoch,
                "follower log diverged from the leader's; truncating"
            );
            partition.truncate_as_follower(term, to)?;
            return Ok(Fetched::Truncated { to });
        }
        let records = data.records.as_deref().unwrap_or_default();
        let batches = partition.append_replica(term, records, now_ms)?;
        partition.follow_leader_offsets(term, data.high_watermark, data.log_start_offset)?;
        Ok(Fetched::Applied { batches })
    }

    /// On each partition this broker leads: the ISR change it wants
    /// (followers lagging past `replica.lag.time.max.ms` out, caught-up
    /// ones in), proposed to the controller against the partition epoch
    /// it holds. Run every few hundred milliseconds.
    pub async fn replication_tick(&self) {
        let now_ms = self.now_ms();
        let lag_max_ms = self.config.replication.lag_time_max_ms;
        let led: Vec<Arc<Partition>> = self
            .topics
            .read()
            .values()
            .flat_map(|t| t.partitions.iter().filter(|p| p.is_leader()).cloned())
            .collect();
        for partition in led {
            let Some(change) = partition.wanted_isr_change(now_ms, lag_max_ms) else {
                continue;
            };
            let node = self.node_id();
            let isr_before = partition.assignment().isr;
            let committed = self
                .control(|image| {
                    let min_insync = image
                        .topic_by_id(partition.topic_id)
                        .map_or(1, |t| self.topic_rules(image, &t.name).min_insync);
                    let record = elections::alter_isr(
                        image,
                        partition.topic_id,
                        partition.index,
                        node,
                        &change,
                        min_insync,
                    )?;
                    Ok((vec![record], ()))
                })
                .await;
            match committed {
                Ok(()) => {
                    self.metrics.isr_changed(&isr_before, &change.isr);
                    info!(
                        topic_id = %partition.topic_id,
                        partition = partition.index,
                        isr = ?change.isr,
                        "ISR changed"
                    )
                }
                Err(e) => {
                    warn!(topic_id = %partition.topic_id, partition = partition.index,
                        isr = ?change.isr, error = %e, "ISR change refused");
                    partition.isr_change_refused(self.now_ms());
                }
            }
        }
    }

    /// ElectLeaders: elects `kind` leaders for `partitions` (by topic name
    /// and index; `None`: every partition, and then only the ones where an
    /// election was needed are answered, as Kafka does). Committed as one
    /// change through the controller.
    pub async fn elect_leaders(
        &self,
        kind: ElectionKind,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<PartitionOutcome>, ApiError> {
        let all = partitions.is_none();
        if let Some(list) = &partitions {
            super::check_partitions_named(list.len())?;
        }
        self.control(|image| {
            let wanted: Vec<(String, i32)> = match &partitions {
                Some(list) => list.clone(),
                None => image
                    .topics
                    .values()
                    .flat_map(|t| (0..t.partitions.len() as i32).map(|i| (t.name.clone(), i)))
                    .collect(),
            };
            let mut scratch = image.clone();
            let mut records = Vec::new();
            let mut results = Vec::new();
            for (name, index) in wanted {
                let result = match scratch.topics.get(&name).map(|t| t.topic_id) {
                    None => Err(ApiError::new(
                        ResponseError::UnknownTopicOrPartition,
                        format!("The topic {name} does not exist"),
                    )),
                    Some(topic_id) => {
                        let rules = self.topic_rules(image, &name);
                        elections::elect(&scratch, topic_id, index, kind, rules)
                    }
                };
                let result = result.map(|record| {
                    scratch.apply(&record);
                    records.push(record);
                });
                let not_needed =
                    matches!(&result, Err(e) if e.error == ResponseError::ElectionNotNeeded);
                if !(all && not_needed) {
                    results.push((name, index, result));
                }
            }
            Ok((records, results))
        })
        .await
    }

    /// On the controller, every `leader.imbalance.check.interval.seconds`
    /// when `auto.leader.rebalance.enable`: leadership goes back to
    /// preferred replicas that are in sync again (see
    /// [`elections::rebalance`]). Committed only while this node leads.
    pub(crate) async fn rebalance_leaders(&self) {
        let settings = &self.config.replication;
        if !settings.auto_leader_rebalance
            || self.metadata.leader() != u64::try_from(self.node_id()).ok()
        {
            return;
        }
        {
            let mut last = self.last_rebalance.lock();
            let due = last.is_none_or(|at| {
                at.elapsed()
                    >= std::time::Duration::from_millis(settings.leader_imbalance_check_interval_ms)
            });
            if !due {
                return;
            }
            *last = Some(tokio::time::Instant::now());
        }
        let percent = settings.leader_imbalance_percent;
        if self
            .metadata
            .with_image(|image| elections::rebalance(image, percent).is_empty())
        {
            return;
        }
        let moved = self
            .control_within(
                std::time::Duration::from_secs(10),
                Route::LeaderOnly,
                |image| {
                    let records = elections::rebalance(image, percent);
                    let count = records.len();
                    Ok((records, count))
                },
            )
            .await;
        match moved {
            Ok(0) => {}
            Ok(count) => info!(
                partitions = count,
                "moved leadership back to preferred replicas"
            ),
            Err(e) => warn!(error = %e, "preferred leader election failed"),
        }
    }

    /// The leadership rules of topic `name` in `image`: whether unclean
    /// leader election is allowed and its `min.insync.replicas` (each its
    /// override, else the broker's default).
    pub(crate) fn topic_rules(
        &self,
        image: &vltava_meta::MetadataImage,
        name: &str,
    ) -> elections::TopicRules {
        let overrides = image.configs_of(&vltava_meta::ConfigResource::Topic(name.to_string()));
        let config = self.resolve_topic_config(&overrides);
        elections::TopicRules {
            unclean: config.unclean_leader_election(),
            min_insync: config.min_insync_replicas(),
        }
    }
}

/// Where a follower's log stops agreeing with its leader's, from the
/// leader's diverging epoch and that epoch's end offset there (Kafka's
/// `getOffsetTruncationState`): if the follower holds that epoch, the
/// lesser of where it ends in either log; if it holds only older epochs,
/// the end of its largest one (the next fetch names that epoch and narrows
/// it further); if it holds none at or below it, the leader's offset. Never
/// past the follower's log end.
fn truncation_point(partition: &Partition, leader_epoch: i32, leader_end: i64) -> i64 {
    let end = partition.log_end_offset();
    let (ours, our_end) = partition.log().end_offset_for_epoch(leader_epoch);
    let to = if ours < 0 {
        leader_end
    } else if ours != leader_epoch {
        our_end
    } else {
        our_end.min(leader_end)
    };
    to.min(end)
}
