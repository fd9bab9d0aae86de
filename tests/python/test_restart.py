"""Acknowledged data and topic configs survive a broker restart (SIGTERM and SIGKILL).

The broker acknowledges after the page-cache write; SIGKILL does not drop the page cache,
so every acknowledged message must be there after a SIGKILL too.
"""

from __future__ import annotations

import dataclasses
import random
import signal

import pytest
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    ResourceType,
)

from kafkautil import (
    ADMIN_TIMEOUT_S,
    admin,
    assert_contiguous,
    assert_same_records,
    consume_exact,
    create_topic,
    error_code,
    from_beginning,
    produce_all,
    producer,
    wait_for_partitions,
    watermarks,
)


def retention_ms(bootstrap: str, topic: str):
    adm = admin(bootstrap)
    res = ConfigResource(ResourceType.TOPIC, topic)
    e = adm.describe_configs([res], request_timeout=ADMIN_TIMEOUT_S)[res].result(timeout=ADMIN_TIMEOUT_S)[
        "retention.ms"
    ]
    src = e.source if isinstance(e.source, ConfigSource) else ConfigSource(int(e.source))
    return e.value, src


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_restart_keeps_data_and_configs(broker, sig):
    topic = "durable"
    adm = admin(broker.bootstrap)
    create_topic(adm, topic, 3)
    res = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", "123456789", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    assert error_code(adm.incremental_alter_configs([res])[res]) is None
    assert retention_ms(broker.bootstrap, topic) == ("123456789", ConfigSource.DYNAMIC_TOPIC_CONFIG)

    rng = random.Random(1234)
    messages = [
        {
            "key": f"k{i % 50}".encode(),
            "value": rng.randbytes(rng.randrange(0, 2000)),
            "headers": [("i", str(i).encode())],
        }
        for i in range(1000)
    ]
    p = producer(broker.bootstrap, acks="all", linger_ms=5)
    reports = produce_all(p, topic, messages)
    counts = assert_contiguous(reports)
    assert sorted(counts) == [0, 1, 2]
    del p

    # Delivery reports carry no headers: take key, value and headers from the input and
    # partition, offset and timestamp from the report.
    expected = [
        dataclasses.replace(r, key=m["key"], value=m["value"], headers=tuple(m["headers"]))
        for r, m in zip(reports, messages)
    ]

    code = broker.stop(sig)
    assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL)
    broker.start()

    wait_for_partitions(admin(broker.bootstrap), topic, 3)
    got = consume_exact(broker.bootstrap, from_beginning(topic, 3), 1000)
    assert_same_records(got, expected)
    assert {p: watermarks(broker.bootstrap, topic, p) for p in range(3)} == {
        p: (0, counts[p]) for p in range(3)
    }
    assert retention_ms(broker.bootstrap, topic) == ("123456789", ConfigSource.DYNAMIC_TOPIC_CONFIG)

    # Appends continue where the log ended.
    p = producer(broker.bootstrap, acks="all")
    after = produce_all(p, topic, [{"partition": part, "value": b"after"} for part in range(3)])
    assert [(r.partition, r.offset) for r in after] == [(part, counts[part]) for part in range(3)]

    # And a second restart of the same kind keeps the appended records too.
    del p
    assert broker.restart(sig) == code
    got = consume_exact(broker.bootstrap, from_beginning(topic, 3), 1003)
    assert_same_records(got, expected + after)


def test_sigterm_exit_code_zero(broker):
    produce_all(producer(broker.bootstrap), "t", [{"value": b"x"}])
    assert broker.stop(signal.SIGTERM) == 0
