//! The REST proxy on `rest.proxy.listeners` (default
//! `http://127.0.0.1:8082`, Confluent's port): Confluent REST Proxy's API
//! v3 (cluster, brokers, topics, partitions, configs, producing records,
//! consumer groups and their lag; [`v3`]) and its v2 consumer API
//! (instances in a group that subscribe, fetch and commit; [`v2`]), with
//! their paths, bodies, content types and error shape
//! (`{"error_code": N, "message": M}`).
//!
//! Everything goes through a Kafka client of this node's own listener, so
//! the proxy takes the paths (controller, leaders, coordinators) and gives
//! the errors any client would. Records produced with a schema are written
//! in Confluent's wire format through the node's schema registry store.

pub mod v2;
pub mod v2_topics;
pub mod v3;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vltava_broker::config::BrokerConfig;
use vltava_broker::Broker;
use vltava_client::producer::{Producer, ProducerConfig};
use vltava_registry::schema::SchemaType;

use crate::admin::Admin;
use crate::registry::Registry;
use crate::ServerError;

/// v3's content type.
pub const V3_CONTENT_TYPE: &str = "application/json";

/// v2's content type for everything but records.
pub const V2_CONTENT_TYPE: &str = "application/vnd.kafka.v2+json";

/// Requests in hand at once; more wait up to [`REQUEST_QUEUE_PATIENCE`],
/// then get 503.
pub const REST_REQUESTS_MAX: usize = 64;

const REQUEST_QUEUE_PATIENCE: Duration = Duration::from_secs(10);

/// The largest request body taken (a produce of many records included).
pub const REST_BODY_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Records one produce request may carry (v3's stream of objects, v2's
/// `records`).
pub const RECORDS_PER_REQUEST_MAX: usize = 10_000;

/// The format of records produced or fetched (v2 names it in the content
/// type or the consumer instance; v3 answers it back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    Binary,
    Json,
    /// Confluent's wire format with a registered schema of this type.
    Schema(vltava_registry::schema::SchemaType),
}

impl RecordFormat {
    /// `binary`, `json`, `avro`, `jsonschema` or `protobuf`, in any case.
    pub fn parse(name: &str) -> Option<RecordFormat> {
        use vltava_registry::schema::SchemaType;
        Some(match name.to_ascii_lowercase().as_str() {
            "binary" => RecordFormat::Binary,
            "json" => RecordFormat::Json,
            "avro" => RecordFormat::Schema(SchemaType::Avro),
            "jsonschema" => RecordFormat::Schema(SchemaType::Json),
            "protobuf" => RecordFormat::Schema(SchemaType::Protobuf),
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use vltava_registry::schema::SchemaType;
        match self {
            RecordFormat::Binary => "binary",
            RecordFormat::Json => "json",
            RecordFormat::Schema(SchemaType::Avro) => "avro",
            RecordFormat::Schema(SchemaType::Json) => "jsonschema",
            RecordFormat::Schema(SchemaType::Protobuf) => "protobuf",
        }
    }

    /// v2's content type for records of this format.
    pub fn content_type(self) -> &'static str {
        use vltava_registry::schema::SchemaType;
        match self {
            RecordFormat::Binary => "application/vnd.kafka.binary.v2+json",
            RecordFormat::Json => "application/vnd.kafka.json.v2+json",
            RecordFormat::Schema(SchemaType::Avro) => "application/vnd.kafka.avro.v2+json",
            RecordFormat::Schema(SchemaType::Json) => "application/vnd.kafka.jsonschema.v2+json",
            RecordFormat::Schema(SchemaType::Protobuf) => "application/vnd.kafka.protobuf.v2+json",
        }
    }
}

/// How long the proxy's client waits for the cluster.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Binds every `rest.proxy.listeners` address; a taken port names the
/// setting to change.
pub async fn bind(config: &BrokerConfig) -> Result<Vec<TcpListener>, ServerError> {
    crate::admin::bind_all(&config.rest_proxy_listeners, |address, source| {
        ServerError::RestProxyBind { address, source }
    })
    .await
}

/// The REST proxy of one node.
pub struct RestProxy {
    admin: Arc<Admin>,
    registry: Arc<Registry>,
    client: crate::admin::OwnClient,
    producer: tokio::sync::Mutex<Option<Arc<Producer>>>,
    consumers: v2::Instances,
    permits: tokio::sync::Semaphore,
}

impl RestProxy {
    pub fn new(admin: Arc<Admin>, registry: Arc<Registry>) -> Arc<RestProxy> {
        Arc::new(RestProxy {
            admin,
            registry,
            client: crate::admin::OwnClient::new("vltava-rest-proxy", CLIENT_TIMEOUT),
            producer: tokio::sync::Mutex::new(None),
            consumers: v2::Instances::default(),
            permits: tokio::sync::Semaphore::new(REST_REQUESTS_MAX),
        })
    }

