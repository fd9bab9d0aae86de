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
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vltava_broker::{Broker, BrokerConfig};

use crate::ServerError;

/// What the admin server knows of the broker starting beside it.
#[derive(Default)]
pub struct Admin {
    /// Set once the broker has opened (logs recovered, metadata caught up).
    broker: OnceLock<Arc<Broker>>,
    /// Set once the Kafka listeners accept connections.
    listening: AtomicBool,
    /// Set when shutdown begins: orchestrators stop sending traffic.
    stopping: AtomicBool,
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

    /// The Kafka listeners are bound.
    pub fn listening(&self) {
        self.listening.store(true, Ordering::Release);
    }

    /// The broker, once it has opened.
    pub(crate) fn broker(&self) -> Option<Arc<Broker>> {
        self.broker.get().cloned()
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
    let mut bound = Vec::new();
    for address in &config.admin_listeners {
        let socket = TcpListener::bind(address)
            .await
            .map_err(|source| ServerError::AdminBind {
                address: address.clone(),
                source,
            })?;
        bound.push(socket);
    }
    Ok(bound)
}

/// How long shutdown waits for open admin requests before dropping them
/// (a client that sent half a request would otherwise hold it forever).
const SHUTDOWN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves the admin endpoints on `listeners` until `shutdown`, then gives
/// open requests [`SHUTDOWN_PATIENCE`] to finish.
pub async fn serve(listeners: Vec<TcpListener>, admin: Arc<Admin>, shutdown: CancellationToken) {
    let app = router(admin);
    let mut servers = tokio::task::JoinSet::new();
    for listener in listeners {
        if let Ok(address) = listener.local_addr() {
            info!(%address, "admin server listening (console at /, /health, /ready, /metrics)");
        }
        let app = app.clone();
        let shutdown = shutdown.clone();
        servers.spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
            if let Err(e) = served {
                warn!(error = %e, "admin server stopped");
            }
        });
    }
    shutdown.cancelled().await;
    let drained = tokio::time::timeout(SHUTDOWN_PATIENCE, async {
        while servers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!("admin requests still open after the shutdown patience: dropped");
        servers.abort_all();
    }
}

fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/", get(crate::console::overview))
        .route("/topics", get(crate::console::topics))
        .route("/topics/{name}", get(crate::console::topic))
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
