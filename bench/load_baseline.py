"""Same-run bare pyzmq baselines for the load benchmark (`python -m bench.load_bench`).

Relay baseline: as many DEALER clients as the relay load, dealt over the same worker processes
and each connecting from its own 127.1.x.y, send requests of the load's mean size, at the
load's measured aggregate rate (one in flight per client, a pause after each reply), to a bare
pyzmq ROUTER that sends every message straight back (bench/echo_server.py).

Fallback baseline: the same members in rooms of ROOM_SIZE, dealt over the same workers, send
the same RECORD_BYTES-byte records at the same pace and broadcast share through a bare pyzmq
two-hop ROUTER (bench/two_hop.py: [to, payload] -> [sender, payload]); a record for the whole
room goes as one frame per recipient, the bare broker having no rooms. Heartbeats go as the
broker's greeting (b"hi", answered with the sender's id). Every record must arrive once.

Both run for their own, shorter, duration: latency is a steady-state figure.
"""

from __future__ import annotations

import base64
import functools
import heapq
import json
import math
import random
import time
from dataclasses import dataclass
from typing import Any

import zmq

from bench import summary
from bench.load_bench import (
    ACTION_GAP,
    LISTEN_PORT,
    RECORD_BYTES,
    REPLY_TIMEOUT,
    ROOM_SIZE,
    SETUP_LIMIT,
    SIGNAL_PAD,
    Failures,
    FallbackMember,
    FallbackWorker,
    Watch,
    WorkerBody,
    WorkerSet,
    _latency_header,
    _latency_row,
    arrivals,
    connect_from,
    drive,
    fallback_specs,
    fallback_worker,
    guess_code,
    relay_specs,
    relay_worker,
    source_address,
    stop_server,
)
from bench.relay_bench import start_bare

ECHO = "bare ROUTER echo, same load"
TWO_HOP = "bare two-hop broker, same load"

# ------------------------------------------------------------------ relay baseline: the load


def relay_request_sizes() -> dict[str, int]:
    """Bytes of each kind of request the relay load sends, as its clients write them."""
    code, nick = guess_code(random.Random(0)), "u123"
    payload = base64.urlsafe_b64encode(bytes(8) + SIGNAL_PAD).decode()  # a signal's 96 bytes
    fields: dict[str, dict[str, Any]] = {
        "create_room": {"nick": nick, "listen_port": LISTEN_PORT},
        "lookup_room": {"code": code, "nick": nick},
        "register_peer": {
            "code": code,
            "nick": nick,
            "host": source_address(123),
            "port": LISTEN_PORT,
        },
        "signal": {"code": code, "to": "u456", "payload": payload},
        "heartbeat": {"code": code},
        "leave_room": {"code": code},
    }
    return {
        kind: len(json.dumps({"type": kind, "req_id": 100, **extra}).encode())
        for kind, extra in fields.items()
    }


def relay_load_shape(relay: dict[str, Any]) -> tuple[float, int]:
    """(mean seconds between one client's requests, mean request bytes) of the relay load: its
    measured request rate over its clients, its measured mix of request kinds."""
    rate = relay["requests"] / relay["seconds"]
    gap = relay["clients"] / rate if rate else sum(ACTION_GAP) / 2
    sizes = relay_request_sizes()
    mix = {
        label.split()[-1]: stats["count"]
        for label, stats in relay["latencies"].items()
        if label.split()[-1] in sizes
    }
    counted = sum(mix.values())
    size = sum(sizes[kind] * n for kind, n in mix.items()) / counted if counted else 150
    return gap, round(size)


# ------------------------------------------------------------------ relay baseline: clients


@dataclass
class EchoSpec:
    endpoint: str
    indices: list[int]
    seconds: float
    seed: int
    gap: float
    """Mean seconds between one client's reply and its next request (drawn from 0.5x-1.5x)."""
    request_bytes: int


