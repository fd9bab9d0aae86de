//! Consumer-group membership with the classic protocol (FindCoordinator,
//! JoinGroup, SyncGroup, Heartbeat, LeaveGroup), the `range` assignor, and
//! committed offsets (OffsetCommit / OffsetFetch), as the Java consumer
//! speaks them. Subscriptions and assignments are encoded with the
//! `ConsumerProtocolSubscription` / `ConsumerProtocolAssignment` schemas, so
//! Java, librdkafka and this client can share a group.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTp;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, FindCoordinatorRequest, GroupId,
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest,
    SyncGroupRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use tracing::debug;

use crate::client::{str_bytes, topic_name, Client, Node};
use crate::consumer::TopicPartition;
use crate::error::{codes, Error, KafkaError};

/// The protocol type consumer groups register under.
pub const PROTOCOL_TYPE: &str = "consumer";
/// The one assignor this client implements.
pub const RANGE_ASSIGNOR: &str = "range";

/// Group settings, named after the Java consumer's.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.id`.
    pub group_id: String,
    /// `session.timeout.ms`.
    pub session_timeout: Duration,
    /// `max.poll.interval.ms`, sent as the rebalance timeout. Kept below the
    /// request timeout because JoinGroup may block that long.
    pub rebalance_timeout: Duration,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
}

impl GroupConfig {
    pub fn new(group_id: &str) -> GroupConfig {
        GroupConfig {
            group_id: group_id.to_string(),
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(20),
            heartbeat_interval: Duration::from_secs(3),
        }
    }
}

fn group_id(g: &str) -> GroupId {
    GroupId(str_bytes(g))
}

/// The broker that coordinates `group`, retried while the coordinator is
/// loading or not yet available.
pub async fn find_coordinator(client: &Client, group: &str) -> Result<i32, Error> {
    let mut attempt = 0;
    loop {
        let response = client
            .send(Node::Any, |version| {
                if version >= 4 {
                    FindCoordinatorRequest::default().with_coordinator_keys(vec![str_bytes(group)])
                } else {
                    FindCoordinatorRequest::default().with_key(str_bytes(group))
                }
            })
            .await?;
        let (code, message, node) = match response.coordinators.first() {
            Some(c) => (c.error_code, c.error_message.clone(), c.node_id.0),
            None => (
                response.error_code,
                response.error_message.clone(),
                response.node_id.0,
            ),
        };
        match KafkaError::from_code(code, message.as_deref()) {
            None => {
                if !client.cluster().brokers.contains_key(&node) {
                    client.metadata(Some(&[]), false).await?;
                }
                return Ok(node);
            }
            Some(e) if is_coordinator_error(code) && attempt < client.config().retries => {
                debug!(group, error = %e, "coordinator not ready");
                attempt += 1;
                tokio::time::sleep(client.config().retry_backoff).await;
            }
            Some(e) => return Err(Error::Kafka(e)),
        }
    }
}

/// Errors after which the coordinator must be looked up again.
pub fn is_coordinator_error(code: i16) -> bool {
    matches!(
        code,
        codes::COORDINATOR_NOT_AVAILABLE
            | codes::NOT_COORDINATOR
            | codes::COORDINATOR_LOAD_IN_PROGRESS
    )
}

/// Committed offsets of `group` (all its partitions with `None`). Partitions
/// without a committed offset are left out.
pub async fn fetch_offsets(
    client: &Client,
    coordinator: i32,
    group: &str,
    partitions: Option<&[TopicPartition]>,
) -> Result<BTreeMap<TopicPartition, i64>, Error> {
    let topics = partitions.map(|tps| {
        crate::admin::by_topic(tps)
            .into_iter()
            .map(|(t, ps)| {
                OffsetFetchRequestTopic::default()
                    .with_name(topic_name(t))
                    .with_partition_indexes(ps)
            })
            .collect::<Vec<_>>()
    });
    let response = client
        .send(Node::Broker(coordinator), |_| {
            OffsetFetchRequest::default()
                .with_group_id(group_id(group))
                .with_topics(topics)
        })
        .await?;
    KafkaError::check(response.error_code, None)?;
    let mut out = BTreeMap::new();
    for t in &response.topics {
        for p in &t.partitions {
            KafkaError::check(p.error_code, None)?;
            if p.committed_offset >= 0 {
                out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
            }
        }
    }
    Ok(out)
}

