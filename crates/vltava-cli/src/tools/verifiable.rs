//! `vltava verifiable-producer` and `vltava verifiable-consumer`: Kafka's
//! `VerifiableProducer` and `VerifiableConsumer`, the tools Kafka's own
//! system tests drive. Each prints one JSON event per line on stdout, with
//! Kafka's event names and fields in Kafka's order, so harnesses written
//! for them (ducktape's `verifiable_producer.py`, Jepsen-style checkers)
//! read ours unchanged.
//!
//! Producer values are the decimal message number (`prefix.number` with
//! `--value-prefix`), keys cycle through `0..--repeating-keys`. The
//! consumer joins a classic group (range assignor) and reports assignments,
//! consumed ranges and commits.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::builder::TypedValueParser;
use clap::Args;
use serde::Serialize;
use tokio::sync::mpsc;
use vltava_client::group::Heartbeat;
use vltava_client::producer::DeliveryFuture;
use vltava_client::{
    Consumer, ConsumerConfig, Error, GroupConfig, GroupMember, OffsetSpec, Producer,
    ProducerConfig, ProducerRecord, TopicPartition,
};

use super::{
    connect, fail, java_exception, now_ms, read_properties, BOOTSTRAP_DEFAULT, BOOTSTRAP_ENV,
};

/// Prints one event: `timestamp` and `name` first, then its fields.
fn emit<T: Serialize>(name: &str, fields: T) {
    #[derive(Serialize)]
    struct Event<'a, T> {
        timestamp: i64,
        name: &'a str,
        #[serde(flatten)]
        fields: T,
    }
    let event = Event {
        timestamp: now_ms(),
        name,
        fields,
    };
    match serde_json::to_string(&event) {
        Ok(line) => println!("{line}"),
        Err(e) => println!("Bad data can't be written as json: {e}"),
    }
}

#[derive(Serialize)]
struct Nothing {}

/// What Java prints for an exception's class.
fn exception_class(e: &Error) -> String {
    let class = match e.kafka() {
        Some(k) => java_exception(k.code),
        None if e.is_transport() => "org.apache.kafka.common.errors.NetworkException",
        None => "org.apache.kafka.common.KafkaException",
    };
    format!("class {class}")
}

fn error_message(e: &Error) -> String {
    match e.kafka() {
        Some(k) => k.text(),
        None => e.to_string(),
    }
}

/// Acknowledgements waiting to be printed before sending waits.
const ACKS_QUEUED_MAX: usize = 10_000;

/// Produce numbered messages and print each acknowledgement as JSON
/// (Kafka's VerifiableProducer).
#[derive(Args, Debug)]
pub struct VerifiableProducerArgs {
    /// The server(s) to connect to; default $VLTAVA_BOOTSTRAP, else
    /// 127.0.0.1:9092 (the zero-config broker).
    #[arg(long, env = BOOTSTRAP_ENV, default_value = BOOTSTRAP_DEFAULT, value_name = "HOST1:PORT1[,HOST2:PORT2[...]]")]
    pub bootstrap_server: String,
    /// Produce messages to this topic.
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,
    /// Produce this many messages. If -1, produce messages until the
    /// process is killed externally.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_name = "MAX-MESSAGES")]
    pub max_messages: i64,
    /// If set >= 0, throttle maximum message throughput to *approximately*
    /// THROUGHPUT messages/sec.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_name = "THROUGHPUT")]
    pub throughput: i64,
    /// Acks required on each produced message: 0, 1 or -1.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_parser = clap::builder::PossibleValuesParser::new(["0", "1", "-1"]).map(|s| s.parse::<i16>().expect("listed values are numbers")), value_name = "ACKS")]
    pub acks: i16,
    /// Producer config properties file.
    #[arg(long = "producer.config", value_name = "CONFIG_FILE")]
    pub producer_config: Option<String>,
    /// Send messages with creation time starting at this value, in
    /// milliseconds since epoch (-1: now).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_name = "CREATETIME")]
    pub message_create_time: i64,
    /// If specified, each produced value will have this prefix with a dot
    /// separator.
    #[arg(long, value_name = "VALUE-PREFIX")]
    pub value_prefix: Option<i32>,
    /// If specified, each produced record will have a key starting at 0
    /// increment by 1 up to the number specified (exclusive), then the key
    /// is set to 0 again.
    #[arg(long, value_name = "REPEATING-KEYS")]
    pub repeating_keys: Option<u32>,
}

