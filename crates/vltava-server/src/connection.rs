//! One client connection: frames in, responses out, in order.
//!
//! Limits, all named after broker config keys (see [`ConnectionLimits`]):
//! - one request handled at a time per connection, answered in order.
//!   The one overlap: a produce whose acks=all writes are appended and only
//!   wait for followers leaves its answer owed, and the next produce is
//!   read and appended meanwhile (at most [`PIPELINED_PRODUCES_MAX`] owed);
//!   any other request waits until every owed answer is out, so it sees
//!   what Kafka's one-at-a-time processing would show it. Owed answers
//!   settle independently and go out in order; if the client stops
//!   sending (or sends an unreadable frame) they are still written. Otherwise the
//!   next frame is not read until the previous response is in the socket,
//!   so a client that never reads its responses makes the broker stop
//!   reading from it, and is closed after `connections.max.idle.ms`;
//! - `socket.request.max.bytes`: checked on the length prefix, before any
//!   body byte is read or memory is set aside;
//! - `queued.max.request.bytes`: request bytes held across all connections,
//!   reserved 64 KiB ahead of what has arrived; a connection waits (without
//!   reading) while the pool is exhausted;
//! - `socket.request.read.timeout.ms`: once the first byte of a request has
//!   arrived, the rest must follow within this (slowloris);
//! - `connections.max.idle.ms`: no new request within this closes the
//!   connection, as does a response that cannot be written within it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::io;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use vltava_broker::handlers;
use vltava_broker::Broker;
use vltava_log::ReadSlice;
use vltava_protocol::{
    decode_request, encode_response_spliced, frame_length, ApiKey, DecodeError, RecordsPlaceholder,
    ResponseKind, FRAME_PREFIX_BYTES,
};

/// Produce answers one connection may owe at once while their writes wait
/// for followers. Without the overlap, a client that sends many small
/// acks=all produces (librdkafka pipelines them) gets one replication
/// round trip per request, and its queue grows without end once requests
/// come faster than that.
const PIPELINED_PRODUCES_MAX: usize = 32;

/// A frame body is read (and its memory reserved) this many bytes at a
/// time, so the buffer grows as bytes come in rather than trusting the
/// prefix up front.
const FRAME_CHUNK_BYTES: usize = 64 * 1024;

/// The per-connection limits, from the broker config.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionLimits {
    /// `socket.request.max.bytes`.
    pub request_bytes_max: usize,
    /// `connections.max.idle.ms`.
    pub idle_timeout: Duration,
    /// `socket.request.read.timeout.ms`.
    pub request_read_timeout: Duration,
    /// `queued.max.request.bytes`, shared by every connection; `None` is
    /// unbounded.
    pub request_memory: Option<Arc<Semaphore>>,
}

impl ConnectionLimits {
    pub fn from_config(config: &vltava_broker::BrokerConfig) -> ConnectionLimits {
        ConnectionLimits {
            request_bytes_max: config.socket_request_max_bytes,
            idle_timeout: Duration::from_millis(config.connections_max_idle_ms),
            request_read_timeout: Duration::from_millis(config.socket_request_read_timeout_ms),
            request_memory: config
                .queued_max_request_bytes
                .map(|bytes| Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS)))),
        }
    }
}

/// Why a connection ends; each is logged once, at a level that matches
/// whose fault it is.
#[derive(Debug)]
enum Close {
    ClientGone,
    Shutdown,
    Idle,
    ReadTimeout {
        received: usize,
        expected: usize,
    },
    BadFrame(String),
    WriteStalled {
        response_bytes: usize,
    },
    EncodeFailed,
    /// A produce with acks=0 failed: with no response to carry the error,
    /// closing the connection is how the client learns (it refreshes its
    /// metadata and reconnects), as Kafka does.
    SilentProduceFailed(String),
}

