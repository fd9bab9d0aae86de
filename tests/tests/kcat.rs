//! An old client end to end: kcat 1.7.1 on librdkafka 2.0.2 (Debian 12's
//! `kcat` package) produces keyed records with headers, consumes them back,
//! consumes them as a balanced consumer group that commits and resumes, and
//! looks offsets up by time.
//!
//! librdkafka 2.0.2 negotiates old request versions: Produce v7, Metadata v4,
//! ListOffsets v2, Fetch v11, FindCoordinator v2, JoinGroup v5, SyncGroup v3,
//! Heartbeat v3, OffsetFetch v7, OffsetCommit v7, LeaveGroup v1 (seen with
//! `kcat -d protocol`). A broker that cannot encode one of those responses
//! fails these tests, as ListOffsets v1-v3 once did.
//!
//! kcat is optional (`scripts/test` installs it with apt when it can). When it
//! is missing, each test prints a note and walks the same protocol path with
//! [`RawClient`] at those versions (plus ListOffsets v1 and v3 and Fetch v4,
//! the oldest a record-batch consumer can use), asserting the same offsets and
//! records, so an old-version encoding bug is caught either way. Set
//! `VLTAVA_TESTS_KCAT=off` to force that fallback, or to a path to use
//! another kcat.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    consumer_protocol_assignment,
    fetch_request::{FetchPartition, FetchTopic},
    join_group_request::JoinGroupRequestProtocol,
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    metadata_request::MetadataRequestTopic,
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    offset_fetch_request::OffsetFetchRequestTopic,
    produce_request::{PartitionProduceData, TopicProduceData},
    sync_group_request::SyncGroupRequestAssignment,
    BrokerId, ConsumerProtocolAssignment, ConsumerProtocolSubscription, FetchRequest,
    FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    ListOffsetsRequest, MetadataRequest, OffsetCommitRequest, OffsetFetchRequest, ProduceRequest,
    SyncGroupRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{Compression, RecordSet};
use vltava_tests::raw::{
    decode_batches, encode_batch, topic_name, ProducerStamp, RawClient, TestRecord,
    EARLIEST_TIMESTAMP, LATEST_TIMESTAMP,
};
use vltava_tests::{now_ms, wait_until, TestBroker};

/// How long one kcat run may take before it is killed and the test fails.
const KCAT_TIMEOUT: Duration = Duration::from_secs(60);
/// The `-f` format every consuming test prints: everything a record carries
/// except its timestamp, which tests that need it add.
const FORMAT: &str = "p=%p o=%o k=%k v=%s h=%h\\n";
/// The request versions librdkafka 2.0.2 sends (see the module docs).
const PRODUCE_V: i16 = 7;
const METADATA_V: i16 = 4;
const FETCH_V: i16 = 11;
const FIND_COORDINATOR_V: i16 = 2;
const JOIN_GROUP_V: i16 = 5;
const SYNC_GROUP_V: i16 = 3;
const HEARTBEAT_V: i16 = 3;
const OFFSET_FETCH_V: i16 = 7;
const OFFSET_COMMIT_V: i16 = 7;
const LEAVE_GROUP_V: i16 = 1;
/// ListOffsets versions before v4, which have no leader epoch in the response.
const OLD_LIST_OFFSETS_VERSIONS: [i16; 3] = [1, 2, 3];
/// Fetch v4 is the oldest version that carries record batches; v11 is what
/// librdkafka 2.0.2 sends.
const OLD_FETCH_VERSIONS: [i16; 2] = [4, FETCH_V];
const MEMBER_ID_REQUIRED: i16 = 79;

/// Broker settings for group tests: no initial rebalance delay, so a lone
/// member is answered as soon as it joins.
const GROUP_BROKER: &[(&str, &str)] = &[("group.initial.rebalance.delay.ms", "0")];

// ---------------------------------------------------------------------------
// The tests.

