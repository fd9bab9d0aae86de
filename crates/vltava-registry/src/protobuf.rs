//! Protobuf schemas as the registry keeps and compares them.
//!
//! A schema arrives as `.proto` text or, as Confluent's Python and Go
//! serializers send it, as a base64 `FileDescriptorProto`. Either is
//! compiled with protox (imports come from the schema's references and
//! the well-known `google/protobuf/*` files), and the compiled descriptor,
//! without source positions or JSON names, is what two schemas compare
//! as: the text of a schema and its descriptor are the same schema.
//!
//! Compatibility follows Confluent's Protobuf rules, which are about the
//! wire: fields are matched by number, so adding or removing a field,
//! renaming one, or adding a message or enum value is compatible, while
//! removing a message, changing a field's type to one with another wire
//! encoding, changing a named type, adding or removing a `required`
//! field, or moving fields into a oneof is not. Each problem names
//! Confluent's difference type (`MESSAGE_REMOVED`, ...), as its registry
//! does.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto};
use protox::file::{File, FileResolver, GoogleFileResolver};

/// The file name a schema given as text compiles under (a referenced
/// schema compiles under the name its reference gives it).
pub const MAIN_FILE: &str = "schema.proto";

/// The most files one compilation may read: the schema and every schema
/// it imports, directly or not.
pub const FILES_MAX: usize = 1_000;

/// A compiled Protobuf schema.
#[derive(Debug, Clone)]
pub struct ProtoSchema {
    file: FileDescriptorProto,
    /// The file with everything it imports, for decoding data.
    pool: prost_reflect::DescriptorPool,
    normalized: String,
}

/// A schema's source: `.proto` text or a decoded descriptor.
fn source(name: &str, text: &str) -> Result<File, String> {
    match File::from_source(name, text) {
        Ok(file) => Ok(file),
        Err(text_error) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .ok()
                .and_then(|bytes| FileDescriptorProto::decode(bytes.as_slice()).ok());
            match decoded {
                Some(mut descriptor) => {
                    // The name a reference gives decides how importers
                    // find the file; a descriptor's own name only
                    // matters for the schema at the top.
                    if name != MAIN_FILE || descriptor.name().is_empty() {
                        descriptor.name = Some(name.to_string());
                    }
                    Ok(File::from_file_descriptor_proto(descriptor))
                }
                None => Err(format!("invalid Protobuf schema: {text_error}")),
            }
        }
    }
}

/// Files by name: the schemas a schema's references resolve to, then the
/// well-known types.
struct Resolver {
    files: BTreeMap<String, String>,
    google: GoogleFileResolver,
}

impl FileResolver for Resolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.files.get(name) {
            Some(text) => source(name, text).map_err(protox::Error::new),
            None => self.google.open_file(name),
        }
    }
}

impl ProtoSchema {
    /// Compiles `text`; `deps` are the schemas it may import, by the name
    /// it imports them as. `Err` says why it is not a Protobuf schema.
    pub fn parse(text: &str, deps: &[(&str, &str)]) -> Result<ProtoSchema, String> {
        crate::schema::size_checked(text)?;
        if deps.len() >= FILES_MAX {
            return Err(format!(
                "the schema imports {} files, over the {FILES_MAX} one schema may",
                deps.len()
            ));
        }
        let main = source(MAIN_FILE, text)?;
        let name = main.name().to_string();
        let mut files: BTreeMap<String, String> = deps
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        files.insert(name.clone(), text.to_string());
        let mut compiler = protox::Compiler::with_file_resolver(Resolver {
            files,
            google: GoogleFileResolver::new(),
        });
        compiler.include_imports(false).include_source_info(false);
        compiler
            .open_file(&name)
            .map_err(|e| format!("invalid Protobuf schema: {e}"))?;
        let pool = compiler.descriptor_pool();
        let mut file = compiler
            .file_descriptor_set()
            .file
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| "invalid Protobuf schema: it compiled to nothing".to_string())?;
        // Derived or positional: not part of what the schema says.
        file.source_code_info = None;
        for message in &mut file.message_type {
            clear_json_names(message);
        }
        // The file's name is where importers find it, not what it says:
        // a descriptor named `order.proto` (Confluent's Python client sends
        // the source file's name) and the same schema as text are one
        // schema.
        let mut unnamed = file.clone();
        unnamed.name = None;
        let normalized = base64::engine::general_purpose::STANDARD.encode(unnamed.encode_to_vec());
        Ok(ProtoSchema {
            file,
            pool,
            normalized,
        })
    }

    /// The text two equal schemas share.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// The compiled file.
    pub fn file(&self) -> &FileDescriptorProto {
        &self.file
    }

    /// The file and its imports, as prost-reflect reads messages by them.
    pub fn pool(&self) -> &prost_reflect::DescriptorPool {
        &self.pool
    }
}

