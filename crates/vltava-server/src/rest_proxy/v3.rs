//! Confluent REST Proxy API v3: `/v3/clusters/{cluster_id}/...` resources
//! (`kind`, `metadata.self`, `related` links), topics created, altered and
//! deleted through the controller, records produced (BINARY, JSON, STRING,
//! or in a registered schema's format), and consumer groups with their lag
//! computed as `kafka-consumer-groups.sh` does.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use vltava_client::admin::{Admin as KafkaAdmin, AlterOp, NewTopic, ResourceType};
use vltava_client::client::TopicInfo;
use vltava_client::producer::ProducerRecord;
use vltava_registry::schema::{Parsed, SchemaType};
use vltava_registry::store::VersionSpec;

use super::{
    answer, json_body, Answer, BaseUrl, RestError, RestProxy, RECORDS_PER_REQUEST_MAX,
    V3_CONTENT_TYPE,
};
use crate::console::groups::{assigned, offsets, OffsetRow};

pub fn routes() -> Router<Arc<RestProxy>> {
    let c = "/v3/clusters/{cluster_id}";
    Router::new()
        .route("/v3/clusters", get(clusters))
        .route(c, get(cluster))
        .route(&format!("{c}/brokers"), get(brokers))
        .route(&format!("{c}/brokers/{{broker_id}}"), get(broker))
        .route(&format!("{c}/topics"), get(topics).post(create_topic))
        .route(
            &format!("{c}/topics/{{topic}}"),
            get(topic).delete(delete_topic),
        )
        .route(&format!("{c}/topics/{{topic}}/partitions"), get(partitions))
        .route(
            &format!("{c}/topics/{{topic}}/partitions/{{partition}}"),
            get(partition),
        )
        .route(&format!("{c}/topics/{{topic}}/configs"), get(topic_configs))
        .route(
            &format!("{c}/topics/{{topic}}/configs/{{name}}"),
            get(topic_config)
                .put(set_topic_config)
                .delete(reset_topic_config),
        )
        .route(
            &format!("{c}/topics/{{topic}}/records"),
            axum::routing::post(produce),
        )
        .route(&format!("{c}/consumer-groups"), get(groups))
        .route(&format!("{c}/consumer-groups/{{group}}"), get(group))
        .route(
            &format!("{c}/consumer-groups/{{group}}/consumers"),
            get(group_consumers),
        )
        .route(
            &format!("{c}/consumer-groups/{{group}}/lags"),
            get(group_lags),
        )
        .route(
            &format!("{c}/consumer-groups/{{group}}/lag-summary"),
            get(group_lag_summary),
        )
}

fn ok(value: Value) -> Answer {
    Ok(answer(StatusCode::OK, V3_CONTENT_TYPE, &value))
}

