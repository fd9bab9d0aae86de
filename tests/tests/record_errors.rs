//! KIP-467 through librdkafka: a batch with some invalid records is refused
//! with INVALID_RECORD and `record_errors` naming exactly those records, so
//! the client fails them with INVALID_RECORD and the rest of the batch with
//! INVALID_DIFFERENT_RECORD, as librdkafka's own `0011_produce_batch` test
//! expects of a Kafka broker.

mod common;

use std::time::Duration;

use common::{admin, admin_options, producer};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureRecord, Producer};
use vltava_tests::raw::{RawClient, LATEST_TIMESTAMP};
use vltava_tests::TestBroker;

const RECORDS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_records_on_a_compacted_topic_fail_alone() {
    let broker = TestBroker::start(&[]);
    let topic = "compacted-kip467";
    let created =
        admin(&broker.bootstrap())
            .create_topics(
                &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))
                    .set("cleanup.policy", "compact")],
                &admin_options(),
            )
            .await
            .expect("create topic");
    assert!(created[0].is_ok(), "{created:?}");

    // One batch: a linger far longer than enqueueing takes and a large
    // batch size keep all 100 records together, and a flush then sends the
    // batch at once, so the broker sees a single batch with 10 keyless
    // records.
    let producer = producer(
        &broker.bootstrap(),
        &[
            ("linger.ms", "30000"),
            ("message.timeout.ms", "60000"),
            ("batch.num.messages", "1000"),
            ("acks", "all"),
            ("retries", "0"),
            ("enable.idempotence", "false"),
        ],
    );
    let keyless: Vec<usize> = (0..RECORDS).filter(|i| i % 10 == 3).collect();
    let mut deliveries = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let value = format!("value-{i}");
        let key = format!("key-{i}");
        let mut record = FutureRecord::to(topic).partition(0).payload(&value);
        if !keyless.contains(&i) {
            record = record.key(&key);
        }
        let delivery = producer
            .send_result(record)
            .unwrap_or_else(|(e, _)| panic!("enqueue {i}: {e}"));
        deliveries.push(delivery);
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("flush the one batch");
    let mut invalid = Vec::new();
    let mut different = Vec::new();
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let outcome = tokio::time::timeout(Duration::from_secs(30), delivery)
            .await
            .expect("delivery report within 30 s")
            .expect("delivery future not cancelled");
        match outcome {
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::InvalidRecord), _)) => {
                invalid.push(i)
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::InvalidDifferentRecord), _)) => {
                different.push(i)
            }
            other => panic!("record {i}: expected a KIP-467 failure, got {other:?}"),
        }
    }
    assert_eq!(invalid, keyless, "records failed with INVALID_RECORD");
    assert_eq!(different.len(), RECORDS - keyless.len());

    // Nothing of the refused batch reached the log.
    let mut raw = RawClient::connect(broker.addr()).unwrap();
    let end = raw.list_offset(topic, 0, LATEST_TIMESTAMP).unwrap();
    assert_eq!((end.error_code, end.offset), (0, 0));
}
