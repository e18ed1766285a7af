"""The `sandpiper` command as a user runs it: subprocesses, real config files and env vars."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from schemas.relay import REQUEST_TYPES
from tests.helpers import RelayProcess, free_port, sandpiper_command


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*sandpiper_command(), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_schema_prints_one_json_schema_covering_every_message() -> None:
    result = run("schema")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["$schema"].endswith("2020-12/schema")
    types = set()
    for definition in document["$defs"].values():
        kind = definition.get("properties", {}).get("type", {})
        types.update([kind["const"]] if "const" in kind else kind.get("enum", []))
    spec_types = {
        "create_room",
        "room_created",
        "register_peer",
        "peer_registered",
        "lookup_room",
        "room_info",
        "peer_joined",
        "peer_left",
        "coordinate_connection",
    }
    assert spec_types | REQUEST_TYPES | {"error", "heartbeat_ack", "room_expired"} <= types


def test_python_dash_m_broker_is_the_relay_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "broker", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0
    assert "--pub-port" in result.stdout and "--room-ttl" in result.stdout


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    first = RelayProcess(tmp_path).start()
    try:
        result = run("relay", "--port", str(first.port), "--pub-port", "0")
        assert result.returncode == 1
        assert f"cannot listen on 127.0.0.1:{first.port}" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        first.stop()


def test_bad_duration_is_rejected_with_a_hint() -> None:
    result = run("relay", "--room-ttl", "forever", env={"COLUMNS": "200"})
    assert result.returncode == 2
    assert "not a duration" in result.stderr


def test_option_precedence_is_flag_then_env_then_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    from_file, from_env, from_flag = free_port(), free_port(), free_port()
    config.write_text(f"[relay]\nport = {from_file}\npub-port = 0\n")
    cases = [
        ({"SANDPIPER_CONFIG": str(config)}, [], from_file),
        ({"SANDPIPER_CONFIG": str(config), "SANDPIPER_RELAY_PORT": str(from_env)}, [], from_env),
        (
            {"SANDPIPER_CONFIG": str(config), "SANDPIPER_RELAY_PORT": str(from_env)},
            ["--port", str(from_flag)],
            from_flag,
        ),
    ]
    for env, flags, expected in cases:
        relay = RelayProcess(tmp_path, *flags, env=env).start(port=None, pub_port=None)
        try:
            assert relay.port == expected
        finally:
            relay.stop()


def test_broken_config_file_is_reported_not_ignored(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[relay\nport = ")
    result = run("schema", env={"SANDPIPER_CONFIG": str(config)})
    assert result.returncode == 2
    assert "cannot read config file" in result.stderr
