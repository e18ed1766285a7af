"""Fixtures for the network lab: a fresh lab per test, with the relay and fallback server
started on its WAN, and every process and namespace removed afterwards, also on failure."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import FallbackProcess, Member, RelayProcess, sandpiper_command
from tests.netlab.lab import (
    FALLBACK_PORT,
    PUB_PORT,
    RELAY_PORT,
    REQUIRE_ENV,
    SERVICES,
    Host,
    Lab,
    unavailable,
)


class LabRun:
    """A lab with the services running, and the members started in it."""

    def __init__(self, lab: Lab, workdir: Path) -> None:
        self.lab = lab
        self.members: list[Member] = []
        self.fallback = FallbackProcess(workdir, prefix=lab.wan.prefix(), host=SERVICES)
        self.relay = RelayProcess(
            workdir,
            "--fallback",
            f"{SERVICES}:{FALLBACK_PORT}",
            prefix=lab.wan.prefix(),
            host=SERVICES,
        )

    def start(self) -> LabRun:
        self.fallback.start(port=FALLBACK_PORT)
        self.relay.start(port=RELAY_PORT, pub_port=PUB_PORT)
        return self

    def member(self, host: Host, *args: str) -> Member:
        """`sandpiper ARGS --json` inside `host`, against the lab's relay."""
        relay = f"{SERVICES}:{RELAY_PORT}"
        command = [*host.prefix(), *sandpiper_command(), *args, "--json", "--relay", relay]
        member = Member(None, command=command)
        self.members.append(member)
        return member

    def stop(self) -> None:
        for member in self.members:
            member.stop()
        for server in (self.relay, self.fallback):
            if server.process is not None:
                server.stop()


def require_lab() -> None:
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV) == "require":
        pytest.fail(f"{REQUIRE_ENV}=require, but {reason}")
    pytest.skip(reason)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabRun]:
    require_lab()
    built = Lab()
    running = LabRun(built, tmp_path)
    try:
        yield running.start()
    finally:
        running.stop()
        built.close()