fn clear_json_names(message: &mut DescriptorProto) {
    for field in &mut message.field {
        field.json_name = None;
    }
    for nested in &mut message.nested_type {
        clear_json_names(nested);
    }
}

/// Every message of a file by full name (`.pkg.Outer.Inner`).
fn messages(file: &FileDescriptorProto) -> BTreeMap<String, &DescriptorProto> {
    fn walk<'a>(
        prefix: &str,
        list: &'a [DescriptorProto],
        out: &mut BTreeMap<String, &'a DescriptorProto>,
    ) {
        for m in list {
            let name = format!("{prefix}.{}", m.name());
            walk(&name, &m.nested_type, out);
            out.insert(name, m);
        }
    }
    let mut out = BTreeMap::new();
    let prefix = match file.package() {
        "" => String::new(),
        p => format!(".{p}"),
    };
    walk(&prefix, &file.message_type, &mut out);
    out
}

/// Scalar types that read each other's encoding: the same wire type and
/// the same interpretation of its bits.
fn wire_group(t: Type) -> Option<u8> {
    match t {
        Type::Int32 | Type::Uint32 | Type::Int64 | Type::Uint64 | Type::Bool => Some(0),
        Type::Sint32 | Type::Sint64 => Some(1),
        Type::Fixed32 | Type::Sfixed32 => Some(2),
        Type::Fixed64 | Type::Sfixed64 => Some(3),
        Type::String | Type::Bytes => Some(4),
        Type::Float => Some(5),
        Type::Double => Some(6),
        Type::Message | Type::Enum | Type::Group => None,
    }
}

fn is_named(field: &FieldDescriptorProto) -> bool {
    matches!(field.r#type(), Type::Message | Type::Enum | Type::Group)
}

/// Length-delimited on the wire, so one value and a repeated field of them
/// read each other.
fn length_delimited(field: &FieldDescriptorProto) -> bool {
    matches!(field.r#type(), Type::String | Type::Bytes | Type::Message)
}

/// The oneof a field belongs to, leaving out proto3 `optional`'s
/// synthetic ones.
fn real_oneof<'a>(message: &'a DescriptorProto, field: &FieldDescriptorProto) -> Option<&'a str> {
    if field.proto3_optional() {
        return None;
    }
    let index = usize::try_from(field.oneof_index?).ok()?;
    message.oneof_decl.get(index).map(|o| o.name())
}

/// The problems with reading data written with `writer` using `reader`:
/// Confluent's incompatible differences between the two, each with where.
pub fn reads(writer: &ProtoSchema, reader: &ProtoSchema) -> Vec<String> {
    let mut problems = Vec::new();
    if writer.file.package() != reader.file.package() {
        problems.push(format!(
            "PACKAGE_CHANGED: package '{}' became '{}'",
            writer.file.package(),
            reader.file.package()
        ));
    }
    let read_messages = messages(&reader.file);
    for (name, w) in messages(&writer.file) {
        let Some(r) = read_messages.get(&name) else {
            problems.push(format!("MESSAGE_REMOVED: message {name}"));
            continue;
        };
        message_problems(&name, w, r, &mut problems);
    }
    problems
}

