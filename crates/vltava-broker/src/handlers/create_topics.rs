use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use vltava_protocol::ResponseError;

use super::describe_configs::topic_entries;
use super::str_bytes;
use crate::broker::PartitionBudget;
use crate::error::ApiError;
use crate::Broker;

/// First version whose response echoes partitions, replication and configs.
const DESCRIBE_IN_RESPONSE_VERSION: i16 = 5;

pub async fn handle(
    broker: &Broker,
    version: i16,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = request
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .filter(|n| !seen.insert(n.clone()))
        .collect();
    let mut budget = PartitionBudget::default();
    // One at a time, in the request's order: each spends the budget.
    let mut outcomes = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.clone();
        let created = if duplicates.contains(name.0.as_str()) {
            Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!(
                    "Create topics request from client contains topic {} more than once",
                    name.0.as_str()
                ),
            ))
        } else {
            create(broker, topic, request.validate_only, &mut budget).await
        };
        outcomes.push((name, created));
    }
    let topics = outcomes
        .into_iter()
        .map(|(name, created)| {
            let result = CreatableTopicResult::default()
                .with_name(name.clone())
                .with_num_partitions(-1)
                .with_replication_factor(-1);
            match created {
                Ok((partitions, factor, config, topic_id, overrides)) => {
                    let result = result
                        .with_topic_id(topic_id)
                        .with_num_partitions(partitions)
                        .with_replication_factor(factor);
                    if version < DESCRIBE_IN_RESPONSE_VERSION {
                        return result;
                    }
                    let configs = topic_entries(broker, &config, &overrides, None, false, false)
                        .into_iter()
                        .map(|e| {
                            CreatableTopicConfigs::default()
                                .with_name(e.name)
                                .with_value(e.value)
                                .with_read_only(e.read_only)
                                .with_config_source(e.config_source)
                                .with_is_sensitive(false)
                        })
                        .collect();
                    result.with_configs(Some(configs))
                }
                Err(e) => result
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.message))),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// A created topic: partitions, replication factor, config, id, overrides.
type Created = (
    i32,
    i16,
    crate::config::TopicConfig,
    uuid::Uuid,
    BTreeMap<String, String>,
);

async fn create(
    broker: &Broker,
    topic: CreatableTopic,
    validate_only: bool,
    budget: &mut PartitionBudget,
) -> Result<Created, ApiError> {
    let name = topic.name.0.to_string();
    let manual = match topic.assignments.is_empty() {
        true => None,
        false => Some(check_assignments(&topic)?),
    };
    let num_partitions = match (&manual, topic.num_partitions) {
        (Some(leaders), _) => leaders.len() as i32,
        (None, -1) => broker.config.num_partitions,
        (None, n) => n,
    };
    let replication_factor = match (&manual, topic.replication_factor) {
        (Some(replicas), _) => replicas.first().map_or(0, |r| r.len() as i16),
        (None, -1) => broker.config.default_replication_factor,
        (None, n) => n,
    };
    let registered = broker.registered_broker_count();
    if replication_factor <= 0 {
        return Err(ApiError::new(
            ResponseError::InvalidReplicationFactor,
            "Replication factor must be larger than 0, or -1 to use the default value.",
        ));
    }
    if replication_factor as usize > registered {
        return Err(ApiError::new(
            ResponseError::InvalidReplicationFactor,
            format!(
                "Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only {registered} broker(s) are registered."
            ),
        ));
    }
    let mut overrides = BTreeMap::new();
    for config in topic.configs {
        let value = config.value.ok_or_else(|| {
            ApiError::new(
                ResponseError::InvalidConfig,
                format!(
                    "Null value not supported for topic configs: {}",
                    config.name.as_str()
                ),
            )
        })?;
        overrides.insert(config.name.to_string(), value.to_string());
    }
    // Spent only by a topic that passed its own checks, so a refused one
    // does not use up the request's budget for those after it.
    budget.spend(num_partitions)?;
    let (partitions, config, topic_id) = match &manual {
        Some(replicas) => {
            broker
                .create_topic_placed(&name, replicas, overrides.clone(), validate_only)
                .await?
        }
        None => {
            broker
                .create_topic_replicated(
                    &name,
                    num_partitions,
                    replication_factor,
                    overrides.clone(),
                    validate_only,
                )
                .await?
        }
    };
    Ok((partitions, replication_factor, config, topic_id, overrides))
}

/// Manual assignments must cover partitions 0..n, each with its replicas
/// (registered, distinct and as many for every partition: checked by the
/// controller); returns partition p's replicas at p.
fn check_assignments(topic: &CreatableTopic) -> Result<Vec<Vec<i32>>, ApiError> {
    if topic.num_partitions != -1 || topic.replication_factor != -1 {
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
        ));
    }
    let count = topic.assignments.len() as i32;
    let mut indexes: Vec<i32> = topic
        .assignments
        .iter()
        .map(|a| a.partition_index)
        .collect();
    indexes.sort_unstable();
    let contiguous = indexes.iter().copied().eq(0..count);
    if !contiguous {
        return Err(ApiError::new(
            ResponseError::InvalidReplicaAssignment,
            format!("Partitions must be numbered 0..{count}, each once"),
        ));
    }
    let mut replicas = vec![Vec::new(); topic.assignments.len()];
    for a in &topic.assignments {
        replicas[a.partition_index as usize] = a.broker_ids.iter().map(|b| b.0).collect();
    }
    Ok(replicas)
}
