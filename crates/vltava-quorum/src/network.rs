//! openraft's RPCs between voters: a request frame and its response frame
//! on one connection at a time, each a 4-byte big-endian length and JSON.
//! Connections are opened through a [`Connector`], the seam a simulator
//! replaces; a connection that fails or times out is dropped and opened
//! again for the next RPC.

use std::collections::BTreeSet;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use vltava_meta::MetaRecord;

use crate::{NodeId, ProposeError, Proposer, QuorumStatus, TypeConfig};

/// The largest frame read: snapshots travel in openraft's chunks (3 MiB by
/// default) and entries in batches, so anything larger is not a peer.
pub const RPC_FRAME_BYTES_MAX: usize = 64 << 20;

/// How long a served connection may stay silent before it is closed.
pub const PEER_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A byte stream to a peer.
pub trait Io: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> Io for T {}

pub type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<Box<dyn Io>>> + Send>>;

/// Opens streams to peers by address.
pub trait Connector: Send + Sync + 'static {
    fn connect(&self, addr: &str) -> ConnectFuture;
}

pub type AcceptFuture<'a> = Pin<Box<dyn Future<Output = io::Result<Box<dyn Io>>> + Send + 'a>>;

/// Accepts peers' streams: the server half of the seam.
pub trait Acceptor: Send + 'static {
    fn accept(&mut self) -> AcceptFuture<'_>;
}

/// The acceptor of a lone voter, which has no peers: it never yields.
pub struct NoPeers;

impl Acceptor for NoPeers {
    fn accept(&mut self) -> AcceptFuture<'_> {
        Box::pin(std::future::pending())
    }
}

impl Acceptor for TcpListener {
    fn accept(&mut self) -> AcceptFuture<'_> {
        Box::pin(async move {
            let (stream, _) = TcpListener::accept(self).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as Box<dyn Io>)
        })
    }
}

/// TCP, with Nagle off (RPCs are small and latency-bound).
pub struct TcpConnector;

impl Connector for TcpConnector {
    fn connect(&self, addr: &str) -> ConnectFuture {
        let addr = addr.to_string();
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as Box<dyn Io>)
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum RpcRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    /// A conditional proposal a node sends the leader (see
    /// [`crate::Quorum::propose_if`]).
    Propose {
        expected: Option<u64>,
        records: Vec<MetaRecord>,
    },
    /// The receiving node's view of the quorum (asked of the leader, for
    /// DescribeQuorum at any node).
    Status,
    /// A broker's heartbeat to the leader.
    Heartbeat {
        node_id: NodeId,
        epoch: i64,
    },
    /// An observer (a broker-only node) asks for the committed entries
    /// after the index it has applied.
    Fetch {
        node_id: NodeId,
        after: Option<u64>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
enum RpcResponse {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// The entry's index once committed and applied at the leader.
    Propose(Result<u64, ProposeError>),
    Status(Box<QuorumStatus>),
    Heartbeat(Result<(), ProposeError>),
    Fetch(Box<FetchReply>),
}

/// What a voter answers an observer's fetch with: only committed (applied)
/// entries, so an observer never sees what may yet be undone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum FetchReply {
    /// The entries after the one asked for, in order (each with its
    /// records; none for openraft's own entries); empty when there are none
    /// yet.
    Entries {
        leader: Option<NodeId>,
        entries: Vec<(u64, Vec<MetaRecord>)>,
    },
    /// The observer is further behind than the voter keeps entries: the
    /// whole image, as of `applied`.
    Image {
        leader: Option<NodeId>,
        applied: Option<u64>,
        records: Vec<MetaRecord>,
    },
}

/// One fetch from the voter at the other end of `io`.
pub(crate) async fn fetch_on(
    io: &mut Box<dyn Io>,
    node_id: NodeId,
    after: Option<u64>,
) -> io::Result<FetchReply> {
    write_frame(io, &RpcRequest::Fetch { node_id, after }).await?;
    match read_frame::<RpcResponse>(io).await? {
        RpcResponse::Fetch(reply) => Ok(*reply),
        _ => Err(io::Error::other("the peer answered a different RPC")),
    }
}

/// One request to node `node` at `addr` and its answer, on a connection
/// of its own (proposals, heartbeats and status requests between nodes
/// are few), within `timeout`. A failure to reach it, or an answer of
/// another kind, is `Unavailable` naming the node: retriable.
async fn ask(
    connector: &dyn Connector,
    node: NodeId,
    addr: &str,
    request: RpcRequest,
    timeout: std::time::Duration,
) -> Result<RpcResponse, ProposeError> {
    let exchange = async {
        let mut io = connector.connect(addr).await?;
        write_frame(&mut io, &request).await?;
        read_frame::<RpcResponse>(&mut io).await
    };
    let failed = |e: String| ProposeError::Unavailable(format!("node {node} at {addr}: {e}"));
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(e)) => Err(failed(e.to_string())),
        Err(_) => Err(failed(format!(
            "no answer within {} ms",
            timeout.as_millis()
        ))),
    }
}

