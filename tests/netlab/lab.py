"""A network lab of real kernel namespaces: a WAN with the relay and fallback server on it,
public hosts, and home networks behind nftables NAT routers.

Every namespace gets a name unique to this process and lab, and `close()` deletes them all
(the veth pairs and the processes' sockets go with them). Only lab addresses are used:
203.0.113.0/24 (TEST-NET-3) is the lab's "internet", 192.168.N.0/24 are its home networks.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Literal

REQUIRE_ENV = "SANDPIPER_NETLAB"
"""Set to `require` (CI does) and a lab that cannot be built fails instead of skipping."""

WAN = "203.0.113"
SERVICES = f"{WAN}.1"
"""The WAN namespace's own address: the relay and the fallback server listen there."""
RELAY_PORT, PUB_PORT, FALLBACK_PORT = 8000, 8001, 5000

Nat = Literal["preserving", "random"]
_labs = itertools.count(1)


def run(*args: str, input_text: str | None = None) -> str:
    result = subprocess.run(args, input=input_text, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LabError(f"{' '.join(args)}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


class LabError(Exception):
    """A lab command failed (the message has the command and its error)."""


def unavailable() -> str | None:
    """Why this machine cannot build a lab, or None if it can."""
    if os.geteuid() != 0:
        return "the network lab needs root (network namespaces and nftables)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"the network lab needs `{tool}` (apt-get install iproute2 nftables)"
    probe = f"spprobe{os.getpid()}"
    try:
        run("ip", "netns", "add", probe)
        run("ip", "netns", "exec", probe, "nft", "list", "tables")
    except LabError as exc:
        return f"network namespaces or nftables are not usable here: {exc}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


@dataclass
class Host:
    name: str
    namespace: str
    address: str

    def prefix(self) -> list[str]:
        """Run a command inside this host's namespace."""
        return ["ip", "netns", "exec", self.namespace]

    def run(self, *args: str, input_text: str | None = None) -> str:
        return run(*self.prefix(), *args, input_text=input_text)

    def connections(self) -> str:
        """Established TCP connections as `ss` shows them in this namespace."""
        return self.run("ss", "-tnH", "state", "established")


@dataclass
class Home:
    """A home network: a NAT router with a LAN bridge, and the hosts behind it."""

    router: Host
    """`address` is the router's public (WAN) address: its hosts appear from there."""
    subnet: str
    hosts: list[Host] = field(default_factory=list)


class Lab:
    def __init__(self) -> None:
        self.tag = f"sp{os.getpid()}n{next(_labs)}"
        self.namespaces: list[str] = []
        self._wan_ports = itertools.count(1)
        self._wan_addresses = itertools.count(10)
        self._subnets = itertools.count(1)
        try:
            self.wan = self._namespace("wan", SERVICES)
            self.wan.run("ip", "link", "add", "br0", "type", "bridge")
            self.wan.run("ip", "addr", "add", f"{SERVICES}/24", "dev", "br0")
            self.wan.run("ip", "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ building

    def public_host(self, name: str) -> Host:
        """A host with its own address on the WAN: no NAT, no firewall."""
        host = self._namespace(name, f"{WAN}.{next(self._wan_addresses)}")
        self._attach_to_wan(host, "eth0")
        return host

    def home(self, name: str, nat: Nat = "preserving", *, only_to: list[int] | None = None) -> Home:
        """A router doing NAT (`preserving`: keeps source ports when it can; `random`: random
        ports) that drops unsolicited inbound traffic, forwarded or addressed to itself.
        `only_to`: a firewall that lets out nothing but TCP to these ports of the services."""
        router = self._namespace(f"{name}-gw", f"{WAN}.{next(self._wan_addresses)}")
        self._attach_to_wan(router, "wan0")
        subnet = f"192.168.{next(self._subnets)}"
        router.run("ip", "link", "add", "lan", "type", "bridge")
        router.run("ip", "addr", "add", f"{subnet}.1/24", "dev", "lan")
        router.run("ip", "link", "set", "lan", "up")
        router.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        masquerade = "masquerade random" if nat == "random" else "masquerade"
        outbound = 'iifname "lan" oifname "wan0"'
        if only_to is not None:
            ports = ", ".join(str(port) for port in only_to)
            outbound += f" ip daddr {SERVICES} tcp dport {{ {ports} }}"
        router.run(
            "nft",
            "-f",
            "-",
            input_text=f"""
table ip nat {{
    chain post {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan0" {masquerade}
    }}
}}
table inet filter {{
    chain forward_f {{
        type filter hook forward priority filter; policy drop;
        # (the first rule below also passes LAN traffic the bridge hands to netfilter)
        ct state established,related accept
        ip saddr {subnet}.0/24 ip daddr {subnet}.0/24 accept
        {outbound} accept
    }}
    chain input_f {{
        type filter hook input priority filter; policy accept;
        iifname "wan0" ct state established,related accept
        iifname "wan0" drop
    }}
}}
""",
        )
        return Home(router, subnet)

    def host_in(self, home: Home, name: str) -> Host:
        index = len(home.hosts) + 10
        host = self._namespace(name, f"{home.subnet}.{index}")
        port = f"h{index}"
        run(
            "ip", "link", "add", port, "netns", home.router.namespace,
            "type", "veth", "peer", "name", "eth0", "netns", host.namespace,
        )  # fmt: skip
        home.router.run("ip", "link", "set", port, "master", "lan", "up")
        host.run("ip", "addr", "add", f"{host.address}/24", "dev", "eth0")
        host.run("ip", "link", "set", "eth0", "up")
        host.run("ip", "route", "add", "default", "via", f"{home.subnet}.1")
        home.hosts.append(host)
        return host

    # ------------------------------------------------------------------ faults

    def cut(self, host: Host, peer_address: str) -> None:
        """Drop everything between `host` and `peer_address` (both ways), until `restore`."""
        host.run(
            "nft",
            "-f",
            "-",
            input_text=f"""
table inet sandpiper_cut {{
    chain in_f {{
        type filter hook input priority filter;
        ip saddr {peer_address} drop
    }}
    chain out_f {{
        type filter hook output priority filter;
        ip daddr {peer_address} drop
    }}
}}
""",
        )

    def restore(self, host: Host) -> None:
        host.run("nft", "delete", "table", "inet", "sandpiper_cut")

    # ------------------------------------------------------------------ plumbing

    def _namespace(self, role: str, address: str) -> Host:
        name = f"{self.tag}-{role}"
        run("ip", "netns", "add", name)
        self.namespaces.append(name)
        host = Host(role, name, address)
        host.run("ip", "link", "set", "lo", "up")
        return host

    def _attach_to_wan(self, host: Host, interface: str) -> None:
        port = f"w{next(self._wan_ports)}"
        run(
            "ip", "link", "add", port, "netns", self.wan.namespace,
            "type", "veth", "peer", "name", interface, "netns", host.namespace,
        )  # fmt: skip
        self.wan.run("ip", "link", "set", port, "master", "br0", "up")
        host.run("ip", "addr", "add", f"{host.address}/24", "dev", interface)
        host.run("ip", "link", "set", interface, "up")

    def close(self) -> None:
        """Delete every namespace this lab made (their interfaces and rules go with them)."""
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        self.namespaces.clear()
