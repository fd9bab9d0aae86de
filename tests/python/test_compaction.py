"""Log compaction with a real client (confluent-kafka / librdkafka).

A compacted topic with small segments gets many versions of 1,000 keys plus tombstones;
the broker's cleaner (every `log.cleaner.backoff.ms`) must leave exactly one record per
live key, with its latest value, at the offset the producer was told, and drop the
tombstones once `delete.retention.ms` has passed. Compressed batches are decompressed and
recompressed with their codec. A SIGKILL in the middle of cleaning must leave a log that
recovers to the same result.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, TopicPartition

from conftest import wait_until
from kafkautil import admin, consumer, create_topic, produce_all, producer, watermarks

KEYS = 1_000
VERSIONS = 5
MARKER_KEY = b"~marker"
TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.bytes": "4096",
    # Record-time roll: the marker (timestamped a minute ahead) closes the last data
    # segment, so everything but the marker is cleanable.
    "segment.ms": "30000",
    # Low enough that a last data segment of one small batch is still cleaned: at 0.01
    # a tail of five snappy records (~0.7% of the log) once stayed dirty and the run
    # waited for a cleaning that the ratio rightly never started.
    "min.cleanable.dirty.ratio": "0.001",
    "delete.retention.ms": "2000",
}


def key(i: int) -> bytes:
    return f"key-{i:04d}".encode()


def messages(versions: int = VERSIONS) -> list[dict]:
    """Every key once per version; in the last version every seventh key is deleted."""
    out = []
    for v in range(versions):
        for i in range(KEYS):
            tombstone = v == versions - 1 and i % 7 == 0
            value = None if tombstone else f"value-{v}-{i}-{'x' * 20}".encode()
            out.append({"key": key(i), "value": value})
    return out


def produce_versions(bootstrap: str, topic: str, compression: str):
    """Produces the versions and a marker. Returns key -> (offset, value) of the latest,
    and every produced record as (offset, key, value)."""
    # Small batches: many of them per 4 KiB segment, so segments hold a mix of versions.
    p = producer(bootstrap, compression_type=compression, batch_num_messages=25, linger_ms=5)
    reports = produce_all(p, topic, messages())
    ahead_ms = int(time.time() * 1000) + 60_000
    (marker,) = produce_all(p, topic, [{"key": MARKER_KEY, "value": b"m", "timestamp": ahead_ms}])
    latest: dict[bytes, tuple[int, bytes | None]] = {}
    for r in reports + [marker]:
        latest[r.key] = (r.offset, r.value)
    return latest, {(r.offset, r.key, r.value) for r in reports + [marker]}


def read_all(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[tuple[int, bytes, bytes | None]]:
    """Every record from the log start to the high watermark: (offset, key, value)."""
    _, high = watermarks(bootstrap, topic, 0)
    c = consumer(bootstrap)
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        out = []
        deadline = time.monotonic() + timeout_s
        while not out or out[-1][0] < high - 1:
            assert time.monotonic() < deadline, f"read up to {out[-1][0] if out else None} of {high}"
            for msg in c.consume(num_messages=1000, timeout=0.5):
                assert msg.error() is None, f"consumer error: {msg.error()}"
                out.append((msg.offset(), msg.key(), msg.value()))
        return out
    finally:
        c.close()


def expected(latest: dict[bytes, tuple[int, bytes | None]]) -> list[tuple[int, bytes, bytes | None]]:
    """One record per live key at its latest offset; tombstones gone."""
    return sorted((o, k, v) for k, (o, v) in latest.items() if v is not None)


def wait_compacted(bootstrap: str, topic: str, want, timeout_s: float = 60.0):
    wait_until(lambda: read_all(bootstrap, topic) == want, timeout_s, "the fully compacted log")


def nonempty_batch_codecs(segment: bytes) -> set[int]:
    """The codec bits of every batch in `segment` that holds records."""
    codecs, pos = set(), 0
    while pos + 61 <= len(segment):
        length = int.from_bytes(segment[pos + 8 : pos + 12], "big")
        attributes = int.from_bytes(segment[pos + 21 : pos + 23], "big")
        records = int.from_bytes(segment[pos + 57 : pos + 61], "big")
        if records > 0:
            codecs.add(attributes & 0x07)
        pos += 12 + length
    return codecs


def partition_dir(broker, topic: str) -> Path:
    return broker.data_dir / f"{topic}-0"


@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_compaction_keeps_the_latest_value_per_key(make_broker, compression):
    broker = make_broker(log_cleaner_backoff_ms="200")
    topic = f"compacted-{compression}"
    create_topic(admin(broker.bootstrap), topic, 1, TOPIC_CONFIG)
    latest, _ = produce_versions(broker.bootstrap, topic, compression)
    produced_offsets = max(o for o, _ in latest.values()) + 1
    assert produced_offsets == KEYS * VERSIONS + 1

    want = expected(latest)
    wait_compacted(broker.bootstrap, topic, want)
    got = read_all(broker.bootstrap, topic)
    assert len(got) == KEYS - len(range(0, KEYS, 7)) + 1
    assert len({k for _, k, _ in got}) == len(got)
    low, high = watermarks(broker.bootstrap, topic, 0)
    assert (low, high) == (0, produced_offsets)

    # The batches on disk kept their codec. librdkafka sends a batch uncompressed when
    # compressing would not make it smaller, so some batches may carry no codec; every
    # other batch with records must still carry the producer's.
    codec_ids = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
    codecs = set()
    for segment in partition_dir(broker, topic).glob("*.log"):
        codecs |= nonempty_batch_codecs(segment.read_bytes())
    assert codec_ids[compression] in codecs
    assert codecs <= {0, codec_ids[compression]}

    # Restarting reads back the same compacted log.
    broker.restart()
    assert read_all(broker.bootstrap, topic) == want


def test_keyless_records_are_rejected_on_compacted_topics(make_broker):
    broker = make_broker()
    create_topic(admin(broker.bootstrap), "compacted", 1, {"cleanup.policy": "compact"})
    p = producer(broker.bootstrap)
    errors = []
    p.produce("compacted", value=b"no key", on_delivery=lambda err, msg: errors.append(err))
    assert p.flush(20) == 0
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() == KafkaError.INVALID_RECORD, errors[0]
    low, high = watermarks(broker.bootstrap, "compacted", 0)
    assert (low, high) == (0, 0)


def test_sigkill_during_cleaning_recovers_to_the_same_result(make_broker):
    # Throttled so that a pass takes seconds and the kill lands inside it.
    broker = make_broker(
        log_cleaner_backoff_ms="200",
        overrides={"log.cleaner.io.max.bytes.per.second": "100000"},
    )
    topic = "compacted"
    create_topic(admin(broker.bootstrap), topic, 1, TOPIC_CONFIG)
    latest, original = produce_versions(broker.bootstrap, topic, "lz4")
    pdir = partition_dir(broker, topic)

    def cleaning_in_progress():
        return any(p.suffix in (".cleaned", ".swap", ".deleted") for p in pdir.iterdir())

    wait_until(cleaning_in_progress, 60.0, "a cleaning pass in progress", interval_s=0.005)
    broker.stop(signal.SIGKILL)
    leftovers = sorted(p.name for p in pdir.iterdir() if p.suffix in (".cleaned", ".swap", ".deleted"))

    broker.overrides["log.cleaner.io.max.bytes.per.second"] = "1.7976931348623157E308"
    broker.start()
    # Right after recovery the log is consistent, whatever the cleaner had done: every
    # record is one that was produced, at its offset, and every key's latest value is there.
    got = read_all(broker.bootstrap, topic)
    for record in got:
        assert record in original, (record, leftovers)
    present = set(got)
    for k, (offset, value) in latest.items():
        assert (offset, k, value) in present or value is None, (k, leftovers)
    wait_compacted(broker.bootstrap, topic, expected(latest))