fn answered_otherwise(node: NodeId) -> ProposeError {
    ProposeError::Unavailable(format!("node {node} answered a different RPC"))
}

/// Sends a broker's heartbeat to the leader `node` at `addr`.
pub(crate) async fn heartbeat_at(
    connector: &dyn Connector,
    node: NodeId,
    addr: &str,
    broker: NodeId,
    epoch: i64,
    timeout: std::time::Duration,
) -> Result<(), ProposeError> {
    let request = RpcRequest::Heartbeat {
        node_id: broker,
        epoch,
    };
    match ask(connector, node, addr, request, timeout).await? {
        RpcResponse::Heartbeat(answer) => answer,
        _ => Err(answered_otherwise(node)),
    }
}

/// Asks node `node` at `addr` for its view of the quorum.
pub(crate) async fn status_at(
    connector: &dyn Connector,
    node: NodeId,
    addr: &str,
    timeout: std::time::Duration,
) -> Result<QuorumStatus, ProposeError> {
    match ask(connector, node, addr, RpcRequest::Status, timeout).await? {
        RpcResponse::Status(status) => Ok(*status),
        _ => Err(answered_otherwise(node)),
    }
}

/// Sends one conditional proposal to the leader `node` at `addr` and
/// returns the index it committed it at.
pub(crate) async fn propose_at(
    connector: &dyn Connector,
    node: NodeId,
    addr: &str,
    expected: Option<u64>,
    records: Vec<MetaRecord>,
    timeout: std::time::Duration,
) -> Result<u64, ProposeError> {
    let request = RpcRequest::Propose { expected, records };
    match ask(connector, node, addr, request, timeout).await? {
        RpcResponse::Propose(answer) => answer,
        _ => Err(answered_otherwise(node)),
    }
}

async fn write_frame<T: Serialize>(
    io: &mut (impl AsyncWrite + Unpin),
    value: &T,
) -> io::Result<()> {
    let body = serde_json::to_vec(value).map_err(io::Error::other)?;
    if body.len() > RPC_FRAME_BYTES_MAX {
        return Err(io::Error::other(format!(
            "an RPC of {} bytes is over RPC_FRAME_BYTES_MAX",
            body.len()
        )));
    }
    io.write_all(&(body.len() as u32).to_be_bytes()).await?;
    io.write_all(&body).await?;
    io.flush().await
}

async fn read_frame<T: DeserializeOwned>(io: &mut (impl AsyncRead + Unpin)) -> io::Result<T> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > RPC_FRAME_BYTES_MAX {
        return Err(io::Error::other(format!(
            "a frame of {len} bytes is over RPC_FRAME_BYTES_MAX"
        )));
    }
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    serde_json::from_slice(&body).map_err(io::Error::other)
}

/// When each peer last answered an AppendEntries with success, in
/// milliseconds since the epoch: what DescribeQuorum reports as a voter's
/// last fetch (openraft's metrics keep no time per peer).
pub type PeerAcks = Arc<parking_lot::Mutex<std::collections::BTreeMap<NodeId, i64>>>;

/// Creates a [`Connection`] per peer.
pub struct Network {
    connector: Arc<dyn Connector>,
    acks: PeerAcks,
}

impl Network {
    pub fn new(connector: Arc<dyn Connector>, acks: PeerAcks) -> Network {
        Network { connector, acks }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Connection {
        Connection {
            connector: self.connector.clone(),
            addr: node.addr.clone(),
            target,
            io: None,
            acks: self.acks.clone(),
            reachable: None,
        }
    }
}

/// The connection to one peer, opened on first use.
pub struct Connection {
    connector: Arc<dyn Connector>,
    addr: String,
    target: NodeId,
    io: Option<Box<dyn Io>>,
    acks: PeerAcks,
    /// Whether the last exchange got through (`None` before the first):
    /// a change is logged once, not every failed retry.
    reachable: Option<bool>,
}

impl Connection {
    fn note_reachable(&mut self, result: &Result<RpcResponse, io::Error>) {
        let now = result.is_ok();
        if self.reachable == Some(now) {
            return;
        }
        match result {
            Ok(_) if self.reachable.is_some() => {
                tracing::info!(voter = self.target, addr = %self.addr, "reached metadata quorum voter again");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(voter = self.target, addr = %self.addr, error = %e, "cannot reach metadata quorum voter");
            }
        }
        self.reachable = Some(now);
    }

