//! Avro binary data to and from Avro's JSON encoding, walking the schema
//! with bounds: what the REST proxy writes from JSON and what it, the
//! console consumer and the console print.
//!
//! The JSON is the Avro specification's (what Confluent's tools read and
//! print): a union's non-null value is wrapped in an object naming its
//! branch (`{"string": "hi"}`), bytes and fixed are strings of their bytes
//! as code points 0-255, records keep their field order, logical types are
//! their underlying type. Reading JSON also takes a union's value
//! unwrapped, trying the branches in order.
//!
//! Records come from anyone who can produce, and schemas from anyone who
//! can register, so decoding is bounded: [`DEPTH_MAX`] levels of nesting
//! (a record that contains itself would otherwise recurse forever on no
//! input), [`ITEMS_MAX`] array items and map entries (an array of nulls
//! takes no bytes per item) and [`TEXT_BYTES_MAX`] of JSON.

use apache_avro::schema::{NamesRef, ResolvedSchema, Schema, UnionSchema};
use serde_json::Value;

/// Nesting levels (records, arrays, maps, unions, named references) one
/// datum may have.
pub const DEPTH_MAX: usize = 64;

/// Array items and map entries one datum may have, over all its
/// collections.
pub const ITEMS_MAX: usize = 1_000_000;

/// The most JSON text one datum decodes to.
pub const TEXT_BYTES_MAX: usize = 64 * 1024 * 1024;

static INT: Schema = Schema::Int;
static LONG: Schema = Schema::Long;
static BYTES: Schema = Schema::Bytes;
static STRING: Schema = Schema::String;

/// A logical type's underlying type when that is a plain one (dates are
/// ints, timestamps longs, ...); other schemas as they are. Logical types
/// on a fixed keep their fixed.
fn plain(schema: &Schema) -> &Schema {
    use apache_avro::schema::{InnerDecimalSchema, UuidSchema};
    match schema {
        Schema::Date | Schema::TimeMillis => &INT,
        Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => &LONG,
        Schema::BigDecimal | Schema::Uuid(UuidSchema::Bytes) => &BYTES,
        Schema::Decimal(d) if matches!(d.inner, InnerDecimalSchema::Bytes) => &BYTES,
        Schema::Uuid(UuidSchema::String) => &STRING,
        other => other,
    }
}

/// The fixed size of a fixed, or of a logical type on one.
fn fixed_size(schema: &Schema) -> Option<usize> {
    use apache_avro::schema::{InnerDecimalSchema, UuidSchema};
    match schema {
        Schema::Fixed(f) | Schema::Duration(f) | Schema::Uuid(UuidSchema::Fixed(f)) => Some(f.size),
        Schema::Decimal(d) => match &d.inner {
            InnerDecimalSchema::Fixed(f) => Some(f.size),
            InnerDecimalSchema::Bytes => None,
        },
        _ => None,
    }
}

/// Names of every named type of `schema` and `deps`, for references.
fn names<'s>(schema: &'s Schema, deps: &'s [Schema]) -> Result<ResolvedSchema<'s>, String> {
    let mut all: Vec<&Schema> = deps.iter().collect();
    all.push(schema);
    ResolvedSchema::new_with_schemata(all)
        .map_err(|e| format!("cannot resolve the schema's names: {e}"))
}

/// `body` (Avro binary) as Avro's JSON encoding.
pub fn decode(schema: &Schema, deps: &[Schema], body: &[u8]) -> Result<String, String> {
    let resolved = names(schema, deps)?;
    let mut d = Decoder {
        data: body,
        names: resolved.get_names(),
        items: 0,
        out: String::new(),
    };
    d.value(schema, 0)?;
    if !d.data.is_empty() {
        return Err(format!("{} bytes follow the datum", d.data.len()));
    }
    Ok(d.out)
}

struct Decoder<'a> {
    data: &'a [u8],
    names: &'a NamesRef<'a>,
    items: usize,
    out: String,
}

impl Decoder<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.data.len() < n {
            return Err(format!(
                "the datum ends early ({n} bytes wanted, {} left)",
                self.data.len()
            ));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn long(&mut self) -> Result<i64, String> {
        let mut raw = 0u64;
        for shift in 0..10 {
            let byte = self.take(1)?[0];
            raw |= u64::from(byte & 0x7f) << (7 * shift);
            if byte & 0x80 == 0 {
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err("a varint is longer than 10 bytes".to_string())
    }

    fn int(&mut self) -> Result<i32, String> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| format!("{v} does not fit an int"))
    }

