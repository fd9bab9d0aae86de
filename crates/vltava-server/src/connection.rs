//! One client connection: frames in, responses out, in order.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use vltava_broker::handlers;
use vltava_broker::Broker;
use vltava_protocol::{
    decode_request, encode_response, frame_length, ApiKey, DecodeError, ResponseKind,
    FRAME_PREFIX_BYTES,
};

/// Socket read buffer; frames larger than this are read in pieces.
const READ_BUFFER_BYTES: usize = 64 * 1024;

pub async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    debug!(%peer, "connection opened");
    let (reader, writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, reader);
    let mut writer = BufWriter::new(writer);
    let request_bytes_max = broker.config.socket_request_max_bytes;
    loop {
        let mut prefix = [0u8; FRAME_PREFIX_BYTES];
        let read = tokio::select! {
            _ = shutdown.cancelled() => break,
            read = reader.read_exact(&mut prefix) => read,
        };
        if read.is_err() {
            break; // the client went away
        }
        let frame_bytes = match frame_length(prefix, request_bytes_max) {
            Ok(n) => n,
            Err(e) => {
                warn!(%peer, error = %e, "closing connection");
                break;
            }
        };
        // Grow the buffer as bytes arrive rather than trusting the prefix
        // with an allocation up front.
        let mut frame = Vec::with_capacity(frame_bytes.min(READ_BUFFER_BYTES));
        match (&mut reader)
            .take(frame_bytes as u64)
            .read_to_end(&mut frame)
            .await
        {
            Ok(n) if n == frame_bytes => {}
            _ => {
                debug!(%peer, "connection closed mid-frame");
                break;
            }
        }
        let Some((api_key, version, correlation_id, response)) =
            respond(&broker, Bytes::from(frame), peer).await
        else {
            break;
        };
        let Some(response) = response else { continue };
        let encoded = match encode_response(api_key, version, correlation_id, &response) {
            Ok(bytes) => bytes,
            Err(e) => {
                // Our own response failed to encode: a bug, reported loudly.
                tracing::error!(%peer, ?api_key, version, error = %e, "response encoding failed");
                break;
            }
        };
        if writer.write_all(&encoded).await.is_err() || writer.flush().await.is_err() {
            break;
        }
    }
    debug!(%peer, "connection closed");
}

type Answer = (ApiKey, i16, i32, Option<ResponseKind>);

/// Decodes and handles one frame. `None` means the connection must close.
async fn respond(broker: &Broker, frame: Bytes, peer: SocketAddr) -> Option<Answer> {
    match decode_request(frame) {
        Ok(request) => {
            let api_key = request.api_key;
            let version = request.api_version();
            let correlation_id = request.header.correlation_id;
            let client = handlers::ClientInfo {
                client_id: request
                    .header
                    .client_id
                    .as_ref()
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                client_host: format!("/{}", peer.ip()),
            };
            let response = handlers::handle(broker, request, &client).await;
            Some((api_key, version, correlation_id, response))
        }
        Err(DecodeError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            preamble,
            ..
        }) => {
            debug!(%peer, version = preamble.api_version, "ApiVersions version unsupported; answering v0");
            let response = ResponseKind::ApiVersions(handlers::unsupported_version_response());
            Some((
                ApiKey::ApiVersions,
                0,
                preamble.correlation_id,
                Some(response),
            ))
        }
        Err(e) => {
            warn!(%peer, error = %e, "closing connection");
            None
        }
    }
}
