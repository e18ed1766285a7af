"""Wiring for `sandpiper create` / `join`: relay, listener, room core, node, terminal."""

from __future__ import annotations

import contextlib
import getpass
import secrets
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import zmq
from pydantic import TypeAdapter, ValidationError

from peer.crypto import pake_password
from peer.invite import Invite, generate_secret, parse_invite
from peer.links import Listener, free_port, local_candidates
from peer.members import PeerSettings
from peer.node import INPUT_ENDPOINT, Node, NodeParts
from peer.relay_client import (
    FallbackConnection,
    RelayConnection,
    RelayRefused,
    RelayUnavailable,
    first_answering,
    normalise_endpoint,
)
from peer.room import RoomCore
from peer.ui import JsonOutput, RichOutput
from schemas.fields import Nick
from schemas.peer import Endpoint
from schemas.relay import (
    CreateRoom,
    LookupRoom,
    PeerRegistered,
    RegisterPeer,
    RoomCreated,
    RoomInfo,
)

_NICK: TypeAdapter[str] = TypeAdapter(Nick)
DEFAULT_RELAYS = ["127.0.0.1:8000"]
"""Tried in order when no relay is configured (the local topology of `make run`)."""


@dataclass(frozen=True)
class MemberOptions:
    nick: str
    relays: list[str]
    password: str
    json: bool
    listen_host: str
    listen_port: int
    relay_timeout: float
    settings: PeerSettings
    advertise: Endpoint | None = None
    fallback: str | None = None
    """HOST:PORT overriding the fallback server the relay advertises."""


def relay_endpoints(values: list[str] | None) -> list[str]:
    """`--relay` values (repeated and/or comma-separated) as endpoints; the default if none.
    ValueError for one that is not HOST:PORT."""
    return [
        normalise_endpoint(part)
        for value in (values or DEFAULT_RELAYS)
        for part in value.replace(",", " ").split()
    ]


def default_nick() -> str:
    try:
        return _NICK.validate_python(getpass.getuser()[:32])
    except (ValidationError, OSError, KeyError):
        return "guest"


def check_nick(nick: str) -> str:
    try:
        return _NICK.validate_python(nick)
    except ValidationError:
        raise ValueError(
            "a nick is 1-32 printable characters without leading or trailing spaces"
        ) from None


def parse_advertise(text: str, listen_port: int) -> Endpoint:
    """`HOST` or `HOST:PORT`; without a port, the listener's own, which must then be fixed."""
    text = text.strip()
    host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    if not port and not listen_port:
        raise ValueError("--advertise without a port needs a fixed --listen-port")
    try:
        return Endpoint(host=host, port=int(port) if port else listen_port)
    except (ValueError, ValidationError):
        raise ValueError(f"--advertise takes HOST or HOST:PORT, not {text!r}") from None


def run_member(options: MemberOptions, *, invite_text: str | None, open_room: bool) -> int:
    """Create (invite_text None) or join a room, then chat until leaving; the exit code."""
    show: Any = JsonOutput() if options.json else RichOutput(options.nick)
    context: zmq.Context[Any] = zmq.Context()
    listener = Listener(context, options.listen_host, options.listen_port)
    try:
        started = _enter_room(context, options, invite_text, open_room, show)
        if started is None:
            listener.close()
            return 1
        relay, invite, observed, members, advertised, token = started
        fallback = _fallback_connection(context, options, advertised, show)
        if fallback is False:
            listener.close()
            relay.close()
            return 1
        candidates = local_candidates(
            options.listen_host,
            listener.port,
            observed[0],
            listener.public_key,
            options.advertise,
            observed_port=observed[1],
            punch_port=relay.local_port,
        )
        core = RoomCore(
            me=options.nick,
            room_code=invite.room_code,
            password=pake_password(invite.secret, options.password),
            candidates=candidates,
            authoritative=invite_text is None,
            settings=options.settings,
            fallback=fallback is not None,
            wall_offset=time.time() - time.monotonic(),
            room_token=token,
        )
        scripted = options.json or not sys.stdin.isatty()
        input_fd = sys.stdin.fileno() if scripted else None
        parts = NodeParts(context, relay, listener, core, fallback or None)
        node = Node(parts, show, input_fd=input_fd)
        node.perform(core.start(members, time.monotonic()))
        try:
            code = node.run() if scripted else _run_interactive(node, context)
        finally:
            node.close()
        return code
    finally:
        # The stdin thread may still hold its socket, blocked on a read that never ends;
        # sockets already closed keep their linger (goodbyes drain), the rest are cut.
        context.destroy(linger=0)


