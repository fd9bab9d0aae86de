//! The schema registry on `schema.registry.listeners` (default
//! `http://127.0.0.1:8081`): Confluent's REST API over the rules in
//! `vltava-registry`, its data in the compacted `_schemas` topic (one
//! partition, created on first use), read and written through a Kafka
//! client of this node's own listener like the console's.
//!
//! Every request first reads `_schemas` up to its high watermark into the
//! node's `Store`, so each node answers reads with what the cluster holds.
//! Writes are serialized: on this node by one lock, across the cluster by
//! taking them only on the node that leads `_schemas` partition 0 (the
//! owner). Any other node forwards a write to the owner's registry, whose
//! URL each node publishes in `_schemas` (`VLTAVA_NODE` records), and
//! answers with the owner's answer; a forwarded write is never forwarded
//! again (a node that is not the owner answers it 503, error code 50003),
//! so two nodes with different views of the owner cannot bounce it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use vltava_broker::schema_ids::{SchemaIdSource, SchemaIds};
use vltava_broker::{Broker, BrokerConfig};
use vltava_client::admin::{Admin as KafkaAdmin, NewTopic};
use vltava_client::consumer::{Consumer, ConsumerConfig, OffsetSpec};
use vltava_client::producer::{Producer, ProducerConfig, ProducerRecord};
use vltava_registry::compat::Level;
use vltava_registry::schema::Parsed;
use vltava_registry::store::{
    Mode, Reference, Registration, RegistryError, SchemaType, Store, Stored, VersionSpec, Write,
};

use crate::admin::Admin;
use crate::ServerError;

/// The topic the registry keeps its records in, as Confluent's does.
pub const SCHEMAS_TOPIC: &str = vltava_broker::schema_ids::REGISTRY_TOPIC;

/// Confluent's content type for every answer.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// How long one request may spend reading `_schemas` before it gives up.
const SYNC_DEADLINE: Duration = Duration::from_secs(10);

/// How long a request waits for this node's metadata to show `_schemas`
/// after creating it.
const TOPIC_PATIENCE: Duration = Duration::from_secs(10);

/// Binds every `schema.registry.listeners` address; a taken port names the
/// setting to change.
pub async fn bind(config: &BrokerConfig) -> Result<Vec<TcpListener>, ServerError> {
    crate::admin::bind_all(&config.schema_registry_listeners, |address, source| {
        ServerError::RegistryBind { address, source }
    })
    .await
}

/// Set on a write forwarded by another node's registry (its node id).
pub const FORWARDED_BY: &str = "x-vltava-forwarded-by";

/// How long a forwarded write may take, connection included.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);

/// The largest answer taken back from the owner of writes.
const FORWARDED_ANSWER_BYTES_MAX: usize = 4 * 1024 * 1024;

/// How often a node checks whether `_schemas` exists to publish its URL.
const PUBLISH_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// How long a write waits for the owner's URL to be published before it is
/// answered 503.
const PUBLISH_PATIENCE: Duration = Duration::from_secs(5);

/// The largest request body forwarded (axum's default body limit).
const FORWARDED_BODY_BYTES_MAX: usize = 2 * 1024 * 1024;

/// The registry of one node.
pub struct Registry {
    admin: Arc<Admin>,
    synced: tokio::sync::Mutex<Synced>,
    /// Whether this node's URL is in `_schemas` as it is now.
    published: std::sync::atomic::AtomicBool,
    /// Requests served or waiting for the store at once.
    permits: tokio::sync::Semaphore,
    /// The ids by subject server-side validation last read, with the
    /// `_schemas` offset they are as of, rebuilt only when it moved.
    validation_ids: std::sync::Mutex<Option<(i64, Arc<SchemaIds>)>>,
}

/// Registry requests in hand at once (each waits for the store's lock in
/// turn); more wait up to [`REQUEST_QUEUE_PATIENCE`], then get 503.
pub const REGISTRY_REQUESTS_MAX: usize = 64;

/// How long a registry request waits for its turn.
const REQUEST_QUEUE_PATIENCE: Duration = Duration::from_secs(10);

/// The store and how far into `_schemas` it has read.
struct Synced {
    store: Store,
    /// The next offset of `_schemas` partition 0 to apply.
    next: i64,
    /// Whether `_schemas` was once read to its high watermark: from then
    /// on a read this node cannot bring up to date (the partition's leader
    /// gone, a failover under way) answers from what it has, as
    /// Confluent's registry answers from its cache.
    read_once: bool,
    /// The leader epoch of `_schemas` partition 0 under which this node,
    /// as its owner, last passed the fence (`committed_to_log_end`): a
    /// write goes out only under the same epoch, so ownership cannot
    /// change between planning a write and making it.
    fenced_epoch: Option<i32>,
}

/// An error answer in Confluent's shape: `{"error_code": N, "message": M}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, 50003, message)
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, 400, message)
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: e.code(),
            message: e.message(),
        }
    }
}

