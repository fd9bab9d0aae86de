use std::collections::HashSet;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use vltava_protocol::ResponseError;

use super::str_bytes;
use crate::broker::PartitionBudget;
use crate::error::ApiError;
use crate::Broker;

pub fn handle(broker: &Broker, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut seen = HashSet::new();
    let mut budget = PartitionBudget::default();
    let results = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let result = if !seen.insert(name.clone()) {
                Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    "Duplicate topic in request.",
                ))
            } else {
                check_assignments(broker, &topic).and_then(|manual| {
                    budget.spend(adding(broker, &name, topic.count))?;
                    broker.create_partitions(
                        &name,
                        topic.count,
                        request.validate_only,
                        manual.as_deref(),
                    )
                })
            };
            let response = CreatePartitionsTopicResult::default().with_name(topic.name);
            match result {
                Ok(()) => response,
                Err(e) => response
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.message))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
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
    topic: &kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic,
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
