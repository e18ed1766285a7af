"""The relay core under hostile frames: no exception, valid replies, bounded state, service.

Each example is a fresh core with small caps, already holding a few rooms (some full, one
locked, one empty), fed a sequence of frames from many clients and sources while a fake clock
advances so that expiry runs too. Requests name room codes and tokens symbolically (`Ref`),
resolved to ones the relay really handed out, so they reach rooms, signals and re-claims
instead of bouncing off lookups of codes that do not exist.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass
from typing import Any, Literal

from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from broker.core import RelayCore
from broker.effects import KnownOrigin, Publish, Send
from broker.settings import RelaySettings
from broker.tokens import RoomTokens
from schemas.codec import WireError, decode_message, decode_request, encode
from schemas.events import PubMessage, RelayAlive, RoomEnded, RoomOpened
from schemas.relay import (
    REQUEST_TYPES,
    CoordinateConnection,
    CreateRoom,
    Error,
    ErrorCode,
    GetRelayInfo,
    Heartbeat,
    HeartbeatAck,
    LeaveRoom,
    LockRoom,
    LookupRoom,
    ObserveAddress,
    PeerInfo,
    PeerJoined,
    PeerLeft,
    PeerRegistered,
    ReceivedSignal,
    ReclaimRoom,
    RegisterPeer,
    RelayInfo,
    RelayMessage,
    RequestCoordination,
    RoomCreated,
    RoomExpired,
    RoomInfo,
    RoomLocked,
    SendSignal,
    SignalSent,
)
from tests.fuzz import (
    Payload,
    Request,
    assert_fields_cover_the_schema,
    frames_of,
    fuzz_settings,
    hostile_requests,
    mutated_requests,
    raw_frames,
    valid_requests,
)

SMALL = RelaySettings(
    room_ttl=600.0,
    member_timeout=15.0,
    empty_room_grace=30.0,
    max_rooms=6,
    max_rooms_per_source=3,
    max_members_per_room=3,
    create_burst=3,
    create_per_minute=6.0,
    miss_burst=2,
    miss_per_minute=6.0,
    signal_burst=3,
    signal_per_second=1.0,
    max_tracked_sources=4,
    alive_interval=2.0,
    fallback="198.51.100.9:5000",
)
"""Caps small enough that a few requests reach every one of them."""
TUNNELLED = dataclasses.replace(SMALL, advertise="relay.example.org:8000")
"""Behind a tunnel: a loopback source is the tunnel's agent, not a client."""

ORIGINS = [
    KnownOrigin("203.0.113.1", 40000),
    KnownOrigin("203.0.113.1", 40001),
    KnownOrigin("198.51.100.2", 5000),
    KnownOrigin("127.0.0.1", 6000),
    KnownOrigin("::1", 1),
    KnownOrigin("2001:db8::1", 65535),
    KnownOrigin(None, None),
    KnownOrigin("198.51.100.2", 5001),
    KnownOrigin("203.0.113.99", 7),
]
"""More sources than the rate limiters may track, so that they evict too."""
CLIENTS = [bytes([0, 0, 0, 0, i]) for i in range(1, 8)] + [b"", b"\xff" * 300]
"""Routing ids (each from ORIGINS at its index): libzmq's own form, and two the adapter
refuses before the core sees them (the core must not care)."""
ADVANCES = (
    [0.0] * 10 + [0.001, 0.5, 1.0, 2.0, 5.0, 10.0] * 2 + [14.99, 15.0, 16.0, 31.0, 130.0, 601.0]
)
"""Seconds the clock moves before a step: mostly none or a little, sometimes around every
timeout in SMALL (so that members time out, empty rooms close, and rooms expire)."""

PUSHES = (PeerJoined, PeerLeft, RoomLocked, ReceivedSignal, CoordinateConnection, RoomExpired)
DECODE_ERRORS = {
    ErrorCode.BAD_ENCODING,
    ErrorCode.BAD_JSON,
    ErrorCode.BAD_REQUEST,
    ErrorCode.UNKNOWN_TYPE,
    ErrorCode.MULTIPART,
}
_PUB: TypeAdapter[Any] = TypeAdapter(PubMessage)


