//! The broker's state and rules, with no sockets.
//!
//! This crate owns topics and partitions (each partition a `vltava-log` log
//! with a leader epoch and a high watermark), the idempotent-producer state,
//! configuration by Kafka's names, and one handler per Kafka API that turns a
//! decoded request into a response. Metadata changes go through the
//! `vltava-meta` log before they become visible. Networking lives in
//! `vltava-server`; this crate only needs tokio for timers and wake-ups of
//! long-polling fetches.
//!
//! Invariants: a partition has one writer at a time (its writer mutex, never
//! held across an await); the high watermark never exceeds the log end; no
//! client input can panic a handler.

mod broker;
mod cleaner;
mod clock;
pub mod config;
mod error;
pub mod group;
pub mod handlers;
pub mod metrics;
mod partition;
mod producer_state;
pub mod schema_ids;
pub mod storage_faults;

pub use broker::{
    is_internal_topic, validate_topic_name, write_meta_properties, Broker, BrokerSeams,
    ElectionKind, Fetched, QuorumSeams, StartError, Topic, TopicReplication, META_PROPERTIES_FILE,
    PARTITIONS_PER_REQUEST_MAX,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{BrokerConfig, Listener};
pub use error::ApiError;
pub use partition::{Assignment, FollowerTerm, Partition};
pub use producer_state::{BatchSummary, ProducerStateMap, ProducerSummary};
