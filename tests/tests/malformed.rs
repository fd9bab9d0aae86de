//! Bad input never takes the broker down. Each case runs on its own
//! connection while a second, healthy connection keeps getting correct
//! Metadata responses; request-level mistakes get the error code the Java
//! broker returns, undecodable frames get the connection closed.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::Compression;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use vltava_tests::raw::{
    encode_batch, PeerReaction, ProducerStamp, RawClient, TestRecord, LATEST_TIMESTAMP,
};
use vltava_tests::TestBroker;

const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const INVALID_PARTITIONS: i16 = 37;

/// How long the broker has to close a connection it cannot decode.
const CLOSE_DEADLINE: Duration = Duration::from_secs(10);

struct Fixture {
    broker: TestBroker,
    healthy: RawClient,
}

impl Fixture {
    fn start() -> Fixture {
        let broker = TestBroker::start(&[
            ("message.max.bytes", "1000"),
            ("auto.create.topics.enable", "false"),
        ]);
        let healthy = RawClient::connect(broker.addr()).unwrap();
        let mut f = Fixture { broker, healthy };
        f.check_healthy("startup");
        f
    }

    fn connect(&self) -> RawClient {
        RawClient::connect(self.broker.addr()).unwrap()
    }

    /// The broker is alive and the long-lived connection still gets a
    /// correct Metadata response.
    fn check_healthy(&mut self, after: &str) {
        self.broker.assert_running();
        let md = self
            .healthy
            .metadata(None)
            .unwrap_or_else(|e| panic!("healthy connection broken after {after}: {e:#}"));
        assert_eq!(md.brokers.len(), 1, "after {after}: {md:?}");
        assert_eq!(md.brokers[0].node_id.0, 1, "after {after}");
        assert_eq!(md.brokers[0].host.as_str(), "127.0.0.1", "after {after}");
        assert_eq!(
            md.brokers[0].port,
            i32::from(self.broker.port()),
            "after {after}"
        );
        // A fresh connection works too.
        let mut fresh = self.connect();
        fresh
            .metadata(None)
            .unwrap_or_else(|e| panic!("new connection refused after {after}: {e:#}"));
    }

    fn assert_closes(&self, client: &mut RawClient, what: &str) {
        assert!(
            client.closed_within(CLOSE_DEADLINE),
            "connection not closed within {CLOSE_DEADLINE:?} after {what}"
        );
    }
}

/// A request header for `key`/`version`, encoded at its header version.
fn header_bytes(key: ApiKey, version: i16, correlation_id: i32) -> BytesMut {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("malformed")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    buf
}

#[test]
fn garbage_frames_close_only_their_connection() {
    let mut f = Fixture::start();
    let mut rng = StdRng::seed_from_u64(0x766c_7461_7661);

    // 1. Several kilobytes of random bytes, then the client goes away.
    {
        let mut c = f.connect();
        let mut junk = vec![0u8; 8 * 1024];
        rng.fill_bytes(&mut junk);
        // The broker may close before reading everything; a failed write is fine.
        let _ = c.send_raw(&junk);
        // The random length prefix is either absurd (the broker must close)
        // or plausible (the broker waits for the rest); either way it must
        // never answer with anything but a close.
        match c.await_reaction(Duration::from_secs(2)) {
            PeerReaction::Closed | PeerReaction::Silent => {}
            PeerReaction::Data(d) => panic!("broker answered random bytes with {} bytes", d.len()),
        }
    }
    f.check_healthy("8 KiB of random bytes");

    // 2. Complete frames with a correct length and random contents: the
    // broker has the whole request, so it must answer or close, not hang.
    for i in 0..20 {
        let mut c = f.connect();
        let len = rng.random_range(1..2048usize);
        let mut body = vec![0u8; len];
        rng.fill_bytes(&mut body);
        let is_produce = len >= 2 && body[0] == 0 && body[1] == 0;
        let _ = c.send_frame(&body);
        let reaction = c.await_reaction(Duration::from_secs(5));
        if reaction == PeerReaction::Silent && !is_produce {
            panic!("random frame #{i} ({len} bytes, key bytes {:02x}{:02x}) got neither a response nor a close", body[0], body.get(1).copied().unwrap_or(0));
        }
    }
    f.check_healthy("20 random complete frames");

    // 3. A truncated frame: length 100, 10 bytes, close.
    {
        let mut c = f.connect();
        let mut bytes = Vec::new();
        bytes.put_i32(100);
        bytes.extend_from_slice(&[0u8, 3, 0, 12, 0, 0, 0, 1, 0, 0]);
        c.send_raw(&bytes).unwrap();
        c.stream().shutdown(std::net::Shutdown::Write).unwrap();
        // Half-closed: the broker sees EOF mid-frame and must close its side.
        f.assert_closes(&mut c, "a truncated frame followed by EOF");
    }
    f.check_healthy("a truncated frame");

    // 4. A length prefix of 2^31-1: closed without reading (or allocating) it.
    let rss_before = f.broker.rss_kib();
    {
        let mut c = f.connect();
        let mut bytes = Vec::new();
        bytes.put_i32(i32::MAX);
        bytes.extend_from_slice(&header_bytes(ApiKey::Metadata, 12, 1));
        let _ = c.send_raw(&bytes);
        f.assert_closes(&mut c, "a 2^31-1 length prefix");
    }
    f.check_healthy("a 2^31-1 length prefix");
    if let (Some(before), Some(after)) = (rss_before, f.broker.rss_kib()) {
        assert!(
            after < before + 256 * 1024,
            "broker RSS grew from {before} KiB to {after} KiB after a 2 GiB length prefix"
        );
    }

    // 5. Negative length prefixes.
    for len in [-1i32, i32::MIN] {
        let mut c = f.connect();
        let mut bytes = Vec::new();
        bytes.put_i32(len);
        bytes.extend_from_slice(&[0u8; 12]);
        let _ = c.send_raw(&bytes);
        f.assert_closes(&mut c, &format!("length prefix {len}"));
        f.check_healthy(&format!("length prefix {len}"));
    }

    // 6. A zero-length frame carries no header at all.
    {
        let mut c = f.connect();
        c.send_raw(&[0, 0, 0, 0]).unwrap();
        f.assert_closes(&mut c, "a zero-length frame");
    }
    f.check_healthy("a zero-length frame");
}

