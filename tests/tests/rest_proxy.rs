//! The REST proxy's refusals on the real binary: every bad request answers
//! in the `{"error_code", "message"}` shape with Confluent's codes, axum's
//! own refusals (unknown paths, methods, oversized bodies) included, and
//! hostile bodies (huge counts, out-of-range numbers, streams past the
//! limit) are refused without effect. The happy paths run against real
//! Kafka clients in tests/python/test_rest_proxy.py.

use serde_json::{json, Value};
use vltava_tests::{free_port, http_request, HttpAnswer, TestBroker};

fn proxy() -> (TestBroker, String, String) {
    let rest = format!("127.0.0.1:{}", free_port());
    let registry = format!("127.0.0.1:{}", free_port());
    let broker = TestBroker::start(&[
        ("rest.proxy.listeners", format!("http://{rest}").as_str()),
        (
            "schema.registry.listeners",
            format!("http://{registry}").as_str(),
        ),
    ]);
    (broker, rest, registry)
}

fn call(addr: &str, method: &str, path: &str, content_type: &str, body: &str) -> HttpAnswer {
    http_request(addr, method, path, &[("Content-Type", content_type)], body).unwrap()
}

/// An error answer: status, error code and content type, checked to carry
/// a message.
fn refused(answer: &HttpAnswer) -> (u16, u64, String) {
    let value: Value =
        serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {}", answer.body));
    assert!(
        value["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{value}"
    );
    (
        answer.status,
        value["error_code"].as_u64().unwrap(),
        answer
            .header("content-type")
            .unwrap_or_default()
            .to_string(),
    )
}

const JSON: &str = "application/json";
const V2: &str = "application/vnd.kafka.v2+json";

#[test]
fn every_refusal_answers_in_confluents_shape() {
    let (_broker, rest, registry) = proxy();
    let r = rest.as_str();
    let clusters: Value =
        serde_json::from_str(&call(r, "GET", "/v3/clusters", JSON, "").body).unwrap();
    let c = clusters["data"][0]["cluster_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!c.is_empty(), "{clusters}");
    let base = format!("/v3/clusters/{c}");
    let created = call(
        r,
        "POST",
        &format!("{base}/topics"),
        JSON,
        &json!({"topic_name": "t", "partitions_count": 1}).to_string(),
    );
    assert_eq!(created.status, 201, "{}", created.body);

    // axum's own refusals, in the JSON shape.
    let json = JSON.to_string();
    assert_eq!(
        refused(&call(r, "GET", "/nope", JSON, "")),
        (404, 404, json.clone())
    );
    assert_eq!(
        refused(&call(r, "DELETE", "/v3/clusters", JSON, "")),
        (405, 405, json.clone())
    );
    let huge = "x".repeat(9 * 1024 * 1024);
    assert_eq!(
        refused(&call(
            r,
            "POST",
            &format!("{base}/topics/t/records"),
            JSON,
            &huge
        ))
        .0,
        413
    );
    // The registry's too, in its content type.
    assert_eq!(
        refused(&call(&registry, "GET", "/nope", JSON, "")),
        (
            404,
            404,
            "application/vnd.schemaregistry.v1+json".to_string()
        )
    );

    let records = format!("{base}/topics/t/records");
    let mut stream = String::new();
    for _ in 0..10_001 {
        stream.push_str(r#"{"value":{"type":"STRING","data":"s"}}"#);
    }
    for (body, want) in [
        ("{not json".to_string(), (400, 400)),
        (String::new(), (400, 400)),
        (r#"{"partition_id": 1}"#.to_string(), (404, 40403)),
        (r#"{"partition_id": -1}"#.to_string(), (400, 400)),
        (r#"{"partition_id": 99999999999}"#.to_string(), (400, 400)),
        (r#"{"value": "bare"}"#.to_string(), (400, 400)),
        (
            r#"{"value": {"type": "BINARY", "data": "%%%"}}"#.to_string(),
            (400, 400),
        ),
        (
            r#"{"value": {"type": "XML", "data": "a"}}"#.to_string(),
            (400, 400),
        ),
        (
            r#"{"value": {"schema_id": 424242, "data": 1}}"#.to_string(),
            (404, 40403),
        ),
        (
            r#"{"value": {"schema_id": 99999999999, "data": 1}}"#.to_string(),
            (400, 400),
        ),
        (r#"{"timestamp": "yesterday"}"#.to_string(), (400, 400)),
        (
            r#"{"headers": [{"name": "h", "value": 7}]}"#.to_string(),
            (400, 400),
        ),
        (stream, (400, 400)),
    ] {
        let (status, code, _) = refused(&call(r, "POST", &records, JSON, &body));
        assert_eq!((status, code), want, "{}", &body[..body.len().min(80)]);
    }
    // Nothing of that reached the log: the first record taken is offset 0.
    let taken = call(
        r,
        "POST",
        &records,
        JSON,
        r#"{"value": {"type": "STRING", "data": "ok"}}"#,
    );
    let taken: Value = serde_json::from_str(&taken.body).unwrap();
    assert_eq!(
        (taken["error_code"].as_u64(), taken["offset"].as_i64()),
        (Some(200), Some(0)),
        "{taken}"
    );

    let topics = format!("{base}/topics");
    for (body, want) in [
        (json!({"partitions_count": 1}), (400, 400)),
        (
            json!({"topic_name": "u", "partitions_count": "x"}),
            (400, 400),
        ),
        (
            json!({"topic_name": "u", "partitions_count": 1_000_000_000_000i64}),
            (400, 400),
        ),
        (
            json!({"topic_name": "u", "configs": [{"name": "retention.ms"}]}),
            (400, 400),
        ),
        (
            json!({"topic_name": "u", "configs": [{"name": "no.such", "value": "1"}]}),
            (400, 400),
        ),
        (json!({"topic_name": "t"}), (400, 40002)),
        (json!({"topic_name": "bad/name"}), (400, 400)),
    ] {
        let (status, code, _) = refused(&call(r, "POST", &topics, JSON, &body.to_string()));
        assert_eq!((status, code), want, "{body}");
    }
    assert_eq!(
        refused(&call(r, "GET", "/v3/clusters/other/topics", JSON, "")).0,
        404
    );
    assert_eq!(
        refused(&call(
            r,
            "GET",
            &format!("{base}/topics/t/partitions/7"),
            JSON,
            ""
        ))
        .0,
        404
    );
    assert_eq!(
        refused(&call(r, "GET", &format!("{base}/brokers/9"), JSON, "")).0,
        404
    );
    assert_eq!(
        refused(&call(
            r,
            "PUT",
            &format!("{base}/topics/t/configs/retention.ms"),
            JSON,
            "{}"
        ))
        .0,
        400
    );

    // v2: bad instances and requests, in v2's content type.
    let v2 = V2.to_string();
    let long_name = json!({"name": "n".repeat(300)}).to_string();
    assert_eq!(
        refused(&call(r, "POST", "/consumers/g", V2, &long_name)),
        (422, 42204, v2.clone())
    );
    assert_eq!(
        refused(&call(r, "POST", "/consumers/g", V2, r#"{"format": "xml"}"#)),
        (422, 42204, v2.clone())
    );
    assert_eq!(
        refused(&call(
            r,
            "POST",
            "/consumers/g",
            V2,
            r#"{"auto.offset.reset": "middle"}"#
        )),
        (422, 42204, v2.clone())
    );
    assert_eq!(
        refused(&call(
            r,
            "GET",
            "/consumers/g/instances/nobody/records",
            V2,
            ""
        )),
        (404, 40403, v2.clone())
    );
    let made = call(r, "POST", "/consumers/g", V2, r#"{"name": "i"}"#);
    assert_eq!(made.status, 200, "{}", made.body);
    let me = "/consumers/g/instances/i";
    assert_eq!(
        refused(&call(r, "GET", &format!("{me}/records"), V2, "")),
        (409, 40903, v2.clone())
    );
    for body in [
        r#"{"topics": []}"#,
        r#"{"topics": [1]}"#,
        r#"{"topic_pattern": "("}"#,
        "[]",
    ] {
        assert_eq!(
            refused(&call(r, "POST", &format!("{me}/subscription"), V2, body)).0,
            400,
            "{body}"
        );
    }
    assert_eq!(
        refused(&call(
            r,
            "POST",
            &format!("{me}/positions/beginning"),
            V2,
            r#"{"partitions": [{"topic": "t", "partition": 0}]}"#
        )),
        (409, 40903, v2.clone())
    );
    assert_eq!(
        refused(&call(
            r,
            "POST",
            &format!("{me}/offsets"),
            V2,
            r#"{"offsets": [{"topic": "t"}]}"#
        ))
        .0,
        400
    );
    assert_eq!(call(r, "DELETE", me, V2, "").status, 204);
    assert_eq!(refused(&call(r, "DELETE", me, V2, "")), (404, 40403, v2));
}

/// The JSON of a 2xx answer.
fn ok_json(answer: HttpAnswer) -> Value {
    assert!(
        (200..300).contains(&answer.status),
        "{} {}",
        answer.status,
        answer.body
    );
    serde_json::from_str(&answer.body).unwrap_or(Value::Null)
}

#[test]
fn every_nodes_proxy_produces_and_consumes_the_whole_cluster() {
    use std::time::{Duration, Instant};
    use vltava_tests::cluster::Cluster;
    let cluster = Cluster::start(3);
    let (one, two, three) = (&cluster.rest[0], &cluster.rest[1], &cluster.rest[2]);
    let c = ok_json(call(one, "GET", "/v3/clusters", JSON, ""))["data"][0]["cluster_id"]
        .as_str()
        .unwrap()
        .to_string();
    let base = format!("/v3/clusters/{c}");
    // Three partitions of one replica: spread over the nodes, so each
    // proxy writes and reads partitions other nodes lead.
    let created = call(
        one,
        "POST",
        &format!("{base}/topics"),
        JSON,
        &json!({"topic_name": "spread", "partitions_count": 3, "replication_factor": 1})
            .to_string(),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let deadline = Instant::now() + Duration::from_secs(30);
    for p in 0..3 {
        // Through node 2, each partition (its metadata may lag a moment).
        let body = json!({"partition_id": p, "value": {"type": "STRING", "data": format!("v{p}")}})
            .to_string();
        loop {
            let answer = call(
                two,
                "POST",
                &format!("{base}/topics/spread/records"),
                JSON,
                &body,
            );
            if answer.status == 200 {
                let v: Value = serde_json::from_str(&answer.body).unwrap();
                assert_eq!(
                    (v["partition_id"].as_i64(), v["offset"].as_i64()),
                    (Some(p), Some(0)),
                    "{v}"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} {}",
                answer.status,
                answer.body
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // A v2 produce with an inline Avro schema through node 3: the schema is
    // registered through node 3's registry, which forwards the write.
    let schema = r#"{"type":"record","name":"N","fields":[{"name":"n","type":"int"}]}"#;
    let produced = ok_json(call(
        three,
        "POST",
        "/topics/spread/partitions/0",
        "application/vnd.kafka.avro.v2+json",
        &json!({"value_schema": schema, "records": [{"value": {"n": 7}}]}).to_string(),
    ));
    assert_eq!(produced["offsets"][0]["offset"], 1, "{produced}");
    assert_eq!(produced["value_schema_id"], 1, "{produced}");

    // A v2 consumer on node 3 reads all four records.
    let made = ok_json(call(
        three,
        "POST",
        "/consumers/spread-readers",
        V2,
        r#"{"name": "r", "auto.offset.reset": "earliest", "auto.commit.enable": "false"}"#,
    ));
    assert_eq!(made["instance_id"], "r");
    let me = "/consumers/spread-readers/instances/r";
    ok_json(call(
        three,
        "POST",
        &format!("{me}/subscription"),
        V2,
        r#"{"topics": ["spread"]}"#,
    ));
    let mut got = Vec::new();
    while got.len() < 4 {
        assert!(Instant::now() < deadline, "{got:?}");
        let batch = ok_json(call(
            three,
            "GET",
            &format!("{me}/records?timeout=1000"),
            V2,
            "",
        ));
        got.extend(batch.as_array().unwrap().iter().map(|r| {
            (
                r["partition"].as_i64().unwrap(),
                r["offset"].as_i64().unwrap(),
                r["value"].as_str().unwrap().to_string(),
            )
        }));
    }
    got.sort();
    use base64::Engine;
    let text = |b: &str| {
        String::from_utf8_lossy(&base64::engine::general_purpose::STANDARD.decode(b).unwrap())
            .into_owned()
    };
    assert_eq!(
        got.iter()
            .map(|(p, o, v)| (*p, *o, text(v)))
            .filter(|(_, o, _)| *o == 0)
            .collect::<Vec<_>>(),
        vec![
            (0, 0, "v0".to_string()),
            (1, 0, "v1".to_string()),
            (2, 0, "v2".to_string())
        ]
    );
    assert_eq!((got[1].0, got[1].1), (0, 1), "{got:?}");
    // Committed through node 3; the lag through node 1.
    assert_eq!(
        call(three, "POST", &format!("{me}/offsets"), V2, "").status,
        200
    );
    let lags = ok_json(call(
        one,
        "GET",
        &format!("{base}/consumer-groups/spread-readers/lags"),
        JSON,
        "",
    ));
    let mut rows: Vec<(i64, i64, i64)> = lags["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["partition_id"].as_i64().unwrap(),
                x["current_offset"].as_i64().unwrap(),
                x["lag"].as_i64().unwrap(),
            )
        })
        .collect();
    rows.sort();
    assert_eq!(rows, vec![(0, 2, 0), (1, 1, 0), (2, 1, 0)], "{lags}");
    assert_eq!(call(three, "DELETE", me, V2, "").status, 204);
}
