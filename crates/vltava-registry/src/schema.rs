//! A schema of any of the registry's formats: its type, what it was parsed
//! into, and the reader/writer question compatibility asks of it.

use crate::avro::AvroSchema;
use crate::json::JsonSchema;
use crate::protobuf::ProtoSchema;
use crate::store::RegistryError;

/// The longest schema text taken: a registered schema is one record of the
/// `_schemas` topic, which Kafka's default `max.message.bytes` caps near
/// 1 MiB.
pub const SCHEMA_TEXT_BYTES_MAX: usize = 1024 * 1024;

/// Refuses a schema text over [`SCHEMA_TEXT_BYTES_MAX`] before any parser
/// reads it.
pub(crate) fn size_checked(text: &str) -> Result<(), String> {
    if text.len() > SCHEMA_TEXT_BYTES_MAX {
        return Err(format!(
            "the schema is {} bytes, over the {SCHEMA_TEXT_BYTES_MAX} bytes a schema may have",
            text.len()
        ));
    }
    Ok(())
}

/// A schema format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SchemaType {
    Avro,
    Json,
    Protobuf,
}

impl SchemaType {
    pub const ALL: [SchemaType; 3] = [SchemaType::Avro, SchemaType::Json, SchemaType::Protobuf];

    /// Confluent's `schemaType` (absent means Avro), in any case.
    pub fn parse(name: Option<&str>) -> Result<SchemaType, RegistryError> {
        let Some(name) = name else {
            return Ok(SchemaType::Avro);
        };
        SchemaType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                RegistryError::InvalidSchema(format!(
                    "Invalid schema type {name}: the types are AVRO, JSON and PROTOBUF"
                ))
            })
    }

    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }
}

/// A schema a reference brings in: the name the referencing schema uses
/// for it (an Avro full name, a `.proto` import path, a `$ref` URL) and
/// its text. Avro ignores the name: named types carry their own.
#[derive(Debug, Clone, Copy)]
pub struct Dependency<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

/// A parsed schema.
#[derive(Debug, Clone)]
pub enum Parsed {
    Avro(AvroSchema),
    Json(JsonSchema),
    /// Boxed: a compiled descriptor is several times the others' size.
    Protobuf(Box<ProtoSchema>),
}

impl Parsed {
    /// Parses `text` as a `schema_type` schema whose references resolve to
    /// `deps` (every schema reachable through them); `Err` says why not.
    pub fn parse(
        schema_type: SchemaType,
        text: &str,
        deps: &[Dependency],
    ) -> Result<Parsed, String> {
        let named: Vec<(&str, &str)> = deps.iter().map(|d| (d.name, d.text)).collect();
        Ok(match schema_type {
            SchemaType::Avro => {
                let texts: Vec<&str> = deps.iter().map(|d| d.text).collect();
                Parsed::Avro(AvroSchema::parse_with(text, &texts)?)
            }
            SchemaType::Json => Parsed::Json(JsonSchema::parse(text, &named)?),
            SchemaType::Protobuf => Parsed::Protobuf(Box::new(ProtoSchema::parse(text, &named)?)),
        })
    }

    pub fn schema_type(&self) -> SchemaType {
        match self {
            Parsed::Avro(_) => SchemaType::Avro,
            Parsed::Json(_) => SchemaType::Json,
            Parsed::Protobuf(_) => SchemaType::Protobuf,
        }
    }

    /// The text two equal schemas of this type share.
    pub fn normalized(&self) -> &str {
        match self {
            Parsed::Avro(s) => s.normalized(),
            Parsed::Json(s) => s.normalized(),
            Parsed::Protobuf(s) => s.normalized(),
        }
    }

    /// The names Confluent's `RecordNameStrategy` gives records of this
    /// schema as their subject: an Avro record's full name (nothing for
    /// another top-level type), a JSON Schema's `title`, and the full name
    /// of each message a Protobuf file declares, in declaration order (a
    /// record names one by its message indexes; the schema is named by the
    /// first).
    pub fn record_names(&self) -> Vec<String> {
        match self {
            Parsed::Avro(s) => match s.schema() {
                apache_avro::Schema::Record(record) => vec![record.name.fullname(None)],
                _ => Vec::new(),
            },
            Parsed::Json(s) => s.title().map(str::to_string).into_iter().collect(),
            Parsed::Protobuf(s) => {
                let Some(file) = s.pool().get_file_by_name(s.file().name()) else {
                    return Vec::new();
                };
                // In declaration order, each message before its nested
                // ones: the first is the file's first message, the one a
                // Protobuf schema is named by.
                let mut names = Vec::new();
                let mut todo: Vec<_> = file.messages().collect();
                todo.reverse();
                while let Some(message) = todo.pop() {
                    names.push(message.full_name().to_string());
                    todo.extend(
                        message
                            .child_messages()
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev(),
                    );
                }
                names
            }
        }
    }

    /// Why `reader` cannot read everything written with `writer`: empty
    /// when it can.
    pub fn reads(writer: &Parsed, reader: &Parsed) -> Vec<String> {
        match (writer, reader) {
            (Parsed::Avro(w), Parsed::Avro(r)) => {
                crate::avro::reads(w, r).err().into_iter().collect()
            }
            (Parsed::Json(w), Parsed::Json(r)) => crate::json::reads(w, r),
            (Parsed::Protobuf(w), Parsed::Protobuf(r)) => crate::protobuf::reads(w, r),
            (w, r) => vec![format!(
                "the schema type changed from {} to {}",
                w.schema_type().name(),
                r.schema_type().name()
            )],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names_are_what_the_record_name_strategy_takes() {
        let names = |t: SchemaType, text: &str| Parsed::parse(t, text, &[]).unwrap().record_names();
        assert_eq!(
            names(
                SchemaType::Avro,
                r#"{"type":"record","name":"User","namespace":"shop","fields":[]}"#
            ),
            ["shop.User"]
        );
        assert!(names(SchemaType::Avro, r#""string""#).is_empty());
        assert_eq!(
            names(SchemaType::Json, r#"{"title":"Order","type":"object"}"#),
            ["Order"]
        );
        assert!(names(SchemaType::Json, r#"{"type":"object"}"#).is_empty());
        assert_eq!(
            names(
                SchemaType::Protobuf,
                "syntax = \"proto3\";\npackage shop;\nmessage Z { message B { int32 x = 1; } }\nmessage C { int32 y = 1; }\n"
            ),
            ["shop.Z", "shop.Z.B", "shop.C"]
        );
    }
}
