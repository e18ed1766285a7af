"""The fallback server's core under hostile frames: no exception, valid replies, bounded
state, service.

Each example is a fresh core with small caps, already full of rooms (one of them full of
members), fed a sequence of frames from many clients while a fake clock advances so that
members time out too. Every frame the core sends must decode as a fallback message, every
delivery must name its real sender, and the attachment tables must stay consistent.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from fallback.core import FallbackCore
from fallback.settings import FallbackSettings
from schemas.codec import WireError, decode_with
from schemas.codec import encode as encode_model
from schemas.fallback import (
    FALLBACK_REQUEST_TYPES,
    Attach,
    Attached,
    Deliver,
    Detach,
    FallbackError,
    FallbackErrorCode,
    FallbackHeartbeat,
    FallbackHeartbeatAck,
    FallbackMessage,
    FallbackRequest,
    Forward,
    MemberAttached,
    MemberDetached,
    Sent,
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

SMALL = FallbackSettings(member_timeout=15.0, max_rooms=3, max_members_per_room=3)
"""Caps small enough that a few requests reach every one of them."""
CLIENTS = [bytes([0, 0, 0, 0, i]) for i in range(1, 9)] + [b"", b"\xff" * 300]
ROOMS = [f"{digit}" * 64 for digit in "abcd"]
"""One more room id than the server may hold."""
MEMBERS = [f"{digit}" * 32 for digit in "12345"]
ADVANCES = [0.0, 0.0, 0.0, 0.001, 0.5, 1.0, 5.0, 14.99, 15.0, 16.0, 60.0]
"""Seconds the clock moves before a step: around the member timeout."""

DECODE_ERRORS = {
    FallbackErrorCode.BAD_ENCODING,
    FallbackErrorCode.BAD_JSON,
    FallbackErrorCode.BAD_REQUEST,
    FallbackErrorCode.UNKNOWN_TYPE,
    FallbackErrorCode.MULTIPART,
}
PUSHES = (Deliver, MemberAttached, MemberDetached)
_REQUESTS: TypeAdapter[Any] = TypeAdapter(FallbackRequest)
_MESSAGES: TypeAdapter[Any] = TypeAdapter(FallbackMessage)

# ------------------------------------------------------------------ valid requests

VALUES: dict[str, list[Any]] = {
    "room": ROOMS,
    "member": MEMBERS,
    "to": MEMBERS,
    "payload": ["QUJD", "a-_=", "A" * 8192, "not+base64/but/in/the/alphabet"],
    "req_id": [0, 7, 2**53 - 1, "r1", "~" * 64],
}
"""Schema-valid values of every request field."""
FIELDS: dict[type[Any], tuple[list[str], list[str]]] = {
    Attach: (["room", "member"], ["req_id"]),
    Detach: ([], ["req_id"]),
    Forward: (["payload"], ["to", "req_id"]),
    FallbackHeartbeat: ([], ["req_id"]),
}
"""(required, optional) fields of every fallback request."""


VALID_REQUESTS = valid_requests(
    FIELDS, VALUES, lambda model: 50 if model in (Detach, FallbackHeartbeat) else 300
)


def test_the_fuzzer_knows_every_field_of_every_fallback_request() -> None:
    """If the schema gains a request or a field, the fuzzer must learn to send it."""
    assert_fields_cover_the_schema(FIELDS, FALLBACK_REQUEST_TYPES)
    for request in VALID_REQUESTS:
        _REQUESTS.validate_json(json.dumps(request))  # raises if not valid


FALLBACK_FRAMES = [
    b'{"type":"attach"}',
    b'{"type":"send","payload":"QUJD"}',
    b'{"type":"deliver","from":"11111111111111111111111111111111","payload":"QUJD"}',
    b'{"type":"attach","room":"' + b"a" * 64 + b'","member":"' + b"1" * 32 + b'","x":1}',
]
valid_requests = st.sampled_from(VALID_REQUESTS)
good_requests = st.builds(Request, valid_requests)
raw = raw_frames(FALLBACK_FRAMES)
hostile = hostile_requests(valid_requests, ["type", *VALUES])
mutated = mutated_requests(valid_requests)


def steps(*payloads: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    """(client, seconds to advance first, payload) triples."""
    step = st.tuples(
        st.integers(0, len(CLIENTS) - 1), st.sampled_from(ADVANCES), st.one_of(*payloads)
    )
    return st.lists(step, min_size=1, max_size=30)


# ------------------------------------------------------------------ the run

WARM_UP = [
    (0, {"type": "attach", "room": ROOMS[0], "member": MEMBERS[0]}),
    (1, {"type": "attach", "room": ROOMS[0], "member": MEMBERS[1]}),
    (2, {"type": "attach", "room": ROOMS[0], "member": MEMBERS[2]}),
    (3, {"type": "attach", "room": ROOMS[1], "member": MEMBERS[0]}),
    (4, {"type": "attach", "room": ROOMS[1], "member": MEMBERS[1]}),
    (5, {"type": "attach", "room": ROOMS[2], "member": MEMBERS[3]}),
]
"""Before the hostile steps: a full room, a pair, a lone member, and no room for a fourth."""


class FallbackRun:
    """One fallback core on a fake clock; every frame it sends is checked as it comes."""

    def __init__(self, settings: FallbackSettings) -> None:
        self.settings = settings
        self.core = FallbackCore(settings)
        self.now = 0.0

    def warm_up(self) -> None:
        for client, request in WARM_UP:
            self.send(CLIENTS[client], [json.dumps(request).encode()])
        assert len(self.core.rooms) == self.settings.max_rooms

    def step(self, client: int, advance: float, payload: Payload) -> None:
        self.advance(advance)
        self.send(CLIENTS[client], frames_of(payload, dict))
        assert_fallback_bounded(self.core)

    def advance(self, seconds: float) -> None:
        """Time passes as in the adapter: `tick` once the core's deadline is due."""
        self.now += seconds
        deadline = self.core.next_deadline()
        if deadline is not None and self.now >= deadline:
            sent = self.check(self.core.tick(self.now))
            assert all(isinstance(message, MemberDetached) for _, message in sent), sent

    def send(self, client: bytes, frames: list[bytes]) -> list[tuple[bytes, Any]]:
        """One request; what it sent, checked: one reply to the sender (none for a `send`
        without req_id that went through) echoing the req_id; pushes to the others; and
        every delivery named after the member the sender is attached as."""
        place = self.core.places.get(client)
        sent = self.check(self.core.handle(client, frames, self.now))
        replies = [message for target, message in sent if target == client]
        pushes = [message for target, message in sent if target != client]
        assert all(isinstance(message, PUSHES) for message in pushes), pushes
        try:
            request = decode_with(_REQUESTS, frames[0], None) if len(frames) == 1 else None
        except WireError:
            request = None
        if request is None:
            assert len(replies) == 1, sent
            assert isinstance(replies[0], FallbackError), replies
            assert replies[0].code in DECODE_ERRORS, replies
            return sent
        if isinstance(request, Forward) and request.req_id is None:
            assert len(replies) <= 1 and not (replies and pushes), sent
            assert all(isinstance(reply, FallbackError) for reply in replies), sent
        else:
            assert len(replies) == 1, sent
        for reply in replies:
            assert reply.req_id == request.req_id, (request, reply)
        if isinstance(request, Forward):
            for message in pushes:
                assert isinstance(message, Deliver), message
                assert place is not None and message.from_ == place.member, (place, message)
                assert message.payload == request.payload
            if replies and isinstance(replies[0], Sent):
                assert replies[0].delivered == len(pushes), sent
        elif isinstance(request, Attach) and isinstance(replies[0], Attached):
            members = self.core.rooms[request.room]
            assert members[request.member] == client
            assert replies[0].members == [m for m in members if m != request.member], sent
        elif isinstance(request, Detach):
            assert client not in self.core.places
        return sent

    def check(self, effects: list[Any]) -> list[tuple[bytes, Any]]:
        """Every frame decodes as a fallback message."""
        sent = []
        for effect in effects:
            raw = effect.message
            frame = raw if isinstance(raw, bytes) else encode_model(raw)
            sent.append((effect.client, decode_with(_MESSAGES, frame, None)))
        return sent