#[derive(Serialize)]
struct SendSuccess<'a> {
    key: Option<&'a str>,
    value: &'a str,
    topic: &'a str,
    partition: i32,
    offset: i64,
}

#[derive(Serialize)]
struct SendError<'a> {
    key: Option<&'a str>,
    value: &'a str,
    topic: &'a str,
    exception: String,
    message: String,
}

#[derive(Serialize)]
struct ToolData {
    sent: u64,
    acked: u64,
    target_throughput: i64,
    avg_throughput: f64,
}

/// The producer settings: Kafka's tool's (the given acks, no retries, so
/// idempotence off unless the config file turns it on), then the file's.
fn verifiable_producer_config(
    args: &VerifiableProducerArgs,
) -> anyhow::Result<(ProducerConfig, String)> {
    let props = match &args.producer_config {
        Some(path) => read_properties(path)?,
        None => BTreeMap::new(),
    };
    super::refuse_security_settings("--producer.config", &props)?;
    let acks = match props.get("acks") {
        Some(text) => super::acks(text)?,
        None => args.acks,
    };
    let number = |k: &str, d: u64| super::long_property(&props, k, d);
    let idempotence = super::idempotence(&props, acks, false)?;
    let compression = match props.get("compression.type") {
        Some(c) => super::compression(c)?,
        None => vltava_client::Compression::None,
    };
    let config = ProducerConfig {
        acks,
        linger: Duration::from_millis(number("linger.ms", 5)?),
        batch_size_bytes: number("batch.size", 16_384)? as usize,
        compression,
        idempotence,
        request_timeout: Duration::from_millis(number("request.timeout.ms", 30_000)?),
        retries: number("retries", if idempotence { 10 } else { 0 })? as u32,
    };
    let client_id = props
        .get("client.id")
        .cloned()
        .unwrap_or_else(|| "verifiable-producer".into());
    Ok((config, client_id))
}

pub async fn producer(args: VerifiableProducerArgs) -> anyhow::Result<()> {
    let (config, client_id) = verifiable_producer_config(&args)?;
    let mut stop = Box::pin(super::console_consumer::stop_signal()?);
    let client = connect(&args.bootstrap_server, &client_id).await?;
    let producer = match Producer::new(client, config).await {
        Ok(p) => p,
        Err(e) => return fail(format!("Error: {e}")),
    };
    let start = Instant::now();
    // Acknowledgements are printed in send order by one task, as they
    // resolve.
    // Bounded: with stdout read slowly, sending waits instead of queueing
    // acknowledgements without end.
    let (acks_tx, mut acks_rx) =
        mpsc::channel::<(Option<String>, String, DeliveryFuture)>(ACKS_QUEUED_MAX);
    let topic = args.topic.clone();
    let printer = tokio::spawn(async move {
        let mut acked = 0u64;
        while let Some((key, value, delivery)) = acks_rx.recv().await {
            let result = delivery
                .await
                .unwrap_or_else(|_| Err(Error::Invalid("the producer stopped".into())));
            match result {
                Ok(m) => {
                    acked += 1;
                    emit(
                        "producer_send_success",
                        SendSuccess {
                            key: key.as_deref(),
                            value: &value,
                            topic: &m.topic,
                            partition: m.partition,
                            offset: m.offset,
                        },
                    );
                }
                Err(e) => emit(
                    "producer_send_error",
                    SendError {
                        key: key.as_deref(),
                        value: &value,
                        topic: &topic,
                        exception: exception_class(&e),
                        message: error_message(&e),
                    },
                ),
            }
        }
        acked
    });
    emit("startup_complete", Nothing {});
    let max = if args.max_messages < 0 {
        u64::MAX
    } else {
        args.max_messages as u64
    };
    let mut create_time = (args.message_create_time >= 0).then_some(args.message_create_time);
    let mut sent = 0u64;
    let mut key_counter = 0u32;
    let sending = async {
        while sent < max {
            // As Kafka's: 0..n, then 0 again (with n = 0 it never wraps).
            let key = args.repeating_keys.map(|n| {
                let k = key_counter.to_string();
                key_counter = key_counter.wrapping_add(1);
                if key_counter == n {
                    key_counter = 0;
                }
                k
            });
            let value = match args.value_prefix {
                Some(p) => format!("{p}.{sent}"),
                None => sent.to_string(),
            };
            let mut record = ProducerRecord::new(
                &args.topic,
                key.as_deref().map(str::as_bytes),
                value.as_bytes(),
            );
            let send_started = Instant::now();
            record.timestamp_ms = create_time;
            let delivery = match producer.send(record).await {
                Ok(d) => d,
                Err(e) => {
                    emit(
                        "producer_send_error",
                        SendError {
                            key: key.as_deref(),
                            value: &value,
                            topic: &args.topic,
                            exception: exception_class(&e),
                            message: error_message(&e),
                        },
                    );
                    sent += 1;
                    continue;
                }
            };
            sent += 1;
            let _ = acks_tx.send((key, value, delivery)).await;
            if let Some(t) = create_time.as_mut() {
                *t += send_started.elapsed().as_millis() as i64;
            }
            // Kafka's throttler: a target of 0 sends nothing more.
            match args.throughput {
                0 => std::future::pending::<()>().await,
                t if t > 0 => super::perf::throttle(start, sent, t as f64).await,
                _ => {}
            }
        }
    };
    tokio::select! {
        _ = sending => {}
        _ = &mut stop => {}
    }
    // As Kafka's shutdown hook: flush what was sent, then the summary.
    producer.close().await;
    drop(acks_tx);
    let acked = printer.await.unwrap_or(0);
    emit("shutdown_complete", Nothing {});
    let elapsed_ms = start.elapsed().as_millis().max(1) as f64;
    emit(
        "tool_data",
        ToolData {
            sent,
            acked,
            target_throughput: args.throughput,
            avg_throughput: 1000.0 * acked as f64 / elapsed_ms,
        },
    );
    Ok(())
}