impl From<vltava_client::Error> for ApiError {
    fn from(e: vltava_client::Error) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            50002,
            format!("the cluster did not answer: {e}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error_code": self.code, "message": self.message});
        (
            self.status,
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            body.to_string(),
        )
            .into_response()
    }
}

fn answer(value: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        value.to_string(),
    )
        .into_response()
}

type Answer = Result<Response, ApiError>;

impl Registry {
    pub fn new(admin: Arc<Admin>) -> Arc<Registry> {
        Arc::new(Registry {
            admin,
            synced: tokio::sync::Mutex::new(Synced {
                store: Store::new(),
                next: 0,
                read_once: false,
                fenced_epoch: None,
            }),
            published: std::sync::atomic::AtomicBool::new(false),
            permits: tokio::sync::Semaphore::new(REGISTRY_REQUESTS_MAX),
            validation_ids: std::sync::Mutex::new(None),
        })
    }

    fn broker(&self) -> Result<Arc<Broker>, ApiError> {
        self.admin
            .broker()
            .ok_or_else(|| ApiError::unavailable("the broker is still starting"))
    }

    async fn client(&self, broker: &Broker) -> Result<vltava_client::Client, ApiError> {
        self.admin
            .kafka(broker)
            .await
            .map_err(ApiError::unavailable)
    }