    /// A length or count, checked against what is left to read.
    fn length(&mut self) -> Result<usize, String> {
        let n = self.long()?;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.data.len())
            .ok_or_else(|| format!("length {n} does not fit the {} bytes left", self.data.len()))
    }

    fn push(&mut self, text: &str) -> Result<(), String> {
        if self.out.len() + text.len() > TEXT_BYTES_MAX {
            return Err(format!(
                "the datum decodes to more than {TEXT_BYTES_MAX} bytes of JSON"
            ));
        }
        self.out.push_str(text);
        Ok(())
    }

    fn string(&mut self, text: &str) -> Result<(), String> {
        self.push(&Value::from(text).to_string())
    }

    fn count_item(&mut self) -> Result<(), String> {
        self.items += 1;
        if self.items > ITEMS_MAX {
            return Err(format!(
                "the datum has more than {ITEMS_MAX} array items and map entries"
            ));
        }
        Ok(())
    }

    /// The items of an array or map: blocks of a count (negative: followed
    /// by the block's byte size) until a count of 0; `f` reads each.
    fn blocks(
        &mut self,
        mut f: impl FnMut(&mut Self, bool) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut first = true;
        loop {
            let mut count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                count = count.checked_neg().ok_or("an item count overflows")?;
                self.long()?;
            }
            for _ in 0..count {
                self.count_item()?;
                f(self, first)?;
                first = false;
            }
        }
    }

    fn value(&mut self, schema: &Schema, depth: usize) -> Result<(), String> {
        if depth > DEPTH_MAX {
            return Err(format!("the datum nests deeper than {DEPTH_MAX} levels"));
        }
        if let Some(size) = fixed_size(schema) {
            return self.fixed(size);
        }
        match plain(schema) {
            Schema::Null => self.push("null"),
            Schema::Boolean => match self.take(1)?[0] {
                0 => self.push("false"),
                1 => self.push("true"),
                b => Err(format!("{b} is not a boolean")),
            },
            Schema::Int => {
                let v = self.int()?;
                self.push(&v.to_string())
            }
            Schema::Long => {
                let v = self.long()?;
                self.push(&v.to_string())
            }
            Schema::Float => {
                let b = self.take(4)?;
                let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                self.push(&number(f64::from(v)))
            }
            Schema::Double => {
                let b = self.take(8)?;
                let v = f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                self.push(&number(v))
            }
            Schema::Bytes => {
                let n = self.length()?;
                let text = code_points(self.take(n)?);
                self.string(&text)
            }
            Schema::String => {
                let n = self.length()?;
                let text = std::str::from_utf8(self.take(n)?)
                    .map_err(|e| format!("a string is not UTF-8: {e}"))?
                    .to_string();
                self.string(&text)
            }
            Schema::Enum(e) => {
                let i = self.int()?;
                let symbol = usize::try_from(i)
                    .ok()
                    .and_then(|i| e.symbols.get(i))
                    .ok_or_else(|| {
                        format!("enum index {i} is not one of {} symbols", e.symbols.len())
                    })?
                    .clone();
                self.string(&symbol)
            }
            Schema::Union(u) => {
                let i = self.long()?;
                let branch = usize::try_from(i)
                    .ok()
                    .and_then(|i| u.variants().get(i))
                    .ok_or_else(|| {
                        format!(
                            "union index {i} is not one of {} branches",
                            u.variants().len()
                        )
                    })?;
                if matches!(branch, Schema::Null) {
                    return self.push("null");
                }
                self.push("{")?;
                self.string(&branch_name(branch))?;
                self.push(":")?;
                self.value(branch, depth + 1)?;
                self.push("}")
            }
            Schema::Array(a) => {
                self.push("[")?;
                self.blocks(|d, first| {
                    if !first {
                        d.push(",")?;
                    }
                    d.value(&a.items, depth + 1)
                })?;
                self.push("]")
            }
            Schema::Map(m) => {
                self.push("{")?;
                self.blocks(|d, first| {
                    if !first {
                        d.push(",")?;
                    }
                    let n = d.length()?;
                    let key = std::str::from_utf8(d.take(n)?)
                        .map_err(|e| format!("a map key is not UTF-8: {e}"))?
                        .to_string();
                    d.string(&key)?;
                    d.push(":")?;
                    d.value(&m.types, depth + 1)
                })?;
                self.push("}")
            }
            Schema::Record(r) => {
                self.push("{")?;
                for (i, field) in r.fields.iter().enumerate() {
                    if i > 0 {
                        self.push(",")?;
                    }
                    self.string(&field.name)?;
                    self.push(":")?;
                    self.value(&field.schema, depth + 1)?;
                }
                self.push("}")
            }
            Schema::Ref { name } => {
                let target = *self.names.get(name).ok_or_else(|| {
                    format!(
                        "the schema names {} but does not define it",
                        name.fullname(None)
                    )
                })?;
                self.value(target, depth + 1)
            }
            other => Err(format!("cannot decode a {other:?} schema")),
        }
    }

    fn fixed(&mut self, size: usize) -> Result<(), String> {
        let text = code_points(self.take(size)?);
        self.string(&text)
    }
}

