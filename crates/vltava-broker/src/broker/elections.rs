//! The controller's partition leadership rules, as pure functions of the
//! metadata image: what changes when a broker is lost (fenced, or replaced
//! by a new incarnation), restarts after an unclean shutdown or becomes
//! available again, and whether a leader's ISR change may be committed
//! (AlterPartition).
//!
//! Every change writes the partition's whole state (`MetaRecord::Partition`)
//! with the partition epoch raised, and the leader epoch raised whenever
//! the leader changes, so replicas and clients can tell old leaders from
//! new ones (KIP-320) and a leader's ISR change made against an older
//! state is refused.
//!
//! Leaders are chosen as Kafka 4.1's controller chooses them (KIP-966): an
//! unfenced in-sync replica; else an unfenced eligible leader replica
//! (`PartitionImage::elr`: one that left the ISR while it was below
//! `min.insync.replicas`, so it holds every committed record); else, where
//! unclean election is allowed, any unfenced replica; else none. A broker
//! whose last run ended uncleanly leaves the ISR and the ELR, so it cannot
//! lead with a log that lost acknowledged writes while a replica that kept
//! them may (the "last replica standing" loss the broker simulation found).

use vltava_meta::{MetaRecord, MetadataImage, PartitionImage};
use vltava_protocol::ResponseError;

use crate::error::ApiError;
use crate::partition::IsrChange;

/// What the leadership rules read from a topic's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TopicRules {
    /// `unclean.leader.election.enable`.
    pub unclean: bool,
    /// `min.insync.replicas`, at least 1.
    pub min_insync: usize,
}

/// Each topic's rules, by topic name.
pub(crate) type RulesOf<'a> = &'a dyn Fn(&str) -> TopicRules;

/// `records` (fences, unfences, registrations) followed by the partition
/// changes each one calls for, every change computed on the image as the
/// records before it left it.
pub(crate) fn with_elections(
    image: &MetadataImage,
    records: Vec<MetaRecord>,
    rules: RulesOf<'_>,
) -> Vec<MetaRecord> {
    let mut scratch = image.clone();
    let mut out = Vec::with_capacity(records.len());
    let push = |scratch: &mut MetadataImage, out: &mut Vec<MetaRecord>, record: MetaRecord| {
        scratch.apply(&record);
        out.push(record);
    };
    for record in records {
        match &record {
            MetaRecord::FenceBroker { node_id, epoch } => {
                let node = *node_id;
                let live = scratch
                    .brokers
                    .get(&node)
                    .is_some_and(|b| b.epoch == *epoch && !b.fenced);
                push(&mut scratch, &mut out, record);
                if live {
                    for change in broker_lost(&scratch, node, rules) {
                        push(&mut scratch, &mut out, change);
                    }
                }
            }
            MetaRecord::UnfenceBroker { node_id, .. } => {
                let node = *node_id;
                push(&mut scratch, &mut out, record);
                for change in broker_available(&scratch, node, rules) {
                    push(&mut scratch, &mut out, change);
                }
            }
            MetaRecord::RegisterBroker {
                node_id,
                unclean_shutdown,
                ..
            } => {
                // A new incarnation: the old one's in-memory state (its
                // followers' progress) is gone, so it is treated as lost,
                // then as available again; after an unclean shutdown its
                // log may have lost writes too.
                let node = *node_id;
                let unclean_shutdown = *unclean_shutdown;
                let known = scratch.brokers.contains_key(&node);
                if known {
                    for change in broker_lost(&scratch, node, rules) {
                        push(&mut scratch, &mut out, change);
                    }
                    if unclean_shutdown {
                        for change in unclean_restart(&scratch, node) {
                            push(&mut scratch, &mut out, change);
                        }
                    }
                }
                push(&mut scratch, &mut out, record);
                for change in broker_available(&scratch, node, rules) {
                    push(&mut scratch, &mut out, change);
                }
            }
            _ => push(&mut scratch, &mut out, record),
        }
    }
    out
}

/// The log line every unclean election writes.
fn warn_unclean(topic: &str, partition: i32, leader: i32) {
    tracing::warn!(
        topic,
        partition,
        leader,
        "unclean leader election: broker {leader} was not in sync, so acknowledged writes may be lost"
    );
}

/// Whether broker `node` is registered and unfenced.
pub(super) fn usable(image: &MetadataImage, node: i32) -> bool {
    image.brokers.get(&node).is_some_and(|b| !b.fenced)
}

/// Every partition of the image, with its topic's name and id.
fn partitions(
    image: &MetadataImage,
) -> impl Iterator<Item = (&str, uuid::Uuid, i32, &PartitionImage)> {
    image.topics.values().flat_map(|t| {
        t.partitions
            .iter()
            .enumerate()
            .map(move |(i, p)| (t.name.as_str(), t.topic_id, i as i32, p))
    })
}

