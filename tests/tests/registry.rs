//! The schema registry's HTTP API on the real binary, endpoint by
//! endpoint: answers in Confluent's shapes and content type, its error
//! codes for every kind of bad request, soft then permanent deletes, and on
//! three nodes the same answers from every node, with writes through any
//! node forwarded to the one leading `_schemas`.

use serde_json::{json, Value};
use vltava_tests::cluster::Cluster;
use vltava_tests::{free_port, http_request, HttpAnswer, TestBroker};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

const V1: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"}]}"#;
const V2: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"email","type":"string","default":""}]}"#;
const V3: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"string"}]}"#;

fn call(registry: &str, method: &str, path: &str, body: &str) -> HttpAnswer {
    let headers = [("Content-Type", CONTENT_TYPE)];
    http_request(registry, method, path, &headers, body).unwrap()
}

/// The JSON answer, checked to be `status` with Confluent's content type.
fn json_of(answer: &HttpAnswer, status: u16) -> Value {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.header("content-type"), Some(CONTENT_TYPE));
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {}", answer.body))
}

fn ok(registry: &str, method: &str, path: &str, body: &str) -> Value {
    json_of(&call(registry, method, path, body), 200)
}

/// An error answer: its HTTP status and Confluent's error code.
fn error(registry: &str, method: &str, path: &str, body: &str) -> (u16, u64) {
    let answer = call(registry, method, path, body);
    let value: Value =
        serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {}", answer.body));
    assert!(value["message"].is_string(), "{value}");
    (answer.status, value["error_code"].as_u64().unwrap())
}

fn schema_body(schema: &str) -> String {
    json!({ "schema": schema }).to_string()
}

fn registry_broker() -> (TestBroker, String) {
    let registry = format!("127.0.0.1:{}", free_port());
    let listeners = format!("http://{registry}");
    let broker = TestBroker::start(&[("schema.registry.listeners", listeners.as_str())]);
    (broker, registry)
}

