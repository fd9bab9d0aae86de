//! Classic groups and committed offsets.

use anyhow::{bail, ensure, Result};
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, HeartbeatRequest,
    LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest,
};
use vltava_tests::raw::{self, topic_name};

use super::support::*;
use super::Ctx;

pub(crate) fn find_coordinator(ctx: &mut Ctx, version: i16) -> Result<()> {
    let me = (1, HOST.to_string(), i32::from(ctx.port));
    if version >= 4 {
        let keys = ["vt-a", "vt-b"];
        let req = FindCoordinatorRequest::default()
            .with_coordinator_keys(keys.iter().map(|k| text(k)).collect());
        let resp = ctx.request(&req, version)?;
        let got: Vec<_> = resp
            .coordinators
            .iter()
            .map(|c| {
                (
                    c.key.to_string(),
                    c.error_code,
                    (c.node_id.0, c.host.to_string(), c.port),
                )
            })
            .collect();
        let want: Vec<_> = keys
            .iter()
            .map(|k| (k.to_string(), NONE, me.clone()))
            .collect();
        return eq("coordinators", got, want);
    }
    let req = FindCoordinatorRequest::default().with_key(text("vt-a"));
    let resp = ctx.request(&req, version)?;
    code("find coordinator", resp.error_code, NONE)?;
    eq(
        "coordinator",
        (resp.node_id.0, resp.host.to_string(), resp.port),
        me,
    )
}

pub(crate) fn join_group(ctx: &mut Ctx, version: i16) -> Result<()> {
    let group = ctx.fresh("join");
    let resp = join_at(ctx, version, &group)?;
    code("join", resp.error_code, NONE)?;
    let member_id = resp.member_id.to_string();
    ensure!(!member_id.is_empty(), "no member id");
    eq("generation", resp.generation_id, 1)?;
    eq("leader", resp.leader.as_str(), member_id.as_str())?;
    eq("protocol", resp.protocol_name.as_deref(), Some(RANGE))?;
    if version >= 7 {
        eq(
            "protocol type",
            resp.protocol_type.as_deref(),
            Some(CONSUMER),
        )?;
    }
    let members: Vec<_> = resp
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), m.metadata.clone()))
        .collect();
    eq(
        "members (the leader sees them)",
        members,
        vec![(member_id.clone(), subscription())],
    )?;
    let stranger = ctx.request(&join_request(version, &group, "vt-stranger"), version)?;
    code(
        "join with an unknown member id",
        stranger.error_code,
        UNKNOWN_MEMBER_ID,
    )?;
    let member = Member {
        group,
        member_id,
        generation: resp.generation_id,
    };
    let req = sync_request(SYNC_GROUP_VERSION, &member, member.generation);
    code(
        "sync",
        ctx.request(&req, SYNC_GROUP_VERSION)?.error_code,
        NONE,
    )?;
    leave(ctx, &member)
}

pub(crate) fn sync_group(ctx: &mut Ctx, version: i16) -> Result<()> {
    let group = ctx.fresh("sync");
    let member = join(ctx, &group)?;
    let resp = ctx.request(&sync_request(version, &member, member.generation), version)?;
    code("sync", resp.error_code, NONE)?;
    eq("assignment", resp.assignment.clone(), assignment())?;
    if version >= 5 {
        eq(
            "protocol",
            (resp.protocol_type.as_deref(), resp.protocol_name.as_deref()),
            (Some(CONSUMER), Some(RANGE)),
        )?;
    }
    eq(
        "state",
        describe_group(ctx, &group)?.group_state.to_string(),
        "Stable".into(),
    )?;
    let stale = ctx.request(
        &sync_request(version, &member, member.generation + 1),
        version,
    )?;
    code(
        "sync with a wrong generation",
        stale.error_code,
        ILLEGAL_GENERATION,
    )?;
    let nobody = Member {
        group: MISSING_GROUP.into(),
        member_id: "vt-nobody".into(),
        generation: 1,
    };
    let unknown = ctx.request(&sync_request(version, &nobody, 1), version)?;
    code(
        "sync in an unknown group",
        unknown.error_code,
        UNKNOWN_MEMBER_ID,
    )?;
    leave(ctx, &member)
}

fn heartbeat_at(
    ctx: &mut Ctx,
    version: i16,
    group: &str,
    member_id: &str,
    generation: i32,
) -> Result<i16> {
    let req = HeartbeatRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id(generation)
        .with_member_id(text(member_id));
    Ok(ctx.request(&req, version)?.error_code)
}

