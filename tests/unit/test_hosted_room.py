"""A hosted room's member core against hostile traffic from anyone who knows the room's name."""

from __future__ import annotations

import json

from peer.crypto import fallback_member_id, pake_password
from peer.hosted import HOSTED_ROOM_CODE, HostedRoom, hosted_room_id
from peer.room import RoomCore
from peer.session import b64
from schemas.fallback import Deliver
from schemas.peer import Candidates


def hosted(nick: str = "alice") -> HostedRoom:
    room = hosted_room_id("book-club")
    core = RoomCore(
        me=nick,
        room_code=HOSTED_ROOM_CODE,
        password=pake_password("book-club", "hunter2"),
        candidates=Candidates(lan=[], curve_key="A" * 40),
        authoritative=False,
        fallback=True,
        fallback_room=room,
    )
    return HostedRoom(core)


def control(room: HostedRoom, member: str, kind: str, value: object) -> Deliver:
    body = json.dumps({"kind": kind, "value": value}).encode()
    return Deliver(type="deliver", from_=member, payload=b64(body))


def test_an_invalid_nick_or_signal_announced_through_the_server_is_ignored() -> None:
    room = hosted()
    server_room = hosted_room_id("book-club")
    for nick in ["x" * 500, "bad nick\x1b[2J", "", "é" * 40]:
        member = fallback_member_id(server_room, nick)
        assert room.on_fallback(control(room, member, "nick", nick), 1.0) == []
    good = fallback_member_id(server_room, "bob")
    assert any(e for e in room.on_fallback(control(room, good, "nick", "bob"), 1.0))
    for payload in ["", "not base64 !!", "A" * 5_000]:
        assert room.on_fallback(control(room, good, "signal", payload), 1.0) == []
    assert room.on_fallback(control(room, good, "nick", ["a", "list"]), 1.0) == []
