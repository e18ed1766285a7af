"""Faults, with real processes: a member frozen (SIGSTOP) and resumed, a member that stalls in
the middle of its key exchange, a connection that stalls in the ZMTP greeting, and clients
that never read. Each asserts what users see and that no message is lost or shown twice.

(A member killed with SIGKILL is in test_peer_chat.py, relay and fallback server restarts in
test_relay_restart.py and test_fallback_chat.py.)
"""

from __future__ import annotations

import base64
import contextlib
import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from tests.helpers import (
    FallbackProcess,
    Member,
    RelayProcess,
    WireClient,
    create_room,
    rss_mib,
    running_relay,
    wait_for,
)


@pytest.fixture
def relay(tmp_path: Path, fallback: FallbackProcess) -> Iterator[RelayProcess]:
    address = fallback.endpoint.removeprefix("tcp://")
    # A short member timeout (members heartbeat every 5 s), so a frozen member is reported
    # gone within the test.
    with running_relay(tmp_path, "--fallback", address, "--member-timeout", "7s") as process:
        yield process


def room_of_three(relay: RelayProcess, members: list[Member]) -> tuple[Member, Member, Member]:
    alice, invite = create_room(relay)
    bob = Member(relay, "join", invite, "--nick", "bob")
    carol = Member(relay, "join", invite, "--nick", "carol")
    members += [alice, bob, carol]
    for member, others in ((alice, "bob carol"), (bob, "alice carol"), (carol, "alice bob")):
        for other in others.split():
            member.event("connected", nick=other, timeout=20)
    return alice, bob, carol


def texts_from(member: Member, sender: str) -> list[str]:
    return [e["text"] for e in member.events if e["event"] == "message" and e["from"] == sender]


def drain(member: Member, seconds: float) -> None:
    """Read what `member` printed for `seconds` (events land in `member.events`)."""
    with contextlib.suppress(AssertionError):
        member.wait_event(lambda _: False, timeout=seconds)


@pytest.mark.parametrize("frozen", [1.5, 12.0], ids=["briefly", "past-every-timeout"])
def test_a_frozen_member_resumes_and_nothing_is_lost_or_doubled(
    relay: RelayProcess, members: list[Member], frozen: float
) -> None:
    alice, bob, carol = room_of_three(relay, members)
    typed: dict[str, list[str]] = {"alice": [], "carol": []}
    bob.process.send_signal(signal.SIGSTOP)
    try:
        # Typed in the first 1.5 s, before anyone could give bob up: all of it is for him.
        for index in range(6):
            for nick, member in (("alice", alice), ("carol", carol)):
                typed[nick].append(f"{nick} {index} while bob is frozen")
                member.say(typed[nick][-1])
            time.sleep(0.25)
        time.sleep(max(0.0, frozen - 1.5))
    finally:
        bob.process.send_signal(signal.SIGCONT)
    bob.say("bob is back")
    for member in (alice, carol):
        member.event("message", text="bob is back", timeout=40)
    alice.say("welcome back")
    bob.event("message", text="welcome back", timeout=20)
    drain(bob, 1.0)
    for member in (alice, carol):
        drain(member, 0.5)
        assert texts_from(member, "bob") == ["bob is back"]  # once
    for nick in ("alice", "carol"):
        expected = typed[nick] + (["welcome back"] if nick == "alice" else [])
        assert texts_from(bob, nick) == expected  # all of it, in order, once
    if frozen < 5:  # within every timeout: nobody noticed more than a path change
        for member in (alice, carol):
            assert not [e for e in member.events if e["event"] == "peer_left"]
    else:  # past the relay's member timeout: told bob left, then that he is back
        for member in (alice, carol):
            kinds = [e["event"] for e in member.events if e.get("nick") == "bob"]
            left = kinds.index("peer_left")
            assert "connected" in kinds[left:], kinds
        assert [e for e in bob.events if e["event"] == "rejoined"]
    assert all(member.process.poll() is None for member in (alice, bob, carol))


def test_a_member_stalled_mid_key_exchange_holds_up_nobody(
    relay: RelayProcess, members: list[Member], zmq_context: zmq.Context[Any]
) -> None:
    alice, invite = create_room(relay)
    code = "-".join(invite.split("-")[:3])
    zed = WireClient(zmq_context, relay.endpoint)  # registers, then never answers a PAKE
    assert zed.request(type="register_peer", code=code, nick="zed")["type"] == "peer_registered"
    first = signal_body(zed.push("signal", timeout=10))
    assert first["kind"] == "pake"  # alice (the lower nick) starts the exchange
    bob = Member(relay, "join", invite, "--nick", "bob")
    members += [alice, bob]
    bob.event("connected", nick="alice", timeout=20)
    alice.say("zed is stuck; we are not")
    assert bob.event("message", text="zed is stuck; we are not")["from"] == "alice"
    alice.say("/peers")
    peers = {p["nick"]: p for p in alice.event("peers")["peers"]}
    assert peers["zed"]["state"] == "keying" and peers["bob"]["state"] == "connected"
    # The stalled exchange is started again after the handshake timeout (10 s): a new one.
    again = signal_body(zed.expect(lambda m: m.get("type") == "signal", timeout=20))
    assert again["kind"] == "pake" and again["sid"] != first["sid"]
    zed.close()
    bob.say("still fine")
    assert alice.event("message", text="still fine")["from"] == "bob"


