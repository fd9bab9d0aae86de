//! JSON Schemas as the registry keeps and compares them.
//!
//! A JSON Schema is a JSON object or boolean; the registry checks the
//! keywords compatibility depends on (`type`, `properties`, `required`,
//! `items`, bounds, combinators) have the shape the specification gives
//! them, and keeps the schema with its object keys sorted, so key order and
//! whitespace do not make another schema.
//!
//! Compatibility asks what Confluent's registry asks: does the reader's
//! schema accept every document the writer's accepts? Widening (a type
//! added, a bound relaxed, an enum extended, a property no longer
//! required) reads old data; narrowing does not. Content models matter as
//! in Confluent's rules: a property added to a schema whose
//! `additionalProperties` is open (the default) is incompatible, since
//! old documents may carry that name with any value, while adding an
//! optional property to a closed schema (`"additionalProperties": false`)
//! is compatible. Problems name Confluent's difference types
//! (`PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL`, ...) with a JSON pointer.
//!
//! `$ref` is followed within the schema (`#/definitions/...`,
//! `#/$defs/...`) and into referenced schemas by the name their reference
//! gives them; a `$ref` that resolves nowhere is compared as a string.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

/// How deep the comparison follows a schema (nesting and `$ref`s); past
/// it, the schemas must be equal to be compatible.
pub const COMPARE_DEPTH_MAX: usize = 64;

/// How many schema pairs one comparison may visit: combinators try branch
/// against branch, which nested deep enough would never end. Past it,
/// what is left must be equal to be compatible.
pub const COMPARE_STEPS_MAX: usize = 100_000;

/// The most of a validator's message a refusal quotes.
pub const VALIDATION_MESSAGE_BYTES_MAX: usize = 1_000;

const TYPES: [&str; 7] = [
    "null", "boolean", "object", "array", "number", "string", "integer",
];

/// A parsed JSON Schema.
#[derive(Debug, Clone)]
pub struct JsonSchema {
    root: Value,
    /// Referenced schemas by the name their references give them.
    deps: BTreeMap<String, Value>,
    normalized: String,
    /// The schema compiled for validating documents, on first use.
    validator: Arc<OnceLock<Result<jsonschema::Validator, String>>>,
}

impl JsonSchema {
    /// Parses `text`; `deps` are the schemas its `$ref`s may name, by
    /// reference name. `Err` says why it is not a JSON Schema.
    pub fn parse(text: &str, deps: &[(&str, &str)]) -> Result<JsonSchema, String> {
        crate::schema::size_checked(text)?;
        let root: Value = serde_json::from_str(text)
            .map_err(|e| format!("invalid JSON schema: not JSON: {e}"))?;
        well_formed(&root, "#")?;
        let mut parsed_deps = BTreeMap::new();
        for (name, dep) in deps {
            let value: Value = serde_json::from_str(dep)
                .map_err(|e| format!("invalid JSON schema: reference {name} is not JSON: {e}"))?;
            parsed_deps.insert(name.to_string(), value);
        }
        let mut normalized = String::with_capacity(text.len());
        write_sorted(&root, &mut normalized);
        Ok(JsonSchema {
            root,
            deps: parsed_deps,
            normalized,
            validator: Arc::default(),
        })
    }

    /// Whether `document` is valid by this schema: `Err` names the first
    /// place it is not (or why the schema cannot validate). A schema
    /// without `$schema` is draft-07, as Confluent's serializers take it;
    /// `$ref`s reach this schema and its references, never the network.
    pub fn validate(&self, document: &Value) -> Result<(), String> {
        let validator = self.validator.get_or_init(|| {
            let mut options = jsonschema::options().with_retriever(References(self.deps.clone()));
            if self.root.get("$schema").is_none() {
                options = options.with_draft(jsonschema::Draft::Draft7);
            }
            options
                .build(&self.root)
                .map_err(|e| format!("the JSON schema cannot validate documents: {e}"))
        });
        let validator = validator.as_ref().map_err(Clone::clone)?;
        validator.validate(document).map_err(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "/".to_string() } else { at };
            // The validator's message quotes the offending value: cut, so a
            // large document is not echoed back whole.
            let mut why = e.to_string();
            if why.len() > VALIDATION_MESSAGE_BYTES_MAX {
                let mut cut = VALIDATION_MESSAGE_BYTES_MAX;
                while !why.is_char_boundary(cut) {
                    cut -= 1;
                }
                why.truncate(cut);
                why.push_str("...");
            }
            format!("the document is not valid at {at}: {why}")
        })
    }

    /// The text two equal schemas share.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// The schema's `title`, if it has one.
    pub fn title(&self) -> Option<&str> {
        self.root.get("title").and_then(Value::as_str)
    }
}

