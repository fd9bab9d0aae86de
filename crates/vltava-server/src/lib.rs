//! Networking: listeners, one task per connection, the request pipeline,
//! connection limits, background maintenance and graceful shutdown.
//!
//! Each connection reads a frame, checks its length against
//! `socket.request.max.bytes` before reading the body, decodes it with
//! `vltava-protocol`, hands it to the broker's handlers and writes the
//! response. Requests on one connection are answered in order, one at a
//! time, as Kafka does (it mutes a channel while a request is in flight).
//! A frame that cannot be decoded closes its connection with one log line;
//! other connections never notice.

pub mod admin;
mod connection;
pub(crate) mod console;
pub mod http_client;
mod http_errors;
mod maintenance;
pub mod registry;
mod replica_fetcher;
pub mod rest_proxy;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vltava_broker::Broker;
use vltava_client::connection::{Dialer, TcpDialer};

/// How long shutdown waits for in-flight requests before aborting them.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("admin.listeners: cannot listen on {address} ({source}): set admin.listeners to another http://HOST:PORT, or to nothing to turn the admin server off (or is this broker already running?)")]
    AdminBind {
        address: String,
        source: std::io::Error,
    },
    #[error("schema.registry.listeners: cannot listen on {address} ({source}): set schema.registry.listeners to another http://HOST:PORT, or to nothing to turn the schema registry off (or is this broker, or another schema registry, already running?)")]
    RegistryBind {
        address: String,
        source: std::io::Error,
    },
    #[error("rest.proxy.listeners: cannot listen on {address} ({source}): set rest.proxy.listeners to another http://HOST:PORT, or to nothing to turn the REST proxy off (or is this broker, or another REST proxy, already running?)")]
    RestProxyBind {
        address: String,
        source: std::io::Error,
    },
}

/// Binds every listener in the broker's config; each is returned with its
/// name.
pub async fn bind(broker: &Broker) -> Result<Vec<(Arc<str>, TcpListener)>, ServerError> {
    let mut bound = Vec::new();
    for listener in &broker.config.listeners {
        let address = format!("{}:{}", listener.host, listener.port);
        let socket = TcpListener::bind(&address)
            .await
            .map_err(|source| ServerError::Bind {
                address: address.clone(),
                source,
            })?;
        info!(listener = %listener.name, %address, "listening");
        bound.push((Arc::from(listener.name.as_str()), socket));
    }
    Ok(bound)
}

/// Serves until `shutdown` is cancelled, then stops accepting, lets
/// in-flight requests finish (up to a patience timeout) and returns.
pub async fn serve(
    broker: Arc<Broker>,
    listeners: Vec<(Arc<str>, TcpListener)>,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(broker.config.max_connections));
    // One set of limits for every listener: queued.max.request.bytes is
    // broker-wide.
    let limits = connection::ConnectionLimits::from_config(&broker.config);
    let mut acceptors = JoinSet::new();
    for (name, listener) in listeners {
        acceptors.spawn(accept_loop(
            broker.clone(),
            name,
            listener,
            permits.clone(),
            limits.clone(),
            shutdown.clone(),
        ));
    }
    let background = tokio::spawn(run_background(
        broker.clone(),
        Arc::new(TcpDialer),
        shutdown.clone(),
    ));
    while acceptors.join_next().await.is_some() {}
    let _ = background.await;
}

/// The broker's work besides answering clients, until `shutdown`: its
/// timers (retention, flushes, the cleaner, groups, heartbeats, ISR
/// changes) and the replica fetchers, which dial leaders through
/// `dialer`. [`serve`] runs it; a simulation runs it beside its own
/// accept loop.
pub async fn run_background(
    broker: Arc<Broker>,
    dialer: Arc<dyn Dialer>,
    shutdown: CancellationToken,
) {
    let maintenance = tokio::spawn(maintenance::run(broker.clone(), shutdown.clone()));
    let fetchers = tokio::spawn(replica_fetcher::run(broker, dialer, shutdown));
    let _ = maintenance.await;
    let _ = fetchers.await;
}

/// Serves one client connection on any byte stream until it closes or
/// `shutdown`, with the broker's connection limits: for a simulation's
/// accept loop (file ranges are copied rather than sent with `sendfile`).
pub async fn serve_connection<S>(
    broker: Arc<Broker>,
    stream: S,
    peer: std::net::SocketAddr,
    listener: Arc<str>,
    shutdown: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let limits = connection::ConnectionLimits::from_config(&broker.config);
    connection::serve_stream(broker, stream, peer, listener, limits, shutdown).await
}

async fn accept_loop(
    broker: Arc<Broker>,
    name: Arc<str>,
    listener: TcpListener,
    permits: Arc<Semaphore>,
    limits: connection::ConnectionLimits,
    shutdown: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                warn!(error = %e, "accept failed");
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            warn!(%peer, max_connections = broker.config.max_connections, "connection refused: max.connections reached");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let broker = broker.clone();
        let shutdown = shutdown.clone();
        let limits = limits.clone();
        let name = name.clone();
        connections.spawn(async move {
            connection::serve(broker, stream, peer, name, limits, shutdown).await;
            drop(permit);
        });
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    }
    let drained = tokio::time::timeout(SHUTDOWN_PATIENCE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            connections = connections.len(),
            "aborting connections still busy after shutdown patience"
        );
        connections.abort_all();
    }
}
