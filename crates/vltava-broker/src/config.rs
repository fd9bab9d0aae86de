//! Broker and topic configuration, by Kafka's names and with Kafka's defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;

use vltava_log::LogConfig;

/// How a config value was set, as DescribeConfigs reports it (Kafka's
/// `ConfigSource` numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigSource {
    DynamicTopic = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
}

/// Broker-level keys, besides those that set topic defaults, that can be
/// changed at run time (per broker or cluster-wide), as in Kafka. Others
/// Kafka allows (thread pools, listeners, TLS, `max.connections`) are not
/// dynamic here yet and are refused as static.
pub const DYNAMIC_BROKER_KEYS: &[&str] = &[
    "log.cleaner.io.max.bytes.per.second",
    "log.cleaner.backoff.ms",
    "producer.id.expiration.ms",
];

/// The topic (and default) config the controller's leadership rules read.
pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";

/// Whether a broker key may be changed at run time: every key that sets a
/// topic default, and [`DYNAMIC_BROKER_KEYS`].
pub fn is_dynamic_broker_config(name: &str) -> bool {
    topic_config_of_broker_key(name).is_some() || DYNAMIC_BROKER_KEYS.contains(&name)
}

/// Checks a dynamic broker config; `name` must be one
/// ([`is_dynamic_broker_config`]) and canonical (not a time synonym).
pub fn validate_dynamic_broker_config(name: &str, value: &str) -> Result<(), ConfigError> {
    if let Some(def) = topic_config_of_broker_key(name) {
        return validate_value(name, def.config_type, def.allowed, def.min, value);
    }
    match name {
        "log.cleaner.io.max.bytes.per.second" => match value.trim().parse::<f64>() {
            Ok(v) if v > 0.0 => Ok(()),
            _ => Err(ConfigError::InvalidValue {
                name: name.into(),
                value: value.into(),
                reason: "Value must be a positive number".into(),
            }),
        },
        _ => validate_value(name, ConfigType::Long, &[], 1, value),
    }
}

/// A broker key as stored: the time synonyms Kafka accepts
/// (`log.retention.hours`, `.minutes`, `log.roll.hours`) become their `ms`
/// key with the value converted, so one key holds each setting.
pub fn canonical_broker_config(name: &str, value: &str) -> Result<(String, String), ConfigError> {
    for (canonical, synonyms) in TIME_SYNONYMS {
        if let Some((_, factor)) = synonyms.iter().find(|(s, _)| *s == name) {
            let n: i64 = value
                .trim()
                .parse()
                .map_err(|_| ConfigError::InvalidValue {
                    name: name.into(),
                    value: value.into(),
                    reason: "not a number".into(),
                })?;
            return Ok((canonical.to_string(), n.saturating_mul(*factor).to_string()));
        }
    }
    Ok((name.to_string(), value.to_string()))
}

/// Value types as DescribeConfigs v3+ reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("Unknown config name: {0}")]
    Unknown(String),
    #[error("Invalid value {value} for configuration {name}: {reason}")]
    InvalidValue {
        name: String,
        value: String,
        reason: String,
    },
}

/// One topic-level config: its name, the broker config that supplies its
/// default, its type, and the default when the broker config is unset.
pub struct TopicConfigDef {
    pub name: &'static str,
    pub broker_name: &'static str,
    pub config_type: ConfigType,
    pub default: &'static str,
    /// Allowed values for enumerated strings and list items.
    pub allowed: &'static [&'static str],
    pub min: i64,
    pub doc: &'static str,
}

const I64_MAX: &str = "9223372036854775807";

macro_rules! def {
    ($name:literal, $broker:literal, $ty:ident, $default:expr, $allowed:expr, $min:expr, $doc:literal) => {
        TopicConfigDef {
            name: $name,
            broker_name: $broker,
            config_type: ConfigType::$ty,
            default: $default,
            allowed: $allowed,
            min: $min,
            doc: $doc,
        }
    };
}

/// The shortest `rest.proxy.consumer.instance.timeout.ms` taken: less
/// would close instances between a client's requests.
pub const REST_CONSUMER_INSTANCE_TIMEOUT_MIN_MS: i64 = 1_000;

/// Every topic config Vltava understands. Anything else is INVALID_CONFIG.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def!("cleanup.policy", "log.cleanup.policy", List, "delete", &["delete", "compact"], 0,
        "delete: drop whole segments past retention.ms/retention.bytes; compact: keep the latest record per key (the log cleaner rewrites closed segments); compact,delete: both"),
    def!("compression.type", "compression.type", String, "producer", &["producer"], 0,
        "Batches are stored as the producer compressed them; recompression is not supported"),
    def!("confluent.key.schema.validation", "confluent.key.schema.validation", Boolean, "false", &[], 0,
        "Refuse records whose key does not start with magic byte 0 and a schema id registered under the subject confluent.key.subject.name.strategy names (INVALID_RECORD)"),
    def!("confluent.key.subject.name.strategy", "confluent.key.subject.name.strategy", String, "io.confluent.kafka.serializers.subject.TopicNameStrategy", &crate::schema_ids::SUBJECT_NAME_STRATEGIES, 0,
        "Where a validated key's schema id must be registered: TOPIC-key (TopicNameStrategy), the record name of its schema (RecordNameStrategy), TOPIC-<record name> (TopicRecordNameStrategy)"),
    def!("confluent.value.schema.validation", "confluent.value.schema.validation", Boolean, "false", &[], 0,
        "Refuse records whose value does not start with magic byte 0 and a schema id registered under the subject confluent.value.subject.name.strategy names (INVALID_RECORD)"),
    def!("confluent.value.subject.name.strategy", "confluent.value.subject.name.strategy", String, "io.confluent.kafka.serializers.subject.TopicNameStrategy", &crate::schema_ids::SUBJECT_NAME_STRATEGIES, 0,
        "Where a validated value's schema id must be registered: TOPIC-value (TopicNameStrategy), the record name of its schema (RecordNameStrategy), TOPIC-<record name> (TopicRecordNameStrategy)"),
    def!("delete.retention.ms", "log.cleaner.delete.retention.ms", Long, "86400000", &[], 0,
        "How long tombstones stay in a compacted topic"),
    def!("flush.messages", "log.flush.interval.messages", Long, I64_MAX, &[], 1,
        "fsync the log after this many messages; 1 makes every acknowledged write durable on disk"),
    def!("flush.ms", "log.flush.interval.ms", Long, I64_MAX, &[], 0,
        "fsync the log when its oldest unflushed message is this old"),
    def!("index.interval.bytes", "log.index.interval.bytes", Int, "4096", &[], 0,
        "Bytes of log between two offset-index entries"),
    def!("max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", Long, I64_MAX, &[], 1,
        "Longest time a record may stay uncompacted"),
    def!("max.message.bytes", "message.max.bytes", Int, "1048588", &[], 0,
        "Largest record batch the topic accepts"),
    def!("message.timestamp.type", "log.message.timestamp.type", String, "CreateTime", &["CreateTime", "LogAppendTime"], 0,
        "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's time at append"),
    def!("min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio", Double, "0.5", &[], 0,
        "Dirty share of the log that triggers compaction"),
    def!("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms", Long, "0", &[], 0,
        "Shortest time a record stays uncompacted"),
    def!("min.insync.replicas", "min.insync.replicas", Int, "1", &[], 1,
        "In-sync replicas that must have a write for acks=all to succeed: fewer in the ISR refuses the write (NOT_ENOUGH_REPLICAS), and nothing new is committed (visible to consumers) until the ISR grows back (KIP-966); a change clears the eligible leader replicas"),
    def!("unclean.leader.election.enable", "unclean.leader.election.enable", Boolean, "false", &[], 0,
        "When every in-sync replica is fenced, let an out-of-sync one lead (acknowledged writes may be lost)"),
    def!("retention.bytes", "log.retention.bytes", Long, "-1", &[], -1,
        "Delete the oldest segments while the partition is larger than this; -1 is unlimited"),
    def!("retention.ms", "log.retention.ms", Long, "604800000", &[], -1,
        "Delete segments whose newest record is older than this; -1 keeps everything"),
    def!("segment.bytes", "log.segment.bytes", Int, "1073741824", &[], 14,
        "Roll to a new segment file at this size"),
    def!("segment.ms", "log.roll.ms", Long, "604800000", &[], 1,
        "Roll to a new segment file when the active one is this old"),
];

pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// The topic config whose default a broker key sets
/// (`log.retention.ms` → `retention.ms`), if it sets one.
pub fn topic_config_of_broker_key(key: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.broker_name == key)
}

/// Checks one topic config against its definition.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), ConfigError> {
    let def = topic_config_def(name).ok_or_else(|| ConfigError::Unknown(name.to_string()))?;
    validate_value(def.name, def.config_type, def.allowed, def.min, value)
}