    /// Sends one request and reads its response within `option`'s hard
    /// deadline. Cancel-safe: the connection is taken out for the exchange
    /// and put back only after a whole request and response, so an exchange
    /// that openraft abandons (its own timeout) drops the connection instead
    /// of leaving a late response to be read as the next one's.
    async fn call(
        &mut self,
        request: RpcRequest,
        option: &RPCOption,
    ) -> Result<RpcResponse, io::Error> {
        let taken = self.io.take();
        let connector = self.connector.clone();
        let addr = self.addr.clone();
        let exchange = async move {
            let mut io = match taken {
                Some(io) => io,
                None => connector.connect(&addr).await.map_err(|e| {
                    // Refused, unreachable or timed out: the peer is down.
                    io::Error::new(io::ErrorKind::NotConnected, e.to_string())
                })?,
            };
            write_frame(&mut io, &request).await?;
            let response = read_frame::<RpcResponse>(&mut io).await?;
            Ok::<_, io::Error>((io, response))
        };
        let result = match tokio::time::timeout(option.hard_ttl(), exchange).await {
            Ok(Ok((io, response))) => {
                self.io = Some(io);
                Ok(response)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "RPC timed out")),
        };
        self.note_reachable(&result);
        result
    }

    fn unexpected<E: std::error::Error>(&self) -> RPCError<NodeId, BasicNode, E> {
        RPCError::Network(NetworkError::new(&io::Error::other(
            "the peer answered a different RPC",
        )))
    }
}

