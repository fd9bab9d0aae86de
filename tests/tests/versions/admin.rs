//! Topic, config and partition administration, producer ids, the cluster.

use anyhow::{bail, ensure, Context, Result};
use kafka_protocol::messages::alter_configs_request::{
    AlterConfigsResource, AlterableConfig as LegacyAlterableConfig,
};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::describe_topic_partitions_request::{
    Cursor as DtpCursor, TopicRequest as DtpTopicRequest,
};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource as IncrementalResource, AlterableConfig,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest,
    DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest, DescribeQuorumRequest,
    DescribeTopicPartitionsRequest, IncrementalAlterConfigsRequest, InitProducerIdRequest,
    TransactionalId,
};
use kafka_protocol::ResponseError;
use uuid::Uuid;
use vltava_tests::raw::topic_name;

use super::support::*;
use super::Ctx;

fn create_request(topic: CreatableTopic, validate_only: bool) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(TIMEOUT_MS)
        .with_validate_only(validate_only)
}

fn creatable(version: i16, name: &str) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(3)
        // -1 (the broker default) is allowed from v4 (KIP-464).
        .with_replication_factor(if version >= 4 { -1 } else { 1 })
        .with_configs(vec![CreatableTopicConfig::default()
            .with_name(text("cleanup.policy"))
            .with_value(Some(text("compact")))])
}

pub(crate) fn create_topics(ctx: &mut Ctx, version: i16) -> Result<()> {
    let name = ctx.fresh("create");
    let resp = ctx.request(&create_request(creatable(version, &name), false), version)?;
    let result = only(&resp.topics, "created topics")?;
    eq("created name", result.name.0.as_str(), name.as_str())?;
    code("create", result.error_code, NONE)?;
    if version >= 5 {
        eq(
            "partitions",
            (result.num_partitions, result.replication_factor),
            (3, 1),
        )?;
        let policy = result
            .configs
            .iter()
            .flatten()
            .find(|c| c.name.as_str() == "cleanup.policy");
        eq(
            "cleanup.policy in response",
            policy.and_then(|c| c.value.as_deref()),
            Some("compact"),
        )?;
    }
    let id = topic_id(ctx, &name)?;
    if version >= 7 {
        eq("topic id", Some(result.topic_id), id)?;
    }
    eq("partitions created", partition_count(ctx, &name)?, Some(3))?;
    eq(
        "cleanup.policy",
        topic_config(ctx, &name, "cleanup.policy")?,
        ("compact".into(), DYNAMIC_TOPIC_CONFIG),
    )?;
    let dry = ctx.fresh("create-dry");
    let resp = ctx.request(&create_request(creatable(version, &dry), true), version)?;
    code(
        "validate only",
        only(&resp.topics, "validated topics")?.error_code,
        NONE,
    )?;
    eq("validate-only topic", partition_count(ctx, &dry)?, None)?;
    let again = ctx.request(&create_request(creatable(version, &name), false), version)?;
    code(
        "create existing",
        only(&again.topics, "created topics")?.error_code,
        TOPIC_ALREADY_EXISTS,
    )
}

fn delete_request(version: i16, name: Option<&str>, id: Uuid) -> DeleteTopicsRequest {
    let req = DeleteTopicsRequest::default().with_timeout_ms(TIMEOUT_MS);
    if version >= 6 {
        req.with_topics(vec![DeleteTopicState::default()
            .with_name(name.map(topic_name))
            .with_topic_id(id)])
    } else {
        req.with_topic_names(name.into_iter().map(topic_name).collect())
    }
}

pub(crate) fn delete_topics(ctx: &mut Ctx, version: i16) -> Result<()> {
    let name = ctx.fresh("delete");
    create_topic(ctx, &name, 1, &[])?;
    let resp = ctx.request(&delete_request(version, Some(&name), Uuid::nil()), version)?;
    let result = only(&resp.responses, "deleted topics")?;
    eq(
        "deleted name",
        result.name.as_ref().map(|n| n.0.as_str()),
        Some(name.as_str()),
    )?;
    code("delete", result.error_code, NONE)?;
    eq("deleted topic", partition_count(ctx, &name)?, None)?;
    let resp = ctx.request(
        &delete_request(version, Some(MISSING_TOPIC), Uuid::nil()),
        version,
    )?;
    code(
        "delete unknown",
        only(&resp.responses, "deleted topics")?.error_code,
        UNKNOWN_TOPIC,
    )?;
    if version >= 6 {
        delete_topic_by_id(ctx, version)?;
    }
    Ok(())
}