def assert_fallback_bounded(core: FallbackCore) -> None:
    """Within the configured caps, no empty room kept, and the three tables agree: every
    attached client is in exactly one room, and only attached clients are timed."""
    settings = core.settings
    assert len(core.rooms) <= settings.max_rooms
    derived = {}
    for room, members in core.rooms.items():
        assert 0 < len(members) <= settings.max_members_per_room, (room, members)
        for member, client in members.items():
            assert client not in derived, f"{client!r} attached twice"
            derived[client] = (room, member)
    assert {client: (p.room, p.member) for client, p in core.places.items()} == derived
    assert core._last_seen.keys() == core.places.keys()


def assert_fallback_still_serves(run: FallbackRun) -> None:
    """After the hostile steps: answered at once (attached, unless the server is rightly
    full), and once every member has timed out, a well-behaved pair attaches and forwards."""
    first, second = b"\x00good", b"\x00frnd"
    room, one, two = "e" * 64, "6" * 32, "7" * 32
    sent = run.send(first, [b'{"type":"heartbeat","req_id":"b"}'])
    assert sent == [(first, FallbackHeartbeatAck(req_id="b"))]
    full = len(run.core.rooms) >= run.settings.max_rooms
    attach = {"type": "attach", "room": room, "member": one}
    [(_, reply)] = run.send(first, [json.dumps(attach).encode()])
    if full:
        assert isinstance(reply, FallbackError), reply
        assert reply.code is FallbackErrorCode.SERVER_FULL, reply
    else:
        assert isinstance(reply, Attached), reply
    run.advance(run.settings.member_timeout + 1)
    assert not run.core.rooms and not run.core.places
    [(_, reply)] = run.send(first, [json.dumps(attach).encode()])
    assert isinstance(reply, Attached) and reply.members == []
    sent = run.send(second, [json.dumps({**attach, "member": two}).encode()])
    assert sent == [
        (second, Attached(members=[one], heartbeat_timeout=run.settings.member_timeout)),
        (first, MemberAttached(member=two)),
    ]
    forward = {"type": "send", "to": one, "payload": "QUJD", "req_id": 5}
    sent = run.send(second, [json.dumps(forward).encode()])
    assert sent == [
        (first, Deliver(from_=two, payload="QUJD")),
        (second, Sent(delivered=1, req_id=5)),
    ]
    assert_fallback_bounded(run.core)


def _play(sequence: list[Any]) -> None:
    run = FallbackRun(SMALL)
    run.warm_up()
    for client, advance, payload in sequence:
        run.step(client, advance, payload)
    assert_fallback_still_serves(run)


@fuzz_settings()
@given(steps(raw, mutated, good_requests))
def test_fallback_survives_arbitrary_and_mutated_frames_and_keeps_serving(
    sequence: list[Any],
) -> None:
    """Arbitrary bytes and multipart messages, and real requests with bits flipped, cut
    short, or bytes inserted, deleted or repeated, between real requests: each answered
    with an error of a stable code, none raises, state stays bounded, the next client is
    served."""
    _play(sequence)


@fuzz_settings()
@given(steps(hostile, hostile, good_requests))
def test_fallback_answers_hostile_requests_with_stable_errors_and_stays_within_its_caps(
    sequence: list[Any],
) -> None:
    """Real requests with fields made hostile (huge, unicode, control characters, out of
    range, wrong types, unknown types), removed, or added, from many clients."""
    _play(sequence)
