//! Confluent REST Proxy's v2 topics: `GET /topics`, `GET /topics/T`,
//! `GET /topics/T/partitions`, and producing with `POST /topics/T` or
//! `POST /topics/T/partitions/P`, the records' format named by the content
//! type (`application/vnd.kafka.{binary,json,avro,jsonschema,protobuf}.v2+json`).
//!
//! A schema format takes `key_schema_id` / `value_schema_id`, or the
//! schema itself in `key_schema` / `value_schema`, registered under
//! `TOPIC-key` / `TOPIC-value` through this node's schema registry (as
//! Confluent's proxy registers it), which answers with its id. Each record
//! is answered in `offsets`, in order, with its partition and offset or
//! its own `error_code` and `error`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use vltava_client::admin::ResourceType;
use vltava_client::producer::ProducerRecord;
use vltava_registry::schema::{Parsed, SchemaType};

use super::{
    answer, json_body, Answer, RecordFormat as Format, RestError, RestProxy,
    RECORDS_PER_REQUEST_MAX, V2_CONTENT_TYPE,
};

pub fn routes() -> Router<Arc<RestProxy>> {
    Router::new()
        .route("/topics", get(topics))
        .route("/topics/{topic}", get(topic).post(produce_any))
        .route("/topics/{topic}/partitions", get(partitions))
        .route(
            "/topics/{topic}/partitions/{partition}",
            get(partition).post(produce_to),
        )
}

fn v2_ok(value: Value) -> Answer {
    Ok(answer(StatusCode::OK, V2_CONTENT_TYPE, &value))
}

fn topic_missing() -> RestError {
    RestError::not_found(40401, "Topic not found.").v2()
}

async fn described(
    p: &RestProxy,
    name: &str,
) -> Result<vltava_client::client::TopicInfo, RestError> {
    let (_, admin) = p.kafka_admin().await.map_err(RestError::v2)?;
    let found = admin
        .describe_topics(&[name.to_string()])
        .await
        .map_err(|e| RestError::from_client(&e).v2())?;
    found
        .into_iter()
        .next()
        .filter(|t| t.error_code == 0)
        .ok_or_else(topic_missing)
}

fn partition_json(p: &vltava_client::client::PartitionInfo) -> Value {
    json!({
        "partition": p.partition,
        "leader": p.leader,
        "replicas": p.replicas.iter().map(|b| json!({
            "broker": b,
            "leader": *b == p.leader,
            "in_sync": p.isr.contains(b),
        })).collect::<Vec<_>>(),
    })
}

async fn topics(State(p): State<Arc<RestProxy>>) -> Answer {
    let (_, admin) = p.kafka_admin().await.map_err(RestError::v2)?;
    let all = admin
        .list_topics()
        .await
        .map_err(|e| RestError::from_client(&e).v2())?;
    v2_ok(json!(all
        .iter()
        .map(|t| t.name.as_str())
        .collect::<Vec<_>>()))
}

async fn topic(State(p): State<Arc<RestProxy>>, Path(name): Path<String>) -> Answer {
    let t = described(&p, &name).await?;
    let (_, admin) = p.kafka_admin().await.map_err(RestError::v2)?;
    let configs: serde_json::Map<String, Value> = admin
        .describe_configs(ResourceType::Topic, &name)
        .await
        .map_err(|e| RestError::from_client(&e).v2())?
        .into_iter()
        .filter(|e| !e.is_sensitive)
        .map(|e| (e.name, e.value.map_or(Value::Null, Value::from)))
        .collect();
    v2_ok(json!({
        "name": t.name,
        "configs": configs,
        "partitions": t.partitions.iter().map(partition_json).collect::<Vec<_>>(),
    }))
}

async fn partitions(State(p): State<Arc<RestProxy>>, Path(name): Path<String>) -> Answer {
    let t = described(&p, &name).await?;
    v2_ok(json!(t
        .partitions
        .iter()
        .map(partition_json)
        .collect::<Vec<_>>()))
}

async fn partition(
    State(p): State<Arc<RestProxy>>,
    Path((name, index)): Path<(String, String)>,
) -> Answer {
    let t = described(&p, &name).await?;
    match t
        .partitions
        .iter()
        .find(|x| x.partition.to_string() == index)
    {
        Some(x) => v2_ok(partition_json(x)),
        None => Err(RestError::not_found(40402, "Partition not found.").v2()),
    }
}

/// The records' format, from the request's content type.
fn format_of(headers: &HeaderMap) -> Result<Format, RestError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let embedded = content_type
        .strip_prefix("application/vnd.kafka.")
        .and_then(|rest| rest.split_once(".v2+json").map(|(f, _)| f));
    embedded.and_then(Format::parse).ok_or_else(|| {
        RestError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            415,
            format!(
                "Content-Type {content_type} names no record format: use application/vnd.kafka.{{binary,json,avro,jsonschema,protobuf}}.v2+json"
            ),
        )
        .v2()
    })
}

async fn produce_any(
    State(p): State<Arc<RestProxy>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    produce(&p, &name, None, &headers, &body).await
}