fn validate_value(
    name: &str,
    config_type: ConfigType,
    allowed: &[&str],
    min: i64,
    value: &str,
) -> Result<(), ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidValue {
        name: name.to_string(),
        value: value.to_string(),
        reason,
    };
    match config_type {
        ConfigType::Int | ConfigType::Long => {
            let parsed: i64 = value
                .trim()
                .parse()
                .map_err(|_| invalid("not a number".into()))?;
            if config_type == ConfigType::Int && i32::try_from(parsed).is_err() {
                return Err(invalid("out of range for an int".into()));
            }
            if parsed < min {
                return Err(invalid(format!("Value must be at least {min}")));
            }
        }
        ConfigType::Double => {
            let parsed: f64 = value
                .trim()
                .parse()
                .map_err(|_| invalid("not a number".into()))?;
            if !(0.0..=1.0).contains(&parsed) {
                return Err(invalid("Value must be between 0 and 1".into()));
            }
        }
        ConfigType::Boolean => {
            if !matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "false") {
                return Err(invalid("Expected value to be either true or false".into()));
            }
        }
        ConfigType::String => {
            if !allowed.is_empty() && !allowed.contains(&value.trim()) {
                return Err(invalid(format!(
                    "String must be one of: {}",
                    allowed.join(", ")
                )));
            }
        }
        ConfigType::List => {
            let items: Vec<&str> = value.split(',').map(str::trim).collect();
            if items.iter().any(|i| i.is_empty() || !allowed.contains(i)) {
                return Err(invalid(format!(
                    "Each item must be one of: {}",
                    allowed.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// Effective topic configuration: overrides on top of broker defaults.
/// How far a produced batch may inflate relative to `max.message.bytes`.
pub const DECOMPRESSION_RATIO_MAX: usize = 64;
/// Lowest decompression bound, whatever `max.message.bytes` is.
pub const DECOMPRESSED_BATCH_BYTES_FLOOR: usize =
    vltava_record::DECOMPRESSED_BATCH_BYTES_MAX_DEFAULT;
/// Highest decompression bound, whatever `max.message.bytes` is.
pub const DECOMPRESSED_BATCH_BYTES_CAP: usize = 1 << 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    values: BTreeMap<&'static str, String>,
}

impl TopicConfig {
    /// Resolves every topic config: topic override, else `default_of`
    /// (the broker's setting, dynamic or static, else Kafka's default).
    pub fn resolve_with(
        default_of: impl Fn(&TopicConfigDef) -> String,
        overrides: &BTreeMap<String, String>,
    ) -> TopicConfig {
        let values = TOPIC_CONFIGS
            .iter()
            .map(|def| {
                let value = overrides
                    .get(def.name)
                    .cloned()
                    .unwrap_or_else(|| default_of(def));
                (def.name, value)
            })
            .collect();
        TopicConfig { values }
    }

    pub fn get(&self, name: &str) -> &str {
        self.values.get(name).map(String::as_str).unwrap_or("")
    }

    fn long(&self, name: &str) -> i64 {
        self.get(name).trim().parse().unwrap_or(i64::MAX)
    }

    pub fn max_message_bytes(&self) -> usize {
        self.long("max.message.bytes").max(0) as usize
    }

    /// The most plain bytes one produced batch may inflate to: a ratio of
    /// [`DECOMPRESSION_RATIO_MAX`] over `max.message.bytes`, kept within
    /// [`DECOMPRESSED_BATCH_BYTES_FLOOR`]..=[`DECOMPRESSED_BATCH_BYTES_CAP`].
    /// Records are checked while they stream out of the decompressor, so the
    /// bound caps the CPU one batch costs, not memory held.
    pub fn decompressed_batch_bytes_max(&self) -> usize {
        self.max_message_bytes()
            .saturating_mul(DECOMPRESSION_RATIO_MAX)
            .clamp(DECOMPRESSED_BATCH_BYTES_FLOOR, DECOMPRESSED_BATCH_BYTES_CAP)
    }

    /// `min.insync.replicas` as a count (at least 1; the setting's own
    /// minimum is 1).
    pub fn min_insync_replicas(&self) -> usize {
        usize::try_from(self.long(MIN_INSYNC_REPLICAS))
            .unwrap_or(1)
            .max(1)
    }

    pub fn unclean_leader_election(&self) -> bool {
        self.get("unclean.leader.election.enable")
            .eq_ignore_ascii_case("true")
    }

    pub fn log_append_time(&self) -> bool {
        self.get("message.timestamp.type") == "LogAppendTime"
    }

    /// Server-side schema validation as the topic's `confluent.*` configs
    /// set it; `None` (and nothing allocated) when it is off, as for most
    /// topics on every produce.
    pub fn schema_validation(&self) -> Option<crate::schema_ids::Validation> {
        use crate::schema_ids::Strategy;
        let field = |on: &str, strategy: &str| {
            self.get(on)
                .eq_ignore_ascii_case("true")
                .then(|| Strategy::named(self.get(strategy)))
        };
        let validation = crate::schema_ids::Validation {
            key: field(
                "confluent.key.schema.validation",
                "confluent.key.subject.name.strategy",
            ),
            value: field(
                "confluent.value.schema.validation",
                "confluent.value.subject.name.strategy",
            ),
        };
        (validation.key.is_some() || validation.value.is_some()).then_some(validation)
    }

    pub fn is_compacted(&self) -> bool {
        self.get("cleanup.policy")
            .split(',')
            .any(|p| p.trim() == "compact")
    }

    fn deletes(&self) -> bool {
        self.get("cleanup.policy")
            .split(',')
            .any(|p| p.trim() == "delete")
    }

    pub fn log_config(&self) -> LogConfig {
        // A compact-only topic must never lose data to time or size retention.
        let (retention_ms, retention_bytes) = if self.deletes() {
            (self.long("retention.ms"), self.long("retention.bytes"))
        } else {
            (-1, -1)
        };
        // Only closed segments are compacted, so Kafka rolls a compacted
        // topic's segment at max.compaction.lag.ms at the latest.
        let segment_ms = if self.is_compacted() {
            self.long("segment.ms")
                .min(self.long("max.compaction.lag.ms").max(1))
        } else {
            self.long("segment.ms")
        };
        LogConfig {
            segment_bytes: self.long("segment.bytes").max(14) as u64,
            segment_ms,
            retention_ms,
            retention_bytes,
            index_interval_bytes: self.long("index.interval.bytes").clamp(0, u32::MAX as i64)
                as u32,
            flush_messages: self.long("flush.messages").max(1) as u64,
            flush_ms: self.long("flush.ms"),
        }
    }

    /// What steers compaction of this topic's logs.
    pub fn clean_config(&self) -> vltava_log::cleaner::CleanConfig {
        vltava_log::cleaner::CleanConfig {
            delete_retention_ms: self.long("delete.retention.ms"),
            min_compaction_lag_ms: self.long("min.compaction.lag.ms"),
            max_compaction_lag_ms: self.long("max.compaction.lag.ms"),
            min_cleanable_dirty_ratio: self
                .get("min.cleanable.dirty.ratio")
                .trim()
                .parse()
                .unwrap_or(0.5),
        }
    }
}

/// The log cleaner's broker configs (`log.cleaner.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerSettings {
    /// `log.cleaner.io.max.bytes.per.second`: bytes read plus written.
    pub io_max_bytes_per_second: f64,
    /// `log.cleaner.dedupe.buffer.size`: the offset map's memory.
    pub dedupe_buffer_bytes: u64,
    /// `log.cleaner.backoff.ms`: pause between cleaner runs.
    pub backoff_ms: u64,
}

/// One `listeners` entry, e.g. `PLAINTEXT://127.0.0.1:9092`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// The metadata quorum's listener: where it is bound, and the address
/// peers use to reach it (the advertised CONTROLLER entry, else this node's
/// entry in `controller.quorum.voters`, else the bound address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerListener {
    pub bind: Listener,
    pub advertised: Listener,
    /// Every voter's quorum address (`host:port`) by node id, this node's
    /// included: `controller.quorum.voters`, else this node alone.
    pub voters: BTreeMap<u64, String>,
}

impl ControllerListener {
    /// `host:port` where peers reach the quorum.
    pub fn address(&self) -> String {
        format!("{}:{}", self.advertised.host, self.advertised.port)
    }
}

impl Listener {
    pub fn parse(spec: &str) -> Result<Listener, String> {
        let (name, address) = spec
            .trim()
            .split_once("://")
            .ok_or_else(|| format!("listener '{spec}' is not of the form NAME://HOST:PORT"))?;
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| format!("listener '{spec}' has no port"))?;
        let port = port
            .parse()
            .map_err(|_| format!("listener '{spec}' has an invalid port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(Listener {
            // Kafka normalises listener names to upper case, so `plaintext`
            // in one setting and `PLAINTEXT` in another are one listener.
            name: name.trim().to_ascii_uppercase(),
            host: if host.is_empty() {
                "0.0.0.0".into()
            } else {
                host.to_string()
            },
            port,
        })
    }
}

/// The quorum's own listener, from `controller.listener.names`: taken out
/// of the Kafka listeners (it serves the quorum's RPCs, not clients), and
/// checked against the voter settings. Kafka's KRaft files run as they
/// are: `controller.quorum.voters` with any number of voters, this node
/// among them (a broker-only node is configured by `broker_only_voters`), or KIP-853's
/// `controller.quorum.bootstrap.servers` naming this node alone (dynamic
/// voters are not built). Kafka's rules: every controller listener name is
/// one of `listeners` and is never given to clients.
fn controller_listener(
    explicit: &BTreeMap<String, String>,
    node_id: i64,
    listeners: &mut Vec<Listener>,
    advertised: &mut Vec<Listener>,
    advertised_explicitly: bool,
) -> Result<Option<ControllerListener>, String> {
    let names: Vec<String> = explicit
        .get("controller.listener.names")
        .map(|v| {
            v.split(',')
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let voters = explicit
        .get("controller.quorum.voters")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty());
    let bootstrap = explicit
        .get("controller.quorum.bootstrap.servers")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty());
    let voter_list = voters.map(|v| parse_voters(v, node_id)).transpose()?;
    if let Some(bootstrap) = bootstrap {
        if bootstrap.split(',').count() != 1 {
            return Err(format!(
                "controller.quorum.bootstrap.servers={bootstrap} names several controllers, but dynamic voters (KIP-853) are not built: list the voters in controller.quorum.voters instead, or name this node's controller listener only"
            ));
        }
    }
    if names.is_empty() {
        if voters.is_some() || bootstrap.is_some() {
            return Err("controller.listener.names must be set when the controller quorum is configured (e.g. controller.listener.names=CONTROLLER)".into());
        }
        return Ok(None);
    }
    for name in &names {
        if !listeners.iter().any(|l| l.name.eq_ignore_ascii_case(name)) {
            return Err(format!(
                "controller.listener.names names {name}, which is not one of listeners: add {name}://host:port to listeners"
            ));
        }
    }
    let is_controller = |l: &Listener| names.iter().any(|n| l.name.eq_ignore_ascii_case(n));
    // The first controller listener named carries the quorum, as in Kafka.
    // Kafka 3.9+ files may advertise it (KIP-853): that entry, else the
    // voter's own entry, is where peers reach it, never given to clients.
    let bound = listeners
        .iter()
        .find(|l| l.name.eq_ignore_ascii_case(&names[0]))
        .cloned();
    let advertised_controller = advertised_explicitly
        .then(|| {
            advertised
                .iter()
                .find(|l| l.name.eq_ignore_ascii_case(&names[0]))
                .cloned()
        })
        .flatten();
    let voter_entry = voter_list
        .as_ref()
        .and_then(|v| v.get(&(node_id as u64)))
        .map(|address| Listener::parse(&format!("{}://{}", names[0], address)))
        .transpose()
        .map_err(|e| format!("controller.quorum.voters: {e}"))?;
    let controller = bound.map(|l| {
        let advertised = advertised_controller
            .or(voter_entry)
            .unwrap_or_else(|| l.clone());
        let voters = voter_list.clone().unwrap_or_else(|| {
            [(
                node_id as u64,
                format!("{}:{}", advertised.host, advertised.port),
            )]
            .into()
        });
        ControllerListener {
            advertised,
            bind: l,
            voters,
        }
    });
    listeners.retain(|l| !is_controller(l));
    advertised.retain(|l| !is_controller(l));
    if listeners.is_empty() {
        return Err("listeners must name at least one listener besides the controller's".into());
    }
    Ok(controller)
}

/// `controller.quorum.voters`: `id@host:port` entries, ids distinct and
/// non-negative, this node among them (a voter).
fn parse_voters(voters: &str, node_id: i64) -> Result<BTreeMap<u64, String>, String> {
    let parsed = parse_voter_list(voters)?;
    if u64::try_from(node_id).map_or(true, |id| !parsed.contains_key(&id)) {
        return Err(format!(
            "controller.quorum.voters={voters} does not name this node (node.id={node_id}): a voter is among them; a broker-only node says process.roles=broker"
        ));
    }
    Ok(parsed)
}

/// `id@host:port` entries, ids distinct and non-negative, each address a
/// host and a port.
fn parse_voter_list(voters: &str) -> Result<BTreeMap<u64, String>, String> {
    let mut parsed = BTreeMap::new();
    for entry in voters.split(',').map(str::trim) {
        let (id, address) = entry.split_once('@').ok_or_else(|| {
            format!("controller.quorum.voters entry '{entry}' is not of the form id@host:port")
        })?;
        let id: u64 = id.trim().parse().map_err(|_| {
            format!("controller.quorum.voters entry '{entry}' has no valid node id")
        })?;
        let address = address.trim();
        // Checked as a listener address: a port, a host (IPv6 in brackets).
        Listener::parse(&format!("CONTROLLER://{address}"))
            .map_err(|e| format!("controller.quorum.voters: {e}"))?;
        if parsed.insert(id, address.to_string()).is_some() {
            return Err(format!("controller.quorum.voters names node {id} twice"));
        }
    }
    Ok(parsed)
}

/// `process.roles`: `broker,controller` (the default, in any order) or
/// `broker` (returns true: a broker-only node). Controller-only nodes are
/// not built: every voter is also a broker.
fn refuse_cluster_settings(explicit: &BTreeMap<String, String>) -> Result<bool, String> {
    let Some(roles) = explicit.get("process.roles") else {
        return Ok(false);
    };
    let mut given: Vec<&str> = roles.split(',').map(str::trim).collect();
    given.sort_unstable();
    match given.as_slice() {
        ["broker", "controller"] => Ok(false),
        ["broker"] => Ok(true),
        _ => Err(format!(
            "process.roles={roles} is not supported yet: a Vltava node is a broker and a controller voter in one (process.roles=broker,controller, the default) or a broker only (process.roles=broker); controller-only nodes are not built"
        )),
    }
}

/// A broker-only node's quorum settings, Kafka's rules: it names the
/// voters (`controller.quorum.voters`, without itself) and the listener
/// name it reaches them on (`controller.listener.names`), which is not one
/// of its own listeners.
fn broker_only_voters(
    explicit: &BTreeMap<String, String>,
    node_id: i64,
    listeners: &[Listener],
) -> Result<BTreeMap<u64, String>, String> {
    let names = explicit
        .get("controller.listener.names")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or("controller.listener.names must be set on a broker-only node (process.roles=broker): it names the listener the voters serve the quorum on")?;
    for name in names.split(',').map(str::trim) {
        if listeners.iter().any(|l| l.name.eq_ignore_ascii_case(name)) {
            return Err(format!(
                "controller.listener.names must not name a listener of a broker-only node (process.roles=broker), but {name} is in listeners"
            ));
        }
    }
    let voters = explicit
        .get("controller.quorum.voters")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or("controller.quorum.voters must name the voters on a broker-only node (process.roles=broker); controller.quorum.bootstrap.servers (dynamic voters) is not supported")?;
    let parsed = parse_voter_list(voters)?;
    if u64::try_from(node_id).is_ok_and(|id| parsed.contains_key(&id)) {
        return Err(format!(
            "node.id={node_id} is one of controller.quorum.voters, but process.roles=broker: a voter runs process.roles=broker,controller"
        ));
    }
    Ok(parsed)
}

/// `admin.listeners`: `http://HOST:PORT`, comma-separated, each made a
/// HOST:PORT to bind (an empty host: every interface). TLS is not served
/// yet, so `https://` is refused rather than served in the clear.
fn parse_admin_listeners(spec: &str) -> Result<Vec<String>, String> {
    parse_http_listeners("admin.listeners", spec)
}

/// An HTTP listener setting (`admin.listeners`,
/// `schema.registry.listeners`) as HOST:PORT addresses to bind.
fn parse_http_listeners(setting: &str, spec: &str) -> Result<Vec<String>, String> {
    let mut addresses = Vec::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let refuse = |why: &str| Err(format!("{setting}={spec}: {entry} {why}"));
        if entry.starts_with("https://") {
            return refuse(
                "asks for TLS, which Vltava's HTTP servers do not serve yet: use http://",
            );
        }
        let Some(address) = entry.strip_prefix("http://") else {
            return refuse("must be http://HOST:PORT");
        };
        let address = address.trim_end_matches('/');
        let Some((host, port)) = address.rsplit_once(':') else {
            return refuse("has no port (http://HOST:PORT)");
        };
        if port.parse::<u16>().is_err() {
            return refuse("has no valid port (0-65535)");
        }
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        addresses.push(format!("{host}:{port}"));
    }
    Ok(addresses)
}

