"""`sandpiper server`: a room hosted on a fallback server, no relay, no direct links."""

from __future__ import annotations

from tests.helpers import FallbackProcess, LoopbackRecorder, Member, sandpiper_command


def Hosted(fallback: FallbackProcess, *args: str, env: dict[str, str] | None = None) -> Member:
    """A member in `sandpiper server` mode (no relay) on `fallback`."""
    host, port = fallback.endpoint.removeprefix("tcp://").rsplit(":", 1)
    command = [*sandpiper_command(), "server", "--host", host, "--port", port, "--json", *args]
    return Member(None, env=env, command=command)


def test_with_a_password_the_hosted_room_is_end_to_end_encrypted(
    fallback: FallbackProcess, members: list[Member], recorder: LoopbackRecorder
) -> None:
    env = {"SANDPIPER_PASSWORD": "quiet harbour lights"}
    alice = Hosted(fallback, "--nick", "alice", "--room", "book-club", env=env)
    bob = Hosted(fallback, "--nick", "bob", "--room", "book-club", env=env)
    members += [alice, bob]
    assert alice.event("joined")["open"] is False
    assert bob.event("connected", nick="alice")["path"] == "fallback"
    alice.event("connected", nick="bob")
    alice.say("chapter nine was wild")
    bob.say("agreed entirely")
    assert bob.event("message", text="chapter nine was wild")["from"] == "alice"
    assert alice.event("message", text="agreed entirely")["from"] == "bob"
    bob.end_input()
    assert bob.wait() == 0
    assert alice.event("peer_left", nick="bob")
    seen = recorder.tcp_payloads(fallback.port)
    assert b'"type":"deliver"' in seen
    for secret in (b"quiet harbour lights", b"chapter nine was wild", b"agreed entirely"):
        assert secret not in seen


def test_without_a_password_the_room_says_the_operator_can_read_it(
    fallback: FallbackProcess, members: list[Member]
) -> None:
    alice = Hosted(fallback, "--nick", "alice", "--room", "open-mic")
    members.append(alice)
    assert alice.event("joined")["open"] is True


def test_a_wrong_room_password_is_told_and_the_room_goes_on(
    fallback: FallbackProcess, members: list[Member]
) -> None:
    alice = Hosted(
        fallback, "--nick", "alice", "--room", "vault", env={"SANDPIPER_PASSWORD": "right one"}
    )
    members.append(alice)
    alice.event("joined")
    mallory = Hosted(
        fallback, "--nick", "mallory", "--room", "vault", env={"SANDPIPER_PASSWORD": "wrong one"}
    )
    members.append(mallory)
    assert mallory.event("error")["reason"] == "wrong_secret"
    assert mallory.wait() == 1
    assert alice.event("wrong_secret", nick="mallory")["attempt"] == 1
    bob = Hosted(
        fallback, "--nick", "bob", "--room", "vault", env={"SANDPIPER_PASSWORD": "right one"}
    )
    members.append(bob)
    bob.event("connected", nick="alice")
    alice.say("only us")
    assert bob.event("message", text="only us")["from"] == "alice"
