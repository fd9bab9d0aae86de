use super::*;
use proptest::prelude::*;

fn b(s: &'static str) -> Option<Bytes> {
    Some(Bytes::from_static(s.as_bytes()))
}

fn three_records(compression: Compression) -> BytesMut {
    BatchBuilder::new(compression)
        .record(b("k0"), b("v0"), vec![], 1_000)
        .record(None, b("v1"), vec![("h".to_string(), b("x"))], 1_005)
        .record(b("k2"), None, vec![], 1_002)
        .build()
}

#[test]
fn header_fields_of_built_batch() {
    let batch = BatchBuilder::new(Compression::None)
        .producer(7, 3, 100)
        .record(b("a"), b("b"), vec![], 50)
        .record(b("c"), b("d"), vec![], 40)
        .build();
    let h = validate_batch(&batch).unwrap();
    assert_eq!(h.base_offset, 0);
    assert_eq!(h.total_bytes(), batch.len());
    assert_eq!(h.magic, MAGIC_V2);
    assert_eq!(h.records_count, 2);
    assert_eq!(h.last_offset_delta, 1);
    assert_eq!(h.last_offset(), 1);
    assert_eq!(h.next_offset(), 2);
    assert_eq!(h.base_timestamp, 40);
    assert_eq!(h.max_timestamp, 50);
    assert_eq!(h.producer_id, 7);
    assert_eq!(h.producer_epoch, 3);
    assert_eq!(h.base_sequence, 100);
    assert_eq!(h.last_sequence(), 101);
    assert_eq!(h.compression(), Compression::None);
    assert!(!h.is_log_append_time() && !h.is_transactional() && !h.is_control());
    assert_eq!(BatchHeader::parse(&batch).unwrap(), h);
}

#[test]
fn every_codec_round_trips() {
    for c in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let batch = three_records(c);
        let h = validate_batch(&batch).unwrap();
        assert_eq!(h.compression(), c);
        let records = decode_records(&batch).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].key, b("k0"));
        assert_eq!(records[1].key, None);
        assert_eq!(records[1].value, b("v1"));
        assert_eq!(records[1].headers.len(), 1);
        assert_eq!(records[2].value, None);
        let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![0, 1, 2]);
        let ts: Vec<i64> = records.iter().map(|r| r.timestamp).collect();
        assert_eq!(ts, vec![1_000, 1_005, 1_002]);
    }
}

#[test]
fn empty_batch_is_stored_but_never_produced() {
    let batch = BatchBuilder::new(Compression::None).build();
    assert_eq!(batch.len(), BATCH_HEADER_BYTES);
    let h = validate_stored_batch(&batch).unwrap();
    assert_eq!(h.records_count, 0);
    assert!(decode_records(&batch).unwrap().is_empty());
    assert_eq!(
        validate_batch(&batch),
        Err(RecordError::BadRecordCount {
            records_count: 0,
            last_offset_delta: 0
        })
    );
}

#[test]
fn last_sequence_wraps_like_kafka() {
    let mut h = BatchHeader::parse(&three_records(Compression::None)).unwrap();
    h.base_sequence = i32::MAX - 1;
    h.last_offset_delta = 2;
    assert_eq!(h.last_sequence(), 0);
    h.base_sequence = i32::MAX;
    h.last_offset_delta = 0;
    assert_eq!(h.last_sequence(), i32::MAX);
    h.base_sequence = NO_SEQUENCE;
    assert_eq!(h.last_sequence(), NO_SEQUENCE);
}

#[test]
fn patches_outside_crc_keep_batch_valid() {
    let mut batch = three_records(Compression::Lz4);
    set_base_offset(&mut batch, 1_234_567);
    set_partition_leader_epoch(&mut batch, 9);
    let h = validate_batch(&batch).unwrap();
    assert_eq!(h.base_offset, 1_234_567);
    assert_eq!(h.partition_leader_epoch, 9);
    let offsets: Vec<i64> = decode_records(&batch)
        .unwrap()
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(offsets, vec![1_234_567, 1_234_568, 1_234_569]);
}

#[test]
fn log_append_time_rewrites_timestamps() {
    let mut batch = three_records(Compression::Gzip);
    set_log_append_time(&mut batch, 99_000);
    let h = validate_batch(&batch).unwrap();
    assert!(h.is_log_append_time());
    assert_eq!(h.max_timestamp, 99_000);
    assert!(decode_records(&batch)
        .unwrap()
        .iter()
        .all(|r| r.timestamp == 99_000));
}

