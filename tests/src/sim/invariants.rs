//! The invariants, checked against every running node as the simulation
//! steps: a node's applied image equals every
//! other node's at the same applied index (so committed metadata agrees
//! and the state machines never diverge); a committed proposal is in the
//! image of every node that applied its index (committed metadata is
//! never lost, across crashes that lose unsynced writes); and after the
//! heal every node converges.
//!
//! Not checked: one leader per term. openraft (in its default mode, the
//! one Vltava runs) orders leaders by (term, node id), so a node with a
//! higher id may take over within the same term; the seeds found it doing
//! so. What would make that unsafe, two leaders committing different
//! entries at one index, is what the image comparison catches.

use std::collections::BTreeMap;

use vltava_meta::ConfigResource;
use vltava_quorum::NodeId;

use super::Shared;

/// Violations found, by kind, with the first few described.
#[derive(Debug, Default)]
pub struct Violations {
    pub diverged: usize,
    pub lost: usize,
    pub applied_back: usize,
    pub not_converged: usize,
    pub examples: super::Examples,
}

impl Violations {
    pub fn is_empty(&self) -> bool {
        self.diverged + self.lost + self.applied_back + self.not_converged == 0
    }
}

impl std::fmt::Display for Violations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "diverged images {}, lost commits {}, applied index going back {}, not converged {}",
            self.diverged, self.lost, self.applied_back, self.not_converged
        )?;
        write!(f, "{}", self.examples)
    }
}

#[derive(Default)]
pub struct Checker {
    /// (term, node) of every leadership seen.
    leaderships: std::collections::BTreeSet<(u64, NodeId)>,
    /// The image digest at each applied index, and who reported it first.
    images: BTreeMap<u64, (u64, NodeId)>,
    /// Each running incarnation's last applied index.
    applied: BTreeMap<(NodeId, u32), u64>,
    pub violations: Violations,
}

impl Checker {
    pub fn leaderships(&self) -> usize {
        self.leaderships.len()
    }

    pub fn check(&mut self, shared: &mut Shared) {
        let mut new_leaders = Vec::new();
        for (&id, (start, quorum)) in &shared.quorums {
            if quorum.leader() == Some(id) && self.leaderships.insert((quorum.term(), id)) {
                new_leaders.push(format!(
                    "{:?} leader node {id} term {}",
                    shared.now,
                    quorum.term()
                ));
            }
            let (index, image_digest, missing) = quorum.with_image_at(|image, index| {
                let index = index.unwrap_or(0);
                let configs = image.configs_of(&ConfigResource::Broker(String::new()));
                let missing: Vec<(String, u64)> = shared
                    .acked
                    .iter()
                    .filter(|(name, at)| *at <= index && !configs.contains_key(name))
                    .cloned()
                    .collect();
                (index, super::image_digest(image), missing)
            });
            for (name, at) in missing {
                self.violations.lost += 1;
                self.violations.examples.note(format!(
                    "node {id} applied up to {index} without {name}, committed at {at}"
                ));
            }
            let first = *self.images.entry(index).or_insert((image_digest, id));
            if first.0 != image_digest {
                self.violations.diverged += 1;
                self.violations.examples.note(format!(
                    "at applied index {index} node {id}'s image differs from node {}'s",
                    first.1
                ));
            }
            let last = self.applied.entry((id, *start)).or_insert(index);
            if index < *last {
                self.violations.applied_back += 1;
                self.violations.examples.note(format!(
                    "node {id}'s applied index went from {last} back to {index}"
                ));
            }
            *last = index.max(*last);
        }
        shared.trace.extend(new_leaders);
    }

    /// After the settle period: every node runs and has applied at least
    /// everything committed before the heal.
    pub fn final_check(&mut self, shared: &Shared, ids: &[NodeId]) {
        let target = shared.converge_to;
        for id in ids {
            let Some((_, quorum)) = shared.quorums.get(id) else {
                self.violations.not_converged += 1;
                self.violations
                    .examples
                    .note(format!("node {id} is not running after the heal"));
                continue;
            };
            let index = quorum.with_image_at(|_, index| index.unwrap_or(0));
            if index < target {
                self.violations.not_converged += 1;
                self.violations.examples.note(format!(
                    "node {id} applied up to {index}, short of {target} committed before the heal"
                ));
            }
        }
    }
}
