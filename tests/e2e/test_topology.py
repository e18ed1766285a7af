"""`honcho start` on the real Procfile: relay, fallback server and monitor, then two people chat.

The Procfile takes its ports from the environment (defaults 8000, 8001, 5000), so the test
runs the very same file on free ports.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.helpers import ROOT, Member, free_port, sandpiper_command, wait_for


def test_honcho_starts_the_topology_and_a_monitor_sees_two_people_chat(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("RELAY", "RELAY_PUB", "FALLBACK")}
    env = {
        **os.environ,
        **{f"SANDPIPER_{name}_PORT": str(port) for name, port in ports.items()},
        "PATH": f"{Path(sandpiper_command()[0]).parent}{os.pathsep}{os.environ['PATH']}",
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    honcho = Path(sandpiper_command()[0]).with_name("honcho")
    log_path = tmp_path / "honcho.log"
    relay = f"127.0.0.1:{ports['RELAY']}"
    with log_path.open("wb") as log:
        topology = subprocess.Popen(
            [str(honcho), "start", "-f", str(ROOT / "Procfile"), "-d", str(ROOT)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    people: list[Member] = []
    try:
        watcher = Member(
            None,
            command=[
                *sandpiper_command(),
                "monitor",
                "--json",
                "--relay",
                relay,
                "--timeout",
                "30s",
            ],
        )
        people.append(watcher)
        watcher.event("subscribed", timeout=40)
        chat = ["--relay", relay, "--listen-host", "127.0.0.1", "--json"]
        alice = Member(None, command=[*sandpiper_command(), "create", "--nick", "alice", *chat])
        people.append(alice)
        created = alice.event("room_created")
        invite, code = created["code"], created["code"].rsplit("-", 2)[0]
        bob = Member(None, command=[*sandpiper_command(), "join", invite, "--nick", "bob", *chat])
        people.append(bob)
        bob.event("connected", nick="alice")
        alice.say("hi bob")
        assert bob.event("message", text="hi bob")["from"] == "alice"
        bob.say("hi alice")
        assert alice.event("message", text="hi alice")["from"] == "bob"
        bob.end_input()
        assert bob.wait() == 0
        alice.event("peer_left", nick="bob")
        alice.end_input()
        assert alice.wait() == 0
        seen = [
            (e["event"], e.get("nick"))
            for e in (
                watcher.event("room_created", code=code),
                watcher.event("peer_joined", code=code, nick="alice"),
                watcher.event("peer_joined", code=code, nick="bob"),
                watcher.event("peer_left", code=code, nick="bob"),
                watcher.event("peer_left", code=code, nick="alice"),
            )
        ]
        assert seen[-1] == ("peer_left", "alice")
        # the Procfile's own monitor logged the same, one line per event
        wait_for(lambda: f"{code}: peer left alice" in log_path.read_text(), timeout=10)
        assert topology.poll() is None, log_path.read_text()
    finally:
        for person in people:
            person.stop()
        topology.send_signal(signal.SIGTERM)
        try:
            topology.wait(timeout=15)
        except subprocess.TimeoutExpired:
            topology.kill()
            topology.wait(timeout=5)
    text = log_path.read_text()
    for name in ("relay.1", "fallback.1", "monitor.1"):
        assert name in text, text
    assert "relay listening on" in text and "fallback server listening on" in text
