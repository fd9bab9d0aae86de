use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use vltava_record::{BatchBuilder, Compression};

use super::*;
use crate::LogConfig;

const EPOCH: i32 = 3;
const NOW_MS: i64 = 1_700_000_000_000;
const HOUR_MS: i64 = 3_600_000;
/// A high watermark past every offset: the whole log is committed.
const ALL_COMMITTED: i64 = i64::MAX;

type Kv = (String, Option<String>);

fn key(i: usize) -> String {
    format!("key-{i:04}")
}

fn kv_batch(records: &[Kv], timestamp: i64, codec: Compression) -> BytesMut {
    let mut b = BatchBuilder::new(codec);
    for (k, v) in records {
        let value = v.as_ref().map(|v| Bytes::from(v.clone()));
        b = b.record(Some(Bytes::from(k.clone())), value, vec![], timestamp);
    }
    b.build()
}

fn open(dir: &Path, segment_bytes: u64) -> Log {
    let config = LogConfig {
        segment_bytes,
        segment_ms: 1_000_000,
        retention_ms: -1,
        ..LogConfig::default()
    };
    Log::open(dir, config, NOW_MS).unwrap()
}

fn cleaner() -> Cleaner {
    Cleaner::new(1 << 20, Throttler::unlimited())
}

fn clean_config() -> CleanConfig {
    CleanConfig {
        delete_retention_ms: HOUR_MS,
        ..CleanConfig::default()
    }
}

/// Appends a batch whose timestamp is far ahead, so the log rolls and every
/// earlier batch is in a closed segment. Returns its offset.
fn roll_with_marker(log: &Log) -> i64 {
    let marker = kv_batch(
        &[("marker".into(), Some("m".into()))],
        10_000_000,
        Compression::None,
    );
    log.append(marker, EPOCH, NOW_MS).unwrap().base_offset
}

/// Every record from the log start: (offset, key, value).
fn records(log: &Log) -> Vec<(i64, String, Option<String>)> {
    batches(log)
        .iter()
        .flat_map(|b| vltava_record::decode_records(b).unwrap())
        .map(|r| {
            let text = |b: Bytes| String::from_utf8(b.to_vec()).unwrap();
            (
                r.offset,
                r.key.map(text).unwrap_or_default(),
                r.value.map(text),
            )
        })
        .collect()
}

fn batches(log: &Log) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let bytes = log.read(offset, end, 1).unwrap().to_bytes().unwrap();
        if bytes.is_empty() {
            break;
        }
        let header = vltava_record::validate_stored_batch(&bytes).unwrap();
        offset = header.next_offset();
        out.push(bytes);
    }
    out
}

/// Writes `versions` rounds over `keys` keys in batches of ten; in the last
/// round every seventh key gets a tombstone. Returns, per key, its latest
/// (offset, value).
fn write_versions(
    log: &Log,
    keys: usize,
    versions: usize,
    codec: Compression,
) -> BTreeMap<String, (i64, Option<String>)> {
    let mut latest = BTreeMap::new();
    for version in 0..versions {
        for chunk in (0..keys).collect::<Vec<_>>().chunks(10) {
            let records: Vec<Kv> = chunk
                .iter()
                .map(|&i| {
                    let tombstone = version == versions - 1 && i % 7 == 0;
                    let value = (!tombstone).then(|| format!("v{version}-{i}"));
                    (key(i), value)
                })
                .collect();
            let ts = 1_000 + version as i64;
            let info = log
                .append(kv_batch(&records, ts, codec), EPOCH, NOW_MS)
                .unwrap();
            for (delta, (k, v)) in records.into_iter().enumerate() {
                latest.insert(k, (info.base_offset + delta as i64, v));
            }
        }
    }
    latest
}

fn expected(
    latest: &BTreeMap<String, (i64, Option<String>)>,
    with_tombstones: bool,
) -> Vec<(i64, String, Option<String>)> {
    let mut out: Vec<_> = latest
        .iter()
        .filter(|(_, (_, v))| with_tombstones || v.is_some())
        .map(|(k, (o, v))| (*o, k.clone(), v.clone()))
        .collect();
    out.sort();
    out
}

