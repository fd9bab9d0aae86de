//! `vltava dump-log` (kafka-dump-log.sh) on the files of a real broker's
//! partition directory: exact batch and record lines, index and time index
//! entries, a producer snapshot, and each kind of corruption an operator
//! uses the tool to find (a CRC that does not match, bytes after the last
//! batch, index entries that point elsewhere), which also make it exit 1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bytes::Bytes;
use kafka_protocol::messages::{InitProducerIdRequest, ProducerId};
use kafka_protocol::records::Compression;
use vltava_tests::raw::{
    encode_batch, ProducerStamp, RawClient, TestRecord, INIT_PRODUCER_ID_VERSION,
};
use vltava_tests::{run_tool, stdout_ok, text, vltava, vltava_bin, TestBroker, TOOL_TIMEOUT};

fn dump(files: &[&Path], extra: &[&str]) -> Output {
    let list: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let list = list.join(",");
    let mut args = vec!["dump-log", "--files", &list];
    args.extend_from_slice(extra);
    vltava(&args, "")
}

/// A path as the tool reports it in its findings: absolute.
fn abs(f: &Path) -> String {
    std::path::absolute(f).unwrap().display().to_string()
}

fn record(key: Option<&str>, value: &str, ts: i64, headers: &[&str]) -> TestRecord {
    TestRecord {
        key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        timestamp_ms: ts,
        headers: headers
            .iter()
            .map(|h| (h.to_string(), Some(Bytes::from_static(b"x"))))
            .collect(),
    }
}

/// The CRC stored in the batch that starts at `position` of `log`, read
/// from the file independently of the tool.
fn stored_crc(log: &Path, position: usize) -> u32 {
    let bytes = std::fs::read(log).unwrap();
    u32::from_be_bytes(bytes[position + 17..position + 21].try_into().unwrap())
}

struct Partition {
    dir: PathBuf,
    log: PathBuf,
    index: PathBuf,
    time_index: PathBuf,
    producer_id: i64,
    /// Byte position of the second batch.
    second: usize,
}

/// Two batches in `dl-0`: two plain records, then one gzip record from an
/// idempotent producer; the broker stopped cleanly so a snapshot exists.
fn partition_with_two_batches(broker: &mut TestBroker) -> Partition {
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(c.create_topic_code("dl", 1).unwrap(), 0);
    let first = encode_batch(
        &[
            record(Some("k1"), "v1", 1_000, &["h1", "h2"]),
            record(None, "v2", 1_005, &[]),
        ],
        ProducerStamp::NONE,
        Compression::None,
    );
    let second_len = first.len();
    assert_eq!(c.produce("dl", 0, first, -1).unwrap().error_code, 0);
    let init = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let resp = c.request(&init, INIT_PRODUCER_ID_VERSION).unwrap();
    assert_eq!(resp.error_code, 0);
    let stamp = ProducerStamp {
        producer_id: resp.producer_id.0,
        producer_epoch: 0,
        base_sequence: 0,
    };
    let second = encode_batch(
        &[record(Some("k3"), "v3", 2_000, &[])],
        stamp,
        Compression::Gzip,
    );
    assert_eq!(c.produce("dl", 0, second, -1).unwrap().error_code, 0);
    broker.stop_sigterm();
    let dir = broker.log_dir().join("dl-0");
    let file = |suffix: &str| dir.join(format!("00000000000000000000.{suffix}"));
    Partition {
        log: file("log"),
        index: file("index"),
        time_index: file("timeindex"),
        dir,
        producer_id: resp.producer_id.0,
        second: second_len,
    }
}

