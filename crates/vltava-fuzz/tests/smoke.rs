//! The fuzz target bodies on stable Rust: each runs for a bounded time
//! (`VLTAVA_FUZZ_SECS`, default 5 s) over mutations of valid seed inputs
//! and plain random bytes, and prints its exec count. This is a smoke test,
//! not coverage-guided fuzzing (cargo-fuzz needs nightly; see
//! docs/reliability.md). Proptest round trips follow.

use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vltava_record::{BatchBuilder, Compression};

fn budget() -> Duration {
    let secs = std::env::var("VLTAVA_FUZZ_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(5.0);
    Duration::from_secs_f64(secs)
}

const INTERESTING_I32: [i32; 8] = [0, 1, -1, 12, 61, i32::MAX, i32::MIN, 1 << 20];

/// One to four random edits of `input`.
fn mutate(rng: &mut StdRng, input: &mut Vec<u8>) {
    for _ in 0..rng.random_range(1..=4) {
        let len = input.len();
        match rng.random_range(0..7) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                input[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                input[i] = [0, 0xff, 0x7f, 0x80, rng.random()][rng.random_range(0..5)];
            }
            2 if len > 0 => input.truncate(rng.random_range(0..len)),
            3 => {
                let i = rng.random_range(0..=len);
                let n = rng.random_range(1..16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                input.splice(i..i, bytes);
            }
            4 if len >= 4 => {
                let i = rng.random_range(0..=len - 4);
                let v = INTERESTING_I32[rng.random_range(0..INTERESTING_I32.len())];
                input[i..i + 4].copy_from_slice(&v.to_be_bytes());
            }
            5 if len > 1 => {
                let a = rng.random_range(0..len);
                let b = rng.random_range(a..len);
                let chunk = input[a..=b].to_vec();
                let at = rng.random_range(0..=len);
                input.splice(at..at, chunk);
            }
            _ => {}
        }
    }
}

/// Runs `body` on seeds, mutated seeds and random bytes until the budget is
/// spent; returns the number of executions.
fn smoke(name: &str, seeds: &[Vec<u8>], body: fn(&[u8])) -> u64 {
    let seed = std::env::var("VLTAVA_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    let mut rng = StdRng::seed_from_u64(seed);
    let start = Instant::now();
    let mut execs = 0u64;
    for s in seeds {
        body(s);
        execs += 1;
    }
    while start.elapsed() < budget() {
        let mut input = if rng.random_bool(0.05) {
            (0..rng.random_range(0..512))
                .map(|_| rng.random())
                .collect()
        } else {
            seeds[rng.random_range(0..seeds.len())].clone()
        };
        mutate(&mut rng, &mut input);
        body(&input);
        execs += 1;
    }
    eprintln!(
        "fuzz smoke {name}: {execs} execs in {:.1}s (VLTAVA_FUZZ_SEED={seed})",
        start.elapsed().as_secs_f64()
    );
    execs
}

#[test]
fn request_frame_smoke() {
    let seeds = vltava_fuzz::request_seeds();
    let versions: i16 = vltava_protocol::SUPPORTED_APIS
        .iter()
        .map(|(_, min, max)| max - min + 1)
        .sum();
    assert_eq!(
        seeds.len(),
        versions as usize,
        "one seed per supported version"
    );
    assert!(smoke("request_frame", &seeds, vltava_fuzz::request_frame) > seeds.len() as u64);
}

#[test]
fn record_batch_smoke() {
    let seeds = vltava_fuzz::batch_seeds(20);
    smoke("record_batch", &seeds, vltava_fuzz::record_batch);
}

#[test]
fn segment_recovery_smoke() {
    // Seeds: several batches back to back, as a segment holds them.
    let batches = vltava_fuzz::batch_seeds(6);
    let mut offset = 0;
    let mut segment = Vec::new();
    for b in &batches {
        let mut b = b.clone();
        vltava_record::set_base_offset(&mut b, offset);
        offset = vltava_record::BatchHeader::parse(&b).unwrap().next_offset();
        segment.extend_from_slice(&b);
    }
    smoke(
        "segment_recovery",
        &[segment],
        vltava_fuzz::segment_recovery,
    );
}

#[test]
fn index_lookup_smoke() {
    smoke(
        "index_lookup",
        &vltava_fuzz::index_seeds(),
        vltava_fuzz::index_lookup,
    );
}

/// Every seed is a valid request of its API key and version, and decoding
/// its re-encoding gives it back (checked inside the body).
#[test]
fn every_supported_api_version_round_trips() {
    for seed in vltava_fuzz::request_seeds() {
        let frame = Bytes::copy_from_slice(&seed[4..]);
        let request = vltava_protocol::decode_request(frame).expect("seed decodes");
        let again = vltava_fuzz::encode_request(
            request.api_key,
            request.api_version(),
            &request.header,
            &request.body,
        );
        assert_eq!(
            &again[..],
            &seed[4..],
            "{:?} v{}",
            request.api_key,
            request.api_version()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Batches built from arbitrary records validate and decode back to the
    /// same keys, values and timestamps.
    #[test]
    fn record_batches_round_trip(
        records in prop::collection::vec(
            (prop::option::of(prop::collection::vec(any::<u8>(), 0..20)),
             prop::option::of(prop::collection::vec(any::<u8>(), 0..200)),
             0i64..1 << 40),
            1..20),
        codec in 0usize..5,
    ) {
        let codecs = [Compression::None, Compression::Gzip, Compression::Lz4, Compression::Zstd, Compression::Snappy];
        let mut b = BatchBuilder::new(codecs[codec]);
        for (k, v, ts) in &records {
            b = b.record(k.clone().map(Bytes::from), v.clone().map(Bytes::from), vec![], *ts);
        }
        let batch = b.build();
        vltava_fuzz::record_batch(&batch);
        vltava_record::validate_batch(&batch).unwrap();
        let decoded = vltava_record::decode_records(&batch).unwrap();
        prop_assert_eq!(decoded.len(), records.len());
        for (d, (k, v, ts)) in decoded.iter().zip(&records) {
            prop_assert_eq!(d.key.as_deref(), k.as_deref());
            prop_assert_eq!(d.value.as_deref(), v.as_deref());
            prop_assert_eq!(d.timestamp, *ts);
        }
    }

    /// Arbitrary bytes through every body: nothing panics.
    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
        vltava_fuzz::request_frame(&data);
        vltava_fuzz::record_batch(&data);
        vltava_fuzz::segment_recovery(&data);
        vltava_fuzz::index_lookup(&data);
    }
}
