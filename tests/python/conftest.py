"""Fixtures that run the real `vltava` broker binary for the Python client tests.

Each test gets a fresh data directory and a free port. The broker's stderr goes to
`<tmp>/broker.stderr` and is attached to the report of a failing test.

Binary: $VLTAVA_BIN if set, else <repo>/target/debug/vltava.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


def broker_binary() -> Path:
    env = os.environ.get("VLTAVA_BIN")
    return Path(env) if env else REPO / "target" / "debug" / "vltava"


_HANDED_OUT: set = set()


def free_port() -> int:
    """A port that was free a moment ago, below the kernel's ephemeral range.

    Port 0 hands out an ephemeral port, which a broker restarted on the same
    port then races every outgoing connection for (the Rust harness's
    free_port says more). Ports are drawn at random below that range, checked
    by binding them, and never handed out twice (a stopped broker does not
    hold its port)."""
    low = 32768
    try:
        low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(1000 if low > 20000 else 0):
        port = random.randrange(20000, low)
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    # No room below the ephemeral range, or none of it free.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _HANDED_OUT.add(port)
    return port


def wait_until(predicate, timeout_s: float, what: str, interval_s: float = 0.05):
    """Poll `predicate` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - reported on timeout
            last_exc = exc
        if time.monotonic() >= deadline:
            suffix = f" (last error: {last_exc!r})" if last_exc else ""
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}{suffix}")
        time.sleep(interval_s)


class Broker:
    """One `vltava server` process with a fixed port and data dir across restarts."""

    def __init__(self, workdir: Path, overrides: dict[str, str] | None = None, node_id: int = 1):
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = self.workdir / "broker.stderr"
        self.node_id = node_id
        self.port = free_port()
        self.overrides = dict(overrides or {})
        self.proc: subprocess.Popen | None = None
        self.exit_codes: list[int] = []

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        settings = {
            "node.id": str(self.node_id),
            "listeners": f"PLAINTEXT://{self.bootstrap}",
            "log.dirs": str(self.data_dir),
            # Off unless a test asks for it: parallel brokers would all want the default port.
            "admin.listeners": "",
            "schema.registry.listeners": "",
            "rest.proxy.listeners": "",
        }
        settings.update({k: str(v) for k, v in self.overrides.items()})
        cmd = [str(broker_binary()), "server"]
        for key, value in settings.items():
            cmd += ["--override", f"{key}={value}"]
        return cmd

    def start(self) -> None:
        assert self.proc is None, "broker already running"
        binary = broker_binary()
        if not binary.exists():
            pytest.fail(f"broker binary {binary} does not exist (build it or set VLTAVA_BIN)")
        with open(self.stderr_path, "ab") as err:
            err.write(f"=== start: {' '.join(self.command())}\n".encode())
            err.flush()
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                cwd=self.workdir,
                env={**os.environ, "NO_COLOR": "1"},  # plain tracing output in the log file
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            code = self.proc.poll()
            if code is not None:
                self.proc = None
                raise RuntimeError(
                    f"broker exited with {code} before accepting connections\n{self.stderr_tail()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                self.stop(signal.SIGKILL)
                raise RuntimeError(
                    f"broker did not accept connections on {self.bootstrap} within "
                    f"{READY_TIMEOUT_S}s\n{self.stderr_tail()}"
                )
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """Send `sig` and wait for exit; returns the exit code (negative: killed by signal).

        If the broker does not exit within `timeout_s` it is SIGKILLed and the test fails.
        """
        proc = self.proc
        assert proc is not None, "broker not running"
        self.proc = None
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self.exit_codes.append(-signal.SIGKILL)
            raise AssertionError(
                f"broker did not exit within {timeout_s}s after {signal.Signals(sig).name}"
            )
        self.exit_codes.append(code)
        return code

    def restart(self, sig: int = signal.SIGTERM) -> int:
        code = self.stop(sig)
        self.start()
        return code

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stderr_tail(self, max_chars: int = 20000) -> str:
        text = self.stderr_text()
        if len(text) > max_chars:
            text = "...\n" + text[-max_chars:]
        return f"--- broker stderr ({self.stderr_path}) ---\n{text}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for broker in getattr(item, "_vltava_brokers", []):
            report.sections.append((f"broker stderr ({broker.bootstrap})", broker.stderr_tail()))
        driver = getattr(item, "_vltava_browser", None)
        if driver is not None:
            # The page the browser was on when the test failed.
            try:
                page = f"{driver.current_url}\n{driver.title}\n\n{driver.find_element('tag name', 'body').text}"
            except Exception as exc:  # noqa: BLE001 - a dead browser says so
                page = f"the browser did not answer: {exc!r}"
            report.sections.append(("browser page", page[-20_000:]))


def _teardown(broker: Broker) -> None:
    if broker.proc is None:
        return
    code = broker.stop(signal.SIGTERM)
    assert code == 0, f"broker exited with {code} on SIGTERM\n{broker.stderr_tail()}"


@pytest.fixture
def make_broker(request, tmp_path):
    """Factory: `make_broker(**overrides)` starts a broker; keys use `_` for `.`.

    `make_broker(auto_create_topics_enable="false")` passes
    `--override auto.create.topics.enable=false`. Pass `overrides={...}` for
    names that contain underscores.
    """
    brokers: list[Broker] = []
    request.node._vltava_brokers = brokers

    def factory(overrides: dict[str, str] | None = None, **kw) -> Broker:
        settings = {k.replace("_", "."): v for k, v in kw.items()}
        settings.update(overrides or {})
        broker = Broker(tmp_path / f"broker{len(brokers)}", settings)
        brokers.append(broker)
        broker.start()
        return broker

    yield factory
    errors = []
    for broker in brokers:
        try:
            _teardown(broker)
        except AssertionError as exc:
            errors.append(str(exc))
    if errors:
        pytest.fail("\n".join(errors))


@pytest.fixture
def broker(make_broker) -> Broker:
    return make_broker()
