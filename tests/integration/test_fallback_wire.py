"""The real fallback server process over its raw wire protocol, from plain pyzmq DEALERs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.helpers import WireClient, running_fallback

ROOM = "c" * 64
A, B = "a" * 32, "b" * 32


def test_two_members_forward_sealed_records_both_ways(tmp_path: Path, zmq_context: Any) -> None:
    with running_fallback(tmp_path) as server:
        alice = WireClient(zmq_context, server.endpoint)
        bob = WireClient(zmq_context, server.endpoint)
        assert alice.request(type="attach", room=ROOM, member=A)["members"] == []
        assert bob.request(type="attach", room=ROOM, member=B)["members"] == [A]
        assert alice.push("member_attached") == {"type": "member_attached", "member": B}
        alice.send(type="send", to=B, payload="c2VhbGVkIGJ5IGFsaWNl")
        assert bob.push("deliver") == {
            "type": "deliver",
            "from": A,
            "payload": "c2VhbGVkIGJ5IGFsaWNl",
        }
        assert bob.request(type="send", payload="YmFjaw==")["delivered"] == 1
        assert alice.push("deliver")["payload"] == "YmFjaw=="
        bob.request(type="detach")
        assert alice.push("member_detached")["reason"] == "detached"


def test_bad_frames_then_a_normal_member_is_served(tmp_path: Path, zmq_context: Any) -> None:
    with running_fallback(tmp_path) as server:
        attacker = WireClient(zmq_context, server.endpoint)
        for frames in (
            [b"\xff"],
            [b"nope"],
            [b"[1]"],
            [b'{"type":"x"}'],
            [b"{}", b"{}"],
            [json.dumps({"type": "send", "payload": "A" * 9000}).encode()],
        ):
            attacker.send_frames(frames)
            assert attacker.expect(lambda m: True)["type"] == "error"
        big = WireClient(zmq_context, server.endpoint)
        big.send_frames([b"x" * 20_000])  # over the socket's size limit: dropped with the link
        member = WireClient(zmq_context, server.endpoint)
        assert member.request(type="attach", room=ROOM, member=A)["type"] == "attached"
        assert server.process is not None and server.process.poll() is None
        assert "Traceback" not in server.log()


def test_a_silent_member_is_detached_after_the_timeout(tmp_path: Path, zmq_context: Any) -> None:
    with running_fallback(tmp_path, "--member-timeout", "1s") as server:
        alice = WireClient(zmq_context, server.endpoint)
        bob = WireClient(zmq_context, server.endpoint)
        alice.request(type="attach", room=ROOM, member=A)
        bob.request(type="attach", room=ROOM, member=B)
        started = time.monotonic()
        detached = None
        while detached is None and time.monotonic() - started < 5:
            alice.request(type="heartbeat")
            try:
                detached = alice.push("member_detached", timeout=0.2)
            except AssertionError:
                continue
        assert detached == {"type": "member_detached", "member": B, "reason": "timeout"}


def test_python_dash_m_fallback_runs_the_server() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fallback", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0 and "--member-timeout" in result.stdout
