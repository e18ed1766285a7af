"""Carrying the chat over to a new session: what is sent again, and what never twice."""

from __future__ import annotations

from collections import OrderedDict

from peer.delivery import Delivery
from peer.keying import MAX_DEPARTED, Departed, carry_over, remember
from schemas.peer import Resume

OLD = "0123456789abcdef"


def queued(*texts: str) -> Delivery:
    delivery = Delivery()
    for text in texts:
        delivery.queue(text)
    return delivery


def texts(delivery: Delivery) -> list[str]:
    return list(delivery.unacked.values())


def test_only_what_the_other_side_did_not_show_goes_again_then_what_waited() -> None:
    previous = Departed(OLD, shown=0, unacked=[(3, "three"), (4, "four"), (5, "five")])
    theirs = Resume(session=OLD, shown=5)  # it showed 0..4: "three" and "four" were shown
    carried = carry_over(previous, theirs, queued("typed while away"))
    assert texts(carried) == ["five", "typed while away"]
    assert list(carried.unacked) == [0, 1]  # numbered afresh for the new session


def test_everything_goes_again_to_a_side_that_does_not_know_the_old_session() -> None:
    previous = Departed(OLD, shown=0, unacked=[(3, "three"), (4, "four")])
    for theirs in (None, Resume(session="f" * 16, shown=9)):
        assert texts(carry_over(previous, theirs, Delivery())) == ["three", "four"]


def test_nothing_to_carry_keeps_what_was_queued() -> None:
    assert texts(carry_over(None, None, queued("a", "b"))) == ["a", "b"]


def test_departed_members_are_bounded() -> None:
    book: OrderedDict[str, Departed] = OrderedDict()
    for index in range(MAX_DEPARTED + 10):
        remember(book, f"m{index}", Departed(OLD, 0, []))
    assert len(book) == MAX_DEPARTED and "m0" not in book and f"m{MAX_DEPARTED + 9}" in book
