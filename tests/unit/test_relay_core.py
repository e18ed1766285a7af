"""The relay core, driven frame by frame on a fake clock; effects asserted exactly."""

from __future__ import annotations

import json
import random
from typing import Any

from broker.core import RelayCore
from broker.effects import KnownOrigin, Publish, Send
from broker.settings import RelaySettings
from broker.tokens import RoomTokens
from schemas.codec import encode
from schemas.relay import ErrorCode

ALICE, BOB, CAROL, EVE = b"alice-conn", b"bob-conn", b"carol-conn", b"eve-conn"
HOME = KnownOrigin("203.0.113.7", 40001)


def make_core(**overrides: Any) -> RelayCore:
    """A core at monotonic 0 (wall clock 1,000,000); relay beats only if asked for."""
    beats = "alive_interval" in overrides
    overrides.setdefault("alive_interval", 1e9)
    core = RelayCore(
        RelaySettings(**overrides),
        rng=random.Random(7),
        tokens=RoomTokens(b"k" * 32),
        wall_offset=1_000_000.0,
    )
    if not beats:
        core.tick(0.0)  # the beat every relay sends as it starts
    return core


def request(
    core: RelayCore, client: bytes, now: float = 0.0, origin: Any = HOME, **fields: Any
) -> list:
    return core.handle(client, [json.dumps(fields).encode()], origin, now)


def sends(effects: list) -> list[tuple[bytes, dict]]:
    return [
        (e.client, json.loads(e.message if isinstance(e.message, bytes) else encode(e.message)))
        for e in effects
        if isinstance(e, Send)
    ]


def published(effects: list, *, numbers: bool = False) -> list[dict]:
    """Room events (not the relay's beats); without `numbers`, minus `room_seq` and `relay`."""
    events = [json.loads(encode(e.event)) for e in effects if isinstance(e, Publish)]
    events = [event for event in events if event["type"] != "relay_alive"]
    if not numbers:
        for event in events:
            del event["room_seq"], event["relay"]
    return events


def reply(effects: list) -> dict:
    return sends(effects)[0][1]


def open_room(core: RelayCore, now: float = 0.0) -> str:
    created = reply(request(core, ALICE, now, type="create_room", nick="alice", listen_port=6001))
    return created["code"]


def test_observe_address_answers_without_a_room_and_is_rate_limited() -> None:
    core = make_core(fallback="198.51.100.1:5000")
    observed = reply(request(core, ALICE, 0.0, type="observe_address", req_id="n1"))
    assert observed == {
        "type": "observed_address",
        "host": "203.0.113.7",
        "port": 40001,
        "fallback": "198.51.100.1:5000",
        "req_id": "n1",
    }
    answers = [reply(request(core, ALICE, 0.0, type="observe_address")) for _ in range(200)]
    assert answers[-1]["type"] == "error" and answers[-1]["code"] == "rate_limited"


def test_create_room_returns_code_expiry_and_observed_address() -> None:
    core = make_core(room_ttl=3600)
    effects = request(core, ALICE, 5.0, type="create_room", req_id="r1")
    created = reply(effects)
    assert created["type"] == "room_created"
    word, noun, number = created["code"].split("-")
    assert word.isalpha() and noun.isalpha() and 10 <= int(number) <= 99
    assert created["expires_at"] == 1_000_000 + 5 + 3600
    assert (created["observed_host"], created["observed_port"]) == ("203.0.113.7", 40001)
    assert created["req_id"] == "r1"
    assert published(effects) == [
        {"type": "room_created", "code": created["code"], "seq": 1, "at": 1_000_005.0}
    ]


def test_create_room_with_nick_makes_the_creator_a_member() -> None:
    core = make_core()
    code = open_room(core)
    info = reply(request(core, BOB, type="lookup_room", code=code))
    assert info["peers"] == [{"nick": "alice", "port": 6001}]


