"""Admin API behaviour through confluent-kafka's AdminClient (librdkafka).

The reference is the Java broker: same error codes, same config defaults and sources.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from conftest import wait_until
from kafkautil import (
    ADMIN_TIMEOUT_S,
    admin,
    consume_exact,
    create_topic,
    error_code,
    produce_all,
    producer,
    wait_for_partitions,
)


def source_of(entry) -> ConfigSource:
    src = entry.source
    return src if isinstance(src, ConfigSource) else ConfigSource(int(src))


def describe_topic_configs(adm, topic: str) -> dict:
    res = ConfigResource(ResourceType.TOPIC, topic)
    return adm.describe_configs([res], request_timeout=ADMIN_TIMEOUT_S)[res].result(
        timeout=ADMIN_TIMEOUT_S
    )


def incremental_set(adm, topic: str, ops: list[tuple[str, str | None, AlterConfigOpType]]):
    res = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry(name, value, incremental_operation=op) for name, value, op in ops
        ],
    )
    return adm.incremental_alter_configs([res], request_timeout=ADMIN_TIMEOUT_S)[res]


def test_create_topic_validate_list_and_errors(broker):
    adm = admin(broker.bootstrap)
    name = "orders"

    # validate_only: accepted, nothing created.
    fs = adm.create_topics(
        [NewTopic(name, num_partitions=3, replication_factor=1)],
        validate_only=True,
        request_timeout=ADMIN_TIMEOUT_S,
    )
    assert error_code(fs[name]) is None
    assert name not in adm.list_topics(timeout=10).topics

    create_topic(adm, name, 3)
    md = adm.list_topics(timeout=10)
    topic = md.topics[name]
    assert topic.error is None
    assert sorted(topic.partitions) == [0, 1, 2]
    for p in topic.partitions.values():
        assert p.leader == 1
        assert list(p.replicas) == [1]
        assert list(p.isrs) == [1]
    assert sorted(md.brokers) == [1]
    assert md.brokers[1].port == broker.port

    # One request, per-topic outcomes, the way the Java broker reports them.
    # NewTopic(num_partitions=0) is not rejected by librdkafka (-1 means "broker default"),
    # so 0 reaches the broker, which must say INVALID_PARTITIONS.
    cases = {
        name: (NewTopic(name, num_partitions=3, replication_factor=1), KafkaError.TOPIC_ALREADY_EXISTS),
        "bad name!": (NewTopic("bad name!", 1, 1), KafkaError.TOPIC_EXCEPTION),
        "..": (NewTopic("..", 1, 1), KafkaError.TOPIC_EXCEPTION),
        "x" * 250: (NewTopic("x" * 250, 1, 1), KafkaError.TOPIC_EXCEPTION),
        "zero-partitions": (NewTopic("zero-partitions", 0, 1), KafkaError.INVALID_PARTITIONS),
        "rf-two": (NewTopic("rf-two", 1, 2), KafkaError.INVALID_REPLICATION_FACTOR),
        "bad-config": (
            NewTopic("bad-config", 1, 1, config={"no.such.config": "1"}),
            KafkaError.INVALID_CONFIG,
        ),
        "fine": (NewTopic("fine", 2, 1), None),
    }
    for validate_only in (True, False):
        fs = adm.create_topics(
            [c[0] for c in cases.values()],
            validate_only=validate_only,
            request_timeout=ADMIN_TIMEOUT_S,
        )
        got = {t: error_code(f) for t, f in fs.items()}
        want = {t: c[1] for t, c in cases.items()}
        assert got == want, f"validate_only={validate_only}"
        if validate_only:
            assert "fine" not in adm.list_topics(timeout=10).topics

    wait_for_partitions(adm, "fine", 2)
    topics = set(adm.list_topics(timeout=10).topics)
    assert {name, "fine"} <= topics
    for bad in ("bad name!", "..", "x" * 250, "zero-partitions", "rf-two", "bad-config"):
        assert bad not in topics


def test_describe_and_alter_topic_configs(broker):
    adm = admin(broker.bootstrap)
    create_topic(adm, "cfg", 1)
    create_topic(adm, "cfg-compact", 1, config={"cleanup.policy": "compact"})

    entries = describe_topic_configs(adm, "cfg")
    defaults = {
        "retention.ms": "604800000",
        "retention.bytes": "-1",
        "cleanup.policy": "delete",
        "segment.bytes": "1073741824",
        "max.message.bytes": "1048588",
        "compression.type": "producer",
        "message.timestamp.type": "CreateTime",
        "min.insync.replicas": "1",
    }
    for key, value in defaults.items():
        assert key in entries, f"{key} missing from DescribeConfigs"
        e = entries[key]
        assert (e.value, e.is_default, source_of(e)) == (value, True, ConfigSource.DEFAULT_CONFIG), key

    compact = describe_topic_configs(adm, "cfg-compact")["cleanup.policy"]
    assert (compact.value, compact.is_default, source_of(compact)) == (
        "compact",
        False,
        ConfigSource.DYNAMIC_TOPIC_CONFIG,
    )

    assert error_code(incremental_set(adm, "cfg", [("retention.ms", "1234", AlterConfigOpType.SET)])) is None
    e = describe_topic_configs(adm, "cfg")["retention.ms"]
    assert (e.value, e.is_default, source_of(e)) == ("1234", False, ConfigSource.DYNAMIC_TOPIC_CONFIG)
    # Only the named key changed.
    other = describe_topic_configs(adm, "cfg")["cleanup.policy"]
    assert (other.value, source_of(other)) == ("delete", ConfigSource.DEFAULT_CONFIG)

    # DELETE reverts to the default.
    assert error_code(incremental_set(adm, "cfg", [("retention.ms", None, AlterConfigOpType.DELETE)])) is None
    e = describe_topic_configs(adm, "cfg")["retention.ms"]
    assert (e.value, e.is_default, source_of(e)) == ("604800000", True, ConfigSource.DEFAULT_CONFIG)

    # Bad input: unknown key, unparsable value, unknown topic.
    assert (
        error_code(incremental_set(adm, "cfg", [("no.such.config", "1", AlterConfigOpType.SET)]))
        == KafkaError.INVALID_CONFIG
    )
    assert (
        error_code(incremental_set(adm, "cfg", [("retention.ms", "abc", AlterConfigOpType.SET)]))
        == KafkaError.INVALID_CONFIG
    )
    assert describe_topic_configs(adm, "cfg")["retention.ms"].value == "604800000"
    res = ConfigResource(ResourceType.TOPIC, "no-such-topic")
    fut = adm.describe_configs([res], request_timeout=ADMIN_TIMEOUT_S)[res]
    assert error_code(fut) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_describe_broker_configs(broker):
    adm = admin(broker.bootstrap)
    res = ConfigResource(ResourceType.BROKER, "1")
    entries = adm.describe_configs([res], request_timeout=ADMIN_TIMEOUT_S)[res].result(
        timeout=ADMIN_TIMEOUT_S
    )
    assert len(entries) > 0
    assert entries["num.partitions"].value == "1"
    assert entries["auto.create.topics.enable"].value == "true"


def test_dynamic_broker_configs(broker):
    """A broker's dynamic value set with IncrementalAlterConfigs is what a
    topic without an override uses, with Kafka's sources. (confluent-kafka
    refuses an empty broker name, so the cluster-wide resource is tested
    through `vltava configs` in tests/tests/dynamic_broker_configs.rs.)"""
    adm = admin(broker.bootstrap)
    create_topic(adm, "dyncfg", 1)
    default = ConfigResource(
        ResourceType.BROKER,
        "1",
        incremental_configs=[
            ConfigEntry("log.retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    fut = adm.incremental_alter_configs([default], request_timeout=ADMIN_TIMEOUT_S)[default]
    assert error_code(fut) is None
    entry = describe_topic_configs(adm, "dyncfg")["retention.ms"]
    assert entry.value == "3600000"
    assert entry.source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    res = ConfigResource(ResourceType.BROKER, "1")
    entries = adm.describe_configs([res], request_timeout=ADMIN_TIMEOUT_S)[res].result(
        timeout=ADMIN_TIMEOUT_S
    )
    assert entries["log.retention.ms"].value == "3600000"
    assert entries["log.retention.ms"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert entries["log.retention.ms"].is_read_only is False
    assert entries["listeners"].is_read_only is True
    static = ConfigResource(
        ResourceType.BROKER,
        "1",
        incremental_configs=[
            ConfigEntry("num.partitions", "3", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    fut = adm.incremental_alter_configs([static], request_timeout=ADMIN_TIMEOUT_S)[static]
    assert error_code(fut) == KafkaError.INVALID_REQUEST


def test_create_partitions(broker):
    adm = admin(broker.bootstrap)
    create_topic(adm, "grow", 3)

    fut = adm.create_partitions([NewPartitions("grow", 6)], request_timeout=ADMIN_TIMEOUT_S)["grow"]
    assert error_code(fut) is None
    wait_for_partitions(adm, "grow", 6)

    for count in (6, 2):  # same count and fewer: both INVALID_PARTITIONS in Kafka
        fut = adm.create_partitions([NewPartitions("grow", count)], request_timeout=ADMIN_TIMEOUT_S)["grow"]
        assert error_code(fut) == KafkaError.INVALID_PARTITIONS, count
    fut = adm.create_partitions([NewPartitions("no-such-topic", 4)], request_timeout=ADMIN_TIMEOUT_S)[
        "no-such-topic"
    ]
    assert error_code(fut) == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert sorted(adm.list_topics(timeout=10).topics["grow"].partitions) == list(range(6))

    p = producer(broker.bootstrap)
    reports = produce_all(
        p, "grow", [{"partition": 5, "key": b"k", "value": f"v{i}".encode()} for i in range(3)]
    )
    assert [(r.partition, r.offset) for r in reports] == [(5, 0), (5, 1), (5, 2)]
    got = consume_exact(broker.bootstrap, [TopicPartition("grow", 5, 0)], 3)
    assert [(r.partition, r.offset, r.key, r.value) for r in got] == [
        (5, i, b"k", f"v{i}".encode()) for i in range(3)
    ]


def test_delete_topic_and_recreate(broker):
    adm = admin(broker.bootstrap)
    create_topic(adm, "doomed", 2)
    p = producer(broker.bootstrap)
    old = produce_all(p, "doomed", [{"partition": 0, "value": f"old{i}".encode()} for i in range(5)])
    assert [r.offset for r in old] == [0, 1, 2, 3, 4]
    del p

    fut = adm.delete_topics(["doomed"], operation_timeout=10, request_timeout=ADMIN_TIMEOUT_S)["doomed"]
    assert error_code(fut) is None
    wait_until(lambda: "doomed" not in adm.list_topics(timeout=5).topics, 15, "doomed to disappear")

    fut = adm.delete_topics(["doomed"], request_timeout=ADMIN_TIMEOUT_S)["doomed"]
    assert error_code(fut) == KafkaError.UNKNOWN_TOPIC_OR_PART

    # Kafka may answer TOPIC_ALREADY_EXISTS while a deletion completes; retry with a deadline.
    def recreate():
        fs = adm.create_topics([NewTopic("doomed", 1, 1)], request_timeout=ADMIN_TIMEOUT_S)
        code = error_code(fs["doomed"])
        assert code in (None, KafkaError.TOPIC_ALREADY_EXISTS), code
        return code is None

    wait_until(recreate, 15, "re-creating doomed", interval_s=0.2)
    wait_for_partitions(adm, "doomed", 1)

    p = producer(broker.bootstrap)
    new = produce_all(p, "doomed", [{"partition": 0, "value": b"new"}])
    assert [(r.partition, r.offset) for r in new] == [(0, 0)]
    got = consume_exact(broker.bootstrap, [TopicPartition("doomed", 0, 0)], 1)
    assert [(r.offset, r.value) for r in got] == [(0, b"new")]