/// A schema's references for the validator, by the name each reference
/// gives: a `$ref` to `address.json` resolves against the schema's base
/// (`json-schema:///address.json` without an `$id`), so a reference
/// matches a URI that is its name or ends in `/` and its name.
struct References(BTreeMap<String, Value>);

impl jsonschema::Retrieve for References {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let uri = uri.as_str();
        self.0
            .iter()
            .find(|(name, _)| {
                uri == name.as_str()
                    || uri
                        .strip_suffix(name.as_str())
                        .is_some_and(|head| head.ends_with('/'))
            })
            .map(|(_, schema)| schema.clone())
            .ok_or_else(|| format!("{uri} is not one of the schema's references").into())
    }
}

/// `value` written with object keys sorted at every level.
fn write_sorted(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            out.push('{');
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(k.as_str()).to_string());
                out.push(':');
                write_sorted(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn invalid(at: &str, why: &str) -> String {
    format!("invalid JSON schema: {at}: {why}")
}

/// Checks the keywords compatibility reads have their specified shapes.
fn well_formed(schema: &Value, at: &str) -> Result<(), String> {
    let map = match schema {
        Value::Bool(_) => return Ok(()),
        Value::Object(map) => map,
        _ => return Err(invalid(at, "a schema is an object or a boolean")),
    };
    if let Some(t) = map.get("type") {
        let names: Vec<&Value> = match t {
            Value::Array(list) => list.iter().collect(),
            one => vec![one],
        };
        for name in names {
            if !name.as_str().is_some_and(|n| TYPES.contains(&n)) {
                return Err(invalid(
                    at,
                    &format!("type {name} is not a JSON Schema type"),
                ));
            }
        }
    }
    for keyword in ["properties", "patternProperties", "definitions", "$defs"] {
        if let Some(v) = map.get(keyword) {
            let Some(props) = v.as_object() else {
                return Err(invalid(at, &format!("{keyword} must be an object")));
            };
            for (name, sub) in props {
                well_formed(sub, &format!("{at}/{keyword}/{name}"))?;
            }
        }
    }
    if let Some(required) = map.get("required") {
        if !required
            .as_array()
            .is_some_and(|r| r.iter().all(Value::is_string))
        {
            return Err(invalid(at, "required must be an array of strings"));
        }
    }
    for keyword in [
        "additionalProperties",
        "additionalItems",
        "not",
        "contains",
        "propertyNames",
        "if",
        "then",
        "else",
    ] {
        if let Some(sub) = map.get(keyword) {
            well_formed(sub, &format!("{at}/{keyword}"))?;
        }
    }
    match map.get("items") {
        Some(Value::Array(list)) => {
            for (i, sub) in list.iter().enumerate() {
                well_formed(sub, &format!("{at}/items/{i}"))?;
            }
        }
        Some(sub) => well_formed(sub, &format!("{at}/items"))?,
        None => {}
    }
    for keyword in ["allOf", "anyOf", "oneOf", "prefixItems"] {
        if let Some(v) = map.get(keyword) {
            let Some(list) = v.as_array().filter(|l| !l.is_empty()) else {
                return Err(invalid(at, &format!("{keyword} must be a non-empty array")));
            };
            for (i, sub) in list.iter().enumerate() {
                well_formed(sub, &format!("{at}/{keyword}/{i}"))?;
            }
        }
    }
    for keyword in [
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
    ] {
        if let Some(v) = map.get(keyword) {
            // Draft 4 spelled exclusive bounds as booleans.
            let boolean_bound = keyword.starts_with("exclusive") && v.is_boolean();
            if !v.is_number() && !boolean_bound {
                return Err(invalid(at, &format!("{keyword} must be a number")));
            }
        }
    }
    if let Some(e) = map.get("enum") {
        if !e.is_array() {
            return Err(invalid(at, "enum must be an array"));
        }
    }
    if let Some(r) = map.get("$ref") {
        if !r.is_string() {
            return Err(invalid(at, "$ref must be a string"));
        }
    }
    Ok(())
}

/// One side of a comparison: a schema and the document it belongs to.
#[derive(Clone, Copy)]
struct Side<'a> {
    schema: &'a Value,
    root: &'a Value,
    owner: &'a JsonSchema,
    /// Steps left, shared by both sides of one comparison.
    steps: &'a Cell<usize>,
}