#[test]
fn kcat_lists_topics() {
    let broker = TestBroker::start(&[]);
    let mut client = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(client.create_topic_code("kcat-listed", 2).unwrap(), 0);

    let Some(kcat) = kcat() else {
        fallback_note("kcat -L", "Metadata v4");
        let req = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name("kcat-listed")))
            ]))
            .with_allow_auto_topic_creation(false);
        let md = client.request(&req, METADATA_V).expect("Metadata v4");
        assert_eq!(md.topics.len(), 1, "{md:?}");
        let topic = &md.topics[0];
        assert_eq!(topic.error_code, 0);
        let mut partitions: Vec<i32> = topic.partitions.iter().map(|p| p.partition_index).collect();
        partitions.sort_unstable();
        assert_eq!(partitions, [0, 1]);
        return;
    };
    let out = run_kcat(&kcat, &["-b", &broker.bootstrap(), "-L", "-m", "10"], "");
    assert!(
        out.stdout
            .contains("topic \"kcat-listed\" with 2 partitions"),
        "kcat -L output lacks the topic:\n{}",
        out.stdout
    );
}

/// Keyed records with headers (one with a null value) go in with `kcat -P`
/// and come back from `kcat -C -o beginning -e` exactly, at offsets 0..n per
/// partition; `-o -1` (relative to the end, so ListOffsets LATEST) reads the
/// last one only.
#[test]
fn kcat_produces_and_consumes_keyed_records_with_headers() {
    let broker = TestBroker::start(&[]);
    let bootstrap = broker.bootstrap();
    let mut client = RawClient::connect(broker.addr()).unwrap();
    let topic = "kcat-records";
    assert_eq!(client.create_topic_code(topic, 2).unwrap(), 0);
    let expected = [
        "p=0 o=0 k=k1 v=v1 h=trace=abc,origin=kcat",
        "p=0 o=1 k=k2 v=v2 h=trace=abc,origin=kcat",
        "p=0 o=2 k=k3 v=NULL h=trace=abc,origin=kcat",
        "p=1 o=0 k=k4 v=v4 h=origin=kcat",
    ];

    let Some(kcat) = kcat() else {
        fallback_note(
            "kcat -P / -C",
            "Produce v7, ListOffsets v1-v3, Fetch v4 and v11",
        );
        let headers = [("trace", "abc"), ("origin", "kcat")];
        let p0 = [
            record("k1", Some("v1"), &headers, now_ms()),
            record("k2", Some("v2"), &headers, now_ms()),
            record("k3", None, &headers, now_ms()),
        ];
        assert_eq!(raw_produce_v7(&mut client, topic, 0, &p0), 0);
        let p1 = [record("k4", Some("v4"), &[("origin", "kcat")], now_ms())];
        assert_eq!(raw_produce_v7(&mut client, topic, 1, &p1), 0);
        for (partition, end) in [(0, 3), (1, 1)] {
            assert_old_list_offsets(&mut client, topic, partition, EARLIEST_TIMESTAMP, 0, -1);
            assert_old_list_offsets(&mut client, topic, partition, LATEST_TIMESTAMP, end, -1);
        }
        for version in OLD_FETCH_VERSIONS {
            let mut lines = raw_fetch_lines(&mut client, topic, 0, 0, version);
            lines.extend(raw_fetch_lines(&mut client, topic, 1, 0, version));
            assert_eq!(lines, expected, "Fetch v{version}");
            let last = raw_fetch_lines(&mut client, topic, 0, 2, version);
            assert_eq!(last, expected[2..3], "Fetch v{version} from offset 2");
        }
        return;
    };

    let before_ms = now_ms();
    let produce = |partition: &str, headers: &[&str], input: &str| {
        let mut args = vec!["-b", &bootstrap, "-P", "-t", topic, "-p", partition];
        args.extend(["-K", ":", "-Z"]);
        for h in headers {
            args.extend(["-H", h]);
        }
        run_kcat(&kcat, &args, input);
    };
    produce("0", &["trace=abc", "origin=kcat"], "k1:v1\nk2:v2\nk3:\n");
    produce("1", &["origin=kcat"], "k4:v4\n");
    let after_ms = now_ms();

    let with_time = format!("{} ts=%T\\n", FORMAT.trim_end_matches("\\n"));
    let out = run_kcat(
        &kcat,
        &[
            "-b",
            &bootstrap,
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-Z",
            "-f",
            &with_time,
        ],
        "",
    );
    let mut lines = Vec::new();
    for line in out.stdout.lines() {
        let (record, ts) = line
            .rsplit_once(" ts=")
            .unwrap_or_else(|| panic!("no timestamp in {line:?}"));
        let ts: i64 = ts.parse().expect("numeric timestamp");
        assert!(
            (before_ms..=after_ms).contains(&ts),
            "{line:?}: CreateTime outside the produce window {before_ms}..={after_ms}"
        );
        lines.push(record.to_string());
    }
    lines.sort();
    assert_eq!(lines, expected, "kcat -C output:\n{}", out.stdout);

    let out = run_kcat(
        &kcat,
        &[
            "-b", &bootstrap, "-C", "-t", topic, "-p", "0", "-o", "-1", "-e", "-Z", "-f", FORMAT,
        ],
        "",
    );
    assert_eq!(out.stdout.lines().collect::<Vec<_>>(), expected[2..3]);
}

