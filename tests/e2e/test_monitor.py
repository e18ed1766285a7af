"""`sandpiper monitor` and `sandpiper keygen` against real relays: filters, keys, refusals."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import zmq

from tests.helpers import Member, RelayProcess, WireClient, create_room, sandpiper_command


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*sandpiper_command(), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def keygen(directory: Path, name: str) -> tuple[str, Path]:
    made = run("keygen", name, "--dir", str(directory))
    assert made.returncode == 0, made.stderr
    public = made.stdout.split("public key: ")[1].split()[0]
    secret = directory / f"{name}.key_secret"
    assert secret.stat().st_mode & 0o077 == 0  # the secret file is private
    assert public in (directory / f"{name}.key").read_text()
    return public, secret


def monitor(relay: RelayProcess, *args: str) -> Member:
    address = relay.endpoint.removeprefix("tcp://")
    command = [*sandpiper_command(), "monitor", *args, "--json", "--relay", address]
    return Member(None, command=command)


def test_room_events_need_an_allow_listed_key_and_the_pinned_relay_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    allowed_public, allowed_secret = keygen(keys, "allowed")
    _, stranger_secret = keygen(keys, "stranger")
    relay_public, relay_secret = keygen(keys, "relay")
    again = run("keygen", "allowed", "--dir", str(keys))
    assert again.returncode == 1 and "exists already" in again.stderr  # never overwritten
    relay = RelayProcess(
        tmp_path,
        "--state-dir",
        str(tmp_path / "state"),
        "--key",
        str(relay_secret),
        "--allow-monitor",
        allowed_public,
    ).start()
    watchers: list[Member] = []
    try:
        trusted = monitor(relay, "--key", str(allowed_secret), "--relay-key", relay_public)
        watchers.append(trusted)
        trusted.event("connected")
        alice, invite = create_room(relay)
        watchers.append(alice)
        code = invite.rsplit("-", 2)[0]
        trusted.event("peer_joined", code=code, nick="alice")

        refused = run(
            "monitor", "--json", "--relay", relay.endpoint[6:], "--key", str(stranger_secret)
        )
        assert refused.returncode == 1
        assert (
            "refused this monitor's key" in json.loads(refused.stdout.splitlines()[-1])["message"]
        )

        no_key = run(
            "monitor", "--json", "--relay", relay.endpoint[6:], "--key", str(tmp_path / "none")
        )
        assert no_key.returncode == 1 and "sandpiper keygen" in no_key.stdout

        wrong_pin = run(
            "monitor",
            "--relay",
            relay.endpoint[6:],
            "--key",
            str(allowed_secret),
            "--relay-key",
            allowed_public,
        )
        assert wrong_pin.returncode == 1 and "--relay-key" in wrong_pin.stderr

        # a plain subscriber (no CurveZMQ) gets nothing at all
        context: zmq.Context[Any] = zmq.Context()
        plain = context.socket(zmq.SUB)
        plain.setsockopt(zmq.SUBSCRIBE, b"")
        plain.connect(relay.pub_endpoint)
        client = WireClient(context, relay.endpoint)
        client.request(type="create_room")
        assert not plain.poll(1500)
        trusted.event("room_created")  # while the allow-listed monitor sees it
        client.close()
        plain.close(linger=0)
        context.destroy(linger=0)
        assert "refused a monitor whose key is not allow-listed" in relay.log()
    finally:
        for watcher in watchers:
            watcher.stop()
        relay.stop()


def test_a_monitor_of_some_rooms_sees_only_them_and_their_members_so_far(tmp_path: Path) -> None:
    relay = RelayProcess(tmp_path, "--state-dir", str(tmp_path / "state")).start()
    people: list[Member] = []
    try:
        alice, invite = create_room(relay)
        people.append(alice)
        code = invite.rsplit("-", 2)[0]
        watcher = monitor(relay, invite)  # a whole invite works too: only the code is used
        people.append(watcher)
        assert watcher.event("room", code=code)["members"] == ["alice"]
        carol, _ = create_room(relay, "carol")  # another room: not shown
        people.append(carol)
        bob = Member(relay, "join", invite, "--nick", "bob")
        people.append(bob)
        joined = watcher.event("peer_joined", code=code, nick="bob")
        assert joined["room_seq"] == 3 and "host" not in joined and "port" not in joined
        assert all(e.get("code") in (None, code) for e in watcher.events)
        unknown = run(
            "monitor", "--json", "--relay", relay.endpoint[6:], "--duration", "1s", "nosuch-room-10"
        )
        assert unknown.returncode == 0
        assert json.loads(unknown.stdout.splitlines()[0])["event"] == "room_unknown"
        bad = run("monitor", "--relay", relay.endpoint[6:], "not a code")
        assert bad.returncode == 2
    finally:
        for person in people:
            person.stop()
        relay.stop()


def test_a_monitor_without_a_relay_says_so(tmp_path: Path) -> None:
    from tests.helpers import free_port

    port = free_port()
    result = run("monitor", "--relay", f"127.0.0.1:{port}", "--timeout", "0.5s")
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr and "--pub" in result.stderr
