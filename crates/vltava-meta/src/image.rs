use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::record::MetaRecord;

/// What a config override applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConfigResource {
    Topic(String),
    /// A broker by node id; the empty string is the cluster-wide default.
    Broker(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionImage {
    /// The preferred leader first.
    pub replicas: Vec<i32>,
    /// -1 when no replica can lead (every in-sync replica is fenced).
    pub leader: i32,
    pub leader_epoch: i32,
    /// The in-sync replicas, the leader among them. When the last one is
    /// lost it stays listed, so it leads again when it returns; the ISR is
    /// empty only when that last one restarted after an unclean shutdown
    /// while eligible leader replicas remain (then the partition has no
    /// leader until one of them is back).
    pub isr: Vec<i32>,
    pub partition_epoch: i32,
    /// While a reassignment is under way (Kafka's addingReplicas and
    /// removingReplicas): the replicas joining, which must catch up and
    /// enter the ISR before it completes, and the replicas leaving once it
    /// does. `replicas` then holds the target first, then the leaving ones.
    /// Both empty otherwise.
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
    /// Eligible leader replicas (KIP-966): replicas that left the ISR while
    /// it held fewer than `min.insync.replicas`. The high watermark does
    /// not move while the ISR is that small, so each of them holds every
    /// committed record and may lead when no in-sync replica can; one
    /// whose run ended in an unclean shutdown leaves it, since it may have
    /// lost writes that no fsync covered. Empty once the ISR is back at
    /// `min.insync.replicas`.
    pub elr: Vec<i32>,
}

impl PartitionImage {
    /// A new partition on `replicas`, led by the first.
    pub fn new(replicas: Vec<i32>) -> PartitionImage {
        PartitionImage {
            leader: replicas.first().copied().unwrap_or(-1),
            leader_epoch: 0,
            isr: replicas.clone(),
            replicas,
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
            elr: Vec::new(),
        }
    }

    /// Kafka's under-replicated test: led, with fewer in-sync replicas
    /// than its replication factor, where a reassignment's joining
    /// replicas are not yet part of the factor (a reassignment is not an
    /// alert).
    pub fn under_replicated(&self) -> bool {
        self.leader >= 0 && self.isr.len() < self.replicas.len().saturating_sub(self.adding.len())
    }

    /// Whether a reassignment is under way.
    pub fn reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The replica set before the reassignment under way (the replicas
    /// without the joining ones); the replicas when none is.
    pub fn before_reassignment(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|id| !self.adding.contains(id))
            .collect()
    }

    /// The replica set a reassignment under way leads to (the replicas
    /// without the leaving ones); the replicas when none is.
    pub fn target(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|id| !self.removing.contains(id))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: Uuid,
    /// Indexed by partition number; partitions are never removed one by one.
    pub partitions: Vec<PartitionImage>,
}

/// Where a broker listens for clients under one listener name (its
/// advertised address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    pub listener: String,
    pub host: String,
    pub port: u16,
}

/// A broker as its last registration describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerImage {
    pub epoch: i64,
    pub endpoints: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
    /// Fenced by the controller (no heartbeat within the session timeout,
    /// or shut down): not listed to clients, nothing placed on it.
    pub fenced: bool,
}

impl BrokerImage {
    /// The endpoint clients on `listener` use to reach this broker.
    pub fn endpoint(&self, listener: &str) -> Option<&BrokerEndpoint> {
        self.endpoints.iter().find(|e| e.listener == listener)
    }
}

/// The state obtained by applying every metadata record in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    /// Registered brokers by node id.
    pub brokers: BTreeMap<i32, BrokerImage>,
    pub topics: BTreeMap<String, TopicImage>,
    pub configs: BTreeMap<ConfigResource, BTreeMap<String, String>>,
    pub next_producer_id: i64,
    /// Set once (see [`MetaRecord::ClusterId`]).
    pub cluster_id: Option<String>,
}

impl MetadataImage {
    pub fn topic_by_id(&self, topic_id: Uuid) -> Option<&TopicImage> {
        self.topics.values().find(|t| t.topic_id == topic_id)
    }

    pub fn configs_of(&self, resource: &ConfigResource) -> BTreeMap<String, String> {
        self.configs.get(resource).cloned().unwrap_or_default()
    }

