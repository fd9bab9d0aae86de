"""The same broker through aiokafka: an asyncio client with its own protocol code and old
request versions. 0.14.0 tops out at Produce v7, Fetch v11, ListOffsets v3 (no leader epoch
in the response), Metadata v5, FindCoordinator v1, JoinGroup v5, SyncGroup v3, Heartbeat v1,
LeaveGroup v1, OffsetCommit v3 and OffsetFetch v3. Each test runs its coroutine with
`asyncio.run` under a deadline."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import OffsetAndTimestamp, TopicPartition

from kafkautil import Rec, admin, create_topic

TIMEOUT_MS = 15000
TEST_DEADLINE_S = 90.0
CREATE_TIME = 0


def run(coro):
    """Run `coro` to completion, failing the test if it takes longer than the deadline."""
    return asyncio.run(asyncio.wait_for(coro, TEST_DEADLINE_S))


def aio_producer(bootstrap: str, **kw) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_MS, **kw)


def aio_consumer(bootstrap: str, *topics: str, **kw) -> AIOKafkaConsumer:
    settings = {
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "request_timeout_ms": TIMEOUT_MS + 5000,
        "fetch_max_wait_ms": 100,
    }
    settings.update(kw)
    return AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, **settings)


def to_rec(record) -> Rec:
    assert record.timestamp_type == CREATE_TIME, record
    return Rec(
        record.partition,
        record.offset,
        record.key,
        record.value,
        tuple(record.headers),
        record.timestamp,
    )


async def take(consumer: AIOKafkaConsumer, count: int, timeout_s: float = 30.0) -> list[Rec]:
    """Read until `count` records arrived, then poll once more so that a duplicate or a
    record past the end shows up; returns them sorted by (partition, offset)."""
    out: list[Rec] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < count:
        assert time.monotonic() < deadline, f"consumed {len(out)} of {count} in {timeout_s}s"
        for records in (await consumer.getmany(timeout_ms=500)).values():
            out.extend(to_rec(r) for r in records)
    for records in (await consumer.getmany(timeout_ms=300)).values():
        out.extend(to_rec(r) for r in records)
    return sorted(out, key=lambda r: (r.partition, r.offset))


async def send_all(bootstrap: str, topic: str, records: list[Rec]) -> None:
    """Produce each record to its partition with its key, value, headers and timestamp,
    one at a time, and check the offset the broker gave it."""
    producer = aio_producer(bootstrap)
    await producer.start()
    try:
        for r in records:
            meta = await producer.send_and_wait(
                topic,
                value=r.value,
                key=r.key,
                partition=r.partition,
                timestamp_ms=r.timestamp,
                headers=list(r.headers),
            )
            assert (meta.partition, meta.offset, meta.timestamp) == (
                r.partition,
                r.offset,
                r.timestamp,
            ), meta
    finally:
        await producer.stop()


def test_produce_consume_keyed_records_with_headers(broker):
    topic = "aiokafka-records"
    create_topic(admin(broker.bootstrap), topic, 2)
    now = int(time.time() * 1000)
    hdrs = (("trace", b"abc"), ("n", b"1"))
    records = [
        Rec(0, 0, b"k1", b"v1", hdrs, now),
        Rec(0, 1, b"k2", b"v2", hdrs, now + 1),
        Rec(0, 2, b"k3", None, hdrs, now + 2),  # a null value (tombstone)
        Rec(1, 0, b"k4", b"v4", (), now + 3),
    ]

    async def scenario():
        await send_all(broker.bootstrap, topic, records)
        consumer = aio_consumer(broker.bootstrap)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            return await take(consumer, len(records))
        finally:
            await consumer.stop()

    assert run(scenario()) == records


def test_group_commit_and_resume_at_committed_offset(make_broker):
    broker = make_broker(group_initial_rebalance_delay_ms="0")
    topic, group = "aiokafka-group", "aiokafka-group-1"
    create_topic(admin(broker.bootstrap), topic, 2)
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    now = int(time.time() * 1000)
    hdrs = (("h", b"x"),)
    first = [Rec(0, i, b"a%d" % i, b"x%d" % i, hdrs, now + i) for i in range(3)]
    first += [Rec(1, i, b"b%d" % i, b"y%d" % i, hdrs, now + 10 + i) for i in range(2)]
    second = [Rec(0, 3, b"a3", b"x3", hdrs, now + 20), Rec(1, 2, b"b2", b"y2", hdrs, now + 21)]

    async def member_reads(count: int, commit: dict[TopicPartition, int]) -> list[Rec]:
        """One group member: subscribe, read `count` records, commit `commit`, leave."""
        consumer = aio_consumer(broker.bootstrap, topic, group_id=group)
        await consumer.start()
        try:
            got = await take(consumer, count)
            await consumer.commit(commit)
            assert {tp: await consumer.committed(tp) for tp in (tp0, tp1)} == commit
            return got
        finally:
            await consumer.stop()

    async def scenario():
        await send_all(broker.bootstrap, topic, first)
        # Commit less than was read on partition 0: the next member must start there.
        got = await member_reads(len(first), {tp0: 2, tp1: 2})
        assert got == first
        await send_all(broker.bootstrap, topic, second)
        got = await member_reads(3, {tp0: 4, tp1: 3})
        assert got == [first[2], second[0], second[1]]

    run(scenario())


def test_offsets_for_times_and_bounds(broker):
    topic = "aiokafka-times"
    create_topic(admin(broker.bootstrap), topic, 1)
    tp = TopicPartition(topic, 0)
    base = int(time.time() * 1000) - 60_000

    async def scenario():
        producer = aio_producer(broker.bootstrap)
        await producer.start()
        try:
            # Offsets 0-2 in one batch (lookups inside a batch), 3 and 4 one batch each.
            batch = producer.create_batch()
            for i in range(3):
                assert batch.append(key=b"t%d" % i, value=b"v", timestamp=base + i * 1000)
            await (await producer.send_batch(batch, topic, partition=0))
            for i in (3, 4):
                meta = await producer.send_and_wait(
                    topic, key=b"t%d" % i, value=b"v", partition=0, timestamp_ms=base + i * 1000
                )
                assert (meta.offset, meta.timestamp) == (i, base + i * 1000), meta
        finally:
            await producer.stop()

        consumer = aio_consumer(broker.bootstrap)
        await consumer.start()
        try:
            assert await consumer.beginning_offsets([tp]) == {tp: 0}
            assert await consumer.end_offsets([tp]) == {tp: 5}
            cases = [
                (0, 0, base),
                (base, 0, base),
                (base + 500, 1, base + 1000),
                (base + 2000, 2, base + 2000),
                (base + 2500, 3, base + 3000),
                (base + 4000, 4, base + 4000),
            ]
            for ts, offset, found_ts in cases:
                got = await consumer.offsets_for_times({tp: ts})
                assert got == {tp: OffsetAndTimestamp(offset, found_ts)}, (ts, got)
            # Past the last record there is no such offset.
            assert await consumer.offsets_for_times({tp: base + 4001}) == {tp: None}

            consumer.assign([tp])
            consumer.seek(tp, 3)
            got = await take(consumer, 2)
            assert [(r.offset, r.key, r.timestamp) for r in got] == [
                (3, b"t3", base + 3000),
                (4, b"t4", base + 4000),
            ]
        finally:
            await consumer.stop()

    run(scenario())
