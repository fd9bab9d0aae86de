//! The classic group protocol (JoinGroup / SyncGroup / Heartbeat /
//! LeaveGroup) as a state machine over explicit states.
//!
//! Responses that must wait for other members (a join until the rebalance
//! completes, a follower's sync until the leader's) are parked as oneshot
//! senders in the member and completed by a later transition.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;
use uuid::Uuid;
use vltava_protocol::ResponseError;

use super::store::{ClassicGroupValue, ClassicMemberValue};
use super::{GroupSettings, Reply};

/// The classic group lifecycle. Deadlines live in the state they belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassicState {
    /// No members; the group may still hold committed offsets.
    Empty,
    /// Waiting for members to (re)join, until all have or `deadline_ms`.
    /// Completion is not earlier than `not_before_ms` (the initial delay
    /// that lets a starting group gather its members).
    PreparingRebalance {
        deadline_ms: i64,
        not_before_ms: i64,
    },
    /// Joined; waiting for the leader's assignment until `deadline_ms`.
    CompletingRebalance {
        deadline_ms: i64,
    },
    Stable,
}

impl ClassicState {
    pub fn name(&self) -> &'static str {
        match self {
            ClassicState::Empty => "Empty",
            ClassicState::PreparingRebalance { .. } => "PreparingRebalance",
            ClassicState::CompletingRebalance { .. } => "CompletingRebalance",
            ClassicState::Stable => "Stable",
        }
    }
}

pub struct ClassicMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    last_heartbeat_ms: i64,
    pending_join: Option<oneshot::Sender<JoinGroupResponse>>,
    pending_sync: Option<oneshot::Sender<SyncGroupResponse>>,
}

impl ClassicMember {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// What a JoinGroup asks for.
pub struct JoinArgs {
    pub version: i16,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
}

pub struct SyncArgs {
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

pub struct ClassicGroup {
    pub group_id: String,
    pub state: ClassicState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// In join order: the first member becomes leader when one is needed.
    pub members: Vec<ClassicMember>,
    /// KIP-394: member ids handed out with MEMBER_ID_REQUIRED, until their
    /// deadline.
    pending_members: HashMap<String, i64>,
    /// True when a change must be written to `__consumer_offsets`.
    pub dirty: bool,
    /// SyncGroup answers the leader's assignment produced, held until that
    /// assignment is written (`release_syncs`), as Kafka's coordinator does.
    synced: Vec<(oneshot::Sender<SyncGroupResponse>, SyncGroupResponse)>,
}

fn error_join(error: ResponseError, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(error.code())
        .with_generation_id(-1)
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_leader(StrBytes::default())
}

fn error_sync(error: ResponseError) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(error.code())
}

impl ClassicGroup {
    pub fn new(group_id: &str) -> ClassicGroup {
        ClassicGroup {
            group_id: group_id.to_string(),
            state: ClassicState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: Vec::new(),
            pending_members: HashMap::new(),
            dirty: false,
            synced: Vec::new(),
        }
    }

    pub fn member(&self, member_id: &str) -> Option<&ClassicMember> {
        self.members.iter().find(|m| m.member_id == member_id)
    }

    fn member_mut(&mut self, member_id: &str) -> Option<&mut ClassicMember> {
        self.members.iter_mut().find(|m| m.member_id == member_id)
    }

    fn static_member_id(&self, instance_id: &str) -> Option<String> {
        self.members
            .iter()
            .find(|m| m.group_instance_id.as_deref() == Some(instance_id))
            .map(|m| m.member_id.clone())
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Protocols every member supports.
    fn candidate_protocols(&self) -> BTreeSet<String> {
        let mut iter = self.members.iter();
        let Some(first) = iter.next() else {
            return BTreeSet::new();
        };
        let mut set: BTreeSet<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in iter {
            let theirs: BTreeSet<String> = m.protocols.iter().map(|(n, _)| n.clone()).collect();
            set = set.intersection(&theirs).cloned().collect();
        }
        set
    }

    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocols.is_empty() || protocol_type.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        let candidates = self.candidate_protocols();
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(n, _)| candidates.contains(n))
    }