#[test]
fn every_endpoint_answers_in_confluents_shape_and_codes() {
    let (_broker, r) = registry_broker();
    let r = r.as_str();
    assert_eq!(
        ok(r, "GET", "/schemas/types", ""),
        json!(["JSON", "PROTOBUF", "AVRO"])
    );
    assert_eq!(ok(r, "GET", "/subjects", ""), json!([]));
    assert_eq!(ok(r, "GET", "/mode", ""), json!({"mode": "READWRITE"}));

    // Registration and its refusals.
    for (body, want) in [
        ("{not json".to_string(), (400, 400)),
        (json!({"schemaType": "AVRO"}).to_string(), (422, 42201)),
        (schema_body("{"), (422, 42201)),
        (
            json!({"schema": V1, "schemaType": "PROTOBUF"}).to_string(),
            (422, 42201),
        ),
        (
            json!({"schema": V1, "schemaType": "XML"}).to_string(),
            (422, 42201),
        ),
        (
            json!({"schema": "[1]", "schemaType": "JSON"}).to_string(),
            (422, 42201),
        ),
        (
            json!({"schema": V1, "references": "none"}).to_string(),
            (422, 42201),
        ),
        (
            json!({"schema": V1, "references": [{"name": "x", "subject": "y", "version": 1}]})
                .to_string(),
            (422, 42201),
        ),
    ] {
        assert_eq!(
            error(r, "POST", "/subjects/users-value/versions", &body),
            want,
            "{body}"
        );
    }
    assert_eq!(
        ok(
            r,
            "POST",
            "/subjects/users-value/versions",
            &schema_body(V1)
        ),
        json!({"id": 1})
    );
    // The same schema laid out otherwise is the same schema.
    let spaced = V1.replace(',', " ,\n ");
    assert_eq!(
        ok(
            r,
            "POST",
            "/subjects/users-value/versions",
            &schema_body(&spaced)
        ),
        json!({"id": 1})
    );
    assert_eq!(
        ok(
            r,
            "POST",
            "/subjects/users-value/versions",
            &schema_body(V2)
        ),
        json!({"id": 2})
    );
    assert_eq!(
        error(
            r,
            "POST",
            "/subjects/users-value/versions",
            &schema_body(V3)
        ),
        (409, 409)
    );
    assert_eq!(ok(r, "GET", "/subjects", ""), json!(["users-value"]));
    assert_eq!(
        ok(r, "GET", "/subjects/users-value/versions", ""),
        json!([1, 2])
    );

    // Reading versions and schemas.
    let latest = json!({"subject": "users-value", "version": 2, "id": 2, "schema": V2});
    assert_eq!(
        ok(r, "GET", "/subjects/users-value/versions/latest", ""),
        latest
    );
    assert_eq!(
        ok(r, "GET", "/subjects/users-value/versions/-1", ""),
        latest
    );
    assert_eq!(ok(r, "GET", "/subjects/users-value/versions/2", ""), latest);
    let raw = call(r, "GET", "/subjects/users-value/versions/1/schema", "");
    assert_eq!((raw.status, raw.body.as_str()), (200, V1));
    assert_eq!(
        error(r, "GET", "/subjects/users-value/versions/0", ""),
        (422, 42202)
    );
    assert_eq!(
        error(r, "GET", "/subjects/users-value/versions/x", ""),
        (422, 42202)
    );
    assert_eq!(
        error(r, "GET", "/subjects/users-value/versions/9", ""),
        (404, 40402)
    );
    assert_eq!(
        error(r, "GET", "/subjects/nobody/versions/1", ""),
        (404, 40401)
    );
    assert_eq!(ok(r, "GET", "/schemas/ids/1", ""), json!({"schema": V1}));
    assert_eq!(call(r, "GET", "/schemas/ids/2/schema", "").body, V2);
    assert_eq!(
        ok(r, "GET", "/schemas/ids/1/subjects", ""),
        json!(["users-value"])
    );
    assert_eq!(
        ok(r, "GET", "/schemas/ids/1/versions", ""),
        json!([{"subject": "users-value", "version": 1}])
    );
    for id in ["99", "0", "-1", "x", "99999999999"] {
        assert_eq!(
            error(r, "GET", &format!("/schemas/ids/{id}"), ""),
            (404, 40403),
            "{id}"
        );
    }
    // Lookup by schema.
    assert_eq!(
        ok(r, "POST", "/subjects/users-value", &schema_body(V1)),
        json!({"subject": "users-value", "version": 1, "id": 1, "schema": V1})
    );
    assert_eq!(
        error(r, "POST", "/subjects/users-value", &schema_body(V3)),
        (404, 40403)
    );
    assert_eq!(
        error(r, "POST", "/subjects/nobody", &schema_body(V1)),
        (404, 40401)
    );

    // Compatibility, with and without the reasons.
    let path = "/compatibility/subjects/users-value/versions/latest";
    assert_eq!(
        ok(r, "POST", path, &schema_body(V2)),
        json!({"is_compatible": true})
    );
    assert_eq!(
        ok(r, "POST", path, &schema_body(V3)),
        json!({"is_compatible": false})
    );
    let verbose = ok(r, "POST", &format!("{path}?verbose=true"), &schema_body(V3));
    assert_eq!(verbose["is_compatible"], json!(false));
    assert!(
        verbose["messages"][0]
            .as_str()
            .unwrap()
            .contains("version 2"),
        "{verbose}"
    );
    assert_eq!(
        ok(
            r,
            "POST",
            "/compatibility/subjects/users-value/versions",
            &schema_body(V2)
        ),
        json!({"is_compatible": true})
    );
    assert_eq!(
        error(
            r,
            "POST",
            "/compatibility/subjects/users-value/versions/7",
            &schema_body(V2)
        ),
        (404, 40402)
    );

    // A subject with no versions yet takes anything against `latest`.
    assert_eq!(
        ok(
            r,
            "POST",
            "/compatibility/subjects/fresh-value/versions/latest",
            &schema_body(V3)
        ),
        json!({"is_compatible": true})
    );

    // Levels, global and per subject.
    assert_eq!(
        ok(r, "GET", "/config", ""),
        json!({"compatibilityLevel": "BACKWARD"})
    );
    assert_eq!(
        ok(r, "PUT", "/config", r#"{"compatibility":"FULL"}"#),
        json!({"compatibility": "FULL"})
    );
    assert_eq!(
        error(r, "PUT", "/config", r#"{"compatibility":"SIDEWAYS"}"#),
        (422, 42203)
    );
    assert_eq!(error(r, "GET", "/config/users-value", ""), (404, 40408));
    assert_eq!(
        ok(r, "GET", "/config/users-value?defaultToGlobal=true", ""),
        json!({"compatibilityLevel": "FULL"})
    );
    assert_eq!(
        ok(
            r,
            "PUT",
            "/config/users-value",
            r#"{"compatibility":"none"}"#
        ),
        json!({"compatibility": "NONE"})
    );
    assert_eq!(
        ok(r, "GET", "/config/users-value", ""),
        json!({"compatibilityLevel": "NONE"})
    );
    assert_eq!(
        ok(
            r,
            "POST",
            "/subjects/users-value/versions",
            &schema_body(V3)
        ),
        json!({"id": 3})
    );
    assert_eq!(
        ok(r, "DELETE", "/config/users-value", ""),
        json!({"compatibilityLevel": "NONE"})
    );
    assert_eq!(error(r, "DELETE", "/config/users-value", ""), (404, 40401));

    // Deletes: soft first, then permanent.
    assert_eq!(
        error(
            r,
            "DELETE",
            "/subjects/users-value/versions/1?permanent=true",
            ""
        ),
        (404, 40407)
    );
    assert_eq!(
        error(r, "DELETE", "/subjects/users-value?permanent=true", ""),
        (404, 40405)
    );
    assert_eq!(
        ok(r, "DELETE", "/subjects/users-value/versions/1", ""),
        json!(1)
    );
    assert_eq!(
        error(r, "DELETE", "/subjects/users-value/versions/1", ""),
        (404, 40406)
    );
    assert_eq!(
        ok(r, "GET", "/subjects/users-value/versions", ""),
        json!([2, 3])
    );
    assert_eq!(
        ok(r, "GET", "/subjects/users-value/versions?deleted=true", ""),
        json!([1, 2, 3])
    );
    assert_eq!(ok(r, "DELETE", "/subjects/users-value", ""), json!([2, 3]));
    assert_eq!(
        error(r, "DELETE", "/subjects/users-value", ""),
        (404, 40404)
    );
    assert_eq!(ok(r, "GET", "/subjects", ""), json!([]));
    assert_eq!(
        ok(r, "GET", "/subjects?deleted=true", ""),
        json!(["users-value"])
    );
    // Soft-deleted schemas still resolve by id (old records stay readable).
    assert_eq!(ok(r, "GET", "/schemas/ids/3", ""), json!({"schema": V3}));
    assert_eq!(
        ok(r, "DELETE", "/subjects/users-value?permanent=true", ""),
        json!([1, 2, 3])
    );
    assert_eq!(ok(r, "GET", "/subjects?deleted=true", ""), json!([]));
    assert_eq!(error(r, "GET", "/schemas/ids/3", ""), (404, 40403));
    // Ids are never given twice: a new schema after all that gets id 4.
    let other = r#"{"type":"record","name":"Other","fields":[]}"#;
    assert_eq!(
        ok(
            r,
            "POST",
            "/subjects/other-value/versions",
            &schema_body(other)
        ),
        json!({"id": 4})
    );
}

/// The error codes and flags of each endpoint that the walk above does
/// not reach: unknown subjects, versions and ids on every read, `deleted`
/// on reads of soft-deleted versions, a permanent delete of one version,
/// bad subjects, levels and schemas on the config and compatibility
/// endpoints, and Avro references.
#[test]
fn every_endpoint_refuses_what_it_cannot_answer() {
    let (_broker, r) = registry_broker();
    let r = r.as_str();
    for path in [
        "/subjects/nobody/versions",
        "/subjects/nobody/versions/1/schema",
        "/subjects/nobody/versions/1/referencedby",
    ] {
        assert_eq!(error(r, "GET", path, ""), (404, 40401), "{path}");
    }
    assert_eq!(error(r, "DELETE", "/subjects/nobody", ""), (404, 40401));
    assert_eq!(
        error(r, "DELETE", "/subjects/nobody/versions/1", ""),
        (404, 40401)
    );
    assert_eq!(
        ok(r, "POST", "/subjects/a-value/versions", &schema_body(V1)),
        json!({"id": 1})
    );
    assert_eq!(
        ok(r, "POST", "/subjects/a-value/versions", &schema_body(V2)),
        json!({"id": 2})
    );
    for path in [
        "/subjects/a-value/versions/7/schema",
        "/subjects/a-value/versions/7/referencedby",
    ] {
        assert_eq!(error(r, "GET", path, ""), (404, 40402), "{path}");
    }
    for path in [
        "/subjects/a-value/versions/0/schema",
        "/subjects/a-value/versions/x/referencedby",
    ] {
        assert_eq!(error(r, "GET", path, ""), (422, 42202), "{path}");
    }
    for path in [
        "/schemas/ids/9/subjects",
        "/schemas/ids/9/versions",
        "/schemas/ids/9/schema",
    ] {
        assert_eq!(error(r, "GET", path, ""), (404, 40403), "{path}");
    }
    // A bad subject is 42208 wherever a subject is written.
    let bad = "/subjects/a%01b/versions";
    assert_eq!(error(r, "POST", bad, &schema_body(V1)), (422, 42208));
    assert_eq!(
        error(r, "PUT", "/config/a%01b", r#"{"compatibility":"NONE"}"#),
        (422, 42208)
    );
    assert_eq!(
        error(
            r,
            "PUT",
            "/config/a-value",
            r#"{"compatibility":"SIDEWAYS"}"#
        ),
        (422, 42203)
    );
    // Compatibility refuses a schema it cannot parse and a version it cannot read.
    assert_eq!(
        error(
            r,
            "POST",
            "/compatibility/subjects/a-value/versions/latest",
            &schema_body("{")
        ),
        (422, 42201)
    );
    assert_eq!(
        error(
            r,
            "POST",
            "/compatibility/subjects/a-value/versions/x",
            &schema_body(V2)
        ),
        (422, 42202)
    );

    // A soft-deleted version: gone from reads unless `deleted=true` asks.
    assert_eq!(
        ok(r, "DELETE", "/subjects/a-value/versions/latest", ""),
        json!(2)
    );
    assert_eq!(
        error(r, "GET", "/subjects/a-value/versions/2", ""),
        (404, 40402)
    );
    assert_eq!(
        ok(r, "GET", "/subjects/a-value/versions/2?deleted=true", ""),
        json!({"subject": "a-value", "version": 2, "id": 2, "schema": V2})
    );
    assert_eq!(
        error(r, "POST", "/subjects/a-value", &schema_body(V2)),
        (404, 40403)
    );
    assert_eq!(
        ok(
            r,
            "POST",
            "/subjects/a-value?deleted=true",
            &schema_body(V2)
        )["version"],
        json!(2)
    );
    assert_eq!(ok(r, "GET", "/schemas/ids/2/subjects", ""), json!([]));
    assert_eq!(
        ok(r, "GET", "/schemas/ids/2/subjects?deleted=true", ""),
        json!(["a-value"])
    );
    assert_eq!(ok(r, "GET", "/schemas/ids/2/versions", ""), json!([]));
    assert_eq!(
        ok(r, "GET", "/schemas/ids/2/versions?deleted=true", ""),
        json!([{"subject": "a-value", "version": 2}])
    );
    // Then permanently: the version is gone even from `deleted=true`, the
    // rest of the subject stays.
    assert_eq!(
        ok(
            r,
            "DELETE",
            "/subjects/a-value/versions/2?permanent=true",
            ""
        ),
        json!(2)
    );
    assert_eq!(
        error(r, "GET", "/subjects/a-value/versions/2?deleted=true", ""),
        (404, 40402)
    );
    assert_eq!(
        ok(r, "GET", "/subjects/a-value/versions?deleted=true", ""),
        json!([1])
    );
    assert_eq!(error(r, "GET", "/schemas/ids/2", ""), (404, 40403));

    // Avro references: a record names a type another subject holds.
    let address = r#"{"type":"record","name":"Address","namespace":"shop","fields":[{"name":"zip","type":"string"}]}"#;
    let customer = r#"{"type":"record","name":"Customer","namespace":"shop","fields":[{"name":"home","type":"shop.Address"}]}"#;
    assert_eq!(
        ok(
            r,
            "POST",
            "/subjects/address/versions",
            &schema_body(address)
        ),
        json!({"id": 3})
    );
    assert_eq!(
        error(
            r,
            "POST",
            "/subjects/customer-value/versions",
            &schema_body(customer)
        ),
        (422, 42201)
    );
    let refs = json!([{"name": "shop.Address", "subject": "address", "version": 1}]);
    let with_refs = json!({"schema": customer, "references": refs}).to_string();
    assert_eq!(
        ok(r, "POST", "/subjects/customer-value/versions", &with_refs),
        json!({"id": 4})
    );
    assert_eq!(
        ok(r, "GET", "/schemas/ids/4", ""),
        json!({"schema": customer, "references": refs})
    );
    assert_eq!(
        ok(r, "POST", "/subjects/customer-value", &with_refs)["id"],
        json!(4)
    );
    assert_eq!(
        ok(r, "GET", "/subjects/address/versions/1/referencedby", ""),
        json!([4])
    );
    assert_eq!(
        error(r, "DELETE", "/subjects/address/versions/1", ""),
        (422, 42206)
    );

    // The global level is dropped back to the default, answering the old
    // one; levels are not changed while their scope is read-only.
    let level = |name: &str| format!(r#"{{"compatibility":"{name}"}}"#);
    assert_eq!(
        ok(r, "PUT", "/config", &level("FULL")),
        json!({"compatibility": "FULL"})
    );
    assert_eq!(
        ok(r, "DELETE", "/config", ""),
        json!({"compatibilityLevel": "FULL"})
    );
    assert_eq!(
        ok(r, "GET", "/config", ""),
        json!({"compatibilityLevel": "BACKWARD"})
    );
    assert_eq!(
        ok(r, "DELETE", "/config", ""),
        json!({"compatibilityLevel": "BACKWARD"})
    );
    assert_eq!(
        ok(r, "PUT", "/config/address", &level("NONE")),
        json!({"compatibility": "NONE"})
    );
    assert_eq!(
        ok(r, "PUT", "/mode/address", r#"{"mode":"READONLY"}"#),
        json!({"mode": "READONLY"})
    );
    assert_eq!(
        error(r, "PUT", "/config/address", &level("FULL")),
        (422, 42205)
    );
    assert_eq!(error(r, "DELETE", "/config/address", ""), (422, 42205));
    assert_eq!(
        ok(r, "PUT", "/mode", r#"{"mode":"READONLY"}"#),
        json!({"mode": "READONLY"})
    );
    assert_eq!(error(r, "PUT", "/config", &level("FULL")), (422, 42205));
    assert_eq!(error(r, "DELETE", "/config", ""), (422, 42205));
    assert_eq!(
        error(r, "PUT", "/config/customer-value", &level("FULL")),
        (422, 42205)
    );
    assert_eq!(
        ok(r, "PUT", "/mode", r#"{"mode":"READWRITE"}"#),
        json!({"mode": "READWRITE"})
    );
    assert_eq!(
        ok(r, "GET", "/config/address", ""),
        json!({"compatibilityLevel": "NONE"})
    );
}

#[test]
fn formats_references_and_modes_over_http() {
    let (_broker, r) = registry_broker();
    let r = r.as_str();
    let money = "syntax = \"proto3\";\npackage shop;\nmessage Money { int64 cents = 1; }\n";
    let order = "syntax = \"proto3\";\npackage shop;\nimport \"money.proto\";\nmessage Order { Money total = 1; }\n";
    let proto = |text: &str, refs: Value| {
        json!({"schema": text, "schemaType": "PROTOBUF", "references": refs}).to_string()
    };
    assert_eq!(
        ok(
            r,
            "POST",
            "/subjects/money.proto/versions",
            &proto(money, json!([]))
        ),
        json!({"id": 1})
    );
    let refs = json!([{"name": "money.proto", "subject": "money.proto", "version": 1}]);
    // The import without its reference does not compile.
    assert_eq!(
        error(
            r,
            "POST",
            "/subjects/orders-value/versions",
            &proto(order, json!([]))
        ),
        (422, 42201)
    );
    assert_eq!(
        ok(
            r,
            "POST",
            "/subjects/orders-value/versions",
            &proto(order, refs.clone())
        ),
        json!({"id": 2})
    );
    assert_eq!(
        ok(r, "GET", "/subjects/orders-value/versions/1", ""),
        json!({"subject": "orders-value", "version": 1, "id": 2, "schemaType": "PROTOBUF",
               "schema": order, "references": refs})
    );
    assert_eq!(
        ok(r, "GET", "/schemas/ids/2", ""),
        json!({"schemaType": "PROTOBUF", "schema": order, "references": refs})
    );
    assert_eq!(
        ok(
            r,
            "POST",
            "/subjects/orders-value",
            &proto(order, refs.clone())
        )["id"],
        json!(2)
    );
    assert_eq!(
        ok(
            r,
            "GET",
            "/subjects/money.proto/versions/1/referencedby",
            ""
        ),
        json!([2])
    );
    assert_eq!(
        ok(
            r,
            "GET",
            "/subjects/orders-value/versions/latest/referencedby",
            ""
        ),
        json!([])
    );
    assert_eq!(
        error(r, "DELETE", "/subjects/money.proto/versions/1", ""),
        (422, 42206)
    );
    assert_eq!(
        error(r, "DELETE", "/subjects/money.proto", ""),
        (422, 42206)
    );

    // JSON Schema: key order is not another schema; a retyped property is 409.
    let json_body = |text: &str| json!({"schema": text, "schemaType": "JSON"}).to_string();
    let j1 =
        r#"{"type":"object","properties":{"id":{"type":"integer"}},"additionalProperties":false}"#;
    let j1_reordered =
        r#"{"additionalProperties":false,"properties":{"id":{"type":"integer"}},"type":"object"}"#;
    let j2 =
        r#"{"type":"object","properties":{"id":{"type":"string"}},"additionalProperties":false}"#;
    assert_eq!(
        ok(r, "POST", "/subjects/j-value/versions", &json_body(j1)),
        json!({"id": 3})
    );
    assert_eq!(
        ok(
            r,
            "POST",
            "/subjects/j-value/versions",
            &json_body(j1_reordered)
        ),
        json!({"id": 3})
    );
    assert_eq!(
        ok(
            r,
            "POST",
            "/compatibility/subjects/j-value/versions/1?verbose=true",
            &json_body(j2)
        ),
        json!({"is_compatible": false, "messages": [
            "the new schema cannot read data written with version 1: TYPE_CHANGED: #/properties/id"
        ]})
    );
    assert_eq!(
        error(r, "POST", "/subjects/j-value/versions", &json_body(j2)),
        (409, 409)
    );

    // Modes: a read-only subject refuses changes with 42205 and still answers.
    assert_eq!(ok(r, "GET", "/mode", ""), json!({"mode": "READWRITE"}));
    assert_eq!(error(r, "GET", "/mode/j-value", ""), (404, 40409));
    assert_eq!(
        ok(r, "GET", "/mode/j-value?defaultToGlobal=true", ""),
        json!({"mode": "READWRITE"})
    );
    assert_eq!(
        ok(r, "PUT", "/mode/j-value", r#"{"mode":"READONLY"}"#),
        json!({"mode": "READONLY"})
    );
    assert_eq!(
        ok(r, "GET", "/mode/j-value", ""),
        json!({"mode": "READONLY"})
    );
    assert_eq!(
        error(
            r,
            "POST",
            "/subjects/j-value/versions",
            &json_body(r#"{"type":"object"}"#)
        ),
        (422, 42205)
    );
    assert_eq!(error(r, "DELETE", "/subjects/j-value", ""), (422, 42205));
    assert_eq!(ok(r, "GET", "/subjects/j-value/versions", ""), json!([1]));
    for bad in [r#"{"mode":"IMPORT"}"#, r#"{"mode":"SIDEWAYS"}"#, "{}"] {
        assert_eq!(error(r, "PUT", "/mode", bad), (422, 42204), "{bad}");
    }
    assert_eq!(
        error(r, "PUT", "/mode/j-value", r#"{"mode":"READONLY_OVERRIDE"}"#),
        (422, 42204)
    );
    assert_eq!(
        ok(r, "PUT", "/mode", r#"{"mode":"READONLY_OVERRIDE"}"#),
        json!({"mode": "READONLY_OVERRIDE"})
    );
    assert_eq!(
        error(
            r,
            "POST",
            "/subjects/other-value/versions",
            &schema_body(V1)
        ),
        (422, 42205)
    );
    assert_eq!(
        ok(r, "PUT", "/mode", r#"{"mode":"READWRITE"}"#),
        json!({"mode": "READWRITE"})
    );
    assert_eq!(
        ok(r, "DELETE", "/mode/j-value", ""),
        json!({"mode": "READONLY"})
    );
    assert_eq!(error(r, "DELETE", "/mode/j-value", ""), (404, 40401));
    assert_eq!(
        ok(
            r,
            "POST",
            "/subjects/j-value/versions",
            &json_body(r#"{"type":"object"}"#)
        ),
        json!({"id": 4})
    );
}

#[test]
fn every_node_answers_reads_and_forwards_writes_to_the_leader_of_schemas() {
    let cluster = Cluster::start(3);
    // A registration through each node in turn: each is taken (by the
    // leader of _schemas directly, through the others by forwarding), and
    // the ids are one sequence.
    let record = |i: usize| format!(r#"{{"type":"record","name":"R{i}","fields":[]}}"#);
    for (i, r) in cluster.registry.iter().enumerate() {
        let path = format!("/subjects/s{i}-value/versions");
        assert_eq!(
            ok(r, "POST", &path, &schema_body(&record(i))),
            json!({"id": i + 1}),
            "node {}",
            i + 1
        );
    }
    let subjects = json!(["s0-value", "s1-value", "s2-value"]);
    for (n, r) in cluster.registry.iter().enumerate() {
        assert_eq!(ok(r, "GET", "/subjects", ""), subjects, "node {}", n + 1);
        for i in 0..3 {
            let path = format!("/schemas/ids/{}", i + 1);
            assert_eq!(
                ok(r, "GET", &path, ""),
                json!({"schema": record(i)}),
                "node {}",
                n + 1
            );
        }
    }
    // Levels and deletes go through the same way.
    assert_eq!(
        ok(
            &cluster.registry[1],
            "PUT",
            "/config/s0-value",
            r#"{"compatibility":"NONE"}"#
        ),
        json!({"compatibility": "NONE"})
    );
    assert_eq!(
        ok(&cluster.registry[2], "DELETE", "/subjects/s1-value", ""),
        json!([1])
    );
    for r in &cluster.registry {
        assert_eq!(
            ok(r, "GET", "/config/s0-value", ""),
            json!({"compatibilityLevel": "NONE"})
        );
        assert_eq!(
            ok(r, "GET", "/subjects", ""),
            json!(["s0-value", "s2-value"])
        );
    }
    // A write another node already forwarded is never forwarded again:
    // only the leader of _schemas takes it, the others answer 503. (Each a
    // new schema: registering one already there writes nothing and is
    // answered anywhere.)
    let forwarded = [
        ("Content-Type", CONTENT_TYPE),
        ("x-vltava-forwarded-by", "9"),
    ];
    let answers: Vec<u16> = cluster
        .registry
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let body = schema_body(&record(10 + i));
            http_request(
                r,
                "POST",
                &format!("/subjects/again{i}-value/versions"),
                &forwarded,
                &body,
            )
            .unwrap()
            .status
        })
        .collect();
    assert_eq!(
        answers.iter().filter(|s| **s == 200).count(),
        1,
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|s| **s == 503).count(),
        2,
        "{answers:?}"
    );
}

/// Leader, replicas and ISR of `_schemas` partition 0 as node `via`
/// describes it, once it does.
fn schemas_partition(cluster: &Cluster, via: i32) -> Option<(i32, Vec<i32>, Vec<i32>)> {
    let mut client = vltava_tests::raw::RawClient::connect(cluster.node(via).addr()).ok()?;
    let req = kafka_protocol::messages::MetadataRequest::default().with_topics(None);
    let resp = client.request(&req, 12).ok()?;
    let t = resp
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "_schemas"))?;
    let p = t.partitions.iter().find(|p| p.partition_index == 0)?;
    let ids = |v: &[kafka_protocol::messages::BrokerId]| {
        let mut ids: Vec<i32> = v.iter().map(|b| b.0).collect();
        ids.sort_unstable();
        ids
    };
    Some((p.leader_id.0, ids(&p.replica_nodes), ids(&p.isr_nodes)))
}

/// `probe`'s first `Some`, polled by `wait_until`, failing the test after
/// 90 s.
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let mut found = None;
    let deadline = std::time::Duration::from_secs(90);
    let seen = vltava_tests::wait_until(deadline, || {
        found = probe();
        found.is_some()
    });
    assert!(seen, "{what}");
    found.expect("wait_until saw it")
}

#[test]
fn a_new_owner_of_schemas_goes_on_with_the_ids_when_the_old_one_dies() {
    let mut cluster = Cluster::start_with(
        3,
        &[
            ("broker.heartbeat.interval.ms", "300"),
            ("broker.session.timeout.ms", "2500"),
        ],
    );
    let record = |i: usize| format!(r#"{{"type":"record","name":"F{i}","fields":[]}}"#);
    for i in 1..=3 {
        let path = format!("/subjects/f{i}-value/versions");
        assert_eq!(
            ok(
                &cluster.registry[0],
                "POST",
                &path,
                &schema_body(&record(i))
            ),
            json!({"id": i})
        );
    }
    // Every replica in sync, so the next leader holds every write.
    let (owner, _, _) = wait_for("_schemas fully in sync", || {
        schemas_partition(&cluster, 1)
            .filter(|(leader, replicas, isr)| *leader > 0 && replicas.len() == 3 && isr == replicas)
    });
    cluster.nodes[(owner - 1) as usize].kill_sigkill();
    let survivor = if owner == 1 { 2 } else { 1 };
    let new_owner = wait_for("a new leader of _schemas", || {
        schemas_partition(&cluster, survivor)
            .map(|(leader, ..)| leader)
            .filter(|leader| *leader > 0 && *leader != owner)
    });
    // A write through either survivor reaches the new owner, which goes on
    // from the ids the old one gave (a survivor may answer 5xx while the
    // cluster fails over; clients retry).
    let other = (1..=3).find(|n| *n != owner && *n != new_owner).unwrap();
    for (n, i) in [(other, 4), (new_owner, 5)] {
        let path = format!("/subjects/f{i}-value/versions");
        let answer = wait_for("a registration through a survivor", || {
            let answer = call(
                &cluster.registry[(n - 1) as usize],
                "POST",
                &path,
                &schema_body(&record(i)),
            );
            (answer.status < 500).then_some(answer)
        });
        assert_eq!(json_of(&answer, 200), json!({"id": i}), "through node {n}");
    }
    // The old owner, back, reads what the new one wrote.
    cluster.nodes[(owner - 1) as usize].restart();
    for n in [other, new_owner, owner] {
        let registry = &cluster.registry[(n - 1) as usize];
        for i in 1..=5 {
            let answer = wait_for("the schema on every node", || {
                let answer = call(registry, "GET", &format!("/schemas/ids/{i}"), "");
                (answer.status < 500).then_some(answer)
            });
            assert_eq!(
                json_of(&answer, 200),
                json!({"schema": record(i)}),
                "node {n}, id {i}"
            );
        }
    }
}