def signal_body(push: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(base64.urlsafe_b64decode(push["payload"]))
    return body


def test_connections_stalled_in_the_greeting_are_closed(
    relay: RelayProcess, fallback: FallbackProcess, members: list[Member]
) -> None:
    """Half a ZMTP greeting, then silence: relay and fallback server close such connections
    after their 5 s handshake limit, and serve everyone else meanwhile."""
    targets = [relay.endpoint, fallback.endpoint]
    stalled = []
    for endpoint in targets:
        host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
        for _ in range(50):
            connection = socket.create_connection((host, int(port)), timeout=5)
            connection.sendall(b"\xff\x00\x00\x00\x00\x00\x00\x00\x01")  # 9 of 64 bytes
            stalled.append(connection)
    alice, invite = create_room(relay, "alice", "--transport", "fallback")
    bob = Member(relay, "join", invite, "--nick", "bob", "--transport", "fallback")
    members += [alice, bob]
    bob.event("connected", nick="alice", timeout=20)
    alice.say("through a crowd of stalled connections")
    bob.event("message", text="through a crowd of stalled connections")

    def closed(connection: socket.socket) -> bool:
        connection.settimeout(0.05)
        try:
            data = connection.recv(4096)
        except TimeoutError:
            return False
        except OSError:
            return True
        return data == b"" or (closed(connection) if data else True)

    try:
        wait_for(lambda: all(closed(c) for c in stalled), timeout=20, interval=0.5)
    finally:
        for connection in stalled:
            connection.close()


def test_clients_that_never_read_are_bounded_and_hurt_nobody(
    relay: RelayProcess, fallback: FallbackProcess, zmq_context: zmq.Context[Any]
) -> None:
    """A relay member and a fallback member that never read while others flood them: the
    servers drop what does not fit their bounded queues, memory stays flat, others are
    served at once."""
    code = WireClient(zmq_context, relay.endpoint).request(type="create_room", nick="host")["code"]
    sink = WireClient(zmq_context, relay.endpoint)
    sink.socket.setsockopt(zmq.RCVHWM, 10)
    sink.request(type="register_peer", code=code, nick="sink")
    senders = [WireClient(zmq_context, relay.endpoint) for _ in range(8)]
    for index, sender in enumerate(senders):
        sender.request(type="register_peer", code=code, nick=f"flood{index}")
    _fallback_client(zmq_context, fallback, SINK, rcvhwm=10)  # attached; never reads
    talkers = [_fallback_client(zmq_context, fallback, f"{i:032x}") for i in range(4)]
    relay_before = rss_mib(relay)
    fallback_before = rss_mib(fallback)
    payload = base64.urlsafe_b64encode(b"x" * 2000).decode()
    for _ in range(3):  # each round: a burst the per-connection signal limit lets through
        for sender in senders:
            for _ in range(150):
                sender.send(type="signal", code=code, to="sink", payload=payload)
        for talker in talkers:
            for _ in range(2000):
                talker.send(json.dumps({"type": "send", "to": SINK, "payload": payload}).encode())
        other = WireClient(zmq_context, relay.endpoint)
        started = time.monotonic()
        assert other.request(type="lookup_room", code=code)["type"] == "room_info"
        answered = time.monotonic() - started
        other.close()
        assert answered < 2.0, f"relay took {answered:.2f}s to answer while flooded"
        hello = {"type": "send", "to": f"{1:032x}", "payload": "aGk="}
        talkers[0].send(json.dumps(hello).encode())
        assert _fallback_receive(talkers[1], "aGk=")
    grown_relay = rss_mib(relay) - relay_before
    grown_fallback = rss_mib(fallback) - fallback_before
    # Measured: a few MiB (libzmq's bounded queues); unbounded queueing of ~100 MB would show.
    assert grown_relay < 48, f"relay grew {grown_relay:.1f} MiB"
    assert grown_fallback < 48, f"fallback grew {grown_fallback:.1f} MiB"
    assert relay.process is not None and relay.process.poll() is None


SINK = "5" * 32


def _fallback_client(
    context: zmq.Context[Any], fallback: FallbackProcess, member: str, rcvhwm: int = 1000
) -> zmq.Socket[Any]:
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.RCVHWM, rcvhwm)
    dealer.connect(fallback.endpoint)
    room = "ab" * 32
    dealer.send(json.dumps({"type": "attach", "room": room, "member": member}).encode())
    if rcvhwm >= 1000:
        assert dealer.poll(5000)
        assert json.loads(dealer.recv())["type"] == "attached"
    return dealer


def _fallback_receive(dealer: zmq.Socket[Any], payload: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while dealer.poll(max(0.0, deadline - time.monotonic()) * 1000):
        message = json.loads(dealer.recv())
        if message.get("payload") == payload:
            return True
    return False