/// Commits `offsets` for `group` as generation `generation_id` of member
/// `member_id` (-1 and "" for a commit from outside the group, which the
/// coordinator accepts only while the group is empty).
pub async fn commit_offsets(
    client: &Client,
    coordinator: i32,
    group: &str,
    generation_id: i32,
    member_id: &str,
    offsets: &BTreeMap<TopicPartition, i64>,
) -> Result<(), Error> {
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), offset) in offsets {
        by_topic.entry(t).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*offset)
                .with_committed_metadata(Some(str_bytes(""))),
        );
    }
    let response = client
        .send(Node::Broker(coordinator), |_| {
            OffsetCommitRequest::default()
                .with_group_id(group_id(group))
                .with_generation_id_or_member_epoch(generation_id)
                .with_member_id(str_bytes(member_id))
                .with_topics(
                    by_topic
                        .iter()
                        .map(|(t, ps)| {
                            OffsetCommitRequestTopic::default()
                                .with_name(topic_name(t))
                                .with_partitions(ps.clone())
                        })
                        .collect(),
                )
        })
        .await?;
    for t in &response.topics {
        for p in &t.partitions {
            KafkaError::check(p.error_code, None)?;
        }
    }
    Ok(())
}

/// Encodes a subscription the way the Java consumer does: an `i16` schema
/// version, then the body at that version.
pub fn encode_subscription(topics: &[String]) -> Bytes {
    let sub = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| str_bytes(t)).collect());
    encode_versioned(&sub, 0)
}

/// Decodes a subscription of any version; `None` if the bytes are not one.
pub fn decode_subscription(bytes: &Bytes) -> Option<ConsumerProtocolSubscription> {
    decode_versioned(bytes, 3)
}

pub fn encode_assignment(partitions: &[TopicPartition]) -> Bytes {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                AssignedTp::default()
                    .with_topic(topic_name(t))
                    .with_partitions(ps)
            })
            .collect(),
    );
    encode_versioned(&assignment, 0)
}

/// The partitions of an assignment; empty bytes mean no partitions.
pub fn decode_assignment(bytes: &Bytes) -> Option<Vec<TopicPartition>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let a: ConsumerProtocolAssignment = decode_versioned(bytes, 3)?;
    let mut out: Vec<TopicPartition> = a
        .assigned_partitions
        .iter()
        .flat_map(|tp| {
            tp.partitions
                .iter()
                .map(move |p| (tp.topic.to_string(), *p))
        })
        .collect();
    out.sort();
    Some(out)
}

fn encode_versioned<M: Encodable>(message: &M, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    message
        .encode(&mut buf, version)
        .expect("a v0 consumer protocol message always encodes");
    buf.freeze()
}

fn decode_versioned<M: Decodable>(bytes: &Bytes, max_version: i16) -> Option<M> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return None;
    }
    // Newer versions only append fields, so a reader decodes them at the
    // newest version it knows, as Kafka's ConsumerProtocol does.
    let version = buf.get_i16().min(max_version);
    if version < 0 {
        return None;
    }
    M::decode(&mut buf, version).ok()
}

/// The `range` assignor: per topic, members subscribed to it sorted by
/// member id, each given a contiguous range; the first `partitions %
/// members` members get one extra.
pub fn range_assign(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut out: BTreeMap<String, Vec<TopicPartition>> = subscriptions
        .keys()
        .map(|m| (m.clone(), Vec::new()))
        .collect();
    let topics: BTreeSet<&String> = subscriptions.values().flatten().collect();
    for topic in topics {
        let Some(&count) = partition_counts.get(topic) else {
            continue;
        };
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, ts)| ts.contains(topic))
            .map(|(m, _)| m)
            .collect();
        let per = count / members.len() as i32;
        let extra = count % members.len() as i32;
        for (i, member) in members.iter().enumerate() {
            let i = i as i32;
            let start = i * per + i.min(extra);
            let len = per + i32::from(i < extra);
            let list = out.get_mut(*member).expect("every member has an entry");
            list.extend((start..start + len).map(|p| (topic.clone(), p)));
        }
    }
    out
}

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// Not due yet, or answered without error.
    Fine,
    /// The group is rebalancing (or forgot us): call [`GroupMember::join`].
    Rejoin,
}

