//! Decoding keys and values through a schema registry for the console
//! consumer's schema formatters (Confluent's `AvroMessageFormatter`,
//! `JsonSchemaMessageFormatter`, `ProtobufMessageFormatter`, with
//! `--property schema.registry.url=...`): a record's schema id is looked
//! up once (`/schemas/ids/N`, then each reference's version), parsed with
//! the registry's own parsers, and the body printed as one line of JSON.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use vltava_client::ConsumerRecord;
use vltava_registry::schema::{Dependency, Parsed, SchemaType};
use vltava_registry::store::REFERENCES_MAX;
use vltava_registry::wire;
use vltava_server::http_client::path_segment;

/// The most bytes of one registry answer read.
const ANSWER_BYTES_MAX: usize = 4 * 1024 * 1024;

/// How long one registry request may take.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(15);

/// Schema ids remembered (each a parsed schema); past it the cache starts
/// over rather than growing with a topic of hostile ids.
const SCHEMAS_CACHED_MAX: usize = 10_000;

/// A registry and the schemas read from it so far.
#[derive(Debug)]
pub struct SchemaDecoder {
    url: String,
    print_ids: bool,
    id_separator: String,
    schemas: Mutex<HashMap<i32, Result<Arc<Parsed>, String>>>,
}

impl SchemaDecoder {
    pub fn new(url: &str, print_ids: bool, id_separator: &str) -> SchemaDecoder {
        SchemaDecoder {
            url: url.trim_end_matches('/').to_string(),
            print_ids,
            id_separator: id_separator.to_string(),
            schemas: Mutex::new(HashMap::new()),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Result<Arc<Parsed>, String>>> {
        self.schemas
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fetches the schemas of `records`' keys (`keys`) and values not read
    /// yet, so that [`SchemaDecoder::text`] needs no I/O.
    pub async fn prepare(&self, records: &[ConsumerRecord], keys: bool, values: bool) {
        // A failed fetch is tried again with the next batch (the registry
        // may have been unreachable for a moment).
        self.cache().retain(|_, fetched| fetched.is_ok());
        let mut wanted = Vec::new();
        for r in records {
            let fields = [(keys, &r.key), (values, &r.value)];
            for (on, field) in fields {
                if let Some((id, _)) = field.as_deref().filter(|_| on).and_then(wire::schema_id) {
                    if !wanted.contains(&id) && !self.cache().contains_key(&id) {
                        wanted.push(id);
                    }
                }
            }
        }
        for id in wanted {
            let fetched = self.fetch(id).await.map(Arc::new);
            let mut cache = self.cache();
            if cache.len() >= SCHEMAS_CACHED_MAX {
                cache.clear();
            }
            cache.insert(id, fetched);
        }
    }

    /// Takes `schema` as id `id`'s, as a fetch would (tests).
    #[cfg(test)]
    pub fn remember(&self, id: i32, schema: Parsed) {
        self.cache().insert(id, Ok(Arc::new(schema)));
    }

    /// The JSON text of a key or value in Confluent's wire format, with its
    /// schema id after it when `print.schema.ids` asks.
    pub fn text(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        let (id, body) = wire::schema_id(data).ok_or("Unknown magic byte!".to_string())?;
        let schema = match self.cache().get(&id) {
            Some(Ok(schema)) => schema.clone(),
            Some(Err(why)) => return Err(format!("Error retrieving schema for id {id}: {why}")),
            None => return Err(format!("Error retrieving schema for id {id}: not fetched")),
        };
        let mut out = wire::to_json(&schema, body)
            .map_err(|e| format!("Error deserializing payload for id {id}: {e}"))?
            .into_bytes();
        if self.print_ids {
            out.extend_from_slice(self.id_separator.as_bytes());
            out.extend_from_slice(id.to_string().as_bytes());
        }
        Ok(out)
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        let (status, body) =
            vltava_server::http_client::get(&self.url, path, ANSWER_BYTES_MAX, REGISTRY_TIMEOUT)
                .await
                .map_err(|e| format!("{}{path}: {e}", self.url))?;
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("{}{path} answered {status} with no JSON: {e}", self.url))?;
        if status != 200 {
            return Err(format!(
                "{}{path} answered {status}: {}",
                self.url,
                value["message"].as_str().unwrap_or_default()
            ));
        }
        Ok(value)
    }

    /// Schema `id` with every schema its references reach.
    async fn fetch(&self, id: i32) -> Result<Parsed, String> {
        let top = self.get(&format!("/schemas/ids/{id}")).await?;
        // (name, text) of each dependency, and the references still to read.
        let mut deps: Vec<(String, String)> = Vec::new();
        let mut todo: Vec<Value> = references(&top);
        let mut seen = std::collections::HashSet::new();
        while let Some(r) = todo.pop() {
            let (Some(name), Some(subject), Some(version)) = (
                r["name"].as_str(),
                r["subject"].as_str(),
                r["version"].as_i64(),
            ) else {
                return Err(format!("schema {id} has a malformed reference: {r}"));
            };
            if !seen.insert((name.to_string(), subject.to_string(), version)) {
                continue;
            }
            if seen.len() > REFERENCES_MAX {
                return Err(format!(
                    "schema {id} reaches more than {REFERENCES_MAX} schemas"
                ));
            }
            let dep = self
                .get(&format!(
                    "/subjects/{}/versions/{version}",
                    path_segment(subject)
                ))
                .await?;
            todo.extend(references(&dep));
            let text = dep["schema"].as_str().unwrap_or_default().to_string();
            deps.push((name.to_string(), text));
        }
        deps.reverse();
        let schema_type = SchemaType::parse(top["schemaType"].as_str()).map_err(|e| e.message())?;
        let text = top["schema"].as_str().ok_or("the answer has no schema")?;
        let deps: Vec<Dependency> = deps
            .iter()
            .map(|(name, text)| Dependency { name, text })
            .collect();
        Parsed::parse(schema_type, text, &deps)
    }
}

fn references(answer: &Value) -> Vec<Value> {
    answer["references"].as_array().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_without_the_prefix_or_a_fetched_schema_say_why() {
        let d = SchemaDecoder::new("http://127.0.0.1:1", true, "\t");
        assert_eq!(d.text(b"plain").unwrap_err(), "Unknown magic byte!");
        assert!(d.text(&[0, 0, 0, 0, 7, 1]).unwrap_err().contains("id 7"));
        let parsed = Parsed::parse(SchemaType::Json, r#"{"type":"object"}"#, &[]).unwrap();
        d.cache().insert(3, Ok(Arc::new(parsed)));
        let mut data = vec![0, 0, 0, 0, 3];
        data.extend_from_slice(br#"{"a": 1}"#);
        assert_eq!(d.text(&data).unwrap(), b"{\"a\":1}\t3");
    }
}
