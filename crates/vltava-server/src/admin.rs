//! The admin HTTP server (`admin.listeners`): `/health` (the process
//! answers), `/ready` (logs recovered, metadata caught up, Kafka listeners
//! open: what an orchestrator waits for before sending traffic) and
//! `/metrics` (Prometheus' text format, see `vltava_broker::metrics`), and
//! the web console (`crate::console`).
//!
//! It is bound before the broker opens, so `/health` answers and `/ready`
//! says "not ready" while logs are recovered, which can take minutes on a
//! large data directory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vltava_broker::{Broker, BrokerConfig};

use crate::console::{self, actions};
use crate::ServerError;

/// What the admin server knows of the broker starting beside it.
pub struct Admin {
    /// Set once the broker has opened (logs recovered, metadata caught up).
    broker: OnceLock<Arc<Broker>>,
    /// Set once the Kafka listeners accept connections.
    listening: AtomicBool,
    /// Set when shutdown begins: orchestrators stop sending traffic.
    stopping: AtomicBool,
    /// The console's Kafka client of this node's own listener, made on
    /// first use and kept (it reconnects by itself).
    kafka: OwnClient,
    /// Console requests served at once (each may hold a fetch of records
    /// or a round of requests to the cluster).
    console_permits: tokio::sync::Semaphore,
    /// The node's schema registry store, for the console to decode records
    /// in Confluent's wire format.
    registry: OnceLock<Arc<crate::registry::Registry>>,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            broker: OnceLock::new(),
            listening: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            // A page waits seconds at most, not a client's half minute.
            kafka: OwnClient::new("vltava-console", CONSOLE_CLIENT_TIMEOUT),
            console_permits: tokio::sync::Semaphore::new(CONSOLE_REQUESTS_MAX),
            registry: OnceLock::new(),
        }
    }
}

impl Admin {
    pub fn new() -> Arc<Admin> {
        Arc::new(Admin::default())
    }

    /// The broker has opened: its logs are recovered and its metadata is
    /// current.
    pub fn opened(&self, broker: Arc<Broker>) {
        let _ = self.broker.set(broker);
    }

    /// The node's schema registry, for the console's decoding.
    pub fn set_registry(&self, registry: Arc<crate::registry::Registry>) {
        let _ = self.registry.set(registry);
    }

    pub(crate) fn registry(&self) -> Option<&Arc<crate::registry::Registry>> {
        self.registry.get()
    }

    /// The Kafka listeners are bound.
    pub fn listening(&self) {
        self.listening.store(true, Ordering::Release);
    }

    /// The broker, once it has opened.
    pub(crate) fn broker(&self) -> Option<Arc<Broker>> {
        self.broker.get().cloned()
    }

    /// A Kafka client of the cluster, bootstrapped from this node's first
    /// advertised listener. The console's writes and its reads of other
    /// brokers' partitions and of groups go through it, so they take the
    /// same path (controller, leaders, coordinators) and give the same
    /// errors as any Kafka client's.
    pub(crate) async fn kafka(&self, broker: &Broker) -> Result<vltava_client::Client, String> {
        self.kafka.get(broker).await
    }

    /// A turn to serve one console request, or `None` when
    /// [`CONSOLE_REQUESTS_MAX`] are being served and none finished within
    /// [`CONSOLE_QUEUE_PATIENCE`].
    pub(crate) async fn console_turn(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        tokio::time::timeout(CONSOLE_QUEUE_PATIENCE, self.console_permits.acquire())
            .await
            .ok()?
            .ok()
    }

    /// Whether `admin.console.read.only` forbids the console's writes.
    pub(crate) fn read_only(&self) -> bool {
        self.broker
            .get()
            .is_none_or(|b| b.config.admin_console_read_only)
    }

    /// Shutdown has begun.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Why the broker is not ready, or `None` when it is.
    fn not_ready(&self) -> Option<&'static str> {
        if self.stopping.load(Ordering::Acquire) {
            return Some("stopping: shutting down");
        }
        if self.broker.get().is_none() {
            return Some("starting: recovering logs and catching up with the metadata quorum");
        }
        if !self.listening.load(Ordering::Acquire) {
            return Some("starting: the Kafka listeners are not open yet");
        }
        None
    }
}

/// Binds every `admin.listeners` address; a taken port names the setting
/// to change.
pub async fn bind(config: &BrokerConfig) -> Result<Vec<TcpListener>, ServerError> {
    bind_all(&config.admin_listeners, |address, source| {
        ServerError::AdminBind { address, source }
    })
    .await
}

/// Binds each of `addresses`; the first that cannot be bound is the error
/// `refused` makes of it.
pub(crate) async fn bind_all(
    addresses: &[String],
    refused: impl Fn(String, std::io::Error) -> ServerError,
) -> Result<Vec<TcpListener>, ServerError> {
    let mut bound = Vec::new();
    for address in addresses {
        let socket = TcpListener::bind(address)
            .await
            .map_err(|source| refused(address.clone(), source))?;
        bound.push(socket);
    }
    Ok(bound)
}

/// Console requests served at once; more wait their turn.
pub const CONSOLE_REQUESTS_MAX: usize = 8;

