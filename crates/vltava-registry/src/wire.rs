//! Records in Confluent's wire format: read back for people (the schema id
//! in front, then the body decoded by the schema into JSON text, as the
//! console consumer's schema formatters and the REST proxy's consumers
//! print it), and written from JSON (the REST proxy's produce).
//!
//! The wire format: magic byte 0, the schema id as a big-endian i32, then
//! for Protobuf the message indexes (a zigzag varint count, then that many
//! zigzag varint indexes into the file's nested messages; a count of 0
//! means the first message), then the body: Avro binary, JSON text, or a
//! Protobuf message.
//!
//! The JSON: Avro's JSON encoding ([`crate::avro_json`]: unions wrapped
//! in their branch's name, bytes as code points, field order kept, every
//! bound checked); JSON Schema bodies as they are; Protobuf in its
//! canonical JSON mapping (prost-reflect's).

use prost_reflect::{DynamicMessage, MessageDescriptor};
use serde_json::Value;

use crate::schema::Parsed;

/// The bytes in front of a body: magic byte 0 and a 4-byte schema id.
pub const PREFIX_BYTES: usize = 5;

/// How many message indexes a Protobuf record may carry (nesting depth).
pub const MESSAGE_INDEXES_MAX: usize = 100;

/// The schema id in front of `data` and the bytes after it; `None` when it
/// does not start with magic byte 0 and an id.
pub fn schema_id(data: &[u8]) -> Option<(i32, &[u8])> {
    match data {
        [0, a, b, c, d, rest @ ..] => Some((i32::from_be_bytes([*a, *b, *c, *d]), rest)),
        _ => None,
    }
}

/// `body` (what follows the schema id) decoded by `schema`, as one line of
/// JSON.
pub fn to_json(schema: &Parsed, body: &[u8]) -> Result<String, String> {
    match schema {
        Parsed::Avro(avro) => crate::avro_json::decode(avro.schema(), avro.deps(), body)
            .map_err(|e| format!("cannot decode Avro: {e}")),
        Parsed::Json(_) => {
            let value: Value =
                serde_json::from_slice(body).map_err(|e| format!("cannot decode JSON: {e}"))?;
            Ok(value.to_string())
        }
        Parsed::Protobuf(proto) => {
            let (descriptor, message) = protobuf_message(proto, body)?;
            let decoded = DynamicMessage::decode(descriptor, message)
                .map_err(|e| format!("cannot decode Protobuf: {e}"))?;
            serde_json::to_string(&decoded)
                .map_err(|e| format!("cannot write Protobuf as JSON: {e}"))
        }
    }
}

/// `data` (JSON) written as a record of schema `id` in Confluent's wire
/// format: the prefix, for Protobuf the first message's index, then the
/// body. Avro values are in Avro's JSON encoding (a union's value may also
/// come unwrapped: the first branch it fits takes it); JSON Schema values
/// are written as their JSON text; Protobuf values are read in the proto3
/// JSON mapping into the file's first message.
pub fn from_json(schema: &Parsed, id: i32, data: &Value) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8];
    out.extend_from_slice(&id.to_be_bytes());
    match schema {
        Parsed::Avro(avro) => {
            let body = crate::avro_json::encode(avro.schema(), avro.deps(), data)
                .map_err(|e| format!("the data does not fit the Avro schema: {e}"))?;
            out.extend_from_slice(&body);
        }
        Parsed::Json(json) => {
            json.validate(data)?;
            out.extend_from_slice(data.to_string().as_bytes());
        }
        Parsed::Protobuf(proto) => {
            let file = proto
                .pool()
                .get_file_by_name(proto.file().name())
                .ok_or("the schema's file is missing")?;
            let descriptor = file
                .messages()
                .next()
                .ok_or("the Protobuf schema has no message")?;
            let message = DynamicMessage::deserialize(descriptor, data.clone())
                .map_err(|e| format!("the data does not fit the Protobuf schema: {e}"))?;
            // One message index, 0: the first message (Confluent's short
            // form is the single byte 0).
            out.push(0);
            out.extend_from_slice(&prost::Message::encode_to_vec(&message));
        }
    }
    Ok(out)
}

/// The message a Protobuf body's indexes name, and the message's bytes.
fn protobuf_message<'a>(
    proto: &crate::protobuf::ProtoSchema,
    body: &'a [u8],
) -> Result<(MessageDescriptor, &'a [u8]), String> {
    let mut rest = body;
    let count = zigzag(&mut rest)?;
    let count = usize::try_from(count)
        .ok()
        .filter(|c| *c <= MESSAGE_INDEXES_MAX)
        .ok_or_else(|| format!("cannot decode Protobuf: {count} message indexes"))?;
    let mut indexes = Vec::with_capacity(count.max(1));
    for _ in 0..count {
        indexes.push(zigzag(&mut rest)?);
    }
    if indexes.is_empty() {
        indexes.push(0);
    }
    let file = proto
        .pool()
        .get_file_by_name(proto.file().name())
        .ok_or("cannot decode Protobuf: the schema's file is missing")?;
    let missing = || format!("cannot decode Protobuf: no message at indexes {indexes:?}");
    let index = |i: i64| usize::try_from(i).map_err(|_| missing());
    let mut message = file
        .messages()
        .nth(index(indexes[0])?)
        .ok_or_else(missing)?;
    for i in &indexes[1..] {
        let child = message.child_messages().nth(index(*i)?);
        message = child.ok_or_else(missing)?;
    }
    Ok((message, rest))
}

