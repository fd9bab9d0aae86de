#!/usr/bin/env python3
"""Keeps N long-poll fetches parked on an idle topic, for measuring what
parked fetches cost every produce on the broker (the per-partition wake-up
change in docs/benchmarks.md).

Each connection sends Fetch v4 for `idle-parked` partition 0 at its end with
max_wait 30 s and min_bytes 1, and sends it again whenever an answer comes
back, until --seconds pass, then prints how many answers came back (each
parked fetch answers once its 30 s wait ends). Run a load against another
topic meanwhile and compare the broker's CPU with and without the parked
fetches. Uses kafka-python's protocol classes (tests/python's .venv):

    .venv/bin/python bench/parked_fetches.py --bootstrap 127.0.0.1:9092 --fetches 1000 --seconds 60
"""

import argparse
import selectors
import socket
import struct
import time

from kafka.protocol.api import RequestHeader
from kafka.protocol.fetch import FetchRequest
from kafka.protocol.metadata import MetadataRequest

TOPIC = "idle-parked"


def frame(request, correlation_id):
    header = RequestHeader(request, correlation_id=correlation_id, client_id="parked")
    body = header.encode() + request.encode()
    return struct.pack(">i", len(body)) + body


def fetch_request(max_wait_ms):
    return FetchRequest[4](
        replica_id=-1,
        max_wait_time=max_wait_ms,
        min_bytes=1,
        max_bytes=1 << 20,
        isolation_level=0,
        topics=[(TOPIC, [(0, 0, 1 << 20)])],
    )


def read_frame(sock):
    size = struct.unpack(">i", recv_exactly(sock, 4))[0]
    return recv_exactly(sock, size)


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        data += chunk
    return data


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--fetches", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    host, port = args.bootstrap.rsplit(":", 1)

    # Create the idle topic (auto-create through Metadata).
    with socket.create_connection((host, int(port))) as s:
        s.sendall(frame(MetadataRequest[1](topics=[TOPIC]), 1))
        read_frame(s)

    selector = selectors.DefaultSelector()
    request = frame(fetch_request(30_000), 7)
    for _ in range(args.fetches):
        s = socket.create_connection((host, int(port)))
        s.sendall(request)
        selector.register(s, selectors.EVENT_READ)
    print(f"{args.fetches} fetches parked on {TOPIC}", flush=True)
    answers = 0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1.0):
            read_frame(key.fileobj)
            answers += 1
            key.fileobj.sendall(request)
    print(f"answers: {answers}", flush=True)


if __name__ == "__main__":
    main()