    /// Creates `_schemas` if it is missing: one partition (one order for
    /// every write), compacted, replicated to up to three brokers.
    async fn ensure_topic(
        &self,
        broker: &Broker,
        client: &vltava_client::Client,
    ) -> Result<(), ApiError> {
        if broker.topic(SCHEMAS_TOPIC).is_some() {
            return Ok(());
        }
        let kafka = KafkaAdmin::new(client.clone());
        let brokers = kafka.live_broker_ids().await?.len().clamp(1, 3);
        let topic = NewTopic {
            name: SCHEMAS_TOPIC.to_string(),
            partitions: 1,
            replication_factor: brokers as i16,
            configs: vec![("cleanup.policy".to_string(), "compact".to_string())],
            assignments: Vec::new(),
        };
        for (_, result) in kafka.create_topics(&[topic], false).await? {
            match result {
                Ok(()) => info!(
                    topic = SCHEMAS_TOPIC,
                    replicas = brokers,
                    "created the schema registry's topic"
                ),
                // Another node created it first.
                Err(e) if e.code == vltava_client::error::codes::TOPIC_ALREADY_EXISTS => {}
                Err(e) => {
                    return Err(ApiError::unavailable(format!(
                        "cannot create {SCHEMAS_TOPIC}: {}",
                        e.text()
                    )))
                }
            }
        }
        let deadline = tokio::time::Instant::now() + TOPIC_PATIENCE;
        while broker.topic(SCHEMAS_TOPIC).is_none() {
            if tokio::time::Instant::now() >= deadline {
                return Err(ApiError::unavailable(format!(
                    "{SCHEMAS_TOPIC} does not show up in this node's metadata"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// The store, read up to `_schemas`' high watermark; held, it keeps
    /// this node's other requests waiting (one writer).
    async fn synced(&self) -> Result<InSync<'_>, ApiError> {
        self.synced_with(SyncFor::Read).await
    }

    /// The store for planning a write: on the owner, first everything in
    /// its `_schemas` log is committed and read, so a write planned here
    /// knows every record before it, including ones a previous owner (or
    /// this node's own timed-out write) appended and got committed only
    /// now. Without it, a new owner could give an id again.
    async fn synced_to_write(&self) -> Result<InSync<'_>, ApiError> {
        self.synced_with(SyncFor::Write).await
    }

    async fn synced_with(&self, sync: SyncFor) -> Result<InSync<'_>, ApiError> {
        let broker = self.broker()?;
        let client = self.client(&broker).await?;
        let mut synced = self.synced.lock().await;
        synced.fenced_epoch = None;
        let read = async {
            self.ensure_topic(&broker, &client).await?;
            let fenced = match sync {
                SyncFor::Write if owner_of(&broker) == Some(broker.node_id()) => {
                    Some(committed_to_log_end(&broker).await?)
                }
                _ => None,
            };
            catch_up(&mut synced, &client).await?;
            Ok::<_, ApiError>(fenced)
        };
        let read = match tokio::time::timeout(SYNC_DEADLINE, read).await {
            Ok(read) => read,
            Err(_) => Err(ApiError::unavailable(format!(
                "reading {SCHEMAS_TOPIC} took longer than {} seconds",
                SYNC_DEADLINE.as_secs()
            ))),
        };
        match read {
            Ok(fenced) => {
                synced.read_once = true;
                synced.fenced_epoch = fenced;
            }
            Err(e) if sync == SyncFor::Read && synced.read_once => {
                debug!(error = %e.message, "answering a registry read from what this node has read");
                return Ok((synced, broker, client));
            }
            Err(e) => return Err(e),
        }
        self.publish(&mut synced, &broker, &client).await;
        Ok((synced, broker, client))
    }

    /// Publishes where this node's registry answers whenever `_schemas`
    /// says otherwise (a comparison per sync), so other nodes can forward
    /// writes here when this node owns them. Only this node writes its key.
    async fn publish(&self, synced: &mut Synced, broker: &Broker, client: &vltava_client::Client) {
        use std::sync::atomic::Ordering;
        let Some(url) = own_url(broker) else { return };
        let node = broker.node_id();
        if synced.store.node_url(node) != Some(url.as_str()) {
            if let Err(e) = produce(synced, client, vec![Store::plan_node_url(node, &url)]).await {
                warn!(error = %e.message, "could not publish this node's registry URL; writes cannot be forwarded here yet");
                return;
            }
        }
        self.published.store(true, Ordering::Release);
    }

    /// Appends `writes` to `_schemas` in order and reads them back into the
    /// store. Only the leader of `_schemas` partition 0 writes.
    async fn write(
        &self,
        synced: &mut Synced,
        broker: &Broker,
        client: &vltava_client::Client,
        writes: Vec<Write>,
    ) -> Result<(), ApiError> {
        let owner = owner_of(broker);
        if owner != Some(broker.node_id()) {
            return Err(ApiError::unavailable(format!(
                "this node does not take registry writes: node {} leads {SCHEMAS_TOPIC} and takes them; send writes to its registry",
                owner.unwrap_or(-1)
            )));
        }
        // Planned under the fence, and still the owner in the same leader
        // epoch: otherwise another owner may have written since.
        let epoch = schemas_partition(broker)
            .ok()
            .filter(|p| p.is_leader())
            .map(|p| p.leader_epoch());
        if synced.fenced_epoch.is_none() || synced.fenced_epoch != epoch {
            return Err(ApiError::unavailable(format!(
                "the ownership of {SCHEMAS_TOPIC} moved while this write was planned; retry"
            )));
        }
        produce(synced, client, writes).await
    }
}

/// Appends `writes` to `_schemas` in order and reads them back into the
/// store.
async fn produce(
    synced: &mut Synced,
    client: &vltava_client::Client,
    writes: Vec<Write>,
) -> Result<(), ApiError> {
    let producer = Producer::new(
        client.clone(),
        ProducerConfig {
            linger: Duration::ZERO,
            request_timeout: Duration::from_secs(10),
            ..ProducerConfig::default()
        },
    )
    .await?;
    let mut deliveries = Vec::new();
    for w in writes {
        let record = ProducerRecord {
            topic: SCHEMAS_TOPIC.to_string(),
            partition: Some(0),
            key: Some(bytes::Bytes::from(w.key)),
            value: w.value.map(bytes::Bytes::from),
            headers: Vec::new(),
            timestamp_ms: None,
        };
        match producer.send(record).await {
            Ok(d) => deliveries.push(d),
            Err(e) => {
                producer.close().await;
                return Err(e.into());
            }
        }
    }
    let mut failed = None;
    for d in deliveries {
        match d.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failed = Some(ApiError::from(e)),
            Err(_) => {
                failed = Some(ApiError::unavailable(
                    "the producer stopped before the write was acknowledged",
                ))
            }
        }
    }
    producer.close().await;
    if let Some(e) = failed {
        return Err(e);
    }
    catch_up(synced, client).await
}

/// Publishes this node's registry URL as soon as `_schemas` exists (made
/// by the first registry request on any node), so writes reaching other
/// nodes can be forwarded here without this node having been asked
/// anything. It never creates the topic: a cluster whose registry is never
/// used has no `_schemas`.
async fn publish_when_used(registry: Arc<Registry>, shutdown: CancellationToken) {
    use std::sync::atomic::Ordering;
    let mut tick = tokio::time::interval(PUBLISH_CHECK_INTERVAL);
    while !registry.published.load(Ordering::Acquire) {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let exists = registry
            .admin
            .broker()
            .is_some_and(|b| b.topic(SCHEMAS_TOPIC).is_some());
        if exists {
            // Publishes on the way; a failure is tried again next tick.
            let _ = registry.synced().await;
        }
    }
}

/// The node that takes registry writes: the leader of `_schemas`
/// partition 0, as this node's metadata says.
fn owner_of(broker: &Broker) -> Option<i32> {
    broker
        .topic(SCHEMAS_TOPIC)
        .and_then(|t| t.partitions.first().map(|p| p.assignment().leader))
        .filter(|leader| *leader >= 0)
}

/// Where this node's registry answers other nodes: its first
/// `schema.registry.listeners` address, with the broker's advertised host
/// for a wildcard one.
pub(crate) fn own_url(broker: &Broker) -> Option<String> {
    let first = broker.config.schema_registry_listeners.first()?;
    let (host, port) = first.rsplit_once(':')?;
    let host = match host {
        "" | "0.0.0.0" | "::" | "[::]" => broker.config.advertised_listeners.first()?.host.clone(),
        host => host.to_string(),
    };
    Some(format!("http://{host}:{port}"))
}

/// Whether a request changes the registry (and so must reach the owner).
/// `POST /subjects/S` (lookup) and `/compatibility` posts only read.
fn is_write(method: &axum::http::Method, path: &str) -> bool {
    use axum::http::Method;
    match *method {
        Method::PUT | Method::DELETE => true,
        Method::POST => path.starts_with("/subjects/") && path.ends_with("/versions"),
        _ => false,
    }
}

/// In front of every route: at most [`REGISTRY_REQUESTS_MAX`] requests in
/// hand at once, and a write that arrives at a node other than the owner
/// goes to the owner's registry, its answer coming back as is.
async fn gate(
    State(r): State<Arc<Registry>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let turn = tokio::time::timeout(REQUEST_QUEUE_PATIENCE, r.permits.acquire()).await;
    let Ok(Ok(_turn)) = turn else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            50003,
            "the registry is serving as many requests as it may at once; try again",
        )
        .into_response();
    };
    forward_writes(&r, request, next).await
}

