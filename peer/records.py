"""Sealed records to one member on the path it is reached on, and sending again what it has
not acknowledged. Pure."""

from __future__ import annotations

from peer.dialing import RECORD
from peer.effects import Effect, ToFallback, ToLink
from peer.members import Peer
from peer.session import b64
from schemas.fallback import Forward
from schemas.peer import Ack, Bye, Chat, Ping, Pong, Token


def send(peer: Peer, message: Chat | Ack | Ping | Pong | Bye | Token) -> list[Effect]:
    """`message` sealed on `peer`'s path; nothing while it has none."""
    if peer.link is not None:
        return [ToLink(peer.link, RECORD + peer.session.seal("link", message))]
    if peer.on_fallback and peer.fallback_id:
        payload = b64(peer.session.seal("fallback", message))
        return [ToFallback(Forward(type="send", to=peer.fallback_id, payload=payload))]
    return []


def resend(peer: Peer, now: float, interval: float) -> list[Effect]:
    """Everything `peer` has not acknowledged, again; the next try after `interval`."""
    if not peer.reachable or not peer.delivery.unacked:
        peer.retransmit_at = None
        return []
    peer.retransmit_at = now + interval
    effects: list[Effect] = []
    for number, text in peer.delivery.unacked.items():
        effects.extend(send(peer, Chat(n=number, text=text)))
    return effects
