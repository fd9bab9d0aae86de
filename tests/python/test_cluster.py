"""confluent-kafka against a three-node cluster started by `vltava dev-cluster`.

The admin client, the producer and the group consumer are each given one
different node to bootstrap from; partitions are spread over the three
brokers, and every message comes back exactly once with its key and value.
Confluent's SchemaRegistryClient gets the same ids, versions and schemas
from every node's registry.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import broker_binary, wait_until

READY_TIMEOUT_S = 60.0


class Nodes(list):
    """The nodes' bootstrap addresses, node 1 first, and each node's schema registry URL."""

    registries: list[str]


@pytest.fixture
def cluster(tmp_path):
    """Runs `vltava dev-cluster --nodes 3` on free ports; yields the three
    bootstrap addresses (with the registry URLs); stops it with SIGINT
    (Ctrl-C) and checks exit 0."""
    env = dict(os.environ)
    env.pop("RUST_LOG", None)
    proc = subprocess.Popen(
        [
            str(broker_binary()),
            "dev-cluster",
            "--nodes",
            "3",
            "--base-port",
            "0",
            "--dir",
            str(tmp_path / "cluster"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C"):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(READY_TIMEOUT_S), f"dev-cluster did not start: {lines}"
        bootstrap = next(l for l in lines if l.startswith("Bootstrap servers: "))
        nodes = Nodes(bootstrap.removeprefix("Bootstrap servers: ").split(","))
        nodes.registries = [l.split(" registry ")[1].split()[0] for l in lines if " registry http" in l]
        assert len(nodes.registries) == 3, lines
        yield nodes
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        assert code == 0, f"dev-cluster exited {code}: {proc.stderr.read()}"


def test_confluent_clients_through_different_nodes(cluster):
    node1, node2, node3 = cluster
    topic = "spread"
    admin = AdminClient({"bootstrap.servers": node2})
    futures = admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])
    futures[topic].result(timeout=30)

    def leaders():
        md = admin.list_topics(topic, timeout=10)
        parts = md.topics[topic].partitions
        return len(parts) == 6 and sorted(p.leader for p in parts.values())

    assert wait_until(leaders, 30, "six partitions with leaders") == [1, 1, 2, 2, 3, 3]
    assert sorted(admin.list_topics(timeout=10).brokers) == [1, 2, 3]

    producer = Producer({"bootstrap.servers": node3, "acks": "all", "enable.idempotence": True})
    delivered: dict[tuple[int, int], tuple[bytes, bytes]] = {}
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(err)
        else:
            delivered[(msg.partition(), msg.offset())] = (msg.key(), msg.value())

    for i in range(90):
        producer.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), on_delivery=report)
    assert producer.flush(30) == 0
    assert errors == []
    assert len(delivered) == 90
    assert len({p for p, _ in delivered}) > 1

    consumer = Consumer(
        {
            "bootstrap.servers": node1,
            "group.id": "cluster-python",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen: dict[tuple[int, int], tuple[bytes, bytes]] = {}
    deadline = time.monotonic() + 60
    while len(seen) < len(delivered):
        assert time.monotonic() < deadline, f"read {len(seen)} of {len(delivered)}"
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        key = (msg.partition(), msg.offset())
        assert key not in seen
        seen[key] = (msg.key(), msg.value())
    assert seen == delivered
    consumer.commit(asynchronous=False)
    committed = {tp.partition: tp.offset for tp in consumer.committed(consumer.assignment(), timeout=30)}
    ends: dict[int, int] = {}
    for p, o in delivered:
        ends[p] = max(ends.get(p, 0), o + 1)
    assert {p: o for p, o in committed.items() if o >= 0} == ends
    consumer.close()


def test_acks_all_survives_the_leader_being_killed(cluster, tmp_path):
    """An idempotent acks=all confluent-kafka producer writes to a topic with
    three replicas and min.insync.replicas=2 while the partition's leader is
    SIGKILLed: every acknowledged message is read back once, at the offset
    it was acknowledged at, in the order it was sent."""
    from confluent_kafka.admin import ConfigResource  # noqa: F401 (API presence)

    topic = "durable"
    admin = AdminClient({"bootstrap.servers": ",".join(cluster)})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=1, replication_factor=3, config={"min.insync.replicas": "2"})]
    )
    futures[topic].result(timeout=30)

    def partition():
        p = admin.list_topics(topic, timeout=10).topics[topic].partitions.get(0)
        return p if p is not None and p.leader >= 0 and sorted(p.isrs) == [1, 2, 3] else None

    leader = wait_until(partition, 30, "three in-sync replicas").leader
    acked: dict[str, int] = {}
    errors: list[str] = []

    def delivered(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            acked[msg.value().decode()] = msg.offset()

    producer = Producer(
        {
            "bootstrap.servers": ",".join(cluster),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 120000,
            "request.timeout.ms": 5000,
            "socket.timeout.ms": 10000,
        }
    )
    total = 4000
    killed = False
    for i in range(total):
        producer.produce(topic, value=f"m{i:06}".encode(), partition=0, on_delivery=delivered)
        producer.poll(0)
        if i == total // 2:
            producer.flush(60)
            pid = subprocess.run(
                ["pgrep", "-f", f"{tmp_path}/cluster/node-{leader}/data"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()[0]
            os.kill(int(pid), signal.SIGKILL)
            killed = True
    assert producer.flush(120) == 0, "messages left undelivered"
    assert killed
    assert errors == []
    assert len(acked) == total

    consumer = Consumer(
        {
            "bootstrap.servers": ",".join(cluster),
            "group.id": "durable-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen: list[tuple[int, str]] = []
    deadline = time.time() + 90
    while len(seen) < total and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        seen.append((msg.offset(), msg.value().decode()))
    consumer.close()
    assert len(seen) == total, f"read {len(seen)} of {total}"
    assert [v for _, v in seen] == [f"m{i:06}" for i in range(total)]
    assert {v: o for o, v in seen} == acked


def test_schema_registry_answers_the_same_through_every_node(cluster):
    """Registrations through different nodes' registries form one sequence of ids; records
    serialized through one node's registry are deserialized through another's; every node
    answers the same ids, versions and schemas."""
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    clients = [SchemaRegistryClient({"url": url}) for url in cluster.registries]
    person = json.dumps({"type": "record", "name": "Person", "namespace": "crew",
                         "fields": [{"name": "name", "type": "string"}, {"name": "age", "type": "int"}]})
    person2 = json.dumps({"type": "record", "name": "Person", "namespace": "crew",
                          "fields": [{"name": "name", "type": "string"}, {"name": "age", "type": "int"},
                                     {"name": "rank", "type": "string", "default": "crew"}]})
    shape = json.dumps({"type": "object", "properties": {"sides": {"type": "integer"}}})
    ids = [
        clients[1].register_schema("people-value", Schema(person, "AVRO")),
        clients[2].register_schema("shapes-value", Schema(shape, "JSON")),
        clients[0].register_schema("people-value", Schema(person2, "AVRO")),
    ]
    assert ids == [1, 2, 3]

    admin = AdminClient({"bootstrap.servers": cluster[0]})
    admin.create_topics([NewTopic("people", num_partitions=1, replication_factor=3)])["people"].result(timeout=30)
    serialize = AvroSerializer(clients[2], person2, conf={"auto.register.schemas": False,
                                                        "use.latest.version": True})
    producer = Producer({"bootstrap.servers": cluster[2], "acks": "all"})
    ctx = SerializationContext("people", MessageField.VALUE)
    sent = [{"name": "Ada", "age": 36, "rank": "captain"}, {"name": "Bo", "age": 7, "rank": "crew"}]
    for value in sent:
        producer.produce("people", value=serialize(value, ctx))
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": cluster[1], "group.id": "registry-readers",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe(["people"])
    deserialize = AvroDeserializer(clients[0])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 2 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            assert msg.value()[:5] == b"\x00" + struct.pack(">I", 3)
            got.append(deserialize(msg.value(), ctx))
    consumer.close()
    assert got == sent

    for n, url in enumerate(cluster.registries, start=1):
        fresh = SchemaRegistryClient({"url": url})  # no cache from the registrations above
        assert fresh.get_subjects() == ["people-value", "shapes-value"], n
        assert fresh.get_versions("people-value") == [1, 2], n
        latest = fresh.get_latest_version("people-value")
        assert (latest.schema_id, latest.version) == (3, 2), n
        assert json.loads(fresh.get_schema(1).schema_str) == json.loads(person), n
        assert fresh.get_schema(2).schema_type == "JSON", n
        assert fresh.lookup_schema("shapes-value", Schema(shape, "JSON")).schema_id == 2, n
