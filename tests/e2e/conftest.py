"""Fixtures the end-to-end tests share: started members are always stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import FallbackProcess, Member


@pytest.fixture
def members() -> Iterator[list[Member]]:
    started: list[Member] = []
    yield started
    for member in started:
        member.stop()


@pytest.fixture
def fallback(tmp_path: Path) -> Iterator[FallbackProcess]:
    server = FallbackProcess(tmp_path).start()
    yield server
    server.stop()
