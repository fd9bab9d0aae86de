//! Avro schemas as the registry keeps them.

use apache_avro::Schema;

/// The longest schema text taken: a registered schema is one record of the
/// `_schemas` topic, which Kafka's default `max.message.bytes` caps near
/// 1 MiB.
pub const SCHEMA_TEXT_BYTES_MAX: usize = 1024 * 1024;

/// A parsed Avro schema and the text it is stored and compared as.
#[derive(Debug, Clone)]
pub struct AvroSchema {
    schema: Schema,
    normalized: String,
}

impl AvroSchema {
    /// Parses `text`; `Err` says why it is not an Avro schema (Confluent's
    /// 42201, invalid schema).
    pub fn parse(text: &str) -> Result<AvroSchema, String> {
        if text.len() > SCHEMA_TEXT_BYTES_MAX {
            return Err(format!(
                "the schema is {} bytes, over the {SCHEMA_TEXT_BYTES_MAX} bytes a schema may have",
                text.len()
            ));
        }
        let schema = Schema::parse_str(text).map_err(|e| format!("invalid Avro schema: {e}"))?;
        // The schema as the library writes it back: whitespace, key order
        // and shorthand (`"string"` for `{"type": "string"}`) gone, but
        // defaults, docs and aliases kept: they change what a reader does,
        // so two schemas that differ in them are different schemas (Avro's
        // Parsing Canonical Form drops them and would merge those).
        let normalized = serde_json::to_string(&schema)
            .map_err(|e| format!("invalid Avro schema: cannot write it back: {e}"))?;
        Ok(AvroSchema { schema, normalized })
    }

    /// The text two equal schemas share.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }
}

impl PartialEq for AvroSchema {
    fn eq(&self, other: &Self) -> bool {
        self.normalized == other.normalized
    }
}

impl Eq for AvroSchema {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_shorthand_do_not_make_another_schema_but_defaults_do() {
        let a = AvroSchema::parse(
            r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"name","type":"string","default":""}]}"#,
        )
        .unwrap();
        let b = AvroSchema::parse(
            r#"{
                "name": "User", "type": "record",
                "fields": [
                    {"type": {"type": "long"}, "name": "id"},
                    {"name": "name", "default": "", "type": "string"}
                ]
            }"#,
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.normalized(), b.normalized());
        let other_default = AvroSchema::parse(
            r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"name","type":"string","default":"x"}]}"#,
        )
        .unwrap();
        assert_ne!(a, other_default);
    }

    #[test]
    fn what_is_not_an_avro_schema_is_refused_with_a_reason() {
        for (text, why) in [
            ("", "invalid Avro schema"),
            ("{", "invalid Avro schema"),
            (r#"{"type":"record","name":"R"}"#, "invalid Avro schema"),
            (r#"{"type":"nosuchtype"}"#, "invalid Avro schema"),
            (
                r#"{"type":"enum","name":"E","symbols":["A","A"]}"#,
                "invalid Avro schema",
            ),
        ] {
            let err = AvroSchema::parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
        let huge = format!("\"{}\"", "x".repeat(SCHEMA_TEXT_BYTES_MAX));
        assert!(AvroSchema::parse(&huge)
            .unwrap_err()
            .contains("bytes a schema may have"));
        // Nesting past serde_json's depth limit is an error, not a stack
        // overflow.
        let deep = format!(
            "{}\"int\"{}",
            "{\"type\":\"array\",\"items\":".repeat(10_000),
            "}".repeat(10_000)
        );
        assert!(AvroSchema::parse(&deep).is_err());
    }
}
