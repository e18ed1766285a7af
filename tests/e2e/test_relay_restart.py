"""The relay killed with SIGKILL and restarted mid-session: nothing a user has is lost.

Real relay processes (the same state directory, so the same room-token key), real `sandpiper
create/join/monitor --json` processes, and a raw DEALER playing the squatter.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from tests.helpers import Member, RelayProcess, WireClient, create_room, sandpiper_command


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayProcess]:
    process = RelayProcess(tmp_path, "--state-dir", str(tmp_path / "state")).start()
    try:
        yield process
    finally:
        process.stop()


def monitor(relay: RelayProcess, *args: str) -> Member:
    address = relay.endpoint.removeprefix("tcp://")
    return Member(
        None, command=[*sandpiper_command(), "monitor", *args, "--json", "--relay", address]
    )


def restart(relay: RelayProcess) -> None:
    assert relay.process is not None
    port, pub_port = relay.port, int(relay.pub_endpoint.rsplit(":", 1)[1])
    relay.process.send_signal(signal.SIGKILL)
    relay.process.wait(timeout=10)
    relay.start(port=port, pub_port=pub_port)


def test_chat_goes_on_the_code_keeps_working_and_monitors_report_the_gap(
    relay: RelayProcess,
) -> None:
    watcher = monitor(relay)
    alice, invite = create_room(relay)
    code = invite.rsplit("-", 2)[0]
    watching_room = monitor(relay, code)
    watcher.event("connected")
    watching_room.event("connected")  # subscribed before bob comes: his join is an event
    bob = Member(relay, "join", invite, "--nick", "bob")
    members: list[Member] = [watcher, watching_room, alice, bob]
    try:
        bob.event("connected", nick="alice")
        alice.event("connected", nick="bob")
        watcher.event("peer_joined", code=code, nick="bob")
        watching_room.event("peer_joined", code=code, nick="bob")

        restart(relay)
        alice.say("while the relay was down")  # a direct link: the relay is not needed
        assert bob.event("message", text="while the relay was down")["from"] == "alice"

        alice.event("rejoined", timeout=20)
        bob.event("rejoined", timeout=20)
        gap = watcher.event("gap", reason="relay_restarted", timeout=20)
        assert gap["after_seq"] >= 3 and gap["previous_relay"] != gap["relay"]
        watching_room.event("gap", reason="relay_restarted", timeout=20)
        # The members re-claim the room within a fraction of a second, maybe before the
        # monitor has reconnected (PUB keeps nothing): it sees their joins, or counts them
        # as missed events of the new relay; never silence.
        seen_back = watcher.wait_event(
            lambda e: (
                (e["event"] == "peer_joined" and e.get("code") == code)
                or (e["event"] == "gap" and e["reason"] == "missed")
            ),
            timeout=20,
        )
        assert seen_back.get("nick") in ("alice", "bob") or seen_back["missed"] >= 1

        carol = Member(relay, "join", invite, "--nick", "carol")
        members.append(carol)
        carol.event("connected", nick="alice")
        carol.event("connected", nick="bob")
        carol.say("hello after the restart")
        assert alice.event("message", text="hello after the restart")["from"] == "carol"
        assert bob.event("message", text="hello after the restart")["from"] == "carol"
        watching_room.event("peer_joined", code=code, nick="carol")

        carol.end_input()
        assert carol.wait() == 0
        watcher.event("peer_left", code=code, nick="carol")
        # nothing lost, nothing shown twice, no reconnection between alice and bob
        assert [e["text"] for e in bob.events if e["event"] == "message"] == [
            "while the relay was down",
            "hello after the restart",
        ]
        assert [e["text"] for e in alice.events if e["event"] == "message"] == [
            "hello after the restart"
        ]
        assert [e["nick"] for e in alice.events if e["event"] == "connected"] == ["bob", "carol"]
    finally:
        for member in members:
            member.stop()


def test_a_squatter_cannot_take_a_room_code_after_a_restart(relay: RelayProcess) -> None:
    context: zmq.Context[Any] = zmq.Context()
    owner = WireClient(context, relay.endpoint)
    created = owner.request(type="create_room", nick="alice")
    other = owner.request(type="create_room", nick="alice")
    code, token = created["code"], created["token"]
    restart(relay)
    squatter = WireClient(context, relay.endpoint)
    try:
        for fake in ("A" * 38, other["token"]):  # made up, or genuine for another room
            refused = squatter.request(type="reclaim_room", code=code, nick="eve", token=fake)
            assert refused["type"] == "error" and refused["code"] == "bad_token"
        assert squatter.request(type="lookup_room", code=code)["code"] == "room_not_found"
        # the owner's token still works, and the squatter cannot then join without the secret
        # words, which the relay never had; here it can only register a nick like anyone
        owner_again = WireClient(context, relay.endpoint)
        back = owner_again.request(type="reclaim_room", code=code, nick="alice", token=token)
        assert back["type"] == "peer_registered"
        owner_again.close()
    finally:
        owner.close()
        squatter.close()
        context.destroy(linger=0)