class EchoWorker:
    """One worker process's share of the echo clients, driven by one poller over their sockets:
    each client sends a request, waits for it to come back, pauses, sends the next."""

    def __init__(self, spec: EchoSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        target = spec.endpoint.removeprefix("tcp://")
        self.sockets = [connect_from(self.context, index, target) for index in spec.indices]
        self.position = {sock: position for position, sock in enumerate(self.sockets)}
        self.sent: list[float | None] = [None] * len(self.sockets)
        self.req_ids = [0] * len(self.sockets)
        self.heap: list[tuple[float, int]] = []
        self.latencies: list[float] = []
        self.failures = Failures()
        self.no_reply = 0
        self.requests = 0
        self.poller = zmq.Poller()
        for sock in self.sockets:
            self.poller.register(sock, zmq.POLLIN)
        empty = len(self._frame(0, 0))
        self.pad = max(0, spec.request_bytes - empty - 2)  # ~2 digits more in a req_id

    def _frame(self, req_id: int, pad: int) -> bytes:
        return json.dumps({"type": "echo", "req_id": req_id, "pad": "x" * pad}).encode()

    def handshake(self) -> None:
        """One request each before the clock starts: every connection is up."""
        now = time.perf_counter()
        for position in range(len(self.sockets)):
            self._send(position, now)
        self._await_replies(now + SETUP_LIMIT / 2)
        self._sweep(math.inf, reschedule=False)
        self.latencies.clear()
        self.heap.clear()
        self.requests = 0

    def run(self, started: float) -> None:
        self.heap = [
            (started + self.rng.uniform(0.0, self.spec.gap), p) for p in self.position.values()
        ]
        heapq.heapify(self.heap)
        stop = started + self.spec.seconds
        next_sweep = started + 1.0
        while (now := time.perf_counter()) < stop:
            while self.heap and self.heap[0][0] <= now:
                self._send(heapq.heappop(self.heap)[1], now)
            if now >= next_sweep:
                next_sweep = now + 1.0
                self._sweep(now)
            wait = (self.heap[0][0] - now) if self.heap else 0.05
            self._receive(max(0, min(50, math.ceil(wait * 1000))), schedule=True)
        self._await_replies(time.perf_counter() + REPLY_TIMEOUT)

    def finish(self) -> dict[str, Any]:
        self._sweep(math.inf, reschedule=False)
        self.context.destroy(linger=0)
        return {
            "latencies": {"request": self.latencies},
            "requests": self.requests,
            "no_reply": self.no_reply,
            "failure_count": self.failures.count,
            "failures": self.failures.texts,
        }

    def _send(self, position: int, now: float) -> None:
        self.req_ids[position] += 1
        self.requests += 1
        self.sent[position] = now
        frame = self._frame(self.req_ids[position], self.pad)
        self.sockets[position].send(frame, zmq.NOBLOCK)

    def _await_replies(self, deadline: float) -> None:
        while any(sent is not None for sent in self.sent) and time.perf_counter() < deadline:
            self._receive(50, schedule=False)

    def _sweep(self, now: float, *, reschedule: bool = True) -> None:
        """Requests unanswered for REPLY_TIMEOUT (all of them, `now` being inf) are failures."""
        for position, sent in enumerate(self.sent):
            if sent is not None and now - sent > REPLY_TIMEOUT:
                self.no_reply += 1
                self.failures.add(f"echo client {self.spec.indices[position]}: no reply")
                self.sent[position] = None
                if reschedule:
                    heapq.heappush(self.heap, (now + self.spec.gap, position))

    def _receive(self, timeout_ms: int, *, schedule: bool) -> None:
        for sock, frames in arrivals(self.poller, timeout_ms):
            position = self.position[sock]
            reply, now, sent = json.loads(frames[-1]), time.perf_counter(), self.sent[position]
            if sent is None or reply.get("req_id") != self.req_ids[position]:
                self.failures.add(f"echo client {self.spec.indices[position]}: odd {frames!r}")
                continue
            self.sent[position] = None
            self.latencies.append((now - sent) * 1e6)
            if schedule:
                gap = self.spec.gap * self.rng.uniform(0.5, 1.5)
                heapq.heappush(self.heap, (now + gap, position))


# ------------------------------------------------------------------ fallback baseline: members


class BareFallbackWorker(FallbackWorker):
    """The fallback load's members, rooms, records and checks, through the bare two-hop broker.

    A member's id is the routing id the broker tells it in answer to its greeting; at most one
    greeting of a member is in flight (attach, then a heartbeat every HEARTBEAT_EVERY)."""

    GREETING = 0
    """The key of a member's greeting in its `pending`: greetings carry no request id."""

    def drain(self) -> None:
        self.await_deliveries()  # nothing to detach from

    def _request(self, member: FallbackMember, kind: str, now: float, *_: Any, **__: Any) -> None:
        """Attach and heartbeat: a greeting, whatever the fallback request would carry."""
        member.pending[self.GREETING] = (kind, now, 0)
        member.socket.send(b"hi", zmq.NOBLOCK)

    def _send_record(self, member: FallbackMember, now: float) -> None:
        targets, _, record = self._new_record(member)
        for target in targets:
            member.socket.send_multipart([bytes.fromhex(target.member_id), record], zmq.NOBLOCK)

    def _on_frames(self, member: FallbackMember, frames: list[bytes]) -> None:
        if len(frames) == 2:  # [sender, record]
            self._on_record(member, frames[0].hex(), frames[1], time.perf_counter_ns())
            return
        entry = member.pending.pop(self.GREETING, None)
        if entry is None or len(frames) != 1:
            self.failures.add(f"member {member.index}: unexpected {frames!r}")
            return
        kind, sent, _ = entry
        if kind == "attach":
            member.member_id = frames[0].hex()
        else:
            self.latencies[kind].append((time.perf_counter() - sent) * 1e6)


# ------------------------------------------------------------------ the runs


def _watched(
    server: Any, body: WorkerBody, specs: list[Any], seconds: float, **shape: Any
) -> dict[str, Any]:
    """Workers driven against a bare server process (stopped at the end) while its RSS and CPU
    are sampled: their figures merged, and the server's."""
    try:
        watch = Watch(server)
        idle = watch.idle_rss()
        workers = WorkerSet(body, specs)
        workers.start()
        figures = drive(workers, watch, seconds, watch.sample_if_due)
        figures.update(shape, rss_idle=idle, alive=server.poll() is None)
        return figures
    finally:
        stop_server(server)


def run_echo_baseline(
    clients: int, seconds: float, gap: float, request_bytes: int
) -> dict[str, Any]:
    """`clients` echo clients, dealt as the relay load deals its clients, for `seconds`."""
    echo, endpoint = start_bare("bench.echo_server")
    specs = [
        EchoSpec(spec.endpoint, spec.indices, seconds, spec.seed, gap, request_bytes)
        for spec in relay_specs(endpoint, clients, seconds, abusive=0)
    ]
    body = functools.partial(relay_worker, kind=EchoWorker)
    return _watched(
        echo, body, specs, seconds, clients=clients, gap=gap, request_bytes=request_bytes
    )


def run_two_hop_baseline(members: int, seconds: float) -> dict[str, Any]:
    """`members` members in rooms, dealt as the fallback load deals them, for `seconds`."""
    process, endpoint = start_bare("bench.two_hop")
    body = functools.partial(fallback_worker, kind=BareFallbackWorker)
    return _watched(
        process, body, fallback_specs(endpoint, members, seconds), seconds, members=members
    )


# ------------------------------------------------------------------ report and summary


def baseline_problems(name: str, figures: dict[str, Any]) -> list[str]:
    problems = [f"{name}: {text}" for text in figures["crashes"] + figures["failures"]]
    if figures["failure_count"] > len(figures["failures"]):
        problems.append(f"{name}: ... {figures['failure_count']} failures in all")
    if figures.get("lost") or figures.get("duplicated") or figures.get("misdelivered"):
        problems.append(f"{name}: records lost, duplicated or misdelivered")
    if not figures["alive"]:
        problems.append(f"{name}: the bare server died")
    return problems


def _rss_line(name: str, figures: dict[str, Any], connected: str) -> str:
    return (
        f"  {name} RSS MiB: idle {figures['rss_idle']:.1f}, {connected} "
        f"{figures['rss_ready']:.1f}, peak {figures['rss_peak']:.1f}; fds peak "
        f"{figures['fds_peak']}; CPU {figures['cpu'] * 100:.0f} % of a core"
    )


def report_echo(echo: dict[str, Any]) -> list[str]:
    seconds = echo["seconds"]
    return [
        f"relay baseline: {echo['clients']:,} DEALERs, each from its own 127.1.x.y, to a bare "
        f"pyzmq ROUTER echo for {seconds:g} s; {echo['workers']} worker process(es); loopback",
        f"  {echo['request_bytes']}-byte requests (the load's mean), one in flight per client, "
        f"{echo['gap']:.2f} s apart on average (the load's rate): {echo['requests']:,} requests "
        f"({echo['requests'] / seconds:,.0f}/s), unanswered {echo['no_reply']}",
        _latency_header("request -> reply"),
        _latency_row("echo", echo["latencies"].get("request", {}), seconds),
        _rss_line("echo server", echo, f"{echo['clients']:,} connected"),
    ]


def report_two_hop(bare: dict[str, Any]) -> list[str]:
    seconds, latencies = bare["seconds"], bare["latencies"]
    sends, deliveries = bare.get("sends", 0), bare.get("deliveries", 0)
    return [
        f"fallback baseline: {bare['members']} members in {bare.get('rooms', 0)} rooms of "
        f"{ROOM_SIZE} through a bare pyzmq two-hop ROUTER for {seconds:g} s; {bare['workers']} "
        f"worker process(es); loopback; {RECORD_BYTES}-byte records, a room-wide one sent as "
        f"one frame per recipient",
        f"  records sent {sends:,} ({sends / seconds:,.0f}/s, {bare.get('broadcasts', 0):,} to "
        f"the whole room), deliveries {deliveries:,} ({deliveries / seconds:,.0f}/s) of "
        f"{bare.get('expected', 0):,} expected; lost {bare.get('lost', 0)}, duplicated "
        f"{bare.get('duplicated', 0)}, misdelivered {bare.get('misdelivered', 0)}",
        _latency_header("one way / round trip"),
        _latency_row("send -> deliver", latencies.get("forward", {}), seconds),
        _latency_row("greeting -> id (heartbeat)", latencies.get("heartbeat", {}), seconds),
        _rss_line("two-hop broker", bare, f"{bare['members']} greeted"),
    ]


def report(echo: dict[str, Any] | None, bare: dict[str, Any] | None) -> tuple[str, list[str]]:
    """The baselines as fixed-width text, and their problems."""
    lines: list[str] = []
    problems: list[str] = []
    if echo is not None:
        lines += report_echo(echo)
        problems += baseline_problems("relay baseline", echo)
    if bare is not None:
        lines += ["", *report_two_hop(bare)]
        problems += baseline_problems("fallback baseline", bare)
    lines.append(f"baseline problems: {len(problems) or 'none'}")
    lines += [f"  {problem}" for problem in problems]
    return "\n".join(lines), problems


def _growth(figures: dict[str, Any], key: str) -> float:
    return float(figures[key] - figures["rss_idle"])


def _early_peak_growth(figures: dict[str, Any], seconds: float) -> float:
    """RSS growth over idle at its highest within the first `seconds` of load (10 s samples)."""
    early = [rss for at, rss in figures["rss_series"] if at <= seconds + 1.0]
    return float(max(early, default=figures["rss_ready"]) - figures["rss_idle"])


def record(
    relay: dict[str, Any] | None,
    echo: dict[str, Any] | None,
    fallback: dict[str, Any] | None,
    bare: dict[str, Any] | None,
) -> list[summary.Row]:
    """The load's headline figures beside their baselines, in the summary table; the rows."""
    first = len(summary.ROWS)
    if relay is not None and echo is not None:
        _record_pair("relay under load", relay, echo, ECHO, f"{relay['clients']:,} connected")
        ours, base = relay["request_latency"], echo["latencies"]["request"]
        _record_latency("relay under load: request", ours, base, ECHO)
    if fallback is not None and bare is not None:
        _record_pair(
            "fallback under load", fallback, bare, TWO_HOP, f"{fallback['members']} attached"
        )
        ours, base = fallback["latencies"]["forward"], bare["latencies"]["forward"]
        _record_latency("fallback under load: deliver", ours, base, TWO_HOP)
        summary.record(
            "load",
            "fallback under load: deliveries",
            fallback.get("deliveries", 0) / fallback["seconds"],
            (TWO_HOP, bare.get("deliveries", 0) / bare["seconds"]),
            "/s",
        )
    return summary.ROWS[first:]


def _record_latency(what: str, ours: dict[str, float], base: dict[str, float], name: str) -> None:
    for figure in ("p50", "p99"):
        summary.record("load", f"{what} {figure}", ours[figure], (name, base[figure]), "µs")


def _record_pair(
    what: str, ours: dict[str, Any], base: dict[str, Any], name: str, connected: str
) -> None:
    """RSS growth over idle: with every connection up; at its peak in the baseline's time."""
    summary.record(
        "load",
        f"{what}: RSS growth, {connected}",
        _growth(ours, "rss_ready"),
        (name, _growth(base, "rss_ready")),
        "MiB",
    )
    seconds = min(ours["seconds"], base["seconds"])
    summary.record(
        "load",
        f"{what}: RSS growth, first {seconds:g} s",
        _early_peak_growth(ours, seconds),
        (name, _early_peak_growth(base, seconds)),
        "MiB",
    )
