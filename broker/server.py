"""ZMQ adapter for the relay: a ROUTER for requests and pushes, a PUB for room events.

It reads the clock once per message, feeds the core, performs the effects, and sleeps in
`poll` until the next message or the core's next deadline. No protocol logic lives here.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable

import zmq

from broker.core import Effect, Publish, RelayCore
from broker.settings import RelaySettings
from schemas.codec import encode
from schemas.events import MemberLeft
from schemas.relay import Error, ErrorCode

log = logging.getLogger("sandpiper.relay")

_BATCH = 512  # messages drained per wake-up before timers get a turn
_MAX_WAIT = 1.0  # seconds; the loop also checks `should_stop` at least this often
_ZMTP_HEARTBEAT_MS = 5_000
_ZMTP_TIMEOUT_MS = 15_000


class FrameOrigin:
    """Where the connection a frame came on starts, read lazily from libzmq.

    `Peer-Address` gives the remote IP; the remote port comes from the connection's file
    descriptor (`SRCFD`), which libzmq 4.3 still serves.
    """

    __slots__ = ("_frame", "_host", "_port")

    def __init__(self, frame: zmq.Frame) -> None:
        self._frame = frame
        self._host: str | bool | None = False
        self._port: int | bool | None = False

    @property
    def host(self) -> str | None:
        if self._host is False:
            self._host = _normalise_ip(self._frame.get("Peer-Address"))
        return self._host  # type: ignore[return-value]

    @property
    def port(self) -> int | None:
        if self._port is False:
            self._port = _remote_port(self._frame)
        return self._port  # type: ignore[return-value]


def _normalise_ip(text: str | None) -> str | None:
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address)


def _remote_port(frame: zmq.Frame) -> int | None:
    try:
        descriptor = frame.get(zmq.SRCFD)
        with socket.socket(fileno=os.dup(descriptor)) as duplicate:
            peer = duplicate.getpeername()
    except (zmq.ZMQError, OSError, ValueError):
        return None
    return int(peer[1]) if isinstance(peer, tuple) and len(peer) >= 2 else None


class RelayServer:
    def __init__(
        self, settings: RelaySettings, *, context: zmq.Context[zmq.Socket[bytes]] | None = None
    ) -> None:
        self.settings = settings
        self.core = RelayCore(
            settings, rng=secrets.SystemRandom(), wall_offset=time.time() - time.monotonic()
        )
        self._context = context or zmq.Context.instance()
        self._router: zmq.Socket[bytes] | None = None
        self._pub: zmq.Socket[bytes] | None = None
        self.endpoint = ""
        self.pub_endpoint = ""

    def bind(self) -> None:
        settings = self.settings
        router = self._context.socket(zmq.ROUTER)
        pub = self._context.socket(zmq.PUB)
        ipv6 = ":" in settings.host
        for sock in (router, pub):
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.IPV6, int(ipv6))
        router.setsockopt(zmq.MAXMSGSIZE, settings.max_message_bytes)
        router.setsockopt(zmq.SNDHWM, settings.send_hwm)
        router.setsockopt(zmq.RCVHWM, settings.send_hwm)
        router.setsockopt(zmq.HEARTBEAT_IVL, _ZMTP_HEARTBEAT_MS)
        router.setsockopt(zmq.HEARTBEAT_TIMEOUT, _ZMTP_TIMEOUT_MS)
        router.setsockopt(zmq.TCP_KEEPALIVE, 1)
        pub.setsockopt(zmq.SNDHWM, 10_000)
        host = f"[{settings.host}]" if ipv6 else settings.host
        try:
            router.bind(f"tcp://{host}:{settings.port or '*'}")
            pub.bind(f"tcp://{host}:{settings.pub_port or '*'}")
        except zmq.ZMQError:
            router.close()
            pub.close()
            raise
        self._router, self._pub = router, pub
        self.endpoint = router.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.pub_endpoint = pub.getsockopt(zmq.LAST_ENDPOINT).decode()
        log.info("relay listening on %s, room events on %s", self.endpoint, self.pub_endpoint)

    def serve(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        if self._router is None:
            self.bind()
        router = self._router
        assert router is not None
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        while not should_stop():
            now = time.monotonic()
            self._perform(self.core.tick(now))
            deadline = self.core.next_deadline()
            wait = _MAX_WAIT if deadline is None else min(_MAX_WAIT, max(0.0, deadline - now))
            if not poller.poll(wait * 1000):
                continue
            for _ in range(_BATCH):
                try:
                    frames = router.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                self._handle(frames)

    def _handle(self, frames: list[zmq.Frame]) -> None:
        client = frames[0].bytes
        try:
            effects = self.core.handle(
                client,
                [frame.bytes for frame in frames[1:]],
                FrameOrigin(frames[-1]),
                time.monotonic(),
            )
        except Exception:  # a bug must cost one request, never the relay
            log.exception("internal error while handling a request")
            effects = []
            self._send(
                client, encode(Error(code=ErrorCode.INTERNAL_ERROR, message="internal error"))
            )
        self._perform(effects)

    def _perform(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Publish):
                event = effect.event
                self._publish(event.code, encode(event))
                detail = f" {event.nick}" if hasattr(event, "nick") else ""
                reason = f" ({event.reason})" if isinstance(event, MemberLeft) else ""
                log.info("room %s: %s%s%s", event.code, event.type, detail, reason)
            else:
                self._send(effect.client, encode(effect.message))

    def _send(self, client: bytes, payload: bytes) -> None:
        assert self._router is not None
        try:
            self._router.send_multipart([client, payload], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # the client is gone or its queue is full: drop, never block
            log.debug("dropped a frame for a client: %s", exc)

    def _publish(self, topic: str, payload: bytes) -> None:
        assert self._pub is not None
        try:
            self._pub.send_multipart([topic.encode(), payload], zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            log.debug("dropped a room event: %s", exc)

    def close(self) -> None:
        for sock in (self._router, self._pub):
            if sock is not None:
                sock.close(linger=0)
        self._router = self._pub = None
