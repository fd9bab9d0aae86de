//! Produce, Fetch, ListOffsets, Metadata and ApiVersions.

use std::collections::BTreeSet;

use anyhow::{ensure, Result};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiVersionsRequest, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, MetadataRequest,
    ProduceRequest,
};
use uuid::Uuid;
use vltava_protocol::SUPPORTED_APIS;
use vltava_tests::raw::{topic_name, TestRecord};

use super::support::*;
use super::Ctx;

fn produce_at(
    ctx: &mut Ctx,
    version: i16,
    topic: &str,
    records: &[TestRecord],
) -> Result<PartitionProduceResponse> {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(TIMEOUT_MS)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(encode(records)))])]);
    let resp = ctx.request(&req, version)?;
    let topic_resp = only(&resp.responses, "produce topics")?;
    eq("produce topic", topic_resp.name.0.as_str(), topic)?;
    Ok(only(&topic_resp.partition_responses, "produce partitions")?.clone())
}

pub(crate) fn produce(ctx: &mut Ctx, version: i16) -> Result<()> {
    let topic = ctx.fresh("produce");
    create_topic(ctx, &topic, 1, &[])?;
    let first = kv_batch("first", 2);
    let second = kv_batch("second", 3);
    for (records, base) in [(&first, 0), (&second, 2)] {
        let resp = produce_at(ctx, version, &topic, records)?;
        code("produce", resp.error_code, NONE)?;
        eq("base offset", resp.base_offset, base)?;
        eq(
            "log append time (CreateTime topic)",
            resp.log_append_time_ms,
            -1,
        )?;
        if version >= 5 {
            eq("log start offset", resp.log_start_offset, 0)?;
        }
    }
    let data = ctx.client.fetch(&topic, 0, 0)?;
    let mut written = rows(&first);
    written.extend(rows(&second).into_iter().map(|(o, k, v)| (o + 2, k, v)));
    eq("records read back", fetched(&data), written)?;
    let missing = produce_at(ctx, version, MISSING_TOPIC, &first)?;
    code(
        "produce to unknown topic",
        missing.error_code,
        UNKNOWN_TOPIC,
    )
}

fn fetch_request(ctx: &Ctx, version: i16, topic: &str, id: Uuid, offset: i64) -> FetchRequest {
    let mut partition = FetchPartition::default()
        .with_partition(0)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(1024 * 1024);
    if version >= 9 {
        partition = partition.with_current_leader_epoch(ctx.fixture.leader_epoch);
    }
    let fetch_topic = if version >= 13 {
        FetchTopic::default().with_topic_id(id)
    } else {
        FetchTopic::default().with_topic(topic_name(topic))
    };
    FetchRequest::default()
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(16 * 1024 * 1024)
        .with_topics(vec![fetch_topic.with_partitions(vec![partition])])
}

/// The one partition of a fetch answer, after checking it names the topic
/// the way this version does.
fn fetched_partition(
    resp: &FetchResponse,
    version: i16,
    topic: &str,
    id: Uuid,
) -> Result<PartitionData> {
    if version >= 7 {
        code("fetch", resp.error_code, NONE)?;
    }
    let t = only(&resp.responses, "fetched topics")?;
    if version >= 13 {
        eq("fetched topic id", t.topic_id, id)?;
    } else {
        eq("fetched topic", t.topic.0.as_str(), topic)?;
    }
    Ok(only(&t.partitions, "fetched partitions")?.clone())
}

/// The two ways clients fetch: librdkafka reads committed data without
/// fetch sessions; the Java client reads uncommitted data and, from v7, asks
/// for a session (epoch 0), which the broker declines by answering session
/// 0: every fetch is a full one.
fn fetch_as(ctx: &Ctx, version: i16, offset: usize, java: bool) -> FetchRequest {
    let mut req = fetch_request(
        ctx,
        version,
        DATA_TOPIC,
        ctx.fixture.topic_id,
        offset as i64,
    );
    if !java {
        req.isolation_level = READ_COMMITTED;
    } else if version >= 7 {
        req.session_epoch = 0;
    }
    req
}

