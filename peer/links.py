"""Direct links between members: a CurveZMQ ROUTER listener guarded by ZAP, and dialers.

Thin adapter. Only members whose CurveZMQ key arrived sealed after key confirmation get in:
the ZAP handler answers from an allow-list the room core maintains (Allow/Disallow effects).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import Any

import psutil
import zmq
from zmq.utils import z85

from schemas.peer import Candidates, Endpoint

log = logging.getLogger("sandpiper.peer")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_DOMAIN = b"sandpiper"
MAX_FRAME = 64 * 1024
_MAX_LAN_CANDIDATES = 8
_MAX_REMEMBERED_LINKS = 1024


def lan_addresses() -> list[str]:
    """This host's IPv4 addresses other than loopback (loopback only if there is nothing else)."""
    found = []
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family.name == "AF_INET" and not address.address.startswith("127."):
                found.append(address.address)
    return sorted(set(found))[:_MAX_LAN_CANDIDATES] or ["127.0.0.1"]


def free_port() -> int:
    """A TCP port nothing on this host uses right now (for the relay connection's source)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("0.0.0.0", 0))
        return int(probe.getsockname()[1])


def local_candidates(
    listen_host: str,
    port: int,
    observed_host: str | None,
    curve_key: str,
    reported: Endpoint | None = None,
    *,
    observed_port: int | None = None,
    punch_port: int | None = None,
) -> Candidates:
    """What we tell confirmed members: LAN addresses, the address we report ourselves, then
    the address the relay saw (tried in that order); and, for hole punching, the public
    mapping the relay saw of our relay connection, made from local port `punch_port`."""
    hosts = lan_addresses() if listen_host in ("0.0.0.0", "*", "") else [listen_host]
    lan = [Endpoint(host=host, port=port) for host in hosts]
    observed = punch = None
    try:
        usable = bool(observed_host) and not ipaddress.ip_address(observed_host or "").is_loopback
    except ValueError:
        usable = False
    if usable and observed_host:
        observed = Endpoint(host=observed_host, port=port)
        if observed_port and punch_port:
            punch = Endpoint(host=observed_host, port=observed_port)
    return Candidates(
        lan=lan,
        reported=reported,
        observed=observed,
        punch=punch,
        port_preserving=punch is not None and observed_port == punch_port,
        curve_key=curve_key,
    )


class Listener:
    """Our ROUTER for members' dials, with the ZAP handler that decides who may connect."""

    def __init__(self, context: zmq.Context[Any], host: str, port: int) -> None:
        public, secret = zmq.curve_keypair()
        self.public_key = public.decode()
        self._secret = secret
        self.zap: zmq.Socket[Any] = context.socket(zmq.REP)
        self.zap.setsockopt(zmq.LINGER, 0)
        self.zap.bind(ZAP_ENDPOINT)
        self.router: zmq.Socket[Any] = context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 1000)
        self.router.setsockopt(zmq.CURVE_SERVER, 1)
        self.router.setsockopt(zmq.CURVE_SECRETKEY, secret)
        self.router.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
        self.router.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 0)
        self.router.setsockopt(zmq.HANDSHAKE_IVL, 5_000)  # a stalled CurveZMQ greeting goes
        bind_host = "*" if host in ("0.0.0.0", "") else host
        self.router.bind(f"tcp://{bind_host}:{port or '*'}")
        self.port = int(self.router.getsockopt(zmq.LAST_ENDPOINT).decode().rsplit(":", 1)[1])
        self._allowed: dict[bytes, str] = {}  # raw client key -> nick
        self._nicks: dict[bytes, str] = {}  # routing id -> nick ZAP authenticated

    def allow(self, nick: str, client_key: str) -> None:
        self._allowed[z85.decode(client_key)] = nick

    def disallow(self, nick: str) -> None:
        for key in [key for key, holder in self._allowed.items() if holder == nick]:
            del self._allowed[key]
        for routing_id in [rid for rid, holder in self._nicks.items() if holder == nick]:
            del self._nicks[routing_id]

    def answer_zap(self) -> None:
        """One ZAP request: known CURVE keys get in as their nick; everyone else is refused."""
        request = self.zap.recv_multipart()
        version, request_id = request[0], request[1]
        mechanism = request[5] if len(request) > 5 else b""
        key = request[6] if len(request) > 6 else b""
        nick = self._allowed.get(key) if mechanism == b"CURVE" else None
        if nick is None:
            log.info("refused a direct connection from an unknown key")
            self.zap.send_multipart([version, request_id, b"400", b"not a member", b"", b""])
        else:
            self.zap.send_multipart([version, request_id, b"200", b"OK", nick.encode(), b""])

    def receive(self) -> tuple[bytes, str | None, bytes] | None:
        """(routing id, authenticated nick, frame), or None for a frame not of that shape
        (or for nothing to read).

        The nick ZAP gave a connection is read once (a zero-copy receive costs more than the
        rest of the hop) and remembered by routing id; ids not made by our ROUTER are refused,
        so a member cannot step into the id of another member's closed connection.
        """
        try:
            routing_id = self.router.recv(zmq.NOBLOCK)
        except zmq.Again:  # a closing connection's queue can vanish after a poll saw it
            return None
        nick = self._nicks.get(routing_id)
        if nick is None:
            frames = self.router.recv_multipart(copy=False)
            try:
                nick = frames[-1].get("User-Id") or None
            except zmq.ZMQError:
                nick = None
            payload = [frame.bytes for frame in frames]
            if nick is not None and len(routing_id) == 5 and routing_id[0] == 0:
                self._nicks[routing_id] = nick
                if len(self._nicks) > _MAX_REMEMBERED_LINKS:
                    self._nicks.pop(next(iter(self._nicks)))
        else:
            payload = self.router.recv_multipart()
        if len(payload) != 1:
            return None
        return routing_id, nick, payload[0]

    def send(self, routing_id: bytes, frame: bytes) -> None:
        try:
            self.router.send_multipart([routing_id, frame], zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            log.debug("dropped a frame to a vanished link: %s", exc)

    def server_options(self) -> dict[int, bytes | int]:
        """Options that make a punching socket the CurveZMQ server, with our listener's key,
        its clients checked by our ZAP handler like the listener's."""
        return {
            zmq.CURVE_SERVER: 1,
            zmq.CURVE_SECRETKEY: self._secret,
            zmq.ZAP_DOMAIN: ZAP_DOMAIN,
        }

    def curve_options(self) -> dict[int, bytes]:
        """Options that make a dialer present our key as its CURVE client key."""
        return {
            zmq.CURVE_PUBLICKEY: self.public_key.encode(),
            zmq.CURVE_SECRETKEY: self._secret,
        }

    def close(self) -> None:
        self.router.close()
        self.zap.close(linger=0)


def dial(
    context: zmq.Context[Any], endpoint: Endpoint, server_key: str, client_options: dict[int, bytes]
) -> zmq.Socket[Any]:
    """A DEALER to a member's listener, authenticated both ways by CurveZMQ."""
    dealer: zmq.Socket[Any] = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 1000)
    dealer.setsockopt(zmq.RECONNECT_IVL, 100)
    dealer.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME)
    dealer.setsockopt(zmq.CURVE_SERVERKEY, server_key.encode())
    for option, value in client_options.items():
        dealer.setsockopt(option, value)
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    dealer.connect(f"tcp://{host}:{endpoint.port}")
    return dealer


def punch(
    context: zmq.Context[Any],
    source_port: int,
    endpoint: Endpoint,
    options: dict[int, Any],
) -> zmq.Socket[Any]:
    """A DEALER connecting from `source_port` (shared with the relay connection, whose public
    mapping the other side targets) to a member's public mapping, retrying every 50 ms so
    that both sides' SYNs cross and the NATs see a TCP simultaneous open."""
    dealer: zmq.Socket[Any] = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 1000)
    dealer.setsockopt(zmq.RECONNECT_IVL, 50)
    dealer.setsockopt(zmq.RECONNECT_IVL_MAX, 50)
    dealer.setsockopt(zmq.CONNECT_TIMEOUT, 500)
    dealer.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME)
    for option, value in options.items():
        dealer.setsockopt(option, value)
    dealer.connect(f"tcp://0.0.0.0:{source_port};{endpoint.host}:{endpoint.port}")
    return dealer