/// `kcat -G` (the balanced KafkaConsumer) reads every record of a
/// two-partition topic exactly once, commits on close, and a second run of
/// the same group reads only what was produced after that commit.
#[test]
fn kcat_group_consumer_reads_once_commits_and_resumes() {
    let broker = TestBroker::start(GROUP_BROKER);
    let bootstrap = broker.bootstrap();
    let mut client = RawClient::connect(broker.addr()).unwrap();
    let (topic, group) = ("kcat-group", "kcat-group-1");
    assert_eq!(client.create_topic_code(topic, 2).unwrap(), 0);
    let hdr = [("n", "1")];
    let first = [
        (0, record("a0", Some("x0"), &hdr, now_ms())),
        (0, record("a1", Some("x1"), &hdr, now_ms())),
        (0, record("a2", Some("x2"), &hdr, now_ms())),
        (1, record("b0", Some("y0"), &hdr, now_ms())),
        (1, record("b1", Some("y1"), &hdr, now_ms())),
    ];
    let first_lines = [
        "p=0 o=0 k=a0 v=x0 h=n=1",
        "p=0 o=1 k=a1 v=x1 h=n=1",
        "p=0 o=2 k=a2 v=x2 h=n=1",
        "p=1 o=0 k=b0 v=y0 h=n=1",
        "p=1 o=1 k=b1 v=y1 h=n=1",
    ];
    let second = [
        (0, record("a3", Some("x3"), &hdr, now_ms())),
        (1, record("b2", Some("y2"), &hdr, now_ms())),
    ];
    let second_lines = ["p=0 o=3 k=a3 v=x3 h=n=1", "p=1 o=2 k=b2 v=y2 h=n=1"];
    for (partition, r) in &first {
        client.produce(topic, *partition, one_batch(r), -1).unwrap();
    }

    let Some(kcat) = kcat() else {
        fallback_note(
            "kcat -G",
            "FindCoordinator v2, JoinGroup v5, SyncGroup v3, OffsetFetch v7, ListOffsets v1-v3, \
             Fetch v4 and v11, OffsetCommit v7, LeaveGroup v1",
        );
        let lines = raw_group_generation(&mut client, group, topic, &[None, None], &[3, 2]);
        assert_eq!(lines, first_lines);
        for (partition, r) in &second {
            client.produce(topic, *partition, one_batch(r), -1).unwrap();
        }
        let lines = raw_group_generation(&mut client, group, topic, &[Some(3), Some(2)], &[4, 3]);
        assert_eq!(lines, second_lines);
        return;
    };

    let consumer = GroupConsumer::start(&kcat, &bootstrap, group, topic);
    let lines = consumer.read_until(first_lines.len());
    assert_eq!(lines, first_lines);
    assert_eq!(
        committed(&mut client, group, topic, 2),
        [3, 2],
        "offsets committed by kcat -G on close"
    );

    for (partition, r) in &second {
        client.produce(topic, *partition, one_batch(r), -1).unwrap();
    }
    let consumer = GroupConsumer::start(&kcat, &bootstrap, group, topic);
    let lines = consumer.read_until(second_lines.len());
    assert_eq!(lines, second_lines, "the second run resumes at the commit");
    assert_eq!(committed(&mut client, group, topic, 2), [4, 3]);
}

