//! The clients: idempotent acks=all producers writing unique values,
//! consumers polling throughout (in a group, and with assigned
//! partitions), and the final read. Everything they see goes into one
//! [`History`] for the checker.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::checker::{Ack, Read};

/// What the clients saw.
#[derive(Default)]
pub struct History {
    pub acks: Mutex<Vec<Ack>>,
    pub reads: Mutex<Vec<Read>>,
    /// Every value handed to a producer.
    pub sent: Mutex<BTreeSet<String>>,
    /// Deliveries that failed (indeterminate: the write may still exist).
    pub failed: AtomicU64,
    /// Producers re-created after a fatal error.
    pub producer_restarts: AtomicU64,
    /// Where librdkafka's idempotence log lines go (kept with the nodes'
    /// logs when a run fails): how each producer saw the faults.
    pub client_log: Mutex<Option<std::fs::File>>,
}

/// Client settings that let librdkafka notice a failover within seconds.
fn base_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "5000")
        .set("socket.connection.setup.timeout.ms", "3000")
        .set("reconnect.backoff.max.ms", "1000")
        .set("topic.metadata.refresh.interval.ms", "2000")
        .set("metadata.max.age.ms", "6000")
        .set("log_level", "3");
    config
}

struct Delivery {
    history: Arc<History>,
    producer: String,
}

impl ClientContext for Delivery {
    /// librdkafka's own log lines, printed when `VLTAVA_FAULT_DEBUG` is
    /// set (with `debug=eos,msg` on the producers): how a producer saw
    /// the faults.
    fn log(&self, _: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        use std::io::Write;
        if std::env::var_os("VLTAVA_FAULT_DEBUG").is_some() {
            eprintln!("[rdkafka {}] {facility}: {message}", self.producer);
        }
        if let Some(file) = self.history.client_log.lock().unwrap().as_mut() {
            let _ = writeln!(file, "{} {facility}: {message}", self.producer);
        }
    }
}

impl ProducerContext for Delivery {
    type DeliveryOpaque = Box<(u64, String)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (seq, value) = *opaque;
        match result {
            Ok(message) => self.history.acks.lock().unwrap().push(Ack {
                producer: self.producer.clone(),
                seq,
                partition: message.partition(),
                offset: message.offset(),
                value,
            }),
            Err(_) => {
                self.history.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Writes `name-<incarnation>-<seq>` values round-robin over the
/// partitions, one every `interval`, until `stop`; a producer that hits a
/// fatal error is replaced by a new incarnation.
pub fn produce(
    history: Arc<History>,
    bootstrap: String,
    topic: String,
    partitions: i32,
    name: String,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let mut incarnation = 0;
    while !stop.load(Ordering::Relaxed) {
        incarnation += 1;
        let label = format!("{name}-{incarnation}");
        let mut config = base_config(&bootstrap);
        // Idempotence decisions (epoch bumps, sequence errors) always go to
        // the client log; every message and request only when asked.
        let debug = match std::env::var_os("VLTAVA_FAULT_DEBUG") {
            Some(_) => "eos,msg,protocol",
            None => "eos",
        };
        config
            .set("debug", debug)
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
        let producer: ThreadedProducer<Delivery> = config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            // Kafka's delivery.timeout.ms default. With a short timeout,
            // overlapping faults keep a partition unwritable longer than it;
            // librdkafka then bumps its epoch and sends again, under new
            // sequence numbers, what it had queued for retry after a
            // "possibly persisted" answer: duplicates made by the client
            // (the 600 s run of seed 7 at 20 s: 10,849 timeouts, 4,984
            // duplicates), as it would against Kafka.
            .set("message.timeout.ms", "120000")
            .set("request.timeout.ms", "5000")
            .set("retry.backoff.ms", "100")
            .create_with_context(Delivery {
                history: history.clone(),
                producer: label.clone(),
            })?;
        let mut seq = 0u64;
        while !stop.load(Ordering::Relaxed) {
            if producer.client().fatal_error().is_some() {
                history.producer_restarts.fetch_add(1, Ordering::Relaxed);
                break;
            }
            let value = format!("{label}-{seq}");
            let partition = (seq % partitions as u64) as i32;
            history.sent.lock().unwrap().insert(value.clone());
            let mut record = BaseRecord::with_opaque_to(&topic, Box::new((seq, value.clone())))
                .partition(partition)
                .payload(value.as_bytes());
            loop {
                match producer.send::<(), [u8]>(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(_), back))
                        if !stop.load(Ordering::Relaxed) =>
                    {
                        // Queue full: wait for deliveries.
                        std::thread::sleep(Duration::from_millis(50));
                        record = back;
                    }
                    Err(_) => break,
                }
            }
            seq += 1;
            std::thread::sleep(interval);
        }
        // Whatever is still queued is delivered or times out.
        let _ = producer.flush(Duration::from_secs(130));
    }
    Ok(())
}

struct Rebalances {
    generation: Arc<AtomicU64>,
}

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls until `stop`, recording every record. With `group`, the consumer
/// subscribes in that group (committing automatically); without, it is
/// assigned every partition from the start.
pub fn consume(
    history: Arc<History>,
    bootstrap: String,
    topic: String,
    partitions: i32,
    name: String,
    group: Option<String>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let generation = Arc::new(AtomicU64::new(0));
    let consumer: BaseConsumer<Rebalances> = base_config(&bootstrap)
        .set(
            "group.id",
            group.as_deref().unwrap_or(&format!("{name}-unused")),
        )
        .set(
            "enable.auto.commit",
            if group.is_some() { "true" } else { "false" },
        )
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .create_with_context(Rebalances {
            generation: generation.clone(),
        })?;
    match group {
        Some(_) => consumer.subscribe(&[&topic])?,
        None => consumer.assign(&all_from_start(&topic, partitions)?)?,
    }
    while !stop.load(Ordering::Relaxed) {
        // Errors (a broker gone, a leader moving) are what the faults are
        // for; librdkafka retries.
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            let value = String::from_utf8_lossy(message.payload().unwrap_or_default());
            history.reads.lock().unwrap().push(Read {
                consumer: name.clone(),
                generation: generation.load(Ordering::SeqCst),
                partition: message.partition(),
                offset: message.offset(),
                value: value.into_owned(),
            });
        }
    }
    Ok(())
}

