use super::*;
use vltava_record::{BatchBuilder, Compression};

const EPOCH: i32 = 5;

/// A batch of `n` records with values of `value_bytes` and the given
/// timestamps (one per record, cycled).
fn batch(n: usize, value_bytes: usize, timestamps: &[i64]) -> BytesMut {
    let mut b = BatchBuilder::new(Compression::None);
    for i in 0..n {
        let value = Bytes::from(vec![b'a' + (i % 26) as u8; value_bytes]);
        b = b.record(None, Some(value), vec![], timestamps[i % timestamps.len()]);
    }
    b.build()
}

/// Size of a `fill` batch with `value_bytes` values.
fn fill_batch_bytes(value_bytes: usize) -> u64 {
    batch(3, value_bytes, &[1_000, 1_001, 1_002]).len() as u64
}

/// Segments that hold exactly three `fill(_, _, 40)` batches.
fn three_per_segment() -> LogConfig {
    config(3 * fill_batch_bytes(40))
}

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        ..LogConfig::default()
    }
}

/// The bytes the log should hold for `batch` appended at `base_offset`.
fn patched(batch: &BytesMut, base_offset: i64) -> Bytes {
    let mut b = batch.clone();
    vltava_record::set_base_offset(&mut b, base_offset);
    vltava_record::set_partition_leader_epoch(&mut b, EPOCH);
    b.freeze()
}

/// Appends `count` batches of 3 records; returns the expected stored bytes.
fn fill(log: &Log, count: usize, value_bytes: usize) -> Vec<Bytes> {
    let mut stored = Vec::new();
    for i in 0..count {
        let ts = 1_000 + i as i64 * 10;
        let b = batch(3, value_bytes, &[ts, ts + 1, ts + 2]);
        let info = log.append(b.clone(), EPOCH, 0).unwrap();
        let expected_base = stored.len() as i64 * 3;
        assert_eq!(info.base_offset, expected_base);
        assert_eq!(info.last_offset, expected_base + 2);
        assert_eq!(info.max_timestamp, ts + 2);
        stored.push(patched(&b, expected_base));
    }
    stored
}

/// Every batch, read one at a time from the log start.
fn read_batches(log: &Log) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let bytes = log.read(offset, end, 1).unwrap().to_bytes().unwrap();
        let header = vltava_record::validate_batch(&bytes).unwrap();
        offset = header.next_offset();
        out.push(bytes);
    }
    out
}

fn log_file(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    segment::file_path(dir, base, suffix)
}

#[test]
fn log_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Log>();
}

#[test]
fn empty_dir_gets_one_segment_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topic-0");
    let log = Log::open(&path, LogConfig::default(), 0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert_eq!(log.segment_count(), 1);
    assert!(log_file(&path, 0, "log").exists());
    assert!(log.read(0, 0, 100).unwrap().is_empty());
    assert!(matches!(
        log.read(1, 1, 100),
        Err(LogError::OffsetOutOfRange {
            requested: 1,
            log_start: 0,
            log_end: 0
        })
    ));
    assert_eq!(log.max_timestamp_offset().unwrap(), None);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
}

