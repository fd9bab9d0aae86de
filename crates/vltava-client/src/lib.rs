//! An asynchronous Kafka client over the `kafka-protocol` crate's message
//! types, used by the `vltava` command-line tools and benchmarks, and
//! usable against any Kafka-compatible broker.
//!
//! What it owns:
//! - [`connection`]: one TCP connection, framing, and the ApiVersions
//!   handshake; every request goes at the highest version both the broker
//!   and [`connection::CLIENT_APIS`] allow.
//! - [`client`]: bootstrap, the metadata cache, a connection per broker,
//!   routing to a partition's leader (with its leader epoch, which Fetch
//!   and ListOffsets carry, KIP-320) and refreshing metadata on
//!   NOT_LEADER_OR_FOLLOWER / UNKNOWN_TOPIC_OR_PARTITION /
//!   LEADER_NOT_AVAILABLE / FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH.
//! - [`producer`]: batching by `linger.ms` / `batch.size`, compression,
//!   `acks`, idempotence (InitProducerId and per-partition sequences), and
//!   the Java client's partitioning ([`partitioner`]).
//! - [`consumer`]: assign/seek, ListOffsets, the fetch loop.
//! - [`group`]: consumer-group membership with the classic protocol and the
//!   `range` assignor; offset commit and fetch.
//! - [`admin`]: topics, partitions, configs, cluster, groups.
//!
//! Record batches are encoded and decoded by `vltava-record`; this crate
//! never touches record bytes itself.
//!
//! ```no_run
//! # async fn demo() -> Result<(), vltava_client::Error> {
//! use vltava_client::{Client, ClientConfig, Producer, ProducerConfig, ProducerRecord};
//! let client = Client::connect(ClientConfig::new("127.0.0.1:9092")).await?;
//! let producer = Producer::new(client, ProducerConfig::default()).await?;
//! let delivery = producer.send(ProducerRecord::new("demo", Some(b"k"), b"hello")).await?;
//! producer.flush().await;
//! let metadata = delivery.await.expect("sender alive")?;
//! println!("{}-{}@{}", metadata.topic, metadata.partition, metadata.offset);
//! # Ok(()) }
//! ```

pub mod admin;
pub mod calendar;
pub mod client;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod group;
pub mod partitioner;
pub mod producer;
#[cfg(test)]
mod test_broker;

pub use admin::Admin;
pub use client::{Client, ClientConfig, Node};
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetSpec, TopicPartition};
pub use error::{Error, KafkaError};
pub use group::{GroupConfig, GroupMember};
pub use producer::{Producer, ProducerConfig, ProducerRecord, RecordMetadata};
pub use vltava_record::Compression;
