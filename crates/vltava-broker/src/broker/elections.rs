//! The controller's partition leadership rules, as pure functions of the
//! metadata image: what changes when a broker is lost (fenced, or replaced
//! by a new incarnation) or becomes available again, and whether a
//! leader's ISR change may be committed (AlterPartition).
//!
//! Every change writes the partition's whole state (`MetaRecord::Partition`)
//! with the partition epoch raised, and the leader epoch raised whenever
//! the leader changes, so replicas and clients can tell old leaders from
//! new ones (KIP-320) and a leader's ISR change made against an older
//! state is refused.

use vltava_meta::{MetaRecord, MetadataImage, PartitionImage};
use vltava_protocol::ResponseError;

use crate::error::ApiError;
use crate::partition::IsrChange;

/// Whether `unclean.leader.election.enable` holds for a topic, by name.
pub(crate) type UncleanAllowed<'a> = &'a dyn Fn(&str) -> bool;

/// `records` (fences, unfences, registrations) followed by the partition
/// changes each one calls for, every change computed on the image as the
/// records before it left it.
pub(crate) fn with_elections(
    image: &MetadataImage,
    records: Vec<MetaRecord>,
    unclean: UncleanAllowed<'_>,
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
                    for change in broker_lost(&scratch, node, unclean) {
                        push(&mut scratch, &mut out, change);
                    }
                }
            }
            MetaRecord::UnfenceBroker { node_id, .. } => {
                let node = *node_id;
                push(&mut scratch, &mut out, record);
                for change in broker_available(&scratch, node, unclean) {
                    push(&mut scratch, &mut out, change);
                }
            }
            MetaRecord::RegisterBroker { node_id, .. } => {
                // A new incarnation: the old one's in-memory state (its
                // followers' progress) is gone, so it is treated as lost,
                // then as available again.
                let node = *node_id;
                let known = scratch.brokers.contains_key(&node);
                if known {
                    for change in broker_lost(&scratch, node, unclean) {
                        push(&mut scratch, &mut out, change);
                    }
                }
                push(&mut scratch, &mut out, record);
                for change in broker_available(&scratch, node, unclean) {
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

/// Broker `node` can no longer serve: each partition it leads gets the
/// first other in-sync replica that is unfenced (in replica order) as
/// leader, or, failing one, an out-of-sync unfenced replica where unclean
/// election is allowed (logged: acknowledged writes may be lost), or no
/// leader at all; it leaves every ISR it is in, except as the last member
/// (then it stays, so it can lead again when it returns with the data).
pub(crate) fn broker_lost(
    image: &MetadataImage,
    node: i32,
    unclean: UncleanAllowed<'_>,
) -> Vec<MetaRecord> {
    let mut out = Vec::new();
    for (name, topic_id, index, p) in partitions(image) {
        if !p.replicas.contains(&node) {
            continue;
        }
        let mut next = p.clone();
        let others: Vec<i32> = p.isr.iter().copied().filter(|id| *id != node).collect();
        if p.leader == node {
            let clean = p
                .replicas
                .iter()
                .copied()
                .find(|id| *id != node && others.contains(id) && usable(image, *id));
            let leader = match clean {
                Some(id) => Some(id),
                None if unclean(name) => {
                    let id = p
                        .replicas
                        .iter()
                        .copied()
                        .find(|id| *id != node && usable(image, *id));
                    if let Some(id) = id {
                        warn_unclean(name, index, id);
                        next.isr = vec![id];
                    }
                    id
                }
                None => None,
            };
            next.leader = leader.unwrap_or(-1);
            next.leader_epoch += 1;
        }
        if next.isr.contains(&node) && !others.is_empty() {
            next.isr = others;
        }
        if next != *p {
            next.partition_epoch += 1;
            out.push(MetaRecord::partition(topic_id, index, &next));
        }
    }
    out
}

/// Broker `node` serves again: each partition without a leader that it can
/// lead (it is in the ISR; or any replica where unclean election is
/// allowed) gets it as leader.
pub(crate) fn broker_available(
    image: &MetadataImage,
    node: i32,
    unclean: UncleanAllowed<'_>,
) -> Vec<MetaRecord> {
    let mut out = Vec::new();
    if !usable(image, node) {
        return out;
    }
    for (name, topic_id, index, p) in partitions(image) {
        if p.leader != -1 || !p.replicas.contains(&node) {
            continue;
        }
        let mut next = p.clone();
        if !p.isr.contains(&node) {
            if !unclean(name) {
                continue;
            }
            warn_unclean(name, index, node);
            next.isr = vec![node];
        }
        next.leader = node;
        next.leader_epoch += 1;
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
/// broker may have lost what it had).
pub(crate) fn alter_isr(
    image: &MetadataImage,
    topic_id: uuid::Uuid,
    index: i32,
    leader: i32,
    change: &IsrChange,
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
/// ELIGIBLE_LEADERS_NOT_AVAILABLE (no unfenced replica at all).
pub(crate) fn elect(
    image: &MetadataImage,
    topic_id: uuid::Uuid,
    index: i32,
    kind: ElectionKind,
) -> Result<MetaRecord, ApiError> {
    let p = image
        .topic_by_id(topic_id)
        .and_then(|t| t.partitions.get(usize::try_from(index).ok()?))
        .ok_or_else(|| ApiError::new(ResponseError::UnknownTopicOrPartition, ""))?;
    let mut next = p.clone();
    match kind {
        ElectionKind::Preferred => {
            let preferred = p.replicas.first().copied().unwrap_or(-1);
            if p.leader == preferred {
                return Err(ApiError::new(
                    ResponseError::ElectionNotNeeded,
                    "Leader election not needed for topic partition.",
                ));
            }
            if !p.isr.contains(&preferred) || !usable(image, preferred) {
                return Err(ApiError::new(
                    ResponseError::PreferredLeaderNotAvailable,
                    format!(
                        "Failed to elect leader for partition {index}: the preferred replica {preferred} is not in sync or not alive"
                    ),
                ));
            }
            next.leader = preferred;
        }
        ElectionKind::Unclean => {
            if p.leader >= 0 {
                return Err(ApiError::new(
                    ResponseError::ElectionNotNeeded,
                    "Leader election not needed for topic partition.",
                ));
            }
            let in_sync = p
                .replicas
                .iter()
                .copied()
                .find(|id| p.isr.contains(id) && usable(image, *id));
            let any = p.replicas.iter().copied().find(|id| usable(image, *id));
            let Some(leader) = in_sync.or(any) else {
                return Err(ApiError::new(
                    ResponseError::EligibleLeadersNotAvailable,
                    format!("Failed to elect leader for partition {index}: no replica is alive"),
                ));
            };
            if in_sync.is_none() {
                warn_unclean(
                    image.topic_by_id(topic_id).map_or("", |t| t.name.as_str()),
                    index,
                    leader,
                );
                next.isr = vec![leader];
            }
            next.leader = leader;
        }
    }
    next.leader_epoch += 1;
    next.partition_epoch += 1;
    Ok(MetaRecord::partition(topic_id, index, &next))
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
        .filter_map(|(_, topic_id, index, _)| {
            elect(image, topic_id, index, ElectionKind::Preferred).ok()
        })
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
        }
    }

    fn after(image: &MetadataImage, records: Vec<MetaRecord>) -> PartitionImage {
        let mut image = image.clone();
        for r in &records {
            image.apply(r);
        }
        image.topics["t"].partitions[0].clone()
    }

    const CLEAN: &dyn Fn(&str) -> bool = &|_| false;
    const UNCLEAN: &dyn Fn(&str) -> bool = &|_| true;

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
        }];
        let p = after(&img, with_elections(&img, register, CLEAN));
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
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
        let ok = alter_isr(&img, TOPIC, 0, 1, &change(4, 10, &[1], &[])).unwrap();
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
                code(alter_isr(&img, TOPIC, 0, leader, &c)),
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
                &change(4, 10, &[1, 2], &[(2, 7)])
            )),
            ResponseError::IneligibleReplica
        );
        assert!(alter_isr(&img, TOPIC, 0, 1, &change(4, 10, &[1, 2], &[(2, 0)])).is_ok());
    }

    #[test]
    fn preferred_and_unclean_elections_on_request() {
        let code = |r: Result<MetaRecord, ApiError>| r.unwrap_err().error;
        let img = image(state(2, &[1, 2, 3]), &[]);
        let p = after(
            &img,
            vec![elect(&img, TOPIC, 0, ElectionKind::Preferred).unwrap()],
        );
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (1, 5, 11));
        assert_eq!(
            code(elect(&img, TOPIC, 0, ElectionKind::Unclean)),
            ResponseError::ElectionNotNeeded
        );
        let home = image(state(1, &[1, 2]), &[]);
        assert_eq!(
            code(elect(&home, TOPIC, 0, ElectionKind::Preferred)),
            ResponseError::ElectionNotNeeded
        );
        let out_of_sync = image(state(2, &[2, 3]), &[]);
        assert_eq!(
            code(elect(&out_of_sync, TOPIC, 0, ElectionKind::Preferred)),
            ResponseError::PreferredLeaderNotAvailable
        );
        let leaderless = image(state(-1, &[1]), &[1]);
        let p = after(
            &leaderless,
            vec![elect(&leaderless, TOPIC, 0, ElectionKind::Unclean).unwrap()],
        );
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
        let all_gone = image(state(-1, &[1]), &[1, 2, 3]);
        assert_eq!(
            code(elect(&all_gone, TOPIC, 0, ElectionKind::Unclean)),
            ResponseError::EligibleLeadersNotAvailable
        );
        assert_eq!(
            code(elect(&img, TOPIC, 7, ElectionKind::Preferred)),
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
