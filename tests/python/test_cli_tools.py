"""The `vltava` command-line tools against librdkafka: the console producer's
partitioner agrees with librdkafka's `murmur2_random` (the Java client's
default) key for key, and the console producer prints Kafka's `>` prompt when
stdin is a terminal (checked through a real pseudo-terminal)."""

from __future__ import annotations

import os
import pty
import random
import select
import string
import subprocess
import time

from conftest import broker_binary
from kafkautil import admin, consume_exact, create_topic, from_beginning, produce_all, producer

KEYS = 10_000
PARTITIONS = 7


def run_tool(args: list[str], stdin: str = "", timeout_s: float = 120.0) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RUST_LOG"}
    return subprocess.run(
        [str(broker_binary()), *args], input=stdin.encode(), capture_output=True, timeout=timeout_s, env=env
    )


def test_keyed_partitioning_matches_librdkafka_murmur2_random(broker):
    adm = admin(broker.bootstrap)
    create_topic(adm, "ours", PARTITIONS)
    create_topic(adm, "theirs", PARTITIONS)
    rng = random.Random(20240301)
    alphabet = string.ascii_letters + string.digits + "-_.!#$%&()*+,;<=>?@[]^{}~"
    keys = sorted({"".join(rng.choices(alphabet, k=rng.randint(1, 40))) for _ in range(KEYS * 2)})[:KEYS]
    rng.shuffle(keys)
    assert len(keys) == KEYS

    # librdkafka's choice, from its delivery reports.
    p = producer(broker.bootstrap, partitioner="murmur2_random", linger_ms=50)
    reports = produce_all(p, "theirs", [{"key": k.encode(), "value": b"x"} for k in keys])
    theirs = {r.key.decode(): r.partition for r in reports}

    # Ours: the console producer, keys parsed from the lines.
    lines = "".join(f"{k}|{k}\n" for k in keys)
    out = run_tool(
        ["console-producer", "--bootstrap-server", broker.bootstrap, "--topic", "ours",
         "--property", "parse.key=true", "--property", "key.separator=|"],
        stdin=lines,
    )
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout == b"" and out.stderr == b""
    records = consume_exact(broker.bootstrap, from_beginning("ours", PARTITIONS), KEYS)
    ours = {r.key.decode(): r.partition for r in records}
    assert all(r.value == r.key for r in records)

    assert len(ours) == KEYS
    differing = [k for k in keys if ours[k] != theirs[k]]
    assert differing == [], f"{len(differing)} keys differ, first: {differing[:5]}"
    # The keys really were spread: every partition was used.
    assert sorted(set(ours.values())) == list(range(PARTITIONS))


def read_until(fd: int, wanted: bytes, timeout_s: float = 30.0) -> bytes:
    """Reads from the pty master until `wanted` has been seen."""
    got = b""
    deadline = time.monotonic() + timeout_s
    while wanted not in got:
        left = deadline - time.monotonic()
        assert left > 0, f"waited for {wanted!r}, got {got!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            got += chunk
    return got


def test_console_producer_prompts_on_a_terminal(broker):
    create_topic(admin(broker.bootstrap), "tty", 1)
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "RUST_LOG"}
    proc = subprocess.Popen(
        [str(broker_binary()), "console-producer", "--bootstrap-server", broker.bootstrap, "--topic", "tty",
         "--property", "parse.key=true", "--property", "key.separator=:"],
        stdin=slave, stdout=slave, stderr=subprocess.PIPE, env=env, close_fds=True,
    )
    os.close(slave)
    try:
        # The prompt comes before the first line is typed...
        first = read_until(master, b">")
        assert first == b">"
        os.write(master, b"message1:hello\n")
        # ...and again after it (the terminal echoes what was typed).
        second = read_until(master, b">")
        assert second == b"message1:hello\r\n>"
        os.write(master, b"\x04")  # Ctrl-D: end of input
        assert proc.wait(timeout=30) == 0, proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    records = consume_exact(broker.bootstrap, from_beginning("tty", 1), 1)
    assert [(r.key, r.value) for r in records] == [(b"message1", b"hello")]
