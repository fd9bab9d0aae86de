//! One TCP connection to one broker: framing, request headers, and the
//! ApiVersions handshake that fixes which version of each API we send.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{codes, Error};

/// Largest response frame we accept; anything bigger is a broken peer.
pub const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;

/// The version range of every API this client can build and read. The
/// version actually sent is the highest one inside both this range and the
/// broker's ApiVersions answer, as the Java client does. The upper bounds
/// stop where a newer version changes the request's shape in a way this
/// client does not implement (topic ids in Fetch 13+, groups arrays in
/// OffsetFetch 8+, ...).
pub const CLIENT_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::ElectLeaders, 1, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::UnregisterBroker, 0, 0),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::FindCoordinator, 1, 4),
    (ApiKey::JoinGroup, 2, 9),
    (ApiKey::SyncGroup, 1, 5),
    (ApiKey::Heartbeat, 1, 4),
    (ApiKey::LeaveGroup, 1, 5),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::ListGroups, 1, 5),
    (ApiKey::DescribeGroups, 1, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
];

/// The client's range for `key`, if it speaks that API at all.
pub fn client_range(key: ApiKey) -> Option<(i16, i16)> {
    CLIENT_APIS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, min, max)| (min, max))
}

/// Timeouts for one connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(30),
        }
    }
}

/// A byte stream to a broker: a TCP connection, or a simulation's.
pub trait BrokerStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> BrokerStream for T {}

/// What a dial returns.
pub type Dialed<'a> =
    Pin<Box<dyn Future<Output = std::io::Result<Box<dyn BrokerStream>>> + Send + 'a>>;

/// Opens streams to brokers by `host:port`: TCP ([`TcpDialer`]) unless a
/// simulation supplies its own network.
pub trait Dialer: Send + Sync + 'static {
    fn dial<'a>(&'a self, addr: &'a str) -> Dialed<'a>;
}

/// Dials over TCP, with Nagle's algorithm off (requests are written whole).
pub struct TcpDialer;

impl Dialer for TcpDialer {
    fn dial<'a>(&'a self, addr: &'a str) -> Dialed<'a> {
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            let _ = stream.set_nodelay(true);
            Ok(Box::new(stream) as Box<dyn BrokerStream>)
        })
    }
}

