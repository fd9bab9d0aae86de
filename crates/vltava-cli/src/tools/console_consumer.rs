//! `vltava console-consumer`: `kafka-console-consumer.sh`, printing records
//! with Kafka's `DefaultMessageFormatter` rules.
//!
//! Without `--group` the consumer assigns itself every partition (or the one
//! `--partition`) and commits nothing; with `--group` it joins the group
//! (classic protocol, range assignor), starts from the committed offsets and
//! commits what it printed every `auto.commit.interval.ms` and on exit.

use super::{BOOTSTRAP_DEFAULT, BOOTSTRAP_ENV};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use clap::Args;
use vltava_client::consumer::IsolationLevel;
use vltava_client::group::Heartbeat;
use vltava_client::{
    Consumer, ConsumerConfig, GroupConfig, GroupMember, OffsetSpec, TopicPartition,
};

use super::formatter::MessageFormatter;
use super::{connect, fail, parse_pairs, read_properties};

/// Read records and print them to stdout (kafka-console-consumer.sh).
#[derive(Args, Debug)]
pub struct ConsoleConsumerArgs {
    /// The server(s) to connect to (host:port[,host:port]); default $VLTAVA_BOOTSTRAP, else 127.0.0.1:9092 (the
    /// zero-config broker).
    #[arg(long, env = BOOTSTRAP_ENV, default_value = BOOTSTRAP_DEFAULT, value_name = "String: server to connect to")]
    pub bootstrap_server: String,
    /// The topic to consume on.
    #[arg(long, value_name = "String: topic")]
    pub topic: Option<String>,
    /// A regular expression (matched whole) for the topics to consume,
    /// instead of --topic; internal topics are left out. Matched once, when
    /// the consumer starts.
    #[arg(long, value_name = "String: Java regex (String)")]
    pub include: Option<String>,
    /// The consumer group id of the consumer.
    #[arg(long, value_name = "String: consumer group id")]
    pub group: Option<String>,
    /// The partition to consume from; all partitions when absent.
    #[arg(long, value_name = "Integer: partition")]
    pub partition: Option<i32>,
    /// The offset to start from: a non-negative number, 'earliest' or 'latest' (default).
    #[arg(long, value_name = "String: consume offset")]
    pub offset: Option<String>,
    /// Start with the earliest message present if the consumer has no committed offset.
    #[arg(long)]
    pub from_beginning: bool,
    /// Exit after this many messages.
    #[arg(long, value_name = "Integer: num_messages")]
    pub max_messages: Option<u64>,
    /// Exit if no message is available for this long (ms).
    #[arg(long, value_name = "Integer: timeout_ms")]
    pub timeout_ms: Option<u64>,
    /// Formatter properties: print.key, print.value, print.partition,
    /// print.offset, print.timestamp, print.headers, print.epoch,
    /// print.delivery, key.separator, line.separator, headers.separator,
    /// null.literal, key.deserializer, value.deserializer,
    /// headers.deserializer; with a schema formatter schema.registry.url,
    /// print.schema.ids, schema.id.separator (repeatable).
    #[arg(long = "property", value_name = "String: prop")]
    pub properties: Vec<String>,
    /// The formatter: kafka.tools.DefaultMessageFormatter (default),
    /// kafka.tools.LoggingMessageFormatter, kafka.tools.NoOpMessageFormatter
    /// (Kafka's class names, any package), json (one object per record), or
    /// io.confluent.kafka.formatter.AvroMessageFormatter,
    /// JsonSchemaMessageFormatter, ProtobufMessageFormatter (decode through
    /// schema.registry.url).
    #[arg(long, value_name = "String: class")]
    pub formatter: Option<String>,
    /// A properties file for the formatter; --property wins over it.
    #[arg(long, value_name = "String: config file")]
    pub formatter_config: Option<String>,
    /// The key.deserializer for printing keys (e.g.
    /// org.apache.kafka.common.serialization.LongDeserializer).
    #[arg(long, value_name = "String: deserializer for key")]
    pub key_deserializer: Option<String>,
    /// The value.deserializer for printing values.
    #[arg(long, value_name = "String: deserializer for values")]
    pub value_deserializer: Option<String>,
    /// A consumer config as key=value: auto.offset.reset, client.id,
    /// enable.auto.commit, auto.commit.interval.ms, fetch.max.wait.ms (repeatable).
    #[arg(long = "consumer-property", value_name = "String: consumer_prop")]
    pub consumer_properties: Vec<String>,
    /// Consumer config properties file.
    #[arg(long = "consumer.config", value_name = "String: config file")]
    pub consumer_config: Option<String>,
    /// read_committed or read_uncommitted (default).
    #[arg(long, default_value = "read_uncommitted", value_name = "String")]
    pub isolation_level: String,
    /// Skip a message that cannot be printed instead of stopping.
    #[arg(long)]
    pub skip_message_on_error: bool,
}

