//! `vltava console-producer`: `kafka-console-producer.sh`. Each stdin line
//! is one record, parsed like Kafka's `LineMessageReader` (`parse.key`,
//! `key.separator`, `parse.headers`, `headers.delimiter`,
//! `headers.separator`, `headers.key.separator`, `null.marker`,
//! `ignore.error`). The `>` prompt is printed before each line only when
//! stdin is a terminal, as Kafka's does.

use super::{BOOTSTRAP_DEFAULT, BOOTSTRAP_ENV};
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use tokio::sync::mpsc;
use vltava_client::{Producer, ProducerConfig, ProducerRecord};

use super::{connect, fail, parse_pairs, read_properties};

/// Read lines from stdin and produce them as records (kafka-console-producer.sh).
#[derive(Args, Debug)]
pub struct ConsoleProducerArgs {
    /// The server(s) to connect to (host:port[,host:port]); default $VLTAVA_BOOTSTRAP, else 127.0.0.1:9092 (the
    /// zero-config broker).
    #[arg(long, env = BOOTSTRAP_ENV, default_value = BOOTSTRAP_DEFAULT, value_name = "String: server to connect to")]
    pub bootstrap_server: String,
    /// REQUIRED: The topic id to produce messages to.
    #[arg(long, value_name = "String: topic")]
    pub topic: String,
    /// Message reader properties: parse.key, key.separator, parse.headers,
    /// headers.delimiter, headers.separator, headers.key.separator,
    /// null.marker, ignore.error (repeatable).
    #[arg(long = "property", value_name = "String: prop")]
    pub properties: Vec<String>,
    /// A properties file of message reader settings (the --property
    /// names); --property wins over it.
    #[arg(long, value_name = "String: config file")]
    pub reader_config: Option<String>,
    /// A producer config as key=value: acks, linger.ms, batch.size,
    /// compression.type, enable.idempotence, client.id (repeatable).
    #[arg(long = "producer-property", value_name = "String: producer_prop")]
    pub producer_properties: Vec<String>,
    /// Producer config properties file.
    #[arg(long = "producer.config", value_name = "String: config file")]
    pub producer_config: Option<String>,
    /// The required acks of the producer requests.
    #[arg(
        long,
        default_value = "-1",
        value_name = "String: request required acks"
    )]
    pub request_required_acks: String,
    /// none, gzip, snappy, lz4 or zstd; gzip if given without a value.
    #[arg(long, num_args = 0..=1, default_missing_value = "gzip", value_name = "String: compression-codec")]
    pub compression_codec: Option<String>,
    /// Messages are sent synchronously, one at a time as they arrive.
    #[arg(long)]
    pub sync: bool,
    /// Bytes to batch per partition when sending asynchronously.
    #[arg(long, default_value_t = 16384, value_name = "Integer: size")]
    pub batch_size: usize,
    /// Max time (ms) a message waits for its batch to fill (linger.ms).
    #[arg(long, default_value_t = 1000, value_name = "Long: timeout_ms")]
    pub timeout: u64,
    /// The ack timeout of the producer requests (ms).
    #[arg(
        long,
        default_value_t = 1500,
        value_name = "Integer: request timeout ms"
    )]
    pub request_timeout_ms: u64,
    /// Retries on retriable errors.
    #[arg(long, default_value_t = 3, value_name = "Integer")]
    pub message_send_max_retries: u32,
}

/// How lines become records.
#[derive(Debug, Clone)]
pub struct LineReader {
    pub parse_key: bool,
    pub key_separator: String,
    pub parse_headers: bool,
    pub headers_delimiter: String,
    pub headers_separator: String,
    pub headers_key_separator: String,
    pub null_marker: Option<String>,
    pub ignore_error: bool,
}

/// One parsed line.
pub type Parsed = (Option<Bytes>, Option<Bytes>, Vec<(String, Option<Bytes>)>);

