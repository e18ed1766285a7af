"""Wormhole benchmark: share a code, deliver a short text; sandpiper vs magic-wormhole.

Each round, both tools do the same job on loopback, in alternating order: a sender is launched
with the text and prints a code, a receiver is launched with that code, and the clock stops
when the text is on the receiver's stdout. magic-wormhole runs from a throw-away virtualenv
(pip-installed at the start) against its own mailbox server; sandpiper against its own relay.
Both senders are given the text at launch, as `wormhole send --text TEXT` and
`echo TEXT | sandpiper create` are.

    python -m bench.wormhole_bench [--rounds 7] [--venv DIR]

"code -> text": from launching the receiver (code known) to the text arriving; "end to end":
from launching the sender to the text arriving. Medians over the rounds, after one discarded
warm-up round per tool. Without PyPI, magic-wormhole is reported unavailable and only
sandpiper is measured.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.peer_bench import member
from bench.relay_bench import start_relay
from bench.summary import record

INSTALL_SECONDS = 300.0
ROUND_SECONDS = 60.0
SENDER_GRACE = 5.0
"""How long a sender may take to exit by itself once the text arrived, before it is killed."""
PACKAGES = ("magic-wormhole", "magic-wormhole-mailbox-server")
WORMHOLE_CODE = re.compile(r"Wormhole code is: (\S+)")

Round = Callable[[], tuple[float, float]]
"""One delivery: (code -> text, end to end) in seconds."""


class Unavailable(Exception):
    """magic-wormhole could not be installed or started; the message says why."""


class RoundFailed(Exception):
    """One delivery did not complete in time; the round is recorded as a failure."""


class Lines:
    """A child whose stdout and stderr lines are read, time-stamped, by a thread."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # wormhole prints its code on stderr
            text=True,
            env=env,
        )
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put((time.perf_counter(), line.rstrip("\n")))

    def wait_for(self, wanted: Callable[[str], object], deadline: float) -> tuple[float, str]:
        while True:
            try:
                stamp, line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                tail = " | ".join(self.seen[-5:])
                raise RoundFailed(f"timed out; last output: {tail or '(none)'}") from None
            self.seen.append(line)
            if wanted(line):
                return stamp, line


def finish(popen: subprocess.Popen[Any], grace: float) -> None:
    """Let the child exit by itself for `grace` seconds, then kill it."""
    try:
        popen.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(timeout=10)


def free_port() -> int:
    """A loopback port free right now (the OS may hand it out again later: used at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---------------------------------------------------------------------- magic-wormhole


def install_wormhole(venv: Path) -> dict[str, Any]:
    """Create `venv` if needed and pip-install magic-wormhole into it; versions, install time."""
    started = time.monotonic()
    deadline = started + INSTALL_SECONDS
    python = venv / "bin" / "python"
    if not python.exists():
        _step([sys.executable, "-m", "venv", str(venv)], deadline, "creating the virtualenv")
    _step([str(python), "-m", "pip", "install", *PACKAGES], deadline, "pip install")
    install_seconds = time.monotonic() - started
    script = "import importlib.metadata as m, sys; print(*map(m.version, sys.argv[1:]))"
    versions = _step([str(python), "-c", script, *PACKAGES], deadline, "reading versions")
    wormhole, mailbox = versions.split()
    return {"version": wormhole, "mailbox_version": mailbox, "install_seconds": install_seconds}


def _step(command: list[str], deadline: float, what: str) -> str:
    """Run one installation step within the installation's time; its stdout."""
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=max(1.0, deadline - time.monotonic()),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{what} took over {INSTALL_SECONDS:.0f} s") from None
    except OSError as exc:
        raise Unavailable(f"{what}: {exc}") from None
    if done.returncode != 0:
        # pip ends with its reason (e.g. no matching distribution); the warnings come first.
        tail = (done.stderr or done.stdout).strip().splitlines()[-2:]
        raise Unavailable(f"{what} failed (exit {done.returncode}): {' '.join(tail)}")
    return done.stdout


