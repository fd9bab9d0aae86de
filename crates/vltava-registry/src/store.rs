//! The registry's state, folded from the records of the compacted
//! `_schemas` topic in Confluent's layout, and the records each change
//! writes.
//!
//! Records are JSON. Keys name what a record is about and values carry it:
//!
//! | key | value |
//! |---|---|
//! | `{"keytype":"SCHEMA","subject":S,"version":V,"magic":1}` | `{"subject":S,"version":V,"id":I,"schemaType":T,"references":[{"name":N,"subject":S2,"version":V2}],"schema":TEXT,"deleted":B}` (`schemaType` absent for Avro); a tombstone deletes the version for good |
//! | `{"keytype":"CONFIG","subject":S or null,"magic":0}` | `{"compatibilityLevel":L}`; a tombstone drops the setting |
//! | `{"keytype":"MODE","subject":S or null,"magic":0}` | `{"mode":M}` (`READWRITE`, `READONLY`, `READONLY_OVERRIDE`); a tombstone drops the setting |
//! | `{"keytype":"VLTAVA_ID","magic":0}` | `{"next":N}`: the next id to give, so ids stay unused after the schemas holding them are deleted for good and compacted away (Vltava's own) |
//! | `{"keytype":"VLTAVA_NODE","node":N,"magic":0}` | `{"url":U}`: where node N's registry answers, for other nodes to forward writes to (Vltava's own; only node N writes it) |
//!
//! Other key types (Confluent's `NOOP`, `DELETE_SUBJECT`, ...) are
//! skipped. The latest record of a key decides, as compaction keeps only
//! it, so the state is the same before and after the topic is compacted.
//! That holds only if one writer at a time writes a given key: the serving
//! layer serializes writes.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::compat::{check, Level};
pub use crate::schema::SchemaType;
use crate::schema::{Dependency, Parsed};

/// The longest subject name taken, in bytes (Kafka's string limit: a
/// subject is usually a topic name with `-key`/`-value`).
pub const SUBJECT_BYTES_MAX: usize = i16::MAX as usize;

/// The most versions one subject may hold; a registration past it is
/// refused (Confluent has no such limit; a subject with this many is a
/// runaway producer registering every message's schema).
pub const VERSIONS_PER_SUBJECT_MAX: usize = 100_000;

/// The most references one schema may have, and the most schemas it may
/// reach through them (references of references included).
pub const REFERENCES_MAX: usize = crate::protobuf::FILES_MAX;

/// A schema's reference to another subject's version, by the name the
/// schema uses for it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

impl Reference {
    /// The `references` of a request body or a `_schemas` record (absent
    /// or `null`: none).
    pub fn list_from(value: Option<&Value>) -> Result<Vec<Reference>, RegistryError> {
        let invalid =
            |why: &str| RegistryError::InvalidSchema(format!("Invalid schema references: {why}"));
        let list = match value {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(list)) => list,
            Some(_) => return Err(invalid("references must be an array")),
        };
        if list.len() > REFERENCES_MAX {
            return Err(invalid(&format!("more than {REFERENCES_MAX} references")));
        }
        list.iter()
            .map(|r| {
                let text = |f: &str| r.get(f).and_then(Value::as_str).map(str::to_string);
                let name = text("name")
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| invalid("a reference has no name"))?;
                let subject =
                    text("subject").ok_or_else(|| invalid("a reference has no subject"))?;
                let version = r
                    .get("version")
                    .and_then(Value::as_i64)
                    .and_then(|v| i32::try_from(v).ok())
                    .filter(|v| *v >= 1 || *v == -1)
                    .ok_or_else(|| {
                        invalid("a reference has no version (1 and up, or -1 for the latest)")
                    })?;
                Ok(Reference {
                    name,
                    subject,
                    version,
                })
            })
            .collect()
    }

    fn json(refs: &[Reference]) -> Value {
        Value::Array(
            refs.iter()
                .map(|r| json!({"name": r.name, "subject": r.subject, "version": r.version}))
                .collect(),
        )
    }
}

/// A registry mode: whether a subject takes writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    ReadWrite,
    ReadOnly,
    /// Set globally: read-only for every subject, whatever its own mode.
    ReadOnlyOverride,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::ReadWrite, Mode::ReadOnly, Mode::ReadOnlyOverride];

    pub fn name(self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
            Mode::ReadOnlyOverride => "READONLY_OVERRIDE",
        }
    }

    /// Confluent's name, in any case. `IMPORT` (registering under ids
    /// given by the client, for migrations) is refused with a reason: the
    /// registry gives every id itself.
    pub fn parse(name: &str) -> Result<Mode, RegistryError> {
        if name.eq_ignore_ascii_case("IMPORT") {
            return Err(RegistryError::InvalidMode(
                "IMPORT mode is not supported: Vltava's registry gives every id itself (migrate by registering the schemas in id order)".to_string(),
            ));
        }
        Mode::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| {
                RegistryError::InvalidMode(format!(
                    "Invalid mode '{name}'. Valid values are READWRITE, READONLY and READONLY_OVERRIDE"
                ))
            })
    }
}

/// Errors with Confluent's error codes and HTTP statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryError {
    SubjectNotFound(String),
    VersionNotFound(String),
    SchemaNotFound(String),
    SubjectSoftDeleted(String),
    SubjectNotSoftDeleted(String),
    VersionSoftDeleted(String),
    VersionNotSoftDeleted(String),
    InvalidSchema(String),
    InvalidVersion(String),
    InvalidLevel(String),
    InvalidSubject(String),
    InvalidMode(String),
    ReadOnly(String),
    ReferenceExists(String),
    Incompatible(Vec<String>),
}

impl RegistryError {
    /// Confluent's `error_code`.
    pub fn code(&self) -> u32 {
        match self {
            RegistryError::SubjectNotFound(_) => 40401,
            RegistryError::VersionNotFound(_) => 40402,
            RegistryError::SchemaNotFound(_) => 40403,
            RegistryError::SubjectSoftDeleted(_) => 40404,
            RegistryError::SubjectNotSoftDeleted(_) => 40405,
            RegistryError::VersionSoftDeleted(_) => 40406,
            RegistryError::VersionNotSoftDeleted(_) => 40407,
            RegistryError::InvalidSchema(_) => 42201,
            RegistryError::InvalidVersion(_) => 42202,
            RegistryError::InvalidLevel(_) => 42203,
            RegistryError::InvalidSubject(_) => 42208,
            RegistryError::ReferenceExists(_) => 42206,
            RegistryError::InvalidMode(_) => 42204,
            RegistryError::ReadOnly(_) => 42205,
            RegistryError::Incompatible(_) => 409,
        }
    }

    /// The HTTP status: the first three digits of the code.
    pub fn status(&self) -> u16 {
        match self.code() {
            409 => 409,
            code => (code / 100) as u16,
        }
    }

    pub fn message(&self) -> String {
        match self {
            RegistryError::Incompatible(problems) => format!(
                "Schema being registered is incompatible with an earlier schema for subject: {}",
                problems.join("; ")
            ),
            RegistryError::SubjectNotFound(m)
            | RegistryError::VersionNotFound(m)
            | RegistryError::SchemaNotFound(m)
            | RegistryError::SubjectSoftDeleted(m)
            | RegistryError::SubjectNotSoftDeleted(m)
            | RegistryError::VersionSoftDeleted(m)
            | RegistryError::VersionNotSoftDeleted(m)
            | RegistryError::InvalidSchema(m)
            | RegistryError::InvalidVersion(m)
            | RegistryError::InvalidLevel(m)
            | RegistryError::InvalidSubject(m)
            | RegistryError::ReferenceExists(m)
            | RegistryError::InvalidMode(m)
            | RegistryError::ReadOnly(m) => m.clone(),
        }
    }
}

/// One version of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub version: i32,
    pub id: i32,
    pub deleted: bool,
}

/// A schema by id: its type, text and references as first registered.
#[derive(Debug, Clone)]
pub struct Stored {
    pub schema_type: SchemaType,
    pub text: String,
    pub references: Vec<Reference>,
    parsed: Parsed,
}

