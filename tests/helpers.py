"""Test support: a real relay process, and raw wire clients that speak to it over ZMQ."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import zmq

ROOT = Path(__file__).resolve().parent.parent
_LISTENING = re.compile(r"relay listening on (tcp://\S+), room events on (tcp://\S+)")


def sandpiper_command() -> list[str]:
    """The installed console script next to this interpreter, else `python -m sandpiper`."""
    script = Path(sys.executable).with_name("sandpiper")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sandpiper"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll `condition` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


class RelayProcess:
    """`sandpiper relay` as a child process on random loopback ports; log kept in a file."""

    def __init__(
        self,
        workdir: Path,
        *options: str,
        env: dict[str, str] | None = None,
        prefix: list[str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        """`prefix`: run under it (e.g. `ip netns exec NS`); `host`: the address to bind."""
        self.log_path = workdir / f"relay-{os.getpid()}-{id(self)}.log"
        self.options = list(options)
        self.prefix = prefix or []
        self.host = host
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint = ""
        self.pub_endpoint = ""

    def start(self, *, port: int | None = 0, pub_port: int | None = 0) -> RelayProcess:
        """Start on the given ports (0: any free one; None: leave it to env/config)."""
        args = ["relay", "--host", self.host]
        if port is not None:
            args += ["--port", str(port)]
        if pub_port is not None:
            args += ["--pub-port", str(pub_port)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*self.prefix, *sandpiper_command(), *args, *self.options],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )
        match = wait_for(self._listening, timeout=15)
        self.endpoint, self.pub_endpoint = match.group(1), match.group(2)
        return self

    def _listening(self) -> re.Match[str] | None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"relay exited early:\n{self.log()}")
        return _LISTENING.search(self.log())

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it does not go; returns the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode


class FallbackProcess(RelayProcess):
    """`sandpiper fallback` as a child process on a random loopback port."""

    def start(self, *, port: int | None = 0, pub_port: int | None = None) -> FallbackProcess:
        """Start (or start again: `port` keeps a restarted server's address)."""
        args = ["fallback", "--host", self.host, "--port", str(port or 0)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*self.prefix, *sandpiper_command(), *args, *self.options],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )
        self.endpoint = wait_for(self._fallback_listening, timeout=15).group(1)
        return self

    def _fallback_listening(self) -> re.Match[str] | None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"fallback server exited early:\n{self.log()}")
        return re.search(r"fallback server listening on (tcp://\S+)", self.log())


@contextmanager
def running_fallback(workdir: Path, *options: str) -> Iterator[FallbackProcess]:
    server = FallbackProcess(workdir, *options).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def running_relay(workdir: Path, *options: str) -> Iterator[RelayProcess]:
    relay = RelayProcess(workdir, *options).start()
    try:
        yield relay
    finally:
        relay.stop()


def rss_mib(server: RelayProcess) -> float:
    """A relay's or fallback server's resident memory, MiB."""
    import psutil

    assert server.process is not None
    return float(psutil.Process(server.process.pid).memory_info().rss) / 2**20


