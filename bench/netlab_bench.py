"""Network-lab benchmark: time to `connected` in every path scenario, through real NATs.

Each run builds a fresh lab (tests/netlab/lab.py), starts the relay and the fallback server on
its WAN, lets alice create a room and times bob's `sandpiper join` from process start to the
moment both members report `connected` (and the path they report). The baseline, measured in
the same run from bob's namespace, is a bare pyzmq client process that starts, connects to the
relay and gets one answer: the least any joiner could take before anything else.
For the cut scenario it also times the cut -> `fallback` and restore -> `direct` moves.

    python -m bench.netlab_bench [--runs 5]        (needs root, iproute2 and nftables)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.helpers import Member
from tests.netlab.conftest import LabRun
from tests.netlab.lab import FALLBACK_PORT, RELAY_PORT, SERVICES, Host, Lab, unavailable

Topology = Callable[[Lab], tuple[Host, Host, str | None]]
"""Builds a scenario: (alice's host, bob's host, the address to cut alice from, if any)."""

BARE_CLIENT = f"""
import zmq
context = zmq.Context()
dealer = context.socket(zmq.DEALER)
dealer.connect("tcp://{SERVICES}:{RELAY_PORT}")
dealer.send(b'{{"type": "observe_address"}}')
assert dealer.poll(10000)
dealer.recv()
"""


def same_home(lab: Lab) -> tuple[Host, Host, str | None]:
    home = lab.home("home")
    return lab.host_in(home, "one"), lab.host_in(home, "two"), None


def public_and_nat(lab: Lab) -> tuple[Host, Host, str | None]:
    home = lab.home("home")
    return lab.public_host("pub"), lab.host_in(home, "one"), home.router.address


def two_preserving_nats(lab: Lab) -> tuple[Host, Host, str | None]:
    east, west = lab.home("east"), lab.home("west")
    return lab.host_in(east, "one"), lab.host_in(west, "two"), None


def two_random_nats(lab: Lab) -> tuple[Host, Host, str | None]:
    east, west = lab.home("east", "random"), lab.home("west", "random")
    return lab.host_in(east, "one"), lab.host_in(west, "two"), None


def firewalled(lab: Lab) -> tuple[Host, Host, str | None]:
    office = lab.home("office", only_to=[RELAY_PORT, FALLBACK_PORT])
    return lab.public_host("pub"), lab.host_in(office, "one"), None


SCENARIOS: list[tuple[str, Topology, bool]] = [
    ("one home network", same_home, False),
    ("public + behind NAT", public_and_nat, False),
    ("two port-preserving NATs", two_preserving_nats, False),
    ("two random-port NATs", two_random_nats, False),
    ("firewall: services only", firewalled, False),
    ("direct path cut, restored", public_and_nat, True),
]


def bare_client(host: Host) -> float:
    started = time.perf_counter()
    subprocess.run([*host.prefix(), sys.executable, "-c", BARE_CLIENT], check=True, timeout=30)
    return time.perf_counter() - started


def one_run(topology: Topology, cut: bool, workdir: Path) -> dict[str, object]:
    lab = Lab()
    running = LabRun(lab, workdir)
    try:
        running.start()
        first, second, cut_address = topology(lab)
        baseline = bare_client(second)
        alice = running.member(first, "create", "--nick", "alice")
        code = alice.event("room_created")["code"]
        started = time.perf_counter()
        bob = running.member(second, "join", code, "--nick", "bob")
        path = bob.event("connected", 30, nick="alice")["path"]
        alice.event("connected", 30, nick="bob")
        result: dict[str, object] = {
            "path": path,
            "connected": time.perf_counter() - started,
            "baseline": baseline,
        }
        if cut and cut_address is not None:
            result.update(cut_and_restore(lab, first, cut_address, alice, bob))
        return result
    finally:
        running.stop()
        lab.close()


def cut_and_restore(
    lab: Lab, host: Host, address: str, alice: Member, bob: Member
) -> dict[str, object]:
    lab.cut(host, address)
    cut_at = time.perf_counter()
    alice.say("during the cut")
    bob.event("path_changed", 30, nick="alice", path="fallback")
    to_fallback = time.perf_counter() - cut_at
    bob.event("message", 30, text="during the cut")
    lab.restore(host)
    restored_at = time.perf_counter()
    bob.event("path_changed", 60, nick="alice", path="direct")
    return {"to_fallback": to_fallback, "back_direct": time.perf_counter() - restored_at}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    reason = unavailable()
    if reason is not None:
        print(f"network-lab benchmark skipped: {reason}")
        return 0
    print(f"## Network lab: time from `sandpiper join` to connected (median of {args.runs})")
    print()
    print("| scenario | path | connected | bare client | ratio | notes |")
    print("|---|---|---|---|---|---|")
    status = 0
    with tempfile.TemporaryDirectory() as workdir:
        for name, topology, cut in SCENARIOS:
            runs = [one_run(topology, cut, Path(workdir)) for _ in range(args.runs)]
            paths = sorted({str(run["path"]) for run in runs})
            connected = statistics.median(float(run["connected"]) for run in runs)  # type: ignore[arg-type]
            baseline = statistics.median(float(run["baseline"]) for run in runs)  # type: ignore[arg-type]
            notes = ""
            if cut:
                fallback = statistics.median(float(run["to_fallback"]) for run in runs)  # type: ignore[arg-type]
                direct = statistics.median(float(run["back_direct"]) for run in runs)  # type: ignore[arg-type]
                notes = f"cut -> fallback {fallback:.2f} s; restored -> direct {direct:.2f} s"
            if len(paths) > 1:
                status = 1
                notes += f" PATHS DIFFER: {paths}"
            print(
                f"| {name} | {'/'.join(paths)} | {connected:.2f} s | {baseline:.2f} s "
                f"| {connected / baseline:.1f}x | {notes} |",
                flush=True,
            )
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
