"""ZMQ adapter for the fallback server: one ROUTER, the forwarding core, nothing else."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import zmq

from fallback.core import FallbackCore, Send
from fallback.settings import FallbackSettings
from schemas.codec import encode
from schemas.fallback import FallbackError, FallbackErrorCode

log = logging.getLogger("sandpiper.fallback")
_MAX_WAIT = 1.0


class FallbackServer:
    def __init__(
        self,
        settings: FallbackSettings,
        *,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        housekeeping: Callable[[], None] = lambda: None,
    ) -> None:
        """`housekeeping`: called when idle and on the core's timers (the CLI gives its heap
        trimmer)."""
        self.settings = settings
        self._housekeeping = housekeeping
        self.core = FallbackCore(settings)
        self._context = context or zmq.Context.instance()
        self._router: zmq.Socket[bytes] | None = None
        self.endpoint = ""

    def bind(self) -> None:
        router = self._context.socket(zmq.ROUTER)
        ipv6 = ":" in self.settings.host
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.IPV6, int(ipv6))
        router.setsockopt(zmq.MAXMSGSIZE, self.settings.max_message_bytes)
        router.setsockopt(zmq.SNDHWM, self.settings.send_hwm)
        router.setsockopt(zmq.RCVHWM, self.settings.send_hwm)
        router.setsockopt(zmq.HANDSHAKE_IVL, 5_000)  # a stalled greeting is dropped
        router.setsockopt(zmq.HEARTBEAT_IVL, 5_000)
        router.setsockopt(zmq.HEARTBEAT_TIMEOUT, 15_000)
        host = f"[{self.settings.host}]" if ipv6 else self.settings.host
        try:
            router.bind(f"tcp://{host}:{self.settings.port or '*'}")
        except zmq.ZMQError:
            router.close()
            raise
        self._router = router
        self.endpoint = router.getsockopt(zmq.LAST_ENDPOINT).decode()
        log.info("fallback server listening on %s", self.endpoint)

    def serve(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Blocking receives with a timeout set to the core's next deadline, as the relay does."""
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
                frames = router.recv_multipart()
            except zmq.Again:
                self._housekeeping()
                continue
            client = frames[0]
            try:
                effects = self.core.handle(client, frames[1:], time.monotonic())
            except Exception:  # a bug must cost one request, never the server
                log.exception("internal error while handling a request")
                reply = FallbackError(
                    code=FallbackErrorCode.INTERNAL_ERROR, message="internal error"
                )
                effects = [Send(client, reply)]
            self._perform(effects)
            deadline = self.core.next_deadline()

    def _perform(self, effects: list[Send]) -> None:
        assert self._router is not None
        for effect in effects:
            message = effect.message
            payload = message if isinstance(message, bytes) else encode(message)
            try:
                self._router.send_multipart([effect.client, payload], zmq.NOBLOCK)
            except zmq.ZMQError as exc:  # gone, or its queue is full: drop, never block
                log.debug("dropped a frame for a client: %s", exc)

    def close(self) -> None:
        if self._router is not None:
            self._router.close(linger=0)
            self._router = None
