"""The fallback forwarding core on a fake clock: attach, forward, replace, time out, refuse."""

from __future__ import annotations

import json
from typing import Any

from fallback.core import FallbackCore, Send
from fallback.settings import FallbackSettings
from schemas.codec import encode

ROOM = "a" * 64
OTHER_ROOM = "b" * 64
A, B, C = "1" * 32, "2" * 32, "3" * 32


def make(**overrides: Any) -> FallbackCore:
    return FallbackCore(FallbackSettings(**overrides))


def ask(
    core: FallbackCore, client: bytes, now: float = 0.0, **fields: Any
) -> list[tuple[bytes, dict]]:
    effects = core.handle(client, [json.dumps(fields).encode()], now)
    return [(e.client, decoded(e)) for e in effects]


def decoded(effect: Send) -> dict[str, Any]:
    message = effect.message
    return json.loads(message if isinstance(message, bytes) else encode(message))


def test_members_attach_and_are_told_of_each_other() -> None:
    core = make()
    assert ask(core, b"ca", type="attach", room=ROOM, member=A, req_id=1) == [
        (b"ca", {"type": "attached", "members": [], "heartbeat_timeout": 15.0, "req_id": 1})
    ]
    assert ask(core, b"cb", type="attach", room=ROOM, member=B) == [
        (b"cb", {"type": "attached", "members": [A], "heartbeat_timeout": 15.0}),
        (b"ca", {"type": "member_attached", "member": B}),
    ]


def test_records_go_to_one_member_or_to_all_others_with_the_sender_stamped() -> None:
    core = make()
    for client, member in ((b"ca", A), (b"cb", B), (b"cc", C)):
        ask(core, client, type="attach", room=ROOM, member=member)
    ask(core, b"cx", type="attach", room=OTHER_ROOM, member=A)
    assert ask(core, b"ca", type="send", to=B, payload="c2VhbGVk") == [
        (b"cb", {"type": "deliver", "from": A, "payload": "c2VhbGVk"})
    ]
    broadcast = ask(core, b"ca", type="send", payload="YWxs", req_id="s")
    assert broadcast == [
        (b"cb", {"type": "deliver", "from": A, "payload": "YWxs"}),
        (b"cc", {"type": "deliver", "from": A, "payload": "YWxs"}),
        (b"ca", {"type": "sent", "delivered": 2, "req_id": "s"}),
    ]


def test_sending_unattached_or_to_a_stranger_is_an_error() -> None:
    core = make()
    assert ask(core, b"ca", type="send", payload="QQ==")[0][1]["code"] == "not_attached"
    ask(core, b"ca", type="attach", room=ROOM, member=A)
    assert ask(core, b"ca", type="send", to=B, payload="QQ==")[0][1]["code"] == "member_not_found"
    assert ask(core, b"ca", type="send", to=A, payload="QQ==")[0][1]["code"] == "member_not_found"


def test_a_reattaching_member_takes_over_its_id_and_the_old_connection_is_told() -> None:
    core = make()
    ask(core, b"old", type="attach", room=ROOM, member=A)
    ask(core, b"cb", type="attach", room=ROOM, member=B)
    effects = ask(core, b"new", type="attach", room=ROOM, member=A)
    assert (b"old", {"type": "member_detached", "member": A, "reason": "replaced"}) in effects
    assert ask(core, b"cb", type="send", to=A, payload="QQ==")[0][0] == b"new"
    assert ask(core, b"old", type="send", payload="QQ==")[0][1]["code"] == "not_attached"


def test_silent_members_are_detached_and_empty_rooms_forgotten() -> None:
    core = make(member_timeout=10)
    ask(core, b"ca", 0.0, type="attach", room=ROOM, member=A)
    ask(core, b"cb", 0.0, type="attach", room=ROOM, member=B)
    ask(core, b"ca", 8.0, type="heartbeat")
    assert core.next_deadline() == 10.0
    effects = [(e.client, decoded(e)) for e in core.tick(10.0)]
    assert effects == [(b"ca", {"type": "member_detached", "member": B, "reason": "timeout"})]
    core.tick(18.0)
    assert core.rooms == {} and core.places == {} and core.next_deadline() is None


def test_caps_on_rooms_and_members() -> None:
    core = make(max_rooms=1, max_members_per_room=2)
    ask(core, b"ca", type="attach", room=ROOM, member=A)
    ask(core, b"cb", type="attach", room=ROOM, member=B)
    assert ask(core, b"cc", type="attach", room=ROOM, member=C)[0][1]["code"] == "room_full"
    assert ask(core, b"cd", type="attach", room=OTHER_ROOM, member=C)[0][1]["code"] == "server_full"


def test_bad_frames_get_errors_and_change_nothing() -> None:
    core = make()
    ask(core, b"ca", type="attach", room=ROOM, member=A)
    bad = [
        [b"\xff"],
        [b"{"],
        [b"[]"],
        [b'{"type":"route_all"}'],
        [b"{}", b"{}"],
        [b'{"type":"attach","room":"ROOM","member":"x"}'],
        [json.dumps({"type": "send", "payload": "A" * 9000}).encode()],
    ]
    codes = [decoded(core.handle(b"evil", frames, 1.0)[0])["code"] for frames in bad]
    assert codes == [
        "bad_encoding",
        "bad_json",
        "bad_request",
        "unknown_type",
        "multipart",
        "bad_request",
        "bad_request",
    ]
    assert core.rooms == {ROOM: {A: b"ca"}}


def test_moving_into_a_full_room_still_tells_the_old_room_it_left() -> None:
    core = make(max_members_per_room=2)
    for client, room, member in ((b"ca", ROOM, A), (b"cb", ROOM, B), (b"cx", OTHER_ROOM, A)):
        ask(core, client, type="attach", room=room, member=member)
    ask(core, b"cy", type="attach", room=OTHER_ROOM, member=B)
    # ca leaves ROOM for OTHER_ROOM, which is full: refused, but it did leave ROOM
    assert ask(core, b"ca", type="attach", room=OTHER_ROOM, member=C, req_id=7) == [
        (b"cb", {"type": "member_detached", "member": A, "reason": "detached"}),
        (
            b"ca",
            {"type": "error", "code": "room_full", "message": "the room is full", "req_id": 7},
        ),
    ]
    assert core.rooms[ROOM] == {B: b"cb"} and b"ca" not in core.places


def test_deliveries_are_rate_limited_per_connection_counting_each_recipient() -> None:
    core = make(deliveries_burst=20, deliveries_per_second=10.0, max_members_per_room=3)
    for client, member in ((b"ca", A), (b"cb", B), (b"cc", C)):
        ask(core, client, type="attach", room=ROOM, member=member)
    sent = [ask(core, b"ca", 0.0, type="send", payload="YWxs", req_id=n) for n in range(12)]
    assert [effects[-1][1]["type"] for effects in sent] == ["sent"] * 10 + ["error"] * 2
    assert sent[-1] == [
        (
            b"ca",
            {"type": "error", "code": "rate_limited", "message": "too many records", "req_id": 11},
        )
    ]
    assert (
        ask(core, b"cb", 0.0, type="send", to=A, payload="QQ==")[0][0] == b"ca"
    )  # others unaffected
    # detaching and attaching again does not refill the budget; time does
    ask(core, b"ca", 0.0, type="detach")
    ask(core, b"ca", 0.0, type="attach", room=ROOM, member=A)
    assert ask(core, b"ca", 0.0, type="send", to=B, payload="QQ==")[0][1]["code"] == "rate_limited"
    assert ask(core, b"ca", 0.5, type="send", payload="QQ==")[0][1]["type"] == "deliver"
