"""A member's room core under hostile input: nothing forged is ever shown, and chat goes on.

Alice and bob are confirmed members of one room (the `Mesh` of tests/unit/test_room_core.py
wires their real cores), talking on a direct link or through the fallback server. Between
real lines typed on both sides (some of alice's lost on the way, to be resent), bob's core is
fed hostile input on every entry point: link frames (arbitrary bytes, and alice's real
records replayed, reordered, bit-flipped, truncated), relay messages (schema-valid; signals
with garbage or replayed payloads), and fallback-server messages (deliveries of garbage, or
of real records from another channel).

Each example starts from a copy of a mesh keyed once per process: SPAKE2 is pure Python and
far slower than anything else here. Relay messages that rightly end the chat (alice left,
the room expired) are the relay's to send and are not fuzzed here.
"""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from peer.dialing import CONTROL, RECORD
from peer.effects import InLink, Link, OutLink, ToFallback, ToLink, ToRelay
from peer.room import RoomCore
from schemas.codec import decode_request, decode_with, encode
from schemas.fallback import (
    FALLBACK_REQUEST_TYPES,
    Attached,
    Deliver,
    Detached,
    FallbackError,
    FallbackErrorCode,
    FallbackHeartbeatAck,
    FallbackRequest,
    Forward,
    MemberAttached,
    MemberDetached,
    Sent,
)
from schemas.peer import MAX_TEXT
from schemas.relay import (
    CoordinateConnection,
    Error,
    ErrorCode,
    HeartbeatAck,
    ObservedAddress,
    PeerInfo,
    PeerJoined,
    PeerLeft,
    PeerRegistered,
    ReceivedSignal,
    RelayInfo,
    RelayMessage,
    RoomCreated,
    RoomInfo,
    RoomLeft,
    RoomLocked,
    SendSignal,
    SignalSent,
)
from tests.fuzz import fuzz_settings, mutate, mutations
from tests.unit.test_room_core import ROOM, Mesh

FALLBACK_REQUESTS: TypeAdapter[Any] = TypeAdapter(FallbackRequest)
KEPT = 32
"""Captured frames kept per kind (the latest)."""


class FuzzMesh(Mesh):
    """The unit tests' mesh, also keeping what alice really sent bob and what each typed."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[bytes] = []
        """Alice's link frames to bob that carry records (RECORD + sealed record)."""
        self.forwards: list[str] = []
        """Alice's sealed records to bob through the fallback server (base64)."""
        self.signals: list[str] = []
        """Alice's relay signal payloads to bob (PAKE, confirmation, sealed candidates)."""
        self.said: dict[str, list[str]] = {"alice": [], "bob": []}

    def perform(self, owner: str, effect: Any) -> None:
        if owner == "alice":
            request = getattr(effect, "request", None)
            if isinstance(effect, ToLink) and effect.frame[:1] == RECORD:
                _keep(self.records, effect.frame)
            elif isinstance(request, Forward):
                _keep(self.forwards, request.payload)
            elif isinstance(request, SendSignal) and request.to == "bob":
                _keep(self.signals, request.payload)
        super().perform(owner, effect)

    def say(self, nick: str, line: str) -> None:
        self.said[nick].append(line)
        super().say(nick, line)

    def feed_bob(self, effects: list[Any]) -> None:
        """Bob's answer to hostile input, checked, then performed as any other."""
        for effect in effects:
            check_effect(effect)
        self.queue += [("bob", effect) for effect in effects]
        self.run()

    def texts(self, nick: str) -> list[tuple[str, str]]:
        return [(event["from"], event["text"]) for event in self.events(nick, "message")]


def _keep(kept: list[Any], item: Any) -> None:
    kept.append(item)
    del kept[:-KEPT]


def check_effect(effect: Any) -> None:
    """What bob sends the relay or the fallback server is a valid request."""
    if isinstance(effect, ToRelay):
        decode_request(encode(effect.request))
    elif isinstance(effect, ToFallback):
        decode_with(FALLBACK_REQUESTS, encode(effect.request), FALLBACK_REQUEST_TYPES)


# ------------------------------------------------------------------ the keyed meshes

_BASES: dict[str, tuple[FuzzMesh, dict[int, Any]]] = {}