def test_codes_are_unique_among_live_rooms() -> None:
    core = make_core(max_rooms_per_source=500, create_burst=500)
    codes = {reply(request(core, ALICE, type="create_room"))["code"] for _ in range(300)}
    assert len(codes) == 300


def test_join_pushes_peer_joined_to_every_other_member_and_publishes_it() -> None:
    core = make_core()
    code = open_room(core)
    request(core, BOB, type="register_peer", code=code, nick="bob")
    effects = request(
        core,
        CAROL,
        1.0,
        type="register_peer",
        code=code,
        nick="carol",
        host="10.0.0.3",
        port=6003,
        req_id=9,
    )
    assert sends(effects) == [
        (
            CAROL,
            {
                "type": "peer_registered",
                "success": True,
                "code": code,
                "nick": "carol",
                "expires_at": 1_000_000 + 86400,
                "heartbeat_timeout": 15.0,
                "observed_host": "203.0.113.7",
                "observed_port": 40001,
                "req_id": 9,
            },
        ),
        (
            ALICE,
            {
                "type": "peer_joined",
                "code": code,
                "peer": {"nick": "carol", "host": "10.0.0.3", "port": 6003},
            },
        ),
        (
            BOB,
            {
                "type": "peer_joined",
                "code": code,
                "peer": {"nick": "carol", "host": "10.0.0.3", "port": 6003},
            },
        ),
    ]
    [event] = published(effects)
    assert event["type"] == "peer_joined" and event["nick"] == "carol"
    assert "host" not in event and "port" not in event


def test_taken_nick_is_refused_and_the_holder_keeps_it() -> None:
    core = make_core()
    code = open_room(core)
    effects = request(core, EVE, type="register_peer", code=code, nick="alice", host="6.6.6.6")
    assert sends(effects) == [
        (
            EVE,
            {"type": "error", "code": "nick_taken", "message": f"nick 'alice' is taken in {code}"},
        )
    ]
    info = reply(request(core, BOB, type="lookup_room", code=code))
    assert info["peers"] == [{"nick": "alice", "port": 6001}]


def test_leave_room_tells_the_rest_and_publishes() -> None:
    core = make_core()
    code = open_room(core)
    request(core, BOB, type="register_peer", code=code, nick="bob")
    effects = request(core, BOB, 2.0, type="leave_room", code=code, req_id="bye")
    assert sends(effects) == [
        (BOB, {"type": "room_left", "code": code, "req_id": "bye"}),
        (ALICE, {"type": "peer_left", "code": code, "nick": "bob", "reason": "left"}),
    ]
    assert [e["type"] for e in published(effects)] == ["peer_left"]
    assert reply(request(core, BOB, type="leave_room", code=code))["code"] == "not_member"


def test_silent_member_is_reported_left_after_the_heartbeat_timeout() -> None:
    core = make_core(member_timeout=15)
    code = open_room(core)
    request(core, BOB, type="register_peer", code=code, nick="bob")
    request(core, ALICE, 10.0, type="heartbeat")
    assert core.next_deadline() == 15.0
    assert core.tick(14.99) == []
    effects = core.tick(15.0)
    assert sends(effects) == [
        (ALICE, {"type": "peer_left", "code": code, "nick": "bob", "reason": "timeout"})
    ]
    assert published(effects)[0]["reason"] == "timeout"


def test_any_request_counts_as_a_heartbeat() -> None:
    core = make_core(member_timeout=15)
    code = open_room(core)
    request(core, ALICE, 14.0, type="lookup_room", code=code)
    assert core.tick(20.0) == []
    core.handle(ALICE, [b"garbage"], HOME, 28.0)
    assert core.tick(42.0) == []
    assert core.next_deadline() == 43.0


def test_expired_room_tells_its_members_and_publishes() -> None:
    core = make_core(room_ttl=100, member_timeout=1000)
    code = open_room(core)
    effects = core.tick(100.0)
    assert sends(effects) == [(ALICE, {"type": "room_expired", "code": code})]
    assert [e["type"] for e in published(effects)] == ["room_expired"]
    assert (
        reply(request(core, BOB, 101.0, type="lookup_room", code=code))["code"] == "room_not_found"
    )


