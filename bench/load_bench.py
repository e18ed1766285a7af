"""Load benchmark: 1,000 simulated clients on one relay, 200 members on one fallback server.

Bounded in count and time, loopback only, real server processes. Relay load: clients in small
groups create a room, join it (`lookup_room`, `register_peer`), signal each other, heartbeat
and leave, then start over, for a fixed duration; each client connects from its own loopback
address (127.1.x.y), as distinct users would, so the relay's per-address limits apply to it
alone; a few abusive clients guess codes or create rooms too fast and must be `rate_limited`.
Fallback load: members in rooms forward 200-byte records to one member or to all; every
record must arrive exactly once at each intended recipient. Latencies are reported; errors,
losses and duplicates are failures; server RSS is sampled every second.

RSS climbs during the load: libzmq allocates ~66 KiB per connection, which traffic touches
page by page (up to idle + ~66 MiB for 1,000 connections; a bare pyzmq ROUTER does the same).
glibc would keep those pages once libzmq frees them, but both servers call `malloc_trim(0)`
when idle (sandpiper/heap.py), so "after" is judged against idle.

`main` then measures same-run bare pyzmq baselines of both loads (bench/load_baseline.py: a
ROUTER echo, a two-hop ROUTER broker; `--baseline-seconds` each) and records the headline
figures beside them in the summary table (bench/summary.py); `run_relay_load` and
`run_fallback_load` alone (tests/load) run no baseline.

    python -m bench.load_bench [--seconds 60] [--clients 1000] [--members 200]
                               [--baseline-seconds 20]
"""

from __future__ import annotations

import argparse
import base64
import heapq
import itertools
import json
import math
import multiprocessing as mp
import os
import queue
import random
import re
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil  # type: ignore[import-untyped, unused-ignore]  # no stubs here
import zmq

from bench import summary
from bench.relay_bench import LISTENING, Client, start_relay
from broker.words import ADJECTIVES, NOUNS

# ------------------------------------------------------------------ shared limits

SETUP_LIMIT = 60.0
"""Seconds for worker processes to connect (and attach) before the load starts."""
DRAIN_LIMIT = 20.0
"""Seconds after the load for workers to wind down (leave, detach) before they are killed."""
REPLY_TIMEOUT = 10.0
"""A request unanswered this long is a failure (loopback replies take milliseconds)."""
SETTLE_LIMIT = 20.0
"""Seconds to wait after the load for the relay's rooms to close."""
AFTER_SETTLE = 3.0
"""Seconds of RSS samples once the server is idle again; the last one is "after"."""
MAX_FAILURE_TEXTS = 10
BASELINE_SECONDS = 20.0
"""Seconds of each same-run bare pyzmq baseline (bench/load_baseline.py): shorter than the
load, as what is compared is steady-state latency."""

# ------------------------------------------------------------------ relay client behaviour

RELAY_WORKERS = 4
GROUP_SIZES = (2, 3, 4, 5, 6)
"""People per room, cycled over the realistic clients of a worker."""
ROOM_LIFE = (8.0, 16.0)
"""Seconds a room's members stay before they leave (then the group starts a new room)."""
ACTION_GAP = (0.5, 1.5)
"""Seconds between one member's requests: ~1 request/s per client, ~1,000 req/s in all."""
JOIN_DELAY = (0.2, 1.5)
REGISTER_DELAY = (0.1, 0.4)
NEXT_ROUND = (0.5, 2.0)
HEARTBEAT_EVERY = 5.0
"""Seconds between a member's heartbeats (the relay's member timeout is 15 s)."""
ABUSE_GAP = (0.15, 0.35)
"""Seconds between an abusive client's requests: far above any per-address limit."""
ABUSIVE_SHARE = 50
"""One abusive client per this many clients (20 of 1,000)."""
ABUSE_OUTCOMES = frozenset({"rate_limited", "room_not_found"})
"""What an abusive client is meant to get: refusals, and misses for guessed codes."""
EMPTY_ROOM_GRACE = "2s"
"""Short, so that rooms close soon after the load and RSS can come back."""
SIGNAL_PAD = bytes(88)
"""Signals carry 96 bytes (128 base64 characters), the size of a PAKE message."""
LISTEN_PORT = 6001

REPLY_TYPES = {
    "observe_address": "observed_address",
    "create_room": "room_created",
    "lookup_room": "room_info",
    "register_peer": "peer_registered",
    "signal": "signal_sent",
    "heartbeat": "heartbeat_ack",
    "leave_room": "room_left",
}

# ------------------------------------------------------------------ fallback member behaviour

FALLBACK_WORKERS = 2
ROOM_SIZE = 10
SEND_GAP = (0.1, 0.5)
"""Seconds between one member's records: ~3.3 records/s per member."""
BROADCAST_SHARE = 0.2
"""Share of records sent to every other member of the room (the rest go to one member)."""
ACK_EVERY = 10
"""Every this many records carry a `req_id`, so the server reports how many it delivered."""
RECORD_HEADER = struct.Struct(">IIQ")  # sender index, sequence number, send time (ns)
RECORD_BYTES = 200
FILLER = bytes(RECORD_BYTES - RECORD_HEADER.size)


# ------------------------------------------------------------------ helpers


def source_address(index: int) -> str:
    """Client `index`'s own loopback address: all of 127.0.0.0/8 is loopback on Linux."""
    return f"127.1.{10 + index // 200}.{1 + index % 200}"


def connect_from(
    context: zmq.Context[zmq.Socket[bytes]], index: int, target: str
) -> zmq.Socket[bytes]:
    """A DEALER to `target` (host:port) that connects from client `index`'s own address."""
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    # ZMQ's source syntax: the connection leaves from this client's own address.
    sock.connect(f"tcp://{source_address(index)}:0;{target}")
    return sock


def stop_server(process: subprocess.Popen[Any]) -> None:
    """Terminate a server process this benchmark started (by its PID), kill it if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def summarise(values: list[float]) -> dict[str, float]:
    """Count, p50, p99 and max of latencies (µs)."""
    if not values:
        return {"count": 0, "p50": math.nan, "p99": math.nan, "max": math.nan}
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50": ordered[len(ordered) // 2],
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max": ordered[-1],
    }


def merge(total: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """Add one worker's figures to the total: numbers summed, lists joined, dicts merged."""
    for key, value in part.items():
        if isinstance(value, dict):
            merge(total.setdefault(key, {}), value)
        elif isinstance(value, list):
            total.setdefault(key, []).extend(value)
        else:
            total[key] = total.get(key, 0) + value
    return total


def arrivals(poller: zmq.Poller, timeout_ms: int) -> Iterator[tuple[Any, list[bytes]]]:
    """(socket, frames) of every message waiting on the sockets that `poller` finds readable
    within `timeout_ms`."""
    for sock, _ in poller.poll(timeout_ms):
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            yield sock, frames


def uniform(rng: random.Random, span: tuple[float, float]) -> float:
    return rng.uniform(*span)


