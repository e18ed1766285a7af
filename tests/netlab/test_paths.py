"""Every scenario of the connection sequence, through real kernel NATs: the real CLI in each
namespace, the path each member reports, messages both ways, and the sockets as evidence."""

from __future__ import annotations

from tests.helpers import Member, wait_for
from tests.netlab.conftest import LabRun
from tests.netlab.lab import FALLBACK_PORT, RELAY_PORT, Host


def pair(lab: LabRun, first: Host, second: Host) -> tuple[Member, Member]:
    """alice creates a room in `first`, bob joins it from `second`."""
    alice = lab.member(first, "create", "--nick", "alice")
    code = alice.event("room_created")["code"]
    bob = lab.member(second, "join", code, "--nick", "bob")
    return alice, bob


def connected_paths(alice: Member, bob: Member, timeout: float = 20.0) -> tuple[str, str]:
    return (
        alice.event("connected", timeout, nick="bob")["path"],
        bob.event("connected", timeout, nick="alice")["path"],
    )


def exchange(alice: Member, bob: Member, tag: str) -> None:
    alice.say(f"{tag}: alice to bob")
    bob.say(f"{tag}: bob to alice")
    bob.event("message", **{"from": "alice", "text": f"{tag}: alice to bob"})
    alice.event("message", **{"from": "bob", "text": f"{tag}: bob to alice"})


def peer_link(host: Host, remote: str) -> bool:
    """An established TCP connection from `host` to `remote` (an address), not a service's."""
    return any(
        line.split()[3].rsplit(":", 1)[0] == remote
        and line.split()[3].rsplit(":", 1)[1] not in (str(RELAY_PORT), str(FALLBACK_PORT))
        for line in host.connections().splitlines()
        if len(line.split()) >= 4
    )


def test_two_members_in_one_home_talk_over_the_lan(lab: LabRun) -> None:
    home = lab.lab.home("home")
    one, two = lab.lab.host_in(home, "one"), lab.lab.host_in(home, "two")
    alice, bob = pair(lab, one, two)
    assert connected_paths(alice, bob) == ("lan", "lan")
    exchange(alice, bob, "lan")
    assert peer_link(one, two.address)


def test_a_public_member_and_one_behind_nat_connect_directly(lab: LabRun) -> None:
    home = lab.lab.home("home")
    public, hidden = lab.lab.public_host("pub"), lab.lab.host_in(home, "one")
    for first, second in ((public, hidden), (hidden, public)):  # either may create the room
        alice, bob = pair(lab, first, second)
        assert connected_paths(alice, bob) == ("direct", "direct")
        exchange(alice, bob, "direct")
        assert peer_link(hidden, public.address)
        for member in (alice, bob):
            member.end_input()
            assert member.wait() == 0


def test_members_behind_two_port_preserving_nats_punch_a_hole(lab: LabRun) -> None:
    east, west = lab.lab.home("east"), lab.lab.home("west")
    one, two = lab.lab.host_in(east, "one"), lab.lab.host_in(west, "two")
    alice, bob = pair(lab, one, two)
    assert connected_paths(alice, bob) == ("punched", "punched")
    exchange(alice, bob, "punched")
    # The chat runs over one TCP connection between the two routers' public addresses.
    assert peer_link(one, west.router.address)
    assert peer_link(two, east.router.address)


def test_members_behind_random_port_nats_fall_back(lab: LabRun) -> None:
    east, west = lab.lab.home("east", "random"), lab.lab.home("west", "random")
    one, two = lab.lab.host_in(east, "one"), lab.lab.host_in(west, "two")
    alice, bob = pair(lab, one, two)
    assert connected_paths(alice, bob) == ("fallback", "fallback")
    exchange(alice, bob, "fallback")
    assert not peer_link(one, west.router.address)


def test_a_member_whose_firewall_lets_out_only_the_services_falls_back(lab: LabRun) -> None:
    office = lab.lab.home("office", only_to=[RELAY_PORT, FALLBACK_PORT])
    public, walled = lab.lab.public_host("pub"), lab.lab.host_in(office, "one")
    alice, bob = pair(lab, public, walled)
    assert connected_paths(alice, bob) == ("fallback", "fallback")
    exchange(alice, bob, "walled")


def test_a_cut_direct_path_falls_back_then_returns_losing_and_doubling_nothing(
    lab: LabRun,
) -> None:
    home = lab.lab.home("home")
    public, hidden = lab.lab.public_host("pub"), lab.lab.host_in(home, "one")
    alice, bob = pair(lab, public, hidden)
    assert connected_paths(alice, bob) == ("direct", "direct")
    exchange(alice, bob, "before")
    lab.lab.cut(public, home.router.address)
    exchange(alice, bob, "during the cut")  # sent on a dead link; resent via the server
    alice.event("path_changed", 20, nick="bob", path="fallback")
    bob.event("path_changed", 20, nick="alice", path="fallback")
    lab.lab.restore(public)
    alice.event("path_changed", 40, nick="bob", path="direct")
    bob.event("path_changed", 40, nick="alice", path="direct")
    exchange(alice, bob, "after")
    wait_for(lambda: peer_link(hidden, public.address), timeout=10)
    tags = ("before", "during the cut", "after")
    assert texts(bob) == [f"{tag}: alice to bob" for tag in tags]  # each once, in order
    assert texts(alice) == [f"{tag}: bob to alice" for tag in tags]


def texts(member: Member) -> list[str]:
    return [e["text"] for e in member.events if e.get("event") == "message"]


def test_three_members_where_only_one_pair_has_no_direct_path(lab: LabRun) -> None:
    """alice reaches bob and carol directly; bob and carol cannot reach each other, so that
    one pair (and only it) talks through the fallback server, and everyone hears everyone."""
    hosts = [lab.lab.public_host(name) for name in ("a", "b", "c")]
    lab.lab.cut(hosts[1], hosts[2].address)
    alice = lab.member(hosts[0], "create", "--nick", "alice")
    code = alice.event("room_created")["code"]
    bob = lab.member(hosts[1], "join", code, "--nick", "bob")
    carol = lab.member(hosts[2], "join", code, "--nick", "carol")
    expected = {
        alice: {"bob": "direct", "carol": "direct"},
        bob: {"alice": "direct", "carol": "fallback"},
        carol: {"alice": "direct", "bob": "fallback"},
    }
    for member, paths in expected.items():
        for nick, path in paths.items():
            assert member.event("connected", 20, nick=nick)["path"] == path
    names = {alice: "alice", bob: "bob", carol: "carol"}
    for member, name in names.items():
        member.say(f"hello from {name}")
    for member, name in names.items():
        for other in set(names.values()) - {name}:
            member.event("message", **{"from": other, "text": f"hello from {other}"})
    assert not any(
        e.get("event") == "path_changed" for m in names for e in m.events
    )  # nobody moved: the paths above held
