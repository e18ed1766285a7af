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
        self._readers: dict[Any, Callable[[float], None]] = {}
        """What to do when a registered socket (or the input descriptor) is readable: only
        the ready ones are looked at, so a chat message costs no checks of the others."""
        self._watch(self.listener.router, self._read_listener)
        self._watch(self.listener.zap, lambda now: self.listener.answer_zap())
        if input_fd is None:  # else nothing is sent to it: one socket fewer to poll
            self._watch(self.input, lambda now: self._on_input(self.input.recv(), now))
        self._relay_events: zmq.Socket[Any] | None = None
        if self.relay is not None:
            self._watch(self.relay.socket, self._read_relay)
            # A reconnection to the relay (it restarted) is worth a heartbeat at once: the
            # answer says whether it still knows us, so the room is re-claimed without delay.
            self._relay_events = self.relay.socket.get_monitor_socket(zmq.EVENT_CONNECTED)
            self._watch(self._relay_events, self._on_relay_event)
        if self.fallback is not None:
            self._watch(self.fallback.socket, self._read_fallback)
        self.input_fd = input_fd
        self._partial = b""
        if input_fd is not None:
            self._watch(input_fd, self._read_input_fd)

    def _watch(self, sock: Any, reader: Callable[[float], None]) -> None:
        self.poller.register(sock, zmq.POLLIN)
        self._readers[sock] = reader

    def _unwatch(self, sock: Any) -> None:
        self.poller.unregister(sock)
        del self._readers[sock]

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
        self._add_dialer(effect.attempt, dealer)

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
        self._add_dialer(effect.attempt, dealer)

    def _add_dialer(self, attempt: int, dealer: zmq.Socket[Any]) -> None:
        self.dialers[attempt] = dealer
        self._watch(dealer, lambda now: self._read_dialer(attempt, dealer, now))

    def _hang_up(self, effect: Hangup) -> None:
        self._unproven.pop(effect.attempt, None)
        dealer = self.dialers.pop(effect.attempt, None)
        if dealer is not None:
            self._unwatch(dealer)
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
        ready = self.poller.poll(wait * 1000)
        if ready:
            self._handle_ready(ready, time.monotonic())

    def _handle_ready(self, ready: list[tuple[Any, int]], now: float) -> None:
        for sock, _ in ready:
            reader = self._readers.get(sock)
            if reader is not None:  # None: unwatched by an earlier reader in this pass
                reader(now)

    def _read_listener(self, now: float) -> None:
        router = self.listener.router
        while True:  # the poll said a message is waiting: no need to ask before the first
            received = self.listener.receive()
            if received is not None:
                routing_id, nick, frame = received
                self.perform(self.core.on_link_frame(InLink(routing_id), nick, frame, now))
            if not _readable(router):
                return

    def _read_relay(self, now: float) -> None:
        assert self.relay is not None
        while (message := self.relay.receive()) is not None:
            self.perform(self.core.on_relay(message, now))

    def _on_relay_event(self, now: float) -> None:
        assert self._relay_events is not None
        self._relay_events.recv_multipart()
        self.core.on_relay_connected(now)

    def _read_fallback(self, now: float) -> None:
        assert self.fallback is not None
        while (reply := self.fallback.receive()) is not None:
            self.perform(self.core.on_fallback(reply, now))

    def _read_dialer(self, attempt: int, dealer: zmq.Socket[Any], now: float) -> None:
        while True:  # as for the listener; a frame may also hang this dial up
            frame = self._proven(attempt, dealer)
            if frame is not None:
                self.perform(self.core.on_link_frame(OutLink(attempt), None, frame, now))
            if self.dialers.get(attempt) is not dealer or not _readable(dealer):
                return

    def _proven(self, attempt: int, dealer: zmq.Socket[Any]) -> bytes | None:
        """A frame from one of our dials; on a punched connection where we are the CurveZMQ
        server, the first frame must come from the member we punched towards (ZAP told)."""
        nick = self._unproven.get(attempt)
        try:
            if nick is None:
                return bytes(dealer.recv(zmq.NOBLOCK))
            frame = dealer.recv(zmq.NOBLOCK, copy=False)
        except zmq.Again:  # a closing connection's queue can vanish after a poll saw it
            return None
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
            self._unwatch(self.input_fd)
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
