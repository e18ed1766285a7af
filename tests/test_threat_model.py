"""The threat model, one test per threat: each name says what is prevented.

docs/security.md states the model; this module proves its claims against real parts: relays,
fallback servers and members as processes on loopback where the claim is about the wire, the
pure cores (driven by the unit tests' Mesh) where it is about what a member accepts.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import signal
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import zmq
from rich.console import Console

from peer.crypto import CryptoError, fallback_member_id, pake_password
from peer.dialing import RECORD
from peer.effects import InLink, OutLink, ToFallback, ToLink, ToRelay
from peer.session import PairSession, SignalOut
from peer.ui import JsonOutput, RichOutput
from peer.words import SECRET_WORDS
from schemas.codec import encode
from schemas.peer import Candidates
from tests.helpers import (
    EventWatcher,
    FallbackProcess,
    LoopbackRecorder,
    Member,
    WireClient,
    create_room,
    running_relay,
    wait_for,
)
from tests.unit.test_room_core import ROOM, Mesh, messages

# ------------------------------------------------------------------ fixtures and helpers

_NOWHERE = Candidates(lan=[], curve_key="A" * 40)


class RecordingMesh(Mesh):
    """The unit tests' Mesh, also keeping every frame a member sends to the relay, the
    fallback server or a direct link: what an observer of every socket would hold."""

    def __init__(self) -> None:
        super().__init__()
        self.capture: list[bytes] = []

    def perform(self, owner: str, effect: Any) -> None:
        if isinstance(effect, (ToRelay, ToFallback)):
            self.capture.append(encode(effect.request))
        elif isinstance(effect, ToLink):
            self.capture.append(effect.frame)
        super().perform(owner, effect)


def _values(frame: bytes) -> set[str]:
    """Every value an observer can pull out of a frame: JSON keys and leaves, and what base64
    text inside them decodes to (JSON again, recursively, or raw bytes as hex)."""
    try:
        message = json.loads(frame)
    except ValueError:
        return {frame.hex()}
    found: set[str] = set()
    for leaf in _leaves(message):
        found.add(leaf if isinstance(leaf, str) else repr(leaf))
        if isinstance(leaf, str):
            try:
                raw = base64.urlsafe_b64decode(leaf.encode())
            except (binascii.Error, ValueError):
                continue
            if len(raw) >= 8:
                found |= _values(raw)
    return found


def _chat_capture(secret: str) -> set[str]:
    mesh = RecordingMesh()
    mesh.add("alice", secret=secret, creator=True)
    mesh.add("bob", secret=secret)
    mesh.blocked.add(frozenset(("alice", "bob")))  # their link dies: the fallback carries on
    mesh.advance(8.0)
    mesh.say("alice", "meet at noon")
    mesh.say("bob", "noted")
    mesh.advance(2.0)
    assert messages(mesh, "bob") == [("alice", "meet at noon")]
    values: set[str] = set()
    for frame in mesh.capture:
        values |= _values(frame)
    return values


def _ports_of(pid: int) -> set[int]:
    """Every local TCP port of a process: its listener and the source of each connection."""
    return {conn.laddr.port for conn in psutil.Process(pid).net_connections(kind="tcp")}


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _mentions_port(message: dict[str, Any], ports: set[int]) -> list[Any]:
    hits = []
    for leaf in _leaves(message):
        if (isinstance(leaf, int) and leaf in ports) or (
            isinstance(leaf, str) and any(f":{port}" in leaf for port in ports)
        ):
            hits.append(leaf)
    return hits


# ------------------------------------------------------------------ the secret


def test_secret_never_sent(
    tmp_path: Path, recorder: LoopbackRecorder, fallback: FallbackProcess, members: list[Member]
) -> None:
    """Through relay and fallback server alike, as a full loopback capture shows: the secret
    words, the password and the texts never cross a socket; the invite is given through the
    environment, so no process listing shows it; no log holds any of them."""
    password = "tangerine submarine"
    texts = ["the vault code is 1234", "received, burning this"]
    server = fallback.endpoint.removeprefix("tcp://")
    with running_relay(tmp_path, "--fallback", server) as relay:
        env = {"SANDPIPER_PASSWORD": password}
        alice, invite = create_room(relay, "alice", "--transport", "fallback", env=env)
        members.append(alice)
        hidden_invite = {**env, "SANDPIPER_CODE": invite}
        bob = Member(relay, "join", "--nick", "bob", "--transport", "fallback", env=hidden_invite)
        members.append(bob)
        assert bob.event("connected", nick="alice")["path"] == "fallback"
        cmdline = " ".join(psutil.Process(bob.process.pid).cmdline())
        alice.say(texts[0])
        bob.event("message", text=texts[0])
        bob.say(texts[1])
        alice.event("message", text=texts[1])
        bob.end_input()
        assert bob.wait() == 0
        relay_log = relay.log()
    captured = recorder.stop()
    code, secret = "-".join(invite.split("-")[:3]), "-".join(invite.split("-")[3:])
    assert code.encode() in captured and b"attach" in captured, "the capture saw both servers"
    for forbidden in [secret, *secret.split("-"), password, *texts]:
        assert forbidden.encode() not in captured, f"{forbidden!r} crossed a socket"
        assert forbidden not in relay_log and forbidden not in fallback.log()
        assert forbidden not in cmdline


def test_offline_guessing_impossible_from_a_full_capture() -> None:
    """Everything members send to the relay, the fallback server and each other, captured in
    two runs with the same code, nicks and secret, has nothing in common that a run with
    another secret lacks: no value is a function of the secret, so a capture gives a guesser
    nothing to test guesses against. (SPAKE2 messages are random group elements; the key
    confirmation and every record use keys only the exchange's random scalars give; the
    fallback room's name is random.) A fallback room named sha256(code, secret), as before,
    fails this test."""
    first, second = _chat_capture("amber-falcon"), _chat_capture("amber-falcon")
    other = _chat_capture("copper-otter")
    stable = first & second
    assert ROOM in stable and "meet at noon" not in stable
    assert stable <= other, f"secret-dependent values on the wire: {sorted(stable - other)}"


def test_online_guessing_limited(tmp_path: Path, members: list[Member]) -> None:
    """Each wrong guess costs a whole key exchange against the members, who lock the room
    after three: from then on even the right invite is refused, and the members are told."""
    with running_relay(tmp_path) as relay:
        alice, invite = create_room(relay)
        members.append(alice)
        code, secret = "-".join(invite.split("-")[:3]), invite.split("-")[3:]
        guesses = [word for word in SECRET_WORDS if word not in secret][:6]
        for attempt in range(3):
            guess = f"{code}-{guesses[2 * attempt]}-{guesses[2 * attempt + 1]}"
            guess_member = Member(relay, "join", guess, "--nick", f"eve{attempt}")
            members.append(guess_member)
            assert guess_member.event("error")["reason"] == "wrong_secret"
            assert guess_member.wait() != 0
        alice.event("room_locked")
        right = Member(relay, "join", invite, "--nick", "bob")
        members.append(right)
        refused = right.event("error")
        assert refused.get("code") == "room_locked", refused
        assert right.wait() != 0


def test_code_enumeration_rate_limited(tmp_path: Path, zmq_context: zmq.Context[Any]) -> None:
    """Looking up codes that do not exist exhausts a small budget (5 by default), then every
    lookup from that address is refused, existing rooms included, so codes cannot be walked."""
    with running_relay(tmp_path) as relay:
        owner = WireClient(zmq_context, relay.endpoint)
        real = owner.request(type="create_room", nick="alice")["code"]
        prober = WireClient(zmq_context, relay.endpoint)
        answers = [
            prober.request(type="lookup_room", code=f"pine-ocean-{n}").get("code")
            for n in range(10, 20)
        ]
        assert answers[:5] == ["room_not_found"] * 5
        assert answers[5:] == ["rate_limited"] * 5
        assert prober.request(type="lookup_room", code=real)["code"] == "rate_limited"


# ------------------------------------------------------------------ metadata


def test_addresses_never_revealed_before_key_confirmation(
    tmp_path: Path, zmq_context: zmq.Context[Any], members: list[Member]
) -> None:
    """A stranger who knows the room code joins, looks the room up and answers the member's
    key exchange with garbage: nothing it receives names any port of the member's (its
    listener, its relay connection's source), so no address leaks before confirmation."""
    with running_relay(tmp_path) as relay:
        alice, invite = create_room(relay)
        members.append(alice)
        code = "-".join(invite.split("-")[:3])
        ports = wait_for(lambda: len(p := _ports_of(alice.process.pid)) >= 2 and p)
        stranger = WireClient(zmq_context, relay.endpoint)
        received = [stranger.request(type="register_peer", code=code, nick="mallory")]
        received.append(stranger.request(type="lookup_room", code=code))
        received += _guess_against(stranger, code, alice, "alice", ("wrong_secret",))
        while stranger.socket.poll(300):
            received.append(json.loads(stranger.socket.recv()))
        assert any(message.get("type") == "signal" for message in received)
        for message in received:
            assert not _mentions_port(message, ports), message
            if message.get("type") == "signal":  # alice's PAKE and confirmation, nothing sealed
                body = json.loads(base64.urlsafe_b64decode(message["payload"]))
                assert body["kind"] in ("pake", "confirm"), body


def _guess_against(
    stranger: WireClient, code: str, target: Member, nick: str, refusals: tuple[str, ...]
) -> list[dict[str, Any]]:
    """A real key exchange with `target`, on a guessed secret: as far as a stranger can get.
    Runs until `target` shows one of `refusals` about mallory; returns what the stranger got."""
    session = PairSession("mallory", nick, code, pake_password("wrong-guess"), _NOWHERE)
    outbox, received = session.start(), []
    deadline = time.monotonic() + 15
    while not any(e.get("event") in refusals for e in target.events):
        assert time.monotonic() < deadline, f"mallory never refused: {target.events}"
        for out in outbox:
            if isinstance(out, SignalOut):
                stranger.send(type="signal", code=code, to=nick, payload=out.payload)
        outbox = []
        arrived, stranger.inbox = stranger.inbox, []  # pushes met while awaiting replies
        if stranger.socket.poll(100):
            arrived.append(json.loads(stranger.socket.recv()))
        for message in arrived:
            received.append(message)
            if message.get("type") == "signal" and message.get("from") == nick:
                with contextlib.suppress(CryptoError):
                    outbox += session.on_signal(message["payload"])
        for refusal in refusals:
            with contextlib.suppress(AssertionError):
                target.event(refusal, nick="mallory", timeout=0.01)
    return received


def test_a_stranger_cannot_make_a_joiner_give_up(
    tmp_path: Path, zmq_context: zmq.Context[Any], members: list[Member]
) -> None:
    """A stranger who knows the room code registers and answers a joiner's key exchange with
    a wrong secret before the creator can (the creator is frozen meanwhile): the joiner, not
    yet sure of its own secret, sets the stranger aside instead of leaving with "wrong code",
    and chats with the creator once it answers."""
    with running_relay(tmp_path) as relay:
        alice, invite = create_room(relay)
        members.append(alice)
        code = "-".join(invite.split("-")[:3])
        stranger = WireClient(zmq_context, relay.endpoint)
        stranger.request(type="register_peer", code=code, nick="mallory")
        alice.process.send_signal(signal.SIGSTOP)
        try:
            bob = Member(relay, "join", invite, "--nick", "bob")
            members.append(bob)
            _guess_against(stranger, code, bob, "bob", ("unconfirmed", "error"))
        finally:
            alice.process.send_signal(signal.SIGCONT)
        bob.event("connected", nick="alice")
        bob.say("made it past mallory")
        alice.event("message", text="made it past mallory")
        assert bob.process.poll() is None
        assert not [e for e in bob.events if e.get("event") == "error"], bob.events


def test_fallback_member_ids_not_linkable_to_nicks() -> None:
    """The fallback server sees only ids: each member's is random per run and travels only
    sealed, so an operator who knows the nicks (from the relay) cannot compute whose is whose;
    an id derived from the room and the nick, as before, fails this test."""
    seen: list[set[str]] = []
    for _ in range(2):
        mesh = Mesh()
        mesh.blocked.add(frozenset(("alice", "bob")))  # only the fallback server joins them
        mesh.add("alice", creator=True)
        mesh.add("bob")
        mesh.advance(4.0)
        mesh.say("alice", "through the server")
        assert messages(mesh, "bob") == [("alice", "through the server")]
        room = mesh.cores["alice"].fallback_room
        assert mesh.fallback is not None and room is not None
        ids = set(mesh.fallback.rooms[room])
        assert len(ids) == 2
        assert not ids & {fallback_member_id(room, nick) for nick in ("alice", "bob")}
        seen.append(ids)
    assert not seen[0] & seen[1]


def test_pub_events_carry_no_addresses(tmp_path: Path, zmq_context: zmq.Context[Any]) -> None:
    """Room events on the PUB socket name rooms and nicks only: no host, no port, not even
    the source ports of the members' connections."""
    with running_relay(tmp_path) as relay:
        alice, bob = (WireClient(zmq_context, relay.endpoint) for _ in range(2))
        watcher = EventWatcher(zmq_context, relay.pub_endpoint)
        watcher.synchronise(alice)
        code = alice.request(type="create_room", nick="alice", listen_port=45_678)["code"]
        bob.request(type="register_peer", code=code, nick="bob", host="10.9.8.7", port=45_679)
        bob.request(type="signal", code=code, to="alice", payload="aGVsbG8gYWxpY2U=")
        bob.request(type="leave_room", code=code)
        events = [watcher.next()[1]]
        while events[-1]["type"] != "peer_left":
            events.append(watcher.next()[1])
        kinds = [event["type"] for event in events]
        assert {"room_created", "peer_joined", "peer_left"} <= set(kinds), kinds
        ports = {45_678, 45_679} | _ports_of(psutil.Process().pid)
        for event in events:
            assert not _mentions_port(event, ports), event
            assert "10.9.8.7" not in json.dumps(event) and "127.0.0.1" not in json.dumps(event)
        watcher.close()


# ------------------------------------------------------------------ what members accept


def test_nick_spoofing_rejected(tmp_path: Path, zmq_context: zmq.Context[Any]) -> None:
    """A nick is held by one connection (a second is refused); a signal's sender is the
    relay's record of the connection, never a field (one claiming `from` is refused); and on
    the links the sender is the authenticated peer: a record from eve saying `from: alice`
    is shown as eve's, or not at all."""
    with running_relay(tmp_path) as relay:
        alice, eve = (WireClient(zmq_context, relay.endpoint) for _ in range(2))
        code = alice.request(type="create_room", nick="alice")["code"]
        assert eve.request(type="register_peer", code=code, nick="alice")["code"] == "nick_taken"
        eve.request(type="register_peer", code=code, nick="eve")
        payload = "aGVsbG8gYWxpY2UsIGl0IGlzIGJvYg=="
        eve.send(type="signal", code=code, to="alice", payload=payload, **{"from": "bob"})
        spoofed = eve.expect(lambda m: m.get("type") == "error")  # invalid: no req_id echoed
        assert spoofed["code"] == "bad_request" and "from" in spoofed["message"]
        eve.request(type="signal", code=code, to="alice", payload=payload)
        assert alice.push("signal")["from"] == "eve"
    mesh = Mesh()
    mesh.add("alice", creator=True)
    mesh.add("bob")
    mesh.add("eve")
    eve_to_bob = mesh.cores["eve"].peers["bob"].session
    forged = b'{"kind":"chat","n":0,"text":"wire the money","from":"alice"}'
    record = eve_to_bob._link_out.seal(forged)  # type: ignore[union-attr]
    link = mesh.cores["bob"].peers["eve"].link
    nick = "eve" if isinstance(link, InLink) else None
    assert link is not None
    shown = mesh.cores["bob"].on_link_frame(link, nick, RECORD + record, mesh.now)
    assert all(effect.event.get("from") != "alice" for effect in shown)  # type: ignore[attr-defined]


def _answered(client: WireClient, request: dict[str, Any]) -> bool:
    try:
        return client.request(timeout=1.0, **request)["type"] != "error"
    except AssertionError:
        return False


def _alice_to_bob(mesh: Mesh, text: str) -> ToLink:
    """Alice's record for bob, taken before it reaches him."""
    effects = mesh.cores["alice"].on_input(text, mesh.now)
    return next(
        e
        for e in effects
        if isinstance(e, ToLink) and e.link == mesh.cores["alice"].peers["bob"].link
    )


def test_reflection_rejected() -> None:
    """A record alice sealed for bob, sent back to alice as if from bob, is dropped: each
    direction has its own key."""
    mesh = Mesh()
    mesh.add("alice", creator=True)
    mesh.add("bob")
    record = _alice_to_bob(mesh, "for bob only")
    alice = mesh.cores["alice"]
    link = alice.peers["bob"].link
    assert link is not None
    nick = "bob" if isinstance(link, InLink) else None
    assert alice.on_link_frame(link, nick, record.frame, mesh.now) == []
    assert messages(mesh, "alice") == []


def test_replay_reorder_tamper_rejected() -> None:
    """Records delivered out of order, again, or altered are dropped; the chat above resends
    what was dropped, so bob sees each of alice's messages exactly once, in order."""
    mesh = Mesh()
    mesh.add("alice", creator=True)
    mesh.add("bob")
    first, second = _alice_to_bob(mesh, "one"), _alice_to_bob(mesh, "two")
    tampered = bytearray(first.frame)
    tampered[-1] ^= 0x01
    for frame in (second.frame, first.frame, second.frame, bytes(tampered), first.frame):
        mesh.perform("alice", ToLink(first.link, frame))
        mesh.run()
    assert messages(mesh, "bob") == []  # "two" came first (a gap); the rest were stale or forged
    mesh.advance(3.0)  # alice's resend timer
    assert messages(mesh, "bob") == [("alice", "one"), ("alice", "two")]


def test_oversized_and_multi_frame_messages_rejected(
    tmp_path: Path, zmq_context: zmq.Context[Any], fallback: FallbackProcess
) -> None:
    """Relay and fallback server answer a multi-frame request with a `multipart` error and
    drop a connection that sends a frame over their limit; both keep serving, the offender
    included once it reconnects. A member drops an oversized or malformed link frame."""
    with running_relay(tmp_path) as relay:
        for endpoint, request in (
            (relay.endpoint, {"type": "create_room"}),
            (fallback.endpoint, {"type": "heartbeat"}),
        ):
            client = WireClient(zmq_context, endpoint)
            client.send_frames([b'{"type":"heartbeat"}', b"second frame"])
            assert client.expect(lambda m: m.get("code") == "multipart")["type"] == "error"
            client.send_frames([b"x" * 200_000])
            # The connection is dropped (with anything queued behind the frame); the socket
            # reconnects and is served again.
            assert wait_for(partial(_answered, client, request), timeout=15)
            client.close()
    mesh = Mesh()
    mesh.add("alice", creator=True)
    mesh.add("bob")
    bob = mesh.cores["bob"]
    link = bob.peers["alice"].link
    assert link is not None
    nick = "alice" if isinstance(link, InLink) else None
    for frame in (RECORD + b"\x01" * 1_000_000, RECORD, b"", b"\xff" * 64):
        assert bob.on_link_frame(link, nick, frame, mesh.now) == []
    assert isinstance(link, (InLink, OutLink))


def test_room_exhaustion_capped(tmp_path: Path, zmq_context: zmq.Context[Any]) -> None:
    """One address holds at most `--max-rooms-per-source` rooms, a room at most
    `--max-members` members: creating or joining past them is refused with a stable code."""
    options = ("--max-rooms-per-source", "3", "--create-burst", "50", "--max-members", "2")
    with running_relay(tmp_path, *options) as relay:
        client = WireClient(zmq_context, relay.endpoint)
        codes = [client.request(type="create_room").get("code") for _ in range(4)]
        assert all(code and "-" in code for code in codes[:3])
        assert codes[3] == "too_many_rooms"
        room = codes[0]
        first, second, third = (WireClient(zmq_context, relay.endpoint) for _ in range(3))
        assert first.request(type="register_peer", code=room, nick="a")["type"] != "error"
        assert second.request(type="register_peer", code=room, nick="b")["type"] != "error"
        assert third.request(type="register_peer", code=room, nick="c")["code"] == "room_full"


def test_terminal_escape_sequences_neutralised() -> None:
    """Text and nicks from the network reach the terminal without a single control
    character (no escape sequence can clear the screen, retitle the window or move the
    cursor), and the JSON output escapes them."""
    hostile = "\x1b[2J\x1b]0;owned\x07\rline\x08\x9b31m"
    screen = io.StringIO()
    rich = RichOutput("bob", Console(file=screen, color_system=None, width=200))
    rich({"event": "message", "from": "mal\x1b[5mlory", "text": hostile})
    rich({"event": "peer_joined", "nick": "\x1b]0;x\x07eve"})
    shown = screen.getvalue()
    assert not any(ch in shown for ch in "\x1b\x07\x08\r\x9b"), repr(shown)
    assert "\ufffd" in shown and "line" in shown
    stream = io.StringIO()
    JsonOutput(stream)({"event": "message", "from": "mallory", "text": hostile})
    line = stream.getvalue()
    assert line.isascii() and "\x1b" not in line and json.loads(line)["text"] == hostile
