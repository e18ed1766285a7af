"""Exactly-once, in-order chat between two members, whatever path each message takes.

Pure. Messages are numbered per sender; the receiver delivers only the next number and acks
cumulatively; the sender keeps what is unacknowledged and sends it again on a new path or
when acks stall. Duplicates (a resend that crossed its ack) are dropped by number.
"""

from __future__ import annotations

from collections import OrderedDict


class Delivery:
    def __init__(self) -> None:
        self._next_out = 0
        self.unacked: OrderedDict[int, str] = OrderedDict()
        self._next_in = 0

    def queue(self, text: str) -> int:
        number = self._next_out
        self._next_out += 1
        self.unacked[number] = text
        return number

    def on_ack(self, number: int) -> bool:
        """Forget everything up to `number`; True if that acknowledged something new."""
        progressed = False
        while self.unacked and next(iter(self.unacked)) <= number:
            self.unacked.popitem(last=False)
            progressed = True
        return progressed

    @property
    def shown(self) -> int:
        """How many of the other side's messages were delivered (numbers 0 to shown - 1)."""
        return self._next_in

    def receive(self, number: int, text: str) -> tuple[str | None, int]:
        """(text to show, or None for a duplicate or a gap; the cumulative ack to send)."""
        if number == self._next_in:
            self._next_in += 1
            return text, number
        return None, self._next_in - 1
