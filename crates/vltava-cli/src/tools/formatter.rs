//! How `vltava console-consumer` prints a record: Kafka's message
//! formatters by their class names (`--formatter`), configured by
//! `--property` and `--formatter-config` as Kafka's are, plus a JSON
//! formatter of Vltava's own.
//!
//! - `DefaultMessageFormatter` (the default): the `print.*` columns joined
//!   by `key.separator`, exactly as Kafka writes them, with Kafka's
//!   `key.deserializer` / `value.deserializer` / `headers.deserializer`
//!   for the common types.
//! - `LoggingMessageFormatter`: the same, and each record logged at INFO
//!   (shown with `RUST_LOG=info`; Kafka's tools log at WARN by default too).
//! - `NoOpMessageFormatter`: prints nothing (to count or to time a read).
//! - `json`: one JSON object per record, for scripts (see [`json_line`]).
//! - Confluent's `AvroMessageFormatter`, `JsonSchemaMessageFormatter` and
//!   `ProtobufMessageFormatter`: `DefaultMessageFormatter`'s columns with
//!   keys and values decoded through the registry at
//!   `schema.registry.url` (keys too, unless `key.deserializer` is set), and
//!   with `print.schema.ids=true` each followed by `schema.id.separator`
//!   (a tab) and its schema id (see [`super::schema_formatter`]).
//!
//! The formatters of Kafka's internal topics (offsets, group metadata,
//! transactions) are refused by name: Vltava stores those differently.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use vltava_client::ConsumerRecord;

use super::fail;
use super::schema_formatter::SchemaDecoder;

/// A formatter chosen by `--formatter`.
#[derive(Debug, Clone)]
pub enum MessageFormatter {
    Default(DefaultFormatter),
    Logging(DefaultFormatter),
    NoOp,
    Json(Deserializers),
}

impl MessageFormatter {
    /// The formatter named `class` (Kafka's class names, with or without
    /// the package; `json` for Vltava's), configured by `props`.
    pub fn new(class: Option<&str>, props: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let name = class.map_or("DefaultMessageFormatter", |c| {
            c.rsplit('.').next().unwrap_or(c)
        });
        Ok(match name {
            "DefaultMessageFormatter" => Self::Default(DefaultFormatter::from_properties(props)?),
            "LoggingMessageFormatter" => Self::Logging(DefaultFormatter::from_properties(props)?),
            "NoOpMessageFormatter" => Self::NoOp,
            "AvroMessageFormatter" | "JsonSchemaMessageFormatter" | "ProtobufMessageFormatter" => {
                let Some(url) = props.get("schema.registry.url") else {
                    return fail(format!(
                        "Error: formatter {} needs --property schema.registry.url=http://HOST:PORT",
                        class.unwrap_or(name)
                    ));
                };
                if let Err(e) = vltava_server::http_client::authority(url) {
                    return fail(format!("Error: schema.registry.url: {e}"));
                }
                let print_ids = props
                    .get("print.schema.ids")
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
                let separator = props.get("schema.id.separator").map_or("\t", String::as_str);
                let mut formatter = DefaultFormatter::from_properties(props)?;
                formatter.registry = Some(Arc::new(SchemaDecoder::new(url, print_ids, separator)));
                if !props.contains_key("key.deserializer") {
                    formatter.deserializers.key = Deserializer::Registry;
                }
                if !props.contains_key("value.deserializer") {
                    formatter.deserializers.value = Deserializer::Registry;
                }
                Self::Default(formatter)
            }
            "json" | "JsonMessageFormatter" => Self::Json(Deserializers::from_properties(props)?),
            "OffsetsMessageFormatter"
            | "GroupMetadataMessageFormatter"
            | "TransactionLogMessageFormatter"
            | "ShareGroupStateMessageFormatter" => {
                return fail(format!(
                    "Error: formatter {} reads Kafka's internal topic records, which Vltava stores in its own format; use `vltava consumer-groups --describe` to see groups and offsets",
                    class.unwrap_or(name)
                ))
            }
            _ => {
                return fail(format!(
                    "Error: unknown formatter {}: use kafka.tools.DefaultMessageFormatter, kafka.tools.LoggingMessageFormatter, kafka.tools.NoOpMessageFormatter or json",
                    class.unwrap_or(name)
                ))
            }
        })
    }