/// One member of a consumer group.
pub struct GroupMember {
    client: Client,
    config: GroupConfig,
    topics: Vec<String>,
    coordinator: Option<i32>,
    member_id: String,
    generation_id: i32,
    assignment: Vec<TopicPartition>,
    last_heartbeat: Instant,
    /// The first JoinGroup (sent without a member id), run as its own task:
    /// the broker answers it with a member id it then holds as a pending
    /// member for a session timeout. If the join is abandoned (a signal
    /// while joining), the task still learns that id, so `leave` can end
    /// the pending member instead of leaving it to delay the next
    /// rebalance.
    first_join: Option<FirstJoin>,
}

struct FirstJoin {
    task: tokio::task::JoinHandle<()>,
    member_id: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl GroupMember {
    pub fn new(client: Client, config: GroupConfig, topics: Vec<String>) -> GroupMember {
        GroupMember {
            client,
            config,
            topics,
            coordinator: None,
            member_id: String::new(),
            generation_id: -1,
            assignment: Vec::new(),
            last_heartbeat: Instant::now(),
            first_join: None,
        }
    }

    pub fn group_id(&self) -> &str {
        &self.config.group_id
    }
    /// The topics the next join subscribes to.
    pub fn set_topics(&mut self, topics: Vec<String>) {
        self.topics = topics;
    }
    pub fn member_id(&self) -> &str {
        &self.member_id
    }
    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }
    pub fn assignment(&self) -> &[TopicPartition] {
        &self.assignment
    }

    async fn coordinator(&mut self) -> Result<i32, Error> {
        if let Some(c) = self.coordinator {
            return Ok(c);
        }
        let c = find_coordinator(&self.client, &self.config.group_id).await?;
        self.coordinator = Some(c);
        Ok(c)
    }

    /// Joins (or rejoins) the group and returns this member's assignment.
    pub async fn join(&mut self) -> Result<Vec<TopicPartition>, Error> {
        let mut attempt = 0;
        loop {
            match self.join_once().await {
                Ok(assignment) => {
                    self.assignment = assignment.clone();
                    self.last_heartbeat = Instant::now();
                    return Ok(assignment);
                }
                Err(e) => {
                    let code = e.kafka().map_or(0, |k| k.code);
                    let retry = match code {
                        codes::MEMBER_ID_REQUIRED | codes::REBALANCE_IN_PROGRESS => true,
                        codes::UNKNOWN_MEMBER_ID | codes::ILLEGAL_GENERATION => {
                            self.member_id.clear();
                            self.generation_id = -1;
                            true
                        }
                        c if is_coordinator_error(c) => {
                            self.coordinator = None;
                            true
                        }
                        _ => e.is_transport(),
                    };
                    if !retry || attempt >= self.client.config().retries {
                        return Err(e);
                    }
                    if code != codes::MEMBER_ID_REQUIRED {
                        attempt += 1;
                        tokio::time::sleep(self.client.config().retry_backoff).await;
                    }
                    if e.is_transport() {
                        self.coordinator = None;
                    }
                }
            }
        }
    }

