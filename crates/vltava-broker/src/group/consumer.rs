//! KIP-848 consumer groups: the broker computes the assignment and each
//! member converges to it through its heartbeats.
//!
//! Epochs: the group epoch moves on every membership or subscription change;
//! the target assignment is recomputed when it is ahead of the assignment
//! epoch. A member first gives up partitions it must lose (they stay
//! "pending revocation" until its next heartbeat no longer reports them),
//! then takes the assignment epoch as its member epoch and receives the
//! partitions of its target that nobody else still holds (the rest follow
//! on later heartbeats, once released).

use std::collections::{BTreeMap, BTreeSet};

use super::assignor::{self, Assignment, MemberSpec};
use super::store::{ConsumerGroupValue, ConsumerMemberValue};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerState {
    Empty,
    /// The group epoch moved and the target assignment is being computed.
    Assigning,
    /// Some member does not own its target yet.
    Reconciling,
    Stable,
}

impl ConsumerState {
    pub fn name(&self) -> &'static str {
        match self {
            ConsumerState::Empty => "Empty",
            ConsumerState::Assigning => "Assigning",
            ConsumerState::Reconciling => "Reconciling",
            ConsumerState::Stable => "Stable",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    pub subscribed_topic_names: BTreeSet<String>,
    pub subscribed_topic_regex: Option<String>,
    /// What the member owns (or has been told to own).
    pub assigned: Assignment,
    /// What it has been told to give up and has not yet confirmed.
    pub pending_revocation: Assignment,
    pub revocation_deadline_ms: i64,
    pub last_heartbeat_ms: i64,
    /// The assignment last sent, to send only changes.
    pub last_sent: Option<Assignment>,
}

pub struct ConsumerGroup {
    pub group_id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: BTreeMap<String, Assignment>,
    /// Partition counts of the subscribed topics the target was computed
    /// from; when they change (a subscribed topic is created, deleted or
    /// grows) the group epoch moves, as in Java's subscription metadata.
    pub target_topics: BTreeMap<String, i32>,
    pub dirty: bool,
}

/// What a member reports in a heartbeat, already validated.
pub struct HeartbeatArgs {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    pub subscribed_topic_names: Option<BTreeSet<String>>,
    pub subscribed_topic_regex: Option<String>,
    /// Partitions the member says it owns (topic names), if it said.
    pub owned: Option<Assignment>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum HeartbeatError {
    UnknownMember,
    FencedEpoch,
    InvalidRequest(String),
}

pub struct HeartbeatOutcome {
    pub member_epoch: i32,
    /// `Some` when the member's assignment changed since it was last sent.
    pub assignment: Option<Assignment>,
}

fn remove_all(from: &mut Assignment, what: &Assignment) {
    for (topic, partitions) in what {
        if let Some(owned) = from.get_mut(topic) {
            owned.retain(|p| !partitions.contains(p));
            if owned.is_empty() {
                from.remove(topic);
            }
        }
    }
}

fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = a.clone();
    remove_all(&mut out, b);
    out
}

fn is_empty(a: &Assignment) -> bool {
    a.values().all(BTreeSet::is_empty)
}

impl ConsumerGroup {
    pub fn new(group_id: &str) -> ConsumerGroup {
        ConsumerGroup {
            group_id: group_id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            target_topics: BTreeMap::new(),
            dirty: false,
        }
    }

    pub fn state(&self) -> ConsumerState {
        if self.members.is_empty() {
            ConsumerState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerState::Assigning
        } else if self.members.values().any(|m| {
            let target = self.target.get(&m.member_id).cloned().unwrap_or_default();
            m.member_epoch != self.assignment_epoch
                || !is_empty(&m.pending_revocation)
                || !is_empty(&minus(&target, &m.assigned))
        }) {
            ConsumerState::Reconciling
        } else {
            ConsumerState::Stable
        }
    }

    pub fn assignor_name(&self) -> String {
        self.members
            .values()
            .find_map(|m| m.server_assignor.clone())
            .unwrap_or_else(|| assignor::UNIFORM.to_string())
    }

