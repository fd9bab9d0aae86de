use std::collections::BTreeMap;

use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use vltava_protocol::ResponseError;

use super::alter_configs::unalterable;
use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::str_bytes;
use crate::config::{topic_config_def, ConfigError, ConfigType};
use crate::error::ApiError;
use crate::Broker;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub async fn handle(
    broker: &Broker,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in request.resources {
        let name = r.resource_name.as_str();
        let result = match r.resource_type {
            RESOURCE_TOPIC => alter_topic(broker, name, &r.configs, request.validate_only).await,
            RESOURCE_BROKER => alter_broker(broker, name, &r.configs, request.validate_only).await,
            other => Err(unalterable(other)),
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
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

async fn alter_topic(
    broker: &Broker,
    name: &str,
    ops: &[AlterableConfig],
    validate_only: bool,
) -> Result<(), ApiError> {
    let topic = broker.topic(name).ok_or_else(|| {
        ApiError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("Topic {name} does not exist"),
        )
    })?;
    let mut overrides = topic.overrides.clone();
    for op in ops {
        let name = op.name.to_string();
        let def = topic_config_def(&name)
            .ok_or_else(|| ApiError::from(ConfigError::Unknown(name.clone())))?;
        let current = overrides
            .get(&name)
            .cloned()
            .unwrap_or_else(|| topic.config.get(&name).to_string());
        edit(
            &mut overrides,
            name,
            op,
            def.config_type == ConfigType::List,
            current,
        )?;
    }
    broker
        .set_topic_overrides(name, overrides, validate_only)
        .await
}

/// Applies the operations to a broker resource's dynamic configs: SET and
/// DELETE on any dynamic key, APPEND and SUBTRACT on list keys starting
/// from the value the key has now.
async fn alter_broker(
    broker: &Broker,
    name: &str,
    ops: &[AlterableConfig],
    validate_only: bool,
) -> Result<(), ApiError> {
    let mut configs = broker.dynamic_broker_configs(name)?;
    for op in ops {
        // Time synonyms are stored as their `ms` key: edit that key, with a
        // SET's value converted, so a synonym and its key cannot both stand.
        let mut op = op.clone();
        let value = op.value.as_ref().map_or("0", |v| v.as_str()).to_string();
        let (key, converted) = crate::config::canonical_broker_config(op.name.as_str(), &value)?;
        if op.config_operation == OP_SET && key != op.name.as_str() {
            op.value = Some(str_bytes(converted));
        }
        op.name = str_bytes(key.clone());
        let op = &op;
        let is_list = crate::config::topic_config_of_broker_key(&key)
            .is_some_and(|d| d.config_type == ConfigType::List);
        let current = configs
            .get(&key)
            .cloned()
            .or_else(|| broker.broker_config_value(&key).map(|(v, _)| v))
            .unwrap_or_default();
        edit(&mut configs, key, op, is_list, current)?;
    }
    broker
        .set_dynamic_broker_configs(name, &configs, validate_only)
        .await
}

/// Applies one IncrementalAlterConfigs operation to a resource's stored
/// configs: SET and DELETE on any key, APPEND and SUBTRACT on a list key
/// (`is_list`), starting from the value it has now (`current`).
fn edit(
    configs: &mut BTreeMap<String, String>,
    key: String,
    op: &AlterableConfig,
    is_list: bool,
    current: String,
) -> Result<(), ApiError> {
    let value = op.value.as_ref().map(|v| v.to_string());
    match op.config_operation {
        OP_SET => {
            let value = value.ok_or_else(|| {
                ApiError::new(
                    ResponseError::InvalidRequest,
                    format!("Null value not supported for : {key}"),
                )
            })?;
            configs.insert(key, value);
        }
        OP_DELETE => {
            configs.remove(&key);
        }
        OP_APPEND | OP_SUBTRACT => {
            if !is_list {
                return Err(ApiError::new(
                    ResponseError::InvalidConfig,
                    format!("Config value append/subtract is not allowed for config key {key}, which is not a list"),
                ));
            }
            let mut items: Vec<String> = current
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            for item in value
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                if op.config_operation == OP_APPEND {
                    if !items.iter().any(|i| i == item) {
                        items.push(item.to_string());
                    }
                } else {
                    items.retain(|i| i != item);
                }
            }
            configs.insert(key, items.join(","));
        }
        other => {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("Unknown config operation {other}"),
            ));
        }
    }
    Ok(())
}
