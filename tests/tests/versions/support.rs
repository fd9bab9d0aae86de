//! What the cases share: names, error codes, checks that say what differed,
//! and setup and read-back helpers, each at one fixed version (checked by
//! that API's own case).

use std::collections::BTreeSet;
use std::fmt::Debug;

use anyhow::{bail, ensure, Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, DescribeConfigsRequest,
    DescribeGroupsRequest, GroupId, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest, OffsetFetchResponse,
    SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use uuid::Uuid;
use vltava_protocol::ResponseError;
use vltava_tests::raw::{self, topic_name, ProducerStamp, RawClient, TestRecord};

use super::Ctx;

// ---------------------------------------------------------------------------
// Names, codes and numbers the cases share.

/// The data topic: partition 0 holds two batches (offsets 0-2 and 3-4),
/// partition 1 is empty.
pub(crate) const DATA_TOPIC: &str = "vt-data";
pub(crate) const DATA_PARTITIONS: i32 = 2;
pub(crate) const FIRST_BATCH: usize = 3;
pub(crate) const DATA_RECORDS: usize = 5;
/// A group that only committed offsets: partition 0 at this offset.
pub(crate) const COMMITTED_GROUP: &str = "vt-committed";
pub(crate) const COMMITTED_OFFSET: i64 = 3;
pub(crate) const COMMITTED_METADATA: &str = "vt-metadata";
/// A topic and a group nobody created.
pub(crate) const MISSING_TOPIC: &str = "vt-missing";
pub(crate) const MISSING_GROUP: &str = "vt-no-such-group";

pub(crate) const SESSION_TIMEOUT_MS: i32 = 30_000;
pub(crate) const TIMEOUT_MS: i32 = 30_000;
pub(crate) const CONSUMER: &str = "consumer";
pub(crate) const RANGE: &str = "range";
pub(crate) const HOST: &str = "127.0.0.1";

pub(crate) const NONE: i16 = 0;
pub(crate) const UNKNOWN_LEADER_EPOCH: i16 = ResponseError::UnknownLeaderEpoch.code();
pub(crate) const INVALID_REQUEST: i16 = ResponseError::InvalidRequest.code();
pub(crate) const BROKER_ID_NOT_REGISTERED: i16 = ResponseError::BrokerIdNotRegistered.code();
pub(crate) const OFFSET_OUT_OF_RANGE: i16 = ResponseError::OffsetOutOfRange.code();
pub(crate) const UNKNOWN_TOPIC: i16 = ResponseError::UnknownTopicOrPartition.code();
pub(crate) const LEADER_NOT_AVAILABLE: i16 = ResponseError::LeaderNotAvailable.code();
pub(crate) const ILLEGAL_GENERATION: i16 = ResponseError::IllegalGeneration.code();
pub(crate) const UNKNOWN_MEMBER_ID: i16 = ResponseError::UnknownMemberId.code();
pub(crate) const TOPIC_ALREADY_EXISTS: i16 = ResponseError::TopicAlreadyExists.code();
pub(crate) const INVALID_PARTITIONS: i16 = ResponseError::InvalidPartitions.code();
pub(crate) const NON_EMPTY_GROUP: i16 = ResponseError::NonEmptyGroup.code();
pub(crate) const GROUP_ID_NOT_FOUND: i16 = ResponseError::GroupIdNotFound.code();
pub(crate) const MEMBER_ID_REQUIRED: i16 = ResponseError::MemberIdRequired.code();
pub(crate) const GROUP_SUBSCRIBED_TO_TOPIC: i16 = ResponseError::GroupSubscribedToTopic.code();
pub(crate) const UNKNOWN_TOPIC_ID: i16 = ResponseError::UnknownTopicId.code();
pub(crate) const MISMATCHED_ENDPOINT_TYPE: i16 = ResponseError::MismatchedEndpointType.code();
pub(crate) const UNSUPPORTED_ENDPOINT_TYPE: i16 = ResponseError::UnsupportedEndpointType.code();

/// ListOffsets timestamps with a meaning.
pub(crate) const LATEST: i64 = raw::LATEST_TIMESTAMP;
pub(crate) const EARLIEST: i64 = raw::EARLIEST_TIMESTAMP;
pub(crate) const MAX_TIMESTAMP: i64 = -3;
pub(crate) const READ_COMMITTED: i8 = 1;

/// DescribeConfigs resource types and sources, and IncrementalAlterConfigs ops.
pub(crate) const TOPIC_RESOURCE: i8 = 2;
pub(crate) const BROKER_RESOURCE: i8 = 4;
pub(crate) const DYNAMIC_TOPIC_CONFIG: i8 = 1;
pub(crate) const STATIC_BROKER_CONFIG: i8 = 4;
pub(crate) const DEFAULT_CONFIG: i8 = 5;
pub(crate) const LIST_TYPE: i8 = 7;
pub(crate) const OP_SET: i8 = 0;
pub(crate) const OP_DELETE: i8 = 1;
pub(crate) const OP_APPEND: i8 = 2;

/// With no authorizer, Kafka reports every operation a resource supports:
/// READ, DELETE, DESCRIBE for groups; these plus ALTER etc. for topics.
pub(crate) const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);
pub(crate) const READ_OPERATION: i32 = 1 << 3;

