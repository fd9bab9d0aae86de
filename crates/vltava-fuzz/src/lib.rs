//! Fuzz target bodies: one function per decoder of untrusted bytes, each
//! asserting what must hold for *any* input (no panic, and an oracle where
//! there is one). The cargo-fuzz targets in `fuzz/fuzz_targets` call these
//! (nightly only); `tests/smoke.rs` runs them on stable for a bounded time
//! from seed inputs with mutations, plus proptest round trips. See
//! docs/reliability.md for what runs where.

use std::fs;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{FetchRequest, RequestHeader, RequestKind};
use kafka_protocol::protocol::{Encodable, StrBytes};
use vltava_log::{Log, LogConfig};
use vltava_protocol::{decode_request, frame_length, ApiKey, FRAME_PREFIX_BYTES, SUPPORTED_APIS};
use vltava_record::{BatchBuilder, Compression};

/// `socket.request.max.bytes` default.
const REQUEST_BYTES_MAX: usize = 100 << 20;

/// A frame with its length prefix: the prefix check never panics and never
/// admits more than the limit; the body decodes or is refused, and a body
/// that decodes re-encodes without panicking to bytes that, if they decode,
/// decode to the same request.
pub fn request_frame(data: &[u8]) {
    if data.len() < FRAME_PREFIX_BYTES {
        return;
    }
    let prefix: [u8; FRAME_PREFIX_BYTES] = data[..FRAME_PREFIX_BYTES].try_into().unwrap();
    if let Ok(n) = frame_length(prefix, REQUEST_BYTES_MAX) {
        assert!(n <= REQUEST_BYTES_MAX);
    }
    let frame = Bytes::copy_from_slice(&data[FRAME_PREFIX_BYTES..]);
    let Ok(request) = decode_request(frame) else {
        return;
    };
    let version = request.api_version();
    assert!(SUPPORTED_APIS
        .iter()
        .any(|(k, min, max)| *k == request.api_key && (*min..=*max).contains(&version)));
    let again = encode_request(request.api_key, version, &request.header, &request.body);
    // Known kafka-protocol asymmetry (docs/reliability.md): a few decoded
    // requests (seen: JoinGroup v6) re-encode to bytes it will not decode.
    // The broker never re-encodes requests, so only a successful re-decode
    // is compared.
    let Ok(decoded) = decode_request(again) else {
        return;
    };
    assert_eq!(
        decoded.body, request.body,
        "{:?} v{version}",
        request.api_key
    );
    assert_eq!(decoded.header.correlation_id, request.header.correlation_id);
}

/// Header then body, as a client would send them (no length prefix).
pub fn encode_request(
    api_key: ApiKey,
    version: i16,
    header: &RequestHeader,
    body: &RequestKind,
) -> Bytes {
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .expect("encode header");
    body.encode(&mut buf, version).expect("encode body");
    buf.freeze()
}

/// One valid frame (length prefix included) for every supported API key
/// and version: the smallest all-zero body that decodes, re-encoded. Seeds
/// for mutation.
pub fn request_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for &(api_key, min, max) in SUPPORTED_APIS {
        for version in min..=max {
            let header = RequestHeader::default()
                .with_request_api_key(api_key as i16)
                .with_request_api_version(version)
                .with_correlation_id(7)
                .with_client_id(Some(StrBytes::from_static_str("fuzz")));
            let mut head = BytesMut::new();
            header
                .encode(&mut head, api_key.request_header_version(version))
                .unwrap();
            // Zeros are empty arrays and strings in the classic encoding,
            // ones in the compact (flexible) one.
            let decoded = [0u8, 1].iter().find_map(|&fill| {
                (0..256).find_map(|n| {
                    let mut frame = head.to_vec();
                    frame.resize(frame.len() + n, fill);
                    decode_request(Bytes::from(frame)).ok()
                })
            });
            let body = match decoded {
                Some(request) => encode_request(api_key, version, &request.header, &request.body),
                // Fetch v12+ has a field that neither fill decodes as.
                None if api_key == ApiKey::Fetch => {
                    let body = RequestKind::Fetch(FetchRequest::default());
                    encode_request(api_key, version, &header, &body)
                }
                None => panic!("no seed for {api_key:?} v{version}"),
            };
            let mut seed = (body.len() as i32).to_be_bytes().to_vec();
            seed.extend_from_slice(&body);
            seeds.push(seed);
        }
    }
    seeds
}

/// Batch validation never panics; a batch it accepts is exactly as long as
/// it says, and its records decode or are refused, never panic.
pub fn record_batch(data: &[u8]) {
    let _ = vltava_record::batch_total_bytes(data);
    let _ = vltava_record::BatchHeader::parse(data);
    if let Ok(header) = vltava_record::validate_stored_batch(data) {
        assert_eq!(header.total_bytes(), data.len());
        if let Ok(records) = vltava_record::decode_records(data) {
            assert!(records.len() <= header.records_count.max(0) as usize);
        }
    }
    if vltava_record::validate_batch(data).is_ok() {
        assert!(vltava_record::validate_stored_batch(data).is_ok());
    }
}