impl Close {
    fn log(&self, peer: SocketAddr, limits: &ConnectionLimits) {
        match self {
            Close::ClientGone | Close::Shutdown | Close::EncodeFailed => {
                debug!(%peer, reason = ?self, "connection closed")
            }
            Close::Idle => debug!(
                %peer,
                idle_ms = limits.idle_timeout.as_millis() as u64,
                "closing idle connection (connections.max.idle.ms)"
            ),
            Close::ReadTimeout { received, expected } => warn!(
                %peer,
                received, expected,
                timeout_ms = limits.request_read_timeout.as_millis() as u64,
                "closing connection: request not received in time (socket.request.read.timeout.ms)"
            ),
            Close::BadFrame(error) => warn!(%peer, %error, "closing connection"),
            Close::SilentProduceFailed(error) => info!(
                %peer,
                %error,
                "closing connection: a produce with acks=0 failed, and closing is the only way to tell the client"
            ),
            Close::WriteStalled { response_bytes } => warn!(
                %peer,
                response_bytes,
                timeout_ms = limits.idle_timeout.as_millis() as u64,
                "closing connection: client is not reading its responses (connections.max.idle.ms)"
            ),
        }
    }
}

/// A request frame and the share of `queued.max.request.bytes` it holds
/// until it has been handled.
struct Frame {
    bytes: Bytes,
    _memory: Option<OwnedSemaphorePermit>,
}

pub(crate) async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<str>,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let (reader, writer) = stream.into_split();
    serve_halves(broker, reader, writer, peer, listener, limits, shutdown).await
}

/// [`serve`] on any byte stream (a simulation's): file ranges are copied.
pub(crate) async fn serve_stream<S: AsyncRead + AsyncWrite + Send + 'static>(
    broker: Arc<Broker>,
    stream: S,
    peer: SocketAddr,
    listener: Arc<str>,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let (reader, writer) = tokio::io::split(stream);
    serve_halves(broker, reader, writer, peer, listener, limits, shutdown).await
}

async fn serve_halves<R: AsyncRead + Send + Unpin + 'static, W: ResponseSink + Send>(
    broker: Arc<Broker>,
    reader: R,
    mut writer: W,
    peer: SocketAddr,
    listener: Arc<str>,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    debug!(%peer, "connection opened");
    let _counted = Counted::open(&broker, &listener);
    // The next frame is read by a future that owns the reader, so it
    // survives the turns of the loop that answer owed produces (a read cut
    // off mid-frame would lose the connection's place).
    let mut reading = Box::pin(read_next(reader, limits.clone()));
    let mut owed: VecDeque<Owed> = VecDeque::new();
    let close = loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break Close::Shutdown,
            response = oldest(&mut owed), if !owed.is_empty() => {
                let owed = owed.pop_front().expect("polled the oldest");
                if let Err(close) = send(&broker, &mut writer, owed.request, response, peer, &limits).await {
                    break close;
                }
            }
            (reader, frame) = &mut reading, if owed.len() < PIPELINED_PRODUCES_MAX => {
                reading = Box::pin(read_next(reader, limits.clone()));
                let frame = match frame {
                    Ok(frame) => frame,
                    Err(close) => break close,
                };
                let decoded = match decode(frame.bytes) {
                    Ok(decoded) => decoded,
                    Err(close) => break close,
                };
                let request = decoded.about();
                let handled = match decoded {
                    Decoded::Request(request) if request.api_key == ApiKey::Produce => {
                        handle_pipelined(&broker, request, peer, &listener).await
                    }
                    decoded => {
                        // Everything else is handled after the answers owed
                        // before it are out, as one at a time would.
                        if let Err(close) = pay_all(&broker, &mut owed, &mut writer, peer, &limits).await {
                            break close;
                        }
                        handlers::Handled::Now(handle_decoded(&broker, decoded, peer, &listener).await)
                    }
                };
                match handled {
                    handlers::Handled::Later(answer) => owed.push_back(Owed {
                        request,
                        answer: OwedAnswer::Waiting(answer),
                    }),
                    handlers::Handled::Now(response) => {
                        if let Err(close) = pay_all(&broker, &mut owed, &mut writer, peer, &limits).await {
                            break close;
                        }
                        if let Err(close) = send(&broker, &mut writer, request, response, peer, &limits).await {
                            break close;
                        }
                    }
                }
            }
        }
    };
    // The client stopped sending (or sent something unreadable) while
    // answers were owed: their records are in the log, so the answers
    // still go out if the socket takes them. Not after a failed write or a
    // shutdown, which would only wait again.
    let read_side = matches!(
        close,
        Close::ClientGone | Close::Idle | Close::ReadTimeout { .. } | Close::BadFrame(_)
    );
    if read_side && !owed.is_empty() {
        let _ = pay_all(&broker, &mut owed, &mut writer, peer, &limits).await;
    }
    close.log(peer, &limits);
}