// ---------------------------------------------------------------------------
// Checks.

pub(crate) fn eq<T: PartialEq + Debug>(what: &str, got: T, want: T) -> Result<()> {
    ensure!(got == want, "{what}: got {got:?}, expected {want:?}");
    Ok(())
}

/// Compares error codes, naming them.
pub(crate) fn code(what: &str, got: i16, want: i16) -> Result<()> {
    let name = |c: i16| match ResponseError::try_from_code(c) {
        None => "NONE".to_string(),
        Some(e) => format!("{e:?}"),
    };
    ensure!(
        got == want,
        "{what}: error {got} ({}), expected {want} ({})",
        name(got),
        name(want)
    );
    Ok(())
}

pub(crate) fn only<'a, T: Debug>(items: &'a [T], what: &str) -> Result<&'a T> {
    match items {
        [one] => Ok(one),
        _ => bail!("{what}: expected exactly one, got {items:?}"),
    }
}

pub(crate) fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub(crate) fn group_id(name: &str) -> GroupId {
    GroupId(text(name))
}

fn utf8(bytes: &Option<Bytes>) -> String {
    String::from_utf8_lossy(bytes.as_deref().unwrap_or_default()).into_owned()
}

/// `(offset, key, value)` of records written from offset 0.
pub(crate) fn rows(records: &[TestRecord]) -> Vec<(i64, String, String)> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| (i as i64, utf8(&r.key), utf8(&r.value)))
        .collect()
}

pub(crate) fn encode(records: &[TestRecord]) -> Bytes {
    raw::encode_batch(records, ProducerStamp::NONE, Compression::None)
}

pub(crate) fn kv_batch(prefix: &str, count: usize) -> Vec<TestRecord> {
    (0..count)
        .map(|i| TestRecord::kv(&format!("{prefix}-k{i}"), &format!("{prefix}-v{i}")))
        .collect()
}

/// `(offset, key, value)` of every record in a fetched partition.
pub(crate) fn fetched(data: &PartitionData) -> Vec<(i64, String, String)> {
    let bytes = data.records.clone().unwrap_or_default();
    raw::decode_batches(&bytes)
        .iter()
        .flat_map(|set| set.records.iter())
        .map(|r| (r.offset, utf8(&r.key), utf8(&r.value)))
        .collect()
}

// ---------------------------------------------------------------------------
// Setup and read-back helpers, each at one fixed version.

pub(crate) const OFFSET_COMMIT_VERSION: i16 = 9;
pub(crate) const OFFSET_FETCH_VERSION: i16 = 8;
pub(crate) const JOIN_GROUP_VERSION: i16 = 9;
pub(crate) const SYNC_GROUP_VERSION: i16 = 5;
pub(crate) const LEAVE_GROUP_VERSION: i16 = 5;
pub(crate) const DESCRIBE_GROUPS_VERSION: i16 = 5;
pub(crate) const DESCRIBE_CONFIGS_VERSION: i16 = 4;
pub(crate) const LIST_GROUPS_VERSION: i16 = 5;
pub(crate) const CONSUMER_HEARTBEAT_VERSION: i16 = 1;

