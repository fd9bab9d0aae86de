//! The schema registry's rules, apart from how they are served: schema
//! parsing into the form that is stored and compared, and the
//! compatibility levels Confluent's registry enforces between a subject's
//! versions. No I/O here; the HTTP API and the `_schemas` topic that will
//! serve and keep them build on this.
//!
//! - [`avro`]: parsing an Avro schema and its normalized JSON (two texts
//!   that parse to the same schema compare equal, defaults and docs kept).
//! - [`compat`]: NONE, BACKWARD, FORWARD, FULL and their transitive forms,
//!   as reader/writer resolution between the new schema and the versions
//!   before it.
//! - [`store`]: the registry's state folded from `_schemas` records in
//!   Confluent's layout (subjects, versions, global ids, levels, soft and
//!   permanent deletes), and the records each change writes.
//!
//! Only Avro so far; JSON Schema and Protobuf come with the registry's
//! HTTP API.

pub mod avro;
pub mod avro_json;
pub mod compat;
pub mod json;
pub mod protobuf;
pub mod schema;
pub mod store;
pub mod wire;