fn transport_error<E: std::error::Error>(e: io::Error) -> RPCError<NodeId, BasicNode, E> {
    // Unreachable makes openraft back off instead of retrying at once.
    match e.kind() {
        io::ErrorKind::NotConnected
        | io::ErrorKind::ConnectionRefused
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::HostUnreachable
        | io::ErrorKind::NetworkUnreachable
        | io::ErrorKind::NotFound
        // Closed unanswered: a peer that refuses this node (it is not one
        // of its voters) or went down mid-exchange.
        | io::ErrorKind::UnexpectedEof => RPCError::Unreachable(Unreachable::new(&e)),
        _ => RPCError::Network(NetworkError::new(&e)),
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self.call(RpcRequest::AppendEntries(rpc), &option).await {
            Ok(RpcResponse::AppendEntries(Ok(r))) => {
                if matches!(r, AppendEntriesResponse::Success) {
                    self.acks
                        .lock()
                        .insert(self.target, crate::log_store::now_ms());
                }
                Ok(r)
            }
            Ok(RpcResponse::AppendEntries(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(self.unexpected()),
            Err(e) => Err(transport_error(e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        match self.call(RpcRequest::InstallSnapshot(rpc), &option).await {
            Ok(RpcResponse::InstallSnapshot(Ok(r))) => Ok(r),
            Ok(RpcResponse::InstallSnapshot(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(self.unexpected()),
            Err(e) => Err(transport_error(e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self.call(RpcRequest::Vote(rpc), &option).await {
            Ok(RpcResponse::Vote(Ok(r))) => Ok(r),
            Ok(RpcResponse::Vote(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(self.unexpected()),
            Err(e) => Err(transport_error(e)),
        }
    }
}

/// Serves peers' RPCs on `acceptor`'s streams until `stop` turns true.
/// Votes, appends and snapshots are obeyed only from `voters` (Raft obeys
/// any higher term: a node configured with another voter set, or a stray
/// process, must not depose the leader or overwrite the log); proposals
/// are taken from any node, as Kafka's controller takes requests from any
/// broker.
pub(crate) async fn serve(
    mut acceptor: Box<dyn Acceptor>,
    proposer: Arc<Proposer>,
    voters: Arc<BTreeSet<NodeId>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            accepted = acceptor.accept() => accepted,
        };
        match accepted {
            Ok(io) => {
                connections.spawn(serve_connection(io, proposer.clone(), voters.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "metadata quorum accept failed");
                // An acceptor that keeps failing must not spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        while connections.try_join_next().is_some() {}
    }
    connections.abort_all();
}

/// The node a Raft RPC comes from: the candidate of a vote, the leader of
/// an append or a snapshot.
fn sender(request: &RpcRequest) -> Option<NodeId> {
    match request {
        RpcRequest::AppendEntries(r) => Some(r.vote.leader_id().node_id),
        RpcRequest::InstallSnapshot(r) => Some(r.vote.leader_id().node_id),
        RpcRequest::Vote(r) => Some(r.vote.leader_id().node_id),
        RpcRequest::Propose { .. }
        | RpcRequest::Status
        | RpcRequest::Heartbeat { .. }
        | RpcRequest::Fetch { .. } => None,
    }
}

/// How often a refused non-voter is logged: it retries at once, and one
/// line a minute says all there is to say.
const REFUSED_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Claimed ids whose last refusal is remembered (ids come from the wire).
const REFUSED_IDS_MAX: usize = 1024;

/// Whether a refusal of `from` should be logged now (at most once per
/// `REFUSED_LOG_INTERVAL` per claimed id; a bounded map).
fn warn_refused(from: NodeId) -> bool {
    static LAST: parking_lot::Mutex<Option<std::collections::HashMap<NodeId, std::time::Instant>>> =
        parking_lot::Mutex::new(None);
    let mut last = LAST.lock();
    let last = last.get_or_insert_with(Default::default);
    let now = std::time::Instant::now();
    if last.len() > REFUSED_IDS_MAX {
        last.clear();
    }
    match last.get(&from) {
        Some(at) if now.duration_since(*at) < REFUSED_LOG_INTERVAL => false,
        _ => {
            last.insert(from, now);
            true
        }
    }
}

/// Answers RPCs on one stream until the peer closes it or sends a frame
/// that is not one, or a Raft RPC from a node that is not a voter.
async fn serve_connection(mut io: impl Io, proposer: Arc<Proposer>, voters: Arc<BTreeSet<NodeId>>) {
    let raft = &proposer.raft;
    loop {
        // A leader sends a heartbeat every few hundred milliseconds; a
        // connection silent for this long is a peer that went away without
        // closing it (half-open), and its task would otherwise stay.
        let read = tokio::time::timeout(PEER_IDLE_TIMEOUT, read_frame::<RpcRequest>(&mut io));
        let Ok(read) = read.await else {
            tracing::debug!("metadata quorum connection idle; closing it");
            return;
        };
        let request = match read {
            Ok(r) => r,
            Err(e) => {
                if e.kind() != io::ErrorKind::UnexpectedEof {
                    tracing::debug!(error = %e, "metadata quorum connection closed");
                }
                return;
            }
        };
        if let Some(from) = sender(&request).filter(|id| !voters.contains(id)) {
            if warn_refused(from) {
                tracing::warn!(
                    from,
                    voters = ?voters,
                    "closed a metadata quorum connection: a Raft request from a node that is not a voter (check controller.quorum.voters on that node)"
                );
            }
            return;
        }
        // A voter rejoining after it lost its state may already have voted
        // in this term: it answers no vote until it has caught up (to the
        // candidate it is as if down, which costs availability, never
        // safety).
        if matches!(request, RpcRequest::Vote(_)) && proposer.rejoining.lock().is_some() {
            tracing::debug!("not voting: this voter is rejoining after losing its state");
            return;
        }
        let response = match request {
            RpcRequest::AppendEntries(r) => {
                RpcResponse::AppendEntries(raft.append_entries(r).await)
            }
            RpcRequest::InstallSnapshot(r) => {
                RpcResponse::InstallSnapshot(raft.install_snapshot(r).await)
            }
            RpcRequest::Vote(r) => RpcResponse::Vote(raft.vote(r).await),
            RpcRequest::Propose { expected, records } => {
                RpcResponse::Propose(proposer.propose_if(expected, records).await)
            }
            RpcRequest::Status => RpcResponse::Status(Box::new(proposer.status())),
            RpcRequest::Heartbeat { node_id, epoch } => {
                RpcResponse::Heartbeat(proposer.heartbeat(node_id, epoch))
            }
            RpcRequest::Fetch { node_id, after } => {
                RpcResponse::Fetch(Box::new(proposer.serve_fetch(node_id, after).await))
            }
        };
        if write_frame(&mut io, &response).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_over_the_limit_or_not_json_are_refused() {
        let mut big = Vec::new();
        big.extend_from_slice(&((RPC_FRAME_BYTES_MAX as u32) + 1).to_be_bytes());
        let e = read_frame::<RpcRequest>(&mut big.as_slice())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("over RPC_FRAME_BYTES_MAX"), "{e}");

        let mut garbage = Vec::new();
        garbage.extend_from_slice(&5u32.to_be_bytes());
        garbage.extend_from_slice(b"hello");
        assert!(read_frame::<RpcRequest>(&mut garbage.as_slice())
            .await
            .is_err());

        // A frame cut short is an error, not a hang or a panic.
        let mut cut = Vec::new();
        cut.extend_from_slice(&100u32.to_be_bytes());
        cut.extend_from_slice(b"{}");
        assert!(read_frame::<RpcRequest>(&mut cut.as_slice()).await.is_err());
    }

    #[tokio::test]
    async fn a_request_round_trips() {
        let request = RpcRequest::Vote(VoteRequest::new(
            openraft::Vote::new(3, 2),
            Some(openraft::LogId::new(
                openraft::CommittedLeaderId::new(2, 1),
                7,
            )),
        ));
        let mut buf = Vec::new();
        write_frame(&mut buf, &request).await.unwrap();
        let back: RpcRequest = read_frame(&mut buf.as_slice()).await.unwrap();
        assert_eq!(format!("{back:?}"), format!("{request:?}"));
    }
}