def start_mailbox(venv: Path, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The mailbox (rendezvous) server on a loopback port; its relay URL once it accepts."""
    port = free_port()
    log = workdir / "mailbox.log"
    command = [
        str(venv / "bin" / "twist"),
        "wormhole-mailbox",
        f"--port=tcp:{port}:interface=127.0.0.1",
        f"--channel-db={workdir / 'mailbox.sqlite'}",  # default: relay.sqlite in the cwd
    ]
    try:
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    except OSError as exc:
        raise Unavailable(f"mailbox server: {exc}") from None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.1)
            continue
        return process, f"ws://127.0.0.1:{port}/v1"
    finish(process, 0)
    tail = " ".join(log.read_text(errors="replace").strip().splitlines()[-2:])
    raise Unavailable(f"mailbox server did not start: {tail[-300:] or '(no output)'}")


def wormhole_round(venv: Path, relay_url: str, transit: str, text: str) -> tuple[float, float]:
    # Both clients get the local mailbox and a transit helper nobody listens on, so nothing
    # reaches for the public servers; a text message never uses transit anyway.
    base = [str(venv / "bin" / "wormhole"), "--relay-url", relay_url, "--transit-helper", transit]
    env = dict(os.environ, WORMHOLE_QR="false")
    deadline = time.monotonic() + ROUND_SECONDS
    launched = time.perf_counter()
    sender = Lines([*base, "send", "--text", text], env)
    receiver: Lines | None = None
    try:
        _, line = sender.wait_for(WORMHOLE_CODE.search, deadline)
        shown = WORMHOLE_CODE.search(line)
        assert shown is not None
        receiving = time.perf_counter()
        receiver = Lines([*base, "receive", "--only-text", shown.group(1)], env)
        arrived, _ = receiver.wait_for(lambda line: line == text, deadline)
    finally:
        finish(sender.popen, SENDER_GRACE)  # it exits by itself once the receiver acked
        if receiver is not None:
            finish(receiver.popen, SENDER_GRACE)
    return arrived - receiving, arrived - launched


# ---------------------------------------------------------------------------- sandpiper


def sandpiper_round(relay: str, text: str) -> tuple[float, float]:
    deadline = time.monotonic() + ROUND_SECONDS
    launched = time.perf_counter()
    sender = member(relay, "create", "--nick", "sender")
    receiver = None
    try:
        # Like `echo TEXT | sandpiper create`: the line waits for the first member, and at
        # end of input the sender leaves once it is acknowledged.
        sender.write(text)
        assert sender.popen.stdin is not None
        sender.popen.stdin.close()
        _, created = sender.event("room_created", timeout=_left(deadline))
        receiving = time.perf_counter()
        receiver = member(relay, "join", created["code"], "--nick", "receiver")
        while True:
            arrived, event = receiver.event("message", timeout=_left(deadline))
            if event.get("text") == text:
                return arrived - receiving, arrived - launched
    except queue.Empty:
        raise RoundFailed("timed out") from None
    finally:
        finish(sender.popen, SENDER_GRACE)
        if receiver is not None:
            receiver.stop()  # a joiner stays in the room until its input ends


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise queue.Empty
    return left


# ------------------------------------------------------------------------------ rounds


def alternate(rounds: int, tools: dict[str, Round]) -> dict[str, dict[str, Any]]:
    """Samples per tool; the order flips each round so neither always runs on a warmer box."""
    results: dict[str, dict[str, Any]] = {
        name: {"code_to_text": [], "end_to_end": [], "failures": []} for name in tools
    }
    for index in range(-1, rounds):  # round -1 warms caches and imports; discarded
        order = list(tools) if index % 2 == 0 else list(reversed(tools))
        for name in order:
            try:
                code_to_text, end_to_end = tools[name]()
            except (RoundFailed, OSError, subprocess.SubprocessError) as exc:
                label = "warm-up" if index < 0 else f"round {index + 1}"
                results[name]["failures"].append(f"{label}: {exc}")
                continue
            if index >= 0:
                results[name]["code_to_text"].append(code_to_text)
                results[name]["end_to_end"].append(end_to_end)
    return results


def run(rounds: int, venv: Path | None, text: str) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="sandpiper-wormhole-bench-"))
    venv_dir = venv.resolve() if venv is not None else workdir / "venv"
    processes: list[subprocess.Popen[Any]] = []
    wormhole: dict[str, Any] = {"available": True}
    try:
        try:
            wormhole.update(install_wormhole(venv_dir))
            mailbox, relay_url = start_mailbox(venv_dir, workdir)
            processes.append(mailbox)
        except Unavailable as exc:
            wormhole.update(available=False, reason=str(exc))
        relay_process, endpoint = start_relay(
            workdir / "relay.log",
            *("--create-burst", "50000", "--max-rooms-per-source", "50000"),  # all from 127.0.0.1
            *("--state-dir", str(workdir / "relay-state")),  # not the user's data directory
        )
        processes.append(relay_process)
        relay = endpoint.removeprefix("tcp://")
        tools: dict[str, Round] = {"sandpiper": lambda: sandpiper_round(relay, text)}
        if wormhole["available"]:
            transit = f"tcp:127.0.0.1:{free_port()}"
            tools["wormhole"] = lambda: wormhole_round(venv_dir, relay_url, transit, text)
        measured = alternate(rounds, tools)
    finally:
        for process in processes:
            process.terminate()
            finish(process, 10)
        shutil.rmtree(workdir, ignore_errors=True)  # holds the throw-away virtualenv too
    wormhole.update(measured.get("wormhole", {}))
    return {
        "rounds": rounds,
        "text": text,
        "sandpiper": _summarised(measured["sandpiper"]),
        "wormhole": _summarised(wormhole),
        "ratio": _ratios(measured),
    }


# ------------------------------------------------------------------------------ report


FIGURES = ("code_to_text", "end_to_end")


def _summarised(tool: dict[str, Any]) -> dict[str, Any]:
    """The tool's samples plus {figure}_s: median, min and max seconds (None: no round)."""
    for figure in FIGURES:
        samples = tool.get(figure)
        if samples:
            tool[f"{figure}_s"] = {
                "median": statistics.median(samples),
                "min": min(samples),
                "max": max(samples),
            }
        elif samples is not None:
            tool[f"{figure}_s"] = None
    return tool


def _ratios(measured: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Median sandpiper / median magic-wormhole per figure (None: one side has no rounds)."""
    ratios: dict[str, float | None] = {}
    for figure in FIGURES:
        ours = measured["sandpiper"][figure]
        theirs = measured.get("wormhole", {}).get(figure) or []
        both = ours and theirs
        ratios[figure] = statistics.median(ours) / statistics.median(theirs) if both else None
    return ratios


def _cell(figures: dict[str, float] | None) -> str:
    if figures is None:
        return f"{'no successful round':>24}"
    return f"{figures['median']:>7.3f} s {figures['min']:>6.3f} {figures['max']:>6.3f}"


def _ratio(ratio: float | None) -> str:
    return f"{'-' if ratio is None else f'{ratio:.2f}':>9}{'':>15}"


def report(figures: dict[str, Any]) -> str:
    ours, theirs = figures["sandpiper"], figures["wormhole"]
    version = theirs.get("version", "")
    lines = [
        f"share a code, deliver {figures['text']!r}: sandpiper vs magic-wormhole {version}".strip(),
        f"(loopback, local relay / mailbox server, {figures['rounds']} alternating rounds)",
        f"{'':<16}| {'code -> text':^24} | {'end to end':^24}",
        f"{'':<16}| {'median':>9} {'min':>6} {'max':>6} | {'median':>9} {'min':>6} {'max':>6}",
    ]
    rows = [("sandpiper", ours)]
    if theirs["available"]:
        rows.insert(0, ("magic-wormhole", theirs))
    for name, tool in rows:
        lines.append(f"{name:<16}| {_cell(tool['code_to_text_s'])} | {_cell(tool['end_to_end_s'])}")
    if theirs["available"]:
        ratio = figures["ratio"]
        lines.append(
            f"{'ratio sp / mw':<16}| {_ratio(ratio['code_to_text'])} | "
            f"{_ratio(ratio['end_to_end'])}"
        )
        lines.append(
            f"magic-wormhole {version} with mailbox server {theirs['mailbox_version']}, "
            f"installed in {theirs['install_seconds']:.1f} s"
        )
    else:
        lines.append(f"magic-wormhole unavailable: {theirs['reason']}")
    for name, tool in rows:
        lines.extend(f"{name} failed {failure}" for failure in tool["failures"])
    return "\n".join(line.rstrip() for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="measured rounds per tool")
    parser.add_argument(
        "--venv", type=Path, help="virtualenv for magic-wormhole, kept (default: a temporary one)"
    )
    parser.add_argument("--text", default="build finished", help="the text to deliver")
    args = parser.parse_args(argv)
    figures = run(args.rounds, args.venv, args.text)
    print(report(figures))
    theirs = figures["wormhole"]
    name = f"magic-wormhole {theirs.get('version', '')}".strip()
    for key, label in (("code_to_text_s", "code -> text"), ("end_to_end_s", "send -> text")):
        ours = figures["sandpiper"][key]["median"]
        baseline = theirs[key]["median"] if theirs["available"] else None
        record("share a code", label, ours, (name, baseline), "s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