@dataclass(frozen=True)
class Ref:
    """A value known only as the run goes, resolved for the client that sends it:

    - `code`: the `index`-th room code the relay handed out (wrapped);
    - `mine`: the `index`-th room the client is a member of;
    - `me`: the client's nick in the request's room; `peer`: another member's there;
    - `token`: the `index`-th room token handed out; `token_for`: the request's room's.

    While there is none, a well-formed made-up value stands in."""

    kind: Literal["code", "mine", "me", "peer", "token", "token_for"]
    index: int = 0


# ------------------------------------------------------------------ valid requests

NICKS = ["alice", "bob", "carol", "dave", "Zo\u00eb", "\u674e"]
VALUES: dict[str, list[Any]] = {
    "code": [
        *(Ref("mine", index) for index in (0, 1, 0, 1, 2)),
        *(Ref("code", index) for index in range(5)),
        "pine-ocean-42",
    ],
    "nick": NICKS,
    "to": [Ref("peer", 0), Ref("peer", 1), Ref("peer", 0), *NICKS],
    "peers": [
        [Ref("me"), Ref("peer", 0)],
        [Ref("peer", 1), Ref("me")],
        [Ref("me"), Ref("me")],
        [Ref("peer", 0), Ref("peer", 1)],
        ["alice", "bob"],
    ],
    "host": ["10.0.0.1", "198.51.100.7", "::1", "example.org"],
    "port": [1, 6001, 65535],
    "listen_port": [1, 6001, 65535],
    "req_id": [0, 7, 2**53 - 1, "r1", "~" * 64],
    "payload": ["QUJD", "a-_=", "A" * 4096, "not+base64/but/in/the/alphabet"],
    "token": [
        Ref("token_for"),
        Ref("token_for"),
        *(Ref("token", index) for index in range(3)),
        "A" * 16,
        "A" * 38,
    ],
}
"""Schema-valid values of every request field."""
FIELDS: dict[type[Any], tuple[list[str], list[str]]] = {
    CreateRoom: ([], ["nick", "listen_port", "req_id"]),
    RegisterPeer: (["code", "nick"], ["host", "port", "req_id"]),
    LookupRoom: (["code"], ["nick", "req_id"]),
    LeaveRoom: (["code"], ["req_id"]),
    LockRoom: (["code"], ["req_id"]),
    Heartbeat: ([], ["code", "req_id"]),
    SendSignal: (["code", "to", "payload"], ["req_id"]),
    RequestCoordination: (["code", "peers"], ["req_id"]),
    ObserveAddress: ([], ["req_id"]),
    ReclaimRoom: (["code", "nick", "token"], ["req_id"]),
    GetRelayInfo: ([], ["req_id"]),
}
"""(required, optional) fields of every relay request."""


MIX = {
    SendSignal: 400,
    RequestCoordination: 300,
    RegisterPeer: 300,
    ReclaimRoom: 300,
    CreateRoom: 200,
    LookupRoom: 200,
    LeaveRoom: 100,
    LockRoom: 100,
    Heartbeat: 100,
    ObserveAddress: 50,
    GetRelayInfo: 50,
}
"""How many random requests of each type: most where the state is."""


VALID_REQUESTS = valid_requests(FIELDS, VALUES, lambda model: MIX[model])


def test_the_fuzzer_knows_every_field_of_every_relay_request() -> None:
    """If the schema gains a request or a field, the fuzzer must learn to send it."""
    assert_fields_cover_the_schema(FIELDS, REQUEST_TYPES)
    cold, warm = RelayRun(SMALL), RelayRun(SMALL)
    warm.warm_up()
    for request in VALID_REQUESTS:
        for run, client in ((cold, CLIENTS[0]), (warm, CLIENTS[0]), (warm, CLIENTS[7])):
            decode_request(json.dumps(run.resolve(request, client)).encode())  # valid or raise


# ------------------------------------------------------------------ hostile payloads

RELAY_FRAMES = [
    b'"create_room"',
    b'{"type":"create_room"}',
    b'{"type":"create_room","type":"heartbeat"}',
    b'{"type":"lookup_room","code":"pine-ocean-42"}',
    b'{"type":"room_created","code":"pine-ocean-42","expires_at":1}',
]
valid_requests = st.sampled_from(VALID_REQUESTS)
good_requests = st.builds(Request, valid_requests)
raw = raw_frames(RELAY_FRAMES)
hostile = hostile_requests(valid_requests, ["type", *VALUES])
mutated = mutated_requests(valid_requests)