#[test]
fn append_and_read_across_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(600), 0).unwrap();
    let stored = fill(&log, 30, 40);
    let batch_bytes = stored[0].len();
    assert!(batch_bytes > 150 && batch_bytes < 300, "{batch_bytes}");
    let per_segment = 600 / batch_bytes;
    assert_eq!(log.segment_count(), 30_usize.div_ceil(per_segment));
    assert_eq!(log.log_end_offset(), 90);
    assert_eq!(log.size_bytes(), (30 * batch_bytes) as u64);
    // Segment files are named by their base offsets.
    for s in 0..log.segment_count() {
        let base = (s * per_segment * 3) as i64;
        assert!(log_file(dir.path(), base, "log").exists(), "segment {base}");
    }
    // Any offset, including one inside a batch, reads from that batch's start.
    for offset in 0..90 {
        let slice = log.read(offset, 90, 1).unwrap();
        assert_eq!(slice.to_bytes().unwrap(), stored[offset as usize / 3]);
    }
    // A large read returns whole batches, all from one segment.
    let slice = log.read(4, 90, 1 << 20).unwrap();
    let expected: Vec<u8> = stored[1..per_segment].concat();
    assert_eq!(slice.to_bytes().unwrap(), Bytes::from(expected));
    // max_bytes bounds the read to whole batches.
    let slice = log.read(0, 90, 2 * batch_bytes + 1).unwrap();
    assert_eq!(slice.len, 2 * batch_bytes);
    // The end offset (high watermark) is never reached.
    let slice = log.read(0, 6, 1 << 20).unwrap();
    assert_eq!(slice.len, 2 * batch_bytes);
    assert!(log.read(6, 6, 1 << 20).unwrap().is_empty());
    assert!(log.read(90, 90, 1 << 20).unwrap().is_empty());
    assert!(matches!(
        log.read(91, 91, 1),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn first_batch_is_returned_whole_even_when_larger_than_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    let stored = fill(&log, 2, 500);
    let slice = log.read(0, 6, 10).unwrap();
    assert_eq!(slice.to_bytes().unwrap(), stored[0]);
}

#[test]
fn sparse_index_lookup() {
    for interval in [1u32, 300, 1000, 4096] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            index_interval_bytes: interval,
            ..LogConfig::default()
        };
        let log = Log::open(dir.path(), cfg, 0).unwrap();
        let stored = fill(&log, 40, 30);
        let batch_bytes = stored[0].len() as u32;
        let index_len = fs::metadata(log_file(dir.path(), 0, "index"))
            .unwrap()
            .len();
        let batches_per_entry = interval.div_ceil(batch_bytes).max(1);
        assert_eq!(
            index_len,
            (40 / batches_per_entry * 8) as u64,
            "interval {interval}"
        );
        // Entry k points at the batch that crossed the interval.
        let entries = log.active().state.read().offset_index.clone();
        for (k, e) in entries.iter().enumerate() {
            let batch_no = (k as u32 + 1) * batches_per_entry - 1;
            assert_eq!(e.relative_offset, batch_no * 3);
            assert_eq!(e.position, batch_no * batch_bytes);
        }
        for offset in 0..120 {
            let bytes = log.read(offset, 120, 1).unwrap().to_bytes().unwrap();
            assert_eq!(bytes, stored[offset as usize / 3]);
        }
    }
}

/// Brute force over all records: (offset, timestamp) in log order.
fn all_records(log: &Log) -> Vec<(i64, i64)> {
    read_batches(log)
        .iter()
        .flat_map(|b| vltava_record::decode_records(b).unwrap())
        .filter(|r| r.offset >= log.log_start_offset())
        .map(|r| (r.offset, r.timestamp))
        .collect()
}

#[test]
fn timestamp_lookups_match_brute_force() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 700,
        index_interval_bytes: 200,
        ..LogConfig::default()
    };
    let log = Log::open(dir.path(), cfg.clone(), 0).unwrap();
    // Timestamps that go up and down within and across batches.
    let pattern = [50i64, 10, 30, 90, 20, 70, 70, 5, 100, 40, 100, 60];
    for i in 0..24 {
        let ts: Vec<i64> = (0..3)
            .map(|j| pattern[(i * 3 + j) % 12] + i as i64)
            .collect();
        log.append(batch(3, 20, &ts), EPOCH, 0).unwrap();
    }
    let check = |log: &Log| {
        let records = all_records(log);
        for target in -1..140 {
            let expected = records.iter().copied().find(|&(_, ts)| ts >= target);
            assert_eq!(
                log.offset_for_timestamp(target).unwrap(),
                expected,
                "ts {target}"
            );
        }
        let max = records.iter().map(|r| r.1).max().unwrap();
        let expected = records.iter().copied().find(|r| r.1 == max);
        assert_eq!(log.max_timestamp_offset().unwrap(), expected);
    };
    assert!(log.segment_count() > 3);
    check(&log);
    log.close().unwrap();
    drop(log);
    // Closed segments get their maxima from the time index after reopening.
    let log = Log::open(dir.path(), cfg, 0).unwrap();
    check(&log);
    log.delete_records_before(31).unwrap();
    check(&log);
}