    /// Each member votes for its most preferred candidate; most votes wins,
    /// ties go to the first member's preference.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: Vec<(String, usize)> = Vec::new();
        for m in &self.members {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                match votes.iter_mut().find(|(n, _)| n == name) {
                    Some(v) => v.1 += 1,
                    None => votes.push((name.clone(), 1)),
                }
            }
        }
        let best = votes.iter().map(|(_, c)| *c).max()?;
        votes.into_iter().find(|(_, c)| *c == best).map(|(n, _)| n)
    }

    pub fn join(
        &mut self,
        args: JoinArgs,
        settings: &GroupSettings,
        now_ms: i64,
    ) -> Reply<JoinGroupResponse> {
        if args.session_timeout_ms < settings.min_session_timeout_ms
            || args.session_timeout_ms > settings.max_session_timeout_ms
        {
            return Reply::Now(error_join(
                ResponseError::InvalidSessionTimeout,
                &args.member_id,
            ));
        }
        if !self.supports(&args.protocol_type, &args.protocols) {
            return Reply::Now(error_join(
                ResponseError::InconsistentGroupProtocol,
                &args.member_id,
            ));
        }
        if args.member_id.is_empty() {
            return self.join_unknown(args, settings, now_ms);
        }
        if self.pending_members.remove(&args.member_id).is_some() {
            return self.add_and_rebalance(args, settings, now_ms);
        }
        if let Some(instance) = &args.group_instance_id {
            if self
                .static_member_id(instance)
                .is_some_and(|id| id != args.member_id)
            {
                return Reply::Now(error_join(ResponseError::FencedInstanceId, &args.member_id));
            }
        }
        let Some(member) = self.member(&args.member_id) else {
            return Reply::Now(error_join(ResponseError::UnknownMemberId, &args.member_id));
        };
        let unchanged = member.protocols == args.protocols;
        let is_leader = self.leader.as_deref() == Some(args.member_id.as_str());
        match self.state {
            ClassicState::Stable if unchanged && !is_leader => {
                self.touch(&args, now_ms);
                Reply::Now(self.join_response(&args.member_id, false))
            }
            ClassicState::CompletingRebalance { .. } if unchanged => {
                self.touch(&args, now_ms);
                Reply::Now(self.join_response(&args.member_id, is_leader))
            }
            ClassicState::Empty => {
                Reply::Now(error_join(ResponseError::UnknownMemberId, &args.member_id))
            }
            _ => {
                let rx = self.park_join(args, settings, now_ms);
                Reply::Later(rx)
            }
        }
    }

    fn join_unknown(
        &mut self,
        args: JoinArgs,
        settings: &GroupSettings,
        now_ms: i64,
    ) -> Reply<JoinGroupResponse> {
        let prefix = args
            .group_instance_id
            .clone()
            .unwrap_or_else(|| args.client_id.clone());
        let new_id = format!("{prefix}-{}", Uuid::new_v4());
        if let Some(instance) = args.group_instance_id.clone() {
            if let Some(old_id) = self.static_member_id(&instance) {
                return self.replace_static_member(&old_id, new_id, args, settings, now_ms);
            }
            return self.add_and_rebalance(
                JoinArgs {
                    member_id: new_id,
                    ..args
                },
                settings,
                now_ms,
            );
        }
        if args.version >= 4 {
            self.pending_members
                .insert(new_id.clone(), now_ms + i64::from(args.session_timeout_ms));
            return Reply::Now(error_join(ResponseError::MemberIdRequired, &new_id));
        }
        self.add_and_rebalance(
            JoinArgs {
                member_id: new_id,
                ..args
            },
            settings,
            now_ms,
        )
    }

    /// KIP-345: a static member restarting gets a new member id and, if
    /// nothing it subscribes to changed, keeps its assignment without a
    /// rebalance. The old incarnation is fenced.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: String,
        args: JoinArgs,
        settings: &GroupSettings,
        now_ms: i64,
    ) -> Reply<JoinGroupResponse> {
        let member = self.member_mut(old_id).expect("static member present");
        if let Some(tx) = member.pending_join.take() {
            let _ = tx.send(error_join(ResponseError::FencedInstanceId, old_id));
        }
        if let Some(tx) = member.pending_sync.take() {
            let _ = tx.send(error_sync(ResponseError::FencedInstanceId));
        }
        let unchanged = member.protocols == args.protocols;
        member.member_id = new_id.clone();
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        self.dirty = true;
        let args = JoinArgs {
            member_id: new_id.clone(),
            ..args
        };
        if self.state == ClassicState::Stable && unchanged {
            self.touch(&args, now_ms);
            let is_leader = self.leader.as_deref() == Some(new_id.as_str());
            let mut response = self.join_response(&new_id, is_leader && args.version >= 9);
            // The leader already assigned this generation; it must not redo it.
            response.skip_assignment = is_leader && args.version >= 9;
            return Reply::Now(response);
        }
        Reply::Later(self.park_join(args, settings, now_ms))
    }

    fn add_and_rebalance(
        &mut self,
        args: JoinArgs,
        settings: &GroupSettings,
        now_ms: i64,
    ) -> Reply<JoinGroupResponse> {
        if self.members.len() >= settings.max_size {
            return Reply::Now(error_join(
                ResponseError::GroupMaxSizeReached,
                &args.member_id,
            ));
        }
        if self.members.is_empty() {
            self.protocol_type = Some(args.protocol_type.clone());
        }
        self.members.push(ClassicMember {
            member_id: args.member_id.clone(),
            group_instance_id: args.group_instance_id.clone(),
            client_id: args.client_id.clone(),
            client_host: args.client_host.clone(),
            session_timeout_ms: args.session_timeout_ms,
            rebalance_timeout_ms: args.rebalance_timeout_ms,
            protocols: args.protocols.clone(),
            assignment: Bytes::new(),
            last_heartbeat_ms: now_ms,
            pending_join: None,
            pending_sync: None,
        });
        Reply::Later(self.park_join(args, settings, now_ms))
    }

    fn touch(&mut self, args: &JoinArgs, now_ms: i64) {
        if let Some(m) = self.member_mut(&args.member_id) {
            m.session_timeout_ms = args.session_timeout_ms;
            m.rebalance_timeout_ms = args.rebalance_timeout_ms;
            m.client_id = args.client_id.clone();
            m.client_host = args.client_host.clone();
            m.last_heartbeat_ms = now_ms;
        }
    }

    /// Records the member's protocols, parks its response, and starts (or
    /// continues) a rebalance.
    fn park_join(
        &mut self,
        args: JoinArgs,
        settings: &GroupSettings,
        now_ms: i64,
    ) -> oneshot::Receiver<JoinGroupResponse> {
        let (tx, rx) = oneshot::channel();
        self.touch(&args, now_ms);
        let member = self.member_mut(&args.member_id).expect("member present");
        member.protocols = args.protocols;
        if let Some(old) = member.pending_join.replace(tx) {
            let _ = old.send(error_join(ResponseError::UnknownMemberId, &args.member_id));
        }
        if !matches!(self.state, ClassicState::PreparingRebalance { .. }) {
            self.prepare_rebalance(settings, now_ms);
        } else if let ClassicState::PreparingRebalance {
            deadline_ms,
            not_before_ms,
        } = self.state
        {
            // New arrivals during the initial delay extend it, up to the deadline.
            if not_before_ms > now_ms {
                let extended = (now_ms + settings.initial_rebalance_delay_ms).min(deadline_ms);
                self.state = ClassicState::PreparingRebalance {
                    deadline_ms,
                    not_before_ms: extended,
                };
            }
        }
        self.maybe_complete_join(now_ms);
        rx
    }

    fn prepare_rebalance(&mut self, settings: &GroupSettings, now_ms: i64) {
        if matches!(self.state, ClassicState::CompletingRebalance { .. }) {
            for m in &mut self.members {
                if let Some(tx) = m.pending_sync.take() {
                    let _ = tx.send(error_sync(ResponseError::RebalanceInProgress));
                }
            }
        }
        let delay = if self.state == ClassicState::Empty {
            settings.initial_rebalance_delay_ms
        } else {
            0
        };
        let timeout = self
            .members
            .iter()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0);
        self.state = ClassicState::PreparingRebalance {
            deadline_ms: now_ms + timeout,
            not_before_ms: now_ms + delay.min(timeout),
        };
        tracing::info!(group = %self.group_id, generation = self.generation,
            members = self.members.len(), rebalance_timeout_ms = timeout,
            "preparing to rebalance");
    }

    fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.iter().all(|m| m.pending_join.is_some())
    }

    fn maybe_complete_join(&mut self, now_ms: i64) {
        if let ClassicState::PreparingRebalance {
            deadline_ms,
            not_before_ms,
        } = self.state
        {
            if (self.all_joined() && now_ms >= not_before_ms) || now_ms >= deadline_ms {
                self.complete_join(now_ms);
            }
        }
    }

    /// Ends the join phase: members that did not rejoin are dropped, a new
    /// generation starts, and every joined member gets its response.
    fn complete_join(&mut self, now_ms: i64) {
        self.members.retain(|m| m.pending_join.is_some());
        self.generation += 1;
        self.dirty = true;
        if self.members.is_empty() {
            self.state = ClassicState::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = self.select_protocol();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| self.member(l).is_none())
        {
            self.leader = Some(self.members[0].member_id.clone());
        }
        let timeout = self
            .members
            .iter()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0);
        self.state = ClassicState::CompletingRebalance {
            deadline_ms: now_ms + timeout,
        };
        tracing::info!(group = %self.group_id, generation = self.generation,
            members = self.members.len(), protocol = ?self.protocol, leader = ?self.leader,
            "join phase complete; waiting for the leader's assignment");
        let leader = self.leader.clone();
        let responses: Vec<(usize, JoinGroupResponse)> = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                (
                    i,
                    self.join_response(&m.member_id, leader.as_deref() == Some(&m.member_id)),
                )
            })
            .collect();
        for (i, response) in responses {
            let m = &mut self.members[i];
            m.last_heartbeat_ms = now_ms;
            m.assignment = Bytes::new();
            if let Some(tx) = m.pending_join.take() {
                let _ = tx.send(response);
            }
        }
    }

    fn join_response(&self, member_id: &str, with_members: bool) -> JoinGroupResponse {
        let protocol = self.protocol.clone().unwrap_or_default();
        let members = if with_members {
            self.members
                .iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(m.member_id.clone()))
                        .with_group_instance_id(
                            m.group_instance_id.clone().map(StrBytes::from_string),
                        )
                        .with_metadata(m.metadata_for(&protocol))
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinGroupResponse::default()
            .with_generation_id(self.generation)
            .with_protocol_type(self.protocol_type.clone().map(StrBytes::from_string))
            .with_protocol_name(self.protocol.clone().map(StrBytes::from_string))
            .with_leader(StrBytes::from_string(
                self.leader.clone().unwrap_or_default(),
            ))
            .with_member_id(StrBytes::from_string(member_id.to_string()))
            .with_members(members)
    }

    /// Checks the member identity shared by sync, heartbeat and commit.
    pub fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        if let Some(instance) = instance_id {
            if let Some(known) = self.static_member_id(instance) {
                if known != member_id {
                    return Err(ResponseError::FencedInstanceId);
                }
            }
        }
        if self.member(member_id).is_none() {
            return Err(ResponseError::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    pub fn sync(&mut self, args: SyncArgs, now_ms: i64) -> Reply<SyncGroupResponse> {
        if let Err(e) = self.check_member(
            &args.member_id,
            args.group_instance_id.as_deref(),
            args.generation_id,
        ) {
            return Reply::Now(error_sync(e));
        }
        let type_mismatch = args
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref());
        let name_mismatch = args
            .protocol_name
            .as_ref()
            .is_some_and(|n| Some(n) != self.protocol.as_ref());
        if type_mismatch || name_mismatch {
            return Reply::Now(error_sync(ResponseError::InconsistentGroupProtocol));
        }
        let state = self.state;
        let member = self.member_mut(&args.member_id).expect("checked");
        member.last_heartbeat_ms = now_ms;
        match state {
            ClassicState::Empty => Reply::Now(error_sync(ResponseError::UnknownMemberId)),
            ClassicState::PreparingRebalance { .. } => {
                Reply::Now(error_sync(ResponseError::RebalanceInProgress))
            }
            ClassicState::Stable => Reply::Now(self.sync_response(&args.member_id)),
            ClassicState::CompletingRebalance { .. } => {
                let (tx, rx) = oneshot::channel();
                member.pending_sync = Some(tx);
                if self.leader.as_deref() == Some(args.member_id.as_str()) {
                    for m in &mut self.members {
                        m.assignment = args
                            .assignments
                            .iter()
                            .find(|(id, _)| *id == m.member_id)
                            .map(|(_, a)| a.clone())
                            .unwrap_or_default();
                    }
                    self.state = ClassicState::Stable;
                    self.dirty = true;
                    let sizes: Vec<usize> =
                        self.members.iter().map(|m| m.assignment.len()).collect();
                    tracing::info!(group = %self.group_id, generation = self.generation,
                        members = self.members.len(), assignment_bytes = ?sizes, "group stable");
                    let responses: Vec<SyncGroupResponse> = self
                        .members
                        .iter()
                        .map(|m| self.sync_response(&m.member_id))
                        .collect();
                    for (m, response) in self.members.iter_mut().zip(responses) {
                        if let Some(tx) = m.pending_sync.take() {
                            self.synced.push((tx, response));
                        }
                    }
                }
                Reply::Later(rx)
            }
        }
    }

    /// Sends the SyncGroup answers held since the leader's assignment: as
    /// they are once it is written, or all with `error` if the write failed
    /// (the members sync again).
    pub fn release_syncs(&mut self, error: Option<ResponseError>) {
        for (tx, response) in self.synced.drain(..) {
            let response = match error {
                Some(e) => error_sync(e),
                None => response,
            };
            let _ = tx.send(response);
        }
    }

    fn sync_response(&self, member_id: &str) -> SyncGroupResponse {
        SyncGroupResponse::default()
            .with_protocol_type(self.protocol_type.clone().map(StrBytes::from_string))
            .with_protocol_name(self.protocol.clone().map(StrBytes::from_string))
            .with_assignment(
                self.member(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default(),
            )
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        if self.state == ClassicState::Empty {
            return Err(ResponseError::UnknownMemberId);
        }
        self.check_member(member_id, instance_id, generation)?;
        self.member_mut(member_id)
            .expect("checked")
            .last_heartbeat_ms = now_ms;
        match self.state {
            ClassicState::PreparingRebalance { .. } => Err(ResponseError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// Removes a member (LeaveGroup). Returns the error for that member.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        settings: &GroupSettings,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        let member_id = match (member_id, instance_id) {
            ("", Some(instance)) => self
                .static_member_id(instance)
                .ok_or(ResponseError::UnknownMemberId)?,
            (id, Some(instance)) => {
                if self
                    .static_member_id(instance)
                    .is_some_and(|known| known != id)
                {
                    return Err(ResponseError::FencedInstanceId);
                }
                id.to_string()
            }
            (id, None) => id.to_string(),
        };
        if self.pending_members.remove(&member_id).is_some() {
            self.maybe_complete_join(now_ms);
            return Ok(());
        }
        if self.member(&member_id).is_none() {
            return Err(ResponseError::UnknownMemberId);
        }
        tracing::info!(group = %self.group_id, member = %member_id, "member left");
        self.remove_member(&member_id, settings, now_ms);
        Ok(())
    }

    fn remove_member(&mut self, member_id: &str, settings: &GroupSettings, now_ms: i64) {
        let Some(index) = self.members.iter().position(|m| m.member_id == member_id) else {
            return;
        };
        let mut member = self.members.remove(index);
        if let Some(tx) = member.pending_join.take() {
            let _ = tx.send(error_join(ResponseError::UnknownMemberId, member_id));
        }
        if let Some(tx) = member.pending_sync.take() {
            let _ = tx.send(error_sync(ResponseError::UnknownMemberId));
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
        self.dirty = true;
        match self.state {
            ClassicState::Stable | ClassicState::CompletingRebalance { .. } => {
                self.prepare_rebalance(settings, now_ms)
            }
            _ => {}
        }
        self.maybe_complete_join(now_ms);
        if self.members.is_empty() && !matches!(self.state, ClassicState::PreparingRebalance { .. })
        {
            self.state = ClassicState::Empty;
        }
    }

    /// Timers: session expiry, KIP-394 pending members, rebalance and sync
    /// deadlines.
    pub fn tick(&mut self, settings: &GroupSettings, now_ms: i64) {
        self.pending_members
            .retain(|_, deadline| *deadline > now_ms);
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.pending_join.is_none() && m.pending_sync.is_none())
            .filter(|m| now_ms - m.last_heartbeat_ms > i64::from(m.session_timeout_ms))
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.group_id, member = %id, "member session expired");
            self.remove_member(&id, settings, now_ms);
        }
        match self.state {
            ClassicState::PreparingRebalance { .. } => self.maybe_complete_join(now_ms),
            ClassicState::CompletingRebalance { deadline_ms } if now_ms >= deadline_ms => {
                // The leader never sent its assignment: drop whoever did not
                // sync and try again.
                let silent: Vec<String> = self
                    .members
                    .iter()
                    .filter(|m| m.pending_sync.is_none())
                    .map(|m| m.member_id.clone())
                    .collect();
                for id in silent {
                    self.remove_member(&id, settings, now_ms);
                }
                if matches!(self.state, ClassicState::CompletingRebalance { .. }) {
                    self.prepare_rebalance(settings, now_ms);
                }
            }
            _ => {}
        }
    }

    /// Topics the members subscribe to, for the consumer protocol (used to
    /// refuse OffsetDelete on subscribed topics).
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return BTreeSet::new();
        }
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .iter()
            .flat_map(|m| parse_subscription_topics(&m.metadata_for(&protocol)))
            .collect()
    }

    pub fn to_value(&self) -> ClassicGroupValue {
        ClassicGroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            members: self
                .members
                .iter()
                .map(|m| ClassicMemberValue {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols: m
                        .protocols
                        .iter()
                        .map(|(n, b)| (n.clone(), b.to_vec()))
                        .collect(),
                    assignment: m.assignment.to_vec(),
                })
                .collect(),
        }
    }

    /// Rebuilds a group from its stored value. A group that had members is
    /// loaded Stable; members that do not heartbeat expire as usual.
    pub fn from_value(group_id: &str, value: ClassicGroupValue, now_ms: i64) -> ClassicGroup {
        let members: Vec<ClassicMember> = value
            .members
            .into_iter()
            .map(|m| ClassicMember {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols: m
                    .protocols
                    .into_iter()
                    .map(|(n, b)| (n, Bytes::from(b)))
                    .collect(),
                assignment: Bytes::from(m.assignment),
                last_heartbeat_ms: now_ms,
                pending_join: None,
                pending_sync: None,
            })
            .collect();
        let state = if members.is_empty() {
            ClassicState::Empty
        } else {
            ClassicState::Stable
        };
        ClassicGroup {
            group_id: group_id.to_string(),
            state,
            generation: value.generation,
            protocol_type: (!value.protocol_type.is_empty()).then_some(value.protocol_type),
            protocol: value.protocol,
            leader: value.leader,
            members,
            pending_members: HashMap::new(),
            dirty: false,
            synced: Vec::new(),
        }
    }
}

