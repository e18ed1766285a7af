"""Relay benchmark: lookup round trip and requests/s against a bare pyzmq ROUTER echo server.

Both servers run as separate processes on loopback; lock-step DEALER clients run in 1, 4 and
16 processes; the two servers are measured alternately in the same run. Relay RSS is measured
idle and holding 10,000 live rooms (two members each).

    python -m bench.relay_bench [--duration 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped, unused-ignore]  # no stubs here
import zmq

from bench.summary import record

LISTENING = re.compile(r"relay listening on (tcp://\S+), room events on (tcp://\S+)")
CLIENT_COUNTS = (1, 4, 16)
ROOMS_FOR_RSS = 10_000
TARGETS = {"p50_ratio": 1.5, "throughput_ratio": 0.7, "idle_mib": 40, "rooms_mib": 120}


@dataclass
class Result:
    p50_us: float
    p99_us: float
    per_second: float


def _client(endpoint: str, frame: bytes, start: float, stop: float, out: Any) -> None:
    """One lock-step client: request, wait for the answer, repeat; latencies in µs."""
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(endpoint)
    dealer.send(frame)  # connect and warm up before the clock starts
    dealer.recv()
    while time.time() < start:
        dealer.send(frame)
        dealer.recv()
    latencies: list[float] = []
    clock = time.perf_counter
    while time.time() < stop:
        sent = clock()
        dealer.send(frame)
        dealer.recv()
        latencies.append((clock() - sent) * 1e6)
    dealer.close()
    context.term()
    out.put(latencies)


def measure(endpoint: str, frame: bytes, clients: int, duration: float) -> Result:
    queue: Any = mp.get_context("fork").Queue()
    start = time.time() + 0.5 + 0.05 * clients
    stop = start + duration
    workers = [
        mp.get_context("fork").Process(target=_client, args=(endpoint, frame, start, stop, queue))
        for _ in range(clients)
    ]
    for worker in workers:
        worker.start()
    latencies: list[float] = []
    for _ in workers:
        latencies.extend(queue.get(timeout=duration + 60))
    for worker in workers:
        worker.join(timeout=30)
    latencies.sort()
    return Result(
        p50_us=latencies[len(latencies) // 2],
        p99_us=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        per_second=len(latencies) / duration,
    )


def start_bare(module: str) -> tuple[subprocess.Popen[str], str]:
    """A bare pyzmq baseline server, `python -m module`, which prints the loopback port it
    listens on; the process and its endpoint."""
    process = subprocess.Popen([sys.executable, "-m", module], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return process, f"tcp://127.0.0.1:{port}"


def start_relay(
    log: Path, *options: str, port: int = 0, pub_port: int = 0
) -> tuple[subprocess.Popen[bytes], str]:
    """A relay process (ports 0: any free ones); its ROUTER endpoint once it listens."""
    script = Path(sys.executable).with_name("sandpiper")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "sandpiper"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "relay", "--port", str(port), "--pub-port", str(pub_port), *options],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        match = LISTENING.search(log.read_text())
        if match:
            return process, match.group(1)
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"relay did not start:\n{log.read_text()}")


class Client:
    def __init__(self, context: zmq.Context[Any], endpoint: str) -> None:
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)

    def ask(self, **fields: Any) -> dict[str, Any]:
        self.socket.send(json.dumps(fields).encode())
        if not self.socket.poll(10_000):
            raise RuntimeError(f"no reply to {fields['type']}")
        reply: dict[str, Any] = json.loads(self.socket.recv())
        if reply["type"] == "error":
            raise RuntimeError(f"relay refused {fields['type']}: {reply}")
        return reply


def rss_mib(process: subprocess.Popen[Any]) -> float:
    return float(psutil.Process(process.pid).memory_info().rss) / 2**20


def fill_rooms(context: zmq.Context[Any], endpoint: str, rooms: int) -> None:
    """`rooms` live rooms, each with its creator and one joiner, from 20 + 20 connections."""
    creators = [Client(context, endpoint) for _ in range(20)]
    joiners = [Client(context, endpoint) for _ in range(20)]
    for index in range(rooms):
        code = creators[index % 20].ask(type="create_room", nick="host", listen_port=6001)["code"]
        joiners[index % 20].ask(type="register_peer", code=code, nick="guest")
    for client in creators + joiners:
        client.socket.close()


def run(duration: float, rounds: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="sandpiper-bench-"))
    generous = (
        "--create-burst",
        "50000",
        "--max-rooms-per-source",
        "50000",
        "--member-timeout",
        "10m",
    )
    context: zmq.Context[Any] = zmq.Context()
    echo, echo_endpoint = start_bare("bench.echo_server")
    relay, relay_endpoint = start_relay(workdir / "relay.log", *generous)
    try:
        setup = Client(context, relay_endpoint)
        code = setup.ask(type="create_room", nick="alice", listen_port=6001)["code"]
        Client(context, relay_endpoint).ask(
            type="register_peer", code=code, nick="bob", host="192.168.1.101", port=6002
        )
        frame = json.dumps(
            {"type": "lookup_room", "code": code, "nick": "carol", "req_id": 1}
        ).encode()
        idle = rss_mib(relay)
        for endpoint in (echo_endpoint, relay_endpoint):  # warm both up; figures discarded
            measure(endpoint, frame, 4, 1.0)
        rows = []
        for clients in CLIENT_COUNTS:
            echo_runs, relay_runs = [], []
            for _ in range(rounds):
                echo_runs.append(measure(echo_endpoint, frame, clients, duration))
                relay_runs.append(measure(relay_endpoint, frame, clients, duration))
            rows.append(
                {"clients": clients, "echo": _median(echo_runs), "relay": _median(relay_runs)}
            )
        setup.ask(type="heartbeat")
        fill_rooms(context, relay_endpoint, ROOMS_FOR_RSS)
        with_rooms = rss_mib(relay)
    finally:
        for process in (echo, relay):
            process.terminate()
            process.wait(timeout=10)
        context.destroy(linger=0)
    return {"rows": rows, "idle_mib": idle, "rooms_mib": with_rooms}


def _median(results: list[Result]) -> Result:
    return Result(
        p50_us=statistics.median(r.p50_us for r in results),
        p99_us=statistics.median(r.p99_us for r in results),
        per_second=statistics.median(r.per_second for r in results),
    )


def report(figures: dict[str, Any]) -> str:
    lines = [
        "relay lookup_room vs bare pyzmq ROUTER echo (same run, loopback, lock-step clients)",
        f"{'clients':>7} | {'echo p50':>9} {'relay p50':>9} {'ratio':>6} | {'echo p99':>9} "
        f"{'relay p99':>9} | {'echo req/s':>10} {'relay req/s':>11} {'ratio':>6}",
    ]
    for row in figures["rows"]:
        echo, relay = row["echo"], row["relay"]
        lines.append(
            f"{row['clients']:>7} | {echo.p50_us:>7.0f}µs {relay.p50_us:>7.0f}µs "
            f"{relay.p50_us / echo.p50_us:>6.2f} | {echo.p99_us:>7.0f}µs {relay.p99_us:>7.0f}µs | "
            f"{echo.per_second:>10.0f} {relay.per_second:>11.0f} "
            f"{relay.per_second / echo.per_second:>6.2f}"
        )
    lines.append(
        f"relay RSS: idle {figures['idle_mib']:.1f} MiB (target <= {TARGETS['idle_mib']}), "
        f"with {ROOMS_FOR_RSS:,} live rooms x 2 members {figures['rooms_mib']:.1f} MiB "
        f"(target <= {TARGETS['rooms_mib']})"
    )
    lines.append(
        f"targets: p50 ratio <= {TARGETS['p50_ratio']}, throughput ratio >= "
        f"{TARGETS['throughput_ratio']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per setting")
    args = parser.parse_args(argv)
    figures = run(args.duration, args.rounds)
    print(report(figures))
    for row in figures["rows"]:
        echo, relay, clients = row["echo"], row["relay"], row["clients"]
        bare = "bare pyzmq ROUTER echo"
        record("relay", f"lookup p50, {clients} clients", relay.p50_us, (bare, echo.p50_us), "µs")
        record(
            "relay",
            f"lookups/s, {clients} clients",
            relay.per_second,
            (bare, echo.per_second),
            "/s",
            target=">= 0.7",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