/// `kcat -Q -t topic:partition:timestamp` prints the first offset whose
/// timestamp is at or after the given one (-1 past the last), across and
/// inside batches; `-o s@timestamp` starts consuming there.
#[test]
fn kcat_queries_offsets_by_time() {
    let broker = TestBroker::start(&[]);
    let bootstrap = broker.bootstrap();
    let mut client = RawClient::connect(broker.addr()).unwrap();
    let topic = "kcat-times";
    assert_eq!(client.create_topic_code(topic, 1).unwrap(), 0);
    // Recent enough that retention keeps them, spaced so every lookup is exact.
    let base = now_ms() - 60_000;
    let batch = |range: std::ops::Range<i64>| {
        let records: Vec<TestRecord> = range
            .map(|i| record(&format!("t{i}"), Some("v"), &[], base + i * 1000))
            .collect();
        encode_batch(&records, ProducerStamp::NONE, Compression::None)
    };
    client.produce(topic, 0, batch(0..3), -1).unwrap();
    client.produce(topic, 0, batch(3..5), -1).unwrap();
    // (timestamp asked, offset found, that record's timestamp)
    let cases = [
        (0, 0, base),
        (base, 0, base),
        (base + 500, 1, base + 1000),
        (base + 1000, 1, base + 1000),
        (base + 2000, 2, base + 2000),
        (base + 2500, 3, base + 3000),
        (base + 4000, 4, base + 4000),
        (base + 4001, -1, -1),
    ];

    let Some(kcat) = kcat() else {
        fallback_note(
            "kcat -Q",
            "ListOffsets v1-v3 by timestamp, Fetch v4 and v11",
        );
        for (ts, offset, found_ts) in cases {
            assert_old_list_offsets(&mut client, topic, 0, ts, offset, found_ts);
        }
        for version in OLD_FETCH_VERSIONS {
            let lines = raw_fetch_lines(&mut client, topic, 0, 3, version);
            assert_eq!(lines, ["p=0 o=3 k=t3 v=v h=", "p=0 o=4 k=t4 v=v h="]);
        }
        return;
    };

    for (ts, offset, _) in cases {
        let query = format!("{topic}:0:{ts}");
        let out = run_kcat(&kcat, &["-b", &bootstrap, "-Q", "-t", &query], "");
        assert_eq!(
            out.stdout,
            format!("{topic} [0] offset {offset}\n"),
            "kcat -Q -t {query}"
        );
    }
    let start = format!("s@{}", base + 2500);
    let out = run_kcat(
        &kcat,
        &[
            "-b", &bootstrap, "-C", "-t", topic, "-o", &start, "-e", "-f", FORMAT,
        ],
        "",
    );
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["p=0 o=3 k=t3 v=v h=", "p=0 o=4 k=t4 v=v h="]
    );
}

// ---------------------------------------------------------------------------
// Running kcat.

/// The kcat to use: `$VLTAVA_TESTS_KCAT` (`off` for none), else `kcat` on PATH.
/// Prints the kcat and librdkafka versions it runs with.
fn kcat() -> Option<PathBuf> {
    let kcat = match std::env::var_os("VLTAVA_TESTS_KCAT") {
        Some(v) if v == "off" => None,
        Some(path) => Some(PathBuf::from(path)),
        None => which("kcat"),
    }?;
    let out = kcat_command(&kcat)
        .arg("-V")
        .output()
        .unwrap_or_else(|e| panic!("run {} -V: {e}", kcat.display()));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = text.lines().find(|l| l.starts_with("Version"));
    println!(
        "{}: {}",
        kcat.display(),
        version.unwrap_or("unknown version")
    );
    Some(kcat)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

fn fallback_note(what: &str, raw: &str) {
    println!("note: kcat is not available; checking the path of {what} with raw {raw} instead");
}

/// A command running `kcat` with its own librdkafka. Cargo puts the
/// directories of native libraries built for this workspace (rdkafka-sys's
/// much newer librdkafka) on `LD_LIBRARY_PATH`, and the system kcat would
/// load that one instead of the librdkafka it was packaged with.
fn kcat_command(kcat: &Path) -> Command {
    let mut command = Command::new(kcat);
    command.env_remove("LD_LIBRARY_PATH");
    command
}

struct KcatOutput {
    stdout: String,
}

/// Runs kcat with `stdin` as its input, waits for it to exit (killing it after
/// [`KCAT_TIMEOUT`]) and asserts it exited 0.
fn run_kcat(kcat: &Path, args: &[&str], stdin: &str) -> KcatOutput {
    let mut child = kcat_command(kcat)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", kcat.display()));
    let mut input = child.stdin.take().expect("piped stdin");
    input.write_all(stdin.as_bytes()).expect("write kcat stdin");
    drop(input);
    let stdout = read_all(child.stdout.take().expect("piped stdout"));
    let stderr = read_all(child.stderr.take().expect("piped stderr"));
    let status = wait_exit(&mut child, KCAT_TIMEOUT);
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    match status {
        Some(status) if status.success() => KcatOutput { stdout },
        Some(status) => panic!("kcat {args:?} exited with {status}\n{stdout}\n{stderr}"),
        None => panic!("kcat {args:?} did not exit within {KCAT_TIMEOUT:?}\n{stdout}\n{stderr}"),
    }
}

fn read_all(mut from: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = from.read_to_string(&mut text);
        text
    })
}