impl Stored {
    pub fn parsed(&self) -> &Parsed {
        &self.parsed
    }
}

/// A record to append to `_schemas`: key and value (`None`: a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// What a registration does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// The subject already holds this schema: its id, nothing to write.
    Exists { id: i32, version: i32 },
    /// A new version: write these records (in order), then the schema has
    /// this id and version.
    New {
        id: i32,
        version: i32,
        writes: Vec<Write>,
    },
}

/// Which version a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    Latest,
    Number(i32),
}

impl VersionSpec {
    /// `latest`, `-1` or a version number from 1 to 2^31-1 (Confluent's
    /// 42202 otherwise).
    pub fn parse(text: &str) -> Result<VersionSpec, RegistryError> {
        if text == "latest" || text == "-1" {
            return Ok(VersionSpec::Latest);
        }
        match text.parse::<i32>() {
            Ok(v) if v >= 1 => Ok(VersionSpec::Number(v)),
            _ => Err(RegistryError::InvalidVersion(format!(
                "The specified version '{text}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
            ))),
        }
    }

    /// `latest` or the number, as error messages name it.
    pub fn name(self) -> String {
        match self {
            VersionSpec::Latest => "latest".to_string(),
            VersionSpec::Number(n) => n.to_string(),
        }
    }
}

/// The registry's state.
#[derive(Debug, Default)]
pub struct Store {
    /// Every version of every subject by number, soft-deleted ones marked.
    subjects: BTreeMap<String, BTreeMap<i32, Version>>,
    /// Every schema by id.
    schemas: BTreeMap<i32, Stored>,
    /// Ids by normalized schema and references, for the same schema to
    /// keep its id.
    ids_by_schema: BTreeMap<SchemaKey, i32>,
    global_level: Option<Level>,
    levels: BTreeMap<String, Level>,
    global_mode: Option<Mode>,
    modes: BTreeMap<String, Mode>,
    /// The next id to give, at least one above every id seen.
    next_id: i32,
    /// Each node's registry URL, as it published it.
    node_urls: BTreeMap<i32, String>,
    /// How many versions (of any subject) hold each id: a schema goes when
    /// its count does, without a scan of every version.
    uses: BTreeMap<i32, usize>,
    /// The ids of the schemas that reference each (subject, version).
    referrers: BTreeMap<(String, i32), std::collections::BTreeSet<i32>>,
}

/// What makes two schemas the same: type, normalized text, references.
type SchemaKey = (SchemaType, String, Vec<Reference>);

fn schema_key_of(parsed: &Parsed, references: &[Reference]) -> SchemaKey {
    (
        parsed.schema_type(),
        parsed.normalized().to_string(),
        references.to_vec(),
    )
}

/// A setting made globally (`subject` `None`) or for one subject, or
/// dropped (`value` `None`).
fn set_scoped<T>(
    global: &mut Option<T>,
    by_subject: &mut BTreeMap<String, T>,
    subject: Option<String>,
    value: Option<T>,
) {
    match (subject, value) {
        (None, value) => *global = value,
        (Some(s), Some(value)) => {
            by_subject.insert(s, value);
        }
        (Some(s), None) => {
            by_subject.remove(&s);
        }
    }
}

/// A subject name a client may write under: 1 to [`SUBJECT_BYTES_MAX`]
/// bytes, no control characters (Confluent's 42208 otherwise).
pub fn subject_checked(subject: &str) -> Result<(), RegistryError> {
    if subject.is_empty()
        || subject.len() > SUBJECT_BYTES_MAX
        || subject.chars().any(char::is_control)
    {
        return Err(RegistryError::InvalidSubject(format!(
            "The specified subject is not a valid subject: it must be 1 to {SUBJECT_BYTES_MAX} bytes without control characters"
        )));
    }
    Ok(())
}

impl Store {
    pub fn new() -> Store {
        Store {
            next_id: 1,
            ..Store::default()
        }
    }

