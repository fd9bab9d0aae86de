//! The client's one error type.

use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;

/// Everything a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No TCP connection could be made (refused, unresolvable, timed out).
    #[error("could not connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// An established connection failed while a request was outstanding.
    #[error("connection to {addr} failed: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The broker did not answer within the request timeout.
    #[error("request {api:?} to {addr} timed out after {timeout_ms} ms")]
    Timeout {
        addr: String,
        api: ApiKey,
        timeout_ms: u128,
    },
    /// The broker's bytes did not decode as the response we asked for.
    #[error("malformed response from {addr}: {message}")]
    Protocol { addr: String, message: String },
    /// The broker implements no version of an API in the range this client
    /// speaks.
    #[error("the broker at {addr} does not support {api:?} (broker versions {broker}, client versions {client})")]
    UnsupportedVersion {
        addr: String,
        api: ApiKey,
        broker: String,
        client: String,
    },
    /// The broker answered with a Kafka error code.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// The caller asked for something impossible (bad config, no such
    /// partition, ...).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// The Kafka error, if the broker sent one.
    pub fn kafka(&self) -> Option<&KafkaError> {
        match self {
            Error::Kafka(e) => Some(e),
            _ => None,
        }
    }

    /// True for transport failures after which a fresh connection may work.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            Error::Io { .. } | Error::Timeout { .. } | Error::Connect { .. }
        )
    }
}

/// A non-zero Kafka error code with the broker's message, if it sent one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.text())]
pub struct KafkaError {
    pub code: i16,
    pub message: Option<String>,
}

impl KafkaError {
    /// `None` for code 0, else the error.
    pub fn from_code(code: i16, message: Option<&str>) -> Option<KafkaError> {
        (code != 0).then(|| KafkaError {
            code,
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        })
    }

    /// `Ok(())` for code 0.
    pub fn check(code: i16, message: Option<&str>) -> Result<(), Error> {
        match KafkaError::from_code(code, message) {
            Some(e) => Err(Error::Kafka(e)),
            None => Ok(()),
        }
    }

    /// The error as the `kafka-protocol` enum.
    pub fn kind(&self) -> ResponseError {
        ResponseError::try_from_code(self.code).unwrap_or(ResponseError::Unknown(self.code))
    }

    /// Whether the Kafka protocol marks this error retriable.
    pub fn is_retriable(&self) -> bool {
        self.kind().is_retriable()
    }

    /// The broker's message, else the Java client's default message for the
    /// code, else the error's name.
    pub fn text(&self) -> String {
        if let Some(m) = &self.message {
            return m.clone();
        }
        default_message(self.code)
            .map(str::to_string)
            .unwrap_or_else(|| format!("{} (error code {})", self.kind(), self.code))
    }
}

/// Kafka error codes the client reacts to by name.
pub mod codes {
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    /// A new leader's high watermark has not caught up yet (ListOffsets).
    pub const OFFSET_NOT_AVAILABLE: i16 = 78;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const FENCED_INSTANCE_ID: i16 = 82;
}

/// The messages of the Java client's exceptions for the codes people see.
fn default_message(code: i16) -> Option<&'static str> {
    Some(match code {
        1 => "The requested offset is not within the range of offsets maintained by the server.",
        3 => "This server does not host this topic-partition.",
        5 => "There is no leader for this topic-partition as we are in the middle of a leadership election.",
        6 => "For requests intended only for the leader, this error indicates that the broker is not the current leader.",
        7 => "The request timed out.",
        14 => "The coordinator is loading and hence can't process requests.",
        15 => "The coordinator is not available.",
        16 => "This is not the correct coordinator.",
        17 => "The request attempted to perform an operation on an invalid topic.",
        22 => "Specified group generation id is not valid.",
        25 => "The coordinator is not aware of this member.",
        26 => "The session timeout is not within the range allowed by the broker (as configured by group.min.session.timeout.ms and group.max.session.timeout.ms).",
        27 => "The group is rebalancing, so a rejoin is needed.",
        35 => "The version of API is not supported.",
        36 => "Topic with this name already exists.",
        37 => "Number of partitions is below 1.",
        38 => "Replication factor is below 1 or larger than the number of available brokers.",
        40 => "Configuration is invalid.",
        56 => "Disk error when trying to access log file on the disk.",
        42 => "This most likely occurs because of a request being malformed by the client library or the message was sent to an incompatible broker.",
        68 => "The group is not empty.",
        69 => "The group id does not exist.",
        86 => "Deleting offsets of a topic is forbidden while the consumer group is actively subscribed to it.",
        _ => return None,
    })
}