/// Creates a topic and returns its id.
pub(crate) fn create_topic(
    ctx: &mut Ctx,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<Uuid> {
    let resp = ctx.client.create_topic(name, partitions, configs, false)?;
    code(
        "create topic",
        only(&resp.topics, "created topics")?.error_code,
        NONE,
    )?;
    topic_id(ctx, name)?.context("created topic missing from metadata")
}

/// The topic's metadata entry, if it exists.
pub(crate) fn describe_topic(ctx: &mut Ctx, name: &str) -> Result<Option<MetadataResponseTopic>> {
    let md = ctx.client.metadata(Some(&[name]))?;
    let topic = only(&md.topics, "metadata topics")?.clone();
    match topic.error_code {
        NONE => Ok(Some(topic)),
        UNKNOWN_TOPIC => Ok(None),
        other => bail!("metadata for {name}: error {other}"),
    }
}

pub(crate) fn topic_id(ctx: &mut Ctx, name: &str) -> Result<Option<Uuid>> {
    Ok(describe_topic(ctx, name)?.map(|t| t.topic_id))
}

pub(crate) fn partition_count(ctx: &mut Ctx, name: &str) -> Result<Option<usize>> {
    Ok(describe_topic(ctx, name)?.map(|t| t.partitions.len()))
}

pub(crate) fn produce_records(
    ctx: &mut Ctx,
    topic: &str,
    partition: i32,
    records: &[TestRecord],
) -> Result<i64> {
    let resp = ctx.client.produce(topic, partition, encode(records), -1)?;
    code("produce", resp.error_code, NONE)?;
    Ok(resp.base_offset)
}

pub(crate) fn log_offsets(ctx: &mut Ctx, topic: &str, partition: i32) -> Result<(i64, i64)> {
    let earliest = ctx.client.list_offset(topic, partition, EARLIEST)?;
    let latest = ctx.client.list_offset(topic, partition, LATEST)?;
    code("list earliest", earliest.error_code, NONE)?;
    code("list latest", latest.error_code, NONE)?;
    Ok((earliest.offset, latest.offset))
}

/// A topic config's `(value, source)` as DescribeConfigs reports it.
pub(crate) fn topic_config(ctx: &mut Ctx, topic: &str, key: &str) -> Result<(String, i8)> {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(text(topic))
            .with_configuration_keys(Some(vec![text(key)]))]);
    let resp = ctx.request(&req, DESCRIBE_CONFIGS_VERSION)?;
    let result = only(&resp.results, "config resources")?;
    code("describe configs", result.error_code, NONE)?;
    let entry = only(&result.configs, "config entries")?;
    let value = entry
        .value
        .as_ref()
        .map(|v| v.to_string())
        .unwrap_or_default();
    Ok((value, entry.config_source))
}

/// A standalone commit (generation -1, no member), as tools make it.
pub(crate) fn commit(
    client: &mut RawClient,
    group: &str,
    partition: i32,
    offset: i64,
    epoch: i32,
) -> Result<()> {
    let req = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_topics(vec![commit_topic(
            DATA_TOPIC,
            partition,
            offset,
            Some(epoch),
        )]);
    let resp = client.request(&req, OFFSET_COMMIT_VERSION)?;
    let topic = only(&resp.topics, "committed topics")?;
    code(
        "commit",
        only(&topic.partitions, "committed partitions")?.error_code,
        NONE,
    )
}

pub(crate) fn commit_topic(
    topic: &str,
    partition: i32,
    offset: i64,
    epoch: Option<i32>,
) -> OffsetCommitRequestTopic {
    let p = OffsetCommitRequestPartition::default()
        .with_partition_index(partition)
        .with_committed_offset(offset)
        .with_committed_metadata(Some(text(COMMITTED_METADATA)));
    OffsetCommitRequestTopic::default()
        .with_name(topic_name(topic))
        .with_partitions(vec![match epoch {
            Some(e) => p.with_committed_leader_epoch(e),
            None => p,
        }])
}