    pub fn subscribed_topics(&self, all_topics: &BTreeMap<String, i32>) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| subscribed(m, all_topics))
            .collect()
    }

    /// Handles one heartbeat. `all_topics` maps every topic to its
    /// partition count (for regex subscriptions and assignment).
    pub fn heartbeat(
        &mut self,
        args: HeartbeatArgs,
        all_topics: &BTreeMap<String, i32>,
        now_ms: i64,
    ) -> Result<HeartbeatOutcome, HeartbeatError> {
        match args.member_epoch {
            -1 | -2 => {
                if self.members.remove(&args.member_id).is_some() {
                    self.target.remove(&args.member_id);
                    self.bump();
                }
                return Ok(HeartbeatOutcome {
                    member_epoch: args.member_epoch,
                    assignment: None,
                });
            }
            0 => self.join(&args, now_ms)?,
            epoch => {
                let member = self
                    .members
                    .get(&args.member_id)
                    .ok_or(HeartbeatError::UnknownMember)?;
                if epoch != member.member_epoch {
                    return Err(HeartbeatError::FencedEpoch);
                }
            }
        }
        self.update_member(&args, now_ms);
        if self.group_epoch == self.assignment_epoch
            && self.subscribed_counts(all_topics) != self.target_topics
        {
            self.bump();
        }
        if self.group_epoch > self.assignment_epoch {
            self.compute_target(all_topics);
        }
        self.reconcile(&args.member_id, now_ms);
        let member = self
            .members
            .get_mut(&args.member_id)
            .expect("member present");
        let changed = member.last_sent.as_ref() != Some(&member.assigned);
        let assignment = changed.then(|| member.assigned.clone());
        if changed {
            member.last_sent = Some(member.assigned.clone());
        }
        Ok(HeartbeatOutcome {
            member_epoch: member.member_epoch,
            assignment,
        })
    }

    fn bump(&mut self) {
        self.group_epoch += 1;
        self.dirty = true;
    }

    fn join(&mut self, args: &HeartbeatArgs, now_ms: i64) -> Result<(), HeartbeatError> {
        if args.subscribed_topic_names.is_none() && args.subscribed_topic_regex.is_none() {
            return Err(HeartbeatError::InvalidRequest(
                "SubscribedTopicNames or SubscribedTopicRegex must be set in the first heartbeat"
                    .into(),
            ));
        }
        // A static member that restarts replaces its previous incarnation.
        if let Some(instance) = &args.instance_id {
            let previous: Vec<String> = self
                .members
                .values()
                .filter(|m| {
                    m.instance_id.as_ref() == Some(instance) && m.member_id != args.member_id
                })
                .map(|m| m.member_id.clone())
                .collect();
            for id in previous {
                if let Some(old) = self.members.remove(&id) {
                    if let Some(target) = self.target.remove(&id) {
                        self.target.insert(args.member_id.clone(), target);
                    }
                    self.members.insert(
                        args.member_id.clone(),
                        ConsumerMember {
                            member_id: args.member_id.clone(),
                            member_epoch: 0,
                            last_sent: None,
                            ..old
                        },
                    );
                    self.dirty = true;
                    return Ok(());
                }
            }
        }
        self.members.insert(
            args.member_id.clone(),
            ConsumerMember {
                member_id: args.member_id.clone(),
                instance_id: args.instance_id.clone(),
                rack_id: args.rack_id.clone(),
                client_id: args.client_id.clone(),
                client_host: args.client_host.clone(),
                member_epoch: 0,
                rebalance_timeout_ms: args.rebalance_timeout_ms,
                server_assignor: args.server_assignor.clone(),
                subscribed_topic_names: BTreeSet::new(),
                subscribed_topic_regex: None,
                assigned: Assignment::new(),
                pending_revocation: Assignment::new(),
                revocation_deadline_ms: 0,
                last_heartbeat_ms: now_ms,
                last_sent: None,
            },
        );
        Ok(())
    }

    /// Applies what the heartbeat reports; returns whether the group epoch
    /// moved (a subscription changed).
    fn update_member(&mut self, args: &HeartbeatArgs, now_ms: i64) -> bool {
        let mut changed = false;
        let member = self
            .members
            .get_mut(&args.member_id)
            .expect("member present");
        member.last_heartbeat_ms = now_ms;
        member.client_id = args.client_id.clone();
        member.client_host = args.client_host.clone();
        if args.rebalance_timeout_ms > 0 {
            member.rebalance_timeout_ms = args.rebalance_timeout_ms;
        }
        if args.rack_id.is_some() {
            member.rack_id = args.rack_id.clone();
        }
        if let Some(assignor) = &args.server_assignor {
            member.server_assignor = Some(assignor.clone());
        }
        if let Some(names) = &args.subscribed_topic_names {
            if *names != member.subscribed_topic_names {
                member.subscribed_topic_names = names.clone();
                changed = true;
            }
        }
        if args.subscribed_topic_regex.is_some()
            && args.subscribed_topic_regex != member.subscribed_topic_regex
        {
            member.subscribed_topic_regex = args.subscribed_topic_regex.clone();
            changed = true;
        }
        // A member that no longer reports partitions it was told to give up
        // has released them.
        if let Some(owned) = &args.owned {
            if !is_empty(&member.pending_revocation) {
                let still_held = member.pending_revocation.iter().any(|(t, ps)| {
                    owned
                        .get(t)
                        .is_some_and(|o| ps.iter().any(|p| o.contains(p)))
                });
                if !still_held {
                    member.pending_revocation.clear();
                }
            }
        }
        if changed {
            self.bump();
        }
        changed
    }

    /// Partition count of every existing topic some member subscribes to.
    fn subscribed_counts(&self, all_topics: &BTreeMap<String, i32>) -> BTreeMap<String, i32> {
        let wanted: BTreeSet<String> = self
            .members
            .values()
            .flat_map(|m| subscribed(m, all_topics))
            .collect();
        all_topics
            .iter()
            .filter(|(t, _)| wanted.contains(*t))
            .map(|(t, n)| (t.clone(), *n))
            .collect()
    }

    /// Recomputes every member's target from the current subscriptions.
    pub fn compute_target(&mut self, all_topics: &BTreeMap<String, i32>) {
        let subscriptions: BTreeMap<String, BTreeSet<String>> = self
            .members
            .values()
            .map(|m| (m.member_id.clone(), subscribed(m, all_topics)))
            .collect();
        let specs: BTreeMap<String, MemberSpec> = self
            .members
            .values()
            .map(|m| {
                (
                    m.member_id.clone(),
                    MemberSpec {
                        subscribed: &subscriptions[&m.member_id],
                        current: &m.assigned,
                    },
                )
            })
            .collect();
        let counts = self.subscribed_counts(all_topics);
        self.target = assignor::assign(&self.assignor_name(), &specs, &counts);
        self.target_topics = counts;
        self.assignment_epoch = self.group_epoch;
        self.dirty = true;
    }

    /// Moves one member toward its target: revoke first, then assign what
    /// no other member still holds.
    fn reconcile(&mut self, member_id: &str, now_ms: i64) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let held_by_others: Assignment = self
            .members
            .values()
            .filter(|m| m.member_id != member_id)
            .flat_map(|m| m.assigned.iter().chain(m.pending_revocation.iter()))
            .fold(Assignment::new(), |mut acc, (t, ps)| {
                acc.entry(t.clone()).or_default().extend(ps.iter().copied());
                acc
            });
        let assignment_epoch = self.assignment_epoch;
        let member = self.members.get_mut(member_id).expect("member present");
        if !is_empty(&member.pending_revocation) {
            return;
        }
        let to_revoke = minus(&member.assigned, &target);
        if !is_empty(&to_revoke) {
            remove_all(&mut member.assigned, &to_revoke);
            member.pending_revocation = to_revoke;
            member.revocation_deadline_ms = now_ms + i64::from(member.rebalance_timeout_ms);
            return;
        }
        let free = minus(&minus(&target, &member.assigned), &held_by_others);
        for (topic, partitions) in free {
            member.assigned.entry(topic).or_default().extend(partitions);
        }
        member.assigned.retain(|_, ps| !ps.is_empty());
        // Nothing left to revoke: the member is at the target epoch, even if
        // some target partitions are still being released by others.
        if member.member_epoch != assignment_epoch {
            member.member_epoch = assignment_epoch;
            self.dirty = true;
        }
    }

    /// Session and revocation timeouts. Returns whether anything changed.
    pub fn tick(&mut self, session_timeout_ms: i64, now_ms: i64) -> bool {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                now_ms - m.last_heartbeat_ms > session_timeout_ms
                    || (!is_empty(&m.pending_revocation) && now_ms > m.revocation_deadline_ms)
            })
            .map(|m| m.member_id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = %self.group_id, member = %id, "consumer group member expired");
            self.members.remove(id);
            self.target.remove(id);
        }
        if !expired.is_empty() {
            self.bump();
        }
        !expired.is_empty()
    }

    pub fn to_value(&self) -> ConsumerGroupValue {
        ConsumerGroupValue {
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            members: self
                .members
                .values()
                .map(|m| ConsumerMemberValue {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    member_epoch: m.member_epoch,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    server_assignor: m.server_assignor.clone(),
                    subscribed_topic_names: m.subscribed_topic_names.iter().cloned().collect(),
                    subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                    assigned: m
                        .assigned
                        .iter()
                        .map(|(t, ps)| (t.clone(), ps.iter().copied().collect()))
                        .collect(),
                })
                .collect(),
        }
    }

    /// Rebuilds a group after a restart. Targets are recomputed on the next
    /// heartbeat (the assignment epoch is set behind the group epoch).
    pub fn from_value(group_id: &str, value: ConsumerGroupValue, now_ms: i64) -> ConsumerGroup {
        let members = value
            .members
            .into_iter()
            .map(|m| {
                let member = ConsumerMember {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id,
                    rack_id: m.rack_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    member_epoch: m.member_epoch,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    server_assignor: m.server_assignor,
                    subscribed_topic_names: m.subscribed_topic_names.into_iter().collect(),
                    subscribed_topic_regex: m.subscribed_topic_regex,
                    assigned: m
                        .assigned
                        .into_iter()
                        .map(|(t, ps)| (t, ps.into_iter().collect()))
                        .collect(),
                    pending_revocation: Assignment::new(),
                    revocation_deadline_ms: 0,
                    last_heartbeat_ms: now_ms,
                    last_sent: None,
                };
                (m.member_id, member)
            })
            .collect();
        ConsumerGroup {
            group_id: group_id.to_string(),
            group_epoch: value.group_epoch.max(value.assignment_epoch) + 1,
            assignment_epoch: value.assignment_epoch,
            members,
            target: BTreeMap::new(),
            target_topics: BTreeMap::new(),
            dirty: false,
        }
    }
}

