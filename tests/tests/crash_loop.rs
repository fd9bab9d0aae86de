//! The crash loop: producers with acks=all on several partitions, the broker
//! SIGKILLed at a random moment, restarted, and the whole log checked after
//! every cycle.
//!
//! - `fsync_per_write` (`log.flush.interval.messages=1`): every acknowledged
//!   record is present, byte for byte, at its acknowledged offset.
//! - `page_cache` (the default policy): SIGKILL keeps the page cache, so to
//!   stand in for a power cut the last segment of some partitions is cut at
//!   a random byte (and sometimes followed by garbage) while the broker is
//!   down. Then recovery must serve only whole, CRC-valid batches, and the
//!   log must be a prefix of what it held: acknowledged records can be lost
//!   from the cut on, never altered or reordered.
//!
//! In both: offsets are dense from 0, no record appears twice, and every
//! record served is one a producer sent. `VLTAVA_CRASH_CYCLES` sets the
//! cycles per mode (default 10; docs/reliability.md has a 100+ run),
//! `VLTAVA_CRASH_SEED` replays a run.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::Compression;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vltava_tests::raw::{encode_batch, ProducerStamp, RawClient, TestRecord};
use vltava_tests::TestBroker;

const TOPIC: &str = "crash";
const PARTITIONS: i32 = 4;
const CYCLES_DEFAULT: usize = 10;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    FsyncPerWrite,
    PageCache,
}

/// What the test knows about one partition: the records at each offset
/// (acknowledged, or adopted after a restart showed them), and every value
/// ever sent.
#[derive(Default)]
struct PartitionModel {
    log: Vec<Bytes>,
    acked: BTreeMap<i64, Bytes>,
    sent: HashSet<Bytes>,
}

#[test]
fn crash_loop_fsync_per_write() {
    run(Mode::FsyncPerWrite, &[("log.flush.interval.messages", "1")]);
}

#[test]
fn crash_loop_page_cache() {
    // Small segments, so cuts land in logs with closed segments too.
    run(Mode::PageCache, &[("log.segment.bytes", "65536")]);
}

fn run(mode: Mode, overrides: &[(&str, &str)]) {
    let cycles: usize = std::env::var("VLTAVA_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CYCLES_DEFAULT);
    let seed: u64 = std::env::var("VLTAVA_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("crash loop {mode:?}: {cycles} cycles, VLTAVA_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut broker = TestBroker::start(overrides);
    let mut admin = RawClient::connect(broker.addr()).unwrap();
    let created = admin.create_topic(TOPIC, PARTITIONS, &[], false).unwrap();
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    let models: Vec<Arc<Mutex<PartitionModel>>> = (0..PARTITIONS)
        .map(|_| Arc::new(Mutex::new(PartitionModel::default())))
        .collect();
    let mut totals = (0usize, 0usize); // (acknowledged, lost to cuts)
    for cycle in 0..cycles {
        let acked = produce_until_killed(&mut broker, &models, cycle, &mut rng);
        totals.0 += acked;
        let cuts = if mode == Mode::PageCache {
            cut_last_segments(&broker.log_dir(), &mut rng)
        } else {
            HashSet::new()
        };
        broker.restart();
        let mut client = RawClient::connect(broker.addr()).unwrap();
        for (p, model) in models.iter().enumerate() {
            let p = p as i32;
            let served = fetch_all(&mut client, p);
            let mut model = model.lock().unwrap();
            let lost =
                check_partition(&mut model, served, cuts.contains(&p), mode).unwrap_or_else(|e| {
                    panic!("cycle {cycle} partition {p} (VLTAVA_CRASH_SEED={seed}): {e}")
                });
            totals.1 += lost;
        }
    }
    eprintln!(
        "crash loop {mode:?}: {cycles} cycles passed; {} records acknowledged, {} lost to simulated power cuts",
        totals.0, totals.1
    );
}

/// Starts one producer thread per partition, SIGKILLs the broker after a
/// random time, and returns how many records were acknowledged.
fn produce_until_killed(
    broker: &mut TestBroker,
    models: &[Arc<Mutex<PartitionModel>>],
    cycle: usize,
    rng: &mut StdRng,
) -> usize {
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = models
        .iter()
        .enumerate()
        .map(|(p, model)| {
            let addr = broker.addr();
            let model = Arc::clone(model);
            let stop = Arc::clone(&stop);
            let seed = rng.random::<u64>();
            thread::spawn(move || produce(addr, p as i32, cycle, &model, &stop, seed))
        })
        .collect();
    // The random moment of the crash (not a synchronisation: any moment is
    // a valid test, including before the first acknowledgement).
    thread::sleep(Duration::from_millis(rng.random_range(50..600)));
    broker.kill_sigkill();
    stop.store(true, Ordering::SeqCst);
    producers.into_iter().map(|h| h.join().unwrap()).sum()
}

/// Produces batches of 1-5 records with acks=all until the connection
/// breaks; records each acknowledged record at its offset.
fn produce(
    addr: std::net::SocketAddr,
    p: i32,
    cycle: usize,
    model: &Mutex<PartitionModel>,
    stop: &AtomicBool,
    seed: u64,
) -> usize {
    let mut rng = StdRng::seed_from_u64(seed);
    let Ok(mut client) = RawClient::connect(addr) else {
        return 0;
    };
    let mut acked = 0;
    for n in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let count = rng.random_range(1..=5);
        let values: Vec<Bytes> = (0..count)
            .map(|i| {
                let pad = "x".repeat(rng.random_range(0..300));
                Bytes::from(format!("p{p}-c{cycle}-b{n}-r{i}-{pad}"))
            })
            .collect();
        let records: Vec<TestRecord> = values
            .iter()
            .map(|v| TestRecord {
                key: None,
                value: Some(v.clone()),
                timestamp_ms: vltava_tests::now_ms(),
                headers: Vec::new(),
            })
            .collect();
        let compression = if n % 3 == 0 {
            Compression::Lz4
        } else {
            Compression::None
        };
        let batch = encode_batch(&records, ProducerStamp::NONE, compression);
        model.lock().unwrap().sent.extend(values.iter().cloned());
        let response = match client.produce(TOPIC, p, batch, -1) {
            Ok(r) => r,
            Err(_) => break, // killed
        };
        assert_eq!(response.error_code, 0, "produce to {p}: {response:?}");
        let mut model = model.lock().unwrap();
        for (i, v) in values.into_iter().enumerate() {
            model.acked.insert(response.base_offset + i as i64, v);
        }
        acked += count;
    }
    acked
}

/// Every record of partition `p` from offset 0, each batch checked whole
/// and CRC-valid.
fn fetch_all(client: &mut RawClient, p: i32) -> Vec<(i64, Bytes)> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let data = client.fetch(TOPIC, p, offset).unwrap();
        assert_eq!(data.error_code, 0, "fetch {p}@{offset}: {data:?}");
        let records = data.records.unwrap_or_default();
        if records.is_empty() {
            assert_eq!(offset, data.high_watermark, "partition {p}: stopped short");
            return out;
        }
        for batch in vltava_record::batches(&records) {
            let batch = batch.expect("served bytes are whole batches");
            vltava_record::validate_stored_batch(&batch).expect("served batch is valid");
        }
        for set in vltava_tests::raw::decode_batches(&records) {
            for r in set.records {
                if r.offset >= offset {
                    out.push((r.offset, r.value.expect("records have values")));
                }
            }
        }
        offset = out.last().map_or(offset, |(o, _)| o + 1);
    }
}

