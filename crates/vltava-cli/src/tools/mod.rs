//! The Kafka-style command-line tools, one module each, all on
//! `vltava-client`. Shared here: connecting (with the one-line message for
//! an unreachable broker), `key=value` property parsing, and the error type
//! whose text is printed as is.

pub mod broker_api_versions;
pub mod cluster;
pub mod configs;
pub mod console_consumer;
pub mod console_producer;
pub mod consumer_groups;
pub mod delete_records;
pub mod dev_cluster;
pub mod dump_log;
pub mod formatter;
pub mod get_offsets;
pub mod leader_election;
pub mod log_dirs;
pub mod metadata_quorum;
pub mod perf;
pub mod reassign_partitions;
pub mod schema_formatter;
pub mod storage;
pub mod topics;
pub mod verifiable;

use std::collections::BTreeMap;
use std::time::Duration;

use vltava_client::connection::Timeouts;
use vltava_client::{Client, ClientConfig, Error};

/// An error whose text is the whole message the user sees (printed to
/// stderr, exit status 1).
#[derive(Debug)]
pub struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

/// `Err(Failure(message))` as an `anyhow::Error`.
pub fn fail<T>(message: impl Into<String>) -> anyhow::Result<T> {
    Err(Failure(message.into()).into())
}

/// A runtime for one tool run.
/// `compression.type` as Kafka's producer spells it.
pub fn compression(value: &str) -> anyhow::Result<vltava_client::Compression> {
    use vltava_client::Compression;
    Ok(match value.trim() {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => return fail(format!("Invalid value {other} for configuration compression.type: String must be one of: none, gzip, snappy, lz4, zstd")),
    })
}

/// The `acks` producer property: all, -1, 0 or 1.
pub fn acks(value: &str) -> anyhow::Result<i16> {
    match value.trim() {
        "all" | "-1" => Ok(-1),
        "0" => Ok(0),
        "1" => Ok(1),
        other => fail(format!(
            "Invalid value {other} for configuration acks: String must be one of: all, -1, 0, 1"
        )),
    }
}

/// The `enable.idempotence` producer property, else `default`; true needs
/// acks=all, as the Java client insists.
pub fn idempotence(
    props: &BTreeMap<String, String>,
    acks: i16,
    default: bool,
) -> anyhow::Result<bool> {
    let idempotence = match props.get("enable.idempotence").map(|v| v.trim()) {
        None => default,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(other) => {
            return fail(format!(
                "Invalid value {other} for configuration enable.idempotence: Expected value to be either true or false"
            ))
        }
    };
    if idempotence && acks != -1 {
        return fail("Must set acks to all in order to use the idempotent producer. Otherwise we cannot guarantee idempotence.");
    }
    Ok(idempotence)
}

