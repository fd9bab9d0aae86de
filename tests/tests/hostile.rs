//! Hostile input that once lost data or took the broker down (issue 11,
//! items 1-5, 7, 17, 18): each request gets Kafka's error code, the broker
//! keeps serving everyone else, nothing acknowledged changes, and it
//! restarts. The limits named here are listed in docs/reliability.md.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, CreatePartitionsRequest, ElectLeadersRequest,
    GroupId, JoinGroupRequest, MetadataRequest, OffsetCommitRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use vltava_tests::raw::{
    decode_batches, encode_batch, topic_name, ProducerStamp, RawClient, TestRecord,
    LATEST_TIMESTAMP,
};
use vltava_tests::{vltava_bin, TestBroker, BROKER_START_TIMEOUT};

const CORRUPT_MESSAGE: i16 = 2;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const INVALID_GROUP_ID: i16 = 24;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REQUEST: i16 = 42;
const INVALID_RECORD: i16 = 87;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// Peak broker memory the bomb test allows: a codec's state and buffers, far
/// below the 128 MiB the smaller bomb inflates to.
const BOMB_PEAK_GROWTH_MIB_MAX: u64 = 64;
const KAFKA_STORAGE_ERROR: i16 = 56;
const LEADER_NOT_AVAILABLE: i16 = 5;

// Byte positions in a v2 batch header.
const CRC_AT: usize = 17;
const CRC_COVERED_FROM: usize = 21;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const RECORDS_COUNT_AT: usize = 57;
const HEADER_BYTES: usize = 61;

fn one_record(value: &str) -> Bytes {
    encode_batch(
        &[TestRecord::kv("k", value)],
        ProducerStamp::NONE,
        Compression::None,
    )
}

