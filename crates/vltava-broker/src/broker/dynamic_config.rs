//! Dynamic broker configs: broker keys changed while brokers run, for one
//! broker (`ConfigResource::Broker("<id>")`) or cluster-wide
//! (`ConfigResource::Broker("")`), stored as records in the metadata log and
//! applied at once. A key's value is the first of: this broker's dynamic
//! value, the cluster-wide dynamic value, server.properties / `--override`,
//! Kafka's default (Kafka's DYNAMIC_BROKER_CONFIG,
//! DYNAMIC_DEFAULT_BROKER_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG).

use std::collections::BTreeMap;

use tracing::info;
use vltava_meta::{ConfigResource, MetadataImage};
use vltava_protocol::ResponseError;

use super::{config_changes, Broker};
use crate::config::{
    canonical_broker_config, is_dynamic_broker_config, validate_dynamic_broker_config,
    BrokerConfig, ConfigSource, TopicConfig, TopicConfigDef, MIN_INSYNC_REPLICAS,
};
use crate::error::ApiError;

/// The dynamic layers, as last committed to the metadata log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DynamicConfigs {
    /// `ConfigResource::Broker("")`.
    pub(crate) cluster: BTreeMap<String, String>,
    /// `ConfigResource::Broker("<this node id>")`.
    pub(crate) node: BTreeMap<String, String>,
}

impl DynamicConfigs {
    pub(crate) fn from_image(image: &MetadataImage, node_id: i32) -> DynamicConfigs {
        DynamicConfigs {
            cluster: image.configs_of(&ConfigResource::Broker(String::new())),
            node: image.configs_of(&ConfigResource::Broker(node_id.to_string())),
        }
    }

    /// Every value `key` has, most to least precedent, with its source;
    /// empty for a key the broker does not know.
    pub(crate) fn layers(&self, config: &BrokerConfig, key: &str) -> Vec<(String, ConfigSource)> {
        let Some(default) = BrokerConfig::default_value(key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(v) = self.node.get(key) {
            out.push((v.clone(), ConfigSource::DynamicBroker));
        }
        if let Some(v) = self.cluster.get(key) {
            out.push((v.clone(), ConfigSource::DynamicDefaultBroker));
        }
        if let Some(v) = config.static_value(key) {
            out.push((v.to_string(), ConfigSource::StaticBroker));
        }
        out.push((default.to_string(), ConfigSource::Default));
        out
    }

    /// The value `key` has and where it comes from.
    pub(crate) fn value(&self, config: &BrokerConfig, key: &str) -> Option<(String, ConfigSource)> {
        self.layers(config, key).into_iter().next()
    }

    /// A topic config's default on this broker: a dynamic value of its
    /// broker key, else the static one, else Kafka's default.
    pub(crate) fn topic_default(&self, config: &BrokerConfig, def: &TopicConfigDef) -> String {
        self.node
            .get(def.broker_name)
            .or_else(|| self.cluster.get(def.broker_name))
            .cloned()
            .unwrap_or_else(|| config.topic_default(def))
    }
}

impl Broker {
    /// A broker key's value on this broker and its source, or `None` for a
    /// key the broker does not read.
    pub fn broker_config_value(&self, key: &str) -> Option<(String, ConfigSource)> {
        self.dynamic.read().value(&self.config, key)
    }

    /// Every value a broker key has here, most precedent first (for
    /// DescribeConfigs synonyms).
    pub fn broker_config_layers(&self, key: &str) -> Vec<(String, ConfigSource)> {
        self.dynamic.read().layers(&self.config, key)
    }

    /// A topic's configuration: its overrides on top of this broker's
    /// current (dynamic or static) defaults.
    pub fn resolve_topic_config(&self, overrides: &BTreeMap<String, String>) -> TopicConfig {
        let dynamic = self.dynamic.read();
        TopicConfig::resolve_with(|def| dynamic.topic_default(&self.config, def), overrides)
    }

    /// A dynamic broker key read as a number where the broker uses it.
    fn dynamic_number(&self, key: &str) -> Option<f64> {
        self.broker_config_value(key)
            .and_then(|(v, _)| v.trim().parse::<f64>().ok())
    }