/// `queued.max.request.bytes`: -1 (or any negative) is unbounded; otherwise
/// it must admit the largest request, or that request would wait forever.
fn queued_max_request_bytes(queued: i64, request_max: i64) -> Result<Option<usize>, String> {
    if queued < 0 {
        return Ok(None);
    }
    if queued < request_max.max(1) {
        return Err(format!(
            "queued.max.request.bytes={queued} must be -1 or at least socket.request.max.bytes={request_max}"
        ));
    }
    Ok(Some(queued as usize))
}

/// One broker-level config (not a topic default): its name, default, unit,
/// what it does, and how it relates to Kafka's config of the same name.
pub struct BrokerConfigDef {
    pub name: &'static str,
    pub default: &'static str,
    /// "ms", "bytes", "count", ... or "" for text.
    pub unit: &'static str,
    pub doc: &'static str,
    /// "same" when Kafka's config means the same with the same default;
    /// otherwise what differs.
    pub kafka: &'static str,
}

macro_rules! broker {
    ($name:literal, $default:literal, $unit:literal, $doc:literal, $kafka:literal) => {
        BrokerConfigDef {
            name: $name,
            default: $default,
            unit: $unit,
            doc: $doc,
            kafka: $kafka,
        }
    };
}

/// Broker configuration keys Vltava reads, with Kafka's defaults, except
/// `listeners` and `log.dirs`, whose defaults are Vltava's zero-config ones.
/// `docs/configuration.md` is generated from this table and
/// [`TOPIC_CONFIGS`] (see [`configuration_markdown`]).
pub const BROKER_CONFIGS: &[BrokerConfigDef] = &[
    broker!("node.id", "1", "id", "This broker's id in metadata responses", "same; Kafka has no default and requires it"),
    broker!("listeners", "PLAINTEXT://127.0.0.1:9092", "list", "Where the broker listens, NAME://HOST:PORT, comma-separated; an empty host means every interface", "Kafka's default is PLAINTEXT://:9092 (every interface)"),
    broker!("advertised.listeners", "", "list", "Addresses given to clients in metadata; empty means the listeners", "same"),
    broker!("controller.listener.names", "", "list", "Listeners (named in listeners) that carry the metadata quorum instead of clients; the first one is the quorum's", "same; Kafka requires it in KRaft mode"),
    broker!("controller.quorum.voters", "", "list", "The quorum's voters, id@host:port: this node among them, unless process.roles=broker; unset, the node is its own one-voter quorum", "same"),
    broker!("controller.quorum.bootstrap.servers", "", "list", "KIP-853 style: the controllers to contact, host:port; only this node alone is accepted (dynamic voters are not built: a cluster lists its voters in controller.quorum.voters)", "Kafka takes any number"),
    broker!("process.roles", "broker,controller", "list", "This node's roles: broker,controller (a broker and a metadata voter) or broker (a broker that follows the voters)", "Kafka has no default and also runs controller-only nodes"),
    broker!("inter.broker.listener.name", "PLAINTEXT", "name", "The listener brokers use to reach each other; when set, must be one of listeners", "same; Kafka also requires the default to name a listener"),
    broker!("broker.heartbeat.interval.ms", "2000", "ms", "How often this broker tells the active controller it is alive", "same"),
    broker!("broker.session.timeout.ms", "9000", "ms", "A broker not heard from for this long is fenced by the controller: no longer listed to clients or given new partitions, until it heartbeats again", "same"),
    broker!("broker.rack", "", "name", "This broker's rack, given to clients in Metadata and DescribeCluster; empty means none (null)", "same"),
    broker!("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL", "list", "Security protocol of each listener name; only PLAINTEXT is served, and a listener mapped to SSL or SASL refuses to start rather than serve plaintext", "same default; TLS and SASL are not implemented yet"),
    broker!("log.dirs", "./vltava-data", "path", "The data directory (alias log.dir); locked by one broker at a time; only the first of a list is used", "Kafka's default is /tmp/kafka-logs and it uses every directory listed"),
    broker!("num.partitions", "1", "count", "Partitions of auto-created topics and of CreateTopics without a count", "same"),
    broker!("auto.create.topics.enable", "true", "boolean", "Create a topic when a client asks for its metadata or produces to it", "same"),
    broker!("default.replication.factor", "1", "count", "Replication factor of new topics (auto-created ones and CreateTopics without one)", "same"),
    broker!("replica.lag.time.max.ms", "30000", "ms", "A follower that has not caught up with its leader's log end for this long leaves the ISR", "same"),
    broker!("replica.fetch.wait.max.ms", "500", "ms", "Longest a follower's fetch waits at its leader for new data", "same"),
    broker!("replica.fetch.max.bytes", "1048576", "bytes", "Bytes a follower asks for per partition in one fetch (a larger first batch still comes whole)", "same"),
    broker!("replica.fetch.response.max.bytes", "10485760", "bytes", "Bytes a follower asks for in one fetch across its partitions", "same"),
    broker!("replica.fetch.backoff.ms", "1000", "ms", "How long a follower waits before fetching again from a leader that failed or refused", "same"),
    broker!("replica.selector.class", "", "class", "org.apache.kafka.common.replica.RackAwareReplicaSelector: a leader sends a consumer that names its rack (client.rack) to an in-sync replica in that rack (KIP-392); empty: leaders send no one elsewhere (followers still serve Fetch v11+ consumers that come to them, as in Kafka)", "same; no other selector can be plugged in"),
    broker!("unsafe.testing.storage.fault.file", "", "path", "Test-only: open every partition log through a faulty storage steered by this control file (none, fsync-fail, disk-full, slow-fsync <ms>); refused unless the environment also has VLTAVA_UNSAFE_TESTING=1", "Vltava's own; Kafka has nothing like it"),
    broker!("auto.leader.rebalance.enable", "true", "boolean", "The controller moves leadership back to each partition's preferred (first) replica once it is in sync again", "same"),
    broker!("leader.imbalance.check.interval.seconds", "300", "s", "How often the controller checks whether leadership should move back to preferred replicas", "same"),
    broker!("leader.imbalance.per.broker.percentage", "10", "percent", "A broker not leading more than this share of the partitions it is the preferred replica of gets them back", "same"),
    broker!("socket.request.max.bytes", "104857600", "bytes", "Largest request accepted; a larger one closes the connection", "same"),
    broker!("admin.listeners", "http://127.0.0.1:9644", "list", "Where the admin HTTP server listens, http://HOST:PORT, comma-separated: /health, /ready, Prometheus /metrics and the web console; empty turns it off", "Vltava's own: Kafka has no HTTP server and exposes metrics over JMX"),
    broker!("schema.registry.listeners", "http://127.0.0.1:8081", "list", "Where the schema registry (Confluent's REST API) listens, http://HOST:PORT, comma-separated; empty turns it off", "Vltava's own: Confluent runs its registry as a separate service, on port 8081"),
    broker!("rest.proxy.listeners", "http://127.0.0.1:8082", "list", "Where the REST proxy (Confluent's REST Proxy API v3 and v2 consumers) listens, http://HOST:PORT, comma-separated; empty turns it off", "Vltava's own: Confluent runs its REST proxy as a separate service, on port 8082"),
    broker!("rest.proxy.consumer.instance.timeout.ms", "300000", "ms", "A REST proxy v2 consumer instance unused this long is closed (it leaves its group)", "Confluent's consumer.instance.timeout.ms"),
    broker!("admin.console.read.only", "false", "boolean", "true: the web console shows everything and changes nothing (no create, delete, produce or offset reset; such requests get 403)", "Vltava's own"),
    broker!("admin.console.allowed.hosts", "", "list", "Host names the web console answers to besides IP addresses, localhost and the admin.listeners hosts (comma-separated; * for any): a console reached by a DNS name must be named here, which keeps DNS-rebinding pages out", "Vltava's own"),
    broker!("max.connections", "10000", "count", "Connections accepted at once; more are closed at accept", "Kafka's default is unlimited (2147483647)"),
    broker!("connections.max.idle.ms", "600000", "ms", "A connection with no request started within this is closed", "same"),
    broker!("socket.request.read.timeout.ms", "30000", "ms", "How long one request may take to arrive once its first byte has; slower ones close the connection", "Vltava only (Kafka has no server-side read timeout)"),
    broker!("queued.max.request.bytes", "536870912", "bytes", "Request bytes held in memory at once across connections; must be -1 (unbounded) or at least socket.request.max.bytes", "Kafka's default is -1 (unbounded)"),
    broker!("log.retention.check.interval.ms", "300000", "ms", "How often retention and producer-id expiration run", "same"),
    broker!("producer.id.expiration.ms", "86400000", "ms", "Idempotent producer state is dropped this long after the producer's newest batch", "same"),
    broker!("log.flush.scheduler.interval.ms", "1000", "ms", "How often logs are checked against flush.ms", "Kafka's default is 9223372036854775807 (never)"),
    broker!("log.cleaner.io.max.bytes.per.second", "1.7976931348623157E308", "bytes/s", "Compaction's read plus write rate", "same"),
    broker!("log.cleaner.dedupe.buffer.size", "134217728", "bytes", "Memory of the compaction offset map", "same"),
    broker!("log.cleaner.backoff.ms", "15000", "ms", "Pause between compaction passes when nothing is dirty enough", "same"),
    broker!("group.min.session.timeout.ms", "6000", "ms", "Smallest session timeout a classic group member may ask for", "same"),
    broker!("group.max.session.timeout.ms", "1800000", "ms", "Largest session timeout a classic group member may ask for", "same"),
    broker!("group.initial.rebalance.delay.ms", "3000", "ms", "How long a new classic group waits for more members before its first rebalance", "same"),
    broker!("group.max.size", "2147483647", "count", "Members one group may have", "same"),
    broker!("offsets.topic.num.partitions", "50", "count", "Partitions of __consumer_offsets, fixed when it is created", "same"),
    broker!("offsets.topic.segment.bytes", "104857600", "bytes", "Segment size of __consumer_offsets", "same"),
    broker!("offsets.topic.replication.factor", "3", "count", "Copies of each __consumer_offsets partition, fixed when it is created; fewer when fewer brokers are alive then", "Kafka refuses to create it until that many brokers are alive"),
    broker!("offset.metadata.max.bytes", "4096", "bytes", "Largest metadata string of a committed offset", "same"),
    broker!("group.consumer.session.timeout.ms", "45000", "ms", "Session timeout of KIP-848 consumer group members", "same"),
    broker!("group.consumer.heartbeat.interval.ms", "5000", "ms", "Heartbeat interval the broker gives KIP-848 consumer group members", "same"),
];

