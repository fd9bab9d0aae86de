//! AlterPartitionReassignments (key 45): starts or cancels partition
//! reassignments (`kafka-reassign-partitions.sh --execute` / `--cancel`),
//! committed through the controller (see `broker/reassignment.rs`).

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};

use super::str_bytes;
use crate::broker::{PartitionOutcome, Reassign};
use crate::Broker;

pub async fn handle(
    broker: &Broker,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    // Version 0 has no flag: the factor may change, as the field's default
    // says.
    let allow_factor_change = request.allow_replication_factor_change;
    let wanted: Vec<(String, i32, Reassign)> = request
        .topics
        .into_iter()
        .flat_map(|t| {
            let name = t.name.0.to_string();
            t.partitions.into_iter().map(move |p| {
                let ask = match p.replicas {
                    Some(replicas) => Reassign::To(replicas.into_iter().map(|id| id.0).collect()),
                    None => Reassign::Cancel,
                };
                (name.clone(), p.partition_index, ask)
            })
        })
        .collect();
    let response = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow_factor_change);
    match broker
        .alter_reassignments(wanted.clone(), allow_factor_change)
        .await
    {
        Ok(results) => response.with_responses(grouped(results)),
        // The controller could not commit: the request fails as a whole.
        Err(e) => response
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(e.message.clone())))
            .with_responses(grouped(
                wanted
                    .into_iter()
                    .map(|(t, p, _)| (t, p, Err(e.clone())))
                    .collect(),
            )),
    }
}

fn grouped(results: Vec<PartitionOutcome>) -> Vec<ReassignableTopicResponse> {
    super::by_topic(results, |partition, code, message| {
        ReassignablePartitionResponse::default()
            .with_partition_index(partition)
            .with_error_code(code)
            .with_error_message(message)
    })
    .into_iter()
    .map(|(name, partitions)| {
        ReassignableTopicResponse::default()
            .with_name(name)
            .with_partitions(partitions)
    })
    .collect()
}
