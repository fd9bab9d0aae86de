"""Small helpers shared by the confluent-kafka tests: produce with delivery reports,
consume assigned partitions until a count is reached, admin futures to error codes."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import wait_until

# Short client timeouts keep a misbehaving broker from stalling the suite.
ADMIN_TIMEOUT_S = 15.0
COMMON = {"socket.timeout.ms": 10000, "socket.connection.setup.timeout.ms": 5000}


@dataclass(frozen=True)
class Rec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple
    timestamp: int


def admin(bootstrap: str) -> AdminClient:
    # An AdminClient is a librdkafka producer underneath, whose metadata requests would
    # auto-create topics by default.
    return AdminClient({"bootstrap.servers": bootstrap, "allow.auto.create.topics": False, **COMMON})


def producer(bootstrap: str, **conf) -> Producer:
    base = {"bootstrap.servers": bootstrap, "message.timeout.ms": 20000, **COMMON}
    base.update({k.replace("_", "."): v for k, v in conf.items()})
    return Producer(base)


def consumer(bootstrap: str, **conf) -> Consumer:
    base = {
        "bootstrap.servers": bootstrap,
        # Groups do not exist yet: assign() with explicit offsets, never commit.
        "group.id": "vltava-python-tests-unused",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
        **COMMON,
    }
    base.update({k.replace("_", "."): v for k, v in conf.items()})
    return Consumer(base)


def watermarks(bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
    """(low, high) watermark offsets asked from the broker (ListOffsets), not cached."""
    c = consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()


def error_code(future, timeout_s: float = ADMIN_TIMEOUT_S):
    """Wait for an admin future; return None on success, else the KafkaError code."""
    try:
        future.result(timeout=timeout_s)
    except KafkaException as exc:
        return exc.args[0].code()
    return None


def create_topic(adm: AdminClient, name: str, partitions: int, config: dict | None = None) -> None:
    fut = adm.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=10,
        request_timeout=ADMIN_TIMEOUT_S,
    )[name]
    fut.result(timeout=ADMIN_TIMEOUT_S)
    wait_for_partitions(adm, name, partitions)


def wait_for_partitions(client, name: str, partitions: int, timeout_s: float = 15.0) -> None:
    """Wait until metadata shows `name` with exactly `partitions` partitions, each with a leader."""

    def ready():
        md = client.list_topics(timeout=5)  # all topics: never auto-creates
        t = md.topics.get(name)
        return (
            t is not None
            and t.error is None
            and sorted(t.partitions) == list(range(partitions))
            and all(p.leader >= 0 and p.error is None for p in t.partitions.values())
        )

    wait_until(ready, timeout_s, f"topic {name} with {partitions} partitions in metadata")


def produce_all(p: Producer, topic: str, messages, timeout_s: float = 60.0) -> list[Rec]:
    """Produce `messages` (dicts of produce() kwargs) and return the delivery reports, in order.

    Fails the test if any delivery report carries an error or flush times out.
    """
    reports: list = [None] * len(messages)
    errors: list = []

    def make_cb(i):
        def cb(err, msg):
            if err is not None:
                errors.append((i, err))
                return
            ts_type, ts = msg.timestamp()
            assert ts_type == TIMESTAMP_CREATE_TIME, (i, ts_type)
            reports[i] = Rec(
                msg.partition(),
                msg.offset(),
                msg.key(),
                msg.value(),
                tuple(msg.headers() or ()),
                ts,
            )

        return cb

    for i, m in enumerate(messages):
        while True:
            try:
                p.produce(topic, on_delivery=make_cb(i), **m)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(timeout_s)
    assert remaining == 0, f"{remaining} messages still undelivered after {timeout_s}s"
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:3]}"
    assert all(r is not None for r in reports)
    return reports


def consume_exact(
    bootstrap: str,
    assignments: list[TopicPartition],
    count: int,
    timeout_s: float = 60.0,
    **conf,
) -> list[Rec]:
    """Assign, read until exactly `count` records arrived, then check nothing more comes."""
    c = consumer(bootstrap, **conf)
    try:
        c.assign(assignments)
        out: list[Rec] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < count:
            assert time.monotonic() < deadline, f"consumed only {len(out)} of {count} in {timeout_s}s"
            for msg in c.consume(num_messages=1000, timeout=0.5):
                if msg.error() is not None:
                    raise AssertionError(f"consumer error: {msg.error()}")
                out.append(to_rec(msg))
        # A short extra poll: a broker that returns too much (duplicates, records past the
        # end) shows up here.
        extra_deadline = time.monotonic() + 0.5
        while time.monotonic() < extra_deadline:
            for msg in c.consume(num_messages=1000, timeout=0.2):
                assert msg.error() is None, f"consumer error: {msg.error()}"
                out.append(to_rec(msg))
        return out
    finally:
        c.close()


def to_rec(msg) -> Rec:
    ts_type, ts = msg.timestamp()
    assert ts_type == TIMESTAMP_CREATE_TIME, ts_type
    return Rec(
        msg.partition(),
        msg.offset(),
        msg.key(),
        msg.value(),
        tuple(msg.headers() or ()),
        ts,
    )


def assert_same_records(got: list[Rec], expected: list[Rec]) -> None:
    """Same records at the same (partition, offset); on mismatch name the first differing field."""
    got = sorted(got, key=lambda r: (r.partition, r.offset))
    expected = sorted(expected, key=lambda r: (r.partition, r.offset))
    for g, e in zip(got, expected):
        if g != e:
            fields = [f for f in ("partition", "offset", "key", "value", "headers", "timestamp")
                      if getattr(g, f) != getattr(e, f)]
            short = {f: (repr(getattr(g, f))[:80], repr(getattr(e, f))[:80]) for f in fields}
            raise AssertionError(f"record {e.partition}/{e.offset} differs (got, expected): {short}")
    assert len(got) == len(expected), f"got {len(got)} records, expected {len(expected)}"


def from_beginning(topic: str, partitions: int) -> list[TopicPartition]:
    return [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]


def assert_contiguous(reports: list[Rec]) -> dict[int, int]:
    """Offsets of each partition are exactly 0..n-1; returns {partition: n}."""
    by_part: dict[int, list[int]] = {}
    for r in reports:
        by_part.setdefault(r.partition, []).append(r.offset)
    for part, offsets in by_part.items():
        assert sorted(offsets) == list(range(len(offsets))), f"partition {part} offsets not 0..n-1"
    return {p: len(o) for p, o in by_part.items()}


__all__ = [
    "KafkaError",
    "Rec",
    "admin",
    "assert_contiguous",
    "assert_same_records",
    "consume_exact",
    "consumer",
    "create_topic",
    "error_code",
    "from_beginning",
    "produce_all",
    "producer",
    "to_rec",
    "wait_for_partitions",
    "watermarks",
]