class Entered(NamedTuple):
    relay: RelayConnection
    invite: Invite
    observed: tuple[str | None, int | None]
    """The address and port the relay saw us come from."""
    members: list[str]
    """The other members the relay listed."""
    fallback: str | None
    """The fallback server the relay advertises."""
    token: str | None
    """The room token, if we created the room."""


def _enter_room(
    context: zmq.Context[Any],
    options: MemberOptions,
    invite_text: str | None,
    open_room: bool,
    show: Any,
) -> Entered | None:
    """Create or join on the first relay that answers; None (the error shown) if none does."""
    try:
        if invite_text is None:
            request = CreateRoom(type="create_room", nick=options.nick)
            relay, reply = first_answering(
                context, options.relays, request, options.relay_timeout, free_port
            )
            assert isinstance(reply, RoomCreated)
            invite = Invite(
                reply.code, "" if open_room else generate_secret(secrets.SystemRandom())
            )
            others_use = reply.relay or relay.endpoint.removeprefix("tcp://")
            show(
                {
                    "event": "room_created",
                    "code": str(invite),
                    "open": invite.is_open,
                    "relay": None if others_use in DEFAULT_RELAYS else others_use,
                }
            )
            observed = (reply.observed_host, reply.observed_port)
            return Entered(relay, invite, observed, [], reply.fallback, reply.token)
        invite = parse_invite(invite_text)
        request = RegisterPeer(type="register_peer", code=invite.room_code, nick=options.nick)
        relay, registered = first_answering(
            context, options.relays, request, options.relay_timeout, free_port
        )
        assert isinstance(registered, PeerRegistered)
        info = relay.ask(
            LookupRoom(type="lookup_room", code=invite.room_code), options.relay_timeout
        )
        assert isinstance(info, RoomInfo)
        members = [peer.nick for peer in info.peers if peer.nick != options.nick]
        show({"event": "joined", "room": invite.room_code, "open": invite.is_open})
        observed = (registered.observed_host, registered.observed_port)
        return Entered(relay, invite, observed, members, registered.fallback, None)
    except (RelayUnavailable, TimeoutError, ValueError) as exc:
        show({"event": "error", "message": str(exc)})
    except RelayRefused as exc:
        show({"event": "error", "message": _explain(exc), "code": str(exc.code)})
    return None


def _fallback_connection(
    context: zmq.Context[Any], options: MemberOptions, advertised: str | None, show: Any
) -> FallbackConnection | Literal[False] | None:
    """The fallback server to use (ours overrides the relay's), None for none, False to stop."""
    if options.settings.transport == "p2p":
        return None
    address = options.fallback or advertised
    if address is None:
        if options.settings.transport == "fallback":
            message = "--transport fallback needs a fallback server (--fallback HOST:PORT)"
            show({"event": "error", "message": message})
            return False
        return None
    return FallbackConnection(context, normalise_endpoint(address))


def _explain(refusal: RelayRefused) -> str:
    return {
        "room_not_found": "no such room on this relay: check the code (rooms expire after a day)",
        "nick_taken": "that nick is taken in this room; choose another with --nick",
        "room_full": "the room is full",
        "room_locked": "the room accepts no new members (too many wrong codes were tried)",
        "rate_limited": "the relay is rate-limiting this address; try again in a minute",
    }.get(str(refusal.code), f"the relay refused: {refusal.message}")


