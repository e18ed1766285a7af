"""The real relay process, spoken to over its raw wire protocol from plain pyzmq sockets."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from tests.helpers import (
    EventWatcher,
    RelayProcess,
    WireClient,
    free_port,
    running_relay,
    wait_for,
)

GENEROUS = ("--create-burst", "500", "--max-rooms-per-source", "500")


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayProcess]:
    with running_relay(tmp_path, *GENEROUS) as process:
        yield process


@pytest.fixture
def client_factory(zmq_context: zmq.Context[Any], relay: RelayProcess) -> Iterator[Any]:
    clients: list[WireClient] = []

    def make(**options: Any) -> WireClient:
        client = WireClient(zmq_context, relay.endpoint, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_create_register_lookup_round_trip(client_factory: Any) -> None:
    alice, bob = client_factory(), client_factory()
    created = alice.request(type="create_room", nick="alice", listen_port=6001)
    assert created["type"] == "room_created"
    assert created["expires_at"] == pytest.approx(time.time() + 24 * 3600, abs=30)
    code = created["code"]
    registered = bob.request(
        type="register_peer", code=code, nick="bob", host="10.1.2.3", port=6002
    )
    assert registered["type"] == "peer_registered" and registered["success"] is True
    info = alice.request(type="lookup_room", code=code, nick="alice")
    assert info["peers"] == [
        {"nick": "alice", "port": 6001},
        {"nick": "bob", "host": "10.1.2.3", "port": 6002},
    ]


def test_relay_reports_the_address_and_port_it_observed(client_factory: Any) -> None:
    source_port = free_port()
    client = client_factory(source_port=source_port)
    created = client.request(type="create_room")
    assert (created["observed_host"], created["observed_port"]) == ("127.0.0.1", source_port)
    observed = client.request(type="observe_address")  # netcheck's question: no room needed
    assert (observed["type"], observed["host"], observed["port"]) == (
        "observed_address",
        "127.0.0.1",
        source_port,
    )


def test_join_and_leave_are_pushed_to_members_and_published_without_addresses(
    zmq_context: zmq.Context[Any], relay: RelayProcess, client_factory: Any
) -> None:
    watcher = EventWatcher(zmq_context, relay.pub_endpoint)
    try:
        alice, bob = client_factory(), client_factory()
        watcher.synchronise(alice)
        code = alice.request(type="create_room", nick="alice")["code"]
        assert watcher.next()[1]["type"] == "room_created"
        topic, joined = watcher.next()
        assert (topic, joined["type"], joined["nick"]) == (code, "peer_joined", "alice")

        bob.request(type="register_peer", code=code, nick="bob", host="10.9.9.9", port=7777)
        pushed = alice.push("peer_joined")
        assert pushed["peer"] == {"nick": "bob", "host": "10.9.9.9", "port": 7777}
        topic, event = watcher.next()
        assert (topic, event["type"], event["nick"]) == (code, "peer_joined", "bob")
        assert not {"host", "port", "peer"} & set(event)

        assert bob.request(type="leave_room", code=code)["type"] == "room_left"
        assert alice.push("peer_left") == {
            "type": "peer_left",
            "code": code,
            "nick": "bob",
            "reason": "left",
        }
        topic, event = watcher.next()
        assert (topic, event["type"], event["reason"]) == (code, "peer_left", "left")
        assert event["seq"] == joined["seq"] + 2
        assert event["room_seq"] == joined["room_seq"] + 2
        topic, beat = watcher.next(timeout=5, beats=True)  # the relay's beat, every 2 s
        assert (topic, beat["type"], beat["relay"]) == ("!relay", "relay_alive", event["relay"])
        assert beat["seq"] >= event["seq"]
    finally:
        watcher.close()


def test_signal_and_coordination_reach_only_the_named_member(client_factory: Any) -> None:
    alice, bob, carol = client_factory(), client_factory(), client_factory()
    code = alice.request(type="create_room", nick="alice")["code"]
    bob.request(type="register_peer", code=code, nick="bob")
    carol.request(type="register_peer", code=code, nick="carol")
    sent = bob.request(type="signal", code=code, to="alice", payload="c3Bha2UyLW1zZw==")
    assert sent["type"] == "signal_sent"
    assert alice.push("signal") == {
        "type": "signal",
        "code": code,
        "from": "bob",
        "payload": "c3Bha2UyLW1zZw==",
    }
    before = time.time()
    reply = alice.request(type="coordinate_connection", code=code, peers=["alice", "bob"])
    pushed = bob.push("coordinate_connection")
    assert reply["timestamp"] == pushed["timestamp"] and reply["timestamp"] > before
    with pytest.raises(AssertionError):
        carol.push("signal", timeout=0.3)


def test_silent_member_is_reported_gone_after_the_heartbeat_timeout(
    tmp_path: Path, zmq_context: Any
) -> None:
    with running_relay(tmp_path, "--member-timeout", "1s") as relay:
        alice = WireClient(zmq_context, relay.endpoint)
        bob = WireClient(zmq_context, relay.endpoint)
        code = alice.request(type="create_room", nick="alice")["code"]
        bob.request(type="register_peer", code=code, nick="bob")
        started = time.monotonic()
        left = None
        while left is None and time.monotonic() - started < 5:
            alice.request(type="heartbeat")  # alice stays alive; bob says nothing
            try:
                left = alice.push("peer_left", timeout=0.2)
            except AssertionError:
                continue
        assert left == {"type": "peer_left", "code": code, "nick": "bob", "reason": "timeout"}
        assert 0.9 < time.monotonic() - started < 3.0
        # so short a timeout would churn real members, whose heartbeats are 5 s apart: warned
        assert "members will be timed out and come back over and over" in relay.log()
        info = alice.request(type="lookup_room", code=code)
        assert [peer["nick"] for peer in info["peers"]] == ["alice"]


def test_expired_room_notifies_its_members(tmp_path: Path, zmq_context: Any) -> None:
    with running_relay(tmp_path, "--room-ttl", "1s") as relay:
        alice = WireClient(zmq_context, relay.endpoint)
        code = alice.request(type="create_room", nick="alice")["code"]
        assert alice.push("room_expired", timeout=5) == {"type": "room_expired", "code": code}
        assert alice.request(type="lookup_room", code=code)["code"] == "room_not_found"
        assert f"room {code}: room_expired" in relay.log()


def test_unknown_code_lookups_are_rate_limited_per_source(client_factory: Any) -> None:
    guesser = client_factory()
    answers = [
        guesser.request(type="lookup_room", code=f"calm-river-{n}")["code"] for n in range(10, 17)
    ]
    assert answers[:5] == ["room_not_found"] * 5
    assert answers[5:] == ["rate_limited"] * 2


def test_log_has_one_line_per_room_event_and_never_a_payload(
    relay: RelayProcess, client_factory: Any
) -> None:
    alice, bob = client_factory(), client_factory()
    code = alice.request(type="create_room", nick="alice")["code"]
    bob.request(type="register_peer", code=code, nick="bob")
    bob.request(type="signal", code=code, to="alice", payload="VG9wU2VjcmV0UGF5bG9hZA==")
    bob.request(type="leave_room", code=code)

    def room_lines() -> list[str]:
        return [line for line in relay.log().splitlines() if f"room {code}:" in line]

    # The relay answers first and logs after: the last line may trail the reply a little.
    lines = wait_for(lambda: len(room_lines()) >= 4 and room_lines())
    assert [line.split(f"room {code}: ")[1] for line in lines] == [
        "room_created",
        "peer_joined alice",
        "peer_joined bob",
        "peer_left bob (left)",
    ]
    assert "VG9wU2VjcmV0UGF5bG9hZA" not in relay.log()


def test_sigterm_stops_the_relay_cleanly(tmp_path: Path) -> None:
    relay = RelayProcess(tmp_path).start()
    assert relay.stop() == 0
    assert "relay stopping" in relay.log()


def test_the_relay_advertises_its_fallback_server(tmp_path: Path, zmq_context: Any) -> None:
    with running_relay(tmp_path, "--fallback", "fallback.example.net:5000") as relay:
        client = WireClient(zmq_context, relay.endpoint)
        created = client.request(type="create_room")
        assert created["fallback"] == "fallback.example.net:5000"
        joiner = WireClient(zmq_context, relay.endpoint)
        registered = joiner.request(type="register_peer", code=created["code"], nick="bob")
        assert registered["fallback"] == "fallback.example.net:5000"