/// Valid batches, for seeds: `count` batches of 1-3 records, some compressed.
pub fn batch_seeds(count: usize) -> Vec<Vec<u8>> {
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Lz4,
        Compression::Zstd,
        Compression::Snappy,
    ];
    (0..count)
        .map(|i| {
            let mut b = BatchBuilder::new(codecs[i % codecs.len()]);
            for r in 0..=(i % 3) {
                let key = Bytes::from(format!("k{r}"));
                let value = Bytes::from(format!("value-{i}-{r}"));
                b = b.record(Some(key), Some(value), vec![], 1_000 + (i * 3 + r) as i64);
            }
            let mut bytes = b.build();
            vltava_record::set_base_offset(&mut bytes, 0);
            bytes.to_vec()
        })
        .collect()
}

/// Recovery over an arbitrary last segment: never panics; what it keeps is
/// whole, valid batches with offsets going up, the file is cut to exactly
/// that, and the log takes appends afterwards.
pub fn segment_recovery(data: &[u8]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("{:020}.log", 0));
    fs::write(&path, data).expect("write segment");
    let log =
        Log::open(dir.path(), LogConfig::default(), 0).expect("recovery never fails on content");
    let end = log.log_end_offset();
    let kept = read_all_verified(&log);
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        kept.len() as u64,
        "file cut to the valid prefix"
    );
    assert!(
        data.starts_with(&kept),
        "recovery keeps a prefix of the file"
    );
    let batch = BatchBuilder::new(Compression::None)
        .record(None, Some(Bytes::from_static(b"after")), vec![], 1)
        .build();
    let info = log.append(batch, 0, 0).expect("append after recovery");
    assert_eq!(info.base_offset, end);
}

/// Every batch from the log start to the end, each checked.
fn read_all_verified(log: &Log) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let bytes = log
            .read(offset, end, 1)
            .and_then(|s| s.to_verified_bytes())
            .expect("recovered data reads back valid");
        let header = vltava_record::validate_stored_batch(&bytes).expect("one whole batch");
        assert!(header.next_offset() > offset);
        offset = header.next_offset();
        out.extend_from_slice(&bytes);
    }
    out
}

/// Arbitrary `.index` and `.timeindex` files for a closed segment of known
/// batches: whatever they hold, every offset lookup gives exactly the batch
/// a scan gives (bad indexes are detected and rebuilt, or a misdirected
/// walk is noticed and redone from the segment start), and a timestamp
/// lookup never panics and never answers with a record before the time
/// asked for.
pub fn index_lookup(data: &[u8]) {
    // The first byte says how many of the rest are the offset index.
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let (offset_index, time_index) = rest.split_at(usize::from(first).min(rest.len()));
    let dir = tempfile::tempdir().expect("tempdir");
    let batches = index_fixture(dir.path());
    fs::write(dir.path().join(format!("{:020}.index", 0)), offset_index).unwrap();
    fs::write(dir.path().join(format!("{:020}.timeindex", 0)), time_index).unwrap();
    let log = Log::open(dir.path(), LogConfig::default(), 0).expect("open");
    for (base, last, max_ts, bytes) in &batches {
        for offset in *base..=*last {
            let slice = log.read(offset, i64::MAX, 1).expect("read");
            let got = slice.to_verified_bytes().expect("valid");
            assert_eq!(&got[..], &bytes[..], "offset {offset}");
        }
        // A time index that passes the checks but lies (the checks cannot
        // prove every entry without a scan; Kafka's cannot either) may
        // misdirect a timestamp search, but only to a record that really
        // has a timestamp at or after the one asked for.
        if let Some((offset, ts)) = log.offset_for_timestamp(*max_ts).expect("time lookup") {
            assert!(ts >= *max_ts && (0..12).contains(&offset), "{offset} {ts}");
        }
    }
}

/// Segment 0 with twelve single-record batches (closed: segment 12 follows),
/// written without indexes. Returns (base, last, max timestamp, bytes).
fn index_fixture(dir: &Path) -> Vec<(i64, i64, i64, Vec<u8>)> {
    let mut log_bytes = Vec::new();
    let mut batches = Vec::new();
    for i in 0..12i64 {
        let mut b = BatchBuilder::new(Compression::None)
            .record(
                None,
                Some(Bytes::from(vec![b'v'; 40])),
                vec![],
                1_000 + i * 10,
            )
            .build();
        vltava_record::set_base_offset(&mut b, i);
        batches.push((i, i, 1_000 + i * 10, b.to_vec()));
        log_bytes.extend_from_slice(&b);
    }
    fs::write(dir.join(format!("{:020}.log", 0)), &log_bytes).unwrap();
    fs::write(dir.join(format!("{:020}.log", 12)), b"").unwrap();
    batches
}

/// Valid index files for the fixture, for seeds: an entry every 2 batches.
pub fn index_seeds() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let batches = index_fixture(dir.path());
    let mut offsets = Vec::new();
    let mut times = Vec::new();
    let mut position = 0u32;
    for (i, (base, _, ts, bytes)) in batches.iter().enumerate() {
        if i % 2 == 0 {
            offsets.extend_from_slice(&(*base as u32).to_be_bytes());
            offsets.extend_from_slice(&position.to_be_bytes());
            times.extend_from_slice(&ts.to_be_bytes());
            times.extend_from_slice(&(*base as u32).to_be_bytes());
        }
        position += bytes.len() as u32;
    }
    let mut seed = vec![offsets.len() as u8];
    seed.extend_from_slice(&offsets);
    seed.extend_from_slice(&times);
    vec![seed]
}
