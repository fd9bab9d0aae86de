//! A minimal blocking Kafka client over `std::net::TcpStream` for
//! protocol-level tests: requests are `kafka-protocol` message types encoded
//! at an explicit version, responses are read one length-prefixed frame at a
//! time and decoded with the response header version that
//! `ApiKey::response_header_version` gives. It can also send arbitrary bytes,
//! which is what the malformed-input tests need.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, RecordSet,
    TimestampType,
};

/// Read timeout for a response; a broker that takes longer is treated as hung.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(15);

/// The client id every raw request carries.
pub const CLIENT_ID: &str = "vltava-tests-raw";

/// What happened when we waited for the peer to close a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum PeerReaction {
    /// The read returned 0 bytes or a reset/broken-pipe error.
    Closed,
    /// A complete or partial frame arrived (its bytes, up to 64 KiB).
    Data(Vec<u8>),
    /// Nothing happened before the deadline.
    Silent,
}

/// One TCP connection speaking the Kafka protocol.
pub struct RawClient {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl RawClient {
    /// Connects to `addr` (no handshake is sent).
    pub fn connect(addr: SocketAddr) -> Result<RawClient> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("connect {addr}"))?;
        stream.set_read_timeout(Some(RESPONSE_TIMEOUT))?;
        stream.set_write_timeout(Some(RESPONSE_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(RawClient {
            stream,
            next_correlation_id: 1,
        })
    }

    /// The underlying stream (to shut it down or tune timeouts).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Encodes `header` (at the header version for its key/version) followed
    /// by `body` at that version, without the length prefix.
    pub fn encode_request<R: Request>(header: &RequestHeader, body: &R) -> Result<BytesMut> {
        let key = ApiKey::try_from(header.request_api_key)
            .map_err(|_| anyhow::anyhow!("unknown api key {}", header.request_api_key))?;
        let header_version = key.request_header_version(header.request_api_version);
        let mut buf = BytesMut::new();
        header.encode(&mut buf, header_version)?;
        body.encode(&mut buf, header.request_api_version)?;
        Ok(buf)
    }

    /// A request header for `R` at `version` with a fresh correlation id.
    pub fn header<R: Request>(&mut self, version: i16) -> RequestHeader {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)))
    }

    /// Sends one request and returns its correlation id.
    pub fn send<R: Request>(&mut self, body: &R, version: i16) -> Result<i32> {
        let header = self.header::<R>(version);
        let payload = Self::encode_request(&header, body)?;
        self.send_frame(&payload)?;
        Ok(header.correlation_id)
    }

    /// Reads one response frame for `R` at `version` and checks its
    /// correlation id.
    pub fn receive<R: Request>(
        &mut self,
        version: i16,
        correlation_id: i32,
    ) -> Result<R::Response> {
        let mut frame = self
            .read_frame()?
            .context("connection closed before the response arrived")?;
        let key = ApiKey::try_from(R::KEY).expect("request type has a known key");
        let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))?;
        ensure!(
            header.correlation_id == correlation_id,
            "correlation id {} in response, expected {correlation_id}",
            header.correlation_id
        );
        let response = <R::Response as Decodable>::decode(&mut frame, version)
            .with_context(|| format!("decode {key:?} v{version} response"))?;
        ensure!(
            !frame.has_remaining(),
            "{} trailing bytes after {key:?} v{version} response",
            frame.remaining()
        );
        Ok(response)
    }

    /// Sends `body` at `version` and waits for its response.
    pub fn request<R: Request>(&mut self, body: &R, version: i16) -> Result<R::Response> {
        let correlation_id = self.send(body, version)?;
        self.receive::<R>(version, correlation_id)
    }

    /// Writes a 4-byte big-endian length followed by `payload`.
    pub fn send_frame(&mut self, payload: &[u8]) -> Result<()> {
        let mut buf = Vec::with_capacity(payload.len() + 4);
        buf.put_i32(payload.len() as i32);
        buf.extend_from_slice(payload);
        self.stream.write_all(&buf)?;
        Ok(())
    }

    /// Writes raw bytes with no framing at all.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// Reads one length-prefixed frame; `Ok(None)` on a clean EOF before the
    /// length prefix.
    pub fn read_frame(&mut self) -> Result<Option<Bytes>> {
        let mut len = [0u8; 4];
        match self.stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e).context("read response length"),
        }
        let len = i32::from_be_bytes(len);
        if !(0..=256 * 1024 * 1024).contains(&len) {
            bail!("response frame length {len} is out of range");
        }
        let mut payload = vec![0u8; len as usize];
        self.stream
            .read_exact(&mut payload)
            .context("read response payload")?;
        Ok(Some(Bytes::from(payload)))
    }

    /// Waits up to `timeout` for the peer to either close the connection or
    /// send something.
    pub fn await_reaction(&mut self, timeout: Duration) -> PeerReaction {
        let reaction = self.await_reaction_inner(timeout);
        // Polling shortened the read timeout; restore it for later requests.
        let _ = self.stream.set_read_timeout(Some(RESPONSE_TIMEOUT));
        reaction
    }

    fn await_reaction_inner(&mut self, timeout: Duration) -> PeerReaction {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return if got.is_empty() {
                    PeerReaction::Silent
                } else {
                    PeerReaction::Data(got)
                };
            }
            self.stream
                .set_read_timeout(Some(left.min(Duration::from_millis(200))))
                .expect("set_read_timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    return if got.is_empty() {
                        PeerReaction::Closed
                    } else {
                        PeerReaction::Data(got)
                    }
                }
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.len() >= 64 * 1024 {
                        return PeerReaction::Data(got);
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    // A frame that has fully arrived is a reaction; keep
                    // reading only while it is incomplete.
                    if got.len() >= 4 {
                        let len = i32::from_be_bytes([got[0], got[1], got[2], got[3]]);
                        if len >= 0 && got.len() >= 4 + len as usize {
                            return PeerReaction::Data(got);
                        }
                    }
                }
                Err(_) => return PeerReaction::Closed,
            }
        }
    }

    /// True if the peer closes the connection (EOF or reset) within
    /// `timeout`, after discarding anything it sends first.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.await_reaction(left) {
                PeerReaction::Closed => return true,
                PeerReaction::Data(_) => continue,
                PeerReaction::Silent => return false,
            }
        }
    }
}

