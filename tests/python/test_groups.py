"""Consumer groups against the real broker: classic protocol (confluent-kafka and
kafka-python), static membership, cooperative-sticky, KIP-848 (`group.protocol=consumer`),
committed offsets across broker restarts, and the group admin APIs.

Members that must crash run in their own process (SIGKILL, no LeaveGroup) and publish
their assignment to a JSON file that the test polls. Every wait has a deadline; the only
fixed-length waits are quiet periods that check that something does NOT happen.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import (
    OFFSET_INVALID,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    ConsumerGroupType,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from conftest import wait_until
from kafkautil import COMMON, admin, create_topic, error_code, produce_all, producer

TOPIC = "orders"
PARTITIONS = 6
# Short timeouts keep rebalances quick: a crashed member is dropped after SESSION_MS.
SESSION_MS = 3000
HEARTBEAT_MS = 300
GROUP_BROKER = {
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "1000",
    "group.consumer.heartbeat.interval.ms": "500",
    "group.consumer.session.timeout.ms": str(SESSION_MS),
}
# A crashed member must be gone after its session timeout; the margin covers the
# survivors' heartbeat, rejoin and sync on a loaded 2-core CI machine.
REBALANCE_DEADLINE_S = SESSION_MS / 1000 + 10
ASSIGN_DEADLINE_S = 20.0


@pytest.fixture
def gbroker(make_broker):
    return make_broker(overrides=GROUP_BROKER)


def group_consumer(bootstrap: str, group: str, **conf) -> Consumer:
    base = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "session.timeout.ms": SESSION_MS,
        "heartbeat.interval.ms": HEARTBEAT_MS,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 100,
        **COMMON,
    }
    # Callbacks keep their names; config keys use '_' for '.'.
    base.update({(k if k == "on_commit" else k.replace("_", ".")): v for k, v in conf.items()})
    if base.get("group.protocol") == "consumer":
        # KIP-848: the broker owns the session and heartbeat timing.
        base.pop("session.timeout.ms")
        base.pop("heartbeat.interval.ms")
    return Consumer(base)


def parts(tps) -> list[int]:
    return sorted(tp.partition for tp in tps)


def poll_all(consumers, predicate, timeout_s: float, what: str):
    """Serve every consumer's poll loop (callbacks run there) until `predicate()` holds."""

    def step():
        for c in consumers:
            msg = c.poll(0.02)
            if msg is not None and msg.error() is not None:
                code = msg.error().code()
                assert code == KafkaError._PARTITION_EOF, f"consumer error: {msg.error()}"
        return predicate()

    return wait_until(step, timeout_s, what, interval_s=0.0)


def quiet(consumers, seconds: float) -> None:
    """Keep the consumers polling for `seconds`: a period in which nothing may change."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for c in consumers:
            c.poll(0.02)


def assert_partitioned(assignments: list[list[int]], partitions: int, each: int | None) -> None:
    """Every partition assigned to exactly one member; `each` partitions per member if given."""
    flat = [p for a in assignments for p in a]
    assert sorted(flat) == list(range(partitions)), f"not a partitioning: {assignments}"
    if each is not None:
        assert [len(a) for a in assignments] == [each] * len(assignments), assignments


def balanced(assignments: list[list[int]], partitions: int, each: int) -> bool:
    flat = [p for a in assignments for p in a]
    return sorted(flat) == list(range(partitions)) and all(len(a) == each for a in assignments)


def make_topic(bootstrap: str, name: str = TOPIC, partitions: int = PARTITIONS):
    adm = admin(bootstrap)
    create_topic(adm, name, partitions)
    return adm


def produce_per_partition(bootstrap: str, topic: str, partitions: int, count: int, tag: str = ""):
    """`count` records to each partition; values name (partition, index). Returns reports."""
    p = producer(bootstrap)
    msgs = [
        {"partition": part, "key": f"k{part}".encode(), "value": f"{tag}{part}-{i}".encode()}
        for i in range(count)
        for part in range(partitions)
    ]
    return produce_all(p, topic, msgs)


def records(msgs) -> list:
    """(partition, offset, value) of each message; end-of-partition events are skipped."""
    out = []
    for m in msgs:
        if m.error() is not None:
            assert m.error().code() == KafkaError._PARTITION_EOF, f"consumer error: {m.error()}"
            continue
        out.append((m.partition(), m.offset(), m.value()))
    return out


def consume_n(c: Consumer, n: int, timeout_s: float = ASSIGN_DEADLINE_S) -> list:
    """Exactly `n` messages as (partition, offset, value), then a quiet check for extras."""
    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n:
        assert time.monotonic() < deadline, f"consumed {len(out)} of {n}: {out[:5]}"
        out += records(c.consume(num_messages=500, timeout=0.2))
    out += records(c.consume(num_messages=500, timeout=0.5))
    assert len(out) == n, f"expected exactly {n} messages, got {len(out)}"
    return out


# ---------------------------------------------------------------------------------------
# Members in their own process, so they can be SIGKILLed (no LeaveGroup is sent).

MEMBER_SCRIPT = r"""
import json, os, sys, time
client, bootstrap, group, topic, out, conf = sys.argv[1:7]
conf = json.loads(conf)