/// A write that arrives at a node other than the owner goes to the owner's
/// registry, and its answer comes back as is.
async fn forward_writes(
    r: &Registry,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !is_write(request.method(), request.uri().path())
        || request.headers().contains_key(FORWARDED_BY)
    {
        return next.run(request).await;
    }
    let Ok(broker) = r.broker() else {
        return next.run(request).await;
    };
    // The topic and the owner's URL come with a sync. An owner that has
    // just been asked to make `_schemas` publishes its URL a moment later:
    // wait for it a little. Without an owner, or owning, the handler
    // answers (the write itself, or 503 naming the owner).
    let deadline = tokio::time::Instant::now() + PUBLISH_PATIENCE;
    let (owner, url) = loop {
        // The store's lock is released before the handler runs: it takes it.
        let looked_up = match r.synced().await {
            Ok((synced, broker, _)) => match owner_of(&broker) {
                Some(owner) if owner != broker.node_id() => {
                    Some((owner, synced.store.node_url(owner).map(str::to_string)))
                }
                _ => None,
            },
            Err(e) => return e.into_response(),
        };
        match looked_up {
            None => return next.run(request).await,
            Some((owner, Some(url))) => break (owner, url),
            Some(_) if tokio::time::Instant::now() >= deadline => {
                return next.run(request).await;
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    match forward(&url, broker.node_id(), request).await {
        Ok(answer) => answer,
        Err(why) => ApiError::unavailable(format!(
            "this node forwards registry writes to node {owner} ({url}), which did not answer: {why}"
        ))
        .into_response(),
    }
}

/// Sends `request` to the registry at `url` and returns its answer.
async fn forward(
    url: &str,
    node: i32,
    request: axum::extract::Request,
) -> Result<Response, String> {
    let authority = crate::http_client::authority(url)?;
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, FORWARDED_BODY_BYTES_MAX)
        .await
        .map_err(|e| format!("reading the request: {e}"))?;
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut outgoing = axum::http::Request::builder()
        .method(parts.method)
        .uri(path)
        .header(FORWARDED_BY, node.to_string());
    if let Some(content_type) = parts.headers.get(header::CONTENT_TYPE) {
        outgoing = outgoing.header(header::CONTENT_TYPE, content_type);
    }
    let (parts, bytes) = crate::http_client::exchange(
        authority,
        outgoing,
        body,
        FORWARDED_ANSWER_BYTES_MAX,
        FORWARD_TIMEOUT,
    )
    .await?;
    let mut answer = (parts.status, bytes).into_response();
    if let Some(content_type) = parts.headers.get(header::CONTENT_TYPE) {
        answer
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type.clone());
    }
    Ok(answer)
}

/// Waits (up to `SYNC_DEADLINE`) until this node's `_schemas` partition 0,
/// which it leads, has committed its whole log: the high watermark at the
/// log end it had when the wait began. This is the fence between owners:
/// the log orders every write, and a write is planned only on a state that
/// includes every record committed before it (Confluent's registry gets
/// the same by writing a no-op record and reading up to it).
async fn committed_to_log_end(broker: &Broker) -> Result<i32, ApiError> {
    let partition = schemas_partition(broker)?;
    let epoch = partition.leader_epoch();
    let end = partition.log_end_offset();
    let deadline = tokio::time::Instant::now() + SYNC_DEADLINE;
    loop {
        let advanced = partition.high_watermark_advanced().notified();
        tokio::pin!(advanced);
        advanced.as_mut().enable();
        if !partition.is_leader() || partition.leader_epoch() != epoch {
            return Err(ApiError::unavailable(format!(
                "this node no longer leads {SCHEMAS_TOPIC}; retry"
            )));
        }
        if partition.high_watermark() >= end {
            return Ok(epoch);
        }
        if tokio::time::timeout_at(deadline, advanced).await.is_err() {
            return Err(ApiError::unavailable(format!(
                "{SCHEMAS_TOPIC} did not commit its log end ({end}) within {} seconds (are its replicas in sync?)",
                SYNC_DEADLINE.as_secs()
            )));
        }
    }
}

/// This node's replica of `_schemas` partition 0.
fn schemas_partition(broker: &Broker) -> Result<Arc<vltava_broker::Partition>, ApiError> {
    broker
        .topic(SCHEMAS_TOPIC)
        .and_then(|t| t.partition(0).cloned())
        .ok_or_else(|| ApiError::unavailable(format!("{SCHEMAS_TOPIC} is not here yet")))
}

/// How a request reads the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SyncFor {
    /// Up to date if `_schemas` can be read, else as last read.
    Read,
    /// Up to date, or an error.
    Fresh,
    /// Up to date and, on the owner, fenced for a write.
    Write,
}

