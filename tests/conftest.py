from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from tests.helpers import FallbackProcess, LoopbackRecorder, Member


@pytest.fixture
def zmq_context() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def recorder() -> Iterator[LoopbackRecorder]:
    if os.geteuid() != 0 or not hasattr(socket, "AF_PACKET"):
        if os.environ.get("CI"):
            pytest.fail("CI runs as root on Linux: the capture test must run there")
        pytest.skip("capturing loopback traffic needs root on Linux")
    capture = LoopbackRecorder()
    yield capture
    capture.stop()


@pytest.fixture
def members() -> Iterator[list[Member]]:
    """Members a test started: always stopped afterwards."""
    started: list[Member] = []
    yield started
    for member in started:
        member.stop()


@pytest.fixture
def fallback(tmp_path: Path) -> Iterator[FallbackProcess]:
    server = FallbackProcess(tmp_path).start()
    yield server
    server.stop()
