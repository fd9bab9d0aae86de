//! Every `(api, version)` pair in `SUPPORTED_APIS`, against one real broker.
//!
//! ApiVersions promises each version in `SUPPORTED_APIS`, so each is sent
//! here the way a client of that version builds it (only fields the version
//! has: the request encoder refuses the others) and the answer is checked
//! for content: exact offsets and records, committed offsets, configs read
//! back, group states, and the error codes the Java broker gives for unknown
//! topics, topic ids, groups and members. A handler that sets a field the
//! version lacks makes the response unencodable and the broker closes the
//! connection: that pair fails here, as it failed for old clients.
//!
//! [`CASES`] is the coverage table: one case per API and the versions whose
//! request shapes it builds. `every_supported_version_has_a_case` fails while
//! `SUPPORTED_APIS` and the table disagree. Failures are collected per pair
//! and reported together.
//!
//! The cases live in `versions/`, one function per API, grouped by area;
//! `versions/support.rs` has the checks and the setup and read-back helpers
//! (`create_topic`, `commit`, `join_and_sync`, ...), which use one fixed
//! version each, a version its own case checks too.

// The cases, by area; a test crate's modules sit beside its root, hence the paths.
#[path = "versions/admin.rs"]
mod admin;
#[path = "versions/consumer.rs"]
mod consumer;
#[path = "versions/groups.rs"]
mod groups;
#[path = "versions/records.rs"]
mod records;
#[path = "versions/support.rs"]
mod support;

use std::ops::RangeInclusive;

use anyhow::{Context, Result};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Request;
use uuid::Uuid;
use vltava_protocol::{supported_range, SUPPORTED_APIS};
use vltava_tests::raw::{RawClient, TestRecord};
use vltava_tests::TestBroker;

use support::*;

// ---------------------------------------------------------------------------
// The coverage table.

type Run = fn(&mut Ctx, i16) -> Result<()>;

/// One API's case: `run` sends the API at a version and checks the answer;
/// `covered` lists the versions whose request shapes it builds.
struct Case {
    api: ApiKey,
    covered: RangeInclusive<i16>,
    run: Run,
}

const fn case(api: ApiKey, covered: RangeInclusive<i16>, run: Run) -> Case {
    Case { api, covered, run }
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    case(ApiKey::Produce,                 3..=11, records::produce),
    case(ApiKey::Fetch,                   4..=16, records::fetch),
    case(ApiKey::ListOffsets,             1..=8,  records::list_offsets),
    case(ApiKey::OffsetForLeaderEpoch,    2..=4,  records::offset_for_leader_epoch),
    case(ApiKey::Metadata,                0..=12, records::metadata),
    case(ApiKey::ApiVersions,             0..=4,  records::api_versions),
    case(ApiKey::CreateTopics,            2..=7,  admin::create_topics),
    case(ApiKey::DeleteTopics,            1..=6,  admin::delete_topics),
    case(ApiKey::DeleteRecords,           0..=2,  admin::delete_records),
    case(ApiKey::InitProducerId,          0..=5,  admin::init_producer_id),
    case(ApiKey::DescribeConfigs,         1..=4,  admin::describe_configs),
    case(ApiKey::AlterConfigs,            0..=2,  admin::alter_configs),
    case(ApiKey::CreatePartitions,        0..=3,  admin::create_partitions),
    case(ApiKey::IncrementalAlterConfigs, 0..=1,  admin::incremental_alter_configs),
    case(ApiKey::DescribeCluster,         0..=2,  admin::describe_cluster),
    case(ApiKey::ElectLeaders,            0..=2,  admin::elect_leaders),
    case(ApiKey::AlterPartitionReassignments, 0..=1, admin::alter_partition_reassignments),
    case(ApiKey::ListPartitionReassignments, 0..=0, admin::list_partition_reassignments),
    case(ApiKey::DescribeLogDirs,         1..=4,  admin::describe_log_dirs),
    case(ApiKey::UnregisterBroker,        0..=0,  admin::unregister_broker),
    case(ApiKey::FindCoordinator,         0..=6,  groups::find_coordinator),
    case(ApiKey::JoinGroup,               0..=9,  groups::join_group),
    case(ApiKey::SyncGroup,               0..=5,  groups::sync_group),
    case(ApiKey::Heartbeat,               0..=4,  groups::heartbeat),
    case(ApiKey::LeaveGroup,              0..=5,  groups::leave_group),
    case(ApiKey::OffsetCommit,            2..=9,  groups::offset_commit),
    case(ApiKey::OffsetFetch,             1..=9,  groups::offset_fetch),
    case(ApiKey::ListGroups,              0..=5,  groups::list_groups),
    case(ApiKey::DescribeGroups,          0..=6,  groups::describe_groups),
    case(ApiKey::DeleteGroups,            0..=2,  groups::delete_groups),
    case(ApiKey::OffsetDelete,            0..=0,  groups::offset_delete),
    case(ApiKey::ConsumerGroupHeartbeat,  0..=1,  consumer::consumer_group_heartbeat),
    case(ApiKey::ConsumerGroupDescribe,   0..=1,  consumer::consumer_group_describe),
    case(ApiKey::DescribeTopicPartitions, 0..=0,  admin::describe_topic_partitions),
    case(ApiKey::DescribeQuorum,          0..=2,  admin::describe_quorum),
];