def test_empty_room_closes_after_grace() -> None:
    core = make_core(empty_room_grace=60)
    code = reply(request(core, ALICE, type="create_room"))["code"]
    effects = core.tick(60.0)
    assert published(effects) == [
        {"type": "room_closed", "code": code, "seq": 2, "at": 1_000_060.0}
    ]


def test_signal_goes_only_to_the_named_member_with_the_authenticated_sender() -> None:
    core = make_core()
    code = open_room(core)
    request(core, BOB, type="register_peer", code=code, nick="bob")
    effects = request(core, BOB, type="signal", code=code, to="alice", payload="cGFrZQ==", req_id=1)
    assert sends(effects) == [
        (BOB, {"type": "signal_sent", "code": code, "to": "alice", "req_id": 1}),
        (ALICE, {"type": "signal", "code": code, "from": "bob", "payload": "cGFrZQ=="}),
    ]
    assert published(effects) == []


def test_signal_from_a_non_member_or_to_a_stranger_is_refused() -> None:
    core = make_core()
    code = open_room(core)
    outsider = request(core, EVE, type="signal", code=code, to="alice", payload="QQ==")
    assert sends(outsider) == [
        (EVE, {"type": "error", "code": "not_member", "message": f"not a member of {code}"})
    ]
    nobody = request(core, ALICE, type="signal", code=code, to="zed", payload="QQ==")
    assert reply(nobody)["code"] == "peer_not_found"
    itself = request(core, ALICE, type="signal", code=code, to="alice", payload="QQ==")
    assert reply(itself)["code"] == "bad_request"


def test_signals_are_rate_limited_per_connection() -> None:
    core = make_core(signal_burst=3, signal_per_second=1.0)
    code = open_room(core)
    request(core, BOB, type="register_peer", code=code, nick="bob")
    codes = [
        reply(request(core, BOB, type="signal", code=code, to="alice", payload="QQ=="))["type"]
        for _ in range(4)
    ]
    assert codes == ["signal_sent"] * 3 + ["error"]


def test_coordinate_connection_gives_both_members_one_start_time() -> None:
    core = make_core(coordinate_lead=0.75)
    code = open_room(core)
    request(core, BOB, type="register_peer", code=code, nick="bob")
    effects = request(
        core, BOB, 3.0, type="coordinate_connection", code=code, peers=["alice", "bob"], req_id="c"
    )
    body = {
        "type": "coordinate_connection",
        "code": code,
        "peers": ["alice", "bob"],
        "timestamp": 1_000_003.75,
    }
    assert sends(effects) == [(BOB, {**body, "req_id": "c"}), (ALICE, body)]


def test_coordinate_connection_must_name_the_sender() -> None:
    core = make_core()
    code = open_room(core)
    request(core, BOB, type="register_peer", code=code, nick="bob")
    request(core, CAROL, type="register_peer", code=code, nick="carol")
    effects = request(core, CAROL, type="coordinate_connection", code=code, peers=["alice", "bob"])
    assert reply(effects)["code"] == "bad_request"


def test_room_creation_is_rate_limited_per_source() -> None:
    core = make_core(create_burst=2, create_per_minute=6)
    replies = [reply(request(core, ALICE, 0.0, type="create_room"))["type"] for _ in range(3)]
    assert replies == ["room_created", "room_created", "error"]
    other = KnownOrigin("198.51.100.1", 1)
    assert (
        reply(request(core, EVE, 0.0, origin=other, type="create_room"))["type"] == "room_created"
    )
    assert reply(request(core, ALICE, 10.0, type="create_room"))["type"] == "room_created"