/// A connection in the open-connections gauge, until it is dropped
/// however the connection ends (a panic or an abort at shutdown too).
struct Counted<'a> {
    broker: &'a Broker,
    listener: &'a str,
}

impl<'a> Counted<'a> {
    fn open(broker: &'a Broker, listener: &'a str) -> Counted<'a> {
        broker.metrics().connection(listener, 1);
        Counted { broker, listener }
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.broker.metrics().connection(self.listener, -1);
    }
}

/// The api key, version and correlation id a response answers.
#[derive(Debug, Clone, Copy)]
struct RequestId {
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    /// When its frame was decoded: request latency is counted from here
    /// to the response in the socket.
    received: tokio::time::Instant,
}

/// A produce answer the connection owes, and what it answers.
struct Owed {
    request: RequestId,
    answer: OwedAnswer,
}

type PendingAnswer =
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<handlers::Response>> + Send>>;

enum OwedAnswer {
    Waiting(PendingAnswer),
    /// Settled, waiting for the answers before it to go out.
    Ready(Box<Option<handlers::Response>>),
}

/// The oldest owed answer, once it is ready. Every owed answer is driven,
/// not just the oldest: each settles when its own writes do, so one that
/// was committed is not later seen as a lost leadership just because an
/// older one took longer.
async fn oldest(owed: &mut VecDeque<Owed>) -> Option<handlers::Response> {
    std::future::poll_fn(|cx| {
        for o in owed.iter_mut() {
            if let OwedAnswer::Waiting(answer) = &mut o.answer {
                if let std::task::Poll::Ready(response) = answer.as_mut().poll(cx) {
                    o.answer = OwedAnswer::Ready(Box::new(response));
                }
            }
        }
        match owed.front_mut() {
            Some(Owed {
                answer: OwedAnswer::Ready(response),
                ..
            }) => std::task::Poll::Ready(response.take()),
            _ => std::task::Poll::Pending,
        }
    })
    .await
}

/// Sends every owed answer, in order, driving them all as [`oldest`] does
/// (awaiting one at a time would let a later answer see a lost leadership
/// for a write that was committed while it waited).
async fn pay_all<W: ResponseSink>(
    broker: &Broker,
    owed: &mut VecDeque<Owed>,
    writer: &mut W,
    peer: SocketAddr,
    limits: &ConnectionLimits,
) -> Result<(), Close> {
    while !owed.is_empty() {
        let response = oldest(owed).await;
        let o = owed.pop_front().expect("oldest answered the front");
        send(broker, writer, o.request, response, peer, limits).await?;
    }
    Ok(())
}

async fn read_next<R: AsyncRead + Unpin>(
    mut reader: R,
    limits: ConnectionLimits,
) -> (R, Result<Frame, Close>) {
    let frame = read_frame(&mut reader, &limits).await;
    (reader, frame)
}