fn case_for(api: ApiKey) -> Option<&'static Case> {
    CASES.iter().find(|c| c.api == api)
}

/// Where `SUPPORTED_APIS` and [`CASES`] disagree, as instructions.
fn coverage_gaps() -> Vec<String> {
    let mut gaps = Vec::new();
    for &(api, min, max) in SUPPORTED_APIS {
        let Some(case) = case_for(api) else {
            gaps.push(format!(
                "{api:?} v{min}-{max} is advertised but has no case: add a case function \
                 (tests/tests/versions/, in the module of its area) that sends {api:?} at each \
                 version the way a client of that version fills it in and checks the answer, \
                 and list it in CASES in tests/tests/versions.rs"
            ));
            continue;
        };
        let uncovered: Vec<i16> = (min..=max).filter(|v| !case.covered.contains(v)).collect();
        if !uncovered.is_empty() {
            gaps.push(format!(
                "{api:?} {} is advertised (SUPPORTED_APIS in \
                 crates/vltava-protocol/src/versions.rs) but its case covers only v{:?}: \
                 teach the case the request fields those versions add or change (the \
                 kafka-protocol message docs list each field's versions), check what they \
                 answer, then widen `covered` in CASES",
                listed(&uncovered),
                case.covered
            ));
        }
        let unrun: Vec<i16> = case
            .covered
            .clone()
            .filter(|v| !(min..=max).contains(v))
            .collect();
        if !unrun.is_empty() {
            gaps.push(format!(
                "{api:?} case claims {}, which SUPPORTED_APIS does not advertise, so they \
                 never run: narrow `covered` in CASES and drop the code for them",
                listed(&unrun)
            ));
        }
    }
    for case in CASES {
        if supported_range(case.api).is_none() {
            gaps.push(format!(
                "{:?} has a case but is not in SUPPORTED_APIS: remove the case",
                case.api
            ));
        }
    }
    gaps
}

fn listed(versions: &[i16]) -> String {
    let names: Vec<String> = versions.iter().map(|v| format!("v{v}")).collect();
    names.join(", ")
}

#[test]
fn every_supported_version_has_a_case() {
    let gaps = coverage_gaps();
    assert!(
        gaps.is_empty(),
        "tests/tests/versions.rs does not cover what ApiVersions advertises:\n  {}",
        gaps.join("\n  ")
    );
}