#[test]
fn dumps_batches_records_indexes_and_snapshot() {
    let mut broker = TestBroker::start(&[("log.index.interval.bytes", "1")]);
    let p = partition_with_two_batches(&mut broker);
    let crc0 = stored_crc(&p.log, 0);
    let crc1 = stored_crc(&p.log, p.second);
    let size1 = std::fs::metadata(&p.log).unwrap().len() as usize - p.second;
    let batch0 = format!(
        "baseOffset: 0 lastOffset: 1 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 0 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1005 size: {} magic: 2 compresscodec: none crc: {crc0} isvalid: true",
        p.second
    );
    let batch1 = format!(
        "baseOffset: 2 lastOffset: 2 count: 1 baseSequence: 0 lastSequence: 0 producerId: {} producerEpoch: 0 partitionLeaderEpoch: 0 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: {} CreateTime: 2000 size: {size1} magic: 2 compresscodec: gzip crc: {crc1} isvalid: true",
        p.producer_id, p.second
    );

    let out = dump(&[&p.log], &[]);
    assert_eq!(
        stdout_ok("dump-log", &out),
        format!(
            "Dumping {}\nLog starting offset: 0\n{batch0}\n{batch1}\n",
            p.log.display()
        )
    );

    let out = dump(&[&p.log], &["--print-data-log"]);
    assert_eq!(
        stdout_ok("dump-log", &out),
        format!(
            "Dumping {}\nLog starting offset: 0\n{batch0}\n\
             | offset: 0 CreateTime: 1000 keySize: 2 valueSize: 2 sequence: -1 headerKeys: [h1,h2] key: k1 payload: v1\n\
             | offset: 1 CreateTime: 1005 keySize: -1 valueSize: 2 sequence: -1 headerKeys: [] payload: v2\n\
             {batch1}\n\
             | offset: 2 CreateTime: 2000 keySize: 2 valueSize: 2 sequence: 0 headerKeys: [] key: k3 payload: v3\n",
            p.log.display()
        )
    );
    let out = dump(&[&p.log], &["--print-data-log", "--skip-record-metadata"]);
    assert!(
        text(&out.stdout).ends_with(&format!("{batch1}\n| key: k3 payload: v3\n")),
        "{}",
        text(&out.stdout)
    );

    // One index entry per batch (index.interval.bytes=1); the time index
    // holds the segment's growing maximum.
    let out = dump(&[&p.index, &p.time_index], &[]);
    assert_eq!(
        stdout_ok("dump-log", &out),
        format!(
            "Dumping {}\noffset: 0 position: 0\noffset: 2 position: {}\nDumping {}\ntimestamp: 1005 offset: 0\ntimestamp: 2000 offset: 2\n",
            p.index.display(),
            p.second,
            p.time_index.display()
        )
    );
    let out = dump(&[&p.index, &p.time_index], &["--index-sanity-check"]);
    assert_eq!(
        text(&out.stdout),
        format!(
            "Dumping {0}\n{0} passed sanity check.\nDumping {1}\n{1} passed sanity check.\n",
            p.index.display(),
            p.time_index.display()
        )
    );
    let out = dump(&[&p.index, &p.time_index], &["--verify-index-only"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stderr), "");
    // A batch must end within --max-message-size of its entry's position:
    // with 10 bytes neither does, and both entries are reported.
    let out = dump(
        &[&p.index],
        &["--verify-index-only", "--max-message-size", "10"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "Mismatches in :{}\n  Index offset: 0, log offset: -1\n  Index offset: 2, log offset: -1\n",
            abs(&p.index)
        )
    );

    // The clean shutdown wrote the producer's state at the log end.
    let snapshot = p.dir.join("00000000000000000003.snapshot");
    let out = dump(&[&snapshot], &[]);
    assert_eq!(
        stdout_ok("dump-log", &out),
        format!(
            "Dumping {}\nproducerId: {} producerEpoch: 0 coordinatorEpoch: -1 currentTxnFirstOffset: OptionalLong.empty lastTimestamp: 2000 firstSequence: 0 lastSequence: 0 lastOffset: 2 offsetDelta: 0 timestamp: 2000\n",
            snapshot.display(),
            p.producer_id
        )
    );

    let metadata = p.dir.join("partition.metadata");
    let out = dump(&[&metadata], &[]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stderr),
        format!("Ignoring unknown file {}\n", metadata.display())
    );

    // The kafka-dump-log.sh wrapper runs the same tool.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut wrapper = Command::new(repo.join("bin/kafka-dump-log.sh"));
    wrapper
        .args(["--files", &p.log.display().to_string()])
        .env("VLTAVA_BIN", vltava_bin());
    let out = run_tool(wrapper, "", TOOL_TIMEOUT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).ends_with(&format!("{batch1}\n")));
}