static TRUE: Value = Value::Bool(true);

impl<'a> Side<'a> {
    fn map(&self) -> Option<&'a Map<String, Value>> {
        self.schema.as_object()
    }

    fn get(&self, keyword: &str) -> Option<&'a Value> {
        self.map().and_then(|m| m.get(keyword))
    }

    fn list(&self, keyword: &str) -> Option<&'a Vec<Value>> {
        self.get(keyword).and_then(Value::as_array)
    }

    fn object(&self, keyword: &str) -> Option<&'a Map<String, Value>> {
        self.get(keyword).and_then(Value::as_object)
    }

    /// A subschema keyword's value, `true` when absent.
    fn or_true(&self, keyword: &str) -> &'a Value {
        self.get(keyword).unwrap_or(&TRUE)
    }

    fn strings(&self, keyword: &str) -> BTreeSet<&'a str> {
        self.list(keyword)
            .map(|l| l.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// The values `enum` or `const` allow; `None` for any.
    fn allowed(&self) -> Option<Vec<&'a Value>> {
        match (self.get("const"), self.list("enum")) {
            (Some(c), _) => Some(vec![c]),
            (None, Some(e)) => Some(e.iter().collect()),
            (None, None) => None,
        }
    }

    fn at(&self, schema: &'a Value) -> Side<'a> {
        Side { schema, ..*self }
    }

    /// Accepts every document (`true`, `{}`, or only annotations).
    fn accepts_all(&self) -> bool {
        match self.schema {
            Value::Bool(b) => *b,
            Value::Object(m) => m.keys().all(|k| ANNOTATIONS.contains(&k.as_str())),
            _ => false,
        }
    }

    fn accepts_nothing(&self) -> bool {
        matches!(self.schema, Value::Bool(false))
    }

    /// Follows `$ref` if this schema is one and it resolves.
    fn resolved(&self) -> Side<'a> {
        let Some(reference) = self.get("$ref").and_then(Value::as_str) else {
            return *self;
        };
        let (base, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        let root = if base.is_empty() {
            Some(self.root)
        } else {
            self.owner.deps.get(base)
        };
        let target = root.and_then(|r| {
            if fragment.is_empty() {
                Some(r)
            } else {
                r.pointer(fragment)
            }
        });
        match (root, target) {
            (Some(root), Some(schema)) => Side {
                schema,
                root,
                ..*self
            },
            _ => *self,
        }
    }
}

/// Keywords that say nothing about which documents a schema accepts.
const ANNOTATIONS: [&str; 14] = [
    "$schema",
    "$id",
    "id",
    "$comment",
    "title",
    "description",
    "default",
    "examples",
    "readOnly",
    "writeOnly",
    "deprecated",
    "definitions",
    "$defs",
    "format",
];

/// The problems with reading documents valid under `writer` with
/// `reader`: each a Confluent difference type and a JSON pointer.
pub fn reads(writer: &JsonSchema, reader: &JsonSchema) -> Vec<String> {
    let mut problems = Vec::new();
    let steps = Cell::new(COMPARE_STEPS_MAX);
    let w = Side {
        schema: &writer.root,
        root: &writer.root,
        owner: writer,
        steps: &steps,
    };
    let r = Side {
        schema: &reader.root,
        root: &reader.root,
        owner: reader,
        steps: &steps,
    };
    compare(w, r, "#", 0, &mut problems);
    problems
}

fn problem(out: &mut Vec<String>, kind: &str, at: &str) {
    out.push(format!("{kind}: {at}"));
}

/// The types a schema allows; `None` for all.
fn types(side: &Side) -> Option<BTreeSet<&'static str>> {
    let t = side.get("type")?;
    let names: Vec<&str> = match t {
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        one => one.as_str().into_iter().collect(),
    };
    Some(
        TYPES
            .iter()
            .copied()
            .filter(|known| names.contains(known))
            .collect(),
    )
}