/// Encodes and writes one response (`None`: nothing is sent).
async fn send<W: ResponseSink>(
    broker: &Broker,
    writer: &mut W,
    request: RequestId,
    response: Option<handlers::Response>,
    peer: SocketAddr,
    limits: &ConnectionLimits,
) -> Result<(), Close> {
    let answered = || {
        let seconds = request.received.elapsed().as_secs_f64();
        broker.metrics().answered(request.api_key, seconds);
    };
    let Some(response) = response else {
        answered();
        return Ok(());
    };
    if let Some(reason) = response.close_instead {
        return Err(Close::SilentProduceFailed(reason));
    }
    let placeholders: Vec<RecordsPlaceholder> = response
        .file_ranges
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    let encoded = encode_response_spliced(
        request.api_key,
        request.version,
        request.correlation_id,
        &response.body,
        &placeholders,
    );
    let pieces = match encoded {
        Ok(pieces) => pieces,
        Err(e) => {
            // Our own response failed to encode: a bug, reported loudly.
            tracing::error!(%peer, api_key = ?request.api_key, version = request.version, error = %e, "response encoding failed");
            return Err(Close::EncodeFailed);
        }
    };
    let ranges = response.file_ranges.iter().map(|(_, slice)| slice);
    write_response(writer, &pieces, ranges, limits.idle_timeout).await?;
    answered();
    Ok(())
}

/// Reads one frame: waits up to the idle timeout for its first byte, then
/// up to the read timeout for the rest (memory waits included, so a frame
/// that cannot get memory gives up its share in bounded time).
async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limits: &ConnectionLimits,
) -> Result<Frame, Close> {
    let mut prefix = [0u8; FRAME_PREFIX_BYTES];
    match timeout(limits.idle_timeout, reader.read(&mut prefix[..1])).await {
        Err(_) => return Err(Close::Idle),
        Ok(Ok(0)) | Ok(Err(_)) => return Err(Close::ClientGone),
        Ok(Ok(_)) => {}
    }
    let mut progress = Progress {
        received: 1,
        expected: FRAME_PREFIX_BYTES,
    };
    let read = read_rest(reader, prefix, limits, &mut progress);
    match timeout(limits.request_read_timeout, read).await {
        Ok(result) => result,
        Err(_) => Err(Close::ReadTimeout {
            received: progress.received,
            expected: progress.expected,
        }),
    }
}

/// How much of the current frame has arrived, for the timeout report.
struct Progress {
    received: usize,
    expected: usize,
}

async fn read_rest<R: AsyncRead + Unpin>(
    reader: &mut R,
    mut prefix: [u8; FRAME_PREFIX_BYTES],
    limits: &ConnectionLimits,
    progress: &mut Progress,
) -> Result<Frame, Close> {
    reader
        .read_exact(&mut prefix[1..])
        .await
        .map_err(|_| Close::ClientGone)?;
    let frame_bytes = frame_length(prefix, limits.request_bytes_max)
        .map_err(|e| Close::BadFrame(e.to_string()))?;
    *progress = Progress {
        received: 0,
        expected: frame_bytes,
    };
    let mut body = Vec::with_capacity(frame_bytes.min(FRAME_CHUNK_BYTES));
    let mut memory: Option<OwnedSemaphorePermit> = None;
    while body.len() < frame_bytes {
        let chunk = (frame_bytes - body.len()).min(FRAME_CHUNK_BYTES);
        reserve_request_memory(limits, chunk, &mut memory).await;
        let mut filled = body.len();
        body.resize(filled + chunk, 0);
        while filled < body.len() {
            match reader.read(&mut body[filled..]).await {
                Ok(0) | Err(_) => return Err(Close::ClientGone),
                Ok(n) => filled += n,
            }
            progress.received = filled;
        }
    }
    Ok(Frame {
        bytes: Bytes::from(body),
        _memory: memory,
    })
}

/// Adds `chunk_bytes` to this frame's share of `queued.max.request.bytes`,
/// waiting until they fit. Memory is taken as bytes arrive, one chunk
/// ahead, so a frame that only announces a large size holds little.
async fn reserve_request_memory(
    limits: &ConnectionLimits,
    chunk_bytes: usize,
    held: &mut Option<OwnedSemaphorePermit>,
) {
    let Some(pool) = limits.request_memory.as_ref() else {
        return;
    };
    // Chunks are at most FRAME_CHUNK_BYTES, far below u32::MAX.
    let permits = chunk_bytes as u32;
    if let Ok(permit) = Arc::clone(pool).acquire_many_owned(permits).await {
        match held {
            Some(held) => held.merge(permit),
            None => *held = Some(permit),
        }
    }
}