class WireClient:
    """A plain pyzmq DEALER speaking the relay's one-frame JSON protocol."""

    _ids = itertools.count(1)

    def __init__(self, context: zmq.Context[Any], endpoint: str, *, source_port: int | None = None):
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        target = endpoint.removeprefix("tcp://")
        self.socket.connect(f"tcp://127.0.0.1:{source_port};{target}" if source_port else endpoint)
        self.inbox: list[dict[str, Any]] = []

    def send(self, **fields: Any) -> None:
        self.socket.send(json.dumps(fields).encode())

    def send_frames(self, frames: list[bytes]) -> None:
        self.socket.send_multipart(frames)

    def _receive(self, timeout: float) -> dict[str, Any] | None:
        if not self.socket.poll(timeout * 1000):
            return None
        message: dict[str, Any] = json.loads(self.socket.recv())
        return message

    def request(self, timeout: float = 5.0, **fields: Any) -> dict[str, Any]:
        """Send with a fresh req_id; return the reply carrying it (pushes go to `inbox`)."""
        req_id = f"t{next(self._ids)}"
        self.send(req_id=req_id, **fields)
        return self.expect(lambda m: m.get("req_id") == req_id, timeout)

    def expect(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        for index, message in enumerate(self.inbox):
            if match(message):
                return self.inbox.pop(index)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self._receive(left)
            if message is None:
                break
            if match(message):
                return message
            self.inbox.append(message)
        raise AssertionError(f"no matching message within {timeout}s; inbox: {self.inbox}")

    def push(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        return self.expect(lambda m: m.get("type") == kind and "req_id" not in m, timeout)

    def close(self) -> None:
        self.socket.close(linger=0)


class EventWatcher:
    """A SUB socket on the relay's PUB port, synchronised before use (no slow-joiner loss)."""

    def __init__(self, context: zmq.Context[Any], pub_endpoint: str, topic: bytes = b""):
        self.socket = context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SUBSCRIBE, topic)
        self.socket.connect(pub_endpoint)

    def synchronise(self, client: WireClient, timeout: float = 10.0) -> None:
        """Create throwaway rooms until one's event arrives: from then on nothing is missed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            client.request(type="create_room")
            if self.socket.poll(100):
                while self.socket.poll(50):
                    self.socket.recv_multipart()
                return
        raise AssertionError("subscriber never received an event")

    def next(self, timeout: float = 5.0, *, beats: bool = False) -> tuple[str, dict[str, Any]]:
        """The next room event (the relay's `relay_alive` beats too, if `beats`)."""
        deadline = time.monotonic() + timeout
        while self.socket.poll(max(0.0, deadline - time.monotonic()) * 1000):
            topic, body = self.socket.recv_multipart()
            if beats or topic != b"!relay":
                return topic.decode(), json.loads(body)
        raise AssertionError(f"no room event within {timeout}s")

    def close(self) -> None:
        self.socket.close(linger=0)


class Member:
    """`sandpiper create|join --json` as a child process; events read by a thread."""

    def __init__(
        self,
        relay: RelayProcess | None,
        *args: str,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
    ):
        """`args` for create/join against `relay`; or a whole `command` of one's own."""
        import queue
        import threading

        if command is None:
            assert relay is not None
            relay_address = relay.endpoint.removeprefix("tcp://")
            command = [
                *sandpiper_command(),
                *args,
                "--json",
                "--relay",
                relay_address,
                "--listen-host",
                "127.0.0.1",
            ]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        self.events: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self._queue.put(json.loads(raw))

    def wait_event(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 15.0
    ) -> dict[str, Any]:
        import queue

        for event in self.events:
            if match(event):
                return event
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self._queue.get(timeout=left)
            except queue.Empty:
                break
            self.events.append(event)
            if match(event):
                return event
        raise AssertionError(f"no matching event within {timeout}s; saw {self.events}")

    def event(self, kind: str, timeout: float = 15.0, **fields: Any) -> dict[str, Any]:
        return self.wait_event(
            lambda e: e.get("event") == kind and all(e.get(k) == v for k, v in fields.items()),
            timeout,
        )

    def say(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def end_input(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    def wait(self, timeout: float = 20.0) -> int:
        return self.process.wait(timeout=timeout)

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read().decode(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def create_room(
    relay: RelayProcess, nick: str = "alice", *extra: str, env: dict[str, str] | None = None
) -> tuple[Member, str]:
    member = Member(relay, "create", "--nick", nick, *extra, env=env)
    return member, member.event("room_created")["code"]


ETH_P_ALL = 0x0003


class LoopbackRecorder:
    """Every frame on the loopback interface, raw, via an AF_PACKET socket (needs root)."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._socket.bind(("lo", 0))
        self._socket.settimeout(0.1)
        self._frames: list[bytes] = []
        self._running = True
        self._thread = threading.Thread(target=self._record, daemon=True)
        self._thread.start()

    def _record(self) -> None:
        while self._running:
            try:
                self._frames.append(self._socket.recv(65_535))
            except TimeoutError:
                continue

    def stop(self) -> bytes:
        if self._running:
            self._running = False
            self._thread.join(timeout=5)
            self._socket.close()
        return b"".join(self._frames)

    def tcp_payloads(self, port: int) -> bytes:
        """The TCP payload bytes of IPv4 frames to or from `port` (loopback's 14-byte header)."""
        chunks = []
        for frame in self._frames:
            if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
                continue
            ip_header = (frame[14] & 0x0F) * 4
            tcp = frame[14 + ip_header :]
            if len(tcp) < 20:
                continue
            ports = {int.from_bytes(tcp[0:2], "big"), int.from_bytes(tcp[2:4], "big")}
            if port in ports:
                chunks.append(tcp[(tcp[12] >> 4) * 4 :])
        return b"".join(chunks)