#[test]
fn log_append_time_batches_use_the_batch_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    log.append(batch(2, 5, &[10, 20]), EPOCH, 0).unwrap();
    let mut b = batch(2, 5, &[1, 2]);
    vltava_record::set_log_append_time(&mut b, 500);
    log.append(b, EPOCH, 500).unwrap();
    assert_eq!(log.offset_for_timestamp(21).unwrap(), Some((2, 500)));
    assert_eq!(log.max_timestamp_offset().unwrap(), Some((2, 500)));
}

#[test]
fn retention_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), three_per_segment(), 0).unwrap();
    let stored = fill(&log, 12, 40); // 3 batches per segment, max ts 1_002 + 10 i
    assert_eq!(log.segment_count(), 4);
    let mut cfg = log.config();
    cfg.retention_ms = 100;
    log.set_config(cfg);
    // Segment 0 holds batches 0..3 (max ts 1_022), segment 1 max ts 1_052.
    assert_eq!(log.apply_retention(1_122).unwrap(), 0);
    assert_eq!(log.apply_retention(1_123).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 9);
    assert!(!log_file(dir.path(), 0, "log").exists());
    assert!(!log_file(dir.path(), 0, "index").exists());
    assert!(matches!(
        log.read(8, 36, 1),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_batches(&log), stored[3..]);
    // Everything expired: a new empty active segment at the log end remains.
    assert_eq!(log.apply_retention(10_000).unwrap(), 3);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_start_offset(), 36);
    assert_eq!(log.log_end_offset(), 36);
    assert!(log_file(dir.path(), 36, "log").exists());
    let info = log.append(batch(1, 1, &[5]), EPOCH, 0).unwrap();
    assert_eq!(info.base_offset, 36);
    assert_eq!(info.log_start_offset, 36);
    // The start survives a reopen.
    drop(log);
    let log = Log::open(dir.path(), three_per_segment(), 0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (36, 37));
}

#[test]
fn retention_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), three_per_segment(), 0).unwrap();
    let stored = fill(&log, 11, 40);
    let batch_bytes = stored[0].len() as i64;
    assert_eq!(log.segment_count(), 4); // 3 + 3 + 3 + 2 batches
    let mut cfg = log.config();
    cfg.retention_ms = -1;
    // Total 11 batches; keep at least 5 batches' worth: delete two segments.
    cfg.retention_bytes = 5 * batch_bytes;
    log.set_config(cfg);
    assert_eq!(log.apply_retention(i64::MAX).unwrap(), 2);
    assert_eq!(log.log_start_offset(), 18);
    assert_eq!(log.size_bytes(), 5 * batch_bytes as u64);
    assert_eq!(read_batches(&log), stored[6..]);
    assert_eq!(log.apply_retention(i64::MAX).unwrap(), 0);
}