/// Where responses go: a socket (file ranges are sent with `sendfile`) or,
/// in tests, any byte stream (file ranges are copied).
trait ResponseSink: AsyncWrite + Unpin {
    fn socket(&self) -> Option<&TcpStream>;
}

impl ResponseSink for OwnedWriteHalf {
    fn socket(&self) -> Option<&TcpStream> {
        Some(self.as_ref())
    }
}

#[cfg(test)]
impl ResponseSink for tokio::io::DuplexStream {
    fn socket(&self) -> Option<&TcpStream> {
        None
    }
}

impl<S: AsyncWrite> ResponseSink for tokio::io::WriteHalf<S> {
    fn socket(&self) -> Option<&TcpStream> {
        None
    }
}

/// Writes one response: its encoded pieces with the file ranges between
/// them. A client that does not take it within `stall_timeout` is closed.
async fn write_response<'a, W: ResponseSink>(
    writer: &mut W,
    pieces: &[Bytes],
    ranges: impl Iterator<Item = &'a ReadSlice>,
    stall_timeout: Duration,
) -> Result<(), Close> {
    let response_bytes = pieces.iter().map(Bytes::len).sum::<usize>();
    let write = async {
        let mut ranges = ranges;
        for (i, piece) in pieces.iter().enumerate() {
            writer.write_all(piece).await?;
            if i + 1 == pieces.len() {
                break;
            }
            let range = ranges
                .next()
                .ok_or_else(|| io::Error::other("missing file range"))?;
            match (writer.socket(), range.file.as_file()) {
                (Some(socket), Some(file)) => send_file_range(socket, file, range).await?,
                // Storage without an OS file (fault injection) or a test
                // stream: copy.
                _ => writer.write_all(&range.to_bytes()?).await?,
            }
        }
        Ok::<(), io::Error>(())
    };
    match timeout(stall_timeout, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Close::ClientGone),
        Err(_) => Err(Close::WriteStalled { response_bytes }),
    }
}

/// Sends a segment file range to the socket with `sendfile`: the bytes go
/// from the page cache to the socket without a copy through user space.
async fn send_file_range(
    socket: &TcpStream,
    file: &std::fs::File,
    range: &ReadSlice,
) -> io::Result<()> {
    let mut offset = range.position;
    let end = range.position + range.len as u64;
    while offset < end {
        socket.writable().await?;
        let count = (end - offset) as usize;
        let sent = socket.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(socket, file, Some(&mut offset), count).map_err(io::Error::from)
        });
        match sent {
            // The frame length already promised these bytes: a file that
            // ends early (it cannot, segments only grow while open) must
            // not leave a short frame behind.
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment file ended inside the range being sent",
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A frame decoded: a request, or an ApiVersions at a version we do not
/// speak (answered at v0, as Kafka does, so the client can pick one).
// One per frame, taken apart at once: boxing the request would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
enum Decoded {
    Request(vltava_protocol::Request),
    UnsupportedApiVersions { correlation_id: i32 },
}

impl Decoded {
    fn about(&self) -> RequestId {
        match self {
            Decoded::Request(request) => RequestId {
                api_key: request.api_key,
                version: request.api_version(),
                correlation_id: request.header.correlation_id,
                received: tokio::time::Instant::now(),
            },
            Decoded::UnsupportedApiVersions { correlation_id } => RequestId {
                api_key: ApiKey::ApiVersions,
                version: 0,
                correlation_id: *correlation_id,
                received: tokio::time::Instant::now(),
            },
        }
    }
}

/// Decodes one frame; an undecodable one closes the connection.
fn decode(frame: Bytes) -> Result<Decoded, Close> {
    match decode_request(frame) {
        Ok(request) => Ok(Decoded::Request(request)),
        Err(DecodeError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            preamble,
            ..
        }) => {
            debug!(
                version = preamble.api_version,
                "ApiVersions version unsupported; answering v0"
            );
            Ok(Decoded::UnsupportedApiVersions {
                correlation_id: preamble.correlation_id,
            })
        }
        Err(e) => Err(Close::BadFrame(e.to_string())),
    }
}

