"""A member and the relay: heartbeats, a lost relay, and taking the room back after a restart."""

from __future__ import annotations

from peer.effects import Show, ToRelay
from peer.presence import REJOIN, Presence
from schemas.relay import (
    Error,
    ErrorCode,
    HeartbeatAck,
    PeerInfo,
    PeerRegistered,
    ReclaimRoom,
    RegisterPeer,
    RoomInfo,
)

CODE = "pine-ocean-42"
TOKEN = "T" * 38


def registered() -> PeerRegistered:
    return PeerRegistered(code=CODE, nick="bob", expires_at=1, heartbeat_timeout=15, req_id=REJOIN)


def test_a_forgotten_member_reclaims_with_the_token_then_looks_up_the_room() -> None:
    presence = Presence("bob", CODE, 5.0, token=TOKEN, locked=True)
    presence.start(0.0)
    assert presence.tick(4.9) == []
    beat = presence.tick(5.0)
    assert [type(e.request).__name__ for e in beat if isinstance(e, ToRelay)] == ["Heartbeat"]
    effects, _ = presence.on_relay(HeartbeatAck(code=CODE, member=False), 5.1)
    (reclaim,) = effects
    assert isinstance(reclaim, ToRelay) and isinstance(reclaim.request, ReclaimRoom)
    assert reclaim.request.token == TOKEN
    # a second "not a member" before the answer: no second request
    assert presence.on_relay(HeartbeatAck(code=CODE, member=False), 5.2) == ([], [])
    effects, _ = presence.on_relay(registered(), 5.3)
    shown = [e.event["event"] for e in effects if isinstance(e, Show)]
    requests = [type(e.request).__name__ for e in effects if isinstance(e, ToRelay)]
    assert shown == ["rejoined"] and requests == ["LookupRoom", "LockRoom"]  # still locked
    info = RoomInfo(
        code=CODE, expires_at=1, peers=[PeerInfo(nick="bob"), PeerInfo(nick="carol")], req_id=REJOIN
    )
    assert presence.on_relay(info, 5.4) == ([], ["carol"])


def test_without_the_token_a_member_registers_again_and_retries_each_heartbeat() -> None:
    presence = Presence("dave", CODE, 5.0)
    presence.start(0.0)
    effects, _ = presence.on_relay(HeartbeatAck(code=CODE, member=False), 1.0)
    assert isinstance(effects[0], ToRelay) and isinstance(effects[0].request, RegisterPeer)
    refused = Error(code=ErrorCode.ROOM_NOT_FOUND, message="no room", req_id=REJOIN)
    effects, _ = presence.on_relay(refused, 1.1)
    assert [e.event["event"] for e in effects if isinstance(e, Show)] == ["error"]
    assert presence.on_relay(refused, 1.2) == ([], [])  # said once
    presence.tick(5.0)
    effects, _ = presence.on_relay(HeartbeatAck(code=CODE, member=False), 5.1)
    assert isinstance(effects[0], ToRelay)  # tried again


def test_a_silent_relay_is_reported_lost_once_and_back_when_it_answers() -> None:
    presence = Presence("bob", CODE, 5.0)
    presence.start(0.0)
    presence.tick(5.0)
    presence.tick(10.0)
    lost = presence.tick(15.0)
    assert [e.event["event"] for e in lost if isinstance(e, Show)] == ["relay_lost"]
    assert not [e for e in presence.tick(20.0) if isinstance(e, Show)]
    effects, _ = presence.on_relay(HeartbeatAck(code=CODE, member=True), 21.0)
    assert [e.event["event"] for e in effects if isinstance(e, Show)] == ["relay_back"]


def test_a_new_connection_to_the_relay_brings_the_next_heartbeat_forward() -> None:
    presence = Presence("bob", CODE, 5.0)
    presence.connected(0.5)  # before the start: nothing to do
    presence.start(1.0)
    assert presence.next_deadline() == 6.0
    presence.connected(2.0)  # the relay came back
    assert presence.next_deadline() == 2.0
    assert [type(e.request).__name__ for e in presence.tick(2.0) if isinstance(e, ToRelay)] == [
        "Heartbeat"
    ]
    assert presence.next_deadline() == 7.0