pub(crate) fn fetch(ctx: &mut Ctx, version: i16) -> Result<()> {
    let id = ctx.fixture.topic_id;
    for (offset, java) in [(0, false), (FIRST_BATCH, true)] {
        let req = fetch_as(ctx, version, offset, java);
        let resp = ctx.request(&req, version)?;
        if version >= 7 {
            eq("fetch session", resp.session_id, 0)?;
        }
        let data = fetched_partition(&resp, version, DATA_TOPIC, id)?;
        code("fetch partition", data.error_code, NONE)?;
        let end = DATA_RECORDS as i64;
        eq(
            "high watermark, last stable offset",
            (data.high_watermark, data.last_stable_offset),
            (end, end),
        )?;
        if version >= 5 {
            eq("log start offset", data.log_start_offset, 0)?;
        }
        // Null unless reading committed data: then the (empty) list of
        // aborted transactions to skip.
        eq(
            "aborted transactions",
            data.aborted_transactions.clone(),
            (!java).then(Vec::new),
        )?;
        eq(
            &format!("records from {offset}"),
            fetched(&data),
            ctx.fixture.from(offset),
        )?;
    }
    let past_end = fetch_request(ctx, version, DATA_TOPIC, id, DATA_RECORDS as i64 + 1);
    let data = fetched_partition(&ctx.request(&past_end, version)?, version, DATA_TOPIC, id)?;
    code("fetch past the end", data.error_code, OFFSET_OUT_OF_RANGE)?;
    if version >= 9 {
        let mut ahead = fetch_request(ctx, version, DATA_TOPIC, id, 0);
        ahead.topics[0].partitions[0].current_leader_epoch += 1;
        let data = fetched_partition(&ctx.request(&ahead, version)?, version, DATA_TOPIC, id)?;
        code(
            "fetch with a newer leader epoch",
            data.error_code,
            UNKNOWN_LEADER_EPOCH,
        )?;
    }
    let (missing_id, want) = if version >= 13 {
        (Uuid::new_v4(), UNKNOWN_TOPIC_ID)
    } else {
        (Uuid::nil(), UNKNOWN_TOPIC)
    };
    let req = fetch_request(ctx, version, MISSING_TOPIC, missing_id, 0);
    let resp = ctx.request(&req, version)?;
    let data = fetched_partition(&resp, version, MISSING_TOPIC, missing_id)?;
    code("fetch unknown topic", data.error_code, want)
}

fn list_offsets_request(
    ctx: &Ctx,
    version: i16,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> ListOffsetsRequest {
    let mut p = ListOffsetsPartition::default()
        .with_partition_index(partition)
        .with_timestamp(timestamp);
    if version >= 4 {
        p = p.with_current_leader_epoch(ctx.fixture.leader_epoch);
    }
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![p])])
}

fn list_offset_at(
    ctx: &mut Ctx,
    version: i16,
    req: &ListOffsetsRequest,
) -> Result<ListOffsetsPartitionResponse> {
    let asked = &req.topics[0];
    let resp = ctx.request(req, version)?;
    let t = only(&resp.topics, "listed topics")?;
    eq("listed topic", &t.name, &asked.name)?;
    let answer = only(&t.partitions, "listed partitions")?;
    eq(
        "listed partition",
        answer.partition_index,
        asked.partitions[0].partition_index,
    )?;
    Ok(answer.clone())
}

pub(crate) fn list_offsets(ctx: &mut Ctx, version: i16) -> Result<()> {
    let ts = |i: usize| ctx.fixture.records[i].timestamp_ms;
    let mut lookups = vec![
        ("latest", 0, LATEST, DATA_RECORDS as i64, -1),
        ("earliest", 0, EARLIEST, 0, -1),
        ("latest of the empty partition", 1, LATEST, 0, -1),
        ("by timestamp", 0, ts(1), 1, ts(1)),
        ("past the last timestamp", 0, ts(4) + 1, -1, -1),
    ];
    if version >= 7 {
        lookups.push(("max timestamp", 0, MAX_TIMESTAMP, 4, ts(4)));
    }
    for (what, partition, timestamp, offset, found_ts) in lookups {
        let mut req = list_offsets_request(ctx, version, DATA_TOPIC, partition, timestamp);
        let answer = list_offset_at(ctx, version, &req)?;
        check_listed(ctx, version, what, &answer, (offset, found_ts))?;
        if version >= 2 {
            // librdkafka reads committed data: the last stable offset,
            // here the same as the high watermark.
            req.isolation_level = READ_COMMITTED;
            let answer = list_offset_at(ctx, version, &req)?;
            check_listed(ctx, version, what, &answer, (offset, found_ts))?;
        }
    }
    if version >= 4 {
        let mut ahead = list_offsets_request(ctx, version, DATA_TOPIC, 0, LATEST);
        ahead.topics[0].partitions[0].current_leader_epoch += 1;
        let answer = list_offset_at(ctx, version, &ahead)?;
        code(
            "a newer leader epoch",
            answer.error_code,
            UNKNOWN_LEADER_EPOCH,
        )?;
    }
    let req = list_offsets_request(ctx, version, MISSING_TOPIC, 0, LATEST);
    let missing = list_offset_at(ctx, version, &req)?;
    code("unknown topic", missing.error_code, UNKNOWN_TOPIC)?;
    eq(
        "unknown topic offset",
        (missing.offset, missing.timestamp),
        (-1, -1),
    )
}