struct Settings {
    consumer: ConsumerConfig,
    client_id: String,
    auto_commit: bool,
    auto_commit_interval: Duration,
}

fn settings(args: &ConsoleConsumerArgs) -> anyhow::Result<Settings> {
    let mut props = match &args.consumer_config {
        Some(path) => read_properties(path)?,
        None => BTreeMap::new(),
    };
    props.extend(parse_pairs(
        "--consumer-property",
        &args.consumer_properties,
    )?);
    super::refuse_security_settings("--consumer.config or --consumer-property", &props)?;
    let auto_offset_reset = match props.get("auto.offset.reset").map(|s| s.trim()) {
        _ if args.from_beginning => OffsetSpec::Earliest,
        Some("earliest") => OffsetSpec::Earliest,
        Some("latest") | None => OffsetSpec::Latest,
        Some(other) => return fail(format!("Invalid value {other} for configuration auto.offset.reset: String must be one of: latest, earliest, none")),
    };
    let isolation_level = match args.isolation_level.as_str() {
        "read_committed" => IsolationLevel::ReadCommitted,
        "read_uncommitted" => IsolationLevel::ReadUncommitted,
        other => return fail(format!("Invalid value {other} for configuration isolation.level: String must be one of: read_committed, read_uncommitted")),
    };
    let ms = |k: &str, d: u64| -> anyhow::Result<u64> {
        match props.get(k) {
            Some(v) => v.trim().parse().or_else(|_| {
                fail(format!(
                    "Invalid value {v} for configuration {k}: Not a number of type INT"
                ))
            }),
            None => Ok(d),
        }
    };
    let consumer = ConsumerConfig {
        auto_offset_reset,
        isolation_level,
        fetch_max_wait: Duration::from_millis(ms("fetch.max.wait.ms", 500)?),
        ..ConsumerConfig::default()
    };
    Ok(Settings {
        consumer,
        client_id: props
            .get("client.id")
            .cloned()
            .unwrap_or_else(|| "console-consumer".into()),
        auto_commit: props
            .get("enable.auto.commit")
            .is_none_or(|v| v.trim() == "true"),
        auto_commit_interval: Duration::from_millis(ms("auto.commit.interval.ms", 5000)?),
    })
}

/// The formatter's properties: `--formatter-config`, then
/// `--key-deserializer`/`--value-deserializer`, then `--property` (the
/// order in which Kafka's tool lets each win).
fn formatter(args: &ConsoleConsumerArgs) -> anyhow::Result<MessageFormatter> {
    let mut props = match &args.formatter_config {
        Some(path) => read_properties(path)?,
        None => BTreeMap::new(),
    };
    if let Some(d) = &args.key_deserializer {
        props.insert("key.deserializer".into(), d.clone());
    }
    if let Some(d) = &args.value_deserializer {
        props.insert("value.deserializer".into(), d.clone());
    }
    props.extend(parse_pairs("--property", &args.properties)?);
    MessageFormatter::new(args.formatter.as_deref(), &props)
}

fn check_args(args: &ConsoleConsumerArgs) -> anyhow::Result<Option<OffsetSpecOrExact>> {
    if args.topic.is_some() == args.include.is_some() {
        return fail("Exactly one of --include/--topic is required. ");
    }
    if args.partition.is_some() && args.topic.is_none() {
        return fail("The topic is required when partition is specified.");
    }
    if args.group.is_some() && args.partition.is_some() {
        return fail("Options group and partition cannot be specified together.");
    }
    if args.offset.is_some() && args.partition.is_none() {
        return fail("The partition is required when offset is specified.");
    }
    if args.offset.is_some() && args.from_beginning {
        return fail("Options from-beginning and offset cannot be specified together.");
    }
    Ok(match args.offset.as_deref() {
        None => None,
        Some("earliest") => Some(OffsetSpecOrExact::Spec(OffsetSpec::Earliest)),
        Some("latest") => Some(OffsetSpecOrExact::Spec(OffsetSpec::Latest)),
        Some(n) => match n.parse::<i64>() {
            Ok(o) if o >= 0 => Some(OffsetSpecOrExact::Exact(o)),
            _ => return fail(format!("The provided offset value '{n}' is incorrect. Valid values are 'earliest', 'latest', or a non-negative long.")),
        },
    })
}