/// The store held and read up to date, with the broker and a client of it.
type InSync<'a> = (
    tokio::sync::MutexGuard<'a, Synced>,
    Arc<Broker>,
    vltava_client::Client,
);

/// Applies `_schemas` from `synced.next` up to the high watermark.
async fn catch_up(synced: &mut Synced, client: &vltava_client::Client) -> Result<(), ApiError> {
    let tp = (SCHEMAS_TOPIC.to_string(), 0);
    let kafka = KafkaAdmin::new(client.clone());
    let end = kafka
        .list_offsets(&[(tp.clone(), OffsetSpec::Latest)])
        .await?
        .get(&tp)
        .copied()
        .unwrap_or(0);
    if synced.next >= end {
        return Ok(());
    }
    let mut consumer = Consumer::new(
        client.clone(),
        ConsumerConfig {
            auto_offset_reset: OffsetSpec::Earliest,
            fetch_max_wait: Duration::from_millis(100),
            ..ConsumerConfig::default()
        },
    );
    consumer.assign(vec![tp.clone()]);
    consumer.seek(&tp, synced.next);
    let deadline = tokio::time::Instant::now() + SYNC_DEADLINE;
    while synced.next < end {
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::unavailable(format!(
                "reading {SCHEMAS_TOPIC} took longer than {} seconds",
                SYNC_DEADLINE.as_secs()
            )));
        }
        for r in consumer.poll().await? {
            if r.offset < synced.next {
                continue;
            }
            synced.next = r.offset + 1;
            let Some(key) = &r.key else { continue };
            if let Err(why) = synced.store.apply(key, r.value.as_deref()) {
                warn!(offset = r.offset, %why, "skipped a {SCHEMAS_TOPIC} record");
            }
        }
        if let Some(position) = consumer.position(&tp) {
            synced.next = synced.next.max(position.min(end));
        }
    }
    Ok(())
}

impl ApiError {
    /// The HTTP status, Confluent's error code and the message.
    pub(crate) fn parts(&self) -> (StatusCode, u32, &str) {
        (self.status, self.code, &self.message)
    }
}

impl Registry {
    /// Schema `id` as parsed, for writing or reading records in its
    /// format (the REST proxy).
    pub(crate) async fn parsed_by_id(&self, id: i32) -> Result<Parsed, ApiError> {
        let (synced, ..) = self.synced().await?;
        Ok(synced.store.schema(id)?.parsed().clone())
    }

    /// A version of `subject`: its schema id and parsed schema.
    pub(crate) async fn parsed_by_subject(
        &self,
        subject: &str,
        spec: VersionSpec,
    ) -> Result<(i32, Parsed), ApiError> {
        let (synced, ..) = self.synced().await?;
        let (v, stored) = synced.store.version(subject, spec, false)?;
        Ok((v.id, stored.parsed().clone()))
    }
}

/// Server-side schema validation reads the ids through the same store as
/// the HTTP API: brought up to date with `_schemas` first, so a schema
/// registered anywhere before a produce is known to it.
impl SchemaIdSource for Registry {
    fn current(
        &self,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Arc<SchemaIds>, String>> + Send + '_>,
    > {
        Box::pin(async move {
            // Fresh, never as last read: an id registered meanwhile would
            // otherwise refuse a record for good (INVALID_RECORD) where a
            // retriable error lets the producer try again.
            let (synced, ..) = self
                .synced_with(SyncFor::Fresh)
                .await
                .map_err(|e| e.message)?;
            let mut cached = self
                .validation_ids
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some((at, ids)) = cached.as_ref() {
                if *at == synced.next {
                    return Ok(ids.clone());
                }
            }
            let ids = Arc::new(SchemaIds::new(
                synced.store.live_ids_by_subject(),
                synced.store.live_record_names(),
            ));
            *cached = Some((synced.next, ids.clone()));
            Ok(ids)
        })
    }
}

/// Serves the registry on `listeners` until `shutdown`.
pub async fn serve(
    listeners: Vec<TcpListener>,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) {
    if listeners.is_empty() {
        return;
    }
    tokio::spawn(publish_when_used(registry.clone(), shutdown.clone()));
    let app = router(registry);
    crate::admin::serve_http("schema registry", listeners, app, shutdown).await;
}

fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/", get(|| async { answer(json!({})) }))
        .route(
            "/schemas/types",
            get(|| async { answer(json!(["JSON", "PROTOBUF", "AVRO"])) }),
        )
        .route("/mode", get(global_mode).put(put_global_mode))
        .route(
            "/mode/{subject}",
            get(subject_mode)
                .put(put_subject_mode)
                .delete(delete_subject_mode),
        )
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(version_schema),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_by_id))
        .route(
            "/config",
            get(global_config)
                .put(put_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility_with),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatibility_all),
        )
        .route_layer(axum::middleware::from_fn_with_state(registry.clone(), gate))
        .layer(axum::middleware::from_fn_with_state(
            CONTENT_TYPE,
            crate::http_errors::as_json,
        ))
        .with_state(registry)
}

