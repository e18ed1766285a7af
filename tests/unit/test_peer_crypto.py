"""Crypto core: pinned vectors, and every way a record can be wrong is refused."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peer.crypto import (
    CryptoError,
    Opener,
    PakeExchange,
    Sealer,
    WrongSecret,
    check_confirmation,
    derive_pair_keys,
    pake_password,
)

ROOM = "pine-ocean-42"


def fixed_entropy(seed: bytes):  # type: ignore[no-untyped-def]
    """Deterministic 'randomness' so the exchange has pinned vectors."""
    counter = 0

    def entropy(size: int) -> bytes:
        nonlocal counter
        out = b""
        while len(out) < size:
            out += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
            counter += 1
        return out[:size]

    return entropy


def exchange(secret_a: str, secret_b: str, room_a: str = ROOM, room_b: str = ROOM):  # type: ignore[no-untyped-def]
    a = PakeExchange(pake_password(secret_a), room_a, entropy=fixed_entropy(b"a"))
    b = PakeExchange(pake_password(secret_b), room_b, entropy=fixed_entropy(b"b"))
    return (
        derive_pair_keys(a.finish(b.outbound), room_a, "alice", "bob"),
        derive_pair_keys(b.finish(a.outbound), room_b, "bob", "alice"),
    )


def test_pinned_vectors_for_a_fixed_exchange() -> None:
    alice, bob = exchange("amber-falcon", "amber-falcon")
    assert alice.link.send == bob.link.receive
    assert alice.signal.send == bob.signal.receive
    assert hashlib.sha256(alice.link.send).hexdigest()[:16] == VECTOR_LINK_A_TO_B
    assert hashlib.sha256(alice.confirm_out).hexdigest()[:16] == VECTOR_CONFIRM_A
    record = Sealer(alice.link.send).seal(b"hello")
    assert record.hex() == VECTOR_FIRST_RECORD


def test_matching_secrets_confirm_each_other() -> None:
    alice, bob = exchange("amber-falcon", "AMBER-falcon ")  # people retype words
    check_confirmation(bob, alice.confirm_out)
    check_confirmation(alice, bob.confirm_out)
    assert alice.link.send != alice.link.receive != alice.signal.send


def test_a_wrong_secret_fails_confirmation_on_both_sides() -> None:
    alice, bob = exchange("amber-falcon", "amber-falcom")
    with pytest.raises(WrongSecret):
        check_confirmation(bob, alice.confirm_out)
    with pytest.raises(WrongSecret):
        check_confirmation(alice, bob.confirm_out)


def test_the_password_is_part_of_the_secret() -> None:
    a = PakeExchange(pake_password("amber-falcon", "hunter2"), ROOM)
    b = PakeExchange(pake_password("amber-falcon", "hunter3"), ROOM)
    alice = derive_pair_keys(a.finish(b.outbound), ROOM, "alice", "bob")
    bob = derive_pair_keys(b.finish(a.outbound), ROOM, "bob", "alice")
    with pytest.raises(WrongSecret):
        check_confirmation(bob, alice.confirm_out)


def test_an_exchange_from_another_room_does_not_confirm() -> None:
    alice, bob = exchange("amber-falcon", "amber-falcon", ROOM, "calm-river-10")
    with pytest.raises(WrongSecret):
        check_confirmation(bob, alice.confirm_out)


def test_reflected_and_malformed_pake_messages_are_refused() -> None:
    a = PakeExchange(pake_password("amber-falcon"), ROOM)
    with pytest.raises(CryptoError):
        a.finish(a.outbound)
    for bad in (b"", b"S" * 32, b"X" + a.outbound[1:], b"S" + b"\xff" * 32):
        with pytest.raises(CryptoError):
            PakeExchange(pake_password("x"), ROOM).finish(bad)


def test_records_open_once_and_never_an_older_after_a_newer() -> None:
    alice, bob = exchange("amber-falcon", "amber-falcon")
    seal, opener = Sealer(alice.link.send), Opener(bob.link.receive)
    first, second, third = seal.seal(b"1"), seal.seal(b"2"), seal.seal(b"3")
    assert opener.open(first) == b"1"
    with pytest.raises(CryptoError, match="replayed"):
        opener.open(first)
    assert opener.open(third) == b"3"  # the second was lost on the way: a gap is allowed
    with pytest.raises(CryptoError, match="reordered"):
        opener.open(second)  # but it may not arrive after a newer one
    with pytest.raises(CryptoError):
        opener.open(third)


def test_tampered_records_and_reflected_records_are_refused() -> None:
    alice, bob = exchange("amber-falcon", "amber-falcon")
    record = Sealer(alice.link.send).seal(b"pay bob 5")
    for index in (0, 5, 12, len(record) - 1):
        tampered = bytearray(record)
        tampered[index] ^= 0x01
        with pytest.raises(CryptoError):
            Opener(bob.link.receive).open(bytes(tampered))
    with pytest.raises(CryptoError):  # alice's own record sent back to her
        Opener(alice.link.receive).open(record)
    with pytest.raises(CryptoError):  # a link record replayed on the signal channel
        Opener(bob.signal.receive).open(record)
    with pytest.raises(CryptoError):
        Opener(bob.link.receive).open(record[:10])


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_open(data: bytes) -> None:
    _alice, bob = exchange("amber-falcon", "amber-falcon")
    with pytest.raises(CryptoError):
        Opener(bob.link.receive).open(data)


def test_keys_never_show_in_repr() -> None:
    alice, _ = exchange("amber-falcon", "amber-falcon")
    assert alice.link.send.hex() not in repr(alice) + repr(alice.link)


# Pinned from this implementation: a change here breaks every deployed peer's interop.
VECTOR_LINK_A_TO_B = "eb348e8e19c04217"
VECTOR_CONFIRM_A = "2b600435bf73f170"
VECTOR_FIRST_RECORD = "010000000000000000cad759ded7a80d67b87107da5b45ca0c0df89ab6df"


def test_a_pake_message_off_the_curve_is_a_crypto_error_not_a_crash() -> None:
    exchange = PakeExchange(pake_password("amber-falcon"), "pine-ocean-42")
    with pytest.raises(CryptoError):
        exchange.finish(b"S" + (2).to_bytes(32, "little"))