fn delete_topic_by_id(ctx: &mut Ctx, version: i16) -> Result<()> {
    let name = ctx.fresh("delete-id");
    let id = create_topic(ctx, &name, 1, &[])?;
    let resp = ctx.request(&delete_request(version, None, id), version)?;
    let result = only(&resp.responses, "deleted topics")?;
    code("delete by id", result.error_code, NONE)?;
    eq(
        "deleted by id",
        (result.name.as_ref().map(|n| n.0.as_str()), result.topic_id),
        (Some(name.as_str()), id),
    )?;
    eq("deleted topic", partition_count(ctx, &name)?, None)?;
    let resp = ctx.request(&delete_request(version, None, Uuid::new_v4()), version)?;
    code(
        "delete unknown id",
        only(&resp.responses, "deleted topics")?.error_code,
        UNKNOWN_TOPIC_ID,
    )
}

fn delete_records_at(ctx: &mut Ctx, version: i16, topic: &str, before: i64) -> Result<(i16, i64)> {
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(TIMEOUT_MS)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(before)])]);
    let resp = ctx.request(&req, version)?;
    let t = only(&resp.topics, "topics")?;
    let p = only(&t.partitions, "partitions")?;
    Ok((p.error_code, p.low_watermark))
}

pub(crate) fn delete_records(ctx: &mut Ctx, version: i16) -> Result<()> {
    let topic = ctx.fresh("delete-records");
    create_topic(ctx, &topic, 1, &[])?;
    produce_records(ctx, &topic, 0, &kv_batch("dr", 5))?;
    eq(
        "delete before 3",
        delete_records_at(ctx, version, &topic, 3)?,
        (NONE, 3),
    )?;
    eq("log offsets after", log_offsets(ctx, &topic, 0)?, (3, 5))?;
    let (error, _) = delete_records_at(ctx, version, &topic, 10)?;
    code("delete past the high watermark", error, OFFSET_OUT_OF_RANGE)?;
    let (error, _) = delete_records_at(ctx, version, MISSING_TOPIC, 1)?;
    code("delete in unknown topic", error, UNKNOWN_TOPIC)
}

pub(crate) fn init_producer_id(ctx: &mut Ctx, version: i16) -> Result<()> {
    // An idempotent producer has no transactional id (null, not empty).
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let resp = ctx.request(&req, version)?;
        code("init producer id", resp.error_code, NONE)?;
        eq("producer epoch", resp.producer_epoch, 0)?;
        ensure!(
            resp.producer_id.0 >= 0,
            "producer id {}",
            resp.producer_id.0
        );
        ids.push(resp.producer_id.0);
    }
    ensure!(ids[0] != ids[1], "two producers got the same id {}", ids[0]);
    // Kafka refuses an empty transactional id.
    let empty = req.with_transactional_id(Some(TransactionalId(text(""))));
    code(
        "empty transactional id",
        ctx.request(&empty, version)?.error_code,
        INVALID_REQUEST,
    )
}

// ---------------------------------------------------------------------------
// Configs and partitions.

fn describe_configs_request(
    version: i16,
    resources: Vec<DescribeConfigsResource>,
) -> DescribeConfigsRequest {
    let req = DescribeConfigsRequest::default()
        .with_resources(resources)
        .with_include_synonyms(true);
    if version >= 3 {
        req.with_include_documentation(true)
    } else {
        req
    }
}

fn resource(kind: i8, name: &str, keys: Option<&[&str]>) -> DescribeConfigsResource {
    DescribeConfigsResource::default()
        .with_resource_type(kind)
        .with_resource_name(text(name))
        .with_configuration_keys(keys.map(|ks| ks.iter().map(|k| text(k)).collect()))
}

