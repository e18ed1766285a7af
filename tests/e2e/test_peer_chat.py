"""Members as real `sandpiper` processes in --json mode, against a real relay on loopback."""

from __future__ import annotations

import itertools
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from peer.words import SECRET_WORDS
from tests.helpers import Member, RelayProcess, create_room, running_relay

FAST = ("--peer-timeout", "2s", "--connect-timeout", "1s")


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayProcess]:
    with running_relay(tmp_path) as process:
        yield process


def test_two_members_chat_both_ways_and_leave_cleanly(
    relay: RelayProcess, members: list[Member]
) -> None:
    alice, invite = create_room(relay)
    members.append(alice)
    assert len(invite.split("-")) == 5
    bob = Member(relay, "join", invite, "--nick", "bob")
    members.append(bob)
    assert bob.event("connected", nick="alice")["path"] == "lan"
    assert alice.event("connected", nick="bob")["path"] == "lan"
    alice.say("hello from alice")
    bob.say("hello from bob")
    assert bob.event("message", text="hello from alice")["from"] == "alice"
    assert alice.event("message", text="hello from bob")["from"] == "bob"
    bob.end_input()
    assert bob.wait() == 0
    assert alice.event("peer_left", nick="bob")
    alice.end_input()
    assert alice.wait() == 0


def test_lines_typed_before_anyone_connects_are_delivered(
    relay: RelayProcess, members: list[Member]
) -> None:
    alice, invite = create_room(relay)
    members.append(alice)
    alice.say("typed while alone")
    bob = Member(relay, "join", invite, "--nick", "bob")
    members.append(bob)
    assert bob.event("message", text="typed while alone")["from"] == "alice"
    carol = Member(relay, "join", invite, "--nick", "carol")
    members.append(carol)
    carol.say("typed before connecting")
    carol.end_input()  # EOF at once: carol must still deliver before leaving
    assert alice.event("message", text="typed before connecting")["from"] == "carol"
    assert bob.event("message", text="typed before connecting")["from"] == "carol"
    assert carol.wait() == 0


def test_three_members_form_a_full_mesh_and_a_late_joiner_reaches_everyone(
    relay: RelayProcess, members: list[Member]
) -> None:
    alice, invite = create_room(relay)
    bob = Member(relay, "join", invite, "--nick", "bob")
    members += [alice, bob]
    bob.event("connected", nick="alice")
    carol = Member(relay, "join", invite, "--nick", "carol")
    members.append(carol)
    for member, others in (
        (alice, ("bob", "carol")),
        (bob, ("alice", "carol")),
        (carol, ("alice", "bob")),
    ):
        for nick in others:
            member.event("connected", nick=nick)
    carol.say("carol here")
    alice.say("alice here")
    for member in (alice, bob):
        member.event("message", text="carol here")
    for member in (bob, carol):
        member.event("message", text="alice here")


def test_wrong_secret_is_reported_on_both_sides_and_the_room_keeps_working(
    relay: RelayProcess, members: list[Member]
) -> None:
    alice, invite = create_room(relay)
    members.append(alice)
    words = invite.split("-")
    wrong = "-".join([*words[:3], words[4], words[3]])  # right words, wrong order
    mallory = Member(relay, "join", wrong, "--nick", "mallory")
    members.append(mallory)
    error = mallory.event("error")
    assert error["reason"] == "wrong_secret" and "wrong code or password" in error["message"]
    assert mallory.wait() == 1
    attempt = alice.event("wrong_secret", nick="mallory")
    assert (attempt["attempt"], attempt["limit"]) == (1, 3)
    bob = Member(relay, "join", invite, "--nick", "bob")
    members.append(bob)
    bob.event("connected", nick="alice")
    alice.say("still private")
    assert bob.event("message", text="still private")["from"] == "alice"


def test_three_wrong_attempts_lock_the_room(relay: RelayProcess, members: list[Member]) -> None:
    alice, invite = create_room(relay)
    members.append(alice)
    room, secret = "-".join(invite.split("-")[:3]), "-".join(invite.split("-")[3:])
    guesses = [f"{a}-{b}" for a, b in itertools.pairwise(SECRET_WORDS[:5])]
    for index, guess in enumerate([g for g in guesses if g != secret][:3]):
        guesser = Member(relay, "join", f"{room}-{guess}", "--nick", f"guess{index}")
        members.append(guesser)
        assert guesser.wait() == 1
    alice.event("room_locked")
    late = Member(relay, "join", invite, "--nick", "bob")
    members.append(late)
    refused = late.event("error")
    assert refused["code"] == "room_locked"
    assert late.wait() == 1


def test_a_member_killed_with_sigkill_is_reported_gone(
    relay: RelayProcess, members: list[Member]
) -> None:
    alice, invite = create_room(relay, "alice", *FAST)
    bob = Member(relay, "join", invite, "--nick", "bob", *FAST)
    members += [alice, bob]
    alice.event("connected", nick="bob")
    bob.process.send_signal(signal.SIGKILL)
    gone = alice.event("peer_left", nick="bob", timeout=10)
    assert gone["reason"] == "timeout"


def test_a_taken_nick_and_an_unknown_room_are_clear_errors(
    relay: RelayProcess, members: list[Member]
) -> None:
    alice, invite = create_room(relay)
    members.append(alice)
    twin = Member(relay, "join", invite, "--nick", "alice")
    members.append(twin)
    assert "nick is taken" in twin.event("error")["message"]
    assert twin.wait() == 1
    other = f"calm-river-10-{SECRET_WORDS[0]}-{SECRET_WORDS[1]}"
    lost = Member(relay, "join", other, "--nick", "bob")
    members.append(lost)
    assert "no such room" in lost.event("error")["message"]
    assert lost.wait() == 1


def test_an_unreachable_relay_is_named(tmp_path: Path, members: list[Member]) -> None:
    relay = RelayProcess(tmp_path)
    relay.endpoint = "tcp://127.0.0.1:9"  # nothing listens on the discard port
    member = Member(relay, "create", "--nick", "alice")
    members.append(member)
    message = member.event("error", timeout=20)["message"]
    assert "127.0.0.1:9" in message and "no relay answered" in message
    assert member.wait() == 1


def test_the_relay_lists_no_member_address(
    relay: RelayProcess, members: list[Member], zmq_context: object
) -> None:
    from tests.helpers import WireClient

    alice, invite = create_room(relay)
    bob = Member(relay, "join", invite, "--nick", "bob")
    members += [alice, bob]
    bob.event("connected", nick="alice")
    stranger = WireClient(zmq_context, relay.endpoint)  # type: ignore[arg-type]
    info = stranger.request(type="lookup_room", code="-".join(invite.split("-")[:3]))
    assert info["peers"] == [{"nick": "alice"}, {"nick": "bob"}]
    stranger.close()


def test_sigterm_leaves_the_room_and_the_others_are_told_at_once(
    relay: RelayProcess, members: list[Member]
) -> None:
    alice, invite = create_room(relay)
    bob = Member(relay, "join", invite, "--nick", "bob")
    members += [alice, bob]
    alice.event("connected", nick="bob")
    bob.process.send_signal(signal.SIGTERM)
    assert bob.wait() == 0
    assert alice.event("peer_left", nick="bob", timeout=3)["reason"] == "left"