fn compare(w: Side, r: Side, at: &str, depth: usize, out: &mut Vec<String>) {
    let (w, r) = (w.resolved(), r.resolved());
    if r.accepts_all() || w.accepts_nothing() {
        return;
    }
    let steps = w.steps.get();
    w.steps.set(steps.saturating_sub(1));
    if depth >= COMPARE_DEPTH_MAX || steps == 0 {
        if w.schema != r.schema {
            problem(out, "SCHEMA_TOO_COMPLEX_TO_COMPARE", at);
        }
        return;
    }
    if r.accepts_nothing() {
        problem(out, "TYPE_NARROWED", at);
        return;
    }
    // Unresolved references: equal strings are the same schema.
    let (wr, rr) = (w.get("$ref"), r.get("$ref"));
    if wr.is_some() || rr.is_some() {
        if wr != rr {
            problem(out, "REFERENCE_CHANGED", at);
        }
        return;
    }
    if !combinators(w, r, at, depth, out) {
        return;
    }
    match (types(&w), types(&r)) {
        (_, None) => {}
        (None, Some(_)) => problem(out, "TYPE_NARROWED", at),
        (Some(wt), Some(rt)) => {
            let lost: Vec<&str> = wt
                .iter()
                .copied()
                .filter(|t| !(rt.contains(t) || (*t == "integer" && rt.contains("number"))))
                .collect();
            if !lost.is_empty() {
                // Nothing the writer wrote is readable any more: a change,
                // not a narrowing (number to integer keeps whole numbers).
                let whole_numbers_kept = wt.contains("number") && rt.contains("integer");
                let kind = if lost.len() == wt.len() && !whole_numbers_kept {
                    "TYPE_CHANGED"
                } else {
                    "TYPE_NARROWED"
                };
                problem(out, kind, at);
            }
        }
    }
    values(w, r, at, out);
    bounds(w, r, at, out);
    object(w, r, at, depth, out);
    array(w, r, at, depth, out);
    if let Some(rn) = r.get("not") {
        if w.get("not") != Some(rn) {
            problem(out, "NOT_TYPE_EXTENDED", at);
        }
    }
}

/// `allOf`/`anyOf`/`oneOf`: a reader branch set must accept the writer
/// (or each of the writer's branches). Returns whether to go on comparing
/// the rest of the keywords.
fn combinators(w: Side, r: Side, at: &str, depth: usize, out: &mut Vec<String>) -> bool {
    for keyword in ["anyOf", "oneOf"] {
        let Some(reader_branches) = r.list(keyword) else {
            continue;
        };
        // The writer's own branches (a sum of schemas), or the writer as
        // one branch.
        let writer_branches: Vec<&Value> = w
            .list("anyOf")
            .or_else(|| w.list("oneOf"))
            .map(|l| l.iter().collect())
            .unwrap_or_else(|| vec![w.schema]);
        for (i, wb) in writer_branches.iter().enumerate() {
            let fits = reader_branches.iter().any(|rb| {
                let mut scratch = Vec::new();
                compare(w.at(wb), r.at(rb), at, depth + 1, &mut scratch);
                scratch.is_empty()
            });
            if !fits {
                let kind = if writer_branches.len() > 1 {
                    "SUM_TYPE_NARROWED"
                } else {
                    "COMBINED_TYPE_CHANGED"
                };
                problem(out, kind, &format!("{at}/{keyword}/{i}"));
            }
        }
        return false;
    }
    if let Some(reader_parts) = r.list("allOf") {
        // Every reader part must hold for every writer document: it holds
        // if the writer (or one of its own parts) is within it.
        let writer_parts: Vec<&Value> = w
            .list("allOf")
            .map(|l| l.iter().collect())
            .unwrap_or_else(|| vec![w.schema]);
        for (i, rp) in reader_parts.iter().enumerate() {
            let held = writer_parts.iter().any(|wp| {
                let mut scratch = Vec::new();
                compare(w.at(wp), r.at(rp), at, depth + 1, &mut scratch);
                scratch.is_empty()
            });
            if !held {
                problem(out, "PRODUCT_TYPE_EXTENDED", &format!("{at}/allOf/{i}"));
            }
        }
        return false;
    }
    if w.list("allOf").is_some() || w.list("anyOf").is_some() || w.list("oneOf").is_some() {
        // The reader dropped the writer's combinator for plain keywords:
        // compare each writer branch against the reader.
        let branches: Vec<&Value> = ["anyOf", "oneOf"]
            .iter()
            .filter_map(|k| w.list(k))
            .flatten()
            .collect();
        for (i, wb) in branches.iter().enumerate() {
            compare(w.at(wb), r, &format!("{at}/anyOf/{i}"), depth + 1, out);
        }
        if let Some(parts) = w.list("allOf") {
            let fits = parts.iter().any(|wp| {
                let mut scratch = Vec::new();
                compare(w.at(wp), r, at, depth + 1, &mut scratch);
                scratch.is_empty()
            });
            if !fits {
                problem(out, "COMBINED_TYPE_CHANGED", at);
            }
        }
        return false;
    }
    true
}