pub(crate) fn describe_configs(ctx: &mut Ctx, version: i16) -> Result<()> {
    let req = describe_configs_request(
        version,
        vec![
            resource(TOPIC_RESOURCE, DATA_TOPIC, None),
            resource(TOPIC_RESOURCE, DATA_TOPIC, Some(&["retention.ms"])),
            resource(BROKER_RESOURCE, "1", Some(&["node.id"])),
            resource(TOPIC_RESOURCE, MISSING_TOPIC, None),
        ],
    );
    let resp = ctx.request(&req, version)?;
    let [all, one, broker, missing] = &resp.results[..] else {
        bail!("expected 4 results, got {:?}", resp.results);
    };
    check_cleanup_policy(version, all)?;
    let names: Vec<_> = one.configs.iter().map(|c| c.name.to_string()).collect();
    eq(
        "entries for keys [retention.ms]",
        names,
        vec!["retention.ms".to_string()],
    )?;
    code("broker", broker.error_code, NONE)?;
    let node = only(&broker.configs, "broker entries")?;
    eq(
        "node.id",
        (node.value.as_deref(), node.config_source),
        (Some("1"), STATIC_BROKER_CONFIG),
    )?;
    code("unknown topic", missing.error_code, UNKNOWN_TOPIC)
}

fn check_cleanup_policy(version: i16, result: &DescribeConfigsResult) -> Result<()> {
    code("topic", result.error_code, NONE)?;
    let entry = result
        .configs
        .iter()
        .find(|c| c.name.as_str() == "cleanup.policy")
        .context("no cleanup.policy entry")?;
    eq(
        "cleanup.policy",
        (entry.value.as_deref(), entry.config_source, entry.read_only),
        (Some("delete"), DEFAULT_CONFIG, false),
    )?;
    let last = entry.synonyms.last().context("no synonyms")?;
    eq(
        "default synonym",
        (last.name.as_str(), last.source),
        ("log.cleanup.policy", DEFAULT_CONFIG),
    )?;
    if version >= 3 {
        eq("config type", entry.config_type, LIST_TYPE)?;
        ensure!(
            entry.documentation.as_ref().is_some_and(|d| !d.is_empty()),
            "no documentation"
        );
    }
    Ok(())
}

fn alter_configs_at(
    ctx: &mut Ctx,
    version: i16,
    topic: &str,
    retention_ms: &str,
    validate_only: bool,
) -> Result<i16> {
    let req = AlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(text(topic))
            .with_configs(vec![LegacyAlterableConfig::default()
                .with_name(text("retention.ms"))
                .with_value(Some(text(retention_ms)))])]);
    let resp = ctx.request(&req, version)?;
    let result = only(&resp.responses, "altered resources")?;
    eq("altered resource", result.resource_name.as_str(), topic)?;
    Ok(result.error_code)
}

/// The legacy AlterConfigs replaces all of a topic's overrides.
pub(crate) fn alter_configs(ctx: &mut Ctx, version: i16) -> Result<()> {
    let topic = ctx.fresh("alter");
    create_topic(ctx, &topic, 1, &[("max.message.bytes", "2000")])?;
    code(
        "alter",
        alter_configs_at(ctx, version, &topic, "12345", false)?,
        NONE,
    )?;
    eq(
        "retention.ms",
        topic_config(ctx, &topic, "retention.ms")?,
        ("12345".into(), DYNAMIC_TOPIC_CONFIG),
    )?;
    // AlterConfigs replaces every override: the earlier one is gone.
    eq(
        "max.message.bytes after the replacing alter",
        topic_config(ctx, &topic, "max.message.bytes")?,
        ("1048588".into(), DEFAULT_CONFIG),
    )?;
    code(
        "validate only",
        alter_configs_at(ctx, version, &topic, "999", true)?,
        NONE,
    )?;
    eq(
        "retention.ms after validate only",
        topic_config(ctx, &topic, "retention.ms")?.0,
        "12345".into(),
    )?;
    code(
        "unknown topic",
        alter_configs_at(ctx, version, MISSING_TOPIC, "1", false)?,
        UNKNOWN_TOPIC,
    )
}

fn incremental_at(
    ctx: &mut Ctx,
    version: i16,
    topic: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> Result<i16> {
    let configs = ops
        .iter()
        .map(|&(name, op, value)| {
            AlterableConfig::default()
                .with_name(text(name))
                .with_config_operation(op)
                .with_value(value.map(text))
        })
        .collect();
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        IncrementalResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(text(topic))
            .with_configs(configs),
    ]);
    let resp = ctx.request(&req, version)?;
    Ok(only(&resp.responses, "altered resources")?.error_code)
}