/// The group's committed offset of a data topic partition (-1: none).
pub(crate) fn committed(ctx: &mut Ctx, group: &str, partition: i32) -> Result<i64> {
    let req = OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
        .with_group_id(group_id(group))
        .with_topics(Some(vec![OffsetFetchRequestTopics::default()
            .with_name(topic_name(DATA_TOPIC))
            .with_partition_indexes(vec![partition])]))]);
    let resp = ctx.request(&req, OFFSET_FETCH_VERSION)?;
    let rows = committed_rows(&resp, OFFSET_FETCH_VERSION)?;
    Ok(only(&rows, "committed offsets")?.offset)
}

/// Consumer protocol subscription (v0) to the data topic, as a classic
/// consumer sends it in JoinGroup.
pub(crate) fn subscription() -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(1);
    b.put_i16(DATA_TOPIC.len() as i16);
    b.put_slice(DATA_TOPIC.as_bytes());
    b.put_i32(-1);
    b.freeze()
}

/// Consumer protocol assignment (v0): both data partitions.
pub(crate) fn assignment() -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(1);
    b.put_i16(DATA_TOPIC.len() as i16);
    b.put_slice(DATA_TOPIC.as_bytes());
    b.put_i32(DATA_PARTITIONS);
    for p in 0..DATA_PARTITIONS {
        b.put_i32(p);
    }
    b.put_i32(-1);
    b.freeze()
}

/// A classic group member.
pub(crate) struct Member {
    pub(crate) group: String,
    pub(crate) member_id: String,
    pub(crate) generation: i32,
}

pub(crate) fn join_request(version: i16, group: &str, member_id: &str) -> JoinGroupRequest {
    let req = JoinGroupRequest::default()
        .with_group_id(group_id(group))
        .with_session_timeout_ms(SESSION_TIMEOUT_MS)
        .with_member_id(text(member_id))
        .with_protocol_type(text(CONSUMER))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(text(RANGE))
            .with_metadata(subscription())]);
    if version >= 1 {
        req.with_rebalance_timeout_ms(SESSION_TIMEOUT_MS)
    } else {
        req
    }
}

/// Joins as a new member; from v4 the first answer is MEMBER_ID_REQUIRED
/// with the id to join again with (KIP-394).
pub(crate) fn join_at(ctx: &mut Ctx, version: i16, group: &str) -> Result<JoinGroupResponse> {
    let first = ctx.request(&join_request(version, group, ""), version)?;
    if version < 4 {
        return Ok(first);
    }
    code("first join", first.error_code, MEMBER_ID_REQUIRED)?;
    ensure!(
        !first.member_id.is_empty(),
        "MEMBER_ID_REQUIRED without a member id"
    );
    ctx.request(&join_request(version, group, &first.member_id), version)
}

pub(crate) fn join(ctx: &mut Ctx, group: &str) -> Result<Member> {
    let resp = join_at(ctx, JOIN_GROUP_VERSION, group)?;
    code("join", resp.error_code, NONE)?;
    Ok(Member {
        group: group.to_string(),
        member_id: resp.member_id.to_string(),
        generation: resp.generation_id,
    })
}

pub(crate) fn sync_request(version: i16, member: &Member, generation: i32) -> SyncGroupRequest {
    let req = SyncGroupRequest::default()
        .with_group_id(group_id(&member.group))
        .with_generation_id(generation)
        .with_member_id(text(&member.member_id))
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(text(&member.member_id))
            .with_assignment(assignment())]);
    if version >= 5 {
        req.with_protocol_type(Some(text(CONSUMER)))
            .with_protocol_name(Some(text(RANGE)))
    } else {
        req
    }
}

/// A member of a fresh Stable group that owns both data partitions.
pub(crate) fn join_and_sync(ctx: &mut Ctx, group: &str) -> Result<Member> {
    let member = join(ctx, group)?;
    let req = sync_request(SYNC_GROUP_VERSION, &member, member.generation);
    code(
        "sync",
        ctx.request(&req, SYNC_GROUP_VERSION)?.error_code,
        NONE,
    )?;
    Ok(member)
}