#[test]
fn every_supported_version_answers_like_kafka() {
    // Without the delay every fresh group's first join would wait Kafka's
    // default 3 s for more members.
    let mut broker = TestBroker::start(&[("group.initial.rebalance.delay.ms", "0")]);
    let mut ctx = Ctx::new(&broker).expect("set up topics, records and a committed group");
    let mut failures = Vec::new();
    let mut pairs = 0;
    for &(api, min, max) in SUPPORTED_APIS {
        // Gaps are reported by every_supported_version_has_a_case.
        let Some(case) = case_for(api) else { continue };
        for version in (min..=max).filter(|v| case.covered.contains(v)) {
            pairs += 1;
            if let Err(e) = ctx.run(case, version) {
                failures.push(format!("{api:?} v{version}: {e:#}"));
            }
        }
    }
    broker.assert_running();
    assert!(
        failures.is_empty(),
        "{} of {pairs} (api, version) pairs failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

// ---------------------------------------------------------------------------
// State shared by the cases.

/// What the setup wrote, and ids the broker gave it.
struct Fixture {
    topic_id: Uuid,
    leader_epoch: i32,
    cluster_id: String,
    /// Partition 0 of the data topic, offset i = records[i].
    records: Vec<TestRecord>,
}

impl Fixture {
    /// `(offset, key, value)` of the data records from `offset` on.
    fn from(&self, offset: usize) -> Vec<(i64, String, String)> {
        rows(&self.records).into_iter().skip(offset).collect()
    }
}

/// What a case gets: a connection (fresh for each pair), the fixture and
/// fresh names.
struct Ctx {
    addr: std::net::SocketAddr,
    port: u16,
    client: RawClient,
    fixture: Fixture,
    names: u32,
}

impl Ctx {
    fn new(broker: &TestBroker) -> Result<Ctx> {
        let mut client = RawClient::connect(broker.addr())?;
        let fixture = set_up(&mut client)?;
        Ok(Ctx {
            addr: broker.addr(),
            port: broker.port(),
            client,
            fixture,
            names: 0,
        })
    }

    /// Runs one pair on a fresh connection: a broker that could not encode
    /// the last response has closed the old one.
    fn run(&mut self, case: &Case, version: i16) -> Result<()> {
        self.client = RawClient::connect(self.addr)?;
        (case.run)(self, version)
    }

    fn request<R: Request>(&mut self, body: &R, version: i16) -> Result<R::Response> {
        self.client.request(body, version)
    }

    /// A name no topic or group has had before.
    fn fresh(&mut self, what: &str) -> String {
        self.names += 1;
        format!("vt-{what}-{}", self.names)
    }
}

fn set_up(client: &mut RawClient) -> Result<Fixture> {
    code(
        "create data topic",
        client.create_topic_code(DATA_TOPIC, DATA_PARTITIONS)?,
        NONE,
    )?;
    // Timestamps a second apart, so ListOffsets by time has one answer.
    let base_ms = vltava_tests::now_ms() - 60_000;
    let records: Vec<TestRecord> = (0..DATA_RECORDS)
        .map(|i| TestRecord {
            timestamp_ms: base_ms + 1000 * i as i64,
            ..TestRecord::kv(&format!("key-{i}"), &format!("value-{i}"))
        })
        .collect();
    for (batch, base) in [
        (&records[..FIRST_BATCH], 0),
        (&records[FIRST_BATCH..], FIRST_BATCH),
    ] {
        let written = client.produce(DATA_TOPIC, 0, encode(batch), -1)?;
        code("produce data", written.error_code, NONE)?;
        eq("data batch base offset", written.base_offset, base as i64)?;
    }
    let md = client.metadata(Some(&[DATA_TOPIC]))?;
    let topic = only(&md.topics, "metadata topics")?;
    let leader_epoch = topic.partitions[0].leader_epoch;
    commit(client, COMMITTED_GROUP, 0, COMMITTED_OFFSET, leader_epoch)?;
    Ok(Fixture {
        topic_id: topic.topic_id,
        leader_epoch,
        cluster_id: md.cluster_id.clone().context("cluster id")?.to_string(),
        records,
    })
}
