"""Hostile and broken input against the real relay: errors, never a crash, bounded memory."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from tests.helpers import WireClient, rss_mib, running_relay

MALFORMED: list[tuple[str, list[bytes], str]] = [
    ("not utf-8", [b"\xc3\x28\xff"], "bad_encoding"),
    ("not json", [b"{type: create_room}"], "bad_json"),
    ("truncated json", [b'{"type": "create_room"'], "bad_json"),
    ("deeply nested", [b'{"type": ' + b"[" * 5000 + b"]" * 5000 + b"}"], "bad_json"),
    ("json array", [b'["create_room"]'], "bad_request"),
    ("json string", [b'"create_room"'], "bad_request"),
    ("json null", [b"null"], "bad_request"),
    ("empty frame", [b""], "bad_json"),
    ("no type", [b'{"code": "pine-ocean-42"}'], "bad_request"),
    ("unknown type", [b'{"type": "drop_tables"}'], "unknown_type"),
    (
        "reply type sent as request",
        [b'{"type": "room_created", "code": "pine-ocean-42"}'],
        "unknown_type",
    ),
    ("extra field", [b'{"type": "heartbeat", "admin": true}'], "bad_request"),
    ("wrong field type", [b'{"type": "lookup_room", "code": 42}'], "bad_request"),
    ("bad code format", [b'{"type": "lookup_room", "code": "../../etc/passwd"}'], "bad_request"),
    ("long nick", [json.dumps({"type": "create_room", "nick": "n" * 33}).encode()], "bad_request"),
    (
        "escape in nick",
        [json.dumps({"type": "create_room", "nick": "\u001b]0;pwned\u0007"}).encode()],
        "bad_request",
    ),
    ("port out of range", [b'{"type": "create_room", "listen_port": 70000}'], "bad_request"),
    (
        "oversize payload",
        [
            json.dumps(
                {"type": "signal", "code": "pine-ocean-42", "to": "bob", "payload": "A" * 5000}
            ).encode()
        ],
        "bad_request",
    ),
    ("two frames", [b'{"type": "heartbeat"}', b'{"type": "heartbeat"}'], "multipart"),
    ("three frames", [b"", b"", b'{"type": "heartbeat"}'], "multipart"),
]


@pytest.mark.parametrize(("name", "frames", "code"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_frame_gets_a_stable_error_code(
    name: str, frames: list[bytes], code: str, tmp_path: Path, zmq_context: Any
) -> None:
    with running_relay(tmp_path) as relay:
        attacker = WireClient(zmq_context, relay.endpoint)
        attacker.send_frames(frames)
        error = attacker.expect(lambda m: True)
        assert error["type"] == "error" and error["code"] == code and error["message"]


def test_every_kind_of_bad_frame_then_normal_clients_are_still_served(
    tmp_path: Path, zmq_context: Any
) -> None:
    with running_relay(tmp_path) as relay:
        bystander = WireClient(zmq_context, relay.endpoint)
        code = bystander.request(type="create_room", nick="alice")["code"]
        attacker = WireClient(zmq_context, relay.endpoint)
        for _, frames, _ in MALFORMED:
            attacker.send_frames(frames)
        errors = [attacker.expect(lambda m: True) for _ in MALFORMED]
        assert [e["code"] for e in errors] == [code for _, _, code in MALFORMED]

        # An oversized frame is dropped by libzmq together with the connection that sent it.
        big = WireClient(zmq_context, relay.endpoint)
        big.request(type="heartbeat")
        big.send_frames([b'{"type": "heartbeat", "req_id": "' + b"x" * 70_000 + b'"}'])
        with pytest.raises(AssertionError):
            big.expect(lambda m: True, timeout=0.5)

        assert relay.process is not None and relay.process.poll() is None
        info = bystander.request(type="lookup_room", code=code)
        assert [p["nick"] for p in info["peers"]] == ["alice"]
        newcomer = WireClient(zmq_context, relay.endpoint)
        assert newcomer.request(type="register_peer", code=code, nick="bob")["success"] is True
        assert attacker.request(type="heartbeat")["type"] == "heartbeat_ack"
        assert "Traceback" not in relay.log()


def test_pushes_to_a_member_that_never_reads_do_not_pile_up(
    tmp_path: Path, zmq_context: Any
) -> None:
    options = ("--signal-burst", "100000", "--signal-per-second", "100000")
    with running_relay(tmp_path, *options) as relay:
        sleeper = WireClient(zmq_context, relay.endpoint)
        sleeper.socket.setsockopt(zmq.RCVHWM, 10)
        code = sleeper.request(type="create_room", nick="sleeper")["code"]
        sender = WireClient(zmq_context, relay.endpoint)
        sender.request(type="register_peer", code=code, nick="sender")
        baseline = rss_mib(relay)
        payload = "A" * 4096
        deadline = time.monotonic() + 60
        sent = 0
        while sent < 30_000 and time.monotonic() < deadline:  # ~120 MiB of pushes if queued
            sender.send(type="signal", code=code, to="sleeper", payload=payload)
            sent += 1
            while sender.socket.poll(0):
                sender.socket.recv()
        assert sent == 30_000
        sender.request(type="heartbeat", timeout=30)  # the relay has worked through the flood
        grown = rss_mib(relay) - baseline
        assert grown < 40, f"relay grew by {grown:.1f} MiB while a member did not read"
        assert sender.request(type="lookup_room", code=code)["type"] == "room_info"


def test_a_client_chosen_routing_id_is_refused(tmp_path: Path, zmq_context: Any) -> None:
    with running_relay(tmp_path) as relay:
        member = WireClient(zmq_context, relay.endpoint)
        code = member.request(type="create_room", nick="alice")["code"]
        impostor = zmq_context.socket(zmq.DEALER)
        impostor.setsockopt(zmq.ROUTING_ID, b"alice-conn")
        impostor.setsockopt(zmq.LINGER, 0)
        impostor.connect(relay.endpoint)
        impostor.send(json.dumps({"type": "register_peer", "code": code, "nick": "eve"}).encode())
        assert impostor.poll(5000)
        error = json.loads(impostor.recv())
        assert (error["type"], error["code"]) == ("error", "bad_request")
        assert "routing id" in error["message"]
        info = member.request(type="lookup_room", code=code)
        assert [peer["nick"] for peer in info["peers"]] == ["alice"]
        impostor.close()