/// The default of a broker-level config.
fn broker_default(name: &str) -> Option<&'static str> {
    BROKER_CONFIGS
        .iter()
        .find(|d| d.name == name)
        .map(|d| d.default)
}

/// The unit of a topic config, from Kafka's naming (`.ms`, `.bytes`).
fn topic_unit(def: &TopicConfigDef) -> &'static str {
    match def.config_type {
        ConfigType::Boolean => "boolean",
        ConfigType::Double => "ratio",
        ConfigType::List | ConfigType::String => "",
        ConfigType::Int | ConfigType::Long if def.name.ends_with(".ms") => "ms",
        ConfigType::Int | ConfigType::Long if def.name.ends_with(".bytes") => "bytes",
        ConfigType::Int | ConfigType::Long => "count",
    }
}

/// `docs/configuration.md`: every broker and topic config from the tables
/// in this file. A test keeps the file in sync (set VLTAVA_UPDATE_DOCS=1
/// when running it to rewrite the file).
pub fn configuration_markdown() -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out = String::from(
        "# Configuration\n\n\
<!-- Generated from crates/vltava-broker/src/config.rs by the test\n\
     config::tests::configuration_doc_is_in_sync; run it with\n\
     VLTAVA_UPDATE_DOCS=1 to rewrite this file. Do not edit by hand. -->\n\n\
Every key uses Kafka's name. Broker keys are read at start from\n\
`vltava server --config server.properties` and `--override key=value`\n\
(later wins). Keys marked dynamic, and every broker key that sets a topic\n\
default (the topic table's fifth column), can also be changed while the\n\
broker runs, for one broker or cluster-wide, with `vltava configs\n\
--entity-type brokers --entity-name N|--entity-default --alter` (AlterConfigs\n\
or IncrementalAlterConfigs): stored in the metadata log, applied at once,\n\
and winning over the file (per-broker over cluster-wide over static over\n\
default, as Kafka's sources DYNAMIC_BROKER_CONFIG,\n\
DYNAMIC_DEFAULT_BROKER_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG). The\n\
time synonyms are stored as their `ms` key. Changing any other key at run\n\
time is refused with INVALID_REQUEST, as Kafka refuses a static config.\n\
Unknown broker keys in the file are logged and ignored, as Kafka does. Topic keys are set per topic with\n\
CreateTopics, AlterConfigs or IncrementalAlterConfigs (`vltava topics\n\
--create --config`, `vltava configs --alter`) and apply at once; each takes\n\
its default from the broker key named beside it. Unknown topic keys are\n\
refused with INVALID_CONFIG.\n\n\
## Broker\n\n\
| Key | Default | Unit | Dynamic | Meaning | Kafka |\n\
|-----|---------|------|---------|---------|-------|\n",
    );
    let default = |d: &str| {
        if d.is_empty() {
            "(empty)".to_string()
        } else {
            format!("`{}`", cell(d))
        }
    };
    for d in BROKER_CONFIGS {
        let dynamic = if is_dynamic_broker_config(d.name) {
            "yes"
        } else {
            "no"
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {dynamic} | {} | {} |\n",
            d.name,
            default(d.default),
            d.unit,
            cell(d.doc),
            cell(d.kafka)
        ));
    }
    out.push_str("\nSynonyms, as in Kafka: `log.dir` for `log.dirs`; ");
    let synonyms: Vec<String> = TIME_SYNONYMS
        .iter()
        .flat_map(|(canonical, list)| {
            list.iter()
                .map(move |(name, _)| format!("`{name}` for `{canonical}`"))
        })
        .collect();
    out.push_str(&synonyms.join("; "));
    out.push_str(
        " (the most precise one set wins).\n\n## Topic\n\n\
| Key | Default | Unit | Dynamic | Broker key for the default | Meaning | Kafka |\n\
|-----|---------|------|---------|----------------------------|---------|-------|\n",
    );
    for d in TOPIC_CONFIGS {
        let allowed = if d.allowed.is_empty() {
            String::new()
        } else {
            format!(" (one of: {})", d.allowed.join(", "))
        };
        // Where Vltava's accepted values differ from Kafka's.
        let kafka = match d.name {
            "compression.type" => "Kafka also accepts a codec and recompresses to it",
            n if n.starts_with("confluent.") => {
                "Confluent Server's (Apache Kafka has no server-side schema validation)"
            }
            _ => "same",
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | yes | `{}` | {}{} | {} |\n",
            d.name,
            default(d.default),
            topic_unit(d),
            d.broker_name,
            cell(d.doc),
            allowed,
            kafka
        ));
    }
    out
}