def _base(topology: str) -> tuple[FuzzMesh, dict[int, Any]]:
    """Alice and bob confirmed and chatting on `topology` ("link" or "fallback"), and a
    deepcopy memo that shares their immutable crypto objects (AEAD keys cannot be copied)."""
    if topology not in _BASES:
        mesh = FuzzMesh()
        if topology == "fallback":
            mesh.blocked.add(frozenset(("alice", "bob")))
        mesh.add("alice", creator=True)
        mesh.add("bob")
        mesh.advance(4.0)
        mesh.say("alice", "warm from alice")
        mesh.say("bob", "warm from bob")
        mesh.advance(1.0)
        path = "lan" if topology == "link" else "fallback"
        assert mesh.events("bob", "connected") == [
            {"event": "connected", "nick": "alice", "path": path}
        ]
        assert mesh.texts("bob") == [("alice", "warm from alice")]
        assert mesh.records if topology == "link" else mesh.forwards
        memo: dict[int, Any] = {}
        for core in mesh.cores.values():
            for peer in core.peers.values():
                session = peer.session
                memo[id(session._pake)] = session._pake
                for name in ("signal", "link", "fallback"):
                    for direction in ("out", "in"):
                        keyed = getattr(session, f"_{name}_{direction}")
                        memo[id(keyed._aead)] = keyed._aead
        _BASES[topology] = (mesh, memo)
    return _BASES[topology]


def fresh_mesh(topology: str) -> FuzzMesh:
    mesh, memo = _base(topology)
    return copy.deepcopy(mesh, dict(memo))


# ------------------------------------------------------------------ steps


@dataclass(frozen=True)
class Say:
    nick: str
    text: str


@dataclass(frozen=True)
class Unheard:
    """Alice types a line whose records all vanish on the way (kept for later replay)."""

    text: str


@dataclass(frozen=True)
class Advance:
    seconds: float


@dataclass(frozen=True)
class LinkBytes:
    """Any frame on a link: bob's real one to alice, or one it never had."""

    link: int
    nick: str | None
    frame: bytes


@dataclass(frozen=True)
class LinkRecord:
    """One of alice's real record frames again: replayed as is, or edited."""

    link: int
    index: int
    edits: list[tuple[str, int, int]]


@dataclass(frozen=True)
class RelayPush:
    message: RelayMessage


@dataclass(frozen=True)
class StrangerSignal:
    """Someone who knows the room code joins (the relay announces it) and signals at once."""

    nick: str
    payload: str


@dataclass(frozen=True)
class SignalReplay:
    """One of alice's real signals, as is or with its decoded bytes edited, from anyone."""

    sender: str
    index: int
    edits: list[tuple[str, int, int]]


@dataclass(frozen=True)
class FallbackPush:
    message: Any


@dataclass(frozen=True)
class DeliverGarbage:
    sender: str
    payload: str


@dataclass(frozen=True)
class DeliverRecord:
    """One of alice's real records delivered by the fallback server: from her own channel
    (a replay) or from the link channel (another key), as is or edited."""

    sender: str
    channel: str
    index: int
    edits: list[tuple[str, int, int]]


NICKS = ["alice", "bob", "eve", "carol"]
STRANGERS = ["eve", "carol"]
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-"
TEXTS = [
    "hello",
    "a",
    "x" * MAX_TEXT,
    "tab\tand \x1b[31mescape\x07",
    "Zo\u00eb \u674e \U0001f600",
    "\u202eevil",
    " leading space",
    "trailing space ",
    '{"kind":"chat","n":0}',
]
"""Lines typed by the members (no commands, no blank lines: those are not chat)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


garbage_b64 = st.one_of(
    st.binary(min_size=1, max_size=96).map(_b64),
    st.text(B64, min_size=1, max_size=24),
    st.sampled_from(["A" * 4096, "====", "QQ", "-_-_", "AAAA" * 10]),
)


def signal_body(kind: str, key: str, blob: bytes) -> str:
    """A relay signal's payload: base64 of the JSON body that carries `blob` in base64."""
    return _b64(json.dumps({"kind": kind, key: _b64(blob)}).encode())


