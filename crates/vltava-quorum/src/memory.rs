//! An in-process network behind the [`Connector`]/[`Acceptor`] seam: nodes
//! of one process talk over in-memory pipes, and a test can cut a node off
//! (every stream to or from it fails, new connections are refused) and
//! heal it. What a simulator or a partition test runs the quorum on.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::mpsc;

use crate::network::{AcceptFuture, Acceptor, ConnectFuture, Connector, Io};

/// Bytes buffered in each direction of a pipe.
const PIPE_BYTES: usize = 1 << 20;
/// Connections waiting to be accepted, per address.
const BACKLOG: usize = 64;

#[derive(Default)]
struct State {
    listeners: HashMap<String, mpsc::Sender<Box<dyn Io>>>,
    isolated: BTreeSet<String>,
}

/// The network: addresses are names; cheap to clone.
#[derive(Clone, Default)]
pub struct MemoryNetwork {
    state: Arc<Mutex<State>>,
}

impl MemoryNetwork {
    pub fn new() -> MemoryNetwork {
        MemoryNetwork::default()
    }

    /// Listens at `addr` (replacing an earlier listener there, as a
    /// restarted node rebinds its port).
    pub fn listen(&self, addr: &str) -> MemoryAcceptor {
        let (tx, rx) = mpsc::channel(BACKLOG);
        self.state.lock().listeners.insert(addr.to_string(), tx);
        MemoryAcceptor { incoming: rx }
    }

    /// A connector for the node at `from`: its streams fail while either
    /// end is isolated.
    pub fn connector(&self, from: &str) -> MemoryConnector {
        MemoryConnector {
            network: self.clone(),
            from: from.to_string(),
        }
    }

    /// Cuts `addr` off: its streams fail and connections to or from it are
    /// refused until [`MemoryNetwork::heal`].
    pub fn isolate(&self, addr: &str) {
        self.state.lock().isolated.insert(addr.to_string());
    }

    pub fn heal(&self, addr: &str) {
        self.state.lock().isolated.remove(addr);
    }

    fn cut(&self, a: &str, b: &str) -> bool {
        let state = self.state.lock();
        state.isolated.contains(a) || state.isolated.contains(b)
    }
}

pub struct MemoryAcceptor {
    incoming: mpsc::Receiver<Box<dyn Io>>,
}

impl Acceptor for MemoryAcceptor {
    fn accept(&mut self) -> AcceptFuture<'_> {
        Box::pin(async move {
            match self.incoming.recv().await {
                Some(io) => Ok(io),
                // The network replaced this listener: stop accepting.
                None => std::future::pending().await,
            }
        })
    }
}

pub struct MemoryConnector {
    network: MemoryNetwork,
    from: String,
}

impl Connector for MemoryConnector {
    fn connect(&self, addr: &str) -> ConnectFuture {
        let network = self.network.clone();
        let from = self.from.clone();
        let to = addr.to_string();
        Box::pin(async move {
            if network.cut(&from, &to) {
                return Err(io::Error::new(io::ErrorKind::ConnectionRefused, "isolated"));
            }
            let listener = network.state.lock().listeners.get(&to).cloned();
            let Some(listener) = listener else {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    "nothing listens there",
                ));
            };
            let (ours, theirs) = tokio::io::duplex(PIPE_BYTES);
            let theirs = Pipe {
                inner: theirs,
                network: network.clone(),
                ends: (to.clone(), from.clone()),
            };
            listener
                .send(Box::new(theirs))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::ConnectionRefused, "listener gone"))?;
            Ok(Box::new(Pipe {
                inner: ours,
                network,
                ends: (from, to),
            }) as Box<dyn Io>)
        })
    }
}

/// One end of a pipe: fails reads and writes while either end is isolated.
struct Pipe {
    inner: DuplexStream,
    network: MemoryNetwork,
    ends: (String, String),
}

impl Pipe {
    fn check(&self) -> io::Result<()> {
        if self.network.cut(&self.ends.0, &self.ends.1) {
            return Err(io::Error::new(io::ErrorKind::ConnectionReset, "isolated"));
        }
        Ok(())
    }
}

impl AsyncRead for Pipe {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Pipe {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