/// `unsafe.testing.storage.fault.file`: read only when the environment
/// names it too, so that a test configuration copied to a real broker makes
/// it refuse to start instead of failing its own disk.
fn storage_fault_control(value: &str) -> Result<Option<PathBuf>, String> {
    use crate::storage_faults::UNSAFE_TESTING_ENV;
    if value.is_empty() {
        return Ok(None);
    }
    if std::env::var(UNSAFE_TESTING_ENV).as_deref() != Ok("1") {
        return Err(format!(
            "unsafe.testing.storage.fault.file is a test-only setting that makes the broker fail its own disk; it is refused unless the environment has {UNSAFE_TESTING_ENV}=1"
        ));
    }
    Ok(Some(PathBuf::from(value)))
}

/// Time-unit synonyms Kafka accepts, most precise first.
const TIME_SYNONYMS: &[(&str, &[(&str, i64)])] = &[
    (
        "log.retention.ms",
        &[
            ("log.retention.minutes", 60_000),
            ("log.retention.hours", 3_600_000),
        ],
    ),
    ("log.roll.ms", &[("log.roll.hours", 3_600_000)]),
];

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Keys set explicitly (file or override), after synonym resolution.
    explicit: BTreeMap<String, String>,
    pub node_id: i32,
    pub listeners: Vec<Listener>,
    pub advertised_listeners: Vec<Listener>,
    /// The listener of `controller.listener.names`, which carries the
    /// metadata quorum's RPCs (not in `listeners`, never given to clients).
    pub controller_listener: Option<ControllerListener>,
    /// A broker-only node (`process.roles=broker`): the voters whose
    /// committed metadata it fetches (it is not one of them).
    pub observed_voters: Option<BTreeMap<u64, String>>,
    /// `broker.rack`; `None` when empty.
    pub rack: Option<String>,
    /// `broker.heartbeat.interval.ms`.
    pub broker_heartbeat_interval_ms: u64,
    /// `broker.session.timeout.ms`.
    pub broker_session_timeout_ms: u64,
    pub log_dirs: Vec<PathBuf>,
    pub num_partitions: i32,
    pub auto_create_topics_enable: bool,
    pub default_replication_factor: i16,
    pub replication: ReplicationSettings,
    pub socket_request_max_bytes: usize,
    pub max_connections: usize,
    /// `admin.listeners`: HOST:PORT addresses of the admin HTTP server
    /// (none: off).
    pub admin_listeners: Vec<String>,
    /// `schema.registry.listeners`: HOST:PORT addresses of the schema
    /// registry (empty: off).
    pub schema_registry_listeners: Vec<String>,
    /// `rest.proxy.listeners`: HOST:PORT addresses of the REST proxy
    /// (empty: off).
    pub rest_proxy_listeners: Vec<String>,
    /// `rest.proxy.consumer.instance.timeout.ms`.
    pub rest_proxy_consumer_instance_timeout: std::time::Duration,
    /// `admin.console.read.only`: the console refuses every write action.
    pub admin_console_read_only: bool,
    /// `admin.console.allowed.hosts`: host names (lowercase, no port) the
    /// console answers to beyond IP literals, `localhost` and the
    /// `admin.listeners` hosts; `*` for any.
    pub admin_console_allowed_hosts: Vec<String>,
    /// `connections.max.idle.ms`: a connection with no request started (or a
    /// response not written) within this is closed.
    pub connections_max_idle_ms: u64,
    /// `socket.request.read.timeout.ms`: time allowed for the rest of a
    /// request once its first byte has arrived (slow senders are closed).
    pub socket_request_read_timeout_ms: u64,
    /// `queued.max.request.bytes`: request bytes held in memory across all
    /// connections; `None` (-1) is unbounded.
    pub queued_max_request_bytes: Option<usize>,
    pub log_retention_check_interval_ms: u64,
    /// `producer.id.expiration.ms`: an idempotent producer's state is
    /// dropped this long after its newest batch (checked on the retention
    /// timer).
    pub producer_id_expiration_ms: i64,
    pub log_flush_scheduler_interval_ms: u64,
    /// `unsafe.testing.storage.fault.file` (test-only; see
    /// `storage_faults`).
    pub storage_fault_control: Option<PathBuf>,
    pub cleaner: CleanerSettings,
    pub groups: crate::group::GroupSettings,
}

/// How followers fetch from their leaders and when they fall out of sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationSettings {
    /// `replica.lag.time.max.ms`.
    pub lag_time_max_ms: i64,
    /// `replica.fetch.wait.max.ms`.
    pub fetch_wait_max_ms: i32,
    /// `replica.fetch.max.bytes`, per partition.
    pub fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`.
    pub fetch_response_max_bytes: i32,
    /// `replica.fetch.backoff.ms`.
    pub fetch_backoff_ms: u64,
    /// `inter.broker.listener.name`: the leader's registered address on
    /// this listener is where a follower fetches.
    pub inter_broker_listener: String,
    /// `auto.leader.rebalance.enable`.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`, in ms.
    pub leader_imbalance_check_interval_ms: u64,
    /// `leader.imbalance.per.broker.percentage`.
    pub leader_imbalance_percent: u32,
    /// `replica.selector.class` names the rack-aware selector: leaders
    /// send consumers that name their rack to an in-sync replica there.
    pub rack_aware_reads: bool,
}

/// The one `replica.selector.class` there is (Kafka's class name, so
/// existing configs work unchanged).
pub const RACK_AWARE_REPLICA_SELECTOR: &str =
    "org.apache.kafka.common.replica.RackAwareReplicaSelector";