fn check_listed(
    ctx: &Ctx,
    version: i16,
    what: &str,
    answer: &ListOffsetsPartitionResponse,
    (offset, timestamp): (i64, i64),
) -> Result<()> {
    code(what, answer.error_code, NONE)?;
    eq(what, (answer.offset, answer.timestamp), (offset, timestamp))?;
    if version >= 4 {
        // Nothing found has no epoch.
        let epoch = if offset >= 0 {
            ctx.fixture.leader_epoch
        } else {
            -1
        };
        eq(&format!("{what} leader epoch"), answer.leader_epoch, epoch)?;
    }
    Ok(())
}

fn metadata_request(version: i16, topics: Option<&[&str]>) -> MetadataRequest {
    let topics = match topics {
        Some(names) => Some(
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect(),
        ),
        // v0 has no null list: empty means all topics.
        None if version == 0 => Some(Vec::new()),
        None => None,
    };
    let req = MetadataRequest::default().with_topics(topics);
    match version {
        0..=3 => req,
        4..=7 => req.with_allow_auto_topic_creation(false),
        _ => req
            .with_allow_auto_topic_creation(false)
            .with_include_topic_authorized_operations(true),
    }
}

pub(crate) fn metadata(ctx: &mut Ctx, version: i16) -> Result<()> {
    let resp = ctx.request(&metadata_request(version, Some(&[DATA_TOPIC])), version)?;
    let brokers: Vec<_> = resp
        .brokers
        .iter()
        .map(|b| (b.node_id.0, b.host.to_string(), b.port))
        .collect();
    eq(
        "brokers",
        brokers,
        vec![(1, HOST.to_string(), i32::from(ctx.port))],
    )?;
    if version >= 1 {
        eq("controller", resp.controller_id.0, 1)?;
    }
    if version >= 2 {
        eq(
            "cluster id",
            resp.cluster_id.as_deref(),
            Some(ctx.fixture.cluster_id.as_str()),
        )?;
    }
    check_data_topic(ctx, version, only(&resp.topics, "metadata topics")?)?;
    let all = ctx.request(&metadata_request(version, None), version)?;
    let names: BTreeSet<_> = all
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref())
        .map(|n| n.0.to_string())
        .collect();
    ensure!(
        names.contains(DATA_TOPIC),
        "all topics {names:?} lack {DATA_TOPIC}"
    );
    metadata_of_unknown_topic(ctx, version)
}

fn check_data_topic(ctx: &Ctx, version: i16, topic: &MetadataResponseTopic) -> Result<()> {
    code("data topic", topic.error_code, NONE)?;
    eq(
        "topic name",
        topic.name.as_ref().map(|n| n.0.as_str()),
        Some(DATA_TOPIC),
    )?;
    if version >= 1 {
        eq("is internal", topic.is_internal, false)?;
    }
    if version >= 10 {
        eq("topic id", topic.topic_id, ctx.fixture.topic_id)?;
    }
    if version >= 8 {
        let ops = topic.topic_authorized_operations;
        ensure!(
            ops != i32::MIN && ops & READ_OPERATION != 0,
            "topic operations {ops:#x} lack READ"
        );
    }
    let partitions: Vec<_> = topic
        .partitions
        .iter()
        .map(|p| {
            (
                p.error_code,
                p.partition_index,
                p.leader_id.0,
                p.replica_nodes.clone(),
                p.isr_nodes.clone(),
            )
        })
        .collect();
    let want: Vec<_> = (0..DATA_PARTITIONS)
        .map(|i| (NONE, i, 1, vec![BrokerId(1)], vec![BrokerId(1)]))
        .collect();
    eq("partitions", partitions, want)?;
    if version >= 7 {
        eq(
            "leader epoch",
            topic.partitions[0].leader_epoch,
            ctx.fixture.leader_epoch,
        )?;
    }
    Ok(())
}

