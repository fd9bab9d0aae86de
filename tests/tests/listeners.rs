//! Brokers are registered in the metadata log with every advertised
//! listener and their rack, and each client is given the addresses of the
//! listener it connected through (Kafka's rule, which Docker and cloud
//! setups with an internal and an external listener depend on): Metadata,
//! DescribeCluster and FindCoordinator over each of two listeners, with
//! `broker.rack`, across a restart.

use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::{DescribeClusterRequest, MetadataRequest};
use vltava_tests::raw::RawClient;
use vltava_tests::{free_port, TestBroker};

/// (node id, host, port, rack) of each broker Metadata v12 lists.
fn metadata_brokers(client: &mut RawClient) -> Vec<(i32, String, i32, Option<String>)> {
    let resp = client
        .request(&MetadataRequest::default().with_topics(Some(vec![])), 12)
        .unwrap();
    resp.brokers
        .iter()
        .map(|b| {
            (
                b.node_id.0,
                b.host.to_string(),
                b.port,
                b.rack.as_ref().map(|r| r.to_string()),
            )
        })
        .collect()
}

#[test]
fn each_listener_is_given_its_own_addresses_and_the_rack() {
    let outer = free_port();
    let inner = free_port();
    let hidden = free_port();
    let listeners = format!(
        "PLAINTEXT://127.0.0.1:{outer},INTERNAL://127.0.0.1:{inner},HIDDEN://127.0.0.1:{hidden}"
    );
    // The internal listener is advertised under another name for the same
    // interface, so the two answers differ in the host as well as the port.
    let advertised = format!("PLAINTEXT://127.0.0.1:{outer},INTERNAL://localhost:{inner}");
    let mut broker = TestBroker::start_at(
        outer,
        &[
            ("listeners", &listeners),
            ("advertised.listeners", &advertised),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,HIDDEN:PLAINTEXT",
            ),
            ("broker.rack", "rack-a"),
        ],
    );
    for round in 0..2 {
        let mut via_outer = RawClient::connect(([127, 0, 0, 1], outer).into()).unwrap();
        let mut via_inner = RawClient::connect(([127, 0, 0, 1], inner).into()).unwrap();
        let rack = Some("rack-a".to_string());
        assert_eq!(
            metadata_brokers(&mut via_outer),
            vec![(1, "127.0.0.1".to_string(), i32::from(outer), rack.clone())],
            "round {round}"
        );
        assert_eq!(
            metadata_brokers(&mut via_inner),
            vec![(1, "localhost".to_string(), i32::from(inner), rack.clone())],
            "round {round}"
        );
        // Metadata v0 has no rack field; the address is still the listener's.
        let v0 = via_inner
            .request(&MetadataRequest::default().with_topics(Some(vec![])), 0)
            .unwrap();
        assert_eq!(v0.brokers[0].port, i32::from(inner));

        let cluster = via_inner
            .request(&DescribeClusterRequest::default(), 1)
            .unwrap();
        let b = &cluster.brokers[0];
        assert_eq!(
            (b.broker_id.0, b.host.as_str(), b.port, b.rack.as_deref()),
            (1, "localhost", i32::from(inner), Some("rack-a"))
        );

        let coordinator = via_inner
            .request(
                &FindCoordinatorRequest::default()
                    .with_key(kafka_protocol::protocol::StrBytes::from_static_str("g")),
                3,
            )
            .unwrap();
        assert_eq!(coordinator.error_code, 0, "{coordinator:?}");
        assert_eq!(
            (coordinator.host.as_str(), coordinator.port),
            ("localhost", i32::from(inner))
        );
        let coordinator = via_outer
            .request(
                &FindCoordinatorRequest::default()
                    .with_key(kafka_protocol::protocol::StrBytes::from_static_str("g")),
                3,
            )
            .unwrap();
        assert_eq!(
            (coordinator.host.as_str(), coordinator.port),
            ("127.0.0.1", i32::from(outer))
        );
        // A listener that is not advertised reaches no broker: no broker is
        // listed and every partition has no leader, with Kafka's error for
        // the client's version (LISTENER_NOT_FOUND from v6).
        if round == 0 {
            via_outer.create_topic("lt", 1, &[], false).unwrap();
        }
        let mut via_hidden = RawClient::connect(([127, 0, 0, 1], hidden).into()).unwrap();
        for (version, error) in [(12, 72), (5, 5)] {
            let resp = via_hidden.metadata_at(&["lt"], version).unwrap();
            assert!(resp.brokers.is_empty(), "v{version}: {:?}", resp.brokers);
            let p = &resp.topics[0].partitions[0];
            assert_eq!((p.error_code, p.leader_id.0), (error, -1), "v{version}");
        }
        // Registered again at the next start (its epoch: broker.rs tests).
        broker.stop_sigterm();
        broker.restart();
    }
}

/// No rack set: Metadata and DescribeCluster say null, as Kafka does.
#[test]
fn without_broker_rack_the_rack_is_null() {
    let broker = TestBroker::start(&[]);
    let mut client = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(
        metadata_brokers(&mut client),
        vec![(1, "127.0.0.1".to_string(), i32::from(broker.port()), None)]
    );
    let cluster = client
        .request(&DescribeClusterRequest::default(), 0)
        .unwrap();
    assert_eq!(cluster.brokers[0].rack, None);
}