pub(crate) fn incremental_alter_configs(ctx: &mut Ctx, version: i16) -> Result<()> {
    let topic = ctx.fresh("incremental");
    create_topic(ctx, &topic, 1, &[])?;
    let ops = [
        ("retention.ms", OP_SET, Some("54321")),
        ("cleanup.policy", OP_APPEND, Some("compact")),
    ];
    code(
        "set and append",
        incremental_at(ctx, version, &topic, &ops)?,
        NONE,
    )?;
    eq(
        "retention.ms",
        topic_config(ctx, &topic, "retention.ms")?,
        ("54321".into(), DYNAMIC_TOPIC_CONFIG),
    )?;
    eq(
        "cleanup.policy",
        topic_config(ctx, &topic, "cleanup.policy")?.0,
        "delete,compact".into(),
    )?;
    code(
        "delete",
        incremental_at(ctx, version, &topic, &[("retention.ms", OP_DELETE, None)])?,
        NONE,
    )?;
    eq(
        "retention.ms after deleting its override",
        topic_config(ctx, &topic, "retention.ms")?,
        ("604800000".into(), DEFAULT_CONFIG),
    )?;
    let set = [("retention.ms", OP_SET, Some("1"))];
    code(
        "unknown topic",
        incremental_at(ctx, version, MISSING_TOPIC, &set)?,
        UNKNOWN_TOPIC,
    )
}

fn create_partitions_at(ctx: &mut Ctx, version: i16, topic: &str, count: i32) -> Result<i16> {
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(TIMEOUT_MS)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name(topic))
            .with_count(count)
            // The broker places the new partitions (null, not empty).
            .with_assignments(None)]);
    let resp = ctx.request(&req, version)?;
    let result = only(&resp.results, "results")?;
    eq("grown topic", result.name.0.as_str(), topic)?;
    Ok(result.error_code)
}

pub(crate) fn create_partitions(ctx: &mut Ctx, version: i16) -> Result<()> {
    let topic = ctx.fresh("grow");
    create_topic(ctx, &topic, 1, &[])?;
    code(
        "grow to 3",
        create_partitions_at(ctx, version, &topic, 3)?,
        NONE,
    )?;
    eq("partitions", partition_count(ctx, &topic)?, Some(3))?;
    eq(
        "produce to new partition 2",
        produce_records(ctx, &topic, 2, &kv_batch("p2", 1))?,
        0,
    )?;
    code(
        "shrink to 2",
        create_partitions_at(ctx, version, &topic, 2)?,
        INVALID_PARTITIONS,
    )?;
    code(
        "unknown topic",
        create_partitions_at(ctx, version, MISSING_TOPIC, 2)?,
        UNKNOWN_TOPIC,
    )
}

pub(crate) fn describe_cluster(ctx: &mut Ctx, version: i16) -> Result<()> {
    let resp = ctx.request(&DescribeClusterRequest::default(), version)?;
    code("describe cluster", resp.error_code, NONE)?;
    eq(
        "cluster id",
        resp.cluster_id.as_str(),
        ctx.fixture.cluster_id.as_str(),
    )?;
    eq("controller", resp.controller_id.0, 1)?;
    let brokers: Vec<_> = resp
        .brokers
        .iter()
        .map(|b| (b.broker_id.0, b.host.to_string(), b.port))
        .collect();
    eq(
        "brokers",
        brokers,
        vec![(1, HOST.to_string(), i32::from(ctx.port))],
    )?;
    if version == 0 {
        return Ok(());
    }
    eq("endpoint type", resp.endpoint_type, 1)?;
    if version >= 2 {
        // Asking for fenced brokers too: the one broker, not fenced.
        let req = DescribeClusterRequest::default().with_include_fenced_brokers(true);
        let resp = ctx.request(&req, version)?;
        let brokers: Vec<_> = resp
            .brokers
            .iter()
            .map(|b| (b.broker_id.0, b.is_fenced))
            .collect();
        eq("brokers with fenced ones", brokers, vec![(1, false)])?;
    }
    // A broker listener asked for controllers, or for a type with no name.
    for (endpoint_type, want) in [
        (2, MISMATCHED_ENDPOINT_TYPE),
        (9, UNSUPPORTED_ENDPOINT_TYPE),
    ] {
        let req = DescribeClusterRequest::default().with_endpoint_type(endpoint_type);
        code(
            &format!("endpoint type {endpoint_type}"),
            ctx.request(&req, version)?.error_code,
            want,
        )?;
    }
    Ok(())
}

