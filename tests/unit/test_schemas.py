"""Wire schemas: what the relay accepts, what it refuses, and why."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import ErrorCode, WireError, decode_event, decode_message, decode_request, encode
from schemas.codec import with_req_id
from schemas.events import MemberLeft
from schemas.fields import MAX_SIGNAL_PAYLOAD
from schemas.relay import (
    CreateRoom,
    Error,
    LookupRoom,
    PeerInfo,
    ReceivedSignal,
    RegisterPeer,
    RequestCoordination,
    RoomInfo,
    SendSignal,
)

CODE = "pine-ocean-42"


def frame(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def rejected(data: bytes) -> WireError:
    with pytest.raises(WireError) as caught:
        decode_request(data)
    return caught.value


def test_spec_examples_parse_with_their_exact_fields() -> None:
    assert decode_request(frame(type="create_room", nick="alice", listen_port=6001)) == CreateRoom(
        type="create_room", nick="alice", listen_port=6001
    )
    register = decode_request(
        frame(type="register_peer", code=CODE, nick="alice", host="192.168.1.100", port=6001)
    )
    assert isinstance(register, RegisterPeer)
    assert (register.host, register.port) == ("192.168.1.100", 6001)
    lookup = decode_request(frame(type="lookup_room", code=CODE, nick="bob"))
    assert isinstance(lookup, LookupRoom)
    coordinate = decode_request(
        frame(type="coordinate_connection", code=CODE, peers=["alice", "bob"])
    )
    assert isinstance(coordinate, RequestCoordination)


def test_register_without_an_address_is_allowed() -> None:
    request = decode_request(frame(type="register_peer", code=CODE, nick="bob"))
    assert isinstance(request, RegisterPeer)
    assert request.host is None and request.port is None


def test_req_id_is_accepted_on_every_request() -> None:
    for kind, extra in [
        ("create_room", {}),
        ("lookup_room", {"code": CODE}),
        ("leave_room", {"code": CODE}),
        ("heartbeat", {}),
        ("signal", {"code": CODE, "to": "bob", "payload": "QUJD"}),
    ]:
        assert decode_request(frame(type=kind, req_id="r-1", **extra)).req_id == "r-1"
        assert decode_request(frame(type=kind, req_id=7, **extra)).req_id == 7


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\xff\xfe", ErrorCode.BAD_ENCODING),
        (b"{not json", ErrorCode.BAD_JSON),
        (b"[" * 10_000 + b"]" * 10_000, ErrorCode.BAD_JSON),
        (b'"a string"', ErrorCode.BAD_REQUEST),
        (b"[1, 2]", ErrorCode.BAD_REQUEST),
        (b"{}", ErrorCode.BAD_REQUEST),
        (b'{"type": 5}', ErrorCode.BAD_REQUEST),
        (b'{"type": "launch_missiles"}', ErrorCode.UNKNOWN_TYPE),
        (b'{"type": "room_info", "code": "pine-ocean-42"}', ErrorCode.UNKNOWN_TYPE),
    ],
)
def test_malformed_frames_get_a_specific_error_code(data: bytes, code: ErrorCode) -> None:
    assert rejected(data).code == code


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "lookup_room"},  # missing code
        {"type": "lookup_room", "code": CODE, "extra": 1},  # unknown field
        {"type": "lookup_room", "code": "Pine-Ocean-42"},  # not the code format
        {"type": "lookup_room", "code": "pine-ocean-4"},
        {"type": "lookup_room", "code": "pine-ocean-420"},
        {"type": "lookup_room", "code": "pine-ocean-42-amber-falcon"},  # secret words never go here
        {"type": "register_peer", "code": CODE, "nick": "x" * 33},
        {"type": "register_peer", "code": CODE, "nick": ""},
        {"type": "register_peer", "code": CODE, "nick": "a\u001b[31mb"},
        {"type": "register_peer", "code": CODE, "nick": "evil\u202egnp.exe"},  # bidi override
        {"type": "register_peer", "code": CODE, "nick": " alice"},
        {"type": "register_peer", "code": CODE, "nick": "al\u2028ice"},
        {"type": "register_peer", "code": CODE, "nick": 5},
        {"type": "register_peer", "code": CODE, "nick": "bob", "port": 0},
        {"type": "register_peer", "code": CODE, "nick": "bob", "port": 65536},
        {"type": "register_peer", "code": CODE, "nick": "bob", "port": "6001"},  # no coercion
        {"type": "register_peer", "code": CODE, "nick": "bob", "port": True},
        {"type": "register_peer", "code": CODE, "nick": "bob", "port": 6001.0},
        {"type": "register_peer", "code": CODE, "nick": "bob", "host": "not a host!"},
        {"type": "register_peer", "code": CODE, "nick": "bob", "host": "a" * 300},
        {"type": "create_room", "listen_port": -1},
        {"type": "signal", "code": CODE, "to": "bob", "payload": "x" * (MAX_SIGNAL_PAYLOAD + 1)},
        {"type": "signal", "code": CODE, "to": "bob", "payload": "not base64!"},
        {"type": "signal", "code": CODE, "to": "bob", "payload": ""},
        {"type": "coordinate_connection", "code": CODE, "peers": ["alice"]},
        {"type": "coordinate_connection", "code": CODE, "peers": ["a", "b", "c"]},
        {"type": "heartbeat", "req_id": "x" * 65},
        {"type": "heartbeat", "req_id": -1},
        {"type": "heartbeat", "req_id": "has space"},
    ],
)
def test_invalid_fields_are_rejected_as_bad_request(fields: dict[str, object]) -> None:
    error = rejected(frame(**fields))
    assert error.code == ErrorCode.BAD_REQUEST
    assert error.message.startswith(f"invalid '{fields['type']}'")


def test_error_messages_never_echo_field_values() -> None:
    error = rejected(frame(type="signal", code=CODE, to="bob", payload="secret words!"))
    assert "secret" not in error.message


def test_unknown_type_is_echoed_bounded_and_printable() -> None:
    error = rejected(frame(type="\u001b[2J" + "x" * 100))
    assert error.code == ErrorCode.UNKNOWN_TYPE
    assert "\u001b" not in error.message and len(error.message) < 80


def test_nicks_may_be_unicode_and_exactly_32_characters() -> None:
    for nick in ["Zoë", "李小龙", "x" * 32, "ann marie"]:
        request = decode_request(frame(type="register_peer", code=CODE, nick=nick))
        assert isinstance(request, RegisterPeer) and request.nick == nick


def test_signal_push_uses_the_wire_name_from() -> None:
    push = ReceivedSignal(code=CODE, from_="alice", payload="QUJD")
    assert json.loads(encode(push)) == {
        "type": "signal",
        "code": CODE,
        "from": "alice",
        "payload": "QUJD",
    }
    assert decode_message(encode(push)) == push


def test_absent_optionals_stay_off_the_wire() -> None:
    info = RoomInfo(code=CODE, expires_at=1, peers=[PeerInfo(nick="alice")])
    assert json.loads(encode(info)) == {
        "type": "room_info",
        "code": CODE,
        "expires_at": 1,
        "peers": [{"nick": "alice"}],
    }


def test_events_round_trip() -> None:
    event = MemberLeft(
        code=CODE, nick="bob", reason="timeout", seq=3, room_seq=2, relay="ab" * 8, at=12.5
    )
    assert decode_event(encode(event)) == event


def test_messages_are_immutable() -> None:
    error = Error(code=ErrorCode.ROOM_FULL, message="full")
    with pytest.raises(ValueError, match="frozen"):
        error.message = "changed"  # type: ignore[misc]


nicks = st.text(alphabet=st.characters(categories=["L", "N", "P"]), min_size=1, max_size=32)
ports = st.integers(min_value=1, max_value=65535)


@given(nick=nicks, port=ports, req_id=st.integers(min_value=0, max_value=2**53 - 1))
def test_every_valid_request_round_trips(nick: str, port: int, req_id: int) -> None:
    requests = [
        CreateRoom(type="create_room", nick=nick, listen_port=port, req_id=req_id),
        RegisterPeer(type="register_peer", code=CODE, nick=nick, host="10.0.0.1", port=port),
        SendSignal(type="signal", code=CODE, to=nick, payload="QUJD", req_id=req_id),
    ]
    for request in requests:
        assert decode_request(encode(request)) == request


@given(st.binary(max_size=256))
def test_arbitrary_bytes_parse_or_raise_wire_error(data: bytes) -> None:
    try:
        decode_request(data)
    except WireError as exc:
        assert exc.code in set(ErrorCode)


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.sampled_from(["type", "code", "nick", "x"]), children, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_arbitrary_json_parses_or_raises_wire_error(document: object) -> None:
    try:
        decode_request(json.dumps(document).encode())
    except WireError as exc:
        assert exc.code in set(ErrorCode)


@given(req_id=st.from_regex(r"[\x21-\x7e]{1,64}", fullmatch=True) | st.integers(0, 2**53 - 1))
def test_cached_replies_get_any_valid_req_id_spliced_in_as_valid_json(req_id: str | int) -> None:
    info = RoomInfo(code=CODE, expires_at=1, peers=[PeerInfo(nick='a"b\\c')])
    spliced = decode_message(with_req_id(encode(info), req_id))
    assert spliced == info.model_copy(update={"req_id": req_id})
    assert with_req_id(encode(info), None) == encode(info)