pub(crate) fn heartbeat(ctx: &mut Ctx, version: i16) -> Result<()> {
    let group = ctx.fresh("heartbeat");
    let m = join_and_sync(ctx, &group)?;
    code(
        "heartbeat",
        heartbeat_at(ctx, version, &group, &m.member_id, m.generation)?,
        NONE,
    )?;
    code(
        "wrong generation",
        heartbeat_at(ctx, version, &group, &m.member_id, m.generation + 1)?,
        ILLEGAL_GENERATION,
    )?;
    code(
        "unknown member",
        heartbeat_at(ctx, version, &group, "vt-stranger", m.generation)?,
        UNKNOWN_MEMBER_ID,
    )?;
    // The Java coordinator answers UNKNOWN_MEMBER_ID for a group it does not have.
    code(
        "unknown group",
        heartbeat_at(ctx, version, MISSING_GROUP, "vt-stranger", 1)?,
        UNKNOWN_MEMBER_ID,
    )?;
    leave(ctx, &m)
}

fn leave_request(version: i16, group: &str, member_id: &str) -> LeaveGroupRequest {
    let req = LeaveGroupRequest::default().with_group_id(group_id(group));
    if version < 3 {
        return req.with_member_id(text(member_id));
    }
    let member = MemberIdentity::default().with_member_id(text(member_id));
    let member = if version >= 5 {
        member.with_reason(Some(text("vt: done")))
    } else {
        member
    };
    req.with_members(vec![member])
}

/// A leave's error for the one member: top-level before v3, per member after.
fn leave_at(ctx: &mut Ctx, version: i16, group: &str, member_id: &str) -> Result<i16> {
    let resp = ctx.request(&leave_request(version, group, member_id), version)?;
    if version < 3 || resp.error_code != NONE {
        return Ok(resp.error_code);
    }
    let member = only(&resp.members, "left members")?;
    eq("left member", member.member_id.as_str(), member_id)?;
    Ok(member.error_code)
}

pub(crate) fn leave_group(ctx: &mut Ctx, version: i16) -> Result<()> {
    let group = ctx.fresh("leave");
    let m = join_and_sync(ctx, &group)?;
    code("leave", leave_at(ctx, version, &group, &m.member_id)?, NONE)?;
    let described = describe_group(ctx, &group)?;
    eq(
        "state after leaving",
        (described.group_state.as_str(), described.members.len()),
        ("Empty", 0),
    )?;
    code(
        "leave again",
        leave_at(ctx, version, &group, &m.member_id)?,
        UNKNOWN_MEMBER_ID,
    )?;
    code(
        "leave an unknown group",
        leave_at(ctx, version, MISSING_GROUP, "vt-stranger")?,
        UNKNOWN_MEMBER_ID,
    )
}

fn commit_at(
    ctx: &mut Ctx,
    version: i16,
    m: &Member,
    generation: i32,
    topic: &str,
    offset: i64,
) -> Result<i16> {
    let epoch = (version >= 6).then_some(ctx.fixture.leader_epoch);
    let req = OffsetCommitRequest::default()
        .with_group_id(group_id(&m.group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(text(&m.member_id))
        .with_topics(vec![commit_topic(topic, 0, offset, epoch)]);
    let resp = ctx.request(&req, version)?;
    let t = only(&resp.topics, "committed topics")?;
    eq("committed topic", t.name.0.as_str(), topic)?;
    Ok(only(&t.partitions, "committed partitions")?.error_code)
}

/// A consumer in a group commits what it consumed.
pub(crate) fn offset_commit(ctx: &mut Ctx, version: i16) -> Result<()> {
    let group = ctx.fresh("commit");
    let m = join_and_sync(ctx, &group)?;
    code(
        "commit",
        commit_at(ctx, version, &m, m.generation, DATA_TOPIC, 4)?,
        NONE,
    )?;
    eq("committed offset", committed(ctx, &group, 0)?, 4)?;
    code(
        "stale generation",
        commit_at(ctx, version, &m, m.generation + 1, DATA_TOPIC, 5)?,
        ILLEGAL_GENERATION,
    )?;
    eq("offset after refused commit", committed(ctx, &group, 0)?, 4)?;
    code(
        "unknown topic",
        commit_at(ctx, version, &m, m.generation, MISSING_TOPIC, 1)?,
        UNKNOWN_TOPIC,
    )?;
    leave(ctx, &m)
}

/// OffsetFetch for `group`: the data topic's partitions, or (None, v2+)
/// everything the group committed.
fn offset_fetch_request(
    version: i16,
    group: &str,
    partitions: Option<Vec<i32>>,
) -> OffsetFetchRequest {
    if version >= 8 {
        let topics = partitions.map(|ps| {
            vec![OffsetFetchRequestTopics::default()
                .with_name(topic_name(DATA_TOPIC))
                .with_partition_indexes(ps)]
        });
        let g = OffsetFetchRequestGroup::default()
            .with_group_id(group_id(group))
            .with_topics(topics);
        // v9: an admin client names no member (epoch -1).
        let g = if version >= 9 {
            g.with_member_epoch(-1)
        } else {
            g
        };
        return OffsetFetchRequest::default().with_groups(vec![g]);
    }
    let topics = partitions.map(|ps| {
        vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(DATA_TOPIC))
            .with_partition_indexes(ps)]
    });
    OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(topics)
}