    fn broker(&self) -> Result<Arc<Broker>, RestError> {
        self.admin.broker().ok_or_else(|| {
            RestError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                50301,
                "the broker is still starting",
            )
        })
    }

    /// The proxy's Kafka client of the cluster (one, shared).
    async fn client(&self) -> Result<(Arc<Broker>, vltava_client::Client), RestError> {
        let broker = self.broker()?;
        let client = self
            .client
            .get(&broker)
            .await
            .map_err(RestError::unavailable)?;
        Ok((broker, client))
    }

    async fn kafka_admin(&self) -> Result<(Arc<Broker>, vltava_client::admin::Admin), RestError> {
        let (broker, client) = self.client().await?;
        Ok((broker, vltava_client::admin::Admin::new(client)))
    }

    /// For a `/v3/clusters/{cluster_id}/...` request: the cluster id, checked
    /// to be this cluster's (404 otherwise), and an admin client.
    async fn cluster_admin(
        &self,
        cluster_id: &str,
    ) -> Result<(String, vltava_client::admin::Admin), RestError> {
        let c = v3::checked(self, cluster_id)?;
        let (_, admin) = self.kafka_admin().await?;
        Ok((c, admin))
    }

    /// The proxy's producer: idempotent, acks=all.
    async fn producer(&self) -> Result<Arc<Producer>, RestError> {
        let (_, client) = self.client().await?;
        let mut kept = self.producer.lock().await;
        if let Some(p) = kept.as_ref() {
            return Ok(p.clone());
        }
        let producer = Producer::new(client, ProducerConfig::default())
            .await
            .map_err(|e| RestError::from_client(&e))?;
        let producer = Arc::new(producer);
        *kept = Some(producer.clone());
        Ok(producer)
    }
}

/// An error answer: `{"error_code": N, "message": M}`.
#[derive(Debug)]
pub struct RestError {
    status: StatusCode,
    code: u32,
    message: String,
    content_type: &'static str,
}

impl RestError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> RestError {
        RestError {
            status,
            code,
            message: message.into(),
            content_type: V3_CONTENT_TYPE,
        }
    }

    fn unavailable(message: String) -> RestError {
        RestError::new(StatusCode::SERVICE_UNAVAILABLE, 50301, message)
    }

    fn bad_request(message: impl Into<String>) -> RestError {
        RestError::new(StatusCode::BAD_REQUEST, 400, message)
    }

    fn not_found(code: u32, message: impl Into<String>) -> RestError {
        RestError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// The same error in v2's content type.
    fn v2(mut self) -> RestError {
        self.content_type = V2_CONTENT_TYPE;
        self
    }

    /// A client call's failure: Kafka's error codes become what Confluent's
    /// proxy answers for them; transport failures are 503.
    fn from_client(e: &vltava_client::Error) -> RestError {
        let Some(k) = e.kafka() else {
            return match e {
                vltava_client::Error::Invalid(m) => RestError::bad_request(m.clone()),
                other => RestError::unavailable(other.to_string()),
            };
        };
        let message = k.message.clone().unwrap_or_else(|| e.to_string());
        match k.code {
            // UNKNOWN_TOPIC_OR_PARTITION
            3 => RestError::not_found(40403, message),
            // GROUP_ID_NOT_FOUND
            69 => RestError::not_found(404, message),
            // TOPIC_ALREADY_EXISTS
            36 => RestError::new(StatusCode::BAD_REQUEST, 40002, message),
            // INVALID_TOPIC, INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR,
            // INVALID_CONFIG, INVALID_REQUEST, INVALID_RECORD, RECORD_TOO_LARGE,
            // POLICY_VIOLATION
            17 | 37 | 38 | 40 | 42 | 87 | 10 | 44 => {
                RestError::new(StatusCode::BAD_REQUEST, 400, message)
            }
            _ => RestError::new(StatusCode::INTERNAL_SERVER_ERROR, 500, message),
        }
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, self.content_type)],
            json!({"error_code": self.code, "message": self.message}).to_string(),
        )
            .into_response()
    }
}

type Answer = Result<Response, RestError>;

/// A JSON answer with `status` and `content_type`.
fn answer(status: StatusCode, content_type: &'static str, value: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, content_type)],
        value.to_string(),
    )
        .into_response()
}

