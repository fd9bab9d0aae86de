//! A broker for this crate's unit tests: it frames requests and responses
//! as Kafka does and leaves each answer to the test, so a test can hold a
//! response, record what it was sent or answer only a few APIs.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, MetadataResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the broker received it.
pub(crate) struct Received {
    pub key: ApiKey,
    pub version: i16,
    /// The request body, after the header.
    pub body: Bytes,
    /// The broker's own port, for answers that name it.
    pub port: u16,
}

impl Received {
    pub fn decode<M: Decodable>(&self) -> M {
        M::decode(&mut self.body.clone(), self.version).expect("request body")
    }

    /// `message` encoded at this request's version: the answer to return.
    pub fn reply(&self, message: impl Encodable) -> Bytes {
        let mut out = BytesMut::new();
        message.encode(&mut out, self.version).expect("response");
        out.freeze()
    }
}

/// Starts the broker on a free port with `answer` giving each response
/// body; returns its address and the count of connections it accepted.
pub(crate) async fn start<A, F>(answer: A) -> (String, Arc<AtomicUsize>)
where
    A: Fn(Received) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Bytes> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream, addr.port(), answer.clone()));
        }
    });
    (addr.to_string(), accepted)
}

async fn serve<A, F>(mut stream: TcpStream, port: u16, answer: A)
where
    A: Fn(Received) -> F,
    F: Future<Output = Bytes>,
{
    loop {
        let mut len = [0u8; 4];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut frame = vec![0u8; i32::from_be_bytes(len) as usize];
        stream.read_exact(&mut frame).await.unwrap();
        let mut frame = Bytes::from(frame);
        let key = ApiKey::try_from(frame.clone().get_i16()).unwrap();
        let version = frame.clone().slice(2..).get_i16();
        let header =
            RequestHeader::decode(&mut frame, key.request_header_version(version)).unwrap();
        let body = answer(Received {
            key,
            version,
            body: frame,
            port,
        })
        .await;
        let mut out = BytesMut::new();
        out.put_i32(0);
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut out, key.response_header_version(version))
            .unwrap();
        out.extend_from_slice(&body);
        let n = (out.len() - 4) as i32;
        out[..4].copy_from_slice(&n.to_be_bytes());
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// ApiVersions naming these (key, min, max).
pub(crate) fn api_versions(keys: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(
        keys.iter()
            .map(|&(k, min, max)| {
                ApiVersion::default()
                    .with_api_key(k as i16)
                    .with_min_version(min)
                    .with_max_version(max)
            })
            .collect(),
    )
}

/// Metadata naming this broker as node 1 and the controller.
pub(crate) fn metadata(port: u16) -> MetadataResponse {
    MetadataResponse::default()
        .with_controller_id(BrokerId(1))
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(1))
            .with_host(StrBytes::from_static_str("127.0.0.1"))
            .with_port(i32::from(port))])
}
