//! Admin calls: topics, partitions, configs, cluster, and groups, each
//! returning per-item results the way Kafka's `Admin` client does.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsAssignment;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::{
    BrokerId, ConsumerGroupDescribeRequest, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest, DescribeClusterRequest,
    DescribeConfigsRequest, DescribeGroupsRequest, DescribeQuorumRequest, GroupId,
    IncrementalAlterConfigsRequest, ListGroupsRequest, OffsetDeleteRequest,
};

use crate::client::{str_bytes, topic_name, BrokerInfo, Client, Node, TopicInfo};
use crate::consumer::{list_offsets, IsolationLevel, OffsetSpec, TopicPartition};
use crate::error::{codes, Error, KafkaError};
use crate::group;

/// The request timeout sent with admin operations.
const OPERATION_TIMEOUT_MS: i32 = 30_000;

/// A reassignment under way (ListPartitionReassignments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    /// The target replicas, then the ones leaving.
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1: the broker's `num.partitions`.
    pub partitions: i32,
    /// -1: the broker's `default.replication.factor`.
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
    /// Manual placement: the brokers of partition 0, 1, ... (then
    /// `partitions` and `replication_factor` must be -1). Empty: the
    /// broker places them.
    pub assignments: Vec<Vec<i32>>,
}

/// `ConfigResource.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    Topic = 2,
    Broker = 4,
}

/// `AlterConfigOp.OpType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterOp {
    Set = 0,
    Delete = 1,
}

/// One config as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub read_only: bool,
    pub is_sensitive: bool,
    /// Kafka's `ConfigSource` code (1 dynamic topic, 2 dynamic broker, 4
    /// static broker, 5 default, ...).
    pub source: i8,
    /// `(name, value, source)` of each synonym, most specific first.
    pub synonyms: Vec<(String, Option<String>, i8)>,
}

impl ConfigEntry {
    /// Kafka's name for `source`, as `kafka-configs.sh --all` prints it.
    pub fn source_name(source: i8) -> &'static str {
        match source {
            1 => "DYNAMIC_TOPIC_CONFIG",
            2 => "DYNAMIC_BROKER_CONFIG",
            3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
            4 => "STATIC_BROKER_CONFIG",
            5 => "DEFAULT_CONFIG",
            6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
            7 => "CLIENT_METRICS_CONFIG",
            8 => "GROUP_CONFIG",
            _ => "UNKNOWN",
        }
    }

    /// True when the value is the built-in default.
    pub fn is_default(&self) -> bool {
        self.source == 5
    }
}

/// What DescribeCluster (or Metadata) says about the cluster.
#[derive(Debug, Clone)]
pub struct ClusterDescription {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: Vec<BrokerInfo>,
    /// Registered brokers the controller fenced (DescribeCluster v2;
    /// empty from older brokers, which do not say).
    pub fenced: Vec<BrokerInfo>,
}

/// The metadata quorum as DescribeQuorum reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumInfo {
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<QuorumReplica>,
    pub observers: Vec<QuorumReplica>,
    /// Each node's endpoints (DescribeQuorum v2), as `LISTENER://host:port`.
    pub endpoints: std::collections::BTreeMap<i32, Vec<String>>,
}

/// One replica of the metadata log; `-1` is unknown, as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumReplica {
    pub id: i32,
    /// Kafka's base64 form; `AAAAAAAAAAAAAAAAAAAAAA` when the broker has none.
    pub directory_id: uuid::Uuid,
    pub log_end_offset: i64,
    pub last_fetch_timestamp: i64,
    pub last_caught_up_timestamp: i64,
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Empty when the broker is older than ListGroups v4.
    pub state: String,
    /// `classic` or `consumer` (KIP-848); empty when the broker is older
    /// than ListGroups v5.
    pub group_type: String,
}

/// A group member as DescribeGroups or ConsumerGroupDescribe reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    /// The partitions the member owns: decoded from the consumer-protocol
    /// assignment of a classic group (empty for other protocol types).
    pub assignment: Vec<TopicPartition>,
    /// KIP-848 groups only: the partitions the coordinator wants the member
    /// to own once it has reconciled.
    pub target_assignment: Option<Vec<TopicPartition>>,
    /// KIP-848 groups only.
    pub member_epoch: Option<i32>,
}

