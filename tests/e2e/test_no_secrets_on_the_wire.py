"""A recording of every byte on loopback while members chat: no secret, no message text."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Member, create_room, running_relay

ETH_P_ALL = 0x0003


class LoopbackRecorder:
    """Every frame on the loopback interface, raw, via an AF_PACKET socket (needs root)."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._socket.bind(("lo", 0))
        self._socket.settimeout(0.1)
        self._frames: list[bytes] = []
        self._running = True
        self._thread = threading.Thread(target=self._record, daemon=True)
        self._thread.start()

    def _record(self) -> None:
        while self._running:
            try:
                self._frames.append(self._socket.recv(65_535))
            except TimeoutError:
                continue

    def stop(self) -> bytes:
        self._running = False
        self._thread.join(timeout=5)
        self._socket.close()
        return b"".join(self._frames)


@pytest.fixture
def recorder() -> Iterator[LoopbackRecorder]:
    if os.geteuid() != 0 or not hasattr(socket, "AF_PACKET"):
        if os.environ.get("CI"):
            pytest.fail("CI runs as root on Linux: the capture test must run there")
        pytest.skip("capturing loopback traffic needs root on Linux")
    capture = LoopbackRecorder()
    yield capture
    capture.stop()


def test_neither_secret_words_nor_password_nor_text_cross_a_socket_in_the_clear(
    tmp_path: Path, recorder: LoopbackRecorder
) -> None:
    password = "correct horse battery staple"
    env = {"SANDPIPER_PASSWORD": password}
    texts = ["the eagle lands at midnight", "bring the blue folder"]
    members: list[Member] = []
    with running_relay(tmp_path) as relay:
        try:
            alice, invite = create_room(relay, env=env)
            members.append(alice)
            bob = Member(relay, "join", invite, "--nick", "bob", env=env)
            members.append(bob)
            bob.event("connected", nick="alice")
            alice.say(texts[0])
            bob.say(texts[1])
            bob.event("message", text=texts[0])
            alice.event("message", text=texts[1])
            bob.end_input()
            assert bob.wait() == 0
        finally:
            for member in members:
                member.stop()
    captured = recorder.stop()
    room, secret = "-".join(invite.split("-")[:3]), "-".join(invite.split("-")[3:])
    assert room.encode() in captured, "the recorder must see the relay traffic"
    assert b"alice" in captured
    for forbidden in [secret, password, *texts]:
        assert forbidden.encode() not in captured, f"{forbidden!r} crossed a socket in the clear"