fn no_content() -> Answer {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A resource's `metadata`: where it is and its Confluent resource name.
fn metadata(base: &str, path: &str, crn: &str) -> Value {
    json!({"self": format!("{base}{path}"), "resource_name": crn})
}

fn related(base: &str, path: &str) -> Value {
    json!({"related": format!("{base}{path}")})
}

fn list(kind: &str, base: &str, path: &str, data: Vec<Value>) -> Value {
    json!({
        "kind": kind,
        "metadata": {"self": format!("{base}{path}"), "next": null},
        "data": data,
    })
}

/// Checks `cluster_id` is this cluster's (404 otherwise).
pub(super) fn checked(proxy: &RestProxy, cluster_id: &str) -> Result<String, RestError> {
    let broker = proxy.broker()?;
    if broker.cluster_id() != cluster_id {
        return Err(RestError::not_found(
            404,
            format!("Cluster {cluster_id} cannot be found."),
        ));
    }
    Ok(cluster_id.to_string())
}

fn cluster_data(base: &str, id: &str, controller: i32) -> Value {
    let c = format!("/v3/clusters/{id}");
    json!({
        "kind": "KafkaCluster",
        "metadata": metadata(base, &c, &format!("crn:///kafka={id}")),
        "cluster_id": id,
        "controller": related(base, &format!("{c}/brokers/{controller}")),
        "acls": related(base, &format!("{c}/acls")),
        "brokers": related(base, &format!("{c}/brokers")),
        "broker_configs": related(base, &format!("{c}/broker-configs")),
        "consumer_groups": related(base, &format!("{c}/consumer-groups")),
        "topics": related(base, &format!("{c}/topics")),
        "partition_reassignments": related(base, &format!("{c}/topics/-/partitions/-/reassignment")),
    })
}

async fn clusters(State(p): State<Arc<RestProxy>>, BaseUrl(base): BaseUrl) -> Answer {
    let (broker, admin) = p.kafka_admin().await?;
    let d = admin
        .describe_cluster()
        .await
        .map_err(|e| RestError::from_client(&e))?;
    let id = broker.cluster_id();
    ok(list(
        "KafkaClusterList",
        &base,
        "/v3/clusters",
        vec![cluster_data(&base, id, d.controller_id)],
    ))
}

async fn cluster(
    State(p): State<Arc<RestProxy>>,
    BaseUrl(base): BaseUrl,
    Path(cluster_id): Path<String>,
) -> Answer {
    let (id, admin) = p.cluster_admin(&cluster_id).await?;
    let d = admin
        .describe_cluster()
        .await
        .map_err(|e| RestError::from_client(&e))?;
    ok(cluster_data(&base, &id, d.controller_id))
}

fn broker_data(base: &str, c: &str, b: &vltava_client::client::BrokerInfo) -> Value {
    let path = format!("/v3/clusters/{c}/brokers/{}", b.id);
    json!({
        "kind": "KafkaBroker",
        "metadata": metadata(base, &path, &format!("crn:///kafka={c}/broker={}", b.id)),
        "cluster_id": c,
        "broker_id": b.id,
        "host": b.host,
        "port": b.port,
        "rack": b.rack,
        "configs": related(base, &format!("{path}/configs")),
        "partition_replicas": related(base, &format!("{path}/partition-replicas")),
    })
}

async fn brokers(
    State(p): State<Arc<RestProxy>>,
    BaseUrl(base): BaseUrl,
    Path(cluster_id): Path<String>,
) -> Answer {
    let (c, admin) = p.cluster_admin(&cluster_id).await?;
    let d = admin
        .describe_cluster()
        .await
        .map_err(|e| RestError::from_client(&e))?;
    let data = d
        .brokers
        .iter()
        .map(|b| broker_data(&base, &c, b))
        .collect();
    ok(list(
        "KafkaBrokerList",
        &base,
        &format!("/v3/clusters/{c}/brokers"),
        data,
    ))
}

async fn broker(
    State(p): State<Arc<RestProxy>>,
    BaseUrl(base): BaseUrl,
    Path((cluster_id, broker_id)): Path<(String, String)>,
) -> Answer {
    let (c, admin) = p.cluster_admin(&cluster_id).await?;
    let d = admin
        .describe_cluster()
        .await
        .map_err(|e| RestError::from_client(&e))?;
    let found = d.brokers.iter().find(|b| b.id.to_string() == broker_id);
    match found {
        Some(b) => ok(broker_data(&base, &c, b)),
        None => Err(RestError::not_found(
            404,
            format!("Broker {broker_id} cannot be found."),
        )),
    }
}

fn topic_data(
    base: &str,
    c: &str,
    name: &str,
    internal: bool,
    partitions: usize,
    factor: usize,
) -> Value {
    let path = format!("/v3/clusters/{c}/topics/{name}");
    json!({
        "kind": "KafkaTopic",
        "metadata": metadata(base, &path, &format!("crn:///kafka={c}/topic={name}")),
        "cluster_id": c,
        "topic_name": name,
        "is_internal": internal,
        "replication_factor": factor,
        "partitions_count": partitions,
        "partitions": related(base, &format!("{path}/partitions")),
        "configs": related(base, &format!("{path}/configs")),
        "partition_reassignments": related(base, &format!("{path}/partitions/-/reassignment")),
        "authorized_operations": [],
    })
}

fn topic_info_data(base: &str, c: &str, t: &TopicInfo) -> Value {
    let factor = t.partitions.first().map_or(0, |p| p.replicas.len());
    topic_data(base, c, &t.name, t.is_internal, t.partitions.len(), factor)
}

/// One topic's metadata, 404 when it does not exist.
async fn described(admin: &KafkaAdmin, name: &str) -> Result<TopicInfo, RestError> {
    let found = admin
        .describe_topics(&[name.to_string()])
        .await
        .map_err(|e| RestError::from_client(&e))?;
    match found.into_iter().next() {
        Some(t) if t.error_code == 0 => Ok(t),
        _ => Err(RestError::not_found(
            40403,
            "This server does not host this topic-partition.",
        )),
    }
}

async fn topics(
    State(p): State<Arc<RestProxy>>,
    BaseUrl(base): BaseUrl,
    Path(cluster_id): Path<String>,
) -> Answer {
    let (c, admin) = p.cluster_admin(&cluster_id).await?;
    let all = admin
        .list_topics()
        .await
        .map_err(|e| RestError::from_client(&e))?;
    let data = all.iter().map(|t| topic_info_data(&base, &c, t)).collect();
    ok(list(
        "KafkaTopicList",
        &base,
        &format!("/v3/clusters/{c}/topics"),
        data,
    ))
}

async fn topic(
    State(p): State<Arc<RestProxy>>,
    BaseUrl(base): BaseUrl,
    Path((cluster_id, name)): Path<(String, String)>,
) -> Answer {
    let (c, admin) = p.cluster_admin(&cluster_id).await?;
    let t = described(&admin, &name).await?;
    ok(topic_info_data(&base, &c, &t))
}

/// `{"topic_name", "partitions_count"?, "replication_factor"?,
/// "configs"?: [{"name", "value"}], "validate_only"?}`: 201 with the topic.
async fn create_topic(
    State(p): State<Arc<RestProxy>>,
    BaseUrl(base): BaseUrl,
    Path(cluster_id): Path<String>,
    body: Bytes,
) -> Answer {
    let c = checked(&p, &cluster_id)?;
    let body = json_body(&body)?;
    let name = body["topic_name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| RestError::bad_request("topic_name is required"))?;
    let int = |field: &str| -> Result<Option<i64>, RestError> {
        match &body[field] {
            Value::Null => Ok(None),
            v => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| RestError::bad_request(format!("{field} must be an integer"))),
        }
    };
    let partitions = int("partitions_count")?.unwrap_or(-1);
    let factor = int("replication_factor")?.unwrap_or(-1);
    let partitions = i32::try_from(partitions)
        .map_err(|_| RestError::bad_request("partitions_count is out of range"))?;
    let factor = i16::try_from(factor)
        .map_err(|_| RestError::bad_request("replication_factor is out of range"))?;
    let mut configs = Vec::new();
    if let Some(list) = body["configs"].as_array() {
        for entry in list {
            let (Some(k), Some(v)) = (entry["name"].as_str(), entry["value"].as_str()) else {
                return Err(RestError::bad_request(
                    "each config is {\"name\": ..., \"value\": ...} with string values",
                ));
            };
            configs.push((k.to_string(), v.to_string()));
        }
    }
    let validate_only = body["validate_only"].as_bool().unwrap_or(false);
    let (_, admin) = p.kafka_admin().await?;
    let results = admin
        .create_topics(
            &[NewTopic {
                name: name.to_string(),
                partitions,
                replication_factor: factor,
                configs,
                assignments: Vec::new(),
            }],
            validate_only,
        )
        .await
        .map_err(|e| RestError::from_client(&e))?;
    if let Some((_, Err(e))) = results.into_iter().next() {
        return Err(RestError::from_client(&vltava_client::Error::Kafka(e)));
    }
    // Defaults the broker filled in are read back when not asked for.
    let (partitions, factor) = if partitions > 0 && factor > 0 || validate_only {
        (partitions.max(0) as usize, factor.max(0) as usize)
    } else {
        let t = described(&admin, name).await?;
        (
            t.partitions.len(),
            t.partitions.first().map_or(0, |p| p.replicas.len()),
        )
    };
    Ok(answer(
        StatusCode::CREATED,
        V3_CONTENT_TYPE,
        &topic_data(&base, &c, name, false, partitions, factor),
    ))
}

async fn delete_topic(
    State(p): State<Arc<RestProxy>>,
    Path((cluster_id, name)): Path<(String, String)>,
) -> Answer {
    let (_, admin) = p.cluster_admin(&cluster_id).await?;
    let results = admin
        .delete_topics(&[name])
        .await
        .map_err(|e| RestError::from_client(&e))?;
    if let Some((_, Err(e))) = results.into_iter().next() {
        return Err(RestError::from_client(&vltava_client::Error::Kafka(e)));
    }
    no_content()
}

fn partition_data(
    base: &str,
    c: &str,
    topic: &str,
    p: &vltava_client::client::PartitionInfo,
) -> Value {
    let path = format!("/v3/clusters/{c}/topics/{topic}/partitions/{}", p.partition);
    let mut v = json!({
        "kind": "KafkaPartition",
        "metadata": metadata(base, &path, &format!("crn:///kafka={c}/topic={topic}/partition={}", p.partition)),
        "cluster_id": c,
        "topic_name": topic,
        "partition_id": p.partition,
        "replicas": related(base, &format!("{path}/replicas")),
        "reassignment": related(base, &format!("{path}/reassignment")),
    });
    if p.leader >= 0 {
        v["leader"] = related(base, &format!("{path}/replicas/{}", p.leader));
    }
    v
}

async fn partitions(
    State(p): State<Arc<RestProxy>>,
    BaseUrl(base): BaseUrl,
    Path((cluster_id, name)): Path<(String, String)>,
) -> Answer {
    let (c, admin) = p.cluster_admin(&cluster_id).await?;
    let t = described(&admin, &name).await?;
    let data = t
        .partitions
        .iter()
        .map(|x| partition_data(&base, &c, &name, x))
        .collect();
    ok(list(
        "KafkaPartitionList",
        &base,
        &format!("/v3/clusters/{c}/topics/{name}/partitions"),
        data,
    ))
}

async fn partition(
    State(p): State<Arc<RestProxy>>,
    BaseUrl(base): BaseUrl,
    Path((cluster_id, name, index)): Path<(String, String, String)>,
) -> Answer {
    let (c, admin) = p.cluster_admin(&cluster_id).await?;
    let t = described(&admin, &name).await?;
    match t
        .partitions
        .iter()
        .find(|x| x.partition.to_string() == index)
    {
        Some(x) => ok(partition_data(&base, &c, &name, x)),
        None => Err(RestError::not_found(
            40403,
            "This server does not host this topic-partition.",
        )),
    }
}

fn config_data(base: &str, c: &str, topic: &str, e: &vltava_client::admin::ConfigEntry) -> Value {
    let path = format!("/v3/clusters/{c}/topics/{topic}/configs/{}", e.name);
    let source = |s: i8| match s {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        _ => "UNKNOWN",
    };
    json!({
        "kind": "KafkaTopicConfig",
        "metadata": metadata(base, &path, &format!("crn:///kafka={c}/topic={topic}/config={}", e.name)),
        "cluster_id": c,
        "topic_name": topic,
        "name": e.name,
        "value": if e.is_sensitive { None } else { e.value.clone() },
        "is_default": e.source == 5,
        "is_read_only": e.read_only,
        "is_sensitive": e.is_sensitive,
        "source": source(e.source),
        "synonyms": e.synonyms.iter().map(|(n, v, s)| json!({"name": n, "value": v, "source": source(*s)})).collect::<Vec<_>>(),
    })
}

async fn configs_of(
    admin: &KafkaAdmin,
    topic: &str,
) -> Result<Vec<vltava_client::admin::ConfigEntry>, RestError> {
    described(admin, topic).await?;
    admin
        .describe_configs(ResourceType::Topic, topic)
        .await
        .map_err(|e| RestError::from_client(&e))
}

async fn topic_configs(
    State(p): State<Arc<RestProxy>>,
    BaseUrl(base): BaseUrl,
    Path((cluster_id, name)): Path<(String, String)>,
) -> Answer {
    let (c, admin) = p.cluster_admin(&cluster_id).await?;
    let data = configs_of(&admin, &name)
        .await?
        .iter()
        .map(|e| config_data(&base, &c, &name, e))
        .collect();
    ok(list(
        "KafkaTopicConfigList",
        &base,
        &format!("/v3/clusters/{c}/topics/{name}/configs"),
        data,
    ))
}

async fn topic_config(
    State(p): State<Arc<RestProxy>>,
    BaseUrl(base): BaseUrl,
    Path((cluster_id, name, config)): Path<(String, String, String)>,
) -> Answer {
    let (c, admin) = p.cluster_admin(&cluster_id).await?;
    let all = configs_of(&admin, &name).await?;
    match all.iter().find(|e| e.name == config) {
        Some(e) => ok(config_data(&base, &c, &name, e)),
        None => Err(RestError::not_found(
            404,
            format!("Config {config} cannot be found for topic {name}."),
        )),
    }
}

async fn alter(
    p: &RestProxy,
    cluster_id: &str,
    topic: &str,
    op: (String, AlterOp, Option<String>),
) -> Answer {
    let (_, admin) = p.cluster_admin(cluster_id).await?;
    described(&admin, topic).await?;
    admin
        .incremental_alter_configs(ResourceType::Topic, topic, &[op])
        .await
        .map_err(|e| RestError::from_client(&e))?;
    no_content()
}

/// `{"value": V}`: sets the topic config.
async fn set_topic_config(
    State(p): State<Arc<RestProxy>>,
    Path((cluster_id, name, config)): Path<(String, String, String)>,
    body: Bytes,
) -> Answer {
    let body = json_body(&body)?;
    let value = body["value"]
        .as_str()
        .ok_or_else(|| RestError::bad_request("value is required (a string)"))?;
    alter(
        &p,
        &cluster_id,
        &name,
        (config, AlterOp::Set, Some(value.to_string())),
    )
    .await
}

/// Resets the topic config to its default.
async fn reset_topic_config(
    State(p): State<Arc<RestProxy>>,
    Path((cluster_id, name, config)): Path<(String, String, String)>,
) -> Answer {
    alter(&p, &cluster_id, &name, (config, AlterOp::Delete, None)).await
}

/// A key or value to produce: its bytes and the type answered back.
struct Field {
    bytes: Option<Bytes>,
    kind: String,
}

/// Reads one `key` or `value` of a produce request.
async fn field(p: &RestProxy, topic: &str, is_key: bool, spec: &Value) -> Result<Field, RestError> {
    if spec.is_null() {
        return Ok(Field {
            bytes: None,
            kind: "BINARY".to_string(),
        });
    }
    if !spec.is_object() {
        return Err(RestError::bad_request(format!(
            "the {} is an object such as {{\"type\": \"JSON\", \"data\": ...}}, not {spec}",
            if is_key { "key" } else { "value" }
        )));
    }
    let data = &spec["data"];
    let given = |k: &str| !spec[k].is_null();
    if given("schema_id") && (given("raw_schema") || given("schema_version")) {
        return Err(RestError::bad_request(
            "schema_id cannot come with raw_schema or schema_version",
        ));
    }
    if given("raw_schema") && given("schema_version") {
        return Err(RestError::bad_request(
            "raw_schema cannot come with schema_version",
        ));
    }
    for k in ["subject", "raw_schema", "subject_name_strategy"] {
        if given(k) && !spec[k].is_string() {
            return Err(RestError::bad_request(format!("{k} must be a string")));
        }
    }
    let schema_asked = ["schema_id", "schema_version", "subject", "raw_schema"]
        .into_iter()
        .any(given);
    let kind = spec["type"]
        .as_str()
        .map(str::to_ascii_uppercase)
        .unwrap_or_else(|| {
            if schema_asked {
                "SCHEMA".to_string()
            } else {
                "JSON".to_string()
            }
        });
    let plain = |bytes: Option<Vec<u8>>, kind: &str| Field {
        bytes: bytes.map(Bytes::from),
        kind: kind.to_string(),
    };
    if data.is_null() && kind != "JSON" {
        return Ok(plain(None, &kind));
    }
    match kind.as_str() {
        "BINARY" => {
            let text = data
                .as_str()
                .ok_or_else(|| RestError::bad_request("BINARY data must be a base64 string"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| RestError::bad_request(format!("BINARY data is not base64: {e}")))?;
            Ok(plain(Some(bytes), "BINARY"))
        }
        "STRING" => {
            let text = data
                .as_str()
                .ok_or_else(|| RestError::bad_request("STRING data must be a string"))?;
            Ok(plain(Some(text.as_bytes().to_vec()), "STRING"))
        }
        "JSON" if !schema_asked => Ok(plain(
            (!data.is_null()).then(|| data.to_string().into_bytes()),
            "JSON",
        )),
        "AVRO" | "JSONSCHEMA" | "PROTOBUF" | "SCHEMA" | "JSON" => {
            let registry_error = |e: crate::registry::ApiError| {
                let (status, code, message) = e.parts();
                RestError::new(status, code, message.to_string())
            };
            let (id, schema) = match (spec["schema_id"].as_i64(), spec["raw_schema"].as_str()) {
                (Some(id), _) => {
                    let id = i32::try_from(id)
                        .map_err(|_| RestError::bad_request("schema_id is out of range"))?;
                    (
                        id,
                        p.registry.parsed_by_id(id).await.map_err(registry_error)?,
                    )
                }
                // A schema given whole: registered under its subject (or
                // found there), as Confluent's proxy does.
                (None, Some(text)) => {
                    let schema_type = match kind.as_str() {
                        "AVRO" => SchemaType::Avro,
                        "JSONSCHEMA" => SchemaType::Json,
                        "PROTOBUF" => SchemaType::Protobuf,
                        _ => {
                            return Err(RestError::bad_request(
                                "raw_schema needs type AVRO, JSONSCHEMA or PROTOBUF",
                            ))
                        }
                    };
                    let parsed = Parsed::parse(schema_type, text, &[])
                        .map_err(|e| RestError::new(StatusCode::UNPROCESSABLE_ENTITY, 42201, e))?;
                    let subject = subject_of(topic, is_key, spec, Some(&parsed))?;
                    // The registry answers the id of this schema (the same
                    // schema, however laid out): what was parsed here is
                    // what the record is written with.
                    let id = super::register_schema(p, &subject, schema_type, text).await?;
                    (id, parsed)
                }
                (None, None) => {
                    let subject = subject_of(topic, is_key, spec, None)?;
                    let version =
                        match &spec["schema_version"] {
                            Value::Null => VersionSpec::Latest,
                            v => VersionSpec::Number(
                                v.as_i64().and_then(|n| i32::try_from(n).ok()).ok_or_else(
                                    || RestError::bad_request("schema_version must be an integer"),
                                )?,
                            ),
                        };
                    p.registry
                        .parsed_by_subject(&subject, version)
                        .await
                        .map_err(registry_error)?
                }
            };
            let answered = match schema.schema_type() {
                vltava_registry::schema::SchemaType::Avro => "AVRO",
                vltava_registry::schema::SchemaType::Json => "JSONSCHEMA",
                vltava_registry::schema::SchemaType::Protobuf => "PROTOBUF",
            };
            let bytes = vltava_registry::wire::from_json(&schema, id, data).map_err(|e| {
                RestError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    42207,
                    format!("{}: {e}", if is_key { "key" } else { "value" }),
                )
            })?;
            Ok(plain(Some(bytes), answered))
        }
        other => Err(RestError::bad_request(format!(
            "type {other} is not one of BINARY, JSON, STRING, AVRO, JSONSCHEMA, PROTOBUF"
        ))),
    }
}

/// The subject a key's or value's schema is under: `subject` if given,
/// else what `subject_name_strategy` makes of the topic and the schema's
/// record name (`TOPIC_NAME`, the default: `TOPIC-key`/`TOPIC-value`;
/// `RECORD_NAME`; `TOPIC_RECORD_NAME`: `TOPIC-<record name>`). A record
/// name is known only from a `raw_schema`.
fn subject_of(
    topic: &str,
    is_key: bool,
    spec: &Value,
    schema: Option<&Parsed>,
) -> Result<String, RestError> {
    if let Some(subject) = spec["subject"].as_str() {
        return Ok(subject.to_string());
    }
    let strategy = spec["subject_name_strategy"]
        .as_str()
        .unwrap_or("TOPIC_NAME")
        .to_ascii_uppercase();
    let record_name = || {
        schema
            .and_then(|s| s.record_names().into_iter().next())
            .ok_or_else(|| {
                RestError::bad_request(format!(
                    "subject_name_strategy {strategy} needs a raw_schema with a record name"
                ))
            })
    };
    match strategy.as_str() {
        "TOPIC_NAME" => Ok(format!("{topic}-{}", if is_key { "key" } else { "value" })),
        "RECORD_NAME" => record_name(),
        "TOPIC_RECORD_NAME" => Ok(format!("{topic}-{}", record_name()?)),
        other => Err(RestError::bad_request(format!(
            "subject_name_strategy {other} is not one of TOPIC_NAME, RECORD_NAME, TOPIC_RECORD_NAME"
        ))),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn rfc3339(ms: i64) -> String {
    let (y, mo, d, h, mi, s, millis) = vltava_client::calendar::utc_fields(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{millis:03}Z")
}

/// Produces one record of a request; the answer object for it.
async fn produce_one(
    p: &RestProxy,
    c: &str,
    topic: &str,
    partitions: usize,
    request: &Value,
) -> Result<Value, RestError> {
    if !request.is_object() {
        return Err(RestError::bad_request("each record is a JSON object"));
    }
    let partition = match &request["partition_id"] {
        Value::Null => None,
        v => Some(
            v.as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| RestError::bad_request("partition_id must be a partition number"))?,
        ),
    };
    if partition.is_some_and(|n| n as usize >= partitions) {
        return Err(RestError::not_found(
            40403,
            "This server does not host this topic-partition.",
        ));
    }
    let timestamp_ms = match &request["timestamp"] {
        Value::Null => None,
        Value::String(t) => Some(crate::console::parse_utc(t).ok_or_else(|| {
            RestError::bad_request(format!("timestamp {t} is not an RFC 3339 time"))
        })?),
        _ => {
            return Err(RestError::bad_request(
                "timestamp must be an RFC 3339 string",
            ))
        }
    };
    let mut headers = Vec::new();
    if let Some(list) = request["headers"].as_array() {
        for h in list {
            let name = h["name"]
                .as_str()
                .ok_or_else(|| RestError::bad_request("each header has a name"))?;
            let value = match &h["value"] {
                Value::Null => None,
                Value::String(v) => Some(Bytes::from(
                    base64::engine::general_purpose::STANDARD
                        .decode(v)
                        .map_err(|e| {
                            RestError::bad_request(format!(
                                "header {name}'s value is not base64: {e}"
                            ))
                        })?,
                )),
                _ => {
                    return Err(RestError::bad_request(
                        "a header value is a base64 string or null",
                    ))
                }
            };
            headers.push((name.to_string(), value));
        }
    }
    let key = field(p, topic, true, &request["key"]).await?;
    let value = field(p, topic, false, &request["value"]).await?;
    let sizes = (
        key.bytes.as_ref().map(Bytes::len),
        value.bytes.as_ref().map(Bytes::len),
    );
    let producer = p.producer().await?;
    let delivery = producer
        .send(ProducerRecord {
            topic: topic.to_string(),
            partition,
            key: key.bytes,
            value: value.bytes,
            headers,
            timestamp_ms,
        })
        .await
        .map_err(|e| RestError::from_client(&e))?;
    let sent = delivery
        .await
        .map_err(|_| RestError::unavailable("the producer stopped".to_string()))?
        .map_err(|e| RestError::from_client(&e))?;
    let described = |size: Option<usize>, kind: &str| {
        size.map_or(Value::Null, |s| json!({"type": kind, "size": s}))
    };
    Ok(json!({
        "error_code": 200,
        "cluster_id": c,
        "topic_name": topic,
        "partition_id": sent.partition,
        "offset": sent.offset,
        "timestamp": rfc3339(sent.timestamp_ms),
        "key": described(sizes.0, &key.kind),
        "value": described(sizes.1, &value.kind),
    }))
}

/// One record, or a stream of records (JSON objects one after another):
/// one answer object each, in order. A single record's failure is the
/// answer's status; in a stream each failed record's object carries its
/// own `error_code` and the others are still produced.
async fn produce(
    State(p): State<Arc<RestProxy>>,
    Path((cluster_id, topic)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let c = checked(&p, &cluster_id)?;
    let mut requests = Vec::new();
    for item in serde_json::Deserializer::from_slice(&body).into_iter::<Value>() {
        let item =
            item.map_err(|e| RestError::bad_request(format!("the body is not JSON: {e}")))?;
        if requests.len() >= RECORDS_PER_REQUEST_MAX {
            return Err(RestError::bad_request(format!(
                "at most {RECORDS_PER_REQUEST_MAX} records in one request"
            )));
        }
        requests.push(item);
    }
    if requests.is_empty() {
        return Err(RestError::bad_request("the body holds no record"));
    }
    let partitions = {
        let (_, admin) = p.kafka_admin().await?;
        described(&admin, &topic).await?.partitions.len()
    };
    if requests.len() == 1 {
        let one = produce_one(&p, &c, &topic, partitions, &requests[0]).await?;
        return ok(one);
    }
    let mut out = String::new();
    for request in &requests {
        let one = match produce_one(&p, &c, &topic, partitions, request).await {
            Ok(v) => v,
            Err(e) => json!({"error_code": e.code, "message": e.message}),
        };
        out.push_str(&one.to_string());
        out.push('\n');
    }
    Ok((
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, V3_CONTENT_TYPE)],
        out,
    )
        .into_response())
}

fn group_path(c: &str, g: &str) -> String {
    format!(
        "/v3/clusters/{c}/consumer-groups/{}",
        crate::http_client::path_segment(g)
    )
}

fn group_data(base: &str, c: &str, d: &vltava_client::admin::GroupDescription) -> Value {
    let path = group_path(c, &d.group_id);
    json!({
        "kind": "KafkaConsumerGroup",
        "metadata": metadata(base, &path, &format!("crn:///kafka={c}/consumer-group={}", d.group_id)),
        "cluster_id": c,
        "consumer_group_id": d.group_id,
        "is_simple": d.protocol_type.is_empty() && d.members.is_empty(),
        "partition_assignor": d.protocol,
        "state": d.state.to_ascii_uppercase(),
        "type": d.group_type.to_ascii_uppercase(),
        "coordinator": related(base, &format!("/v3/clusters/{c}/brokers/{}", d.coordinator)),
        "consumers": related(base, &format!("{path}/consumers")),
        "lag_summary": related(base, &format!("{path}/lag-summary")),
    })
}

async fn described_group(
    admin: &KafkaAdmin,
    group: &str,
) -> Result<vltava_client::admin::GroupDescription, RestError> {
    let d = admin
        .describe_any_group(group)
        .await
        .map_err(|e| RestError::from_client(&e))?;
    if d.state.eq_ignore_ascii_case("Dead") {
        return Err(RestError::not_found(
            404,
            format!("Consumer group {group} cannot be found."),
        ));
    }
    Ok(d)
}

async fn groups(
    State(p): State<Arc<RestProxy>>,
    BaseUrl(base): BaseUrl,
    Path(cluster_id): Path<String>,
) -> Answer {
    let (c, admin) = p.cluster_admin(&cluster_id).await?;
    let listed = admin
        .list_groups()
        .await
        .map_err(|e| RestError::from_client(&e))?;
    let mut data = Vec::new();
    for g in listed {
        if let Ok(d) = described_group(&admin, &g.group_id).await {
            data.push(group_data(&base, &c, &d));
        }
    }
    ok(list(
        "KafkaConsumerGroupList",
        &base,
        &format!("/v3/clusters/{c}/consumer-groups"),
        data,
    ))
}

async fn group(
    State(p): State<Arc<RestProxy>>,
    BaseUrl(base): BaseUrl,
    Path((cluster_id, group)): Path<(String, String)>,
) -> Answer {
    let (c, admin) = p.cluster_admin(&cluster_id).await?;
    ok(group_data(
        &base,
        &c,
        &described_group(&admin, &group).await?,
    ))
}

async fn group_consumers(
    State(p): State<Arc<RestProxy>>,
    BaseUrl(base): BaseUrl,
    Path((cluster_id, group)): Path<(String, String)>,
) -> Answer {
    let (c, admin) = p.cluster_admin(&cluster_id).await?;
    let d = described_group(&admin, &group).await?;
    let path = group_path(&c, &group);
    let data = d
        .members
        .iter()
        .map(|m| {
            let me = format!("{path}/consumers/{}", crate::http_client::path_segment(&m.member_id));
            json!({
                "kind": "KafkaConsumer",
                "metadata": metadata(&base, &me, &format!("crn:///kafka={c}/consumer-group={group}/consumer={}", m.member_id)),
                "cluster_id": c,
                "consumer_group_id": group,
                "consumer_id": m.member_id,
                "instance_id": m.group_instance_id,
                "client_id": m.client_id,
                "assignments": related(&base, &format!("{me}/assignments")),
            })
        })
        .collect();
    ok(list(
        "KafkaConsumerList",
        &base,
        &format!("{path}/consumers"),
        data,
    ))
}

/// Each partition's lag with the member that owns it (if any).
async fn lag_rows(
    admin: &KafkaAdmin,
    group: &str,
) -> Result<
    (
        vltava_client::admin::GroupDescription,
        Vec<(OffsetRow, Option<usize>)>,
    ),
    RestError,
> {
    let d = described_group(admin, group).await?;
    let rows = offsets(admin, group, &assigned(&d))
        .await
        .map_err(|e| RestError::from_client(&e))?;
    let owners: BTreeMap<_, usize> = d
        .members
        .iter()
        .enumerate()
        .flat_map(|(i, m)| m.assignment.iter().map(move |tp| (tp.clone(), i)))
        .collect();
    let rows = rows
        .into_iter()
        .map(|r| {
            let owner = owners.get(&r.tp).copied();
            (r, owner)
        })
        .collect();
    Ok((d, rows))
}

async fn group_lags(
    State(p): State<Arc<RestProxy>>,
    BaseUrl(base): BaseUrl,
    Path((cluster_id, group)): Path<(String, String)>,
) -> Answer {
    let (c, admin) = p.cluster_admin(&cluster_id).await?;
    let (d, rows) = lag_rows(&admin, &group).await?;
    let path = group_path(&c, &group);
    let data = rows
        .iter()
        .map(|(r, owner)| {
            let member = owner.map(|i| &d.members[i]);
            let me = format!("{path}/lags/{}/partitions/{}", r.tp.0, r.tp.1);
            json!({
                "kind": "KafkaConsumerLag",
                "metadata": metadata(&base, &me, &format!("crn:///kafka={c}/consumer-group={group}/lag={}/partition={}", r.tp.0, r.tp.1)),
                "cluster_id": c,
                "consumer_group_id": group,
                "topic_name": r.tp.0,
                "partition_id": r.tp.1,
                "current_offset": r.committed,
                "log_end_offset": r.end,
                "lag": r.lag(),
                "consumer_id": member.map_or("", |m| m.member_id.as_str()),
                "instance_id": member.and_then(|m| m.group_instance_id.clone()),
                "client_id": member.map_or("", |m| m.client_id.as_str()),
            })
        })
        .collect();
    ok(list(
        "KafkaConsumerLagList",
        &base,
        &format!("{path}/lags"),
        data,
    ))
}

async fn group_lag_summary(
    State(p): State<Arc<RestProxy>>,
    BaseUrl(base): BaseUrl,
    Path((cluster_id, group)): Path<(String, String)>,
) -> Answer {
    let (c, admin) = p.cluster_admin(&cluster_id).await?;
    let (d, rows) = lag_rows(&admin, &group).await?;
    let path = group_path(&c, &group);
    let total: i64 = rows.iter().filter_map(|(r, _)| r.lag()).sum();
    let max = rows
        .iter()
        .filter(|(r, _)| r.lag().is_some())
        .max_by_key(|(r, _)| r.lag());
    let member = max.and_then(|(_, owner)| owner.map(|i| &d.members[i]));
    let mut v = json!({
        "kind": "KafkaConsumerGroupLagSummary",
        "metadata": metadata(&base, &format!("{path}/lag-summary"), &format!("crn:///kafka={c}/consumer-group={group}/lag-summary")),
        "cluster_id": c,
        "consumer_group_id": group,
        "max_lag_consumer_id": member.map_or("", |m| m.member_id.as_str()),
        "max_lag_instance_id": member.and_then(|m| m.group_instance_id.clone()),
        "max_lag_client_id": member.map_or("", |m| m.client_id.as_str()),
        "max_lag_topic_name": max.map_or("", |(r, _)| r.tp.0.as_str()),
        "max_lag_partition_id": max.map_or(-1, |(r, _)| r.tp.1),
        "max_lag": max.and_then(|(r, _)| r.lag()).unwrap_or(0),
        "total_lag": total,
    });
    if let Some((r, _)) = max {
        v["max_lag_partition"] = related(
            &base,
            &format!("/v3/clusters/{c}/topics/{}/partitions/{}", r.tp.0, r.tp.1),
        );
        if let Some(m) = member {
            v["max_lag_consumer"] = related(&base, &format!("{path}/consumers/{}", m.member_id));
        }
    }
    ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc_with_milliseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_612_552_482_123), "2021-02-05T19:14:42.123Z");
    }
}