/// Topic names of a `ConsumerProtocolSubscription` (version i16, then an
/// array of i16-length strings); anything unparsable yields no topics.
pub fn parse_subscription_topics(metadata: &[u8]) -> Vec<String> {
    use bytes::Buf;
    let mut buf = metadata;
    if buf.remaining() < 6 {
        return Vec::new();
    }
    let _version = buf.get_i16();
    let count = buf.get_i32();
    let mut topics = Vec::new();
    for _ in 0..count.max(0) {
        if buf.remaining() < 2 {
            break;
        }
        let Ok(len) = usize::try_from(buf.get_i16()) else {
            break;
        };
        if buf.remaining() < len {
            break;
        }
        topics.push(String::from_utf8_lossy(&buf[..len]).to_string());
        buf.advance(len);
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> GroupSettings {
        GroupSettings {
            min_session_timeout_ms: 1000,
            max_session_timeout_ms: 60_000,
            initial_rebalance_delay_ms: 100,
            max_size: 100,
            offsets_partitions: 50,
            offsets_segment_bytes: 1 << 20,
            offsets_replication_factor: 1,
            offset_metadata_max_bytes: 4096,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5000,
        }
    }

    fn join_args(member_id: &str, instance: Option<&str>) -> JoinArgs {
        JoinArgs {
            version: 9,
            member_id: member_id.into(),
            group_instance_id: instance.map(str::to_string),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
        }
    }

    fn now<T>(reply: Reply<T>) -> T {
        match reply {
            Reply::Now(t) => t,
            Reply::Later(_) => panic!("expected an immediate reply"),
        }
    }

    fn later<T>(reply: Reply<T>) -> oneshot::Receiver<T> {
        match reply {
            Reply::Later(rx) => rx,
            Reply::Now(_) => panic!("expected a parked reply"),
        }
    }

    /// Joins `n` members through the KIP-394 two-step join; returns their ids
    /// and the parked join receivers.
    fn join_members(
        group: &mut ClassicGroup,
        n: usize,
        t: i64,
    ) -> (Vec<String>, Vec<oneshot::Receiver<JoinGroupResponse>>) {
        let s = settings();
        let mut ids = Vec::new();
        let mut rxs = Vec::new();
        for _ in 0..n {
            let first = now(group.join(join_args("", None), &s, t));
            assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
            let id = first.member_id.to_string();
            rxs.push(later(group.join(join_args(&id, None), &s, t)));
            ids.push(id);
        }
        // The initial delay gathers everyone into the first generation.
        assert!(matches!(
            group.state,
            ClassicState::PreparingRebalance { .. }
        ));
        group.tick(&s, t + 100);
        (ids, rxs)
    }

    #[test]
    fn three_members_join_sync_and_get_their_assignments() {
        let s = settings();
        let mut group = ClassicGroup::new("g");
        let (ids, mut joins) = join_members(&mut group, 3, 0);
        assert_eq!(group.state.name(), "CompletingRebalance");
        let responses: Vec<JoinGroupResponse> =
            joins.iter_mut().map(|rx| rx.try_recv().unwrap()).collect();
        assert!(responses
            .iter()
            .all(|r| r.generation_id == 1 && r.error_code == 0));
        assert_eq!(responses[0].leader.as_str(), ids[0]);
        assert_eq!(
            responses[0].members.len(),
            3,
            "the leader sees every member"
        );
        assert!(responses[1].members.is_empty());

        let sync = |id: &str, assignments: Vec<(String, Bytes)>| SyncArgs {
            generation_id: 1,
            member_id: id.into(),
            group_instance_id: None,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments,
        };
        let mut follower = later(group.sync(sync(&ids[1], vec![]), 1));
        assert!(follower.try_recv().is_err(), "waits for the leader");
        let assignments = ids
            .iter()
            .map(|id| (id.clone(), Bytes::from(format!("a-{id}"))))
            .collect();
        let mut leader = later(group.sync(sync(&ids[0], assignments), 2));
        assert_eq!(group.state, ClassicState::Stable);
        assert!(follower.try_recv().is_err(), "answered before the write");
        group.release_syncs(None);
        assert_eq!(
            follower.try_recv().unwrap().assignment,
            Bytes::from(format!("a-{}", ids[1]))
        );
        assert_eq!(
            leader.try_recv().unwrap().assignment,
            Bytes::from(format!("a-{}", ids[0]))
        );
        // A late follower in Stable gets its assignment at once.
        let third = now(group.sync(sync(&ids[2], vec![]), 3));
        assert_eq!(third.assignment, Bytes::from(format!("a-{}", ids[2])));
        assert_eq!(group.heartbeat(&ids[2], None, 1, 4), Ok(()));
        assert_eq!(
            group.heartbeat(&ids[2], None, 0, 4),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            group.heartbeat("nobody", None, 1, 4),
            Err(ResponseError::UnknownMemberId)
        );
        let _ = s;
    }

    #[test]
    fn a_silent_member_expires_and_the_rest_rebalance() {
        let s = settings();
        let mut group = ClassicGroup::new("g");
        let (ids, _joins) = join_members(&mut group, 2, 0);
        for id in &ids {
            let _ = group.sync(
                SyncArgs {
                    generation_id: 1,
                    member_id: id.clone(),
                    group_instance_id: None,
                    protocol_type: None,
                    protocol_name: None,
                    assignments: vec![],
                },
                0,
            );
        }
        assert_eq!(group.state, ClassicState::Stable);
        // Member 0 keeps heartbeating; member 1 goes silent past its 10 s session.
        assert_eq!(group.heartbeat(&ids[0], None, 1, 9_000), Ok(()));
        group.tick(&s, 10_500);
        assert_eq!(group.members.len(), 1);
        assert!(matches!(
            group.state,
            ClassicState::PreparingRebalance { .. }
        ));
        assert_eq!(
            group.heartbeat(&ids[0], None, 1, 10_600),
            Err(ResponseError::RebalanceInProgress)
        );
        let mut rejoin = later(group.join(join_args(&ids[0], None), &s, 10_700));
        let response = rejoin.try_recv().unwrap();
        assert_eq!(response.generation_id, 2);
        assert_eq!(response.members.len(), 1);
    }

    #[test]
    fn a_static_member_restarting_in_a_stable_group_causes_no_rebalance() {
        let s = settings();
        let mut group = ClassicGroup::new("g");
        let mut first = later(group.join(join_args("", Some("instance-a")), &s, 0));
        group.tick(&s, 100);
        let old_id = first.try_recv().unwrap().member_id.to_string();
        let _ = group.sync(
            SyncArgs {
                generation_id: 1,
                member_id: old_id.clone(),
                group_instance_id: Some("instance-a".into()),
                protocol_type: None,
                protocol_name: None,
                assignments: vec![(old_id.clone(), Bytes::from_static(b"p0"))],
            },
            1,
        );
        assert_eq!(group.state, ClassicState::Stable);
        // The process restarts: same instance id, no member id.
        let rejoined = now(group.join(join_args("", Some("instance-a")), &s, 5));
        assert_eq!(rejoined.error_code, 0);
        assert_eq!(rejoined.generation_id, 1, "no new generation");
        assert_eq!(group.state, ClassicState::Stable);
        let new_id = rejoined.member_id.to_string();
        assert_ne!(new_id, old_id);
        assert_eq!(
            group.heartbeat(&old_id, Some("instance-a"), 1, 6),
            Err(ResponseError::FencedInstanceId)
        );
        assert_eq!(
            group.member(&new_id).unwrap().assignment,
            Bytes::from_static(b"p0")
        );
    }

    #[test]
    fn session_timeouts_outside_the_broker_range_are_refused() {
        let s = settings();
        let mut group = ClassicGroup::new("g");
        let mut args = join_args("", None);
        args.session_timeout_ms = 500;
        assert_eq!(
            now(group.join(args, &s, 0)).error_code,
            ResponseError::InvalidSessionTimeout.code()
        );
    }

    #[test]
    fn subscription_topics_parse() {
        let mut m = vec![0u8, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c'];
        assert_eq!(
            parse_subscription_topics(&m),
            vec!["a".to_string(), "bc".to_string()]
        );
        m.truncate(9);
        assert_eq!(parse_subscription_topics(&m), vec!["a".to_string()]);
        assert!(parse_subscription_topics(&[1]).is_empty());
    }
}
