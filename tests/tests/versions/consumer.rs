//! KIP-848 consumer groups.

use anyhow::{bail, ensure, Result};
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::consumer_group_heartbeat_response::Assignment;
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest};
use uuid::Uuid;
use vltava_tests::raw;

use super::support::*;
use super::Ctx;

fn assigned(assignment: Option<&Assignment>) -> Vec<(Uuid, Vec<i32>)> {
    assignment
        .map(|a| {
            a.topic_partitions
                .iter()
                .map(|t| (t.topic_id, t.partitions.clone()))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn consumer_group_heartbeat(ctx: &mut Ctx, version: i16) -> Result<()> {
    let group = ctx.fresh("consumer");
    // v0 lets the coordinator choose the member id; from v1 the client does.
    let chosen = if version >= 1 {
        Uuid::new_v4().to_string()
    } else {
        String::new()
    };
    let resp = ctx.request(&consumer_join_request(&group, &chosen), version)?;
    code("join", resp.error_code, NONE)?;
    let member_id = resp.member_id.as_deref().unwrap_or_default().to_string();
    ensure!(
        !member_id.is_empty() && (version == 0 || member_id == chosen),
        "member id {member_id:?}"
    );
    eq("member epoch", resp.member_epoch, 1)?;
    ensure!(
        resp.heartbeat_interval_ms > 0,
        "heartbeat interval {}",
        resp.heartbeat_interval_ms
    );
    let everything = vec![(
        ctx.fixture.topic_id,
        (0..DATA_PARTITIONS).collect::<Vec<_>>(),
    )];
    eq("assignment", assigned(resp.assignment.as_ref()), everything)?;
    let owned = TopicPartitions::default()
        .with_topic_id(ctx.fixture.topic_id)
        .with_partitions((0..DATA_PARTITIONS).collect());
    let req = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group_id(&group))
        .with_member_id(text(&member_id))
        .with_member_epoch(1)
        .with_topic_partitions(Some(vec![owned]));
    let resp = ctx.request(&req, version)?;
    eq(
        "steady heartbeat",
        (resp.error_code, resp.member_epoch),
        (NONE, 1),
    )?;
    let stranger = req
        .clone()
        .with_member_id(text(&Uuid::new_v4().to_string()));
    code(
        "unknown member",
        ctx.request(&stranger, version)?.error_code,
        UNKNOWN_MEMBER_ID,
    )?;
    let lost = req.with_group_id(group_id(MISSING_GROUP));
    code(
        "unknown group",
        ctx.request(&lost, version)?.error_code,
        GROUP_ID_NOT_FOUND,
    )?;
    let resp = consumer_leave(ctx, version, &group, &member_id)?;
    eq("leave", (resp.error_code, resp.member_epoch), (NONE, -1))
}

pub(crate) fn consumer_group_describe(ctx: &mut Ctx, version: i16) -> Result<()> {
    let group = ctx.fresh("consumer-describe");
    let (member_id, epoch) = consumer_join(ctx, &group)?;
    let req = ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![group_id(&group), group_id(MISSING_GROUP)])
        .with_include_authorized_operations(true);
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
            found.group_epoch,
            found.assignment_epoch,
        ),
        (group.as_str(), "Stable", epoch, epoch),
    )?;
    eq(
        "authorized operations",
        found.authorized_operations,
        GROUP_OPERATIONS,
    )?;
    let member = only(&found.members, "members")?;
    eq(
        "member",
        (
            member.member_id.as_str(),
            member.member_epoch,
            member.client_id.as_str(),
        ),
        (member_id.as_str(), epoch, raw::CLIENT_ID),
    )?;
    let subscribed: Vec<_> = member
        .subscribed_topic_names
        .iter()
        .map(|t| t.0.to_string())
        .collect();
    eq("subscription", subscribed, vec![DATA_TOPIC.to_string()])?;
    let owns: Vec<_> = member
        .assignment
        .topic_partitions
        .iter()
        .map(|t| (t.topic_id, t.topic_name.0.to_string(), t.partitions.clone()))
        .collect();
    eq(
        "assignment",
        owns,
        vec![(
            ctx.fixture.topic_id,
            DATA_TOPIC.to_string(),
            (0..DATA_PARTITIONS).collect(),
        )],
    )?;
    if version >= 1 {
        eq("member type (consumer)", member.member_type, 1)?;
    }
    code("unknown group", missing.error_code, GROUP_ID_NOT_FOUND)?;
    code(
        "leave",
        consumer_leave(ctx, CONSUMER_HEARTBEAT_VERSION, &group, &member_id)?.error_code,
        NONE,
    )
}
