//! One partition's log: appending validated batches to the active segment
//! (page cache, no fsync, as Kafka's default) and reading at an offset (the
//! sparse index lookup plus the header scan to the batch). `cargo bench -p
//! vltava-log`. Data lives in a temporary directory under $TMPDIR.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use vltava_log::{Log, LogConfig};
use vltava_record::{BatchBuilder, Compression};

const NOW_MS: i64 = 1_700_000_000_000;
/// Bytes appended between truncations, so a long run does not fill the disk.
const APPENDED_BYTES_MAX: usize = 64 << 20;

fn batch(count: usize, value_bytes: usize) -> BytesMut {
    let value = Bytes::from(vec![b'x'; value_bytes]);
    (0..count)
        .fold(BatchBuilder::new(Compression::None), |b, _| {
            b.record(None, Some(value.clone()), Vec::new(), NOW_MS)
        })
        .build()
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("log_append");
    for (name, count, value_bytes) in [("16x1KiB", 16, 1024), ("1024x1KiB", 1024, 1024)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::open(dir.path(), LogConfig::default(), NOW_MS).expect("open");
        let template = batch(count, value_bytes);
        let per_round = (APPENDED_BYTES_MAX / template.len()).max(1) as u64;
        g.throughput(Throughput::Bytes(template.len() as u64));
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let n = per_round.min(iters - done);
                    // Copies are made outside the timed loop: the broker
                    // appends the request's own buffer.
                    let copies: Vec<BytesMut> = (0..n).map(|_| template.clone()).collect();
                    let start = Instant::now();
                    for copy in copies {
                        black_box(log.append(copy, 0, NOW_MS).expect("append"));
                    }
                    timed += start.elapsed();
                    log.truncate_to(log.log_start_offset()).expect("truncate");
                    done += n;
                }
                timed
            })
        });
    }
    g.finish();
}

fn read(c: &mut Criterion) {
    // 20,000 batches of 10 × 100 B (~1.1 KiB each): ~22 MiB, an index entry
    // every 4 KiB as Kafka's default index.interval.bytes.
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), LogConfig::default(), NOW_MS).expect("open");
    let template = batch(10, 100);
    for _ in 0..20_000 {
        log.append(template.clone(), 0, NOW_MS).expect("append");
    }
    let end = log.log_end_offset();
    let mut g = c.benchmark_group("log_read");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next_offset = move || {
        // xorshift: a fixed pseudo-random sequence of offsets.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % end as u64) as i64
    };
    g.bench_function("one_batch_at_random_offset", |b| {
        b.iter(|| log.read(black_box(next_offset()), end, 1).expect("read"))
    });
    g.bench_function("1MiB_at_random_offset", |b| {
        b.iter(|| {
            log.read(black_box(next_offset()), end, 1 << 20)
                .expect("read")
        })
    });
    g.throughput(Throughput::Bytes(1 << 20));
    g.bench_function("1MiB_at_random_offset_to_bytes", |b| {
        b.iter(|| {
            let slice = log
                .read(black_box(next_offset()), end, 1 << 20)
                .expect("read");
            slice.to_bytes().expect("to_bytes")
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! { name = all; config = config(); targets = append, read }
criterion_main!(all);
