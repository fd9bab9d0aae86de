use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use vltava_protocol::ResponseError;

use super::{authorized_operations, str_bytes, ClientInfo, CLUSTER_OPERATIONS};
use crate::Broker;

const ENDPOINT_BROKERS: i8 = 1;
const ENDPOINT_CONTROLLERS: i8 = 2;

pub fn handle(
    broker: &Broker,
    client: &ClientInfo,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    // As Kafka's AuthHelper: a broker listener asked for controllers is the
    // wrong endpoint; any other type is unknown. v0 cannot name a type, so
    // it never gets here with anything but brokers.
    match request.endpoint_type {
        ENDPOINT_BROKERS => {}
        ENDPOINT_CONTROLLERS => {
            return failed(
                ResponseError::MismatchedEndpointType,
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER".into(),
            )
        }
        other => {
            return failed(
                ResponseError::UnsupportedEndpointType,
                format!("Unsupported endpoint type {other}"),
            )
        }
    }
    DescribeClusterResponse::default()
        .with_endpoint_type(ENDPOINT_BROKERS)
        .with_cluster_id(str_bytes(broker.cluster_id()))
        .with_controller_id(BrokerId(broker.controller_id()))
        .with_cluster_authorized_operations(authorized_operations(
            request.include_cluster_authorized_operations,
            CLUSTER_OPERATIONS,
        ))
        .with_brokers(
            broker
                .registered_on(&client.listener)
                .into_iter()
                // v2 asks for fenced brokers too; before, they are left out.
                .filter(|b| !b.4 || request.include_fenced_brokers)
                .map(|(id, host, port, rack, fenced)| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(id))
                        .with_host(str_bytes(host))
                        .with_port(i32::from(port))
                        .with_rack(rack.map(str_bytes))
                        .with_is_fenced(fenced)
                })
                .collect(),
        )
}

/// An error answer carries nothing else, as Kafka's does.
fn failed(error: ResponseError, message: String) -> DescribeClusterResponse {
    DescribeClusterResponse::default()
        .with_error_code(error.code())
        .with_error_message(Some(str_bytes(message)))
}