/// Consume in a group and print assignments, consumed ranges and commits
/// as JSON (Kafka's VerifiableConsumer).
#[derive(Args, Debug)]
pub struct VerifiableConsumerArgs {
    /// The server(s) to connect to; default $VLTAVA_BOOTSTRAP, else
    /// 127.0.0.1:9092 (the zero-config broker).
    #[arg(long, env = BOOTSTRAP_ENV, default_value = BOOTSTRAP_DEFAULT, value_name = "HOST1:PORT1[,HOST2:PORT2[...]]")]
    pub bootstrap_server: String,
    /// Consumes messages from this topic.
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,
    /// The groupId shared among members of the consumer group.
    #[arg(long, value_name = "GROUP_ID")]
    pub group_id: String,
    /// classic (the only one this tool speaks yet).
    #[arg(long, default_value = "classic", value_name = "GROUP_PROTOCOL")]
    pub group_protocol: String,
    /// A unique identifier of the consumer instance (static membership;
    /// not supported yet).
    #[arg(long, value_name = "GROUP_INSTANCE_ID")]
    pub group_instance_id: Option<String>,
    /// Consume this many messages. If -1 (the default), the consumer will
    /// consume until the process is killed externally.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_name = "MAX-MESSAGES")]
    pub max_messages: i64,
    /// Set the consumer's session timeout.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u32).range(1..=i32::MAX as i64), value_name = "TIMEOUT_MS")]
    pub session_timeout: u32,
    /// Enable to log individual consumed records.
    #[arg(long)]
    pub verbose: bool,
    /// Enable offset auto-commit on consumer.
    #[arg(long)]
    pub enable_autocommit: bool,
    /// Set reset policy (must be either 'earliest', 'latest', or 'none').
    #[arg(long, default_value = "earliest")]
    pub reset_policy: String,
    /// Set assignment strategy; only Kafka's RangeAssignor is implemented.
    #[arg(
        long,
        default_value = "org.apache.kafka.clients.consumer.RangeAssignor"
    )]
    pub assignment_strategy: String,
    /// Consumer config properties file.
    #[arg(long = "consumer.config", value_name = "CONFIG_FILE")]
    pub consumer_config: Option<String>,
}

#[derive(Serialize)]
struct PartitionData<'a> {
    topic: &'a str,
    partition: i32,
}

#[derive(Serialize)]
struct Partitions<'a> {
    partitions: Vec<PartitionData<'a>>,
}

fn partitions(tps: &[TopicPartition]) -> Partitions<'_> {
    Partitions {
        partitions: tps
            .iter()
            .map(|(topic, partition)| PartitionData {
                topic,
                partition: *partition,
            })
            .collect(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordSetSummary<'a> {
    topic: &'a str,
    partition: i32,
    count: u64,
    min_offset: i64,
    max_offset: i64,
}

#[derive(Serialize)]
struct RecordsConsumed<'a> {
    count: usize,
    partitions: Vec<RecordSetSummary<'a>>,
}

