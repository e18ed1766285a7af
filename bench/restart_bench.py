"""Relay restart benchmark: how long after a SIGKILLed relay is back a room is whole again.

Two members chat directly; the relay is killed (SIGKILL) and restarted on the same ports and
state directory. Measured from the restarted relay's "listening" line: each member's
`rejoined` event, and a new member's first message delivered. A monitor's restart report too.

    python -m bench.restart_bench [--rounds 5]

No baseline exists for this (a bare pyzmq setup has no rooms to lose); it is the time users
wait before new members can join again. Members heartbeat every 5 s, so up to ~5 s is by design.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.peer_bench import SANDPIPER, Process, member
from bench.relay_bench import start_relay


def start(log: Path, state: Path, port: int, pub_port: int) -> subprocess.Popen[bytes]:
    process, _ = start_relay(log, "--state-dir", str(state), port=port, pub_port=pub_port)
    return process


def one_round(workdir: Path, index: int) -> tuple[float, float, float]:
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    state = workdir / f"state{index}"
    relay = start(workdir / f"relay{index}a.log", state, *ports)
    address = f"127.0.0.1:{ports[0]}"
    people: list[Process] = []
    try:
        watcher = Process([*SANDPIPER, "monitor", "--json", "--relay", address])
        people.append(watcher)
        watcher.event("connected")
        alice = member(address, "create", "--nick", "alice")
        people.append(alice)
        invite = json.loads(alice.first_line())["code"]
        bob = member(address, "join", invite, "--nick", "bob")
        people.append(bob)
        bob.event("connected")
        relay.send_signal(signal.SIGKILL)
        relay.wait()
        relay = start(workdir / f"relay{index}b.log", state, *ports)
        back = time.perf_counter()
        rejoined = max(alice.event("rejoined")[0], bob.event("rejoined")[0]) - back
        gap = watcher.event("gap")[0] - back
        carol = member(address, "join", invite, "--nick", "carol")
        people.append(carol)
        carol.event("connected")
        carol.write("hello")
        delivered = alice.event("message")[0] - back
        return rejoined, gap, delivered
    finally:
        for person in people:
            person.stop()
        relay.kill()
        relay.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="sandpiper-restart-bench-"))
    rounds = [one_round(workdir, index) for index in range(args.rounds)]
    print(
        "relay SIGKILL + restart, seconds after the new relay listens (median of "
        f"{args.rounds}; min-max):"
    )
    for name, column in zip(
        (
            "both members re-claimed the room",
            "monitor reported the restart",
            "new joiner's message delivered",
        ),
        zip(*rounds, strict=True),
        strict=True,
    ):
        print(
            f"  {name:<34} {statistics.median(column):5.2f} s  "
            f"({min(column):.2f}-{max(column):.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