    async fn join_once(&mut self) -> Result<Vec<TopicPartition>, Error> {
        let coordinator = self.coordinator().await?;
        let metadata = encode_subscription(&self.topics);
        let config = self.config.clone();
        let member_id = self.member_id.clone();
        let send = {
            let (client, config, member_id) =
                (self.client.clone(), config.clone(), member_id.clone());
            async move {
                client
                    .send(Node::Broker(coordinator), |_| {
                        JoinGroupRequest::default()
                            .with_group_id(group_id(&config.group_id))
                            .with_session_timeout_ms(config.session_timeout.as_millis() as i32)
                            .with_rebalance_timeout_ms(config.rebalance_timeout.as_millis() as i32)
                            .with_member_id(str_bytes(&member_id))
                            .with_protocol_type(str_bytes(PROTOCOL_TYPE))
                            .with_protocols(vec![JoinGroupRequestProtocol::default()
                                .with_name(str_bytes(RANGE_ASSIGNOR))
                                .with_metadata(metadata.clone())])
                    })
                    .await
            }
        };
        let join = if member_id.is_empty() {
            let learned = std::sync::Arc::new(std::sync::Mutex::new(None));
            let (tx, rx) = tokio::sync::oneshot::channel();
            let slot = learned.clone();
            let task = tokio::spawn(async move {
                let result = send.await;
                if let Ok(r) = &result {
                    if !r.member_id.is_empty() {
                        *slot.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(r.member_id.to_string());
                    }
                }
                let _ = tx.send(result);
            });
            self.first_join = Some(FirstJoin {
                task,
                member_id: learned,
            });
            let result = rx
                .await
                .map_err(|_| Error::Invalid("the JoinGroup task stopped".into()))?;
            // Answered here: the member id is handled below as usual.
            self.first_join = None;
            result?
        } else {
            send.await?
        };
        if join.error_code == codes::MEMBER_ID_REQUIRED {
            self.member_id = join.member_id.to_string();
        }
        KafkaError::check(join.error_code, None)?;
        self.member_id = join.member_id.to_string();
        self.generation_id = join.generation_id;
        debug!(group = %self.config.group_id, member = %self.member_id, generation = self.generation_id, leader = %join.leader, "joined");
        let assignments = if join.leader == join.member_id {
            self.assign(&join.members).await?
        } else {
            Vec::new()
        };
        let protocol_name = join.protocol_name.clone();
        let (generation, member) = (self.generation_id, self.member_id.clone());
        let sync = self
            .client
            .send(Node::Broker(coordinator), |version| {
                let mut r = SyncGroupRequest::default()
                    .with_group_id(group_id(&config.group_id))
                    .with_generation_id(generation)
                    .with_member_id(str_bytes(&member))
                    .with_assignments(assignments.clone());
                if version >= 5 {
                    r = r
                        .with_protocol_type(Some(str_bytes(PROTOCOL_TYPE)))
                        .with_protocol_name(protocol_name.clone());
                }
                r
            })
            .await?;
        KafkaError::check(sync.error_code, None)?;
        decode_assignment(&sync.assignment)
            .ok_or_else(|| Error::Invalid("the group leader sent an undecodable assignment".into()))
    }