#[derive(Serialize)]
struct RecordData<'a> {
    key: Option<String>,
    value: Option<String>,
    topic: &'a str,
    partition: i32,
    offset: i64,
}

#[derive(Serialize)]
struct CommitData<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
}

#[derive(Serialize)]
struct OffsetsCommitted<'a> {
    offsets: Vec<CommitData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    success: bool,
}

/// How often auto-commit commits (`auto.commit.interval.ms`).
const AUTO_COMMIT_INTERVAL: Duration = Duration::from_secs(5);

fn check_consumer_args(args: &VerifiableConsumerArgs) -> anyhow::Result<Option<OffsetSpec>> {
    if !args.group_protocol.eq_ignore_ascii_case("classic") {
        return fail(format!(
            "Error: --group-protocol {} is not supported by this tool yet; it joins groups with the classic protocol",
            args.group_protocol
        ));
    }
    if args.group_instance_id.is_some() {
        return fail(
            "Error: --group-instance-id (static membership) is not supported by this tool yet",
        );
    }
    let strategy = args.assignment_strategy.rsplit('.').next().unwrap_or("");
    if strategy != "RangeAssignor" {
        return fail(format!(
            "Error: --assignment-strategy {} is not supported; this tool assigns with Kafka's RangeAssignor",
            args.assignment_strategy
        ));
    }
    Ok(match args.reset_policy.as_str() {
        "earliest" => Some(OffsetSpec::Earliest),
        "latest" => Some(OffsetSpec::Latest),
        "none" => None,
        other => {
            return fail(format!(
                "Invalid value {other} for configuration auto.offset.reset: String must be one of: latest, earliest, none"
            ))
        }
    })
}

pub async fn consumer(args: VerifiableConsumerArgs) -> anyhow::Result<()> {
    let reset = check_consumer_args(&args)?;
    let props = match &args.consumer_config {
        Some(path) => read_properties(path)?,
        None => BTreeMap::new(),
    };
    super::refuse_security_settings("--consumer.config", &props)?;
    let client_id = props
        .get("client.id")
        .cloned()
        .unwrap_or_else(|| "verifiable-consumer".into());
    let mut stop = Box::pin(super::console_consumer::stop_signal()?);
    let client = connect(&args.bootstrap_server, &client_id).await?;
    let config = ConsumerConfig {
        auto_offset_reset: reset.unwrap_or(OffsetSpec::Latest),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client.clone(), config);
    let mut group = GroupConfig::new(&args.group_id);
    group.session_timeout = Duration::from_millis(u64::from(args.session_timeout));
    let mut member = GroupMember::new(client, group, vec![args.topic.clone()]);
    emit("startup_complete", Nothing {});
    let mut consumed: u64 = 0;
    let mut positions: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    let result = tokio::select! {
        r = consume(&args, reset.is_none(), &mut member, &mut consumer, &mut consumed, &mut positions) => r,
        _ = &mut stop => Ok(()),
    };
    if let Err(e) = &result {
        // Kafka's tool logs the error and still closes and says so.
        let shown = match e.downcast_ref::<Error>().and_then(Error::kafka) {
            Some(k) => format!("{}: {}", java_exception(k.code), k.text()),
            None => e.to_string(),
        };
        eprintln!("Error during processing, terminating consumer process: {shown}");
    }
    // Closing: auto-commit commits what was consumed, then the member leaves.
    let close = async {
        if args.enable_autocommit && !positions.is_empty() {
            let _ = member.commit(&positions).await;
        }
        let _ = member.leave().await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), close).await;
    emit("shutdown_complete", Nothing {});
    Ok(())
}

