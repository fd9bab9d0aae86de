//! The same scenarios on `vltava-client`, measured exactly as the librdkafka
//! ones in `main.rs` (same clocks, payloads, keys and JSON fields), so the
//! two clients' rows in the table compare like with like.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use serde_json::json;
use vltava_client::admin::NewTopic;
use vltava_client::{
    Admin, Client, ClientConfig, Compression, Consumer, ConsumerConfig, OffsetSpec, Producer,
    ProducerConfig, ProducerRecord,
};

use crate::{latency_summary, now_us, process_cpu_seconds, throughput_summary, Scenario};

/// Records sent and not yet acknowledged before the sending loop waits for
/// the oldest: the analogue of librdkafka's queue bound in `main.rs`.
const IN_FLIGHT_RECORDS_MAX: usize = 1_000_000;

pub fn run(bootstrap: &str, scenario: Scenario) -> Result<serde_json::Value> {
    // Two workers: the producer's sender task runs beside the sending loop.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match scenario {
            Scenario::Produce {
                name,
                topic,
                partitions,
                records,
                record_bytes,
                props,
            } => {
                let client = connect(bootstrap).await?;
                create_topic(&client, &topic, partitions).await?;
                produce(client, &name, &topic, records, record_bytes, &props).await
            }
            Scenario::Consume {
                name,
                topic,
                records,
            } => consume(connect(bootstrap).await?, &name, &topic, records).await,
            Scenario::EndToEnd {
                name,
                topic,
                rate,
                seconds,
                record_bytes,
            } => {
                let client = connect(bootstrap).await?;
                create_topic(&client, &topic, 1).await?;
                end_to_end(client, &name, &topic, rate, seconds, record_bytes).await
            }
            Scenario::Loopback { .. } => unreachable!("loopback has no client"),
        }
    })
}

async fn connect(bootstrap: &str) -> Result<Client> {
    Ok(Client::connect(ClientConfig::new(bootstrap).client_id("vltava-bench")).await?)
}

async fn create_topic(client: &Client, topic: &str, partitions: i32) -> Result<()> {
    let admin = Admin::new(client.clone());
    let new = NewTopic {
        name: topic.to_string(),
        partitions,
        replication_factor: 1,
        configs: Vec::new(),
        assignments: Vec::new(),
    };
    for (name, result) in admin.create_topics(&[new], false).await? {
        if let Err(e) = result {
            if e.code != 36 {
                bail!("creating {name}: {e}");
            }
        }
    }
    Ok(())
}

/// `acks`, `linger.ms`, `batch.size`, `compression.type`,
/// `enable.idempotence` as the Java client reads them.
fn producer_config(props: &[String]) -> Result<ProducerConfig> {
    let mut config = ProducerConfig::default();
    let mut idempotence = None;
    for p in props {
        let (k, v) = p.split_once('=').context("--prop expects K=V")?;
        match k {
            "acks" => config.acks = if v == "all" { -1 } else { v.parse()? },
            "linger.ms" => config.linger = Duration::from_millis(v.parse()?),
            "batch.size" => config.batch_size_bytes = v.parse()?,
            "compression.type" => {
                config.compression = match v {
                    "none" => Compression::None,
                    "gzip" => Compression::Gzip,
                    "snappy" => Compression::Snappy,
                    "lz4" => Compression::Lz4,
                    "zstd" => Compression::Zstd,
                    _ => bail!("unknown compression.type {v}"),
                }
            }
            "enable.idempotence" => idempotence = Some(v == "true"),
            _ => bail!("vltava-client bench: unsupported producer property {k}"),
        }
    }
    config.idempotence = idempotence.unwrap_or(config.acks == -1);
    Ok(config)
}

