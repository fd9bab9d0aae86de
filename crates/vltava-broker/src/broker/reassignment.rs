//! Partition reassignment (AlterPartitionReassignments and
//! ListPartitionReassignments, KIP-455): moving a partition's replicas to
//! other brokers, or changing how many there are, while it serves.
//!
//! A reassignment grows the replica set first: the target replicas, then
//! the ones leaving, with `adding` and `removing` recorded on the
//! partition. The joining replicas fetch from the leader like any
//! follower; when the leader's ISR change lets the last of them in, the
//! controller completes the reassignment in that same change: the replicas
//! become the target, the leaving ones drop out of the ISR, and if the
//! leader was leaving, the first in-sync target replica leads. Leaving
//! replicas remove their logs once the change reaches them.
//!
//! Decided: the leader epoch grows only when the leader changes. A removed
//! follower's fetches are refused by the leader anyway (it is no longer in
//! the replica set), so there is nothing an epoch bump would fence, and a
//! bump would fail every acks=all produce in flight.

use std::collections::BTreeSet;

use vltava_meta::{MetaRecord, MetadataImage, PartitionImage};
use vltava_protocol::ResponseError;

use super::elections::usable;
use super::replication::PartitionOutcome;
use super::Broker;
use crate::error::ApiError;

/// A reassignment under way, as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// What one partition of a reassignment request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reassign {
    /// Move to these replicas, the first the preferred leader.
    To(Vec<i32>),
    /// Cancel the reassignment under way: back to the replicas before it.
    Cancel,
}

fn invalid(message: String) -> ApiError {
    ApiError::new(ResponseError::InvalidReplicaAssignment, message)
}

/// Gives `next` the replica set `replicas`: the ISR keeps only members of
/// it, and a leader outside it hands over to the first in-sync, unfenced
/// replica (a new leader epoch; -1 if there is none). False, leaving
/// `next` half changed, when no replica kept is in sync.
fn set_replicas(image: &MetadataImage, next: &mut PartitionImage, replicas: Vec<i32>) -> bool {
    next.isr.retain(|id| replicas.contains(id));
    next.elr.retain(|id| replicas.contains(id));
    next.replicas = replicas;
    if next.isr.is_empty() {
        return false;
    }
    if !next.replicas.contains(&next.leader) {
        next.leader = next
            .replicas
            .iter()
            .copied()
            .find(|id| next.isr.contains(id) && usable(image, *id))
            .unwrap_or(-1);
        next.leader_epoch += 1;
    }
    true
}

/// The partition as it was before the reassignment under way (the joining
/// replicas out of the replica set and the ISR), or an error when no
/// replica from before is in sync (going back would take an unclean
/// election). The replicas keep the grown set's order, as Kafka's do: the
/// order from before is not recorded, so a replica the target put first
/// stays first.
fn reverted(
    image: &MetadataImage,
    p: &PartitionImage,
    name: &str,
    index: i32,
) -> Result<PartitionImage, ApiError> {
    let mut next = p.clone();
    if !set_replicas(image, &mut next, p.before_reassignment()) {
        return Err(invalid(format!(
            "Unable to revert partition assignment for {name}:{index} because it would require an unclean leader election."
        )));
    }
    next.adding.clear();
    next.removing.clear();
    Ok(next)
}

/// Completes the reassignment under way in `next` if it can be: every
/// joining replica is in the ISR, some target replica is, and (if the
/// leader is leaving) an in-sync target replica can lead. Otherwise leaves
/// it as it is.
pub(crate) fn complete_if_ready(image: &MetadataImage, next: &mut PartitionImage) {
    if !next.reassigning() || !next.adding.iter().all(|id| next.isr.contains(id)) {
        return;
    }
    // As a move's replacement, but only with a target replica to lead.
    let mut done = next.clone();
    if !set_replicas(image, &mut done, next.target()) || done.leader < 0 {
        return;
    }
    done.adding.clear();
    done.removing.clear();
    *next = done;
}

