"""The interactive terminal (prompt_toolkit + rich) driven through a real pseudo-terminal."""

from __future__ import annotations

import os
import pty
import re
import select
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import RelayProcess, create_room, running_relay, sandpiper_command

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    def __init__(self, *args: str) -> None:
        command = sandpiper_command()
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become sandpiper on the pty
            os.environ.update({"TERM": "xterm", "COLUMNS": "100", "LINES": "40"})
            os.execv(command[0], [*command, *args])
        self.output = b""

    def read_until(self, pattern: bytes | re.Pattern[bytes], timeout: float = 15.0) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = ANSI.sub(b"", self.output)
            if pattern.search(screen) if isinstance(pattern, re.Pattern) else pattern in screen:
                return self.output
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    self.output += os.read(self.fd, 65_536)
                except OSError:
                    break
        screen = ANSI.sub(b"", self.output)[-3000:]
        raise AssertionError(f"{pattern!r} not on screen:\n{screen!r}")

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def wait(self, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        screen = ANSI.sub(b"", self.output)[-2000:]
        raise AssertionError(f"terminal session did not exit:\n{screen!r}")

    def kill(self) -> None:
        try:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayProcess]:
    with running_relay(tmp_path) as process:
        yield process


def test_create_shows_the_invite_and_the_command_to_run(relay: RelayProcess) -> None:
    address = relay.endpoint.removeprefix("tcp://")
    terminal = Terminal("create", "--nick", "alice", "--relay", address)
    try:
        screen = ANSI.sub(b"", terminal.read_until(b"sandpiper join ")).decode()
        invite = re.search(r"Invite: (\S+)", screen)
        assert invite is not None
        assert f"sandpiper join {invite.group(1)}" in screen
        terminal.read_until(b"alice>")  # typed before the prompt runs, keys could be dropped
        terminal.type("/quit\r")
        assert terminal.wait() == 0
    finally:
        terminal.kill()


def test_join_by_typing_the_invite_then_chat_safely_and_leave_with_ctrl_d(
    relay: RelayProcess,
) -> None:
    alice, invite = create_room(relay)
    address = relay.endpoint.removeprefix("tcp://")
    terminal = Terminal("join", "--nick", "bob", "--relay", address, "--listen-host", "127.0.0.1")
    try:
        # getpass writes the space after "Invite:" once echo is off; it flushes what came before
        terminal.read_until(b"Invite: ")
        terminal.type(invite + "\r")  # typed at a hidden prompt, never in argv
        terminal.read_until(b"alice connected")
        alice.say("hi bob \x1b]0;owned\x07\x1b[31mred")
        screen = terminal.read_until(b"hi bob")
        assert b"\x1b]0;owned" not in screen and b"\x1b[31mred" not in screen
        terminal.type("hello from a terminal\r")
        assert alice.event("message", text="hello from a terminal")["from"] == "bob"
        terminal.read_until(b"bob: hello from a terminal")  # kept on screen as sent
        terminal.type("/peers\r")
        terminal.read_until(re.compile(rb"round trip.*bob>", re.DOTALL))  # prompt back: read
        terminal.type("\x04")  # Ctrl-D
        assert terminal.wait() == 0
        assert alice.event("peer_left", nick="bob")
    finally:
        terminal.kill()
        alice.stop()


def test_the_monitor_draws_a_live_view_of_rooms_and_members(relay: RelayProcess) -> None:
    import zmq

    from tests.helpers import WireClient

    address = relay.endpoint.removeprefix("tcp://")
    terminal = Terminal("monitor", "--relay", address)
    context: zmq.Context[bytes] = zmq.Context()
    client, other = WireClient(context, relay.endpoint), WireClient(context, relay.endpoint)
    try:
        terminal.read_until(b"watching every room")
        code = client.request(type="create_room", nick="alice")["code"]
        other.request(type="register_peer", code=code, nick="bob")
        screen = ANSI.sub(b"", terminal.read_until(b"peer joined bob"))
        assert code.encode() in screen and b"bob" in screen
        os.kill(terminal.pid, 2)  # Ctrl-C
        assert terminal.wait() == 0
    finally:
        client.close()
        other.close()
        context.destroy(linger=0)
        terminal.kill()
