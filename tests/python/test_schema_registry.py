"""The built-in schema registry with Confluent's own Python client: SchemaRegistryClient,
AvroSerializer and AvroDeserializer used unchanged against Vltava's `schema.registry.listeners`.

Records go in through confluent-kafka with Avro values and come back as the exact objects; a
compatible evolution is registered and an old record read with the new reader schema; an
incompatible change is refused with 409 under BACKWARD and accepted under NONE; the
compatibility endpoint agrees; ids, versions and schemas are the same after a restart.
"""

from __future__ import annotations

import json
import struct

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import free_port
from kafkautil import admin, consume_exact, create_topic, produce_all, producer

V1 = json.dumps({"type": "record", "name": "User", "namespace": "shop",
                 "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}]})
# Adds a field with a default: readers of V2 read V1 records (email "").
V2 = json.dumps({"type": "record", "name": "User", "namespace": "shop",
                 "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": "string"},
                            {"name": "email", "type": "string", "default": ""}]})
# Changes a field's type: no reader of it reads V1 or V2 records.
V3 = json.dumps({"type": "record", "name": "User", "namespace": "shop",
                 "fields": [{"name": "id", "type": "string"}, {"name": "name", "type": "string"}]})


@pytest.fixture
def registry(make_broker):
    port = free_port()
    broker = make_broker(schema_registry_listeners=f"http://127.0.0.1:{port}")
    return broker, f"http://127.0.0.1:{port}"


def test_avro_records_round_trip_evolve_and_incompatible_changes_are_refused(registry):
    broker, url = registry
    sr = SchemaRegistryClient({"url": url})
    create_topic(admin(broker.bootstrap), "users", 1)
    ctx = SerializationContext("users", MessageField.VALUE)

    v1 = AvroSerializer(sr, V1)
    users = [{"id": i, "name": f"user-{i}"} for i in range(3)]
    produce_all(producer(broker.bootstrap), "users",
                [{"partition": 0, "key": str(u["id"]).encode(), "value": v1(u, ctx)} for u in users])
    got = consume_exact(broker.bootstrap, [TopicPartition("users", 0, 0)], 3)
    # Confluent's wire format: magic byte 0, then the schema id (1), then the Avro body.
    assert [r.value[:5] for r in got] == [b"\x00" + struct.pack(">I", 1)] * 3
    reader = AvroDeserializer(sr)
    assert [reader(r.value, ctx) for r in got] == users

    # A compatible evolution: version 2, id 2; V2 readers read V1 records with the default.
    v2 = AvroSerializer(sr, V2)
    newer = {"id": 3, "name": "user-3", "email": "u3@example.com"}
    produce_all(producer(broker.bootstrap), "users", [{"partition": 0, "value": v2(newer, ctx)}])
    got = consume_exact(broker.bootstrap, [TopicPartition("users", 0, 0)], 4)
    assert got[3].value[:5] == b"\x00" + struct.pack(">I", 2)
    as_v2 = AvroDeserializer(sr, V2)
    assert [as_v2(r.value, ctx) for r in got] == [dict(u, email="") for u in users] + [newer]
    assert sr.get_versions("users-value") == [1, 2]
    latest = sr.get_latest_version("users-value")
    assert (latest.schema_id, latest.version, json.loads(latest.schema.schema_str)) == (2, 2, json.loads(V2))

    # Incompatible under BACKWARD (the default): 409, and the compatibility endpoint agrees.
    assert sr.test_compatibility("users-value", Schema(V3, "AVRO")) is False
    assert sr.test_compatibility("users-value", Schema(V2, "AVRO")) is True
    with pytest.raises(SchemaRegistryError) as refused:
        sr.register_schema("users-value", Schema(V3, "AVRO"))
    assert (refused.value.http_status_code, refused.value.error_code) == (409, 409)
    # Under NONE it is taken, as version 3 with a new id.
    sr.set_compatibility("users-value", "NONE")
    assert sr.get_compatibility("users-value") == "NONE"
    assert sr.register_schema("users-value", Schema(V3, "AVRO")) == 3
    # The same schema again keeps its id; under another subject too.
    assert sr.register_schema("users-value", Schema(V1, "AVRO")) == 1
    assert sr.register_schema("audit-value", Schema(V1, "AVRO")) == 1
    assert sorted(sr.get_subjects()) == ["audit-value", "users-value"]

    before = {s: [(v, sr.get_version(s, v).schema_id, sr.get_version(s, v).schema.schema_str)
                  for v in sr.get_versions(s)] for s in sr.get_subjects()}
    assert before["users-value"][0][:2] == (1, 1) and [v[:2] for v in before["users-value"]] == \
        [(1, 1), (2, 2), (3, 3)]
    broker.restart()
    fresh = SchemaRegistryClient({"url": url})
    after = {s: [(v, fresh.get_version(s, v).schema_id, fresh.get_version(s, v).schema.schema_str)
                 for v in fresh.get_versions(s)] for s in fresh.get_subjects()}
    assert after == before
    assert fresh.get_compatibility("users-value") == "NONE"
    assert fresh.get_schema(2).schema_str == V2
    # Old records still decode through a client that has never seen their schemas.
    got = consume_exact(broker.bootstrap, [TopicPartition("users", 0, 0)], 4)
    assert [AvroDeserializer(fresh)(r.value, ctx) for r in got] == users + [newer]
