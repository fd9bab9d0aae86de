//! DescribeQuorum (key 55): the metadata quorum's leader, epoch, high
//! watermark and each voter's replication, as `kafka-metadata-quorum.sh
//! describe` reads them. Only the leader knows replication progress, so
//! any other node asks the leader over the quorum's connection, as Kafka's
//! brokers forward DescribeQuorum to the active controller.

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use vltava_protocol::ResponseError;

use super::str_bytes;
use crate::broker::METADATA_TOPIC;
use crate::Broker;

pub async fn handle(broker: &Broker, request: DescribeQuorumRequest) -> DescribeQuorumResponse {
    // Exactly one partition, the metadata log's, as Kafka checks.
    let asks_for_metadata_log = matches!(request.topics.as_slice(), [topic]
        if topic.topic_name.as_str() == METADATA_TOPIC
            && matches!(topic.partitions.as_slice(), [p] if p.partition_index == 0));
    if !asks_for_metadata_log {
        return partition_errors(&request, ResponseError::UnknownTopicOrPartition);
    }
    let status = match broker.leader_quorum_status().await {
        Ok(status) => status,
        Err(e) => return partition_errors(&request, e.error),
    };
    let leader = status.leader.map_or(-1, |l| l as i32);
    let state = |v: &vltava_quorum::ReplicaStatus| {
        ReplicaState::default()
            .with_replica_id(BrokerId(v.id as i32))
            .with_log_end_offset(v.log_end.map_or(-1, |e| e as i64))
            .with_last_fetch_timestamp(v.last_fetch_ms.unwrap_or(-1))
            .with_last_caught_up_timestamp(v.last_caught_up_ms.unwrap_or(-1))
    };
    let voters = status.voters.iter().map(state).collect();
    // Broker-only nodes fetching from the leader.
    let observers = status.observers.iter().map(state).collect();
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(leader))
        .with_leader_epoch(i32::try_from(status.term).unwrap_or(i32::MAX))
        .with_high_watermark(status.high_watermark as i64)
        .with_current_voters(voters)
        .with_observers(observers);
    // v2 lists each voter's controller listener, as peers reach it.
    let nodes = broker
        .config
        .controller_listener
        .iter()
        .flat_map(|c| {
            c.voters.iter().filter_map(|(id, address)| {
                let (host, port) = address.rsplit_once(':')?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                Some(
                    Node::default()
                        .with_node_id(BrokerId(*id as i32))
                        .with_listeners(vec![Listener::default()
                            .with_name(str_bytes(c.bind.name.clone()))
                            .with_host(str_bytes(host.to_string()))
                            .with_port(port.parse().ok()?)]),
                )
            })
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(str_bytes(METADATA_TOPIC)))
            .with_partitions(vec![partition])])
        .with_nodes(nodes)
}

/// Every requested partition with `error`, as Kafka answers a request it
/// cannot serve.
fn partition_errors(
    request: &DescribeQuorumRequest,
    error: ResponseError,
) -> DescribeQuorumResponse {
    DescribeQuorumResponse::default().with_topics(
        request
            .topics
            .iter()
            .map(|t| {
                TopicData::default()
                    .with_topic_name(t.topic_name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                PartitionData::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(error.code())
                                    .with_leader_id(BrokerId(-1))
                                    .with_leader_epoch(-1)
                                    .with_high_watermark(-1)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