#[test]
fn delete_records_before_moves_start_durably() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), three_per_segment(), 0).unwrap();
    let stored = fill(&log, 12, 40);
    assert_eq!(log.delete_records_before(22).unwrap(), 22);
    assert_eq!(log.log_start_offset(), 22);
    // Segment 0 (offsets 0..9) and 1 (9..18) are gone; 18.. holds offset 22.
    assert_eq!(log.segment_count(), 2);
    assert!(!log_file(dir.path(), 9, "log").exists());
    let bytes = log.read(22, 36, 1).unwrap().to_bytes().unwrap();
    assert_eq!(bytes, stored[7]);
    assert!(matches!(
        log.read(21, 36, 1),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // Moving backwards is a no-op; past the end is an error.
    assert_eq!(log.delete_records_before(3).unwrap(), 22);
    assert!(matches!(
        log.delete_records_before(37),
        Err(LogError::OffsetOutOfRange { requested: 37, .. })
    ));
    let text = fs::read_to_string(dir.path().join(LOG_START_OFFSET_FILE)).unwrap();
    assert_eq!(text, "22\n");
    drop(log);
    let log = Log::open(dir.path(), three_per_segment(), 0).unwrap();
    assert_eq!(log.log_start_offset(), 22);
    // Up to the log end: the active segment stays.
    assert_eq!(log.delete_records_before(36).unwrap(), 36);
    assert_eq!(log.segment_count(), 1);
    assert!(log.read(36, 36, 10).unwrap().is_empty());
}

#[test]
fn reopen_after_close_reads_identically() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 900,
        index_interval_bytes: 250,
        ..LogConfig::default()
    };
    let log = Log::open(dir.path(), cfg.clone(), 0).unwrap();
    let stored = fill(&log, 25, 35);
    let index_before: Vec<Vec<u8>> = (0..log.segment_count())
        .map(|i| fs::read(log_file(dir.path(), log.snapshot()[i].base_offset, "index")).unwrap())
        .collect();
    log.close().unwrap();
    drop(log);
    let log = Log::open(dir.path(), cfg, 0).unwrap();
    assert_eq!(log.log_end_offset(), 75);
    assert_eq!(read_batches(&log), stored);
    for (i, segment) in log.snapshot().iter().enumerate() {
        let index = fs::read(log_file(dir.path(), segment.base_offset, "index")).unwrap();
        assert_eq!(index, index_before[i]);
    }
    for offset in 0..75 {
        let bytes = log.read(offset, 75, 1).unwrap().to_bytes().unwrap();
        assert_eq!(bytes, stored[offset as usize / 3]);
    }
    // The headers producer state is rebuilt from, after the last segment's
    // recovery: every batch of that segment, in order.
    let last_base = log.snapshot().last().unwrap().base_offset;
    let mut tail = Vec::new();
    log.for_each_batch_header(last_base, |h| tail.push(*h))
        .unwrap();
    assert_eq!(tail.len(), stored.len() - (last_base / 3) as usize);
    assert_eq!(tail.last().unwrap().base_offset, 72);
    assert_eq!(tail.last().unwrap().partition_leader_epoch, EPOCH);
    let info = log.append(batch(1, 1, &[1]), EPOCH, 0).unwrap();
    assert_eq!(info.base_offset, 75);
}

/// Writes `bytes` as segment 0 of a fresh log directory and opens it.
fn open_with_segment(bytes: &[u8]) -> (tempfile::TempDir, Log) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(log_file(dir.path(), 0, "log"), bytes).unwrap();
    let log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    (dir, log)
}

#[test]
fn recovery_cuts_a_torn_tail_at_every_byte() {
    let stored: Vec<Bytes> = (0..4)
        .map(|i| patched(&batch(2, 9, &[i, i + 1]), i * 2))
        .collect();
    let whole: Vec<u8> = stored.concat();
    let mut boundaries = vec![0];
    for b in &stored {
        boundaries.push(boundaries.last().unwrap() + b.len());
    }
    for cut in 0..=whole.len() {
        let (dir, log) = open_with_segment(&whole[..cut]);
        let kept = boundaries.iter().rposition(|&b| b <= cut).unwrap();
        assert_eq!(log.log_end_offset(), kept as i64 * 2, "cut {cut}");
        assert_eq!(read_batches(&log), stored[..kept], "cut {cut}");
        let len = fs::metadata(log_file(dir.path(), 0, "log")).unwrap().len();
        assert_eq!(len, boundaries[kept] as u64, "cut {cut}");
        // The log keeps working after recovery.
        let info = log.append(batch(1, 1, &[1]), EPOCH, 0).unwrap();
        assert_eq!(info.base_offset, kept as i64 * 2);
    }
}