/// The change one partition's reassignment request makes, checked as
/// Kafka's controller checks it; `None` when it changes nothing (the
/// partition already has exactly these replicas and nothing is under way).
/// A new target replaces a reassignment under way, counted from the
/// replicas before it (the replicas without the joining ones); replicas
/// in sync stay in the ISR and the leader stays where the new replica set
/// keeps it. `allow_factor_change` false (KIP-860) refuses a target with
/// another number of replicas.
pub(crate) fn reassign(
    image: &MetadataImage,
    name: &str,
    index: i32,
    wanted: &Reassign,
    allow_factor_change: bool,
) -> Result<Option<MetaRecord>, ApiError> {
    let topic = image.topics.get(name).ok_or_else(|| {
        ApiError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("Unable to find a topic named {name}."),
        )
    })?;
    let topic_id = topic.topic_id;
    let p = usize::try_from(index)
        .ok()
        .and_then(|i| topic.partitions.get(i))
        .ok_or_else(|| {
            ApiError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("Unable to find partition {name}:{index}."),
            )
        })?;
    let target = match wanted {
        Reassign::Cancel => {
            if !p.reassigning() {
                return Err(ApiError::new(
                    ResponseError::NoReassignmentInProgress,
                    "No partition reassignment is in progress.",
                ));
            }
            let mut next = reverted(image, p, name, index)?;
            next.partition_epoch += 1;
            return Ok(Some(MetaRecord::partition(topic_id, index, &next)));
        }
        Reassign::To(target) => target,
    };
    if target.is_empty() {
        return Err(invalid(
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    // A list from the wire: one pass, whatever its length.
    let mut seen = BTreeSet::new();
    if let Some(again) = target.iter().find(|id| !seen.insert(**id)) {
        return Err(invalid(format!(
            "The manual partition assignment includes the broker {again} more than once."
        )));
    }
    let original = p.before_reassignment();
    if !allow_factor_change && target.len() != original.len() {
        return Err(ApiError::new(
            ResponseError::InvalidReplicationFactor,
            format!(
                "The replication factor is changed from {} to {} but allowReplicationFactorChange is false",
                original.len(),
                target.len()
            ),
        ));
    }
    // Registered is enough, as in Kafka: a fenced broker catches up when
    // it returns, and the reassignment waits for it.
    if let Some(unknown) = target.iter().find(|id| !image.brokers.contains_key(id)) {
        return Err(invalid(format!(
            "The manual partition assignment includes broker {unknown}, but no such broker is registered."
        )));
    }
    if !p.reassigning() && p.replicas == *target {
        return Ok(None);
    }
    let mut next = p.clone();
    next.adding = target
        .iter()
        .copied()
        .filter(|id| !original.contains(id))
        .collect();
    next.removing = original
        .iter()
        .copied()
        .filter(|id| !target.contains(id))
        .collect();
    let grown: Vec<i32> = target.iter().chain(&next.removing).copied().collect();
    // A replica the previous target added and this one drops leaves.
    if !set_replicas(image, &mut next, grown) {
        return Err(invalid(format!(
            "Unable to reassign partition {name}:{index}: no replica it keeps is in sync, so it would need an unclean leader election."
        )));
    }
    complete_if_ready(image, &mut next);
    next.partition_epoch += 1;
    Ok(Some(MetaRecord::partition(topic_id, index, &next)))
}

impl Broker {
    /// AlterPartitionReassignments: starts (or cancels) the reassignments
    /// asked for, by topic name and index, committed as one change through
    /// the controller; one result per partition.
    pub async fn alter_reassignments(
        &self,
        wanted: Vec<(String, i32, Reassign)>,
        allow_factor_change: bool,
    ) -> Result<Vec<PartitionOutcome>, ApiError> {
        super::check_partitions_named(wanted.len())?;
        self.control(|image| {
            let mut scratch = image.clone();
            let mut records = Vec::new();
            let mut results = Vec::with_capacity(wanted.len());
            for (name, index, ask) in &wanted {
                let result = reassign(&scratch, name, *index, ask, allow_factor_change);
                let result = result.map(|record| {
                    if let Some(record) = record {
                        scratch.apply(&record);
                        records.push(record);
                    }
                });
                results.push((name.clone(), *index, result));
            }
            Ok((records, results))
        })
        .await
    }

    /// ListPartitionReassignments: the reassignments under way, of the
    /// partitions named (`None`: all), in topic and partition order.
    pub fn list_reassignments(
        &self,
        partitions: Option<&[(String, i32)]>,
    ) -> Vec<OngoingReassignment> {
        let named: Option<BTreeSet<(&str, i32)>> =
            partitions.map(|list| list.iter().map(|(t, i)| (t.as_str(), *i)).collect());
        self.metadata.with_image(|image| {
            let mut out = Vec::new();
            for topic in image.topics.values() {
                for (index, p) in topic.partitions.iter().enumerate() {
                    let index = index as i32;
                    let named = named
                        .as_ref()
                        .is_none_or(|set| set.contains(&(topic.name.as_str(), index)));
                    if named && p.reassigning() {
                        out.push(OngoingReassignment {
                            topic: topic.name.clone(),
                            partition: index,
                            replicas: p.replicas.clone(),
                            adding: p.adding.clone(),
                            removing: p.removing.clone(),
                        });
                    }
                }
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::broker::elections::tests::image;

    fn on(replicas: &[i32], leader: i32, isr: &[i32]) -> PartitionImage {
        PartitionImage {
            leader,
            isr: isr.to_vec(),
            leader_epoch: 3,
            partition_epoch: 7,
            ..PartitionImage::new(replicas.to_vec())
        }
    }

    fn applied(image: &MetadataImage, record: Option<MetaRecord>) -> PartitionImage {
        let mut image = image.clone();
        image.apply(&record.expect("a change"));
        image.topics["t"].partitions[0].clone()
    }

    fn to(replicas: &[i32]) -> Reassign {
        Reassign::To(replicas.to_vec())
    }

    /// {1,2} to {2,3}: the set grows to the target then the leaving
    /// replica, and completes when 3 joins the ISR, with the leader (1,
    /// leaving) handing over to 2.
    #[test]
    fn a_move_grows_the_replica_set_then_completes_when_the_new_replica_is_in_sync() {
        let img = image(on(&[1, 2], 1, &[1, 2]), &[]);
        let grown = applied(&img, reassign(&img, "t", 0, &to(&[2, 3]), true).unwrap());
        assert_eq!(
            (&grown.replicas[..], &grown.adding[..], &grown.removing[..]),
            (&[2, 3, 1][..], &[3][..], &[1][..])
        );
        assert_eq!(
            (grown.leader, grown.leader_epoch, grown.partition_epoch),
            (1, 3, 8)
        );
        assert_eq!(grown.isr, [1, 2]);

        let img = image(grown.clone(), &[]);
        let mut caught_up = grown;
        caught_up.isr = vec![1, 2, 3];
        complete_if_ready(&img, &mut caught_up);
        assert_eq!(caught_up.replicas, [2, 3]);
        assert_eq!(caught_up.isr, [2, 3]);
        assert!(!caught_up.reassigning());
        assert_eq!((caught_up.leader, caught_up.leader_epoch), (2, 4));
    }

    /// Adding a replica (RF 2 to 3) waits for it; removing one completes
    /// at once when the rest are in sync, and the leader keeps its epoch.
    #[test]
    fn replication_factor_changes_both_ways() {
        let img = image(on(&[2, 3], 2, &[2, 3]), &[]);
        let grown = applied(&img, reassign(&img, "t", 0, &to(&[2, 3, 1]), true).unwrap());
        assert_eq!(
            (&grown.replicas[..], &grown.adding[..]),
            (&[2, 3, 1][..], &[1][..])
        );
        assert!(grown.removing.is_empty());

        let img = image(on(&[1, 2, 3], 1, &[1, 2, 3]), &[]);
        let shrunk = applied(&img, reassign(&img, "t", 0, &to(&[1, 2]), true).unwrap());
        assert_eq!(
            (&shrunk.replicas[..], &shrunk.isr[..]),
            (&[1, 2][..], &[1, 2][..])
        );
        assert!(!shrunk.reassigning());
        assert_eq!((shrunk.leader, shrunk.leader_epoch), (1, 3));
    }

    #[test]
    fn requests_are_checked_as_kafka_checks_them() {
        let code = |r: Result<Option<MetaRecord>, ApiError>| r.unwrap_err().error;
        let img = image(on(&[1, 2], 1, &[1, 2]), &[4]);
        for bad in [&[][..], &[1, 1], &[1, 7]] {
            assert_eq!(
                code(reassign(&img, "t", 0, &to(bad), true)),
                ResponseError::InvalidReplicaAssignment,
                "{bad:?}"
            );
        }
        assert_eq!(
            code(reassign(&img, "t", 0, &to(&[1, 2, 3]), false)),
            ResponseError::InvalidReplicationFactor
        );
        // A fenced broker may be a target: the reassignment waits for it.
        let waiting = applied(&img, reassign(&img, "t", 0, &to(&[1, 4]), false).unwrap());
        assert_eq!(
            (&waiting.adding[..], &waiting.removing[..]),
            (&[4][..], &[2][..])
        );
        assert_eq!(
            code(reassign(&img, "t", 0, &Reassign::Cancel, true)),
            ResponseError::NoReassignmentInProgress
        );
        assert_eq!(
            code(reassign(&img, "t", 3, &to(&[1]), true)),
            ResponseError::UnknownTopicOrPartition
        );
        // The same replicas: nothing to do. Another order: just the order.
        assert_eq!(reassign(&img, "t", 0, &to(&[1, 2]), false).unwrap(), None);
        let reordered = applied(&img, reassign(&img, "t", 0, &to(&[2, 1]), false).unwrap());
        assert_eq!(
            (&reordered.replicas[..], reordered.leader),
            (&[2, 1][..], 1)
        );
        assert!(!reordered.reassigning());
    }

    /// Cancelling goes back to the replicas before; a new target replaces
    /// the one under way, counted from them.
    #[test]
    fn a_reassignment_under_way_can_be_cancelled_or_replaced() {
        let img = image(on(&[1, 2], 1, &[1, 2]), &[]);
        let grown = applied(&img, reassign(&img, "t", 0, &to(&[2, 3]), true).unwrap());
        let img = image(grown, &[]);
        let back = applied(
            &img,
            reassign(&img, "t", 0, &Reassign::Cancel, true).unwrap(),
        );
        // The order is the grown set's, as in Kafka: 2 came first in the target.
        assert_eq!(
            (&back.replicas[..], &back.isr[..]),
            (&[2, 1][..], &[1, 2][..])
        );
        assert_eq!(back.leader, 1);
        assert!(!back.reassigning());
        let other = applied(&img, reassign(&img, "t", 0, &to(&[1, 4]), true).unwrap());
        assert_eq!(
            (&other.replicas[..], &other.adding[..], &other.removing[..]),
            (&[1, 4, 2][..], &[4][..], &[2][..])
        );
    }

    /// Sending a reassignment under way again keeps the replicas that
    /// caught up in the ISR and the leader where it is.
    #[test]
    fn resubmitting_a_reassignment_keeps_its_progress() {
        let mut grown = on(&[3, 4, 1, 2], 3, &[1, 2, 3]);
        grown.adding = vec![3, 4];
        grown.removing = vec![1, 2];
        let img = image(grown, &[]);
        let again = applied(&img, reassign(&img, "t", 0, &to(&[3, 4]), true).unwrap());
        assert_eq!(
            (&again.isr[..], again.leader, again.leader_epoch),
            (&[1, 2, 3][..], 3, 3)
        );
        assert_eq!(
            (&again.adding[..], &again.removing[..]),
            (&[3, 4][..], &[1, 2][..])
        );
        // A new target without 3: it leaves, and leadership moves to an
        // in-sync replica that stays.
        let moved = applied(&img, reassign(&img, "t", 0, &to(&[1, 4]), true).unwrap());
        assert_eq!(
            (&moved.replicas[..], &moved.isr[..]),
            (&[1, 4, 2][..], &[1, 2][..])
        );
        assert_eq!((moved.leader, moved.leader_epoch), (1, 4));
    }
}
