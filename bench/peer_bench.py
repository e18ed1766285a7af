"""Peer benchmark: join-to-first-message time, one-way latency and messages/s between two peers.

The baseline is the same pipeline without Sandpiper: stdin lines -> bare pyzmq DEALER ->
ROUTER -> a JSON line on stdout (bench/bare_pipe.py), measured in the same run. Sandpiper adds
PAKE keying, CurveZMQ, per-message AEAD and its event loop on that path.

    python -m bench.peer_bench [--messages 2000] [--joins 7] [--rounds 5]

Latency and rate: the bare pipe and sandpiper alternate for `--rounds` rounds; the table
shows the round with the median p50 for each.
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.relay_bench import start_relay
from bench.summary import record

SANDPIPER = [str(Path(sys.executable).with_name("sandpiper"))]


class Process:
    """A child with stdin we write and a stdout of JSON lines read by a thread."""

    def __init__(self, command: list[str]) -> None:
        self.popen = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put((time.perf_counter(), line))

    def first_line(self, timeout: float = 20) -> str:
        return self.lines.get(timeout=timeout)[1]

    def event(self, kind: str, timeout: float = 20) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            stamp, line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == kind:
                return stamp, event

    def write(self, line: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=10)


def member(relay: str, *args: str) -> Process:
    return Process([*SANDPIPER, *args, "--json", "--relay", relay, "--listen-host", "127.0.0.1"])


def join_to_first_message(relay: str, joins: int) -> list[float]:
    """Seconds from launching `sandpiper join` (stdin: one line, then EOF) to that line arriving."""
    times = []
    alice = member(relay, "create", "--nick", "alice")
    try:
        invite = json.loads(alice.first_line())["code"]
        for index in range(joins):
            started = time.perf_counter()
            joiner = subprocess.Popen(
                [
                    *SANDPIPER,
                    "join",
                    invite,
                    "--nick",
                    f"bob{index}",
                    "--json",
                    "--relay",
                    relay,
                    "--listen-host",
                    "127.0.0.1",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            assert joiner.stdin is not None
            joiner.stdin.write(f"hello {index}\n".encode())
            joiner.stdin.close()
            while True:
                stamp, event = alice.event("message")
                if event["text"] == f"hello {index}":
                    times.append(stamp - started)
                    break
            joiner.wait(timeout=30)
    finally:
        alice.stop()
    return times


def stream(sender: Process, receiver: Process, messages: int) -> tuple[list[float], float]:
    """Lock-step one-way latencies (µs), then the rate of a burst of `messages` lines."""
    latencies = []
    for index in range(messages):
        sent = time.perf_counter()
        sender.write(f"lat {index}")
        stamp, _ = receiver.event("message")
        latencies.append((stamp - sent) * 1e6)
    started = time.perf_counter()
    for index in range(messages):
        sender.write(f"burst {index}")
    last = started
    for _ in range(messages):
        last, _ = receiver.event("message")
    return latencies, messages / (last - started)


def measure_sandpiper(relay: str, messages: int) -> tuple[list[float], float]:
    alice = member(relay, "create", "--nick", "alice")
    invite = json.loads(alice.first_line())["code"]
    bob = member(relay, "join", invite, "--nick", "bob")
    try:
        bob.event("connected")
        alice.event("connected")
        for _ in range(50):  # warm-up
            alice.write("warm")
            bob.event("message")
        return stream(alice, bob, messages)
    finally:
        alice.stop()
        bob.stop()


def measure_bare(messages: int) -> tuple[list[float], float]:
    receiver = Process([sys.executable, "-m", "bench.bare_pipe", "receive"])
    port = receiver.first_line().strip()
    sender = Process([sys.executable, "-m", "bench.bare_pipe", "send", port])
    try:
        for _ in range(50):
            sender.write("warm")
            receiver.event("message")
        return stream(sender, receiver, messages)
    finally:
        sender.stop()
        receiver.stop()


def _median_run(runs: list[tuple[list[float], float]]) -> tuple[list[float], float]:
    """The run with the median p50, and the median burst rate."""
    ordered = sorted(runs, key=lambda run: percentile(run[0], 0.5))
    return ordered[len(ordered) // 2][0], statistics.median(rate for _, rate in runs)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--joins", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="sandpiper-peer-bench-"))
    relay_process, endpoint = start_relay(
        workdir / "relay.log", "--create-burst", "100", "--max-rooms-per-source", "100"
    )
    relay = endpoint.removeprefix("tcp://")
    try:
        joins = join_to_first_message(relay, args.joins)
        bare_runs, our_runs = [], []
        for _ in range(args.rounds):  # alternate, so both see the same machine
            bare_runs.append(measure_bare(args.messages))
            our_runs.append(measure_sandpiper(relay, args.messages))
    finally:
        relay_process.terminate()
        relay_process.wait(timeout=10)
    bare, ours = _median_run(bare_runs), _median_run(our_runs)
    print("peer to peer (loopback): sandpiper vs the same stdin->DEALER->ROUTER->stdout pipe, bare")
    print(
        f"join -> first message delivered: median {statistics.median(joins):.3f} s "
        f"(min {min(joins):.3f}, max {max(joins):.3f}, n={len(joins)}; target <= 0.5 s)"
    )
    rows = [("bare", bare), ("sandpiper", ours)]
    for name, (latencies, rate) in rows:
        print(
            f"{name:>10}: one-way p50 {percentile(latencies, 0.5):7.0f} µs  "
            f"p99 {percentile(latencies, 0.99):7.0f} µs  burst {rate:8.0f} msg/s"
        )
    (bare_lat, bare_rate), (our_lat, our_rate) = bare, ours
    print(
        f"     ratio: p50 {percentile(our_lat, 0.5) / percentile(bare_lat, 0.5):.2f} "
        f"(target <= 1.5), p99 {percentile(our_lat, 0.99) / percentile(bare_lat, 0.99):.2f}, "
        f"msg/s {our_rate / bare_rate:.2f}"
    )
    bare_pipe = "bare pyzmq DEALER->ROUTER pipe"
    for name, fraction in (("p50", 0.5), ("p99", 0.99)):
        ours_us, bare_us = percentile(our_lat, fraction), percentile(bare_lat, fraction)
        target = "<= 1.5" if name == "p50" else ""
        record(
            "peer", f"one-way latency {name}", ours_us, (bare_pipe, bare_us), "µs", target=target
        )
    record("peer", "burst rate", our_rate, (bare_pipe, bare_rate), "msg/s")
    record(
        "peer",
        "join -> first message",
        statistics.median(joins),
        ("", None),
        "s",
        target="<= 0.5 s",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
