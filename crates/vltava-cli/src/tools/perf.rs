//! `vltava perf producer | consumer | end-to-end`: the counterparts of
//! `kafka-producer-perf-test.sh` (`ProducerPerformance`),
//! `kafka-consumer-perf-test.sh` (`ConsumerPerformance`) and Kafka's
//! `EndToEndLatency` tool, on `vltava-client`, printing Kafka's output
//! lines so that scripts written for those tools parse ours unchanged.
//!
//! Differences from Kafka's tools, on purpose: the consumer test reads
//! assigned partitions without joining a group (so `rebalance.time.ms` is 0),
//! and dates are printed in UTC.

use super::{BOOTSTRAP_DEFAULT, BOOTSTRAP_ENV};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Args, Subcommand};
use rand::Rng;
use tokio::sync::mpsc;
use vltava_client::producer::DeliveryFuture;
use vltava_client::{
    Consumer, ConsumerConfig, OffsetSpec, Producer, ProducerConfig, ProducerRecord,
};

use super::{connect, fail, parse_pairs, read_properties};

/// Kafka's perf tools report a window line every this many milliseconds.
const REPORTING_INTERVAL_MS: u64 = 5_000;
/// `ProducerPerformance` keeps at most this many latency samples.
const LATENCY_SAMPLES_MAX: u64 = 500_000;
/// `buffer.memory`: bytes of records sent but not yet acknowledged before
/// `send` waits, as the Java producer's default.
const BUFFER_MEMORY_BYTES: usize = 32 * 1024 * 1024;
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Subcommand, Debug)]
pub enum PerfCommand {
    /// Produce records as fast as allowed and report throughput and latency
    /// (kafka-producer-perf-test.sh).
    Producer(ProducerPerfArgs),
    /// Consume records and report throughput (kafka-consumer-perf-test.sh).
    Consumer(ConsumerPerfArgs),
    /// Produce one record at a time and time it until the consumer receives
    /// it (Kafka's EndToEndLatency).
    EndToEnd(EndToEndArgs),
}

#[derive(Args, Debug)]
pub struct PerfArgs {
    #[command(subcommand)]
    pub command: PerfCommand,
}

#[derive(Args, Debug)]
pub struct ProducerPerfArgs {
    /// Produce messages to this topic.
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,
    /// Number of messages to produce.
    #[arg(long, value_name = "NUM-RECORDS")]
    pub num_records: u64,
    /// Message size in bytes.
    #[arg(long, value_name = "RECORD-SIZE")]
    pub record_size: usize,
    /// Throttle maximum message throughput to *approximately* THROUGHPUT
    /// messages/sec. Set this to -1 to disable throttling.
    #[arg(long, value_name = "THROUGHPUT", allow_negative_numbers = true)]
    pub throughput: f64,
    /// Kafka producer related configuration properties like
    /// bootstrap.servers, acks, linger.ms, batch.size, compression.type.
    #[arg(long, num_args = 1.., value_name = "PROP-NAME=PROP-VALUE")]
    pub producer_props: Vec<String>,
    /// Producer config properties file.
    #[arg(long = "producer.config", value_name = "CONFIG-FILE")]
    pub producer_config: Option<String>,
    /// The server(s) to connect to; overrides bootstrap.servers.
    #[arg(long, value_name = "BOOTSTRAP-SERVERS")]
    pub bootstrap_server: Option<String>,
}

