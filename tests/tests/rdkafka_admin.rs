//! The admin APIs through librdkafka's AdminClient, plus the consumer-side
//! offset queries (watermarks, offsets for times), with the results a Java
//! broker gives.

mod common;

use std::time::Duration;

use common::{admin, admin_options, consumer, create_topic, producer};
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{AlterConfigsRequest, DescribeConfigsRequest};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{
    AlterConfig, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};
use vltava_tests::raw::RawClient;
use vltava_tests::{now_ms, wait_until, TestBroker};

const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_CONFIG: i16 = 40;
const TIMEOUT: Duration = Duration::from_secs(10);

fn start() -> TestBroker {
    TestBroker::start(&[("auto.create.topics.enable", "false")])
}

/// Partition count per the broker's Metadata, or None if it does not know
/// the topic.
fn partition_count(broker: &TestBroker, topic: &str) -> Option<usize> {
    let mut c = RawClient::connect(broker.addr()).unwrap();
    let md = c.metadata(Some(&[topic])).unwrap();
    assert_eq!(md.topics.len(), 1);
    match md.topics[0].error_code {
        0 => Some(md.topics[0].partitions.len()),
        UNKNOWN_TOPIC_OR_PARTITION => None,
        other => panic!("metadata for {topic}: error {other}"),
    }
}