type Params = Query<HashMap<String, String>>;

fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// A schema posted for registration, lookup or a compatibility check.
struct Posted {
    schema_type: SchemaType,
    text: String,
    references: Vec<Reference>,
}

fn posted(body: &Bytes) -> Result<Posted, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let text = value.get("schema").and_then(Value::as_str).ok_or_else(|| {
        ApiError::from(RegistryError::InvalidSchema(
            "the body has no \"schema\" string".to_string(),
        ))
    })?;
    let references = Reference::list_from(value.get("references"))?;
    let schema_type = SchemaType::parse(value.get("schemaType").and_then(Value::as_str))?;
    Ok(Posted {
        schema_type,
        text: text.to_string(),
        references,
    })
}

/// A schema as Confluent answers it: `schemaType` left out for Avro and
/// `references` when there are none.
fn schema_json(stored: &Stored) -> Value {
    let mut v = json!({"schema": stored.text});
    if stored.schema_type != SchemaType::Avro {
        v["schemaType"] = json!(stored.schema_type.name());
    }
    if !stored.references.is_empty() {
        v["references"] = stored
            .references
            .iter()
            .map(|r| json!({"name": r.name, "subject": r.subject, "version": r.version}))
            .collect();
    }
    v
}

fn version_json(subject: &str, version: i32, id: i32, stored: &Stored) -> Value {
    let mut v = json!({"subject": subject, "version": version, "id": id});
    if let (Value::Object(fields), Value::Object(schema)) = (&mut v, schema_json(stored)) {
        fields.extend(schema);
    }
    v
}

async fn subjects(State(r): State<Arc<Registry>>, Query(p): Params) -> Answer {
    let (synced, ..) = r.synced().await?;
    Ok(answer(json!(synced.store.subjects(flag(&p, "deleted")))))
}

async fn versions(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Query(p): Params,
) -> Answer {
    let (synced, ..) = r.synced().await?;
    Ok(answer(json!(synced
        .store
        .versions(&subject, flag(&p, "deleted"))?)))
}

async fn version(
    State(r): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> Answer {
    let spec = VersionSpec::parse(&version)?;
    let (synced, ..) = r.synced().await?;
    let (v, stored) = synced.store.version(&subject, spec, flag(&p, "deleted"))?;
    Ok(answer(version_json(&subject, v.version, v.id, stored)))
}

async fn version_schema(
    State(r): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> Answer {
    let spec = VersionSpec::parse(&version)?;
    let (synced, ..) = r.synced().await?;
    let (_, stored) = synced.store.version(&subject, spec, flag(&p, "deleted"))?;
    Ok(raw(&stored.text))
}

async fn referenced_by(
    State(r): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
) -> Answer {
    let spec = VersionSpec::parse(&version)?;
    let (synced, ..) = r.synced().await?;
    let (v, _) = synced.store.version(&subject, spec, false)?;
    Ok(answer(json!(synced
        .store
        .referenced_by(&subject, v.version))))
}

/// A schema's text as the body, as Confluent answers `/schema` paths.
fn raw(text: &str) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        text.to_string(),
    )
        .into_response()
}