def test_code_guessing_is_rate_limited_even_for_codes_that_exist() -> None:
    core = make_core(miss_burst=3, miss_per_minute=6)
    code = open_room(core)
    guesser = KnownOrigin("198.51.100.9", 5)
    misses = [
        reply(request(core, EVE, origin=guesser, type="lookup_room", code=f"calm-river-{n}"))[
            "code"
        ]
        for n in range(10, 14)
    ]
    assert misses == ["room_not_found"] * 3 + ["rate_limited"]
    # The refusal must not depend on whether the code exists.
    hit = reply(request(core, EVE, origin=guesser, type="lookup_room", code=code))
    assert hit["code"] == "rate_limited"
    joined = reply(request(core, EVE, origin=guesser, type="register_peer", code=code, nick="eve"))
    assert joined["code"] == "rate_limited"
    # Others are unaffected, and the guesser recovers with time.
    assert reply(request(core, BOB, type="lookup_room", code=code))["type"] == "room_info"
    later = reply(request(core, EVE, 10.0, origin=guesser, type="lookup_room", code=code))
    assert later["type"] == "room_info"


def test_rooms_per_source_and_members_per_room_are_capped() -> None:
    core = make_core(max_rooms_per_source=2, max_members_per_room=2)
    request(core, ALICE, type="create_room")
    code = open_room(core)
    assert reply(request(core, ALICE, type="create_room"))["code"] == "too_many_rooms"
    request(core, BOB, type="register_peer", code=code, nick="bob")
    assert (
        reply(request(core, CAROL, type="register_peer", code=code, nick="carol"))["code"]
        == "room_full"
    )


def test_malformed_frames_get_errors_and_change_nothing() -> None:
    core = make_core()
    code = open_room(core)
    for frames in ([b"\xff"], [b"{"], [b"[]"], [b'{"type":"nope"}'], [b"{}", b"{}"]):
        effects = core.handle(EVE, frames, HOME, 1.0)
        assert len(effects) == 1 and reply(effects)["type"] == "error"
    assert reply(core.handle(EVE, [b"{}", b"{}"], HOME, 1.0))["code"] == ErrorCode.MULTIPART
    assert reply(request(core, BOB, type="lookup_room", code=code))["peers"][0]["nick"] == "alice"


def test_errors_echo_the_request_id() -> None:
    core = make_core()
    effects = request(core, EVE, type="lookup_room", code="calm-river-11", req_id="q7")
    assert reply(effects) == {
        "type": "error",
        "code": "room_not_found",
        "message": "no room calm-river-11",
        "req_id": "q7",
    }


def test_pub_sequence_numbers_rise_by_one_per_event() -> None:
    core = make_core(member_timeout=5)
    code = open_room(core)
    request(core, BOB, type="register_peer", code=code, nick="bob")
    events = published(core.tick(5.0))
    request(core, CAROL, 6.0, type="register_peer", code=code, nick="carol")
    assert [e["seq"] for e in events] == [4, 5]


def test_lookup_always_shows_the_current_members() -> None:
    core = make_core(member_timeout=15)
    code = open_room(core)

    def nicks_and_hosts(now: float) -> list[tuple[str, str | None]]:
        peers = reply(request(core, EVE, now, type="lookup_room", code=code))["peers"]
        return [(peer["nick"], peer.get("host")) for peer in peers]

    assert nicks_and_hosts(0) == [("alice", None)]
    request(core, BOB, 1.0, type="register_peer", code=code, nick="bob")
    assert nicks_and_hosts(1) == [("alice", None), ("bob", None)]
    request(core, BOB, 2.0, type="register_peer", code=code, nick="bob", host="10.0.0.2")
    assert nicks_and_hosts(2) == [("alice", None), ("bob", "10.0.0.2")]
    request(core, ALICE, 3.0, type="leave_room", code=code)
    assert nicks_and_hosts(3) == [("bob", "10.0.0.2")]
    core.tick(2.0 + 15)
    assert nicks_and_hosts(17) == []