enum OffsetSpecOrExact {
    Spec(OffsetSpec),
    Exact(i64),
}

/// How long shutdown may spend committing and leaving the group after a
/// signal or the last record, so a broker that stopped answering cannot keep
/// Ctrl-C from ending the process.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(5);

/// What has been printed: the count for "Processed a total of N messages"
/// and, per partition, the next offset to commit.
#[derive(Default)]
struct Progress {
    /// Set once connected and assigned. A failure before that (an
    /// unreachable broker, a failed join) is reported alone, without the
    /// Processed line; a signal is reported with it at any point.
    consuming: bool,
    count: u64,
    printed: BTreeMap<TopicPartition, i64>,
}

pub async fn run(args: ConsoleConsumerArgs) -> anyhow::Result<()> {
    let start = check_args(&args)?;
    let formatter = formatter(&args)?;
    let settings = settings(&args)?;
    // Registered before the first await: until then SIGINT/SIGTERM would
    // end the process at once, without the Processed line or LeaveGroup.
    let mut stop = Box::pin(stop_signal()?);
    let mut member: Option<GroupMember> = None;
    let mut progress = Progress::default();
    // A signal at any point, even while connecting or joining the group,
    // ends in the same shutdown below. Cancelling a request mid-flight is
    // safe: the client never reuses a connection left mid-exchange.
    let (result, signalled) = tokio::select! {
        biased;
        _ = &mut stop => (Ok(()), true),
        r = consume(&args, start, &settings, &formatter, &mut member, &mut progress) => (r, false),
    };
    if let Some(m) = member.as_mut() {
        leave_group(m, &progress, settings.auto_commit).await;
    }
    if signalled || progress.consuming {
        eprintln!("Processed a total of {} messages", progress.count);
    }
    result
}

/// Commits what was printed (when auto-committing) and leaves the group,
/// within [`SHUTDOWN_PATIENCE`]. A member that never got a member id has
/// nothing to leave; one that got an id but not yet an assignment leaves so
/// the group does not wait a session timeout for it.
async fn leave_group(member: &mut GroupMember, progress: &Progress, auto_commit: bool) {
    let shutdown = async {
        if auto_commit {
            if let Err(e) = member.commit(&progress.printed).await {
                eprintln!("Error: committing offsets failed: {e}");
            }
        }
        if let Err(e) = member.leave().await {
            eprintln!("Error: leaving group {} failed: {e}", member.group_id());
        }
    };
    if tokio::time::timeout(SHUTDOWN_PATIENCE, shutdown)
        .await
        .is_err()
    {
        eprintln!(
            "Error: committing offsets and leaving the group did not finish within {} ms",
            SHUTDOWN_PATIENCE.as_millis()
        );
    }
}

