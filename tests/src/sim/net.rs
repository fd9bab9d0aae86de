//! The quorum's network seam (`vltava_quorum::network::{Connector,
//! Acceptor}`) on turmoil's simulated TCP.

use vltava_quorum::network::{self, AcceptFuture, ConnectFuture, Io};

/// Accepts simulated connections.
pub struct Acceptor(pub turmoil::net::TcpListener);

impl network::Acceptor for Acceptor {
    fn accept(&mut self) -> AcceptFuture<'_> {
        Box::pin(async move {
            let (stream, _) = self.0.accept().await?;
            Ok(Box::new(stream) as Box<dyn Io>)
        })
    }
}

/// Connects over the simulated network (`host:port`).
pub struct Connector;

impl network::Connector for Connector {
    fn connect(&self, addr: &str) -> ConnectFuture {
        let addr = addr.to_string();
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect(addr).await?;
            Ok(Box::new(stream) as Box<dyn Io>)
        })
    }
}