/// `enum` and `const`: every value the writer allows must be allowed.
fn values(w: Side, r: Side, at: &str, out: &mut Vec<String>) {
    match (w.allowed(), r.allowed()) {
        (_, None) => {}
        (None, Some(_)) => problem(out, "ENUM_ARRAY_ADDED", at),
        (Some(wv), Some(rv)) => {
            if wv.iter().any(|v| !rv.contains(v)) {
                problem(out, "ENUM_ARRAY_NARROWED", at);
            }
        }
    }
}

/// Minimums may only fall and maximums only rise; a pattern, `multipleOf`
/// or `uniqueItems` the reader has, the writer must have had.
fn bounds(w: Side, r: Side, at: &str, out: &mut Vec<String>) {
    let number = |s: &Side, k: &str| s.get(k).and_then(Value::as_f64);
    for (keyword, upper) in [
        ("minimum", false),
        ("exclusiveMinimum", false),
        ("minLength", false),
        ("minItems", false),
        ("minProperties", false),
        ("maximum", true),
        ("exclusiveMaximum", true),
        ("maxLength", true),
        ("maxItems", true),
        ("maxProperties", true),
    ] {
        let name = upper_snake(keyword);
        match (number(&w, keyword), number(&r, keyword)) {
            (_, None) => {}
            (None, Some(_)) => problem(out, &format!("{name}_ADDED"), at),
            (Some(wv), Some(rv)) => {
                if upper && rv < wv {
                    problem(out, &format!("{name}_DECREASED"), at);
                }
                if !upper && rv > wv {
                    problem(out, &format!("{name}_INCREASED"), at);
                }
            }
        }
    }
    match (number(&w, "multipleOf"), number(&r, "multipleOf")) {
        (_, None) => {}
        (None, Some(_)) => problem(out, "MULTIPLE_OF_ADDED", at),
        (Some(wv), Some(rv)) => {
            let ratio = wv / rv;
            if rv == 0.0 || (ratio - ratio.round()).abs() > 1e-9 {
                problem(out, "MULTIPLE_OF_CHANGED", at);
            }
        }
    }
    if let Some(rp) = r.get("pattern") {
        match w.get("pattern") {
            None => problem(out, "PATTERN_ADDED", at),
            Some(wp) if wp != rp => problem(out, "PATTERN_CHANGED", at),
            Some(_) => {}
        }
    }
    if r.get("uniqueItems") == Some(&Value::Bool(true))
        && w.get("uniqueItems") != Some(&Value::Bool(true))
    {
        problem(out, "UNIQUE_ITEMS_ADDED", at);
    }
}

