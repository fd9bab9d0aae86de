//! The one place where internal errors become Kafka error codes.

use vltava_log::LogError;
use vltava_protocol::ResponseError;

use crate::config::ConfigError;
use crate::producer_state::SequenceError;

/// A Kafka error code with the message that goes with it in responses that
/// carry one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub error: ResponseError,
    pub message: String,
}

impl ApiError {
    pub fn new(error: ResponseError, message: impl Into<String>) -> ApiError {
        ApiError {
            error,
            message: message.into(),
        }
    }

    pub fn code(&self) -> i16 {
        self.error.code()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.error, self.message)
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> ApiError {
        let error = match &e {
            LogError::OffsetOutOfRange { .. } | LogError::OffsetOverlap { .. } => {
                ResponseError::OffsetOutOfRange
            }
            LogError::InvalidBatch(_) => ResponseError::CorruptMessage,
            LogError::Closed(_) => ResponseError::UnknownTopicOrPartition,
            _ => ResponseError::KafkaStorageError,
        };
        if error == ResponseError::KafkaStorageError {
            tracing::error!(error = %e, "storage failure");
        }
        ApiError::new(error, e.to_string())
    }
}

impl From<SequenceError> for ApiError {
    fn from(e: SequenceError) -> ApiError {
        let error = match e {
            SequenceError::StaleEpoch { .. } => ResponseError::InvalidProducerEpoch,
            SequenceError::OutOfOrder { .. } => ResponseError::OutOfOrderSequenceNumber,
        };
        ApiError::new(error, e.to_string())
    }
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> ApiError {
        ApiError::new(ResponseError::InvalidConfig, e.to_string())
    }
}

impl From<vltava_meta::MetaError> for ApiError {
    fn from(e: vltava_meta::MetaError) -> ApiError {
        tracing::error!(error = %e, "metadata log failure");
        ApiError::new(ResponseError::KafkaStorageError, e.to_string())
    }
}
