//! The fixed benchmark suite's load generator, on librdkafka (the `rdkafka`
//! crate) so the client is neither ours nor tuned for us, and with
//! `--client vltava` on our own `vltava-client` (module `vclient`), measured
//! the same way. Point it at any Kafka-compatible broker with `--bootstrap`.
//! Each scenario prints one JSON line; `bench/run` runs the suite and
//! renders the table in docs/benchmarks.md.

mod vclient;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::util::Timeout;
use rdkafka::TopicPartitionList;
use serde_json::json;

#[derive(Parser)]
#[command(about = "Kafka-protocol benchmark scenarios on librdkafka")]
struct Cli {
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// The client library that generates the load.
    #[arg(long, value_enum, default_value_t = ClientKind::Rdkafka)]
    client: ClientKind,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ClientKind {
    /// librdkafka through the `rdkafka` crate.
    Rdkafka,
    /// Our `vltava-client`.
    Vltava,
}

#[derive(Subcommand)]
enum Scenario {
    /// Produce `records` of `record_bytes` to a fresh topic as fast as possible.
    Produce {
        #[arg(long)]
        name: String,
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        #[arg(long)]
        records: u64,
        #[arg(long)]
        record_bytes: usize,
        /// Producer properties, e.g. acks=all linger.ms=5.
        #[arg(long = "prop", value_name = "K=V")]
        props: Vec<String>,
    },
    /// Read a whole topic from the beginning with the client's default fetch settings.
    Consume {
        #[arg(long)]
        name: String,
        #[arg(long)]
        topic: String,
        /// Records expected (stop when all are read).
        #[arg(long)]
        records: u64,
    },
    /// Produce at a fixed rate with acks=all and measure produce-call to
    /// consumer-receipt latency.
    EndToEnd {
        #[arg(long)]
        name: String,
        #[arg(long)]
        topic: String,
        #[arg(long)]
        rate: u64,
        #[arg(long)]
        seconds: u64,
        #[arg(long)]
        record_bytes: usize,
    },
    /// Raw loopback TCP throughput (one socket, large writes): the ceiling
    /// every throughput figure is compared with.
    Loopback {
        #[arg(long, default_value_t = 4096)]
        megabytes: u64,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let mut line = match (cli.client, cli.scenario) {
        (_, Scenario::Loopback { megabytes }) => loopback(megabytes)?,
        (ClientKind::Vltava, scenario) => vclient::run(&cli.bootstrap, scenario)?,
        (ClientKind::Rdkafka, scenario) => run_rdkafka(&cli.bootstrap, scenario)?,
    };
    if let Some(fields) = line.as_object_mut() {
        if !fields.contains_key("client") {
            let client = match cli.client {
                ClientKind::Rdkafka => "rdkafka",
                ClientKind::Vltava => "vltava-client",
            };
            fields.insert("client".into(), json!(client));
        }
    }
    println!("{line}");
    Ok(())
}

fn run_rdkafka(bootstrap: &str, scenario: Scenario) -> Result<serde_json::Value> {
    Ok(match scenario {
        Scenario::Produce {
            name,
            topic,
            partitions,
            records,
            record_bytes,
            props,
        } => {
            create_topic(bootstrap, &topic, partitions)?;
            produce(bootstrap, &name, &topic, records, record_bytes, &props)?
        }
        Scenario::Consume {
            name,
            topic,
            records,
        } => consume(bootstrap, &name, &topic, records)?,
        Scenario::EndToEnd {
            name,
            topic,
            rate,
            seconds,
            record_bytes,
        } => {
            create_topic(bootstrap, &topic, 1)?;
            end_to_end(bootstrap, &name, &topic, rate, seconds, record_bytes)?
        }
        Scenario::Loopback { megabytes } => loopback(megabytes)?,
    })
}

fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = runtime.block_on(admin.create_topics(
        &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
    ))?;
    for result in results {
        if let Err((name, code)) = result {
            if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                bail!("creating {name}: {code:?}");
            }
        }
    }
    Ok(())
}

pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn produce(
    bootstrap: &str,
    name: &str,
    topic: &str,
    records: u64,
    record_bytes: usize,
    props: &[String],
) -> Result<serde_json::Value> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576");
    for p in props {
        let (k, v) = p.split_once('=').context("--prop expects K=V")?;
        config.set(k, v);
    }
    let producer: ThreadedProducer<_> = config.create()?;
    let payload = vec![b'x'; record_bytes];
    let start = Instant::now();
    let cpu_start = process_cpu_seconds();
    for i in 0..records {
        let key = (i % 1024).to_be_bytes();
        let mut record = BaseRecord::to(topic).payload(&payload[..]).key(&key[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    r,
                )) => {
                    record = r;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => bail!("produce failed: {e}"),
            }
        }
    }
    producer.flush(Timeout::After(Duration::from_secs(300)))?;
    let mut line = throughput_summary(
        name,
        records,
        records * record_bytes as u64,
        start,
        cpu_start,
    );
    line["record_bytes"] = json!(record_bytes);
    Ok(line)
}