pub(crate) fn leave(ctx: &mut Ctx, member: &Member) -> Result<()> {
    let req = LeaveGroupRequest::default()
        .with_group_id(group_id(&member.group))
        .with_members(vec![
            MemberIdentity::default().with_member_id(text(&member.member_id))
        ]);
    let resp = ctx.request(&req, LEAVE_GROUP_VERSION)?;
    code("leave", resp.error_code, NONE)?;
    code(
        "leave member",
        only(&resp.members, "left members")?.error_code,
        NONE,
    )
}

pub(crate) fn describe_group(ctx: &mut Ctx, group: &str) -> Result<DescribedGroup> {
    let req = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
    let resp = ctx.request(&req, DESCRIBE_GROUPS_VERSION)?;
    Ok(only(&resp.groups, "described groups")?.clone())
}

pub(crate) fn listed_groups(ctx: &mut Ctx) -> Result<BTreeSet<String>> {
    let resp = ctx.request(&ListGroupsRequest::default(), LIST_GROUPS_VERSION)?;
    code("list groups", resp.error_code, NONE)?;
    Ok(resp
        .groups
        .iter()
        .map(|g| g.group_id.0.to_string())
        .collect())
}

/// A KIP-848 consumer joining `group` subscribed to the data topic (the
/// same shape at v0 and v1; v1 only adds a regex subscription).
pub(crate) fn consumer_join_request(group: &str, member_id: &str) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group_id(group))
        .with_member_id(text(member_id))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(TIMEOUT_MS)
        .with_subscribed_topic_names(Some(vec![topic_name(DATA_TOPIC)]))
        .with_topic_partitions(Some(Vec::new()))
}

/// Joins a KIP-848 group; returns the member id and epoch.
pub(crate) fn consumer_join(ctx: &mut Ctx, group: &str) -> Result<(String, i32)> {
    let member_id = Uuid::new_v4().to_string();
    let req = consumer_join_request(group, &member_id);
    let resp = ctx.request(&req, CONSUMER_HEARTBEAT_VERSION)?;
    code("consumer join", resp.error_code, NONE)?;
    Ok((member_id, resp.member_epoch))
}

pub(crate) fn consumer_leave(
    ctx: &mut Ctx,
    version: i16,
    group: &str,
    member_id: &str,
) -> Result<ConsumerGroupHeartbeatResponse> {
    let req = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group_id(group))
        .with_member_id(text(member_id))
        .with_member_epoch(-1);
    ctx.request(&req, version)
}

/// One committed offset as OffsetFetch reports it, whatever the version.
#[derive(Debug, PartialEq)]
pub(crate) struct CommittedRow {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    /// None where the version has no leader epochs.
    pub(crate) epoch: Option<i32>,
    pub(crate) metadata: Option<String>,
    pub(crate) error: i16,
}

/// The committed offsets of the one group in an OffsetFetch answer: at the
/// top level before v8, in `groups` from v8.
pub(crate) fn committed_rows(
    resp: &OffsetFetchResponse,
    version: i16,
) -> Result<Vec<CommittedRow>> {
    if version >= 8 {
        let group = only(&resp.groups, "fetched groups")?;
        code("offset fetch group", group.error_code, NONE)?;
        let rows = group.topics.iter().flat_map(|t| {
            t.partitions.iter().map(|p| CommittedRow {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                epoch: Some(p.committed_leader_epoch),
                metadata: p.metadata.as_ref().map(|m| m.to_string()),
                error: p.error_code,
            })
        });
        return Ok(rows.collect());
    }
    code("offset fetch", resp.error_code, NONE)?;
    let rows = resp.topics.iter().flat_map(|t| {
        t.partitions.iter().map(|p| CommittedRow {
            topic: t.name.0.to_string(),
            partition: p.partition_index,
            offset: p.committed_offset,
            epoch: (version >= 5).then_some(p.committed_leader_epoch),
            metadata: p.metadata.as_ref().map(|m| m.to_string()),
            error: p.error_code,
        })
    });
    Ok(rows.collect())
}