def test_a_locked_room_refuses_new_members_and_tells_the_others() -> None:
    core = make_core()
    code = open_room(core)
    request(core, BOB, type="register_peer", code=code, nick="bob")
    effects = request(core, BOB, 1.0, type="lock_room", code=code, req_id="l")
    assert sends(effects) == [
        (BOB, {"type": "room_locked", "code": code, "req_id": "l"}),
        (ALICE, {"type": "room_locked", "code": code}),
    ]
    assert [e["type"] for e in published(effects)] == ["room_locked"]
    refused = reply(request(core, CAROL, type="register_peer", code=code, nick="carol"))
    assert refused["code"] == "room_locked"
    assert reply(request(core, EVE, type="lock_room", code=code))["code"] == "not_member"
    again = request(core, ALICE, 2.0, type="lock_room", code=code)
    assert len(again) == 1 and reply(again)["type"] == "room_locked"


# ---------------------------------------------------------------- restarts, tokens, monitors


def created_token(core: RelayCore, client: bytes = ALICE, now: float = 0.0) -> tuple[str, str]:
    created = reply(request(core, client, now, type="create_room", nick="alice"))
    return created["code"], created["token"]


def test_a_restarted_relay_gives_the_room_back_to_a_token_holder_with_its_expiry() -> None:
    old = make_core(room_ttl=1000)
    code, token = created_token(old, now=0.0)
    new = make_core(room_ttl=1000)  # the same key: a restart
    effects = new.handle(BOB, [encode_request("reclaim_room", code, "bob", token)], HOME, 300.0)
    registered = reply(effects)
    assert registered["type"] == "peer_registered" and registered["nick"] == "bob"
    assert registered["expires_at"] == 1_000_000 + 1000  # the original expiry, not 300 + 1000
    assert [e["type"] for e in published(effects)] == ["room_created", "peer_joined"]
    assert new.next_deadline() == 300.0 + 15.0  # bob's silence
    # a second member comes back into the same room; a stranger with the code alone cannot
    again = reply(
        request(new, ALICE, 301.0, type="reclaim_room", code=code, nick="alice", token=token)
    )
    assert again["type"] == "peer_registered"
    assert reply(request(new, BOB, 302.0, type="heartbeat", code=code)) == {
        "type": "heartbeat_ack",
        "code": code,
        "member": True,
    }
    effects = new.tick(1000.0)
    assert [e["type"] for e in published(effects)][-1] == "room_expired"


def encode_request(kind: str, code: str, nick: str, token: str) -> bytes:
    return json.dumps({"type": kind, "code": code, "nick": nick, "token": token}).encode()


def test_a_squatter_cannot_reclaim_a_code_without_its_token() -> None:
    old = make_core()
    code, token = created_token(old)
    new = make_core()
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    refused = reply(
        request(new, EVE, 1.0, type="reclaim_room", code=code, nick="eve", token=forged)
    )
    assert refused["code"] == "bad_token"
    other_code = "other-room-12" if code != "other-room-12" else "other-room-13"
    moved = reply(
        request(new, EVE, 1.0, type="reclaim_room", code=other_code, nick="eve", token=token)
    )
    assert moved["code"] == "bad_token"  # a token is bound to its code
    assert code not in new.registry
    for _ in range(10):  # guessing tokens is limited like guessing codes
        last = reply(
            request(new, EVE, 2.0, type="reclaim_room", code=code, nick="eve", token="A" * 38)
        )
    assert last["code"] == "rate_limited"


def test_a_room_token_does_not_open_a_later_room_that_got_the_same_code() -> None:
    old = make_core()
    code, token = created_token(old)
    new = make_core()
    new.registry.create(code, "198.51.100.9", 1.0, nonce=b"\x01" * 8)
    taken = reply(request(new, BOB, 2.0, type="reclaim_room", code=code, nick="bob", token=token))
    assert taken["code"] == "room_taken"