    /// As leader: range-assigns every member's subscription.
    async fn assign(
        &self,
        members: &[kafka_protocol::messages::join_group_response::JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>, Error> {
        let mut subscriptions = BTreeMap::new();
        for m in members {
            let topics = decode_subscription(&m.metadata)
                .map(|s| s.topics.iter().map(|t| t.to_string()).collect())
                .unwrap_or_default();
            subscriptions.insert(m.member_id.to_string(), topics);
        }
        let all: BTreeSet<String> = subscriptions.values().flatten().cloned().collect();
        let mut counts = BTreeMap::new();
        for topic in all {
            match self.client.topic(&topic, false).await {
                Ok(info) => {
                    counts.insert(topic, info.partitions.len() as i32);
                }
                Err(e) => debug!(topic, error = %e, "subscribed topic has no metadata"),
            }
        }
        Ok(range_assign(&subscriptions, &counts)
            .into_iter()
            .map(|(member, tps)| {
                SyncGroupRequestAssignment::default()
                    .with_member_id(str_bytes(&member))
                    .with_assignment(encode_assignment(&tps))
            })
            .collect())
    }

    /// Sends a heartbeat if `heartbeat.interval.ms` has passed.
    pub async fn heartbeat_if_due(&mut self) -> Result<Heartbeat, Error> {
        if self.last_heartbeat.elapsed() < self.config.heartbeat_interval {
            return Ok(Heartbeat::Fine);
        }
        let coordinator = self.coordinator().await?;
        let (group, generation, member) = (
            self.config.group_id.clone(),
            self.generation_id,
            self.member_id.clone(),
        );
        let response = self
            .client
            .send(Node::Broker(coordinator), |_| {
                HeartbeatRequest::default()
                    .with_group_id(group_id(&group))
                    .with_generation_id(generation)
                    .with_member_id(str_bytes(&member))
            })
            .await;
        self.last_heartbeat = Instant::now();
        let code = match response {
            Ok(r) => r.error_code,
            Err(e) if e.is_transport() => {
                self.coordinator = None;
                return Ok(Heartbeat::Fine);
            }
            Err(e) => return Err(e),
        };
        match code {
            0 => Ok(Heartbeat::Fine),
            codes::REBALANCE_IN_PROGRESS => Ok(Heartbeat::Rejoin),
            codes::UNKNOWN_MEMBER_ID | codes::ILLEGAL_GENERATION | codes::FENCED_INSTANCE_ID => {
                self.member_id.clear();
                self.generation_id = -1;
                Ok(Heartbeat::Rejoin)
            }
            c if is_coordinator_error(c) => {
                self.coordinator = None;
                Ok(Heartbeat::Rejoin)
            }
            c => Err(KafkaError::check(c, None).unwrap_err()),
        }
    }

    /// Commits `offsets` (the next offsets to read) as this member.
    pub async fn commit(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<(), Error> {
        if offsets.is_empty() {
            return Ok(());
        }
        let coordinator = self.coordinator().await?;
        commit_offsets(
            &self.client,
            coordinator,
            &self.config.group_id,
            self.generation_id,
            &self.member_id,
            offsets,
        )
        .await
    }

    /// The group's committed offsets for `partitions`.
    pub async fn committed(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, Error> {
        let coordinator = self.coordinator().await?;
        fetch_offsets(
            &self.client,
            coordinator,
            &self.config.group_id,
            Some(partitions),
        )
        .await
    }

    /// Leaves the group so the others rebalance at once.
    pub async fn leave(&mut self) -> Result<(), Error> {
        if self.member_id.is_empty() {
            // A first JoinGroup abandoned in flight: its answer names the
            // pending member the broker holds (the caller bounds the wait).
            if let Some(first) = self.first_join.take() {
                let _ = first.task.await;
                let learned = first
                    .member_id
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                if let Some(id) = learned {
                    self.member_id = id;
                }
            }
        }
        if self.member_id.is_empty() {
            return Ok(());
        }
        let coordinator = self.coordinator().await?;
        let (group, member) = (self.config.group_id.clone(), self.member_id.clone());
        let response = self
            .client
            .send(Node::Broker(coordinator), |version| {
                let r = LeaveGroupRequest::default().with_group_id(group_id(&group));
                if version >= 3 {
                    r.with_members(vec![
                        MemberIdentity::default().with_member_id(str_bytes(&member))
                    ])
                } else {
                    r.with_member_id(str_bytes(&member))
                }
            })
            .await?;
        self.member_id.clear();
        self.generation_id = -1;
        KafkaError::check(response.error_code, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    mod abandoned_join {
        //! A member whose first JoinGroup is abandoned in flight (a signal
        //! while joining) still leaves: against an in-test broker that
        //! answers that JoinGroup with MEMBER_ID_REQUIRED only after
        //! [`SLOW_JOIN`] and records LeaveGroup's member ids.

        use std::sync::{Arc, Mutex};

        use kafka_protocol::messages::find_coordinator_response::Coordinator;
        use kafka_protocol::messages::{
            ApiKey, BrokerId, FindCoordinatorResponse, JoinGroupResponse, LeaveGroupRequest,
            LeaveGroupResponse,
        };
        use tokio::sync::Notify;

        use super::*;
        use crate::test_broker::{self, Received};
        use crate::ClientConfig;

        const SLOW_JOIN: Duration = Duration::from_millis(300);
        const PENDING_ID: &str = "pending-member-1";

        /// `joined` is notified when a JoinGroup arrives.
        async fn broker(left: Arc<Mutex<Vec<String>>>, joined: Arc<Notify>) -> String {
            let answer = move |r: Received| {
                let (left, joined) = (left.clone(), joined.clone());
                async move { answer(r, &left, &joined).await }
            };
            test_broker::start(answer).await.0
        }

        async fn answer(r: Received, left: &Mutex<Vec<String>>, joined: &Notify) -> Bytes {
            let host = str_bytes("127.0.0.1");
            let port = i32::from(r.port);
            match r.key {
                ApiKey::ApiVersions => r.reply(test_broker::api_versions(&[
                    (ApiKey::ApiVersions, 0, 3),
                    (ApiKey::Metadata, 1, 12),
                    (ApiKey::FindCoordinator, 1, 4),
                    (ApiKey::JoinGroup, 4, 9),
                    (ApiKey::LeaveGroup, 3, 5),
                ])),
                ApiKey::Metadata => r.reply(test_broker::metadata(r.port)),
                ApiKey::FindCoordinator if r.version >= 4 => {
                    r.reply(FindCoordinatorResponse::default().with_coordinators(vec![
                        Coordinator::default()
                            .with_key(str_bytes("g"))
                            .with_node_id(BrokerId(1))
                            .with_host(host)
                            .with_port(port),
                    ]))
                }
                ApiKey::FindCoordinator => r.reply(
                    FindCoordinatorResponse::default()
                        .with_node_id(BrokerId(1))
                        .with_host(host)
                        .with_port(port),
                ),
                ApiKey::JoinGroup => {
                    joined.notify_one();
                    tokio::time::sleep(SLOW_JOIN).await;
                    r.reply(
                        JoinGroupResponse::default()
                            .with_error_code(codes::MEMBER_ID_REQUIRED)
                            .with_member_id(str_bytes(PENDING_ID)),
                    )
                }
                ApiKey::LeaveGroup => {
                    let request: LeaveGroupRequest = r.decode();
                    let mut ids = left.lock().unwrap();
                    ids.extend(request.members.iter().map(|m| m.member_id.to_string()));
                    if !request.member_id.is_empty() {
                        ids.push(request.member_id.to_string());
                    }
                    r.reply(LeaveGroupResponse::default())
                }
                other => panic!("this broker does not answer {other:?}"),
            }
        }

        #[tokio::test]
        async fn an_abandoned_first_join_still_leaves_its_pending_member() {
            let left = Arc::new(Mutex::new(Vec::new()));
            let joined = Arc::new(Notify::new());
            let addr = broker(left.clone(), joined.clone()).await;
            let client = Client::connect(ClientConfig::new(&addr)).await.unwrap();
            let mut member = GroupMember::new(client, GroupConfig::new("g"), vec!["t".into()]);
            // The join is abandoned once its first JoinGroup reached the
            // broker, which holds the answer.
            tokio::select! {
                _ = member.join() => panic!("the join finished while its JoinGroup was held"),
                _ = joined.notified() => {}
            }
            assert_eq!(member.member_id(), "");
            // Leaving waits for that JoinGroup's answer and leaves its member.
            member.leave().await.unwrap();
            assert_eq!(*left.lock().unwrap(), [PENDING_ID.to_string()]);
            assert_eq!(member.member_id(), "");
        }

        #[tokio::test]
        async fn a_member_that_never_joined_sends_nothing() {
            let left = Arc::new(Mutex::new(Vec::new()));
            let addr = broker(left.clone(), Arc::new(Notify::new())).await;
            let client = Client::connect(ClientConfig::new(&addr)).await.unwrap();
            let mut member = GroupMember::new(client, GroupConfig::new("g"), vec!["t".into()]);
            member.leave().await.unwrap();
            assert!(left.lock().unwrap().is_empty());
        }
    }

    #[test]
    fn range_gives_the_first_members_the_extra_partitions() {
        let subs: BTreeMap<String, Vec<String>> = [
            ("a".to_string(), vec!["t".to_string()]),
            ("b".to_string(), vec!["t".to_string()]),
        ]
        .into_iter()
        .collect();
        let counts = [("t".to_string(), 3)].into_iter().collect();
        let out = range_assign(&subs, &counts);
        assert_eq!(out["a"], vec![("t".to_string(), 0), ("t".to_string(), 1)]);
        assert_eq!(out["b"], vec![("t".to_string(), 2)]);
    }

    #[test]
    fn subscription_and_assignment_round_trip() {
        let sub = decode_subscription(&encode_subscription(&["x".into(), "y".into()])).unwrap();
        assert_eq!(sub.topics, vec![str_bytes("x"), str_bytes("y")]);
        let tps = vec![
            ("x".to_string(), 2),
            ("x".to_string(), 0),
            ("y".to_string(), 1),
        ];
        let mut sorted = tps.clone();
        sorted.sort();
        assert_eq!(decode_assignment(&encode_assignment(&tps)).unwrap(), sorted);
    }
}
