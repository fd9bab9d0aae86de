//! Idempotent produce, checked at the protocol level against what the Java
//! broker does: a retried batch is acknowledged with its original offset and
//! not appended again, a gap in sequence numbers is OUT_OF_ORDER_SEQUENCE_NUMBER,
//! an epoch older than the partition's is INVALID_PRODUCER_EPOCH, and a
//! KIP-360 client-side epoch bump (sequence restarting at 0) is accepted.
//! Then librdkafka with `enable.idempotence=true`.

use std::collections::HashSet;
use std::time::Duration;

use kafka_protocol::messages::{InitProducerIdRequest, ProducerId};
use kafka_protocol::records::Compression;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use vltava_tests::raw::{
    decode_batches, encode_batch, ProducerStamp, RawClient, TestRecord, INIT_PRODUCER_ID_VERSION,
    LATEST_TIMESTAMP,
};
use vltava_tests::TestBroker;

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;

fn init_producer_id(c: &mut RawClient) -> (i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let resp = c
        .request(&req, INIT_PRODUCER_ID_VERSION)
        .expect("InitProducerId");
    assert_eq!(resp.error_code, 0, "InitProducerId: {resp:?}");
    assert!(
        resp.producer_id.0 >= 0,
        "producer id {:?}",
        resp.producer_id
    );
    assert_eq!(
        resp.producer_epoch, 0,
        "a new idempotent producer starts at epoch 0"
    );
    (resp.producer_id.0, resp.producer_epoch)
}

fn records(prefix: &str, n: usize) -> Vec<TestRecord> {
    (0..n)
        .map(|i| TestRecord::kv(&format!("{prefix}-k{i}"), &format!("{prefix}-v{i}")))
        .collect()
}