async fn register(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Answer {
    let posted = posted(&body)?;
    let (mut synced, broker, client) = r.synced_to_write().await?;
    match synced.store.plan_register(
        &subject,
        posted.schema_type,
        &posted.text,
        &posted.references,
    )? {
        Registration::Exists { id, .. } => Ok(answer(json!({"id": id}))),
        Registration::New {
            id,
            version,
            writes,
        } => {
            r.write(&mut synced, &broker, &client, writes).await?;
            // Read back: the version holds the id planned (a record that
            // lost a race for the id is skipped by every reader).
            let landed = synced
                .store
                .version(&subject, VersionSpec::Number(version), false)
                .is_ok_and(|(v, _)| v.id == id);
            if !landed {
                return Err(ApiError::unavailable(format!(
                    "the registration under {subject} raced another write to {SCHEMAS_TOPIC}; retry"
                )));
            }
            info!(subject, version, id, "registered a schema");
            Ok(answer(json!({"id": id})))
        }
    }
}

async fn lookup(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Query(p): Params,
    body: Bytes,
) -> Answer {
    let posted = posted(&body)?;
    let (synced, ..) = r.synced().await?;
    let (v, stored) = synced.store.lookup(
        &subject,
        posted.schema_type,
        &posted.text,
        &posted.references,
        flag(&p, "deleted"),
    )?;
    Ok(answer(version_json(&subject, v.version, v.id, stored)))
}

async fn delete_subject(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Query(p): Params,
) -> Answer {
    let (mut synced, broker, client) = r.synced_to_write().await?;
    let (versions, writes) = synced
        .store
        .plan_delete_subject(&subject, flag(&p, "permanent"))?;
    r.write(&mut synced, &broker, &client, writes).await?;
    Ok(answer(json!(versions)))
}

async fn delete_version(
    State(r): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> Answer {
    let spec = VersionSpec::parse(&version)?;
    let (mut synced, broker, client) = r.synced_to_write().await?;
    let (version, write) =
        synced
            .store
            .plan_delete_version(&subject, spec, flag(&p, "permanent"))?;
    r.write(&mut synced, &broker, &client, vec![write]).await?;
    Ok(answer(json!(version)))
}

fn id_param(id: &str) -> Result<i32, ApiError> {
    id.parse::<i32>()
        .ok()
        .filter(|id| *id >= 1)
        .ok_or_else(|| RegistryError::SchemaNotFound(format!("Schema {id} not found")).into())
}

async fn schema_by_id(State(r): State<Arc<Registry>>, Path(id): Path<String>) -> Answer {
    let id = id_param(&id)?;
    let (synced, ..) = r.synced().await?;
    Ok(answer(schema_json(synced.store.schema(id)?)))
}

async fn raw_schema_by_id(State(r): State<Arc<Registry>>, Path(id): Path<String>) -> Answer {
    let id = id_param(&id)?;
    let (synced, ..) = r.synced().await?;
    Ok(raw(&synced.store.schema(id)?.text))
}

async fn subjects_by_id(
    State(r): State<Arc<Registry>>,
    Path(id): Path<String>,
    Query(p): Params,
) -> Answer {
    let id = id_param(&id)?;
    let (synced, ..) = r.synced().await?;
    synced.store.schema(id)?;
    let mut subjects: Vec<&str> = synced
        .store
        .uses_of(id, flag(&p, "deleted"))
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    subjects.dedup();
    Ok(answer(json!(subjects)))
}

async fn versions_by_id(
    State(r): State<Arc<Registry>>,
    Path(id): Path<String>,
    Query(p): Params,
) -> Answer {
    let id = id_param(&id)?;
    let (synced, ..) = r.synced().await?;
    synced.store.schema(id)?;
    let uses: Vec<Value> = synced
        .store
        .uses_of(id, flag(&p, "deleted"))
        .into_iter()
        .map(|(s, v)| json!({"subject": s, "version": v}))
        .collect();
    Ok(answer(json!(uses)))
}

async fn global_config(State(r): State<Arc<Registry>>) -> Answer {
    let (synced, ..) = r.synced().await?;
    Ok(answer(
        json!({"compatibilityLevel": synced.store.level(None).name()}),
    ))
}

async fn subject_config(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Query(p): Params,
) -> Answer {
    let (synced, ..) = r.synced().await?;
    match synced.store.level_set(Some(&subject)) {
        Some(level) => Ok(answer(json!({"compatibilityLevel": level.name()}))),
        None if flag(&p, "defaultToGlobal") => Ok(answer(
            json!({"compatibilityLevel": synced.store.level(None).name()}),
        )),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            40408,
            format!("Subject '{subject}' does not have subject-level compatibility configured"),
        )),
    }
}

/// The level a PUT /config body names.
fn level_posted(body: &Bytes) -> Result<Level, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let name = value
        .get("compatibility")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Level::parse(name).ok_or_else(|| {
        RegistryError::InvalidLevel(format!(
            "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive (got '{name}')"
        ))
        .into()
    })
}

async fn put_global_config(State(r): State<Arc<Registry>>, body: Bytes) -> Answer {
    let level = level_posted(&body)?;
    let (mut synced, broker, client) = r.synced_to_write().await?;
    synced.store.scope_writable(None)?;
    r.write(
        &mut synced,
        &broker,
        &client,
        vec![Store::plan_level(None, Some(level))],
    )
    .await?;
    Ok(answer(json!({"compatibility": level.name()})))
}