class Watch:
    """A server process sampled once a second: RSS, open descriptors, CPU time."""

    def __init__(self, process: subprocess.Popen[Any]) -> None:
        self.process = psutil.Process(process.pid)
        self.samples: list[tuple[float, float, int]] = []  # (time, RSS MiB, fds)
        self._next = 0.0
        self._cpu_mark = (time.monotonic(), self._cpu())

    def _cpu(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def rss(self) -> float:
        return float(self.process.memory_info().rss) / 2**20

    def idle_rss(self) -> float:
        """RSS once the freshly started server has settled (imports done, sockets bound)."""
        time.sleep(1.0)
        return self.rss()

    def sample_if_due(self) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + 1.0
            self.samples.append((now, self.rss(), self.process.num_fds()))

    def mark_cpu(self) -> None:
        self._cpu_mark = (time.monotonic(), self._cpu())

    def cpu_share(self) -> float:
        """CPU time per wall second since `mark_cpu` (1.0 = one core busy)."""
        started, cpu = self._cpu_mark
        return (self._cpu() - cpu) / max(1e-9, time.monotonic() - started)

    def series(self, since: float, every: float = 10.0) -> list[tuple[float, float]]:
        """(seconds since `since`, RSS MiB) about every `every` seconds: growth or plateau."""
        points: list[tuple[float, float]] = []
        for at, rss, _ in self.samples:
            if at >= since and (not points or at - since >= points[-1][0] + every - 0.5):
                points.append((at - since, rss))
        return points

    def peak(self, since: float) -> tuple[float, int]:
        window = [s for s in self.samples if s[0] >= since] or self.samples
        return max(s[1] for s in window), max(s[2] for s in window)


WorkerBody = Callable[[Any, Any, Any], dict[str, Any]]
"""A worker's work: (spec, ready event, go event) -> its figures."""


def _worker_process(body: WorkerBody, spec: Any, ready: Any, go: Any, out: Any) -> None:
    """A forked worker: whatever happens, something comes back, so the parent never hangs."""
    try:
        out.put(body(spec, ready, go))
    except Exception:
        out.put({"crashes": [traceback.format_exc()]})


class WorkerSet:
    """Forked worker processes: started, told to go together, their results collected.

    Every wait is bounded; a worker that does not report in time is killed and reported.
    """

    def __init__(self, body: WorkerBody, specs: list[Any]) -> None:
        spawn = mp.get_context("fork")
        self._go = spawn.Event()
        self._out: Any = spawn.Queue()
        self._ready = [spawn.Event() for _ in specs]
        self._processes = [
            spawn.Process(
                target=_worker_process, args=(body, spec, ready, self._go, self._out), daemon=True
            )
            for spec, ready in zip(specs, self._ready, strict=True)
        ]

    def start(self) -> None:
        for process in self._processes:
            process.start()

    def wait_ready(self, step: Callable[[], None]) -> None:
        deadline = time.monotonic() + SETUP_LIMIT
        while not all(ready.is_set() for ready in self._ready):
            if time.monotonic() > deadline or not all(p.is_alive() for p in self._processes):
                self.kill()
                raise RuntimeError("load workers did not get ready")
            step()
            time.sleep(0.05)

    def go(self) -> None:
        self._go.set()

    def collect(self, limit: float, step: Callable[[], None]) -> list[dict[str, Any]]:
        """Each worker's figures, waiting at most `limit` seconds; `step` runs meanwhile."""
        results: list[dict[str, Any]] = []
        deadline = time.monotonic() + limit
        while len(results) < len(self._processes) and time.monotonic() < deadline:
            step()
            try:
                results.append(self._out.get(timeout=0.05))
            except queue.Empty:
                continue
        missing = len(self._processes) - len(results)
        results.extend({"crashes": ["a worker did not report in time"]} for _ in range(missing))
        self.kill()
        return results

    def kill(self) -> None:
        """Join the workers; kill any still running (each was told to go or failed)."""
        for process in self._processes:
            process.join(timeout=2)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)


def wait_for_go(ready: Any, go: Any) -> float:
    """Tell the parent this worker is set up; the moment the load starts."""
    ready.set()
    if not go.wait(SETUP_LIMIT * 2):
        raise RuntimeError("never told to go")
    return time.perf_counter()


def scan_log(log: Path) -> int:
    """Tracebacks and internal errors a server logged: each one is a bug."""
    text = log.read_text(errors="replace")
    return text.count("Traceback") + text.count("internal error")


class Failures:
    """Problems of one worker: counted, the first few kept verbatim."""

    def __init__(self) -> None:
        self.count = 0
        self.texts: list[str] = []

    def add(self, text: str) -> None:
        self.count += 1
        if len(self.texts) < MAX_FAILURE_TEXTS:
            self.texts.append(text)


# ------------------------------------------------------------------ relay: simulated clients


@dataclass
class Pending:
    req_id: int
    kind: str
    sent: float
    signal: int | None = None


@dataclass
class SimClient:
    """One simulated user: a DEALER from its own address, one request in flight at a time."""

    position: int
    index: int
    role: str  # "member" (realistic), "guesser" or "spammer" (abusive)
    nick: str
    source: str
    socket: zmq.Socket[bytes]
    group: Group | None = None
    pending: Pending | None = None
    room: str | None = None
    looked_up: bool = False
    next_heartbeat: float = 0.0
    due: float = math.inf
    requests: int = 0
    limited: bool = False


@dataclass
class Group:
    """People who meet in a room, leave together and meet again in a new one."""

    members: list[SimClient]
    phase: str = "idle"  # idle -> open -> draining -> leaving -> idle
    code: str | None = None
    registered: list[SimClient] = field(default_factory=list)
    leave_at: float = 0.0
    next_round_at: float = 0.0


@dataclass
class RelaySpec:
    endpoint: str
    indices: list[int]
    abusive: dict[int, str]  # index -> "guesser" | "spammer"
    seconds: float
    seed: int


@dataclass
class RelayStats:
    latencies: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    signal_latencies: list[float] = field(default_factory=list)
    pushes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    intended: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    sources_ok: int = 0
    rooms_created: int = 0
    joins: int = 0
    leaves: int = 0
    rounds: int = 0
    signals_sent: int = 0
    signals_delivered: int = 0
    signals_lost: int = 0
    signals_duplicated: int = 0
    abusive_rooms: int = 0
    guess_hits: int = 0
    abusers_limited: int = 0
    no_reply: int = 0


def form_groups(members: list[SimClient]) -> list[Group]:
    """Groups of GROUP_SIZES people in turn; a lone leftover joins the last group."""
    groups: list[Group] = []
    sizes = itertools.cycle(GROUP_SIZES)
    start = 0
    while start < len(members):
        size = next(sizes)
        if len(members) - start - size == 1:
            size += 1
        chunk = members[start : start + size]
        if len(chunk) == 1 and groups:
            groups[-1].members.extend(chunk)
        else:
            groups.append(Group(members=chunk))
        start += size
    for group in groups:
        for member in group.members:
            member.group = group
    return groups


def guess_code(rng: random.Random) -> str:
    """A code an attacker would try: the relay's own word lists, a random number."""
    return f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}-{rng.randint(10, 99)}"