#[test]
fn recovery_cuts_at_a_corrupt_batch() {
    let stored: Vec<Bytes> = (0..4)
        .map(|i| patched(&batch(2, 9, &[i, i + 1]), i * 2))
        .collect();
    let whole: Vec<u8> = stored.concat();
    let start_of_third = stored[0].len() + stored[1].len();
    for at in [start_of_third + 21, start_of_third + 40, whole.len() - 1] {
        let mut bytes = whole.clone();
        bytes[at] ^= 0x40;
        let (_dir, log) = open_with_segment(&bytes);
        let kept = if at == whole.len() - 1 { 3 } else { 2 };
        assert_eq!(log.log_end_offset(), kept as i64 * 2, "flip at {at}");
        assert_eq!(read_batches(&log), stored[..kept]);
    }
    // Offsets going backwards are cut too.
    let mut bytes = whole.clone();
    vltava_record::set_base_offset(&mut bytes[start_of_third..], 1);
    let (_dir, log) = open_with_segment(&bytes);
    assert_eq!(log.log_end_offset(), 4);
}

#[test]
fn closed_segment_indexes_are_rebuilt_when_missing_or_garbage() {
    let cfg = LogConfig {
        segment_bytes: 1200,
        index_interval_bytes: 200,
        ..LogConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), cfg.clone(), 0).unwrap();
    let stored = fill(&log, 20, 40);
    assert!(log.segment_count() >= 3);
    let second = log.snapshot()[1].base_offset;
    log.close().unwrap();
    drop(log);
    let index0 = fs::read(log_file(dir.path(), 0, "index")).unwrap();
    let time0 = fs::read(log_file(dir.path(), 0, "timeindex")).unwrap();
    let index1 = fs::read(log_file(dir.path(), second, "index")).unwrap();
    assert!(!index0.is_empty() && !time0.is_empty());

    fs::remove_file(log_file(dir.path(), 0, "index")).unwrap();
    fs::remove_file(log_file(dir.path(), 0, "timeindex")).unwrap();
    let mut garbage = index1.clone();
    garbage.reverse();
    garbage.push(7);
    fs::write(log_file(dir.path(), second, "index"), &garbage).unwrap();
    // An orphan index without a log file is removed.
    fs::write(log_file(dir.path(), 999_999, "index"), b"junk").unwrap();

    let log = Log::open(dir.path(), cfg.clone(), 0).unwrap();
    assert_eq!(read_batches(&log), stored);
    assert_eq!(fs::read(log_file(dir.path(), 0, "index")).unwrap(), index0);
    assert_eq!(
        fs::read(log_file(dir.path(), 0, "timeindex")).unwrap(),
        time0
    );
    assert_eq!(
        fs::read(log_file(dir.path(), second, "index")).unwrap(),
        index1
    );
    assert!(!log_file(dir.path(), 999_999, "index").exists());
    for offset in 0..60 {
        let bytes = log.read(offset, 60, 1).unwrap().to_bytes().unwrap();
        assert_eq!(bytes, stored[offset as usize / 3]);
    }

    // An index entry pointing into the middle of a batch is caught as well.
    drop(log);
    let mut wrong = index0.clone();
    let last = wrong.len() - 4;
    let pos = u32::from_be_bytes(wrong[last..].try_into().unwrap()) + 1;
    wrong[last..].copy_from_slice(&pos.to_be_bytes());
    fs::write(log_file(dir.path(), 0, "index"), &wrong).unwrap();
    let log = Log::open(dir.path(), cfg.clone(), 0).unwrap();
    assert_eq!(read_batches(&log), stored);
    assert_eq!(fs::read(log_file(dir.path(), 0, "index")).unwrap(), index0);

    // An index file grown far past what the segment could need (a sparse
    // 64 GiB file here) is rebuilt without being read into memory.
    drop(log);
    fs::File::options()
        .write(true)
        .open(log_file(dir.path(), second, "timeindex"))
        .unwrap()
        .set_len(1 << 36)
        .unwrap();
    let log = Log::open(dir.path(), cfg, 0).unwrap();
    assert_eq!(log.recovery().rebuilt_indexes, 1);
    assert_eq!(read_batches(&log), stored);
    let rebuilt = fs::metadata(log_file(dir.path(), second, "timeindex")).unwrap();
    let log_bytes = fs::metadata(log_file(dir.path(), second, "log")).unwrap();
    assert!(rebuilt.len() <= index_file_bytes_max(log_bytes.len(), TIME_ENTRY_BYTES));
}