    /// Reads what `records` need from the schema registry before they are
    /// written (nothing for formatters without one).
    pub async fn prepare(&self, records: &[ConsumerRecord]) {
        if let Self::Default(f) | Self::Logging(f) = self {
            if let Some(registry) = &f.registry {
                let keys = f.print_key && f.deserializers.key == Deserializer::Registry;
                let values = f.print_value && f.deserializers.value == Deserializer::Registry;
                registry.prepare(records, keys, values).await;
            }
        }
    }

    /// The bytes to print for one record, or the text of Kafka's
    /// `SerializationException` when a deserializer cannot read it.
    pub fn write(&self, r: &ConsumerRecord) -> Result<Vec<u8>, String> {
        match self {
            Self::Default(f) => f.format(r),
            Self::Logging(f) => {
                let out = f.format(r)?;
                let timestamp = format!("{}:{}, ", r.timestamp_type, r.timestamp_ms);
                let key = match &r.key {
                    Some(k) => format!("{}, ", String::from_utf8_lossy(k)),
                    None => "null ".to_string(),
                };
                let value = r
                    .value
                    .as_ref()
                    .map_or("null".into(), |v| String::from_utf8_lossy(v));
                tracing::info!("{timestamp}key:{key}value:{value}");
                Ok(out)
            }
            Self::NoOp => Ok(Vec::new()),
            Self::Json(d) => json_line(r, d),
        }
    }
}

/// A Kafka `Deserializer` the formatters understand, by class name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deserializer {
    /// No deserializer: the bytes as they are.
    Raw,
    String,
    Long,
    Integer,
    Short,
    Double,
    Float,
    Uuid,
    Void,
    /// Confluent's wire format, decoded through the schema registry.
    Registry,
}

impl Deserializer {
    fn named(key: &str, class: &str) -> anyhow::Result<Deserializer> {
        let name = class.trim().rsplit('.').next().unwrap_or(class);
        Ok(match name {
            "StringDeserializer" => Self::String,
            "ByteArrayDeserializer" | "BytesDeserializer" | "ByteBufferDeserializer" => Self::Raw,
            "LongDeserializer" => Self::Long,
            "IntegerDeserializer" => Self::Integer,
            "ShortDeserializer" => Self::Short,
            "DoubleDeserializer" => Self::Double,
            "FloatDeserializer" => Self::Float,
            "UUIDDeserializer" => Self::Uuid,
            "VoidDeserializer" => Self::Void,
            _ => return fail(format!(
                "Error: {key}={class} is not supported: the console consumer knows Kafka's String, ByteArray, Bytes, ByteBuffer, Long, Integer, Short, Double, Float, UUID and Void deserializers"
            )),
        })
    }

    /// The text of `data`, as Kafka prints the deserialized object.
    pub fn text(self, data: &[u8]) -> Result<Vec<u8>, String> {
        fn sized<const N: usize>(data: &[u8], name: &str) -> Result<[u8; N], String> {
            data.try_into()
                .map_err(|_| format!("Size of data received by {name} is not {N}"))
        }
        Ok(match self {
            Self::Raw => data.to_vec(),
            Self::String => String::from_utf8_lossy(data).into_owned().into_bytes(),
            Self::Long => i64::from_be_bytes(sized(data, "LongDeserializer")?)
                .to_string()
                .into_bytes(),
            Self::Integer => i32::from_be_bytes(sized(data, "IntegerDeserializer")?)
                .to_string()
                .into_bytes(),
            Self::Short => i16::from_be_bytes(sized(data, "ShortDeserializer")?)
                .to_string()
                .into_bytes(),
            Self::Double => {
                java_double(f64::from_be_bytes(sized(data, "DoubleDeserializer")?)).into_bytes()
            }
            Self::Float => {
                let f = f32::from_be_bytes(sized(data, "FloatDeserializer")?);
                java_double_digits(f64::from(f), &f.to_string(), &format!("{f:E}")).into_bytes()
            }
            Self::Uuid => std::str::from_utf8(data)
                .ok()
                .and_then(|s| uuid::Uuid::parse_str(s).ok())
                .map(|u| u.hyphenated().to_string().into_bytes())
                .ok_or_else(|| "Error parsing data into UUID".to_string())?,
            Self::Void => return Err("Data should be null for a VoidDeserializer.".to_string()),
            Self::Registry => {
                return Err(
                    "decoding through a schema registry needs a schema formatter".to_string(),
                )
            }
        })
    }
}