pub(crate) fn offset_fetch(ctx: &mut Ctx, version: i16) -> Result<()> {
    let epoch = (version >= 5).then_some(ctx.fixture.leader_epoch);
    let row = |partition, offset, epoch, metadata: Option<&str>| CommittedRow {
        topic: DATA_TOPIC.into(),
        partition,
        offset,
        epoch,
        metadata: metadata.map(str::to_string),
        error: NONE,
    };
    let stored = row(0, COMMITTED_OFFSET, epoch, Some(COMMITTED_METADATA));
    let none = |p| row(p, -1, (version >= 5).then_some(-1), Some(""));
    let resp = ctx.request(
        &offset_fetch_request(version, COMMITTED_GROUP, Some(vec![0, 1])),
        version,
    )?;
    eq(
        "committed offsets",
        committed_rows(&resp, version)?,
        vec![stored, none(1)],
    )?;
    if version >= 2 {
        let resp = ctx.request(
            &offset_fetch_request(version, COMMITTED_GROUP, None),
            version,
        )?;
        let stored = row(0, COMMITTED_OFFSET, epoch, Some(COMMITTED_METADATA));
        eq(
            "all committed offsets",
            committed_rows(&resp, version)?,
            vec![stored],
        )?;
    }
    let resp = ctx.request(
        &offset_fetch_request(version, MISSING_GROUP, Some(vec![0, 1])),
        version,
    )?;
    eq(
        "unknown group",
        committed_rows(&resp, version)?,
        vec![none(0), none(1)],
    )
}

/// `(group, protocol type, state from v4, type from v5)` as listed.
type Listed = (String, String, Option<String>, Option<String>);

fn list_groups_at(
    ctx: &mut Ctx,
    version: i16,
    states: &[&str],
    types: &[&str],
) -> Result<Vec<Listed>> {
    let mut req = ListGroupsRequest::default();
    if version >= 4 {
        req = req.with_states_filter(states.iter().map(|s| text(s)).collect());
    }
    if version >= 5 {
        req = req.with_types_filter(types.iter().map(|s| text(s)).collect());
    }
    let resp = ctx.request(&req, version)?;
    code("list groups", resp.error_code, NONE)?;
    Ok(resp
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.0.to_string(),
                g.protocol_type.to_string(),
                (version >= 4).then(|| g.group_state.to_string()),
                (version >= 5).then(|| g.group_type.to_string()),
            )
        })
        .collect())
}

pub(crate) fn list_groups(ctx: &mut Ctx, version: i16) -> Result<()> {
    let group = ctx.fresh("list");
    let m = join_and_sync(ctx, &group)?;
    let listed = |name: &str, protocol: &str, state: &str| -> Listed {
        (
            name.into(),
            protocol.into(),
            (version >= 4).then(|| state.into()),
            (version >= 5).then(|| "classic".into()),
        )
    };
    let stable = listed(&group, CONSUMER, "Stable");
    let offsets_only = listed(COMMITTED_GROUP, "", "Empty");
    let all = list_groups_at(ctx, version, &[], &[])?;
    ensure!(all.contains(&stable), "{stable:?} not in {all:?}");
    ensure!(
        all.contains(&offsets_only),
        "{offsets_only:?} not in {all:?}"
    );
    if version >= 4 {
        let only_stable = list_groups_at(ctx, version, &["stable"], &[])?;
        ensure!(
            only_stable.contains(&stable) && !only_stable.contains(&offsets_only),
            "state filter Stable gave {only_stable:?}"
        );
    }
    if version >= 5 {
        let consumers = list_groups_at(ctx, version, &[], &["consumer"])?;
        ensure!(
            !consumers
                .iter()
                .any(|g| g.0 == group || g.0 == COMMITTED_GROUP),
            "type filter consumer gave classic groups: {consumers:?}"
        );
    }
    leave(ctx, &m)
}