/// A group as DescribeGroups or ConsumerGroupDescribe reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    /// `classic` or `consumer`, as ListGroups v5 names group types.
    pub group_type: &'static str,
    pub state: String,
    pub protocol_type: String,
    /// The assignor (`range`, `uniform`, ...).
    pub protocol: String,
    pub coordinator: i32,
    pub members: Vec<MemberDescription>,
    /// KIP-848 groups only.
    pub group_epoch: Option<i32>,
    /// KIP-848 groups only: the epoch of the current target assignment.
    pub target_assignment_epoch: Option<i32>,
}

/// `GroupType` names as ListGroups v5 and Kafka's tools print them.
pub const GROUP_TYPE_CLASSIC: &str = "classic";
pub const GROUP_TYPE_CONSUMER: &str = "consumer";

/// Admin operations over a [`Client`].
#[derive(Clone)]
pub struct Admin {
    client: Client,
}

impl Admin {
    pub fn new(client: Client) -> Admin {
        Admin { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates topics; one result per topic, in order.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<Vec<(String, Result<(), KafkaError>)>, Error> {
        let response = self
            .client
            .send(Node::Controller, |_| {
                CreateTopicsRequest::default()
                    .with_timeout_ms(OPERATION_TIMEOUT_MS)
                    .with_validate_only(validate_only)
                    .with_topics(
                        topics
                            .iter()
                            .map(|t| {
                                CreatableTopic::default()
                                    .with_name(topic_name(&t.name))
                                    .with_num_partitions(t.partitions)
                                    .with_replication_factor(t.replication_factor)
                                    .with_assignments(
                                        t.assignments
                                            .iter()
                                            .enumerate()
                                            .map(|(i, brokers)| {
                                                CreatableReplicaAssignment::default()
                                                    .with_partition_index(i as i32)
                                                    .with_broker_ids(
                                                        brokers
                                                            .iter()
                                                            .map(|b| BrokerId(*b))
                                                            .collect(),
                                                    )
                                            })
                                            .collect(),
                                    )
                                    .with_configs(
                                        t.configs
                                            .iter()
                                            .map(|(k, v)| {
                                                CreatableTopicConfig::default()
                                                    .with_name(str_bytes(k))
                                                    .with_value(Some(str_bytes(v)))
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    )
            })
            .await?;
        Ok(response
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.to_string(),
                    item_result(t.error_code, &t.error_message),
                )
            })
            .collect())
    }

    /// Deletes topics by name; one result per topic.
    pub async fn delete_topics(
        &self,
        names: &[String],
    ) -> Result<Vec<(String, Result<(), KafkaError>)>, Error> {
        let response = self
            .client
            .send(Node::Controller, |_| {
                DeleteTopicsRequest::default()
                    .with_timeout_ms(OPERATION_TIMEOUT_MS)
                    .with_topic_names(names.iter().map(|n| topic_name(n)).collect())
            })
            .await?;
        for n in names {
            self.client.invalidate(n);
        }
        Ok(response
            .responses
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                    item_result(t.error_code, &t.error_message),
                )
            })
            .collect())
    }

    /// Every topic (including internal ones), sorted by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>, Error> {
        let mut topics: Vec<TopicInfo> = self
            .client
            .metadata(None, false)
            .await?
            .into_iter()
            .filter(|t| t.error_code == 0)
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// Metadata of the named topics, each with its own error code.
    pub async fn describe_topics(&self, names: &[String]) -> Result<Vec<TopicInfo>, Error> {
        self.client.metadata(Some(names), false).await
    }

    /// Raises `topic` to `count` partitions; `assignments`, when given,
    /// places each new partition on those brokers.
    pub async fn create_partitions(
        &self,
        topic: &str,
        count: i32,
        assignments: Option<&[Vec<i32>]>,
    ) -> Result<(), Error> {
        let assignments = assignments.map(|a| {
            a.iter()
                .map(|brokers| {
                    CreatePartitionsAssignment::default()
                        .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
                })
                .collect::<Vec<_>>()
        });
        let response = self
            .client
            .send(Node::Controller, |_| {
                CreatePartitionsRequest::default()
                    .with_timeout_ms(OPERATION_TIMEOUT_MS)
                    .with_topics(vec![CreatePartitionsTopic::default()
                        .with_name(topic_name(topic))
                        .with_count(count)
                        .with_assignments(assignments.clone())])
            })
            .await?;
        self.client.invalidate(topic);
        for r in &response.results {
            item_result(r.error_code, &r.error_message)?;
        }
        Ok(())
    }

    /// Every config of one resource, with synonyms.
    pub async fn describe_configs(
        &self,
        resource_type: ResourceType,
        name: &str,
    ) -> Result<Vec<ConfigEntry>, Error> {
        let node = match resource_type {
            ResourceType::Broker => name.parse().map_or(Node::Any, Node::Broker),
            ResourceType::Topic => Node::Any,
        };
        let response = self
            .client
            .send(node, |_| {
                DescribeConfigsRequest::default()
                    .with_include_synonyms(true)
                    .with_resources(vec![DescribeConfigsResource::default()
                        .with_resource_type(resource_type as i8)
                        .with_resource_name(str_bytes(name))
                        .with_configuration_keys(None)])
            })
            .await?;
        let mut out = Vec::new();
        for r in &response.results {
            item_result(r.error_code, &r.error_message)?;
            for c in &r.configs {
                out.push(ConfigEntry {
                    name: c.name.to_string(),
                    value: c.value.as_ref().map(|v| v.to_string()),
                    read_only: c.read_only,
                    is_sensitive: c.is_sensitive,
                    source: c.config_source,
                    synonyms: c
                        .synonyms
                        .iter()
                        .map(|s| {
                            (
                                s.name.to_string(),
                                s.value.as_ref().map(|v| v.to_string()),
                                s.source,
                            )
                        })
                        .collect(),
                });
            }
        }
        Ok(out)
    }

    /// IncrementalAlterConfigs on one resource.
    pub async fn incremental_alter_configs(
        &self,
        resource_type: ResourceType,
        name: &str,
        ops: &[(String, AlterOp, Option<String>)],
    ) -> Result<(), Error> {
        let node = match resource_type {
            ResourceType::Broker => name.parse().map_or(Node::Any, Node::Broker),
            ResourceType::Topic => Node::Any,
        };
        let response = self
            .client
            .send(node, |_| {
                IncrementalAlterConfigsRequest::default().with_resources(vec![
                    AlterConfigsResource::default()
                        .with_resource_type(resource_type as i8)
                        .with_resource_name(str_bytes(name))
                        .with_configs(
                            ops.iter()
                                .map(|(k, op, v)| {
                                    AlterableConfig::default()
                                        .with_name(str_bytes(k))
                                        .with_config_operation(*op as i8)
                                        .with_value(v.as_deref().map(str_bytes))
                                })
                                .collect(),
                        ),
                ])
            })
            .await?;
        for r in &response.responses {
            item_result(r.error_code, &r.error_message)?;
        }
        Ok(())
    }

    /// Removes a broker's registration (UnregisterBroker, key 64): for a
    /// broker taken out of the cluster for good.
    pub async fn unregister_broker(&self, broker_id: i32) -> Result<(), Error> {
        let r = self
            .client
            .send(Node::Any, |_| {
                kafka_protocol::messages::UnregisterBrokerRequest::default()
                    .with_broker_id(kafka_protocol::messages::BrokerId(broker_id))
            })
            .await?;
        item_result(r.error_code, &r.error_message)?;
        Ok(())
    }

    /// The ids of the live brokers (DescribeCluster).
    pub async fn live_broker_ids(&self) -> Result<std::collections::BTreeSet<i32>, Error> {
        Ok(self
            .describe_cluster()
            .await?
            .brokers
            .iter()
            .map(|b| b.id)
            .collect())
    }

    /// Elects leaders (ElectLeaders, key 43): `unclean` false for the
    /// preferred replica, true for any live replica of a partition without a
    /// leader; `partitions` `None` for every partition (then only the ones an
    /// election was needed for are answered). One result per partition.
    pub async fn elect_leaders(
        &self,
        unclean: bool,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, Result<(), KafkaError>>, Error> {
        use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
        let topics = partitions.map(|list| {
            by_topic(list)
                .into_iter()
                .map(|(t, p)| {
                    TopicPartitions::default()
                        .with_topic(topic_name(t))
                        .with_partitions(p)
                })
                .collect::<Vec<_>>()
        });
        let response = self
            .client
            .send(Node::Controller, |_| {
                kafka_protocol::messages::ElectLeadersRequest::default()
                    .with_election_type(i8::from(unclean))
                    .with_topic_partitions(topics.clone())
                    .with_timeout_ms(OPERATION_TIMEOUT_MS)
            })
            .await?;
        item_result(response.error_code, &None)?;
        let mut out = BTreeMap::new();
        for t in &response.replica_election_results {
            for p in &t.partition_result {
                out.insert(
                    (t.topic.to_string(), p.partition_id),
                    item_result(p.error_code, &p.error_message),
                );
            }
        }
        Ok(out)
    }

    /// Starts or cancels partition reassignments (AlterPartitionReassignments,
    /// key 45): `Some(replicas)` moves a partition to those brokers (the
    /// first the preferred leader), `None` cancels the one under way. One
    /// result per partition.
    pub async fn alter_partition_reassignments(
        &self,
        wanted: &[(TopicPartition, Option<Vec<i32>>)],
    ) -> Result<BTreeMap<TopicPartition, Result<(), KafkaError>>, Error> {
        use kafka_protocol::messages::alter_partition_reassignments_request::{
            ReassignablePartition, ReassignableTopic,
        };
        use kafka_protocol::messages::BrokerId;
        let mut topics: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
        for ((topic, partition), replicas) in wanted {
            topics.entry(topic).or_default().push(
                ReassignablePartition::default()
                    .with_partition_index(*partition)
                    .with_replicas(
                        replicas
                            .as_ref()
                            .map(|r| r.iter().copied().map(BrokerId).collect()),
                    ),
            );
        }
        let topics: Vec<ReassignableTopic> = topics
            .into_iter()
            .map(|(t, p)| {
                ReassignableTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(p)
            })
            .collect();
        let response = self
            .client
            .send(Node::Controller, |_| {
                kafka_protocol::messages::AlterPartitionReassignmentsRequest::default()
                    .with_timeout_ms(OPERATION_TIMEOUT_MS)
                    .with_topics(topics.clone())
            })
            .await?;
        item_result(response.error_code, &response.error_message)?;
        let mut out = BTreeMap::new();
        for t in &response.responses {
            for p in &t.partitions {
                out.insert(
                    (t.name.to_string(), p.partition_index),
                    item_result(p.error_code, &p.error_message),
                );
            }
        }
        Ok(out)
    }

    /// The reassignments under way (ListPartitionReassignments, key 46),
    /// of `partitions` (`None`: all): per partition, its replicas and the
    /// ones being added and removed.
    pub async fn list_partition_reassignments(
        &self,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, Reassignment>, Error> {
        use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
        let topics = partitions.map(|list| {
            by_topic(list)
                .into_iter()
                .map(|(t, p)| {
                    ListPartitionReassignmentsTopics::default()
                        .with_name(topic_name(t))
                        .with_partition_indexes(p)
                })
                .collect::<Vec<_>>()
        });
        let response = self
            .client
            .send(Node::Controller, |_| {
                kafka_protocol::messages::ListPartitionReassignmentsRequest::default()
                    .with_timeout_ms(OPERATION_TIMEOUT_MS)
                    .with_topics(topics.clone())
            })
            .await?;
        item_result(response.error_code, &response.error_message)?;
        let ids = |list: &[kafka_protocol::messages::BrokerId]| list.iter().map(|b| b.0).collect();
        let mut out = BTreeMap::new();
        for t in &response.topics {
            for p in &t.partitions {
                out.insert(
                    (t.name.to_string(), p.partition_index),
                    Reassignment {
                        replicas: ids(&p.replicas),
                        adding: ids(&p.adding_replicas),
                        removing: ids(&p.removing_replicas),
                    },
                );
            }
        }
        Ok(out)
    }

    /// Broker `broker`'s log directories (DescribeLogDirs, key 35): each
    /// directory and, per partition replica in it, (topic, partition, size
    /// in bytes, offset lag), for every partition (Kafka's tool asks for all
    /// and filters by topic itself).
    pub async fn describe_log_dirs(&self, broker: i32) -> Result<Vec<LogDirInfo>, Error> {
        use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
        let response = self
            .client
            .send(Node::Broker(broker), |_| {
                kafka_protocol::messages::DescribeLogDirsRequest::default()
                    .with_topics(None::<Vec<DescribableLogDirTopic>>)
            })
            .await?;
        item_result(response.error_code, &None)?;
        Ok(response
            .results
            .iter()
            .map(|r| LogDirInfo {
                dir: r.log_dir.to_string(),
                error: KafkaError::from_code(r.error_code, None),
                replicas: r
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions.iter().map(|p| {
                            (
                                t.name.to_string(),
                                p.partition_index,
                                p.partition_size,
                                p.offset_lag,
                            )
                        })
                    })
                    .collect(),
            })
            .collect())
    }

    /// The metadata quorum (DescribeQuorum, `__cluster_metadata` partition 0).
    pub async fn describe_quorum(&self) -> Result<QuorumInfo, Error> {
        use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
        let r = self
            .client
            .send(Node::Any, |_| {
                DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
                    .with_topic_name(topic_name("__cluster_metadata"))
                    .with_partitions(vec![PartitionData::default().with_partition_index(0)])])
            })
            .await?;
        item_result(r.error_code, &r.error_message)?;
        let partition = r
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| Error::Protocol {
                addr: "the broker".into(),
                message: "DescribeQuorum answered no partition".into(),
            })?;
        item_result(partition.error_code, &partition.error_message)?;
        let replicas =
            |states: &[kafka_protocol::messages::describe_quorum_response::ReplicaState]| {
                states
                    .iter()
                    .map(|s| QuorumReplica {
                        id: s.replica_id.0,
                        directory_id: s.replica_directory_id,
                        log_end_offset: s.log_end_offset,
                        last_fetch_timestamp: s.last_fetch_timestamp,
                        last_caught_up_timestamp: s.last_caught_up_timestamp,
                    })
                    .collect()
            };
        Ok(QuorumInfo {
            leader_id: partition.leader_id.0,
            leader_epoch: partition.leader_epoch,
            high_watermark: partition.high_watermark,
            voters: replicas(&partition.current_voters),
            observers: replicas(&partition.observers),
            endpoints: r
                .nodes
                .iter()
                .map(|n| {
                    let endpoints = n
                        .listeners
                        .iter()
                        .map(|l| format!("{}://{}:{}", l.name, l.host, l.port))
                        .collect();
                    (n.node_id.0, endpoints)
                })
                .collect(),
        })
    }

    /// Brokers and controller: DescribeCluster when the broker has it, else
    /// Metadata.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription, Error> {
        if self
            .client
            .version::<DescribeClusterRequest>(Node::Any)
            .await
            .is_ok()
        {
            // v2 lists fenced brokers too, when asked, marked as such.
            let r = self
                .client
                .send(Node::Any, |_| {
                    DescribeClusterRequest::default().with_include_fenced_brokers(true)
                })
                .await?;
            item_result(r.error_code, &r.error_message)?;
            let info =
                |b: &kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker| {
                    BrokerInfo {
                        id: b.broker_id.0,
                        host: b.host.to_string(),
                        port: b.port,
                        rack: b.rack.as_ref().map(|r| r.to_string()),
                    }
                };
            return Ok(ClusterDescription {
                cluster_id: Some(r.cluster_id.to_string()),
                controller_id: r.controller_id.0,
                brokers: r
                    .brokers
                    .iter()
                    .filter(|b| !b.is_fenced)
                    .map(info)
                    .collect(),
                fenced: r.brokers.iter().filter(|b| b.is_fenced).map(info).collect(),
            });
        }
        self.client.metadata(Some(&[]), false).await?;
        let c = self.client.cluster();
        Ok(ClusterDescription {
            cluster_id: c.cluster_id,
            controller_id: c.controller_id,
            brokers: c.brokers.into_values().collect(),
            fenced: Vec::new(),
        })
    }

    /// Every group on every broker, sorted by id.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, Error> {
        self.list_groups_filtered(&[], &[]).await
    }

    /// Groups in one of `states` (any when empty) and of one of `types`
    /// (`classic`, `consumer`; any when empty), sorted by id. The broker
    /// filters (ListGroups v4 states, v5 types, both case-insensitive); the
    /// same filter is applied here for brokers older than that, where a
    /// group's type is unknown (empty) and so matches no type filter.
    pub async fn list_groups_filtered(
        &self,
        states: &[String],
        types: &[String],
    ) -> Result<Vec<GroupListing>, Error> {
        self.client.metadata(Some(&[]), false).await?;
        let mut out = Vec::new();
        for id in self.client.cluster().brokers.keys() {
            let r = self
                .client
                .send(Node::Broker(*id), |v| {
                    let mut request = ListGroupsRequest::default();
                    if v >= 4 {
                        request.states_filter = states.iter().map(|s| str_bytes(s)).collect();
                    }
                    if v >= 5 {
                        request.types_filter = types.iter().map(|t| str_bytes(t)).collect();
                    }
                    request
                })
                .await?;
            KafkaError::check(r.error_code, None)?;
            out.extend(r.groups.iter().map(|g| GroupListing {
                group_id: g.group_id.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
                group_type: g.group_type.to_string(),
            }));
        }
        let wanted = |filter: &[String], value: &str| {
            filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(value))
        };
        out.retain(|g| wanted(states, &g.state) && wanted(types, &g.group_type));
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// Describes a group of either type, as Kafka's `describeConsumerGroups`
    /// does: ConsumerGroupDescribe first, then DescribeGroups when the group
    /// is not a consumer group or the broker lacks the API. An unknown group
    /// is described as `Dead` with no members.
    pub async fn describe_any_group(&self, group_id: &str) -> Result<GroupDescription, Error> {
        let coordinator = group::find_coordinator(&self.client, group_id).await?;
        let node = Node::Broker(coordinator);
        if self
            .client
            .version::<ConsumerGroupDescribeRequest>(node)
            .await
            .is_ok()
        {
            match self.describe_consumer_group(coordinator, group_id).await {
                Err(Error::Kafka(e)) if e.code == codes::GROUP_ID_NOT_FOUND => {}
                other => return other,
            }
        }
        match self.describe_group(group_id).await {
            Err(Error::Kafka(e)) if e.code == codes::GROUP_ID_NOT_FOUND => Ok(GroupDescription {
                group_id: group_id.to_string(),
                group_type: GROUP_TYPE_CLASSIC,
                state: "Dead".into(),
                protocol_type: String::new(),
                protocol: String::new(),
                coordinator,
                members: Vec::new(),
                group_epoch: None,
                target_assignment_epoch: None,
            }),
            other => other,
        }
    }

    /// Describes one KIP-848 group at its coordinator (ConsumerGroupDescribe).
    async fn describe_consumer_group(
        &self,
        coordinator: i32,
        group_id: &str,
    ) -> Result<GroupDescription, Error> {
        let r = self
            .client
            .send(Node::Broker(coordinator), |_| {
                ConsumerGroupDescribeRequest::default()
                    .with_group_ids(vec![GroupId(str_bytes(group_id))])
            })
            .await?;
        let g = r
            .groups
            .first()
            .ok_or_else(|| Error::Invalid("ConsumerGroupDescribe returned no group".into()))?;
        item_result(g.error_code, &g.error_message)?;
        let partitions =
            |a: &kafka_protocol::messages::consumer_group_describe_response::Assignment| {
                let mut tps: Vec<TopicPartition> = a
                    .topic_partitions
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| (t.topic_name.to_string(), *p)))
                    .collect();
                tps.sort();
                tps
            };
        Ok(GroupDescription {
            group_id: g.group_id.to_string(),
            group_type: GROUP_TYPE_CONSUMER,
            state: g.group_state.to_string(),
            protocol_type: group::PROTOCOL_TYPE.to_string(),
            protocol: g.assignor_name.to_string(),
            coordinator,
            members: g
                .members
                .iter()
                .map(|m| MemberDescription {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.instance_id.as_ref().map(|s| s.to_string()),
                    client_id: m.client_id.to_string(),
                    host: m.client_host.to_string(),
                    assignment: partitions(&m.assignment),
                    target_assignment: Some(partitions(&m.target_assignment)),
                    member_epoch: Some(m.member_epoch),
                })
                .collect(),
            group_epoch: Some(g.group_epoch),
            target_assignment_epoch: Some(g.assignment_epoch),
        })
    }

    /// Describes one classic group at its coordinator (DescribeGroups).
    pub async fn describe_group(&self, group_id: &str) -> Result<GroupDescription, Error> {
        let coordinator = group::find_coordinator(&self.client, group_id).await?;
        let r = self
            .client
            .send(Node::Broker(coordinator), |_| {
                DescribeGroupsRequest::default().with_groups(vec![GroupId(str_bytes(group_id))])
            })
            .await?;
        let g = r
            .groups
            .first()
            .ok_or_else(|| Error::Invalid("DescribeGroups returned no group".into()))?;
        item_result(g.error_code, &g.error_message)?;
        Ok(GroupDescription {
            group_id: g.group_id.to_string(),
            group_type: GROUP_TYPE_CLASSIC,
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            coordinator,
            members: g
                .members
                .iter()
                .map(|m| MemberDescription {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
                    client_id: m.client_id.to_string(),
                    host: m.client_host.to_string(),
                    assignment: if g.protocol_type.as_str() == group::PROTOCOL_TYPE {
                        group::decode_assignment(&Bytes::clone(&m.member_assignment))
                            .unwrap_or_default()
                    } else {
                        Vec::new()
                    },
                    target_assignment: None,
                    member_epoch: None,
                })
                .collect(),
            group_epoch: None,
            target_assignment_epoch: None,
        })
    }

    /// Deletes groups; one result per group.
    pub async fn delete_groups(
        &self,
        group_ids: &[String],
    ) -> Result<Vec<(String, Result<(), KafkaError>)>, Error> {
        let mut out = Vec::new();
        for g in group_ids {
            let coordinator = group::find_coordinator(&self.client, g).await?;
            let r = self
                .client
                .send(Node::Broker(coordinator), |_| {
                    DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str_bytes(g))])
                })
                .await?;
            for res in &r.results {
                out.push((res.group_id.to_string(), item_result(res.error_code, &None)));
            }
        }
        Ok(out)
    }

    /// The group's committed offsets (all partitions).
    pub async fn group_offsets(
        &self,
        group_id: &str,
    ) -> Result<BTreeMap<TopicPartition, i64>, Error> {
        let coordinator = group::find_coordinator(&self.client, group_id).await?;
        group::fetch_offsets(&self.client, coordinator, group_id, None).await
    }

    /// Deletes a group's committed offsets for `partitions` (OffsetDelete).
    /// `Err` is a group-level error (no such group, group not empty for
    /// these topics is per partition); otherwise one result per partition.
    pub async fn delete_group_offsets(
        &self,
        group_id: &str,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Result<(), KafkaError>>, Error> {
        let coordinator = group::find_coordinator(&self.client, group_id).await?;
        let mut by_topic: BTreeMap<&str, Vec<OffsetDeleteRequestPartition>> = BTreeMap::new();
        for (t, p) in partitions {
            by_topic
                .entry(t)
                .or_default()
                .push(OffsetDeleteRequestPartition::default().with_partition_index(*p));
        }
        let response = self
            .client
            .send(Node::Broker(coordinator), |_| {
                OffsetDeleteRequest::default()
                    .with_group_id(GroupId(str_bytes(group_id)))
                    .with_topics(
                        by_topic
                            .iter()
                            .map(|(t, ps)| {
                                OffsetDeleteRequestTopic::default()
                                    .with_name(topic_name(t))
                                    .with_partitions(ps.clone())
                            })
                            .collect(),
                    )
            })
            .await?;
        KafkaError::check(response.error_code, None)?;
        let mut out = BTreeMap::new();
        for t in &response.topics {
            for p in &t.partitions {
                out.insert(
                    (t.name.to_string(), p.partition_index),
                    item_result(p.error_code, &None),
                );
            }
        }
        Ok(out)
    }

    /// Commits offsets for a group from outside it (the group must be
    /// empty), as `kafka-consumer-groups.sh --reset-offsets --execute` does.
    pub async fn alter_group_offsets(
        &self,
        group_id: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<(), Error> {
        let coordinator = group::find_coordinator(&self.client, group_id).await?;
        group::commit_offsets(&self.client, coordinator, group_id, -1, "", offsets).await
    }

    /// Deletes every record before each partition's offset (-1: the high
    /// watermark) with DeleteRecords, sent to each partition's leader. One
    /// result per partition: its new log start offset (Kafka's "low
    /// watermark") or the partition's error.
    pub async fn delete_records(
        &self,
        before: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, Result<i64, KafkaError>>, Error> {
        let mut out = BTreeMap::new();
        let mut by_leader: BTreeMap<i32, BTreeMap<&str, Vec<DeleteRecordsPartition>>> =
            BTreeMap::new();
        for ((topic, partition), offset) in before {
            match self.client.leader(topic, *partition).await {
                Ok(leader) => by_leader
                    .entry(leader)
                    .or_default()
                    .entry(topic)
                    .or_default()
                    .push(
                        DeleteRecordsPartition::default()
                            .with_partition_index(*partition)
                            .with_offset(*offset),
                    ),
                Err(Error::Kafka(e)) => {
                    out.insert((topic.clone(), *partition), Err(e));
                }
                Err(e) => return Err(e),
            }
        }
        for (leader, topics) in by_leader {
            let response = self
                .client
                .send(Node::Broker(leader), |_| {
                    DeleteRecordsRequest::default()
                        .with_timeout_ms(OPERATION_TIMEOUT_MS)
                        .with_topics(
                            topics
                                .iter()
                                .map(|(t, p)| {
                                    DeleteRecordsTopic::default()
                                        .with_name(topic_name(t))
                                        .with_partitions(p.clone())
                                })
                                .collect(),
                        )
                })
                .await?;
            for t in &response.topics {
                for p in &t.partitions {
                    let result = match KafkaError::from_code(p.error_code, None) {
                        Some(e) => Err(e),
                        None => Ok(p.low_watermark),
                    };
                    out.insert((t.name.to_string(), p.partition_index), result);
                }
            }
        }
        Ok(out)
    }

    /// Resolves offsets (earliest, latest, by time) with ListOffsets.
    pub async fn list_offsets(
        &self,
        wanted: &[(TopicPartition, OffsetSpec)],
    ) -> Result<BTreeMap<TopicPartition, i64>, Error> {
        list_offsets(&self.client, wanted, IsolationLevel::ReadUncommitted).await
    }
}

/// One log directory of a broker (DescribeLogDirs).
#[derive(Debug, Clone)]
pub struct LogDirInfo {
    pub dir: String,
    pub error: Option<KafkaError>,
    /// (topic, partition, size in bytes, offset lag).
    pub replicas: Vec<(String, i32, i64, i64)>,
}

/// Partition numbers grouped by topic, as requests carry them.
pub(crate) fn by_topic(partitions: &[TopicPartition]) -> BTreeMap<&str, Vec<i32>> {
    let mut out: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        out.entry(topic).or_default().push(*partition);
    }
    out
}

fn item_result(
    code: i16,
    message: &Option<kafka_protocol::protocol::StrBytes>,
) -> Result<(), KafkaError> {
    match KafkaError::from_code(code, message.as_ref().map(|m| m.as_str())) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
