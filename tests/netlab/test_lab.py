"""The lab itself: it builds what it says, and leaves nothing behind."""

from __future__ import annotations

import pytest

from tests.netlab.conftest import require_lab
from tests.netlab.lab import Lab, LabError, run


def namespaces() -> set[str]:
    return {line.split()[0] for line in run("ip", "netns", "list").splitlines() if line}


def test_a_closed_lab_leaves_no_namespace_and_two_labs_never_collide() -> None:
    require_lab()
    first, second = Lab(), Lab()
    try:
        assert first.tag != second.tag
        home = first.home("home")
        host = first.host_in(home, "one")
        assert "192.168.1.10" in host.run("ip", "-4", "addr", "show", "eth0")
        made = set(first.namespaces) | set(second.namespaces)
        assert made <= namespaces()
    finally:
        first.close()
        second.close()
    assert not made & namespaces()
    assert not any(name.startswith((first.tag + "-", second.tag + "-")) for name in namespaces())


def test_a_lab_that_fails_half_built_is_removed_by_close() -> None:
    require_lab()
    lab = Lab()
    made = list(lab.namespaces)
    try:
        with pytest.raises(LabError):
            lab.wan.run("ip", "link", "add", "br0", "type", "bridge")  # exists already
    finally:
        lab.close()
    assert not set(made) & namespaces()