async fn put_subject_config(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Answer {
    vltava_registry::store::subject_checked(&subject)?;
    let level = level_posted(&body)?;
    let (mut synced, broker, client) = r.synced_to_write().await?;
    synced.store.scope_writable(Some(&subject))?;
    r.write(
        &mut synced,
        &broker,
        &client,
        vec![Store::plan_level(Some(&subject), Some(level))],
    )
    .await?;
    Ok(answer(json!({"compatibility": level.name()})))
}

async fn delete_subject_config(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
) -> Answer {
    let (mut synced, broker, client) = r.synced_to_write().await?;
    let Some(old) = synced.store.level_set(Some(&subject)) else {
        return Err(
            RegistryError::SubjectNotFound(format!("Subject '{subject}' not found.")).into(),
        );
    };
    synced.store.scope_writable(Some(&subject))?;
    r.write(
        &mut synced,
        &broker,
        &client,
        vec![Store::plan_level(Some(&subject), None)],
    )
    .await?;
    Ok(answer(json!({"compatibilityLevel": old.name()})))
}

/// Drops the global level (back to the default, BACKWARD): the level it
/// had, as Confluent answers.
async fn delete_global_config(State(r): State<Arc<Registry>>) -> Answer {
    let (mut synced, broker, client) = r.synced_to_write().await?;
    synced.store.scope_writable(None)?;
    let old = synced.store.level(None);
    r.write(
        &mut synced,
        &broker,
        &client,
        vec![Store::plan_level(None, None)],
    )
    .await?;
    Ok(answer(json!({"compatibilityLevel": old.name()})))
}

fn compatibility_answer(problems: Vec<String>, verbose: bool) -> Response {
    let mut v = json!({"is_compatible": problems.is_empty()});
    if verbose {
        v["messages"] = json!(problems);
    }
    answer(v)
}

async fn compatibility_with(
    State(r): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
    body: Bytes,
) -> Answer {
    let spec = VersionSpec::parse(&version)?;
    let posted = posted(&body)?;
    let (synced, ..) = r.synced().await?;
    let problems = synced.store.compatibility(
        &subject,
        Some(spec),
        posted.schema_type,
        &posted.text,
        &posted.references,
    )?;
    Ok(compatibility_answer(problems, flag(&p, "verbose")))
}

async fn compatibility_all(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Query(p): Params,
    body: Bytes,
) -> Answer {
    let posted = posted(&body)?;
    let (synced, ..) = r.synced().await?;
    let problems = synced.store.compatibility(
        &subject,
        None,
        posted.schema_type,
        &posted.text,
        &posted.references,
    )?;
    Ok(compatibility_answer(problems, flag(&p, "verbose")))
}

async fn global_mode(State(r): State<Arc<Registry>>) -> Answer {
    let (synced, ..) = r.synced().await?;
    Ok(answer(json!({"mode": synced.store.mode(None).name()})))
}

async fn subject_mode(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Query(p): Params,
) -> Answer {
    let (synced, ..) = r.synced().await?;
    match synced.store.mode_set(Some(&subject)) {
        Some(mode) => Ok(answer(json!({"mode": mode.name()}))),
        None if flag(&p, "defaultToGlobal") => {
            Ok(answer(json!({"mode": synced.store.mode(None).name()})))
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            40409,
            format!("Subject '{subject}' does not have subject-level mode configured"),
        )),
    }
}

/// The mode a PUT /mode body names.
fn mode_posted(body: &Bytes) -> Result<Mode, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let name = value
        .get("mode")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Ok(Mode::parse(name)?)
}

async fn put_global_mode(State(r): State<Arc<Registry>>, body: Bytes) -> Answer {
    let mode = mode_posted(&body)?;
    let (mut synced, broker, client) = r.synced_to_write().await?;
    let write = Store::plan_mode(None, Some(mode));
    r.write(&mut synced, &broker, &client, vec![write]).await?;
    Ok(answer(json!({"mode": mode.name()})))
}

async fn put_subject_mode(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Answer {
    vltava_registry::store::subject_checked(&subject)?;
    let mode = mode_posted(&body)?;
    if mode == Mode::ReadOnlyOverride {
        return Err(RegistryError::InvalidMode(
            "READONLY_OVERRIDE is a global mode; a subject is READWRITE or READONLY".to_string(),
        )
        .into());
    }
    let (mut synced, broker, client) = r.synced_to_write().await?;
    let write = Store::plan_mode(Some(&subject), Some(mode));
    r.write(&mut synced, &broker, &client, vec![write]).await?;
    Ok(answer(json!({"mode": mode.name()})))
}

async fn delete_subject_mode(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
) -> Answer {
    let (mut synced, broker, client) = r.synced_to_write().await?;
    let Some(old) = synced.store.mode_set(Some(&subject)) else {
        return Err(
            RegistryError::SubjectNotFound(format!("Subject '{subject}' not found.")).into(),
        );
    };
    let write = Store::plan_mode(Some(&subject), None);
    r.write(&mut synced, &broker, &client, vec![write]).await?;
    Ok(answer(json!({"mode": old.name()})))
}
