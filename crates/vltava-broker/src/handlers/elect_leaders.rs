//! ElectLeaders (key 43): preferred or unclean leader elections on request
//! (`kafka-leader-election.sh`), committed through the controller.

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use vltava_protocol::ResponseError;

use crate::broker::ElectionKind;
use crate::Broker;

/// Version 0 has no election type: always preferred.
const ELECTION_TYPE_VERSION: i16 = 1;

pub async fn handle(
    broker: &Broker,
    version: i16,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let kind = match (version >= ELECTION_TYPE_VERSION, request.election_type) {
        (false, _) | (true, 0) => ElectionKind::Preferred,
        (true, 1) => ElectionKind::Unclean,
        (true, other) => {
            let response = ElectLeadersResponse::default();
            if version >= ELECTION_TYPE_VERSION {
                tracing::debug!(election_type = other, "unknown election type");
                return response.with_error_code(ResponseError::InvalidRequest.code());
            }
            return response;
        }
    };
    let partitions = request.topic_partitions.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let name = t.topic.0.to_string();
                t.partitions.into_iter().map(move |p| (name.clone(), p))
            })
            .collect::<Vec<_>>()
    });
    let results = match broker.elect_leaders(kind, partitions.clone()).await {
        Ok(results) => results,
        // The controller could not be reached: every partition asked for
        // gets its error (nothing for "all").
        Err(e) => {
            let response = ElectLeadersResponse::default();
            let response = match version >= ELECTION_TYPE_VERSION {
                true => response.with_error_code(e.code()),
                false => response,
            };
            let failed = partitions
                .unwrap_or_default()
                .into_iter()
                .map(|(t, p)| (t, p, Err(e.clone())))
                .collect();
            return response.with_replica_election_results(grouped(failed));
        }
    };
    ElectLeadersResponse::default().with_replica_election_results(grouped(results))
}

fn grouped(results: Vec<crate::broker::PartitionOutcome>) -> Vec<ReplicaElectionResult> {
    super::by_topic(results, |partition, code, message| {
        PartitionResult::default()
            .with_partition_id(partition)
            .with_error_code(code)
            .with_error_message(message)
    })
    .into_iter()
    .map(|(topic, partitions)| {
        ReplicaElectionResult::default()
            .with_topic(topic)
            .with_partition_result(partitions)
    })
    .collect()
}
