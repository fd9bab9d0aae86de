use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use vltava_protocol::ResponseError;

use super::str_bytes;
use crate::config::{
    is_dynamic_broker_config, topic_config_of_broker_key, ConfigSource, ConfigType, TopicConfig,
    TOPIC_CONFIGS,
};
use crate::error::ApiError;
use crate::Broker;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

pub fn handle(
    broker: &Broker,
    _version: i16,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let synonyms = request.include_synonyms;
    let docs = request.include_documentation;
    let results = request
        .resources
        .into_iter()
        .map(|r| {
            let keys = r.configuration_keys.as_deref();
            let described = match r.resource_type {
                RESOURCE_TOPIC => {
                    describe_topic(broker, r.resource_name.as_str(), keys, synonyms, docs)
                }
                RESOURCE_BROKER => {
                    describe_broker(broker, r.resource_name.as_str(), keys, synonyms, docs)
                }
                other => Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    format!("Unsupported resource type {other}"),
                )),
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name);
            match described {
                Ok(configs) => result.with_configs(configs),
                Err(e) => result
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn wanted(keys: Option<&[StrBytes]>, name: &str) -> bool {
    keys.is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
}

fn describe_topic(
    broker: &Broker,
    name: &str,
    keys: Option<&[StrBytes]>,
    synonyms: bool,
    docs: bool,
) -> Result<Vec<DescribeConfigsResourceResult>, ApiError> {
    let topic = broker.topic(name).ok_or_else(|| {
        ApiError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("Topic {name} does not exist"),
        )
    })?;
    Ok(topic_entries(
        broker,
        &topic.config,
        &topic.overrides,
        keys,
        synonyms,
        docs,
    ))
}

/// The config entries of a topic, each with its source and, on request,
/// its synonyms (topic override, then broker setting, then default).
pub fn topic_entries(
    broker: &Broker,
    config: &TopicConfig,
    overrides: &BTreeMap<String, String>,
    keys: Option<&[StrBytes]>,
    include_synonyms: bool,
    include_docs: bool,
) -> Vec<DescribeConfigsResourceResult> {
    TOPIC_CONFIGS
        .iter()
        .filter(|def| wanted(keys, def.name))
        .map(|def| {
            // The broker's layers for the key that sets this default: its
            // dynamic, cluster-wide dynamic, static and default values.
            let layers = broker.broker_config_layers(def.broker_name);
            let default_source = layers.first().map_or(ConfigSource::Default, |(_, s)| *s);
            let source = if overrides.contains_key(def.name) {
                ConfigSource::DynamicTopic
            } else {
                default_source
            };
            let mut synonyms = Vec::new();
            if include_synonyms {
                if let Some(value) = overrides.get(def.name) {
                    synonyms.push(synonym(def.name, value, ConfigSource::DynamicTopic));
                }
                for (value, source) in &layers {
                    synonyms.push(synonym(def.broker_name, value, *source));
                }
            }
            entry(
                def.name,
                config.get(def.name),
                source,
                false,
                def.config_type,
                synonyms,
            )
            .with_documentation(include_docs.then(|| str_bytes(def.doc)))
        })
        .collect()
}

fn describe_broker(
    broker: &Broker,
    name: &str,
    keys: Option<&[StrBytes]>,
    include_synonyms: bool,
    _docs: bool,
) -> Result<Vec<DescribeConfigsResourceResult>, ApiError> {
    if name.is_empty() {
        // The cluster-wide dynamic defaults: only those set, as Kafka
        // describes the default broker resource.
        return Ok(broker
            .dynamic_broker_configs("")?
            .into_iter()
            .filter(|(key, _)| wanted(keys, key))
            .map(|(key, value)| {
                let synonyms = if include_synonyms {
                    vec![synonym(&key, &value, ConfigSource::DynamicDefaultBroker)]
                } else {
                    Vec::new()
                };
                let config_type = config_type_of(&key, &value);
                entry(
                    &key,
                    &value,
                    ConfigSource::DynamicDefaultBroker,
                    false,
                    config_type,
                    synonyms,
                )
            })
            .collect());
    }
    // Checks the id (this broker's, else INVALID_REQUEST).
    broker.dynamic_broker_configs(name)?;
    Ok(broker
        .config
        .describe()
        .into_iter()
        .filter(|(key, _, _)| wanted(keys, key))
        .map(|(key, _, _)| {
            let layers = broker.broker_config_layers(&key);
            let (value, source) = layers
                .first()
                .cloned()
                .unwrap_or_else(|| (String::new(), ConfigSource::Default));
            let synonyms = if include_synonyms {
                layers.iter().map(|(v, s)| synonym(&key, v, *s)).collect()
            } else {
                Vec::new()
            };
            let config_type = config_type_of(&key, &value);
            // Keys Kafka changes only by restart are read-only.
            let read_only = !is_dynamic_broker_config(&key);
            entry(&key, &value, source, read_only, config_type, synonyms)
        })
        .collect())
}

/// The type DescribeConfigs reports for a broker key: the topic config's
/// type for keys that set a topic default, else guessed from the value.
fn config_type_of(key: &str, value: &str) -> ConfigType {
    if let Some(def) = topic_config_of_broker_key(key) {
        return def.config_type;
    }
    match value.parse::<i64>() {
        Ok(_) => ConfigType::Long,
        Err(_) if value == "true" || value == "false" => ConfigType::Boolean,
        Err(_) => ConfigType::String,
    }
}

fn entry(
    name: &str,
    value: &str,
    source: ConfigSource,
    read_only: bool,
    config_type: ConfigType,
    synonyms: Vec<DescribeConfigsSynonym>,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value)))
        .with_read_only(read_only)
        .with_config_source(source as i8)
        .with_is_sensitive(false)
        .with_config_type(config_type as i8)
        .with_synonyms(synonyms)
}

fn synonym(name: &str, value: &str, source: ConfigSource) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value)))
        .with_source(source as i8)
}