def test_a_room_token_brings_only_past_members_back_into_a_locked_room() -> None:
    """The token travels in clear from the relay to the creator: whoever sees it must not be
    able to walk into a locked room. A member that timed out comes back; a new nick does not."""
    core = make_core()
    code, token = created_token(core)
    request(core, BOB, 1.0, type="register_peer", code=code, nick="bob")
    request(core, ALICE, 1.0, type="lock_room", code=code)
    request(core, ALICE, 10.0, type="heartbeat", code=code)
    core.tick(1.0 + 15)  # bob fell silent: gone
    assert [m for m in core.registry.get(code).members] == ["alice"]
    stranger = request(core, EVE, 17.0, type="reclaim_room", code=code, nick="eve", token=token)
    assert reply(stranger)["code"] == "room_locked"
    back = request(core, CAROL, 17.0, type="reclaim_room", code=code, nick="bob", token=token)
    assert reply(back)["type"] == "peer_registered"


def test_an_expired_room_cannot_be_reclaimed() -> None:
    old = make_core(room_ttl=100)
    code, token = created_token(old)
    new = make_core(room_ttl=100)
    late = reply(request(new, BOB, 100.0, type="reclaim_room", code=code, nick="bob", token=token))
    assert late["code"] == "room_not_found"


def test_heartbeat_for_a_room_says_whether_the_connection_is_still_a_member() -> None:
    core = make_core()
    code = open_room(core)
    assert reply(request(core, ALICE, 1.0, type="heartbeat", code=code))["member"] is True
    assert reply(request(core, BOB, 1.0, type="heartbeat", code=code))["member"] is False
    assert reply(request(core, BOB, 1.0, type="heartbeat")) == {"type": "heartbeat_ack"}


def test_events_carry_the_relay_instance_and_a_per_room_count() -> None:
    core = make_core()
    effects = request(core, ALICE, 0.0, type="create_room", nick="alice")
    code = reply(effects)["code"]
    effects += request(core, BOB, 1.0, type="register_peer", code=code, nick="bob")
    effects += request(core, CAROL, 2.0, type="create_room", nick="carol")
    effects += request(core, BOB, 3.0, type="leave_room", code=code)
    events = published(effects, numbers=True)
    mine = [(e["seq"], e["room_seq"]) for e in events if e["code"] == code]
    assert mine == [(1, 1), (2, 2), (3, 3), (6, 4)]
    assert {e["relay"] for e in events} == {"0" * 16}


def test_the_relay_beats_on_pub_with_its_latest_sequence_number() -> None:
    core = make_core(alive_interval=2.0)
    assert core.next_deadline() == 0.0  # the first beat at start: a restart shows at once
    first = [e.event for e in core.tick(0.0) if isinstance(e, Publish)]
    assert [(beat.type, beat.seq) for beat in first] == [("relay_alive", 0)]
    assert core.next_deadline() == 2.0
    open_room(core)
    effects = core.tick(2.0)
    alive = [json.loads(encode(e.event)) for e in effects if isinstance(e, Publish)]
    assert alive == [
        {
            "type": "relay_alive",
            "relay": "0" * 16,
            "seq": 2,
            "started_at": 1_000_000.0,
            "at": 1_000_002.0,
        }
    ]
    assert core.next_deadline() == 4.0


def test_relay_info_names_the_pub_socket_and_its_key() -> None:
    core = make_core(advertise_pub="0.tcp.example.net:12345")
    core.pub_port, core.pub_key = 8001, "K" * 40
    info = reply(request(core, EVE, 0.0, type="relay_info", req_id=1))
    assert info == {
        "type": "relay_info",
        "relay": "0" * 16,
        "pub": "0.tcp.example.net:12345",
        "pub_key": "K" * 40,
        "req_id": 1,
    }
    plain = make_core()
    plain.pub_port = 8001
    assert reply(request(plain, EVE, 0.0, type="relay_info"))["pub_port"] == 8001