/// The eligible leader replicas `next` keeps after a change from `before`
/// (KIP-966). While the ISR holds fewer than `min_insync` replicas the
/// high watermark stands still (`Partition`'s strict rule), so a replica
/// that leaves the ISR then holds every committed record and stays
/// eligible, as do those that were eligible already; once the ISR is back
/// at `min_insync`, committed records may be missing from anyone outside
/// it, and none is. Only replicas of the partition are kept, in replica
/// order. After an unclean election (`unclean_leader`) none is either: the
/// leader lacks committed records, so nobody's log measures them any more.
fn settle_elr(
    before: &PartitionImage,
    next: &mut PartitionImage,
    min_insync: usize,
    unclean_leader: bool,
) {
    if unclean_leader || next.isr.len() >= effective_min_insync(next, min_insync) {
        next.elr.clear();
        return;
    }
    let eligible =
        |id: &i32| (before.isr.contains(id) || before.elr.contains(id)) && !next.isr.contains(id);
    next.elr = next
        .replicas
        .iter()
        .copied()
        .filter(|id| eligible(id))
        .collect();
}

/// `min.insync.replicas` as the high watermark rule applies it: at most the
/// replica count (a single replica is always enough for itself).
fn effective_min_insync(p: &PartitionImage, min_insync: usize) -> usize {
    min_insync.min(p.replicas.len()).max(1)
}

/// The first unfenced eligible leader replica of `p`, other than `except`.
/// The ELR counts only while the ISR is below `min.insync.replicas`: a
/// lowered setting may have let the high watermark pass its members.
fn eligible_leader(
    image: &MetadataImage,
    p: &PartitionImage,
    rules: TopicRules,
    except: i32,
) -> Option<i32> {
    if p.isr.len() >= effective_min_insync(p, rules.min_insync) {
        return None;
    }
    p.elr
        .iter()
        .copied()
        .find(|id| *id != except && usable(image, *id))
}

/// `min.insync.replicas` changed for the topics `changed` names: their
/// partitions' eligible leader replicas are cleared, as Kafka's controller
/// clears them (KIP-966). The ELR was measured against the old setting,
/// and under the new one the high watermark may already have moved past
/// what its members hold.
pub(crate) fn min_insync_changed(
    image: &MetadataImage,
    changed: &dyn Fn(&str) -> bool,
) -> Vec<MetaRecord> {
    partitions(image)
        .filter(|(name, _, _, p)| !p.elr.is_empty() && changed(name))
        .map(|(_, topic_id, index, p)| {
            let mut next = p.clone();
            next.elr.clear();
            next.partition_epoch += 1;
            MetaRecord::partition(topic_id, index, &next)
        })
        .collect()
}

/// Broker `node` can no longer serve: each partition it leads gets the
/// first other in-sync replica that is unfenced (in replica order) as
/// leader, or else the first unfenced eligible leader replica (which then
/// forms the ISR alone), or, failing both, an out-of-sync unfenced replica
/// where unclean election is allowed (logged: acknowledged writes may be
/// lost), or no leader at all; it leaves every ISR it is in, except as the
/// last member (then it stays, so it can lead again when it returns with
/// the data), and becomes eligible where that leaves the ISR below
/// `min.insync.replicas`.
pub(crate) fn broker_lost(image: &MetadataImage, node: i32, rules: RulesOf<'_>) -> Vec<MetaRecord> {
    let mut out = Vec::new();
    for (name, topic_id, index, p) in partitions(image) {
        if !p.replicas.contains(&node) {
            continue;
        }
        let rule = rules(name);
        let mut next = p.clone();
        let mut unclean_election = false;
        let others: Vec<i32> = p.isr.iter().copied().filter(|id| *id != node).collect();
        if p.leader == node {
            let clean = p
                .replicas
                .iter()
                .copied()
                .find(|id| *id != node && others.contains(id) && usable(image, *id));
            let leader = match (clean, eligible_leader(image, p, rule, node)) {
                (Some(id), _) => Some(id),
                (None, Some(id)) => {
                    next.isr = vec![id];
                    Some(id)
                }
                (None, None) if rule.unclean => {
                    let id = p
                        .replicas
                        .iter()
                        .copied()
                        .find(|id| *id != node && usable(image, *id));
                    if let Some(id) = id {
                        warn_unclean(name, index, id);
                        next.isr = vec![id];
                        unclean_election = true;
                    }
                    id
                }
                (None, None) => None,
            };
            next.leader = leader.unwrap_or(-1);
            next.leader_epoch += 1;
        }
        if next.isr.contains(&node) && !others.is_empty() {
            next.isr = others;
        }
        settle_elr(p, &mut next, rule.min_insync, unclean_election);
        if next != *p {
            next.partition_epoch += 1;
            out.push(MetaRecord::partition(topic_id, index, &next));
        }
    }
    out
}