def publish(assignment, rebalances):
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"assignment": sorted(assignment), "rebalances": rebalances, "pid": os.getpid()}, f)
    os.replace(tmp, out)

if client == "confluent":
    from confluent_kafka import Consumer
    rebalances = [0]
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, **conf})
    def on_assign(consumer, tps):
        rebalances[0] += 1
    c.subscribe([topic], on_assign=on_assign)
    last = None
    while True:
        c.poll(0.05)
        now = [tp.partition for tp in c.assignment()]
        if (now, rebalances[0]) != last:
            last = (now, rebalances[0])
            publish(now, rebalances[0])
else:
    from kafka import KafkaConsumer
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, **conf)
    last = None
    while True:
        c.poll(timeout_ms=50)
        now = [tp.partition for tp in c.assignment()]
        if now != last:
            last = now
            publish(now, 0)
"""


class Member:
    def __init__(self, client: str, bootstrap: str, group: str, topic: str, out: Path, conf: dict):
        self.out = out
        if out.exists():
            out.unlink()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", MEMBER_SCRIPT, client, bootstrap, group, topic, str(out),
             json.dumps(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(str(out) + ".stderr", "ab"),
        )

    def assignment(self) -> list[int] | None:
        assert self.proc.poll() is None, f"member exited with {self.proc.returncode}"
        try:
            return json.loads(self.out.read_text())["assignment"]
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill()


def member_conf(client: str) -> dict:
    if client == "confluent-kip848":
        # Session and heartbeat come from the broker (group.consumer.*).
        return {"group.protocol": "consumer", "socket.timeout.ms": 10000}
    if client == "confluent":
        return {
            "session.timeout.ms": SESSION_MS,
            "heartbeat.interval.ms": HEARTBEAT_MS,
            "partition.assignment.strategy": "range",
            "socket.timeout.ms": 10000,
        }
    return {
        "session_timeout_ms": SESSION_MS,
        "heartbeat_interval_ms": HEARTBEAT_MS,
        "request_timeout_ms": 10000,
        "enable_auto_commit": False,
    }


@pytest.mark.parametrize("client", ["confluent", "kafka-python", "confluent-kip848"])
def test_three_members_crash_and_rejoin(gbroker, tmp_path, client):
    make_topic(gbroker.bootstrap)
    group = f"three-{client}"
    conf = member_conf(client)
    kind = "kafka-python" if client == "kafka-python" else "confluent"
    files = [tmp_path / f"member{i}.json" for i in range(3)]
    members = [Member(kind, gbroker.bootstrap, group, TOPIC, f, conf) for f in files]
    try:

        def assignments(ms):
            a = [m.assignment() for m in ms]
            return a if all(x is not None for x in a) else None

        def is_balanced(ms, each):
            a = assignments(ms)
            return a is not None and balanced(a, PARTITIONS, each)

        wait_until(lambda: is_balanced(members, 2), ASSIGN_DEADLINE_S, "2/2/2 assignment")
        before = assignments(members)
        assert_partitioned(before, PARTITIONS, 2)

        # Crash member 1: no LeaveGroup, so only its session timeout frees its partitions.
        crashed_at = time.monotonic()
        members[1].kill()
        survivors = [members[0], members[2]]
        wait_until(lambda: is_balanced(survivors, 3), REBALANCE_DEADLINE_S,
                   "the crashed member's partitions to move to the survivors")
        took = time.monotonic() - crashed_at
        after = assignments(survivors)
        assert_partitioned(after, PARTITIONS, 3)
        # Not before the session timeout: the crashed member was not heard from, but the
        # broker must not have dropped it before its session expired.
        assert took >= SESSION_MS / 1000 * 0.8, f"rebalanced after {took:.2f}s < session timeout"

        # Start it again: back to 2/2/2.
        members[1] = Member(kind, gbroker.bootstrap, group, TOPIC, files[1], conf)
        wait_until(lambda: is_balanced(members, 2), REBALANCE_DEADLINE_S, "rebalance back to 2/2/2")
        assert_partitioned(assignments(members), PARTITIONS, 2)
    finally:
        for m in members:
            m.stop()


# ---------------------------------------------------------------------------------------
# Committed offsets survive broker restarts.

COMMIT_TOPIC = "ledger"
COMMIT_PARTS = 3
PER_PART = 20


def committed_map(c: Consumer, topic: str, partitions: int) -> dict[int, int]:
    got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    for tp in got:
        assert tp.error is None, tp.error
    return {tp.partition: tp.offset for tp in got}


def test_mixed_clients_share_one_group(gbroker, tmp_path):
    """A librdkafka member and a kafka-python member agree on one classic group."""
    adm = make_topic(gbroker.bootstrap)
    members = [
        Member("confluent", gbroker.bootstrap, "mixed", TOPIC, tmp_path / "c.json",
               member_conf("confluent")),
        Member("kafka-python", gbroker.bootstrap, "mixed", TOPIC, tmp_path / "k.json",
               member_conf("kafka-python")),
    ]
    try:
        def ok():
            a = [m.assignment() for m in members]
            return None not in a and balanced(a, PARTITIONS, 3)

        wait_until(ok, ASSIGN_DEADLINE_S, "3/3 across both clients")
        desc = adm.describe_consumer_groups(["mixed"])["mixed"].result(10)
        assert desc.partition_assignor == "range"
        assert len(desc.members) == 2
    finally:
        for m in members:
            m.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_commit_restart_resume(gbroker, sig):
    bs = gbroker.bootstrap
    make_topic(bs, COMMIT_TOPIC, COMMIT_PARTS)
    produce_per_partition(bs, COMMIT_TOPIC, COMMIT_PARTS, PER_PART)
    total = COMMIT_PARTS * PER_PART
    # Target offsets each group commits before the restart (distinct per partition).
    manual = {0: 5, 1: 12, 2: 20}
    expected = {}

    # 1. Manual synchronous commit of explicit offsets.
    c = group_consumer(bs, "g-sync")
    c.subscribe([COMMIT_TOPIC])
    consume_n(c, total)
    c.commit(offsets=[TopicPartition(COMMIT_TOPIC, p, o) for p, o in manual.items()],
             asynchronous=False)
    assert committed_map(c, COMMIT_TOPIC, COMMIT_PARTS) == manual
    c.close()
    expected["g-sync"] = manual

    # 2. Asynchronous commit of the consumed position, confirmed by on_commit.
    results = []
    c = group_consumer(bs, "g-async", on_commit=lambda err, tps: results.append((err, tps)))
    c.subscribe([COMMIT_TOPIC])
    got = consume_n(c, total)
    assert len(got) == total
    c.commit(asynchronous=True)
    poll_all([c], lambda: results, 10, "on_commit")
    err, tps = results[0]
    assert err is None, err
    assert {tp.partition: tp.offset for tp in tps} == {p: PER_PART for p in range(COMMIT_PARTS)}
    c.close()
    expected["g-async"] = {p: PER_PART for p in range(COMMIT_PARTS)}

    # 3. Auto-commit: whatever was consumed is committed (at the latest on close).
    c = group_consumer(bs, "g-auto", enable_auto_commit=True, auto_commit_interval_ms=200)
    c.subscribe([COMMIT_TOPIC])
    consume_n(c, total)
    c.close()
    expected["g-auto"] = {p: PER_PART for p in range(COMMIT_PARTS)}

    # 4. kafka-python, synchronous commit of explicit offsets with metadata.
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    from kafka.structs import OffsetAndMetadata

    kc = KafkaConsumer(bootstrap_servers=bs, group_id="g-kp", enable_auto_commit=False,
                       session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS,
                       request_timeout_ms=10000)
    kp_offsets = {0: 1, 1: 2, 2: 3}
    kc.commit({KTP(COMMIT_TOPIC, p): OffsetAndMetadata(o, "kp", -1) for p, o in kp_offsets.items()})
    kc.close()
    expected["g-kp"] = kp_offsets

    gbroker.restart(sig)

    # New records after the restart: each group must see them after its committed ones.
    produce_per_partition(bs, COMMIT_TOPIC, COMMIT_PARTS, 2, tag="after-")
    end = PER_PART + 2
    for group, commits in expected.items():
        # `latest` would skip everything if the committed offsets had been lost.
        c = group_consumer(bs, group, auto_offset_reset="latest")
        try:
            c.subscribe([COMMIT_TOPIC])
            n = sum(end - o for o in commits.values())
            got = consume_n(c, n)
            by_part = {}
            for part, off, _ in got:
                by_part.setdefault(part, []).append(off)
            for p, o in commits.items():
                assert sorted(by_part.get(p, [])) == list(range(o, end)), (group, p, by_part.get(p))
        finally:
            c.close()


@pytest.mark.parametrize("reset", ["earliest", "latest", "error"])
def test_auto_offset_reset_without_committed_offsets(gbroker, reset):
    bs = gbroker.bootstrap
    make_topic(bs, COMMIT_TOPIC, COMMIT_PARTS)
    produce_per_partition(bs, COMMIT_TOPIC, COMMIT_PARTS, 4)
    c = group_consumer(bs, f"fresh-{reset}", auto_offset_reset=reset,
                       enable_partition_eof=(reset == "latest"))
    try:
        c.subscribe([COMMIT_TOPIC])
        if reset == "earliest":
            got = consume_n(c, COMMIT_PARTS * 4)
            assert sorted((p, o) for p, o, _ in got) == [
                (p, o) for p in range(COMMIT_PARTS) for o in range(4)]
        elif reset == "latest":
            # A partition-EOF event at offset 4 means the position was reset to the log end.
            eof = {}

            def at_end():
                for m in c.consume(num_messages=10, timeout=0.1):
                    assert m.error() is not None, f"old message at {m.partition()}/{m.offset()}"
                    assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                    eof[m.partition()] = m.offset()
                return len(eof) == COMMIT_PARTS

            wait_until(at_end, ASSIGN_DEADLINE_S, "end of every partition", interval_s=0.0)
            assert eof == {p: 4 for p in range(COMMIT_PARTS)}
            produce_per_partition(bs, COMMIT_TOPIC, COMMIT_PARTS, 1, tag="new-")
            got = consume_n(c, COMMIT_PARTS)
            assert sorted((p, o, v) for p, o, v in got) == [
                (p, 4, f"new-{p}-0".encode()) for p in range(COMMIT_PARTS)]
        else:
            errors = []

            def reset_error():
                for m in c.consume(num_messages=10, timeout=0.2):
                    assert m.error() is not None, f"got a message at {m.partition()}/{m.offset()}"
                    errors.append(m.error().code())
                return len(errors) >= COMMIT_PARTS

            wait_until(reset_error, ASSIGN_DEADLINE_S, "auto offset reset errors")
            assert set(errors) == {KafkaError._AUTO_OFFSET_RESET}, errors
    finally:
        c.close()


def test_kafka_python_auto_offset_reset_none(gbroker):
    from kafka import KafkaConsumer
    from kafka.errors import NoOffsetForPartitionError

    bs = gbroker.bootstrap
    make_topic(bs, COMMIT_TOPIC, 1)
    produce_per_partition(bs, COMMIT_TOPIC, 1, 3)
    kc = KafkaConsumer(COMMIT_TOPIC, bootstrap_servers=bs, group_id="kp-none",
                       auto_offset_reset="none", enable_auto_commit=False,
                       session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS,
                       request_timeout_ms=10000)
    try:
        deadline = time.monotonic() + ASSIGN_DEADLINE_S
        with pytest.raises(NoOffsetForPartitionError):
            while time.monotonic() < deadline:
                got = kc.poll(timeout_ms=200)
                assert not got, f"records without a committed offset: {got}"
    finally:
        kc.close()


# ---------------------------------------------------------------------------------------
# Static membership (KIP-345).


def test_static_member_restart_causes_no_rebalance(gbroker):
    bs = gbroker.bootstrap
    adm = make_topic(bs)
    group = "static"
    assigns = [0, 0, 0]

    def counter(i):
        def on_assign(_c, _tps):
            assigns[i] += 1
        return on_assign

    def start(i):
        c = group_consumer(bs, group, group_instance_id=f"instance-{i}",
                           session_timeout_ms=10000, partition_assignment_strategy="range")
        c.subscribe([TOPIC], on_assign=counter(i))
        return c

    cs = [start(i) for i in range(3)]
    try:
        poll_all(cs, lambda: balanced([parts(c.assignment()) for c in cs], PARTITIONS, 2),
                 ASSIGN_DEADLINE_S, "2/2/2")
        quiet(cs, 1.0)  # let any trailing rebalance of the initial join settle
        before = [parts(c.assignment()) for c in cs]
        assert_partitioned(before, PARTITIONS, 2)
        counts = list(assigns)
        desc = adm.describe_consumer_groups([group])[group].result(10)
        ids_before = {m.group_instance_id: m.member_id for m in desc.members}
        assert sorted(ids_before) == ["instance-0", "instance-1", "instance-2"]

        # A static member closes without LeaveGroup and comes back well within 10 s.
        cs[1].close()
        cs[1] = start(1)
        poll_all(cs, lambda: parts(cs[1].assignment()) == before[1], ASSIGN_DEADLINE_S,
                 "the restarted static member to get its old partitions back")
        quiet(cs, 2.0)  # several heartbeat intervals: a rebalance would show up here
        assert [parts(c.assignment()) for c in cs] == before
        assert assigns[0] == counts[0] and assigns[2] == counts[2], (counts, assigns)

        desc = adm.describe_consumer_groups([group])[group].result(10)
        assert desc.state == ConsumerGroupState.STABLE
        ids_after = {m.group_instance_id: m.member_id for m in desc.members}
        assert ids_after["instance-0"] == ids_before["instance-0"]
        assert ids_after["instance-2"] == ids_before["instance-2"]
        assert {m.group_instance_id: parts(m.assignment.topic_partitions) for m in desc.members} == {
            f"instance-{i}": before[i] for i in range(3)}
    finally:
        for c in cs:
            c.close()


def test_static_member_that_stays_away_is_removed_after_session_timeout(gbroker):
    bs = gbroker.bootstrap
    make_topic(bs)
    cs = [group_consumer(bs, "static-gone", group_instance_id=f"i{i}",
                         partition_assignment_strategy="range") for i in range(2)]
    for c in cs:
        c.subscribe([TOPIC])
    try:
        poll_all(cs, lambda: balanced([parts(c.assignment()) for c in cs], PARTITIONS, 3),
                 ASSIGN_DEADLINE_S, "3/3")
        # A static member's close sends no LeaveGroup: only its session timeout frees its
        # partitions.
        gone_at = time.monotonic()
        cs.pop(1).close()
        poll_all(cs, lambda: parts(cs[0].assignment()) == list(range(PARTITIONS)),
                 REBALANCE_DEADLINE_S, "the remaining static member to own everything")
        took = time.monotonic() - gone_at
        assert took >= SESSION_MS / 1000 * 0.8, f"rebalanced after {took:.2f}s"
    finally:
        for c in cs:
            c.close()


def test_static_member_duplicate_instance_is_fenced(gbroker):
    bs = gbroker.bootstrap
    make_topic(bs)
    old = group_consumer(bs, "fence", group_instance_id="same")
    old.subscribe([TOPIC])
    try:
        poll_all([old], lambda: len(old.assignment()) == PARTITIONS, ASSIGN_DEADLINE_S, "assign")
        new = group_consumer(bs, "fence", group_instance_id="same")
        new.subscribe([TOPIC])
        try:
            # The newcomer takes over the instance; the old member's next heartbeat is
            # answered FENCED_INSTANCE_ID, which librdkafka raises as a fatal error.
            fatal = []

            def fenced():
                new.poll(0.02)
                msg = old.poll(0.02)
                if msg is not None and msg.error() is not None:
                    assert msg.error().code() == KafkaError._FATAL, msg.error()
                    fatal.append(msg.error())
                return fatal and len(new.assignment()) == PARTITIONS

            wait_until(fenced, ASSIGN_DEADLINE_S, "the old instance to be fenced", interval_s=0.0)
            assert "Static consumer fenced" in fatal[0].str(), fatal[0].str()
        finally:
            new.close()
    finally:
        try:
            old.close()
        except KafkaException:
            pass  # a fenced consumer may refuse to close cleanly


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_active_group_survives_broker_sigkill(gbroker, protocol):
    """Members keep polling while the broker is SIGKILLed and restarted: the group is
    replayed from __consumer_offsets and ends up 2/2/2 again with every partition owned."""
    bs = gbroker.bootstrap
    adm = make_topic(bs)
    if protocol == "classic":
        extra = {"partition_assignment_strategy": "range"}
    else:
        extra = {"group_protocol": "consumer", "group_remote_assignor": "range"}
    cs = [group_consumer(bs, "survivor", client_id=f"s{i}", **extra) for i in range(3)]
    for c in cs:
        c.subscribe([TOPIC])
    try:
        poll_all(cs, lambda: balanced([parts(c.assignment()) for c in cs], PARTITIONS, 2),
                 ASSIGN_DEADLINE_S, "2/2/2")
        for c in cs:
            c.commit(offsets=[TopicPartition(TOPIC, p, 0) for p in parts(c.assignment())],
                     asynchronous=False)
        gbroker.restart(signal.SIGKILL)
        produce_per_partition(bs, TOPIC, PARTITIONS, 2)
        got = []

        def all_read():
            for c in cs:
                got.extend(records(c.consume(num_messages=100, timeout=0.02)))
            return len({(p, o) for p, o, _ in got}) == PARTITIONS * 2

        wait_until(all_read, REBALANCE_DEADLINE_S + 10, "every record after the restart",
                   interval_s=0.0)
        assert sorted(set((p, o) for p, o, _ in got)) == [
            (p, o) for p in range(PARTITIONS) for o in (0, 1)]
        poll_all(cs, lambda: balanced([parts(c.assignment()) for c in cs], PARTITIONS, 2),
                 REBALANCE_DEADLINE_S, "2/2/2 after the restart")
        desc = adm.describe_consumer_groups(["survivor"])["survivor"].result(10)
        assert desc.state == ConsumerGroupState.STABLE
        assert sorted(m.client_id for m in desc.members) == ["s0", "s1", "s2"]
    finally:
        for c in cs:
            c.close()


# ---------------------------------------------------------------------------------------
# Cooperative-sticky (KIP-429).


def test_cooperative_sticky_incremental_rebalance(gbroker):
    bs = gbroker.bootstrap
    make_topic(bs)
    group = "coop"
    revoked: list[list[list[int]]] = [[], [], []]

    def start(i):
        c = group_consumer(bs, group, partition_assignment_strategy="cooperative-sticky")

        def on_revoke(_c, tps):
            if tps:
                revoked[i].append(parts(tps))

        c.subscribe([TOPIC], on_revoke=on_revoke)
        return c

    cs = [start(0), start(1)]
    try:
        poll_all(cs, lambda: balanced([parts(c.assignment()) for c in cs], PARTITIONS, 3),
                 ASSIGN_DEADLINE_S, "3/3")
        quiet(cs, 1.0)
        before = [parts(c.assignment()) for c in cs]
        for r in revoked:
            r.clear()

        cs.append(start(2))
        poll_all(cs, lambda: balanced([parts(c.assignment()) for c in cs], PARTITIONS, 2),
                 ASSIGN_DEADLINE_S, "2/2/2 after the third member joined")
        after = [parts(c.assignment()) for c in cs]
        assert_partitioned(after, PARTITIONS, 2)
        for i in range(2):
            # Sticky: the old members keep two of their three partitions...
            assert set(after[i]) < set(before[i]), (before, after)
            # ...and are told to revoke only the one that moves.
            lost = sorted(set(before[i]) - set(after[i]))
            assert revoked[i] == [lost], (i, revoked[i], lost)
        assert revoked[2] == []
    finally:
        for c in cs:
            c.close()


# ---------------------------------------------------------------------------------------
# KIP-848 consumer protocol.


@pytest.mark.parametrize("assignor", ["uniform", "range"])
def test_consumer_protocol_group(gbroker, assignor):
    bs = gbroker.bootstrap
    adm = make_topic(bs)
    produce_per_partition(bs, TOPIC, PARTITIONS, 3)
    group = f"kip848-{assignor}"

    def start(i):
        return group_consumer(bs, group, group_protocol="consumer", group_remote_assignor=assignor,
                              client_id=f"c{i}")

    cs = [start(i) for i in range(3)]
    try:
        for c in cs:
            c.subscribe([TOPIC])
        poll_all(cs, lambda: balanced([parts(c.assignment()) for c in cs], PARTITIONS, 2),
                 ASSIGN_DEADLINE_S, "2/2/2 (KIP-848)")
        asg = [parts(c.assignment()) for c in cs]
        assert_partitioned(asg, PARTITIONS, 2)
        if assignor == "range":
            assert sorted(asg) == [[0, 1], [2, 3], [4, 5]]

        desc = adm.describe_consumer_groups([group])[group].result(10)
        assert desc.type == ConsumerGroupType.CONSUMER
        assert desc.state == ConsumerGroupState.STABLE
        assert desc.partition_assignor == assignor
        assert sorted((m.client_id, parts(m.assignment.topic_partitions)) for m in desc.members) == \
            sorted((f"c{i}", asg[i]) for i in range(3))

        # Commit the first record of every partition from whoever owns it.
        for c in cs:
            c.commit(offsets=[TopicPartition(TOPIC, p, 1) for p in parts(c.assignment())],
                     asynchronous=False)

        # Member 2 leaves: the others take over its partitions, 3/3.
        cs.pop(2).close()
        poll_all(cs, lambda: balanced([parts(c.assignment()) for c in cs], PARTITIONS, 3),
                 ASSIGN_DEADLINE_S, "3/3 after a member left")
        assert_partitioned([parts(c.assignment()) for c in cs], PARTITIONS, 3)
        desc = adm.describe_consumer_groups([group])[group].result(10)
        assert len(desc.members) == 2
        listing = adm.list_consumer_groups().result(10)
        assert [(g.group_id, g.type, g.state) for g in listing.valid] == [
            (group, ConsumerGroupType.CONSUMER, ConsumerGroupState.STABLE)]
        assert error_code(adm.delete_consumer_groups([group])[group]) == KafkaError.NON_EMPTY_GROUP
        classic = adm.list_consumer_groups(types={ConsumerGroupType.CLASSIC}).result(10)
        assert classic.valid == [] and classic.errors == []
        modern = adm.list_consumer_groups(types={ConsumerGroupType.CONSUMER}).result(10)
        assert [g.group_id for g in modern.valid] == [group]
    finally:
        for c in cs:
            c.close()

    # Everyone gone: a new member resumes at the commits (offset 1), not at 0.
    c = start(9)
    try:
        c.subscribe([TOPIC])
        got = consume_n(c, PARTITIONS * 2)
        assert sorted((p, o) for p, o, _ in got) == [(p, o) for p in range(PARTITIONS) for o in (1, 2)]
    finally:
        c.close()


def test_consumer_protocol_follows_topic_creation_and_growth(gbroker):
    """KIP-848: the broker, not the client, notices that a subscribed topic appeared or
    grew, moves the group epoch and assigns the new partitions."""
    from confluent_kafka.admin import NewPartitions

    bs = gbroker.bootstrap
    adm = admin(bs)
    c = group_consumer(bs, "kip848-late", group_protocol="consumer")
    try:
        c.subscribe([TOPIC])  # does not exist yet
        quiet([c], 1.0)  # a few heartbeats with nothing to assign
        assert c.assignment() == []
        create_topic(adm, TOPIC, 2)
        poll_all([c], lambda: parts(c.assignment()) == [0, 1], ASSIGN_DEADLINE_S,
                 "the new topic's partitions")
        adm.create_partitions([NewPartitions(TOPIC, 4)])[TOPIC].result(10)
        poll_all([c], lambda: parts(c.assignment()) == [0, 1, 2, 3], ASSIGN_DEADLINE_S,
                 "the added partitions")
    finally:
        c.close()


# ---------------------------------------------------------------------------------------
# Admin: list, describe, delete, offsets.


def test_group_admin(gbroker):
    bs = gbroker.bootstrap
    adm = make_topic(bs)
    group = "admin-g"
    cs = [group_consumer(bs, group, client_id=f"client-{i}", partition_assignment_strategy="range")
          for i in range(2)]
    for c in cs:
        c.subscribe([TOPIC])
    try:
        poll_all(cs, lambda: balanced([parts(c.assignment()) for c in cs], PARTITIONS, 3),
                 ASSIGN_DEADLINE_S, "3/3")
        asg = {f"client-{i}": parts(c.assignment()) for i, c in enumerate(cs)}
        cs[0].commit(offsets=[TopicPartition(TOPIC, p, 0) for p in asg["client-0"]],
                     asynchronous=False)

        # An empty group with committed offsets, for the state filter.
        adm.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions("idle-g", [TopicPartition(TOPIC, 0, 3)])]
        )["idle-g"].result(10)

        listing = adm.list_consumer_groups(request_timeout=10).result(10)
        assert listing.errors == []
        states = {g.group_id: g.state for g in listing.valid}
        assert states == {group: ConsumerGroupState.STABLE, "idle-g": ConsumerGroupState.EMPTY}
        stable = adm.list_consumer_groups(states={ConsumerGroupState.STABLE}).result(10)
        assert [g.group_id for g in stable.valid] == [group]
        empty = adm.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result(10)
        assert [g.group_id for g in empty.valid] == ["idle-g"]

        desc = adm.describe_consumer_groups([group])[group].result(10)
        assert desc.group_id == group
        assert desc.state == ConsumerGroupState.STABLE
        assert desc.type == ConsumerGroupType.CLASSIC
        assert desc.partition_assignor == "range"
        assert not desc.is_simple_consumer_group
        members = {m.client_id: m for m in desc.members}
        assert sorted(members) == ["client-0", "client-1"]
        for cid, m in members.items():
            assert m.host.lstrip("/") == "127.0.0.1", m.host
            assert m.member_id.startswith(cid + "-"), m.member_id
            assert parts(m.assignment.topic_partitions) == asg[cid]
            assert {tp.topic for tp in m.assignment.topic_partitions} == {TOPIC}

        # Delete: refused while members are active, unknown group not found.
        futs = adm.delete_consumer_groups([group, "no-such-group"], request_timeout=10)
        assert error_code(futs[group]) == KafkaError.NON_EMPTY_GROUP
        assert error_code(futs["no-such-group"]) == KafkaError.GROUP_ID_NOT_FOUND
    finally:
        for c in cs:
            c.close()

    # The group is empty now; its offsets are still there until it is deleted.
    req = [ConsumerGroupTopicPartitions(group, [TopicPartition(TOPIC, p) for p in range(PARTITIONS)])]
    before = adm.list_consumer_group_offsets(req)[group].result(10)
    assert {tp.partition: tp.offset for tp in before.topic_partitions} == {
        p: (0 if p in asg["client-0"] else OFFSET_INVALID) for p in range(PARTITIONS)}
    desc = adm.describe_consumer_groups([group])[group].result(10)
    assert desc.state == ConsumerGroupState.EMPTY and desc.members == []

    assert error_code(adm.delete_consumer_groups([group])[group]) is None
    after = adm.list_consumer_group_offsets(req)[group].result(10)
    assert {tp.partition: tp.offset for tp in after.topic_partitions} == {
        p: OFFSET_INVALID for p in range(PARTITIONS)}
    listing = adm.list_consumer_groups().result(10)
    assert sorted(g.group_id for g in listing.valid) == ["idle-g"]
    # Deleted means gone: a second delete does not find it.
    assert error_code(adm.delete_consumer_groups([group])[group]) == KafkaError.GROUP_ID_NOT_FOUND

    # All of a group's offsets (no partitions named), and commits for unknown partitions.
    res = adm.alter_consumer_group_offsets([ConsumerGroupTopicPartitions("idle-g", [
        TopicPartition("missing", 0, 3), TopicPartition(TOPIC, 9, 1), TopicPartition(TOPIC, 1, 7)])])
    got = res["idle-g"].result(10)
    assert [(tp.topic, tp.partition, tp.error.code() if tp.error else None)
            for tp in got.topic_partitions] == [
        ("missing", 0, KafkaError.UNKNOWN_TOPIC_OR_PART), (TOPIC, 1, None),
        (TOPIC, 9, KafkaError.UNKNOWN_TOPIC_OR_PART)]
    everything = adm.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions("idle-g")])["idle-g"].result(10)
    assert sorted((tp.topic, tp.partition, tp.offset) for tp in everything.topic_partitions) == [
        (TOPIC, 0, 3), (TOPIC, 1, 7)]


def test_kafka_python_describes_unknown_group_as_dead(gbroker):
    """DescribeGroups v3 for an unknown group: a "Dead" group with no error; the authorized
    operations kafka-python always asks for are filled in (it cannot parse the omitted marker)."""
    from kafka import KafkaAdminClient

    ka = KafkaAdminClient(bootstrap_servers=gbroker.bootstrap, request_timeout_ms=10000)
    try:
        (desc,) = ka.describe_consumer_groups(["nobody"])
    finally:
        ka.close()
    assert (desc.error_code, desc.group, desc.state, desc.protocol_type, desc.members) == (
        0, "nobody", "Dead", "", [])
    assert sorted(desc.authorized_operations) == ["DELETE", "DESCRIBE", "READ"]


def test_alter_offsets_refused_while_group_active(gbroker):
    bs = gbroker.bootstrap
    adm = make_topic(bs)
    c = group_consumer(bs, "busy")
    c.subscribe([TOPIC])
    try:
        poll_all([c], lambda: len(c.assignment()) == PARTITIONS, ASSIGN_DEADLINE_S, "assign")
        fut = adm.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions("busy", [TopicPartition(TOPIC, 0, 1)])])["busy"]
        # The Java coordinator rejects commits from outside an active classic group
        # (generation -1, no member id) with UNKNOWN_MEMBER_ID; librdkafka reports it either
        # for the request or for the partition.
        try:
            res = fut.result(10)
            codes = [tp.error.code() if tp.error else None for tp in res.topic_partitions]
        except KafkaException as exc:
            codes = [exc.args[0].code()]
        assert codes == [KafkaError.UNKNOWN_MEMBER_ID], codes
        committed = c.committed([TopicPartition(TOPIC, 0)], timeout=10)
        assert committed[0].offset == OFFSET_INVALID, committed
    finally:
        c.close()


def test_two_groups_read_independently(gbroker):
    bs = gbroker.bootstrap
    make_topic(bs, COMMIT_TOPIC, COMMIT_PARTS)
    produce_per_partition(bs, COMMIT_TOPIC, COMMIT_PARTS, 10)
    everything = sorted((p, o) for p in range(COMMIT_PARTS) for o in range(10))
    a = group_consumer(bs, "reader-a")
    b = group_consumer(bs, "reader-b")
    try:
        a.subscribe([COMMIT_TOPIC])
        b.subscribe([COMMIT_TOPIC])
        got_a = consume_n(a, len(everything))
        assert sorted((p, o) for p, o, _ in got_a) == everything
        a.commit(asynchronous=False)
        # B is unaffected by A's commits and reads everything too.
        got_b = consume_n(b, len(everything))
        assert sorted((p, o) for p, o, _ in got_b) == everything
        b.commit(offsets=[TopicPartition(COMMIT_TOPIC, 0, 4)], asynchronous=False)
        assert committed_map(a, COMMIT_TOPIC, COMMIT_PARTS) == {0: 10, 1: 10, 2: 10}
        assert committed_map(b, COMMIT_TOPIC, COMMIT_PARTS) == {
            0: 4, 1: OFFSET_INVALID, 2: OFFSET_INVALID}
    finally:
        a.close()
        b.close()


def test_offset_metadata_and_leader_epoch_round_trip(gbroker):
    bs = gbroker.bootstrap
    make_topic(bs, COMMIT_TOPIC, COMMIT_PARTS)
    produce_per_partition(bs, COMMIT_TOPIC, COMMIT_PARTS, 10)
    c = group_consumer(bs, "meta")
    meta = {0: "checkpoint-αβγ", 1: "", 2: "x" * 1000}
    try:
        c.subscribe([COMMIT_TOPIC])
        consume_n(c, COMMIT_PARTS * 10)
        c.commit(offsets=[TopicPartition(COMMIT_TOPIC, p, 3 + p, metadata=meta[p], leader_epoch=0)
                          for p in range(COMMIT_PARTS)], asynchronous=False)
        got = c.committed([TopicPartition(COMMIT_TOPIC, p) for p in range(COMMIT_PARTS)], timeout=10)
        assert [(tp.partition, tp.offset, tp.metadata, tp.leader_epoch) for tp in got] == [
            (p, 3 + p, meta[p], 0) for p in range(COMMIT_PARTS)]
    finally:
        c.close()
    # kafka-python commits exact strings (confluent-kafka's binding sends its metadata with
    # the C string's terminating NUL, so only confluent reads its own metadata back as-is).
    from kafka import KafkaAdminClient, KafkaConsumer
    from kafka import TopicPartition as KTP
    from kafka.structs import OffsetAndMetadata

    kmeta = {0: "kp-αβγ", 1: "", 2: "y" * 1000}
    kc = KafkaConsumer(bootstrap_servers=bs, group_id="meta-kp", enable_auto_commit=False,
                       session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS,
                       request_timeout_ms=10000)
    try:
        kc.commit({KTP(COMMIT_TOPIC, p): OffsetAndMetadata(6 + p, kmeta[p], 0)
                   for p in range(COMMIT_PARTS)})
    finally:
        kc.close()

    gbroker.restart(signal.SIGKILL)

    c = group_consumer(bs, "meta")
    try:
        got = c.committed([TopicPartition(COMMIT_TOPIC, p) for p in range(COMMIT_PARTS)], timeout=10)
        assert [(tp.partition, tp.offset, tp.metadata, tp.leader_epoch) for tp in got] == [
            (p, 3 + p, meta[p], 0) for p in range(COMMIT_PARTS)]
    finally:
        c.close()
    ka = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=10000)
    try:
        offsets = ka.list_consumer_group_offsets("meta-kp")
    finally:
        ka.close()
    assert {tp: (om.offset, om.metadata, om.leader_epoch) for tp, om in offsets.items()} == {
        KTP(COMMIT_TOPIC, p): (6 + p, kmeta[p], 0) for p in range(COMMIT_PARTS)}


def test_kafka_python_group_and_describe(gbroker):
    """kafka-python members in one group; its admin client's DescribeGroups sees them."""
    from kafka import KafkaAdminClient, KafkaConsumer

    bs = gbroker.bootstrap
    make_topic(bs)
    ka = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=10000)
    cs = [KafkaConsumer(TOPIC, bootstrap_servers=bs, group_id="kp-g", client_id=f"kp-{i}",
                        session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS,
                        request_timeout_ms=10000, enable_auto_commit=False) for i in range(2)]
    try:
        def ready():
            for c in cs:
                c.poll(timeout_ms=50)
            return balanced([sorted(tp.partition for tp in c.assignment()) for c in cs], PARTITIONS, 3)

        wait_until(ready, ASSIGN_DEADLINE_S, "kafka-python 3/3", interval_s=0.0)
        (desc,) = ka.describe_consumer_groups(["kp-g"])
        assert desc.state == "Stable"
        assert desc.protocol_type == "consumer"
        assert sorted(m.client_id for m in desc.members) == ["kp-0", "kp-1"]
        groups = ka.list_consumer_groups()
        assert ("kp-g", "consumer") in [(g[0], g[1]) for g in groups]
    finally:
        for c in cs:
            c.close()
        ka.close()