#[derive(Args, Debug)]
pub struct ConsumerPerfArgs {
    /// The server(s) to connect to; default $VLTAVA_BOOTSTRAP, else 127.0.0.1:9092 (the
    /// zero-config broker).
    #[arg(long, env = BOOTSTRAP_ENV, default_value = BOOTSTRAP_DEFAULT, value_name = "String: server to connect to")]
    pub bootstrap_server: String,
    /// REQUIRED: The topic to consume from.
    #[arg(long, value_name = "String: topic")]
    pub topic: String,
    /// REQUIRED: The number of messages to send or consume.
    #[arg(long, value_name = "Long: count")]
    pub messages: u64,
    /// The group id to consume on (accepted; partitions are assigned
    /// without joining a group).
    #[arg(long, value_name = "String: gid")]
    pub group: Option<String>,
    /// The amount of data to fetch in a single request
    /// (max.partition.fetch.bytes).
    #[arg(long, default_value_t = 1_048_576, value_name = "Integer: size")]
    pub fetch_size: i32,
    /// The maximum allowed time in milliseconds between returned records.
    #[arg(long, default_value_t = 10_000, value_name = "Long: milliseconds")]
    pub timeout: u64,
    /// Consume from the log end instead of the beginning.
    #[arg(long)]
    pub from_latest: bool,
    /// Skip printing the header for the stats.
    #[arg(long)]
    pub hide_header: bool,
    /// Report stats every --reporting-interval ms instead of only at the end.
    #[arg(long)]
    pub show_detailed_stats: bool,
    /// Interval in milliseconds at which to print progress info.
    #[arg(long, default_value_t = 5_000, value_name = "Integer: interval_ms")]
    pub reporting_interval: u64,
    /// Consumer config properties file (fetch.max.wait.ms, fetch.min.bytes,
    /// fetch.max.bytes, max.partition.fetch.bytes).
    #[arg(long = "consumer.config", value_name = "String: config file")]
    pub consumer_config: Option<String>,
}

/// Kafka's positional form: `broker_list topic num_messages producer_acks
/// message_size_bytes [properties_file]`.
#[derive(Args, Debug)]
pub struct EndToEndArgs {
    /// host:port[,host:port]
    pub broker_list: String,
    pub topic: String,
    pub num_messages: u64,
    /// 1 or all.
    pub producer_acks: String,
    pub message_size_bytes: usize,
    /// Producer and consumer properties file.
    pub properties_file: Option<String>,
}

/// Perf tools drive a producer's background task and the sending loop at
/// once, so they get two worker threads where the other tools get one.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

pub async fn run(args: PerfArgs) -> anyhow::Result<()> {
    match args.command {
        PerfCommand::Producer(a) => producer(a).await,
        PerfCommand::Consumer(a) => consumer(a).await,
        PerfCommand::EndToEnd(a) => end_to_end(a).await,
    }
}

/// Producer settings from Kafka's property names. `acks` defaults to all
/// and idempotence follows it, as the Java client's defaults do.
fn producer_config(props: &BTreeMap<String, String>) -> anyhow::Result<ProducerConfig> {
    let acks = super::acks(props.get("acks").map_or("all", |v| v.as_str()))?;
    let compression =
        super::compression(props.get("compression.type").map_or("none", |v| v.as_str()))?;
    let number = |k: &str, d: u64| super::long_property(props, k, d);
    let idempotence = super::idempotence(props, acks, acks == -1)?;
    let defaults = ProducerConfig::default();
    Ok(ProducerConfig {
        acks,
        linger: Duration::from_millis(number("linger.ms", 5)?),
        batch_size_bytes: number("batch.size", defaults.batch_size_bytes as u64)? as usize,
        compression,
        idempotence,
        request_timeout: Duration::from_millis(number("request.timeout.ms", 30_000)?),
        retries: number("retries", u64::from(defaults.retries))? as u32,
    })
}

/// Kafka's payload: `record_size` random upper-case letters, made once.
fn random_payload(record_size: usize) -> Bytes {
    let mut rng = rand::rng();
    (0..record_size)
        .map(|_| rng.random_range(b'A'..=b'Z'))
        .collect::<Vec<u8>>()
        .into()
}

/// `ProducerPerformance.Stats`: totals, a reporting window, and every
/// `sampling`-th latency for the percentiles.
struct ProducerStats {
    start: Instant,
    count: u64,
    bytes: u64,
    latency_total_ms: u64,
    latency_max_ms: u64,
    sampling: u64,
    /// Records until the next latency sample (every `sampling`-th, the first
    /// included, as Kafka's `iteration % sampling == 0`).
    until_sample: u64,
    latencies_ms: Vec<u64>,
    window_start: Instant,
    window_count: u64,
    window_bytes: u64,
    window_latency_total_ms: u64,
    window_latency_max_ms: u64,
}