fn reseal(mut batch: Vec<u8>) -> Bytes {
    let len = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c(&batch[CRC_COVERED_FROM..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(batch)
}

/// CRC32C (Castagnoli), bit by bit: the tests need it for a handful of
/// small batches only.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// `batch` with its record count and last offset delta replaced and its CRC
/// recomputed, so only the broker's count checks can refuse it.
fn with_counts(batch: &Bytes, records_count: i32, last_offset_delta: i32) -> Bytes {
    let mut bytes = batch.to_vec();
    bytes[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&records_count.to_be_bytes());
    bytes[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
        .copy_from_slice(&last_offset_delta.to_be_bytes());
    reseal(bytes)
}

/// An uncompressed batch header (from a real one-record batch) over
/// `records`, claiming `count` records.
fn with_records(records: &[u8], count: i32, codec: u8) -> Bytes {
    let mut bytes = one_record("x")[..HEADER_BYTES].to_vec();
    bytes.extend_from_slice(records);
    bytes[ATTRIBUTES_AT + 1] = codec;
    bytes[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&count.to_be_bytes());
    bytes[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
        .copy_from_slice(&(count - 1).to_be_bytes());
    reseal(bytes)
}

fn zigzag(value: i64, out: &mut Vec<u8>) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One record whose body is `body` (after its length varint).
fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    zigzag(body.len() as i64, &mut out);
    out.extend_from_slice(body);
    out
}

/// A well-formed record body: attributes, timestamp delta 0, `offset_delta`,
/// key "k", value "v", no headers.
fn good_body(offset_delta: i64) -> Vec<u8> {
    let mut body = vec![0u8, 0];
    zigzag(offset_delta, &mut body);
    body.extend_from_slice(&[2, b'k', 2, b'v', 0]);
    body
}

fn assert_refused(resp: &PartitionProduceResponse, code: i16, what: &str) {
    assert_eq!(resp.error_code, code, "{what}: {resp:?}");
    assert_eq!(resp.base_offset, -1, "{what}: {resp:?}");
}

fn assert_log_end(client: &mut RawClient, topic: &str, end: i64) {
    let resp = client.list_offset(topic, 0, LATEST_TIMESTAMP).unwrap();
    assert_eq!(
        (resp.error_code, resp.offset),
        (0, end),
        "log end of {topic}"
    );
}

/// Produces one good record and checks it lands at `offset` and reads back.
fn assert_still_appends(client: &mut RawClient, topic: &str, offset: i64) {
    assert_still_appends_at(client, topic, 0, offset);
    let fetched = client.fetch(topic, 0, offset).unwrap();
    let batches = decode_batches(&fetched.records.unwrap_or_default());
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].records[0].offset, offset);
    assert_eq!(batches[0].records[0].value.as_deref(), Some(&b"after"[..]));
}

#[test]
fn batch_headers_that_lie_about_their_counts_are_refused() {
    let mut broker = TestBroker::start(&[]);
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(c.create_topic_code("lies", 1).unwrap(), 0);
    for i in 0..6 {
        let resp = c.produce("lies", 0, one_record("v"), -1).unwrap();
        assert_eq!(resp.base_offset, i);
    }
    let good = one_record("v");
    for (count, delta) in [
        (0, -10),
        (1_000_000, 0),
        (0, i32::MAX),
        (1, 5),
        (2, 0),
        (-1, -2),
    ] {
        let resp = c
            .produce("lies", 0, with_counts(&good, count, delta), -1)
            .unwrap();
        let what = format!("count {count}, last offset delta {delta}");
        assert_refused(&resp, INVALID_RECORD, &what);
        assert_log_end(&mut c, "lies", 6);
    }
    // A count matching the delta but not the records is caught by the walk.
    let resp = c.produce("lies", 0, with_counts(&good, 3, 2), -1).unwrap();
    assert_refused(&resp, INVALID_RECORD, "3 claimed, 1 present");
    assert_eq!(resp.record_errors.len(), 1, "{resp:?}");
    assert_eq!(resp.record_errors[0].batch_index, 1);
    assert_still_appends(&mut c, "lies", 6);

    broker.stop_sigterm();
    broker.restart();
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_log_end(&mut c, "lies", 7);
    assert_still_appends(&mut c, "lies", 7);
    for entry in std::fs::read_dir(broker.log_dir().join("lies-0")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        assert!(
            !name.starts_with('-'),
            "segment file {name} has a negative offset"
        );
    }
}

#[test]
fn malformed_records_get_kip_467_record_errors() {
    let mut broker = TestBroker::start(&[]);
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(c.create_topic_code("records", 1).unwrap(), 0);

    let mut negative_key = framed(&good_body(0));
    negative_key.extend(framed(&[0, 0, 2, 9])); // key length -5
    let mut long_varint = framed(&good_body(0));
    let mut body = vec![0u8, 0, 2];
    body.extend([0xff; 11]);
    body.push(0x01); // a 12-byte key length
    long_varint.extend(framed(&body));
    let mut many_headers = framed(&good_body(0));
    let mut body = good_body(1);
    *body.last_mut().unwrap() = 0xd0; // header count 1,000 ...
    body.push(0x0f); // ... with no header bytes after it
    many_headers.extend(framed(&body));
    let mut short_length = framed(&good_body(0));
    let body = good_body(1);
    short_length.push((body.len() as u8 - 2) * 2); // a length two bytes short
    short_length.extend(&body);

    for (what, records) in [
        ("key length -5", negative_key),
        ("12-byte varint", long_varint),
        ("header count past the bytes", many_headers),
        ("record length too short", short_length),
    ] {
        let resp = c
            .produce("records", 0, with_records(&records, 2, 0), -1)
            .unwrap();
        assert_refused(&resp, INVALID_RECORD, what);
        let indexes: Vec<i32> = resp.record_errors.iter().map(|e| e.batch_index).collect();
        assert_eq!(indexes, vec![1], "{what}: {resp:?}");
        let message = resp.error_message.as_ref().map(|m| m.to_string());
        assert!(
            message.as_deref().is_some_and(|m| m.contains("index 1")),
            "{what}: error message {message:?}"
        );
    }
    // The same records, well formed, are accepted.
    let mut fine = framed(&good_body(0));
    fine.extend(framed(&good_body(1)));
    let resp = c
        .produce("records", 0, with_records(&fine, 2, 0), -1)
        .unwrap();
    assert_eq!((resp.error_code, resp.base_offset), (0, 0), "{resp:?}");
    assert_still_appends(&mut c, "records", 2);
    broker.assert_running();
}

/// A xerial-framed snappy block whose header claims 4 GiB, 88 bytes in all.
fn snappy_bomb() -> Vec<u8> {
    let mut payload = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
    let block = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
    payload.extend_from_slice(&(block.len() as u32).to_be_bytes());
    payload.extend_from_slice(&block);
    payload
}

#[test]
fn compression_bombs_are_refused_without_inflating_them() {
    let mut broker = TestBroker::start(&[]);
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(
        c.create_topic("bombs", 1, &[("cleanup.policy", "compact")], false)
            .unwrap()
            .topics[0]
            .error_code,
        0
    );
    assert_eq!(c.create_topic_code("plain", 1).unwrap(), 0);
    let peak_before_kib = broker.peak_rss_kib().expect("broker VmHWM");

    let resp = c
        .produce("plain", 0, with_records(&snappy_bomb(), 1, 2), -1)
        .unwrap();
    assert_refused(&resp, INVALID_RECORD, "snappy block claiming 4 GiB");
    // 128 MiB of zeros compress to a few kilobytes of zstd; the broker's
    // bound (64 MiB at the default max.message.bytes) stops the inflation.
    let zeros = TestRecord {
        key: Some(Bytes::from_static(b"k")),
        value: Some(Bytes::from(vec![0u8; 128 << 20])),
        timestamp_ms: vltava_tests::now_ms(),
        headers: Vec::new(),
    };
    let bomb = encode_batch(&[zeros], ProducerStamp::NONE, Compression::Zstd);
    assert!(
        bomb.len() < 1 << 20,
        "the zstd bomb is {} bytes",
        bomb.len()
    );
    for topic in ["plain", "bombs"] {
        let started = Instant::now();
        let resp = c.produce(topic, 0, bomb.clone(), -1).unwrap();
        assert_refused(&resp, INVALID_RECORD, "zstd batch inflating to 128 MiB");
        let message = resp
            .error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default();
        assert!(message.contains("decompress to more than"), "{message}");
        println!("{topic}: zstd bomb refused in {:?}", started.elapsed());
        assert_log_end(&mut c, topic, 0);
    }
    // Neither bomb was inflated: the broker's peak memory grew by less than
    // what either would have taken (4 GiB and 128 MiB).
    let grown_mib = (broker.peak_rss_kib().unwrap() - peak_before_kib) / 1024;
    assert!(
        grown_mib < BOMB_PEAK_GROWTH_MIB_MAX,
        "peak RSS grew {grown_mib} MiB"
    );
    assert_still_appends(&mut c, "plain", 0);
    assert_eq!(
        c.produce("bombs", 0, one_record("kept"), -1)
            .unwrap()
            .base_offset,
        0
    );
    broker.assert_running();
}

#[test]
fn huge_partition_counts_are_refused_by_name() {
    let mut broker = TestBroker::start(&[]);
    let mut c = RawClient::connect(broker.addr()).unwrap();
    let resp = c.create_topic("huge", i32::MAX, &[], false).unwrap();
    assert_eq!(resp.topics[0].error_code, INVALID_PARTITIONS, "{resp:?}");
    let message = resp.topics[0].error_message.as_ref().unwrap().to_string();
    assert!(message.contains("PARTITIONS_PER_REQUEST_MAX"), "{message}");
    assert_eq!(c.create_topic_code("grows", 1).unwrap(), 0);
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name("grows"))
            .with_count(i32::MAX)
            .with_assignments(None)])
        .with_timeout_ms(30_000);
    let resp = c.request(&request, 3).unwrap();
    assert_eq!(resp.results[0].error_code, INVALID_PARTITIONS, "{resp:?}");
    let md = c.metadata(Some(&["grows"])).unwrap();
    assert_eq!(md.topics[0].partitions.len(), 1);

    // Moving or electing more partitions than that in one request is
    // refused whole, by name, before anything is looked up.
    let policy_violation = vltava_protocol::ResponseError::PolicyViolation.code();
    let named = vltava_broker::PARTITIONS_PER_REQUEST_MAX + 1;
    let moves = AlterPartitionReassignmentsRequest::default()
        .with_topics(vec![ReassignableTopic::default()
            .with_name(topic_name("grows"))
            .with_partitions(
                (0..named)
                    .map(|index| {
                        ReassignablePartition::default()
                            .with_partition_index(index)
                            .with_replicas(Some(vec![BrokerId(1)]))
                    })
                    .collect(),
            )])
        .with_timeout_ms(30_000);
    let resp = c.request(&moves, 0).unwrap();
    assert_eq!(
        resp.error_code, policy_violation,
        "{:?}",
        resp.error_message
    );
    let message = resp.error_message.as_ref().unwrap().to_string();
    assert!(message.contains("PARTITIONS_PER_REQUEST_MAX"), "{message}");
    let elections = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_topic_partitions(Some(vec![TopicPartitions::default()
            .with_topic(topic_name("grows"))
            .with_partitions((0..named).collect())]))
        .with_timeout_ms(30_000);
    let resp = c.request(&elections, 2).unwrap();
    assert_eq!(resp.error_code, policy_violation, "{resp:?}");
    broker.assert_running();
}