async fn produce_to(
    State(p): State<Arc<RestProxy>>,
    Path((name, index)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let index = index
        .parse::<i32>()
        .ok()
        .filter(|i| *i >= 0)
        .ok_or_else(|| RestError::not_found(40402, "Partition not found.").v2())?;
    produce(&p, &name, Some(index), &headers, &body).await
}

/// The schema a key or value is written with: by id, or registered.
async fn schema_for(
    p: &RestProxy,
    topic: &str,
    which: &str,
    schema_type: SchemaType,
    body: &Value,
) -> Result<Option<(i32, Parsed)>, RestError> {
    let registry_error = |e: crate::registry::ApiError| {
        let (status, code, message) = e.parts();
        RestError::new(status, code, message.to_string()).v2()
    };
    if let Some(id) = body[format!("{which}_schema_id")].as_i64() {
        let id = i32::try_from(id).map_err(|_| {
            RestError::bad_request(format!("{which}_schema_id is out of range")).v2()
        })?;
        let parsed = p.registry.parsed_by_id(id).await.map_err(registry_error)?;
        return Ok(Some((id, parsed)));
    }
    let Some(text) = body[format!("{which}_schema")].as_str() else {
        return Ok(None);
    };
    let subject = format!("{topic}-{which}");
    let id = super::register_schema(p, &subject, schema_type, text)
        .await
        .map_err(RestError::v2)?;
    let parsed = p.registry.parsed_by_id(id).await.map_err(registry_error)?;
    Ok(Some((id, parsed)))
}

/// A key or value in the request's format, as bytes.
fn encoded(
    format: Format,
    schema: Option<&(i32, Parsed)>,
    data: &Value,
    which: &str,
) -> Result<Option<Bytes>, String> {
    if data.is_null() {
        return Ok(None);
    }
    let bytes = match format {
        Format::Binary => base64::engine::general_purpose::STANDARD
            .decode(
                data.as_str()
                    .ok_or(format!("the {which} must be a base64 string"))?,
            )
            .map_err(|e| format!("the {which} is not base64: {e}"))?,
        Format::Json => data.to_string().into_bytes(),
        Format::Schema(_) => {
            let (id, parsed) = schema.ok_or(format!(
                "a {which} needs {which}_schema_id or {which}_schema"
            ))?;
            vltava_registry::wire::from_json(parsed, *id, data)
                .map_err(|e| format!("the {which}: {e}"))?
        }
    };
    Ok(Some(Bytes::from(bytes)))
}

async fn produce(
    p: &RestProxy,
    topic: &str,
    fixed_partition: Option<i32>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Answer {
    let format = format_of(headers)?;
    let body = json_body(body).map_err(RestError::v2)?;
    let records = body["records"]
        .as_array()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            RestError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                42201,
                "records is a non-empty list",
            )
            .v2()
        })?;
    if records.len() > RECORDS_PER_REQUEST_MAX {
        return Err(RestError::bad_request(format!(
            "at most {RECORDS_PER_REQUEST_MAX} records in one request"
        ))
        .v2());
    }
    let partitions = described(p, topic).await?.partitions.len();
    if fixed_partition.is_some_and(|i| i as usize >= partitions) {
        return Err(RestError::not_found(40402, "Partition not found.").v2());
    }
    let (key_schema, value_schema) = match format {
        Format::Schema(t) => (
            schema_for(p, topic, "key", t, &body).await?,
            schema_for(p, topic, "value", t, &body).await?,
        ),
        _ => (None, None),
    };
    let producer = p.producer().await.map_err(RestError::v2)?;
    // Every record is sent before any answer is awaited: they go out in
    // batches, in order.
    let mut sent = Vec::with_capacity(records.len());
    for r in records {
        let partition = match (&r["partition"], fixed_partition) {
            (_, Some(fixed)) => Ok(Some(fixed)),
            (Value::Null, None) => Ok(None),
            (v, None) => v
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .filter(|n| *n >= 0 && (*n as usize) < partitions)
                .map(Some)
                .ok_or_else(|| (40402, "Partition not found.".to_string())),
        };
        let key = encoded(format, key_schema.as_ref(), &r["key"], "key").map_err(|e| (42203, e));
        let value =
            encoded(format, value_schema.as_ref(), &r["value"], "value").map_err(|e| (42203, e));
        let outcome = match (partition, key, value) {
            (Ok(partition), Ok(key), Ok(value)) => producer
                .send(ProducerRecord {
                    topic: topic.to_string(),
                    partition,
                    key,
                    value,
                    headers: Vec::new(),
                    timestamp_ms: None,
                })
                .await
                .map_err(|e| (50002, e.to_string())),
            (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => Err(e),
        };
        sent.push(outcome);
    }
    let mut offsets = Vec::with_capacity(sent.len());
    for outcome in sent {
        let answered = match outcome {
            Ok(delivery) => match delivery.await {
                Ok(Ok(meta)) => {
                    json!({"partition": meta.partition, "offset": meta.offset, "error_code": null, "error": null})
                }
                Ok(Err(e)) => {
                    json!({"partition": null, "offset": null, "error_code": 50002, "error": e.to_string()})
                }
                Err(_) => {
                    json!({"partition": null, "offset": null, "error_code": 50002, "error": "the producer stopped"})
                }
            },
            Err((code, why)) => {
                json!({"partition": null, "offset": null, "error_code": code, "error": why})
            }
        };
        offsets.push(answered);
    }
    v2_ok(json!({
        "key_schema_id": key_schema.map(|(id, _)| id),
        "value_schema_id": value_schema.map(|(id, _)| id),
        "offsets": offsets,
    }))
}
