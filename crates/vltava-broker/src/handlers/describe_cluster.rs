use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use vltava_protocol::ResponseError;

use super::{authorized_operations, str_bytes, CLUSTER_OPERATIONS};
use crate::Broker;

const ENDPOINT_BROKERS: i8 = 1;

pub fn handle(broker: &Broker, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(broker.cluster_id()))
        .with_controller_id(BrokerId(broker.node_id()))
        .with_cluster_authorized_operations(authorized_operations(
            request.include_cluster_authorized_operations,
            CLUSTER_OPERATIONS,
        ));
    if request.endpoint_type != ENDPOINT_BROKERS {
        return response
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes("Vltava serves broker endpoints only")));
    }
    let listener = &broker.config.advertised_listeners[0];
    response.with_brokers(vec![DescribeClusterBroker::default()
        .with_broker_id(BrokerId(broker.node_id()))
        .with_host(str_bytes(listener.host.clone()))
        .with_port(i32::from(listener.port))])
}
