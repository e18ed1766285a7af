"""`sandpiper netcheck`: what the network between us and the services looks like.

Thin adapter. Asks each relay, from two local ports, which public address and port it sees
(so: are we behind a NAT, and does it keep ports, which hole punching needs), lists the LAN
candidates, and times a round trip to each relay and to the fallback server.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import zmq

from peer.links import free_port, lan_addresses
from peer.relay_client import FallbackConnection, RelayConnection, RelayRefused, normalise_endpoint
from schemas.fallback import FallbackHeartbeat
from schemas.relay import ObserveAddress, ObservedAddress


@dataclass
class Mapping:
    local_port: int
    public_host: str | None
    public_port: int | None


@dataclass
class RelayCheck:
    relay: str
    reachable: bool
    rtt_ms: float | None = None
    mappings: list[Mapping] = field(default_factory=list)
    fallback: str | None = None
    """The fallback server the relay advertises."""
    error: str | None = None

    @property
    def public_host(self) -> str | None:
        return self.mappings[0].public_host if self.mappings else None


@dataclass
class ServiceCheck:
    address: str
    reachable: bool
    rtt_ms: float | None = None
    source: str = "configured"


@dataclass
class Report:
    lan: list[str]
    relays: list[RelayCheck]
    fallback: ServiceCheck | None
    behind_nat: bool | None
    """Whether the relay sees another address than any of ours (None: no relay answered)."""
    port_preserving: bool | None
    """Whether our NAT kept the local port in every mapping (None: unknown)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _observe(
    context: zmq.Context[Any], endpoint: str, timeout: float
) -> tuple[Mapping, float, str | None]:
    port = free_port()
    connection = RelayConnection(context, endpoint, port)
    try:
        started = time.perf_counter()
        reply = connection.ask(ObserveAddress(type="observe_address"), timeout)
        elapsed = round((time.perf_counter() - started) * 1000, 2)
        assert isinstance(reply, ObservedAddress)
        return Mapping(port, reply.host, reply.port), elapsed, reply.fallback
    finally:
        connection.close()


def check_relay(context: zmq.Context[Any], endpoint: str, timeout: float) -> RelayCheck:
    """Two mappings from two local ports, and the best round trip of three asks."""
    name = endpoint.removeprefix("tcp://")
    result = RelayCheck(relay=name, reachable=False)
    try:
        for _ in range(2):
            mapping, rtt, result.fallback = _observe(context, endpoint, timeout)
            result.mappings.append(mapping)
            result.rtt_ms = rtt if result.rtt_ms is None else min(result.rtt_ms, rtt)
    except TimeoutError:
        result.error = f"no answer within {timeout:g}s"
        return result
    except RelayRefused as exc:
        result.error = f"refused: {exc.message}"
        return result
    result.reachable = True
    return result


def check_fallback(
    context: zmq.Context[Any], address: str, timeout: float
) -> tuple[bool, float | None]:
    """Any answer to a heartbeat proves the fallback server reachable; the round trip."""
    connection = FallbackConnection(context, normalise_endpoint(address))
    try:
        started = time.perf_counter()
        connection.send(FallbackHeartbeat(type="heartbeat", req_id="netcheck"))
        deadline = started + timeout
        while (left := deadline - time.perf_counter()) > 0:
            if connection.socket.poll(left * 1000) and connection.receive() is not None:
                return True, round((time.perf_counter() - started) * 1000, 2)
        return False, None
    finally:
        connection.close()


def _ours(host: str | None, lan: list[str]) -> bool:
    """Is `host` one of this machine's own addresses (a relay on loopback sees loopback)?"""
    try:
        return host in lan or ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def netcheck(relays: list[str], fallback: str | None, timeout: float = 3.0) -> Report:
    context: zmq.Context[Any] = zmq.Context()
    try:
        lan = lan_addresses()
        checks = [check_relay(context, endpoint, timeout) for endpoint in relays]
        answered = [check for check in checks if check.reachable]
        behind_nat = port_preserving = None
        if answered:
            mappings = [m for check in answered for m in check.mappings]
            behind_nat = any(not _ours(m.public_host, lan) for m in mappings)
            port_preserving = all(m.public_port == m.local_port for m in mappings)
        source = "configured"
        if fallback is None:
            fallback = next((c.fallback for c in answered if c.fallback), None)
            source = "advertised by the relay"
        service = None
        if fallback is not None:
            reachable, rtt = check_fallback(context, fallback, timeout)
            service = ServiceCheck(fallback, reachable, rtt, source)
        return Report(lan, checks, service, behind_nat, port_preserving)
    finally:
        context.destroy(linger=0)
