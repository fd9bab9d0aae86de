//! ApiVersions negotiation at the byte level, as the Java broker does it:
//! a v3 request (flexible header v2) lists the supported ranges; an
//! ApiVersions request at an unknown version gets a v0 response with
//! UNSUPPORTED_VERSION and the full list (KIP-511); an unknown or unadvertised
//! API key closes that connection and nothing else.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use vltava_tests::raw::{self, RawClient};
use vltava_tests::TestBroker;

const UNSUPPORTED_VERSION: i16 = 35;

fn api_versions_v3(client: &mut RawClient) -> ApiVersionsResponse {
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("vltava-tests"))
        .with_client_software_version(StrBytes::from_static_str("0.1.0"));
    client.request(&req, 3).expect("ApiVersions v3")
}

fn ranges(resp: &ApiVersionsResponse) -> BTreeMap<i16, (i16, i16)> {
    let mut map = BTreeMap::new();
    for k in &resp.api_keys {
        assert!(
            map.insert(k.api_key, (k.min_version, k.max_version))
                .is_none(),
            "api key {} listed twice",
            k.api_key
        );
        assert!(
            k.min_version <= k.max_version,
            "api key {} has min {} > max {}",
            k.api_key,
            k.min_version,
            k.max_version
        );
    }
    map
}

fn assert_covers(map: &BTreeMap<i16, (i16, i16)>, key: ApiKey, min: i16, max: i16) {
    let (lo, hi) = *map
        .get(&(key as i16))
        .unwrap_or_else(|| panic!("{key:?} is not advertised: {map:?}"));
    assert!(
        lo <= min && hi >= max,
        "{key:?} advertises {lo}..={hi}, expected it to cover {min}..={max}"
    );
}

#[test]
fn api_versions_v3_lists_core_apis() {
    let broker = TestBroker::start(&[]);
    let mut client = RawClient::connect(broker.addr()).unwrap();
    let resp = api_versions_v3(&mut client);
    assert_eq!(resp.error_code, 0);
    let map = ranges(&resp);

    let (lo, hi) = map[&(ApiKey::ApiVersions as i16)];
    assert_eq!(lo, 0, "ApiVersions must support v0 (KIP-511 fallback)");
    assert!(hi >= 4, "ApiVersions max {hi} < 4");
    assert_covers(&map, ApiKey::Produce, 3, 11);
    assert_covers(&map, ApiKey::Fetch, 4, 16);
    assert_covers(&map, ApiKey::Metadata, 0, 12);

    // The versions the raw helpers use must be advertised.
    assert_covers(
        &map,
        ApiKey::Produce,
        raw::PRODUCE_VERSION,
        raw::PRODUCE_VERSION,
    );
    assert_covers(&map, ApiKey::Fetch, raw::FETCH_VERSION, raw::FETCH_VERSION);
    assert_covers(
        &map,
        ApiKey::ListOffsets,
        raw::LIST_OFFSETS_VERSION,
        raw::LIST_OFFSETS_VERSION,
    );
    assert_covers(
        &map,
        ApiKey::CreateTopics,
        raw::CREATE_TOPICS_VERSION,
        raw::CREATE_TOPICS_VERSION,
    );
    assert_covers(
        &map,
        ApiKey::InitProducerId,
        raw::INIT_PRODUCER_ID_VERSION,
        raw::INIT_PRODUCER_ID_VERSION,
    );

    // Every advertised key is a real Kafka API and the advertised maximum is
    // one this protocol library (and so the broker's decoder) knows.
    for (&key, &(lo, hi)) in &map {
        let api =
            ApiKey::try_from(key).unwrap_or_else(|_| panic!("unknown api key {key} advertised"));
        let valid = api.valid_versions();
        assert!(
            lo >= valid.min && hi <= valid.max,
            "{api:?} advertises {lo}..={hi} outside the protocol's {}..={}",
            valid.min,
            valid.max
        );
    }

    // The same connection keeps working after the handshake.
    let md = client.metadata(None).expect("metadata after ApiVersions");
    assert_eq!(md.brokers.len(), 1);
    assert_eq!(md.brokers[0].node_id.0, 1);
    assert_eq!(md.brokers[0].port, i32::from(broker.port()));
}