/// The one broker is alive, so it is not unregistered (INVALID_REQUEST);
/// an id never registered is BROKER_ID_NOT_REGISTERED. Unregistering a
/// fenced broker is in tests/tests/cluster.rs.
pub(crate) fn unregister_broker(ctx: &mut Ctx, version: i16) -> Result<()> {
    use kafka_protocol::messages::{BrokerId, UnregisterBrokerRequest};
    for (id, want) in [(1, INVALID_REQUEST), (77, BROKER_ID_NOT_REGISTERED)] {
        let req = UnregisterBrokerRequest::default().with_broker_id(BrokerId(id));
        code(
            &format!("unregister broker {id}"),
            ctx.request(&req, version)?.error_code,
            want,
        )?;
    }
    // Still registered and listed.
    let resp = ctx.request(&DescribeClusterRequest::default(), 0)?;
    eq(
        "brokers",
        resp.brokers
            .iter()
            .map(|b| b.broker_id.0)
            .collect::<Vec<_>>(),
        vec![1],
    )
}

fn quorum_request(topic: &str, partition: i32) -> DescribeQuorumRequest {
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(topic_name(topic))
        .with_partitions(vec![
            PartitionData::default().with_partition_index(partition)
        ])])
}

/// The single node is the lone voter and leader of the metadata quorum:
/// its log end is the high watermark, and one topic creation is one more
/// committed entry. v1 adds the voter's fetch and catch-up times (now, for
/// the leader); v2 adds directory ids (none yet) and endpoints (a lone
/// voter has no controller listener).
pub(crate) fn describe_quorum(ctx: &mut Ctx, version: i16) -> Result<()> {
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let before = now_ms();
    let resp = ctx.request(&quorum_request("__cluster_metadata", 0), version)?;
    let after = now_ms();
    code("describe quorum", resp.error_code, NONE)?;
    let topic = only(&resp.topics, "topics")?;
    eq("topic", topic.topic_name.as_str(), "__cluster_metadata")?;
    let p = only(&topic.partitions, "partitions")?;
    code("partition", p.error_code, NONE)?;
    eq("leader", p.leader_id.0, 1)?;
    ensure!(p.leader_epoch >= 1, "leader epoch {}", p.leader_epoch);
    let voter = only(&p.current_voters, "voters")?;
    eq("voter", voter.replica_id.0, 1)?;
    eq("voter's log end", voter.log_end_offset, p.high_watermark)?;
    ensure!(p.observers.is_empty(), "observers {:?}", p.observers);
    if version >= 1 {
        for (what, ms) in [
            ("last fetch", voter.last_fetch_timestamp),
            ("last caught up", voter.last_caught_up_timestamp),
        ] {
            ensure!(
                (before..=after).contains(&ms),
                "{what} {ms} not in {before}..={after}"
            );
        }
    }
    if version >= 2 {
        eq("directory id", voter.replica_directory_id, Uuid::nil())?;
        ensure!(resp.nodes.is_empty(), "nodes {:?}", resp.nodes);
    }
    let name = format!("vt-quorum-v{version}");
    create_topic(ctx, &name, 1, &[])?;
    let again = ctx.request(&quorum_request("__cluster_metadata", 0), version)?;
    let hw = only(&only(&again.topics, "topics")?.partitions, "partitions")?.high_watermark;
    eq(
        "high watermark after one creation",
        hw,
        p.high_watermark + 1,
    )?;
    // Only the metadata log's one partition is described, as in Kafka.
    for (topic, partition) in [("__cluster_metadata", 1), (DATA_TOPIC, 0)] {
        let resp = ctx.request(&quorum_request(topic, partition), version)?;
        let p = only(&only(&resp.topics, "topics")?.partitions, "partitions")?;
        code(&format!("{topic}-{partition}"), p.error_code, UNKNOWN_TOPIC)?;
    }
    Ok(())
}

fn dtp_request(
    topics: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> DescribeTopicPartitionsRequest {
    DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| DtpTopicRequest::default().with_name(topic_name(t)))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(t, p)| {
            DtpCursor::default()
                .with_topic_name(topic_name(t))
                .with_partition_index(p)
        }))
}

/// `(topic, [partitions])` of a page, and its next cursor.
type Page = (Vec<(String, i16, Vec<i32>)>, Option<(String, i32)>);