/// Checks what partition's log holds after a restart against the model, then
/// adopts it as the model. Returns how many acknowledged records the cut
/// removed.
fn check_partition(
    model: &mut PartitionModel,
    served: Vec<(i64, Bytes)>,
    was_cut: bool,
    mode: Mode,
) -> Result<usize, String> {
    for (i, (offset, _)) in served.iter().enumerate() {
        if *offset != i as i64 {
            return Err(format!("offset {offset} at position {i}: gap or duplicate"));
        }
    }
    let mut values = HashSet::new();
    for (offset, value) in &served {
        if !values.insert(value) {
            return Err(format!("record {value:?} served twice (offset {offset})"));
        }
        if !model.sent.contains(value) {
            return Err(format!("offset {offset} holds {value:?}, never sent"));
        }
    }
    // The old log (known records, acknowledged ones included) must survive
    // as a prefix; with a cut, only up to where it was cut.
    let end = served.len();
    let known = model.log.len().max(
        model
            .acked
            .keys()
            .next_back()
            .map_or(0, |o| *o as usize + 1),
    );
    if end < known && !(mode == Mode::PageCache && was_cut) {
        return Err(format!(
            "log ends at {end}, but offsets up to {known} were known"
        ));
    }
    for (offset, value) in model.log.iter().enumerate().take(end) {
        if served[offset].1 != value {
            return Err(format!(
                "offset {offset} changed from {value:?} to {:?}",
                served[offset].1
            ));
        }
    }
    for (offset, value) in model.acked.range(..end as i64) {
        if served[*offset as usize].1 != value {
            return Err(format!(
                "acknowledged {value:?} at {offset}, served {:?}",
                served[*offset as usize].1
            ));
        }
    }
    let lost = model.acked.range(end as i64..).count();
    model.acked.clear();
    model.log = served.into_iter().map(|(_, v)| v).collect();
    Ok(lost)
}

/// Cuts the last segment of about half the partitions at a random byte and
/// sometimes appends garbage (zeros or random bytes), as a power cut can
/// leave it. Returns the partitions cut.
fn cut_last_segments(log_dir: &Path, rng: &mut StdRng) -> HashSet<i32> {
    let mut cut = HashSet::new();
    for p in 0..PARTITIONS {
        if !rng.random_bool(0.5) {
            continue;
        }
        let dir = log_dir.join(format!("{TOPIC}-{p}"));
        let mut logs: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        logs.sort();
        let Some(last) = logs.last() else { continue };
        let len = fs::metadata(last).unwrap().len();
        if len == 0 {
            continue;
        }
        let at = rng.random_range(0..len);
        let mut bytes = fs::read(last).unwrap();
        bytes.truncate(at as usize);
        match rng.random_range(0..3) {
            0 => bytes.extend(std::iter::repeat_n(0u8, rng.random_range(1..5000))),
            1 => bytes.extend((0..rng.random_range(1..5000)).map(|_| rng.random::<u8>())),
            _ => {}
        }
        fs::write(last, &bytes).unwrap();
        cut.insert(p);
    }
    cut
}
