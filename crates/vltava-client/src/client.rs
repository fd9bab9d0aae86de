//! The cluster view: bootstrap, the metadata cache, one pooled connection
//! per broker, and routing a request to "any broker", a given broker or the
//! controller.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};
use tracing::debug;

use crate::connection::{Connection, Timeouts};
use crate::error::{codes, Error, KafkaError};

/// Settings shared by every part of the client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `bootstrap.servers`: `host:port` entries tried in order.
    pub bootstrap_servers: Vec<String>,
    /// `client.id`, sent in every request header.
    pub client_id: String,
    pub timeouts: Timeouts,
    /// How many times a retriable failure is retried (`retries`).
    pub retries: u32,
    /// `retry.backoff.ms`.
    pub retry_backoff: Duration,
}

impl ClientConfig {
    /// A config for a comma-separated `bootstrap.servers` list.
    pub fn new(bootstrap_servers: &str) -> ClientConfig {
        ClientConfig {
            bootstrap_servers: bootstrap_servers
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            client_id: "vltava-client".to_string(),
            timeouts: Timeouts::default(),
            retries: 10,
            retry_backoff: Duration::from_millis(100),
        }
    }

    pub fn client_id(mut self, client_id: &str) -> Self {
        self.client_id = client_id.to_string();
        self
    }
}

/// A broker as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    pub error_code: i16,
    /// -1 when there is no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline: Vec<i32>,
}

/// One topic as metadata describes it; `partitions` sorted by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub error_code: i16,
    pub topic_id: uuid::Uuid,
    pub is_internal: bool,
    pub partitions: Vec<PartitionInfo>,
}

/// What the last Metadata response said about the cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterInfo {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: BTreeMap<i32, BrokerInfo>,
}

#[derive(Default)]
struct Cache {
    cluster: ClusterInfo,
    topics: HashMap<String, TopicInfo>,
}

type Pooled = Arc<AsyncMutex<Connection>>;

struct Inner {
    config: ClientConfig,
    // std Mutex: held only to read or replace maps, never across an await.
    cache: std::sync::Mutex<Cache>,
    pool: std::sync::Mutex<HashMap<i32, Pooled>>,
    /// The connection made to a bootstrap address, used for requests that
    /// can go to any broker.
    bootstrap: std::sync::Mutex<Option<Pooled>>,
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// Any broker (the bootstrap connection).
    Any,
    /// The broker with this id.
    Broker(i32),
    /// The active controller as metadata last reported it (else any).
    Controller,
}