impl ProducerStats {
    fn new(num_records: u64, start: Instant) -> ProducerStats {
        let sampling = num_records / num_records.clamp(1, LATENCY_SAMPLES_MAX);
        ProducerStats {
            start,
            count: 0,
            bytes: 0,
            latency_total_ms: 0,
            latency_max_ms: 0,
            sampling: sampling.max(1),
            until_sample: 0,
            latencies_ms: Vec::with_capacity(num_records.min(LATENCY_SAMPLES_MAX) as usize + 1),
            window_start: start,
            window_count: 0,
            window_bytes: 0,
            window_latency_total_ms: 0,
            window_latency_max_ms: 0,
        }
    }

    fn record(&mut self, latency_ms: u64, bytes: u64, now: Instant) {
        self.count += 1;
        self.bytes += bytes;
        self.latency_total_ms += latency_ms;
        self.latency_max_ms = self.latency_max_ms.max(latency_ms);
        self.window_count += 1;
        self.window_bytes += bytes;
        self.window_latency_total_ms += latency_ms;
        self.window_latency_max_ms = self.window_latency_max_ms.max(latency_ms);
        if self.until_sample == 0 {
            self.latencies_ms.push(latency_ms);
            self.until_sample = self.sampling;
        }
        self.until_sample -= 1;
        if now.duration_since(self.window_start) >= Duration::from_millis(REPORTING_INTERVAL_MS) {
            self.print_window(now);
            self.window_start = now;
            self.window_count = 0;
            self.window_bytes = 0;
            self.window_latency_total_ms = 0;
            self.window_latency_max_ms = 0;
        }
    }

    fn print_window(&self, now: Instant) {
        let elapsed_ms = elapsed_ms(self.window_start, now);
        println!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
            self.window_count,
            1000.0 * self.window_count as f64 / elapsed_ms,
            1000.0 * self.window_bytes as f64 / elapsed_ms / MIB,
            self.window_latency_total_ms as f64 / self.window_count as f64,
            self.window_latency_max_ms as f64,
        );
    }

    /// Kafka's final line; `records/sec` is Java's `%f` (six decimals).
    fn total_line(&mut self, now: Instant) -> String {
        let elapsed_ms = elapsed_ms(self.start, now);
        self.latencies_ms.sort_unstable();
        let pct = |q: f64| -> u64 {
            let i = (q * self.latencies_ms.len() as f64) as usize;
            self.latencies_ms.get(i).copied().unwrap_or(0)
        };
        let avg = if self.count == 0 {
            0.0
        } else {
            self.latency_total_ms as f64 / self.count as f64
        };
        format!(
            "{} records sent, {:.6} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
            self.count,
            1000.0 * self.count as f64 / elapsed_ms,
            1000.0 * self.bytes as f64 / elapsed_ms / MIB,
            avg,
            self.latency_max_ms as f64,
            pct(0.5),
            pct(0.95),
            pct(0.99),
            pct(0.999),
        )
    }
}

/// Milliseconds between two instants, never zero (rates divide by it).
fn elapsed_ms(from: Instant, to: Instant) -> f64 {
    (to.duration_since(from).as_secs_f64() * 1000.0).max(1e-3)
}

