//! The produce hot path's per-batch work: whole-batch validation (header
//! checks plus CRC32C over attributes..end), CRC32C alone, and base-offset
//! patching; and the client side's batch encoding for comparison.
//! `cargo bench -p vltava-record`.

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::time::Duration;
use vltava_record::{
    check_records, set_base_offset, validate_batch, BatchBuilder, Compression, RecordRules,
};

/// A batch of `count` keyless records of `value_bytes` each.
fn batch(count: usize, value_bytes: usize) -> BytesMut {
    batch_with(Compression::None, count, value_bytes)
}

fn batch_with(codec: Compression, count: usize, value_bytes: usize) -> BytesMut {
    let value = Bytes::from(vec![b'x'; value_bytes]);
    (0..count)
        .fold(BatchBuilder::new(codec), |b, i| {
            b.record(
                None,
                Some(value.clone()),
                Vec::new(),
                1_700_000_000_000 + i as i64,
            )
        })
        .build()
}

fn benches(c: &mut Criterion) {
    let shapes = [
        ("16x1KiB", 16, 1024),
        ("1000x100B", 1000, 100),
        ("1024x1KiB", 1024, 1024),
    ];
    let mut g = c.benchmark_group("validate_batch");
    for (name, count, value_bytes) in shapes {
        let b = batch(count, value_bytes).freeze();
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_function(name, |bench| {
            bench.iter(|| validate_batch(black_box(&b)).expect("valid"))
        });
    }
    g.finish();

    // What produce adds since every record is walked (issue 11): the walk
    // alone, and validate + walk, per batch shape; zstd includes inflating.
    let rules = RecordRules {
        key_required: false,
        decompressed_bytes_max: 64 << 20,
        schema_ids: None,
    };
    let mut g = c.benchmark_group("check_records");
    let codecs = [("none", Compression::None), ("zstd", Compression::Zstd)];
    for (codec_name, codec) in codecs {
        for (name, count, value_bytes) in shapes {
            let b = batch_with(codec, count, value_bytes).freeze();
            let header = validate_batch(&b).expect("valid");
            g.throughput(Throughput::Bytes((count * value_bytes) as u64));
            g.bench_function(format!("{codec_name}/{name}"), |bench| {
                bench.iter(|| check_records(black_box(&b), &header, &rules).expect("valid"))
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("crc32c");
    for len in [16 * 1024, 1024 * 1024] {
        let data = vec![0x5au8; len];
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(format!("{len}B"), |bench| {
            bench.iter(|| crc32c::crc32c(black_box(&data)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("set_base_offset");
    let b = batch(16, 1024);
    g.bench_function("16x1KiB", |bench| {
        bench.iter_batched_ref(
            || b.clone(),
            |b| set_base_offset(black_box(b), 42),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("batch_build");
    for (name, count, value_bytes) in shapes {
        g.throughput(Throughput::Bytes((count * value_bytes) as u64));
        g.bench_function(name, |bench| bench.iter(|| batch(count, value_bytes)));
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! { name = all; config = config(); targets = benches }
criterion_main!(all);