class RelayWorker:
    """One worker process's share of the clients, driven by one poller over their sockets."""

    def __init__(self, spec: RelaySpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.stats = RelayStats()
        self.failures = Failures()
        target = spec.endpoint.removeprefix("tcp://")
        self.clients = [
            self._client(position, index, target) for position, index in enumerate(spec.indices)
        ]
        self.groups = form_groups([c for c in self.clients if c.role == "member"])
        self.by_socket = {client.socket: client for client in self.clients}
        self.heap: list[tuple[float, int]] = []
        self.signals: dict[int, tuple[float, SimClient, SimClient]] = {}
        self.signal_ids = itertools.count(1)
        self.stopping = False
        self.handlers: dict[str, Callable[[SimClient, dict[str, Any], float], None]] = {
            "observe_address": self._on_observed,
            "create_room": self._on_created,
            "lookup_room": self._on_room_info,
            "register_peer": self._on_registered,
            "signal": self._on_signal_sent,
            "heartbeat": self._on_heartbeat_ack,
            "leave_room": self._on_left,
        }

    def _client(self, position: int, index: int, target: str) -> SimClient:
        sock = connect_from(self.context, index, target)
        role = self.spec.abusive.get(index, "member")
        return SimClient(position, index, role, f"u{index}", source_address(index), sock)

    # -------------------------------------------------------------- phases

    def handshake(self) -> None:
        """Every client asks the relay where it comes from (connects all; checks sources)."""
        now = time.perf_counter()
        for client in self.clients:
            self._request(client, "observe_address", now, {})
        deadline = now + SETUP_LIMIT / 2
        poller = self._poller()
        while any(c.pending for c in self.clients) and time.perf_counter() < deadline:
            self._receive(poller, 50)
        for client in self.clients:
            if client.pending is not None:
                self.failures.add(f"{client.nick}: no reply to observe_address")
                client.pending = None
        self.stats.latencies.clear()  # observe_address (any role's): connection set-up, not load

    def run(self, started: float) -> None:
        self.heap.clear()  # replies during the handshake scheduled actions: start afresh
        for client in self.clients:
            client.due = math.inf
        for group in self.groups:
            group.next_round_at = started + self.rng.uniform(0.0, 3.0)  # ramp up over 3 s
            self._schedule(group.members[0], group.next_round_at)
        for client in self.clients:
            if client.role != "member":
                self._schedule(client, started + self.rng.uniform(0.0, 1.0))
        stop = started + self.spec.seconds
        hard_stop = stop + DRAIN_LIMIT - 5.0
        poller = self._poller()
        next_sweep = started + 1.0
        while True:
            now = time.perf_counter()
            if not self.stopping and now >= stop:
                self._begin_stop(now)
            if (self.stopping and self._finished()) or now >= hard_stop:
                break
            self._run_due(now)
            if now >= next_sweep:
                next_sweep = now + 1.0
                self._sweep_timeouts(now)
            wait = (self.heap[0][0] - now) if self.heap else 0.05
            self._receive(poller, max(0, min(50, math.ceil(wait * 1000))))

    def finish(self) -> dict[str, Any]:
        """Count what never completed, close every connection, hand back the figures."""
        stats = self.stats
        stats.signals_lost = len(self.signals)
        if self.signals:
            self.failures.add(f"{len(self.signals)} acknowledged signals never delivered")
        for client in self.clients:
            if client.pending is not None:
                stats.no_reply += 1
                self.failures.add(f"{client.nick}: no reply to {client.pending.kind} at the end")
            if client.room is not None:
                self.failures.add(f"{client.nick}: still in {client.room} at the end")
            stats.requests += client.requests - 1  # not the handshake's observe_address
            stats.abusers_limited += client.limited
        stuck = sum(group.phase != "idle" for group in self.groups)
        if stuck:
            self.failures.add(f"{stuck} groups did not finish their round in time")
        self.context.destroy(linger=0)
        figures: dict[str, Any] = {
            name: (dict(value) if isinstance(value, dict) else value)
            for name, value in vars(stats).items()
        }
        figures["request_latencies"] = [v for kind in stats.latencies.values() for v in kind]
        figures["failure_count"] = self.failures.count
        figures["failures"] = self.failures.texts
        figures["groups"] = len(self.groups)
        return figures

    def _begin_stop(self, now: float) -> None:
        self.stopping = True
        for group in self.groups:
            self._advance(group, now)

    def _finished(self) -> bool:
        return all(g.phase == "idle" for g in self.groups) and not any(
            c.pending for c in self.clients
        )

    # -------------------------------------------------------------- sockets and schedule

    def _poller(self) -> zmq.Poller:
        poller = zmq.Poller()
        for client in self.clients:
            poller.register(client.socket, zmq.POLLIN)
        return poller

    def _receive(self, poller: zmq.Poller, timeout_ms: int) -> None:
        for sock, frames in arrivals(poller, timeout_ms):
            self._on_frame(self.by_socket[sock], json.loads(frames[-1]), time.perf_counter())

    def _schedule(self, client: SimClient, when: float) -> None:
        """Act at `when`, unless already due earlier (stale heap entries are skipped)."""
        if when < client.due:
            client.due = when
            heapq.heappush(self.heap, (when, client.position))

    def _run_due(self, now: float) -> None:
        while self.heap and self.heap[0][0] <= now:
            when, position = heapq.heappop(self.heap)
            client = self.clients[position]
            if client.due == when:
                client.due = math.inf
                self._act(client, now)

    def _request(
        self,
        client: SimClient,
        kind: str,
        now: float,
        fields: dict[str, Any],
        signal: int | None = None,
    ) -> None:
        client.requests += 1
        client.pending = Pending(client.requests, kind, now, signal)
        frame = json.dumps({"type": kind, "req_id": client.requests, **fields}).encode()
        client.socket.send(frame, zmq.NOBLOCK)

    def _sweep_timeouts(self, now: float) -> None:
        for client in self.clients:
            pending = client.pending
            if pending is not None and now - pending.sent > REPLY_TIMEOUT:
                self.stats.no_reply += 1
                self.failures.add(f"{client.nick}: no reply to {pending.kind} in {REPLY_TIMEOUT}s")
                client.pending = None
                if pending.signal is not None:
                    self.signals.pop(pending.signal, None)
                if client.group is not None:
                    self._advance(client.group, now)
                self._schedule(client, now + uniform(self.rng, ACTION_GAP))

    # -------------------------------------------------------------- behaviour

    def _act(self, client: SimClient, now: float) -> None:
        if client.pending is not None:
            return  # acts again once the reply is in
        group = client.group
        if group is None:
            if not self.stopping:
                self._abuse(client, now)
            return
        self._advance(group, now)
        if group.phase == "idle" and client is group.members[0] and not self.stopping:
            if now < group.next_round_at:
                self._schedule(client, group.next_round_at)
            else:
                self._request(
                    client, "create_room", now, {"nick": client.nick, "listen_port": LISTEN_PORT}
                )
        elif group.phase == "open":
            self._member_step(client, group, now)
        elif group.phase == "leaving" and client.room is not None:
            self._request(client, "leave_room", now, {"code": client.room})

    def _member_step(self, client: SimClient, group: Group, now: float) -> None:
        """Join if not yet in; else heartbeat when due, else signal another member."""
        code = group.code
        assert code is not None
        if client.room is None:
            if not client.looked_up:
                self._request(client, "lookup_room", now, {"code": code, "nick": client.nick})
            else:
                fields = {
                    "code": code,
                    "nick": client.nick,
                    "host": client.source,
                    "port": LISTEN_PORT,
                }
                self._request(client, "register_peer", now, fields)
            return
        others = [member for member in group.registered if member is not client]
        if now >= client.next_heartbeat or not others:
            client.next_heartbeat = now + HEARTBEAT_EVERY
            self._request(client, "heartbeat", now, {"code": code})
            return
        target = self.rng.choice(others)
        signal = next(self.signal_ids)
        payload = base64.urlsafe_b64encode(struct.pack(">Q", signal) + SIGNAL_PAD).decode()
        self.signals[signal] = (now, client, target)  # the push may come before the reply
        fields = {"code": code, "to": target.nick, "payload": payload}
        self._request(client, "signal", now, fields, signal)

    def _abuse(self, client: SimClient, now: float) -> None:
        if client.role == "guesser":
            fields = {"code": guess_code(self.rng), "nick": client.nick}
            self._request(client, "lookup_room", now, fields)
        else:
            self._request(client, "create_room", now, {})

    def _advance(self, group: Group, now: float) -> None:
        """Move a group on: members leave only once nothing of theirs is in flight, so that no
        signal races a leave (a `peer_not_found` then is a real race, not what is tested)."""
        if group.phase == "open" and (self.stopping or now >= group.leave_at):
            group.phase = "draining"
        if group.phase == "draining" and not any(m.pending for m in group.members):
            group.phase = "leaving"
            spread = 0.5 if self.stopping else 1.0
            for member in group.members:
                if member.room is not None:
                    self._schedule(member, now + self.rng.uniform(0.0, spread))
        if group.phase == "leaving" and not any(m.room or m.pending for m in group.members):
            group.phase, group.code = "idle", None
            group.registered.clear()
            self.stats.rounds += 1
            if not self.stopping:
                group.next_round_at = now + uniform(self.rng, NEXT_ROUND)
                self._schedule(group.members[0], group.next_round_at)

    # -------------------------------------------------------------- what comes back

    def _on_frame(self, client: SimClient, message: dict[str, Any], now: float) -> None:
        if "req_id" not in message:
            self._on_push(client, message, now)
            return
        pending = client.pending
        if pending is None or message["req_id"] != pending.req_id:
            self.failures.add(f"{client.nick}: unexpected reply {message}")
            return
        client.pending = None
        latency = (now - pending.sent) * 1e6
        if message["type"] == "error":
            self._on_error(client, pending, message, latency)
        elif message["type"] != REPLY_TYPES[pending.kind]:
            self.failures.add(f"{client.nick}: {pending.kind} answered by {message}")
        else:
            label = pending.kind if client.role == "member" else f"{client.role} {pending.kind}"
            self.stats.latencies[label].append(latency)
            self.handlers[pending.kind](client, message, now)
        if client.group is not None:
            self._advance(client.group, now)
        gap = ABUSE_GAP if client.group is None else ACTION_GAP
        self._schedule(client, now + uniform(self.rng, gap))

    def _on_error(
        self, client: SimClient, pending: Pending, message: dict[str, Any], latency: float
    ) -> None:
        code = str(message.get("code"))
        if pending.signal is not None:
            self.signals.pop(pending.signal, None)
        if client.role != "member" and code in ABUSE_OUTCOMES:
            self.stats.intended[code] += 1
            client.limited = client.limited or code == "rate_limited"
            self.stats.latencies[f"{client.role} {pending.kind}"].append(latency)
            return
        self.stats.errors[f"{pending.kind}: {code}"] += 1
        self.failures.add(f"{client.nick} ({client.role}) {pending.kind}: {json.dumps(message)}")

    def _check_source(self, client: SimClient, message: dict[str, Any], key: str) -> None:
        if message.get(key) != client.source:
            self.failures.add(f"{client.nick}: relay saw {message.get(key)}, not {client.source}")

    def _on_observed(self, client: SimClient, message: dict[str, Any], now: float) -> None:
        self._check_source(client, message, "host")
        self.stats.sources_ok += message.get("host") == client.source

    def _on_created(self, client: SimClient, message: dict[str, Any], now: float) -> None:
        self._check_source(client, message, "observed_host")
        group = client.group
        if group is None:  # a spammer: its rooms stay empty and close after the grace
            self.stats.abusive_rooms += 1
            return
        self.stats.rooms_created += 1
        group.phase, group.code = "open", message["code"]
        group.registered = [client]
        group.leave_at = now + uniform(self.rng, ROOM_LIFE)
        client.room = message["code"]
        client.next_heartbeat = now + HEARTBEAT_EVERY
        for joiner in group.members[1:]:
            joiner.looked_up = False
            self._schedule(joiner, now + uniform(self.rng, JOIN_DELAY))

    def _on_room_info(self, client: SimClient, message: dict[str, Any], now: float) -> None:
        group = client.group
        if group is None:  # a guesser hit a live room by chance: harmless
            self.stats.guess_hits += 1
            return
        nicks = {peer["nick"] for peer in message["peers"]}
        if group.members[0].nick not in nicks:
            self.failures.add(f"{client.nick}: room_info without its creator: {message}")
        client.looked_up = True
        self._schedule(client, now + uniform(self.rng, REGISTER_DELAY))

    def _on_registered(self, client: SimClient, message: dict[str, Any], now: float) -> None:
        self._check_source(client, message, "observed_host")
        group = client.group
        assert group is not None
        if not message.get("success") or message.get("code") != group.code:
            self.failures.add(f"{client.nick}: odd peer_registered {message}")
        self.stats.joins += 1
        client.room = message["code"]
        client.next_heartbeat = now + HEARTBEAT_EVERY
        group.registered.append(client)

    def _on_signal_sent(self, client: SimClient, message: dict[str, Any], now: float) -> None:
        self.stats.signals_sent += 1

    def _on_heartbeat_ack(self, client: SimClient, message: dict[str, Any], now: float) -> None:
        if message.get("member") is not True:
            self.failures.add(f"{client.nick}: the relay forgot its membership: {message}")

    def _on_left(self, client: SimClient, message: dict[str, Any], now: float) -> None:
        self.stats.leaves += 1
        client.room = None

    def _on_push(self, client: SimClient, message: dict[str, Any], now: float) -> None:
        kind = message.get("type")
        self.stats.pushes[str(kind)] += 1
        if kind == "signal":
            self._on_signal_push(client, message, now)
        elif kind == "peer_left" and message.get("reason") != "left":
            self.failures.add(f"{client.nick}: a member went silent: {message}")
        elif kind not in {"peer_joined", "peer_left"}:
            self.failures.add(f"{client.nick}: unexpected push {message}")

    def _on_signal_push(self, client: SimClient, message: dict[str, Any], now: float) -> None:
        signal = struct.unpack(">Q", base64.urlsafe_b64decode(message["payload"])[:8])[0]
        record = self.signals.pop(signal, None)
        if record is None:
            self.stats.signals_duplicated += 1
            self.failures.add(f"{client.nick}: signal {signal} delivered twice")
            return
        sent, sender, target = record
        if target is not client or message.get("from") != sender.nick:
            self.failures.add(f"{client.nick}: signal {signal} misdelivered: {message}")
        self.stats.signals_delivered += 1
        self.stats.signal_latencies.append((now - sent) * 1e6)


class LoadWorker(Protocol):
    """What a worker process runs: set up its clients, load for the spec's seconds, report."""

    def handshake(self) -> None: ...
    def run(self, started: float) -> None: ...
    def finish(self) -> dict[str, Any]: ...


def relay_worker(
    spec: Any, ready: Any, go: Any, kind: Callable[[Any], LoadWorker] = RelayWorker
) -> dict[str, Any]:
    """A worker process's clients (RelayWorker, or another kind driven the same way)."""
    worker = kind(spec)
    try:
        worker.handshake()
        worker.run(wait_for_go(ready, go))
    finally:
        figures = worker.finish()
    return figures


# ------------------------------------------------------------------ relay: the run


class RoomMonitor:
    """The relay's PUB room events, counted: rooms live now and at most, numbering gaps."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], endpoint: str) -> None:
        self.socket = context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        self.socket.connect(endpoint)
        self.events: Counter[str] = Counter()
        self.live = 0
        self.peak = 0
        self.gaps = 0
        self._seq: int | None = None

    def synchronise(self) -> bool:
        """Wait for a `relay_alive` beat (every 2 s): from then on no event is missed."""
        deadline = time.monotonic() + 6.0
        while time.monotonic() < deadline and not self.events["relay_alive"]:
            self.poll(100)
        return bool(self.events["relay_alive"])

    def poll(self, timeout_ms: int) -> None:
        if not self.socket.poll(timeout_ms):
            return
        while True:
            try:
                _, body = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._on_event(json.loads(body))

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        self.events[kind] += 1
        if self._seq is not None and event["seq"] > self._seq + 1:
            self.gaps += event["seq"] - self._seq - 1
        self._seq = max(event["seq"], self._seq or 0)
        if kind == "room_created":
            self.live += 1
            self.peak = max(self.peak, self.live)
        elif kind in {"room_closed", "room_expired"}:
            self.live -= 1


def relay_specs(endpoint: str, clients: int, seconds: float, abusive: int) -> list[RelaySpec]:
    """Clients dealt out over the workers; the abusive ones taken from the end of each share
    in turn, alternately guessers and spammers, so every worker carries its part."""
    workers = max(1, min(RELAY_WORKERS, math.ceil(clients / 250)))
    shares = [list(range(clients))[w::workers] for w in range(workers)]
    roles: list[dict[int, str]] = [{} for _ in shares]
    for k in range(min(abusive, clients)):
        worker, rank = k % workers, k // workers
        role = "guesser" if (rank + worker) % 2 == 0 else "spammer"
        roles[worker][shares[worker][-1 - rank]] = role
    return [
        RelaySpec(endpoint, share, roles[w], seconds, seed=w + 1) for w, share in enumerate(shares)
    ]


def fresh_relay_request(context: zmq.Context[Any], endpoint: str) -> bool:
    """After the load: a new client creates a room and finds it."""
    try:
        client = Client(context, endpoint)
        code = client.ask(type="create_room", nick="probe", listen_port=LISTEN_PORT)["code"]
        found = bool(client.ask(type="lookup_room", code=code)["code"] == code)
        client.socket.close()
    except RuntimeError:
        return False
    return found


def run_relay_load(
    clients: int = 1000, seconds: float = 60.0, *, abusive: int | None = None
) -> dict[str, Any]:
    """`clients` simulated clients (a few abusive) on one relay process for `seconds`."""
    abusive = max(2, clients // ABUSIVE_SHARE) if abusive is None else abusive
    workdir = Path(tempfile.mkdtemp(prefix="sandpiper-load-"))
    log = workdir / "relay.log"
    relay, endpoint = start_relay(log, "--empty-room-grace", EMPTY_ROOM_GRACE)
    try:
        return _drive_relay(relay, endpoint, log, clients=clients, seconds=seconds, abusive=abusive)
    finally:
        stop_server(relay)


def _drive_relay(
    relay: subprocess.Popen[bytes],
    endpoint: str,
    log: Path,
    *,
    clients: int,
    seconds: float,
    abusive: int,
) -> dict[str, Any]:
    match = LISTENING.search(log.read_text())
    assert match is not None
    watch = Watch(relay)
    idle = watch.idle_rss()
    workers = WorkerSet(relay_worker, relay_specs(endpoint, clients, seconds, abusive))
    workers.start()  # fork before this process makes a ZMQ context of its own
    context: zmq.Context[Any] = zmq.Context()
    try:
        monitor = RoomMonitor(context, match.group(2))
        synchronised = monitor.synchronise()

        def step() -> None:
            monitor.poll(20)
            watch.sample_if_due()

        figures = drive(workers, watch, seconds, step)
        # Rooms close once empty for the grace: wait for that (bounded), then RSS settles.
        settle_seconds = settle(step, lambda: monitor.live <= 0)
        figures["signal_latency"] = summarise(figures.pop("signal_latencies", []))
        figures["request_latency"] = summarise(figures.pop("request_latencies", []))
        figures.update(
            clients=clients,
            abusive=abusive,
            rss_idle=idle,
            rss_after=watch.rss(),
            settle_seconds=settle_seconds,
            rooms_left=monitor.live,
            rooms_peak=monitor.peak,
            monitor_synchronised=synchronised,
            monitor_gaps=monitor.gaps,
            monitor_events=dict(monitor.events),
            fresh_request_ok=fresh_relay_request(context, endpoint),
            alive=relay.poll() is None,
            log_problems=scan_log(log),
        )
        return figures
    finally:
        context.destroy(linger=0)


def drive(
    workers: WorkerSet, watch: Watch, seconds: float, step: Callable[[], None]
) -> dict[str, Any]:
    """Workers ready, go, results in: every worker's figures merged, and the server's."""
    workers.wait_ready(step)
    ready = watch.rss()
    watch.mark_cpu()
    started = time.monotonic()
    workers.go()
    results = workers.collect(seconds + DRAIN_LIMIT + 10.0, step)
    cpu = watch.cpu_share()
    peak, fds = watch.peak(started)
    figures: dict[str, Any] = {"crashes": [], "failures": [], "failure_count": 0, "latencies": {}}
    for part in results:
        merge(figures, part)
    figures["latencies"] = {k: summarise(v) for k, v in figures["latencies"].items()}
    figures.update(
        seconds=seconds, workers=len(results), rss_ready=ready, rss_peak=peak, fds_peak=fds, cpu=cpu
    )
    figures["rss_series"] = watch.series(started)
    return figures


def settle(step: Callable[[], None], idle: Callable[[], bool]) -> float:
    """Wait until `idle()` (at most SETTLE_LIMIT), then AFTER_SETTLE seconds more of samples;
    the seconds it took to become idle."""
    began = time.monotonic()
    while not idle() and time.monotonic() - began < SETTLE_LIMIT:
        step()
        time.sleep(0.02)
    took = time.monotonic() - began
    until = time.monotonic() + AFTER_SETTLE
    while time.monotonic() < until:
        step()
        time.sleep(0.05)
    return took


# ------------------------------------------------------------------ fallback: members


@dataclass
class FallbackMember:
    index: int
    member_id: str
    room: str
    socket: zmq.Socket[bytes]
    mates: list[FallbackMember] = field(default_factory=list)
    seq: int = 0
    requests: int = 0
    pending: dict[int, tuple[str, float, int]] = field(default_factory=dict)
    """req_id -> (request type, sent at, deliveries expected)."""
    next_send: float = math.inf
    next_heartbeat: float = math.inf


@dataclass
class FallbackSpec:
    endpoint: str
    indices: list[int]
    seconds: float
    seed: int


class FallbackWorker:
    """One worker process's rooms: members forward numbered records to each other.

    A room's members all live in one worker, so it knows exactly what each member should
    receive and can wait for the last record before it counts losses."""

    def __init__(self, spec: FallbackSpec) -> None:
        self.rng = random.Random(spec.seed)
        self.spec = spec
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.failures = Failures()
        self.members = self._members(spec)
        self.by_socket = {member.socket: member for member in self.members}
        self.by_index = {member.index: member for member in self.members}
        self.expected: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
        self.received: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
        self.counts: Counter[str] = Counter()
        self.latencies: defaultdict[str, list[float]] = defaultdict(list)
        self.detaching = False
        self.poller = zmq.Poller()
        for member in self.members:
            self.poller.register(member.socket, zmq.POLLIN)

    def _members(self, spec: FallbackSpec) -> list[FallbackMember]:
        """Rooms of ROOM_SIZE in index order; a short last room takes at least two."""
        members: list[FallbackMember] = []
        rooms = [spec.indices[i : i + ROOM_SIZE] for i in range(0, len(spec.indices), ROOM_SIZE)]
        if len(rooms) > 1 and len(rooms[-1]) < 2:
            rooms[-2].extend(rooms.pop())
        for indices in rooms:
            room = self.rng.randbytes(32).hex()
            mates = [self._member(index, room) for index in indices]
            for member in mates:
                member.mates = [other for other in mates if other is not member]
            members.extend(mates)
        return members

    def _member(self, index: int, room: str) -> FallbackMember:
        sock = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.spec.endpoint)
        return FallbackMember(index, self.rng.randbytes(16).hex(), room, sock)

    # -------------------------------------------------------------- phases

    def attach(self) -> None:
        """Every member attaches; the load starts only when all are in (else: not found)."""
        now = time.perf_counter()
        for member in self.members:
            self._request(member, "attach", now, {"room": member.room, "member": member.member_id})
        self._settle(time.perf_counter() + SETUP_LIMIT / 2)

    def run(self, started: float) -> None:
        for member in self.members:
            member.next_send = started + uniform(self.rng, SEND_GAP)
            member.next_heartbeat = started + self.rng.uniform(0.0, HEARTBEAT_EVERY)
        stop = started + self.spec.seconds
        while (now := time.perf_counter()) < stop:
            next_due = self._run_due(now)
            self._receive(max(0, min(50, math.ceil((next_due - now) * 1000))))

    def drain(self) -> None:
        """Wait for every record still on its way (bounded), then everyone detaches."""
        self.await_deliveries()
        self.detaching = True
        now = time.perf_counter()
        for member in self.members:
            self._request(member, "detach", now, {})
        self._settle(time.perf_counter() + 5.0)

    def await_deliveries(self) -> None:
        """Wait (bounded) until every record sent has arrived and every request is answered."""
        deadline = time.perf_counter() + DRAIN_LIMIT / 2
        while self._outstanding() and time.perf_counter() < deadline:
            self._receive(50)

    def finish(self) -> dict[str, Any]:
        lost = sum(len(self.expected[key] - self.received[key]) for key in self.expected)
        if lost:
            self.failures.add(f"{lost} records never delivered")
        unanswered = sum(len(member.pending) for member in self.members)
        if unanswered:
            self.failures.add(f"{unanswered} requests never answered")
        self.context.destroy(linger=0)
        return {
            **self.counts,
            "lost": lost,
            "unanswered": unanswered,
            "latencies": dict(self.latencies),
            "failure_count": self.failures.count,
            "failures": self.failures.texts,
            "rooms": len({member.room for member in self.members}),
        }

    def _outstanding(self) -> bool:
        return self.counts["deliveries"] < self.counts["expected"] or any(
            member.pending for member in self.members
        )

    def _settle(self, deadline: float) -> None:
        while any(m.pending for m in self.members) and time.perf_counter() < deadline:
            self._receive(50)

    # -------------------------------------------------------------- sending

    def _run_due(self, now: float) -> float:
        """Send what is due; the time of the next thing due."""
        next_due = now + 0.05
        for member in self.members:
            if now >= member.next_heartbeat:
                member.next_heartbeat = now + HEARTBEAT_EVERY
                self._request(member, "heartbeat", now, {})
            if now >= member.next_send:
                member.next_send = now + uniform(self.rng, SEND_GAP)
                self._send_record(member, now)
            next_due = min(next_due, member.next_send, member.next_heartbeat)
        return next_due

    def _new_record(self, member: FallbackMember) -> tuple[list[FallbackMember], bool, bytes]:
        """The next record of `member`, counted as expected at its recipients: (recipients,
        whether to the whole room, the RECORD_BYTES-byte record stamped with the time now)."""
        member.seq += 1
        to_all = self.rng.random() < BROADCAST_SHARE
        targets = member.mates if to_all else [self.rng.choice(member.mates)]
        for target in targets:
            self.expected[(member.index, target.index)].add(member.seq)
        self.counts["sends"] += 1
        self.counts["broadcasts"] += to_all
        self.counts["expected"] += len(targets)
        header = RECORD_HEADER.pack(member.index, member.seq, time.perf_counter_ns())
        return targets, to_all, header + FILLER

    def _send_record(self, member: FallbackMember, now: float) -> None:
        targets, to_all, record = self._new_record(member)
        fields: dict[str, Any] = {"payload": base64.b64encode(record).decode()}
        if not to_all:
            fields["to"] = targets[0].member_id
        if member.seq % ACK_EVERY == 0:  # now and then: does the server count as we do?
            self._request(member, "send", now, fields, expected=len(targets))
        else:
            member.socket.send(json.dumps({"type": "send", **fields}).encode(), zmq.NOBLOCK)

    def _request(
        self,
        member: FallbackMember,
        kind: str,
        now: float,
        fields: dict[str, Any],
        expected: int = 0,
    ) -> None:
        member.requests += 1
        member.pending[member.requests] = (kind, now, expected)
        frame = json.dumps({"type": kind, "req_id": member.requests, **fields}).encode()
        member.socket.send(frame, zmq.NOBLOCK)

    # -------------------------------------------------------------- receiving

    def _receive(self, timeout_ms: int) -> None:
        for sock, frames in arrivals(self.poller, timeout_ms):
            self._on_frames(self.by_socket[sock], frames)

    def _on_frames(self, member: FallbackMember, frames: list[bytes]) -> None:
        self._on_message(member, json.loads(frames[-1]))

    def _on_message(self, member: FallbackMember, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "deliver":
            self._on_deliver(member, message)
        elif "req_id" in message:
            self._on_reply(member, message)
        elif kind == "member_attached" or (kind == "member_detached" and self.detaching):
            self.counts[f"push {kind}"] += 1
        else:
            self.failures.add(f"member {member.index}: unexpected {message}")

    def _on_reply(self, member: FallbackMember, message: dict[str, Any]) -> None:
        entry = member.pending.pop(message["req_id"], None)
        if entry is None:
            self.failures.add(f"member {member.index}: unexpected reply {message}")
            return
        kind, sent, expected = entry
        if message["type"] == "error":
            self.counts["errors"] += 1
            self.failures.add(f"member {member.index} {kind}: {json.dumps(message)}")
            return
        self.latencies[kind].append((time.perf_counter() - sent) * 1e6)
        if kind == "send" and message.get("delivered") != expected:
            self.failures.add(f"member {member.index}: {expected} recipients, server {message}")

    def _on_deliver(self, member: FallbackMember, message: dict[str, Any]) -> None:
        now_ns = time.perf_counter_ns()
        record = base64.b64decode(message["payload"])
        self._on_record(member, str(message.get("from")), record, now_ns)

    def _on_record(self, member: FallbackMember, sent_by: str, record: bytes, now_ns: int) -> None:
        """A record delivered to `member` by the member called `sent_by`, at `now_ns`: counted
        once if it was meant for `member`, its one-way latency kept."""
        index, seq, sent_ns = RECORD_HEADER.unpack(record[: RECORD_HEADER.size])
        sender = self.by_index.get(index)
        key = (index, member.index)
        if sender is None or sent_by != sender.member_id:
            self.failures.add(f"member {member.index}: record from a stranger {sent_by}")
        elif seq in self.received[key]:
            self.counts["duplicated"] += 1
            self.failures.add(f"member {member.index}: record {index}/{seq} delivered twice")
        elif seq not in self.expected[key]:
            self.counts["misdelivered"] += 1
            self.failures.add(f"member {member.index}: record {index}/{seq} not meant for it")
        else:
            self.received[key].add(seq)
            self.counts["deliveries"] += 1
            self.latencies["forward"].append((now_ns - sent_ns) / 1e3)


def fallback_worker(
    spec: FallbackSpec, ready: Any, go: Any, kind: type[FallbackWorker] = FallbackWorker
) -> dict[str, Any]:
    worker = kind(spec)
    try:
        worker.attach()
        worker.run(wait_for_go(ready, go))
        worker.drain()
    finally:
        figures = worker.finish()
    return figures


# ------------------------------------------------------------------ fallback: the run


def start_fallback(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A fallback server process on a free port; its endpoint once it listens."""
    script = Path(sys.executable).with_name("sandpiper")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "sandpiper"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "fallback", "--port", "0"], stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        match = re.search(r"fallback server listening on (tcp://\S+)", log.read_text())
        if match:
            return process, match.group(1)
        time.sleep(0.05)
    process.kill()
    process.wait(timeout=5)
    raise RuntimeError(f"fallback server did not start:\n{log.read_text()}")