#[test]
fn metadata_with_impossible_array_lengths() {
    let mut f = Fixture::start();

    // Metadata v4 (classic encoding): topics array length is an INT32 where
    // -1 means "all topics"; -2 and 0x7fffffff with no elements are invalid.
    for (what, len) in [
        ("-2", -2i32),
        ("0x7fffffff", i32::MAX),
        ("i32::MIN", i32::MIN),
    ] {
        let mut c = f.connect();
        let mut payload = header_bytes(ApiKey::Metadata, 4, 99);
        payload.put_i32(len);
        payload.put_u8(1); // allow_auto_topic_creation
        c.send_frame(&payload).unwrap();
        expect_close_or_response(&mut c, &format!("Metadata v4 topics length {what}"));
        f.check_healthy(&format!("Metadata v4 topics length {what}"));
    }

    // Metadata v12 (flexible): a compact array length is an unsigned varint
    // N+1; claim 2^32-2 elements with nothing after it.
    {
        let mut c = f.connect();
        let mut payload = header_bytes(ApiKey::Metadata, 12, 100);
        payload.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        payload.put_u8(0); // allow_auto_topic_creation
        payload.put_u8(0); // include_topic_authorized_operations
        payload.put_u8(0); // tagged fields
        c.send_frame(&payload).unwrap();
        expect_close_or_response(&mut c, "Metadata v12 compact topics length 2^32-2");
    }
    f.check_healthy("Metadata v12 with a huge compact array");

    // A topic name whose length runs past the end of the frame.
    {
        let mut c = f.connect();
        let mut payload = header_bytes(ApiKey::Metadata, 4, 101);
        payload.put_i32(1);
        payload.put_i16(i16::MAX);
        payload.extend_from_slice(b"short");
        c.send_frame(&payload).unwrap();
        expect_close_or_response(&mut c, "Metadata v4 with an overlong topic name");
    }
    f.check_healthy("a topic name longer than the frame");
}

/// For an undecodable request the Java broker closes the connection; an
/// error response is acceptable too, but silence (a hung connection) is not.
fn expect_close_or_response(c: &mut RawClient, what: &str) {
    match c.await_reaction(CLOSE_DEADLINE) {
        PeerReaction::Closed => {}
        PeerReaction::Data(d) => {
            assert!(
                d.len() >= 8,
                "{what}: partial response of {} bytes",
                d.len()
            );
            let correlation = i32::from_be_bytes([d[4], d[5], d[6], d[7]]);
            println!(
                "note: {what}: broker answered (correlation id {correlation}) instead of closing"
            );
        }
        PeerReaction::Silent => {
            panic!("{what}: neither a response nor a close within {CLOSE_DEADLINE:?}")
        }
    }
}

