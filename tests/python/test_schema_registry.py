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
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
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


# JSON Schemas with a closed content model: an optional property may be added (old documents
# never carry it). The same addition to an open model is refused, as Confluent's registry does.
J1 = json.dumps({"type": "object", "additionalProperties": False, "required": ["id"],
                 "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}})
J2 = json.dumps({"type": "object", "additionalProperties": False, "required": ["id"],
                 "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                                "email": {"type": "string"}}})
J_RETYPED = json.dumps({"type": "object", "additionalProperties": False, "required": ["id"],
                        "properties": {"id": {"type": "string"}, "name": {"type": "string"}}})


def http_json(method: str, url: str, body: dict | None = None) -> tuple[int, object]:
    """One registry request; (status, parsed body), errors included."""
    import urllib.error
    import urllib.request
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_json_schema_records_round_trip_and_evolve_by_content_model(registry):

    broker, url = registry
    sr = SchemaRegistryClient({"url": url})
    create_topic(admin(broker.bootstrap), "people", 1)
    ctx = SerializationContext("people", MessageField.VALUE)

    people = [{"id": i, "name": f"p{i}"} for i in range(3)]
    to_json = JSONSerializer(J1, sr)
    produce_all(producer(broker.bootstrap), "people",
                [{"partition": 0, "value": to_json(p, ctx)} for p in people])
    # The closed model takes an optional property: version 2.
    to_json2 = JSONSerializer(J2, sr)
    later = {"id": 3, "name": "p3", "email": "p3@example.com"}
    produce_all(producer(broker.bootstrap), "people", [{"partition": 0, "value": to_json2(later, ctx)}])
    got = consume_exact(broker.bootstrap, [TopicPartition("people", 0, 0)], 4)
    assert [r.value[:5] for r in got] == [b"\x00" + struct.pack(">I", 1)] * 3 + \
        [b"\x00" + struct.pack(">I", 2)]
    from_json = JSONDeserializer(None, schema_registry_client=sr)
    assert [from_json(r.value, ctx) for r in got] == people + [later]
    latest = sr.get_latest_version("people-value")
    assert (latest.version, latest.schema.schema_type, json.loads(latest.schema.schema_str)) == \
        (2, "JSON", json.loads(J2))

    # A retyped property: refused under BACKWARD with the reason, taken under NONE.
    assert sr.test_compatibility("people-value", Schema(J_RETYPED, "JSON")) is False
    with pytest.raises(SchemaRegistryError) as refused:
        sr.register_schema("people-value", Schema(J_RETYPED, "JSON"))
    assert refused.value.error_code == 409 and "TYPE_CHANGED" in refused.value.error_message
    # An open model cannot gain a typed property: old documents may carry it with any value.
    open_v1 = json.dumps({"type": "object", "properties": {"id": {"type": "integer"}}})
    open_v2 = json.dumps({"type": "object", "properties": {"id": {"type": "integer"},
                                                           "name": {"type": "string"}}})
    sr.register_schema("open-value", Schema(open_v1, "JSON"))
    status, body = http_json("POST", f"{url}/compatibility/subjects/open-value/versions/latest?verbose=true",
                             {"schema": open_v2, "schemaType": "JSON"})
    assert status == 200 and body["is_compatible"] is False
    assert any("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL: #/properties/name" in m for m in body["messages"]), body
    sr.set_compatibility("people-value", "NONE")
    assert sr.register_schema("people-value", Schema(J_RETYPED, "JSON")) == 4
    # Not a JSON Schema: 42201.
    with pytest.raises(SchemaRegistryError) as invalid:
        sr.register_schema("people-value", Schema('{"type": "strng"}', "JSON"))
    assert (invalid.value.http_status_code, invalid.value.error_code) == (422, 42201)
    assert http_json("GET", f"{url}/schemas/types") == (200, ["JSON", "PROTOBUF", "AVRO"])


def protobuf_classes(money_cents_type: int):
    """shop.Money in money.proto and shop.Order in order.proto (importing money.proto and the
    well-known timestamp), built from descriptors in a private pool: no protoc needed."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

    F = descriptor_pb2.FieldDescriptorProto
    pool = descriptor_pool.DescriptorPool()
    well_known = descriptor_pb2.FileDescriptorProto()
    timestamp_pb2.DESCRIPTOR.CopyToProto(well_known)
    pool.Add(well_known)
    money = descriptor_pb2.FileDescriptorProto(name="money.proto", package="shop", syntax="proto3")
    money.message_type.add(name="Money").field.add(name="cents", number=1, type=money_cents_type,
                                                   label=F.LABEL_OPTIONAL)
    pool.Add(money)
    order = descriptor_pb2.FileDescriptorProto(name="order.proto", package="shop", syntax="proto3",
                                               dependency=["money.proto", "google/protobuf/timestamp.proto"])
    message = order.message_type.add(name="Order")
    message.field.add(name="id", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    message.field.add(name="total", number=2, type=F.TYPE_MESSAGE, type_name=".shop.Money",
                      label=F.LABEL_OPTIONAL)
    message.field.add(name="at", number=3, type=F.TYPE_MESSAGE,
                      type_name=".google.protobuf.Timestamp", label=F.LABEL_OPTIONAL)
    pool.Add(order)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Order"))


def test_protobuf_records_round_trip_with_references(registry):
    from google.protobuf import descriptor_pb2
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer

    broker, url = registry
    sr = SchemaRegistryClient({"url": url})
    create_topic(admin(broker.bootstrap), "orders", 1)
    ctx = SerializationContext("orders", MessageField.VALUE)

    Order = protobuf_classes(descriptor_pb2.FieldDescriptorProto.TYPE_INT64)
    serialize = ProtobufSerializer(Order, sr, {"use.deprecated.format": False})
    orders = []
    for i in range(3):
        o = Order(id=f"o-{i}")
        o.total.cents = 100 * i + 1
        o.at.seconds = 1_700_000_000 + i
        orders.append(o)
    produce_all(producer(broker.bootstrap), "orders",
                [{"partition": 0, "value": serialize(o, ctx)} for o in orders])
    got = consume_exact(broker.bootstrap, [TopicPartition("orders", 0, 0)], 3)
    # The imported money.proto was registered first (id 1) under its file name; Order is id 2.
    assert [r.value[:5] for r in got] == [b"\x00" + struct.pack(">I", 2)] * 3
    deserialize = ProtobufDeserializer(Order, {"use.deprecated.format": False})
    assert [deserialize(r.value, ctx) for r in got] == orders
    latest = sr.get_latest_version("orders-value")
    assert latest.schema.schema_type == "PROTOBUF"
    assert [(r.name, r.subject, r.version) for r in latest.schema.references] == \
        [("money.proto", "money.proto", 1)]
    assert sr.get_versions("money.proto") == [1]
    assert http_json("GET", f"{url}/subjects/money.proto/versions/1/referencedby") == (200, [2])
    # What is referenced cannot be deleted.
    status, body = http_json("DELETE", f"{url}/subjects/money.proto/versions/1")
    assert (status, body["error_code"]) == (422, 42206), body

    # Money.cents retyped to string: another wire encoding, refused under BACKWARD.
    money_text = 'syntax = "proto3";\npackage shop;\nmessage Money { string cents = 1; }\n'
    status, body = http_json("POST", f"{url}/compatibility/subjects/money.proto/versions/latest?verbose=true",
                             {"schema": money_text, "schemaType": "PROTOBUF"})
    assert status == 200 and body["is_compatible"] is False
    assert any("FIELD_SCALAR_KIND_CHANGED" in m for m in body["messages"]), body
    with pytest.raises(SchemaRegistryError) as refused:
        sr.register_schema("money.proto", Schema(money_text, "PROTOBUF"))
    assert refused.value.error_code == 409
    # A compatible change in .proto text (a field added) is version 2.
    money_more = 'syntax = "proto3";\npackage shop;\nmessage Money { int64 cents = 1; string currency = 2; }\n'
    assert sr.register_schema("money.proto", Schema(money_more, "PROTOBUF")) == 3
    assert sr.get_versions("money.proto") == [1, 2]

    broker.restart()
    fresh = SchemaRegistryClient({"url": url})
    again = fresh.get_latest_version("orders-value")
    assert (again.schema_id, again.version) == (2, 1)
    assert [(r.name, r.subject, r.version) for r in again.schema.references] == \
        [("money.proto", "money.proto", 1)]
    got = consume_exact(broker.bootstrap, [TopicPartition("orders", 0, 0)], 3)
    assert [deserialize(r.value, ctx) for r in got] == orders


def delivery_errors(bootstrap: str, topic: str, values: list[bytes]) -> list:
    """Produce each value on its own (no batching across them) and return each delivery's error
    (None when taken), with retries off so a refusal is final."""
    p = producer(bootstrap, retries=0, linger_ms=0, enable_idempotence=False)
    errors = []
    for v in values:
        got = []
        p.produce(topic, value=v, partition=0, on_delivery=lambda err, _msg: got.append(err))
        assert p.flush(30) == 0
        errors.append(got[0])
    return errors


def test_server_side_validation_refuses_values_without_a_registered_schema_id(registry):
    from confluent_kafka import KafkaError

    broker, url = registry
    sr = SchemaRegistryClient({"url": url})
    create_topic(admin(broker.bootstrap), "checked", 1, {"confluent.value.schema.validation": "true"})
    create_topic(admin(broker.bootstrap), "unchecked", 1)
    ctx = SerializationContext("checked", MessageField.VALUE)
    good = AvroSerializer(sr, V1)({"id": 1, "name": "a"}, ctx)
    # Registered, but under another subject than checked-value (TopicNameStrategy).
    other_id = sr.register_schema("elsewhere-value", Schema(V3, "AVRO"))
    elsewhere = b"\x00" + struct.pack(">I", other_id) + b"\x02"
    unknown = b"\x00" + struct.pack(">I", 999) + b"\x02"
    errors = delivery_errors(broker.bootstrap, "checked", [good, b"plain text", unknown, elsewhere, good])
    assert errors[0] is None and errors[4] is None, errors
    assert [e.code() for e in errors[1:4]] == [KafkaError.INVALID_RECORD] * 3, errors
    # Only the two good records are in the log, byte for byte.
    got = consume_exact(broker.bootstrap, [TopicPartition("checked", 0, 0)], 2)
    assert [r.value for r in got] == [good, good]
    # A tombstone (null value) has nothing to check and is taken.
    tombstone = []
    p = producer(broker.bootstrap, retries=0, enable_idempotence=False)
    p.produce("checked", key=b"k", value=None, partition=0, on_delivery=lambda err, _m: tombstone.append(err))
    assert p.flush(30) == 0 and tombstone == [None], tombstone
    # Without the config nothing is checked.
    assert delivery_errors(broker.bootstrap, "unchecked", [b"plain text"]) == [None]
    # Key validation checks keys: a plain key is refused; a key with an id registered under
    # keyed-key is taken, and so is a null key (nothing to check).
    create_topic(admin(broker.bootstrap), "keyed", 1, {
        "confluent.key.schema.validation": "true",
        "confluent.key.subject.name.strategy": "io.confluent.kafka.serializers.subject.TopicNameStrategy"})
    key_id = sr.register_schema("keyed-key", Schema('"string"', "AVRO"))
    p = producer(broker.bootstrap, retries=0, enable_idempotence=False)
    outcomes = []
    for key in [b"plain", b"\x00" + struct.pack(">I", key_id) + b"\x02k", None]:
        p.produce("keyed", key=key, value=b"v", partition=0, on_delivery=lambda err, _m: outcomes.append(err))
        assert p.flush(30) == 0
    assert outcomes[0].code() == KafkaError.INVALID_RECORD and outcomes[1:] == [None, None], outcomes

    # RecordNameStrategy: the subject is the record's full name (shop.User for V1 and V3), so
    # ids registered only under topic subjects are refused once it applies, and an id
    # registered under shop.User is taken.
    import time
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
    strategy = ConfigEntry("confluent.value.subject.name.strategy",
                           "io.confluent.kafka.serializers.subject.RecordNameStrategy",
                           incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource("topic", "checked", incremental_configs=[strategy])
    adm = admin(broker.bootstrap)
    adm.incremental_alter_configs([resource])[resource].result(timeout=30)
    deadline = time.monotonic() + 15
    while delivery_errors(broker.bootstrap, "checked", [good])[0] is None:
        assert time.monotonic() < deadline, "the new strategy never applied"
    assert delivery_errors(broker.bootstrap, "checked", [elsewhere])[0].code() == KafkaError.INVALID_RECORD
    assert sr.register_schema("shop.User", Schema(V3, "AVRO")) == other_id
    errors = delivery_errors(broker.bootstrap, "checked", [elsewhere, good, unknown])
    assert errors[0] is None, errors
    assert [e.code() for e in errors[1:]] == [KafkaError.INVALID_RECORD] * 2, errors


def console_consumer(broker, url: str, topic: str, count: int, *properties: str) -> list[str]:
    """`vltava console-consumer` with a schema formatter: its output lines."""
    import subprocess
    from conftest import broker_binary
    args = [str(broker_binary()), "console-consumer", "--bootstrap-server", broker.bootstrap,
            "--topic", topic, "--from-beginning", "--max-messages", str(count), "--timeout-ms", "30000",
            "--formatter", "io.confluent.kafka.formatter.AvroMessageFormatter",
            "--property", f"schema.registry.url={url}"]
    for p in properties:
        args += ["--property", p]
    done = subprocess.run(args, capture_output=True, timeout=60, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_console_consumer_decodes_every_format_through_the_registry(registry):
    from google.protobuf import descriptor_pb2
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
    from confluent_kafka.serialization import StringSerializer

    broker, url = registry
    sr = SchemaRegistryClient({"url": url})
    create_topic(admin(broker.bootstrap), "mixed", 1)
    ctx = SerializationContext("mixed", MessageField.VALUE)
    key_ctx = SerializationContext("mixed", MessageField.KEY)
    # One subject takes three formats in turn: only under NONE (a change of type is incompatible).
    sr.set_compatibility("mixed-value", "NONE")
    avro_key = AvroSerializer(sr, '"string"')("k1", key_ctx)
    Order = protobuf_classes(descriptor_pb2.FieldDescriptorProto.TYPE_INT64)
    order = Order(id="o-1")
    order.total.cents = 250
    values = [
        AvroSerializer(sr, V2)({"name": "ann", "id": 7, "email": "a@x"}, ctx),
        JSONSerializer(J1, sr)({"id": 1, "name": "p"}, ctx),
        ProtobufSerializer(Order, sr, {"use.deprecated.format": False})(order, ctx),
    ]
    produce_all(producer(broker.bootstrap), "mixed",
                [{"partition": 0, "key": avro_key, "value": v} for v in values])
    ids = [struct.unpack(">I", v[1:5])[0] for v in values]
    key_id = struct.unpack(">I", avro_key[1:5])[0]
    lines = console_consumer(broker, url, "mixed", 3, "print.key=true", "print.schema.ids=true")
    assert lines == [
        f'"k1"\t{key_id}\t{{"id":7,"name":"ann","email":"a@x"}}\t{ids[0]}',
        f'"k1"\t{key_id}\t{{"id":1,"name":"p"}}\t{ids[1]}',
        f'"k1"\t{key_id}\t{{"id":"o-1","total":{{"cents":"250"}}}}\t{ids[2]}',
    ], lines
    # Keys read by another deserializer are printed by it; ids only when asked.
    plain_keys = console_consumer(broker, url, "mixed", 1, "print.key=true",
                                  "key.deserializer=org.apache.kafka.common.serialization.ByteArrayDeserializer")
    assert plain_keys == [f'{avro_key.decode("latin-1")}\t{{"id":7,"name":"ann","email":"a@x"}}']


def test_the_console_decodes_records_through_the_registry(make_broker):
    import html
    import urllib.request
    admin_port, registry_port = free_port(), free_port()
    broker = make_broker(admin_listeners=f"http://127.0.0.1:{admin_port}",
                         schema_registry_listeners=f"http://127.0.0.1:{registry_port}")
    sr = SchemaRegistryClient({"url": f"http://127.0.0.1:{registry_port}"})
    create_topic(admin(broker.bootstrap), "shown", 1)
    ctx = SerializationContext("shown", MessageField.VALUE)
    value = AvroSerializer(sr, V1)({"id": 5, "name": "eve"}, ctx)
    # A JSON Schema key (shown-key, id 2) and a Protobuf value (id 3: message index 0, n = 5).
    shape = json.dumps({"type": "object", "properties": {"sides": {"type": "integer"}}})
    key = JSONSerializer(shape, sr)({"sides": 3}, SerializationContext("shown", MessageField.KEY))
    proto_id = sr.register_schema("shown-proto", Schema('syntax = "proto3";\nmessage Q { int32 n = 1; }\n',
                                                        "PROTOBUF"))
    proto_value = b"\x00" + struct.pack(">I", proto_id) + b"\x00" + b"\x08\x05"
    produce_all(producer(broker.bootstrap), "shown",
                [{"partition": 0, "key": b"plain key", "value": value},
                 {"partition": 0, "key": key, "value": proto_value}])
    url = f"http://127.0.0.1:{admin_port}/topics/shown/messages?partition=0&from=beginning&format=schema"
    with urllib.request.urlopen(url, timeout=30) as answer:
        page = html.unescape(answer.read().decode())
    # The value decoded (pretty JSON, its schema id); the key, not in the wire format, as text.
    assert '{\n  "id": 5,\n  "name": "eve"\n}' in page, page
    assert "schema 1" in page
    assert "plain key" in page and "(no schema id (not in Confluent's wire format))" in page
    # JSON Schema and Protobuf decode the same way.
    assert proto_id == 3
    assert '{\n  "sides": 3\n}' in page and "schema 2" in page, page
    assert '{\n  "n": 5\n}' in page and "schema 3" in page, page
