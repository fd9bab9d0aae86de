"""The built-in REST proxy (`rest.proxy.listeners`) with Confluent's REST Proxy API, checked
against real Kafka clients: records produced through v3 (JSON, binary, string, Avro via the
registry) are read back byte for byte with confluent-kafka; a v2 consumer instance reads what a
Kafka producer wrote and commits; group lag through v3 agrees with what was committed.
"""

from __future__ import annotations

import base64
import json
import struct
import urllib.error
import urllib.request

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import free_port
from kafkautil import admin, consume_exact, create_topic, produce_all, producer

V2 = "application/vnd.kafka.v2+json"


def call(method: str, url: str, body=None, content_type: str = "application/json",
         accept: str | None = None, raw: bytes | None = None) -> tuple[int, str, object]:
    """(status, content type, parsed body or None)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": content_type}
    if accept:
        headers["Accept"] = accept
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            text = answer.read()
            return answer.status, answer.headers.get("Content-Type", ""), json.loads(text) if text.strip() else None
    except urllib.error.HTTPError as refused:
        text = refused.read()
        return refused.code, refused.headers.get("Content-Type", ""), json.loads(text) if text.strip() else None


@pytest.fixture
def proxy(make_broker):
    rest, registry = free_port(), free_port()
    broker = make_broker(rest_proxy_listeners=f"http://127.0.0.1:{rest}",
                         schema_registry_listeners=f"http://127.0.0.1:{registry}")
    return broker, f"http://127.0.0.1:{rest}", f"http://127.0.0.1:{registry}"


def cluster_id(rest: str) -> str:
    status, content_type, body = call("GET", f"{rest}/v3/clusters")
    assert (status, content_type, body["kind"]) == (200, "application/json", "KafkaClusterList"), body
    assert len(body["data"]) == 1
    return body["data"][0]["cluster_id"]


def test_v3_topics_and_records_read_back_by_a_kafka_client(proxy):
    broker, rest, registry = proxy
    c = cluster_id(rest)
    base = f"{rest}/v3/clusters/{c}"

    # Topics: create (201), read, its partitions and configs, alter a config, delete (204).
    status, _, created = call("POST", f"{base}/topics", {
        "topic_name": "orders", "partitions_count": 2, "replication_factor": 1,
        "configs": [{"name": "retention.ms", "value": "3600000"}]})
    assert status == 201, created
    assert (created["kind"], created["topic_name"], created["partitions_count"], created["replication_factor"]) == \
        ("KafkaTopic", "orders", 2, 1)
    assert created["metadata"]["self"] == f"{base}/topics/orders"
    status, _, again = call("POST", f"{base}/topics", {"topic_name": "orders", "partitions_count": 1})
    assert (status, again["error_code"]) == (400, 40002), again
    status, _, topics = call("GET", f"{base}/topics")
    assert "orders" in [t["topic_name"] for t in topics["data"]]
    status, _, cluster = call("GET", base)
    assert (status, cluster["kind"], cluster["cluster_id"]) == (200, "KafkaCluster", c), cluster
    assert cluster["brokers"]["related"] == f"{base}/brokers"
    status, _, brokers = call("GET", f"{base}/brokers")
    host, port = broker.bootstrap.rsplit(":", 1)
    assert [(b["broker_id"], b["host"], b["port"]) for b in brokers["data"]] == \
        [(broker.node_id, host, int(port))], brokers
    status, _, one = call("GET", f"{base}/brokers/{broker.node_id}")
    assert (status, one["kind"], one["broker_id"]) == (200, "KafkaBroker", broker.node_id), one
    status, _, topic = call("GET", f"{base}/topics/orders")
    assert (status, topic["kind"], topic["partitions_count"], topic["is_internal"]) == \
        (200, "KafkaTopic", 2, False), topic
    status, _, configs = call("GET", f"{base}/topics/orders/configs")
    by_name = {x["name"]: x for x in configs["data"]}
    assert (status, configs["kind"]) == (200, "KafkaTopicConfigList"), configs
    assert (by_name["retention.ms"]["value"], by_name["cleanup.policy"]["value"]) == ("3600000", "delete")
    status, _, parts = call("GET", f"{base}/topics/orders/partitions")
    assert [p["partition_id"] for p in parts["data"]] == [0, 1]
    status, _, retention = call("GET", f"{base}/topics/orders/configs/retention.ms")
    assert (status, retention["value"], retention["is_default"], retention["source"]) == \
        (200, "3600000", False, "DYNAMIC_TOPIC_CONFIG"), retention
    assert call("PUT", f"{base}/topics/orders/configs/retention.ms", {"value": "7200000"})[0] == 204
    assert call("GET", f"{base}/topics/orders/configs/retention.ms")[2]["value"] == "7200000"
    assert call("DELETE", f"{base}/topics/orders/configs/retention.ms")[0] == 204
    assert call("GET", f"{base}/topics/orders/configs/retention.ms")[2]["is_default"] is True
    status, _, missing = call("GET", f"{base}/topics/nope")
    assert (status, missing["error_code"]) == (404, 40403), missing
    status, _, wrong = call("GET", f"{rest}/v3/clusters/not-this-one/topics")
    assert status == 404, wrong

    # Records: JSON, binary and string keys/values, a header and a timestamp, to partition 1.
    records = [
        {"partition_id": 1, "key": {"type": "STRING", "data": "k1"}, "value": {"type": "JSON", "data": {"n": 1, "s": "x"}},
         "headers": [{"name": "h", "value": base64.b64encode(b"hv").decode()}], "timestamp": "2024-02-29T12:00:00.250Z"},
        {"partition_id": 1, "key": {"type": "BINARY", "data": base64.b64encode(b"\x00\xffk").decode()},
         "value": {"type": "BINARY", "data": base64.b64encode(b"\x01\x02").decode()}},
        {"partition_id": 1, "value": {"data": [1, 2, 3]}},
    ]
    answers = []
    for r in records:
        status, _, got = call("POST", f"{base}/topics/orders/records", r)
        assert status == 200, got
        answers.append(got)
    assert [(a["partition_id"], a["offset"]) for a in answers] == [(1, 0), (1, 1), (1, 2)]
    assert answers[0]["key"] == {"type": "STRING", "size": 2} and answers[0]["value"]["type"] == "JSON"
    assert answers[0]["timestamp"] == "2024-02-29T12:00:00.250Z"
    assert answers[2]["key"] is None
    got = consume_exact(broker.bootstrap, [TopicPartition("orders", 1, 0)], 3)
    assert [(r.key, r.value) for r in got] == [
        (b"k1", b'{"n":1,"s":"x"}'), (b"\x00\xffk", b"\x01\x02"), (None, b"[1,2,3]")]
    assert list(got[0].headers) == [("h", b"hv")]
    assert got[0].timestamp == 1709208000250

    # A stream of records in one request: one answer line each, in order.
    stream = b"".join(json.dumps({"partition_id": 0, "value": {"type": "STRING", "data": f"s{i}"}}).encode()
                      for i in range(3))
    request = urllib.request.Request(f"{base}/topics/orders/records", data=stream, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        lines = [json.loads(line) for line in answer.read().splitlines()]
    assert [(x["partition_id"], x["offset"]) for x in lines] == [(0, 0), (0, 1), (0, 2)]
    assert [r.value for r in consume_exact(broker.bootstrap, [TopicPartition("orders", 0, 0)], 3)] == \
        [b"s0", b"s1", b"s2"]

    # Bad records are refused with the reason.
    status, _, bad = call("POST", f"{base}/topics/orders/records", {"value": {"type": "BINARY", "data": "!!"}})
    assert (status, bad["error_code"]) == (400, 400), bad
    status, _, bad = call("POST", f"{base}/topics/nope/records", {"value": {"data": 1}})
    assert status == 404, bad

    # Avro through the registry: the value in Confluent's wire format, read back by
    # Confluent's AvroDeserializer.
    sr = SchemaRegistryClient({"url": registry})
    from confluent_kafka.schema_registry import Schema
    schema = json.dumps({"type": "record", "name": "Order", "fields": [
        {"name": "id", "type": "long"}, {"name": "note", "type": ["null", "string"], "default": None}]})
    schema_id = sr.register_schema("orders-value", Schema(schema, "AVRO"))
    # By subject version (the topic's orders-value, TopicNameStrategy) and by id.
    status, _, avro = call("POST", f"{base}/topics/orders/records",
                           {"partition_id": 0, "value": {"schema_version": 1, "data": {"id": 42, "note": "hi"}}})
    assert (status, avro["value"]["type"], avro["offset"]) == (200, "AVRO", 3), avro
    status, _, by_id = call("POST", f"{base}/topics/orders/records",
                            {"partition_id": 0, "value": {"schema_id": schema_id, "data": {"id": 7, "note": None}}})
    assert status == 200, by_id
    got = consume_exact(broker.bootstrap, [TopicPartition("orders", 0, 3)], 2)
    assert got[0].value[:5] == b"\x00" + struct.pack(">I", schema_id)
    ctx = SerializationContext("orders", MessageField.VALUE)
    assert [AvroDeserializer(sr)(r.value, ctx) for r in got] == [{"id": 42, "note": "hi"}, {"id": 7, "note": None}]
    status, _, unfit = call("POST", f"{base}/topics/orders/records",
                            {"value": {"schema_id": schema_id, "data": {"id": "not a long"}}})
    assert (status, unfit["error_code"]) == (422, 42207), unfit
    status, _, bare = call("POST", f"{base}/topics/orders/records", {"value": "abc"})
    assert (status, bare["error_code"]) == (400, 400), bare
    # A schema given whole (raw_schema) is registered under the subject its strategy names, and
    # found there the next time.
    tick = json.dumps({"type": "record", "name": "Tick", "namespace": "mkt", "fields": [{"name": "p", "type": "int"}]})
    for strategy, subject in (("RECORD_NAME", "mkt.Tick"), ("TOPIC_RECORD_NAME", "orders-mkt.Tick")):
        for p in (5, 6):
            status, _, put = call("POST", f"{base}/topics/orders/records", {"partition_id": 0, "value": {
                "type": "AVRO", "raw_schema": tick, "subject_name_strategy": strategy, "data": {"p": p}}})
            assert (status, put["value"]["type"]) == (200, "AVRO"), put
            got = consume_exact(broker.bootstrap, [TopicPartition("orders", 0, put["offset"])], 1)[0]
            registered = sr.get_latest_version(subject)
            assert got.value[:5] == b"\x00" + struct.pack(">I", registered.schema_id)
            assert AvroDeserializer(sr)(got.value, ctx) == {"p": p}
        assert sr.get_versions(subject) == [1], subject
    # Protobuf and JSON Schema given whole, under the topic's subject (TOPIC_NAME, the default).
    create_topic(admin(broker.bootstrap), "whole", 1)
    for kind, schema, data, body in (
            ("PROTOBUF", 'syntax = "proto3";\nmessage W { int32 n = 1; }\n', {"n": 5}, b"\x00\x08\x05"),
            ("JSONSCHEMA", json.dumps({"type": "object", "properties": {"n": {"type": "integer"}}}), {"n": 5},
             b'{"n":5}')):
        status, _, put = call("POST", f"{base}/topics/whole/records", {"key": {
            "type": kind, "raw_schema": schema, "data": data}})
        assert (status, put["key"]["type"]) == (200, kind), put
        got = consume_exact(broker.bootstrap, [TopicPartition("whole", 0, put["offset"])], 1)[0]
        registered = SchemaRegistryClient({"url": registry}).get_latest_version("whole-key")  # uncached
        assert registered.schema.schema_type == ("JSON" if kind == "JSONSCHEMA" else kind)
        assert got.key == b"\x00" + struct.pack(">I", registered.schema_id) + body
        sr.set_compatibility("whole-key", "NONE")
    status, _, odd = call("POST", f"{base}/topics/orders/records", {"value": {
        "type": "AVRO", "raw_schema": tick, "subject_name_strategy": "SIDEWAYS", "data": {"p": 1}}})
    assert (status, odd["error_code"]) == (400, 400), odd
    status, _, odd = call("POST", f"{base}/topics/orders/records", {"value": {
        "type": "AVRO", "raw_schema": "{", "data": {"p": 1}}})
    assert (status, odd["error_code"]) == (422, 42201), odd
    for both in ({"schema_id": 1, "raw_schema": tick}, {"schema_id": 1, "schema_version": 1},
                 {"raw_schema": tick, "schema_version": 1}, {"raw_schema": tick, "subject": 7}):
        status, _, odd = call("POST", f"{base}/topics/orders/records",
                              {"value": {"type": "AVRO", "data": {"p": 1}, **both}})
        assert (status, odd["error_code"]) == (400, 400), (both, odd)

    # An avro-format v2 consumer decodes Avro records through the registry.
    assert call("POST", f"{base}/topics", {"topic_name": "typed", "partitions_count": 1})[0] == 201
    for n in (1, 2):
        status, _, put = call("POST", f"{base}/topics/typed/records",
                              {"value": {"schema_id": schema_id, "data": {"id": n, "note": f"n{n}"}}})
        assert status == 200, put
    made = call("POST", f"{rest}/consumers/avro-readers",
                {"name": "a", "format": "avro", "auto.offset.reset": "earliest"}, content_type=V2)[2]
    assert call("POST", f"{made['base_uri']}/subscription", {"topics": ["typed"]}, content_type=V2)[0] == 204
    import time
    deadline = time.monotonic() + 30
    decoded = []
    while len(decoded) < 2:
        assert time.monotonic() < deadline, decoded
        status, content_type, batch = call("GET", f"{made['base_uri']}/records?timeout=1000")
        assert (status, content_type) == (200, "application/vnd.kafka.avro.v2+json"), batch
        decoded.extend(batch)
    # Avro's JSON encoding, as Confluent's proxy answers: a union's value names its branch.
    assert [(r["offset"], r["key"], r["value"]) for r in decoded] == \
        [(0, None, {"id": 1, "note": {"string": "n1"}}), (1, None, {"id": 2, "note": {"string": "n2"}})]
    assert call("DELETE", made["base_uri"])[0] == 204

    assert call("DELETE", f"{base}/topics/orders")[0] == 204
    assert call("DELETE", f"{base}/topics/orders")[0] == 404


def test_v2_consumer_reads_what_a_kafka_producer_wrote_and_v3_reports_its_lag(proxy):
    broker, rest, _ = proxy
    c = cluster_id(rest)
    create_topic(admin(broker.bootstrap), "events", 1)
    produce_all(producer(broker.bootstrap), "events",
                [{"partition": 0, "key": json.dumps(f"k{i}").encode(), "value": json.dumps({"i": i}).encode()}
                 for i in range(5)])

    status, content_type, made = call("POST", f"{rest}/consumers/readers", {
        "name": "one", "format": "binary", "auto.offset.reset": "earliest", "auto.commit.enable": "false"},
        content_type=V2)
    assert (status, content_type) == (200, V2), made
    assert made == {"instance_id": "one", "base_uri": f"{rest}/consumers/readers/instances/one"}
    again = call("POST", f"{rest}/consumers/readers", {"name": "one"}, content_type=V2)
    assert (again[0], again[2]["error_code"]) == (409, 40902)
    me = made["base_uri"]
    assert call("POST", f"{me}/subscription", {"topics": ["events"]}, content_type=V2)[0] == 204
    assert call("GET", f"{me}/subscription")[2] == {"topics": ["events"]}

    got = []
    import time
    deadline = time.monotonic() + 30
    while len(got) < 5:
        assert time.monotonic() < deadline, got
        status, content_type, batch = call("GET", f"{me}/records?timeout=1000",
                                           accept="application/vnd.kafka.binary.v2+json")
        assert (status, content_type) == (200, "application/vnd.kafka.binary.v2+json"), batch
        got.extend(batch)
    assert [(r["topic"], r["partition"], r["offset"]) for r in got] == [("events", 0, i) for i in range(5)]
    assert [base64.b64decode(r["key"]) for r in got] == [f'"k{i}"'.encode() for i in range(5)]
    assert [json.loads(base64.b64decode(r["value"])) for r in got] == [{"i": i} for i in range(5)]
    assert call("GET", f"{me}/assignments")[2] == {"partitions": [{"topic": "events", "partition": 0}]}

    # Commit the third record (offset 2): the group's committed offset is 3, its lag 2.
    assert call("POST", f"{me}/offsets", {"offsets": [{"topic": "events", "partition": 0, "offset": 2}]},
                content_type=V2)[0] == 200
    status, _, lags = call("GET", f"{rest}/v3/clusters/{c}/consumer-groups/readers/lags")
    assert status == 200, lags
    assert [(x["topic_name"], x["partition_id"], x["current_offset"], x["log_end_offset"], x["lag"])
            for x in lags["data"]] == [("events", 0, 3, 5, 2)]
    status, _, summary = call("GET", f"{rest}/v3/clusters/{c}/consumer-groups/readers/lag-summary")
    assert (summary["total_lag"], summary["max_lag"], summary["max_lag_partition_id"]) == (2, 2, 0), summary
    status, _, group = call("GET", f"{rest}/v3/clusters/{c}/consumer-groups/readers")
    assert (status, group["consumer_group_id"], group["state"]) == (200, "readers", "STABLE"), group
    assert call("GET", f"{rest}/v3/clusters/{c}/consumer-groups/nobody")[0] == 404
    status, _, groups = call("GET", f"{rest}/v3/clusters/{c}/consumer-groups")
    assert (status, groups["kind"]) == (200, "KafkaConsumerGroupList"), groups
    assert "readers" in [g["consumer_group_id"] for g in groups["data"]], groups
    status, _, members = call("GET", f"{rest}/v3/clusters/{c}/consumer-groups/readers/consumers")
    assert (status, members["kind"], len(members["data"])) == (200, "KafkaConsumerList", 1), members
    assert members["data"][0]["consumer_group_id"] == "readers" and members["data"][0]["consumer_id"], members

    # A json-format instance in the same group takes over after the first leaves, from the commit.
    assert call("DELETE", me)[0] == 204
    assert call("GET", f"{me}/records")[0] == 404
    made = call("POST", f"{rest}/consumers/readers", {"name": "two", "format": "json"}, content_type=V2)[2]
    two = made["base_uri"]
    assert call("POST", f"{two}/subscription", {"topics": ["events"]}, content_type=V2)[0] == 204
    rest_of = []
    deadline = time.monotonic() + 30
    while len(rest_of) < 2:
        assert time.monotonic() < deadline, rest_of
        status, content_type, batch = call("GET", f"{two}/records?timeout=1000")
        assert (status, content_type) == (200, "application/vnd.kafka.json.v2+json"), batch
        rest_of.extend(batch)
    assert [(r["offset"], r["key"], r["value"]) for r in rest_of] == [(3, "k3", {"i": 3}), (4, "k4", {"i": 4})]
    # Auto-commit (the default) committed what was handed out: no lag left.
    status, _, lags = call("GET", f"{rest}/v3/clusters/{c}/consumer-groups/readers/lags")
    assert [x["lag"] for x in lags["data"]] == [0], lags
    assert call("DELETE", two)[0] == 204


def test_idle_consumer_instances_are_closed_after_the_configured_timeout(make_broker):
    import time
    rest = free_port()
    broker = make_broker(rest_proxy_listeners=f"http://127.0.0.1:{rest}",
                         overrides={"rest.proxy.consumer.instance.timeout.ms": "1000"})
    url = f"http://127.0.0.1:{rest}"
    created = time.monotonic()
    made = call("POST", f"{url}/consumers/idle", {"name": "i"}, content_type=V2)[2]
    assert call("GET", f"{made['base_uri']}/subscription")[0] == 200
    # Asked about without being used (GET subscription does not count as use), it goes
    # within a second or two of the timeout.
    deadline = created + 15
    while call("GET", f"{made['base_uri']}/subscription")[0] == 200:
        assert time.monotonic() < deadline, "the idle instance was never closed"
        time.sleep(0.1)
    assert time.monotonic() - created >= 1.0
    status, _, gone = call("GET", f"{made['base_uri']}/records")
    assert (status, gone["error_code"]) == (404, 40403)
    # Its name is free again.
    assert call("POST", f"{url}/consumers/idle", {"name": "i"}, content_type=V2)[0] == 200


def test_v2_produce_in_every_format_read_back_by_a_kafka_client(proxy):
    broker, rest, registry = proxy
    create_topic(admin(broker.bootstrap), "v2", 2)
    status, _, names = call("GET", f"{rest}/topics")
    assert status == 200 and "v2" in names, names
    status, _, described = call("GET", f"{rest}/topics/v2")
    assert (described["name"], len(described["partitions"])) == ("v2", 2), described
    assert described["configs"]["cleanup.policy"] == "delete"
    assert described["partitions"][0]["replicas"][0]["in_sync"] is True
    assert call("GET", f"{rest}/topics/v2/partitions/1")[2]["partition"] == 1
    assert call("GET", f"{rest}/topics/v2/partitions/9")[2]["error_code"] == 40402
    assert call("GET", f"{rest}/topics/nope")[2]["error_code"] == 40401

    binary = "application/vnd.kafka.binary.v2+json"
    status, content_type, got = call("POST", f"{rest}/topics/v2/partitions/1", {"records": [
        {"key": base64.b64encode(b"k").decode(), "value": base64.b64encode(b"\x00\x01").decode()},
        {"value": "%%% not base64"},
        {"value": base64.b64encode(b"two").decode()},
    ]}, content_type=binary)
    assert (status, content_type) == (200, V2), got
    assert got["key_schema_id"] is None and got["value_schema_id"] is None
    assert [(o["partition"], o["offset"], o["error_code"]) for o in got["offsets"]] == \
        [(1, 0, None), (None, None, 42203), (1, 1, None)], got
    status, _, got = call("POST", f"{rest}/topics/v2/partitions/1", {"records": [{"value": {"a": [1, True]}}]},
                          content_type="application/vnd.kafka.json.v2+json")
    assert got["offsets"][0]["offset"] == 2, got

    # Avro: the schema given inline is registered under v2-value; then by its id.
    avro = "application/vnd.kafka.avro.v2+json"
    schema = json.dumps({"type": "record", "name": "P", "fields": [{"name": "n", "type": "int"}]})
    status, _, got = call("POST", f"{rest}/topics/v2/partitions/1",
                          {"value_schema": schema, "records": [{"value": {"n": 3}}]}, content_type=avro)
    assert status == 200 and got["offsets"][0]["offset"] == 3, got
    schema_id = got["value_schema_id"]
    sr = SchemaRegistryClient({"url": registry})
    assert sr.get_latest_version("v2-value").schema_id == schema_id
    status, _, got = call("POST", f"{rest}/topics/v2/partitions/1",
                          {"value_schema_id": schema_id, "records": [{"value": {"n": 4}}, {"value": {"n": "x"}}]},
                          content_type=avro)
    assert [(o["offset"], o["error_code"]) for o in got["offsets"]] == [(4, None), (None, 42203)], got

    got = consume_exact(broker.bootstrap, [TopicPartition("v2", 1, 0)], 5)
    assert [(r.key, r.value) for r in got[:3]] == [(b"k", b"\x00\x01"), (None, b"two"), (None, b'{"a":[1,true]}')]
    ctx = SerializationContext("v2", MessageField.VALUE)
    assert [AvroDeserializer(sr)(r.value, ctx) for r in got[3:]] == [{"n": 3}, {"n": 4}]

    # JSON Schema: each document is validated against its schema, as Confluent's serializer
    # does; what passes reads back through confluent-kafka's JSONDeserializer.
    create_topic(admin(broker.bootstrap), "v2j", 1)
    js = json.dumps({"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}},
                     "required": ["n"]})
    status, _, got = call("POST", f"{rest}/topics/v2j", {"value_schema": js, "records": [
        {"value": {"n": 7}}, {"value": {"n": -1}}, {"value": {"m": 1}}]},
        content_type="application/vnd.kafka.jsonschema.v2+json")
    assert [(o["offset"], o["error_code"]) for o in got["offsets"]] == \
        [(0, None), (None, 42203), (None, 42203)], got
    assert "/n" in got["offsets"][1]["error"], got
    js_id = got["value_schema_id"]
    # v3 refuses the same document with 42207.
    base = f"{rest}/v3/clusters/{cluster_id(rest)}"
    status, _, unfit = call("POST", f"{base}/topics/v2j/records", {"value": {"schema_id": js_id, "data": {"n": -1}}})
    assert (status, unfit["error_code"]) == (422, 42207), unfit
    status, _, fit = call("POST", f"{base}/topics/v2j/records", {"value": {"schema_id": js_id, "data": {"n": 8}}})
    assert (status, fit["offset"]) == (200, 1), fit
    got = consume_exact(broker.bootstrap, [TopicPartition("v2j", 0, 0)], 2)
    ctx = SerializationContext("v2j", MessageField.VALUE)
    assert [JSONDeserializer(js)(r.value, ctx) for r in got] == [{"n": 7}, {"n": 8}]

    # Protobuf: the record is the wire format with the first message's index (0).
    create_topic(admin(broker.bootstrap), "v2p", 1)
    proto = 'syntax = "proto3";\nmessage Q { int32 n = 1; string s = 2; }\n'
    status, _, got = call("POST", f"{rest}/topics/v2p", {"value_schema": proto, "records": [
        {"value": {"n": 5, "s": "hi"}}, {"value": {"nope": 1}}]},
        content_type="application/vnd.kafka.protobuf.v2+json")
    assert [(o["offset"], o["error_code"]) for o in got["offsets"]] == [(0, None), (None, 42203)], got
    proto_id = got["value_schema_id"]
    got = consume_exact(broker.bootstrap, [TopicPartition("v2p", 0, 0)], 1)
    assert got[0].value == b"\x00" + struct.pack(">I", proto_id) + b"\x00" + b"\x08\x05\x12\x02hi"

    # Refusals: no format in the content type, no records, an unknown topic.
    assert call("POST", f"{rest}/topics/v2", {"records": [{"value": 1}]})[0] == 415
    assert call("POST", f"{rest}/topics/v2", {"records": []}, content_type=binary)[2]["error_code"] == 42201
    assert call("POST", f"{rest}/topics/nope", {"records": [{"value": "AA=="}]},
                content_type=binary)[2]["error_code"] == 40401
    # A schema format with no schema: each record says so.
    status, _, got = call("POST", f"{rest}/topics/v2", {"records": [{"value": {"n": 1}}]}, content_type=avro)
    assert got["offsets"][0]["error_code"] == 42203 and "value_schema" in got["offsets"][0]["error"], got


def read_records(base_uri: str, count: int) -> list[tuple[str, int, str]]:
    """(topic, offset, value) of the next `count` binary records of a v2 instance, within 30 s."""
    import time
    got, deadline = [], time.monotonic() + 30
    while len(got) < count:
        assert time.monotonic() < deadline, got
        status, _, batch = call("GET", f"{base_uri}/records?timeout=500")
        assert status == 200, batch
        got.extend((r["topic"], r["offset"], base64.b64decode(r["value"]).decode()) for r in batch)
    return got


def test_v2_manual_assignment_seeks_and_topic_patterns(proxy):
    broker, rest, _ = proxy
    for name in ("logs-a", "logs-b", "other"):
        create_topic(admin(broker.bootstrap), name, 1)
    produce_all(producer(broker.bootstrap), "logs-a",
                [{"partition": 0, "value": f"a{i}".encode()} for i in range(4)])

    # A pattern matches whole topic names, and a topic made later joins the subscription
    # while the instance reads.
    made = call("POST", f"{rest}/consumers/pat", {"name": "p", "auto.offset.reset": "earliest"},
                content_type=V2)[2]
    assert call("POST", f"{made['base_uri']}/subscription", {"topic_pattern": "logs-.*"}, content_type=V2)[0] == 204
    assert call("GET", f"{made['base_uri']}/subscription")[2]["topics"] == ["logs-a", "logs-b"]

    assert read_records(made["base_uri"], 4) == [("logs-a", i, f"a{i}") for i in range(4)]
    create_topic(admin(broker.bootstrap), "logs-c", 1)
    produce_all(producer(broker.bootstrap), "logs-c", [{"partition": 0, "value": b"c0"}])
    assert read_records(made["base_uri"], 1) == [("logs-c", 0, "c0")]
    assert call("GET", f"{made['base_uri']}/subscription")[2]["topics"] == ["logs-a", "logs-b", "logs-c"]
    # A pattern that matches nothing yet is a subscription to nothing, as in the Java consumer.
    assert call("POST", f"{made['base_uri']}/subscription", {"topic_pattern": "nothing.*"},
                content_type=V2)[0] == 204
    assert call("GET", f"{made['base_uri']}/subscription")[2]["topics"] == []
    assert call("POST", f"{made['base_uri']}/subscription", {"topic_pattern": "("}, content_type=V2)[0] == 400
    # Subscribed instances cannot also assign.
    status, _, both = call("POST", f"{made['base_uri']}/assignments",
                           {"partitions": [{"topic": "logs-a", "partition": 0}]}, content_type=V2)
    assert (status, both["error_code"]) == (409, 40903), both
    assert call("DELETE", made["base_uri"])[0] == 204

    # Manual assignment: no group membership, reads from reset (earliest), seeks, commits
    # under the group's id.
    made = call("POST", f"{rest}/consumers/manual", {"name": "m", "format": "binary",
                                                     "auto.offset.reset": "earliest",
                                                     "auto.commit.enable": "false"}, content_type=V2)[2]
    me = made["base_uri"]
    assert call("POST", f"{me}/assignments", {"partitions": [{"topic": "logs-a", "partition": 0}]},
                content_type=V2)[0] == 204
    assert call("GET", f"{me}/assignments")[2] == {"partitions": [{"topic": "logs-a", "partition": 0}]}

    assert read_records(me, 4) == [("logs-a", i, f"a{i}") for i in range(4)]
    assert call("POST", f"{me}/positions", {"offsets": [{"topic": "logs-a", "partition": 0, "offset": 2}]},
                content_type=V2)[0] == 204
    assert read_records(me, 2) == [("logs-a", 2, "a2"), ("logs-a", 3, "a3")]
    status, _, unassigned = call("POST", f"{me}/positions",
                                 {"offsets": [{"topic": "other", "partition": 0, "offset": 0}]}, content_type=V2)
    assert (status, unassigned["error_code"]) == (409, 40903), unassigned
    assert call("POST", f"{me}/offsets", {"offsets": [{"topic": "logs-a", "partition": 0, "offset": 1}]},
                content_type=V2)[0] == 200
    status, _, committed = call("GET", f"{me}/offsets", {"partitions": [{"topic": "logs-a", "partition": 0}]},
                                content_type=V2)
    assert committed["offsets"] == [{"topic": "logs-a", "partition": 0, "offset": 2, "metadata": ""}], committed
    assert call("DELETE", me)[0] == 204
    # A new manual instance of the group starts from the commit.
    made = call("POST", f"{rest}/consumers/manual", {"name": "m2", "format": "binary"}, content_type=V2)[2]
    me = made["base_uri"]
    assert call("POST", f"{me}/assignments", {"partitions": [{"topic": "logs-a", "partition": 0}]},
                content_type=V2)[0] == 204
    assert read_records(me, 2) == [("logs-a", 2, "a2"), ("logs-a", 3, "a3")]
