use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use vltava_protocol::ResponseError;

use super::str_bytes;
use crate::config::{ConfigSource, ConfigType, TopicConfig, TOPIC_CONFIGS};
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
            let default_source = broker.config.topic_default_source(def);
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
                if default_source == ConfigSource::StaticBroker {
                    synonyms.push(synonym(
                        def.broker_name,
                        &broker.config.topic_default(def),
                        default_source,
                    ));
                }
                synonyms.push(synonym(def.broker_name, def.default, ConfigSource::Default));
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
        // Cluster-wide dynamic defaults: Vltava has none yet.
        return Ok(Vec::new());
    }
    if name != broker.node_id().to_string() {
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!(
                "Unexpected broker id, expected {} or empty string, but received {name}",
                broker.node_id()
            ),
        ));
    }
    Ok(broker
        .config
        .describe()
        .into_iter()
        .filter(|(key, _, _)| wanted(keys, key))
        .map(|(key, value, source)| {
            let synonyms = if include_synonyms {
                vec![synonym(&key, &value, source)]
            } else {
                Vec::new()
            };
            let config_type = match value.parse::<i64>() {
                Ok(_) => ConfigType::Long,
                Err(_) if value == "true" || value == "false" => ConfigType::Boolean,
                Err(_) => ConfigType::String,
            };
            // Broker settings come from server.properties and are fixed
            // while the broker runs.
            entry(&key, &value, source, true, config_type, synonyms)
        })
        .collect())
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