impl BrokerConfig {
    /// Builds the config from `key=value` pairs (a properties file and then
    /// overrides, later wins). Unknown keys are returned so the caller can
    /// warn about them, as Kafka does, rather than refuse to start.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<(BrokerConfig, Vec<String>), String> {
        let mut explicit = BTreeMap::new();
        let mut unknown = Vec::new();
        for (key, value) in pairs {
            let key = key.trim();
            let key = if key == "log.dir" { "log.dirs" } else { key };
            let known = broker_default(key).is_some()
                || topic_config_of_broker_key(key).is_some()
                || TIME_SYNONYMS
                    .iter()
                    .any(|(_, syn)| syn.iter().any(|(s, _)| *s == key));
            if !known {
                unknown.push(key.to_string());
            }
            explicit.insert(key.to_string(), value.trim().to_string());
        }
        for (canonical, synonyms) in TIME_SYNONYMS {
            if explicit.contains_key(*canonical) {
                continue;
            }
            for (synonym, factor) in *synonyms {
                if let Some(value) = explicit.get(*synonym) {
                    let n: i64 = value
                        .parse()
                        .map_err(|_| format!("{synonym}={value} is not a number"))?;
                    explicit.insert(
                        canonical.to_string(),
                        (n.saturating_mul(*factor)).to_string(),
                    );
                    break;
                }
            }
        }
        for def in TOPIC_CONFIGS {
            if let Some(value) = explicit.get(def.broker_name) {
                validate_value(
                    def.broker_name,
                    def.config_type,
                    def.allowed,
                    def.min,
                    value,
                )
                .map_err(|e| e.to_string())?;
            }
        }
        let get = |key: &str| -> String {
            explicit
                .get(key)
                .cloned()
                .unwrap_or_else(|| broker_default(key).unwrap_or_default().to_string())
        };
        let number = |key: &str| -> Result<i64, String> {
            get(key)
                .parse()
                .map_err(|_| format!("{key}={} is not a number", get(key)))
        };
        let mut listeners = parse_listeners(&get("listeners"))?;
        if listeners.is_empty() {
            return Err("listeners must name at least one listener".into());
        }
        let advertised_explicitly = !get("advertised.listeners").is_empty();
        let mut advertised = match get("advertised.listeners").as_str() {
            "" => listeners.clone(),
            spec => parse_listeners(spec)?,
        };
        check_security(
            &get("listener.security.protocol.map"),
            listeners.iter().chain(&advertised),
        )?;
        // Kafka's rule: every advertised name is a listener, once each.
        for (i, a) in advertised.iter().enumerate() {
            if !listeners.iter().any(|l| l.name == a.name) {
                return Err(format!(
                    "advertised.listeners names {}, which is not one of listeners: advertised listener names must be equal to or a subset of the ones in listeners",
                    a.name
                ));
            }
            if advertised[..i].iter().any(|b| b.name == a.name) {
                return Err(format!("advertised.listeners names {} twice", a.name));
            }
        }
        let broker_only = refuse_cluster_settings(&explicit)?;
        let (controller_listener, observed_voters) = match broker_only {
            true => (
                None,
                Some(broker_only_voters(
                    &explicit,
                    number("node.id")?,
                    &listeners,
                )?),
            ),
            false => (
                controller_listener(
                    &explicit,
                    number("node.id")?,
                    &mut listeners,
                    &mut advertised,
                    advertised_explicitly,
                )?,
                None,
            ),
        };
        // Checked only when set: no broker talks to another yet, and a file
        // whose one listener has its own name must keep starting.
        let inter_broker = get("inter.broker.listener.name");
        if explicit.contains_key("inter.broker.listener.name")
            && !listeners
                .iter()
                .any(|l| l.name.eq_ignore_ascii_case(&inter_broker))
        {
            return Err(format!(
                "inter.broker.listener.name={inter_broker} is not one of the broker's listeners"
            ));
        }
        let log_dirs: Vec<PathBuf> = get("log.dirs")
            .split(',')
            .map(|d| PathBuf::from(d.trim()))
            .collect();
        let default_replication_factor = number("default.replication.factor")?;
        if !(1..=i64::from(i16::MAX)).contains(&default_replication_factor) {
            return Err(format!(
                "default.replication.factor={default_replication_factor} must be at least 1"
            ));
        }
        let heartbeat = number("broker.heartbeat.interval.ms")?;
        let session = number("broker.session.timeout.ms")?;
        if heartbeat >= session {
            return Err(format!(
                "broker.heartbeat.interval.ms={heartbeat} must be below broker.session.timeout.ms={session}, or every broker would be fenced between its heartbeats"
            ));
        }
        let selector = get("replica.selector.class").trim().to_string();
        if !selector.is_empty() && selector != RACK_AWARE_REPLICA_SELECTOR {
            return Err(format!(
                "replica.selector.class={selector} is not a selector Vltava has: set {RACK_AWARE_REPLICA_SELECTOR} or leave it unset"
            ));
        }
        let storage_fault_control =
            storage_fault_control(&get("unsafe.testing.storage.fault.file"))?;
        let num_partitions = number("num.partitions")?;
        if num_partitions < 1 {
            return Err("num.partitions must be at least 1".into());
        }
        let config = BrokerConfig {
            node_id: i32::try_from(number("node.id")?).map_err(|_| "node.id out of range")?,
            listeners,
            advertised_listeners: advertised,
            controller_listener,
            observed_voters,
            rack: Some(get("broker.rack").trim().to_string()).filter(|r| !r.is_empty()),
            broker_heartbeat_interval_ms: number("broker.heartbeat.interval.ms")?.max(1) as u64,
            broker_session_timeout_ms: number("broker.session.timeout.ms")?.max(1) as u64,
            log_dirs,
            num_partitions: num_partitions as i32,
            auto_create_topics_enable: get("auto.create.topics.enable")
                .eq_ignore_ascii_case("true"),
            default_replication_factor: default_replication_factor as i16,
            replication: ReplicationSettings {
                lag_time_max_ms: number("replica.lag.time.max.ms")?.max(1),
                fetch_wait_max_ms: number("replica.fetch.wait.max.ms")?
                    .clamp(0, i64::from(i32::MAX)) as i32,
                fetch_max_bytes: number("replica.fetch.max.bytes")?.clamp(1, i64::from(i32::MAX))
                    as i32,
                fetch_response_max_bytes: number("replica.fetch.response.max.bytes")?
                    .clamp(1, i64::from(i32::MAX)) as i32,
                fetch_backoff_ms: number("replica.fetch.backoff.ms")?.max(1) as u64,
                inter_broker_listener: inter_broker.clone(),
                auto_leader_rebalance: get("auto.leader.rebalance.enable")
                    .eq_ignore_ascii_case("true"),
                leader_imbalance_check_interval_ms: (number(
                    "leader.imbalance.check.interval.seconds",
                )?
                .clamp(1, i64::from(u32::MAX))
                    as u64)
                    * 1000,
                leader_imbalance_percent: number("leader.imbalance.per.broker.percentage")?
                    .clamp(0, 100) as u32,
                rack_aware_reads: !selector.is_empty(),
            },
            socket_request_max_bytes: number("socket.request.max.bytes")?.max(1) as usize,
            max_connections: number("max.connections")?.max(1) as usize,
            admin_listeners: parse_admin_listeners(&get("admin.listeners"))?,
            schema_registry_listeners: parse_http_listeners(
                "schema.registry.listeners",
                &get("schema.registry.listeners"),
            )?,
            rest_proxy_listeners: parse_http_listeners(
                "rest.proxy.listeners",
                &get("rest.proxy.listeners"),
            )?,
            rest_proxy_consumer_instance_timeout: std::time::Duration::from_millis(
                number("rest.proxy.consumer.instance.timeout.ms")?
                    .max(REST_CONSUMER_INSTANCE_TIMEOUT_MIN_MS) as u64,
            ),
            admin_console_read_only: get("admin.console.read.only").eq_ignore_ascii_case("true"),
            admin_console_allowed_hosts: get("admin.console.allowed.hosts")
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            connections_max_idle_ms: number("connections.max.idle.ms")?.max(1) as u64,
            socket_request_read_timeout_ms: number("socket.request.read.timeout.ms")?.max(1) as u64,
            queued_max_request_bytes: queued_max_request_bytes(
                number("queued.max.request.bytes")?,
                number("socket.request.max.bytes")?,
            )?,
            log_retention_check_interval_ms: number("log.retention.check.interval.ms")?.max(1)
                as u64,
            producer_id_expiration_ms: number("producer.id.expiration.ms")?.max(1),
            log_flush_scheduler_interval_ms: number("log.flush.scheduler.interval.ms")?.max(1)
                as u64,
            storage_fault_control,
            cleaner: CleanerSettings {
                io_max_bytes_per_second: get("log.cleaner.io.max.bytes.per.second")
                    .parse()
                    .map_err(|_| "log.cleaner.io.max.bytes.per.second is not a number")?,
                dedupe_buffer_bytes: number("log.cleaner.dedupe.buffer.size")?.max(0) as u64,
                backoff_ms: number("log.cleaner.backoff.ms")?.max(1) as u64,
            },
            groups: crate::group::GroupSettings {
                min_session_timeout_ms: clamp_i32(number("group.min.session.timeout.ms")?),
                max_session_timeout_ms: clamp_i32(number("group.max.session.timeout.ms")?),
                initial_rebalance_delay_ms: number("group.initial.rebalance.delay.ms")?.max(0),
                max_size: number("group.max.size")?.max(1) as usize,
                offsets_partitions: clamp_i32(number("offsets.topic.num.partitions")?).max(1),
                offsets_segment_bytes: number("offsets.topic.segment.bytes")?.max(14),
                offsets_replication_factor: number("offsets.topic.replication.factor")?
                    .clamp(1, i64::from(i16::MAX))
                    as u16,
                offset_metadata_max_bytes: number("offset.metadata.max.bytes")?.max(0) as usize,
                consumer_session_timeout_ms: clamp_i32(number(
                    "group.consumer.session.timeout.ms",
                )?)
                .max(1),
                consumer_heartbeat_interval_ms: clamp_i32(number(
                    "group.consumer.heartbeat.interval.ms",
                )?)
                .max(1),
            },
            explicit,
        };
        Ok((config, unknown))
    }

    /// The static default of a topic config: its broker key as
    /// server.properties or `--override` set it, else Kafka's default (the
    /// broker puts dynamic values on top).
    pub fn topic_default(&self, def: &TopicConfigDef) -> String {
        self.explicit
            .get(def.broker_name)
            .cloned()
            .unwrap_or_else(|| def.default.to_string())
    }

    /// A broker key's static value (server.properties or `--override`), if
    /// one was given.
    pub fn static_value(&self, key: &str) -> Option<&str> {
        self.explicit.get(key).map(String::as_str)
    }

    /// Kafka's default for a broker key (a broker-level key or one that
    /// sets a topic default).
    pub fn default_value(key: &str) -> Option<&'static str> {
        broker_default(key).or_else(|| topic_config_of_broker_key(key).map(|d| d.default))
    }

    /// Every broker config Vltava knows, with value and source, for
    /// DescribeConfigs on a broker resource.
    pub fn describe(&self) -> Vec<(String, String, ConfigSource)> {
        let mut out: BTreeMap<String, (String, ConfigSource)> = BTreeMap::new();
        for def in BROKER_CONFIGS {
            out.insert(
                def.name.to_string(),
                (def.default.to_string(), ConfigSource::Default),
            );
        }
        for def in TOPIC_CONFIGS {
            out.insert(
                def.broker_name.to_string(),
                (def.default.to_string(), ConfigSource::Default),
            );
        }
        for (key, value) in &self.explicit {
            if let Some(entry) = out.get_mut(key) {
                *entry = (value.clone(), ConfigSource::StaticBroker);
            }
        }
        out.into_iter().map(|(k, (v, s))| (k, v, s)).collect()
    }

    /// The data directory (the first of `log.dirs`; more are not used yet).
    pub fn data_dir(&self) -> &PathBuf {
        &self.log_dirs[0]
    }
}