/// `http://HOST:PORT` as the client addressed this proxy, for the `self`
/// and `related` links of v3 resources and v2's `base_uri`.
pub struct BaseUrl(pub String);

impl<S: Send + Sync> FromRequestParts<S> for BaseUrl {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
            .unwrap_or("localhost");
        Ok(BaseUrl(format!("http://{host}")))
    }
}

/// A JSON body, or Confluent's 400 / 422 for what is not one.
fn json_body(body: &[u8]) -> Result<Value, RestError> {
    serde_json::from_slice(body).map_err(|e| {
        RestError::new(
            StatusCode::BAD_REQUEST,
            400,
            format!("the body is not JSON: {e}"),
        )
    })
}

/// In front of every route: at most [`REST_REQUESTS_MAX`] requests at once.
async fn gate(State(proxy): State<Arc<RestProxy>>, request: Request, next: Next) -> Response {
    let permit = tokio::time::timeout(REQUEST_QUEUE_PATIENCE, proxy.permits.acquire()).await;
    match permit {
        Ok(Ok(_permit)) => next.run(request).await,
        _ => RestError::unavailable(format!(
            "the REST proxy is serving {REST_REQUESTS_MAX} requests; try again"
        ))
        .into_response(),
    }
}

fn router(proxy: Arc<RestProxy>) -> Router {
    Router::new()
        .route(
            "/",
            axum::routing::get(|| async { answer(StatusCode::OK, V2_CONTENT_TYPE, &json!({})) }),
        )
        .merge(v3::routes())
        .merge(v2::routes())
        .merge(v2_topics::routes())
        .layer(axum::extract::DefaultBodyLimit::max(REST_BODY_BYTES_MAX))
        .route_layer(axum::middleware::from_fn_with_state(proxy.clone(), gate))
        .layer(axum::middleware::from_fn_with_state(
            V3_CONTENT_TYPE,
            crate::http_errors::as_json,
        ))
        .with_state(proxy)
}

/// Serves the REST proxy on `listeners` until `shutdown`; v2 consumer
/// instances idle past `rest.proxy.consumer.instance.timeout.ms` are
/// closed meanwhile.
pub async fn serve(
    listeners: Vec<TcpListener>,
    proxy: Arc<RestProxy>,
    shutdown: CancellationToken,
) {
    if listeners.is_empty() {
        return;
    }
    tokio::spawn(v2::expire_idle(proxy.clone(), shutdown.clone()));
    let app = router(proxy.clone());
    crate::admin::serve_http("REST proxy", listeners, app, shutdown).await;
    proxy.consumers.close_all().await;
}

/// The most of the registry's answer to a registration read.
const REGISTER_ANSWER_BYTES_MAX: usize = 64 * 1024;

/// How long a registration through the registry API may take (a forwarded
/// write included).
const REGISTER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Registers `text` under `subject` through this node's registry API
/// (which forwards writes to the node that takes them): its id. The same
/// schema registered before answers its id, writing nothing.
pub(super) async fn register_schema(
    p: &RestProxy,
    subject: &str,
    schema_type: SchemaType,
    text: &str,
) -> Result<i32, RestError> {
    let broker = p.broker()?;
    let url = crate::registry::own_url(&broker).ok_or_else(|| {
        RestError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42205,
            "registering a schema needs this node's schema registry (schema.registry.listeners is empty); give its id instead",
        )
    })?;
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri(format!(
            "/subjects/{}/versions",
            crate::http_client::path_segment(subject)
        ))
        .header(header::CONTENT_TYPE, crate::registry::CONTENT_TYPE);
    let body = json!({"schema": text, "schemaType": schema_type.name()}).to_string();
    let authority = crate::http_client::authority(&url).map_err(RestError::unavailable)?;
    let (parts, answer) = crate::http_client::exchange(
        authority,
        request,
        Bytes::from(body),
        REGISTER_ANSWER_BYTES_MAX,
        REGISTER_TIMEOUT,
    )
    .await
    .map_err(|e| RestError::unavailable(format!("the schema registry did not answer: {e}")))?;
    let value: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
    match value["id"].as_i64().and_then(|id| i32::try_from(id).ok()) {
        Some(id) if parts.status.is_success() => Ok(id),
        _ => Err(RestError::new(
            // The registry's own trouble (5xx) stays retriable; the schema's
            // (4xx) is the record's.
            if parts.status.is_server_error() {
                parts.status
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            },
            value["error_code"].as_u64().map_or(42205, |c| c as u32),
            format!(
                "registering the schema under {subject} failed: {}",
                value["message"].as_str().unwrap_or("no answer")
            ),
        )),
    }
}