#[test]
fn leftover_files_are_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "00000000000000000000.log.deleted",
        "00000000000000000000.log.cleaned",
        "00000000000000000000.index.swap",
        "00000000000000000000.timeindex.cleaned",
        "cleaner-offset-checkpoint.tmp",
        "log-start-offset.tmp",
    ] {
        fs::write(dir.path().join(name), b"x").unwrap();
    }
    let log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert_eq!(log.log_end_offset(), 0);
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "00000000000000000000.index",
            "00000000000000000000.log",
            "00000000000000000000.timeindex"
        ]
    );
}

#[test]
fn segment_ms_rolls_by_record_time() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_ms: 1_000,
        ..LogConfig::default()
    };
    let log = Log::open(dir.path(), cfg, 0).unwrap();
    log.append(batch(1, 1, &[10_000]), EPOCH, 0).unwrap();
    log.append(batch(1, 1, &[10_999]), EPOCH, 0).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(batch(1, 1, &[11_000]), EPOCH, 0).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert!(log_file(dir.path(), 2, "log").exists());
    // The sealed segment's time index ends with its maximum.
    let time0 = fs::read(log_file(dir.path(), 0, "timeindex")).unwrap();
    assert_eq!(time0.len(), 12);
    assert_eq!(i64::from_be_bytes(time0[..8].try_into().unwrap()), 10_999);
    assert_eq!(u32::from_be_bytes(time0[8..].try_into().unwrap()), 1);
}

#[test]
fn segment_ms_rolls_by_wall_clock_without_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_ms: 1_000,
        ..LogConfig::default()
    };
    let log = Log::open(dir.path(), cfg, 5_000).unwrap();
    log.append(batch(1, 1, &[-1]), EPOCH, 5_000).unwrap();
    log.append(batch(1, 1, &[-1]), EPOCH, 5_999).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(batch(1, 1, &[-1]), EPOCH, 6_000).unwrap();
    assert_eq!(log.segment_count(), 2);
}

#[test]
fn flush_messages_one_fsyncs_every_append() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        flush_messages: 1,
        ..LogConfig::default()
    };
    let log = Arc::new(Log::open(dir.path(), cfg, 0).unwrap());
    log.append(batch(2, 1, &[1]), EPOCH, 0).unwrap();
    assert_eq!(log.flusher.lock().flushed_offset, 2);
    // Concurrent appenders share fsyncs and get distinct, dense offsets.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                (0..25)
                    .map(|_| log.append(batch(1, 3, &[1]), EPOCH, 0).unwrap().base_offset)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut offsets: Vec<i64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    offsets.sort_unstable();
    assert_eq!(offsets, (2..102).collect::<Vec<_>>());
    assert_eq!(log.flusher.lock().flushed_offset, 102);
}

#[test]
fn flush_if_due_follows_flush_ms() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        flush_ms: 100,
        ..LogConfig::default()
    };
    let log = Log::open(dir.path(), cfg, 1_000).unwrap();
    log.append(batch(1, 1, &[1]), EPOCH, 1_000).unwrap();
    log.flush_if_due(1_099).unwrap();
    assert_eq!(log.flusher.lock().flushed_offset, 0);
    log.flush_if_due(1_100).unwrap();
    assert_eq!(log.flusher.lock().flushed_offset, 1);
}

#[test]
fn storage_failure_stops_writes_but_not_reads() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    let stored = fill(&log, 2, 10);
    log.inject_write_failure();
    assert!(matches!(
        log.append(batch(1, 1, &[1]), EPOCH, 0),
        Err(LogError::Io(_))
    ));
    match log.append(batch(1, 1, &[1]), EPOCH, 0) {
        Err(LogError::StorageFailed(reason)) => assert!(reason.contains("injected")),
        other => panic!("expected StorageFailed, got {other:?}"),
    }
    assert!(matches!(
        log.apply_retention(0),
        Err(LogError::StorageFailed(_))
    ));
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(read_batches(&log), stored);
}

