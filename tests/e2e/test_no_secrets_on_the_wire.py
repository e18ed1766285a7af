"""A recording of every byte on loopback while members chat: no secret, no message text."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import LoopbackRecorder, Member, create_room, running_relay


def test_neither_secret_words_nor_password_nor_text_cross_a_socket_in_the_clear(
    tmp_path: Path, recorder: LoopbackRecorder
) -> None:
    password = "correct horse battery staple"
    env = {"SANDPIPER_PASSWORD": password}
    texts = ["the eagle lands at midnight", "bring the blue folder"]
    members: list[Member] = []
    with running_relay(tmp_path) as relay:
        try:
            alice, invite = create_room(relay, env=env)
            members.append(alice)
            bob = Member(relay, "join", invite, "--nick", "bob", env=env)
            members.append(bob)
            bob.event("connected", nick="alice")
            alice.say(texts[0])
            bob.say(texts[1])
            bob.event("message", text=texts[0])
            alice.event("message", text=texts[1])
            bob.end_input()
            assert bob.wait() == 0
        finally:
            for member in members:
                member.stop()
    captured = recorder.stop()
    room, secret = "-".join(invite.split("-")[:3]), "-".join(invite.split("-")[3:])
    assert room.encode() in captured, "the recorder must see the relay traffic"
    assert b"alice" in captured
    for forbidden in [secret, password, *texts]:
        assert forbidden.encode() not in captured, f"{forbidden!r} crossed a socket in the clear"