    /// The records that rebuild this image from nothing (a snapshot):
    /// applied in order to an empty image, they give an equal image.
    pub fn to_records(&self) -> Vec<MetaRecord> {
        let mut out = Vec::new();
        if let Some(cluster_id) = &self.cluster_id {
            out.push(MetaRecord::ClusterId {
                cluster_id: cluster_id.clone(),
            });
        }
        for (node_id, broker) in &self.brokers {
            out.push(MetaRecord::RegisterBroker {
                node_id: *node_id,
                epoch: broker.epoch,
                endpoints: broker.endpoints.clone(),
                rack: broker.rack.clone(),
                unclean_shutdown: false,
            });
            if broker.fenced {
                out.push(MetaRecord::FenceBroker {
                    node_id: *node_id,
                    epoch: broker.epoch,
                });
            }
        }
        for topic in self.topics.values() {
            out.push(MetaRecord::Topic {
                name: topic.name.clone(),
                topic_id: topic.topic_id,
            });
            for (i, p) in topic.partitions.iter().enumerate() {
                out.push(MetaRecord::partition(topic.topic_id, i as i32, p));
            }
        }
        for (resource, entries) in &self.configs {
            for (name, value) in entries {
                out.push(MetaRecord::Config {
                    resource: resource.clone(),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        if self.next_producer_id > 0 {
            out.push(MetaRecord::ProducerIds {
                next_producer_id: self.next_producer_id,
            });
        }
        out
    }

    /// Applies one record. Records that refer to something absent (a
    /// partition of a removed topic) are ignored, and so is a topic record
    /// for a name another topic holds; otherwise a later record wins.
    pub fn apply(&mut self, record: &MetaRecord) {
        match record {
            MetaRecord::Topic { name, topic_id } => {
                // A name is taken until its topic is removed: a second
                // creation racing the first (a retried request) must not
                // replace the topic, which would drop its data. It is
                // ignored, and so are its partitions (no topic has its id).
                if self
                    .topics
                    .get(name)
                    .is_some_and(|t| t.topic_id != *topic_id)
                {
                    return;
                }
                self.topics.insert(
                    name.clone(),
                    TopicImage {
                        name: name.clone(),
                        topic_id: *topic_id,
                        partitions: Vec::new(),
                    },
                );
            }
            MetaRecord::Partition {
                topic_id,
                partition,
                replicas,
                leader,
                leader_epoch,
                isr,
                partition_epoch,
                adding,
                removing,
                elr,
            } => {
                let Some(topic) = self.topics.values_mut().find(|t| t.topic_id == *topic_id) else {
                    return;
                };
                let image = PartitionImage {
                    replicas: replicas.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    isr: isr.clone().unwrap_or_else(|| replicas.clone()),
                    partition_epoch: *partition_epoch,
                    adding: adding.clone(),
                    removing: removing.clone(),
                    elr: elr.clone(),
                };
                let index = *partition as usize;
                if index < topic.partitions.len() {
                    topic.partitions[index] = image;
                } else if index == topic.partitions.len() {
                    topic.partitions.push(image);
                }
            }
            MetaRecord::Config {
                resource,
                name,
                value,
            } => {
                let entries = self.configs.entry(resource.clone()).or_default();
                match value {
                    Some(value) => {
                        entries.insert(name.clone(), value.clone());
                    }
                    None => {
                        entries.remove(name);
                    }
                }
                if entries.is_empty() {
                    self.configs.remove(resource);
                }
            }
            MetaRecord::RemoveTopic { topic_id } => {
                if let Some(name) = self.topic_by_id(*topic_id).map(|t| t.name.clone()) {
                    self.topics.remove(&name);
                    self.configs.remove(&ConfigResource::Topic(name));
                }
            }
            MetaRecord::ProducerIds { next_producer_id } => {
                self.next_producer_id = self.next_producer_id.max(*next_producer_id);
            }
            MetaRecord::ClusterId { cluster_id } => {
                if self.cluster_id.is_none() {
                    self.cluster_id = Some(cluster_id.clone());
                }
            }
            MetaRecord::RegisterBroker {
                node_id,
                epoch,
                endpoints,
                rack,
                unclean_shutdown: _,
            } => {
                // An older incarnation's registration never replaces a newer one.
                if self.brokers.get(node_id).is_some_and(|b| b.epoch > *epoch) {
                    return;
                }
                self.brokers.insert(
                    *node_id,
                    BrokerImage {
                        epoch: *epoch,
                        endpoints: endpoints.clone(),
                        rack: rack.clone(),
                        fenced: false,
                    },
                );
            }
            // Only for the incarnation named: a fence meant for an older
            // one never touches a broker that registered since.
            MetaRecord::FenceBroker { node_id, epoch } => {
                if let Some(b) = self.brokers.get_mut(node_id).filter(|b| b.epoch == *epoch) {
                    b.fenced = true;
                }
            }
            MetaRecord::UnregisterBroker { node_id } => {
                self.brokers.remove(node_id);
            }
            MetaRecord::UnfenceBroker { node_id, epoch } => {
                if let Some(b) = self.brokers.get_mut(node_id).filter(|b| b.epoch == *epoch) {
                    b.fenced = false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, id: u128) -> MetaRecord {
        MetaRecord::Topic {
            name: name.into(),
            topic_id: Uuid::from_u128(id),
        }
    }

    fn partition(id: u128, partition: i32) -> MetaRecord {
        MetaRecord::Partition {
            topic_id: Uuid::from_u128(id),
            partition,
            replicas: vec![1],
            leader: 1,
            leader_epoch: 0,
            isr: None,
            partition_epoch: 0,
            adding: vec![],
            removing: vec![],
            elr: vec![],
        }
    }

    /// A second creation of a name (a retried request that raced the first)
    /// neither replaces the topic nor adds to it; after a removal the name
    /// can be taken again.
    #[test]
    fn a_name_is_taken_until_its_topic_is_removed() {
        let mut image = MetadataImage::default();
        for record in [
            topic("t", 1),
            partition(1, 0),
            topic("t", 2),
            partition(2, 0),
            partition(2, 1),
        ] {
            image.apply(&record);
        }
        let t = &image.topics["t"];
        assert_eq!(t.topic_id, Uuid::from_u128(1));
        assert_eq!(t.partitions.len(), 1);
        image.apply(&MetaRecord::RemoveTopic {
            topic_id: Uuid::from_u128(1),
        });
        image.apply(&topic("t", 2));
        image.apply(&partition(2, 0));
        assert_eq!(image.topics["t"].topic_id, Uuid::from_u128(2));
        assert_eq!(image.topics["t"].partitions.len(), 1);
    }

    #[test]
    fn to_records_rebuilds_the_same_image() {
        let id = Uuid::from_u128(7);
        let mut image = MetadataImage::default();
        for record in [
            MetaRecord::Topic {
                name: "t".into(),
                topic_id: id,
            },
            MetaRecord::Partition {
                topic_id: id,
                partition: 0,
                replicas: vec![1],
                leader: 1,
                leader_epoch: 0,
                isr: None,
                partition_epoch: 0,
                adding: vec![],
                removing: vec![],
                elr: vec![],
            },
            MetaRecord::Partition {
                topic_id: id,
                partition: 1,
                replicas: vec![2, 1, 3],
                leader: 2,
                leader_epoch: 3,
                isr: Some(vec![2, 3]),
                partition_epoch: 7,
                adding: vec![3],
                removing: vec![1],
                elr: vec![],
            },
            MetaRecord::Config {
                resource: ConfigResource::Topic("t".into()),
                name: "retention.ms".into(),
                value: Some("5".into()),
            },
            MetaRecord::Config {
                resource: ConfigResource::Broker(String::new()),
                name: "log.retention.ms".into(),
                value: Some("9".into()),
            },
            MetaRecord::ProducerIds {
                next_producer_id: 4000,
            },
            MetaRecord::RegisterBroker {
                node_id: 1,
                epoch: 3,
                endpoints: vec![BrokerEndpoint {
                    listener: "PLAINTEXT".into(),
                    host: "h".into(),
                    port: 9092,
                }],
                rack: Some("r1".into()),
                unclean_shutdown: false,
            },
            MetaRecord::ClusterId {
                cluster_id: "c1".into(),
            },
            MetaRecord::RegisterBroker {
                node_id: 2,
                epoch: 5,
                endpoints: vec![],
                rack: None,
                unclean_shutdown: false,
            },
            // An older incarnation's fence is ignored; this one's holds.
            MetaRecord::FenceBroker {
                node_id: 2,
                epoch: 4,
            },
            MetaRecord::UnfenceBroker {
                node_id: 2,
                epoch: 4,
            },
            MetaRecord::FenceBroker {
                node_id: 2,
                epoch: 5,
            },
            MetaRecord::RegisterBroker {
                node_id: 3,
                epoch: 0,
                endpoints: vec![],
                rack: None,
                unclean_shutdown: false,
            },
            MetaRecord::UnregisterBroker { node_id: 3 },
            // The first id stays.
            MetaRecord::ClusterId {
                cluster_id: "c2".into(),
            },
        ] {
            image.apply(&record);
        }
        assert_eq!(image.cluster_id.as_deref(), Some("c1"));
        assert!(image.brokers[&2].fenced && !image.brokers[&1].fenced);
        assert!(!image.brokers.contains_key(&3));
        let mut rebuilt = MetadataImage::default();
        for record in image.to_records() {
            rebuilt.apply(&record);
        }
        assert_eq!(rebuilt, image);
        assert!(MetadataImage::default().to_records().is_empty());
    }
}