/// Broker `node` registers after an unclean shutdown (called after
/// [`broker_lost`], so it leads nothing): its log may have lost writes no
/// fsync covered, so it leaves every ELR, and the ISR it is the last
/// member of when eligible leader replicas remain (the partition then
/// waits for one of them). Where nobody else could lead it stays, as the
/// last replica standing: it leads with what it recovered, as in Kafka,
/// rather than leave the partition offline for good (logged where other
/// replicas exist: acknowledged writes it lost are gone).
pub(crate) fn unclean_restart(image: &MetadataImage, node: i32) -> Vec<MetaRecord> {
    let mut out = Vec::new();
    for (name, topic_id, index, p) in partitions(image) {
        if !p.isr.contains(&node) && !p.elr.contains(&node) {
            continue;
        }
        let mut next = p.clone();
        next.elr.retain(|id| *id != node);
        if !next.elr.is_empty() {
            next.isr.retain(|id| *id != node);
        } else if next.isr.is_empty() || next.isr == [node] {
            next.isr = vec![node];
            if p.replicas.len() > 1 {
                tracing::warn!(
                    topic = name,
                    partition = index,
                    broker = node,
                    "broker {node} restarted after an unclean shutdown as the only replica that may lead: it leads with what it recovered, and acknowledged writes it lost are gone"
                );
            }
        }
        if next != *p {
            next.partition_epoch += 1;
            out.push(MetaRecord::partition(topic_id, index, &next));
        }
    }
    out
}

/// Broker `node` serves again: each partition without a leader that it can
/// lead gets it as leader: as an in-sync replica; as an eligible leader
/// replica (forming the ISR alone); or, where unclean election is
/// allowed, as any replica.
pub(crate) fn broker_available(
    image: &MetadataImage,
    node: i32,
    rules: RulesOf<'_>,
) -> Vec<MetaRecord> {
    let mut out = Vec::new();
    if !usable(image, node) {
        return out;
    }
    for (name, topic_id, index, p) in partitions(image) {
        if p.leader != -1 || !p.replicas.contains(&node) {
            continue;
        }
        let rule = rules(name);
        let mut next = p.clone();
        let mut unclean_election = false;
        if !p.isr.contains(&node) {
            if eligible_leader(image, p, rule, -1) == Some(node) {
                next.isr = vec![node];
            } else if rule.unclean && !p.elr.contains(&node) {
                warn_unclean(name, index, node);
                next.isr = vec![node];
                unclean_election = true;
            } else {
                continue;
            }
        }
        next.leader = node;
        next.leader_epoch += 1;
        settle_elr(p, &mut next, rule.min_insync, unclean_election);
        next.partition_epoch += 1;
        out.push(MetaRecord::partition(topic_id, index, &next));
    }
    out
}

/// A leader's ISR change (Kafka's AlterPartition), checked against the
/// committed state: only the current leader at its current leader epoch,
/// against the current partition epoch, may change it; the ISR keeps the
/// leader, holds only replicas, and adds only unfenced brokers whose
/// current registration is the one that fetched (KIP-903: a restarted
/// broker may have lost what it had). The ELR follows the ISR
/// (`min_insync`: the topic's `min.insync.replicas`).
pub(crate) fn alter_isr(
    image: &MetadataImage,
    topic_id: uuid::Uuid,
    index: i32,
    leader: i32,
    change: &IsrChange,
    min_insync: usize,
) -> Result<MetaRecord, ApiError> {
    let (leader_epoch, partition_epoch, isr) =
        (change.leader_epoch, change.partition_epoch, &change.isr[..]);
    let p = image
        .topic_by_id(topic_id)
        .and_then(|t| t.partitions.get(usize::try_from(index).ok()?))
        .ok_or_else(|| ApiError::new(ResponseError::UnknownTopicOrPartition, ""))?;
    if p.leader != leader || p.leader_epoch != leader_epoch {
        return Err(ApiError::new(
            ResponseError::FencedLeaderEpoch,
            format!(
                "broker {leader} at leader epoch {leader_epoch} no longer leads partition {index} (leader {} at epoch {})",
                p.leader, p.leader_epoch
            ),
        ));
    }
    if p.partition_epoch != partition_epoch {
        return Err(ApiError::new(
            ResponseError::InvalidUpdateVersion,
            format!(
                "partition {index} is at partition epoch {}, not {partition_epoch}",
                p.partition_epoch
            ),
        ));
    }
    if !isr.contains(&leader) || isr.iter().any(|id| !p.replicas.contains(id)) {
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!(
                "ISR {isr:?} must hold the leader and only replicas {:?}",
                p.replicas
            ),
        ));
    }
    for id in isr.iter().filter(|id| !p.isr.contains(id)) {
        let fetched_as = change
            .joining
            .iter()
            .find(|(j, _)| j == id)
            .map(|(_, e)| *e);
        let current = image.brokers.get(id).filter(|b| !b.fenced).map(|b| b.epoch);
        if current.is_none() || current != fetched_as {
            return Err(ApiError::new(
                ResponseError::IneligibleReplica,
                format!(
                    "broker {id} cannot join the ISR: it is fenced, unregistered or registered again since it fetched (epoch {fetched_as:?}, registered {current:?})"
                ),
            ));
        }
    }
    let mut next = p.clone();
    next.isr = isr.to_vec();
    // The last joining replica's entry completes a reassignment.
    super::reassignment::complete_if_ready(image, &mut next);
    settle_elr(p, &mut next, min_insync, false);
    next.partition_epoch += 1;
    Ok(MetaRecord::partition(topic_id, index, &next))
}