fn without_marker(
    mut records: Vec<(i64, String, Option<String>)>,
) -> Vec<(i64, String, Option<String>)> {
    records.retain(|(_, k, _)| k != "marker");
    records
}

#[test]
fn nothing_at_or_above_the_high_watermark_is_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 16 * 1024);
    write_versions(&log, 1_000, 5, Compression::None);
    let marker = roll_with_marker(&log);
    let before = records(&log);
    // With the high watermark in the first segment, no segment is wholly
    // committed: nothing may be cleaned.
    let first_segment_end = log.segment_base_offsets()[1];
    let summary = log
        .clean(
            &mut cleaner(),
            &clean_config(),
            first_segment_end - 1,
            NOW_MS,
        )
        .unwrap();
    assert!(summary.is_none(), "{summary:?}");
    assert_eq!(records(&log), before);
    // Once four segments are committed, only they are cleaned.
    let committed = log.segment_base_offsets()[4];
    let summary = log
        .clean(&mut cleaner(), &clean_config(), committed, NOW_MS)
        .unwrap()
        .unwrap();
    assert_eq!(summary.clean_offset, committed);
    let after = records(&log);
    let above = |r: &Vec<(i64, String, Option<String>)>| {
        r.iter()
            .filter(|(o, _, _)| *o >= committed)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(above(&after), above(&before));
    assert!(after.len() < before.len());
    assert!(marker > committed);
}

#[test]
fn latest_value_per_key_survives_at_its_original_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 16 * 1024);
    let latest = write_versions(&log, 1_000, 5, Compression::None);
    let marker = roll_with_marker(&log);
    let segments_before = log.segment_count();
    assert!(segments_before >= 8, "{segments_before} segments");
    let size_before = log.size_bytes();

    let summary = log
        .clean(&mut cleaner(), &clean_config(), ALL_COMMITTED, NOW_MS)
        .unwrap()
        .unwrap();
    assert_eq!(summary.first_dirty_offset, 0);
    assert_eq!(summary.clean_offset, marker);
    assert!(!summary.map_full);
    assert_eq!(summary.records_removed, 4 * 1_000);
    assert_eq!(log.cleaner_checkpoint(), marker);
    // Tombstones stay for delete.retention.ms after their first cleaning.
    assert_eq!(without_marker(records(&log)), expected(&latest, true));
    assert!(log.size_bytes() < size_before / 3);
    assert_eq!(log.log_end_offset(), marker + 1);

    // Nothing dirty and no tombstone due: no pass.
    let early = NOW_MS + HOUR_MS - 1;
    assert!(log
        .clean(&mut cleaner(), &clean_config(), ALL_COMMITTED, early)
        .unwrap()
        .is_none());
    let summary = log
        .clean(
            &mut cleaner(),
            &clean_config(),
            ALL_COMMITTED,
            NOW_MS + HOUR_MS,
        )
        .unwrap()
        .unwrap();
    assert_eq!(summary.records_removed, 143);
    assert_eq!(without_marker(records(&log)), expected(&latest, false));
    // That second pass read small segments and merged them.
    assert!(
        log.segment_count() < segments_before / 2,
        "{}",
        log.segment_count()
    );

    // The result is durable: reopen and read the same.
    drop(log);
    let log = open(dir.path(), 16 * 1024);
    assert_eq!(without_marker(records(&log)), expected(&latest, false));
    assert_eq!(log.cleaner_checkpoint(), marker);
}

