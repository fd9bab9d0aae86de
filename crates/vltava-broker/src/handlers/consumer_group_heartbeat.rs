use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use uuid::Uuid;
use vltava_protocol::ResponseError;

use super::{str_bytes, ClientInfo};
use crate::group::assignor::ASSIGNORS;
use crate::group::consumer::HeartbeatArgs;
use crate::Broker;

/// From v1 the client generates its member id.
const CLIENT_MEMBER_ID_VERSION: i16 = 1;

pub async fn handle(
    broker: &Broker,
    version: i16,
    client: &ClientInfo,
    request: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let fail = |error: ResponseError, message: String| {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(message)))
            .with_member_epoch(-1)
    };
    if request.group_id.0.is_empty() {
        return fail(
            ResponseError::InvalidRequest,
            "GroupId can't be empty.".into(),
        );
    }
    if let Some(assignor) = &request.server_assignor {
        if !ASSIGNORS.contains(&assignor.as_str()) {
            return fail(
                ResponseError::UnsupportedAssignor,
                format!(
                    "ServerAssignor {} is not supported. Supported assignors: {}.",
                    assignor.as_str(),
                    ASSIGNORS.join(", ")
                ),
            );
        }
    }
    let member_id = if request.member_id.is_empty() {
        if version >= CLIENT_MEMBER_ID_VERSION {
            return fail(
                ResponseError::InvalidRequest,
                "MemberId can't be empty.".into(),
            );
        }
        Uuid::new_v4().to_string()
    } else {
        request.member_id.to_string()
    };
    let id_to_name: BTreeMap<Uuid, String> = broker
        .topics()
        .iter()
        .map(|t| (t.id, t.name.clone()))
        .collect();
    let owned = request.topic_partitions.as_ref().map(|tps| {
        tps.iter()
            .filter_map(|tp| {
                id_to_name
                    .get(&tp.topic_id)
                    .map(|n| (n.clone(), tp.partitions.iter().copied().collect()))
            })
            .collect()
    });
    let args = HeartbeatArgs {
        member_id: member_id.clone(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: request.rack_id.as_ref().map(|s| s.to_string()),
        client_id: client.client_id.clone(),
        client_host: client.client_host.clone(),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        server_assignor: request.server_assignor.as_ref().map(|s| s.to_string()),
        subscribed_topic_names: request.subscribed_topic_names.as_ref().map(|names| {
            names
                .iter()
                .map(|n| n.0.to_string())
                .collect::<BTreeSet<String>>()
        }),
        subscribed_topic_regex: request
            .subscribed_topic_regex
            .as_ref()
            .map(|s| s.to_string()),
        owned,
    };
    tracing::debug!(
        group = request.group_id.0.as_str(),
        member = %member_id,
        epoch = request.member_epoch,
        owned = ?args.owned,
        "consumer group heartbeat"
    );
    match broker
        .groups()
        .consumer_heartbeat(broker, request.group_id.0.as_str(), args)
        .await
    {
        Err((error, message)) => fail(error, message),
        Ok(outcome) => {
            tracing::debug!(member = %member_id, epoch = outcome.member_epoch, assignment = ?outcome.assignment, "heartbeat answered");
            let name_to_id: BTreeMap<String, Uuid> =
                id_to_name.into_iter().map(|(id, n)| (n, id)).collect();
            let assignment = outcome.assignment.map(|a| {
                Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .filter_map(|(topic, partitions)| {
                            name_to_id.get(&topic).map(|id| {
                                TopicPartitions::default()
                                    .with_topic_id(*id)
                                    .with_partitions(partitions.into_iter().collect())
                            })
                        })
                        .collect(),
                )
            });
            ConsumerGroupHeartbeatResponse::default()
                .with_member_id(Some(str_bytes(member_id)))
                .with_member_epoch(outcome.member_epoch)
                .with_heartbeat_interval_ms(broker.groups().settings.consumer_heartbeat_interval_ms)
                .with_assignment(assignment)
        }
    }
}
