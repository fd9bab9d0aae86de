"""kafkajs (Node.js) against the broker: starts a broker and runs tests/node/kafkajs.test.js
with node's built-in test runner, the bootstrap address in $VLTAVA_BOOTSTRAP.

Optional like kcat: skipped, with the reason in the summary, when `node` or the installed
package (`npm ci --prefix tests/node`, which scripts/test runs when npm is present) is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO

NODE_DIR = REPO / "tests" / "node"
NODE_TESTS = 3
RUN_TIMEOUT_S = 110


def test_kafkajs_suite(make_broker):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH; the kafkajs tests need Node.js 20+")
    if not (NODE_DIR / "node_modules" / "kafkajs").is_dir():
        pytest.skip("kafkajs is not installed: run `npm ci --prefix tests/node`")
    broker = make_broker(group_initial_rebalance_delay_ms="0")
    env = {
        **os.environ,
        "VLTAVA_BOOTSTRAP": broker.bootstrap,
        "KAFKAJS_NO_PARTITIONER_WARNING": "1",
    }
    proc = subprocess.run(
        [node, "--test", "--test-reporter=tap", "kafkajs.test.js"],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    output = f"{proc.stdout}\n{proc.stderr}"
    assert proc.returncode == 0, f"node --test exited {proc.returncode}\n{output}"
    counts = dict(re.findall(r"^# (pass|fail|skipped|todo|cancelled) (\d+)$", proc.stdout, re.M))
    expected = {"pass": NODE_TESTS, "fail": 0, "cancelled": 0, "skipped": 0, "todo": 0}
    assert {k: int(v) for k, v in counts.items()} == expected, output