fn clamp_i32(n: i64) -> i32 {
    n.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// Kafka's security protocols, by the names `listener.security.protocol.map`
/// uses.
const SECURITY_PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// The protocols Vltava serves today. A listener that promises more must not
/// start as plaintext: a TLS client would fail confusingly and a plaintext
/// tool would succeed where the operator meant to require security.
const SECURITY_PROTOCOLS_IMPLEMENTED: &[&str] = &["PLAINTEXT"];

/// Every listener name must map to a security protocol, and that protocol
/// must be one Vltava implements.
fn check_security<'a>(
    map_spec: &str,
    listeners: impl Iterator<Item = &'a Listener>,
) -> Result<(), String> {
    let mut map = BTreeMap::new();
    for entry in map_spec.split(',').filter(|e| !e.trim().is_empty()) {
        let (name, protocol) = entry.trim().split_once(':').ok_or_else(|| {
            format!("listener.security.protocol.map entry '{entry}' is not NAME:PROTOCOL")
        })?;
        let protocol = protocol.trim().to_ascii_uppercase();
        if !SECURITY_PROTOCOLS.contains(&protocol.as_str()) {
            return Err(format!(
                "listener.security.protocol.map: unknown security protocol '{protocol}' (known: {})",
                SECURITY_PROTOCOLS.join(", ")
            ));
        }
        map.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    for listener in listeners {
        let name = listener.name.to_ascii_uppercase();
        let Some(protocol) = map.get(&name) else {
            return Err(format!(
                "listener {name} has no security protocol: add {name}:PLAINTEXT (or another) to listener.security.protocol.map{}",
                if name == "CONTROLLER" {
                    " (Kafka's KRaft files map CONTROLLER:PLAINTEXT)"
                } else {
                    ""
                }
            ));
        };
        if !SECURITY_PROTOCOLS_IMPLEMENTED.contains(&protocol.as_str()) {
            return Err(format!(
                "listener {name} uses security protocol {protocol}, which Vltava does not implement yet; it serves {} only. Refusing to start rather than serve that listener without the security it promises",
                SECURITY_PROTOCOLS_IMPLEMENTED.join(", ")
            ));
        }
    }
    Ok(())
}

fn parse_listeners(spec: &str) -> Result<Vec<Listener>, String> {
    spec.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(Listener::parse)
        .collect()
}

/// Parses a Java-style properties file: `key=value` or `key: value` lines,
/// `#`/`!` comments. Line continuations are not supported.
pub fn parse_properties(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let at = l.find(['=', ':'])?;
            Some((l[..at].trim().to_string(), l[at + 1..].trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_listeners_are_http_addresses_and_empty_turns_them_off() {
        assert_eq!(
            parse_admin_listeners("http://127.0.0.1:9644").unwrap(),
            ["127.0.0.1:9644"]
        );
        assert_eq!(
            parse_admin_listeners(" http://:9644/ , http://[::1]:9645").unwrap(),
            ["0.0.0.0:9644", "[::1]:9645"]
        );
        assert!(parse_admin_listeners("").unwrap().is_empty());
        let err = parse_http_listeners("schema.registry.listeners", "8081").unwrap_err();
        assert!(err.starts_with("schema.registry.listeners=8081"), "{err}");
        for (bad, why) in [
            ("https://127.0.0.1:9644", "TLS"),
            ("127.0.0.1:9644", "must be http://HOST:PORT"),
            ("http://localhost", "has no port"),
            ("http://localhost:99999", "no valid port"),
        ] {
            let err = parse_admin_listeners(bad).unwrap_err();
            assert!(
                err.contains("admin.listeners=") && err.contains(why),
                "{bad}: {err}"
            );
        }
    }

    /// docs/configuration.md is this table. Run with VLTAVA_UPDATE_DOCS=1
    /// to rewrite it after changing a config.
    #[test]
    fn configuration_doc_is_in_sync() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
        let expected = configuration_markdown();
        if std::env::var_os("VLTAVA_UPDATE_DOCS").is_some() {
            std::fs::write(&path, &expected).expect("write docs/configuration.md");
        }
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            actual == expected,
            "docs/configuration.md is out of date: run `VLTAVA_UPDATE_DOCS=1 cargo test -p vltava-broker configuration_doc` and commit it"
        );
        // Every row names a key the broker reads: a key in the file but in
        // neither table would be advertised and ignored.
        for line in actual.lines().filter(|l| l.starts_with("| `")) {
            let key = line.trim_start_matches("| `").split('`').next().unwrap();
            assert!(
                broker_default(key).is_some() || topic_config_def(key).is_some(),
                "{key} is documented but not read"
            );
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Kafka's single-node KRaft server.properties, as shipped.
    const KAFKA_KRAFT_FILE: &[(&str, &str)] = &[
        ("process.roles", "broker,controller"),
        ("node.id", "1"),
        ("controller.quorum.voters", "1@localhost:9093"),
        ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
        ("inter.broker.listener.name", "PLAINTEXT"),
        ("advertised.listeners", "PLAINTEXT://localhost:9092"),
        ("controller.listener.names", "CONTROLLER"),
        (
            "listener.security.protocol.map",
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        ),
    ];

    #[test]
    fn kafkas_single_node_kraft_file_runs_as_is() {
        let (config, unknown) = BrokerConfig::from_pairs(&pairs(KAFKA_KRAFT_FILE)).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        let names = |l: &[Listener]| l.iter().map(|l| l.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&config.listeners), ["PLAINTEXT"]);
        assert_eq!(names(&config.advertised_listeners), ["PLAINTEXT"]);
        let controller = config.controller_listener.unwrap();
        assert_eq!(
            (controller.bind.name.as_str(), controller.bind.port),
            ("CONTROLLER", 9093)
        );
        // Peers reach it at the voter's address.
        assert_eq!(controller.address(), "localhost:9093");
        assert_eq!(
            controller.voters,
            [(1, "localhost:9093".to_string())].into()
        );
        // Three voters: this node is one of them, peers at theirs.
        let mut three: Vec<(&str, &str)> = KAFKA_KRAFT_FILE.to_vec();
        three.push((
            "controller.quorum.voters",
            "1@127.0.0.1:19093,2@127.0.0.1:29093,3@[::1]:39093",
        ));
        let controller = BrokerConfig::from_pairs(&pairs(&three))
            .unwrap()
            .0
            .controller_listener
            .unwrap();
        assert_eq!(controller.address(), "127.0.0.1:19093");
        assert_eq!(
            controller.voters.values().collect::<Vec<_>>(),
            ["127.0.0.1:19093", "127.0.0.1:29093", "[::1]:39093"]
        );
        // Kafka 4's form: the one controller to bootstrap from.
        let mut kafka4: Vec<(&str, &str)> = KAFKA_KRAFT_FILE
            .iter()
            .filter(|(k, _)| *k != "controller.quorum.voters")
            .copied()
            .collect();
        kafka4.push(("controller.quorum.bootstrap.servers", "localhost:9093"));
        assert!(BrokerConfig::from_pairs(&pairs(&kafka4))
            .unwrap()
            .0
            .controller_listener
            .is_some());
        // Kafka 3.9+ advertises the controller (KIP-853): peers use that
        // entry, clients never see it. Names are Kafka's, in any case.
        kafka4.retain(|(k, _)| *k != "advertised.listeners");
        kafka4.push((
            "advertised.listeners",
            "plaintext://localhost:9092,controller://ctl:9093",
        ));
        let (config, _) = BrokerConfig::from_pairs(&pairs(&kafka4)).unwrap();
        assert_eq!(names(&config.advertised_listeners), ["PLAINTEXT"]);
        assert_eq!(config.controller_listener.unwrap().address(), "ctl:9093");
    }

    #[test]
    fn quorum_settings_kafka_refuses_or_a_cluster_are_refused() {
        let with = |changes: &[(&str, &str)]| {
            let mut list: Vec<(&str, &str)> = KAFKA_KRAFT_FILE.to_vec();
            list.extend_from_slice(changes);
            BrokerConfig::from_pairs(&pairs(&list)).unwrap_err()
        };
        for (changes, start) in [
            (
                &[("controller.quorum.voters", "2@h1:9093,3@h3:9093")][..],
                "controller.quorum.voters=2@h1:9093,3@h3:9093 does not name this node (node.id=1)",
            ),
            (
                &[("controller.quorum.voters", "2@localhost:9093")][..],
                "controller.quorum.voters=2@localhost:9093 does not name this node",
            ),
            (
                &[("controller.quorum.voters", "1@h1:9093,1@h2:9093")][..],
                "controller.quorum.voters names node 1 twice",
            ),
            (
                &[("controller.quorum.voters", "1@h1:9093,x@h2:9093")][..],
                "controller.quorum.voters entry 'x@h2:9093' has no valid node id",
            ),
            (
                &[("controller.quorum.voters", "1@h1:9093,h2:9093")][..],
                "controller.quorum.voters entry 'h2:9093' is not of the form id@host:port",
            ),
            (
                &[("controller.quorum.bootstrap.servers", "h1:9093,h2:9093")][..],
                "controller.quorum.bootstrap.servers=h1:9093,h2:9093 names several controllers",
            ),
            (
                &[("controller.listener.names", "")][..],
                "controller.listener.names must be set when the controller quorum is configured",
            ),
            (
                &[("controller.listener.names", "QUORUM")][..],
                "controller.listener.names names QUORUM, which is not one of listeners",
            ),
            (
                &[
                    (
                        "advertised.listeners",
                        "PLAINTEXT://localhost:9092,EXTERNAL://h:9094",
                    ),
                    (
                        "listener.security.protocol.map",
                        "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,EXTERNAL:PLAINTEXT",
                    ),
                ][..],
                "advertised.listeners names EXTERNAL, which is not one of listeners",
            ),
            (
                &[(
                    "advertised.listeners",
                    "PLAINTEXT://a:9092,plaintext://b:9092",
                )][..],
                "advertised.listeners names PLAINTEXT twice",
            ),
            (
                &[("controller.quorum.voters", "1@")][..],
                "controller.quorum.voters: listener 'CONTROLLER://' has no port",
            ),
            (
                &[
                    ("listeners", "CONTROLLER://:9093"),
                    ("advertised.listeners", ""),
                ][..],
                "listeners must name at least one listener besides the controller's",
            ),
            (
                &[("inter.broker.listener.name", "INTERNAL")][..],
                "inter.broker.listener.name=INTERNAL is not one of the broker's listeners",
            ),
            (
                &[("replica.selector.class", "com.example.MySelector")][..],
                "replica.selector.class=com.example.MySelector is not a selector Vltava has",
            ),
            // The test process never sets VLTAVA_UNSAFE_TESTING.
            (
                &[("unsafe.testing.storage.fault.file", "/tmp/faults")][..],
                "unsafe.testing.storage.fault.file is a test-only setting",
            ),
        ] {
            let err = with(changes);
            assert!(err.starts_with(start), "{changes:?}: {err}");
        }
    }

    #[test]
    fn cluster_settings_are_refused_until_clusters_exist() {
        let refused = |list: &[(&str, &str)]| BrokerConfig::from_pairs(&pairs(list)).unwrap_err();
        assert!(refused(&[("process.roles", "controller")])
            .starts_with("process.roles=controller is not supported yet"));
        // A broker-only node: Kafka's rules.
        assert!(refused(&[("process.roles", "broker")])
            .starts_with("controller.listener.names must be set on a broker-only node"));
        let broker_only = |extra: &[(&str, &str)]| {
            let mut list = vec![
                ("process.roles", "broker"),
                ("node.id", "4"),
                ("controller.listener.names", "CONTROLLER"),
                ("controller.quorum.voters", "1@h1:9093,2@h2:9093,3@h3:9093"),
            ];
            list.extend_from_slice(extra);
            BrokerConfig::from_pairs(&pairs(&list))
        };
        let (config, _) = broker_only(&[]).unwrap();
        assert_eq!(config.controller_listener, None);
        assert_eq!(
            config
                .observed_voters
                .unwrap()
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert!(broker_only(&[("node.id", "2")])
            .unwrap_err()
            .starts_with("node.id=2 is one of controller.quorum.voters, but process.roles=broker"));
        assert!(broker_only(&[
            ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
            )
        ])
        .unwrap_err()
        .starts_with("controller.listener.names must not name a listener of a broker-only node"));
        // The combined role (either order) and empty cluster keys are fine.
        for ok in [
            vec![("process.roles", "broker,controller")],
            vec![("process.roles", "controller, broker")],
            vec![("controller.quorum.voters", "")],
        ] {
            let (_, unknown) = BrokerConfig::from_pairs(&pairs(&ok)).unwrap();
            assert!(unknown.is_empty(), "{unknown:?}");
        }
    }

    #[test]
    fn zero_config_defaults() {
        let (config, unknown) = BrokerConfig::from_pairs(&[]).unwrap();
        assert!(unknown.is_empty());
        assert_eq!(config.node_id, 1);
        assert_eq!(config.listeners[0].port, 9092);
        assert_eq!(config.data_dir(), &PathBuf::from("./vltava-data"));
        let topic = TopicConfig::resolve_with(|def| config.topic_default(def), &BTreeMap::new());
        assert_eq!(topic.get("retention.ms"), "604800000");
        assert_eq!(topic.max_message_bytes(), 1048588);
        assert_eq!(config.producer_id_expiration_ms, 86_400_000);
        let pairs = pairs(&[("producer.id.expiration.ms", "60000")]);
        let (config, _) = BrokerConfig::from_pairs(&pairs).unwrap();
        assert_eq!(config.producer_id_expiration_ms, 60_000);
    }

    #[test]
    fn listeners_that_promise_security_refuse_to_start() {
        let start = |list: &[(&str, &str)]| BrokerConfig::from_pairs(&pairs(list)).map(|_| ());
        for protocol in ["SSL", "SASL_PLAINTEXT", "SASL_SSL"] {
            let listener = format!("{protocol}://127.0.0.1:9093");
            let err = start(&[("listeners", &listener)]).unwrap_err();
            assert!(
                err.contains(&format!("security protocol {protocol}")),
                "{err}"
            );
        }
        // A listener renamed onto a secure protocol is refused too.
        let err = start(&[
            ("listeners", "INTERNAL://127.0.0.1:9093"),
            ("listener.security.protocol.map", "INTERNAL:SSL"),
        ])
        .unwrap_err();
        assert!(
            err.contains("listener INTERNAL uses security protocol SSL"),
            "{err}"
        );
        // So is an advertised one.
        let err = start(&[("advertised.listeners", "SSL://broker:9093")]).unwrap_err();
        assert!(
            err.contains("listener SSL uses security protocol SSL"),
            "{err}"
        );
        let err = start(&[("listeners", "INTERNAL://127.0.0.1:9093")]).unwrap_err();
        assert!(
            err.contains("listener INTERNAL has no security protocol"),
            "{err}"
        );
        let err = start(&[("listeners", "CONTROLLER://127.0.0.1:9093")]).unwrap_err();
        assert!(
            err.contains("add CONTROLLER:PLAINTEXT (or another) to listener.security.protocol.map (Kafka's KRaft files map CONTROLLER:PLAINTEXT)"),
            "{err}"
        );
        let err = start(&[("listener.security.protocol.map", "PLAINTEXT:TLS")]).unwrap_err();
        assert!(err.contains("unknown security protocol 'TLS'"), "{err}");
        // A custom name mapped to PLAINTEXT is fine.
        start(&[
            ("listeners", "INTERNAL://127.0.0.1:9093"),
            ("listener.security.protocol.map", "INTERNAL:PLAINTEXT"),
        ])
        .unwrap();
    }

    #[test]
    fn broker_synonyms_feed_topic_defaults() {
        let (config, unknown) = BrokerConfig::from_pairs(&pairs(&[
            ("log.retention.hours", "2"),
            ("message.max.bytes", "1000"),
            ("zookeeper.connect", "x"),
        ]))
        .unwrap();
        assert_eq!(unknown, vec!["zookeeper.connect".to_string()]);
        let mut overrides = BTreeMap::new();
        overrides.insert("retention.bytes".to_string(), "5".to_string());
        let topic = TopicConfig::resolve_with(|def| config.topic_default(def), &overrides);
        assert_eq!(topic.get("retention.ms"), "7200000");
        assert_eq!(topic.get("max.message.bytes"), "1000");
        assert_eq!(topic.get("retention.bytes"), "5");
    }

    #[test]
    fn topic_config_validation() {
        assert_eq!(
            validate_topic_config("retention.mss", "1"),
            Err(ConfigError::Unknown("retention.mss".into()))
        );
        assert!(validate_topic_config("retention.ms", "abc").is_err());
        assert!(validate_topic_config("retention.ms", "-2").is_err());
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_topic_config("cleanup.policy", "shred").is_err());
        assert!(validate_topic_config("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate_topic_config("segment.bytes", "99999999999").is_err());
    }

    #[test]
    fn listeners_parse() {
        let l = Listener::parse("PLAINTEXT://127.0.0.1:19092").unwrap();
        assert_eq!(
            (l.name.as_str(), l.host.as_str(), l.port),
            ("PLAINTEXT", "127.0.0.1", 19092)
        );
        assert_eq!(
            Listener::parse("PLAINTEXT://:9092").unwrap().host,
            "0.0.0.0"
        );
        assert!(Listener::parse("127.0.0.1:9092").is_err());
    }

    #[test]
    fn properties_file() {
        let parsed = parse_properties("# c\nnode.id=3\n log.dirs : /tmp/x \n\n!x\n");
        assert_eq!(parsed, pairs(&[("node.id", "3"), ("log.dirs", "/tmp/x")]));
    }
}
