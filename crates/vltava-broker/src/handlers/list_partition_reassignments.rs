//! ListPartitionReassignments (key 46): the reassignments under way
//! (`kafka-reassign-partitions.sh --list` / `--verify`), from this
//! broker's metadata image.

use std::collections::BTreeMap;

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};

use super::str_bytes;
use crate::Broker;

pub fn handle(
    broker: &Broker,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let named: Option<Vec<(String, i32)>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let name = t.name.0.to_string();
                t.partition_indexes
                    .into_iter()
                    .map(move |p| (name.clone(), p))
            })
            .collect()
    });
    let ids = |list: Vec<i32>| list.into_iter().map(BrokerId).collect::<Vec<_>>();
    let mut by_topic: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for r in broker.list_reassignments(named.as_deref()) {
        by_topic.entry(r.topic).or_default().push(
            OngoingPartitionReassignment::default()
                .with_partition_index(r.partition)
                .with_replicas(ids(r.replicas))
                .with_adding_replicas(ids(r.adding))
                .with_removing_replicas(ids(r.removing)),
        );
    }
    ListPartitionReassignmentsResponse::default().with_topics(
        by_topic
            .into_iter()
            .map(|(name, partitions)| {
                OngoingTopicReassignment::default()
                    .with_name(TopicName(str_bytes(name)))
                    .with_partitions(partitions)
            })
            .collect(),
    )
}