/// A cheap-to-clone handle on a cluster. Producer, consumer, group member
/// and admin calls all go through one.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Connects to the first reachable bootstrap server and loads the broker
    /// list. Fails with [`Error::Connect`] naming the last address tried when
    /// none answers.
    pub async fn connect(config: ClientConfig) -> Result<Client, Error> {
        if config.bootstrap_servers.is_empty() {
            return Err(Error::Invalid("bootstrap.servers is empty".into()));
        }
        let client = Client {
            inner: Arc::new(Inner {
                config,
                cache: Default::default(),
                pool: Default::default(),
                bootstrap: Default::default(),
            }),
        };
        client.bootstrap_connection().await?;
        client.metadata(Some(&[]), false).await?;
        Ok(client)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    async fn bootstrap_connection(&self) -> Result<Pooled, Error> {
        if let Some(conn) = self.inner.bootstrap.lock().expect("poisoned").clone() {
            return Ok(conn);
        }
        let mut last = None;
        // Known brokers first (after a failure), then the bootstrap list.
        let known: Vec<String> = {
            let cache = self.inner.cache.lock().expect("poisoned");
            cache
                .cluster
                .brokers
                .values()
                .map(BrokerInfo::addr)
                .collect()
        };
        for addr in known
            .iter()
            .chain(self.inner.config.bootstrap_servers.iter())
        {
            match Connection::connect(
                addr,
                &self.inner.config.client_id,
                self.inner.config.timeouts,
            )
            .await
            {
                Ok(conn) => {
                    let conn = Arc::new(AsyncMutex::new(conn));
                    *self.inner.bootstrap.lock().expect("poisoned") = Some(conn.clone());
                    return Ok(conn);
                }
                Err(e) => {
                    debug!(addr, error = %e, "bootstrap connection failed");
                    last = Some(e);
                }
            }
        }
        Err(last.expect("bootstrap list is not empty"))
    }

    async fn connection(&self, node: Node) -> Result<Pooled, Error> {
        let id = match node {
            Node::Any => return self.bootstrap_connection().await,
            Node::Broker(id) => id,
            Node::Controller => {
                let id = self.cluster().controller_id;
                if id < 0 {
                    return self.bootstrap_connection().await;
                }
                id
            }
        };
        if let Some(conn) = self.inner.pool.lock().expect("poisoned").get(&id).cloned() {
            return Ok(conn);
        }
        // A controller that cannot be reached (it stopped, or the metadata
        // named one that is not listed) gives way to any broker: every
        // broker takes controller requests and forwards them, and nothing
        // was sent yet, so asking another is safe for any request.
        let controller = matches!(node, Node::Controller);
        let broker = self.cluster().brokers.get(&id).cloned();
        let broker = match broker {
            Some(b) => b,
            None => {
                let response = self.metadata_once(Some(&[]), false).await?;
                self.absorb_metadata(response);
                match self.cluster().brokers.get(&id).cloned() {
                    Some(b) => b,
                    None if controller => return self.bootstrap_connection().await,
                    None => {
                        return Err(Error::Invalid(format!(
                            "broker {id} is not in the cluster metadata"
                        )))
                    }
                }
            }
        };
        let connected = Connection::connect(
            &broker.addr(),
            &self.inner.config.client_id,
            self.inner.config.timeouts,
        )
        .await;
        let conn = match connected {
            Ok(conn) => conn,
            Err(e) if controller => {
                debug!(controller = id, error = %e, "controller unreachable; asking another broker");
                // The brokers name a live controller: learning it keeps the
                // next controller request from trying this one first.
                if let Ok(response) = self.metadata_once(Some(&[]), false).await {
                    self.absorb_metadata(response);
                }
                return self.bootstrap_connection().await;
            }
            Err(e) => return Err(e),
        };
        let conn = Arc::new(AsyncMutex::new(conn));
        self.inner
            .pool
            .lock()
            .expect("poisoned")
            .insert(id, conn.clone());
        Ok(conn)
    }

    /// Forgets a pooled connection after a transport error so the next
    /// request reconnects.
    fn evict(&self, node: Node, conn: &Pooled) {
        let same = |c: &Pooled| Arc::ptr_eq(c, conn);
        let mut bootstrap = self.inner.bootstrap.lock().expect("poisoned");
        if bootstrap.as_ref().is_some_and(same) {
            *bootstrap = None;
        }
        drop(bootstrap);
        if let Node::Broker(id) = node {
            let mut pool = self.inner.pool.lock().expect("poisoned");
            if pool.get(&id).is_some_and(same) {
                pool.remove(&id);
            }
        }
        let mut pool = self.inner.pool.lock().expect("poisoned");
        pool.retain(|_, c| !same(c));
    }

    /// The pooled connection to `node`, locked, and usable: one left broken
    /// by an abandoned request (see [`Connection`]) is evicted and replaced.
    /// Nothing was sent on the broken one for this request, so replacing it
    /// is safe for any request.
    async fn usable_connection(
        &self,
        node: Node,
    ) -> Result<(Pooled, OwnedMutexGuard<Connection>), Error> {
        // Another task can break the fresh connection before we lock it, so
        // bound the attempts; a last broken one fails its request as I/O.
        for _ in 0..2 {
            let conn = self.connection(node).await?;
            let guard = conn.clone().lock_owned().await;
            if guard.is_usable() {
                return Ok((conn, guard));
            }
            drop(guard);
            debug!(
                ?node,
                "replacing a connection left broken by an abandoned request"
            );
            self.evict(node, &conn);
        }
        let conn = self.connection(node).await?;
        let guard = conn.clone().lock_owned().await;
        Ok((conn, guard))
    }

    /// Drops `conn` from the pool after `result` if the exchange left it
    /// broken (I/O error, timeout, cancellation) or the broker sent bytes we
    /// could not read.
    fn evict_if_broken<T>(
        &self,
        node: Node,
        conn: &Pooled,
        guard: OwnedMutexGuard<Connection>,
        result: &Result<T, Error>,
    ) {
        let broken = !guard.is_usable() || matches!(result, Err(Error::Protocol { .. }));
        drop(guard);
        if broken {
            self.evict(node, conn);
        }
    }

    /// Sends one request to `node` at the negotiated version; `build` gets
    /// that version. A transport failure drops the connection (the next call
    /// reconnects) and is returned; it is not retried here because not every
    /// request is safe to repeat. Cancelling the returned future is safe: a
    /// connection whose exchange was cut short is never used again.
    pub async fn send<R: Request>(
        &self,
        node: Node,
        build: impl FnOnce(i16) -> R,
    ) -> Result<R::Response, Error> {
        let (conn, mut guard) = self.usable_connection(node).await?;
        let result = guard.request(build).await;
        self.evict_if_broken(node, &conn, guard, &result);
        result
    }

    /// Like [`Client::send`] for requests that get no response.
    pub async fn send_only<R: Request>(
        &self,
        node: Node,
        build: impl FnOnce(i16) -> R,
    ) -> Result<(), Error> {
        let (conn, mut guard) = self.usable_connection(node).await?;
        let result = match guard.version::<R>() {
            Ok(v) => guard.send_only(&build(v), v).await,
            Err(e) => Err(e),
        };
        self.evict_if_broken(node, &conn, guard, &result);
        result
    }

    /// The negotiated version of `R` with `node`.
    pub async fn version<R: Request>(&self, node: Node) -> Result<i16, Error> {
        let conn = self.connection(node).await?;
        let guard = conn.lock().await;
        guard.version::<R>()
    }

    /// The `(min, max)` versions `node` advertised for every API key.
    pub async fn broker_api_versions(
        &self,
        node: Node,
    ) -> Result<(String, HashMap<i16, (i16, i16)>), Error> {
        let conn = self.connection(node).await?;
        let guard = conn.lock().await;
        Ok((guard.addr().to_string(), guard.broker_apis().clone()))
    }

    /// A fresh, unpooled connection to `node` (for long-lived use such as a
    /// group coordinator's heartbeats beside a long-polling fetch).
    pub async fn dedicated_connection(&self, broker_id: i32) -> Result<Connection, Error> {
        let broker = self
            .cluster()
            .brokers
            .get(&broker_id)
            .cloned()
            .ok_or_else(|| Error::Invalid(format!("broker {broker_id} is unknown")))?;
        Connection::connect(
            &broker.addr(),
            &self.inner.config.client_id,
            self.inner.config.timeouts,
        )
        .await
    }

    /// The brokers and controller from the last metadata response.
    pub fn cluster(&self) -> ClusterInfo {
        self.inner.cache.lock().expect("poisoned").cluster.clone()
    }

    /// The cached metadata of `topic`, if any.
    pub fn cached_topic(&self, topic: &str) -> Option<TopicInfo> {
        self.inner
            .cache
            .lock()
            .expect("poisoned")
            .topics
            .get(topic)
            .cloned()
    }

    /// Asks for metadata of `topics` (`None`: every topic; `Some(&[])`: just
    /// the brokers) and updates the cache. Topics come back with their own
    /// error codes, unfiltered.
    pub async fn metadata(
        &self,
        topics: Option<&[String]>,
        allow_auto_topic_creation: bool,
    ) -> Result<Vec<TopicInfo>, Error> {
        let mut attempt = 0;
        loop {
            let response = self.metadata_once(topics, allow_auto_topic_creation).await;
            match response {
                Ok(r) => return Ok(self.absorb_metadata(r)),
                Err(e) if e.is_transport() && attempt < self.inner.config.retries => {
                    attempt += 1;
                    tokio::time::sleep(self.inner.config.retry_backoff).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One Metadata request on the bootstrap connection. It does not go
    /// through [`Client::send`] because connecting to a broker by id may
    /// itself need fresh metadata.
    async fn metadata_once(
        &self,
        topics: Option<&[String]>,
        allow_auto_topic_creation: bool,
    ) -> Result<MetadataResponse, Error> {
        let mut conn = self.bootstrap_connection().await?;
        let mut guard = conn.clone().lock_owned().await;
        // As in `usable_connection`, which cannot be used here: connecting to
        // a broker by id may call this.
        if !guard.is_usable() {
            drop(guard);
            self.evict(Node::Any, &conn);
            conn = self.bootstrap_connection().await?;
            guard = conn.clone().lock_owned().await;
        }
        let result = guard
            .request(|version| metadata_request(version, topics, allow_auto_topic_creation))
            .await;
        drop(guard);
        if result.is_err() {
            self.evict(Node::Any, &conn);
        }
        result
    }

    fn absorb_metadata(&self, response: MetadataResponse) -> Vec<TopicInfo> {
        let brokers: BTreeMap<i32, BrokerInfo> = response
            .brokers
            .iter()
            .map(|b| {
                (
                    b.node_id.0,
                    BrokerInfo {
                        id: b.node_id.0,
                        host: b.host.to_string(),
                        port: b.port,
                        rack: b.rack.as_ref().map(|r| r.to_string()),
                    },
                )
            })
            .collect();
        let topics: Vec<TopicInfo> = response
            .topics
            .iter()
            .map(|t| {
                let mut partitions: Vec<PartitionInfo> = t
                    .partitions
                    .iter()
                    .map(|p| PartitionInfo {
                        partition: p.partition_index,
                        error_code: p.error_code,
                        leader: p.leader_id.0,
                        leader_epoch: p.leader_epoch,
                        replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                        isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                        offline: p.offline_replicas.iter().map(|b| b.0).collect(),
                    })
                    .collect();
                partitions.sort_by_key(|p| p.partition);
                TopicInfo {
                    name: t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                    error_code: t.error_code,
                    topic_id: t.topic_id,
                    is_internal: t.is_internal,
                    partitions,
                }
            })
            .collect();
        let mut cache = self.inner.cache.lock().expect("poisoned");
        cache.cluster = ClusterInfo {
            cluster_id: response.cluster_id.as_ref().map(|c| c.to_string()),
            controller_id: response.controller_id.0,
            brokers,
        };
        for t in &topics {
            if t.error_code == 0 {
                cache.topics.insert(t.name.clone(), t.clone());
            } else {
                cache.topics.remove(&t.name);
            }
        }
        topics
    }

    /// Metadata for one topic that must exist with leaders for every
    /// partition; retries (with a metadata refresh) while the broker reports
    /// LEADER_NOT_AVAILABLE or, when `allow_auto_topic_creation`, while an
    /// auto-created topic appears.
    pub async fn topic(
        &self,
        topic: &str,
        allow_auto_topic_creation: bool,
    ) -> Result<TopicInfo, Error> {
        let mut attempt = 0;
        loop {
            let names = [topic.to_string()];
            let infos = self
                .metadata(Some(&names), allow_auto_topic_creation)
                .await?;
            let info = infos
                .into_iter()
                .find(|t| t.name == topic)
                .ok_or_else(|| Error::Kafka(unknown_topic(topic)))?;
            let retriable = match info.error_code {
                0 => info.partitions.iter().any(|p| p.leader < 0),
                codes::LEADER_NOT_AVAILABLE => true,
                codes::UNKNOWN_TOPIC_OR_PARTITION if allow_auto_topic_creation => true,
                codes::UNKNOWN_TOPIC_OR_PARTITION => {
                    return Err(Error::Kafka(unknown_topic(topic)))
                }
                code => {
                    return Err(KafkaError::check(code, None).unwrap_err());
                }
            };
            if !retriable {
                return Ok(info);
            }
            if attempt >= self.inner.config.retries {
                return match info.error_code {
                    0 => Ok(info),
                    codes::UNKNOWN_TOPIC_OR_PARTITION => Err(Error::Kafka(unknown_topic(topic))),
                    code => Err(KafkaError::check(code, None).unwrap_err()),
                };
            }
            attempt += 1;
            tokio::time::sleep(self.inner.config.retry_backoff).await;
        }
    }

    /// The leader of `topic`/`partition` from the cache (refreshing it when
    /// missing).
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<i32, Error> {
        Ok(self.leader_and_epoch(topic, partition).await?.0)
    }

    /// The leader of `topic`/`partition` and its leader epoch, from the
    /// cache (refreshing it when missing): requests to the leader carry the
    /// epoch (KIP-320), so a broker that led at another epoch answers
    /// FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH instead of serving from
    /// a log that may have been truncated, and the caller refreshes.
    pub async fn leader_and_epoch(&self, topic: &str, partition: i32) -> Result<(i32, i32), Error> {
        let cached = self
            .cached_topic(topic)
            .and_then(|t| {
                t.partitions
                    .iter()
                    .find(|p| p.partition == partition)
                    .map(|p| (p.leader, p.leader_epoch))
            })
            .filter(|(l, _)| *l >= 0);
        if let Some(leader) = cached {
            return Ok(leader);
        }
        let info = self.topic(topic, false).await?;
        let Some(found) = info.partitions.iter().find(|p| p.partition == partition) else {
            return Err(Error::Kafka(KafkaError {
                code: codes::UNKNOWN_TOPIC_OR_PARTITION,
                message: Some(format!(
                    "topic {topic} has {} partitions; there is no partition {partition}",
                    info.partitions.len()
                )),
            }));
        };
        if found.leader < 0 {
            return Err(Error::Kafka(KafkaError {
                code: codes::LEADER_NOT_AVAILABLE,
                message: Some(format!("no leader for partition {topic}-{partition}")),
            }));
        }
        Ok((found.leader, found.leader_epoch))
    }

    /// Forgets cached metadata for `topic` so the next lookup asks again.
    pub fn invalidate(&self, topic: &str) {
        self.inner
            .cache
            .lock()
            .expect("poisoned")
            .topics
            .remove(topic);
    }
}

/// True for the errors after which a metadata refresh and a retry may
/// succeed: the partition moved or is not there yet.
pub fn is_stale_metadata(code: i16) -> bool {
    matches!(
        code,
        codes::NOT_LEADER_OR_FOLLOWER
            | codes::UNKNOWN_TOPIC_OR_PARTITION
            | codes::LEADER_NOT_AVAILABLE
            | codes::FENCED_LEADER_EPOCH
            | codes::UNKNOWN_LEADER_EPOCH
    )
}

pub(crate) fn unknown_topic(topic: &str) -> KafkaError {
    KafkaError {
        code: codes::UNKNOWN_TOPIC_OR_PARTITION,
        message: Some(format!("Topic '{topic}' does not exist.")),
    }
}

fn metadata_request(version: i16, topics: Option<&[String]>, auto_create: bool) -> MetadataRequest {
    let topics = topics.map(|names| {
        names
            .iter()
            .map(|n| {
                MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
            })
            .collect()
    });
    let mut request = MetadataRequest::default().with_topics(topics);
    if version >= 4 {
        request = request.with_allow_auto_topic_creation(auto_create);
    }
    request
}

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub(crate) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

#[allow(dead_code)]
pub(crate) fn broker_id(id: i32) -> BrokerId {
    BrokerId(id)
}

#[cfg(test)]
mod tests {
    //! Cancellation against a tiny in-test broker that answers ApiVersions
    //! and Metadata at once and Heartbeat only after [`SLOW_REPLY`], so a
    //! caller's shorter timeout abandons the Heartbeat mid-flight.

    use std::sync::atomic::{AtomicUsize, Ordering};

    use kafka_protocol::messages::{ApiKey, HeartbeatRequest, HeartbeatResponse};

    use super::*;
    use crate::test_broker::{self, Received};

    const SLOW_REPLY: Duration = Duration::from_millis(300);
    /// The caller gives up on a Heartbeat well before [`SLOW_REPLY`].
    const CALLER_PATIENCE: Duration = Duration::from_millis(50);

    /// Starts the broker; returns its address and the count of connections
    /// it accepted.
    async fn tiny_broker() -> (String, Arc<AtomicUsize>) {
        test_broker::start(|r: Received| async move {
            match r.key {
                ApiKey::ApiVersions => r.reply(test_broker::api_versions(&[
                    (ApiKey::ApiVersions, 0, 3),
                    (ApiKey::Metadata, 1, 12),
                    (ApiKey::Heartbeat, 1, 4),
                ])),
                ApiKey::Metadata => r.reply(test_broker::metadata(r.port)),
                ApiKey::Heartbeat => {
                    tokio::time::sleep(SLOW_REPLY).await;
                    r.reply(HeartbeatResponse::default())
                }
                other => panic!("the tiny broker does not answer {other:?}"),
            }
        })
        .await
    }

    fn heartbeat(_version: i16) -> HeartbeatRequest {
        HeartbeatRequest::default()
            .with_group_id(kafka_protocol::messages::GroupId(str_bytes("g")))
            .with_generation_id(1)
            .with_member_id(str_bytes("m"))
    }

    /// A controller the metadata names but that cannot be reached (it
    /// stopped) gives way to the bootstrap broker, which forwards
    /// controller requests; the client asks for metadata again on the way.
    #[tokio::test]
    async fn an_unreachable_controller_gives_way_to_another_broker() {
        use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
        use kafka_protocol::messages::BrokerId;
        let gone = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let metadata_asked = Arc::new(AtomicUsize::new(0));
        let asked = metadata_asked.clone();
        let (addr, _) = test_broker::start(move |r: Received| {
            let asked = asked.clone();
            async move {
                match r.key {
                    ApiKey::ApiVersions => r.reply(test_broker::api_versions(&[
                        (ApiKey::ApiVersions, 0, 3),
                        (ApiKey::Metadata, 1, 12),
                        (ApiKey::Heartbeat, 1, 4),
                    ])),
                    ApiKey::Metadata => {
                        asked.fetch_add(1, Ordering::SeqCst);
                        let mut metadata = test_broker::metadata(r.port);
                        metadata.controller_id = BrokerId(2);
                        metadata.brokers.push(
                            MetadataResponseBroker::default()
                                .with_node_id(BrokerId(2))
                                .with_host(str_bytes("127.0.0.1"))
                                .with_port(i32::from(gone)),
                        );
                        r.reply(metadata)
                    }
                    ApiKey::Heartbeat => r.reply(HeartbeatResponse::default().with_error_code(0)),
                    other => panic!("the test broker does not answer {other:?}"),
                }
            }
        })
        .await;
        let client = Client::connect(ClientConfig::new(&addr)).await.unwrap();
        let before = metadata_asked.load(Ordering::SeqCst);
        let answer: HeartbeatResponse = client.send(Node::Controller, heartbeat).await.unwrap();
        assert_eq!(answer.error_code, 0);
        assert!(
            metadata_asked.load(Ordering::SeqCst) > before,
            "the metadata was not asked for again after the controller failed"
        );
    }

    /// The console consumer's Ctrl-C bug: a Fetch cancelled by `select!` left
    /// its response on the pooled connection and the OffsetCommit after it
    /// read that response ("correlation id 18 in response to 19").
    #[tokio::test]
    async fn a_request_after_a_cancelled_one_gets_its_own_response() {
        let (addr, accepted) = tiny_broker().await;
        let client = Client::connect(ClientConfig::new(&addr)).await.unwrap();
        for node in [Node::Any, Node::Broker(1)] {
            let abandoned =
                tokio::time::timeout(CALLER_PATIENCE, client.send(node, heartbeat)).await;
            assert!(
                abandoned.is_err(),
                "the Heartbeat should still be in flight"
            );
            let metadata = client
                .send(node, |v| metadata_request(v, Some(&[]), false))
                .await
                .expect("the next request reads its own response");
            assert_eq!(metadata.brokers.len(), 1);
            // And the connection after that is a good one again.
            client.send(node, heartbeat).await.unwrap();
        }
        // Bootstrap, its replacement, broker 1 and its replacement.
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_connection_abandoned_mid_request_refuses_the_next_one() {
        let (addr, _) = tiny_broker().await;
        let mut conn = Connection::connect(&addr, "test", Timeouts::default())
            .await
            .unwrap();
        assert!(conn.is_usable());
        let abandoned = tokio::time::timeout(CALLER_PATIENCE, conn.request(heartbeat)).await;
        assert!(abandoned.is_err());
        assert!(!conn.is_usable());
        let refused = conn.request(heartbeat).await.unwrap_err();
        assert!(refused.is_transport(), "{refused}");
        assert!(
            refused
                .to_string()
                .contains("abandoned before its response"),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn a_request_timeout_breaks_the_connection() {
        let (addr, _) = tiny_broker().await;
        let timeouts = Timeouts {
            request: CALLER_PATIENCE,
            ..Timeouts::default()
        };
        let mut conn = Connection::connect(&addr, "test", timeouts).await.unwrap();
        let timed_out = conn.request(heartbeat).await.unwrap_err();
        assert!(matches!(timed_out, Error::Timeout { .. }), "{timed_out}");
        assert!(!conn.is_usable());
    }
}