impl LineReader {
    pub fn from_properties(props: &BTreeMap<String, String>) -> LineReader {
        let get = |k: &str, d: &str| props.get(k).cloned().unwrap_or_else(|| d.to_string());
        let flag = |k: &str| {
            props
                .get(k)
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        };
        LineReader {
            parse_key: flag("parse.key"),
            key_separator: get("key.separator", "\t"),
            parse_headers: flag("parse.headers"),
            headers_delimiter: get("headers.delimiter", "\t"),
            headers_separator: get("headers.separator", ","),
            headers_key_separator: get("headers.key.separator", ":"),
            null_marker: props.get("null.marker").cloned(),
            ignore_error: flag("ignore.error"),
        }
    }

    fn bytes(&self, s: &str) -> Option<Bytes> {
        if self.null_marker.as_deref() == Some(s) {
            None
        } else {
            Some(Bytes::copy_from_slice(s.as_bytes()))
        }
    }

    /// Parses line number `n` (1-based) with Kafka's error messages.
    pub fn parse(&self, line: &str, n: usize) -> Result<Parsed, String> {
        let mut rest = line;
        let mut headers = Vec::new();
        if self.parse_headers {
            match rest.find(&self.headers_delimiter) {
                Some(i) => {
                    let header_text = &rest[..i];
                    rest = &rest[i + self.headers_delimiter.len()..];
                    for pair in header_text
                        .split(&self.headers_separator)
                        .filter(|p| !p.is_empty())
                    {
                        match pair.split_once(&self.headers_key_separator) {
                            Some((k, v)) => headers.push((k.to_string(), self.bytes(v))),
                            None if self.ignore_error => headers.push((pair.to_string(), None)),
                            None => {
                                return Err(format!(
                                "No header key separator found in pair '{pair}' on line number {n}"
                            ))
                            }
                        }
                    }
                }
                None if self.ignore_error => {}
                None => {
                    return Err(format!(
                        "No headers delimiter found on line number {n}: '{line}'"
                    ))
                }
            }
        }
        if self.parse_key {
            match rest.find(&self.key_separator) {
                Some(i) => {
                    let key = self.bytes(&rest[..i]);
                    let value = self.bytes(&rest[i + self.key_separator.len()..]);
                    return Ok((key, value, headers));
                }
                None if self.ignore_error => {}
                None => {
                    return Err(format!(
                        "No key separator found on line number {n}: '{line}'"
                    ))
                }
            }
        }
        Ok((None, self.bytes(rest), headers))
    }
}

fn producer_config(args: &ConsoleProducerArgs) -> anyhow::Result<(ProducerConfig, String)> {
    let mut props = match &args.producer_config {
        Some(path) => read_properties(path)?,
        None => BTreeMap::new(),
    };
    props.extend(parse_pairs(
        "--producer-property",
        &args.producer_properties,
    )?);
    super::refuse_security_settings("--producer.config or --producer-property", &props)?;
    let acks = super::acks(props.get("acks").unwrap_or(&args.request_required_acks))?;
    let codec = props
        .get("compression.type")
        .cloned()
        .or_else(|| args.compression_codec.clone())
        .unwrap_or_else(|| "none".into());
    let compression = super::compression(&codec)?;
    let number = |k: &str, d: u64| super::long_property(&props, k, d);
    let linger_ms = if args.sync {
        0
    } else {
        number("linger.ms", args.timeout)?
    };
    // Kafka's default: idempotent when acks=all, unless turned off.
    let idempotence = super::idempotence(&props, acks, acks == -1)?;
    let config = ProducerConfig {
        acks,
        linger: Duration::from_millis(linger_ms),
        batch_size_bytes: number("batch.size", args.batch_size as u64)? as usize,
        compression,
        idempotence,
        request_timeout: Duration::from_millis(number(
            "request.timeout.ms",
            args.request_timeout_ms.max(1500),
        )?),
        retries: number("retries", u64::from(args.message_send_max_retries))? as u32,
    };
    let client_id = props
        .get("client.id")
        .cloned()
        .unwrap_or_else(|| "console-producer".into());
    Ok((config, client_id))
}