/// Waits up to `timeout` for `child` to exit; kills it and returns `None` if
/// it does not.
fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let mut status = None;
    wait_until(timeout, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

/// A running `kcat -G` whose output lines arrive on a channel.
struct GroupConsumer {
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl GroupConsumer {
    fn start(kcat: &Path, bootstrap: &str, group: &str, topic: &str) -> GroupConsumer {
        let mut child = kcat_command(kcat)
            .args(["-b", bootstrap, "-G", group, "-u", "-Z", "-f", FORMAT])
            .args(["-X", "auto.offset.reset=earliest", topic])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", kcat.display()));
        let (tx, lines) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let err = BufReader::new(child.stderr.take().expect("piped stderr"));
        std::thread::spawn(move || {
            for line in err.lines() {
                let Ok(line) = line else { break };
                let mut sink = sink.lock().expect("stderr sink");
                sink.push_str(&line);
                sink.push('\n');
            }
        });
        GroupConsumer {
            child,
            lines,
            stderr,
        }
    }

    /// Waits for `count` lines, then stops kcat with SIGTERM (it commits and
    /// leaves the group on the way out) and returns every line it printed,
    /// sorted, including any that came after the first `count`.
    fn read_until(mut self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + KCAT_TIMEOUT;
        let mut lines = Vec::new();
        while lines.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => panic!(
                    "kcat -G printed {} of {count} lines within {KCAT_TIMEOUT:?}: {lines:?}\n{}",
                    lines.len(),
                    self.stderr()
                ),
            }
        }
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill(1)");
        assert!(status.success(), "kill -TERM kcat failed");
        match wait_exit(&mut self.child, KCAT_TIMEOUT) {
            Some(status) => assert!(
                status.success(),
                "kcat -G exited with {status} after SIGTERM\n{}",
                self.stderr()
            ),
            None => panic!(
                "kcat -G did not exit within {KCAT_TIMEOUT:?} of SIGTERM\n{}",
                self.stderr()
            ),
        }
        // The reader thread ends at EOF, so this drains what is left.
        lines.extend(self.lines.iter());
        lines.sort();
        lines
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr sink").clone()
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// The same protocol path in raw frames, at librdkafka 2.0.2's versions.

fn record(key: &str, value: Option<&str>, headers: &[(&str, &str)], ts: i64) -> TestRecord {
    TestRecord {
        key: Some(Bytes::copy_from_slice(key.as_bytes())),
        value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
        timestamp_ms: ts,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), Some(Bytes::copy_from_slice(v.as_bytes()))))
            .collect(),
    }
}

fn one_batch(r: &TestRecord) -> Bytes {
    encode_batch(
        std::slice::from_ref(r),
        ProducerStamp::NONE,
        Compression::None,
    )
}

fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_string()))
}

/// Produce v7 (acks=-1) of one batch; returns its base offset.
fn raw_produce_v7(client: &mut RawClient, topic: &str, partition: i32, rs: &[TestRecord]) -> i64 {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(encode_batch(
                    rs,
                    ProducerStamp::NONE,
                    Compression::None,
                )))])]);
    let resp = client.request(&req, PRODUCE_V).expect("Produce v7");
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "Produce v7: {resp:?}");
    p.base_offset
}

