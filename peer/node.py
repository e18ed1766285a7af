"""The member process: relay connection, listener, dialers and typed input in one ZMQ loop.

Thin adapter around RoomCore: it reads the clock once per pass, feeds the core what arrived,
and performs the effects the core returns. Input comes from another thread over an inproc
PAIR socket: `L<line>` for a typed line, `E` for end of input, `Q` to leave.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from peer.effects import (
    Allow,
    Dial,
    Disallow,
    Effect,
    Hangup,
    InLink,
    OutLink,
    Punch,
    Quit,
    Show,
    ToFallback,
    ToLink,
    ToRelay,
)
from peer.links import Listener, dial, punch
from peer.relay_client import FallbackConnection, RelayConnection

log = logging.getLogger("sandpiper.peer")
INPUT_ENDPOINT = "inproc://sandpiper-input"
_MAX_WAIT = 0.5


@dataclass
class NodeParts:
    context: zmq.Context[Any]
    relay: RelayConnection | None
    listener: Listener
    core: Any
    """A RoomCore, or a HostedRoom wrapping one (same methods)."""
    fallback: FallbackConnection | None = None


class Node:
    def __init__(
        self,
        parts: NodeParts,
        show: Callable[[dict[str, Any]], None],
        *,
        input_fd: int | None = None,
    ) -> None:
        """`input_fd`: read typed lines straight from this descriptor (scripting mode), in the
        loop itself, instead of from another thread over the inproc socket."""
        self.context = parts.context
        self.relay = parts.relay
        self.listener = parts.listener
        self.core = parts.core
        self.fallback = parts.fallback
        self.show = show
        self.dialers: dict[int, zmq.Socket[Any]] = {}
        self._unproven: dict[int, str] = {}
        """Punch attempts where we are the CurveZMQ server: the nick ZAP must have given."""
        self.exit_code: int | None = None
        self.input: zmq.Socket[Any] = self.context.socket(zmq.PAIR)
        self.input.setsockopt(zmq.LINGER, 0)
        self.input.bind(INPUT_ENDPOINT)
        self._perform_one: dict[type[Any], Callable[[Any], None]] = {
            ToRelay: self._to_relay,
            ToFallback: self._to_fallback,
            ToLink: self._send_link,
            Dial: self._dial,
            Punch: self._punch,
            Hangup: self._hang_up,
            Allow: lambda effect: self.listener.allow(effect.nick, effect.client_key),
            Disallow: lambda effect: self.listener.disallow(effect.nick),
            Show: lambda effect: self.show(effect.event),
            Quit: self._quit,
        }
        self.poller = zmq.Poller()
        for sock in (self.listener.router, self.listener.zap, self.input):
            self.poller.register(sock, zmq.POLLIN)
        self._relay_events: zmq.Socket[Any] | None = None
        if self.relay is not None:
            self.poller.register(self.relay.socket, zmq.POLLIN)
            # A reconnection to the relay (it restarted) is worth a heartbeat at once: the
            # answer says whether it still knows us, so the room is re-claimed without delay.
            self._relay_events = self.relay.socket.get_monitor_socket(zmq.EVENT_CONNECTED)
            self.poller.register(self._relay_events, zmq.POLLIN)
        if self.fallback is not None:
            self.poller.register(self.fallback.socket, zmq.POLLIN)
        self.input_fd = input_fd
        self._partial = b""
        if input_fd is not None:
            self.poller.register(input_fd, zmq.POLLIN)

    def perform(self, effects: list[Effect]) -> None:
        for effect in effects:
            self._perform_one[type(effect)](effect)

    def _to_relay(self, effect: ToRelay) -> None:
        if self.relay is None:
            return
        try:
            self.relay.send(effect.request)
        except zmq.Again:
            log.warning("relay queue full; a request was dropped")

    def _to_fallback(self, effect: ToFallback) -> None:
        if self.fallback is not None:
            self.fallback.send(effect.request)

    def _dial(self, effect: Dial) -> None:
        dealer = dial(
            self.context, effect.endpoint, effect.server_key, self.listener.curve_options()
        )
        dealer.send(effect.hello)
        self.dialers[effect.attempt] = dealer
        self.poller.register(dealer, zmq.POLLIN)

    def _punch(self, effect: Punch) -> None:
        source = None if self.relay is None else self.relay.local_port
        if source is None:
            return
        if effect.server_key is None:
            options: dict[int, Any] = self.listener.server_options()
            self._unproven[effect.attempt] = effect.nick
        else:
            options = {zmq.CURVE_SERVERKEY: effect.server_key.encode()}
            options.update(self.listener.curve_options())
        dealer = punch(self.context, source, effect.endpoint, options)
        if effect.hello:
            dealer.send(effect.hello)
        self.dialers[effect.attempt] = dealer
        self.poller.register(dealer, zmq.POLLIN)

    def _hang_up(self, effect: Hangup) -> None:
        self._unproven.pop(effect.attempt, None)
        dealer = self.dialers.pop(effect.attempt, None)
        if dealer is not None:
            self.poller.unregister(dealer)
            dealer.close(linger=0)

    def _quit(self, effect: Quit) -> None:
        self.exit_code = effect.code

    def _send_link(self, effect: ToLink) -> None:
        link = effect.link
        if isinstance(link, InLink):
            self.listener.send(link.routing_id, effect.frame)
            return
        dealer = self.dialers.get(link.attempt)
        if dealer is None:
            return
        try:
            dealer.send(effect.frame, zmq.NOBLOCK)
        except zmq.Again:
            log.warning("link to a member is congested; a frame was dropped")

    def run(self) -> int:
        """Until the core quits; returns the exit code."""
        if self.relay is not None:
            for message in self.relay.early:
                self.perform(self.core.on_relay(message, time.monotonic()))
            self.relay.early.clear()
        try:
            while self.exit_code is None:
                self._pass()
        except KeyboardInterrupt:
            self.perform(self.core.leave(time.monotonic(), 0))
        return self.exit_code if self.exit_code is not None else 0

    def _pass(self) -> None:
        now = time.monotonic()
        deadline = self.core.next_deadline()
        if deadline is not None and now >= deadline:
            self.perform(self.core.tick(now))
            deadline = self.core.next_deadline()
        wait = _MAX_WAIT if deadline is None else min(_MAX_WAIT, max(0.0, deadline - now))
        ready = dict(self.poller.poll(wait * 1000))
        if ready:
            self._handle_ready(ready, time.monotonic())

    def _handle_ready(self, ready: dict[Any, int], now: float) -> None:
        if self.listener.zap in ready:
            self.listener.answer_zap()
        if self._relay_events is not None and self._relay_events in ready:
            self._relay_events.recv_multipart()
            self.core.on_relay_connected(now)
        if self.relay is not None and self.relay.socket in ready:
            while (message := self.relay.receive()) is not None:
                self.perform(self.core.on_relay(message, now))
        if self.fallback is not None and self.fallback.socket in ready:
            while (reply := self.fallback.receive()) is not None:
                self.perform(self.core.on_fallback(reply, now))
        if self.listener.router in ready:
            while _readable(self.listener.router):
                received = self.listener.receive()
                if received is not None:
                    routing_id, nick, frame = received
                    self.perform(self.core.on_link_frame(InLink(routing_id), nick, frame, now))
        self._read_dialers(ready, now)
        if self.input in ready:
            self._on_input(self.input.recv(), now)
        if self.input_fd is not None and self.input_fd in ready:
            self._read_input_fd(now)

    def _read_dialers(self, ready: dict[Any, int], now: float) -> None:
        for attempt, dealer in list(self.dialers.items()):
            while dealer in ready and self.dialers.get(attempt) is dealer and _readable(dealer):
                frame = self._proven(attempt, dealer)
                if frame is not None:
                    self.perform(self.core.on_link_frame(OutLink(attempt), None, frame, now))

    def _proven(self, attempt: int, dealer: zmq.Socket[Any]) -> bytes | None:
        """A frame from one of our dials; on a punched connection where we are the CurveZMQ
        server, the first frame must come from the member we punched towards (ZAP told)."""
        nick = self._unproven.get(attempt)
        if nick is None:
            return bytes(dealer.recv())
        frame = dealer.recv(copy=False)
        try:
            user = frame.get("User-Id")
        except zmq.ZMQError:
            user = None
        if user != nick:
            log.info("dropped a frame from the wrong member on a punched connection")
            return None
        del self._unproven[attempt]
        return frame.bytes

    def _read_input_fd(self, now: float) -> None:
        assert self.input_fd is not None
        data = os.read(self.input_fd, 65_536)
        if not data:
            self.poller.unregister(self.input_fd)
            self.input_fd = None
            if self._partial:
                self.perform(self.core.on_input(self._partial.decode("utf-8", "replace"), now))
            self.perform(self.core.on_end_of_input(now))
            return
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            self.perform(self.core.on_input(line.decode("utf-8", "replace"), now))

    def _on_input(self, message: bytes, now: float) -> None:
        kind, body = message[:1], message[1:]
        if kind == b"L":
            self.perform(self.core.on_input(body.decode("utf-8", "replace"), now))
        elif kind == b"E":
            self.perform(self.core.on_end_of_input(now))
        elif kind == b"Q":
            self.perform(self.core.leave(now, 0))

    def close(self) -> None:
        """Let goodbyes drain (sockets linger briefly), then release everything."""
        for dealer in self.dialers.values():
            dealer.close(linger=1000)
        self.dialers.clear()
        if self.relay is not None:
            self.relay.socket.disable_monitor()
            if self._relay_events is not None:
                self._relay_events.close(linger=0)
            self.relay.close(linger_ms=1000)
        if self.fallback is not None:
            self.fallback.close(linger_ms=1000)
        self.listener.close()
        self.input.close(linger=0)


def _readable(sock: zmq.Socket[Any]) -> bool:
    """Cheaper than Socket.poll(0), which builds a Poller on every call."""
    return bool(sock.getsockopt(zmq.EVENTS) & zmq.POLLIN)