pub async fn run(args: ConsoleProducerArgs) -> anyhow::Result<()> {
    // --property wins over --reader-config, as in Kafka's tool.
    let mut reader_props = match &args.reader_config {
        Some(path) => read_properties(path)?,
        None => BTreeMap::new(),
    };
    reader_props.extend(parse_pairs("--property", &args.properties)?);
    let reader = LineReader::from_properties(&reader_props);
    let (config, client_id) = producer_config(&args)?;
    let client = connect(&args.bootstrap_server, &client_id).await?;
    let producer = match Producer::new(client, config).await {
        Ok(p) => p,
        Err(e) => return fail(format!("Error: {e}")),
    };
    let (tx, mut rx) = mpsc::channel::<std::io::Result<String>>(1024);
    // stdin is read on a plain thread: tokio's stdin would block a worker
    // anyway, and the prompt must come right before each blocking read.
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let prompt = stdin.is_terminal();
        let mut lock = stdin.lock();
        loop {
            if prompt {
                print!(">");
                let _ = std::io::stdout().flush();
            }
            let mut line = String::new();
            match lock.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => {
                    let trimmed = line.strip_suffix('\n').unwrap_or(&line);
                    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed).to_string();
                    if tx.blocking_send(Ok(trimmed)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let mut pending = Vec::new();
    let mut failed = false;
    let mut n = 0;
    while let Some(line) = rx.recv().await {
        let line = line?;
        n += 1;
        let (key, value, headers) = match reader.parse(&line, n) {
            Ok(p) => p,
            Err(message) => {
                producer.close().await;
                return fail(format!("org.apache.kafka.common.KafkaException: {message}"));
            }
        };
        let record = ProducerRecord {
            topic: args.topic.clone(),
            key,
            value,
            headers,
            ..Default::default()
        };
        let delivery = match producer.send(record).await {
            Ok(d) => d,
            Err(e) => {
                eprintln!(
                    "Error when sending message to topic {} with error: {e}",
                    args.topic
                );
                failed = true;
                continue;
            }
        };
        if args.sync {
            producer.flush().await;
            failed |= report(&args.topic, delivery.await);
        } else {
            pending.push(delivery);
            // Reap finished deliveries so errors show up as they happen.
            pending.retain_mut(|d| match d.try_recv() {
                Ok(result) => {
                    failed |= report(&args.topic, Ok(result));
                    false
                }
                Err(_) => true,
            });
        }
    }
    producer.flush().await;
    for d in pending {
        failed |= report(&args.topic, d.await);
    }
    producer.close().await;
    if failed {
        return fail("Some messages could not be delivered.");
    }
    Ok(())
}

/// Prints a failed delivery as Kafka's `ErrorLoggingCallback` does; true if
/// it failed.
fn report(
    topic: &str,
    result: Result<
        Result<vltava_client::RecordMetadata, vltava_client::Error>,
        tokio::sync::oneshot::error::RecvError,
    >,
) -> bool {
    match result {
        Ok(Ok(_)) => false,
        Ok(Err(e)) => {
            eprintln!("Error when sending message to topic {topic} with error: {e}");
            true
        }
        Err(_) => {
            eprintln!("Error when sending message to topic {topic}: the producer stopped");
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(props: &[(&str, &str)]) -> LineReader {
        LineReader::from_properties(
            &props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn key_and_value_split_at_the_first_separator() {
        let r = reader(&[("parse.key", "true"), ("key.separator", ":")]);
        let (k, v, h) = r.parse("message1:hello:world", 1).unwrap();
        assert_eq!(k.as_deref(), Some(&b"message1"[..]));
        assert_eq!(v.as_deref(), Some(&b"hello:world"[..]));
        assert!(h.is_empty());
        assert_eq!(
            r.parse("nokey", 7).unwrap_err(),
            "No key separator found on line number 7: 'nokey'"
        );
    }

    #[test]
    fn headers_come_before_the_key() {
        let r = reader(&[
            ("parse.key", "true"),
            ("parse.headers", "true"),
            ("null.marker", "NULL"),
        ]);
        let (k, v, h) = r.parse("h1:v1,h2:NULL\tk\tv", 1).unwrap();
        assert_eq!(k.as_deref(), Some(&b"k"[..]));
        assert_eq!(v.as_deref(), Some(&b"v"[..]));
        assert_eq!(
            h,
            vec![
                ("h1".to_string(), Some(Bytes::from_static(b"v1"))),
                ("h2".to_string(), None)
            ]
        );
    }
}
