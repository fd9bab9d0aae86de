//! Request decode and response encode for the data path: a Produce request
//! carrying one batch, a Fetch request, and a Fetch response carrying 1 MiB
//! of records (which `encode_response` copies into the frame today — the
//! copy zero-copy fetch would remove). `cargo bench -p vltava-protocol`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, RequestHeader,
    TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use vltava_protocol::{decode_request, encode_response, ApiKey, RequestKind, ResponseKind};

fn frame(api_key: ApiKey, version: i16, body: &RequestKind) -> Bytes {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("bench")))
        .encode(&mut buf, api_key.request_header_version(version))
        .expect("header");
    body.encode(&mut buf, version).expect("body");
    buf.freeze()
}

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("bench-topic"))
}

fn produce_request(partitions: i32, batch_bytes: usize) -> RequestKind {
    let records = Bytes::from(vec![0u8; batch_bytes]);
    RequestKind::Produce(
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic())
                .with_partition_data(
                    (0..partitions)
                        .map(|p| {
                            PartitionProduceData::default()
                                .with_index(p)
                                .with_records(Some(records.clone()))
                        })
                        .collect(),
                )]),
    )
}

fn fetch_request(partitions: i32) -> RequestKind {
    RequestKind::Fetch(
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(50 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic())
                .with_partitions(
                    (0..partitions)
                        .map(|p| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(1_000_000)
                                .with_partition_max_bytes(1 << 20)
                        })
                        .collect(),
                )]),
    )
}

fn fetch_response(records_bytes: usize) -> ResponseKind {
    ResponseKind::Fetch(FetchResponse::default().with_responses(vec![
        FetchableTopicResponse::default().with_topic(topic()).with_partitions(vec![
            PartitionData::default()
                .with_partition_index(0)
                .with_high_watermark(2_000_000)
                .with_last_stable_offset(2_000_000)
                .with_preferred_read_replica(BrokerId(-1))
                .with_records(Some(Bytes::from(vec![0u8; records_bytes]))),
        ]),
    ]))
}

fn produce_response(partitions: i32) -> ResponseKind {
    ResponseKind::Produce(ProduceResponse::default().with_responses(vec![
        TopicProduceResponse::default().with_name(topic()).with_partition_responses(
            (0..partitions)
                .map(|p| {
                    PartitionProduceResponse::default()
                        .with_index(p)
                        .with_base_offset(1_000_000)
                })
                .collect(),
        ),
    ]))
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_request");
    let cases = [
        (
            "produce_v9_1x16KiB",
            frame(ApiKey::Produce, 9, &produce_request(1, 16 << 10)),
        ),
        (
            "produce_v9_8x1MiB",
            frame(ApiKey::Produce, 9, &produce_request(8, 1 << 20)),
        ),
        (
            "produce_v3_1x16KiB",
            frame(ApiKey::Produce, 3, &produce_request(1, 16 << 10)),
        ),
        ("fetch_v12_1p", frame(ApiKey::Fetch, 12, &fetch_request(1))),
        (
            "fetch_v12_100p",
            frame(ApiKey::Fetch, 12, &fetch_request(100)),
        ),
    ];
    for (name, f) in cases {
        g.throughput(Throughput::Bytes(f.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| decode_request(black_box(f.clone())).expect("decode"))
        });
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_response");
    let fetch = fetch_response(1 << 20);
    g.throughput(Throughput::Bytes(1 << 20));
    g.bench_function("fetch_v12_1MiB", |b| {
        b.iter(|| encode_response(ApiKey::Fetch, 12, 7, black_box(&fetch)).expect("encode"))
    });
    let produce = produce_response(8);
    g.throughput(Throughput::Elements(1));
    g.bench_function("produce_v9_8p", |b| {
        b.iter(|| encode_response(ApiKey::Produce, 9, 7, black_box(&produce)).expect("encode"))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! { name = all; config = config(); targets = decode, encode }
criterion_main!(all);