#[test]
fn reserved_and_internal_names_cannot_be_taken() {
    let mut broker = TestBroker::start(&[]);
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(c.create_topic_code("data", 1).unwrap(), 0);
    assert_eq!(
        c.produce("data", 0, one_record("precious"), -1)
            .unwrap()
            .base_offset,
        0
    );

    assert_eq!(
        c.create_topic_code("__cluster_metadata", 1).unwrap(),
        INVALID_TOPIC_EXCEPTION
    );
    assert_eq!(
        c.create_topic_code("__transaction_state", 1).unwrap(),
        INVALID_REQUEST
    );
    // Auto-creation through Metadata is refused the same way.
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name("__cluster_metadata")))
        ]))
        .with_allow_auto_topic_creation(true);
    let md = c.request(&request, 12).unwrap();
    assert_eq!(md.topics[0].error_code, INVALID_TOPIC_EXCEPTION, "{md:?}");
    let resp = c
        .produce("__cluster_metadata", 0, one_record("x"), -1)
        .unwrap();
    assert_eq!(resp.error_code, UNKNOWN_TOPIC_OR_PARTITION, "{resp:?}");

    broker.stop_sigterm();
    broker.restart();
    let mut c = RawClient::connect(broker.addr()).unwrap();
    let fetched = c.fetch("data", 0, 0).unwrap();
    let batches = decode_batches(&fetched.records.unwrap_or_default());
    assert_eq!(
        batches[0].records[0].value.as_deref(),
        Some(&b"precious"[..])
    );
}