#[test]
fn tombstones_are_kept_until_delete_retention_after_a_later_write() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 4 * 1024);
    let latest = write_versions(&log, 100, 2, Compression::None);
    roll_with_marker(&log);
    let config = CleanConfig {
        min_cleanable_dirty_ratio: 0.0,
        ..clean_config()
    };
    log.clean(&mut cleaner(), &config, ALL_COMMITTED, NOW_MS)
        .unwrap()
        .unwrap();
    // New dirty data half an hour later: that pass must not remove the
    // tombstones, which have only been clean for half an hour.
    let more: Vec<Kv> = vec![("fresh".into(), Some("x".into()))];
    log.append(
        kv_batch(&more, 20_000_000, Compression::None),
        EPOCH,
        NOW_MS,
    )
    .unwrap();
    roll_with_marker2(&log);
    let half = NOW_MS + HOUR_MS / 2;
    log.clean(&mut cleaner(), &config, ALL_COMMITTED, half)
        .unwrap()
        .unwrap();
    let tombstones = records(&log).iter().filter(|r| r.2.is_none()).count();
    assert_eq!(
        tombstones,
        latest.values().filter(|v| v.1.is_none()).count()
    );
    assert!(tombstones > 0);
    // Due an hour after the first pass, with no new data.
    assert!(log
        .clean(&mut cleaner(), &config, ALL_COMMITTED, NOW_MS + HOUR_MS - 1)
        .unwrap()
        .is_none());
    log.clean(&mut cleaner(), &config, ALL_COMMITTED, NOW_MS + HOUR_MS)
        .unwrap()
        .unwrap();
    assert_eq!(records(&log).iter().filter(|r| r.2.is_none()).count(), 0);
}

fn roll_with_marker2(log: &Log) {
    let marker = kv_batch(
        &[("marker2".into(), Some("m".into()))],
        40_000_000,
        Compression::None,
    );
    log.append(marker, EPOCH, NOW_MS).unwrap();
}

#[test]
fn compressed_batches_keep_their_codec_and_header_fields() {
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), 4 * 1024);
        let latest = write_versions(&log, 200, 3, codec);
        // A LogAppendTime batch from an idempotent producer, half of it
        // overwritten later.
        let mut lat = BatchBuilder::new(codec).producer(42, 1, 100);
        for i in 0..4 {
            let value = Some(Bytes::from(format!("lat-{i}")));
            lat = lat.record(Some(Bytes::from(format!("lat-{i}"))), value, vec![], 5);
        }
        let mut lat = lat.build();
        vltava_record::set_log_append_time(&mut lat, 7_777);
        let lat_base = log.append(lat, EPOCH, NOW_MS).unwrap().base_offset;
        let overwrite: Vec<Kv> = vec![
            ("lat-0".into(), Some("new0".into())),
            ("lat-3".into(), Some("new3".into())),
        ];
        log.append(kv_batch(&overwrite, 6, codec), EPOCH, NOW_MS)
            .unwrap();
        roll_with_marker(&log);

        log.clean(&mut cleaner(), &clean_config(), ALL_COMMITTED, NOW_MS)
            .unwrap()
            .unwrap();
        let mut expect = expected(&latest, true);
        for (k, v) in [("lat-1", "lat-1"), ("lat-2", "lat-2")] {
            let offset = lat_base + k[4..].parse::<i64>().unwrap();
            expect.push((offset, k.to_string(), Some(v.to_string())));
        }
        expect.push((lat_base + 4, "lat-0".into(), Some("new0".into())));
        expect.push((lat_base + 5, "lat-3".into(), Some("new3".into())));
        expect.sort();
        assert_eq!(without_marker(records(&log)), expect, "{codec:?}");
        for bytes in batches(&log) {
            let h = vltava_record::validate_stored_batch(&bytes).unwrap();
            if h.records_count > 0 && h.base_offset != lat_base + 6 {
                assert_eq!(h.compression(), codec, "batch at {}", h.base_offset);
            }
            if h.producer_id == 42 {
                assert_eq!(h.base_offset, lat_base);
                assert_eq!(h.last_offset(), lat_base + 3);
                assert_eq!(h.records_count, 2);
                assert_eq!((h.producer_epoch, h.base_sequence), (1, 100));
                assert!(h.is_log_append_time());
                assert_eq!(h.max_timestamp, 7_777);
                assert_eq!(h.partition_leader_epoch, EPOCH);
                let records = vltava_record::decode_records(&bytes).unwrap();
                assert!(records.iter().all(|r| r.timestamp == 7_777));
                assert_eq!(records[0].sequence, 101);
            }
        }
    }
}

