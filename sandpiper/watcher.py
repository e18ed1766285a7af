"""The monitor's adapter: a SUB socket on the relay's PUB (CurveZMQ when the relay asks for
it), connection events, and the rich live view; the `Watch` core decides what it all means."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import zmq
from pydantic import TypeAdapter
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from zmq.utils.monitor import recv_monitor_message

from broker.watch import Watch
from peer.relay_client import (
    RelayConnection,
    RelayRefused,
    RelayUnavailable,
    first_answering,
    normalise_endpoint,
)
from peer.ui import sanitize
from sandpiper.chat import relay_endpoints
from sandpiper.keys import KeyFileError, keys_dir, load_secret_key, public_key
from schemas.codec import WireError, decode_with
from schemas.events import ALIVE_TOPIC, PubMessage
from schemas.relay import GetRelayInfo, LookupRoom, RelayInfo, RoomInfo

_EVENTS_OF_NOTE = {
    "EVENT_CONNECTED": "connected",
    "EVENT_DISCONNECTED": "disconnected",
    "EVENT_HANDSHAKE_FAILED_AUTH": "refused",
    "EVENT_HANDSHAKE_FAILED_PROTOCOL": "refused",
    "EVENT_HANDSHAKE_FAILED_NO_DETAIL": "refused",
}


_PUB_MESSAGES: TypeAdapter[PubMessage] = TypeAdapter(PubMessage)


_ROOM_EVENTS = {
    "room_created",
    "peer_joined",
    "peer_left",
    "room_expired",
    "room_closed",
    "room_locked",
}


class MonitorError(Exception):
    pass


class Monitor:
    def __init__(  # noqa: PLR0917 - the command's options, passed on
        self,
        rooms: frozenset[str],
        relay: list[str] | None,
        pub: str | None,
        key: Path | None,
        relay_key: str | None,
        timeout: float,
        output: Any,
    ) -> None:
        self.watch = Watch(rooms)
        self.output = output
        self.public = ""
        self.context: Any = zmq.Context()
        try:
            relays = relay_endpoints(relay)
            pub_endpoint = normalise_endpoint(pub) if pub else None
        except ValueError as exc:
            raise MonitorError(str(exc)) from None
        info, relay_connection = self._ask_relay(relays, timeout, pub_endpoint is None)
        if pub_endpoint is None:
            assert info is not None and relay_connection is not None
            host = relay_connection.endpoint.rpartition(":")[0]
            pub_endpoint = f"tcp://{info.pub}" if info.pub else f"{host}:{info.pub_port}"
        self.pub_endpoint = pub_endpoint
        server_key = self._server_key(info, relay_key)
        self.socket = self.context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RCVHWM, 100_000)
        self.socket.setsockopt(zmq.RECONNECT_IVL, 250)
        self.socket.setsockopt(zmq.RECONNECT_IVL_MAX, 4000)
        self.socket.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        self.socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
        if server_key is not None:
            public, secret = self._own_key(key)
            self.socket.setsockopt(zmq.CURVE_SERVERKEY, server_key)
            self.socket.setsockopt(zmq.CURVE_PUBLICKEY, public)
            self.socket.setsockopt(zmq.CURVE_SECRETKEY, secret)
            self.public = public.decode()
        for topic in sorted(rooms) or [""]:
            self.socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        if rooms:
            self.socket.setsockopt(zmq.SUBSCRIBE, ALIVE_TOPIC.encode())
        self.events = self.socket.get_monitor_socket()
        self.socket.connect(pub_endpoint)
        if relay_connection is not None:
            self._seed(relay_connection, rooms, timeout)
            relay_connection.close()

    def _ask_relay(
        self, relays: list[str], timeout: float, needed: bool
    ) -> tuple[RelayInfo | None, RelayConnection | None]:
        """The relay's answer to `relay_info`, and the connection it came on; (None, None) if
        no relay answers and the caller can do without (`needed` False)."""
        try:
            connection, info = first_answering(
                self.context, relays, GetRelayInfo(type="relay_info"), timeout
            )
        except RelayUnavailable as exc:
            if needed:
                raise MonitorError(f"{exc}; give --pub HOST:PORT to subscribe anyway") from None
            return None, None
        except RelayRefused as exc:  # a relay too old to answer relay_info
            if needed:
                raise MonitorError(f"the relay would not say where it publishes: {exc}") from None
            return None, None
        assert isinstance(info, RelayInfo)
        return info, connection

    def _server_key(self, info: RelayInfo | None, pinned: str | None) -> bytes | None:
        try:
            pinned_key = None if pinned is None else public_key(pinned)
        except KeyFileError as exc:
            raise MonitorError(str(exc)) from None
        offered = None if info is None or info.pub_key is None else info.pub_key.encode()
        if pinned_key is not None and offered is not None and pinned_key != offered:
            raise MonitorError(
                "the relay's key is not the one given with --relay-key: refusing to subscribe"
            )
        if pinned_key is not None and info is not None and offered is None:
            raise MonitorError("--relay-key was given but this relay publishes without CurveZMQ")
        return pinned_key or offered

    def _own_key(self, key: Path | None) -> tuple[bytes, bytes]:
        path = key or keys_dir() / "monitor.key_secret"
        if not path.exists():
            raise MonitorError(
                "this relay lets only allow-listed monitors see room events: run "
                "`sandpiper keygen`, give the relay operator the public key, and retry"
            )
        try:
            return load_secret_key(path)
        except KeyFileError as exc:
            raise MonitorError(str(exc)) from None

    def _seed(self, connection: RelayConnection, rooms: frozenset[str], timeout: float) -> None:
        """Members of the watched rooms now, from the relay (events only tell what changes)."""
        for code in sorted(rooms):
            try:
                info = connection.ask(LookupRoom(type="lookup_room", code=code), timeout)
            except (RelayRefused, TimeoutError) as exc:
                self._show({"event": "room_unknown", "code": code, "message": str(exc)})
                continue
            if isinstance(info, RoomInfo):
                members = [peer.nick for peer in info.peers]
                self.watch.seed(code, members, time.time())
                self._show({"event": "room", "code": code, "members": members})

    def run(self, duration: float | None) -> None:
        """Until `duration` passes or Ctrl-C; MonitorError if the relay refuses our key."""
        stop_at = None if duration is None else time.monotonic() + duration
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(self.events, zmq.POLLIN)
        live = None if self.output is not None else _LiveView(self)
        self._show({"event": "subscribed", "pub": self.pub_endpoint.removeprefix("tcp://")})
        try:
            if live is not None:
                live.start()
            while stop_at is None or time.monotonic() < stop_at:
                ready = dict(poller.poll(250))
                now = time.monotonic()
                if self.events in ready:
                    self._on_connection_event()
                if self.socket in ready:
                    self._drain(now)
                for shown in self.watch.tick(now):
                    self._show(shown)
                if live is not None:
                    live.refresh()
        finally:
            if live is not None:
                live.stop()

    def _on_connection_event(self) -> None:
        """MonitorError when the relay refused us: nothing changes by waiting."""
        note = _connection_note(recv_monitor_message(self.events))
        if note == "refused":
            raise MonitorError(
                "the relay refused this monitor's key: ask its operator to run the relay "
                f"with --allow-monitor {self.public}"
            )
        if note is not None:
            self._show({"event": note})

    def _drain(self, now: float) -> None:
        while True:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2:  # not a relay event
                continue
            try:
                event = decode_with(_PUB_MESSAGES, frames[1], None)
            except WireError:
                continue
            for shown in self.watch.on_event(event, now):
                self._show(shown)

    def _show(self, event: dict[str, Any]) -> None:
        if self.output is not None:
            self.output(event)

    def close(self) -> None:
        self.context.destroy(linger=0)


def _connection_note(message: dict[str, Any]) -> str | None:
    for name, note in _EVENTS_OF_NOTE.items():
        if message["event"] == getattr(zmq, name, None):
            return note
    return None


class _LiveView:
    """The rich view: rooms and members, the latest events, and what was missed."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.live = Live(console=Console(), refresh_per_second=4, auto_refresh=False)
        self._last = 0.0
        self._shown: tuple[Any, ...] = ()

    def start(self) -> None:
        self.live.start()
        self.refresh(force=True)

    def stop(self) -> None:
        self.live.stop()

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        watch = self.monitor.watch
        shown = (watch.events, watch.missed, watch.restarts, watch.relay, len(watch.recent))
        if not force and (
            now - self._last < 0.25 or (shown == self._shown and now - self._last < 5)
        ):
            return  # redraw on news, at most 4 times a second; else every 5 s
        self._last, self._shown = now, shown
        self.live.update(self._render(), refresh=True)

    def _render(self) -> Any:
        watch = self.monitor.watch
        rooms = Table(title="rooms", title_justify="left", expand=True)
        rooms.add_column("code", style="bold")
        rooms.add_column("members")
        rooms.add_column("state")
        for room in list(watch.rooms.values())[-30:]:
            state = "locked" if room.locked else "open"
            rooms.add_row(room.code, sanitize(", ".join(room.members)) or "-", state)
        lines = Text()
        for event in list(watch.recent)[-12:]:
            lines.append(describe(event) + "\n", style=_style(event))
        watched = ", ".join(sorted(watch.codes)) or "every room"
        status = Text.assemble(
            ("relay ", "dim"),
            (watch.relay or "?", "bold"),
            (f"  {self.monitor.pub_endpoint.removeprefix('tcp://')}  watching {watched}  ", "dim"),
            (f"{watch.events} events, {watch.missed} missed, {watch.restarts} restarts", ""),
        )
        return Group(status, rooms, Panel(lines, title="recent", title_align="left"))


def describe(event: dict[str, Any]) -> str:
    kind = event["event"]
    at = datetime.fromtimestamp(event["at"]).strftime("%H:%M:%S ") if "at" in event else ""
    if kind not in _ROOM_EVENTS and kind != "gap":
        details = " ".join(f"{k}={sanitize(str(v))}" for k, v in event.items() if k != "event")
        return f"{kind.replace('_', ' ')} {details}".rstrip()
    if kind == "gap" and event.get("reason") == "relay_restarted":
        return f"{at}relay restarted: events after #{event.get('after_seq')} may be lost"
    if kind == "gap":
        return f"{at}missed {event['missed']} event(s) after #{event['after_seq']}"
    nick = f" {sanitize(event['nick'])}" if "nick" in event else ""
    return f"{at}{event.get('code', '')}: {kind.replace('_', ' ')}{nick}"


def _style(event: dict[str, Any]) -> str:
    return {"gap": "bold yellow", "peer_joined": "green", "peer_left": "dim"}.get(
        event["event"], ""
    )
