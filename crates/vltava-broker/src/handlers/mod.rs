//! One module per Kafka API, each shaped the same way: validate, apply,
//! build the response. [`handle`] is the single dispatch over the API enum.

mod alter_configs;
mod alter_partition_reassignments;
mod api_versions;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_quorum;
mod describe_topic_partitions;
mod elect_leaders;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_partition_reassignments;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod sync_group;
mod unregister_broker;

use kafka_protocol::protocol::StrBytes;
use vltava_log::ReadSlice;
use vltava_protocol::{RecordsPlaceholder, Request, RequestKind, ResponseKind};

use crate::Broker;

pub use api_versions::unsupported_version_response;

/// Who sent a request, as group APIs report it.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub client_id: String,
    /// The peer address as Kafka shows it: `/127.0.0.1`.
    pub client_host: String,
    /// The name of the listener the connection came in on: brokers are
    /// given to the client at their address on that listener.
    pub listener: std::sync::Arc<str>,
}

/// A records field to be filled straight from a segment file: its
/// placeholder (in the response body) and the file range.
pub type FileRange = (RecordsPlaceholder, ReadSlice);

/// A response, and the file ranges its records placeholders stand for (in
/// the order they appear in the body).
pub struct Response {
    pub body: ResponseKind,
    pub file_ranges: Vec<FileRange>,
    /// Send nothing and close the connection, for this reason: how a
    /// produce with acks=0 that failed tells its client.
    pub close_instead: Option<String>,
}

/// A request handled as far as it can be before its answer is due.
// Made once per request and taken apart at once: boxing the answer would
// only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Handled {
    /// The answer (`None`: no response is sent, a produce with acks=0).
    Now(Option<Response>),
    /// A produce whose acks=all writes are appended and wait for the
    /// followers: the answer comes from this future. Nothing the request
    /// asked is left to do but wait, so the connection may go on to its
    /// next produce meanwhile and send the answers in order.
    Later(std::pin::Pin<Box<dyn std::future::Future<Output = Option<Response>> + Send>>),
}

/// [`handle`], except that a produce waiting for its followers is handed
/// back as [`Handled::Later`] once its batches are appended.
pub async fn handle_pipelined(broker: &Broker, request: Request, client: &ClientInfo) -> Handled {
    let version = request.api_version();
    let RequestKind::Produce(req) = request.body else {
        return Handled::Now(handle(broker, request, client).await);
    };
    match produce::start(broker, version, req).await {
        produce::Started::Done(answer) => Handled::Now(produce_response(answer)),
        produce::Started::Replicating(waiting) => {
            Handled::Later(Box::pin(
                async move { produce_response(waiting.finish().await) },
            ))
        }
    }
}

fn produce_response(answer: produce::Answer) -> Option<Response> {
    match answer {
        produce::Answer::Respond(response) => Some(Response {
            body: ResponseKind::Produce(response),
            file_ranges: Vec::new(),
            close_instead: None,
        }),
        produce::Answer::Nothing => None,
        produce::Answer::Close(reason) => Some(Response {
            body: ResponseKind::Produce(Default::default()),
            file_ranges: Vec::new(),
            close_instead: Some(reason),
        }),
    }
}