/// A retry whose first attempt was acknowledged (the response was lost),
/// sent after the batch's segment rolled away and the broker was killed:
/// the broker must answer with the first attempt's offset and append
/// nothing. Without deduplication (or with producer state rebuilt from the
/// last segment only) the retry is stored twice.
#[test]
fn a_retry_after_a_roll_and_a_crash_is_not_stored_twice() {
    let mut broker = TestBroker::start(&[("log.segment.bytes", "1024")]);
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(c.create_topic_code("retry", 1).unwrap(), 0);
    let (pid, epoch) = init_producer_id(&mut c);
    let batch = |sequence: i32| {
        let stamp = ProducerStamp {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: sequence,
        };
        let value = format!("{sequence:0>300}");
        encode_batch(&[TestRecord::kv("k", &value)], stamp, Compression::None)
    };
    for sequence in 0..12 {
        let resp = c.produce("retry", 0, batch(sequence), -1).unwrap();
        assert_eq!(
            (resp.error_code, resp.base_offset),
            (0, i64::from(sequence))
        );
    }
    let segments = std::fs::read_dir(broker.log_dir().join("retry-0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    assert!(segments >= 4, "{segments} segments: the test needs rolls");
    broker.kill_sigkill();
    broker.restart();
    let mut c = RawClient::connect(broker.addr()).unwrap();
    for sequence in 7..12 {
        let resp = c.produce("retry", 0, batch(sequence), -1).unwrap();
        assert_eq!(
            (resp.error_code, resp.base_offset),
            (0, i64::from(sequence)),
            "retry of sequence {sequence}"
        );
    }
    let end = c.list_offset("retry", 0, LATEST_TIMESTAMP).unwrap();
    assert_eq!(end.offset, 12, "a retry was appended again");
    let resp = c.produce("retry", 0, batch(12), -1).unwrap();
    assert_eq!((resp.error_code, resp.base_offset), (0, 12));
}

#[test]
fn raw_idempotent_produce_rules() {
    let broker = TestBroker::start(&[]);
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(c.create_topic_code("idem", 1).unwrap(), 0);

    let (pid, epoch) = init_producer_id(&mut c);
    // Idempotent (non-transactional) producers get a fresh id every time.
    let (pid2, _) = init_producer_id(&mut c);
    assert_ne!(
        pid, pid2,
        "two InitProducerId calls returned the same producer id"
    );

    // seq 0..=2 -> offsets 0..=2.
    let first = encode_batch(
        &records("a", 3),
        ProducerStamp {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: 0,
        },
        Compression::None,
    );
    let resp = c.produce("idem", 0, first.clone(), -1).unwrap();
    assert_eq!((resp.error_code, resp.base_offset), (0, 0), "{resp:?}");

    // The same batch again (a retry after a lost response): same offset, no error.
    let resp = c.produce("idem", 0, first.clone(), -1).unwrap();
    assert_eq!(
        (resp.error_code, resp.base_offset),
        (0, 0),
        "a duplicate batch must be acknowledged with its original offset: {resp:?}"
    );
    let end = c.list_offset("idem", 0, LATEST_TIMESTAMP).unwrap();
    assert_eq!(end.offset, 3, "the duplicate was appended");
    let fetched = c.fetch("idem", 0, 0).unwrap();
    let batches = decode_batches(&fetched.records.clone().unwrap_or_default());
    assert_eq!(
        batches.len(),
        1,
        "log holds {} batches, expected 1",
        batches.len()
    );
    assert_eq!(batches[0].records.len(), 3);
    let first_record = &batches[0].records[0];
    assert_eq!(first_record.producer_id, pid);
    assert_eq!(first_record.producer_epoch, epoch);
    assert_eq!(first_record.sequence, 0);
    assert_eq!(first_record.offset, 0);

    // Next expected sequence is 3; 5 leaves a gap.
    let gap = encode_batch(
        &records("gap", 1),
        ProducerStamp {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: 5,
        },
        Compression::None,
    );
    let resp = c.produce("idem", 0, gap, -1).unwrap();
    assert_eq!(resp.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER, "{resp:?}");

    // seq 3 is accepted at offset 3.
    let next = encode_batch(
        &records("b", 2),
        ProducerStamp {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: 3,
        },
        Compression::None,
    );
    let resp = c.produce("idem", 0, next, -1).unwrap();
    assert_eq!((resp.error_code, resp.base_offset), (0, 3), "{resp:?}");

    // KIP-360: an idempotent producer bumps its own epoch and restarts at
    // sequence 0; the broker accepts the newer epoch.
    let bumped = encode_batch(
        &records("c", 1),
        ProducerStamp {
            producer_id: pid,
            producer_epoch: epoch + 1,
            base_sequence: 0,
        },
        Compression::None,
    );
    let resp = c.produce("idem", 0, bumped, -1).unwrap();
    assert_eq!(
        (resp.error_code, resp.base_offset),
        (0, 5),
        "epoch bump: {resp:?}"
    );

    // The old epoch is now fenced.
    let stale = encode_batch(
        &records("stale", 1),
        ProducerStamp {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: 5,
        },
        Compression::None,
    );
    let resp = c.produce("idem", 0, stale, -1).unwrap();
    assert_eq!(
        resp.error_code, INVALID_PRODUCER_EPOCH,
        "stale epoch: {resp:?}"
    );

    // A newer epoch that does not start at sequence 0 is out of order.
    let bad_bump = encode_batch(
        &records("bad-bump", 1),
        ProducerStamp {
            producer_id: pid,
            producer_epoch: epoch + 2,
            base_sequence: 7,
        },
        Compression::None,
    );
    let resp = c.produce("idem", 0, bad_bump, -1).unwrap();
    assert_eq!(
        resp.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER,
        "epoch bump without seq 0: {resp:?}"
    );

    // The other producer id has its own sequence space.
    let other = encode_batch(
        &records("other", 1),
        ProducerStamp {
            producer_id: pid2,
            producer_epoch: 0,
            base_sequence: 0,
        },
        Compression::None,
    );
    let resp = c.produce("idem", 0, other, -1).unwrap();
    assert_eq!((resp.error_code, resp.base_offset), (0, 6), "{resp:?}");

    let end = c.list_offset("idem", 0, LATEST_TIMESTAMP).unwrap();
    assert_eq!(end.offset, 7, "log end offset after the accepted batches");
    let fetched = c.fetch("idem", 0, 0).unwrap();
    let values: Vec<String> = decode_batches(&fetched.records.clone().unwrap_or_default())
        .iter()
        .flat_map(|b| b.records.iter())
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(
        values,
        ["a-v0", "a-v1", "a-v2", "b-v0", "b-v1", "c-v0", "other-v0"],
        "log contents"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_idempotent_producer_has_no_duplicates() {
    const N: usize = 1_000;
    let broker = TestBroker::start(&[]);
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(c.create_topic_code("idem-rd", 2).unwrap(), 0);

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .set("batch.num.messages", "50")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("idempotent producer");
    let mut pending = Vec::with_capacity(N);
    for i in 0..N {
        let key = format!("key-{}", i % 37);
        let value = format!("value-{i}");
        let record = FutureRecord::to("idem-rd").key(&key).payload(&value);
        pending.push(
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueue"),
        );
    }
    let mut delivered = HashSet::new();
    for f in pending {
        let d = f.await.expect("delivery future").expect("delivery");
        assert!(
            delivered.insert((d.partition, d.offset)),
            "offset reported twice: {d:?}"
        );
    }
    assert_eq!(delivered.len(), N);

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "unused-placeholder")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("idem-rd", 0, Offset::Beginning)
        .unwrap();
    tpl.add_partition_offset("idem-rd", 1, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();

    let mut seen_offsets = HashSet::new();
    let mut seen_values = HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seen_offsets.len() < N {
        assert!(
            std::time::Instant::now() < deadline,
            "consumed only {} of {N}",
            seen_offsets.len()
        );
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let msg = msg.expect("consume");
        assert!(
            seen_offsets.insert((msg.partition(), msg.offset())),
            "offset consumed twice"
        );
        let value = String::from_utf8(msg.payload().unwrap().to_vec()).unwrap();
        assert!(
            seen_values.insert(value.clone()),
            "duplicate message {value}"
        );
    }
    assert_eq!(
        seen_offsets, delivered,
        "consumed offsets differ from delivered ones"
    );
    assert_eq!(seen_values.len(), N);
    // Log ends sum to exactly N: nothing extra was written.
    let total: i64 = (0..2)
        .map(|p| {
            c.list_offset("idem-rd", p, LATEST_TIMESTAMP)
                .unwrap()
                .offset
        })
        .sum();
    assert_eq!(total, N as i64);
}