async fn producer(args: ProducerPerfArgs) -> anyhow::Result<()> {
    let mut props = match &args.producer_config {
        Some(path) => read_properties(path)?,
        None => BTreeMap::new(),
    };
    props.extend(parse_pairs("--producer-props", &args.producer_props)?);
    super::refuse_security_settings("--producer.config or --producer-props", &props)?;
    let Some(bootstrap) = args
        .bootstrap_server
        .clone()
        .or_else(|| props.get("bootstrap.servers").cloned())
    else {
        return fail("Either --bootstrap-server or bootstrap.servers in --producer-props or --producer.config must be specified");
    };
    let config = producer_config(&props)?;
    let client_id = props
        .get("client.id")
        .cloned()
        .unwrap_or_else(|| "perf-producer-client".into());
    let client = connect(&bootstrap, &client_id).await?;
    let producer = match Producer::new(client, config).await {
        Ok(p) => p,
        Err(e) => return fail(format!("Error: {e}")),
    };
    let payload = random_payload(args.record_size);
    let start = Instant::now();
    // Deliveries are awaited in send order on their own task: one Produce
    // answers every batch it carried at once, so order costs no accuracy.
    // The channel bound is the `buffer.memory` back-pressure.
    let window = (BUFFER_MEMORY_BYTES / args.record_size.max(1)).max(1);
    let (tx, mut rx) = mpsc::channel::<(Instant, DeliveryFuture)>(window);
    let record_bytes = args.record_size as u64;
    let num_records = args.num_records;
    let collector = tokio::spawn(async move {
        let mut stats = ProducerStats::new(num_records, start);
        let mut errors = 0u64;
        while let Some((sent, delivery)) = rx.recv().await {
            match delivery.await {
                Ok(Ok(_)) => {
                    let now = Instant::now();
                    let latency_ms = now.duration_since(sent).as_millis() as u64;
                    stats.record(latency_ms, record_bytes, now);
                }
                Ok(Err(e)) => {
                    errors += 1;
                    eprintln!("Error: {e}");
                }
                Err(_) => {
                    errors += 1;
                    eprintln!("Error: the producer stopped before answering");
                }
            }
        }
        (stats, errors)
    });
    for i in 0..args.num_records {
        if args.throughput > 0.0 {
            throttle(start, i, args.throughput).await;
        }
        let record = ProducerRecord {
            topic: args.topic.clone(),
            value: Some(payload.clone()),
            ..Default::default()
        };
        let sent = Instant::now();
        match producer.send(record).await {
            Ok(delivery) => {
                if tx.send((sent, delivery)).await.is_err() {
                    break;
                }
            }
            Err(e) => return fail(format!("Error: {e}")),
        }
    }
    drop(tx);
    producer.close().await;
    let (mut stats, errors) = collector.await?;
    println!("{}", stats.total_line(Instant::now()));
    if errors > 0 {
        return fail(format!("{errors} records failed"));
    }
    Ok(())
}

/// Kafka's `ThroughputThrottler`: sleep while ahead of `per_sec`.
pub(super) async fn throttle(start: Instant, sent: u64, per_sec: f64) {
    let due = start + Duration::from_secs_f64(sent as f64 / per_sec);
    let now = Instant::now();
    // Sleeping for less than a millisecond costs more than it saves.
    if due > now + Duration::from_millis(1) {
        tokio::time::sleep_until(due.into()).await;
    }
}

fn consumer_config(args: &ConsumerPerfArgs) -> anyhow::Result<ConsumerConfig> {
    let props = match &args.consumer_config {
        Some(path) => read_properties(path)?,
        None => BTreeMap::new(),
    };
    super::refuse_security_settings("--consumer.config", &props)?;
    let number = |k: &str, d: i64| -> anyhow::Result<i64> {
        match props.get(k) {
            Some(v) => v.trim().parse().or_else(|_| {
                fail(format!(
                    "Invalid value {v} for configuration {k}: Not a number of type INT"
                ))
            }),
            None => Ok(d),
        }
    };
    let defaults = ConsumerConfig::default();
    Ok(ConsumerConfig {
        auto_offset_reset: if args.from_latest {
            OffsetSpec::Latest
        } else {
            OffsetSpec::Earliest
        },
        fetch_max_wait: Duration::from_millis(number(
            "fetch.max.wait.ms",
            defaults.fetch_max_wait.as_millis() as i64,
        )? as u64),
        fetch_min_bytes: number("fetch.min.bytes", defaults.fetch_min_bytes.into())? as i32,
        fetch_max_bytes: number("fetch.max.bytes", defaults.fetch_max_bytes.into())? as i32,
        partition_max_bytes: number("max.partition.fetch.bytes", args.fetch_size.into())? as i32,
        isolation_level: defaults.isolation_level,
    })
}

