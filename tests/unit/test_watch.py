"""The monitor's core: what it shows, and every way it notices missed events."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from broker.watch import MAX_ROOMS, Watch
from schemas.events import MemberJoined, MemberLeft, RelayAlive, RoomEnded, RoomOpened

OLD, NEW = "a" * 16, "b" * 16


def joined(code: str, nick: str, seq: int, room_seq: int, relay: str = OLD) -> MemberJoined:
    return MemberJoined(code=code, nick=nick, seq=seq, room_seq=room_seq, relay=relay, at=1.0)


def kinds(notices: list[dict[str, Any]]) -> list[str]:
    return [n["event"] for n in notices]


def test_members_come_and_go_and_ended_rooms_disappear() -> None:
    watch = Watch()
    watch.on_event(RoomOpened(code="pine-ocean-42", seq=1, room_seq=1, relay=OLD, at=1.0), 0.0)
    watch.on_event(joined("pine-ocean-42", "alice", 2, 2), 0.0)
    watch.on_event(joined("pine-ocean-42", "bob", 3, 3), 0.0)
    left = MemberLeft(
        code="pine-ocean-42", nick="alice", reason="left", seq=4, room_seq=4, relay=OLD, at=2.0
    )
    shown = watch.on_event(left, 0.0)
    assert shown == [{"event": "peer_left", **left.model_dump(exclude={"type"})}]
    assert list(watch.rooms["pine-ocean-42"].members) == ["bob"]
    ended = RoomEnded(
        type="room_closed", code="pine-ocean-42", seq=5, room_seq=5, relay=OLD, at=3.0
    )
    watch.on_event(ended, 0.0)
    assert "pine-ocean-42" not in watch.rooms
    assert watch.events == 5 and watch.missed == 0


def test_a_jump_in_seq_is_a_gap_for_a_monitor_of_every_room() -> None:
    watch = Watch()
    watch.on_event(joined("pine-ocean-42", "alice", 7, 2), 0.0)  # the first one sets the base
    notices = watch.on_event(joined("pine-ocean-42", "bob", 10, 3), 0.0)
    assert notices[0] == {"event": "gap", "reason": "missed", "after_seq": 7, "missed": 2}
    assert watch.missed == 2


def test_a_beat_with_a_later_seq_shows_a_gap_at_the_tail() -> None:
    watch = Watch()
    watch.on_event(joined("pine-ocean-42", "alice", 4, 2), 0.0)
    beat = RelayAlive(relay=OLD, seq=6, started_at=0.0, at=1.0)
    assert watch.on_event(beat, 1.0)[0]["missed"] == 2
    assert watch.on_event(RelayAlive(relay=OLD, seq=6, started_at=0.0, at=3.0), 3.0) == []


def test_a_monitor_of_some_rooms_counts_per_room_and_ignores_other_rooms() -> None:
    watch = Watch(frozenset({"pine-ocean-42"}))
    assert watch.on_event(joined("other-room-11", "eve", 1, 1), 0.0) == []
    watch.on_event(joined("pine-ocean-42", "alice", 2, 1), 0.0)
    notices = watch.on_event(joined("pine-ocean-42", "bob", 9, 2), 0.0)  # seq jumps: other rooms
    assert kinds(notices) == ["peer_joined"]
    notices = watch.on_event(joined("pine-ocean-42", "carol", 12, 5), 0.0)
    assert notices[0] == {
        "event": "gap",
        "reason": "missed",
        "after_seq": 2,
        "missed": 2,
        "code": "pine-ocean-42",
    }
    assert "other-room-11" not in watch.rooms


def test_a_new_relay_instance_is_a_restart_and_the_view_starts_again() -> None:
    watch = Watch()
    watch.on_event(joined("pine-ocean-42", "alice", 5, 2), 0.0)
    notices = watch.on_event(RelayAlive(relay=NEW, seq=0, started_at=9.0, at=9.5), 9.5)
    assert notices == [
        {
            "event": "gap",
            "reason": "relay_restarted",
            "after_seq": 5,
            "previous_relay": OLD,
            "relay": NEW,
        }
    ]
    assert watch.rooms == {} and watch.restarts == 1
    assert kinds(watch.on_event(joined("pine-ocean-42", "alice", 1, 1, NEW), 10.0)) == [
        "peer_joined"
    ]  # the new relay's numbering is not a gap


def test_silence_is_reported_once_and_the_return_too() -> None:
    watch = Watch(silence=6.0)
    assert watch.tick(100.0) == [] and watch.next_deadline() is None  # nothing heard yet
    watch.on_event(RelayAlive(relay=OLD, seq=0, started_at=0.0, at=0.0), 0.0)
    assert watch.next_deadline() == 6.0
    assert watch.tick(5.9) == []
    assert watch.tick(6.0) == [{"event": "relay_silent", "seconds": 6.0}]
    assert watch.tick(9.0) == []
    back = watch.on_event(RelayAlive(relay=OLD, seq=0, started_at=0.0, at=10.0), 10.0)
    assert kinds(back) == ["relay_back"]


@given(st.lists(st.tuples(st.integers(0, 30_000), st.sampled_from(["a", "b", "c"])), max_size=300))
def test_the_view_stays_bounded_whatever_the_relay_sends(events: list[tuple[int, str]]) -> None:
    watch = Watch()
    for number, nick in events:
        code = f"room-number-{10 + number % 90}"
        watch.on_event(joined(code, nick, number + 1, number + 1), 0.0)
    assert len(watch.rooms) <= MAX_ROOMS and len(watch.recent) <= 200


def test_after_a_restart_events_of_the_new_relay_seen_late_are_counted_missed() -> None:
    every = Watch()
    every.on_event(joined("pine-ocean-42", "alice", 5, 2), 0.0)
    notices = every.on_event(joined("pine-ocean-42", "alice", 3, 2, NEW), 1.0)
    assert kinds(notices) == ["gap", "gap", "peer_joined"]
    assert notices[1] == {"event": "gap", "reason": "missed", "after_seq": 0, "missed": 2}
    some = Watch(frozenset({"pine-ocean-42"}))
    some.on_event(joined("pine-ocean-42", "alice", 5, 2), 0.0)
    notices = some.on_event(joined("pine-ocean-42", "bob", 4, 3, NEW), 1.0)
    assert notices[1]["missed"] == 2 and notices[1]["code"] == "pine-ocean-42"
    beat = Watch()
    beat.on_event(joined("pine-ocean-42", "alice", 5, 2), 0.0)
    assert kinds(beat.on_event(RelayAlive(relay=NEW, seq=4, started_at=0.0, at=1.0), 1.0)) == [
        "gap",
        "gap",
    ]
