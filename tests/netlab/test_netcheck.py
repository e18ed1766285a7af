"""`sandpiper netcheck` inside the lab: what it reports behind each kind of NAT."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.helpers import sandpiper_command
from tests.netlab.conftest import LabRun
from tests.netlab.lab import FALLBACK_PORT, RELAY_PORT, SERVICES, Host


def netcheck(host: Host, *extra: str) -> tuple[int, dict[str, Any]]:
    relay = f"{SERVICES}:{RELAY_PORT}"
    command = [*host.prefix(), *sandpiper_command(), "netcheck", "--json", "--relay", relay]
    done = subprocess.run(
        [*command, *extra], check=False, capture_output=True, text=True, timeout=60
    )
    return done.returncode, json.loads(done.stdout)


def test_netcheck_tells_public_hosts_port_preserving_and_random_nats_apart(lab: LabRun) -> None:
    public = lab.lab.public_host("pub")
    keeps = lab.lab.host_in(lab.lab.home("keeps"), "one")
    changes_home = lab.lab.home("changes", "random")
    changes = lab.lab.host_in(changes_home, "two")

    code, report = netcheck(public)
    assert code == 0
    assert report["behind_nat"] is False
    assert report["lan"] == [public.address]
    [relay] = report["relays"]
    assert relay["reachable"] and relay["rtt_ms"] > 0
    assert {m["public_host"] for m in relay["mappings"]} == {public.address}
    assert report["fallback"] == {
        "address": f"{SERVICES}:{FALLBACK_PORT}",
        "reachable": True,
        "rtt_ms": report["fallback"]["rtt_ms"],
        "source": "advertised by the relay",
    }

    code, report = netcheck(keeps)
    assert code == 0
    assert report["behind_nat"] is True and report["port_preserving"] is True
    assert report["lan"] == [keeps.address]

    code, report = netcheck(changes)
    assert code == 0
    assert report["behind_nat"] is True and report["port_preserving"] is False
    mappings = report["relays"][0]["mappings"]
    assert {m["public_host"] for m in mappings} == {changes_home.router.address}
    assert len(mappings) == 2


def test_netcheck_reports_services_a_firewall_blocks(lab: LabRun) -> None:
    walled = lab.lab.host_in(lab.lab.home("office", only_to=[RELAY_PORT]), "one")
    code, report = netcheck(walled, "--timeout", "1s")
    assert code == 0  # the relay answers
    assert report["fallback"]["reachable"] is False
    blocked = lab.lab.host_in(lab.lab.home("closed", only_to=[FALLBACK_PORT]), "two")
    code, report = netcheck(blocked, "--timeout", "1s")
    assert code == 1
    assert report["relays"][0]["reachable"] is False
    assert "no answer" in report["relays"][0]["error"]
    assert report["behind_nat"] is None
