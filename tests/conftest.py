from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from tests.helpers import LoopbackRecorder


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