fn all_from_start(topic: &str, partitions: i32) -> Result<TopicPartitionList> {
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    Ok(list)
}

/// How long the cluster may take to take acks=all writes on every
/// partition again once every fault is healed.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(60);

/// Writes one record to each partition (acks=all), retrying until all are
/// acknowledged; returns how long after `healed` that was, failing past
/// [`LIVENESS_BOUND`] from it.
pub fn probe_liveness(
    history: &Arc<History>,
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    healed: Instant,
) -> Result<Duration> {
    let producer: ThreadedProducer<Delivery> = base_config(bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "5000")
        .create_with_context(Delivery {
            history: history.clone(),
            producer: "probe".into(),
        })?;
    let mut seq = 0u64;
    let mut pending: BTreeSet<i32> = (0..partitions).collect();
    while !pending.is_empty() {
        if healed.elapsed() > LIVENESS_BOUND {
            bail!("partitions {pending:?} took no acks=all write within {LIVENESS_BOUND:?} of the heal");
        }
        for &p in &pending {
            let value = format!("probe-{seq}");
            history.sent.lock().unwrap().insert(value.clone());
            let record = BaseRecord::with_opaque_to(topic, Box::new((seq, value.clone())))
                .partition(p)
                .payload(value.as_bytes());
            let _ = producer.send::<(), [u8]>(record);
            seq += 1;
        }
        let _ = producer.flush(Duration::from_secs(6));
        let acks = history.acks.lock().unwrap();
        pending.retain(|p| {
            !acks
                .iter()
                .any(|a| a.producer == "probe" && a.partition == *p)
        });
    }
    Ok(healed.elapsed())
}

/// Reads every partition from the start to its high watermark; returns the
/// high watermarks.
pub fn final_read(
    history: &Arc<History>,
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> Result<BTreeMap<i32, i64>> {
    let consumer: BaseConsumer = base_config(bootstrap)
        .set("group.id", "fault-final-read")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()?;
    let mut high = BTreeMap::new();
    for p in 0..partitions {
        let (_, hw) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        high.insert(p, hw);
    }
    consumer.assign(&all_from_start(topic, partitions)?)?;
    let mut next: BTreeMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while next.iter().any(|(p, n)| *n < high[p]) {
        if Instant::now() > deadline {
            bail!("the final read did not reach the high watermarks {high:?}: at {next:?}");
        }
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let value = String::from_utf8_lossy(message.payload().unwrap_or_default());
            history.reads.lock().unwrap().push(Read {
                consumer: "final".into(),
                generation: 0,
                partition: message.partition(),
                offset: message.offset(),
                value: value.into_owned(),
            });
            next.insert(message.partition(), message.offset() + 1);
        }
    }
    Ok(high)
}