async fn produce_n(
    broker: &TestBroker,
    topic: &str,
    partition: i32,
    timestamps: &[i64],
) -> Vec<i64> {
    let producer = producer(&broker.bootstrap(), &[("linger.ms", "0")]);
    let mut offsets = Vec::new();
    for (i, ts) in timestamps.iter().enumerate() {
        let value = format!("m{i}");
        let d = producer
            .send(
                FutureRecord::<str, str>::to(topic)
                    .partition(partition)
                    .payload(&value)
                    .timestamp(*ts),
                TIMEOUT,
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to {topic}/{partition}: {e}"));
        assert_eq!(d.partition, partition);
        offsets.push(d.offset);
    }
    offsets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_validate_duplicate_and_delete() {
    let broker = start();
    let admin = admin(&broker.bootstrap());

    // validate_only: success, but nothing is created.
    let topic = NewTopic::new("validated", 4, TopicReplication::Fixed(1));
    let res = admin
        .create_topics([&topic], &admin_options().validate_only(true))
        .await
        .unwrap();
    assert_eq!(res, vec![Ok("validated".to_string())]);
    assert_eq!(
        partition_count(&broker, "validated"),
        None,
        "validate_only created the topic"
    );

    create_topic(&admin, "t1", 3).await;
    assert_eq!(partition_count(&broker, "t1"), Some(3));

    // A second create of the same name.
    let dup = NewTopic::new("t1", 5, TopicReplication::Fixed(1));
    let res = admin.create_topics([&dup], &admin_options()).await.unwrap();
    assert_eq!(
        res,
        vec![Err((
            "t1".to_string(),
            RDKafkaErrorCode::TopicAlreadyExists
        ))]
    );
    assert_eq!(
        partition_count(&broker, "t1"),
        Some(3),
        "duplicate create changed the topic"
    );
    let res = admin
        .create_topics([&dup], &admin_options().validate_only(true))
        .await
        .unwrap();
    assert_eq!(
        res,
        vec![Err((
            "t1".to_string(),
            RDKafkaErrorCode::TopicAlreadyExists
        ))],
        "validate_only of an existing topic"
    );

    // Data in the topic, then delete and recreate: the new topic is empty.
    let offsets = produce_n(&broker, "t1", 1, &[now_ms(), now_ms(), now_ms()]).await;
    assert_eq!(offsets, vec![0, 1, 2]);
    let res = admin
        .delete_topics(&["t1"], &admin_options())
        .await
        .unwrap();
    assert_eq!(res, vec![Ok("t1".to_string())]);
    assert!(
        wait_until(TIMEOUT, || partition_count(&broker, "t1").is_none()),
        "deleted topic still in metadata"
    );
    let res = admin
        .delete_topics(&["t1"], &admin_options())
        .await
        .unwrap();
    assert_eq!(
        res,
        vec![Err((
            "t1".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );

    create_topic(&admin, "t1", 2).await;
    assert_eq!(partition_count(&broker, "t1"), Some(2));
    let c = consumer(&broker.bootstrap(), &[]);
    assert_eq!(
        c.fetch_watermarks("t1", 1, TIMEOUT).unwrap(),
        (0, 0),
        "recreated topic has old data"
    );
    let offsets = produce_n(&broker, "t1", 1, &[now_ms()]).await;
    assert_eq!(offsets, vec![0]);
    assert_eq!(c.fetch_watermarks("t1", 1, TIMEOUT).unwrap(), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_and_alter_configs() {
    let broker = start();
    let admin = admin(&broker.bootstrap());
    create_topic(&admin, "cfg", 1).await;

    let describe = || async {
        let res = admin
            .describe_configs([&ResourceSpecifier::Topic("cfg")], &admin_options())
            .await
            .unwrap();
        assert_eq!(res.len(), 1);
        res.into_iter().next().unwrap().expect("describe topic cfg")
    };

    let before = describe().await;
    let retention = before
        .get("retention.ms")
        .expect("retention.ms is described");
    assert_eq!(
        retention.value.as_deref(),
        Some("604800000"),
        "Kafka's default retention.ms"
    );
    assert!(retention.is_default);
    assert_ne!(retention.source, ConfigSource::DynamicTopic);
    assert!(
        before.get("cleanup.policy").is_some(),
        "cleanup.policy is described"
    );

    let alter = AlterConfig::new(ResourceSpecifier::Topic("cfg")).set("retention.ms", "3600000");
    let res = admin
        .alter_configs([&alter], &admin_options())
        .await
        .unwrap();
    assert_eq!(res.len(), 1);
    assert!(res[0].is_ok(), "alter configs: {:?}", res[0]);

    let after = describe().await;
    let retention = after.get("retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    assert!(!retention.is_default);

    // An unknown topic is an error for that resource. (rdkafka's
    // describe_configs drops per-resource errors, so ask at the protocol level.)
    let mut raw = RawClient::connect(broker.addr()).unwrap();
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2) // TOPIC
            .with_resource_name(StrBytes::from_static_str("no-such-topic"))
            .with_configuration_keys(None)]);
    let resp = raw.request(&req, 4).expect("DescribeConfigs v4");
    assert_eq!(resp.results.len(), 1);
    assert_eq!(
        resp.results[0].error_code, UNKNOWN_TOPIC_OR_PARTITION,
        "DescribeConfigs for a missing topic: {:?}",
        resp.results[0]
    );
    assert!(resp.results[0].configs.is_empty());

    // An invalid value is rejected (INVALID_CONFIG) and the old value stays.
    // rdkafka's alter_configs also drops per-resource errors: raw request.
    let req = AlterConfigsRequest::default()
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(2) // TOPIC
            .with_resource_name(StrBytes::from_static_str("cfg"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_static_str("retention.ms"))
                .with_value(Some(StrBytes::from_static_str("not-a-number")))])])
        .with_validate_only(false);
    let resp = raw.request(&req, 2).expect("AlterConfigs v2");
    assert_eq!(resp.responses.len(), 1);
    assert_eq!(
        resp.responses[0].error_code, INVALID_CONFIG,
        "alter retention.ms=not-a-number: {:?}",
        resp.responses[0]
    );
    let again = describe().await;
    assert_eq!(
        again.get("retention.ms").unwrap().value.as_deref(),
        Some("3600000")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partitions_then_produce_to_new_partition() {
    let broker = start();
    let admin = admin(&broker.bootstrap());
    create_topic(&admin, "grow", 3).await;

    let grow = NewPartitions::new("grow", 6);
    let res = admin
        .create_partitions([&grow], &admin_options())
        .await
        .unwrap();
    assert_eq!(res, vec![Ok("grow".to_string())]);
    assert_eq!(partition_count(&broker, "grow"), Some(6));

    // Shrinking is not allowed.
    let shrink = NewPartitions::new("grow", 4);
    let res = admin
        .create_partitions([&shrink], &admin_options())
        .await
        .unwrap();
    assert_eq!(
        res,
        vec![Err((
            "grow".to_string(),
            RDKafkaErrorCode::InvalidPartitions
        ))]
    );
    assert_eq!(partition_count(&broker, "grow"), Some(6));

    let offsets = produce_n(&broker, "grow", 5, &[now_ms(), now_ms()]).await;
    assert_eq!(offsets, vec![0, 1]);
    let c = consumer(&broker.bootstrap(), &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("grow", 5, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut got = Vec::new();
    assert!(
        wait_until(TIMEOUT, || {
            if let Some(m) = c.poll(Duration::from_millis(100)) {
                let m = m.expect("consume partition 5");
                got.push((m.partition(), m.offset(), m.payload().map(<[u8]>::to_vec)));
            }
            got.len() == 2
        }),
        "consumed {got:?}"
    );
    assert_eq!(
        got,
        vec![(5, 0, Some(b"m0".to_vec())), (5, 1, Some(b"m1".to_vec()))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_watermarks_and_offsets_for_times() {
    let broker = start();
    let admin = admin(&broker.bootstrap());
    create_topic(&admin, "recs", 2).await;

    // Ten messages one second apart (in the recent past, so no retention
    // policy could touch them).
    let base = now_ms() - 100_000;
    let timestamps: Vec<i64> = (0..10).map(|i| base + i * 1_000).collect();
    let offsets = produce_n(&broker, "recs", 0, &timestamps).await;
    assert_eq!(offsets, (0..10).collect::<Vec<i64>>());

    let c = consumer(&broker.bootstrap(), &[]);
    assert_eq!(c.fetch_watermarks("recs", 0, TIMEOUT).unwrap(), (0, 10));
    assert_eq!(c.fetch_watermarks("recs", 1, TIMEOUT).unwrap(), (0, 0));

    // offsets_for_times: first offset whose timestamp is >= the target.
    for (target, want) in [
        (base - 5_000, Offset::Offset(0)),
        (base, Offset::Offset(0)),
        (base + 2_500, Offset::Offset(3)),
        (base + 3_000, Offset::Offset(3)),
        (base + 9_000, Offset::Offset(9)),
        (base + 9_001, Offset::End),
    ] {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("recs", 0, Offset::Offset(target))
            .unwrap();
        let res = c
            .offsets_for_times(tpl, TIMEOUT)
            .expect("offsets_for_times");
        let elem = res.find_partition("recs", 0).unwrap();
        assert!(
            elem.error().is_ok(),
            "offsets_for_times({target}): {:?}",
            elem.error()
        );
        assert_eq!(
            elem.offset(),
            want,
            "offsets_for_times(base + {})",
            target - base
        );
    }

    // Delete records before offset 4.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("recs", 0, Offset::Offset(4))
        .unwrap();
    let res = admin
        .delete_records(&tpl, &admin_options())
        .await
        .expect("DeleteRecords");
    let elem = res.find_partition("recs", 0).unwrap();
    assert!(elem.error().is_ok(), "delete_records: {:?}", elem.error());
    assert_eq!(elem.offset(), Offset::Offset(4), "new low watermark");
    assert_eq!(c.fetch_watermarks("recs", 0, TIMEOUT).unwrap(), (4, 10));

    // Deleting beyond the high watermark is OFFSET_OUT_OF_RANGE.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("recs", 0, Offset::Offset(11))
        .unwrap();
    let res = admin
        .delete_records(&tpl, &admin_options())
        .await
        .expect("DeleteRecords");
    let elem = res.find_partition("recs", 0).unwrap();
    assert_eq!(
        elem.error(),
        Err(KafkaError::OffsetFetch(RDKafkaErrorCode::OffsetOutOfRange)),
        "delete_records past the end"
    );

    // A raw fetch below the new start offset.
    let mut raw = RawClient::connect(broker.addr()).unwrap();
    let p = raw.fetch("recs", 0, 2).unwrap();
    assert_eq!(
        p.error_code, OFFSET_OUT_OF_RANGE,
        "fetch below log start: {p:?}"
    );
    let p = raw.fetch("recs", 0, 4).unwrap();
    assert_eq!(p.error_code, 0);
    assert_eq!(p.log_start_offset, 4);
    assert_eq!(p.high_watermark, 10);

    // librdkafka with auto.offset.reset=error reports the out-of-range fetch.
    let strict = consumer(&broker.bootstrap(), &[("auto.offset.reset", "error")]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("recs", 0, Offset::Offset(2))
        .unwrap();
    strict.assign(&tpl).unwrap();
    let mut error = None;
    assert!(
        wait_until(TIMEOUT, || {
            match strict.poll(Duration::from_millis(100)) {
                Some(Err(e)) => {
                    error = Some(e);
                    true
                }
                Some(Ok(m)) => panic!("consumed offset {} below the log start offset", m.offset()),
                None => false,
            }
        }),
        "no error for a fetch below the log start offset"
    );
    let error = error.unwrap();
    assert!(
        matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange)
        ),
        "unexpected error {error:?}"
    );

    // From the new start offset, consumption sees exactly offsets 4..10.
    let from_start = consumer(&broker.bootstrap(), &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("recs", 0, Offset::Beginning)
        .unwrap();
    from_start.assign(&tpl).unwrap();
    let mut got = Vec::new();
    assert!(
        wait_until(TIMEOUT, || {
            if let Some(m) = from_start.poll(Duration::from_millis(100)) {
                let m = m.expect("consume");
                got.push(m.offset());
            }
            got.len() == 6
        }),
        "consumed {got:?}"
    );
    assert_eq!(got, (4..10).collect::<Vec<i64>>());
}
