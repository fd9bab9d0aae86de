"""Features not built yet are refused at once with a message that says so,
never with a retriable error that makes the client wait for its timeout."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from conftest import wait_until

# The broker's answer to a transactional client; librdkafka treats it as
# fatal at once and shows the broker's message.
MESSAGE = "Vltava does not support Kafka transactions yet"


def test_a_transactional_producer_fails_fast_and_is_told_why(broker):
    # Two producers with the same client id: each is refused, the broker
    # warns once.
    for attempt in range(2):
        producer = Producer(
            {"bootstrap.servers": broker.bootstrap, "transactional.id": "tx-1", "client.id": "tx-client"}
        )
        started = time.monotonic()
        with pytest.raises(KafkaException) as raised:
            producer.init_transactions(30)
        elapsed = time.monotonic() - started
        error: KafkaError = raised.value.args[0]
        assert error.fatal(), error
        assert not error.retriable(), error
        assert error.code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, error
        assert MESSAGE in error.str(), error.str()
        assert elapsed < 10, f"attempt {attempt}: init_transactions took {elapsed:.1f} s"
        del producer
        wait_until(lambda: MESSAGE in broker.stderr_text(), 10, "the broker's warning")
    # One WARN line naming the client, however often it asked.
    lines = [l for l in broker.stderr_text().splitlines() if MESSAGE in l and "tx-client" in l]
    assert len(lines) == 1, lines
    assert "WARN" in lines[0], lines[0]