    /// Applies one `_schemas` record. `Err` says why a record was skipped
    /// (not JSON, a key type this registry does not know, a schema that
    /// does not parse); the state is then unchanged.
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        let key: Value =
            serde_json::from_slice(key).map_err(|e| format!("key is not JSON: {e}"))?;
        let value: Option<Value> = match value {
            Some(v) => {
                Some(serde_json::from_slice(v).map_err(|e| format!("value is not JSON: {e}"))?)
            }
            None => None,
        };
        let text =
            |v: &Value, field: &str| v.get(field).and_then(Value::as_str).map(str::to_string);
        let int = |v: &Value, field: &str| {
            v.get(field)
                .and_then(Value::as_i64)
                .and_then(|n| i32::try_from(n).ok())
        };
        match key.get("keytype").and_then(Value::as_str) {
            Some("SCHEMA") => {
                let subject = text(&key, "subject").ok_or("SCHEMA key without a subject")?;
                let version = int(&key, "version")
                    .filter(|v| *v >= 1)
                    .ok_or("SCHEMA key without a version")?;
                let Some(value) = value else {
                    // Deleted for good, and its schema with it once no
                    // version holds it: compaction will leave no record of
                    // it, and a store rebuilt from the topic must agree.
                    let removed = self
                        .subjects
                        .get_mut(&subject)
                        .and_then(|vs| vs.remove(&version));
                    if self.subjects.get(&subject).is_some_and(BTreeMap::is_empty) {
                        self.subjects.remove(&subject);
                    }
                    if let Some(gone) = removed {
                        self.release(gone.id);
                    }
                    return Ok(());
                };
                let id = int(&value, "id")
                    .filter(|id| *id >= 1)
                    .ok_or("SCHEMA value without an id")?;
                let schema_type = SchemaType::parse(text(&value, "schemaType").as_deref())
                    .map_err(|e| e.message())?;
                let schema_text = text(&value, "schema").ok_or("SCHEMA value without a schema")?;
                let references =
                    Reference::list_from(value.get("references")).map_err(|e| e.message())?;
                let deleted = value
                    .get("deleted")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if let Some(held) = self.schemas.get(&id) {
                    // An id is one schema for good: a record giving it to
                    // another (two writers racing a change of owner) is
                    // skipped, as Confluent's registry skips it.
                    let same = (held.schema_type, held.text.as_str(), &held.references)
                        == (schema_type, schema_text.as_str(), &references)
                        || self
                            .parse(schema_type, &schema_text, &references)
                            .is_ok_and(|p| {
                                schema_key_of(&p, &references)
                                    == schema_key_of(&held.parsed, &held.references)
                            });
                    if !same {
                        return Err(format!(
                            "SCHEMA record for {subject} version {version} gives id {id}, which another schema holds"
                        ));
                    }
                } else {
                    let parsed = self
                        .parse(schema_type, &schema_text, &references)
                        .map_err(|e| e.message())?;
                    self.ids_by_schema
                        .entry(schema_key_of(&parsed, &references))
                        .or_insert(id);
                    for r in &references {
                        self.referrers
                            .entry((r.subject.clone(), r.version))
                            .or_default()
                            .insert(id);
                    }
                    self.schemas.insert(
                        id,
                        Stored {
                            schema_type,
                            text: schema_text,
                            references,
                            parsed,
                        },
                    );
                }
                self.next_id = self.next_id.max(id.saturating_add(1));
                let replaced = self.subjects.entry(subject).or_default().insert(
                    version,
                    Version {
                        version,
                        id,
                        deleted,
                    },
                );
                *self.uses.entry(id).or_default() += 1;
                // A version rewritten (deleted softly, or with another id by
                // records written elsewhere) lets go of what it held, as
                // compaction would.
                if let Some(old) = replaced {
                    self.release(old.id);
                }
                Ok(())
            }
            Some("CONFIG") => {
                let level = match &value {
                    None => None,
                    Some(v) => Some(
                        text(v, "compatibilityLevel")
                            .and_then(|l| Level::parse(&l))
                            .ok_or("CONFIG value without a known compatibilityLevel")?,
                    ),
                };
                set_scoped(
                    &mut self.global_level,
                    &mut self.levels,
                    text(&key, "subject"),
                    level,
                );
                Ok(())
            }
            Some("MODE") => {
                let mode = match &value {
                    None => None,
                    Some(v) => Some(
                        text(v, "mode")
                            .and_then(|m| Mode::parse(&m).ok())
                            .ok_or("MODE value without a known mode")?,
                    ),
                };
                set_scoped(
                    &mut self.global_mode,
                    &mut self.modes,
                    text(&key, "subject"),
                    mode,
                );
                Ok(())
            }
            Some("VLTAVA_NODE") => {
                let node = int(&key, "node").ok_or("VLTAVA_NODE key without a node")?;
                match value.as_ref().and_then(|v| text(v, "url")) {
                    Some(url) => {
                        self.node_urls.insert(node, url);
                    }
                    None => {
                        self.node_urls.remove(&node);
                    }
                }
                Ok(())
            }
            // Written by Confluent's registry (a `_schemas` it filled,
            // mirrored here): a subject soft-deleted up to a version (its
            // live versions up to there are marked deleted; nothing is
            // rewritten), and a subject's deleted versions cleared away
            // (before an import).
            Some("DELETE_SUBJECT") => {
                let subject =
                    text(&key, "subject").ok_or("DELETE_SUBJECT key without a subject")?;
                let Some(value) = value else { return Ok(()) };
                let upto =
                    int(&value, "version").ok_or("DELETE_SUBJECT value without a version")?;
                if let Some(versions) = self.subjects.get_mut(&subject) {
                    for version in versions.range_mut(..=upto).map(|(_, v)| v) {
                        version.deleted = true;
                    }
                }
                Ok(())
            }
            Some("CLEAR_SUBJECT") => {
                let subject = text(&key, "subject").ok_or("CLEAR_SUBJECT key without a subject")?;
                if value.is_none() {
                    return Ok(());
                }
                let Some(versions) = self.subjects.get_mut(&subject) else {
                    return Ok(());
                };
                let cleared: Vec<i32> = versions
                    .values()
                    .filter(|v| v.deleted)
                    .map(|v| v.version)
                    .collect();
                let ids: Vec<i32> = cleared
                    .iter()
                    .filter_map(|n| versions.remove(n).map(|v| v.id))
                    .collect();
                if versions.is_empty() {
                    self.subjects.remove(&subject);
                }
                for id in ids {
                    self.release(id);
                }
                Ok(())
            }
            Some("VLTAVA_ID") => {
                if let Some(next) = value.as_ref().and_then(|v| int(v, "next")) {
                    self.next_id = self.next_id.max(next);
                }
                Ok(())
            }
            Some(_) => Ok(()),
            None => Err("key without a keytype".to_string()),
        }
    }

    /// One version fewer holds `id`; the schema goes with the last.
    fn release(&mut self, id: i32) {
        let left = match self.uses.get_mut(&id) {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n
            }
            None => 0,
        };
        if left > 0 {
            return;
        }
        self.uses.remove(&id);
        if let Some(stored) = self.schemas.remove(&id) {
            let key = schema_key_of(&stored.parsed, &stored.references);
            // Two ids can share a text (records written elsewhere): only
            // this id's entry goes.
            if self.ids_by_schema.get(&key) == Some(&id) {
                self.ids_by_schema.remove(&key);
            }
            for r in &stored.references {
                let at = (r.subject.clone(), r.version);
                if let Some(ids) = self.referrers.get_mut(&at) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        self.referrers.remove(&at);
                    }
                }
            }
        }
    }

    /// Subjects with at least one version (soft-deleted ones only when
    /// `deleted`).
    pub fn subjects(&self, deleted: bool) -> Vec<&str> {
        self.subjects
            .iter()
            .filter(|(_, vs)| deleted || vs.values().any(|v| !v.deleted))
            .map(|(s, _)| s.as_str())
            .collect()
    }

    fn live_versions(&self, subject: &str, deleted: bool) -> Result<Vec<&Version>, RegistryError> {
        let versions = self
            .subjects
            .get(subject)
            .map(|vs| {
                vs.values()
                    .filter(|v| deleted || !v.deleted)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if versions.is_empty() {
            return Err(RegistryError::SubjectNotFound(format!(
                "Subject '{subject}' not found."
            )));
        }
        Ok(versions)
    }

    /// A subject's version numbers, oldest first.
    pub fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<i32>, RegistryError> {
        Ok(self
            .live_versions(subject, deleted)?
            .iter()
            .map(|v| v.version)
            .collect())
    }

    /// One version of a subject.
    pub fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<(&Version, &Stored), RegistryError> {
        let versions = self.live_versions(subject, deleted)?;
        let found = match spec {
            VersionSpec::Latest => versions.last().copied(),
            VersionSpec::Number(n) => versions.iter().copied().find(|v| v.version == n),
        };
        let version = found.ok_or_else(|| {
            RegistryError::VersionNotFound(format!("Version {} not found.", spec.name()))
        })?;
        let stored = self.schemas.get(&version.id).ok_or_else(|| {
            RegistryError::SchemaNotFound(format!("Schema {} not found", version.id))
        })?;
        Ok((version, stored))
    }

    /// A schema by id.
    pub fn schema(&self, id: i32) -> Result<&Stored, RegistryError> {
        self.schemas
            .get(&id)
            .ok_or_else(|| RegistryError::SchemaNotFound(format!("Schema {id} not found")))
    }

    /// The ids each subject's live (not soft-deleted) versions hold, as
    /// server-side validation asks.
    pub fn live_ids_by_subject(&self) -> BTreeMap<String, std::collections::BTreeSet<i32>> {
        self.subjects
            .iter()
            .map(|(s, vs)| {
                let ids = vs.values().filter(|v| !v.deleted).map(|v| v.id).collect();
                (s.clone(), ids)
            })
            .filter(|(_, ids): &(String, std::collections::BTreeSet<i32>)| !ids.is_empty())
            .collect()
    }

    /// The record names (`Parsed::record_names`) of every schema a live
    /// version holds, by id.
    pub fn live_record_names(&self) -> BTreeMap<i32, Vec<String>> {
        self.subjects
            .values()
            .flat_map(|vs| vs.values())
            .filter(|v| !v.deleted)
            .filter_map(|v| {
                let stored = self.schemas.get(&v.id)?;
                Some((v.id, stored.parsed().record_names()))
            })
            .collect()
    }

    /// Every (subject, version) holding schema `id`.
    pub fn uses_of(&self, id: i32, deleted: bool) -> Vec<(&str, i32)> {
        self.subjects
            .iter()
            .flat_map(|(s, vs)| vs.values().map(move |v| (s.as_str(), v)))
            .filter(|(_, v)| v.id == id && (deleted || !v.deleted))
            .map(|(s, v)| (s, v.version))
            .collect()
    }

    /// The level that applies to `subject`: its own, else the global one,
    /// else BACKWARD.
    pub fn level(&self, subject: Option<&str>) -> Level {
        subject
            .and_then(|s| self.levels.get(s))
            .copied()
            .or(self.global_level)
            .unwrap_or(Level::DEFAULT)
    }

    /// The level set on `subject` (or globally for `None`), if any.
    pub fn level_set(&self, subject: Option<&str>) -> Option<Level> {
        match subject {
            Some(s) => self.levels.get(s).copied(),
            None => self.global_level,
        }
    }

    /// The mode that applies to `subject` (`None`: the global one): a
    /// global READONLY_OVERRIDE, else its own, else the global one, else
    /// READWRITE.
    pub fn mode(&self, subject: Option<&str>) -> Mode {
        if self.global_mode == Some(Mode::ReadOnlyOverride) {
            return Mode::ReadOnlyOverride;
        }
        subject
            .and_then(|s| self.modes.get(s))
            .copied()
            .or(self.global_mode)
            .unwrap_or(Mode::ReadWrite)
    }

    /// The mode set on `subject` (or globally for `None`), if any.
    pub fn mode_set(&self, subject: Option<&str>) -> Option<Mode> {
        match subject {
            Some(s) => self.modes.get(s).copied(),
            None => self.global_mode,
        }
    }

    /// Refuses changing `subject`'s schemas while it is read-only
    /// (Confluent's 42205).
    pub fn writable(&self, subject: &str) -> Result<(), RegistryError> {
        self.scope_writable(Some(subject))
    }

    /// [`Store::writable`] for a subject or, with `None`, the registry's
    /// global settings (a compatibility level change checks its scope's
    /// mode, as Confluent's does).
    pub fn scope_writable(&self, subject: Option<&str>) -> Result<(), RegistryError> {
        match self.mode(subject) {
            Mode::ReadWrite => Ok(()),
            Mode::ReadOnly | Mode::ReadOnlyOverride => {
                Err(RegistryError::ReadOnly(match subject {
                    Some(subject) => format!("Subject {subject} is in read-only mode"),
                    None => "The registry is in read-only mode".to_string(),
                }))
            }
        }
    }

    /// The record setting (or, with `None`, dropping) a mode.
    pub fn plan_mode(subject: Option<&str>, mode: Option<Mode>) -> Write {
        Write {
            key: format!(
                r#"{{"keytype":"MODE","subject":{},"magic":0}}"#,
                subject.map_or("null".to_string(), quoted)
            )
            .into_bytes(),
            value: mode.map(|m| json!({"mode": m.name()}).to_string().into_bytes()),
        }
    }

    /// The version of `subject` holding this schema (POST /subjects/{s}).
    pub fn lookup(
        &self,
        subject: &str,
        schema_type: SchemaType,
        text: &str,
        references: &[Reference],
        deleted: bool,
    ) -> Result<(&Version, &Stored), RegistryError> {
        let versions = self.live_versions(subject, deleted)?;
        let references = self.pinned(references)?;
        let parsed = self.parse(schema_type, text, &references)?;
        let id = self.ids_by_schema.get(&schema_key_of(&parsed, &references));
        let found = id.and_then(|id| versions.iter().rev().find(|v| v.id == *id));
        match found {
            Some(v) => Ok((v, &self.schemas[&v.id])),
            None => Err(RegistryError::SchemaNotFound(
                "Schema not found".to_string(),
            )),
        }
    }

    /// Checks `text` against `subject`'s versions under its level (or
    /// against one version only, as `/compatibility/subjects/{s}/versions/{v}`
    /// asks): the problems found, empty when compatible.
    pub fn compatibility(
        &self,
        subject: &str,
        spec: Option<VersionSpec>,
        schema_type: SchemaType,
        text: &str,
        references: &[Reference],
    ) -> Result<Vec<String>, RegistryError> {
        let references = self.pinned(references)?;
        let parsed = self.parse(schema_type, text, &references)?;
        let level = self.level(Some(subject));
        let earlier: Vec<(i32, &Parsed)> = match spec {
            None => match self.live_versions(subject, false) {
                Ok(vs) => vs
                    .iter()
                    .map(|v| (v.version, &self.schemas[&v.id].parsed))
                    .collect(),
                Err(_) => Vec::new(),
            },
            // One version, `latest` (none for a new subject) or a number,
            // whatever the level: as Confluent, a transitive level widens
            // only the check without a version, as a registration does.
            Some(VersionSpec::Latest) => match self.live_versions(subject, false) {
                Ok(vs) => vs
                    .last()
                    .map(|v| (v.version, &self.schemas[&v.id].parsed))
                    .into_iter()
                    .collect(),
                Err(_) => Vec::new(),
            },
            Some(spec) => {
                let (v, stored) = self.version(subject, spec, false).map_err(|e| match e {
                    // A numbered version of a subject there is not is a
                    // version not found, as Confluent answers it.
                    RegistryError::SubjectNotFound(_) => RegistryError::VersionNotFound(format!(
                        "Version {} not found.",
                        spec.name()
                    )),
                    other => other,
                })?;
                vec![(v.version, &stored.parsed)]
            }
        };
        Ok(check(level, &parsed, &earlier))
    }

    /// Plans registering `text` under `subject`: the existing id if the
    /// subject holds it, else the checks and the records to write. The
    /// caller writes them (one writer at a time) and applies them.
    pub fn plan_register(
        &self,
        subject: &str,
        schema_type: SchemaType,
        text: &str,
        references: &[Reference],
    ) -> Result<Registration, RegistryError> {
        subject_checked(subject)?;
        let references = self.pinned(references)?;
        let parsed = self.parse(schema_type, text, &references)?;
        let known = self
            .ids_by_schema
            .get(&schema_key_of(&parsed, &references))
            .copied();
        let live: Vec<&Version> = self
            .subjects
            .get(subject)
            .map(|vs| vs.values().filter(|v| !v.deleted).collect())
            .unwrap_or_default();
        if let Some(id) = known {
            if let Some(v) = live.iter().rev().find(|v| v.id == id) {
                return Ok(Registration::Exists {
                    id,
                    version: v.version,
                });
            }
        }
        let earlier: Vec<(i32, &Parsed)> = live
            .iter()
            .map(|v| (v.version, &self.schemas[&v.id].parsed))
            .collect();
        self.writable(subject)?;
        let problems = check(self.level(Some(subject)), &parsed, &earlier);
        if !problems.is_empty() {
            return Err(RegistryError::Incompatible(problems));
        }
        let all = self.subjects.get(subject);
        if all.is_some_and(|vs| vs.len() >= VERSIONS_PER_SUBJECT_MAX) {
            return Err(RegistryError::InvalidSchema(format!(
                "subject {subject} already has {VERSIONS_PER_SUBJECT_MAX} versions"
            )));
        }
        // Versions are never reused, soft-deleted ones included.
        let version = all
            .and_then(|vs| vs.keys().next_back())
            .map_or(1, |v| v.saturating_add(1));
        let id = known.unwrap_or(self.next_id);
        // Ids and versions end at 2^31-1 (a hostile `_schemas` record can
        // bring them there): never hand out one already in use.
        let taken_id = known.is_none() && self.schemas.contains_key(&id);
        if taken_id || all.is_some_and(|vs| vs.contains_key(&version)) {
            return Err(RegistryError::InvalidSchema(
                "no schema id or version is left to give (2^31-1 reached)".to_string(),
            ));
        }
        let mut writes = Vec::new();
        if known.is_none() {
            writes.push(Write {
                key: json!({"keytype": "VLTAVA_ID", "magic": 0})
                    .to_string()
                    .into_bytes(),
                value: Some(
                    json!({"next": id.saturating_add(1)})
                        .to_string()
                        .into_bytes(),
                ),
            });
        }
        // A known schema keeps the text it was first registered with, so
        // every record of the id carries the same text (a store rebuilt
        // after compaction answers with the same text as a live one).
        let text = match known {
            Some(id) => self.schemas[&id].text.as_str(),
            None => text,
        };
        writes.push(schema_record(
            subject,
            version,
            id,
            schema_type,
            text,
            &references,
            false,
        ));
        Ok(Registration::New {
            id,
            version,
            writes,
        })
    }

    /// Plans deleting one version (`permanent`: for good, which Confluent
    /// allows only once it is soft-deleted). Returns the version number.
    pub fn plan_delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<(i32, Write), RegistryError> {
        // Soft-deleted versions are found too: deleting one softly again is
        // Confluent's 40406, not "not found".
        self.writable(subject)?;
        let (v, stored) = self.version(subject, spec, true)?;
        self.unreferenced(subject, &[v.version])?;
        match (permanent, v.deleted) {
            (false, true) => Err(RegistryError::VersionSoftDeleted(format!(
                "Subject '{subject}' Version {} was soft deleted. Set permanent=true to delete permanently",
                v.version
            ))),
            (true, false) => Err(RegistryError::VersionNotSoftDeleted(format!(
                "Subject '{subject}' Version {} was not deleted first before being permanently deleted",
                v.version
            ))),
            (true, true) => Ok((v.version, Write { key: schema_key(subject, v.version), value: None })),
            (false, false) => Ok((v.version, schema_record(subject, v.version, v.id, stored.schema_type, &stored.text, &stored.references, true))),
        }
    }

    /// Plans deleting a subject: every version soft-deleted, or, with
    /// `permanent`, removed for good once all are soft-deleted. Returns
    /// the versions and the records.
    pub fn plan_delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<(Vec<i32>, Vec<Write>), RegistryError> {
        self.writable(subject)?;
        let all = self.live_versions(subject, true)?;
        let numbers: Vec<i32> = all.iter().map(|v| v.version).collect();
        self.unreferenced(subject, &numbers)?;
        if permanent {
            if all.iter().any(|v| !v.deleted) {
                return Err(RegistryError::SubjectNotSoftDeleted(format!(
                    "Subject '{subject}' was not deleted first before being permanently deleted"
                )));
            }
            let writes = all
                .iter()
                .map(|v| Write {
                    key: schema_key(subject, v.version),
                    value: None,
                })
                .collect();
            return Ok((all.iter().map(|v| v.version).collect(), writes));
        }
        let live: Vec<&&Version> = all.iter().filter(|v| !v.deleted).collect();
        if live.is_empty() {
            return Err(RegistryError::SubjectSoftDeleted(format!(
                "Subject '{subject}' was soft deleted. Set permanent=true to delete permanently"
            )));
        }
        let writes = live
            .iter()
            .map(|v| {
                let stored = &self.schemas[&v.id];
                schema_record(
                    subject,
                    v.version,
                    v.id,
                    stored.schema_type,
                    &stored.text,
                    &stored.references,
                    true,
                )
            })
            .collect();
        Ok((live.iter().map(|v| v.version).collect(), writes))
    }

    /// The ids of schemas that reference `subject`'s `version`
    /// (`/subjects/{s}/versions/{v}/referencedby`), soft-deleted
    /// referrers included.
    pub fn referenced_by(&self, subject: &str, version: i32) -> Vec<i32> {
        self.referrers
            .get(&(subject.to_string(), version))
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Refuses deleting versions another schema references (Confluent's
    /// 42206): the referrer could not be read back without them. Soft
    /// deletes are refused too, as Confluent does, and soft-deleted
    /// referrers count, since they can still be read or restored.
    fn unreferenced(&self, subject: &str, versions: &[i32]) -> Result<(), RegistryError> {
        for version in versions {
            if !self.referenced_by(subject, *version).is_empty() {
                return Err(RegistryError::ReferenceExists(format!(
                    "One or more references exist to the schema {{magic=1,keytype=SCHEMA,subject={subject},version={version}}}."
                )));
            }
        }
        Ok(())
    }

    /// `references` with `-1` (latest) replaced by the version it names
    /// now, each checked to exist (Confluent's 42201 otherwise).
    fn pinned(&self, references: &[Reference]) -> Result<Vec<Reference>, RegistryError> {
        references
            .iter()
            .map(|r| {
                let spec = if r.version == -1 {
                    VersionSpec::Latest
                } else {
                    VersionSpec::Number(r.version)
                };
                let (v, _) = self.version(&r.subject, spec, false).map_err(|_| {
                    RegistryError::InvalidSchema(format!(
                        "Invalid schema: reference {} names subject '{}' version {}, which does not exist",
                        r.name, r.subject, r.version
                    ))
                })?;
                Ok(Reference {
                    version: v.version,
                    ..r.clone()
                })
            })
            .collect()
    }

    /// Every schema `references` reach, directly or through their own
    /// references, each once, as the dependencies a parse needs.
    fn dependencies<'s>(
        &'s self,
        references: &'s [Reference],
    ) -> Result<Vec<Dependency<'s>>, RegistryError> {
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        let mut todo: Vec<&Reference> = references.iter().collect();
        while let Some(r) = todo.pop() {
            // One schema reached under two names is read once.
            if !seen.insert((r.subject.as_str(), r.version)) {
                continue;
            }
            if seen.len() > REFERENCES_MAX {
                return Err(RegistryError::InvalidSchema(format!(
                    "Invalid schema: it reaches more than {REFERENCES_MAX} schemas through its references"
                )));
            }
            let (_, stored) = self
                .version(&r.subject, VersionSpec::Number(r.version), true)
                .map_err(|_| {
                    RegistryError::InvalidSchema(format!(
                        "Invalid schema: reference {} names subject '{}' version {}, which does not exist",
                        r.name, r.subject, r.version
                    ))
                })?;
            out.push(Dependency {
                name: &r.name,
                text: &stored.text,
            });
            todo.extend(stored.references.iter());
        }
        // Dependencies before what depends on them, as Avro's named types
        // need.
        out.reverse();
        Ok(out)
    }

    /// `text` parsed as a `schema_type` schema with `references`
    /// resolved (Confluent's 42201 when it is not one).
    fn parse(
        &self,
        schema_type: SchemaType,
        text: &str,
        references: &[Reference],
    ) -> Result<Parsed, RegistryError> {
        let deps = self.dependencies(references)?;
        Parsed::parse(schema_type, text, &deps).map_err(RegistryError::InvalidSchema)
    }

    /// Where node `node`'s registry answers, as it last published.
    pub fn node_url(&self, node: i32) -> Option<&str> {
        self.node_urls.get(&node).map(String::as_str)
    }

    /// The record publishing node `node`'s registry URL.
    pub fn plan_node_url(node: i32, url: &str) -> Write {
        Write {
            key: json!({"keytype": "VLTAVA_NODE", "node": node, "magic": 0})
                .to_string()
                .into_bytes(),
            value: Some(json!({"url": url}).to_string().into_bytes()),
        }
    }

    /// The record setting (or, with `None`, dropping) a level.
    pub fn plan_level(subject: Option<&str>, level: Option<Level>) -> Write {
        Write {
            key: format!(
                r#"{{"keytype":"CONFIG","subject":{},"magic":0}}"#,
                subject.map_or("null".to_string(), quoted)
            )
            .into_bytes(),
            value: level.map(|l| {
                json!({"compatibilityLevel": l.name()})
                    .to_string()
                    .into_bytes()
            }),
        }
    }
}

/// A JSON string literal.
fn quoted(text: &str) -> String {
    Value::from(text).to_string()
}

/// Keys are written field by field in Confluent's order: compaction
/// matches keys byte for byte, so a topic shared with Confluent's registry
/// must see the same bytes for the same key (serde_json would sort them).
fn schema_key(subject: &str, version: i32) -> Vec<u8> {
    format!(
        r#"{{"keytype":"SCHEMA","subject":{},"version":{version},"magic":1}}"#,
        quoted(subject)
    )
    .into_bytes()
}

fn schema_record(
    subject: &str,
    version: i32,
    id: i32,
    schema_type: SchemaType,
    text: &str,
    references: &[Reference],
    deleted: bool,
) -> Write {
    let mut value = json!({
        "subject": subject,
        "version": version,
        "id": id,
        "schema": text,
        "references": Reference::json(references),
        "deleted": deleted,
    });
    if schema_type != SchemaType::Avro {
        value["schemaType"] = json!(schema_type.name());
    }
    Write {
        key: schema_key(subject, version),
        value: Some(value.to_string().into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"}]}"#;
    const V2: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"email","type":"string","default":""}]}"#;
    const BAD: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"string"}]}"#;

    /// Registers and applies what the plan writes; returns (id, version).
    fn register(store: &mut Store, subject: &str, text: &str) -> Result<(i32, i32), RegistryError> {
        match store.plan_register(subject, SchemaType::Avro, text, &[])? {
            Registration::Exists { id, version } => Ok((id, version)),
            Registration::New {
                id,
                version,
                writes,
            } => {
                for w in writes {
                    store.apply(&w.key, w.value.as_deref()).unwrap();
                }
                Ok((id, version))
            }
        }
    }

    fn apply_all(store: &mut Store, writes: Vec<Write>) {
        for w in writes {
            store.apply(&w.key, w.value.as_deref()).unwrap();
        }
    }

    #[test]
    fn ids_are_global_and_kept_by_schema_versions_by_subject() {
        let mut s = Store::new();
        assert_eq!(register(&mut s, "users-value", V1), Ok((1, 1)));
        // The same schema again (laid out differently): the same id and version.
        let spaced = V1.replace(',', " , ");
        assert_eq!(register(&mut s, "users-value", &spaced), Ok((1, 1)));
        assert_eq!(register(&mut s, "users-value", V2), Ok((2, 2)));
        // The same schema under another subject keeps its id.
        assert_eq!(register(&mut s, "audit-value", V1), Ok((1, 1)));
        assert_eq!(s.subjects(false), ["audit-value", "users-value"]);
        assert_eq!(s.versions("users-value", false), Ok(vec![1, 2]));
        assert_eq!(
            s.uses_of(1, false),
            [("audit-value", 1), ("users-value", 1)]
        );
        let (v, stored) = s
            .version("users-value", VersionSpec::Latest, false)
            .unwrap();
        assert_eq!((v.version, v.id, stored.text.as_str()), (2, 2, V2));
        assert_eq!(
            s.lookup("users-value", SchemaType::Avro, V1, &[], false)
                .unwrap()
                .0
                .version,
            1
        );
        assert_eq!(
            s.lookup("users-value", SchemaType::Avro, BAD, &[], false)
                .unwrap_err()
                .code(),
            40403
        );
        assert_eq!(
            s.lookup("nobody", SchemaType::Avro, V1, &[], false)
                .unwrap_err()
                .code(),
            40401
        );
    }

    #[test]
    fn a_named_version_is_checked_alone_and_the_level_widens_only_the_check_without_one() {
        let mut s = Store::new();
        apply_all(
            &mut s,
            vec![Store::plan_level(Some("tr"), Some(Level::None))],
        );
        register(&mut s, "tr", V1).unwrap();
        register(&mut s, "tr", BAD).unwrap();
        apply_all(
            &mut s,
            vec![Store::plan_level(
                Some("tr"),
                Some(Level::BackwardTransitive),
            )],
        );
        // Reads version 2's data (a field added with a default), not
        // version 1's (long to string).
        let next = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"string"},{"name":"x","type":"int","default":0}]}"#;
        let problems = |spec| {
            s.compatibility("tr", spec, SchemaType::Avro, next, &[])
                .map(|p| p.len())
        };
        assert_eq!(problems(Some(VersionSpec::Latest)), Ok(0));
        assert_eq!(problems(Some(VersionSpec::Number(2))), Ok(0));
        assert_eq!(problems(Some(VersionSpec::Number(1))), Ok(1));
        assert_eq!(problems(None), Ok(1));
        // A numbered version of a subject there is not: 40402.
        let missing = s
            .compatibility(
                "none",
                Some(VersionSpec::Number(1)),
                SchemaType::Avro,
                next,
                &[],
            )
            .unwrap_err();
        assert_eq!(missing.code(), 40402);
    }

    #[test]
    fn levels_decide_what_may_follow_and_errors_carry_confluents_codes() {
        let mut s = Store::new();
        register(&mut s, "t-value", V1).unwrap();
        let refused = register(&mut s, "t-value", BAD).unwrap_err();
        assert_eq!((refused.code(), refused.status()), (409, 409));
        assert!(refused
            .message()
            .starts_with("Schema being registered is incompatible"));
        assert_eq!(
            s.compatibility("t-value", None, SchemaType::Avro, BAD, &[])
                .unwrap()
                .len(),
            1
        );
        // Against `latest` of a subject with no versions: compatible.
        assert!(s
            .compatibility(
                "new-value",
                Some(VersionSpec::Latest),
                SchemaType::Avro,
                BAD,
                &[]
            )
            .unwrap()
            .is_empty());
        // Keys in Confluent's field order, byte for byte.
        assert_eq!(
            schema_key("a\"b", 3),
            br#"{"keytype":"SCHEMA","subject":"a\"b","version":3,"magic":1}"#.to_vec()
        );
        assert_eq!(
            Store::plan_level(None, None).key,
            br#"{"keytype":"CONFIG","subject":null,"magic":0}"#.to_vec()
        );
        assert!(s
            .compatibility(
                "t-value",
                Some(VersionSpec::Latest),
                SchemaType::Avro,
                V2,
                &[]
            )
            .unwrap()
            .is_empty());
        // NONE on the subject lets it through; the global level stays.
        apply_all(
            &mut s,
            vec![Store::plan_level(Some("t-value"), Some(Level::None))],
        );
        assert_eq!(
            (s.level(Some("t-value")), s.level(None)),
            (Level::None, Level::Backward)
        );
        assert_eq!(register(&mut s, "t-value", BAD), Ok((2, 2)));
        apply_all(
            &mut s,
            vec![
                Store::plan_level(Some("t-value"), None),
                Store::plan_level(None, Some(Level::Full)),
            ],
        );
        assert_eq!(
            (s.level(Some("t-value")), s.level_set(Some("t-value"))),
            (Level::Full, None)
        );
        for (error, code, status) in [
            (
                s.plan_register("t-value", SchemaType::Avro, "{", &[])
                    .unwrap_err(),
                42201,
                422,
            ),
            (VersionSpec::parse("0").unwrap_err(), 42202, 422),
            (
                s.version("t-value", VersionSpec::Number(9), false)
                    .unwrap_err(),
                40402,
                404,
            ),
            (s.schema(99).unwrap_err(), 40403, 404),
            (
                s.plan_register("", SchemaType::Avro, V1, &[]).unwrap_err(),
                42208,
                422,
            ),
            (SchemaType::parse(Some("XML")).unwrap_err(), 42201, 422),
        ] {
            assert_eq!((error.code(), error.status()), (code, status), "{error:?}");
        }
        assert_eq!(VersionSpec::parse("latest"), Ok(VersionSpec::Latest));
        assert_eq!(VersionSpec::parse("-1"), Ok(VersionSpec::Latest));
        assert_eq!(VersionSpec::parse("7"), Ok(VersionSpec::Number(7)));
    }

    #[test]
    fn deletes_are_soft_then_permanent_and_ids_are_never_given_twice() {
        let mut s = Store::new();
        register(&mut s, "d-value", V1).unwrap();
        register(&mut s, "d-value", V2).unwrap();
        // Permanent first: refused.
        assert_eq!(
            s.plan_delete_subject("d-value", true).unwrap_err().code(),
            40405
        );
        assert_eq!(
            s.plan_delete_version("d-value", VersionSpec::Number(2), true)
                .unwrap_err()
                .code(),
            40407
        );
        let (versions, writes) = s.plan_delete_subject("d-value", false).unwrap();
        assert_eq!(versions, [1, 2]);
        apply_all(&mut s, writes);
        assert!(s.subjects(false).is_empty());
        assert_eq!(s.subjects(true), ["d-value"]);
        assert_eq!(s.versions("d-value", false).unwrap_err().code(), 40401);
        assert_eq!(s.versions("d-value", true), Ok(vec![1, 2]));
        assert_eq!(
            s.plan_delete_subject("d-value", false).unwrap_err().code(),
            40404
        );
        // A version deleted softly twice: 40406, "latest" included.
        for spec in [VersionSpec::Number(2), VersionSpec::Latest] {
            assert_eq!(
                s.plan_delete_version("d-value", spec, false)
                    .unwrap_err()
                    .code(),
                40406
            );
        }
        // Soft-deleted versions are not reused: the next is 3, with the
        // schema's old id.
        assert_eq!(register(&mut s, "d-value", V1), Ok((1, 3)));
        let (version, write) = s
            .plan_delete_version("d-value", VersionSpec::Latest, false)
            .unwrap();
        assert_eq!(version, 3);
        apply_all(&mut s, vec![write]);
        let (versions, writes) = s.plan_delete_subject("d-value", true).unwrap();
        assert_eq!(versions, [1, 2, 3]);
        apply_all(&mut s, writes);
        assert!(s.subjects(true).is_empty());
        // Their schemas are gone by id too (compaction will leave nothing
        // of them), yet a new schema gets a new id, even in a store rebuilt
        // from what compaction leaves.
        assert_eq!(s.schema(2).unwrap_err().code(), 40403);
        let fresh = r#"{"type":"record","name":"Other","fields":[]}"#;
        assert_eq!(register(&mut s, "n-value", fresh), Ok((3, 1)));
        let mut rebuilt = Store::new();
        apply_all(
            &mut rebuilt,
            vec![Write {
                key: br#"{"keytype":"VLTAVA_ID","magic":0}"#.to_vec(),
                value: Some(br#"{"next":4}"#.to_vec()),
            }],
        );
        let other = r#"{"type":"record","name":"Third","fields":[]}"#;
        assert_eq!(register(&mut rebuilt, "x-value", other), Ok((4, 1)));
    }

    #[test]
    fn ids_and_versions_at_their_end_are_refused_not_given_twice() {
        let mut s = Store::new();
        let max = i32::MAX;
        let at_end = format!(
            r#"{{"subject":"s","version":{max},"id":{max},"schema":{}}}"#,
            serde_json::to_string(V1).unwrap()
        );
        let key = format!(r#"{{"keytype":"SCHEMA","subject":"s","version":{max},"magic":1}}"#);
        s.apply(key.as_bytes(), Some(at_end.as_bytes())).unwrap();
        assert_eq!(
            s.plan_register("t", SchemaType::Avro, V2, &[])
                .unwrap_err()
                .code(),
            42201
        );
        // The schema already there keeps its id in another subject.
        assert!(matches!(
            s.plan_register("t", SchemaType::Avro, V1, &[]),
            Ok(Registration::New { id, version: 1, .. }) if id == max
        ));
        assert_eq!(
            s.plan_register("s", SchemaType::Avro, V1, &[]),
            Ok(Registration::Exists {
                id: max,
                version: max
            })
        );
    }

    #[test]
    fn an_id_given_to_another_schema_is_skipped() {
        let mut s = Store::new();
        let record = |subject: &str, text: &str| {
            let value = json!({"subject": subject, "version": 1, "id": 1, "schema": text});
            (schema_key(subject, 1), value.to_string().into_bytes())
        };
        let (key, value) = record("a", V1);
        s.apply(&key, Some(&value)).unwrap();
        let (key, value) = record("b", BAD);
        let err = s.apply(&key, Some(&value)).unwrap_err();
        assert!(
            err.contains("gives id 1, which another schema holds"),
            "{err}"
        );
        assert!(s.live_versions("b", true).is_err());
        assert_eq!(s.schema(1).map(|st| st.text.as_str()), Ok(V1));
        // The same schema laid out otherwise is the same schema.
        let (key, value) = record("c", &V1.replace(',', ", "));
        s.apply(&key, Some(&value)).unwrap();
        assert_eq!(
            s.version("c", VersionSpec::Latest, false)
                .map(|(v, _)| v.id),
            Ok(1)
        );
    }

    #[test]
    fn confluents_subject_deletes_are_read_as_confluent_reads_them() {
        let mut s = Store::new();
        let schema = |subject: &str, version: i32, id: i32, text: &str| {
            let key = schema_key(subject, version);
            let value = json!({"subject": subject, "version": version, "id": id,
                               "schema": text, "deleted": false})
            .to_string();
            (key, value.into_bytes())
        };
        for (key, value) in [schema("s", 1, 1, V1), schema("s", 2, 2, V2)] {
            s.apply(&key, Some(&value)).unwrap();
        }
        let delete = br#"{"keytype":"DELETE_SUBJECT","subject":"s","magic":0}"#;
        s.apply(delete, Some(br#"{"subject":"s","version":2}"#))
            .unwrap();
        // Registered again after the soft delete: version 3, live.
        let (key, value) = schema("s", 3, 3, BAD);
        s.apply(&key, Some(&value)).unwrap();
        let numbers = |s: &Store, deleted| {
            s.live_versions("s", deleted)
                .map(|vs| vs.iter().map(|v| v.version).collect::<Vec<_>>())
        };
        assert_eq!(numbers(&s, false), Ok(vec![3]));
        assert_eq!(numbers(&s, true), Ok(vec![1, 2, 3]));
        // Soft-deleted schemas still resolve by id.
        assert_eq!(s.schema(1).map(|st| st.text.as_str()), Ok(V1));
        // An import's clearing drops the deleted versions and their ids.
        let clear = br#"{"keytype":"CLEAR_SUBJECT","subject":"s","magic":0}"#;
        s.apply(clear, Some(br#"{"subject":"s"}"#)).unwrap();
        assert_eq!(numbers(&s, true), Ok(vec![3]));
        assert!(s.schema(1).is_err() && s.schema(2).is_err());
        assert_eq!(s.next_id, 4);
    }

    #[test]
    fn records_it_cannot_read_are_skipped_with_a_reason_and_change_nothing() {
        let mut s = Store::new();
        for (key, value, why) in [
            (&b"not json"[..], None, "key is not JSON"),
            (
                br#"{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}"#,
                Some(&b"{"[..]),
                "value is not JSON",
            ),
            (
                br#"{"keytype":"SCHEMA","version":1}"#,
                Some(&b"{}"[..]),
                "without a subject",
            ),
            (
                br#"{"keytype":"SCHEMA","subject":"s","version":0}"#,
                Some(&b"{}"[..]),
                "without a version",
            ),
            (
                br#"{"keytype":"SCHEMA","subject":"s","version":1}"#,
                Some(&br#"{"id":1}"#[..]),
                "without a schema",
            ),
            (
                br#"{"keytype":"SCHEMA","subject":"s","version":1}"#,
                Some(&br#"{"id":1,"schema":"{"}"#[..]),
                "invalid Avro",
            ),
            (
                br#"{"keytype":"CONFIG","subject":null}"#,
                Some(&br#"{"compatibilityLevel":"X"}"#[..]),
                "compatibilityLevel",
            ),
            (br#"{"magic":0}"#, None, "without a keytype"),
        ] {
            let err = s.apply(key, value).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
        assert!(s.apply(br#"{"keytype":"NOOP","magic":0}"#, None).is_ok());
        let published = Store::plan_node_url(2, "http://10.0.0.2:8081");
        s.apply(&published.key, published.value.as_deref()).unwrap();
        assert_eq!(
            (s.node_url(2), s.node_url(1)),
            (Some("http://10.0.0.2:8081"), None)
        );
        s.apply(&published.key, None).unwrap();
        assert_eq!(s.node_url(2), None);
        assert!(s.subjects(true).is_empty() && s.level(None) == Level::Backward);
    }

    /// Registers with references and applies what the plan writes.
    fn register_with(
        store: &mut Store,
        subject: &str,
        schema_type: SchemaType,
        text: &str,
        references: &[Reference],
    ) -> Result<(i32, i32), RegistryError> {
        match store.plan_register(subject, schema_type, text, references)? {
            Registration::Exists { id, version } => Ok((id, version)),
            Registration::New {
                id,
                version,
                writes,
            } => {
                apply_all(store, writes);
                Ok((id, version))
            }
        }
    }

    fn reference(name: &str, subject: &str, version: i32) -> Reference {
        Reference {
            name: name.to_string(),
            subject: subject.to_string(),
            version,
        }
    }

    #[test]
    fn references_resolve_pin_and_protect_what_they_name() {
        let mut s = Store::new();
        let money = "syntax = \"proto3\";\npackage shop;\nmessage Money { int64 cents = 1; }\n";
        let order = "syntax = \"proto3\";\npackage shop;\nimport \"money.proto\";\nmessage Order { Money total = 1; }\n";
        assert_eq!(
            register_with(&mut s, "money.proto", SchemaType::Protobuf, money, &[]),
            Ok((1, 1))
        );
        // Without its reference the import does not resolve.
        let missing = register_with(&mut s, "orders-value", SchemaType::Protobuf, order, &[]);
        assert_eq!(missing.unwrap_err().code(), 42201);
        let unknown = [reference("money.proto", "money.proto", 7)];
        let err = register_with(
            &mut s,
            "orders-value",
            SchemaType::Protobuf,
            order,
            &unknown,
        );
        assert_eq!(err.unwrap_err().code(), 42201);
        // -1 pins the latest version in what is stored.
        let latest = [reference("money.proto", "money.proto", -1)];
        assert_eq!(
            register_with(&mut s, "orders-value", SchemaType::Protobuf, order, &latest),
            Ok((2, 1))
        );
        let (_, stored) = s
            .version("orders-value", VersionSpec::Latest, false)
            .unwrap();
        assert_eq!(
            stored.references,
            [reference("money.proto", "money.proto", 1)]
        );
        assert_eq!(s.referenced_by("money.proto", 1), [2]);
        // The same text with the same references keeps its id; found by
        // lookup too.
        let pinned = [reference("money.proto", "money.proto", 1)];
        assert_eq!(
            register_with(&mut s, "orders-value", SchemaType::Protobuf, order, &pinned),
            Ok((2, 1))
        );
        assert_eq!(
            s.lookup("orders-value", SchemaType::Protobuf, order, &pinned, false)
                .unwrap()
                .1
                .references,
            pinned
        );
        // What a schema references cannot be deleted, softly or not.
        for err in [
            s.plan_delete_version("money.proto", VersionSpec::Number(1), false)
                .unwrap_err(),
            s.plan_delete_subject("money.proto", false).unwrap_err(),
        ] {
            assert_eq!((err.code(), err.status()), (42206, 422), "{err:?}");
        }
        // A store rebuilt from the records agrees, references included.
        let mut rebuilt = Store::new();
        let mut records = Vec::new();
        for (subject, v) in [("money.proto", 1), ("orders-value", 1)] {
            let (version, stored) = s.version(subject, VersionSpec::Number(v), false).unwrap();
            records.push(schema_record(
                subject,
                version.version,
                version.id,
                stored.schema_type,
                &stored.text,
                &stored.references,
                false,
            ));
        }
        apply_all(&mut rebuilt, records);
        assert_eq!(rebuilt.referenced_by("money.proto", 1), [2]);
        assert_eq!(rebuilt.schema(2).unwrap().references, pinned);
        // Deleting the referrer frees what it referenced.
        let (_, writes) = s.plan_delete_subject("orders-value", false).unwrap();
        apply_all(&mut s, writes);
        let (_, writes) = s.plan_delete_subject("orders-value", true).unwrap();
        apply_all(&mut s, writes);
        assert!(s.referenced_by("money.proto", 1).is_empty());
        assert!(s.plan_delete_subject("money.proto", false).is_ok());
    }

    #[test]
    fn each_format_is_checked_by_its_own_rules() {
        let mut s = Store::new();
        let closed = r#"{"type":"object","properties":{"id":{"type":"integer"}},"additionalProperties":false}"#;
        let closed_plus = r#"{"type":"object","properties":{"id":{"type":"integer"},"n":{"type":"string"}},"additionalProperties":false}"#;
        let retyped = r#"{"type":"object","properties":{"id":{"type":"string"}},"additionalProperties":false}"#;
        assert_eq!(
            register_with(&mut s, "j", SchemaType::Json, closed, &[]),
            Ok((1, 1))
        );
        assert_eq!(
            register_with(&mut s, "j", SchemaType::Json, closed_plus, &[]),
            Ok((2, 2))
        );
        assert_eq!(
            register_with(&mut s, "j", SchemaType::Json, retyped, &[])
                .unwrap_err()
                .code(),
            409
        );
        // The same text as Avro is another schema type: a change of type
        // is incompatible.
        let switched = s
            .compatibility("j", None, SchemaType::Avro, V1, &[])
            .unwrap();
        assert!(
            switched[0].contains("schema type changed from JSON to AVRO"),
            "{switched:?}"
        );
        let p1 = "syntax = \"proto3\";\nmessage A { int32 x = 1; }";
        let p2 = "syntax = \"proto3\";\nmessage A { string x = 1; }";
        assert_eq!(
            register_with(&mut s, "p", SchemaType::Protobuf, p1, &[]),
            Ok((3, 1))
        );
        let refused = register_with(&mut s, "p", SchemaType::Protobuf, p2, &[]).unwrap_err();
        assert!(
            refused.message().contains("FIELD_SCALAR_KIND_CHANGED"),
            "{refused:?}"
        );
        // A schema's record carries its type and references, Confluent's way.
        let (_, stored) = s.version("p", VersionSpec::Latest, false).unwrap();
        let record = schema_record("p", 1, 3, stored.schema_type, &stored.text, &[], false);
        let value: Value = serde_json::from_slice(record.value.as_deref().unwrap()).unwrap();
        assert_eq!(value["schemaType"], "PROTOBUF");
        assert_eq!(value["references"], json!([]));
    }

    #[test]
    fn read_only_subjects_refuse_changes_but_answer_what_they_hold() {
        let mut s = Store::new();
        register(&mut s, "m-value", V1).unwrap();
        apply_all(
            &mut s,
            vec![Store::plan_mode(Some("m-value"), Some(Mode::ReadOnly))],
        );
        assert_eq!(
            (s.mode(Some("m-value")), s.mode(None)),
            (Mode::ReadOnly, Mode::ReadWrite)
        );
        // Registering what it holds is a lookup, still answered.
        assert_eq!(register(&mut s, "m-value", V1), Ok((1, 1)));
        for err in [
            register(&mut s, "m-value", V2).unwrap_err(),
            s.plan_delete_subject("m-value", false).unwrap_err(),
            s.plan_delete_version("m-value", VersionSpec::Latest, false)
                .unwrap_err(),
        ] {
            assert_eq!((err.code(), err.status()), (42205, 422), "{err:?}");
        }
        assert_eq!(register(&mut s, "other-value", V1), Ok((1, 1)));
        // READONLY_OVERRIDE globally wins over a subject's own READWRITE.
        apply_all(
            &mut s,
            vec![
                Store::plan_mode(Some("other-value"), Some(Mode::ReadWrite)),
                Store::plan_mode(None, Some(Mode::ReadOnlyOverride)),
            ],
        );
        assert_eq!(
            register(&mut s, "other-value", V2).unwrap_err().code(),
            42205
        );
        apply_all(
            &mut s,
            vec![
                Store::plan_mode(None, None),
                Store::plan_mode(Some("m-value"), None),
            ],
        );
        assert_eq!(register(&mut s, "m-value", V2), Ok((2, 2)));
        assert_eq!(Mode::parse("import").unwrap_err().code(), 42204);
        assert_eq!(Mode::parse("sideways").unwrap_err().code(), 42204);
        assert_eq!(Mode::parse("readonly"), Ok(Mode::ReadOnly));
    }

    #[test]
    fn a_schema_goes_with_the_last_version_holding_it() {
        let mut s = Store::new();
        assert_eq!(register(&mut s, "a", V1), Ok((1, 1)));
        assert_eq!(register(&mut s, "b", V1), Ok((1, 1)));
        for subject in ["a", "b"] {
            let (_, writes) = s.plan_delete_subject(subject, false).unwrap();
            apply_all(&mut s, writes);
            // Soft-deleted versions still hold it.
            assert!(s.schema(1).is_ok());
        }
        let (_, writes) = s.plan_delete_subject("a", true).unwrap();
        apply_all(&mut s, writes);
        assert!(s.schema(1).is_ok(), "b still holds it");
        let (_, writes) = s.plan_delete_subject("b", true).unwrap();
        apply_all(&mut s, writes);
        assert_eq!(s.schema(1).unwrap_err().code(), 40403);
        // The same version record applied twice counts once.
        assert_eq!(register(&mut s, "c", V2), Ok((2, 1)));
        let (v, stored) = s.version("c", VersionSpec::Latest, false).unwrap();
        let again = schema_record(
            "c",
            v.version,
            v.id,
            stored.schema_type,
            &stored.text.clone(),
            &[],
            false,
        );
        apply_all(&mut s, vec![again]);
        let (_, writes) = s.plan_delete_subject("c", false).unwrap();
        apply_all(&mut s, writes);
        let (_, writes) = s.plan_delete_subject("c", true).unwrap();
        apply_all(&mut s, writes);
        assert_eq!(s.schema(2).unwrap_err().code(), 40403);
    }
}