signal_bodies = st.one_of(
    st.binary(min_size=32, max_size=32).map(lambda point: signal_body("pake", "msg", b"S" + point)),
    st.binary(min_size=32, max_size=32).map(lambda mac: signal_body("confirm", "mac", mac)),
    st.binary(min_size=25, max_size=96).map(lambda record: signal_body("sealed", "record", record)),
    st.builds(
        signal_body,
        st.sampled_from(["pake", "confirm", "sealed", "chat"]),
        st.sampled_from(["msg", "mac", "record"]),
        st.binary(max_size=64),
    ),
)
"""Well-formed signal bodies around garbage: PAKE messages of the right size and side byte
(random points, on the curve or not), confirmations, sealed records; and mismatched ones."""
link_frames = st.one_of(
    st.binary(max_size=80),
    st.binary(max_size=80).map(lambda body: RECORD + body),
    st.binary(max_size=40).map(lambda body: CONTROL + body),
    st.sampled_from(
        [
            RECORD,
            CONTROL,
            CONTROL + b'{"kind":"hello","path":"lan"}',
            CONTROL + b'{"kind":"hello_ack"}',
            CONTROL + b'{"kind":"ready","path":"punched"}',
            CONTROL + b'{"kind":"ready","path":"fallback"}',
            RECORD + bytes([1]) + bytes(8) + bytes(16),
            RECORD + bytes([1]) + b"\xff" * 8 + bytes(40),
        ]
    ),
)
LINKS = 5
"""0: bob's link to alice; 1-4: links bob never had (see `link_for`)."""
links = st.integers(0, LINKS - 1)

relay_messages = st.one_of(
    st.builds(
        lambda nick, payload: ReceivedSignal(code=ROOM, from_=nick, payload=payload),
        st.sampled_from(NICKS),
        st.one_of(garbage_b64, signal_bodies),
    ),
    st.builds(lambda nick: PeerJoined(code=ROOM, peer=PeerInfo(nick=nick)), st.sampled_from(NICKS)),
    st.builds(
        lambda nick, reason: PeerLeft(code=ROOM, nick=nick, reason=reason),
        st.sampled_from(["bob", *STRANGERS]),
        st.sampled_from(["left", "timeout"]),
    ),
    st.builds(
        lambda code, member: HeartbeatAck(code=code, member=member, req_id=7),
        st.sampled_from([ROOM, None, "aa-bb-10"]),
        st.sampled_from([True, False, None]),
    ),
    st.builds(
        lambda text, req_id: Error(code=ErrorCode.ROOM_NOT_FOUND, message=text, req_id=req_id),
        st.one_of(st.text(max_size=40), st.just("\x1b]0;pwned\x07" * 500)),
        st.sampled_from([None, "rejoin", 7]),
    ),
    st.builds(
        lambda first, second, at: CoordinateConnection(
            code=ROOM, peers=[first, second], timestamp=at
        ),
        st.sampled_from(NICKS),
        st.sampled_from(NICKS),
        st.sampled_from([0.0, 1.0, 1e10, 1.7e9]),
    ),
    st.builds(
        lambda nicks: RoomInfo(
            code=ROOM, expires_at=0, peers=[PeerInfo(nick=n) for n in nicks], req_id="rejoin"
        ),
        st.lists(st.sampled_from(NICKS), max_size=3),
    ),
    st.sampled_from(
        [
            RoomLocked(code=ROOM),
            RoomLocked(code="aa-bb-10"),
            PeerRegistered(code=ROOM, nick="bob", expires_at=0, heartbeat_timeout=15.0),
            PeerRegistered(
                code=ROOM, nick="bob", expires_at=0, heartbeat_timeout=15.0, req_id="rejoin"
            ),
            SignalSent(code=ROOM, to="alice"),
            RoomLeft(code=ROOM),
            RoomCreated(code=ROOM, expires_at=0),
            ObservedAddress(host="203.0.113.9", port=1),
            RelayInfo(relay="0" * 16),
        ]
    ),
)
"""Schema-valid relay messages, minus the two that rightly end bob's chat with alice."""
member_ids = st.sampled_from(["alice", "eve", "0" * 32, "f" * 32])
"""A nick stands for that member's id on the fallback server, resolved when sent."""
fallback_messages = st.one_of(
    st.builds(
        lambda code, req_id: FallbackError(code=code, message="x", req_id=req_id),
        st.sampled_from(list(FallbackErrorCode)),
        st.sampled_from([None, 1]),
    ),
    st.builds(
        lambda members: Attached(members=members, heartbeat_timeout=15.0),
        st.lists(st.sampled_from(["0" * 32, "f" * 32]), max_size=2),
    ),
    st.sampled_from(
        [
            MemberAttached(member="0" * 32),
            MemberDetached(member="0" * 32, reason="replaced"),
            Sent(delivered=3),
            Detached(),
            FallbackHeartbeatAck(req_id="x"),
        ]
    ),
)

