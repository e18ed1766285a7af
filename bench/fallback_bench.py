"""Fallback benchmark: one-way latency through the fallback server and forwarded messages/s,
against a bare pyzmq two-hop ROUTER broker (bench/two_hop.py) measured in the same run.

Messages carry 200 bytes (base64 in the fallback's JSON, raw for the bare broker).

    python -m bench.fallback_bench [--messages 5000]
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing as mp
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import zmq

from bench.summary import record

PAYLOAD = os.urandom(200)


class Bare:
    name = "bare two-hop"

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def connect(self, context: zmq.Context[Any]) -> tuple[zmq.Socket[Any], bytes]:
        sock = context.socket(zmq.DEALER)
        sock.connect(self.endpoint)
        sock.send(b"hi")
        return sock, sock.recv()

    def prepare(self, sender: Any, receiver: Any) -> None:
        self.to = receiver[1]

    def send(self, sender: Any) -> None:
        sender[0].send_multipart([self.to, PAYLOAD])

    @staticmethod
    def receive(receiver: Any) -> None:
        receiver[0].recv_multipart()


class Fallback:
    name = "sandpiper fallback"

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.frame = b""

    def connect(self, context: zmq.Context[Any]) -> tuple[zmq.Socket[Any], bytes]:
        sock = context.socket(zmq.DEALER)
        sock.connect(self.endpoint)
        return sock, b""

    def prepare(self, sender: Any, receiver: Any) -> None:
        """Attach both under fresh ids (a reused id would be a takeover, announced to no one)."""
        room, ids = os.urandom(32).hex(), (os.urandom(16).hex(), os.urandom(16).hex())
        self.frame = json.dumps(
            {"type": "send", "to": ids[0], "payload": base64.urlsafe_b64encode(PAYLOAD).decode()}
        ).encode()
        for sock, member in ((receiver[0], ids[0]), (sender[0], ids[1])):
            sock.send(json.dumps({"type": "attach", "room": room, "member": member}).encode())
            while json.loads(sock.recv())["type"] != "attached":
                pass
        receiver[0].recv()  # member_attached for the sender

    def send(self, sender: Any) -> None:
        sender[0].send(self.frame)

    @staticmethod
    def receive(receiver: Any) -> None:
        receiver[0].recv()


def latency(system: Any, messages: int) -> list[float]:
    context: zmq.Context[Any] = zmq.Context()
    sender, receiver = system.connect(context), system.connect(context)
    system.prepare(sender, receiver)
    for _ in range(200):
        system.send(sender)
        system.receive(receiver)
    results = []
    for _ in range(messages):
        started = time.perf_counter()
        system.send(sender)
        system.receive(receiver)
        results.append((time.perf_counter() - started) * 1e6)
    context.destroy(linger=0)
    return sorted(results)


def _blast(system: Any, messages: int, ready: Any, go: Any, out: Any) -> None:
    context: zmq.Context[Any] = zmq.Context()
    receiver = system.connect(context)
    sender = system.connect(context)
    system.prepare(sender, receiver)
    ready.set()
    go.wait()
    started = time.perf_counter()
    pending = 0
    received = 0
    poller = zmq.Poller()
    poller.register(receiver[0], zmq.POLLIN)
    while received < messages:
        while pending < messages and pending - received < 500:  # bounded in flight
            system.send(sender)
            pending += 1
        if poller.poll(5000):
            system.receive(receiver)
            received += 1
        else:
            break
    out.put((received, time.perf_counter() - started))
    context.destroy(linger=0)


def throughput(system: Any, messages: int) -> float:
    spawn = mp.get_context("fork")
    ready, go, out = spawn.Event(), spawn.Event(), spawn.Queue()
    worker = spawn.Process(target=_blast, args=(system, messages, ready, go, out))
    worker.start()
    ready.wait(30)
    go.set()
    received, elapsed = out.get(timeout=120)
    worker.join(30)
    return received / elapsed


def start(command: list[str], pattern: str | None, log: Path) -> tuple[subprocess.Popen[Any], str]:
    if pattern is None:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        return process, f"tcp://127.0.0.1:{int(process.stdout.readline())}"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        match = re.search(pattern, log.read_text())
        if match:
            return process, match.group(1)
        time.sleep(0.05)
    raise RuntimeError(log.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="sandpiper-fallback-bench-"))
    sandpiper = str(Path(sys.executable).with_name("sandpiper"))
    bare_process, bare_endpoint = start(
        [sys.executable, "-m", "bench.two_hop"], None, workdir / "b"
    )
    ours_process, ours_endpoint = start(
        [sandpiper, "fallback", "--port", "0", "--log-level", "info"],
        r"fallback server listening on (tcp://\S+)",
        workdir / "fallback.log",
    )
    try:
        rows = []
        for system in (Bare(bare_endpoint), Fallback(ours_endpoint)):
            lat = latency(system, args.messages)
            rate = throughput(system, args.messages * 4)
            rows.append((system.name, lat, rate))
    finally:
        for process in (bare_process, ours_process):
            process.terminate()
            process.wait(timeout=10)
    print("fallback relaying (loopback, 200-byte messages) vs a bare pyzmq two-hop ROUTER broker")
    for name, lat, rate in rows:
        p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
        print(
            f"{name:>20}: one-way p50 {p50:6.0f} µs  p99 {p99:6.0f} µs  forwarded {rate:8.0f} msg/s"
        )
    (_, bare_lat, bare_rate), (_, our_lat, our_rate) = rows
    p50 = our_lat[len(our_lat) // 2] / bare_lat[len(bare_lat) // 2]
    p99 = our_lat[int(len(our_lat) * 0.99)] / bare_lat[int(len(bare_lat) * 0.99)]
    print(
        f"{'ratio':>20}: p50 {p50:.2f} (target <= 1.5), p99 {p99:.2f}, "
        f"msg/s {our_rate / bare_rate:.2f} (target: fallback >= 10,000 msg/s)"
    )
    two_hop = "bare pyzmq two-hop broker"
    record(
        "fallback",
        "one-way latency p50",
        our_lat[len(our_lat) // 2],
        (two_hop, bare_lat[len(bare_lat) // 2]),
        "µs",
        target="<= 1.5",
    )
    record(
        "fallback", "forwarded", our_rate, (two_hop, bare_rate), "msg/s", target=">= 10,000 msg/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
