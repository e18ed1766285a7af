"""The layering of GUIDE.md, enforced: pure cores, and dependencies that point inward."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE_CORES = [
    "schemas",
    "broker/core.py",
    "broker/registry.py",
    "broker/ratelimit.py",
    "broker/codes.py",
    "broker/words.py",
    "broker/settings.py",
    "broker/events.py",
    "broker/effects.py",
    "broker/tokens.py",
    "broker/watch.py",
    "peer/crypto.py",
    "peer/presence.py",
    "peer/paths.py",
    "peer/session.py",
    "peer/room.py",
    "peer/keying.py",
    "peer/trust.py",
    "peer/fallback_room.py",
    "peer/records.py",
    "peer/effects.py",
    "peer/members.py",
    "peer/hosted.py",
    "peer/delivery.py",
    "peer/dialing.py",
    "fallback/core.py",
    "fallback/settings.py",
    "peer/invite.py",
    "peer/words.py",
]
FORBIDDEN_IN_CORES = {"zmq", "time", "asyncio", "rich", "typer", "socket", "threading"}
PACKAGES = ["schemas", "broker", "peer", "fallback", "sandpiper"]
ALLOWED = {
    "schemas": set(),
    "broker": {"schemas"},
    "peer": {"schemas"},
    "fallback": {"schemas"},
    "sandpiper": {"schemas", "broker", "peer", "fallback"},
}


def python_files(entry: str) -> list[Path]:
    path = ROOT / entry
    return sorted(path.rglob("*.py")) if path.is_dir() else [path]


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("entry", PURE_CORES)
def test_pure_cores_never_touch_sockets_clocks_threads_or_the_terminal(entry: str) -> None:
    for path in python_files(entry):
        leaked = imported_roots(path) & FORBIDDEN_IN_CORES
        assert not leaked, f"{path.relative_to(ROOT)} imports {sorted(leaked)}"


@pytest.mark.parametrize("package", PACKAGES)
def test_dependencies_point_inward(package: str) -> None:
    for path in python_files(package):
        if path.name == "__main__.py":
            continue  # `python -m broker` delegates to the CLI on purpose
        others = (imported_roots(path) & set(PACKAGES)) - {package}
        assert others <= ALLOWED[package], f"{path.relative_to(ROOT)} imports {sorted(others)}"


def test_modules_stay_small() -> None:
    for package in PACKAGES:
        for path in python_files(package):
            lines = len(path.read_text().splitlines())
            assert lines <= 450, f"{path.relative_to(ROOT)} has {lines} lines"