/// A LONG producer property, or `default` when it is not set.
pub fn long_property(
    props: &BTreeMap<String, String>,
    key: &str,
    default: u64,
) -> anyhow::Result<u64> {
    match props.get(key) {
        Some(v) => v.trim().parse().or_else(|_| {
            fail(format!(
                "Invalid value {v} for configuration {key}: Not a number of type LONG"
            ))
        }),
        None => Ok(default),
    }
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Where the tools connect when `--bootstrap-server` is not given: this
/// environment variable, else the zero-config broker's listener.
pub const BOOTSTRAP_ENV: &str = "VLTAVA_BOOTSTRAP";
pub const BOOTSTRAP_DEFAULT: &str = "127.0.0.1:9092";

/// Connects to `bootstrap` (comma-separated). An unreachable broker becomes
/// one line naming the address and suggesting `vltava server`.
pub async fn connect(bootstrap: &str, client_id: &str) -> anyhow::Result<Client> {
    let timeouts = Timeouts {
        connect: CONNECT_TIMEOUT,
        request: REQUEST_TIMEOUT,
    };
    connect_timeouts(bootstrap, client_id, timeouts).await
}

/// How long the tools wait to connect, and for each answer unless a tool's
/// `--timeout` says otherwise.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

async fn connect_timeouts(
    bootstrap: &str,
    client_id: &str,
    timeouts: Timeouts,
) -> anyhow::Result<Client> {
    let mut config = ClientConfig::new(bootstrap).client_id(client_id);
    config.timeouts = timeouts;
    if config.bootstrap_servers.is_empty() {
        return fail("Missing required argument \"[bootstrap-server]\"");
    }
    match Client::connect(config).await {
        Ok(c) => Ok(c),
        Err(Error::Connect { addr, reason }) => fail(format!(
            "Error: cannot reach a Kafka broker at {addr} ({reason}). Is one running there? Start one with `vltava server`."
        )),
        Err(e) => fail(format!("Error: {e}")),
    }
}

/// [`connect`] with an admin tool's `--command-config` settings applied
/// (`client.id` names the connection; `security.protocol` may only be
/// PLAINTEXT).
pub async fn connect_with(
    bootstrap: &str,
    command: &BTreeMap<String, String>,
    client_id: &str,
) -> anyhow::Result<Client> {
    connect_with_timeout(bootstrap, command, client_id, REQUEST_TIMEOUT).await
}

/// [`connect_with`], waiting at most `request` for each answer (the
/// tools' `--timeout`).
pub async fn connect_with_timeout(
    bootstrap: &str,
    command: &BTreeMap<String, String>,
    client_id: &str,
    request: Duration,
) -> anyhow::Result<Client> {
    let client_id = command.get("client.id").map_or(client_id, |c| c.as_str());
    connect_timeouts(
        bootstrap,
        client_id,
        Timeouts {
            connect: CONNECT_TIMEOUT,
            request,
        },
    )
    .await
}

/// Kafka's topic include list (`IncludeList`): a regular expression matched
/// against whole topic names, commas meaning "or", spaces and surrounding
/// quotes dropped. `what` names the option in the error.
pub fn include_list(spec: &str, what: &str) -> anyhow::Result<regex::Regex> {
    let cleaned = spec
        .trim()
        .replace(',', "|")
        .replace(' ', "")
        .trim_matches(|c| c == '"' || c == '\'')
        .to_string();
    regex::Regex::new(&format!("^(?:{cleaned})$")).or_else(|e| {
        fail(format!(
            "Error: {what} {spec} is not a valid regular expression: {e}"
        ))
    })
}

/// Reads a whole text file a tool was given, refusing one larger than
/// `max` bytes (no such file is something a person wrote for a request).
pub fn read_text_capped(path: &str, max: u64, what: &str) -> anyhow::Result<String> {
    let size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) => return fail(format!("Error: cannot read {path}: {e}")),
    };
    if size > max {
        return fail(format!(
            "Error: {path} is {size} bytes; {what} may be at most {max}"
        ));
    }
    std::fs::read_to_string(path).or_else(|e| fail(format!("Error: cannot read {path}: {e}")))
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Parses `key=value` pairs (later wins), as `--property` and friends take
/// them. A value may contain `=`.
pub fn parse_pairs(option: &str, pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for p in pairs {
        match p.split_once('=') {
            Some((k, v)) => {
                out.insert(k.trim().to_string(), v.to_string());
            }
            None => return fail(format!("Invalid {option} '{p}': expected key=value")),
        }
    }
    Ok(out)
}

/// Refuses client settings that ask for security the tools do not have yet
/// (TLS, SASL): connecting over plaintext anyway would hand credentials and
/// data to a listener the user meant to be secure, and succeed against one
/// that is not. `source` names where the settings came from.
pub fn refuse_security_settings(
    source: &str,
    props: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    if let Some(protocol) = props.get("security.protocol") {
        if !protocol.trim().eq_ignore_ascii_case("PLAINTEXT") {
            return fail(format!(
                "Error: security.protocol={} ({source}) is not supported by Vltava's tools yet: they connect over PLAINTEXT only, and will not connect without the security you asked for",
                protocol.trim()
            ));
        }
    }
    let secure = props
        .keys()
        .find(|k| k.starts_with("ssl.") || k.starts_with("sasl."));
    if let Some(key) = secure {
        return fail(format!(
            "Error: {key} ({source}) is not supported by Vltava's tools yet: TLS and SASL are not implemented, so this setting cannot be honoured"
        ));
    }
    Ok(())
}

/// Reads an admin tool's `--command-config` file. The admin tools implement
/// only these client settings; anything else in the file is refused rather
/// than silently ignored.
pub fn read_command_config(path: Option<&str>) -> anyhow::Result<BTreeMap<String, String>> {
    // The broker comes from --bootstrap-server (or its default), which in
    // Kafka's tools overrides bootstrap.servers in this file anyway.
    const IMPLEMENTED: &[&str] = &["client.id", "security.protocol"];
    let Some(path) = path else {
        return Ok(BTreeMap::new());
    };
    let props = read_properties(path)?;
    refuse_security_settings(&format!("in {path}"), &props)?;
    if let Some(key) = props.keys().find(|k| !IMPLEMENTED.contains(&k.as_str())) {
        return fail(format!(
            "Error: {key} (in {path}) is not supported by this tool; it reads only {}",
            IMPLEMENTED.join(", ")
        ));
    }
    Ok(props)
}