/// Java's `Double.toString`: plain with at least one decimal between 10^-3
/// and 10^7, else computerized scientific notation (`1.0E7`).
fn java_double(d: f64) -> String {
    java_double_digits(d, &d.to_string(), &format!("{d:E}"))
}

fn java_double_digits(d: f64, plain: &str, scientific: &str) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let magnitude = d.abs();
    if magnitude == 0.0 || (1e-3..1e7).contains(&magnitude) {
        if plain.contains('.') {
            plain.to_string()
        } else {
            format!("{plain}.0")
        }
    } else {
        match scientific.split_once('E') {
            Some((mantissa, exponent)) if !mantissa.contains('.') => {
                format!("{mantissa}.0E{exponent}")
            }
            _ => scientific.to_string(),
        }
    }
}

/// The key, value and header deserializers from `key.deserializer`,
/// `value.deserializer` and `headers.deserializer`.
#[derive(Debug, Clone, Copy)]
pub struct Deserializers {
    pub key: Deserializer,
    pub value: Deserializer,
    pub headers: Deserializer,
}

impl Deserializers {
    fn from_properties(props: &BTreeMap<String, String>) -> anyhow::Result<Deserializers> {
        let get = |key: &str| match props.get(key) {
            Some(class) => Deserializer::named(key, class),
            None => Ok(Deserializer::Raw),
        };
        Ok(Deserializers {
            key: get("key.deserializer")?,
            value: get("value.deserializer")?,
            headers: get("headers.deserializer")?,
        })
    }
}

/// `DefaultMessageFormatter`'s settings.
#[derive(Debug, Clone)]
pub struct DefaultFormatter {
    pub print_timestamp: bool,
    pub print_partition: bool,
    pub print_offset: bool,
    pub print_delivery: bool,
    pub print_epoch: bool,
    pub print_headers: bool,
    pub print_key: bool,
    pub print_value: bool,
    pub key_separator: String,
    pub line_separator: String,
    pub headers_separator: String,
    pub null_literal: String,
    pub deserializers: Deserializers,
    /// Where [`Deserializer::Registry`] fields are decoded.
    pub registry: Option<Arc<SchemaDecoder>>,
}

impl DefaultFormatter {
    pub fn from_properties(props: &BTreeMap<String, String>) -> anyhow::Result<DefaultFormatter> {
        let flag = |k: &str, d: bool| {
            props
                .get(k)
                .map_or(d, |v| v.trim().eq_ignore_ascii_case("true"))
        };
        let text = |k: &str, d: &str| props.get(k).cloned().unwrap_or_else(|| d.to_string());
        Ok(DefaultFormatter {
            print_timestamp: flag("print.timestamp", false),
            print_partition: flag("print.partition", false),
            print_offset: flag("print.offset", false),
            print_delivery: flag("print.delivery", false),
            print_epoch: flag("print.epoch", false),
            print_headers: flag("print.headers", false),
            print_key: flag("print.key", false),
            print_value: flag("print.value", true),
            key_separator: text("key.separator", "\t"),
            line_separator: text("line.separator", "\n"),
            headers_separator: text("headers.separator", ","),
            null_literal: text("null.literal", "null"),
            deserializers: Deserializers::from_properties(props)?,
            registry: None,
        })
    }

