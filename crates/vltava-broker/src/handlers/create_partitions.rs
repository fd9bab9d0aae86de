use std::collections::HashSet;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use vltava_protocol::ResponseError;

use super::str_bytes;
use crate::broker::{check_partitions_per_request, PARTITIONS_PER_REQUEST_MAX};
use crate::error::ApiError;
use crate::Broker;

pub fn handle(broker: &Broker, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut seen = HashSet::new();
    // Partitions this request may still add (PARTITIONS_PER_REQUEST_MAX).
    let mut budget = PARTITIONS_PER_REQUEST_MAX;
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
                check_assignments(broker, &topic)
                    .and_then(|()| spend(broker, &name, topic.count, &mut budget))
                    .and_then(|()| {
                        broker.create_partitions(&name, topic.count, request.validate_only)
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

/// Takes the partitions `name` would gain out of the request's budget.
fn spend(broker: &Broker, name: &str, count: i32, budget: &mut i32) -> Result<(), ApiError> {
    let current = broker.topic(name).map_or(0, |t| t.partitions.len() as i32);
    let adding = count.saturating_sub(current).max(0);
    if adding > *budget {
        check_partitions_per_request(
            (PARTITIONS_PER_REQUEST_MAX - *budget).saturating_add(adding),
        )?;
    }
    *budget -= adding;
    Ok(())
}

fn check_assignments(
    broker: &Broker,
    topic: &kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic,
) -> Result<(), ApiError> {
    let Some(assignments) = &topic.assignments else {
        return Ok(());
    };
    let local = assignments
        .iter()
        .all(|a| a.broker_ids.len() == 1 && a.broker_ids[0].0 == broker.node_id());
    if !local {
        return Err(ApiError::new(
            ResponseError::InvalidReplicaAssignment,
            format!(
                "Each new partition must be placed on exactly broker {}",
                broker.node_id()
            ),
        ));
    }
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
    Ok(())
}