async fn consumer(args: ConsumerPerfArgs) -> anyhow::Result<()> {
    let config = consumer_config(&args)?;
    let client = connect(&args.bootstrap_server, "perf-consumer-client").await?;
    let mut consumer = Consumer::new(client, config);
    let start_wall = SystemTime::now();
    let start = Instant::now();
    if let Err(e) = consumer.assign_topic(&args.topic).await {
        return fail(format!("Error: {e}"));
    }
    let header_extra = ", rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec";
    if !args.hide_header {
        if args.show_detailed_stats {
            println!("time, threadId, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec{header_extra}");
        } else {
            println!("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec{header_extra}");
        }
    }
    let timeout = Duration::from_millis(args.timeout);
    let interval = Duration::from_millis(args.reporting_interval);
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut last_consumed = Instant::now();
    let mut last_report = (Instant::now(), 0u64, 0u64);
    while messages < args.messages && last_consumed.elapsed() <= timeout {
        // Not wrapped in a timeout: a poll is bounded by fetch.max.wait.ms,
        // and cancelling one mid-request would desynchronise the connection.
        let records = match consumer.poll().await {
            Ok(records) => records,
            Err(e) => return fail(format!("Error: {e}")),
        };
        let now = Instant::now();
        if !records.is_empty() {
            last_consumed = now;
        }
        for r in &records {
            messages += 1;
            bytes += r.key.as_ref().map_or(0, |k| k.len() as u64);
            bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
        }
        if args.show_detailed_stats && now.duration_since(last_report.0) >= interval {
            print_progress(last_report, (now, messages, bytes));
            last_report = (now, messages, bytes);
        }
    }
    let end_wall = SystemTime::now();
    let elapsed_s = start.elapsed().as_secs_f64().max(1e-6);
    if messages < args.messages {
        println!("WARNING: Exiting before consuming the expected number of messages: timeout ({} ms) exceeded. You can use the --timeout option to increase the timeout.", args.timeout);
    }
    if !args.show_detailed_stats {
        let mb = bytes as f64 / MIB;
        let fetch_ms = (elapsed_s * 1000.0) as u64;
        let fetch_s = (fetch_ms as f64 / 1000.0).max(1e-6);
        println!(
            "{}, {}, {:.4}, {:.4}, {}, {:.4}, {}, {}, {:.4}, {:.4}",
            kafka_date(start_wall),
            kafka_date(end_wall),
            mb,
            mb / elapsed_s,
            messages,
            messages as f64 / elapsed_s,
            0,
            fetch_ms,
            mb / fetch_s,
            messages as f64 / fetch_s,
        );
    }
    Ok(())
}

/// One `--show-detailed-stats` line for the interval between two reports.
fn print_progress(last: (Instant, u64, u64), now: (Instant, u64, u64)) {
    let secs = now.0.duration_since(last.0).as_secs_f64().max(1e-6);
    let mb = now.2 as f64 / MIB;
    let mb_window = (now.2 - last.2) as f64 / MIB;
    let fetch_ms = (secs * 1000.0) as u64;
    println!(
        "{}, {}, {:.4}, {:.4}, {}, {:.4}, {}, {}, {:.4}, {:.4}",
        kafka_date(SystemTime::now()),
        0,
        mb,
        mb_window / secs,
        now.1,
        (now.1 - last.1) as f64 / secs,
        0,
        fetch_ms,
        mb_window / secs,
        (now.1 - last.1) as f64 / secs,
    );
}

/// Kafka's default `--date-format`, `yyyy-MM-dd HH:mm:ss:SSS`, in UTC.
pub fn kafka_date(t: SystemTime) -> String {
    let ms = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis()) as i64;
    let (year, month, day, h, min, sec, millis) = vltava_client::calendar::utc_fields(ms);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{min:02}:{sec:02}:{millis:03}")
}

