"""The servers' heap trimmer: glibc's malloc_trim, at most once per interval."""

from __future__ import annotations

import platform

import pytest

from sandpiper.heap import HeapTrimmer


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_the_trimmer_trims_at_most_once_per_interval() -> None:
    now = [100.0]
    trimmer = HeapTrimmer(every=2.0, clock=lambda: now[0])
    assert trimmer.available
    for step in range(40):  # 10 s of calls every 0.25 s
        now[0] = 100.0 + 0.25 * (step + 1)
        trimmer()
    assert trimmer.trims == 5  # at 102, 104, 106, 108 and 110