#[test]
fn api_versions_unknown_version_gets_v0_error_response() {
    let broker = TestBroker::start(&[]);
    let mut client = RawClient::connect(broker.addr()).unwrap();

    // A client newer than the broker sends ApiVersions v127; the Java broker
    // parses header v2, ignores the body and answers in v0 with error 35.
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(127)
        .with_correlation_id(4242)
        .with_client_id(Some(StrBytes::from_static_str("future-client")));
    let mut payload = BytesMut::new();
    header.encode(&mut payload, 2).unwrap();
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("future"))
        .with_client_software_version(StrBytes::from_static_str("9.9"))
        .encode(&mut payload, 3)
        .unwrap();
    client.send_frame(&payload).unwrap();

    let mut frame = client
        .read_frame()
        .unwrap()
        .expect("broker closed instead of answering ApiVersions v127");
    let resp_header = ResponseHeader::decode(&mut frame, 0).unwrap();
    assert_eq!(resp_header.correlation_id, 4242);
    let resp = ApiVersionsResponse::decode(&mut frame, 0).expect("v0-encoded ApiVersions response");
    assert_eq!(resp.error_code, UNSUPPORTED_VERSION);
    assert!(
        !resp.api_keys.is_empty(),
        "KIP-511: the error response still lists api keys"
    );
    let map = ranges(&resp);
    assert_eq!(map[&(ApiKey::ApiVersions as i16)].0, 0);
    assert!(map.contains_key(&(ApiKey::Metadata as i16)));

    // The client then retries at a version the broker supports, same connection.
    let resp = api_versions_v3(&mut client);
    assert_eq!(resp.error_code, 0);
}

/// Sends a request header with `api_key` and an empty body; the Java broker
/// closes the connection for a key it does not know or does not enable.
fn assert_unknown_key_closes(broker: &mut TestBroker, api_key: i16) {
    let mut client = RawClient::connect(broker.addr()).unwrap();
    let header = RequestHeader::default()
        .with_request_api_key(api_key)
        .with_request_api_version(0)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("probe")));
    let mut payload = BytesMut::new();
    header.encode(&mut payload, 1).unwrap();
    payload.extend_from_slice(&[0u8; 16]);
    client.send_frame(&payload).unwrap();
    assert!(
        client.closed_within(Duration::from_secs(10)),
        "connection not closed after a request with api key {api_key}"
    );
    broker.assert_running();

    let mut other = RawClient::connect(broker.addr()).unwrap();
    let resp = api_versions_v3(&mut other);
    assert_eq!(
        resp.error_code, 0,
        "broker unhealthy after api key {api_key}"
    );
}

#[test]
fn unknown_and_unadvertised_api_keys_close_only_that_connection() {
    let mut broker = TestBroker::start(&[]);
    let mut healthy = RawClient::connect(broker.addr()).unwrap();
    let advertised = ranges(&api_versions_v3(&mut healthy));

    assert_unknown_key_closes(&mut broker, 1000);
    assert_unknown_key_closes(&mut broker, -1);

    // A real Kafka API key that this broker does not advertise.
    let unadvertised = ApiKey::iter()
        .map(|k| k as i16)
        .filter(|k| !advertised.contains_key(k))
        .max();
    match unadvertised {
        Some(key) => assert_unknown_key_closes(&mut broker, key),
        None => println!("note: every known api key is advertised; skipped that case"),
    }

    // The connection opened before all of that still works.
    let resp = api_versions_v3(&mut healthy);
    assert_eq!(resp.error_code, 0);
    broker.assert_running();
}