/// Which leader an election wants (ElectLeaders' election type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionKind {
    /// The first replica, if it is in sync and unfenced.
    Preferred,
    /// Any unfenced replica for a partition that has no leader, in sync or
    /// not (acknowledged writes may be lost).
    Unclean,
}

/// One requested election (Kafka's ElectLeaders semantics): the record that
/// makes it, or why none is made: ELECTION_NOT_NEEDED (the preferred
/// replica already leads; for unclean, the partition has a leader),
/// PREFERRED_LEADER_NOT_AVAILABLE (it is fenced or out of sync),
/// ELIGIBLE_LEADERS_NOT_AVAILABLE (no unfenced replica at all). An unclean
/// election takes an in-sync or eligible leader replica where one is
/// unfenced, and any replica only failing both.
pub(crate) fn elect(
    image: &MetadataImage,
    topic_id: uuid::Uuid,
    index: i32,
    kind: ElectionKind,
    rules: TopicRules,
) -> Result<MetaRecord, ApiError> {
    if kind == ElectionKind::Preferred {
        return elect_preferred(image, topic_id, index);
    }
    let p = partition_of(image, topic_id, index)?;
    if p.leader >= 0 {
        return Err(not_needed());
    }
    let in_sync = p
        .replicas
        .iter()
        .copied()
        .find(|id| p.isr.contains(id) && usable(image, *id));
    let eligible = eligible_leader(image, p, rules, -1);
    let any = p.replicas.iter().copied().find(|id| usable(image, *id));
    let Some(leader) = in_sync.or(eligible).or(any) else {
        return Err(ApiError::new(
            ResponseError::EligibleLeadersNotAvailable,
            format!("Failed to elect leader for partition {index}: no replica is alive"),
        ));
    };
    let unclean = in_sync.is_none() && eligible.is_none();
    if unclean {
        warn_unclean(
            image.topic_by_id(topic_id).map_or("", |t| t.name.as_str()),
            index,
            leader,
        );
    }
    let mut next = p.clone();
    if in_sync.is_none() {
        next.isr = vec![leader];
    }
    next.leader = leader;
    settle_elr(p, &mut next, rules.min_insync, unclean);
    next.leader_epoch += 1;
    next.partition_epoch += 1;
    Ok(MetaRecord::partition(topic_id, index, &next))
}

/// A preferred-replica election: the first replica leads, if it is in
/// sync and unfenced (the ISR, and so the ELR, stay as they are).
fn elect_preferred(
    image: &MetadataImage,
    topic_id: uuid::Uuid,
    index: i32,
) -> Result<MetaRecord, ApiError> {
    let p = partition_of(image, topic_id, index)?;
    let preferred = p.replicas.first().copied().unwrap_or(-1);
    if p.leader == preferred {
        return Err(not_needed());
    }
    if !p.isr.contains(&preferred) || !usable(image, preferred) {
        return Err(ApiError::new(
            ResponseError::PreferredLeaderNotAvailable,
            format!(
                "Failed to elect leader for partition {index}: the preferred replica {preferred} is not in sync or not alive"
            ),
        ));
    }
    let mut next = p.clone();
    next.leader = preferred;
    next.leader_epoch += 1;
    next.partition_epoch += 1;
    Ok(MetaRecord::partition(topic_id, index, &next))
}