#[test]
fn validate_rejects_bad_inputs() {
    let batch = three_records(Compression::None);
    let mut bad = batch.clone();
    bad[MAGIC_AT] = 1;
    assert_eq!(validate_batch(&bad), Err(RecordError::BadMagic(1)));

    let mut longer = batch.to_vec();
    longer.push(0);
    assert_eq!(
        validate_batch(&longer),
        Err(RecordError::LengthMismatch {
            declared: batch.len(),
            actual: batch.len() + 1
        })
    );

    let mut bad = batch.clone();
    bad[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&48i32.to_be_bytes());
    assert_eq!(validate_batch(&bad), Err(RecordError::BadLength(48)));

    // Unknown codec with a recomputed CRC is still rejected.
    let mut bad = batch.clone();
    bad[ATTRIBUTES_AT + 1] |= 0x07;
    let crc = crc32c::crc32c(&bad[CRC_COVERED_FROM..]);
    bad[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        validate_batch(&bad),
        Err(RecordError::UnknownCompression(7))
    );

    // Count disagreeing with last_offset_delta, CRC recomputed.
    let mut bad = batch.clone();
    bad[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&5i32.to_be_bytes());
    let crc = crc32c::crc32c(&bad[CRC_COVERED_FROM..]);
    bad[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        validate_batch(&bad),
        Err(RecordError::BadRecordCount {
            records_count: 5,
            last_offset_delta: 2
        })
    );
}

#[test]
fn hostile_record_count_with_valid_crc_is_an_error() {
    let mut bad = three_records(Compression::None);
    bad[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&i32::MAX.to_be_bytes());
    bad[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
        .copy_from_slice(&(i32::MAX - 1).to_be_bytes());
    let crc = crc32c::crc32c(&bad[CRC_COVERED_FROM..]);
    bad[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    assert!(validate_batch(&bad).is_ok());
    assert!(matches!(
        decode_records(&bad),
        Err(RecordError::BadRecordCount { .. })
    ));
}

#[test]
fn batches_splits_and_reports_partial_tail() {
    let a = three_records(Compression::None);
    let c = three_records(Compression::Zstd);
    let mut set = BytesMut::new();
    set.extend_from_slice(&a);
    set.extend_from_slice(&c);
    let set = set.freeze();
    let parts: Vec<Bytes> = batches(&set).map(Result::unwrap).collect();
    assert_eq!(parts, vec![a.clone().freeze(), c.clone().freeze()]);

    let cut = set.slice(..set.len() - 1);
    let parts: Vec<_> = batches(&cut).collect();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].as_ref().unwrap(), &a.freeze());
    assert_eq!(
        parts[1],
        Err(RecordError::Truncated {
            needed: c.len(),
            available: c.len() - 1
        })
    );
    assert_eq!(batches(&Bytes::new()).count(), 0);
}

fn arb_record() -> impl Strategy<Value = PendingRecord> {
    (
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..60)),
        proptest::collection::vec(
            (
                "[a-z]{0,5}",
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
            ),
            0..3,
        ),
        0i64..1_000_000_000,
    )
        .prop_map(|(k, v, h, ts)| PendingRecord {
            key: k.map(Bytes::from),
            value: v.map(Bytes::from),
            // Header keys are a map on decode: keep them unique.
            headers: h
                .into_iter()
                .enumerate()
                .map(|(i, (k, v))| (format!("{k}{i}"), v.map(Bytes::from)))
                .collect(),
            timestamp: ts,
        })
}