/// Bytes as a string of code points 0-255 (Avro's JSON for bytes).
fn code_points(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn number(v: f64) -> String {
    serde_json::Number::from_f64(v)
        .map_or_else(|| Value::from(v.to_string()).to_string(), |n| n.to_string())
}

/// The name a union branch goes by in JSON: the type's name, a named
/// type's full name.
fn branch_name(schema: &Schema) -> String {
    use apache_avro::schema::{InnerDecimalSchema, UuidSchema};
    match plain(schema) {
        Schema::Null => "null".into(),
        Schema::Boolean => "boolean".into(),
        Schema::Int => "int".into(),
        Schema::Long => "long".into(),
        Schema::Float => "float".into(),
        Schema::Double => "double".into(),
        Schema::Bytes => "bytes".into(),
        Schema::String => "string".into(),
        Schema::Array(_) => "array".into(),
        Schema::Map(_) => "map".into(),
        Schema::Union(_) => "union".into(),
        Schema::Record(r) => r.name.fullname(None),
        Schema::Enum(e) => e.name.fullname(None),
        Schema::Fixed(f) | Schema::Duration(f) | Schema::Uuid(UuidSchema::Fixed(f)) => {
            f.name.fullname(None)
        }
        Schema::Decimal(d) => match &d.inner {
            InnerDecimalSchema::Fixed(f) => f.name.fullname(None),
            InnerDecimalSchema::Bytes => "bytes".into(),
        },
        Schema::Ref { name } => name.fullname(None),
        other => format!("{other:?}"),
    }
}

/// `data` (Avro's JSON encoding, or a union's value unwrapped) written as
/// Avro binary by `schema`.
pub fn encode(schema: &Schema, deps: &[Schema], data: &Value) -> Result<Vec<u8>, String> {
    let resolved = names(schema, deps)?;
    let mut out = Vec::new();
    write(schema, resolved.get_names(), data, &mut out, 0, "$")?;
    Ok(out)
}

fn long(v: i64, out: &mut Vec<u8>) {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

fn write(
    schema: &Schema,
    names: &NamesRef,
    data: &Value,
    out: &mut Vec<u8>,
    depth: usize,
    at: &str,
) -> Result<(), String> {
    if depth > DEPTH_MAX {
        return Err(format!(
            "{at}: the data nests deeper than {DEPTH_MAX} levels"
        ));
    }
    let wrong = |want: &str| format!("{at}: expected {want}, got {data}");
    if let Some(size) = fixed_size(schema) {
        return fixed(size, data, out, at);
    }
    match plain(schema) {
        Schema::Null => data.is_null().then_some(()).ok_or_else(|| wrong("null")),
        Schema::Boolean => {
            out.push(u8::from(data.as_bool().ok_or_else(|| wrong("a boolean"))?));
            Ok(())
        }
        Schema::Int => {
            let v = data
                .as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(|| wrong("an int"))?;
            long(i64::from(v), out);
            Ok(())
        }
        Schema::Long => {
            long(data.as_i64().ok_or_else(|| wrong("a long"))?, out);
            Ok(())
        }
        Schema::Float => {
            let v = data.as_f64().ok_or_else(|| wrong("a number"))?;
            out.extend_from_slice(&(v as f32).to_le_bytes());
            Ok(())
        }
        Schema::Double => {
            let v = data.as_f64().ok_or_else(|| wrong("a number"))?;
            out.extend_from_slice(&v.to_le_bytes());
            Ok(())
        }
        Schema::Bytes => {
            let bytes =
                from_code_points(data).ok_or_else(|| wrong("a string of code points 0-255"))?;
            long(bytes.len() as i64, out);
            out.extend_from_slice(&bytes);
            Ok(())
        }
        Schema::String => {
            let s = data.as_str().ok_or_else(|| wrong("a string"))?;
            long(s.len() as i64, out);
            out.extend_from_slice(s.as_bytes());
            Ok(())
        }
        Schema::Enum(e) => {
            let s = data.as_str().ok_or_else(|| wrong("an enum symbol"))?;
            let i = e
                .symbols
                .iter()
                .position(|x| x == s)
                .ok_or_else(|| format!("{at}: {s} is not one of the enum's symbols"))?;
            long(i as i64, out);
            Ok(())
        }
        Schema::Union(u) => union(u, names, data, out, depth, at),
        Schema::Array(a) => {
            let items = data.as_array().ok_or_else(|| wrong("an array"))?;
            if !items.is_empty() {
                long(items.len() as i64, out);
                for (i, item) in items.iter().enumerate() {
                    write(&a.items, names, item, out, depth + 1, &format!("{at}[{i}]"))?;
                }
            }
            out.push(0);
            Ok(())
        }
        Schema::Map(m) => {
            let entries = data.as_object().ok_or_else(|| wrong("an object"))?;
            if !entries.is_empty() {
                long(entries.len() as i64, out);
                for (k, v) in entries {
                    long(k.len() as i64, out);
                    out.extend_from_slice(k.as_bytes());
                    write(&m.types, names, v, out, depth + 1, &format!("{at}.{k}"))?;
                }
            }
            out.push(0);
            Ok(())
        }
        Schema::Record(r) => {
            let fields = data.as_object().ok_or_else(|| wrong("an object"))?;
            for field in &r.fields {
                let here = format!("{at}.{}", field.name);
                match (fields.get(&field.name), &field.default) {
                    (Some(v), _) => write(&field.schema, names, v, out, depth + 1, &here)?,
                    // A union's default is its first branch's value.
                    (None, Some(default)) => match &field.schema {
                        Schema::Union(u) if !u.variants().is_empty() => {
                            long(0, out);
                            write(&u.variants()[0], names, default, out, depth + 1, &here)?;
                        }
                        s => write(s, names, default, out, depth + 1, &here)?,
                    },
                    (None, None) => {
                        return Err(format!("{here}: missing, and the field has no default"))
                    }
                }
            }
            Ok(())
        }
        Schema::Ref { name } => {
            let target = *names.get(name).ok_or_else(|| {
                format!(
                    "{at}: the schema names {} but does not define it",
                    name.fullname(None)
                )
            })?;
            write(target, names, data, out, depth + 1, at)
        }
        other => Err(format!("{at}: cannot encode a {other:?} schema")),
    }
}

fn fixed(size: usize, data: &Value, out: &mut Vec<u8>, at: &str) -> Result<(), String> {
    let bytes = from_code_points(data)
        .ok_or_else(|| format!("{at}: expected a string of code points 0-255"))?;
    if bytes.len() != size {
        return Err(format!(
            "{at}: a fixed of {size} bytes, got {}",
            bytes.len()
        ));
    }
    out.extend_from_slice(&bytes);
    Ok(())
}

fn from_code_points(data: &Value) -> Option<Vec<u8>> {
    data.as_str()?
        .chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect()
}

/// A union: `null`, `{"branch": value}`, or a value that fits one branch
/// (the first that does).
fn union(
    u: &UnionSchema,
    names: &NamesRef,
    data: &Value,
    out: &mut Vec<u8>,
    depth: usize,
    at: &str,
) -> Result<(), String> {
    let branches = u.variants();
    if data.is_null() {
        let i = branches
            .iter()
            .position(|b| matches!(b, Schema::Null))
            .ok_or_else(|| format!("{at}: null, but the union has no null branch"))?;
        long(i as i64, out);
        return Ok(());
    }
    if let Some((name, inner)) = data
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.iter().next())
    {
        if let Some(i) = branches.iter().position(|b| branch_name(b) == *name) {
            long(i as i64, out);
            return write(&branches[i], names, inner, out, depth + 1, at);
        }
    }
    for (i, branch) in branches.iter().enumerate() {
        let mut attempt = Vec::new();
        long(i as i64, &mut attempt);
        if write(branch, names, data, &mut attempt, depth + 1, at).is_ok() {
            out.extend_from_slice(&attempt);
            return Ok(());
        }
    }
    Err(format!("{at}: {data} fits no branch of the union"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(text: &str) -> Schema {
        Schema::parse_str(text).unwrap()
    }

    #[test]
    fn every_type_round_trips_in_avros_json_encoding() {
        let s = schema(
            r#"{"type":"record","name":"T","namespace":"shop","fields":[
                {"name":"z","type":"long"},{"name":"i","type":"int"},{"name":"b","type":"boolean"},
                {"name":"f","type":"float"},{"name":"d","type":"double"},{"name":"by","type":"bytes"},
                {"name":"s","type":"string"},{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},
                {"name":"fx","type":{"type":"fixed","name":"F","size":2}},
                {"name":"a","type":{"type":"array","items":"int"}},{"name":"m","type":{"type":"map","values":"string"}},
                {"name":"u","type":["null","string","shop.E"]},{"name":"n","type":["null","int"],"default":null},
                {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#,
        );
        let json = r#"{"z":-3,"i":7,"b":true,"f":1.5,"d":-0.25,"by":"\u0000ÿ","s":"héllo","e":"B","fx":"ab","a":[1,2,3],"m":{"k":"v"},"u":{"shop.E":"A"},"n":null,"ts":1700000000000}"#;
        let value: Value = serde_json::from_str(json).unwrap();
        let bytes = encode(&s, &[], &value).unwrap();
        assert_eq!(decode(&s, &[], &bytes).unwrap(), json);
        // A union's value unwrapped is taken too, and the default fills a
        // missing field.
        let mut unwrapped = value.clone();
        unwrapped["u"] = Value::from("x");
        unwrapped.as_object_mut().unwrap().remove("n");
        let again = decode(&s, &[], &encode(&s, &[], &unwrapped).unwrap()).unwrap();
        assert!(
            again.contains(r#""u":{"string":"x"}"#) && again.contains(r#""n":null"#),
            "{again}"
        );
        for bad in [
            r#"{"z":"x"}"#,
            r#"{"e":"C"}"#,
            r#"{"fx":"abc"}"#,
            r#"{"by":"ĀĀ"}"#,
            r#"{"i":4294967296}"#,
        ] {
            let mut v = value.clone();
            let patch: Value = serde_json::from_str(bad).unwrap();
            for (k, x) in patch.as_object().unwrap() {
                v[k] = x.clone();
            }
            assert!(encode(&s, &[], &v).is_err(), "{bad}");
        }
        assert!(decode(&s, &[], &bytes[..bytes.len() - 1])
            .unwrap_err()
            .contains("ends early"));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&s, &[], &longer)
            .unwrap_err()
            .contains("1 bytes follow"));
    }

    #[test]
    fn hostile_data_and_schemas_hit_bounds_not_the_stack_or_memory() {
        // A record that contains itself: no data ends it.
        let forever = schema(r#"{"type":"record","name":"R","fields":[{"name":"r","type":"R"}]}"#);
        assert!(decode(&forever, &[], &[])
            .unwrap_err()
            .contains("deeper than"));
        // A linked list deeper than the bound: one byte a level.
        let list = schema(
            r#"{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]}"#,
        );
        let mut deep = vec![2u8; 10_000];
        deep.push(0);
        assert!(decode(&list, &[], &deep)
            .unwrap_err()
            .contains("deeper than"));
        assert_eq!(
            decode(&list, &[], &[2, 0]).unwrap(),
            r#"{"next":{"L":{"next":null}}}"#
        );
        // Arrays of nulls cost no bytes per item: the item count is bounded.
        let nulls = schema(r#"{"type":"array","items":{"type":"array","items":"null"}}"#);
        let mut huge = Vec::new();
        long(2, &mut huge);
        long(i64::MAX / 2, &mut huge);
        assert!(decode(&nulls, &[], &huge)
            .unwrap_err()
            .contains("array items"));
        // Lengths past the data are refused before anything is read.
        let bytes = schema(r#""bytes""#);
        let mut claim = Vec::new();
        long(1 << 40, &mut claim);
        assert!(decode(&bytes, &[], &claim)
            .unwrap_err()
            .contains("does not fit"));
    }
}
