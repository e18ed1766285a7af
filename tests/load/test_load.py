"""Load tests with the issue's numbers, on real relay and fallback processes.

1,000 simulated clients create, join, signal and leave rooms on one relay, and 200 members
forward records through one fallback server, each for SANDPIPER_LOAD_SECONDS (default 60 s),
driven by bench/load_bench.py (the same code as `python -m bench.load_bench`). Latency is
reported, never asserted: the 2-core machine runs other work at the same time.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from bench.load_bench import report, run_fallback_load, run_relay_load

SECONDS = float(os.environ.get("SANDPIPER_LOAD_SECONDS", "60"))
CLIENTS = 1000
MEMBERS = 200

# RSS, as measured on the 2-core development machine (MiB). Relay: idle ~42; 1,000 clients
# connected ~69; peak ~82 after 60 s of load; after the load, with every client gone and
# every room closed, ~44. Fallback: idle ~38; 200 members attached ~44; peak ~52; after ~39.
# Why it climbs during the load: libzmq allocates ~66 KiB per connection (pipes, batch
# buffers) that traffic touches page by page, so RSS creeps up towards idle + ~66 MiB for
# 1,000 connections. When the connections close libzmq frees it; glibc would keep the pages
# (a bare pyzmq ROUTER stays at its peak), but the servers call malloc_trim(0) at most every
# 2 s when idle or on their timers (sandpiper/heap.py), which gives them back. So the peak
# bound is that ceiling plus room for the servers' own state, and "after" must be back near
# idle: a leak in the relay's or the fallback's own state breaks it.
RELAY_OVER_IDLE = 80.0
FALLBACK_OVER_IDLE = 32.0
AFTER_OVER_IDLE = 8.0

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def relay_load() -> dict[str, Any]:
    return run_relay_load(CLIENTS, SECONDS)


@pytest.fixture(scope="module")
def fallback_load() -> dict[str, Any]:
    return run_fallback_load(MEMBERS, SECONDS)


def _relay_report(figures: dict[str, Any]) -> str:
    return "\n" + report(figures, None)


def _fallback_report(figures: dict[str, Any]) -> str:
    return "\n" + report(None, figures)


def test_relay_load_has_no_unintended_errors(relay_load: dict[str, Any]) -> None:
    text = _relay_report(relay_load)
    assert relay_load["crashes"] == [], text
    assert relay_load["errors"] == {}, text
    assert relay_load["no_reply"] == 0, text
    assert relay_load["failure_count"] == 0, text
    assert relay_load["log_problems"] == 0, text


def test_every_client_is_its_own_source_address(relay_load: dict[str, Any]) -> None:
    assert relay_load["sources_ok"] == CLIENTS, _relay_report(relay_load)


def test_abusive_clients_are_rate_limited(relay_load: dict[str, Any]) -> None:
    text = _relay_report(relay_load)
    assert relay_load["intended"].get("rate_limited", 0) > 0, text
    assert relay_load["abusers_limited"] == relay_load["abusive"], text
    assert set(relay_load["intended"]) <= {"rate_limited", "room_not_found"}, text


def test_every_realistic_operation_completed(relay_load: dict[str, Any]) -> None:
    figures, text = relay_load, _relay_report(relay_load)
    assert figures["rooms_created"] >= figures["groups"], text  # every group met at least once
    assert figures["joins"] > figures["rooms_created"], text
    assert figures["rounds"] == figures["rooms_created"], text  # every room's round finished
    assert figures["leaves"] == figures["rooms_created"] + figures["joins"], text
    assert figures["signals_sent"] > 0, text
    assert figures["signals_delivered"] == figures["signals_sent"], text
    assert figures["signals_lost"] == figures["signals_duplicated"] == 0, text


def test_relay_survives_and_its_memory_stays_bounded(relay_load: dict[str, Any]) -> None:
    figures, text = relay_load, _relay_report(relay_load)
    assert figures["alive"] and figures["fresh_request_ok"], text
    assert figures["rooms_left"] == 0, text  # every room closed after its grace
    assert figures["rss_peak"] <= figures["rss_idle"] + RELAY_OVER_IDLE, text
    assert figures["rss_after"] <= figures["rss_idle"] + AFTER_OVER_IDLE, text


def test_fallback_delivers_every_record_exactly_once(fallback_load: dict[str, Any]) -> None:
    figures, text = fallback_load, _fallback_report(fallback_load)
    assert figures["crashes"] == [], text
    assert figures.get("sends", 0) > 0, text
    assert figures.get("deliveries", 0) == figures.get("expected", 0), text
    assert figures.get("lost", 0) == 0, text
    assert figures.get("duplicated", 0) == 0, text
    assert figures.get("misdelivered", 0) == 0, text
    assert figures.get("errors", 0) == 0, text
    assert figures["failure_count"] == 0, text


def test_fallback_survives_and_its_memory_stays_bounded(fallback_load: dict[str, Any]) -> None:
    figures, text = fallback_load, _fallback_report(fallback_load)
    assert figures["alive"] and figures["fresh_request_ok"], text
    assert figures["log_problems"] == 0, text
    assert figures["rss_peak"] <= figures["rss_idle"] + FALLBACK_OVER_IDLE, text
    assert figures["rss_after"] <= figures["rss_idle"] + AFTER_OVER_IDLE, text