fn partition_of(
    image: &MetadataImage,
    topic_id: uuid::Uuid,
    index: i32,
) -> Result<&PartitionImage, ApiError> {
    image
        .topic_by_id(topic_id)
        .and_then(|t| t.partitions.get(usize::try_from(index).ok()?))
        .ok_or_else(|| ApiError::new(ResponseError::UnknownTopicOrPartition, ""))
}

fn not_needed() -> ApiError {
    ApiError::new(
        ResponseError::ElectionNotNeeded,
        "Leader election not needed for topic partition.",
    )
}

/// The preferred-leader elections that bring leadership home (Kafka's
/// auto leader rebalance): for each broker whose share of partitions it is
/// the preferred replica of but does not lead is above `imbalance_percent`,
/// every such partition it could lead (in sync, unfenced).
pub(crate) fn rebalance(image: &MetadataImage, imbalance_percent: u32) -> Vec<MetaRecord> {
    let mut preferred_of: std::collections::BTreeMap<i32, (usize, usize)> = Default::default();
    for (_, _, _, p) in partitions(image) {
        if let Some(first) = p.replicas.first() {
            let entry = preferred_of.entry(*first).or_default();
            entry.0 += 1;
            if p.leader != *first {
                entry.1 += 1;
            }
        }
    }
    let imbalanced: Vec<i32> = preferred_of
        .iter()
        .filter(|(id, (total, not_leading))| {
            usable(image, **id) && *not_leading * 100 > *total * imbalance_percent as usize
        })
        .map(|(id, _)| *id)
        .collect();
    partitions(image)
        .filter(|(_, _, _, p)| p.replicas.first().is_some_and(|f| imbalanced.contains(f)))
        .filter_map(|(_, topic_id, index, _)| elect_preferred(image, topic_id, index).ok())
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use uuid::Uuid;

    pub(in crate::broker) const TOPIC: Uuid = Uuid::from_u128(9);

    /// Brokers 1-4 registered (those in `fenced` fenced) and topic "t"
    /// (id `TOPIC`) with one partition in state `partition`.
    pub(in crate::broker) fn image(partition: PartitionImage, fenced: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in 1..=4 {
            image.apply(&MetaRecord::RegisterBroker {
                node_id: id,
                epoch: 0,
                endpoints: vec![],
                rack: None,
                unclean_shutdown: false,
            });
            if fenced.contains(&id) {
                image.apply(&MetaRecord::FenceBroker {
                    node_id: id,
                    epoch: 0,
                });
            }
        }
        image.apply(&MetaRecord::Topic {
            name: "t".into(),
            topic_id: TOPIC,
        });
        image.apply(&MetaRecord::partition(TOPIC, 0, &partition));
        image
    }

    fn state(leader: i32, isr: &[i32]) -> PartitionImage {
        PartitionImage {
            replicas: vec![1, 2, 3],
            leader,
            leader_epoch: 4,
            isr: isr.to_vec(),
            partition_epoch: 10,
            adding: vec![],
            removing: vec![],
            elr: vec![],
        }
    }

    fn after(image: &MetadataImage, records: Vec<MetaRecord>) -> PartitionImage {
        let mut image = image.clone();
        for r in &records {
            image.apply(r);
        }
        image.topics["t"].partitions[0].clone()
    }

    /// Kafka's defaults: no unclean election, min.insync.replicas=1.
    const CLEAN: RulesOf<'static> = &|_| TopicRules {
        unclean: false,
        min_insync: 1,
    };
    const UNCLEAN: RulesOf<'static> = &|_| TopicRules {
        unclean: true,
        min_insync: 1,
    };
    /// min.insync.replicas=2, where eligible leader replicas matter.
    const MIN_TWO: RulesOf<'static> = &|_| TopicRules {
        unclean: false,
        min_insync: 2,
    };

    #[test]
    fn a_min_insync_change_clears_the_eligible_leader_replicas_of_its_topics() {
        let mut held = state(1, &[1]);
        held.elr = vec![2, 3];
        let img = image(held, &[]);
        assert!(min_insync_changed(&img, &|t| t == "u").is_empty());
        let p = after(&img, min_insync_changed(&img, &|t| t == "t"));
        assert_eq!(
            (p.elr.len(), p.isr.as_slice(), p.partition_epoch),
            (0, &[1][..], 11)
        );
        // Nothing to clear: no record.
        let cleared = after(&img, min_insync_changed(&img, &|_| true));
        assert!(min_insync_changed(&image(cleared, &[]), &|_| true).is_empty());
    }

    #[test]
    fn a_fenced_leader_hands_over_to_the_next_in_sync_replica() {
        let img = image(state(1, &[1, 2, 3]), &[]);
        let fence = vec![MetaRecord::FenceBroker {
            node_id: 1,
            epoch: 0,
        }];
        let p = after(&img, with_elections(&img, fence, CLEAN));
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (2, 5, 11));
        assert_eq!(p.isr, [2, 3]);
    }

    #[test]
    fn a_fenced_follower_leaves_the_isr_and_the_leader_stays() {
        let img = image(state(1, &[1, 2, 3]), &[]);
        let fence = vec![MetaRecord::FenceBroker {
            node_id: 3,
            epoch: 0,
        }];
        let p = after(&img, with_elections(&img, fence, CLEAN));
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (1, 4, 11));
        assert_eq!(p.isr, [1, 2]);
    }

    /// Only out-of-sync replicas left: no leader (the last ISR member
    /// stays listed) unless unclean election is allowed; the last member's
    /// return makes it leader again.
    #[test]
    fn the_last_in_sync_replica_waits_unless_unclean_election_is_allowed() {
        let img = image(state(1, &[1]), &[]);
        let fence = || {
            vec![MetaRecord::FenceBroker {
                node_id: 1,
                epoch: 0,
            }]
        };
        let offline = after(&img, with_elections(&img, fence(), CLEAN));
        assert_eq!((offline.leader, offline.leader_epoch), (-1, 5));
        assert_eq!(offline.isr, [1]);
        let unclean = after(&img, with_elections(&img, fence(), UNCLEAN));
        assert_eq!((unclean.leader, unclean.isr.clone()), (2, vec![2]));

        let img = image(offline, &[1]);
        let back = vec![MetaRecord::UnfenceBroker {
            node_id: 1,
            epoch: 0,
        }];
        let p = after(&img, with_elections(&img, back, CLEAN));
        assert_eq!((p.leader, p.leader_epoch, p.isr.clone()), (1, 6, vec![1]));
    }

    /// A restarted broker (a new registration) gives up leadership where
    /// another in-sync replica can take it.
    #[test]
    fn a_new_incarnation_is_treated_as_lost_then_available() {
        let img = image(state(1, &[1, 2]), &[]);
        let register = vec![MetaRecord::RegisterBroker {
            node_id: 1,
            epoch: 1,
            endpoints: vec![],
            rack: None,
            unclean_shutdown: false,
        }];
        let p = after(&img, with_elections(&img, register, CLEAN));
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
    }

    fn with_elr(mut p: PartitionImage, elr: &[i32]) -> PartitionImage {
        p.elr = elr.to_vec();
        p
    }

    fn register(node_id: i32, epoch: i64, unclean_shutdown: bool) -> Vec<MetaRecord> {
        vec![MetaRecord::RegisterBroker {
            node_id,
            epoch,
            endpoints: vec![],
            rack: None,
            unclean_shutdown,
        }]
    }

    fn unfence(node_id: i32, epoch: i64) -> Vec<MetaRecord> {
        vec![MetaRecord::UnfenceBroker { node_id, epoch }]
    }

    /// A shrink below min.insync.replicas keeps the leavers eligible (the
    /// high watermark stands still meanwhile); back at min.insync.replicas
    /// nobody outside the ISR is. Above it, leavers are not eligible.
    #[test]
    fn replicas_leaving_an_isr_below_min_insync_stay_eligible_until_it_grows_back() {
        let img = image(state(1, &[1, 2, 3]), &[]);
        let to_two = alter_isr(&img, TOPIC, 0, 1, &change(4, 10, &[1, 2], &[]), 2).unwrap();
        let p = after(&img, vec![to_two]);
        assert_eq!((p.isr.clone(), p.elr.clone()), (vec![1, 2], vec![]));

        let img = image(p, &[]);
        let to_one = alter_isr(&img, TOPIC, 0, 1, &change(4, 11, &[1], &[]), 2).unwrap();
        let p = after(&img, vec![to_one]);
        assert_eq!(
            (p.isr.clone(), p.elr.clone(), p.partition_epoch),
            (vec![1], vec![2], 12)
        );

        let img = image(p, &[]);
        let back = alter_isr(&img, TOPIC, 0, 1, &change(4, 12, &[1, 3], &[(3, 0)]), 2).unwrap();
        let p = after(&img, vec![back]);
        assert_eq!((p.isr.clone(), p.elr.clone()), (vec![1, 3], vec![]));

        // With min.insync.replicas=1 an ISR of one is enough: nobody is
        // eligible.
        let img = image(state(1, &[1, 2]), &[]);
        let alone = alter_isr(&img, TOPIC, 0, 1, &change(4, 10, &[1], &[]), 1).unwrap();
        assert_eq!(after(&img, vec![alone]).elr, Vec::<i32>::new());
    }

    /// The broker simulation's seed 17 (page-cache mode): the leader, last
    /// in the ISR after its followers were cut off, is lost. An eligible
    /// follower takes over rather than the partition waiting for the old
    /// leader, which may come back without writes it acknowledged.
    #[test]
    fn a_lost_last_in_sync_leader_hands_over_to_an_eligible_replica() {
        let img = image(with_elr(state(1, &[1]), &[2, 3]), &[]);
        let fence = vec![MetaRecord::FenceBroker {
            node_id: 1,
            epoch: 0,
        }];
        let p = after(&img, with_elections(&img, fence, MIN_TWO));
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (2, 5, 11));
        assert_eq!((p.isr.clone(), p.elr.clone()), (vec![2], vec![1, 3]));
    }

    /// The last in-sync replica restarts after an unclean shutdown while
    /// an eligible replica is fenced: it leaves the ISR and may not lead;
    /// the eligible replica leads when it is back.
    #[test]
    fn an_unclean_restart_gives_way_to_an_eligible_replica() {
        let img = image(with_elr(state(-1, &[1]), &[2]), &[1, 2]);
        let img = {
            let mut img = img;
            for r in with_elections(&img, register(1, 1, true), MIN_TWO) {
                img.apply(&r);
            }
            img
        };
        let p = img.topics["t"].partitions[0].clone();
        assert_eq!(
            (p.leader, p.isr.clone(), p.elr.clone()),
            (-1, vec![], vec![2])
        );
        // Back from the restart, it still may not lead.
        let p = after(&img, with_elections(&img, unfence(1, 1), MIN_TWO));
        assert_eq!((p.leader, p.isr.clone()), (-1, vec![]));
        // The eligible replica may.
        let p = after(&img, with_elections(&img, unfence(2, 0), MIN_TWO));
        assert_eq!((p.leader, p.leader_epoch), (2, 5));
        assert_eq!((p.isr.clone(), p.elr.clone()), (vec![2], vec![]));

        // After a clean shutdown it keeps its place and leads again.
        let img = image(with_elr(state(-1, &[1]), &[2]), &[1, 2]);
        let mut clean = img.clone();
        for r in with_elections(&img, register(1, 1, false), MIN_TWO) {
            clean.apply(&r);
        }
        let p = after(&clean, with_elections(&clean, unfence(1, 1), MIN_TWO));
        assert_eq!(
            (p.leader, p.isr.clone(), p.elr.clone()),
            (1, vec![1], vec![2])
        );
    }

    /// With nobody else eligible, an unclean restart leaves the last
    /// replica standing in the ISR (it leads with what it recovered, as in
    /// Kafka) rather than the partition offline for good; an eligible
    /// replica that restarts uncleanly leaves the ELR.
    #[test]
    fn the_last_replica_standing_stays_after_an_unclean_restart() {
        let img = image(state(-1, &[1]), &[1]);
        let mut back = img.clone();
        for r in with_elections(&img, register(1, 1, true), MIN_TWO) {
            back.apply(&r);
        }
        let p = after(&back, with_elections(&back, unfence(1, 1), MIN_TWO));
        assert_eq!((p.leader, p.isr.clone()), (1, vec![1]));

        let img = image(with_elr(state(1, &[1]), &[2, 3]), &[]);
        let p = after(&img, with_elections(&img, register(3, 1, true), MIN_TWO));
        assert_eq!(
            (p.leader, p.isr.clone(), p.elr.clone()),
            (1, vec![1], vec![2])
        );
    }

    /// A lowered min.insync.replicas may let the high watermark pass the
    /// eligible replicas: they are not elected then, and leave the ELR.
    #[test]
    fn eligible_replicas_count_only_while_the_isr_is_below_min_insync() {
        let img = image(with_elr(state(1, &[1]), &[2]), &[]);
        let fence = vec![MetaRecord::FenceBroker {
            node_id: 1,
            epoch: 0,
        }];
        let p = after(&img, with_elections(&img, fence, CLEAN));
        assert_eq!(
            (p.leader, p.isr.clone(), p.elr.clone()),
            (-1, vec![1], vec![])
        );
    }

    /// ElectLeaders' unclean election takes an eligible replica before an
    /// out-of-sync one; an out-of-sync leader empties the ELR.
    #[test]
    fn an_unclean_election_prefers_an_eligible_replica() {
        let img = image(with_elr(state(-1, &[1]), &[3]), &[1]);
        let p = after(
            &img,
            vec![elect(&img, TOPIC, 0, ElectionKind::Unclean, MIN_TWO("")).unwrap()],
        );
        assert_eq!(
            (p.leader, p.isr.clone(), p.elr.clone()),
            (3, vec![3], vec![1])
        );
        let img = image(with_elr(state(-1, &[1]), &[3]), &[1, 3]);
        let p = after(
            &img,
            vec![elect(&img, TOPIC, 0, ElectionKind::Unclean, MIN_TWO("")).unwrap()],
        );
        assert_eq!(
            (p.leader, p.isr.clone(), p.elr.clone()),
            (2, vec![2], vec![])
        );
    }

    fn change(
        leader_epoch: i32,
        partition_epoch: i32,
        isr: &[i32],
        joining: &[(i32, i64)],
    ) -> IsrChange {
        IsrChange {
            leader_epoch,
            partition_epoch,
            isr: isr.to_vec(),
            joining: joining.to_vec(),
        }
    }

    #[test]
    fn isr_changes_are_checked_against_the_committed_state() {
        let img = image(state(1, &[1, 2]), &[3]);
        let ok = alter_isr(&img, TOPIC, 0, 1, &change(4, 10, &[1], &[]), 1).unwrap();
        assert_eq!(after(&img, vec![ok]).isr, [1]);
        let code = |r: Result<MetaRecord, ApiError>| r.unwrap_err().error;
        let cases = [
            (
                2,
                change(4, 10, &[2], &[]),
                ResponseError::FencedLeaderEpoch,
            ),
            (
                1,
                change(3, 10, &[1], &[]),
                ResponseError::FencedLeaderEpoch,
            ),
            (
                1,
                change(4, 9, &[1], &[]),
                ResponseError::InvalidUpdateVersion,
            ),
            (1, change(4, 10, &[2], &[]), ResponseError::InvalidRequest),
            // Broker 3 is fenced.
            (
                1,
                change(4, 10, &[1, 2, 3], &[(3, 0)]),
                ResponseError::IneligibleReplica,
            ),
        ];
        for (leader, c, expected) in cases {
            assert_eq!(
                code(alter_isr(&img, TOPIC, 0, leader, &c, 1)),
                expected,
                "{c:?}"
            );
        }
        // A joining broker must be the incarnation that fetched.
        let img = image(state(1, &[1]), &[]);
        assert_eq!(
            code(alter_isr(
                &img,
                TOPIC,
                0,
                1,
                &change(4, 10, &[1, 2], &[(2, 7)]),
                1
            )),
            ResponseError::IneligibleReplica
        );
        assert!(alter_isr(&img, TOPIC, 0, 1, &change(4, 10, &[1, 2], &[(2, 0)]), 1).is_ok());
    }

    #[test]
    fn preferred_and_unclean_elections_on_request() {
        let code = |r: Result<MetaRecord, ApiError>| r.unwrap_err().error;
        let img = image(state(2, &[1, 2, 3]), &[]);
        let p = after(
            &img,
            vec![elect(&img, TOPIC, 0, ElectionKind::Preferred, CLEAN("")).unwrap()],
        );
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (1, 5, 11));
        assert_eq!(
            code(elect(&img, TOPIC, 0, ElectionKind::Unclean, CLEAN(""))),
            ResponseError::ElectionNotNeeded
        );
        let home = image(state(1, &[1, 2]), &[]);
        assert_eq!(
            code(elect(&home, TOPIC, 0, ElectionKind::Preferred, CLEAN(""))),
            ResponseError::ElectionNotNeeded
        );
        let out_of_sync = image(state(2, &[2, 3]), &[]);
        assert_eq!(
            code(elect(
                &out_of_sync,
                TOPIC,
                0,
                ElectionKind::Preferred,
                CLEAN("")
            )),
            ResponseError::PreferredLeaderNotAvailable
        );
        let leaderless = image(state(-1, &[1]), &[1]);
        let p = after(
            &leaderless,
            vec![elect(&leaderless, TOPIC, 0, ElectionKind::Unclean, CLEAN("")).unwrap()],
        );
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
        let all_gone = image(state(-1, &[1]), &[1, 2, 3]);
        assert_eq!(
            code(elect(&all_gone, TOPIC, 0, ElectionKind::Unclean, CLEAN(""))),
            ResponseError::EligibleLeadersNotAvailable
        );
        assert_eq!(
            code(elect(&img, TOPIC, 7, ElectionKind::Preferred, CLEAN(""))),
            ResponseError::UnknownTopicOrPartition
        );
    }

    #[test]
    fn rebalancing_moves_leadership_to_in_sync_preferred_replicas() {
        let img = image(state(2, &[1, 2, 3]), &[]);
        let records = rebalance(&img, 10);
        assert_eq!(after(&img, records).leader, 1);
        // Preferred replica out of sync: nothing to do.
        let img = image(state(2, &[2, 3]), &[]);
        assert!(rebalance(&img, 10).is_empty());
    }
}