/// One record for [`encode_batch`].
#[derive(Clone, Debug)]
pub struct TestRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub timestamp_ms: i64,
    pub headers: Vec<(String, Option<Bytes>)>,
}

impl TestRecord {
    /// A record with a key and value and the current time.
    pub fn kv(key: &str, value: &str) -> TestRecord {
        TestRecord {
            key: Some(Bytes::copy_from_slice(key.as_bytes())),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            timestamp_ms: crate::now_ms(),
            headers: Vec::new(),
        }
    }

    /// A record with only a value, at `timestamp_ms`.
    pub fn value_at(value: &[u8], timestamp_ms: i64) -> TestRecord {
        TestRecord {
            key: None,
            value: Some(Bytes::copy_from_slice(value)),
            timestamp_ms,
            headers: Vec::new(),
        }
    }
}

/// Producer identity stamped into a batch (`-1`s for a plain producer).
#[derive(Clone, Copy, Debug)]
pub struct ProducerStamp {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl ProducerStamp {
    /// No producer id, epoch or sequence.
    pub const NONE: ProducerStamp = ProducerStamp {
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    };
}

/// Encodes `records` as one v2 record batch with base offset 0.
pub fn encode_batch(
    records: &[TestRecord],
    stamp: ProducerStamp,
    compression: Compression,
) -> Bytes {
    assert!(!records.is_empty(), "a batch needs at least one record");
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: stamp.producer_id,
            producer_epoch: stamp.producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever `offset - sequence`
            // changes, so unsequenced records count up from -1 too: the
            // header's base sequence (the first record's) stays -1, and
            // records carry no sequence of their own.
            sequence: if stamp.base_sequence < 0 {
                i as i32 - 1
            } else {
                stamp.base_sequence + i as i32
            },
            timestamp: r.timestamp_ms,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                .collect::<IndexMap<_, _>>(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode record batch");
    buf.freeze()
}

/// Decodes every batch in a fetched record set.
pub fn decode_batches(records: &Bytes) -> Vec<RecordSet> {
    let mut buf = records.clone();
    RecordBatchDecoder::decode_all(&mut buf).expect("decode fetched record batches")
}

// ---------------------------------------------------------------------------
// Typed helpers for the requests the tests send most. The versions are ones
// a Kafka 4.x broker supports; the api_versions test checks they are
// advertised.

use kafka_protocol::messages::{
    create_topics_request::{CreatableTopic, CreatableTopicConfig},
    fetch_request::{FetchPartition, FetchTopic},
    fetch_response::PartitionData,
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    list_offsets_response::ListOffsetsPartitionResponse,
    metadata_request::MetadataRequestTopic,
    produce_request::{PartitionProduceData, TopicProduceData},
    produce_response::PartitionProduceResponse,
    BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, ListOffsetsRequest,
    MetadataRequest, MetadataResponse, ProduceRequest, TopicName,
};

pub const METADATA_VERSION: i16 = 12;
pub const PRODUCE_VERSION: i16 = 9;
pub const FETCH_VERSION: i16 = 12;
pub const LIST_OFFSETS_VERSION: i16 = 7;
pub const CREATE_TOPICS_VERSION: i16 = 5;
pub const INIT_PRODUCER_ID_VERSION: i16 = 4;

/// ListOffsets timestamp meaning "log end offset".
pub const LATEST_TIMESTAMP: i64 = -1;
/// ListOffsets timestamp meaning "log start offset".
pub const EARLIEST_TIMESTAMP: i64 = -2;

/// A `TopicName` from a `&str`.
pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

impl RawClient {
    /// Metadata for the named topics (`None`: all topics), never auto-creating.
    pub fn metadata(&mut self, topics: Option<&[&str]>) -> Result<MetadataResponse> {
        let topics = topics.map(|names| {
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect()
        });
        let req = MetadataRequest::default()
            .with_topics(topics)
            .with_allow_auto_topic_creation(false);
        self.request(&req, METADATA_VERSION)
    }

    /// Metadata for the named topics at `version` (4+ never auto-creates;
    /// below 4 the broker's setting decides).
    pub fn metadata_at(&mut self, topics: &[&str], version: i16) -> Result<MetadataResponse> {
        let topics = topics
            .iter()
            .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
            .collect();
        let mut req = MetadataRequest::default().with_topics(Some(topics));
        if version >= 4 {
            req = req.with_allow_auto_topic_creation(false);
        }
        self.request(&req, version)
    }

    /// CreateTopics for one topic; returns the whole response.
    pub fn create_topic(
        &mut self,
        name: &str,
        num_partitions: i32,
        configs: &[(&str, &str)],
        validate_only: bool,
    ) -> Result<CreateTopicsResponse> {
        let topic = CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(num_partitions)
            .with_replication_factor(-1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            );
        let req = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(30_000)
            .with_validate_only(validate_only);
        self.request(&req, CREATE_TOPICS_VERSION)
    }

    /// CreateTopics for one topic, returning its error code.
    pub fn create_topic_code(&mut self, name: &str, num_partitions: i32) -> Result<i16> {
        let resp = self.create_topic(name, num_partitions, &[], false)?;
        ensure!(
            resp.topics.len() == 1,
            "expected one topic result: {resp:?}"
        );
        Ok(resp.topics[0].error_code)
    }

    /// Produces one record set to one partition and returns that partition's
    /// response.
    pub fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        records: Bytes,
        acks: i16,
    ) -> Result<PartitionProduceResponse> {
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records))])]);
        let resp = self.request(&req, PRODUCE_VERSION)?;
        ensure!(resp.responses.len() == 1, "expected one topic: {resp:?}");
        let topic_resp = &resp.responses[0];
        ensure!(
            topic_resp.name.0.as_str() == topic,
            "response for topic {:?}, expected {topic}",
            topic_resp.name
        );
        ensure!(
            topic_resp.partition_responses.len() == 1,
            "expected one partition: {resp:?}"
        );
        Ok(topic_resp.partition_responses[0].clone())
    }

    /// Produces `records` as one plain batch with acks=-1 and asserts that
    /// the partition accepted it.
    pub fn produce_ok(&mut self, topic: &str, partition: i32, records: &[TestRecord]) {
        let batch = encode_batch(records, ProducerStamp::NONE, Compression::None);
        let resp = self
            .produce(topic, partition, batch, -1)
            .expect("produce request");
        assert_eq!(
            resp.error_code, 0,
            "produce to {topic}-{partition}: {resp:?}"
        );
    }

    /// ListOffsets for one partition at `timestamp` (or LATEST/EARLIEST).
    pub fn list_offset(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<ListOffsetsPartitionResponse> {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp)])]);
        let resp = self.request(&req, LIST_OFFSETS_VERSION)?;
        ensure!(
            resp.topics.len() == 1 && resp.topics[0].partitions.len() == 1,
            "expected one partition: {resp:?}"
        );
        Ok(resp.topics[0].partitions[0].clone())
    }

    /// Fetches one partition from `offset` without waiting.
    pub fn fetch(&mut self, topic: &str, partition: i32, offset: i64) -> Result<PartitionData> {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(16 * 1024 * 1024)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_current_leader_epoch(-1)
                    .with_fetch_offset(offset)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(8 * 1024 * 1024)])]);
        let resp = self.request(&req, FETCH_VERSION)?;
        ensure!(
            resp.error_code == 0,
            "fetch top-level error {}",
            resp.error_code
        );
        ensure!(
            resp.responses.len() == 1 && resp.responses[0].partitions.len() == 1,
            "expected one partition: {resp:?}"
        );
        Ok(resp.responses[0].partitions[0].clone())
    }
}