pub(crate) fn describe_groups(ctx: &mut Ctx, version: i16) -> Result<()> {
    let group = ctx.fresh("describe");
    let m = join_and_sync(ctx, &group)?;
    let mut req = DescribeGroupsRequest::default()
        .with_groups(vec![group_id(&group), group_id(MISSING_GROUP)]);
    if version >= 3 {
        req = req.with_include_authorized_operations(true);
    }
    let resp = ctx.request(&req, version)?;
    let [found, missing] = &resp.groups[..] else {
        bail!("expected two groups, got {:?}", resp.groups);
    };
    code("described group", found.error_code, NONE)?;
    eq(
        "group",
        (
            found.group_id.0.as_str(),
            found.group_state.as_str(),
            found.protocol_type.as_str(),
            found.protocol_data.as_str(),
        ),
        (group.as_str(), "Stable", CONSUMER, RANGE),
    )?;
    let member = only(&found.members, "members")?;
    eq(
        "member",
        (
            member.member_id.as_str(),
            member.client_id.as_str(),
            member.client_host.as_str(),
        ),
        (m.member_id.as_str(), raw::CLIENT_ID, "/127.0.0.1"),
    )?;
    eq(
        "member data",
        (
            member.member_metadata.clone(),
            member.member_assignment.clone(),
        ),
        (subscription(), assignment()),
    )?;
    if version >= 3 {
        eq(
            "authorized operations",
            found.authorized_operations,
            GROUP_OPERATIONS,
        )?;
    }
    // Kafka answers an unknown group as Dead; from v6 also with an error.
    let want = if version >= 6 {
        GROUP_ID_NOT_FOUND
    } else {
        NONE
    };
    code("unknown group", missing.error_code, want)?;
    eq(
        "unknown group",
        (missing.group_id.0.as_str(), missing.group_state.as_str()),
        (MISSING_GROUP, "Dead"),
    )?;
    leave(ctx, &m)
}

fn delete_group_at(ctx: &mut Ctx, version: i16, group: &str) -> Result<i16> {
    let req = DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
    let resp = ctx.request(&req, version)?;
    let result = only(&resp.results, "deleted groups")?;
    eq("deleted group", result.group_id.0.as_str(), group)?;
    Ok(result.error_code)
}

pub(crate) fn delete_groups(ctx: &mut Ctx, version: i16) -> Result<()> {
    let group = ctx.fresh("delete-group");
    commit(&mut ctx.client, &group, 0, 1, ctx.fixture.leader_epoch)?;
    code("delete", delete_group_at(ctx, version, &group)?, NONE)?;
    eq("committed after delete", committed(ctx, &group, 0)?, -1)?;
    ensure!(
        !listed_groups(ctx)?.contains(&group),
        "deleted group still listed"
    );
    code(
        "delete unknown",
        delete_group_at(ctx, version, MISSING_GROUP)?,
        GROUP_ID_NOT_FOUND,
    )?;
    let busy = ctx.fresh("delete-busy");
    let m = join_and_sync(ctx, &busy)?;
    code(
        "delete with members",
        delete_group_at(ctx, version, &busy)?,
        NON_EMPTY_GROUP,
    )?;
    leave(ctx, &m)
}

/// `(top-level error, partition 0 error)`; None when no partitions came back.
fn offset_delete_at(ctx: &mut Ctx, version: i16, group: &str) -> Result<(i16, Option<i16>)> {
    let req = OffsetDeleteRequest::default()
        .with_group_id(group_id(group))
        .with_topics(vec![OffsetDeleteRequestTopic::default()
            .with_name(topic_name(DATA_TOPIC))
            .with_partitions(vec![
                OffsetDeleteRequestPartition::default().with_partition_index(0)
            ])]);
    let resp = ctx.request(&req, version)?;
    let partition = resp
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map(|p| p.error_code);
    Ok((resp.error_code, partition))
}

pub(crate) fn offset_delete(ctx: &mut Ctx, version: i16) -> Result<()> {
    let group = ctx.fresh("offset-delete");
    let epoch = ctx.fixture.leader_epoch;
    commit(&mut ctx.client, &group, 0, 2, epoch)?;
    commit(&mut ctx.client, &group, 1, 0, epoch)?;
    eq(
        "delete partition 0",
        offset_delete_at(ctx, version, &group)?,
        (NONE, Some(NONE)),
    )?;
    eq(
        "committed after delete",
        (committed(ctx, &group, 0)?, committed(ctx, &group, 1)?),
        (-1, 0),
    )?;
    eq(
        "unknown group",
        offset_delete_at(ctx, version, MISSING_GROUP)?.0,
        GROUP_ID_NOT_FOUND,
    )?;
    let busy = ctx.fresh("offset-delete-busy");
    let m = join_and_sync(ctx, &busy)?;
    commit_at(ctx, 8, &m, m.generation, DATA_TOPIC, 1)?;
    eq(
        "subscribed topic",
        offset_delete_at(ctx, version, &busy)?,
        (NONE, Some(GROUP_SUBSCRIBED_TO_TOPIC)),
    )?;
    leave(ctx, &m)
}