#[test]
fn an_emptied_batch_is_kept_only_if_it_is_its_producers_last() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 1 << 20);
    let producer_batch = |seq: i32, value: &str| {
        BatchBuilder::new(Compression::None)
            .producer(9, 2, seq)
            .record(
                Some(Bytes::from("k")),
                Some(Bytes::from(value.to_string())),
                vec![],
                10,
            )
            .record(
                Some(Bytes::from("j")),
                Some(Bytes::from(value.to_string())),
                vec![],
                10,
            )
            .build()
    };
    let first = log.append(producer_batch(0, "a"), EPOCH, NOW_MS).unwrap();
    let second = log.append(producer_batch(2, "b"), EPOCH, NOW_MS).unwrap();
    let plain: Vec<Kv> = vec![
        ("k".into(), Some("c".into())),
        ("j".into(), Some("c".into())),
    ];
    let third = log
        .append(kv_batch(&plain, 11, Compression::None), EPOCH, NOW_MS)
        .unwrap();
    roll_with_marker(&log);
    log.clean(&mut cleaner(), &clean_config(), ALL_COMMITTED, NOW_MS)
        .unwrap()
        .unwrap();
    let headers: Vec<BatchHeader> = batches(&log)
        .iter()
        .map(|b| vltava_record::validate_stored_batch(b).unwrap())
        .collect();
    // The first batch of producer 9 is gone, its last one remains empty,
    // with its offsets and sequence range, so its state can be rebuilt.
    assert!(headers.iter().all(|h| h.base_offset != first.base_offset));
    let empty = headers[0];
    assert_eq!(
        (empty.base_offset, empty.last_offset(), empty.records_count),
        (second.base_offset, second.last_offset, 0)
    );
    assert_eq!(
        (empty.producer_id, empty.producer_epoch, empty.base_sequence),
        (9, 2, 2)
    );
    assert_eq!(empty.last_sequence(), 3);
    assert_eq!(headers[1].base_offset, third.base_offset);
    assert_eq!(headers[1].records_count, 2);
}

#[test]
fn a_full_offset_map_cleans_up_to_where_it_got() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 8 * 1024);
    let latest = write_versions(&log, 300, 4, Compression::None);
    let marker = roll_with_marker(&log);
    // Room for 125 keys: the dirty range holds 300.
    let buffer = (125.0 / OFFSET_MAP_LOAD_FACTOR).ceil() as u64 * OFFSET_MAP_ENTRY_BYTES;
    let mut small = Cleaner::new(buffer, Throttler::unlimited());
    assert_eq!(small.map_capacity(), 125);
    let config = CleanConfig {
        min_cleanable_dirty_ratio: 0.0,
        ..clean_config()
    };
    let mut checkpoints = Vec::new();
    while let Some(summary) = log
        .clean(&mut small, &config, ALL_COMMITTED, NOW_MS)
        .unwrap()
    {
        checkpoints.push(summary.clean_offset);
        if summary.clean_offset == marker {
            break;
        }
        assert!(summary.map_full);
        assert!(summary.clean_offset < marker);
    }
    assert!(checkpoints.len() >= 3, "{checkpoints:?}");
    assert!(checkpoints.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(without_marker(records(&log)), expected(&latest, true));
}

#[test]
fn min_compaction_lag_keeps_recent_segments_dirty() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 4 * 1024);
    write_versions(&log, 100, 3, Compression::None);
    roll_with_marker(&log);
    let config = CleanConfig {
        // Records carry timestamps around 1 000 ms.
        min_compaction_lag_ms: NOW_MS,
        ..clean_config()
    };
    assert!(log
        .clean(&mut cleaner(), &config, ALL_COMMITTED, NOW_MS)
        .unwrap()
        .is_none());
    assert_eq!(log.cleaner_checkpoint(), -1);
    let config = CleanConfig {
        min_compaction_lag_ms: NOW_MS - 10_000,
        ..config
    };
    assert!(log
        .clean(&mut cleaner(), &config, ALL_COMMITTED, NOW_MS)
        .unwrap()
        .is_some());
}

