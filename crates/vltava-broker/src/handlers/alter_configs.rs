use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use vltava_protocol::ResponseError;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::str_bytes;
use crate::error::ApiError;
use crate::Broker;

/// The legacy AlterConfigs: the given configs replace all of a topic's
/// overrides, or all of a broker resource's dynamic configs.
pub async fn handle(broker: &Broker, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in request.resources {
        let name = r.resource_name.as_str();
        let result = match (r.resource_type, non_null(&r.configs)) {
            (RESOURCE_TOPIC | RESOURCE_BROKER, Err(e)) => Err(e),
            (RESOURCE_TOPIC, Ok(o)) => {
                broker
                    .set_topic_overrides(name, o, request.validate_only)
                    .await
            }
            (RESOURCE_BROKER, Ok(c)) => {
                broker
                    .set_dynamic_broker_configs(name, &c, request.validate_only)
                    .await
            }
            (other, _) => Err(unalterable(other)),
        };
        let response = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name);
        responses.push(match result {
            Ok(()) => response,
            Err(e) => response
                .with_error_code(e.code())
                .with_error_message(Some(str_bytes(e.message))),
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// The configs of one resource as name → value; AlterConfigs sets every
/// key it names, so a null value is refused as Kafka refuses it.
fn non_null(
    configs: &[kafka_protocol::messages::alter_configs_request::AlterableConfig],
) -> Result<BTreeMap<String, String>, ApiError> {
    configs
        .iter()
        .map(|c| match &c.value {
            Some(v) => Ok((c.name.to_string(), v.to_string())),
            None => Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("Null value not supported for : {}", c.name.as_str()),
            )),
        })
        .collect()
}

/// A resource type other than topics and brokers (broker loggers, client
/// metrics, groups) has no configs here.
pub fn unalterable(resource_type: i8) -> ApiError {
    ApiError::new(
        ResponseError::InvalidRequest,
        format!("Unsupported resource type {resource_type}"),
    )
}