/// How long a console request waits for its turn before it is answered
/// 503.
const CONSOLE_QUEUE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// How long one request of the console's Kafka client may take.
const CONSOLE_CLIENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long shutdown waits for open admin requests before dropping them
/// (a client that sent half a request would otherwise hold it forever).
const SHUTDOWN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves the admin endpoints on `listeners` until `shutdown`, then gives
/// open requests [`SHUTDOWN_PATIENCE`] to finish.
pub async fn serve(listeners: Vec<TcpListener>, admin: Arc<Admin>, shutdown: CancellationToken) {
    let what = "admin server (console at /, /health, /ready, /metrics)";
    serve_http(what, listeners, router(admin), shutdown).await;
}

/// A Kafka client of this node's own listener, made on first use and kept
/// (it reconnects by itself): the console's, the REST proxy's.
pub(crate) struct OwnClient {
    kept: tokio::sync::Mutex<Option<vltava_client::Client>>,
    client_id: &'static str,
    timeout: std::time::Duration,
}

impl OwnClient {
    pub(crate) fn new(client_id: &'static str, timeout: std::time::Duration) -> OwnClient {
        OwnClient {
            kept: tokio::sync::Mutex::new(None),
            client_id,
            timeout,
        }
    }

    /// The client, connecting it first if need be. The lock is held across
    /// the connect on purpose: requests arriving meanwhile wait for that
    /// one connection rather than each opening their own.
    pub(crate) async fn get(&self, broker: &Broker) -> Result<vltava_client::Client, String> {
        let mut kept = self.kept.lock().await;
        if let Some(client) = kept.as_ref() {
            return Ok(client.clone());
        }
        let bootstrap = own_bootstrap(broker).ok_or("this broker has no listener to connect to")?;
        let mut config = vltava_client::ClientConfig::new(&bootstrap).client_id(self.client_id);
        config.timeouts.connect = self.timeout;
        config.timeouts.request = self.timeout;
        let client = vltava_client::Client::connect(config)
            .await
            .map_err(|e| format!("cannot reach this broker's Kafka listener {bootstrap}: {e}"))?;
        *kept = Some(client.clone());
        Ok(client)
    }
}

/// This node's first advertised Kafka listener as a client connects to
/// it (a wildcard host becomes 127.0.0.1).
pub(crate) fn own_bootstrap(broker: &Broker) -> Option<String> {
    broker.config.advertised_listeners.first().map(|l| {
        let host = match l.host.as_str() {
            "" | "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
            host => host,
        };
        format!("{host}:{}", l.port)
    })
}

/// Serves `app` on every listener until `shutdown`, then gives open
/// requests [`SHUTDOWN_PATIENCE`] to finish: the admin server's, the
/// schema registry's and the REST proxy's loop.
pub(crate) async fn serve_http(
    what: &'static str,
    listeners: Vec<TcpListener>,
    app: Router,
    shutdown: CancellationToken,
) {
    let mut servers = tokio::task::JoinSet::new();
    for listener in listeners {
        if let Ok(address) = listener.local_addr() {
            info!(%address, "{what} listening");
        }
        let app = app.clone();
        let shutdown = shutdown.clone();
        servers.spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
            if let Err(e) = served {
                warn!(error = %e, "{what} stopped");
            }
        });
    }
    shutdown.cancelled().await;
    let drained = tokio::time::timeout(SHUTDOWN_PATIENCE, async {
        while servers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!("{what}: requests still open after the shutdown patience: dropped");
        servers.abort_all();
    }
}

fn router(admin: Arc<Admin>) -> Router {
    let console = Router::new()
        .route("/", get(console::overview))
        .route("/topics", get(console::topics))
        .route("/topics/{name}", get(console::topic))
        .route("/topics/{name}/messages", get(console::messages::messages))
        .route(
            "/topics/{name}/produce",
            get(actions::produce_page).post(actions::produce),
        )
        .route("/topics/{name}/produced", get(actions::produced))
        .route("/topics/{name}/partitions", post(actions::add_partitions))
        .route("/topics/{name}/delete", post(actions::delete_topic))
        .route(
            "/new-topic",
            get(actions::create_topic_form).post(actions::create_topic),
        )
        .route("/groups", get(console::groups::groups))
        .route("/groups/{id}", get(console::groups::group))
        .route("/groups/{id}/reset", post(actions::reset_offsets))
        .route("/groups/{id}/delete", post(actions::delete_group))
        .route_layer(axum::middleware::from_fn_with_state(
            admin.clone(),
            console::host_guard,
        ));
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .merge(console)
        .with_state(admin)
}

async fn health() -> &'static str {
    "ok\n"
}

async fn ready(State(admin): State<Arc<Admin>>) -> Response {
    match admin.not_ready() {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn metrics(State(admin): State<Arc<Admin>>) -> Response {
    let Some(broker) = admin.broker.get().cloned() else {
        let why = "starting: metrics are served once the logs are recovered\n";
        return (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    };
    // Walking every partition and group (tens of thousands, on a big
    // broker) is not for an async worker.
    let Ok(text) = crate::maintenance::off_runtime(move || broker.scrape_metrics()).await else {
        let why = "metrics could not be gathered (see the broker's log)\n";
        return (StatusCode::INTERNAL_SERVER_ERROR, why).into_response();
    };
    (
        [(header::CONTENT_TYPE, vltava_broker::metrics::CONTENT_TYPE)],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_says_why_not_and_stopping_wins() {
        let admin = Admin::new();
        assert_eq!(
            admin.not_ready(),
            Some("starting: recovering logs and catching up with the metadata quorum")
        );
        admin.listening();
        assert!(admin.not_ready().is_some(), "no broker yet");
        admin.stopping();
        assert_eq!(admin.not_ready(), Some("stopping: shutting down"));
    }
}