fn client_info(
    request: &vltava_protocol::Request,
    peer: SocketAddr,
    listener: &Arc<str>,
) -> handlers::ClientInfo {
    handlers::ClientInfo {
        client_id: request
            .header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        client_host: format!("/{}", peer.ip()),
        listener: listener.clone(),
    }
}

/// Handles one decoded request to its answer.
async fn handle_decoded(
    broker: &Broker,
    decoded: Decoded,
    peer: SocketAddr,
    listener: &Arc<str>,
) -> Option<handlers::Response> {
    let request = match decoded {
        Decoded::Request(request) => request,
        Decoded::UnsupportedApiVersions { .. } => {
            return Some(handlers::Response {
                body: ResponseKind::ApiVersions(handlers::unsupported_version_response()),
                file_ranges: Vec::new(),
                close_instead: None,
            })
        }
    };
    let client = client_info(&request, peer, listener);
    let about = (
        request.api_key,
        request.api_version(),
        request.header.correlation_id,
    );
    let started = std::time::Instant::now();
    let response = handlers::handle(broker, request, &client).await;
    debug!(%peer, api = ?about.0, version = about.1, client_id = %client.client_id, correlation_id = about.2,
        micros = started.elapsed().as_micros() as u64, "request answered");
    response
}

/// Handles a produce as far as appending its batches; its answer may be
/// owed while its writes wait for followers.
async fn handle_pipelined(
    broker: &Broker,
    request: vltava_protocol::Request,
    peer: SocketAddr,
    listener: &Arc<str>,
) -> handlers::Handled {
    let client = client_info(&request, peer, listener);
    handlers::handle_pipelined(broker, request, &client).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn limits(request_memory_bytes: Option<usize>) -> ConnectionLimits {
        ConnectionLimits {
            request_bytes_max: 1024,
            idle_timeout: Duration::from_secs(600),
            request_read_timeout: Duration::from_secs(30),
            request_memory: request_memory_bytes.map(|b| Arc::new(Semaphore::new(b))),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_sender_is_closed_after_the_read_timeout() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(&[0, 0, 0, 10, 1, 2]).await.unwrap();
        let limits = limits(None);
        match read_frame(&mut server, &limits).await {
            Err(Close::ReadTimeout { received, expected }) => {
                assert_eq!((received, expected), (2, 10));
            }
            other => panic!("expected a read timeout, got {:?}", other.map(|f| f.bytes)),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_idle() {
        let (_client, mut server) = tokio::io::duplex(64);
        let result = read_frame(&mut server, &limits(None)).await;
        assert!(matches!(result, Err(Close::Idle)), "{:?}", result.err());
    }

    #[tokio::test(start_paused = true)]
    async fn an_oversized_prefix_is_refused_before_reading_the_body() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client
            .write_all(&0x7fff_ffffu32.to_be_bytes())
            .await
            .unwrap();
        let result = read_frame(&mut server, &limits(None)).await;
        assert!(
            matches!(result, Err(Close::BadFrame(_))),
            "{:?}",
            result.err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn request_memory_is_held_until_the_frame_is_dropped() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let limits = limits(Some(1024));
        let memory = Arc::clone(limits.request_memory.as_ref().unwrap());
        client.write_all(&[0, 0, 0, 3, 7, 8, 9]).await.unwrap();
        let frame = read_frame(&mut server, &limits).await.ok().unwrap();
        assert_eq!(&frame.bytes[..], &[7, 8, 9]);
        assert_eq!(memory.available_permits(), 1021);
        drop(frame);
        assert_eq!(memory.available_permits(), 1024);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_reads_is_closed_after_the_idle_timeout() {
        let (_client, mut server) = tokio::io::duplex(16);
        let response = vec![0u8; 1024];
        let pieces = [Bytes::from(response)];
        let result = write_response(
            &mut server,
            &pieces,
            std::iter::empty(),
            Duration::from_secs(5),
        )
        .await;
        assert!(
            matches!(
                result,
                Err(Close::WriteStalled {
                    response_bytes: 1024
                })
            ),
            "{result:?}"
        );
    }
}