#[test]
fn finds_corruption_and_exits_1() {
    let mut broker = TestBroker::start(&[("log.index.interval.bytes", "1")]);
    let p = partition_with_two_batches(&mut broker);
    let log_size = std::fs::metadata(&p.log).unwrap().len();

    // A flipped byte in the second batch's records: its CRC no longer
    // matches and its records are not shown.
    let mut bytes = std::fs::read(&p.log).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    // Five bytes that are not a batch after the last one.
    bytes.extend_from_slice(b"junk!");
    std::fs::write(&p.log, &bytes).unwrap();
    let out = dump(&[&p.log], &["--deep-iteration"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 7, "{stdout}");
    assert!(lines[2].ends_with("isvalid: true"), "{stdout}");
    assert!(
        lines[5].starts_with("baseOffset: 2 ") && lines[5].ends_with("isvalid: false"),
        "{stdout}"
    );
    assert_eq!(
        lines[6],
        "Found 5 invalid bytes at the end of 00000000000000000000.log"
    );
    let stderr = text(&out.stderr);
    let stderr_lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(stderr_lines.len(), 2, "{stderr}");
    assert!(
        stderr_lines[0].starts_with(&format!(
            "Error: the records of the batch at position {} in {} cannot be read: ",
            p.second,
            p.log.display()
        )),
        "{stderr}"
    );
    assert_eq!(
        stderr_lines[1],
        format!(
            "Error: {} at position {log_size}: 5 bytes are too few for a batch header",
            p.log.display()
        )
    );

    // An offset index entry that points into the middle of a batch, and a
    // time index entry with the wrong timestamp.
    let mut index = std::fs::read(&p.index).unwrap();
    index[12..16].copy_from_slice(&7u32.to_be_bytes());
    std::fs::write(&p.index, &index).unwrap();
    let mut time_index = std::fs::read(&p.time_index).unwrap();
    time_index[12..20].copy_from_slice(&1_999i64.to_be_bytes());
    std::fs::write(&p.time_index, &time_index).unwrap();
    let out = dump(&[&p.index, &p.time_index], &["--verify-index-only"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        format!(
            "Dumping {}\nDumping {}\n",
            p.index.display(),
            p.time_index.display()
        )
    );
    assert_eq!(
        text(&out.stderr),
        format!(
            "Mismatches in :{}\n  Index offset: 2, log offset: -1\nFound timestamp mismatch in :{}\n  Index timestamp: 1999, log timestamp: 2000\n",
            abs(&p.index),
            abs(&p.time_index)
        )
    );
    // Entries out of order fail the sanity check.
    let mut index = std::fs::read(&p.index).unwrap();
    index[12..16].copy_from_slice(&0u32.to_be_bytes());
    std::fs::write(&p.index, &index).unwrap();
    let out = dump(&[&p.index], &["--index-sanity-check"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "Corrupt index found, index file ({}) has entry (offset 2, position 0) after (offset 0, position 0): entries must increase in both\n",
            p.index.display()
        )
    );
    // A file cut mid-entry, and a missing file.
    std::fs::write(&p.time_index, &time_index[..13]).unwrap();
    let missing = p.dir.join("00000000000000000099.index");
    let out = dump(&[&p.time_index, &missing], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "Index file {} is corrupt, found 13 bytes which is not a multiple of 12.\nError: cannot read {}: ",
            p.time_index.display(),
            missing.display()
        )),
        "{stderr}"
    );
}

#[test]
fn max_bytes_and_hostile_lengths() {
    let mut broker = TestBroker::start(&[("log.index.interval.bytes", "1")]);
    let p = partition_with_two_batches(&mut broker);

    // --max-bytes inside the second batch: only the first, and no fault.
    let limit = (p.second + 10).to_string();
    let out = dump(&[&p.log], &["--max-bytes", &limit]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(
        stdout.lines().nth(2).unwrap().starts_with("baseOffset: 0 "),
        "{stdout}"
    );
    assert_eq!(text(&out.stderr), "");

    // A batch claiming 2 GiB after a valid one: refused from its length
    // alone, nothing allocated for it.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(&p.log).unwrap()[..p.second].to_vec();
    bytes.extend_from_slice(&2i64.to_be_bytes());
    bytes.extend_from_slice(&i32::MAX.to_be_bytes());
    bytes.extend_from_slice(&[0u8; 64]);
    let hostile = dir.path().join("00000000000000000000.log");
    std::fs::write(&hostile, &bytes).unwrap();
    let out = dump(&[&hostile], &["--deep-iteration"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.ends_with("Found 76 invalid bytes at the end of 00000000000000000000.log\n"),
        "{stdout}"
    );
    assert_eq!(
        text(&out.stderr),
        format!(
            "Error: {} at position {}: a batch of 2147483659 bytes is cut off after 76 bytes\n",
            hostile.display(),
            p.second
        )
    );

    // An index whose base offset leaves no room for its entries' offsets.
    let near_max = dir.path().join("09223372036854775807.index");
    std::fs::write(&near_max, [0, 0, 0, 5, 0, 0, 0, 0]).unwrap();
    let out = dump(&[&near_max], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "Corrupt index found, index file ({}) has an entry past the largest offset\n",
            near_max.display()
        )
    );
    // An empty index passes the sanity check, as in Kafka.
    let empty = dir.path().join("00000000000000000000.index");
    std::fs::write(&empty, []).unwrap();
    let out = dump(&[&empty], &["--index-sanity-check"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        format!("Dumping {0}\n{0} passed sanity check.\n", empty.display())
    );
}