typing_steps = st.one_of(
    st.builds(Say, st.sampled_from(["alice", "bob"]), st.sampled_from(TEXTS)),
    st.builds(Unheard, st.sampled_from(TEXTS)),
)
time_steps = st.builds(Advance, st.sampled_from([0.25, 0.25, 1.0, 2.5, 6.0]))
link_steps = st.one_of(
    st.builds(LinkBytes, links, st.sampled_from(["alice", None, "eve", "bob"]), link_frames),
    st.builds(LinkRecord, links, st.integers(0, KEPT - 1), st.just([])),
    st.builds(LinkRecord, links, st.integers(0, KEPT - 1), mutations),
)
relay_steps: st.SearchStrategy[Any] = st.one_of(
    st.builds(RelayPush, relay_messages),
    st.builds(RelayPush, relay_messages),
    st.builds(StrangerSignal, st.sampled_from(STRANGERS), st.one_of(signal_bodies, garbage_b64)),
    st.builds(
        SignalReplay,
        st.sampled_from(NICKS),
        st.integers(0, KEPT - 1),
        st.one_of(st.just([]), mutations),
    ),
)
fallback_steps = st.one_of(
    st.builds(FallbackPush, fallback_messages),
    st.builds(DeliverGarbage, member_ids, st.one_of(garbage_b64, signal_bodies)),
    st.builds(
        DeliverRecord,
        member_ids,
        st.sampled_from(["fallback", "link"]),
        st.integers(0, KEPT - 1),
        st.one_of(st.just([]), mutations),
    ),
)


