//! DescribeTopicPartitions (key 75, KIP-966): the partitions of topics, a
//! page at a time. Newer admin clients (`kafka-topics.sh --describe` since
//! Kafka 3.8) use it instead of Metadata. Paging follows Kafka's handler:
//! topics in name order from the cursor's, at most
//! `min(response_partition_limit, MAX_REQUEST_PARTITION_SIZE_LIMIT)`
//! partitions, and a next cursor where the page ended.

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use uuid::Uuid;
use vltava_protocol::ResponseError;

use super::{authorized_operations, str_bytes, TOPIC_OPERATIONS};
use crate::{is_internal_topic, validate_topic_name, Broker, Topic};

/// Kafka's `max.request.partition.size.limit` default: the most partitions
/// one response describes, whatever the client asks.
pub const MAX_REQUEST_PARTITION_SIZE_LIMIT: i32 = 2000;

pub fn handle(
    broker: &Broker,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let all_topics = request.topics.is_empty();
    let cursor = request
        .cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    let cursor_topic = cursor.as_ref().map_or("", |(t, _)| t.as_str());
    let mut names: Vec<String> = if all_topics {
        broker.topics().iter().map(|t| t.name.clone()).collect()
    } else {
        request
            .topics
            .iter()
            .map(|t| t.name.0.to_string())
            .collect()
    };
    names.retain(|n| n.as_str() >= cursor_topic);
    names.sort();
    names.dedup();
    let refused = match &cursor {
        Some((topic, _)) if !all_topics && !names.contains(topic) => Some(format!(
            "DescribeTopicPartitionsRequest topic list should contain the cursor topic: {topic}"
        )),
        Some((_, partition)) if *partition < 0 => Some(format!(
            "DescribeTopicPartitionsRequest cursor partition must be valid: {partition}"
        )),
        _ => None,
    };
    if let Some(message) = refused {
        tracing::debug!(%message, "DescribeTopicPartitions refused");
        // Kafka answers a refused request with the error on every topic.
        let topics = request
            .topics
            .iter()
            .map(|t| {
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_name(Some(t.name.clone()))
            })
            .collect();
        return DescribeTopicPartitionsResponse::default().with_topics(topics);
    }
    let limit = request
        .response_partition_limit
        .clamp(1, MAX_REQUEST_PARTITION_SIZE_LIMIT) as usize;
    let mut remaining = limit;
    let fenced = broker.fenced_brokers();
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names {
        if remaining == 0 {
            // The page is full at a topic boundary: the next one starts here.
            next_cursor = Some(cursor_at(&name, 0));
            break;
        }
        let start = match &cursor {
            Some((topic, partition)) if *topic == name => *partition as usize,
            _ => 0,
        };
        match broker.topic(&name) {
            Some(topic) => {
                let end = topic.partitions.len().min(start.saturating_add(remaining));
                let partitions: Vec<_> = topic
                    .partitions
                    .iter()
                    .skip(start)
                    .take(end.saturating_sub(start))
                    .map(|p| partition(p, &fenced))
                    .collect();
                remaining -= partitions.len();
                topics.push(described(&topic, partitions));
                if end < topic.partitions.len() {
                    next_cursor = Some(cursor_at(&name, end as i32));
                    break;
                }
            }
            // Asked for by name: say it is not there; a listing of all
            // topics only lists what exists.
            None if !all_topics => {
                let code = if validate_topic_name(&name).is_ok() {
                    ResponseError::UnknownTopicOrPartition.code()
                } else {
                    ResponseError::InvalidTopicException.code()
                };
                topics.push(
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_error_code(code)
                        .with_name(Some(TopicName(str_bytes(name.clone()))))
                        .with_topic_id(Uuid::nil())
                        .with_is_internal(is_internal_topic(&name)),
                );
            }
            None => {}
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

fn cursor_at(topic: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(TopicName(str_bytes(topic.to_string())))
        .with_partition_index(partition)
}

fn described(
    topic: &Topic,
    partitions: Vec<DescribeTopicPartitionsResponsePartition>,
) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(is_internal_topic(&topic.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(authorized_operations(true, TOPIC_OPERATIONS))
}

/// One partition as Metadata describes it: its leader, replicas and ISR;
/// no leader when it has none or its log here is unreadable; its eligible
/// leader replicas (KIP-966). No last known ELR: Vltava keeps none (the
/// last replica standing stays in the ISR instead).
fn partition(
    p: &crate::Partition,
    offline: &std::collections::BTreeSet<i32>,
) -> DescribeTopicPartitionsResponsePartition {
    let a = p.assignment();
    let ids = |ids: &[i32]| ids.iter().map(|id| BrokerId(*id)).collect::<Vec<_>>();
    let gone: Vec<i32> = a
        .replicas
        .iter()
        .copied()
        .filter(|id| offline.contains(id) || (*id == p.node() && p.is_hosted() && p.is_offline()))
        .collect();
    let base = DescribeTopicPartitionsResponsePartition::default()
        .with_partition_index(p.index)
        .with_leader_epoch(p.leader_epoch())
        .with_replica_nodes(ids(&a.replicas))
        .with_isr_nodes(ids(&a.isr))
        .with_offline_replicas(ids(&gone))
        .with_eligible_leader_replicas(Some(ids(&a.elr)))
        .with_last_known_elr(Some(Vec::new()));
    if a.leader < 0 || (p.is_leader() && p.is_offline()) || offline.contains(&a.leader) {
        return base.with_leader_id(BrokerId(-1));
    }
    base.with_leader_id(BrokerId(a.leader))
}