fn message_problems(
    name: &str,
    w: &DescriptorProto,
    r: &DescriptorProto,
    problems: &mut Vec<String>,
) {
    let read_fields: BTreeMap<i32, &FieldDescriptorProto> =
        r.field.iter().map(|f| (f.number(), f)).collect();
    let written_fields: BTreeSet<i32> = w.field.iter().map(|f| f.number()).collect();
    // Fields each new oneof of the reader takes from outside any oneof.
    let mut moved_into: BTreeMap<&str, usize> = BTreeMap::new();
    for wf in &w.field {
        let at = format!("{name}.{} (field {})", wf.name(), wf.number());
        let Some(rf) = read_fields.get(&wf.number()) else {
            if wf.label() == Label::Required {
                problems.push(format!("REQUIRED_FIELD_REMOVED: {at}"));
            }
            if real_oneof(w, wf).is_some() {
                problems.push(format!("ONEOF_FIELD_REMOVED: {at}"));
            }
            continue;
        };
        match (is_named(wf), is_named(rf)) {
            (false, false) if wire_group(wf.r#type()) != wire_group(rf.r#type()) => {
                problems.push(format!(
                    "FIELD_SCALAR_KIND_CHANGED: {at} was {:?}, is {:?}",
                    wf.r#type(),
                    rf.r#type()
                ));
            }
            (true, true) if wf.type_name() != rf.type_name() => {
                problems.push(format!(
                    "FIELD_NAMED_TYPE_CHANGED: {at} was {}, is {}",
                    wf.type_name(),
                    rf.type_name()
                ));
            }
            (true, false) | (false, true) => {
                problems.push(format!(
                    "FIELD_KIND_CHANGED: {at} was {:?}, is {:?}",
                    wf.r#type(),
                    rf.r#type()
                ));
            }
            _ => {}
        }
        let (wl, rl) = (wf.label(), rf.label());
        if rl == Label::Required && wl != Label::Required {
            problems.push(format!("REQUIRED_FIELD_ADDED: {at} became required"));
        }
        if (wl == Label::Repeated) != (rl == Label::Repeated)
            && !(length_delimited(wf) && length_delimited(rf))
        {
            problems.push(format!(
                "FIELD_NUMERIC_LABEL_CHANGED: {at} changed between one value and repeated"
            ));
        }
        match (real_oneof(w, wf), real_oneof(r, rf)) {
            (Some(_), None) => {
                problems.push(format!("ONEOF_FIELD_REMOVED: {at} left its oneof"));
            }
            (None, Some(oneof)) => {
                let existing = w.oneof_decl.iter().any(|o| o.name() == oneof);
                if existing {
                    problems.push(format!(
                        "FIELD_MOVED_TO_EXISTING_ONEOF: {at} moved into oneof {oneof}"
                    ));
                } else {
                    *moved_into.entry(oneof).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    for (oneof, count) in moved_into {
        if count > 1 {
            problems.push(format!(
                "MULTIPLE_FIELDS_MOVED_TO_ONEOF: {count} fields of {name} moved into oneof {oneof}"
            ));
        }
    }
    for rf in &r.field {
        if !written_fields.contains(&rf.number()) && rf.label() == Label::Required {
            problems.push(format!(
                "REQUIRED_FIELD_ADDED: {name}.{} (field {})",
                rf.name(),
                rf.number()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::SCHEMA_TEXT_BYTES_MAX;

    fn proto(body: &str) -> ProtoSchema {
        ProtoSchema::parse(&format!("syntax = \"proto3\";\npackage shop;\n{body}"), &[]).unwrap()
    }

    #[test]
    fn text_and_its_descriptor_are_one_schema() {
        let text = "syntax = \"proto3\";\npackage shop;\nmessage Order { string id = 1; int64 cents = 2; }\n";
        let a = ProtoSchema::parse(text, &[]).unwrap();
        let spaced = ProtoSchema::parse(
            "syntax = \"proto3\";\n\n// a comment\npackage shop;\nmessage Order {\n  string id = 1;\n  int64 cents = 2;\n}\n",
            &[],
        )
        .unwrap();
        assert_eq!(a.normalized(), spaced.normalized());
        let encoded = base64::engine::general_purpose::STANDARD.encode(a.file().encode_to_vec());
        let from_descriptor = ProtoSchema::parse(&encoded, &[]).unwrap();
        assert_eq!(from_descriptor.normalized(), a.normalized());
        // Under another file name, as a client sends its source file's.
        let mut named = a.file().clone();
        named.name = Some("shop/order.proto".to_string());
        let renamed = ProtoSchema::parse(
            &base64::engine::general_purpose::STANDARD.encode(named.encode_to_vec()),
            &[],
        )
        .unwrap();
        assert_eq!(renamed.file().name(), "shop/order.proto");
        assert_eq!(renamed.normalized(), a.normalized());
        let other = proto("message Order { string id = 1; int32 cents = 2; }");
        assert_ne!(other.normalized(), a.normalized());
    }

    #[test]
    fn imports_come_from_references_and_the_well_known_types() {
        let money = "syntax = \"proto3\";\npackage shop;\nmessage Money { int64 cents = 1; }\n";
        let order = "syntax = \"proto3\";\npackage shop;\nimport \"money.proto\";\nimport \"google/protobuf/timestamp.proto\";\nmessage Order { Money total = 1; google.protobuf.Timestamp at = 2; }\n";
        let parsed = ProtoSchema::parse(order, &[("money.proto", money)]).unwrap();
        assert_eq!(
            parsed.file().message_type[0].field[0].type_name(),
            ".shop.Money"
        );
        let err = ProtoSchema::parse(order, &[]).unwrap_err();
        assert!(err.contains("money.proto"), "{err}");
    }

    #[test]
    fn what_is_not_a_protobuf_schema_is_refused_with_a_reason() {
        for text in [
            "",
            "message {",
            "syntax = \"proto3\"; message A { Nope b = 1; }",
            "syntax = \"proto3\"; message A { string b = 1; string c = 1; }",
            "bm90IGEgZGVzY3JpcHRvcg==!",
        ] {
            let err = ProtoSchema::parse(text, &[]);
            // The empty file is a valid (empty) schema, as protoc says.
            if text.is_empty() {
                assert!(err.is_ok());
                continue;
            }
            assert!(
                err.unwrap_err().contains("invalid Protobuf schema"),
                "{text}"
            );
        }
        let huge = format!("// {}", "x".repeat(SCHEMA_TEXT_BYTES_MAX));
        assert!(ProtoSchema::parse(&huge, &[])
            .unwrap_err()
            .contains("bytes a schema may have"));
    }

    fn kinds(problems: Vec<String>) -> Vec<String> {
        problems
            .into_iter()
            .map(|p| p.split(':').next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn fields_are_matched_by_number_and_wire_encoding() {
        let v1 = proto("message Order { string id = 1; int32 qty = 2; }");
        // Added, renamed, widened within the varint group: all compatible.
        let v2 = proto("message Order { string order_id = 1; int64 qty = 2; string note = 3; }");
        assert_eq!(reads(&v1, &v2), Vec::<String>::new());
        assert_eq!(reads(&v2, &v1), Vec::<String>::new());
        let removed = proto("message Order { string id = 1; }");
        assert_eq!(reads(&v1, &removed), Vec::<String>::new());
        let retyped = proto("message Order { string id = 1; string qty = 2; }");
        assert_eq!(kinds(reads(&v1, &retyped)), ["FIELD_SCALAR_KIND_CHANGED"]);
        let zigzag = proto("message Order { string id = 1; sint32 qty = 2; }");
        assert_eq!(kinds(reads(&v1, &zigzag)), ["FIELD_SCALAR_KIND_CHANGED"]);
        let to_message =
            proto("message Qty { int32 n = 1; } message Order { string id = 1; Qty qty = 2; }");
        assert_eq!(kinds(reads(&v1, &to_message)), ["FIELD_KIND_CHANGED"]);
        let repeated_numbers = proto("message Order { string id = 1; repeated int32 qty = 2; }");
        assert_eq!(
            kinds(reads(&v1, &repeated_numbers)),
            ["FIELD_NUMERIC_LABEL_CHANGED"]
        );
        let repeated_strings = proto("message Order { repeated string id = 1; int32 qty = 2; }");
        assert_eq!(reads(&v1, &repeated_strings), Vec::<String>::new());
    }

    #[test]
    fn removed_messages_changed_types_and_oneofs_are_incompatible() {
        let v1 =
            proto("message A { int32 x = 1; } message B { A a = 1; int32 y = 2; int32 z = 3; }");
        let no_a =
            proto("message C { int32 x = 1; } message B { C a = 1; int32 y = 2; int32 z = 3; }");
        assert_eq!(
            kinds(reads(&v1, &no_a)),
            ["MESSAGE_REMOVED", "FIELD_NAMED_TYPE_CHANGED"]
        );
        // Adding a message is compatible one way: FULL sees it as removed
        // the other way, as Confluent's registry does.
        let more = proto("message A { int32 x = 1; } message B { A a = 1; int32 y = 2; int32 z = 3; } message D { }");
        assert!(reads(&v1, &more).is_empty());
        assert_eq!(kinds(reads(&more, &v1)), ["MESSAGE_REMOVED"]);
        let one_moved = proto("message A { int32 x = 1; } message B { A a = 1; oneof pick { int32 y = 2; } int32 z = 3; }");
        assert!(reads(&v1, &one_moved).is_empty());
        let two_moved = proto("message A { int32 x = 1; } message B { A a = 1; oneof pick { int32 y = 2; int32 z = 3; } }");
        assert_eq!(
            kinds(reads(&v1, &two_moved)),
            ["MULTIPLE_FIELDS_MOVED_TO_ONEOF"]
        );
        assert_eq!(
            kinds(reads(&two_moved, &v1)),
            ["ONEOF_FIELD_REMOVED", "ONEOF_FIELD_REMOVED"]
        );
        let into_existing = proto("message A { int32 x = 1; } message B { A a = 1; oneof pick { int32 y = 2; int32 z = 3; int32 w = 4; } }");
        let before = proto("message A { int32 x = 1; } message B { A a = 1; oneof pick { int32 y = 2; int32 z = 3; } int32 w = 4; }");
        assert_eq!(
            kinds(reads(&before, &into_existing)),
            ["FIELD_MOVED_TO_EXISTING_ONEOF"]
        );
        let package = ProtoSchema::parse(
            "syntax = \"proto3\";\npackage other;\nmessage A { int32 x = 1; }",
            &[],
        )
        .unwrap();
        let kinds_seen = kinds(reads(&v1, &package));
        assert_eq!(kinds_seen[0], "PACKAGE_CHANGED");
    }

    #[test]
    fn required_fields_may_be_neither_added_nor_removed() {
        let p2 =
            |body: &str| ProtoSchema::parse(&format!("syntax = \"proto2\";\n{body}"), &[]).unwrap();
        let v1 = p2("message A { required int32 x = 1; optional int32 y = 2; }");
        let dropped = p2("message A { optional int32 y = 2; }");
        assert_eq!(kinds(reads(&v1, &dropped)), ["REQUIRED_FIELD_REMOVED"]);
        let relaxed = p2("message A { optional int32 x = 1; optional int32 y = 2; }");
        assert!(reads(&v1, &relaxed).is_empty());
        assert_eq!(kinds(reads(&relaxed, &v1)), ["REQUIRED_FIELD_ADDED"]);
        let added =
            p2("message A { required int32 x = 1; optional int32 y = 2; required int32 z = 3; }");
        assert_eq!(kinds(reads(&v1, &added)), ["REQUIRED_FIELD_ADDED"]);
    }
}