/// One zigzag varint (at most 10 bytes) off the front of `data`.
fn zigzag(data: &mut &[u8]) -> Result<i64, String> {
    let mut raw = 0u64;
    for shift in 0..10 {
        let (&byte, rest) = data
            .split_first()
            .ok_or("cannot decode Protobuf: the message indexes end early")?;
        *data = rest;
        raw |= u64::from(byte & 0x7f) << (7 * shift);
        if byte & 0x80 == 0 {
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err("cannot decode Protobuf: a message index is longer than 10 bytes".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::SchemaType;

    fn parsed(t: SchemaType, text: &str) -> Parsed {
        Parsed::parse(t, text, &[]).unwrap()
    }

    #[test]
    fn each_format_decodes_to_json() {
        let avro = parsed(
            SchemaType::Avro,
            r#"{"type":"record","name":"U","fields":[{"name":"z","type":"long"},{"name":"a","type":["null","string"]}]}"#,
        );
        // z = 3 (zigzag 6), a = union branch 1 (zigzag 2), "hi".
        assert_eq!(
            to_json(&avro, &[6, 2, 4, b'h', b'i']).unwrap(),
            r#"{"z":3,"a":{"string":"hi"}}"#
        );
        assert!(to_json(&avro, &[])
            .unwrap_err()
            .starts_with("cannot decode Avro"));
        assert!(to_json(&avro, &[6, 0, 9])
            .unwrap_err()
            .contains("1 bytes follow"));
        let json = parsed(SchemaType::Json, r#"{"type":"object"}"#);
        assert_eq!(to_json(&json, br#"{ "b": 1 }"#).unwrap(), r#"{"b":1}"#);
        let proto = parsed(
            SchemaType::Protobuf,
            "syntax = \"proto3\";\nmessage A { int32 x = 1; }\nmessage B { string name = 1; message C { int64 n = 1; } }",
        );
        // Index [1] is B: one index (zigzag count 2), index 1 (zigzag 2).
        assert_eq!(
            to_json(&proto, &[2, 2, 0x0a, 2, b'h', b'i']).unwrap(),
            r#"{"name":"hi"}"#
        );
        // Count 0: the first message, A.
        assert_eq!(to_json(&proto, &[0, 0x08, 5]).unwrap(), r#"{"x":5}"#);
        // [1, 0] is B.C.
        assert_eq!(
            to_json(&proto, &[4, 2, 0, 0x08, 7]).unwrap(),
            r#"{"n":"7"}"#
        );
        assert!(to_json(&proto, &[2, 8])
            .unwrap_err()
            .contains("no message at indexes [4]"));
        assert!(to_json(&proto, &[0xff; 12]).is_err());
        assert_eq!(schema_id(&[0, 0, 0, 1, 2, 9]), Some((258, &[9u8][..])));
    }

    #[test]
    fn json_written_in_each_format_reads_back_the_same() {
        let avro = parsed(
            SchemaType::Avro,
            r#"{"type":"record","name":"U","fields":[{"name":"z","type":"long"},{"name":"a","type":["null","string"]}]}"#,
        );
        let data: Value = serde_json::from_str(r#"{"z":3,"a":"hi"}"#).unwrap();
        let written = from_json(&avro, 9, &data).unwrap();
        assert_eq!(written, [0, 0, 0, 0, 9, 6, 2, 4, b'h', b'i']);
        assert_eq!(
            to_json(&avro, &written[5..]).unwrap(),
            r#"{"z":3,"a":{"string":"hi"}}"#
        );
        let err = from_json(&avro, 9, &serde_json::json!({"z": "three"})).unwrap_err();
        assert!(err.contains("does not fit"), "{err}");
        let proto = parsed(
            SchemaType::Protobuf,
            "syntax = \"proto3\";\nmessage A { int32 x = 1; string s = 2; }",
        );
        let data = serde_json::json!({"x": 5, "s": "t"});
        let written = from_json(&proto, 2, &data).unwrap();
        assert_eq!(written[..6], [0, 0, 0, 0, 2, 0]);
        assert_eq!(
            to_json(&proto, &written[5..]).unwrap(),
            r#"{"x":5,"s":"t"}"#
        );
        assert!(from_json(&proto, 2, &serde_json::json!({"nope": 1})).is_err());
        let json = parsed(
            SchemaType::Json,
            r#"{"type":"object","properties":{"a":{"type":"integer","minimum":0}},"required":["a"]}"#,
        );
        assert_eq!(
            from_json(&json, 1, &serde_json::json!({"a": 1})).unwrap(),
            b"\0\0\0\0\x01{\"a\":1}"
        );
        let err = from_json(&json, 1, &serde_json::json!({"a": -1})).unwrap_err();
        assert!(err.contains("not valid at /a"), "{err}");
        let err = from_json(&json, 1, &serde_json::json!({"b": 1})).unwrap_err();
        assert!(
            err.contains("not valid at /") && err.contains("\"a\""),
            "{err}"
        );
        assert_eq!(schema_id(&[1, 0, 0, 0, 1]), None);
        assert_eq!(schema_id(&[0, 0, 0]), None);
    }
}
