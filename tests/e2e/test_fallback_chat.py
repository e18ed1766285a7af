"""Members as real processes chatting through a real fallback server on loopback."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    FallbackProcess,
    LoopbackRecorder,
    Member,
    RelayProcess,
    create_room,
    running_relay,
)


@pytest.fixture
def relay(tmp_path: Path, fallback: FallbackProcess) -> Iterator[RelayProcess]:
    address = fallback.endpoint.removeprefix("tcp://")
    with running_relay(tmp_path, "--fallback", address) as process:
        yield process


def test_auto_and_forced_fallback_chat_both_ways_through_the_server(
    relay: RelayProcess, members: list[Member]
) -> None:
    alice, invite = create_room(relay)  # auto, and the relay advertises the fallback server
    bob = Member(relay, "join", invite, "--nick", "bob", "--transport", "fallback")
    members += [alice, bob]
    assert bob.event("connected", nick="alice")["path"] == "fallback"
    assert alice.event("connected", nick="bob", timeout=20)["path"] == "fallback"
    alice.say("through the fallback")
    bob.say("and back")
    assert bob.event("message", text="through the fallback")["from"] == "alice"
    assert alice.event("message", text="and back")["from"] == "bob"
    bob.end_input()
    assert bob.wait() == 0
    assert alice.event("peer_left", nick="bob")


def test_a_fallback_server_killed_and_restarted_loses_and_doubles_nothing(
    relay: RelayProcess, fallback: FallbackProcess, members: list[Member]
) -> None:
    alice, invite = create_room(relay, "alice", "--transport", "fallback")
    bob = Member(relay, "join", invite, "--nick", "bob", "--transport", "fallback")
    members += [alice, bob]
    bob.event("connected", nick="alice")
    alice.say("before the crash")
    bob.event("message", text="before the crash")
    port = fallback.port
    assert fallback.process is not None
    fallback.process.send_signal(signal.SIGKILL)
    fallback.process.wait(timeout=10)
    alice.say("while it is down")
    bob.say("bob while it is down")
    fallback.start(port=port)
    alice.say("after the restart")
    assert bob.event("message", text="while it is down", timeout=30)["from"] == "alice"
    assert bob.event("message", text="after the restart", timeout=30)["from"] == "alice"
    assert alice.event("message", text="bob while it is down", timeout=30)["from"] == "bob"
    bob.end_input()
    assert bob.wait(timeout=30) == 0
    texts = [e["text"] for e in bob.events if e.get("event") == "message"]
    assert texts == ["before the crash", "while it is down", "after the restart"]


def test_p2p_transport_never_uses_the_fallback(relay: RelayProcess, members: list[Member]) -> None:
    alice, invite = create_room(relay, "alice", "--transport", "p2p")
    bob = Member(relay, "join", invite, "--nick", "bob", "--transport", "p2p")
    members += [alice, bob]
    assert bob.event("connected", nick="alice")["path"] == "lan"
    alice.say("direct only")
    assert bob.event("message", text="direct only")


def test_everything_through_the_fallback_server_is_sealed(
    relay: RelayProcess,
    fallback: FallbackProcess,
    members: list[Member],
    recorder: LoopbackRecorder,
) -> None:
    env = {"SANDPIPER_PASSWORD": "open sesame please"}
    alice, invite = create_room(relay, "alice", "--transport", "fallback", env=env)
    bob = Member(relay, "join", invite, "--nick", "bob", "--transport", "fallback", env=env)
    members += [alice, bob]
    bob.event("connected", nick="alice")
    alice.say("meet at the old mill")
    bob.say("bring the lantern")
    bob.event("message", text="meet at the old mill")
    alice.event("message", text="bring the lantern")
    bob.end_input()
    assert bob.wait() == 0
    captured = recorder.stop()
    seen_by_fallback = recorder.tcp_payloads(fallback.port)
    assert b'"type":"deliver"' in seen_by_fallback, "the recorder must see the fallback traffic"
    secret = "-".join(invite.split("-")[3:])
    room = "-".join(invite.split("-")[:3])
    for forbidden in [secret, "open sesame please", "meet at the old mill", "bring the lantern"]:
        assert forbidden.encode() not in captured, f"{forbidden!r} crossed a socket in the clear"
    assert room.encode() in captured  # the relay knows the room code...
    for hidden in [room, "alice"]:  # ...the fallback server learns no code and no nick
        assert hidden.encode() not in seen_by_fallback