def fallback_specs(endpoint: str, members: int, seconds: float) -> list[FallbackSpec]:
    """Whole rooms per worker, so each worker checks its own rooms' deliveries."""
    workers = max(1, min(FALLBACK_WORKERS, members // (2 * ROOM_SIZE)))
    rooms = [list(range(members))[i : i + ROOM_SIZE] for i in range(0, members, ROOM_SIZE)]
    return [
        FallbackSpec(endpoint, [i for room in rooms[w::workers] for i in room], seconds, w + 1)
        for w in range(workers)
    ]


def fresh_fallback_request(context: zmq.Context[Any], endpoint: str) -> bool:
    """After the load: a new member attaches to a new room and is answered."""
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    attach = {"type": "attach", "room": os.urandom(32).hex(), "member": os.urandom(16).hex()}
    sock.send(json.dumps({**attach, "req_id": 1}).encode())
    ok = bool(sock.poll(10_000)) and json.loads(sock.recv()).get("type") == "attached"
    sock.close()
    return ok


def run_fallback_load(members: int = 200, seconds: float = 60.0) -> dict[str, Any]:
    """`members` members in rooms of ROOM_SIZE forwarding records for `seconds`."""
    workdir = Path(tempfile.mkdtemp(prefix="sandpiper-load-"))
    log = workdir / "fallback.log"
    server, endpoint = start_fallback(log)
    try:
        return _drive_fallback(server, endpoint, log, members, seconds)
    finally:
        stop_server(server)


def _drive_fallback(
    server: subprocess.Popen[bytes], endpoint: str, log: Path, members: int, seconds: float
) -> dict[str, Any]:
    watch = Watch(server)
    idle = watch.idle_rss()
    workers = WorkerSet(fallback_worker, fallback_specs(endpoint, members, seconds))
    workers.start()
    figures = drive(workers, watch, seconds, watch.sample_if_due)
    settle(watch.sample_if_due, lambda: True)  # members detached before their workers ended
    figures.update(members=members, rss_idle=idle, rss_after=watch.rss())
    context: zmq.Context[Any] = zmq.Context()
    try:
        figures["fresh_request_ok"] = fresh_fallback_request(context, endpoint)
    finally:
        context.destroy(linger=0)
    figures.update(alive=server.poll() is None, log_problems=scan_log(log))
    return figures


# ------------------------------------------------------------------ report


RELAY_ROWS = (
    "create_room",
    "lookup_room",
    "register_peer",
    "signal",
    "heartbeat",
    "leave_room",
    "guesser lookup_room",
    "spammer create_room",
)


def _latency_row(label: str, stats: dict[str, float], seconds: float) -> str:
    if not stats.get("count"):
        return f"  {label:<28} {0:>8}"
    return (
        f"  {label:<28} {stats['count']:>8,} {stats['count'] / seconds:>8.0f} "
        f"{stats['p50']:>9.0f} {stats['p99']:>9.0f} {stats['max']:>9.0f}"
    )


def _latency_header(title: str) -> str:
    return f"  {title:<28} {'count':>8} {'per s':>8} {'p50 µs':>9} {'p99 µs':>9} {'max µs':>9}"


def relay_problems(figures: dict[str, Any]) -> list[str]:
    """What makes a relay run fail: anything but the abusive clients' intended refusals."""
    problems = list(figures["crashes"]) + list(figures["failures"])
    if figures["failure_count"] > len(figures["failures"]):
        problems.append(f"... {figures['failure_count']} failures in all")
    if not figures["intended"].get("rate_limited"):
        problems.append("the abusive clients were never rate_limited")
    if not (figures["alive"] and figures["fresh_request_ok"]):
        problems.append("the relay did not serve a fresh request after the load")
    if figures["log_problems"]:
        problems.append(f"{figures['log_problems']} tracebacks/internal errors in the relay log")
    return problems


def fallback_problems(figures: dict[str, Any]) -> list[str]:
    problems = list(figures["crashes"]) + list(figures["failures"])
    if figures["failure_count"] > len(figures["failures"]):
        problems.append(f"... {figures['failure_count']} failures in all")
    if not (figures["alive"] and figures["fresh_request_ok"]):
        problems.append("the fallback server did not serve a fresh request after the load")
    if figures["log_problems"]:
        problems.append(f"{figures['log_problems']} tracebacks/internal errors in the server log")
    return problems


def report_relay(figures: dict[str, Any]) -> list[str]:
    seconds, intended = figures["seconds"], figures["intended"]
    realistic = figures["clients"] - figures["abusive"]
    lines = [
        f"relay load: {figures['clients']:,} clients ({realistic:,} in {figures['groups']} "
        f"groups of {min(GROUP_SIZES)}-{max(GROUP_SIZES)}, {figures['abusive']} abusive) for "
        f"{seconds:g} s; {figures['workers']} worker process(es); loopback",
        f"  source addresses: {figures['sources_ok']:,}/{figures['clients']:,} clients seen by "
        f"the relay at their own 127.1.x.y",
        f"  requests {figures['requests']:,} ({figures['requests'] / seconds:,.0f}/s), pushes "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(figures["pushes"].items())),
        _latency_header("request -> reply"),
        *(_latency_row(row, figures["latencies"].get(row, {}), seconds) for row in RELAY_ROWS),
        _latency_row("all requests", figures.get("request_latency", {}), seconds),
        _latency_row("signal -> push at recipient", figures["signal_latency"], seconds),
        f"  rooms created {figures['rooms_created']:,}, joins {figures['joins']:,}, leaves "
        f"{figures['leaves']:,}, rounds {figures['rounds']:,}; signals acknowledged "
        f"{figures['signals_sent']:,}, delivered {figures['signals_delivered']:,}, lost "
        f"{figures['signals_lost']}, duplicated {figures['signals_duplicated']}",
        f"  errors: unintended {sum(figures['errors'].values())}"
        + "".join(f", {k} {v}" for k, v in figures["errors"].items())
        + f"; intended (abusive): rate_limited {intended.get('rate_limited', 0):,}, "
        f"room_not_found {intended.get('room_not_found', 0):,}; spam rooms "
        f"{figures['abusive_rooms']}, lucky guesses {figures['guess_hits']}; abusive clients "
        f"limited {figures['abusers_limited']}/{figures['abusive']}",
        f"  relay RSS MiB: idle {figures['rss_idle']:.1f}, {figures['clients']:,} connected "
        f"{figures['rss_ready']:.1f}, peak {figures['rss_peak']:.1f}, after "
        f"{figures['rss_after']:.1f}; fds peak {figures['fds_peak']}; CPU "
        f"{figures['cpu'] * 100:.0f} % of a core",
        _series_line(figures),
        f"  rooms live peak {figures['rooms_peak']}, left after the load "
        f"{figures['rooms_left']} ({figures['settle_seconds']:.1f} s to close); monitor "
        f"synchronised {_yes(figures['monitor_synchronised'])}, gaps {figures['monitor_gaps']}",
        f"  relay alive and serving a fresh request afterwards: "
        f"{_yes(figures['alive'] and figures['fresh_request_ok'])}",
    ]
    return lines


def report_fallback(figures: dict[str, Any]) -> list[str]:
    seconds = figures["seconds"]
    sends, deliveries = figures.get("sends", 0), figures.get("deliveries", 0)
    latencies = figures["latencies"]
    return [
        f"fallback load: {figures['members']} members in {figures.get('rooms', 0)} rooms of "
        f"{ROOM_SIZE} for {seconds:g} s; {figures['workers']} worker process(es); loopback; "
        f"{RECORD_BYTES}-byte records",
        f"  records sent {sends:,} ({sends / seconds:,.0f}/s, "
        f"{figures.get('broadcasts', 0):,} to the whole room), deliveries {deliveries:,} "
        f"({deliveries / seconds:,.0f}/s) of {figures.get('expected', 0):,} expected; lost "
        f"{figures.get('lost', 0)}, duplicated {figures.get('duplicated', 0)}, misdelivered "
        f"{figures.get('misdelivered', 0)}, errors {figures.get('errors', 0)}",
        _latency_header("one way / round trip"),
        _latency_row("send -> deliver", latencies.get("forward", {}), seconds),
        _latency_row(f"send -> sent (every {ACK_EVERY}th)", latencies.get("send", {}), seconds),
        _latency_row("heartbeat -> heartbeat_ack", latencies.get("heartbeat", {}), seconds),
        f"  fallback RSS MiB: idle {figures['rss_idle']:.1f}, attached "
        f"{figures['rss_ready']:.1f}, peak {figures['rss_peak']:.1f}, after "
        f"{figures['rss_after']:.1f}; fds peak {figures['fds_peak']}; CPU "
        f"{figures['cpu'] * 100:.0f} % of a core",
        _series_line(figures),
        f"  fallback server alive and serving a fresh request afterwards: "
        f"{_yes(figures['alive'] and figures['fresh_request_ok'])}",
    ]


def _series_line(figures: dict[str, Any]) -> str:
    points = ", ".join(f"{at:.0f}s {rss:.1f}" for at, rss in figures["rss_series"])
    return f"  RSS MiB during the load: {points}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def report(relay: dict[str, Any] | None, fallback: dict[str, Any] | None) -> str:
    """Both runs as fixed-width text, problems listed verbatim at the end."""
    lines: list[str] = []
    problems: list[str] = []
    if relay is not None:
        lines += report_relay(relay)
        problems += relay_problems(relay)
    if fallback is not None:
        lines += ["", *report_fallback(fallback)]
        problems += fallback_problems(fallback)
    lines.append(f"problems: {len(problems) or 'none'}")
    lines += [f"  {problem}" for problem in problems]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="duration of each load")
    parser.add_argument("--clients", type=int, default=1000, help="relay clients (0: skip)")
    parser.add_argument("--members", type=int, default=200, help="fallback members (0: skip)")
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        default=BASELINE_SECONDS,
        help="duration of each same-run bare pyzmq baseline (0: skip them)",
    )
    args = parser.parse_args(argv)
    from bench import load_baseline  # it builds on this module

    relay = run_relay_load(args.clients, args.seconds) if args.clients else None
    echo = bare = None
    if relay is not None and args.baseline_seconds:
        gap, size = load_baseline.relay_load_shape(relay)
        echo = load_baseline.run_echo_baseline(args.clients, args.baseline_seconds, gap, size)
    fallback = run_fallback_load(args.members, args.seconds) if args.members else None
    if fallback is not None and args.baseline_seconds:
        bare = load_baseline.run_two_hop_baseline(args.members, args.baseline_seconds)
    print(report(relay, fallback))
    failed = bool(relay is not None and relay_problems(relay)) or bool(
        fallback is not None and fallback_problems(fallback)
    )
    if echo is not None or bare is not None:
        text, problems = load_baseline.report(echo, bare)
        print(f"\nsame-run baselines ({args.baseline_seconds:g} s each: latency is steady state)")
        print(text)
        print("\nthe load beside its baselines (ratio: Sandpiper / baseline)")
        print(summary.table(load_baseline.record(relay, echo, fallback, bare)))
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
