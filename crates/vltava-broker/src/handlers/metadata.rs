use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use uuid::Uuid;
use vltava_protocol::ResponseError;

use super::str_bytes;
use crate::broker::{is_internal_topic, validate_topic_name, Topic};
use crate::group::store::OFFSETS_TOPIC;
use crate::Broker;

use super::{
    authorized_operations, ClientInfo, AUTHORIZED_OPERATIONS_OMITTED, CLUSTER_OPERATIONS,
    TOPIC_OPERATIONS,
};

pub async fn handle(
    broker: &Broker,
    version: i16,
    client: &ClientInfo,
    request: MetadataRequest,
) -> MetadataResponse {
    let allow_auto_create = broker.config.auto_create_topics_enable
        && (version < 4 || request.allow_auto_topic_creation);
    let topic_operations = authorized_operations(
        request.include_topic_authorized_operations,
        TOPIC_OPERATIONS,
    );
    // A client on a listener this broker does not advertise cannot reach
    // the leader: Kafka answers LISTENER_NOT_FOUND (v6+; older clients get
    // LEADER_NOT_AVAILABLE) with no leader, and lists no broker.
    let unreachable = Reach {
        fenced: broker.fenced_brokers(),
        registered: broker.registered_ids(),
        brokers: broker
            .brokers_on(&client.listener)
            .into_iter()
            .map(|(id, ..)| id)
            .collect(),
        error: match version {
            6.. => ResponseError::ListenerNotFound,
            _ => ResponseError::LeaderNotAvailable,
        },
    };
    let unreachable = &unreachable;
    let topics: Vec<MetadataResponseTopic> = match request.topics {
        // v0 has no null: an empty list means all topics.
        Some(list) if !(version == 0 && list.is_empty()) => {
            let mut topics = Vec::with_capacity(list.len());
            for t in list {
                topics.push(match t.name {
                    Some(name) => {
                        by_name(broker, name.0.as_str(), allow_auto_create, unreachable).await
                    }
                    None => by_id(broker, t.topic_id, unreachable),
                });
            }
            topics
        }
        _ => broker
            .topics()
            .iter()
            .map(|t| describe(t, unreachable))
            .collect(),
    };
    MetadataResponse::default()
        .with_brokers(
            broker
                .brokers_on(&client.listener)
                .into_iter()
                .map(|(id, host, port, rack)| {
                    let b = MetadataResponseBroker::default()
                        .with_node_id(BrokerId(id))
                        .with_host(str_bytes(host))
                        .with_port(i32::from(port));
                    // v0 has no rack.
                    match version {
                        0 => b,
                        _ => b.with_rack(rack.map(str_bytes)),
                    }
                })
                .collect(),
        )
        .with_cluster_id(Some(str_bytes(broker.cluster_id())))
        .with_controller_id(BrokerId(broker.controller_id()))
        .with_topics(
            topics
                .into_iter()
                .map(|t| {
                    let ops = if t.error_code == 0 {
                        topic_operations
                    } else {
                        AUTHORIZED_OPERATIONS_OMITTED
                    };
                    t.with_topic_authorized_operations(ops)
                })
                .collect(),
        )
        .with_cluster_authorized_operations(authorized_operations(
            request.include_cluster_authorized_operations,
            CLUSTER_OPERATIONS,
        ))
}

async fn by_name(
    broker: &Broker,
    name: &str,
    allow_auto_create: bool,
    unreachable: &Reach,
) -> MetadataResponseTopic {
    if let Some(topic) = broker.topic(name) {
        return describe(&topic, unreachable);
    }
    let failed = |error: ResponseError| {
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(str_bytes(name))))
            .with_error_code(error.code())
            .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
    };
    if let Err(e) = validate_topic_name(name) {
        return failed(e.error);
    }
    if is_internal_topic(name) {
        // Internal topics are made by the broker with their own settings,
        // never auto-created with the defaults.
        if name == OFFSETS_TOPIC && broker.groups().ensure_ready(broker).await.is_ok() {
            if let Some(topic) = broker.topic(name) {
                return describe(&topic, unreachable);
            }
        }
        return failed(ResponseError::UnknownTopicOrPartition);
    }
    if !allow_auto_create {
        return failed(ResponseError::UnknownTopicOrPartition);
    }
    match broker.auto_create_topic(name).await {
        Ok(topic) => describe(&topic, unreachable),
        Err(e) => {
            tracing::warn!(topic = name, error = %e, "auto-create failed");
            failed(e.error)
        }
    }
}

fn by_id(broker: &Broker, topic_id: Uuid, unreachable: &Reach) -> MetadataResponseTopic {
    match broker.topic_by_id(topic_id) {
        Some(topic) => describe(&topic, unreachable),
        None => MetadataResponseTopic::default()
            .with_topic_id(topic_id)
            .with_error_code(ResponseError::UnknownTopicId.code())
            .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED),
    }
}

/// The brokers a client on this listener can reach, and the error a
/// partition whose leader is not one of them gets (with no leader).
struct Reach {
    brokers: std::collections::BTreeSet<i32>,
    error: ResponseError,
    /// Fenced leaders: their partitions are offline until they return.
    fenced: std::collections::BTreeSet<i32>,
    /// Every registered broker, whatever its listeners: a leader outside
    /// it was unregistered.
    registered: std::collections::BTreeSet<i32>,
}

impl Reach {
    /// Whether a replica is gone: fenced, or no longer registered at all.
    fn leader_offline(&self, leader: i32) -> bool {
        self.fenced.contains(&leader) || !self.registered.contains(&leader)
    }
}

fn describe(topic: &Topic, unreachable: &Reach) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            let a = p.assignment();
            let ids = |ids: &[i32]| ids.iter().map(|id| BrokerId(*id)).collect::<Vec<_>>();
            let offline: Vec<i32> = a
                .replicas
                .iter()
                .copied()
                .filter(|id| {
                    unreachable.leader_offline(*id)
                        || (*id == p.node() && p.is_hosted() && p.is_offline())
                })
                .collect();
            let partition = MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_epoch(p.leader_epoch())
                .with_replica_nodes(ids(&a.replicas))
                .with_isr_nodes(ids(&a.isr))
                .with_offline_replicas(ids(&offline));
            if a.leader < 0
                || (p.is_leader() && p.is_offline())
                || unreachable.leader_offline(a.leader)
            {
                // No replica can lead (every in-sync one is fenced or gone),
                // or the leader's log is unreadable: no leader, as Kafka
                // reports an offline partition.
                return partition
                    .with_error_code(ResponseError::LeaderNotAvailable.code())
                    .with_leader_id(BrokerId(-1));
            }
            if !unreachable.brokers.contains(&a.leader) {
                return partition
                    .with_error_code(unreachable.error.code())
                    .with_leader_id(BrokerId(-1));
            }
            partition.with_leader_id(BrokerId(a.leader))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(is_internal_topic(&topic.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}