#[test]
fn produce_validation_errors() {
    let mut f = Fixture::start();
    let mut c = f.connect();
    assert_eq!(c.create_topic_code("mal", 1).unwrap(), 0);

    // A good small batch lands at offset 0.
    let good = encode_batch(
        &[TestRecord::kv("k", "v")],
        ProducerStamp::NONE,
        Compression::None,
    );
    let resp = c.produce("mal", 0, good.clone(), -1).unwrap();
    assert_eq!(resp.error_code, 0, "good batch: {resp:?}");
    assert_eq!(resp.base_offset, 0);

    // Wrong CRC: flip the last byte of the records (covered by the CRC).
    let mut bad = good.to_vec();
    *bad.last_mut().unwrap() ^= 0x5a;
    let resp = c.produce("mal", 0, bad.into(), -1).unwrap();
    assert_eq!(resp.error_code, CORRUPT_MESSAGE, "bad CRC: {resp:?}");
    f.check_healthy("a batch with a bad CRC");

    // A CRC field that is simply wrong (bytes 17..21 of the batch).
    let mut bad = good.to_vec();
    bad[17] ^= 0xff;
    let resp = c.produce("mal", 0, bad.into(), -1).unwrap();
    assert_eq!(resp.error_code, CORRUPT_MESSAGE, "bad CRC field: {resp:?}");

    // A batch larger than message.max.bytes=1000.
    let big_value = "x".repeat(2000);
    let big = encode_batch(
        &[TestRecord::kv("k", &big_value)],
        ProducerStamp::NONE,
        Compression::None,
    );
    assert!(big.len() > 1000);
    let resp = c.produce("mal", 0, big, -1).unwrap();
    assert_eq!(
        resp.error_code, MESSAGE_TOO_LARGE,
        "oversized batch: {resp:?}"
    );
    f.check_healthy("an oversized batch");

    // None of the rejected batches reached the log.
    let end = c.list_offset("mal", 0, LATEST_TIMESTAMP).unwrap();
    assert_eq!(end.error_code, 0);
    assert_eq!(end.offset, 1, "rejected batches were appended");
    let fetched = c.fetch("mal", 0, 0).unwrap();
    assert_eq!(fetched.error_code, 0);
    let batches = vltava_tests::raw::decode_batches(&fetched.records.clone().unwrap_or_default());
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].records.len(), 1);
    assert_eq!(batches[0].records[0].value.as_deref(), Some(&b"v"[..]));

    // Unknown topic with auto-creation off, and an unknown partition.
    let resp = c.produce("no-such-topic", 0, good.clone(), -1).unwrap();
    assert_eq!(
        resp.error_code, UNKNOWN_TOPIC_OR_PARTITION,
        "unknown topic: {resp:?}"
    );
    let resp = c.produce("mal", 7, good.clone(), -1).unwrap();
    assert_eq!(
        resp.error_code, UNKNOWN_TOPIC_OR_PARTITION,
        "unknown partition: {resp:?}"
    );
    let md = c.metadata(Some(&["no-such-topic"])).unwrap();
    assert_eq!(md.topics.len(), 1);
    assert_eq!(
        md.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION,
        "topic was auto-created"
    );

    f.check_healthy("produce validation errors");
}

#[test]
fn create_topics_validation_errors() {
    let mut f = Fixture::start();
    let mut c = f.connect();

    for name in ["bad name!", "..", ".", "", "slash/name", &"x".repeat(250)] {
        let code = c.create_topic_code(name, 1).unwrap();
        assert_eq!(code, INVALID_TOPIC_EXCEPTION, "topic name {name:?}");
    }
    assert_eq!(
        c.create_topic_code("zero-partitions", 0).unwrap(),
        INVALID_PARTITIONS
    );
    assert_eq!(
        c.create_topic_code("negative-partitions", -5).unwrap(),
        INVALID_PARTITIONS
    );

    // None of them exist afterwards.
    let md = c.metadata(None).unwrap();
    let names: Vec<_> = md
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .filter(|n| !n.starts_with("__"))
        .collect();
    assert!(
        names.is_empty(),
        "invalid creates left topics behind: {names:?}"
    );

    // A valid name at the 249-character limit works.
    let longest = "y".repeat(249);
    assert_eq!(c.create_topic_code(&longest, 1).unwrap(), 0);
    f.check_healthy("create topics validation");
    drop(c);
    f.broker.assert_running();
}