def _run_interactive(node: Node, context: zmq.Context[Any]) -> int:
    """One prompt application for the whole chat: Enter hands the line to the node and clears
    the line in place, so the terminal never drops back to cooked mode between two lines (keys
    typed then would be lost or mangled). Output from the network thread lands above it."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
    from prompt_toolkit.patch_stdout import patch_stdout

    sender = context.socket(zmq.PAIR)
    sender.connect(INPUT_ENDPOINT)
    keys = KeyBindings()

    @keys.add("enter", eager=True)
    def _send(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        line = buffer.text
        if line.strip():
            buffer.append_to_history()
            echo = getattr(node.show, "typed", None)
            if echo is not None:
                echo(line)
        buffer.reset()
        sender.send(b"L" + line.encode("utf-8", "replace"))

    session: PromptSession[str] = PromptSession(key_bindings=keys)
    result: dict[str, int] = {}
    finished = threading.Event()

    def stop_prompt() -> None:
        app = session.app
        if app.is_running and app.future is not None and not app.future.done():
            app.exit(exception=EOFError())

    def network() -> None:
        # The node may quit before the prompt runs: the prompt then ends itself in `pre_run`;
        # a running one is ended on its own event loop.
        try:
            result["code"] = node.run()
        finally:
            finished.set()
            loop = session.app.loop
            if loop is not None:
                with contextlib.suppress(RuntimeError):  # that loop has closed already
                    loop.call_soon_threadsafe(stop_prompt)

    def end_if_finished() -> None:
        if finished.is_set():
            stop_prompt()

    thread = threading.Thread(target=network, name="network", daemon=True)
    with patch_stdout(raw=True):
        thread.start()
        with contextlib.suppress(KeyboardInterrupt, EOFError):  # Ctrl-C, Ctrl-D, or the node
            session.prompt(f"{node.core.me}> ", pre_run=end_if_finished)
        if not finished.is_set():  # Ctrl-D or Ctrl-C: leave (goodbyes go out first)
            sender.send(b"Q")
        thread.join(timeout=10)
    sender.close(linger=0)
    return result.get("code", 0)


def run_hosted_member(options: MemberOptions, *, server: str, room: str) -> int:
    """`sandpiper server`: chat in `room` on a fallback server, without relay or direct links."""
    from peer.hosted import HOSTED_ROOM_CODE, HostedRoom, hosted_room_id
    from peer.members import PeerSettings

    show: Any = JsonOutput() if options.json else RichOutput(options.nick)
    context: zmq.Context[Any] = zmq.Context()
    listener = Listener(context, "127.0.0.1", 0)  # admits no one: the transport is `fallback`
    try:
        fallback = FallbackConnection(context, normalise_endpoint(server))
        settings = options.settings
        core = RoomCore(
            me=options.nick,
            room_code=HOSTED_ROOM_CODE,
            password=pake_password(room, options.password),
            candidates=local_candidates("127.0.0.1", listener.port, None, listener.public_key),
            authoritative=False,
            settings=PeerSettings(
                peer_timeout=settings.peer_timeout,
                fallback_timeout=settings.fallback_timeout,
                transport="fallback",
            ),
            fallback=True,
            fallback_room=hosted_room_id(room),
        )
        hosted = HostedRoom(core)
        show({"event": "joined", "room": room, "open": not options.password, "server": server})
        scripted = options.json or not sys.stdin.isatty()
        input_fd = sys.stdin.fileno() if scripted else None
        node = Node(NodeParts(context, None, listener, hosted, fallback), show, input_fd=input_fd)
        node.perform(hosted.start([], time.monotonic()))
        try:
            return node.run() if scripted else _run_interactive(node, context)
        finally:
            node.close()
    finally:
        context.destroy(linger=0)
