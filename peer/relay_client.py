"""The member's connection to the discovery relay: try each configured relay in turn.

Thin adapter: one DEALER, blocking request/reply with a deadline during start-up; during the
chat the node's loop reads pushes and replies from the same socket.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from typing import Any

import zmq
from pydantic import TypeAdapter

from schemas.base import WireModel
from schemas.codec import WireError, decode_message, decode_with, encode
from schemas.fallback import FallbackMessage
from schemas.relay import Error, RelayMessage

MAX_SERVER_FRAME = 65_536
"""The largest frame taken from a relay or fallback server (theirs are a few KiB at most)."""

_FALLBACK_MESSAGES: TypeAdapter[FallbackMessage] = TypeAdapter(FallbackMessage)


class RelayUnavailable(Exception):
    """No configured relay answered; the message names every one tried."""


class RelayRefused(Exception):
    """The relay answered with an error (room_not_found, nick_taken, ...)."""

    def __init__(self, error: Error) -> None:
        super().__init__(error.message)
        self.code = error.code
        self.message = error.message


def normalise_endpoint(text: str) -> str:
    """`HOST:PORT` (or a full tcp:// endpoint) -> `tcp://HOST:PORT`."""
    text = text.strip()
    if text.startswith("tcp://"):
        return text
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"a relay is HOST:PORT, not {text!r}")
    return f"tcp://{host}:{port}"


class RelayConnection:
    def __init__(
        self, context: zmq.Context[Any], endpoint: str, source_port: int | None = None
    ) -> None:
        """`source_port`: connect from this local port, so that hole punching can later
        connect from it too and meet the public mapping the relay observed."""
        self.endpoint = endpoint
        self.local_port = source_port
        self.socket: zmq.Socket[Any] = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 500)
        self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_SERVER_FRAME)
        self.socket.setsockopt(zmq.RECONNECT_IVL, 200)
        self.socket.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        if source_port is not None and not endpoint.startswith("tcp://["):
            self.socket.connect(endpoint.replace("tcp://", f"tcp://0.0.0.0:{source_port};", 1))
        else:
            self.local_port = None
            self.socket.connect(endpoint)
        self._ids = itertools.count(1)
        self.early: list[RelayMessage] = []
        """Pushes that arrived while waiting for a reply; the loop handles them first."""

    def send(self, request: WireModel) -> None:
        self.socket.send(encode(request), zmq.NOBLOCK)

    def ask(self, request: WireModel, timeout: float) -> RelayMessage:
        """Send with a fresh req_id and wait for its reply (pushes meanwhile are kept)."""
        req_id = f"r{next(self._ids)}"
        self.send(request.model_copy(update={"req_id": req_id}))
        deadline = timeout * 1000
        while self.socket.poll(deadline):
            message = self.receive()
            if message is None:
                continue
            if getattr(message, "req_id", None) == req_id:
                if isinstance(message, Error):
                    raise RelayRefused(message)
                return message
            self.early.append(message)
        raise TimeoutError(f"no answer from {self.endpoint} within {timeout:g}s")

    def receive(self) -> RelayMessage | None:
        """One frame from the relay, or None for one we cannot parse (dropped)."""
        try:
            return decode_message(self.socket.recv(zmq.NOBLOCK))
        except (WireError, zmq.Again):
            return None

    def close(self, linger_ms: int = 0) -> None:
        self.socket.close(linger=linger_ms)


def first_answering(
    context: zmq.Context[Any],
    endpoints: list[str],
    request: WireModel,
    timeout: float,
    source_port: Callable[[], int] | None = None,
) -> tuple[RelayConnection, RelayMessage]:
    """Ask `request` of each relay in turn; the first that answers (even with an error) wins.
    `source_port`: picks the local port each connection is made from."""
    tried = []
    for endpoint in endpoints:
        connection = RelayConnection(context, endpoint, source_port() if source_port else None)
        try:
            return connection, connection.ask(request, timeout)
        except TimeoutError:
            tried.append(endpoint.removeprefix("tcp://"))
            connection.close()
        except RelayRefused:
            connection.close()
            raise
    raise RelayUnavailable(f"no relay answered within {timeout:g}s (tried {', '.join(tried)})")


class FallbackConnection:
    """The member's DEALER to the fallback server; the room core drives what goes over it."""

    def __init__(self, context: zmq.Context[Any], endpoint: str) -> None:
        self.endpoint = endpoint
        self.socket: zmq.Socket[Any] = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 1000)
        self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_SERVER_FRAME)
        self.socket.setsockopt(zmq.RECONNECT_IVL, 200)
        self.socket.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        self.socket.connect(endpoint)

    def send(self, request: WireModel) -> None:
        # Not connected or congested: acknowledgements make the chat resend what is lost.
        with contextlib.suppress(zmq.Again):
            self.socket.send(encode(request), zmq.NOBLOCK)

    def receive(self) -> FallbackMessage | None:
        try:
            return decode_with(_FALLBACK_MESSAGES, self.socket.recv(zmq.NOBLOCK), None)
        except (WireError, zmq.Again):
            return None

    def close(self, linger_ms: int = 0) -> None:
        self.socket.close(linger=linger_ms)