def steps(*hostile: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(st.one_of(typing_steps, time_steps, *hostile), min_size=1, max_size=30)


# ------------------------------------------------------------------ the run


def link_for(mesh: FuzzMesh, choice: int) -> Link:
    if choice == 0:
        link = mesh.cores["bob"].peers["alice"].link
        if link is not None:
            return link
    return [InLink(b"alice#999"), OutLink(999), InLink(b"eve#1"), OutLink(1)][choice % 4]


def perform(mesh: FuzzMesh, step: Any) -> None:
    bob, now = mesh.cores["bob"], mesh.now
    if isinstance(step, Say):
        mesh.say(step.nick, step.text)
    elif isinstance(step, Unheard):
        pair, server = frozenset(("alice", "bob")), mesh.fallback
        cut = pair not in mesh.blocked
        mesh.blocked.add(pair)
        mesh.fallback = None
        mesh.say("alice", step.text)
        mesh.fallback = server
        if cut:
            mesh.blocked.discard(pair)
    elif isinstance(step, Advance):
        mesh.advance(step.seconds)
    elif isinstance(step, LinkBytes):
        mesh.feed_bob(bob.on_link_frame(link_for(mesh, step.link), step.nick, step.frame, now))
    elif isinstance(step, LinkRecord):
        if mesh.records:
            frame = mutate(mesh.records[step.index % len(mesh.records)], step.edits)
            link = link_for(mesh, step.link)
            mesh.feed_bob(bob.on_link_frame(link, "alice", frame, now))
    elif isinstance(step, RelayPush):
        mesh.feed_bob(bob.on_relay(step.message, now))
    elif isinstance(step, StrangerSignal):
        mesh.feed_bob(bob.on_relay(PeerJoined(code=ROOM, peer=PeerInfo(nick=step.nick)), now))
        signal = ReceivedSignal(code=ROOM, from_=step.nick, payload=step.payload)
        mesh.feed_bob(bob.on_relay(signal, now))
    elif isinstance(step, SignalReplay):
        if mesh.signals:
            payload = mesh.signals[step.index % len(mesh.signals)]
            if step.edits:
                payload = _b64(mutate(base64.urlsafe_b64decode(payload), step.edits) or b"\0")
            signal = ReceivedSignal(code=ROOM, from_=step.sender, payload=payload)
            mesh.feed_bob(bob.on_relay(signal, now))
    elif isinstance(step, FallbackPush):
        mesh.feed_bob(bob.on_fallback(step.message, now))
    elif isinstance(step, DeliverGarbage):
        deliver = Deliver(from_=member_id(bob, step.sender), payload=step.payload)
        mesh.feed_bob(bob.on_fallback(deliver, now))
    elif isinstance(step, DeliverRecord):
        if step.channel == "fallback":
            captured = [base64.urlsafe_b64decode(payload) for payload in mesh.forwards]
        else:
            captured = [frame[1:] for frame in mesh.records]
        if captured:
            record = mutate(captured[step.index % len(captured)], step.edits) or b"\0"
            deliver = Deliver(from_=member_id(bob, step.sender), payload=_b64(record))
            mesh.feed_bob(bob.on_fallback(deliver, now))
    else:
        raise AssertionError(step)


def member_id(bob: RoomCore, sender: str) -> str:
    """A member's id on the fallback server as bob knows it (from its sealed candidates)."""
    if sender in NICKS:
        peer = bob.peers.get(sender)
        return peer.fallback_id if peer is not None and peer.fallback_id else "f" * 32
    return sender


def assert_nothing_forged(mesh: FuzzMesh) -> None:
    """Each side has shown exactly a prefix of what the other typed: nothing invented,
    nothing twice, nothing out of order, nothing from anyone else."""
    for reader, writer in (("bob", "alice"), ("alice", "bob")):
        shown = mesh.texts(reader)
        typed = [(writer, text) for text in mesh.said[writer]]
        assert shown == typed[: len(shown)], (reader, shown, typed)
    assert "bob" not in mesh.quit and "alice" not in mesh.quit, mesh.quit


def assert_peer_bounded(core: RoomCore, typed: int) -> None:
    """Bob's own tables: one session per member the relay named (the nick pool is small),
    dials only for them, unacknowledged lines no more than it typed, no backlog."""
    assert set(core.peers) <= {"alice", *STRANGERS}
    assert set(core._room._nicks.values()) <= set(core.peers)
    assert set(core._keying.departed) <= {"alice", *STRANGERS}
    dialer = core._paths.dialer
    assert len(dialer._attempts) <= 16, dialer._attempts
    for peer in core.peers.values():
        assert peer.open_attempts <= dialer._attempts.keys()
        assert len(peer.delivery.unacked) <= typed
    assert not core._backlog


def assert_chat_goes_on(mesh: FuzzMesh) -> None:
    """After the hostile input, both type a line and both lines arrive (allowing the time a
    path takes to be noticed dead and replaced)."""
    mesh.say("alice", "after the storm")
    mesh.say("bob", "still here")
    pairs = (("alice", "bob"), ("bob", "alice"))
    for _ in range(80):  # 40 s: past the link timeout, the fallback switch and a resend
        if all(len(mesh.texts(reader)) == len(mesh.said[writer]) for writer, reader in pairs):
            break
        mesh.advance(0.5)
    assert mesh.texts("bob") == [("alice", text) for text in mesh.said["alice"]]
    assert mesh.texts("alice") == [("bob", text) for text in mesh.said["bob"]]
    assert_nothing_forged(mesh)
    assert_peer_bounded(mesh.cores["bob"], len(mesh.said["bob"]))


def _play(topology: str, sequence: list[Any]) -> None:
    mesh = fresh_mesh(topology)
    for step in sequence:
        perform(mesh, step)
        assert_nothing_forged(mesh)
        assert_peer_bounded(mesh.cores["bob"], len(mesh.said["bob"]))
    assert_chat_goes_on(mesh)


topologies = st.sampled_from(["link", "fallback"])


@fuzz_settings()
@given(topologies, steps(link_steps, link_steps))
def test_peer_shows_no_forged_link_frame_and_keeps_chatting(
    topology: str, sequence: list[Any]
) -> None:
    """Arbitrary link frames on bob's real link and on links it never had, and alice's real
    records replayed, reordered, bit-flipped and truncated, between real lines."""
    _play(topology, sequence)


@fuzz_settings()
@given(topologies, steps(fallback_steps, fallback_steps))
def test_peer_shows_no_forged_fallback_message_and_keeps_chatting(
    topology: str, sequence: list[Any]
) -> None:
    """Fallback-server messages (deliveries of garbage, of alice's records replayed, edited,
    or taken from the link channel; errors, attach notices), between real lines."""
    _play(topology, sequence)


OFF_CURVE = b"S" + (2).to_bytes(32, "little")
"""A PAKE message of the right size and side whose point is not on the curve."""
STRANGER_SENDS_AN_OFF_CURVE_PAKE_MESSAGE = [
    RelayPush(PeerJoined(code=ROOM, peer=PeerInfo(nick="eve"))),
    RelayPush(
        ReceivedSignal(code=ROOM, from_="eve", payload=signal_body("pake", "msg", OFF_CURVE))
    ),
]


@fuzz_settings()
@given(topologies, steps(relay_steps, relay_steps))
@example("link", STRANGER_SENDS_AN_OFF_CURVE_PAKE_MESSAGE)
def test_peer_shows_no_forged_relay_message_and_keeps_chatting(
    topology: str, sequence: list[Any]
) -> None:
    """Relay messages (signals with garbage, replayed or edited payloads, from alice and
    from strangers; joins, leaves of others, errors, coordination), between real lines."""
    _play(topology, sequence)
