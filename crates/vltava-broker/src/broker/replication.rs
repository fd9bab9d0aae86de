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

use super::{elections, Broker};
use crate::error::ApiError;
use crate::partition::Partition;

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

    /// Where a follower fetches from broker `leader`: its registered
    /// address on `inter.broker.listener.name`.
    pub fn replica_address(&self, leader: i32) -> Option<String> {
        let listener = &self.config.replication.inter_broker_listener;
        self.address_on(leader, listener)
            .map(|(host, port)| format!("{host}:{port}"))
    }

    /// Applies the leader's answer for one followed partition (file work:
    /// call it off the async workers). `data` comes off the wire: every
    /// batch is checked before it is written, and offsets from it are
    /// checked against the log.
    pub fn apply_fetched(&self, partition: &Partition, data: &PartitionData) -> Fetched {
        match self.try_apply_fetched(partition, data) {
            Ok(fetched) => fetched,
            Err(e) => Fetched::Backoff(e.to_string()),
        }
    }

    fn try_apply_fetched(
        &self,
        partition: &Partition,
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
                    partition.reset_to(leader_start, now_ms)?;
                    return Ok(Fetched::Truncated { to: leader_start });
                }
                let to = data.high_watermark.clamp(partition.log_start_offset(), end);
                warn!(
                    partition = partition.index,
                    from = end,
                    to,
                    "follower past the leader's log end; truncating"
                );
                partition.truncate_to(to)?;
                return Ok(Fetched::Truncated { to });
            }
            Some(error) => {
                return Ok(Fetched::Backoff(format!("leader answered {error:?}")));
            }
        }
        let diverging = &data.diverging_epoch;
        if diverging.epoch >= 0 || diverging.end_offset >= 0 {
            // Where our log and the leader's part: the end of the largest
            // epoch both hold. If we hold the leader's epoch, up to its end;
            // else up to the end of our own largest epoch below it (the
            // next fetch names that epoch and narrows it further).
            let (ours, our_end) = partition.log().end_offset_for_epoch(diverging.epoch);
            let to = match ours == diverging.epoch || ours < 0 {
                true => diverging.end_offset.min(end),
                false => our_end.min(diverging.end_offset).min(end),
            }
            .max(partition.log_start_offset());
            if to < end {
                info!(
                    partition = partition.index,
                    from = end,
                    to,
                    epoch = diverging.epoch,
                    "follower log diverged from the leader's; truncating"
                );
                partition.truncate_to(to)?;
            }
            return Ok(Fetched::Truncated { to });
        }
        let records = data.records.as_deref().unwrap_or_default();
        let batches = partition.append_replica(records, now_ms)?;
        partition.follow_high_watermark(data.high_watermark);
        let leader_start = data.log_start_offset;
        if leader_start > partition.log_start_offset() && leader_start <= partition.log_end_offset()
        {
            partition.log().delete_records_before(leader_start)?;
        }
        Ok(Fetched::Applied { batches })
    }

    /// On each partition this broker leads: the ISR change it wants
    /// (followers lagging past `replica.lag.time.max.ms` out, caught-up
    /// ones in), proposed to the controller against the partition epoch
    /// it holds. Run every few hundred milliseconds.
    pub fn replication_tick(&self) {
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
            let committed = self.control(|image| {
                let record = elections::alter_isr(
                    image,
                    partition.topic_id,
                    partition.index,
                    node,
                    change.leader_epoch,
                    change.partition_epoch,
                    &change.isr,
                )?;
                Ok((vec![record], ()))
            });
            match committed {
                Ok(()) => info!(
                    topic_id = %partition.topic_id,
                    partition = partition.index,
                    isr = ?change.isr,
                    "ISR changed"
                ),
                Err(e) => {
                    warn!(topic_id = %partition.topic_id, partition = partition.index,
                        isr = ?change.isr, error = %e, "ISR change refused");
                    partition.isr_change_refused(self.now_ms());
                }
            }
        }
    }

    /// Whether unclean leader election is allowed for topic `name` in
    /// `image` (its override, else the broker's default).
    pub(crate) fn unclean_allowed(&self, image: &vltava_meta::MetadataImage, name: &str) -> bool {
        let overrides = image.configs_of(&vltava_meta::ConfigResource::Topic(name.to_string()));
        self.resolve_topic_config(&overrides)
            .unclean_leader_election()
    }
}