/// `minLength` → `MIN_LENGTH`.
fn upper_snake(keyword: &str) -> String {
    let mut out = String::new();
    for c in keyword.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn object(w: Side, r: Side, at: &str, depth: usize, out: &mut Vec<String>) {
    let empty = Map::new();
    let wp = w.object("properties").unwrap_or(&empty);
    let rp = r.object("properties").unwrap_or(&empty);
    let (wa, ra) = (
        w.at(w.or_true("additionalProperties")),
        r.at(r.or_true("additionalProperties")),
    );
    // Pattern properties cover names by regular expression; they are
    // compared as they stand rather than matched against names.
    if r.get("patternProperties").is_some()
        && r.get("patternProperties") != w.get("patternProperties")
    {
        problem(out, "PATTERN_PROPERTIES_CHANGED", at);
    }
    for (name, ws) in wp {
        let here = format!("{at}/properties/{name}");
        match rp.get(name) {
            Some(rs) => compare(w.at(ws), r.at(rs), &here, depth + 1, out),
            None => {
                // The reader takes the writer's property as an additional
                // one.
                let mut scratch = Vec::new();
                compare(w.at(ws), ra, &here, depth + 1, &mut scratch);
                if !scratch.is_empty() {
                    let kind = if ra.accepts_nothing() {
                        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"
                    } else {
                        "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
                    };
                    problem(out, kind, &here);
                }
            }
        }
    }
    for (name, rs) in rp {
        if wp.contains_key(name) {
            continue;
        }
        let here = format!("{at}/properties/{name}");
        // The writer may have written this name as an additional property.
        let mut scratch = Vec::new();
        compare(wa, r.at(rs), &here, depth + 1, &mut scratch);
        if !scratch.is_empty() {
            let kind = if wa.accepts_all() {
                "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"
            } else {
                "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
            };
            problem(out, kind, &here);
        }
    }
    let mut scratch = Vec::new();
    compare(
        wa,
        ra,
        &format!("{at}/additionalProperties"),
        depth + 1,
        &mut scratch,
    );
    if !scratch.is_empty() {
        problem(
            out,
            "ADDITIONAL_PROPERTIES_NARROWED",
            &format!("{at}/additionalProperties"),
        );
    }
    let wr = w.strings("required");
    for name in r.strings("required") {
        if !wr.contains(name) {
            let kind = if wp.contains_key(name) {
                "REQUIRED_ATTRIBUTE_ADDED"
            } else {
                "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"
            };
            problem(out, kind, &format!("{at}/required/{name}"));
        }
    }
    for keyword in ["dependencies", "dependentRequired", "dependentSchemas"] {
        if let Some(rd) = r.object(keyword) {
            let wd = w.object(keyword);
            for (name, dep) in rd {
                if wd.and_then(|d| d.get(name)) != Some(dep) {
                    problem(out, "DEPENDENCY_ADDED", &format!("{at}/{keyword}/{name}"));
                }
            }
        }
    }
}

/// An array schema's positional item schemas (draft 2020-12's
/// `prefixItems` or an `items` array) and the schema of the items after
/// them.
fn tuple<'a>(s: &Side<'a>) -> (Vec<&'a Value>, &'a Value) {
    if let Some(list) = s.get("prefixItems").and_then(Value::as_array) {
        return (list.iter().collect(), s.get("items").unwrap_or(&TRUE));
    }
    match s.get("items") {
        Some(Value::Array(list)) => (
            list.iter().collect(),
            s.get("additionalItems").unwrap_or(&TRUE),
        ),
        Some(one) => (Vec::new(), one),
        None => (Vec::new(), &TRUE),
    }
}