def test_behind_a_tunnel_a_loopback_source_is_not_offered_as_the_clients_address() -> None:
    core = make_core(advertise="0.tcp.example.net:4000")
    tunnel = KnownOrigin("127.0.0.1", 53012)
    created = reply(request(core, ALICE, 0.0, tunnel, type="create_room", nick="alice"))
    assert "observed_host" not in created and "observed_port" not in created
    assert created["relay"] == "0.tcp.example.net:4000"
    direct = reply(request(core, BOB, 0.0, type="create_room", nick="bob"))
    assert direct["observed_host"] == "203.0.113.7"  # a real source address is still told
    local = make_core()  # no tunnel: loopback is a real local client
    assert reply(request(local, ALICE, 0.0, tunnel, type="create_room"))["observed_port"] == 53012


def test_behind_a_tunnel_each_connection_has_its_own_limits_and_all_share_a_larger_one() -> None:
    """With `advertise` set, clients arrive from the tunnel agent's loopback address: one
    guesser must not lock every user out, yet all of them together stay bounded."""
    tunnel = KnownOrigin("127.0.0.1", 50000)

    def misses(core: RelayCore, client: bytes, count: int) -> list[str]:
        return [
            reply(request(core, client, 0.0, tunnel, type="lookup_room", code="pine-ocean-42"))[
                "code"
            ]
            for _ in range(count)
        ]

    direct = make_core()  # no tunnel: loopback is one address like any other
    assert misses(direct, b"guesser", 6)[-1] == "rate_limited"
    assert misses(direct, b"someone-else", 1) == ["rate_limited"]

    behind = make_core(advertise="relay.example.net:14242")
    assert misses(behind, b"guesser", 6) == ["room_not_found"] * 5 + ["rate_limited"]
    assert misses(behind, b"someone-else", 1) == ["room_not_found"]
    clients = [bytes([0, n // 256, n % 256]) for n in range(60)]
    outcomes = [code for client in clients for code in misses(behind, client, 5)]
    assert outcomes.count("room_not_found") == 5 * 50 - 6  # the shared budget: 50 x 5
    assert set(outcomes[5 * 50 :]) == {"rate_limited"}


def test_after_a_restart_every_member_takes_a_locked_room_back() -> None:
    """The first member back re-makes the room and locks it again at once; the others, whom
    the new relay never knew, still come back with the token for a member timeout."""
    old = make_core()
    code, token = created_token(old)
    new = make_core()  # the same key: a restart
    first = request(new, ALICE, 1.0, type="reclaim_room", code=code, nick="alice", token=token)
    assert reply(first)["type"] == "peer_registered"
    request(new, ALICE, 1.0, type="lock_room", code=code)
    back = request(new, BOB, 2.0, type="reclaim_room", code=code, nick="bob", token=token)
    assert reply(back)["type"] == "peer_registered"
    request(new, ALICE, 14.0, type="heartbeat", code=code)
    request(new, BOB, 14.0, type="heartbeat", code=code)
    late = request(new, EVE, 17.0, type="reclaim_room", code=code, nick="eve", token=token)
    assert reply(late)["code"] == "room_locked"


def test_nicks_churned_before_the_lock_do_not_push_out_a_member_who_left_after_it() -> None:
    core = make_core(max_members_per_room=4)
    code, token = created_token(core)
    request(core, BOB, 1.0, type="register_peer", code=code, nick="bob")
    for n in range(70):  # a stranger registers and leaves 70 nicks
        request(core, EVE, 1.0, type="register_peer", code=code, nick=f"eve{n}")
        request(core, EVE, 1.0, type="leave_room", code=code)
    request(core, ALICE, 1.0, type="lock_room", code=code)
    request(core, BOB, 2.0, type="leave_room", code=code)
    back = request(core, CAROL, 3.0, type="reclaim_room", code=code, nick="bob", token=token)
    assert reply(back)["type"] == "peer_registered"
