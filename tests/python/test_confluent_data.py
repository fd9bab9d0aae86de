"""Produce / fetch / list-offsets / delete-records through confluent-kafka (librdkafka)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import OffsetSpec

from kafkautil import (
    ADMIN_TIMEOUT_S,
    admin,
    assert_contiguous,
    consume_exact,
    consumer,
    create_topic,
    from_beginning,
    produce_all,
    producer,
    wait_for_partitions,
    watermarks,
)

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def keyed_messages(n: int, tag: str) -> list[dict]:
    msgs = []
    for i in range(n):
        headers = [("i", str(i).encode()), ("dup", b"1"), ("dup", b"2"), ("empty", b"")]
        if i % 7 == 0:
            headers.append(("null", None))
        msgs.append(
            {
                "key": f"k{i % 500}".encode(),
                # Every 1000th value is null; sizes vary so batches differ.
                "value": None if i % 1000 == 999 else f"{tag}-{i}:".encode() + b"x" * (i % 300),
                "headers": headers,
            }
        )
    return msgs


def check_round_trip(messages: list[dict], reports, consumed) -> None:
    """Consumed records equal what was produced, at the offsets the delivery reports gave."""
    assert len(consumed) == len(messages), (len(consumed), len(messages))
    by_pos = {(r.partition, r.offset): r for r in consumed}
    assert len(by_pos) == len(consumed), "duplicate (partition, offset) in consumed records"
    for i, (m, rep) in enumerate(zip(messages, reports)):
        got = by_pos.get((rep.partition, rep.offset))
        assert got is not None, f"message {i} at {rep.partition}/{rep.offset} not consumed"
        want_headers = tuple((k, v) for k, v in m["headers"])
        assert (got.key, got.value, got.headers, got.timestamp) == (
            m["key"],
            m["value"],
            want_headers,
            rep.timestamp,
        ), f"message {i}"


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_codec(broker, codec):
    topic = f"codec-{codec}"
    create_topic(admin(broker.bootstrap), topic, 3)
    messages = keyed_messages(10_000, codec)
    p = producer(broker.bootstrap, compression_type=codec, linger_ms=5)
    reports = produce_all(p, topic, messages)

    counts = assert_contiguous(reports)
    assert sorted(counts) == [0, 1, 2] and sum(counts.values()) == 10_000
    key_parts: dict[bytes, set[int]] = {}
    for m, r in zip(messages, reports):
        key_parts.setdefault(m["key"], set()).add(r.partition)
    assert len(key_parts) == 500
    assert all(len(parts) == 1 for parts in key_parts.values())
    # Within a partition, delivery order is produce order.
    for part in range(3):
        offs = [r.offset for r in reports if r.partition == part]
        assert offs == list(range(len(offs)))

    consumed = consume_exact(broker.bootstrap, from_beginning(topic, 3), 10_000)
    check_round_trip(messages, reports, consumed)

    lows_highs = {part: watermarks(broker.bootstrap, topic, part) for part in range(3)}
    assert lows_highs == {part: (0, counts[part]) for part in range(3)}


BASE_TS = 1_700_000_000_000
# Message 70 carries the largest timestamp, out of order, so that max_timestamp and
# "first offset with timestamp >= t" are not simply the last offset.
TIMESTAMPS = [BASE_TS + 500_000 if i == 70 else BASE_TS + i * 1000 for i in range(100)]


def produce_timestamped(bootstrap: str, topic: str):
    create_topic(admin(bootstrap), topic, 1)
    p = producer(bootstrap)
    msgs = [
        {"partition": 0, "key": f"k{i}".encode(), "value": f"v{i}".encode(), "timestamp": ts}
        for i, ts in enumerate(TIMESTAMPS)
    ]
    reports = produce_all(p, topic, msgs)
    assert [(r.offset, r.timestamp) for r in reports] == list(enumerate(TIMESTAMPS))


def test_list_offsets(broker):
    topic = "times"
    produce_timestamped(broker.bootstrap, topic)
    consumed = consume_exact(broker.bootstrap, [TopicPartition(topic, 0, 0)], 100)
    assert [(r.offset, r.timestamp) for r in consumed] == list(enumerate(TIMESTAMPS))

    c = consumer(broker.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False) == (0, 100)
        queries = {
            BASE_TS - 1: 0,
            BASE_TS: 0,
            BASE_TS + 41_000: 41,
            BASE_TS + 41_500: 42,
            BASE_TS + 80_500: 70,  # first offset at or after: 70 has ts BASE+500000
            BASE_TS + 500_000: 70,
            BASE_TS + 500_001: -1,  # none: Kafka answers offset -1
        }
        for ts, want in queries.items():
            got = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert len(got) == 1 and got[0].error is None, got
            assert got[0].offset == want, f"offsets_for_times({ts - BASE_TS:+})"
    finally:
        c.close()

    adm = admin(broker.bootstrap)
    tp = TopicPartition(topic, 0)
    specs = {
        "earliest": (OffsetSpec.earliest(), 0),
        "latest": (OffsetSpec.latest(), 100),
        "max_timestamp": (OffsetSpec.max_timestamp(), 70),
        "for_timestamp": (OffsetSpec.for_timestamp(BASE_TS + 41_500), 42),
    }
    for name, (spec, want) in specs.items():
        res = adm.list_offsets({tp: spec}, request_timeout=ADMIN_TIMEOUT_S)[tp].result(
            timeout=ADMIN_TIMEOUT_S
        )
        assert res.offset == want, name
        if name == "max_timestamp":
            assert res.timestamp == BASE_TS + 500_000
        if name == "for_timestamp":
            assert res.timestamp == BASE_TS + 42_000


def test_auto_create_on_produce(broker):
    p = producer(broker.bootstrap)
    reports = produce_all(p, "auto-made", [{"key": b"k", "value": b"hello", "headers": [("h", b"1")]}])
    assert [(r.partition, r.offset) for r in reports] == [(0, 0)]
    adm = admin(broker.bootstrap)
    wait_for_partitions(adm, "auto-made", 1)
    got = consume_exact(broker.bootstrap, [TopicPartition("auto-made", 0, 0)], 1)
    assert [(r.offset, r.key, r.value, r.headers) for r in got] == [(0, b"k", b"hello", (("h", b"1"),))]


def test_auto_create_uses_num_partitions(make_broker):
    b = make_broker(num_partitions=3)
    p = producer(b.bootstrap)
    produce_all(p, "auto-three", [{"value": b"x"}])
    wait_for_partitions(admin(b.bootstrap), "auto-three", 3)


def test_auto_create_disabled(make_broker):
    b = make_broker(auto_create_topics_enable="false")
    topic = "never-created"
    # topic.metadata.propagation.max.ms: librdkafka otherwise treats "unknown topic" as
    # possibly still propagating for 30 s and reports only a timeout.
    p = producer(b.bootstrap, message_timeout_ms=3000, topic_metadata_propagation_max_ms=500)

    md = p.list_topics(topic=topic, timeout=10)
    assert md.topics[topic].error is not None
    assert md.topics[topic].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART

    errors = []
    p.produce(topic, value=b"lost", on_delivery=lambda err, msg: errors.append(err))
    assert p.flush(15) == 0
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, errors[0]
    assert topic not in admin(b.bootstrap).list_topics(timeout=10).topics


def test_delete_records(broker):
    topic = "trim"
    create_topic(admin(broker.bootstrap), topic, 1)
    p = producer(broker.bootstrap)
    msgs = [{"partition": 0, "key": f"k{i}".encode(), "value": f"v{i}".encode()} for i in range(100)]
    reports = produce_all(p, topic, msgs)
    assert [r.offset for r in reports] == list(range(100))

    adm = admin(broker.bootstrap)
    tp = TopicPartition(topic, 0, 40)
    res = adm.delete_records([tp], request_timeout=ADMIN_TIMEOUT_S)
    (fut,) = res.values()
    assert fut.result(timeout=ADMIN_TIMEOUT_S).low_watermark == 40

    # Beyond the high watermark: OFFSET_OUT_OF_RANGE, and nothing changes.
    (fut,) = adm.delete_records([TopicPartition(topic, 0, 200)], request_timeout=ADMIN_TIMEOUT_S).values()
    with pytest.raises(Exception) as exc_info:
        fut.result(timeout=ADMIN_TIMEOUT_S)
    assert exc_info.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE

    assert watermarks(broker.bootstrap, topic, 0) == (40, 100)
    earliest = adm.list_offsets({TopicPartition(topic, 0): OffsetSpec.earliest()}, request_timeout=ADMIN_TIMEOUT_S)
    assert list(earliest.values())[0].result(timeout=ADMIN_TIMEOUT_S).offset == 40

    # Fetching below the log start: OFFSET_OUT_OF_RANGE, surfaced by librdkafka as
    # _AUTO_OFFSET_RESET when auto.offset.reset=error.
    c = consumer(broker.bootstrap, auto_offset_reset="error")
    try:
        c.assign([TopicPartition(topic, 0, 10)])
        deadline = time.monotonic() + 15
        err = None
        while err is None:
            assert time.monotonic() < deadline, "no OFFSET_OUT_OF_RANGE error for offset 10"
            msg = c.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is not None, f"got a record at offset {msg.offset()} below log start"
            err = msg.error()
        assert err.code() == KafkaError._AUTO_OFFSET_RESET, err
    finally:
        c.close()

    got = consume_exact(broker.bootstrap, [TopicPartition(topic, 0, 40)], 60)
    assert [(r.offset, r.key, r.value) for r in got] == [
        (i, f"k{i}".encode(), f"v{i}".encode()) for i in range(40, 100)
    ]


def test_idempotent_producer(broker):
    topic = "idem"
    create_topic(admin(broker.bootstrap), topic, 1)
    # Small batches so several are in flight at once (max.in.flight 5 with idempotence).
    p = producer(broker.bootstrap, enable_idempotence=True, batch_num_messages=20, linger_ms=1)
    msgs = [{"partition": 0, "key": f"k{i % 10}".encode(), "value": f"v{i}".encode()} for i in range(1000)]
    reports = produce_all(p, topic, msgs)
    assert [(r.partition, r.offset) for r in reports] == [(0, i) for i in range(1000)]

    got = consume_exact(broker.bootstrap, [TopicPartition(topic, 0, 0)], 1000)
    assert [(r.offset, r.key, r.value) for r in got] == [
        (i, f"k{i % 10}".encode(), f"v{i}".encode()) for i in range(1000)
    ]

    # A second idempotent producer session gets its own producer id and appends after.
    p2 = producer(broker.bootstrap, enable_idempotence=True)
    more = produce_all(p2, topic, [{"partition": 0, "value": b"again"}])
    assert [r.offset for r in more] == [1000]
    assert watermarks(broker.bootstrap, topic, 0) == (0, 1001)