fn page(resp: &kafka_protocol::messages::DescribeTopicPartitionsResponse) -> Page {
    let topics = resp
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().map_or(String::new(), |n| n.0.to_string()),
                t.error_code,
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let cursor = resp
        .next_cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    (topics, cursor)
}

pub(crate) fn describe_topic_partitions(ctx: &mut Ctx, version: i16) -> Result<()> {
    // Two topics of three partitions; names sorted as the broker sorts.
    let mut names = [ctx.fresh("dtp"), ctx.fresh("dtp")];
    names.sort();
    for name in &names {
        let resp = ctx.request(&create_request(creatable(5, name), false), 5)?;
        code("create", only(&resp.topics, "created")?.error_code, NONE)?;
    }
    let (a, b) = (names[0].as_str(), names[1].as_str());

    // A page of four partitions ends inside the second topic.
    let resp = ctx.request(&dtp_request(&[b, a], 4, None), version)?;
    eq(
        "first page",
        page(&resp),
        (
            vec![
                (a.to_string(), NONE, vec![0, 1, 2]),
                (b.to_string(), NONE, vec![0]),
            ],
            Some((b.to_string(), 1)),
        ),
    )?;
    let first = &resp.topics[0];
    let p0 = &first.partitions[0];
    eq(
        "partition 0",
        (
            p0.leader_id.0,
            p0.replica_nodes.len(),
            p0.isr_nodes.len(),
            p0.offline_replicas.len(),
        ),
        (1, 1, 1, 0),
    )?;
    eq(
        "elr",
        p0.eligible_leader_replicas.as_deref().map(<[_]>::len),
        Some(0),
    )?;
    // From the cursor: the rest of the second topic, and no next cursor.
    let resp = ctx.request(&dtp_request(&[a, b], 4, Some((b, 1))), version)?;
    eq(
        "second page",
        page(&resp),
        (vec![(b.to_string(), NONE, vec![1, 2])], None),
    )?;
    // The data topic by its id, and topics that are not there.
    let resp = ctx.request(
        &dtp_request(&[DATA_TOPIC, MISSING_TOPIC, "bad/name"], 100, None),
        version,
    )?;
    eq(
        "errors",
        page(&resp).0,
        vec![
            (
                "bad/name".to_string(),
                ResponseError::InvalidTopicException.code(),
                vec![],
            ),
            (DATA_TOPIC.to_string(), NONE, vec![0, 1]),
            (MISSING_TOPIC.to_string(), UNKNOWN_TOPIC, vec![]),
        ],
    )?;
    eq(
        "data topic id",
        resp.topics[1].topic_id,
        ctx.fixture.topic_id,
    )?;
    // A cursor on a topic the list does not name is refused.
    let resp = ctx.request(&dtp_request(&[a], 10, Some((b, 0))), version)?;
    eq(
        "refused",
        page(&resp).0,
        vec![(a.to_string(), INVALID_REQUEST, vec![])],
    )?;
    // Every topic, in name order, when none is named.
    let resp = ctx.request(&dtp_request(&[], 2000, None), version)?;
    let listed: Vec<String> = page(&resp).0.into_iter().map(|(n, _, _)| n).collect();
    let mut sorted = listed.clone();
    sorted.sort();
    ensure!(listed == sorted, "topics not in name order: {listed:?}");
    ensure!(
        listed.iter().any(|n| n == a) && listed.iter().any(|n| n == DATA_TOPIC),
        "{listed:?}"
    );
    Ok(())
}