#[test]
fn append_rejects_a_buffer_that_is_not_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    let mut two = batch(1, 1, &[1]);
    two.extend_from_slice(&batch(1, 1, &[1]));
    assert!(matches!(
        log.append(two, EPOCH, 0),
        Err(LogError::InvalidBatch(RecordError::LengthMismatch { .. }))
    ));
    assert!(matches!(
        log.append(BytesMut::from(&b"short"[..]), EPOCH, 0),
        Err(LogError::InvalidBatch(RecordError::Truncated { .. }))
    ));
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn truncate_to_removes_batches_from_the_one_holding_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), three_per_segment(), 0).unwrap();
    let stored = fill(&log, 12, 40);
    log.truncate_to(20).unwrap(); // batch 6 holds 18..21
    assert_eq!(log.log_end_offset(), 18);
    assert_eq!(read_batches(&log), stored[..6]);
    // Segment 18 stays, now empty, as the active segment.
    assert_eq!(log.segment_count(), 3);
    assert_eq!(log.active().size(), 0);
    let info = log.append(batch(3, 40, &[1]), EPOCH, 0).unwrap();
    assert_eq!(info.base_offset, 18);
    log.truncate_to(100).unwrap();
    assert_eq!(log.log_end_offset(), 21);
    drop(log);
    let log = Log::open(dir.path(), three_per_segment(), 0).unwrap();
    assert_eq!(log.log_end_offset(), 21);
    assert_eq!(read_batches(&log)[..6], stored[..6]);
}

#[test]
fn truncate_fully_and_start_at_restarts_an_empty_log_past_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), three_per_segment(), 0).unwrap();
    fill(&log, 4, 40); // 12 offsets in two segments
    assert!(matches!(
        log.truncate_fully_and_start_at(5, 0),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    log.truncate_fully_and_start_at(100, 0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
    assert_eq!(log.segment_base_offsets(), [100]);
    let info = log.append(batch(3, 40, &[1]), EPOCH, 0).unwrap();
    assert_eq!(info.base_offset, 100);
    drop(log);
    // Durable: the same after a reopen, with nothing below 100 left.
    let log = Log::open(dir.path(), three_per_segment(), 0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 103));
    assert_eq!(log.segment_base_offsets(), [100]);
    assert_eq!(read_batches(&log).len(), 1);
}

/// A fetch holding a range (as sendfile does) across a truncation and new
/// appends at the same offsets: the range must still read the bytes it was
/// cut from, never the batches written after the truncation.
#[test]
fn a_range_in_flight_never_reads_bytes_written_after_a_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    let stored = fill(&log, 6, 40);
    let in_flight = log.read(9, i64::MAX, 1 << 20).unwrap();
    let before = in_flight.to_bytes().unwrap();
    assert_eq!(before, stored[3..].concat());
    log.truncate_to(9).unwrap();
    assert_eq!(log.log_end_offset(), 9);
    let replaced = fill_from(&log, 9, 3, 40, 9_000);
    assert_eq!(
        in_flight.to_bytes().unwrap(),
        before,
        "the old range reads new bytes"
    );
    // New reads see the new batches; nothing is left over after a reopen.
    let now = log.read(9, i64::MAX, 1 << 20).unwrap().to_bytes().unwrap();
    assert_eq!(now, replaced.concat());
    drop((in_flight, log));
    let log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert_eq!(read_batches(&log), [&stored[..3], &replaced[..]].concat());
    assert!(fs::read_dir(dir.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".truncated")));
}

/// Appends `count` 3-record batches from `first_offset` with timestamps
/// from `ts`; returns the stored bytes.
fn fill_from(
    log: &Log,
    first_offset: i64,
    count: usize,
    value_bytes: usize,
    ts: i64,
) -> Vec<Bytes> {
    (0..count)
        .map(|i| {
            let t = ts + i as i64;
            let b = batch(3, value_bytes, &[t, t, t]);
            let info = log.append(b.clone(), EPOCH, 0).unwrap();
            assert_eq!(info.base_offset, first_offset + 3 * i as i64);
            patched(&b, info.base_offset)
        })
        .collect()
}