/// Connects, joins the group or assigns partitions, and prints records until
/// `--max-messages` or `--timeout-ms` ends it (a signal cancels it). The
/// member is put in `member` as soon as it exists, so the caller can make it
/// leave whenever this stops.
async fn consume(
    args: &ConsoleConsumerArgs,
    start: Option<OffsetSpecOrExact>,
    settings: &Settings,
    formatter: &MessageFormatter,
    member: &mut Option<GroupMember>,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap_server, &settings.client_id).await?;
    let mut consumer = Consumer::new(client.clone(), settings.consumer.clone());
    let topics = match (&args.topic, &args.include) {
        (Some(topic), _) => vec![topic.clone()],
        (None, Some(pattern)) => included_topics(&client, pattern).await?,
        (None, None) => unreachable!("check_args requires --topic or --include"),
    };
    match (&args.group, args.partition) {
        (Some(group), _) => {
            let m = member.insert(GroupMember::new(client, GroupConfig::new(group), topics));
            rejoin(m, &mut consumer).await?;
        }
        (None, Some(p)) => assign_partition(&client, &mut consumer, &topics[0], p, start).await?,
        (None, None) => {
            for topic in &topics {
                if let Err(e) = consumer.assign_topic(topic).await {
                    return fail(format!("Error: {e}"));
                }
            }
        }
    }
    progress.consuming = true;
    let mut out = std::io::stdout().lock();
    let mut last_record = Instant::now();
    let mut last_commit = Instant::now();
    let result = async {
        loop {
            if args.max_messages.is_some_and(|m| progress.count >= m) {
                return Ok(());
            }
            if args.timeout_ms.is_some_and(|t| last_record.elapsed() >= Duration::from_millis(t)) {
                eprintln!("Error processing message, terminating consumer process:  org.apache.kafka.common.errors.TimeoutException");
                return Ok(());
            }
            let records = match consumer.poll().await {
                Ok(r) => r,
                Err(e) => return fail(format!("Error: {e}")),
            };
            formatter.prepare(&records).await;
            // No await from here to the flush: a signal cancels this
            // future only at an await, so the count always matches what
            // was written.
            for r in records {
                if args.max_messages.is_some_and(|m| progress.count >= m) {
                    break;
                }
                match formatter.write(&r) {
                    Ok(bytes) => out.write_all(&bytes)?,
                    Err(e) if args.skip_message_on_error => {
                        eprintln!("Error processing message, skipping this message: org.apache.kafka.common.errors.SerializationException: {e}");
                    }
                    Err(e) => {
                        out.flush()?;
                        return fail(format!("Error processing message, terminating consumer process: org.apache.kafka.common.errors.SerializationException: {e}"));
                    }
                }
                progress.count += 1;
                progress.printed.insert((r.topic.clone(), r.partition), r.offset + 1);
                last_record = Instant::now();
            }
            out.flush()?;
            if let Some(m) = member.as_mut() {
                if settings.auto_commit && last_commit.elapsed() >= settings.auto_commit_interval {
                    let _ = m.commit(&progress.printed).await;
                    last_commit = Instant::now();
                }
                if m.heartbeat_if_due().await? == Heartbeat::Rejoin {
                    if settings.auto_commit {
                        let _ = m.commit(&progress.printed).await;
                    }
                    rejoin(m, &mut consumer).await?;
                    progress.printed.retain(|tp, _| consumer.assignment().contains(tp));
                }
            }
        }
    }
    .await;
    out.flush()?;
    result
}

/// The topics `--include` matches (whole names), internal ones left out as
/// a consumer's `exclude.internal.topics` does.
async fn included_topics(
    client: &vltava_client::Client,
    pattern: &str,
) -> anyhow::Result<Vec<String>> {
    let regex = super::include_list(pattern, "--include")?;
    let topics = client
        .metadata(None, false)
        .await
        .or_else(|e| fail(format!("Error: {e}")))?;
    let mut names: Vec<String> = topics
        .into_iter()
        .filter(|t| t.error_code == 0 && !t.is_internal && regex.is_match(&t.name))
        .map(|t| t.name)
        .collect();
    names.sort();
    if names.is_empty() {
        return fail(format!("Error: no topic matches --include {pattern}"));
    }
    Ok(names)
}

/// `--partition` (and `--offset`): assigns that one partition after checking
/// it exists.
async fn assign_partition(
    client: &vltava_client::Client,
    consumer: &mut Consumer,
    topic: &str,
    partition: i32,
    start: Option<OffsetSpecOrExact>,
) -> anyhow::Result<()> {
    let tp = (topic.to_string(), partition);
    let info = client
        .topic(topic, false)
        .await
        .or_else(|e| fail(format!("Error: {e}")))?;
    if !info.partitions.iter().any(|x| x.partition == partition) {
        return fail(format!(
            "Error: partition {partition} of topic {topic} does not exist"
        ));
    }
    consumer.assign(vec![tp.clone()]);
    match start {
        Some(OffsetSpecOrExact::Exact(o)) => consumer.seek(&tp, o),
        Some(OffsetSpecOrExact::Spec(s)) => consumer.seek_to(&tp, s),
        None => {}
    }
    Ok(())
}

/// Joins the group and positions the consumer at the committed offsets
/// (else `auto.offset.reset`).
async fn rejoin(member: &mut GroupMember, consumer: &mut Consumer) -> anyhow::Result<()> {
    let assignment = match member.join().await {
        Ok(a) => a,
        Err(e) => {
            return fail(format!(
                "Error: joining group {} failed: {e}",
                member.group_id()
            ))
        }
    };
    consumer.assign(assignment.clone());
    let committed = member
        .committed(&assignment)
        .await
        .or_else(|e| fail(format!("Error: fetching committed offsets failed: {e}")))?;
    for (tp, offset) in committed {
        consumer.seek(&tp, offset);
    }
    Ok(())
}

/// Resolves at the first SIGINT or SIGTERM. The handlers are installed
/// here, when it is called, not when the future is first polled.
pub(super) fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
