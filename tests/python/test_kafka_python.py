"""The same broker through kafka-python (pure Python client, api_version auto-detected)."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, codec
from kafka.errors import UnknownTopicOrPartitionError
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.structs import TopicPartition

from conftest import wait_until
from kafkautil import admin as confluent_admin
from kafkautil import produce_all, producer as confluent_producer, wait_for_partitions

TIMEOUT_MS = 15000
CODEC_AVAILABLE = {
    None: True,
    "gzip": codec.has_gzip(),
    "snappy": codec.has_snappy(),
    "lz4": codec.has_lz4(),
    "zstd": codec.has_zstd(),
}
CODEC_PACKAGE = {"snappy": "python-snappy", "lz4": "lz4", "zstd": "zstandard", "gzip": "gzip"}

# ConfigSource values in DescribeConfigs v1+.
DYNAMIC_TOPIC_CONFIG = 1
DEFAULT_CONFIG = 5


def kp_admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_MS)


def kp_producer(bootstrap: str, **kw) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_MS, **kw)


def kp_consumer(bootstrap: str, **kw) -> KafkaConsumer:
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=TIMEOUT_MS + 5000,
        **kw,
    )


def kp_create_topic(bootstrap: str, name: str, partitions: int) -> None:
    adm = kp_admin(bootstrap)
    try:
        resp = adm.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        assert [(t[0], t[1]) for t in resp.topic_errors] == [(name, 0)], resp
    finally:
        adm.close()
    wait_for_partitions(confluent_admin(bootstrap), name, partitions)


def kp_consume(bootstrap: str, tps: list[TopicPartition], count: int, timeout_s: float = 60.0):
    c = kp_consumer(bootstrap)
    try:
        c.assign(tps)
        c.seek_to_beginning()
        out = []
        deadline = time.monotonic() + timeout_s
        while len(out) < count:
            assert time.monotonic() < deadline, f"consumed {len(out)} of {count}"
            for recs in c.poll(timeout_ms=500).values():
                out.extend(recs)
        # Anything beyond `count` is a duplicate or a phantom record.
        for recs in c.poll(timeout_ms=300).values():
            out.extend(recs)
        return out
    finally:
        c.close()


@pytest.mark.parametrize("compression", [None, "gzip", "snappy", "lz4", "zstd"], ids=str)
def test_produce_consume_codec(broker, compression):
    if not CODEC_AVAILABLE[compression]:
        pytest.skip(f"kafka-python cannot import {CODEC_PACKAGE[compression]} for {compression}")
    topic = f"kp-codec-{compression}"
    kp_create_topic(broker.bootstrap, topic, 3)

    messages = [
        (
            f"k{i % 200}".encode(),
            f"kp-{compression}-{i}:".encode() + b"y" * (i % 250),
            [("i", str(i).encode()), ("dup", b"a"), ("dup", b"b")],
        )
        for i in range(2000)
    ]
    p = kp_producer(broker.bootstrap, compression_type=compression, linger_ms=5)
    try:
        futures = [p.send(topic, key=k, value=v, headers=h) for k, v, h in messages]
        p.flush(timeout=60)
        metas = [f.get(timeout=30) for f in futures]
    finally:
        p.close(timeout=10)

    parts_of_key: dict[bytes, set[int]] = {}
    for (k, _, _), md in zip(messages, metas):
        parts_of_key.setdefault(k, set()).add(md.partition)
    assert all(len(s) == 1 for s in parts_of_key.values())
    per_part: dict[int, list[int]] = {}
    for md in metas:
        per_part.setdefault(md.partition, []).append(md.offset)
    assert sorted(per_part) == [0, 1, 2]
    for part, offs in per_part.items():
        assert offs == list(range(len(offs))), f"partition {part}"

    got = kp_consume(broker.bootstrap, [TopicPartition(topic, p) for p in range(3)], 2000)
    assert len(got) == 2000
    by_pos = {(r.partition, r.offset): r for r in got}
    assert len(by_pos) == 2000
    for i, ((k, v, h), md) in enumerate(zip(messages, metas)):
        r = by_pos[(md.partition, md.offset)]
        assert (r.key, r.value, list(r.headers), r.timestamp_type, r.timestamp) == (
            k,
            v,
            h,
            0,
            md.timestamp,
        ), f"message {i}"


def test_murmur2_partitioner_agrees_with_librdkafka(broker):
    topic = "partitioning"
    kp_create_topic(broker.bootstrap, topic, 3)
    keys = [f"key-{i}".encode() for i in range(1000)]

    p = kp_producer(broker.bootstrap)
    try:
        futures = [p.send(topic, key=k, value=b"kp") for k in keys]
        p.flush(timeout=60)
        kp_parts = [f.get(timeout=30).partition for f in futures]
    finally:
        p.close(timeout=10)

    cp = confluent_producer(broker.bootstrap, partitioner="murmur2_random")
    reports = produce_all(cp, topic, [{"key": k, "value": b"ck"} for k in keys])
    ck_parts = [r.partition for r in reports]

    assert set(kp_parts) == {0, 1, 2}
    assert kp_parts == ck_parts


def describe_topic(adm: KafkaAdminClient, topic: str) -> dict[str, tuple]:
    """{name: (value, source)}; source is None for DescribeConfigs v0 (is_default only)."""
    (resp,) = adm.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    (res,) = resp.resources
    error_code, _msg, _rtype, rname, entries = res
    assert (error_code, rname) == (0, topic)
    out = {}
    for e in entries:
        if resp.API_VERSION >= 1:
            out[e[0]] = (e[1], e[3])
        else:
            out[e[0]] = (e[1], DEFAULT_CONFIG if e[3] else DYNAMIC_TOPIC_CONFIG)
    return out


def test_configs_list_delete(broker):
    topic = "kp-admin"
    kp_create_topic(broker.bootstrap, topic, 2)
    adm = kp_admin(broker.bootstrap)
    try:
        assert topic in adm.list_topics()
        cfg = describe_topic(adm, topic)
        assert cfg["retention.ms"] == ("604800000", DEFAULT_CONFIG)
        assert cfg["cleanup.policy"] == ("delete", DEFAULT_CONFIG)

        resp = adm.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "1234"})])
        assert [(r[0], r[3]) for r in resp.resources] == [(0, topic)], resp
        cfg = describe_topic(adm, topic)
        assert cfg["retention.ms"] == ("1234", DYNAMIC_TOPIC_CONFIG)
        assert cfg["cleanup.policy"] == ("delete", DEFAULT_CONFIG)

        resp = adm.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"no.such.config": "1"})]
        )
        assert [(r[0], r[3]) for r in resp.resources] == [(40, topic)], resp  # INVALID_CONFIG
        assert describe_topic(adm, topic)["retention.ms"] == ("1234", DYNAMIC_TOPIC_CONFIG)

        resp = adm.delete_topics([topic])
        assert [tuple(t[:2]) for t in resp.topic_error_codes] == [(topic, 0)], resp
        wait_until(lambda: topic not in adm.list_topics(), 15, f"{topic} to disappear")
        # kafka-python raises the per-topic error of a controller request.
        with pytest.raises(UnknownTopicOrPartitionError):
            adm.delete_topics([topic])
    finally:
        adm.close()


BASE_TS = 1_700_000_000_000


def test_offsets_for_times_beginning_end(broker):
    topic = "kp-times"
    kp_create_topic(broker.bootstrap, topic, 1)
    tp = TopicPartition(topic, 0)
    p = kp_producer(broker.bootstrap)
    try:
        futures = [
            p.send(topic, key=b"k", value=f"v{i}".encode(), partition=0, timestamp_ms=BASE_TS + i * 1000)
            for i in range(100)
        ]
        p.flush(timeout=30)
        assert [f.get(timeout=30).offset for f in futures] == list(range(100))
    finally:
        p.close(timeout=10)

    c = kp_consumer(broker.bootstrap)
    try:
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: 100}
        got = c.offsets_for_times({tp: BASE_TS + 41_500})[tp]
        assert (got.offset, got.timestamp) == (42, BASE_TS + 42_000)
        got = c.offsets_for_times({tp: BASE_TS - 5})[tp]
        assert (got.offset, got.timestamp) == (0, BASE_TS)
        assert c.offsets_for_times({tp: BASE_TS + 100_000})[tp] is None

        adm = kp_admin(broker.bootstrap)
        try:
            result = adm.delete_records({tp: 40})
            assert result[tp]["low_watermark"] == 40
        finally:
            adm.close()
        assert c.beginning_offsets([tp]) == {tp: 40}
        assert c.end_offsets([tp]) == {tp: 100}
        got = c.offsets_for_times({tp: BASE_TS + 10_000})[tp]
        assert (got.offset, got.timestamp) == (40, BASE_TS + 40_000)
    finally:
        c.close()
