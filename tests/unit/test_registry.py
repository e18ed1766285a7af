"""The room registry on a fake clock: joins, leaves, heartbeat timeouts, expiry, cleanup."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from broker.registry import MemberGone, RegistryError, RoomGone, RoomRegistry
from schemas.relay import ErrorCode

TTL, TIMEOUT, GRACE = 1000.0, 15.0, 60.0


def make_registry(**overrides: int | float) -> RoomRegistry:
    options: dict[str, int | float] = {
        "room_ttl": TTL,
        "member_timeout": TIMEOUT,
        "empty_room_grace": GRACE,
        "max_rooms": 100,
        "max_rooms_per_source": 5,
        "max_members_per_room": 4,
    }
    options.update(overrides)
    return RoomRegistry(**options)  # type: ignore[arg-type]


def test_member_registers_with_or_without_an_address() -> None:
    registry = make_registry()
    registry.create("pine-ocean-42", "1.2.3.4", now=0)
    alice, joined = registry.register("pine-ocean-42", "alice", b"A", "10.0.0.1", 6001, now=1)
    bob, _ = registry.register("pine-ocean-42", "bob", b"B", None, None, now=1)
    assert joined
    assert (alice.host, alice.port, bob.host, bob.port) == ("10.0.0.1", 6001, None, None)


def test_nick_held_by_another_connection_is_refused_not_taken_over() -> None:
    registry = make_registry()
    registry.create("pine-ocean-42", "src", now=0)
    registry.register("pine-ocean-42", "alice", b"A", "10.0.0.1", 6001, now=0)
    with pytest.raises(RegistryError) as caught:
        registry.register("pine-ocean-42", "alice", b"EVE", "6.6.6.6", 666, now=1)
    assert caught.value.code == ErrorCode.NICK_TAKEN
    room = registry.get("pine-ocean-42")
    assert room is not None and room.members["alice"].client == b"A"
    assert room.members["alice"].host == "10.0.0.1"


def test_same_connection_re_registering_updates_its_address() -> None:
    registry = make_registry()
    registry.create("pine-ocean-42", "src", now=0)
    registry.register("pine-ocean-42", "alice", b"A", None, None, now=0)
    member, joined = registry.register("pine-ocean-42", "alice", b"A", "10.0.0.9", 7000, now=1)
    assert not joined and (member.host, member.port) == ("10.0.0.9", 7000)


def test_member_silent_past_timeout_is_reported_left() -> None:
    registry = make_registry()
    registry.create("pine-ocean-42", "src", now=0)
    registry.register("pine-ocean-42", "alice", b"A", None, None, now=0)
    registry.register("pine-ocean-42", "bob", b"B", None, None, now=0)
    registry.touch(b"A", now=10)
    assert registry.next_deadline() == TIMEOUT
    assert registry.expire(now=TIMEOUT - 0.001) == []
    events = registry.expire(now=TIMEOUT)
    assert [(type(e), e.member.nick, e.reason) for e in events if isinstance(e, MemberGone)] == [
        (MemberGone, "bob", "timeout")
    ]
    assert registry.next_deadline() == 10 + TIMEOUT
    room = registry.get("pine-ocean-42")
    assert room is not None and list(room.members) == ["alice"]


def test_one_silent_connection_leaves_every_room_it_was_in() -> None:
    registry = make_registry()
    for code in ("pine-ocean-42", "calm-river-10"):
        registry.create(code, "src", now=0)
        registry.register(code, "alice", b"A", None, None, now=0)
    events = registry.expire(now=TIMEOUT)
    assert sorted(e.room.code for e in events if isinstance(e, MemberGone)) == [
        "calm-river-10",
        "pine-ocean-42",
    ]
    assert registry.client_count() == 0


def test_empty_room_is_closed_after_the_grace_period() -> None:
    registry = make_registry()
    registry.create("pine-ocean-42", "src", now=0)
    registry.register("pine-ocean-42", "alice", b"A", None, None, now=5)
    gone = registry.leave("pine-ocean-42", b"A", now=20)
    assert gone is not None and gone.reason == "left"
    assert registry.next_deadline() == 20 + GRACE
    assert registry.expire(now=20 + GRACE - 1) == []
    registry.register("pine-ocean-42", "bob", b"B", None, None, now=30)  # a rejoin cancels it
    assert registry.next_deadline() == 30 + TIMEOUT
    registry.leave("pine-ocean-42", b"B", now=40)
    events = registry.expire(now=40 + GRACE)
    assert [(type(e), e.reason) for e in events] == [(RoomGone, "closed")]
    assert "pine-ocean-42" not in registry


def test_room_created_and_never_joined_is_closed_after_the_grace_period() -> None:
    registry = make_registry()
    registry.create("pine-ocean-42", "src", now=0)
    events = registry.expire(now=GRACE)
    assert [e.reason for e in events] == ["closed"]
    assert registry.rooms_created_by("src") == 0


def test_room_expires_at_its_ttl_with_its_members_listed() -> None:
    registry = make_registry(member_timeout=TTL * 2)
    registry.create("pine-ocean-42", "src", now=0)
    registry.register("pine-ocean-42", "alice", b"A", None, None, now=0)
    assert registry.next_deadline() == TTL
    events = registry.expire(now=TTL)
    assert len(events) == 1
    gone = events[0]
    assert isinstance(gone, RoomGone) and gone.reason == "expired"
    assert list(gone.room.members) == ["alice"]
    assert registry.nick_of(b"A", "pine-ocean-42") is None
    assert registry.next_deadline() is None


def test_leaving_a_room_one_is_not_in_changes_nothing() -> None:
    registry = make_registry()
    registry.create("pine-ocean-42", "src", now=0)
    assert registry.leave("pine-ocean-42", b"X", now=1) is None
    assert registry.leave("calm-river-10", b"X", now=1) is None


def test_limits_rooms_per_source_members_per_room_and_total_rooms() -> None:
    registry = make_registry(max_rooms=6, max_rooms_per_source=5, max_members_per_room=2)
    for number in range(10, 15):
        registry.create(f"pine-ocean-{number}", "src", now=0)
    with pytest.raises(RegistryError) as caught:
        registry.create("pine-ocean-15", "src", now=0)
    assert caught.value.code == ErrorCode.TOO_MANY_ROOMS
    registry.create("pine-ocean-15", "other", now=0)
    with pytest.raises(RegistryError) as caught:
        registry.create("pine-ocean-16", "third", now=0)
    assert caught.value.code == ErrorCode.RELAY_FULL
    registry.register("pine-ocean-10", "a", b"A", None, None, now=0)
    registry.register("pine-ocean-10", "b", b"B", None, None, now=0)
    with pytest.raises(RegistryError) as caught:
        registry.register("pine-ocean-10", "c", b"C", None, None, now=0)
    assert caught.value.code == ErrorCode.ROOM_FULL


def test_registering_in_an_unknown_room_is_room_not_found() -> None:
    with pytest.raises(RegistryError) as caught:
        make_registry().register("pine-ocean-42", "a", b"A", None, None, now=0)
    assert caught.value.code == ErrorCode.ROOM_NOT_FOUND


def test_one_connection_cannot_hold_two_nicks_in_a_room() -> None:
    registry = make_registry()
    registry.create("pine-ocean-42", "src", now=0)
    registry.register("pine-ocean-42", "alice", b"A", None, None, now=0)
    with pytest.raises(RegistryError) as caught:
        registry.register("pine-ocean-42", "alice2", b"A", None, None, now=0)
    assert caught.value.code == ErrorCode.BAD_REQUEST


# --------------------------------------------------------------------------- state machine

CODES = [f"pine-ocean-{n}" for n in range(10, 14)]
NICKS = ["alice", "bob", "carol"]
CLIENTS = [b"c1", b"c2", b"c3", b"c4"]
SOURCES = ["s1", "s2"]


class RegistryMachine(RuleBasedStateMachine):
    """The registry against a plain model: rooms -> {nick: (client, last_seen)}."""

    def __init__(self) -> None:
        super().__init__()
        self.registry = make_registry(
            room_ttl=100.0,
            member_timeout=10.0,
            empty_room_grace=20.0,
            max_rooms=3,
            max_rooms_per_source=2,
            max_members_per_room=2,
        )
        self.now = 0.0
        self.rooms: dict[
            str, dict
        ] = {}  # code -> {source, created, members{nick: client}, empty_since}
        self.seen: dict[bytes, float] = {}

    def _client_rooms(self, client: bytes) -> list[str]:
        return [c for c, r in self.rooms.items() if client in r["members"].values()]

    @rule(code=st.sampled_from(CODES), source=st.sampled_from(SOURCES))
    def create(self, code: str, source: str) -> None:
        if code in self.rooms:
            return
        by_source = sum(1 for r in self.rooms.values() if r["source"] == source)
        try:
            self.registry.create(code, source, self.now)
        except RegistryError as exc:
            expected = ErrorCode.RELAY_FULL if len(self.rooms) >= 3 else ErrorCode.TOO_MANY_ROOMS
            assert exc.code == expected
            assert len(self.rooms) >= 3 or by_source >= 2
            return
        assert len(self.rooms) < 3 and by_source < 2
        self.rooms[code] = {
            "source": source,
            "created": self.now,
            "members": {},
            "empty_since": self.now,
        }

    @rule(code=st.sampled_from(CODES), nick=st.sampled_from(NICKS), client=st.sampled_from(CLIENTS))
    def register(self, code: str, nick: str, client: bytes) -> None:
        room = self.rooms.get(code)
        try:
            _, joined = self.registry.register(code, nick, client, None, None, now=self.now)
        except RegistryError as exc:
            if room is None:
                assert exc.code == ErrorCode.ROOM_NOT_FOUND
            elif nick in room["members"]:
                assert exc.code == ErrorCode.NICK_TAKEN and room["members"][nick] != client
            elif client in room["members"].values():
                assert exc.code == ErrorCode.BAD_REQUEST
            else:
                assert exc.code == ErrorCode.ROOM_FULL and len(room["members"]) >= 2
            return
        assert room is not None
        assert joined == (nick not in room["members"])
        room["members"][nick] = client
        room["empty_since"] = None
        self.seen[client] = self.now

    @rule(code=st.sampled_from(CODES), client=st.sampled_from(CLIENTS))
    def leave(self, code: str, client: bytes) -> None:
        gone = self.registry.leave(code, client, self.now)
        room = self.rooms.get(code)
        nick = None
        if room is not None:
            nick = next((n for n, c in room["members"].items() if c == client), None)
        assert (gone is None) == (nick is None)
        if nick is not None and room is not None:
            del room["members"][nick]
            if not room["members"]:
                room["empty_since"] = self.now

    @rule(client=st.sampled_from(CLIENTS))
    def touch(self, client: bytes) -> None:
        self.registry.touch(client, self.now)
        if self._client_rooms(client):
            self.seen[client] = self.now

    @precondition(lambda self: self.now < 400)
    @rule(step=st.sampled_from([0.5, 3.0, 9.99, 10.0, 25.0, 101.0]))
    def advance(self, step: float) -> None:
        deadline = self.registry.next_deadline()
        self.now += step
        events = self.registry.expire(self.now)
        if deadline is None or deadline > self.now:
            assert events == []
        left = set()
        # timeouts
        for client, seen in list(self.seen.items()):
            if self._client_rooms(client) and seen + 10.0 <= self.now:
                for code in self._client_rooms(client):
                    room = self.rooms[code]
                    nick = next(n for n, c in room["members"].items() if c == client)
                    del room["members"][nick]
                    left.add((code, nick))
                    if not room["members"]:
                        room["empty_since"] = self.now
        expired = {c for c, r in self.rooms.items() if r["created"] + 100.0 <= self.now}
        closed = {
            c
            for c, r in self.rooms.items()
            if c not in expired
            and r["empty_since"] is not None
            and r["empty_since"] + 20.0 <= self.now
        }
        for code in expired | closed:
            del self.rooms[code]
        got_left = {(e.room.code, e.member.nick) for e in events if isinstance(e, MemberGone)}
        got_expired = {
            e.room.code for e in events if isinstance(e, RoomGone) and e.reason == "expired"
        }
        got_closed = {
            e.room.code for e in events if isinstance(e, RoomGone) and e.reason == "closed"
        }
        assert got_left == left
        assert got_expired == expired
        assert got_closed == closed

    @invariant()
    def registry_matches_model(self) -> None:
        assert sorted(r.code for r in self.registry.rooms()) == sorted(self.rooms)
        for code, model in self.rooms.items():
            room = self.registry.get(code)
            assert room is not None
            assert {n: m.client for n, m in room.members.items()} == model["members"]
        for source in SOURCES:
            expected = sum(1 for r in self.rooms.values() if r["source"] == source)
            assert self.registry.rooms_created_by(source) == expected
        members = {c for r in self.rooms.values() for c in r["members"].values()}
        assert self.registry.client_count() == len(members)

    @invariant()
    def deadline_is_never_in_the_past(self) -> None:
        deadline = self.registry.next_deadline()
        assert deadline is None or deadline > self.now


RegistryMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None
)
TestRegistryStateMachine = RegistryMachine.TestCase