#[test]
fn dirty_ratio_and_max_compaction_lag_trigger_passes() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 4 * 1024);
    write_versions(&log, 100, 3, Compression::None);
    roll_with_marker(&log);
    log.clean(&mut cleaner(), &clean_config(), ALL_COMMITTED, NOW_MS)
        .unwrap()
        .unwrap();
    // A little new dirty data: under the 0.5 ratio.
    let more: Vec<Kv> = vec![("key-0001".into(), Some("late".into()))];
    log.append(
        kv_batch(&more, 20_000_000, Compression::None),
        EPOCH,
        NOW_MS,
    )
    .unwrap();
    roll_with_marker2(&log);
    assert!(log
        .clean(&mut cleaner(), &clean_config(), ALL_COMMITTED, NOW_MS)
        .unwrap()
        .is_none());
    // The dirty segment's first batch (timestamp 10 000 000) is older than
    // max.compaction.lag.ms: forced.
    let overdue = CleanConfig {
        max_compaction_lag_ms: 1_000,
        ..clean_config()
    };
    let summary = log
        .clean(&mut cleaner(), &overdue, ALL_COMMITTED, NOW_MS)
        .unwrap()
        .unwrap();
    assert_eq!(summary.records_removed, 1);
    let values: Vec<_> = records(&log)
        .into_iter()
        .filter(|r| r.1 == "key-0001")
        .collect();
    assert_eq!(values.len(), 1);
    assert_eq!(values[0].2.as_deref(), Some("late"));
}

/// The same content written into a fresh log, for the crash tests.
fn crash_fixture(dir: &Path) -> (Log, BTreeMap<String, (i64, Option<String>)>) {
    let log = open(dir, 4 * 1024);
    let latest = write_versions(&log, 200, 3, Compression::Lz4);
    roll_with_marker(&log);
    (log, latest)
}

#[test]
fn a_crash_at_every_step_of_a_swap_recovers_to_a_consistent_log() {
    let reference = tempfile::tempdir().unwrap();
    let (log, latest) = crash_fixture(reference.path());
    let before = records(&log);
    log.clean(&mut cleaner(), &clean_config(), ALL_COMMITTED, NOW_MS)
        .unwrap()
        .unwrap();
    let after = records(&log);
    assert_eq!(without_marker(after.clone()), expected(&latest, true));
    drop(log);

    let mut completed = 0;
    let mut rolled_back = 0;
    for step in 1u8.. {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = crash_fixture(dir.path());
        log.crash_cleaner_after_step(step);
        if log
            .clean(&mut cleaner(), &clean_config(), ALL_COMMITTED, NOW_MS)
            .is_ok()
        {
            break;
        }
        drop(log);
        let log = open(dir.path(), 4 * 1024);
        let recovered = records(&log);
        // Either the first group was swapped in or it was not; either way
        // every record is one of the original ones at its offset, and every
        // key's latest value is there.
        let original: BTreeMap<i64, _> = before.iter().map(|r| (r.0, r)).collect();
        for r in &recovered {
            assert_eq!(original.get(&r.0), Some(&r), "step {step}: offset {}", r.0);
        }
        for (k, (offset, v)) in &latest {
            assert!(
                recovered
                    .iter()
                    .any(|r| r.0 == *offset && &r.1 == k && &r.2 == v),
                "step {step}: lost {k}"
            );
        }
        if recovered == before {
            rolled_back += 1;
        } else {
            completed += 1;
        }
        let leftovers: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap") || n.ends_with(".deleted"))
            .collect();
        assert!(leftovers.is_empty(), "step {step}: {leftovers:?}");
        // A pass after recovery gives exactly the uninterrupted result.
        log.clean(&mut cleaner(), &clean_config(), ALL_COMMITTED, NOW_MS)
            .unwrap()
            .unwrap();
        assert_eq!(records(&log), after, "step {step}");
        drop(log);
        let log = open(dir.path(), 4 * 1024);
        assert_eq!(records(&log), after, "step {step} after reopen");
    }
    // Step 1 (cleaned files written) and the index renames roll back; from
    // the log's rename on, recovery completes the swap.
    assert_eq!(rolled_back, 3);
    assert!(completed >= 6, "{completed}");
}