/// ListOffsets at every version before v4 (which have no leader epoch in the
/// response) answers `timestamp` with exactly `offset` and `found_ts`.
fn assert_old_list_offsets(
    client: &mut RawClient,
    topic: &str,
    partition: i32,
    timestamp: i64,
    offset: i64,
    found_ts: i64,
) {
    for version in OLD_LIST_OFFSETS_VERSIONS {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(timestamp)])]);
        let resp = client
            .request(&req, version)
            .unwrap_or_else(|e| panic!("ListOffsets v{version} at {timestamp}: {e:#}"));
        assert_eq!(resp.topics.len(), 1, "{resp:?}");
        assert_eq!(resp.topics[0].partitions.len(), 1, "{resp:?}");
        let p = &resp.topics[0].partitions[0];
        assert_eq!(
            (p.partition_index, p.error_code, p.offset, p.timestamp),
            (partition, 0, offset, found_ts),
            "ListOffsets v{version} {topic}-{partition} at {timestamp}"
        );
    }
}

/// Fetches one partition from `offset` at `version` and prints its records
/// as kcat's [`FORMAT`] with `-Z` would.
fn raw_fetch_lines(
    client: &mut RawClient,
    topic: &str,
    partition: i32,
    offset: i64,
    version: i16,
) -> Vec<String> {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(16 * 1024 * 1024)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(8 * 1024 * 1024)])]);
    let resp = client
        .request(&req, version)
        .unwrap_or_else(|e| panic!("Fetch v{version}: {e:#}"));
    assert_eq!(resp.responses.len(), 1, "{resp:?}");
    assert_eq!(resp.responses[0].partitions.len(), 1, "{resp:?}");
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "Fetch v{version}: {p:?}");
    let records = p.records.clone().unwrap_or_default();
    let sets = decode_batches(&records);
    sets.iter()
        .flat_map(|set: &RecordSet| set.records.iter())
        .filter(|r| r.offset >= offset)
        .map(|r| {
            let text = |b: &Option<Bytes>| match b {
                Some(b) => String::from_utf8_lossy(b).into_owned(),
                None => "NULL".to_string(),
            };
            let headers: Vec<String> = r
                .headers
                .iter()
                .map(|(k, v)| format!("{}={}", k.as_str(), text(v)))
                .collect();
            format!(
                "p={partition} o={} k={} v={} h={}",
                r.offset,
                text(&r.key),
                text(&r.value),
                headers.join(",")
            )
        })
        .collect()
}

/// Committed offsets of `group` for partitions `0..partitions` of `topic`
/// (OffsetFetch v7; -1 where nothing is committed).
fn committed(client: &mut RawClient, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let req = OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes((0..partitions).collect())]));
    let resp = client
        .request(&req, OFFSET_FETCH_V)
        .expect("OffsetFetch v7");
    assert_eq!(resp.error_code, 0, "OffsetFetch v7: {resp:?}");
    assert_eq!(resp.topics.len(), 1, "{resp:?}");
    let mut parts = resp.topics[0].partitions.clone();
    parts.sort_by_key(|p| p.partition_index);
    parts
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, 0, "OffsetFetch v7: {p:?}");
            p.committed_offset
        })
        .collect()
}