/// Reads a Java-style `.properties` file (`key=value`, `#` comments).
pub fn read_properties(path: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return fail(format!("Error: cannot read {path}: {e}")),
    };
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let (k, v) = l.split_once('=').or_else(|| l.split_once(':'))?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect())
}

/// The Java exception class Kafka's tools print for an error code.
pub fn java_exception(code: i16) -> &'static str {
    match code {
        1 => "org.apache.kafka.common.errors.OffsetOutOfRangeException",
        3 => "org.apache.kafka.common.errors.UnknownTopicOrPartitionException",
        5 => "org.apache.kafka.common.errors.LeaderNotAvailableException",
        6 => "org.apache.kafka.common.errors.NotLeaderOrFollowerException",
        7 => "org.apache.kafka.common.errors.TimeoutException",
        17 => "org.apache.kafka.common.errors.InvalidTopicException",
        26 => "org.apache.kafka.common.errors.InvalidSessionTimeoutException",
        36 => "org.apache.kafka.common.errors.TopicExistsException",
        37 => "org.apache.kafka.common.errors.InvalidPartitionsException",
        38 => "org.apache.kafka.common.errors.InvalidReplicationFactorException",
        40 => "org.apache.kafka.common.errors.InvalidConfigurationException",
        42 => "org.apache.kafka.common.errors.InvalidRequestException",
        44 => "org.apache.kafka.common.errors.PolicyViolationException",
        56 => "org.apache.kafka.common.errors.KafkaStorageException",
        80 => "org.apache.kafka.common.errors.PreferredLeaderNotAvailableException",
        83 => "org.apache.kafka.common.errors.EligibleLeadersNotAvailableException",
        84 => "org.apache.kafka.common.errors.ElectionNotNeededException",
        68 => "org.apache.kafka.common.errors.GroupNotEmptyException",
        69 => "org.apache.kafka.common.errors.GroupIdNotFoundException",
        86 => "org.apache.kafka.common.errors.GroupSubscribedToTopicException",
        _ => "org.apache.kafka.common.KafkaException",
    }
}

/// A fresh id in Kafka's form that is safe on a command line: as Kafka's
/// `Uuid.randomUuid` does, ids whose text starts with '-' (which a tool
/// would read as a flag) and the all-zero id are drawn again.
pub fn random_kafka_uuid() -> String {
    loop {
        let id = uuid::Uuid::new_v4();
        let text = kafka_uuid(&id);
        if !id.is_nil() && !text.starts_with('-') {
            return text;
        }
    }
}

/// Kafka's `Uuid.toString()`: URL-safe base64 of the 16 bytes, no padding.
pub fn kafka_uuid(id: &uuid::Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_uuid_is_url_safe_base64_without_padding() {
        let id =
            uuid::Uuid::from_bytes([0xfb, 0xff, 0xbf, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        // base64url of those bytes: "-_-_AAECAwQFBgcICQoLDA"
        assert_eq!(kafka_uuid(&id), "-_-_AAECAwQFBgcICQoLDA");
    }

    /// One id in 64 starts with '-': ten thousand draws would show one.
    #[test]
    fn random_ids_never_start_with_a_dash() {
        for _ in 0..10_000 {
            let id = random_kafka_uuid();
            assert_eq!(id.len(), 22);
            assert!(!id.starts_with('-'), "{id}");
        }
    }

    #[test]
    fn producer_acks_and_idempotence_as_the_java_client_reads_them() {
        for (text, acks) in [("all", -1), ("-1", -1), (" 1 ", 1), ("0", 0)] {
            assert_eq!(super::acks(text).unwrap(), acks, "{text}");
        }
        assert_eq!(
            super::acks("2").unwrap_err().to_string(),
            "Invalid value 2 for configuration acks: String must be one of: all, -1, 0, 1"
        );
        let props = |v: &str| BTreeMap::from([("enable.idempotence".to_string(), v.to_string())]);
        assert!(idempotence(&BTreeMap::new(), -1, true).unwrap());
        assert!(!idempotence(&BTreeMap::new(), 1, false).unwrap());
        assert!(idempotence(&props("TRUE"), -1, false).unwrap());
        assert!(!idempotence(&props("false"), -1, true).unwrap());
        assert_eq!(
            idempotence(&props("true"), 1, false).unwrap_err().to_string(),
            "Must set acks to all in order to use the idempotent producer. Otherwise we cannot guarantee idempotence."
        );
        assert_eq!(
            idempotence(&props("yes"), -1, true).unwrap_err().to_string(),
            "Invalid value yes for configuration enable.idempotence: Expected value to be either true or false"
        );
    }
}