/// Joins, then polls until `--max-messages`; every poll with records is one
/// records_consumed event and, without auto-commit, one synchronous commit.
async fn consume(
    args: &VerifiableConsumerArgs,
    reset_none: bool,
    member: &mut GroupMember,
    consumer: &mut Consumer,
    consumed: &mut u64,
    positions: &mut BTreeMap<TopicPartition, i64>,
) -> anyhow::Result<()> {
    let limit = (args.max_messages >= 0).then_some(args.max_messages as u64);
    rejoin(member, consumer, reset_none, None).await?;
    let mut last_auto_commit = Instant::now();
    while limit.is_none_or(|m| *consumed < m) {
        let records = consumer.poll().await?;
        if !records.is_empty() {
            let count = records.len();
            let mut by_partition: BTreeMap<TopicPartition, Vec<&vltava_client::ConsumerRecord>> =
                BTreeMap::new();
            for r in &records {
                by_partition
                    .entry((r.topic.clone(), r.partition))
                    .or_default()
                    .push(r);
            }
            let mut summaries = Vec::new();
            let mut offsets = BTreeMap::new();
            for ((topic, partition), mut list) in by_partition {
                if let Some(m) = limit {
                    list.truncate((m - *consumed) as usize);
                }
                let (Some(first), Some(last)) = (list.first(), list.last()) else {
                    continue;
                };
                offsets.insert((topic.clone(), partition), last.offset + 1);
                summaries.push((
                    topic,
                    partition,
                    list.len() as u64,
                    first.offset,
                    last.offset,
                ));
                if args.verbose {
                    for r in &list {
                        emit(
                            "record_data",
                            RecordData {
                                key: r
                                    .key
                                    .as_ref()
                                    .map(|k| String::from_utf8_lossy(k).into_owned()),
                                value: r
                                    .value
                                    .as_ref()
                                    .map(|v| String::from_utf8_lossy(v).into_owned()),
                                topic: &r.topic,
                                partition: r.partition,
                                offset: r.offset,
                            },
                        );
                    }
                }
                *consumed += list.len() as u64;
                if limit.is_some_and(|m| *consumed >= m) {
                    break;
                }
            }
            emit(
                "records_consumed",
                RecordsConsumed {
                    count,
                    partitions: summaries
                        .iter()
                        .map(|(topic, partition, count, min, max)| RecordSetSummary {
                            topic,
                            partition: *partition,
                            count: *count,
                            min_offset: *min,
                            max_offset: *max,
                        })
                        .collect(),
                },
            );
            positions.extend(offsets.clone());
            if !args.enable_autocommit {
                commit_and_report(member, &offsets).await;
            }
        }
        if args.enable_autocommit && last_auto_commit.elapsed() >= AUTO_COMMIT_INTERVAL {
            let _ = member.commit(positions).await;
            last_auto_commit = Instant::now();
        }
        if member.heartbeat_if_due().await? == Heartbeat::Rejoin {
            if args.enable_autocommit {
                let _ = member.commit(positions).await;
            }
            let revoked = consumer.assignment();
            rejoin(member, consumer, reset_none, Some(&revoked)).await?;
            positions.retain(|tp, _| consumer.assignment().contains(tp));
        }
    }
    Ok(())
}

async fn commit_and_report(member: &mut GroupMember, offsets: &BTreeMap<TopicPartition, i64>) {
    let result = member.commit(offsets).await;
    emit(
        "offsets_committed",
        OffsetsCommitted {
            offsets: offsets
                .iter()
                .map(|((topic, partition), offset)| CommitData {
                    topic,
                    partition: *partition,
                    offset: *offset,
                })
                .collect(),
            error: result.as_ref().err().map(error_message),
            success: result.is_ok(),
        },
    );
}

/// A rebalance as the eager protocol sees it: everything held is revoked,
/// then the new assignment arrives; positions come from committed offsets
/// (or the reset policy; with `none`, a partition without one stops the
/// consumer as Kafka's does).
async fn rejoin(
    member: &mut GroupMember,
    consumer: &mut Consumer,
    reset_none: bool,
    revoked: Option<&[TopicPartition]>,
) -> anyhow::Result<()> {
    if let Some(revoked) = revoked {
        emit("partitions_revoked", partitions(revoked));
    }
    let assignment = member.join().await?;
    consumer.assign(assignment.clone());
    emit("partitions_assigned", partitions(&assignment));
    let committed = member.committed(&assignment).await?;
    if reset_none {
        let missing: Vec<String> = assignment
            .iter()
            .filter(|tp| !committed.contains_key(*tp))
            .map(|(t, p)| format!("{t}-{p}"))
            .collect();
        if !missing.is_empty() {
            return fail(format!(
                "org.apache.kafka.clients.consumer.NoOffsetForPartitionException: Undefined offset with no reset policy for partitions: [{}]",
                missing.join(", ")
            ));
        }
    }
    for (tp, offset) in committed {
        consumer.seek(&tp, offset);
    }
    Ok(())
}