    /// One record, exactly as `DefaultMessageFormatter.writeTo` writes it.
    pub fn format(&self, r: &ConsumerRecord) -> Result<Vec<u8>, String> {
        let mut columns: Vec<Vec<u8>> = Vec::new();
        if self.print_timestamp {
            columns.push(format!("{}:{}", r.timestamp_type, r.timestamp_ms).into_bytes());
        }
        if self.print_partition {
            columns.push(format!("Partition:{}", r.partition).into_bytes());
        }
        if self.print_offset {
            columns.push(format!("Offset:{}", r.offset).into_bytes());
        }
        if self.print_delivery {
            // Delivery counts exist only for share groups, which the
            // console consumer does not join.
            columns.push(b"Delivery:NOT_PRESENT".to_vec());
        }
        if self.print_epoch {
            columns.push(
                r.leader_epoch
                    .map_or("Epoch:NOT_PRESENT".to_string(), |e| format!("Epoch:{e}"))
                    .into_bytes(),
            );
        }
        if self.print_headers {
            if r.headers.is_empty() {
                columns.push(b"NO_HEADERS".to_vec());
            } else {
                let mut h = Vec::new();
                for (i, (k, v)) in r.headers.iter().enumerate() {
                    if i > 0 {
                        h.extend_from_slice(self.headers_separator.as_bytes());
                    }
                    h.extend_from_slice(k.as_bytes());
                    h.push(b':');
                    h.extend_from_slice(&self.field(v, self.deserializers.headers)?);
                }
                columns.push(h);
            }
        }
        if self.print_key {
            columns.push(self.field(&r.key, self.deserializers.key)?);
        }
        if self.print_value {
            columns.push(self.field(&r.value, self.deserializers.value)?);
        }
        let mut out = Vec::new();
        let count = columns.len();
        for (i, c) in columns.into_iter().enumerate() {
            out.extend_from_slice(&c);
            // Columns are joined by key.separator and the last one ends the
            // line (Kafka's `writeSeparator(columnSeparator)`).
            if i + 1 < count {
                out.extend_from_slice(self.key_separator.as_bytes());
            } else {
                out.extend_from_slice(self.line_separator.as_bytes());
            }
        }
        Ok(out)
    }

    /// A key, value or header value: `null.literal` when absent, else what
    /// its deserializer makes of it.
    fn field(&self, v: &Option<Bytes>, deserializer: Deserializer) -> Result<Vec<u8>, String> {
        match (v, &self.registry) {
            (Some(b), Some(registry)) if deserializer == Deserializer::Registry => registry.text(b),
            (Some(b), _) => deserializer.text(b),
            (None, _) => Ok(self.null_literal.as_bytes().to_vec()),
        }
    }
}

/// One record as a JSON object on one line:
///
/// `{"topic":"t","partition":0,"offset":7,"timestamp":1000,"timestampType":"CreateTime","leaderEpoch":0,"headers":[{"key":"h","value":"v"}],"key":"k","value":"v"}`
///
/// Keys, values and header values are JSON strings (or `null`). Bytes that
/// are not UTF-8 are base64 and the object says so with `keyEncoding`,
/// `valueEncoding` or a header's `valueEncoding` set to `"base64"`. A
/// configured deserializer's text is always a string. `leaderEpoch` is
/// `null` when the batch carries none.
pub fn json_line(r: &ConsumerRecord, d: &Deserializers) -> Result<Vec<u8>, String> {
    let mut headers = Vec::with_capacity(r.headers.len());
    for (k, v) in &r.headers {
        let (value, value_encoding) = json_text(v, d.headers)?;
        headers.push(JsonHeader {
            key: k,
            value,
            value_encoding,
        });
    }
    let (key, key_encoding) = json_text(&r.key, d.key)?;
    let (value, value_encoding) = json_text(&r.value, d.value)?;
    let line = JsonRecord {
        topic: &r.topic,
        partition: r.partition,
        offset: r.offset,
        timestamp: r.timestamp_ms,
        timestamp_type: r.timestamp_type,
        leader_epoch: r.leader_epoch,
        headers,
        key,
        key_encoding,
        value,
        value_encoding,
    };
    let mut out = serde_json::to_vec(&line).map_err(|e| e.to_string())?;
    out.push(b'\n');
    Ok(out)
}