/// Before v4 a Metadata request always allows auto-creation (the broker
/// default `auto.create.topics.enable=true` applies); from v4 the client
/// says no and the topic stays unknown.
fn metadata_of_unknown_topic(ctx: &mut Ctx, version: i16) -> Result<()> {
    let name = ctx.fresh("metadata-auto");
    let resp = ctx.request(&metadata_request(version, Some(&[&name])), version)?;
    let topic = only(&resp.topics, "unknown topic metadata")?;
    if version >= 4 {
        code("unknown topic", topic.error_code, UNKNOWN_TOPIC)?;
        return eq(
            "partitions after refused auto-creation",
            partition_count(ctx, &name)?,
            None,
        );
    }
    ensure!(
        [NONE, LEADER_NOT_AVAILABLE].contains(&topic.error_code),
        "auto-created topic: error {}",
        topic.error_code
    );
    eq(
        "auto-created partitions (num.partitions)",
        partition_count(ctx, &name)?,
        Some(1),
    )
}

pub(crate) fn api_versions(ctx: &mut Ctx, version: i16) -> Result<()> {
    let req = if version >= 3 {
        ApiVersionsRequest::default()
            .with_client_software_name(text("vltava-tests"))
            .with_client_software_version(text("0.1.0"))
    } else {
        ApiVersionsRequest::default()
    };
    let resp = ctx.request(&req, version)?;
    code("api versions", resp.error_code, NONE)?;
    let got: BTreeSet<_> = resp
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    let want: BTreeSet<_> = SUPPORTED_APIS
        .iter()
        .map(|&(k, min, max)| (k as i16, min, max))
        .collect();
    eq("advertised versions", got, want)
}

/// OffsetForLeaderEpoch asks where an epoch ended: the fixture's records
/// were all written in its leader epoch, so that epoch ends at the log end
/// (0 for the empty partition); a later epoch has no answer (-1, -1).
pub(crate) fn offset_for_leader_epoch(ctx: &mut Ctx, version: i16) -> Result<()> {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    use kafka_protocol::messages::OffsetForLeaderEpochRequest;
    let epoch = ctx.fixture.leader_epoch;
    let ask = |ctx: &mut Ctx, topic: &str, partition: i32, current: i32, asked: i32| {
        let mut req = OffsetForLeaderEpochRequest::default().with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(partition)
                    .with_current_leader_epoch(current)
                    .with_leader_epoch(asked)]),
        ]);
        if version >= 3 {
            req = req.with_replica_id(BrokerId(-1));
        }
        let resp = ctx.request(&req, version)?;
        let t = only(&resp.topics, "topics")?;
        eq("topic", t.topic.0.as_str(), topic)?;
        let p = only(&t.partitions, "partitions")?;
        eq("partition", p.partition, partition)?;
        Ok::<_, anyhow::Error>((p.error_code, p.leader_epoch, p.end_offset))
    };
    let end = DATA_RECORDS as i64;
    let cases = [
        (
            "the current epoch",
            DATA_TOPIC,
            0,
            epoch,
            epoch,
            (NONE, epoch, end),
        ),
        (
            "no current epoch given",
            DATA_TOPIC,
            0,
            -1,
            epoch,
            (NONE, epoch, end),
        ),
        (
            "a later epoch",
            DATA_TOPIC,
            0,
            epoch,
            epoch + 1,
            (NONE, -1, -1),
        ),
        // A leader records its epoch at its log end when elected, as Kafka
        // does, so even an empty log knows where the epoch started.
        (
            "an empty log",
            DATA_TOPIC,
            1,
            epoch,
            epoch,
            (NONE, epoch, 0),
        ),
        (
            "a newer current epoch",
            DATA_TOPIC,
            0,
            epoch + 1,
            epoch,
            (UNKNOWN_LEADER_EPOCH, -1, -1),
        ),
        (
            "an unknown topic",
            MISSING_TOPIC,
            0,
            -1,
            0,
            (UNKNOWN_TOPIC, -1, -1),
        ),
    ];
    for (what, topic, partition, current, asked, expected) in cases {
        let answer = ask(ctx, topic, partition, current, asked)?;
        eq(what, answer, expected)?;
    }
    Ok(())
}