    /// `producer.id.expiration.ms`, as it is now.
    pub fn producer_id_expiration_ms(&self) -> i64 {
        self.dynamic_number("producer.id.expiration.ms")
            .map_or(self.config.producer_id_expiration_ms, |v| (v as i64).max(1))
    }

    /// `log.cleaner.backoff.ms`, as it is now.
    pub fn cleaner_backoff_ms(&self) -> u64 {
        self.dynamic_number("log.cleaner.backoff.ms")
            .map_or(self.config.cleaner.backoff_ms, |v| (v as u64).max(1))
    }

    /// `log.cleaner.io.max.bytes.per.second`, as it is now.
    pub fn cleaner_io_max_bytes_per_second(&self) -> f64 {
        self.dynamic_number("log.cleaner.io.max.bytes.per.second")
            .unwrap_or(self.config.cleaner.io_max_bytes_per_second)
    }

    /// The dynamic configs set on a broker resource: `""` for the
    /// cluster-wide ones, this broker's id for its own.
    pub fn dynamic_broker_configs(
        &self,
        resource_name: &str,
    ) -> Result<BTreeMap<String, String>, ApiError> {
        let dynamic = self.dynamic.read();
        Ok(match self.broker_scope(resource_name)? {
            Scope::Cluster => dynamic.cluster.clone(),
            Scope::Node => dynamic.node.clone(),
        })
    }

    fn broker_scope(&self, resource_name: &str) -> Result<Scope, ApiError> {
        if resource_name.is_empty() {
            Ok(Scope::Cluster)
        } else if resource_name == self.node_id().to_string() {
            Ok(Scope::Node)
        } else {
            Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!(
                    "Unexpected broker id, expected {} or empty string, but received {resource_name}",
                    self.node_id()
                ),
            ))
        }
    }

    /// Replaces the dynamic configs of a broker resource with `configs`
    /// (keys as given, time synonyms included), as AlterConfigs does:
    /// every key must be one Kafka lets change at run time and its value
    /// valid; the change is committed to the metadata log, then applied to
    /// every topic whose defaults it changes.
    pub async fn set_dynamic_broker_configs(
        &self,
        resource_name: &str,
        configs: &BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        self.broker_scope(resource_name)?;
        let mut wanted = BTreeMap::new();
        let mut static_keys = Vec::new();
        for (key, value) in configs {
            if BrokerConfig::default_value(key).is_none()
                && canonical_broker_config(key, value)?.0 == *key
            {
                return Err(ApiError::new(
                    ResponseError::InvalidConfig,
                    format!("Unknown broker config: {key}"),
                ));
            }
            let (key, value) = canonical_broker_config(key, value)?;
            if !is_dynamic_broker_config(&key) {
                static_keys.push(key);
                continue;
            }
            validate_dynamic_broker_config(&key, &value)?;
            wanted.insert(key, value);
        }
        if !static_keys.is_empty() {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!(
                    "Cannot update these configs dynamically: Set({})",
                    static_keys.join(", ")
                ),
            ));
        }
        if validate_only {
            return Ok(());
        }
        let resource = ConfigResource::Broker(resource_name.to_string());
        // Committed, then applied by every broker's publisher, which
        // re-resolves every topic's defaults (here before this returns).
        let changes = self
            .control(|image| {
                let current = image.configs_of(&resource);
                let mut records = config_changes(&resource, &current, &wanted);
                let changes = records.len();
                // A default min.insync.replicas changed: the topics that
                // take the default clear their eligible leader replicas.
                if current.get(MIN_INSYNC_REPLICAS) != wanted.get(MIN_INSYNC_REPLICAS) {
                    let own = |t: &str| {
                        image
                            .configs_of(&ConfigResource::Topic(t.to_string()))
                            .contains_key(MIN_INSYNC_REPLICAS)
                    };
                    records.extend(super::elections::min_insync_changed(image, &|t| !own(t)));
                }
                Ok((records, changes))
            })
            .await?;
        if changes == 0 {
            return Ok(());
        }
        info!(
            resource = if resource_name.is_empty() {
                "cluster default"
            } else {
                resource_name
            },
            changes, "altered dynamic broker configs"
        );
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Cluster,
    Node,
}