#[test]
fn group_ids_too_long_to_store_are_refused() {
    let broker = TestBroker::start(&[]);
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(c.create_topic_code("g", 1).unwrap(), 0);
    let long = "g".repeat(40_000);
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(long.clone())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name("g"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(1)])]);
    let resp = c.request(&commit, 8).unwrap();
    assert_eq!(
        resp.topics[0].partitions[0].error_code, INVALID_GROUP_ID,
        "{resp:?}"
    );
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(long)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(Bytes::new())]);
    let resp = c.request(&join, 6).unwrap();
    assert_eq!(resp.error_code, INVALID_GROUP_ID, "{resp:?}");
}

/// Runs `vltava server` on `log_dir` expecting it to exit on its own before
/// it listens; returns its status and output.
fn server_refuses(log_dir: &Path, overrides: &[&str]) -> (ExitStatus, String) {
    let port = vltava_tests::free_port();
    let mut cmd = Command::new(vltava_bin());
    cmd.arg("server")
        .arg("--override")
        .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
        .arg("--override")
        .arg(format!("log.dirs={}", log_dir.display()))
        .arg("--override")
        .arg("admin.listeners=")
        .arg("--override")
        .arg("schema.registry.listeners=")
        .arg("--override")
        .arg("rest.proxy.listeners=");
    for o in overrides {
        cmd.arg("--override").arg(o);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vltava");
    let deadline = Instant::now() + BROKER_START_TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("vltava kept running where it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

#[test]
fn a_second_broker_on_the_same_data_directory_is_refused() {
    let mut broker = TestBroker::start(&[]);
    let (status, text) = server_refuses(&broker.log_dir(), &[]);
    assert!(!status.success());
    assert!(text.contains("in use by another broker"), "{text}");
    assert!(
        text.contains(&broker.log_dir().display().to_string()),
        "{text}"
    );
    assert!(
        text.contains(&format!("pid {}", broker.pid().unwrap())),
        "{text}"
    );
    broker.assert_running();
}

#[test]
fn listeners_promising_security_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    for listener in ["SSL://127.0.0.1:0", "SASL_PLAINTEXT://127.0.0.1:0"] {
        let (status, text) = server_refuses(dir.path(), &[&format!("listeners={listener}")]);
        assert!(!status.success());
        assert!(text.contains("does not implement yet"), "{text}");
    }
}

#[test]
fn a_lost_metadata_log_stops_start_up_instead_of_deleting_data() {
    let mut broker = TestBroker::start(&[]);
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(c.create_topic_code("kept", 1).unwrap(), 0);
    assert_eq!(
        c.produce("kept", 0, one_record("v"), -1)
            .unwrap()
            .base_offset,
        0
    );
    broker.stop_sigterm();
    std::fs::remove_dir_all(broker.log_dir().join("__cluster_metadata-0")).unwrap();

    let (status, text) = server_refuses(&broker.log_dir(), &[]);
    assert!(!status.success());
    assert!(text.contains("names no topics"), "{text}");
    let segment = broker.log_dir().join("kept-0/00000000000000000000.log");
    assert!(
        segment.metadata().unwrap().len() > 0,
        "the partition's data is gone"
    );
}

#[test]
fn corrupt_batches_are_still_corrupt_messages() {
    let broker = TestBroker::start(&[]);
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(c.create_topic_code("crc", 1).unwrap(), 0);
    let mut bad = BytesMut::from(&one_record("v")[..]);
    let last = bad.len() - 1;
    bad[last] ^= 0x5a;
    let resp = c.produce("crc", 0, bad.freeze(), -1).unwrap();
    assert_refused(&resp, CORRUPT_MESSAGE, "bad CRC");
}

#[test]
fn a_partition_that_cannot_be_opened_is_offline_and_the_rest_are_served() {
    let mut broker = TestBroker::start(&[]);
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(c.create_topic_code("split", 2).unwrap(), 0);
    for partition in 0..2 {
        let resp = c
            .produce("split", partition, one_record("before"), -1)
            .unwrap();
        assert_eq!((resp.error_code, resp.base_offset), (0, 0));
    }
    broker.stop_sigterm();
    // Partition 1's segment turns into something that cannot be opened.
    let segment = broker.log_dir().join("split-1/00000000000000000000.log");
    std::fs::remove_file(&segment).unwrap();
    std::fs::create_dir(&segment).unwrap();
    broker.restart();
    let mut c = RawClient::connect(broker.addr()).unwrap();

    assert_still_appends_at(&mut c, "split", 0, 1);
    let resp = c.produce("split", 1, one_record("after"), -1).unwrap();
    assert_refused(
        &resp,
        KAFKA_STORAGE_ERROR,
        "produce to the offline partition",
    );
    let fetched = c.fetch("split", 1, 0).unwrap();
    assert_eq!(
        fetched.error_code, KAFKA_STORAGE_ERROR,
        "fetch: {fetched:?}"
    );
    let listed = c.list_offset("split", 1, LATEST_TIMESTAMP).unwrap();
    assert_eq!(
        listed.error_code, KAFKA_STORAGE_ERROR,
        "list offsets: {listed:?}"
    );
    let md = c.metadata(Some(&["split"])).unwrap();
    let p1 = md.topics[0]
        .partitions
        .iter()
        .find(|p| p.partition_index == 1)
        .unwrap();
    assert_eq!(
        (p1.error_code, p1.leader_id.0),
        (LEADER_NOT_AVAILABLE, -1),
        "{p1:?}"
    );
    assert!(broker.stderr_log().contains("partition cannot be opened"));
    broker.assert_running();
}

fn assert_still_appends_at(client: &mut RawClient, topic: &str, partition: i32, offset: i64) {
    let resp = client
        .produce(topic, partition, one_record("after"), -1)
        .unwrap();
    assert_eq!((resp.error_code, resp.base_offset), (0, offset), "{resp:?}");
}
