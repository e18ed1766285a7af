"""ZMQ adapter for the relay: a ROUTER for requests and pushes, a PUB for room events.

It reads the clock once per message, feeds the core, performs the effects, and blocks in a
receive until the next message or the core's next deadline. No protocol logic lives here.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Callable

import zmq
from zmq.auth.thread import ThreadAuthenticator

from broker.core import RelayCore
from broker.effects import Effect, KnownOrigin, Publish
from broker.settings import RelaySettings
from broker.tokens import RoomTokens
from schemas.codec import encode
from schemas.events import ALIVE_TOPIC, MemberLeft, RelayAlive
from schemas.relay import Error, ErrorCode

log = logging.getLogger("sandpiper.relay")

_MAX_WAIT = 1.0  # seconds; the loop also checks `should_stop` at least this often
_ZMTP_HEARTBEAT_MS = 5_000
_ZMTP_TIMEOUT_MS = 15_000
HANDSHAKE_MS = 5_000
"""A connection that has not finished the ZMTP greeting by then is closed."""
_MONITOR_DOMAIN = "sandpiper-monitors"
_MAX_REMEMBERED_ORIGINS = 16_384  # connection -> observed address; re-read when forgotten


def observe_origin(frame: zmq.Frame) -> KnownOrigin:
    """Where the connection `frame` came on starts: remote IP and port, as libzmq sees them.

    `Peer-Address` gives the remote IP; the remote port comes from the connection's file
    descriptor (`SRCFD`), which libzmq 4.3 still serves.
    """
    return KnownOrigin(_normalise_ip(frame.get("Peer-Address")), _remote_port(frame))


def is_auto_routing_id(client: bytes) -> bool:
    """libzmq's own routing ids: a zero byte and a 32-bit counter.

    State is keyed by routing id, so a client that picks its own id could step into a vanished
    member's identity (its memberships and its pushes). Ids of another form are refused; one
    forged in this form would have to guess the counter of a member gone in the last seconds.
    """
    return len(client) == 5 and client[0] == 0


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


class _MonitorAllowList:
    """ZAP credentials for the PUB socket: only these CurveZMQ public keys may subscribe."""

    def __init__(self, keys: frozenset[bytes]) -> None:
        self.keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        allowed = key in self.keys
        if not allowed:
            log.warning("refused a monitor whose key is not allow-listed")
        return allowed


class RelayServer:
    def __init__(
        self,
        settings: RelaySettings,
        *,
        token_key: bytes,
        pub_secret_key: bytes | None = None,
        monitor_keys: frozenset[bytes] = frozenset(),
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        housekeeping: Callable[[], None] = lambda: None,
    ) -> None:
        """`token_key`: persistent, so room tokens outlive a restart. `monitor_keys`: when
        given, the PUB socket is a CurveZMQ server (key `pub_secret_key`, or a fresh one) and
        only these public keys (Z85) may subscribe. `housekeeping`: called when idle and on
        the core's timers (the CLI gives its heap trimmer)."""
        self._housekeeping = housekeeping
        self.settings = settings
        self.core = RelayCore(
            settings,
            rng=secrets.SystemRandom(),
            tokens=RoomTokens(token_key),
            instance=secrets.token_hex(8),
            wall_offset=time.time() - time.monotonic(),
            now=time.monotonic(),
        )
        self._monitor_keys = monitor_keys
        self._pub_secret_key = pub_secret_key
        self._auth: ThreadAuthenticator | None = None
        self._context = context or zmq.Context.instance()
        self._router: zmq.Socket[bytes] | None = None
        self._pub: zmq.Socket[bytes] | None = None
        self._origins: OrderedDict[bytes, KnownOrigin] = OrderedDict()
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
        router.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_MS)  # a stalled greeting is dropped
        router.setsockopt(zmq.HEARTBEAT_IVL, _ZMTP_HEARTBEAT_MS)
        router.setsockopt(zmq.HEARTBEAT_TIMEOUT, _ZMTP_TIMEOUT_MS)
        router.setsockopt(zmq.TCP_KEEPALIVE, 1)
        pub.setsockopt(zmq.SNDHWM, 10_000)
        if self._monitor_keys:
            self._secure_pub(pub)
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
        self.core.pub_port = int(self.pub_endpoint.rsplit(":", 1)[1])
        log.info("relay listening on %s, room events on %s", self.endpoint, self.pub_endpoint)

    def _secure_pub(self, pub: zmq.Socket[bytes]) -> None:
        if self._pub_secret_key is None:
            public, secret = zmq.curve_keypair()
        else:
            secret = self._pub_secret_key
            public = zmq.curve_public(secret)
        self._auth = ThreadAuthenticator(self._context, log=logging.getLogger("sandpiper.zap"))
        self._auth.start()
        self._auth.configure_curve_callback(
            domain=_MONITOR_DOMAIN, credentials_provider=_MonitorAllowList(self._monitor_keys)
        )
        pub.setsockopt(zmq.CURVE_SERVER, 1)
        pub.setsockopt(zmq.CURVE_SECRETKEY, secret)
        pub.setsockopt_string(zmq.ZAP_DOMAIN, _MONITOR_DOMAIN)
        self.core.pub_key = public.decode()

    def serve(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Serve until `should_stop()` (checked at least every second) or an interrupt.

        Blocking receives with a timeout (not poll + drain) keep the per-request cost as close
        to a bare echo loop as possible; timers run only when the core's deadline is due.
        """
        if self._router is None:
            self.bind()
        router = self._router
        assert router is not None
        timeout_ms = -2
        deadline = self.core.next_deadline()
        while not should_stop():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                self._perform(self.core.tick(now))
                deadline = self.core.next_deadline()
                self._housekeeping()
            wait = _MAX_WAIT if deadline is None else min(_MAX_WAIT, max(0.0, deadline - now))
            wanted_ms = max(1, math.ceil(wait * 1000))
            if wanted_ms != timeout_ms:
                router.setsockopt(zmq.RCVTIMEO, wanted_ms)
                timeout_ms = wanted_ms
            try:
                client = router.recv()
            except zmq.Again:
                self._housekeeping()
                continue
            self._receive(router, client)
            deadline = self.core.next_deadline()

    def _receive(self, router: zmq.Socket[bytes], client: bytes) -> None:
        """The rest of a message whose routing id `client` was just read."""
        origin = self._origins.get(client)
        if origin is None:
            # First message on this connection: read its address once, then remember it.
            frames = router.recv_multipart(zmq.NOBLOCK, copy=False)
            origin = observe_origin(frames[-1])
            payload = [frame.bytes for frame in frames]
            self._origins[client] = origin
            if len(self._origins) > _MAX_REMEMBERED_ORIGINS:
                self._origins.popitem(last=False)
        else:
            payload = router.recv_multipart(zmq.NOBLOCK)
        if not is_auto_routing_id(client):
            self._origins.pop(client, None)
            reply = Error(code=ErrorCode.BAD_REQUEST, message="custom routing ids are not accepted")
            self._send(client, encode(reply))
            return
        try:
            effects = self.core.handle(client, payload, origin, time.monotonic())
        except Exception:  # a bug must cost one request, never the relay
            log.exception("internal error while handling a request")
            reply = Error(code=ErrorCode.INTERNAL_ERROR, message="internal error")
            self._send(client, encode(reply))
            return
        self._perform(effects)

    def _perform(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Publish):
                event = effect.event
                if isinstance(event, RelayAlive):
                    self._publish(ALIVE_TOPIC, encode(event))
                    continue
                self._publish(event.code, encode(event))
                detail = f" {event.nick}" if hasattr(event, "nick") else ""
                reason = f" ({event.reason})" if isinstance(event, MemberLeft) else ""
                log.info("room %s: %s%s%s", event.code, event.type, detail, reason)
            else:
                message = effect.message
                self._send(
                    effect.client, message if isinstance(message, bytes) else encode(message)
                )

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
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