fn arb_compression() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Gzip),
        Just(Compression::Snappy),
        Just(Compression::Lz4),
        Just(Compression::Zstd),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn build_validate_decode_round_trip(
        records in proptest::collection::vec(arb_record(), 1..8),
        compression in arb_compression(),
        flip_at in any::<prop::sample::Index>(),
        flip_bits in 1u8..=255,
    ) {
        let mut builder = BatchBuilder::new(compression).producer(42, 1, 10);
        for r in &records {
            builder = builder.record(r.key.clone(), r.value.clone(), r.headers.clone(), r.timestamp);
        }
        let batch = builder.build();
        let h = validate_batch(&batch).unwrap();
        prop_assert_eq!(h.records_count as usize, records.len());
        prop_assert_eq!(h.max_timestamp, records.iter().map(|r| r.timestamp).max().unwrap());
        let decoded = decode_records(&batch).unwrap();
        prop_assert_eq!(decoded.len(), records.len());
        for (i, (d, r)) in decoded.iter().zip(&records).enumerate() {
            prop_assert_eq!(d.offset, i as i64);
            prop_assert_eq!(d.sequence, 10 + i as i32);
            prop_assert_eq!(&d.key, &r.key);
            prop_assert_eq!(&d.value, &r.value);
            prop_assert_eq!(d.timestamp, r.timestamp);
            let headers: Vec<(String, Option<Bytes>)> =
                d.headers.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            prop_assert_eq!(&headers, &r.headers);
        }

        // Any flipped byte covered by the CRC is caught.
        let at = CRC_COVERED_FROM + flip_at.index(batch.len() - CRC_COVERED_FROM);
        let mut flipped = batch.clone();
        flipped[at] ^= flip_bits;
        let err = validate_batch(&flipped).unwrap_err();
        prop_assert!(matches!(err, RecordError::CrcMismatch { .. }), "{:?}", err);

        // Every truncation fails cleanly.
        for len in 0..batch.len() {
            let cut = &batch[..len];
            prop_assert!(validate_batch(cut).is_err());
            prop_assert!(decode_records(cut).is_err());
            let cut = Bytes::copy_from_slice(cut);
            let items: Vec<_> = batches(&cut).collect();
            prop_assert!(items.last().is_none_or(|i| i.is_err()));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = BatchHeader::parse(&bytes);
        let _ = validate_batch(&bytes);
        let _ = decode_records(&bytes);
        let _ = batches(&Bytes::from(bytes)).count();
    }

    #[test]
    fn arbitrary_records_with_valid_crc_never_panic(
        tail in proptest::collection::vec(any::<u8>(), 0..120),
        count in 1i32..10,
        codec in 0u8..5,
    ) {
        let mut batch = BatchBuilder::new(Compression::None).build().to_vec();
        batch.extend_from_slice(&tail);
        let len = (batch.len() - LOG_OVERHEAD) as i32;
        batch[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&len.to_be_bytes());
        batch[ATTRIBUTES_AT + 1] = codec;
        batch[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&count.to_be_bytes());
        batch[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
            .copy_from_slice(&(count - 1).max(0).to_be_bytes());
        let crc = crc32c::crc32c(&batch[CRC_COVERED_FROM..]);
        batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        let header = validate_batch(&batch);
        prop_assert!(header.is_ok());
        let _ = decode_records(&batch);
        let rules = RecordRules { key_required: true, decompressed_bytes_max: 1 << 20, schema_ids: None };
        let checked = check_records(&batch, &header.unwrap(), &rules);
        // Whatever the walk says must agree with the full decoder: a batch
        // the walk accepts decodes to exactly `count` keyed records.
        if checked.is_ok() {
            let records = decode_records(&batch);
            prop_assert!(records.is_ok(), "walk accepted what decode refuses: {records:?}");
            prop_assert_eq!(records.unwrap().len(), count as usize);
        }
    }
}

#[test]
fn rebuilt_batch_keeps_offsets_fields_and_codec() {
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut batch = BatchBuilder::new(codec)
            .producer(7, 3, 100)
            .partition_leader_epoch(4)
            .record(b("k0"), b("v0"), vec![], 1_000)
            .record(b("k1"), b("v1"), vec![("h".to_string(), b("x"))], 1_005)
            .record(b("k2"), None, vec![], 1_002)
            .record(b("k3"), b("v3"), vec![], 990)
            .build();
        set_base_offset(&mut batch, 50);
        let original = validate_batch(&batch).unwrap();
        let records = decode_records(&batch).unwrap();
        let kept = vec![records[1].clone(), records[2].clone()];
        let rebuilt = rebuild_batch(&original, &kept).unwrap();
        // Fewer records than the offset range: fine on disk, not on produce.
        assert!(matches!(
            validate_batch(&rebuilt),
            Err(RecordError::BadRecordCount { .. })
        ));
        let h = validate_stored_batch(&rebuilt).unwrap();
        assert_eq!(
            (h.base_offset, h.last_offset(), h.records_count),
            (50, 53, 2)
        );
        assert_eq!(h.compression(), codec);
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (7, 3, 100)
        );
        assert_eq!(h.partition_leader_epoch, 4);
        assert_eq!(h.max_timestamp, 1_005);
        let decoded = decode_records(&rebuilt).unwrap();
        assert_eq!(decoded.len(), 2);
        for (d, k) in decoded.iter().zip(&kept) {
            assert_eq!(
                (d.offset, d.timestamp, d.sequence),
                (k.offset, k.timestamp, k.sequence)
            );
            assert_eq!(
                (&d.key, &d.value, &d.headers),
                (&k.key, &k.value, &k.headers)
            );
        }

        let empty = empty_batch_like(&original);
        let h = validate_stored_batch(&empty).unwrap();
        assert_eq!(
            (h.base_offset, h.last_offset(), h.records_count),
            (50, 53, 0)
        );
        assert_eq!((h.base_timestamp, h.max_timestamp), (1_005, 1_005));
        assert_eq!(h.compression(), Compression::None);
        assert_eq!(h.last_sequence(), 103);
        assert!(decode_records(&empty).unwrap().is_empty());
    }
}

#[test]
fn stored_validation_still_rejects_more_records_than_offsets() {
    let mut batch = three_records(Compression::None);
    // last offset delta 2 → 1: three records in a range of two.
    batch[23..27].copy_from_slice(&1i32.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_COVERED_FROM..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        validate_stored_batch(&batch),
        Err(RecordError::BadRecordCount { .. })
    ));
}

/// Found by the record_batch fuzz smoke test: a stored batch whose base
/// offset is i64::MIN made `decode_records` overflow (a panic in debug
/// builds) instead of decoding or refusing it.
#[test]
fn decode_records_survives_a_base_offset_of_i64_min() {
    let mut batch = three_records(Compression::None);
    set_base_offset(&mut batch, i64::MIN);
    let decoded = decode_records(&batch).unwrap();
    let offsets: Vec<i64> = decoded.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, [i64::MIN, i64::MIN + 1, i64::MIN + 2]);
}