#[test]
fn delete_removes_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-3");
    let log = Log::open(&path, LogConfig::default(), 0).unwrap();
    fill(&log, 1, 1);
    log.delete().unwrap();
    assert!(!path.exists());
}

mod faults;

fn epochs_of(log: &Log) -> Vec<(i32, i64)> {
    log.leader_epochs()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}

/// The leader-epoch cache follows appends of new epochs, survives a
/// restart, is cut by truncation and by a moved log start, and is rebuilt
/// from the batches when its file is gone.
#[test]
fn leader_epochs_follow_appends_truncation_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    {
        let log = Log::open(&path, three_per_segment(), 0).unwrap();
        for (epoch, batches) in [(0, 2), (3, 3), (7, 1)] {
            for _ in 0..batches {
                log.append(batch(3, 40, &[1_000]), epoch, 0).unwrap();
            }
        }
        assert_eq!(epochs_of(&log), [(0, 0), (3, 6), (7, 15)]);
        assert_eq!(log.end_offset_for_epoch(3), (3, 15));
        assert_eq!(log.end_offset_for_epoch(5), (3, 15));
        assert_eq!(log.end_offset_for_epoch(7), (7, 18));
        assert_eq!(log.latest_leader_epoch(), Some(7));
        // Dropped without close, as after a crash.
    }
    let log = Log::open(&path, three_per_segment(), 0).unwrap();
    assert_eq!(epochs_of(&log), [(0, 0), (3, 6), (7, 15)]);
    log.truncate_to(12).unwrap();
    assert_eq!(epochs_of(&log), [(0, 0), (3, 6)]);
    assert_eq!(log.end_offset_for_epoch(3), (3, 12));
    log.delete_records_before(7).unwrap();
    assert_eq!(epochs_of(&log), [(3, 7)]);
    drop(log);
    let checkpoint = path.join(epochs::LEADER_EPOCH_CHECKPOINT_FILE);
    assert_eq!(fs::read_to_string(&checkpoint).unwrap(), "0\n1\n3 7\n");
    fs::remove_file(&checkpoint).unwrap();
    let log = Log::open(&path, three_per_segment(), 0).unwrap();
    // Rebuilt from the batches, starting at the log start.
    assert_eq!(epochs_of(&log), [(3, 7)]);
    assert_eq!(fs::read_to_string(&checkpoint).unwrap(), "0\n1\n3 7\n");
    // An entry whose batch never reached the log (crash in between) is cut.
    fs::write(&checkpoint, "0\n2\n3 7\n9 12\n").unwrap();
    drop(log);
    let log = Log::open(&path, three_per_segment(), 0).unwrap();
    assert_eq!(epochs_of(&log), [(3, 7)]);
}

/// A replica keeps its leader's offsets and epochs, may skip offsets (a
/// compacted leader) and never overlaps what it holds.
#[test]
fn replica_appends_keep_offsets_and_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(&dir.path().join("t-0"), LogConfig::default(), 0).unwrap();
    let mut first = batch(3, 10, &[1_000]);
    vltava_record::set_base_offset(&mut first, 0);
    vltava_record::set_partition_leader_epoch(&mut first, 2);
    let (info, _) = log.append_replica(first.clone(), 0).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 2));
    let mut gap = batch(2, 10, &[1_000]);
    vltava_record::set_base_offset(&mut gap, 10);
    vltava_record::set_partition_leader_epoch(&mut gap, 4);
    log.append_replica(gap.clone(), 0).unwrap();
    assert_eq!(log.log_end_offset(), 12);
    assert_eq!(epochs_of(&log), [(2, 0), (4, 10)]);
    let err = log.append_replica(first.clone(), 0).unwrap_err();
    assert!(
        matches!(
            err,
            LogError::OffsetOverlap {
                base_offset: 0,
                log_end: 12
            }
        ),
        "{err}"
    );
    assert_eq!(
        read_batches(&log),
        [first.freeze(), gap.freeze()],
        "stored as the leader wrote them"
    );
}