/// ElectLeaders on one broker: every partition's only replica leads it, so
/// a preferred election (and an unclean one, from v1) is not needed; an
/// unknown topic is named; "all partitions" answers only the elections that
/// were needed (none).
pub(crate) fn elect_leaders(ctx: &mut Ctx, version: i16) -> Result<()> {
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    use kafka_protocol::messages::ElectLeadersRequest;
    const ELECTION_NOT_NEEDED: i16 = ResponseError::ElectionNotNeeded.code();
    let kinds: &[i8] = if version >= 1 { &[0, 1] } else { &[0] };
    for &kind in kinds {
        let mut req = ElectLeadersRequest::default()
            .with_timeout_ms(30_000)
            .with_topic_partitions(Some(vec![
                TopicPartitions::default()
                    .with_topic(topic_name(DATA_TOPIC))
                    .with_partitions(vec![0, 1]),
                TopicPartitions::default()
                    .with_topic(topic_name(MISSING_TOPIC))
                    .with_partitions(vec![0]),
            ]));
        if version >= 1 {
            req = req.with_election_type(kind);
        }
        let resp = ctx.request(&req, version)?;
        code("top-level error", resp.error_code, NONE)?;
        let mut got: Vec<(String, i32, i16)> = resp
            .replica_election_results
            .iter()
            .flat_map(|t| {
                t.partition_result
                    .iter()
                    .map(|p| (t.topic.0.to_string(), p.partition_id, p.error_code))
            })
            .collect();
        got.sort();
        let mut want = vec![
            (DATA_TOPIC.to_string(), 0, ELECTION_NOT_NEEDED),
            (DATA_TOPIC.to_string(), 1, ELECTION_NOT_NEEDED),
            (MISSING_TOPIC.to_string(), 0, UNKNOWN_TOPIC),
        ];
        want.sort();
        eq(&format!("election type {kind} results"), got, want)?;
        let mut all = ElectLeadersRequest::default().with_timeout_ms(30_000);
        if version >= 1 {
            all = all.with_election_type(kind);
        }
        let resp = ctx.request(&all, version)?;
        eq(
            &format!("election type {kind} over all partitions"),
            resp.replica_election_results.len(),
            0,
        )?;
    }
    Ok(())
}

/// AlterPartitionReassignments on one broker (node 1): a partition
/// already on exactly its target changes nothing; an unregistered broker,
/// an unknown partition or topic, and a cancel with nothing under way get
/// Kafka's codes; from v1, a target of another size is refused when the
/// factor may not change (KIP-860), and the flag comes back. Nothing is
/// left under way.
pub(crate) fn alter_partition_reassignments(ctx: &mut Ctx, version: i16) -> Result<()> {
    use kafka_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, BrokerId};
    const INVALID_REPLICA_ASSIGNMENT: i16 = ResponseError::InvalidReplicaAssignment.code();
    const INVALID_REPLICATION_FACTOR: i16 = ResponseError::InvalidReplicationFactor.code();
    const NO_REASSIGNMENT: i16 = ResponseError::NoReassignmentInProgress.code();
    let to = |index: i32, replicas: Option<&[i32]>| {
        ReassignablePartition::default()
            .with_partition_index(index)
            .with_replicas(replicas.map(|r| r.iter().copied().map(BrokerId).collect()))
    };
    let fixed = version >= 1;
    let mut req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            ReassignableTopic::default()
                .with_name(topic_name(DATA_TOPIC))
                .with_partitions(vec![
                    to(0, Some(&[1])),
                    to(1, Some(&[1, 7])),
                    to(5, Some(&[1])),
                    to(1, None),
                ]),
            ReassignableTopic::default()
                .with_name(topic_name(MISSING_TOPIC))
                .with_partitions(vec![to(0, Some(&[1]))]),
        ]);
    if fixed {
        req = req.with_allow_replication_factor_change(false);
    }
    let resp = ctx.request(&req, version)?;
    code("top-level error", resp.error_code, NONE)?;
    if fixed {
        eq(
            "factor flag echoed",
            resp.allow_replication_factor_change,
            false,
        )?;
    }
    let mut got: Vec<(String, i32, i16)> = resp
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index, p.error_code))
        })
        .collect();
    got.sort();
    let grown = match fixed {
        true => INVALID_REPLICATION_FACTOR,
        false => INVALID_REPLICA_ASSIGNMENT,
    };
    let mut want = vec![
        (DATA_TOPIC.to_string(), 0, NONE),
        (DATA_TOPIC.to_string(), 1, grown),
        (DATA_TOPIC.to_string(), 1, NO_REASSIGNMENT),
        (DATA_TOPIC.to_string(), 5, UNKNOWN_TOPIC),
        (MISSING_TOPIC.to_string(), 0, UNKNOWN_TOPIC),
    ];
    want.sort();
    eq("results", got, want)?;
    ensure!(
        list_reassignments(ctx, None)?.is_empty(),
        "a refused or empty reassignment was left under way"
    );
    Ok(())
}

/// One reassignment under way: topic, partition, replicas, adding, removing.
type Listed = (String, i32, Vec<i32>, Vec<i32>, Vec<i32>);

