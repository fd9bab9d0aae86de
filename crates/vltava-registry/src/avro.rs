//! Avro schemas as the registry keeps them.

use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use apache_avro::Schema;

/// A parsed Avro schema and the text it is stored and compared as.
#[derive(Debug, Clone)]
pub struct AvroSchema {
    schema: Schema,
    /// The schemas its references brought in (their named types), for
    /// decoding data.
    deps: Vec<Schema>,
    normalized: String,
}

impl AvroSchema {
    /// Parses `text`; `Err` says why it is not an Avro schema (Confluent's
    /// 42201, invalid schema).
    pub fn parse(text: &str) -> Result<AvroSchema, String> {
        AvroSchema::parse_with(text, &[])
    }

    /// Parses `text`, whose named types may come from `deps` (the schemas
    /// its references resolve to).
    pub fn parse_with(text: &str, deps: &[&str]) -> Result<AvroSchema, String> {
        crate::schema::size_checked(text)?;
        let (schema, deps) = if deps.is_empty() {
            Schema::parse_str(text).map(|schema| (schema, Vec::new()))
        } else {
            Schema::parse_str_with_list(text, deps)
        }
        .map_err(|e| format!("invalid Avro schema: {e}"))?;
        // The schema as the library writes it back: whitespace, key order
        // and shorthand (`"string"` for `{"type": "string"}`) gone, but
        // defaults, docs and aliases kept: they change what a reader does,
        // so two schemas that differ in them are different schemas (Avro's
        // Parsing Canonical Form drops them and would merge those).
        let normalized = serde_json::to_string(&schema)
            .map_err(|e| format!("invalid Avro schema: cannot write it back: {e}"))?;
        Ok(AvroSchema {
            schema,
            deps,
            normalized,
        })
    }

    /// The text two equal schemas share.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The named types its references brought in.
    pub fn deps(&self) -> &[Schema] {
        &self.deps
    }
}

/// Whether `reader` decodes everything `writer` can write; `Err` says why
/// not. A resolution that only works for some data (an enum missing some
/// of the writer's symbols, a union missing some branches) is a failure,
/// as in Avro's Java checker that Confluent uses. Types from references
/// are compared by name: their own subjects check their evolution.
pub fn reads(writer: &AvroSchema, reader: &AvroSchema) -> Result<(), String> {
    match SchemaCompatibility::can_read(writer.schema(), reader.schema()) {
        Ok(Compatibility::Full) => Ok(()),
        Ok(Compatibility::Partial) => Err(
            "it can read only part of the data (enum symbols or union branches are missing)"
                .to_string(),
        ),
        Err(e) => Err(e.to_string()),
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
    use crate::schema::SCHEMA_TEXT_BYTES_MAX;

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