#[test]
fn recovery_keeps_group_segments_past_the_swapped_range() {
    // A group whose later segments were emptied entirely: if the crash came
    // before they were renamed, they stay, holding only superseded records.
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 1 << 20);
    let a: Vec<Kv> = vec![("a".into(), Some("1".into()))];
    let one_batch = kv_batch(&a, 1, Compression::None).len() as u64;
    let b: Vec<Kv> = vec![("b".into(), Some("1".into()))];
    log.append(kv_batch(&a, 1, Compression::None), EPOCH, NOW_MS)
        .unwrap();
    drop(log);
    // Build segments 0 (a) and 1 (b, superseded later) by hand through
    // rolls with a tiny segment size.
    let log = open(dir.path(), 80);
    log.append(kv_batch(&b, 2, Compression::None), EPOCH, NOW_MS)
        .unwrap();
    let b2: Vec<Kv> = vec![("b".into(), Some("2".into()))];
    log.append(kv_batch(&b2, 3, Compression::None), EPOCH, NOW_MS)
        .unwrap();
    roll_with_marker(&log);
    assert_eq!(log.segment_count(), 4);
    drop(log);
    // Groups of two segments: [0, 1] and [2]. Offset 1 is superseded by
    // offset 2, so the first group's cleaned segment ends at offset 1.
    let log = open(dir.path(), 2 * one_batch);
    // Crash after the log's `.swap` rename (step 4): segments 0 and 1 still
    // have their names; the swap holds only offset 0.
    log.crash_cleaner_after_step(4);
    assert!(log
        .clean(&mut cleaner(), &clean_config(), ALL_COMMITTED, NOW_MS)
        .is_err());
    drop(log);
    let log = open(dir.path(), 2 * one_batch);
    let got: Vec<(i64, String)> = records(&log).into_iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(
        got,
        [
            (0, "a".into()),
            (1, "b".into()),
            (2, "b".into()),
            (3, "marker".into())
        ]
    );
    log.clean(&mut cleaner(), &clean_config(), ALL_COMMITTED, NOW_MS)
        .unwrap()
        .unwrap();
    let got: Vec<(i64, String)> = records(&log).into_iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(
        got,
        [(0, "a".into()), (2, "b".into()), (3, "marker".into())]
    );
}

#[test]
fn truncation_below_the_checkpoint_moves_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 4 * 1024);
    write_versions(&log, 100, 3, Compression::None);
    let marker = roll_with_marker(&log);
    log.clean(&mut cleaner(), &clean_config(), ALL_COMMITTED, NOW_MS)
        .unwrap()
        .unwrap();
    assert_eq!(log.cleaner_checkpoint(), marker);
    let cut = records(&log)[10].0;
    log.truncate_to(cut).unwrap();
    assert!(log.cleaner_checkpoint() <= log.log_end_offset());
    drop(log);
    let log = open(dir.path(), 4 * 1024);
    assert!(log.cleaner_checkpoint() <= log.log_end_offset());
}

#[test]
fn the_throttler_sleeps_to_hold_the_rate() {
    struct FakeTime(Arc<AtomicU64>);
    impl ThrottleTime for FakeTime {
        fn now(&self) -> Duration {
            Duration::from_nanos(self.0.load(Ordering::SeqCst))
        }
        fn sleep(&mut self, d: Duration) {
            self.0.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
        }
    }
    let clock = Arc::new(AtomicU64::new(0));
    let mut t = Throttler::with_time(1_000.0, Box::new(FakeTime(Arc::clone(&clock))));
    // One second of burst, then 1 000 bytes per second.
    for _ in 0..10 {
        t.throttle(1_000).unwrap();
    }
    assert_eq!(t.slept().as_millis(), 9_000);
    // Time passing without I/O refills the bucket, but only up to a second.
    clock.fetch_add(5_000_000_000, Ordering::SeqCst);
    t.throttle(1_000).unwrap();
    assert_eq!(t.slept().as_millis(), 9_000);
    t.throttle(500).unwrap();
    assert_eq!(t.slept().as_millis(), 9_500);
    let mut free = Throttler::unlimited();
    free.throttle(usize::MAX).unwrap();
    assert_eq!(free.slept(), Duration::ZERO);
    free.stop_flag().store(true, Ordering::SeqCst);
    let stopped = free.throttle(1).unwrap_err();
    assert_eq!(stopped.kind(), io::ErrorKind::Interrupted);
}