/// Handles one decoded request. `None` means no response is sent (a
/// produce with acks=0).
pub async fn handle(broker: &Broker, request: Request, client: &ClientInfo) -> Option<Response> {
    let version = request.api_version();
    if let RequestKind::Fetch(req) = request.body {
        let (body, file_ranges) = fetch::handle(broker, version, req).await;
        return Some(Response {
            body: ResponseKind::Fetch(body),
            file_ranges,
            close_instead: None,
        });
    }
    let response = match request.body {
        RequestKind::ApiVersions(req) => {
            ResponseKind::ApiVersions(api_versions::handle(version, req))
        }
        RequestKind::Metadata(req) => {
            ResponseKind::Metadata(metadata::handle(broker, version, client, req).await)
        }
        RequestKind::Produce(req) => {
            return produce_response(produce::handle(broker, version, req).await)
        }
        RequestKind::ListOffsets(req) => {
            ResponseKind::ListOffsets(list_offsets::handle(broker, version, req))
        }
        RequestKind::OffsetForLeaderEpoch(req) => {
            ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(broker, req))
        }
        RequestKind::CreateTopics(req) => {
            ResponseKind::CreateTopics(create_topics::handle(broker, version, req).await)
        }
        RequestKind::DeleteTopics(req) => {
            ResponseKind::DeleteTopics(delete_topics::handle(broker, version, req).await)
        }
        RequestKind::CreatePartitions(req) => {
            ResponseKind::CreatePartitions(create_partitions::handle(broker, req).await)
        }
        RequestKind::DescribeConfigs(req) => {
            ResponseKind::DescribeConfigs(describe_configs::handle(broker, version, req))
        }
        RequestKind::AlterConfigs(req) => {
            ResponseKind::AlterConfigs(alter_configs::handle(broker, req).await)
        }
        RequestKind::IncrementalAlterConfigs(req) => ResponseKind::IncrementalAlterConfigs(
            incremental_alter_configs::handle(broker, req).await,
        ),
        RequestKind::DeleteRecords(req) => {
            ResponseKind::DeleteRecords(off_workers(|| delete_records::handle(broker, req)))
        }
        RequestKind::InitProducerId(req) => {
            ResponseKind::InitProducerId(init_producer_id::handle(broker, client, req).await)
        }
        RequestKind::DescribeCluster(req) => {
            ResponseKind::DescribeCluster(describe_cluster::handle(broker, client, req))
        }
        RequestKind::UnregisterBroker(req) => {
            ResponseKind::UnregisterBroker(unregister_broker::handle(broker, req).await)
        }
        RequestKind::ElectLeaders(req) => {
            ResponseKind::ElectLeaders(elect_leaders::handle(broker, version, req).await)
        }
        RequestKind::AlterPartitionReassignments(req) => ResponseKind::AlterPartitionReassignments(
            alter_partition_reassignments::handle(broker, req).await,
        ),
        RequestKind::ListPartitionReassignments(req) => ResponseKind::ListPartitionReassignments(
            list_partition_reassignments::handle(broker, req),
        ),
        RequestKind::DescribeLogDirs(req) => {
            // File sizes and statvfs: file-system calls.
            ResponseKind::DescribeLogDirs(off_workers(|| {
                describe_log_dirs::handle(broker, version, req)
            }))
        }
        RequestKind::DescribeQuorum(req) => {
            ResponseKind::DescribeQuorum(describe_quorum::handle(broker, req).await)
        }
        RequestKind::DescribeTopicPartitions(req) => {
            ResponseKind::DescribeTopicPartitions(describe_topic_partitions::handle(broker, req))
        }
        // The first one creates `__consumer_offsets`.
        RequestKind::FindCoordinator(req) => ResponseKind::FindCoordinator(
            find_coordinator::handle(broker, version, client, req).await,
        ),
        RequestKind::JoinGroup(req) => {
            ResponseKind::JoinGroup(join_group::handle(broker, version, client, req).await)
        }
        RequestKind::SyncGroup(req) => {
            ResponseKind::SyncGroup(sync_group::handle(broker, req).await)
        }
        RequestKind::Heartbeat(req) => ResponseKind::Heartbeat(heartbeat::handle(broker, req)),
        RequestKind::LeaveGroup(req) => {
            ResponseKind::LeaveGroup(leave_group::handle(broker, version, req).await)
        }
        RequestKind::OffsetCommit(req) => {
            ResponseKind::OffsetCommit(offset_commit::handle(broker, req).await)
        }
        RequestKind::OffsetFetch(req) => {
            ResponseKind::OffsetFetch(offset_fetch::handle(broker, version, req))
        }
        RequestKind::ListGroups(req) => ResponseKind::ListGroups(list_groups::handle(broker, req)),
        RequestKind::DescribeGroups(req) => {
            ResponseKind::DescribeGroups(describe_groups::handle(broker, version, req))
        }
        RequestKind::DeleteGroups(req) => {
            ResponseKind::DeleteGroups(delete_groups::handle(broker, req).await)
        }
        RequestKind::OffsetDelete(req) => {
            ResponseKind::OffsetDelete(offset_delete::handle(broker, req).await)
        }
        RequestKind::ConsumerGroupHeartbeat(req) => ResponseKind::ConsumerGroupHeartbeat(
            consumer_group_heartbeat::handle(broker, version, client, req).await,
        ),
        RequestKind::ConsumerGroupDescribe(req) => {
            ResponseKind::ConsumerGroupDescribe(consumer_group_describe::handle(broker, req))
        }
        other => {
            // decode_request refuses APIs outside SUPPORTED_APIS, so this is
            // a table entry without a handler: a bug, not bad input.
            unreachable!("no handler for supported request {other:?}")
        }
    };
    Some(Response {
        body: response,
        close_instead: None,
        file_ranges: Vec::new(),
    })
}

/// Runs work that is not async and may block (file I/O and fsyncs of
/// `__consumer_offsets` and log start files, a coordinator's load of its
/// partition) off the async workers' task queue on a
/// multi-threaded runtime, so it never stalls the other connections
/// served by the same worker. Elsewhere (no runtime, or a current-thread
/// one) it runs in place.
pub(crate) fn off_workers<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Kafka's marker for "authorized operations were not requested".
pub(crate) const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// ACL operation numbers (Kafka's `AclOperation` codes) allowed on topics
/// and on the cluster. With no authorizer every operation is allowed, and
/// Kafka then reports all of those the resource type supports.
pub(crate) const TOPIC_OPERATIONS: &[u8] = &[3, 4, 5, 6, 7, 8, 10, 11];
pub(crate) const CLUSTER_OPERATIONS: &[u8] = &[5, 7, 8, 9, 10, 11, 12];

/// The authorized-operations bit field, or the "omitted" marker.
pub(crate) fn authorized_operations(requested: bool, operations: &[u8]) -> i32 {
    if !requested {
        return AUTHORIZED_OPERATIONS_OMITTED;
    }
    operations.iter().fold(0, |bits, op| bits | (1 << op))
}

/// Per-partition results of an admin request, grouped by topic in name
/// order, each partition made into its response entry by `entry(index,
/// error code, error message)`.
pub(crate) fn by_topic<T>(
    results: Vec<crate::broker::PartitionOutcome>,
    entry: impl Fn(i32, i16, Option<StrBytes>) -> T,
) -> Vec<(kafka_protocol::messages::TopicName, Vec<T>)> {
    let mut grouped: std::collections::BTreeMap<String, Vec<T>> = Default::default();
    for (topic, partition, result) in results {
        let answer = match result {
            Ok(()) => entry(partition, 0, None),
            Err(e) => entry(partition, e.code(), Some(str_bytes(e.message))),
        };
        grouped.entry(topic).or_default().push(answer);
    }
    grouped
        .into_iter()
        .map(|(topic, partitions)| {
            (
                kafka_protocol::messages::TopicName(str_bytes(topic)),
                partitions,
            )
        })
        .collect()
}

pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
