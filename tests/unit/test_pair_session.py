"""PairSession: the handshake under arbitrary delivery, and sealing only after confirmation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peer.crypto import CryptoError, pake_password
from peer.session import Mismatch, NotConfirmed, PairSession, Phase, SignalOut, Verified
from schemas.peer import Candidates, Chat, Endpoint

ROOM = "pine-ocean-42"


def candidates(port: int) -> Candidates:
    return Candidates(lan=[Endpoint(host="10.0.0.1", port=port)], curve_key="A" * 40)


def pair(secret_a: str = "amber-falcon", secret_b: str = "amber-falcon"):  # type: ignore[no-untyped-def]
    alice = PairSession("alice", "bob", ROOM, pake_password(secret_a), candidates(1))
    bob = PairSession("bob", "alice", ROOM, pake_password(secret_b), candidates(2))
    return alice, bob


def run(alice: PairSession, bob: PairSession, order: list[int] | None = None) -> list[object]:
    """Deliver signals until quiet. The relay keeps each sender's order, so `order` only picks
    whose oldest pending signal goes next."""
    queues: dict[str, list[object]] = {"alice": list(alice.start()), "bob": list(bob.start())}
    sessions = {"alice": alice, "bob": bob}
    results: list[object] = []
    choices = iter(order or [])
    while queues["alice"] or queues["bob"]:
        sender = ("alice", "bob")[next(choices, 0) % 2]
        if not queues[sender]:
            sender = "bob" if sender == "alice" else "alice"
        effect = queues[sender].pop(0)
        if not isinstance(effect, SignalOut):
            results.append(effect)
            continue
        receiver = "bob" if sender == "alice" else "alice"
        queues[receiver] += sessions[receiver].on_signal(effect.payload)
    return results


def test_matching_secrets_confirm_and_exchange_candidates() -> None:
    alice, bob = pair()
    results = run(alice, bob)
    verified = {r.nick: r.candidates for r in results if isinstance(r, Verified)}
    assert verified == {"bob": candidates(2), "alice": candidates(1)}
    assert alice.phase is bob.phase is Phase.CONFIRMED
    record = alice.seal("link", Chat(n=0, text="hi"))
    assert bob.open("link", record) == Chat(n=0, text="hi")


def test_mismatched_secrets_fail_on_both_sides_and_never_seal() -> None:
    alice, bob = pair("amber-falcon", "amber-falcom")
    results = run(alice, bob)
    assert sorted(r.nick for r in results if isinstance(r, Mismatch)) == ["alice", "bob"]
    assert not [r for r in results if isinstance(r, Verified)]
    for session in (alice, bob):
        with pytest.raises(NotConfirmed):
            session.seal("fallback", Chat(n=0, text="leak"))


def test_sealing_before_confirmation_is_impossible() -> None:
    alice, _ = pair()
    with pytest.raises(NotConfirmed):
        alice.seal("link", Chat(n=0, text="too early"))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 7), max_size=12))
def test_any_delivery_order_between_the_two_still_confirms(order: list[int]) -> None:
    alice, bob = pair()
    run(alice, bob, order)
    assert alice.confirmed and bob.confirmed


def test_replayed_and_foreign_signals_are_refused() -> None:
    alice, bob = pair()
    first = alice.start()[0]
    assert isinstance(first, SignalOut)
    bob.start()
    bob.on_signal(first.payload)
    with pytest.raises(CryptoError):
        bob.on_signal(first.payload)  # a second PAKE message
    with pytest.raises(CryptoError):
        bob.on_signal("not base64 json!")
    eve, _ = pair()
    eve_first = eve.start()[0]
    assert isinstance(eve_first, SignalOut)
    carol = PairSession("carol", "alice", ROOM, pake_password("amber-falcon"), candidates(3))
    carol.start()
    with pytest.raises(CryptoError):
        carol.on_signal("eyJraW5kIjoic2VhbGVkIiwicmVjb3JkIjoiQUFBQSJ9")  # sealed before keys