async fn produce(
    client: Client,
    name: &str,
    topic: &str,
    records: u64,
    record_bytes: usize,
    props: &[String],
) -> Result<serde_json::Value> {
    let producer = Producer::new(client, producer_config(props)?).await?;
    let payload = Bytes::from(vec![b'x'; record_bytes]);
    let keys: Vec<Bytes> = (0..1024u64)
        .map(|k| Bytes::copy_from_slice(&k.to_be_bytes()))
        .collect();
    let start = Instant::now();
    let cpu_start = process_cpu_seconds();
    let mut in_flight = VecDeque::new();
    for i in 0..records {
        let record = ProducerRecord {
            topic: topic.to_string(),
            key: Some(keys[(i % 1024) as usize].clone()),
            value: Some(payload.clone()),
            ..Default::default()
        };
        in_flight.push_back(producer.send(record).await?);
        if in_flight.len() >= IN_FLIGHT_RECORDS_MAX {
            let oldest = in_flight.pop_front().expect("non-empty");
            oldest.await.context("producer stopped")??;
        }
    }
    producer.flush().await;
    for delivery in in_flight {
        delivery.await.context("producer stopped")??;
    }
    let mut line = throughput_summary(
        name,
        records,
        records * record_bytes as u64,
        start,
        cpu_start,
    );
    line["record_bytes"] = json!(record_bytes);
    // Timed to the last delivery, not to the producer's shutdown.
    producer.close().await;
    Ok(line)
}

async fn consume(
    client: Client,
    name: &str,
    topic: &str,
    records: u64,
) -> Result<serde_json::Value> {
    let mut consumer = Consumer::new(
        client,
        ConsumerConfig {
            auto_offset_reset: OffsetSpec::Earliest,
            ..ConsumerConfig::default()
        },
    );
    consumer.assign_topic(topic).await?;
    let start = Instant::now();
    let cpu_start = process_cpu_seconds();
    let (mut count, mut bytes) = (0u64, 0u64);
    let deadline = start + Duration::from_secs(600);
    while count < records && Instant::now() < deadline {
        for r in consumer.poll().await? {
            count += 1;
            bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
        }
    }
    if count < records {
        bail!("read {count} of {records} records before the deadline");
    }
    Ok(throughput_summary(name, count, bytes, start, cpu_start))
}

async fn end_to_end(
    client: Client,
    name: &str,
    topic: &str,
    rate: u64,
    seconds: u64,
    record_bytes: usize,
) -> Result<serde_json::Value> {
    let total = rate * seconds;
    let mut consumer = Consumer::new(
        client.clone(),
        ConsumerConfig {
            auto_offset_reset: OffsetSpec::Latest,
            fetch_max_wait: Duration::from_millis(100),
            ..ConsumerConfig::default()
        },
    );
    consumer.assign(vec![(topic.to_string(), 0)]);
    consumer.resolve_positions().await?;
    let receiver = tokio::spawn(async move {
        let mut latencies: Vec<u64> = Vec::with_capacity(total as usize);
        let deadline = Instant::now() + Duration::from_secs(seconds + 30);
        while latencies.len() < total as usize && Instant::now() < deadline {
            for r in consumer.poll().await? {
                let now = now_us();
                if let Some(v) = r.value.as_ref().filter(|v| v.len() >= 8) {
                    let sent_us = u64::from_be_bytes(v[..8].try_into().expect("8 bytes"));
                    latencies.push(now.saturating_sub(sent_us));
                }
            }
        }
        anyhow::Ok(latencies)
    });
    let producer = Producer::new(
        client,
        ProducerConfig {
            acks: -1,
            linger: Duration::ZERO,
            ..ProducerConfig::default()
        },
    )
    .await?;
    let mut payload = vec![b'x'; record_bytes.max(8)];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        // Send every record that is due, then wait a tick: 50,000/s is one
        // record per 20 µs, finer than any timer.
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while sent < due {
            payload[..8].copy_from_slice(&now_us().to_be_bytes());
            let record = ProducerRecord {
                topic: topic.to_string(),
                partition: Some(0),
                value: Some(Bytes::copy_from_slice(&payload)),
                ..Default::default()
            };
            drop(producer.send(record).await?);
            sent += 1;
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    producer.flush().await;
    let latencies = receiver.await??;
    producer.close().await;
    Ok(latency_summary(name, rate, latencies))
}