fn consume(bootstrap: &str, name: &str, topic: &str, records: u64) -> Result<serde_json::Value> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "vltava-bench")
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions = metadata.topics()[0].partitions().len() as i32;
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(topic, p, rdkafka::Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let start = Instant::now();
    let cpu_start = process_cpu_seconds();
    let (mut count, mut bytes) = (0u64, 0u64);
    let deadline = start + Duration::from_secs(600);
    while count < records && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message?;
            count += 1;
            bytes += message.payload_len() as u64;
        }
    }
    if count < records {
        bail!("read {count} of {records} records before the deadline");
    }
    Ok(throughput_summary(name, count, bytes, start, cpu_start))
}

fn end_to_end(
    bootstrap: &str,
    name: &str,
    topic: &str,
    rate: u64,
    seconds: u64,
    record_bytes: usize,
) -> Result<serde_json::Value> {
    let total = (rate * seconds) as usize;
    // The consumer has its own thread, so a receipt is timed when it
    // arrives, not when the producing loop next gets round to polling.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let consumer_config = {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", bootstrap)
            .set("group.id", "vltava-bench-e2e")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "100")
            .set("fetch.min.bytes", "1");
        c
    };
    let consumer_topic = topic.to_string();
    let deadline = Duration::from_secs(seconds + 30);
    let receiver = std::thread::spawn(move || -> Result<Vec<u64>> {
        let consumer: BaseConsumer = consumer_config.create()?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(&consumer_topic, 0, rdkafka::Offset::End)?;
        consumer.assign(&assignment)?;
        // Settle at the end of the log before the producer starts.
        let settle = Instant::now() + Duration::from_secs(2);
        while Instant::now() < settle {
            consumer.poll(Duration::from_millis(50));
        }
        let _ = ready_tx.send(());
        let start = Instant::now();
        let mut latencies = Vec::with_capacity(total);
        while latencies.len() < total && start.elapsed() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                if let Some(p) = message.payload() {
                    let sent_us = u64::from_be_bytes(p[..8].try_into().expect("8 bytes"));
                    latencies.push(now_us().saturating_sub(sent_us));
                }
            }
        }
        Ok(latencies)
    });
    ready_rx
        .recv()
        .map_err(|_| anyhow::anyhow!("consumer thread failed to start"))?;
    let producer: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "0")
        .create()?;
    let mut payload = vec![b'x'; record_bytes.max(8)];
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    let mut sent = 0usize;
    while sent < total {
        let due = interval.mul_f64(sent as f64);
        let elapsed = start.elapsed();
        if elapsed < due {
            std::thread::sleep((due - elapsed).min(Duration::from_micros(200)));
            continue;
        }
        payload[..8].copy_from_slice(&now_us().to_be_bytes());
        if producer
            .send(BaseRecord::<(), [u8]>::to(topic).payload(&payload[..]))
            .is_err()
        {
            producer.poll(Duration::from_millis(1));
            continue;
        }
        sent += 1;
    }
    producer.flush(Timeout::After(Duration::from_secs(30)))?;
    let latencies = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("consumer thread panicked"))??;
    Ok(latency_summary(name, rate, latencies))
}

/// A throughput result line: `records` records of `bytes` bytes in all
/// since `start`, with this process's CPU time since `cpu_start`.
pub(crate) fn throughput_summary(
    name: &str,
    records: u64,
    bytes: u64,
    start: Instant,
    cpu_start: f64,
) -> serde_json::Value {
    let seconds = start.elapsed().as_secs_f64();
    json!({
        "scenario": name,
        "records": records,
        "seconds": seconds,
        "records_per_sec": records as f64 / seconds,
        "mb_per_sec": bytes as f64 / seconds / 1e6,
        "client_cpu_seconds": process_cpu_seconds() - cpu_start,
    })
}

/// The end-to-end result line: percentiles of latencies in microseconds.
pub(crate) fn latency_summary(name: &str, rate: u64, mut latencies: Vec<u64>) -> serde_json::Value {
    latencies.sort_unstable();
    let pct = |q: f64| -> f64 {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .map_or(f64::NAN, |us| *us as f64 / 1000.0)
    };
    json!({
        "scenario": name,
        "records": latencies.len(),
        "rate": rate,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "p999_ms": pct(0.999),
        "max_ms": pct(1.0),
    })
}

fn loopback(megabytes: u64) -> Result<serde_json::Value> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let total = megabytes * 1_000_000;
    let reader = std::thread::spawn(move || -> Result<u64> {
        let (mut socket, _) = listener.accept()?;
        let mut buf = vec![0u8; 1 << 20];
        let mut read = 0u64;
        loop {
            let n = socket.read(&mut buf)?;
            if n == 0 {
                return Ok(read);
            }
            read += n as u64;
        }
    });
    let mut socket = TcpStream::connect(address)?;
    let chunk = vec![7u8; 1 << 20];
    let start = Instant::now();
    let mut written = 0u64;
    while written < total {
        socket.write_all(&chunk)?;
        written += chunk.len() as u64;
    }
    drop(socket);
    let read = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    let seconds = start.elapsed().as_secs_f64();
    Ok(json!({
        "scenario": "P6-loopback",
        "client": "std-socket",
        "bytes": read,
        "seconds": seconds,
        "mb_per_sec": read as f64 / seconds / 1e6,
    }))
}

/// CPU seconds used by this process so far (user + system), from /proc.
pub(crate) fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name: field 12 is utime, 13 stime (0-based from state).
    (ticks(11) + ticks(12)) / 100.0
}