/// A connection after the ApiVersions handshake. Requests go one at a time
/// (`&mut self`), which is also how Kafka brokers answer them.
///
/// A request whose future is dropped (a `select!` that took another branch,
/// an outer timeout) or that fails after it started writing leaves the
/// stream at an unknown position: part of the request may be unsent, or its
/// response unread, and the next request would read that response as its own.
/// So a connection is *broken* from the moment a request starts until its
/// whole response has been read, and a broken connection refuses every
/// later request; [`crate::Client`] replaces it with a fresh one.
pub struct Connection {
    addr: String,
    stream: Box<dyn BrokerStream>,
    client_id: StrBytes,
    timeouts: Timeouts,
    next_correlation_id: i32,
    /// The correlation id of the request whose exchange began and did not
    /// finish: set before the first byte is written, cleared after the last
    /// byte of its response is read. Never cleared otherwise.
    broken_by: Option<i32>,
    /// The broker's `(min, max)` per API key, from ApiVersions.
    broker_apis: HashMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects to `addr` (`host:port`) and negotiates API versions.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        timeouts: Timeouts,
    ) -> Result<Connection, Error> {
        Connection::connect_with(&TcpDialer, addr, client_id, timeouts).await
    }

    /// [`Connection::connect`] through `dialer`.
    pub async fn connect_with(
        dialer: &dyn Dialer,
        addr: &str,
        client_id: &str,
        timeouts: Timeouts,
    ) -> Result<Connection, Error> {
        let connect = dialer.dial(addr);
        let stream = match tokio::time::timeout(timeouts.connect, connect).await {
            Err(_) => {
                return Err(Error::Connect {
                    addr: addr.to_string(),
                    reason: format!("timed out after {} ms", timeouts.connect.as_millis()),
                })
            }
            Ok(Err(e)) => {
                return Err(Error::Connect {
                    addr: addr.to_string(),
                    reason: io_reason(&e),
                })
            }
            Ok(Ok(s)) => s,
        };
        let mut conn = Connection {
            addr: addr.to_string(),
            stream,
            client_id: StrBytes::from_string(client_id.to_string()),
            timeouts,
            next_correlation_id: 1,
            broken_by: None,
            broker_apis: HashMap::new(),
        };
        conn.handshake().await?;
        Ok(conn)
    }

    /// `host:port` this connection goes to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether a request may still be sent: false once an exchange was
    /// abandoned or failed midway (see [`Connection`]).
    pub fn is_usable(&self) -> bool {
        self.broken_by.is_none()
    }

    /// The broker's advertised `(min, max)` for every API key it listed.
    pub fn broker_apis(&self) -> &HashMap<i16, (i16, i16)> {
        &self.broker_apis
    }

    /// The highest version of `R` both sides support.
    pub fn version<R: Request>(&self) -> Result<i16, Error> {
        let key = api_key::<R>();
        let (cmin, cmax) = client_range(key).unwrap_or((R::VERSIONS.min, R::VERSIONS.max));
        let broker = self.broker_apis.get(&R::KEY).copied();
        match broker {
            Some((bmin, bmax)) if bmin.max(cmin) <= bmax.min(cmax) => Ok(bmax.min(cmax)),
            _ => Err(Error::UnsupportedVersion {
                addr: self.addr.clone(),
                api: key,
                broker: broker.map_or("none".into(), |(a, b)| format!("{a}-{b}")),
                client: format!("{cmin}-{cmax}"),
            }),
        }
    }

    /// Whether the broker implements any version of `R` that we speak.
    pub fn supports<R: Request>(&self) -> bool {
        self.version::<R>().is_ok()
    }

    /// Sends a request built for the negotiated version and waits for its
    /// response. `build` gets the version so it can fill version-specific
    /// fields.
    pub async fn request<R: Request>(
        &mut self,
        build: impl FnOnce(i16) -> R,
    ) -> Result<R::Response, Error> {
        let version = self.version::<R>()?;
        let body = build(version);
        self.request_at(&body, version).await
    }

    /// Sends `body` at exactly `version` and decodes the response.
    pub async fn request_at<R: Request>(
        &mut self,
        body: &R,
        version: i16,
    ) -> Result<R::Response, Error> {
        let mut frame = self
            .round_trip(body, version, true)
            .await?
            .unwrap_or_default();
        let response = <R::Response as Decodable>::decode(&mut frame, version).map_err(|e| {
            self.protocol(format!(
                "decoding {:?} v{version} response: {e:#}",
                api_key::<R>()
            ))
        })?;
        Ok(response)
    }

    /// Sends a request for which the broker sends no response (Produce with
    /// acks=0).
    pub async fn send_only<R: Request>(&mut self, body: &R, version: i16) -> Result<(), Error> {
        self.round_trip(body, version, false).await.map(|_| ())
    }

    async fn round_trip<R: Request>(
        &mut self,
        body: &R,
        version: i16,
        expect_response: bool,
    ) -> Result<Option<Bytes>, Error> {
        let key = api_key::<R>();
        if let Some(abandoned) = self.broken_by {
            return Err(Error::Io {
                addr: self.addr.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    format!(
                        "request {abandoned} was abandoned before its response was read; \
                         the connection cannot be reused"
                    ),
                ),
            });
        }
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::with_capacity(64);
        buf.put_i32(0);
        header
            .encode(&mut buf, key.request_header_version(version))
            .and_then(|_| body.encode(&mut buf, version))
            .map_err(|e| Error::Invalid(format!("encoding {key:?} v{version}: {e:#}")))?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        let timeout = self.timeouts.request;
        let addr = self.addr.clone();
        // Cleared only when the exchange completes below; a dropped future,
        // a timeout or an I/O error leaves it set.
        self.broken_by = Some(correlation_id);
        let io = async {
            self.stream.write_all(&buf).await?;
            if !expect_response {
                return Ok(None);
            }
            let mut len = [0u8; 4];
            self.stream.read_exact(&mut len).await?;
            let len = i32::from_be_bytes(len);
            if len < 0 || len as usize > RESPONSE_BYTES_MAX {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("response frame of {len} bytes"),
                ));
            }
            let mut frame = vec![0u8; len as usize];
            self.stream.read_exact(&mut frame).await?;
            Ok(Some(Bytes::from(frame)))
        };
        let frame = match tokio::time::timeout(timeout, io).await {
            Err(_) => {
                return Err(Error::Timeout {
                    addr,
                    api: key,
                    timeout_ms: timeout.as_millis(),
                })
            }
            Ok(Err(source)) => return Err(Error::Io { addr, source }),
            Ok(Ok(None)) => {
                self.broken_by = None;
                return Ok(None);
            }
            Ok(Ok(Some(frame))) => frame,
        };
        let mut frame = frame;
        let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
            .map_err(|e| self.protocol(format!("response header: {e:#}")))?;
        if header.correlation_id != correlation_id {
            return Err(self.protocol(format!(
                "correlation id {} in response to {correlation_id}",
                header.correlation_id
            )));
        }
        // Only a whole frame carrying our correlation id puts the stream back
        // at a request boundary; a bad header above leaves it broken.
        self.broken_by = None;
        Ok(Some(frame))
    }

    /// ApiVersions at the newest version we speak; a broker that does not
    /// know it answers with a v0 body and error UNSUPPORTED_VERSION (KIP-511),
    /// whose key list tells us what to retry with.
    async fn handshake(&mut self) -> Result<(), Error> {
        let mut version = client_range(ApiKey::ApiVersions).map_or(0, |r| r.1);
        for _ in 0..2 {
            let request = ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("vltava-client"))
                .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
            let request = if version >= 3 {
                request
            } else {
                ApiVersionsRequest::default()
            };
            let body = self
                .round_trip(&request, version, true)
                .await?
                .unwrap_or_default();
            let error_code = body.clone().try_get_i16().unwrap_or(0);
            let decode_version = if error_code == codes::UNSUPPORTED_VERSION {
                0
            } else {
                version
            };
            let mut body = body;
            let response = <kafka_protocol::messages::ApiVersionsResponse as Decodable>::decode(
                &mut body,
                decode_version,
            )
            .map_err(|e| self.protocol(format!("ApiVersions response: {e:#}")))?;
            self.broker_apis = response
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect();
            if response.error_code == 0 {
                return Ok(());
            }
            if response.error_code != codes::UNSUPPORTED_VERSION {
                return Err(crate::KafkaError::check(response.error_code, None).unwrap_err());
            }
            version = self
                .broker_apis
                .get(&(ApiKey::ApiVersions as i16))
                .map_or(0, |&(_, max)| max.min(version - 1).max(0));
        }
        Err(self.protocol("ApiVersions negotiation did not converge".into()))
    }

    fn protocol(&self, message: String) -> Error {
        Error::Protocol {
            addr: self.addr.clone(),
            message,
        }
    }
}

fn api_key<R: Request>() -> ApiKey {
    ApiKey::try_from(R::KEY).expect("generated request types have known keys")
}

/// "Connection refused" rather than "Connection refused (os error 111)".
fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}