/// Topics a member subscribes to that exist, by name or regex.
fn subscribed(member: &ConsumerMember, all_topics: &BTreeMap<String, i32>) -> BTreeSet<String> {
    let mut topics: BTreeSet<String> = member
        .subscribed_topic_names
        .iter()
        .filter(|t| all_topics.contains_key(*t))
        .cloned()
        .collect();
    if let Some(pattern) = &member.subscribed_topic_regex {
        if let Ok(re) = regex::Regex::new(&format!("^(?:{pattern})$")) {
            topics.extend(
                all_topics
                    .keys()
                    .filter(|t| !t.starts_with("__") && re.is_match(t))
                    .cloned(),
            );
        }
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(member: &str, epoch: i32, owned: Option<Assignment>) -> HeartbeatArgs {
        HeartbeatArgs {
            member_id: member.into(),
            member_epoch: epoch,
            instance_id: None,
            rack_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            rebalance_timeout_ms: 30_000,
            server_assignor: None,
            subscribed_topic_names: Some(BTreeSet::from(["t".to_string()])),
            subscribed_topic_regex: None,
            owned,
        }
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    #[test]
    fn second_member_gets_partitions_only_after_the_first_releases_them() {
        let topics = BTreeMap::from([("t".to_string(), 4)]);
        let mut group = ConsumerGroup::new("g");
        let a = group.heartbeat(args("a", 0, None), &topics, 0).unwrap();
        assert_eq!(count(a.assignment.as_ref().unwrap()), 4);
        assert_eq!(a.member_epoch, 1);
        assert_eq!(group.state(), ConsumerState::Stable);

        let b = group.heartbeat(args("b", 0, None), &topics, 1).unwrap();
        assert_eq!(count(&b.assignment.unwrap()), 0, "a still holds everything");
        assert_eq!(b.member_epoch, 2);
        assert_eq!(group.state(), ConsumerState::Reconciling);

        let a_all = group.members["a"].assigned.clone();
        let a2 = group
            .heartbeat(args("a", 1, Some(a_all)), &topics, 2)
            .unwrap();
        let kept = a2.assignment.unwrap();
        assert_eq!(count(&kept), 2, "a is told to keep two");
        // a confirms the revocation by reporting only what it kept.
        let a3 = group
            .heartbeat(args("a", 1, Some(kept.clone())), &topics, 3)
            .unwrap();
        assert_eq!(a3.member_epoch, 2);
        let b2 = group
            .heartbeat(args("b", 2, Some(Assignment::new())), &topics, 4)
            .unwrap();
        assert_eq!(count(&b2.assignment.unwrap()), 2);
        assert_eq!(b2.member_epoch, 2);
        assert_eq!(group.state(), ConsumerState::Stable);
    }

    #[test]
    fn a_subscribed_topic_that_appears_or_grows_moves_the_group_epoch() {
        let mut group = ConsumerGroup::new("g");
        let none = BTreeMap::new();
        let a = group.heartbeat(args("a", 0, None), &none, 0).unwrap();
        assert_eq!(
            (a.member_epoch, a.assignment.map(|x| count(&x))),
            (1, Some(0))
        );

        // "t" is created: the next heartbeat gets a new epoch and its partitions.
        let two = BTreeMap::from([("t".to_string(), 2)]);
        let a = group
            .heartbeat(args("a", 1, Some(Assignment::new())), &two, 1)
            .unwrap();
        assert_eq!(a.member_epoch, 2);
        assert_eq!(count(&a.assignment.unwrap()), 2);

        // "t" grows to three partitions.
        let three = BTreeMap::from([("t".to_string(), 3)]);
        let owned = group.members["a"].assigned.clone();
        let a = group
            .heartbeat(args("a", 2, Some(owned)), &three, 2)
            .unwrap();
        assert_eq!(a.member_epoch, 3);
        assert_eq!(count(&a.assignment.unwrap()), 3);

        // Nothing changed: same epoch, nothing sent.
        let owned = group.members["a"].assigned.clone();
        let a = group
            .heartbeat(args("a", 3, Some(owned)), &three, 3)
            .unwrap();
        assert_eq!((a.member_epoch, a.assignment), (3, None));
    }

    #[test]
    fn stale_epochs_are_fenced_and_sessions_expire() {
        let topics = BTreeMap::from([("t".to_string(), 2)]);
        let mut group = ConsumerGroup::new("g");
        group.heartbeat(args("a", 0, None), &topics, 0).unwrap();
        assert_eq!(
            group.heartbeat(args("a", 7, None), &topics, 1).err(),
            Some(HeartbeatError::FencedEpoch)
        );
        assert_eq!(
            group.heartbeat(args("zz", 3, None), &topics, 1).err(),
            Some(HeartbeatError::UnknownMember)
        );
        assert!(!group.tick(45_000, 40_000));
        assert!(group.tick(45_000, 46_000));
        assert_eq!(group.state(), ConsumerState::Empty);
    }
}
