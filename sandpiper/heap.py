"""Giving freed heap memory back to the operating system, for the long-running servers.

libzmq allocates about 66 KiB for each connection and frees it when the peer goes, but glibc
keeps freed pages inside its arenas (they are not at the top of the heap, so the automatic
trim never reaches them). After a thousand clients come and go, a relay would stay about
60 MiB above idle for the rest of its life (libzmq issue #2020). `malloc_trim(0)` returns
those pages; calling it at most every 2 s costs about 0.6 ms each time with nothing to give
back, 5 ms after a thousand connections have gone (measured on a 1,000-connection ROUTER).
Elsewhere than glibc (musl, macOS) there is no `malloc_trim`, and nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable

TRIM_EVERY = 2.0
"""Seconds between two trims at most."""


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class HeapTrimmer:
    """Call it whenever convenient (the servers call it when idle and on their timers): it
    trims at most every `every` seconds."""

    def __init__(
        self, every: float = TRIM_EVERY, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._trim = _malloc_trim()
        self._every = every
        self._clock = clock
        self._next = clock() + every
        self.trims = 0

    @property
    def available(self) -> bool:
        return self._trim is not None

    def __call__(self) -> None:
        if self._trim is None:
            return
        now = self._clock()
        if now < self._next:
            return
        self._trim(0)
        self.trims += 1
        self._next = now + self._every