async fn end_to_end(args: EndToEndArgs) -> anyhow::Result<()> {
    let acks = match args.producer_acks.as_str() {
        "1" => "1",
        "all" | "-1" => "all",
        _ => {
            return fail(
                "Latency testing requires synchronous acknowledgement. Please use 1 or all",
            )
        }
    };
    let mut props = match &args.properties_file {
        Some(path) => read_properties(path)?,
        None => BTreeMap::new(),
    };
    props.insert("acks".into(), acks.into());
    props.insert("linger.ms".into(), "0".into());
    let producer_config = producer_config(&props)?;
    let client = connect(&args.broker_list, "end-to-end-latency").await?;
    let mut consumer = Consumer::new(
        client.clone(),
        ConsumerConfig {
            auto_offset_reset: OffsetSpec::Latest,
            fetch_max_wait: Duration::ZERO,
            ..ConsumerConfig::default()
        },
    );
    let positioned = async {
        let tps = consumer.assign_topic(&args.topic).await?;
        for tp in &tps {
            consumer.seek_to(tp, OffsetSpec::Latest);
        }
        consumer.resolve_positions().await
    };
    if let Err(e) = positioned.await {
        return fail(format!("Error: {e}"));
    }
    let producer = match Producer::new(client, producer_config).await {
        Ok(p) => p,
        Err(e) => return fail(format!("Error: {e}")),
    };
    let poll_timeout = Duration::from_secs(60);
    let mut latencies_ms = Vec::with_capacity(args.num_messages as usize);
    let mut total_ns: u128 = 0;
    for i in 0..args.num_messages {
        let message = random_payload(args.message_size_bytes);
        let begin = Instant::now();
        let record = ProducerRecord {
            topic: args.topic.clone(),
            value: Some(message.clone()),
            ..Default::default()
        };
        let acked = match producer.send(record).await {
            Ok(delivery) => delivery
                .await
                .map_err(|_| "the producer stopped".to_string()),
            Err(e) => Err(e.to_string()),
        };
        match acked {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return fail(format!("Error: {e}")),
            Err(e) => return fail(format!("Error: {e}")),
        }
        let records = poll_some(&mut consumer, poll_timeout).await?;
        let elapsed = begin.elapsed();
        let Some(first) = records.first() else {
            return fail(format!(
                "poll() timed out before finding a result (timeout:[{}])",
                poll_timeout.as_millis()
            ));
        };
        if first.value.as_ref() != Some(&message) {
            return fail(format!(
                "The message read [{}] did not match the message sent [{}]",
                String::from_utf8_lossy(first.value.as_deref().unwrap_or_default()),
                String::from_utf8_lossy(&message)
            ));
        }
        if records.len() > 1 {
            return fail(format!(
                "Only one result was expected during this test. We found [{}]",
                records.len()
            ));
        }
        if i % 1000 == 0 {
            println!("{i}\t{:?}", elapsed.as_nanos() as f64 / 1000.0 / 1000.0);
        }
        total_ns += elapsed.as_nanos();
        latencies_ms.push(elapsed.as_millis() as u64);
    }
    producer.close().await;
    let n = args.num_messages.max(1);
    println!(
        "Avg latency: {:.4} ms\n",
        (total_ns / u128::from(n)) as f64 / 1000.0 / 1000.0
    );
    latencies_ms.sort_unstable();
    let pct = |q: f64| -> u64 {
        let i = (latencies_ms.len() as f64 * q) as usize;
        latencies_ms.get(i).copied().unwrap_or(0)
    };
    println!(
        "Percentiles: 50th = {}, 99th = {}, 99.9th = {}",
        pct(0.5),
        pct(0.99),
        pct(0.999)
    );
    Ok(())
}

/// Polls until some records arrive or `timeout` passes.
async fn poll_some(
    consumer: &mut Consumer,
    timeout: Duration,
) -> anyhow::Result<Vec<vltava_client::ConsumerRecord>> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match consumer.poll().await {
            Ok(records) if !records.is_empty() => return Ok(records),
            Ok(_) => {}
            Err(e) => return fail(format!("Error: {e}")),
        }
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_date_is_utc_with_milliseconds() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(kafka_date(t), "2023-11-14 22:13:20:123");
        assert_eq!(kafka_date(UNIX_EPOCH), "1970-01-01 00:00:00:000");
    }

    #[test]
    fn producer_stats_follow_kafka_percentiles() {
        let start = Instant::now();
        let mut stats = ProducerStats::new(4, start);
        for latency in [4, 1, 3, 2] {
            stats.record(latency, 100, start);
        }
        let line = stats.total_line(start + Duration::from_secs(2));
        assert_eq!(
            line,
            "4 records sent, 2.000000 records/sec (0.00 MB/sec), 2.50 ms avg latency, 4.00 ms max latency, 3 ms 50th, 4 ms 95th, 4 ms 99th, 4 ms 99.9th."
        );
    }
}