def steps(*payloads: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    """(client, seconds to advance first, payload, times it is sent): repeats reach rate
    limits and caps in a few steps."""
    step = st.tuples(
        st.integers(0, len(CLIENTS) - 1),
        st.sampled_from(ADVANCES),
        st.one_of(*payloads),
        st.sampled_from([1, 1, 1, 1, 1, 1, 3, 8]),
    )
    return st.lists(step, min_size=1, max_size=30)


# ------------------------------------------------------------------ the run

WARM_UP = [
    (0, {"type": "create_room", "nick": "alice", "listen_port": 6001}),
    (1, {"type": "register_peer", "code": Ref("code", 0), "nick": "bob", "port": 6002}),
    (2, {"type": "create_room", "nick": "carol"}),
    (3, {"type": "register_peer", "code": Ref("code", 1), "nick": "dave"}),
    (4, {"type": "register_peer", "code": Ref("code", 1), "nick": "Zo\u00eb"}),
    (2, {"type": "lock_room", "code": Ref("code", 1)}),
    (5, {"type": "create_room"}),
    (6, {"type": "create_room", "nick": "\u674e"}),
]
"""Before the hostile steps: a pair, a full and locked room, an empty room, a lone member."""


class RelayRun:
    """One relay core on a fake clock; every effect it makes is checked as it comes."""

    def __init__(self, settings: RelaySettings) -> None:
        self.settings = settings
        self.core = RelayCore(
            settings,
            rng=random.Random(0),
            tokens=RoomTokens(b"k" * 32),
            instance="0123456789abcdef",
            wall_offset=1.7e9,
        )
        self.now = 0.0
        self.codes: list[str] = []
        self.tokens: dict[str, str] = {}
        """Room code -> its latest token."""
        self.seq = 0
        self.room_seq: dict[str, int] = {}

    # -------------------------------------------------------------- driving

    def warm_up(self) -> None:
        for client, request in WARM_UP:
            frame = json.dumps(self.resolve(request, CLIENTS[client])).encode()
            self.send(CLIENTS[client], [frame])
        assert len(self.codes) == 4 and len(self.core.registry) == 4

    def step(self, client: int, advance: float, payload: Payload, times: int) -> None:
        self.advance(advance)
        sender = CLIENTS[client]
        for _ in range(times):
            frames = frames_of(payload, lambda fields: self.resolve(fields, sender))
            self.send(sender, frames, ORIGINS[client])
        assert_relay_bounded(self.core)

    def advance(self, seconds: float) -> None:
        """Time passes as in the adapter: `tick` once the core's deadline is due."""
        self.now += seconds
        if self.now >= self.core.next_deadline():
            self.check(self.core.tick(self.now))

    def send(
        self, client: bytes, frames: list[bytes], origin: KnownOrigin | None = None
    ) -> RelayMessage:
        """One request; its reply, checked: first, one only, echoing the req_id."""
        if origin is None:
            origin = ORIGINS[CLIENTS.index(client)]
        effects = self.core.handle(client, frames, origin, self.now)
        sent = self.check(effects)
        assert effects and isinstance(effects[0], Send) and effects[0].client == client, effects
        reply = sent[0][1]
        others = [message for target, message in sent[1:] if target != client]
        assert len(others) == len(sent) - 1, f"a request got two answers: {sent}"
        assert all(isinstance(message, PUSHES) for message in others), others
        try:
            request = decode_request(frames[0]) if len(frames) == 1 else None
        except WireError:
            request = None
        if request is None:
            assert isinstance(reply, Error) and reply.code in DECODE_ERRORS, reply
        else:
            assert reply.req_id == request.req_id, (request, reply)
            self._check_answer(client, request, reply, sent[1:])
        return reply

    def _check_answer(
        self, client: bytes, request: Any, reply: Any, pushes: list[tuple[bytes, Any]]
    ) -> None:
        """Answers tell the truth about the registry, and a signal reaches the member it
        names with the sender the relay knows (never one the request claims)."""
        registry = self.core.registry
        if isinstance(reply, RoomInfo):
            room = registry.get(reply.code)
            assert room is not None and reply.code == request.code
            members = room.members.values()
            assert reply.peers == [PeerInfo(nick=m.nick, host=m.host, port=m.port) for m in members]
            assert reply.expires_at == round(room.expires_at + self.core.events.wall_offset)
        elif isinstance(reply, PeerRegistered):
            assert (reply.code, reply.nick) == (request.code, request.nick)
            assert registry.nick_of(client, reply.code) == reply.nick
        elif isinstance(reply, HeartbeatAck) and request.code is not None:
            assert reply.member == (registry.nick_of(client, request.code) is not None)
        elif isinstance(reply, SignalSent):
            room = registry.get(request.code)
            assert room is not None and reply.to == request.to
            sender = registry.nick_of(client, request.code)
            signal = ReceivedSignal(code=request.code, from_=sender, payload=request.payload)
            assert pushes == [(room.members[request.to].client, signal)], pushes

    def resolve(self, fields: dict[str, Any], client: bytes) -> dict[str, Any]:
        """`fields` with every Ref replaced, as `client` sees things now."""
        code = self._resolve(fields.get("code"), client, None)
        resolved = {key: self._resolve(value, client, code) for key, value in fields.items()}
        if "code" in fields:
            resolved["code"] = code
        return resolved

    def _resolve(self, value: Any, client: bytes, code: Any) -> Any:
        if isinstance(value, list):
            return [self._resolve(item, client, code) for item in value]
        if not isinstance(value, Ref):
            return value
        registry, index = self.core.registry, value.index
        room = registry.get(code) if isinstance(code, str) else None
        if value.kind == "mine":
            mine = [known for known in self.codes if registry.nick_of(client, known)]
            found = mine or self.codes
        elif value.kind == "code":
            found = self.codes
        elif value.kind == "me":
            nick = registry.nick_of(client, code) if isinstance(code, str) else None
            found = [] if nick is None else [nick]
        elif value.kind == "peer":
            members = [] if room is None else room.members.values()
            found = [member.nick for member in members if member.client != client]
        elif value.kind == "token_for":
            found = [self.tokens[code]] if code in self.tokens else []
        else:
            found = list(self.tokens.values())
        if found:
            return found[index % len(found)]
        stand_ins = {"code": "pine-ocean-42", "mine": "pine-ocean-42", "me": "alice"}
        stand_ins["peer"] = NICKS[index % len(NICKS)]
        return stand_ins.get(value.kind, "A" * 38)

    # -------------------------------------------------------------- checking

    def check(self, effects: list[Any]) -> list[tuple[bytes, RelayMessage]]:
        """Every frame decodes as a relay message, every event as a numbered PUB event."""
        sent: list[tuple[bytes, RelayMessage]] = []
        for effect in effects:
            if isinstance(effect, Send):
                raw = effect.message
                message = decode_message(raw if isinstance(raw, bytes) else encode(raw))
                sent.append((effect.client, message))
                if isinstance(message, RoomCreated):
                    self._learn(message.code, message.token)
            else:
                assert isinstance(effect, Publish), effect
                self._check_numbers(_PUB.validate_json(encode(effect.event)))
        return sent

    def _learn(self, code: str, token: str | None) -> None:
        if code in self.codes:
            self.codes.remove(code)
        self.codes = [*self.codes[-7:], code]
        if token is not None:
            self.tokens.pop(code, None)
            self.tokens[code] = token
            while len(self.tokens) > 8:
                del self.tokens[next(iter(self.tokens))]

    def _check_numbers(self, event: Any) -> None:
        """`seq` rises by one per room event, `room_seq` by one per event of one room."""
        if isinstance(event, RelayAlive):
            assert event.seq == self.seq
            return
        assert event.seq == self.seq + 1, (event, self.seq)
        self.seq = event.seq
        expected = 1 if isinstance(event, RoomOpened) else self.room_seq.get(event.code, 0) + 1
        assert event.room_seq == expected, (event, self.room_seq)
        if isinstance(event, RoomEnded):
            self.room_seq.pop(event.code, None)
        else:
            self.room_seq[event.code] = event.room_seq


def assert_relay_bounded(core: RelayCore) -> None:
    """The core's own tables: within the configured caps, and consistent with each other, so
    nothing outlives the room or member it was about."""
    settings, registry = core.settings, core.registry
    rooms = registry._rooms
    assert len(rooms) <= settings.max_rooms
    members = 0
    for code, room in rooms.items():
        assert room.code == code
        assert len(room.members) <= settings.max_members_per_room
        assert (code in registry._empty_since) == (not room.members)
        for nick, member in room.members.items():
            assert registry._memberships[member.client][code] == nick
        members += len(room.members)
    assert sum(len(held) for held in registry._memberships.values()) == members
    assert registry._last_seen.keys() == registry._memberships.keys()
    by_source: dict[str, int] = {}
    for room in rooms.values():
        by_source[room.source] = by_source.get(room.source, 0) + 1
    assert registry._rooms_by_source == by_source
    assert max(by_source.values(), default=0) <= settings.max_rooms_per_source
    assert len(registry._early) <= 2 * settings.max_rooms + 65
    assert core._room_infos.keys() <= rooms.keys()
    for limiter in (core._create_limit, core._miss_limit, core._signal_limit):
        assert len(limiter) <= settings.max_tracked_sources


def assert_relay_still_serves(run: RelayRun) -> None:
    """After the hostile steps: answered at once (a new room, unless the relay is rightly
    full), and once every room has run out, a well-behaved pair meets and signals."""
    good, friend = b"\x00good", b"\x00frnd"
    home, away = KnownOrigin("192.0.2.10", 50000), KnownOrigin("192.0.2.20", 50001)
    info = run.send(good, [b'{"type":"relay_info","req_id":1}'], home)
    assert isinstance(info, RelayInfo) and info.req_id == 1
    full = len(run.core.registry) >= run.settings.max_rooms
    created = run.send(good, [b'{"type":"create_room"}'], home)
    if full:
        assert isinstance(created, Error) and created.code is ErrorCode.RELAY_FULL, created
    else:
        assert isinstance(created, RoomCreated), created
    run.advance(run.settings.room_ttl + run.settings.empty_room_grace + 1)
    assert len(run.core.registry) == 0
    opened = run.send(good, [b'{"type":"create_room","nick":"alice"}'], home)
    assert isinstance(opened, RoomCreated), opened
    code = opened.code
    join = {"type": "register_peer", "code": code, "nick": "bob"}
    sent = run.check(run.core.handle(friend, [json.dumps(join).encode()], away, run.now))
    assert isinstance(sent[0][1], PeerRegistered)
    assert (good, PeerJoined(code=code, peer=PeerInfo(nick="bob"))) in sent
    signal = {"type": "signal", "code": code, "to": "alice", "payload": "QUJD"}
    sent = run.check(run.core.handle(friend, [json.dumps(signal).encode()], away, run.now))
    assert isinstance(sent[0][1], SignalSent)
    assert sent[1] == (good, ReceivedSignal(code=code, from_="bob", payload="QUJD"))
    beat = {"type": "heartbeat", "code": code}
    sent = run.check(run.core.handle(friend, [json.dumps(beat).encode()], away, run.now))
    assert sent == [(friend, HeartbeatAck(code=code, member=True))]
    assert_relay_bounded(run.core)


def _play(settings: RelaySettings, sequence: list[Any]) -> None:
    run = RelayRun(settings)
    run.warm_up()
    for client, advance, payload, times in sequence:
        run.step(client, advance, payload, times)
    assert_relay_still_serves(run)


relay_settings = st.sampled_from([SMALL, TUNNELLED])


@fuzz_settings()
@given(relay_settings, steps(raw, mutated, good_requests))
def test_relay_survives_arbitrary_and_mutated_frames_and_keeps_serving(
    settings: RelaySettings, sequence: list[Any]
) -> None:
    """Arbitrary bytes and multipart messages, and real requests with bits flipped, cut
    short, or bytes inserted, deleted or repeated, between real requests: each answered
    with an error of a stable code, none raises, state stays bounded, the next client is
    served."""
    _play(settings, sequence)


@fuzz_settings()
@given(relay_settings, steps(hostile, hostile, good_requests))
def test_relay_answers_hostile_requests_with_stable_errors_and_stays_within_its_caps(
    settings: RelaySettings, sequence: list[Any]
) -> None:
    """Real requests with fields made hostile (huge, unicode, control characters, out of
    range, wrong types, unknown types), removed, or added, from many clients and sources."""
    _play(settings, sequence)