#[test]
fn a_stopped_pass_leaves_a_log_that_reopens_intact() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 4 * 1024);
    write_versions(&log, 100, 3, Compression::None);
    roll_with_marker(&log);
    let before = records(&log);
    let mut c = cleaner();
    c.stop_flag().store(true, Ordering::SeqCst);
    let err = log
        .clean(&mut c, &clean_config(), ALL_COMMITTED, NOW_MS)
        .unwrap_err();
    assert!(matches!(err, LogError::Io(ref e) if e.kind() == io::ErrorKind::Interrupted));
    assert_eq!(records(&log), before);
    drop(log);
    let log = open(dir.path(), 4 * 1024);
    assert_eq!(records(&log), before);
    assert!(log
        .clean(&mut cleaner(), &clean_config(), ALL_COMMITTED, NOW_MS)
        .unwrap()
        .is_some());
}

/// `cargo test --release -p vltava-log -- --ignored --nocapture cleaning_throughput`
#[test]
#[ignore]
fn cleaning_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 16 << 20);
    let value = "x".repeat(200);
    let mut i = 0usize;
    while log.size_bytes() < 100 << 20 {
        let records: Vec<Kv> = (0..100)
            .map(|j| {
                (
                    format!("key-{:06}", (i * 100 + j) % 100_000),
                    Some(value.clone()),
                )
            })
            .collect();
        log.append(kv_batch(&records, 1_000, Compression::None), EPOCH, NOW_MS)
            .unwrap();
        i += 1;
    }
    roll_with_marker(&log);
    let before = log.size_bytes();
    let mut c = Cleaner::new(128 << 20, Throttler::unlimited());
    let started = Instant::now();
    let summary = log
        .clean(&mut c, &clean_config(), ALL_COMMITTED, NOW_MS)
        .unwrap()
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "cleaned {:.1} MB -> {:.1} MB ({} records removed) in {secs:.2} s: {:.1} MB/s read",
        before as f64 / 1e6,
        log.size_bytes() as f64 / 1e6,
        summary.records_removed,
        summary.bytes_read as f64 / 1e6 / secs
    );
}

/// A partition deleted and re-created under the same directory name while
/// a (slow) cleaner pass runs on the old log: the pass must stop without
/// touching the new log's files.
#[test]
fn a_log_closed_for_deletion_stops_its_cleaner_pass() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let log = Arc::new(open(&path, 16 * 1024));
    write_versions(&log, 1_000, 5, Compression::None);
    roll_with_marker(&log);
    // About 1.5 MiB to read and write at 512 KiB/s: a pass of seconds.
    let pass = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut cleaner = Cleaner::new(1 << 20, Throttler::new(512.0 * 1024.0));
            log.clean(&mut cleaner, &clean_config(), ALL_COMMITTED, NOW_MS)
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let cleaning = || {
        fs::read_dir(&path).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".cleaned")
        })
    };
    while !cleaning() {
        assert!(
            std::time::Instant::now() < deadline,
            "the pass never started writing"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Returns once the pass has let go of the log (the thread may still be
    // unwinding); from here on nothing touches files in `path`.
    log.fence();
    let result = pass.join().unwrap();
    assert!(matches!(result, Err(LogError::Closed(_))), "{result:?}");
    // Delete, as the broker does, and re-create the partition.
    fs::rename(&path, dir.path().join("t-0.x-delete")).unwrap();
    let new = open(&path, 16 * 1024);
    new.append(
        kv_batch(
            &[("k".into(), Some("new".into()))],
            NOW_MS,
            Compression::None,
        ),
        EPOCH,
        NOW_MS,
    )
    .unwrap();
    assert!(matches!(
        log.append(
            kv_batch(&[("k".into(), None)], NOW_MS, Compression::None),
            EPOCH,
            NOW_MS
        ),
        Err(LogError::Closed(_))
    ));
    let mut files: Vec<String> = fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".log") || n.contains(".cleaned") || n.contains(".swap"))
        .collect();
    files.sort();
    assert_eq!(files, vec!["00000000000000000000.log".to_string()]);
    assert_eq!(
        records(&new),
        vec![(0, "k".to_string(), Some("new".to_string()))]
    );
}
