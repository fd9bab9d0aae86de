use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::image::{BrokerEndpoint, ConfigResource, PartitionImage};

/// One change to cluster metadata. Stored as JSON in the value of a Kafka
/// record, so the log stays readable with any Kafka tool and new fields can be
/// added with serde defaults. Never remove or repurpose a variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetaRecord {
    /// A topic exists with this name and id.
    Topic { name: String, topic_id: Uuid },
    /// A partition of a topic as it now is: its replicas, its leader (-1:
    /// none, the partition is offline), the leader's epoch, the in-sync
    /// replicas and the partition epoch (Kafka's PartitionRecord and
    /// PartitionChangeRecord in one: every change writes the whole state).
    /// The leader epoch grows with every change of leader; the partition
    /// epoch with every change at all, so a leader's ISR change made
    /// against an older state is refused (AlterPartition's rule). Records
    /// written before replication carry neither ISR (then: every replica)
    /// nor partition epoch (then: 0).
    Partition {
        topic_id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        isr: Option<Vec<i32>>,
        #[serde(default)]
        partition_epoch: i32,
        /// A reassignment under way: the replicas joining and leaving
        /// (absent when none is).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        adding: Vec<i32>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        removing: Vec<i32>,
        /// The eligible leader replicas (KIP-966; see
        /// [`PartitionImage::elr`]): absent when there are none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        elr: Vec<i32>,
    },
    /// A config override set (`value` is `Some`) or removed (`None`).
    Config {
        resource: ConfigResource,
        name: String,
        value: Option<String>,
    },
    /// A topic and all its partitions are gone.
    RemoveTopic { topic_id: Uuid },
    /// Producer ids below `next_producer_id` have been handed out.
    ProducerIds { next_producer_id: i64 },
    /// A broker registered (Kafka's RegisterBrokerRecord): how clients reach
    /// it on each listener, and its rack. `epoch` grows with every
    /// registration of the node (each start), so a later one replaces it.
    RegisterBroker {
        node_id: i32,
        epoch: i64,
        endpoints: Vec<BrokerEndpoint>,
        rack: Option<String>,
        /// The node's previous run ended without a clean shutdown (a crash,
        /// a kill, a power cut): its logs may have lost writes that no
        /// fsync covered, so it no longer counts as holding everything
        /// committed (KIP-966). Absent in records from before the flag
        /// existed: those registrations are taken as clean, as they were.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        unclean_shutdown: bool,
    },
    /// The cluster's id, written once by the first controller that finds
    /// none (Kafka keeps it in every node's `meta.properties`; a node whose
    /// file names another id refuses to join). The first one wins.
    ClusterId { cluster_id: String },
    /// The controller fenced a broker incarnation (Kafka's
    /// FenceBrokerRecord): its session lapsed, or it shut down.
    FenceBroker { node_id: i32, epoch: i64 },
    /// The controller unfenced it: it heartbeats again (Kafka's
    /// UnfenceBrokerRecord).
    UnfenceBroker { node_id: i32, epoch: i64 },
    /// A broker's registration removed (Kafka's UnregisterBrokerRecord).
    UnregisterBroker { node_id: i32 },
}

impl MetaRecord {
    /// The record that sets partition `partition` of `topic_id` to `image`.
    pub fn partition(topic_id: Uuid, partition: i32, image: &PartitionImage) -> MetaRecord {
        MetaRecord::Partition {
            topic_id,
            partition,
            replicas: image.replicas.clone(),
            leader: image.leader,
            leader_epoch: image.leader_epoch,
            isr: Some(image.isr.clone()),
            partition_epoch: image.partition_epoch,
            adding: image.adding.clone(),
            removing: image.removing.clone(),
            elr: image.elr.clone(),
        }
    }
}