fn array(w: Side, r: Side, at: &str, depth: usize, out: &mut Vec<String>) {
    let (wt, wrest) = tuple(&w);
    let (rt, rrest) = tuple(&r);
    for i in 0..wt.len().max(rt.len()) {
        let ws = wt.get(i).copied().unwrap_or(wrest);
        let rs = rt.get(i).copied().unwrap_or(rrest);
        compare(
            w.at(ws),
            r.at(rs),
            &format!("{at}/items/{i}"),
            depth + 1,
            out,
        );
    }
    compare(
        w.at(wrest),
        r.at(rrest),
        &format!("{at}/items"),
        depth + 1,
        out,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(text: &str) -> JsonSchema {
        JsonSchema::parse(text, &[]).unwrap()
    }

    fn kinds(writer: &str, reader: &str) -> Vec<String> {
        reads(&schema(writer), &schema(reader))
            .into_iter()
            .map(|p| p.split(':').next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn documents_are_validated_with_references_and_draft_07_by_default() {
        let address = r#"{"type":"object","properties":{"zip":{"type":"string","pattern":"^[0-9]{5}$"}},"required":["zip"]}"#;
        let customer = JsonSchema::parse(
            r#"{"type":"object","properties":{"name":{"type":"string"},"home":{"$ref":"address.json"}},"required":["name"]}"#,
            &[("address.json", address)],
        )
        .unwrap();
        let good = serde_json::json!({"name": "Ema", "home": {"zip": "11000"}});
        assert_eq!(customer.validate(&good), Ok(()));
        let err = customer
            .validate(&serde_json::json!({"name": "Ema", "home": {"zip": "110"}}))
            .unwrap_err();
        assert!(err.contains("not valid at /home/zip"), "{err}");
        assert!(customer
            .validate(&serde_json::json!({"home": {"zip": "11000"}}))
            .unwrap_err()
            .contains("\"name\" is a required property"));
        // No $schema: draft-07, where `dependencies` is a keyword (it is
        // not one in 2020-12).
        let draft7 = JsonSchema::parse(r#"{"dependencies":{"a":["b"]}}"#, &[]).unwrap();
        assert!(draft7.validate(&serde_json::json!({"a": 1})).is_err());
        assert_eq!(
            draft7.validate(&serde_json::json!({"a": 1, "b": 2})),
            Ok(())
        );
        // A large offending value is not quoted back whole.
        let short = JsonSchema::parse(r#"{"type":"string","maxLength":1}"#, &[]).unwrap();
        let err = short
            .validate(&serde_json::json!("x".repeat(100_000)))
            .unwrap_err();
        assert!(
            err.len() < VALIDATION_MESSAGE_BYTES_MAX + 100,
            "{}",
            err.len()
        );
        assert!(err.ends_with("..."), "{err}");
        // A reference the schema was not given is refused, never fetched.
        let dangling = JsonSchema::parse(r#"{"$ref":"https://example.com/x.json"}"#, &[]).unwrap();
        let err = dangling.validate(&serde_json::json!(1)).unwrap_err();
        assert!(err.contains("cannot validate"), "{err}");
    }

    #[test]
    fn key_order_and_whitespace_do_not_make_another_schema() {
        let a = schema(
            r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}}}"#,
        );
        let b = schema("{ \"properties\": {\"b\": {\"type\": \"integer\"}, \"a\": {\"type\": \"string\"}},\n \"type\": \"object\" }");
        assert_eq!(a.normalized(), b.normalized());
        let c = schema(r#"{"type":"object","properties":{"a":{"type":"string"}}}"#);
        assert_ne!(a.normalized(), c.normalized());
    }

    #[test]
    fn what_is_not_a_json_schema_is_refused_with_a_reason() {
        for text in [
            "",
            "[1]",
            "42",
            r#"{"type":"strng"}"#,
            r#"{"properties":[]}"#,
            r#"{"required":"a"}"#,
            r#"{"properties":{"a":7}}"#,
            r#"{"anyOf":[]}"#,
            r#"{"maxLength":"ten"}"#,
        ] {
            let err = JsonSchema::parse(text, &[]).unwrap_err();
            assert!(err.starts_with("invalid JSON schema"), "{text}: {err}");
        }
        assert!(JsonSchema::parse("true", &[]).is_ok());
        assert!(JsonSchema::parse(r#"{"type":["string","null"]}"#, &[]).is_ok());
    }

    const CLOSED: &str = r#"{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"],"additionalProperties":false}"#;
    const OPEN: &str =
        r#"{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}"#;

    #[test]
    fn content_models_decide_whether_properties_may_come_and_go() {
        let closed_plus = r#"{"type":"object","properties":{"id":{"type":"integer"},"name":{"type":"string"}},"required":["id"],"additionalProperties":false}"#;
        let open_plus = r#"{"type":"object","properties":{"id":{"type":"integer"},"name":{"type":"string"}},"required":["id"]}"#;
        // An optional property added to a closed model: old documents never
        // carry it.
        assert!(kinds(CLOSED, closed_plus).is_empty());
        // ... but removing it from a closed model refuses documents that do.
        assert_eq!(
            kinds(closed_plus, CLOSED),
            ["PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"]
        );
        // An open model: old documents may carry `name` with any value.
        assert_eq!(
            kinds(OPEN, open_plus),
            ["PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"]
        );
        assert!(kinds(open_plus, OPEN).is_empty());
        // Closing an open model.
        assert_eq!(kinds(OPEN, CLOSED), ["ADDITIONAL_PROPERTIES_NARROWED"]);
        assert!(kinds(CLOSED, OPEN).is_empty());
        // A property with an empty schema reads anything old documents had.
        let open_any = r#"{"type":"object","properties":{"id":{"type":"integer"},"extra":{}},"required":["id"]}"#;
        assert!(kinds(OPEN, open_any).is_empty());
    }

    #[test]
    fn requirements_types_enums_and_bounds_may_widen_but_not_narrow() {
        let required_more = r#"{"type":"object","properties":{"id":{"type":"integer"},"n":{"type":"string"}},"required":["id","n"],"additionalProperties":false}"#;
        let optional_n = r#"{"type":"object","properties":{"id":{"type":"integer"},"n":{"type":"string"}},"required":["id"],"additionalProperties":false}"#;
        assert_eq!(
            kinds(optional_n, required_more),
            ["REQUIRED_ATTRIBUTE_ADDED"]
        );
        assert!(kinds(required_more, optional_n).is_empty());
        assert!(kinds(r#"{"type":"integer"}"#, r#"{"type":"number"}"#).is_empty());
        assert_eq!(
            kinds(r#"{"type":"number"}"#, r#"{"type":"integer"}"#),
            ["TYPE_NARROWED"]
        );
        assert_eq!(
            kinds(r#"{"type":"string"}"#, r#"{"type":"integer"}"#),
            ["TYPE_CHANGED"]
        );
        assert!(kinds(r#"{"type":"string"}"#, r#"{"type":["string","null"]}"#).is_empty());
        assert_eq!(
            kinds(r#"{"type":["string","null"]}"#, r#"{"type":"string"}"#),
            ["TYPE_NARROWED"]
        );
        assert!(kinds(r#"{"enum":["a","b"]}"#, r#"{"enum":["a","b","c"]}"#).is_empty());
        assert_eq!(
            kinds(r#"{"enum":["a","b"]}"#, r#"{"enum":["a"]}"#),
            ["ENUM_ARRAY_NARROWED"]
        );
        assert_eq!(
            kinds(r#"{"type":"string"}"#, r#"{"type":"string","enum":["a"]}"#),
            ["ENUM_ARRAY_ADDED"]
        );
        assert!(kinds(
            r#"{"type":"string","maxLength":5}"#,
            r#"{"type":"string","maxLength":9}"#
        )
        .is_empty());
        assert_eq!(
            kinds(
                r#"{"type":"string","maxLength":9}"#,
                r#"{"type":"string","maxLength":5}"#
            ),
            ["MAX_LENGTH_DECREASED"]
        );
        assert_eq!(
            kinds(r#"{"type":"integer"}"#, r#"{"type":"integer","minimum":0}"#),
            ["MINIMUM_ADDED"]
        );
        assert_eq!(
            kinds(
                r#"{"type":"string"}"#,
                r#"{"type":"string","pattern":"^a"}"#
            ),
            ["PATTERN_ADDED"]
        );
    }

    #[test]
    fn nested_arrays_combinators_and_references_are_followed() {
        let items = |t: &str| format!(r#"{{"type":"array","items":{{"type":"{t}"}}}}"#);
        assert!(kinds(&items("integer"), &items("number")).is_empty());
        assert_eq!(kinds(&items("string"), &items("integer")), ["TYPE_CHANGED"]);
        assert!(kinds(
            r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#,
            r#"{"oneOf":[{"type":"string"},{"type":"integer"},{"type":"null"}]}"#
        )
        .is_empty());
        assert_eq!(
            kinds(
                r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#,
                r#"{"oneOf":[{"type":"string"}]}"#
            ),
            ["SUM_TYPE_NARROWED"]
        );
        let with_ref = |t: &str| {
            format!(
                r##"{{"type":"object","properties":{{"a":{{"$ref":"#/definitions/A"}}}},"definitions":{{"A":{{"type":"{t}"}}}}}}"##
            )
        };
        assert!(kinds(&with_ref("integer"), &with_ref("number")).is_empty());
        assert_eq!(
            kinds(&with_ref("string"), &with_ref("integer")),
            ["TYPE_CHANGED"]
        );
        // A schema that refers to itself is compared to a depth, not
        // forever.
        let list = r##"{"type":"object","properties":{"next":{"$ref":"#"}}}"##;
        assert!(kinds(list, list).is_empty());
        // References into another schema resolve by reference name.
        let dep_v1 = r#"{"type":"string"}"#;
        let dep_v2 = r#"{"type":"integer"}"#;
        let top = r#"{"type":"object","properties":{"a":{"$ref":"other.json"}}}"#;
        let w = JsonSchema::parse(top, &[("other.json", dep_v1)]).unwrap();
        let r = JsonSchema::parse(top, &[("other.json", dep_v2)]).unwrap();
        assert_eq!(reads(&w, &r).len(), 1);
    }

    #[test]
    fn hostile_nesting_is_compared_within_a_budget() {
        // Branch against branch at every level: without a budget this would
        // take 4^14 steps (the text is 300 KB).
        let mut w = r#"{"type":"string"}"#.to_string();
        let mut r = r#"{"type":"integer"}"#.to_string();
        for _ in 0..14 {
            w = format!(r#"{{"anyOf":[{w},{w}]}}"#);
            r = format!(r#"{{"anyOf":[{r},{r}]}}"#);
        }
        let started = std::time::Instant::now();
        assert!(!reads(&schema(&w), &schema(&r)).is_empty());
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }
}