/// A field's JSON string (UTF-8 text, else base64 with the encoding named).
fn json_text(
    v: &Option<Bytes>,
    deserializer: Deserializer,
) -> Result<(Option<String>, Option<&'static str>), String> {
    let Some(bytes) = v else {
        return Ok((None, None));
    };
    Ok(match String::from_utf8(deserializer.text(bytes)?) {
        Ok(s) => (Some(s), None),
        Err(e) => (
            Some(base64::engine::general_purpose::STANDARD.encode(e.as_bytes())),
            Some("base64"),
        ),
    })
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonRecord<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: i64,
    timestamp_type: &'a str,
    leader_epoch: Option<i32>,
    headers: Vec<JsonHeader<'a>>,
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_encoding: Option<&'static str>,
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_encoding: Option<&'static str>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonHeader<'a> {
    key: &'a str,
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_encoding: Option<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp_ms: 1000,
            timestamp_type: "CreateTime",
            key: Some(Bytes::from_static(b"k")),
            value: None,
            headers: vec![("h".into(), Some(Bytes::from_static(b"v")))],
            leader_epoch: Some(3),
        }
    }

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn default_output(pairs: &[(&str, &str)], r: &ConsumerRecord) -> Result<String, String> {
        let f = MessageFormatter::new(None, &props(pairs)).unwrap();
        f.write(r).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn confluents_schema_formatters_decode_through_the_registry_with_their_properties() {
        use vltava_registry::schema::{Parsed, SchemaType};
        let url = ("schema.registry.url", "http://127.0.0.1:8081");
        for class in [
            "io.confluent.kafka.formatter.AvroMessageFormatter",
            "io.confluent.kafka.formatter.JsonSchemaMessageFormatter",
            "io.confluent.kafka.formatter.ProtobufMessageFormatter",
        ] {
            let f = MessageFormatter::new(
                Some(class),
                &props(&[
                    url,
                    ("print.key", "true"),
                    ("print.schema.ids", "true"),
                    ("schema.id.separator", "|"),
                ]),
            )
            .unwrap();
            let MessageFormatter::Default(d) = &f else {
                panic!("{class}")
            };
            assert_eq!(
                (d.deserializers.key, d.deserializers.value),
                (Deserializer::Registry, Deserializer::Registry)
            );
            d.registry.as_ref().unwrap().remember(
                3,
                Parsed::parse(SchemaType::Json, r#"{"type":"object"}"#, &[]).unwrap(),
            );
            let mut r = record();
            let mut wire = vec![0, 0, 0, 0, 3];
            wire.extend_from_slice(br#"{"n": 1}"#);
            r.key = Some(Bytes::from(wire.clone()));
            r.value = Some(Bytes::from(wire));
            assert_eq!(
                String::from_utf8(f.write(&r).unwrap()).unwrap(),
                "{\"n\":1}|3\t{\"n\":1}|3\n",
                "{class}"
            );
        }
        // A key deserializer named keeps keys away from the registry.
        let f = MessageFormatter::new(
            Some("JsonSchemaMessageFormatter"),
            &props(&[
                url,
                (
                    "key.deserializer",
                    "org.apache.kafka.common.serialization.StringDeserializer",
                ),
            ]),
        )
        .unwrap();
        let MessageFormatter::Default(d) = &f else {
            panic!()
        };
        assert_eq!(d.deserializers.key, Deserializer::String);
        // Without a registry URL, or with one that is not http://, it says so.
        let err = MessageFormatter::new(Some("AvroMessageFormatter"), &props(&[])).unwrap_err();
        assert!(err.to_string().contains("schema.registry.url"), "{err}");
        let err = MessageFormatter::new(
            Some("AvroMessageFormatter"),
            &props(&[("schema.registry.url", "https://x:8081")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("http://"), "{err}");
    }

    #[test]
    fn value_only_by_default() {
        assert_eq!(default_output(&[], &record()).unwrap(), "null\n");
    }

    #[test]
    fn every_column_in_kafka_order() {
        let all = [
            ("print.timestamp", "true"),
            ("print.partition", "true"),
            ("print.offset", "true"),
            ("print.delivery", "true"),
            ("print.epoch", "true"),
            ("print.headers", "true"),
            ("print.key", "true"),
        ];
        assert_eq!(
            default_output(&all, &record()).unwrap(),
            "CreateTime:1000\tPartition:2\tOffset:7\tDelivery:NOT_PRESENT\tEpoch:3\th:v\tk\tnull\n"
        );
        // Without the value the last column ends the line.
        let mut r = record();
        r.leader_epoch = None;
        assert_eq!(
            default_output(&[("print.epoch", "true"), ("print.value", "false")], &r).unwrap(),
            "Epoch:NOT_PRESENT\n"
        );
    }

    #[test]
    fn deserializers_print_numbers_as_java_does() {
        let mut r = record();
        r.key = Some(Bytes::copy_from_slice(&42i64.to_be_bytes()));
        r.value = Some(Bytes::copy_from_slice(&1.5e10f64.to_be_bytes()));
        let pairs = [
            ("print.key", "true"),
            (
                "key.deserializer",
                "org.apache.kafka.common.serialization.LongDeserializer",
            ),
            ("value.deserializer", "DoubleDeserializer"),
        ];
        assert_eq!(default_output(&pairs, &r).unwrap(), "42\t1.5E10\n");
        r.value = Some(Bytes::copy_from_slice(&2.0f64.to_be_bytes()));
        assert_eq!(default_output(&pairs, &r).unwrap(), "42\t2.0\n");
        r.key = Some(Bytes::from_static(b"short"));
        assert_eq!(
            default_output(&pairs, &r).unwrap_err(),
            "Size of data received by LongDeserializer is not 8"
        );
        assert_eq!(java_double(0.0005), "5.0E-4");
        assert_eq!(java_double(-123.25), "-123.25");
        assert_eq!(java_double(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn unknown_and_internal_formatters_are_refused() {
        let e = MessageFormatter::new(Some("com.example.Fancy"), &BTreeMap::new()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Error: unknown formatter com.example.Fancy"),
            "{e}"
        );
        let e = MessageFormatter::new(
            Some("org.apache.kafka.tools.consumer.OffsetsMessageFormatter"),
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("internal topic"), "{e}");
        let e = MessageFormatter::new(None, &props(&[("key.deserializer", "AvroDeserializer")]))
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Error: key.deserializer=AvroDeserializer is not supported"),
            "{e}"
        );
    }

    #[test]
    fn json_lines_say_how_bytes_are_encoded() {
        let mut r = record();
        r.value = Some(Bytes::from_static(&[0xff, 0x00]));
        r.headers.push(("n".into(), None));
        let f = MessageFormatter::new(Some("json"), &BTreeMap::new()).unwrap();
        assert_eq!(
            String::from_utf8(f.write(&r).unwrap()).unwrap(),
            r#"{"topic":"t","partition":2,"offset":7,"timestamp":1000,"timestampType":"CreateTime","leaderEpoch":3,"headers":[{"key":"h","value":"v"},{"key":"n","value":null}],"key":"k","value":"/wA=","valueEncoding":"base64"}"#.to_string() + "\n"
        );
        assert_eq!(
            String::from_utf8(MessageFormatter::NoOp.write(&r).unwrap()).unwrap(),
            ""
        );
    }
}
