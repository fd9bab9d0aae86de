use std::collections::HashSet;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use vltava_protocol::ResponseError;

use super::str_bytes;
use crate::broker::PartitionBudget;
use crate::error::ApiError;
use crate::Broker;

pub async fn handle(broker: &Broker, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut seen = HashSet::new();
    let mut budget = PartitionBudget::default();
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let result = match seen.insert(name.clone()) {
            false => Err(ApiError::new(
                ResponseError::InvalidRequest,
                "Duplicate topic in request.",
            )),
            true => grow(broker, &topic, &name, &mut budget, request.validate_only).await,
        };
        let response = CreatePartitionsTopicResult::default().with_name(topic.name);
        results.push(match result {
            Ok(()) => response,
            Err(e) => response
                .with_error_code(e.code())
                .with_error_message(Some(str_bytes(e.message))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// Checks and commits one topic's growth.
async fn grow(
    broker: &Broker,
    topic: &CreatePartitionsTopic,
    name: &str,
    budget: &mut PartitionBudget,
    validate_only: bool,
) -> Result<(), ApiError> {
    let manual = check_assignments(broker, topic)?;
    budget.spend(adding(broker, name, topic.count))?;
    broker
        .create_partitions(name, topic.count, validate_only, manual.as_deref())
        .await
}

/// The partitions `name` would gain by growing to `count`.
fn adding(broker: &Broker, name: &str, count: i32) -> i32 {
    let current = broker.topic(name).map_or(0, |t| t.partitions.len() as i32);
    count.saturating_sub(current)
}

/// A client's placement of the new partitions: their replicas (checked
/// against the registered brokers and the topic's replication factor by
/// the controller); returns them in order.
fn check_assignments(
    broker: &Broker,
    topic: &CreatePartitionsTopic,
) -> Result<Option<Vec<Vec<i32>>>, ApiError> {
    let Some(assignments) = &topic.assignments else {
        return Ok(None);
    };
    if let Some(current) = broker
        .topic(topic.name.0.as_str())
        .map(|t| t.partitions.len() as i32)
    {
        if assignments.len() as i32 != topic.count - current {
            return Err(ApiError::new(
                ResponseError::InvalidReplicaAssignment,
                format!(
                    "Increasing the number of partitions by {} but {} assignments provided.",
                    topic.count - current,
                    assignments.len()
                ),
            ));
        }
    }
    Ok(Some(
        assignments
            .iter()
            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
            .collect(),
    ))
}