/// One generation of a lone group member the way librdkafka 2.0.2 runs it:
/// find the coordinator, join (with the KIP-394 member id round trip), assign
/// every partition to itself, sync, heartbeat, read the committed offsets
/// (`expect_committed`; where none, ask ListOffsets EARLIEST), fetch to the
/// end, commit `commit` and leave. Returns the fetched records as sorted
/// [`FORMAT`] lines.
fn raw_group_generation(
    client: &mut RawClient,
    group: &str,
    topic: &str,
    expect_committed: &[Option<i64>],
    commit: &[i64],
) -> Vec<String> {
    let partitions = expect_committed.len() as i32;
    let coordinator = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_string()))
        .with_key_type(0);
    let resp = client
        .request(&coordinator, FIND_COORDINATOR_V)
        .expect("FindCoordinator v2");
    assert_eq!(
        (resp.error_code, resp.node_id),
        (0, BrokerId(1)),
        "{resp:?}"
    );

    let (member_id, generation_id) = raw_join_and_sync(client, group, topic, partitions);
    let heartbeat = HeartbeatRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id(generation_id)
        .with_member_id(member_id.clone());
    let resp = client
        .request(&heartbeat, HEARTBEAT_V)
        .expect("Heartbeat v3");
    assert_eq!(resp.error_code, 0, "Heartbeat v3: {resp:?}");

    let stored = committed(client, group, topic, partitions);
    let mut lines = Vec::new();
    for (partition, want) in expect_committed.iter().enumerate() {
        let partition = partition as i32;
        let start = match want {
            Some(offset) => {
                assert_eq!(stored[partition as usize], *offset, "committed offset");
                *offset
            }
            None => {
                assert_eq!(stored[partition as usize], -1, "nothing committed yet");
                assert_old_list_offsets(client, topic, partition, EARLIEST_TIMESTAMP, 0, -1);
                0
            }
        };
        let mut per_version = OLD_FETCH_VERSIONS
            .map(|version| raw_fetch_lines(client, topic, partition, start, version));
        assert_eq!(per_version[0], per_version[1], "Fetch v4 and v11 differ");
        lines.append(&mut per_version[0]);
    }

    let commit_req = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(generation_id)
        .with_member_id(member_id.clone())
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                commit
                    .iter()
                    .enumerate()
                    .map(|(p, offset)| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(p as i32)
                            .with_committed_offset(*offset)
                    })
                    .collect(),
            )]);
    let resp = client
        .request(&commit_req, OFFSET_COMMIT_V)
        .expect("OffsetCommit v7");
    let codes: Vec<(i32, i16)> = resp.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.error_code))
        .collect();
    assert_eq!(codes, [(0, 0), (1, 0)], "OffsetCommit v7: {resp:?}");
    assert_eq!(committed(client, group, topic, partitions), commit);

    let leave = LeaveGroupRequest::default()
        .with_group_id(group_id(group))
        .with_member_id(member_id);
    let resp = client
        .request(&leave, LEAVE_GROUP_V)
        .expect("LeaveGroup v1");
    assert_eq!(resp.error_code, 0, "LeaveGroup v1: {resp:?}");
    lines.sort();
    lines
}

/// JoinGroup v5 (retried once with the member id the broker requires) and
/// SyncGroup v3 as the leader assigning all `partitions` to itself; returns
/// (member id, generation).
fn raw_join_and_sync(
    client: &mut RawClient,
    group: &str,
    topic: &str,
    partitions: i32,
) -> (StrBytes, i32) {
    let subscription = ConsumerProtocolSubscription::default()
        .with_topics(vec![StrBytes::from_string(topic.to_string())]);
    let join = |member_id: StrBytes| {
        JoinGroupRequest::default()
            .with_group_id(group_id(group))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(member_id)
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(versioned(&subscription))])
    };
    let mut resp = client
        .request(&join(StrBytes::default()), JOIN_GROUP_V)
        .expect("JoinGroup v5");
    if resp.error_code == MEMBER_ID_REQUIRED {
        resp = client
            .request(&join(resp.member_id.clone()), JOIN_GROUP_V)
            .expect("JoinGroup v5 with member id");
    }
    assert_eq!(resp.error_code, 0, "JoinGroup v5: {resp:?}");
    assert_eq!(resp.leader, resp.member_id, "a lone member leads");
    assert_eq!(resp.members.len(), 1, "{resp:?}");
    assert_eq!(resp.protocol_name.as_deref(), Some("range"));

    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
        consumer_protocol_assignment::TopicPartition::default()
            .with_topic(topic_name(topic))
            .with_partitions((0..partitions).collect()),
    ]);
    let sync = SyncGroupRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id(resp.generation_id)
        .with_member_id(resp.member_id.clone())
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(resp.member_id.clone())
            .with_assignment(versioned(&assignment))]);
    let synced = client.request(&sync, SYNC_GROUP_V).expect("SyncGroup v3");
    assert_eq!(synced.error_code, 0, "SyncGroup v3: {synced:?}");
    let mut got = synced.assignment.clone();
    assert_eq!(got.get_i16(), 0, "assignment version");
    let got = ConsumerProtocolAssignment::decode(&mut got, 0).expect("assignment");
    assert_eq!(got, assignment, "the leader's assignment comes back");
    (resp.member_id, resp.generation_id)
}

/// A consumer-protocol message at version 0 with its version prefix.
fn versioned<M: Encodable>(message: &M) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    message
        .encode(&mut buf, 0)
        .expect("consumer protocol message");
    buf.freeze()
}