/// Every reassignment under way, via ListPartitionReassignments v0.
fn list_reassignments(ctx: &mut Ctx, topics: Option<&[(&str, &[i32])]>) -> Result<Vec<Listed>> {
    use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
    use kafka_protocol::messages::ListPartitionReassignmentsRequest;
    let req = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(topics.map(|list| {
            list.iter()
                .map(|(t, p)| {
                    ListPartitionReassignmentsTopics::default()
                        .with_name(topic_name(t))
                        .with_partition_indexes(p.to_vec())
                })
                .collect()
        }));
    let resp = ctx.request(&req, 0)?;
    code("list top-level error", resp.error_code, NONE)?;
    let ids = |l: &[kafka_protocol::messages::BrokerId]| l.iter().map(|b| b.0).collect::<Vec<_>>();
    Ok(resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    ids(&p.replicas),
                    ids(&p.adding_replicas),
                    ids(&p.removing_replicas),
                )
            })
        })
        .collect())
}

/// ListPartitionReassignments on one broker: nothing is under way, asked
/// for all or for named partitions (reassignments under way are listed in
/// the cluster test, tests/tests/replication.rs).
pub(crate) fn list_partition_reassignments(ctx: &mut Ctx, version: i16) -> Result<()> {
    ensure!(version == 0, "only v0 exists");
    eq("all", list_reassignments(ctx, None)?, vec![])?;
    eq(
        "named",
        list_reassignments(ctx, Some(&[(DATA_TOPIC, &[0, 1]), (MISSING_TOPIC, &[0])]))?,
        vec![],
    )?;
    Ok(())
}

/// DescribeLogDirs: the broker's one data directory, with the partitions
/// asked for that it holds (partition 0's size is exactly the bytes of its
/// batches, read back with Fetch; the empty partition 1 is 0 bytes; no lag
/// on a leader), nothing for an unknown topic, every partition when asked
/// for all; from v4 the directory's total and usable bytes.
pub(crate) fn describe_log_dirs(ctx: &mut Ctx, version: i16) -> Result<()> {
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{DescribeLogDirsRequest, FetchRequest};
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(16 * 1024 * 1024)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(DATA_TOPIC))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(16 * 1024 * 1024)])]);
    let fetched = ctx.request(&fetch, 4)?;
    let batch_bytes = fetched.responses[0].partitions[0]
        .records
        .as_ref()
        .map_or(0, |r| r.len()) as i64;
    ensure!(batch_bytes > 0, "nothing fetched from {DATA_TOPIC}-0");
    let req = DescribeLogDirsRequest::default().with_topics(Some(vec![
        DescribableLogDirTopic::default()
            .with_topic(topic_name(DATA_TOPIC))
            .with_partitions(vec![0, 1]),
        DescribableLogDirTopic::default()
            .with_topic(topic_name(MISSING_TOPIC))
            .with_partitions(vec![0]),
    ]));
    let resp = ctx.request(&req, version)?;
    code("top-level error", resp.error_code, NONE)?;
    let dir = only(&resp.results, "log dirs")?;
    code("log dir error", dir.error_code, NONE)?;
    ensure!(
        std::path::Path::new(dir.log_dir.as_str()).is_absolute(),
        "log dir {:?} is not an absolute path",
        dir.log_dir
    );
    let listed: Vec<(String, i32, i64, i64, bool)> = dir
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.partition_size,
                    p.offset_lag,
                    p.is_future_key,
                )
            })
        })
        .collect();
    eq(
        "partitions",
        listed,
        vec![
            (DATA_TOPIC.to_string(), 0, batch_bytes, 0, false),
            (DATA_TOPIC.to_string(), 1, 0, 0, false),
        ],
    )?;
    if version >= 4 {
        ensure!(
            dir.total_bytes > 0 && (0..=dir.total_bytes).contains(&dir.usable_bytes),
            "total {} usable {}",
            dir.total_bytes,
            dir.usable_bytes
        );
    } else {
        eq(
            "space before v4",
            (dir.total_bytes, dir.usable_bytes),
            (-1, -1),
        )?;
    }
    let all = ctx.request(
        &DescribeLogDirsRequest::default().with_topics(None),
        version,
    )?;
    let names: Vec<&str> = all.results[0]
        .topics
        .iter()
        .map(|t| t.name.0.as_str())
        .collect();
    ensure!(names.contains(&DATA_TOPIC), "all partitions: {names:?}");
    Ok(())
}
