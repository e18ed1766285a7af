"""Bytes <-> wire models: one-frame JSON codec with precise, stable errors for bad input."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import pydantic_core
from pydantic import BaseModel, TypeAdapter, ValidationError

from schemas.events import RoomEvent
from schemas.relay import REQUEST_TYPES, ErrorCode, RelayMessage, RelayRequest

_REQUESTS: TypeAdapter[RelayRequest] = TypeAdapter(RelayRequest)
_MESSAGES: TypeAdapter[RelayMessage] = TypeAdapter(RelayMessage)
_EVENTS: TypeAdapter[RoomEvent] = TypeAdapter(RoomEvent)

_MAX_REPORTED_ERRORS = 3

T = TypeVar("T")


class WireError(Exception):
    """A frame the receiver cannot accept; `code` is an ErrorCode, the message is for humans."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def encode(message: BaseModel) -> bytes:
    """One UTF-8 JSON object, aliases applied (`from`), absent optionals left out."""
    return message.__pydantic_serializer__.to_json(message, by_alias=True, exclude_none=True)


def with_req_id(encoded: bytes, req_id: str | int | None) -> bytes:
    """An encoded JSON object with `req_id` added: lets a server reuse one encoded reply."""
    if req_id is None:
        return encoded
    return b'%s,"req_id":%s}' % (encoded[:-1], json.dumps(req_id).encode())


def decode_request(frame: bytes) -> RelayRequest:
    """Parse one client->relay frame, or raise WireError saying exactly what is wrong."""
    return _decode(_REQUESTS, frame, REQUEST_TYPES)


def decode_message(frame: bytes) -> RelayMessage:
    """Parse one relay->client frame (a reply or a push)."""
    return _decode(_MESSAGES, frame, None)


def decode_event(frame: bytes) -> RoomEvent:
    """Parse the JSON part of one PUB room event."""
    return _decode(_EVENTS, frame, None)


def decode_with(adapter: TypeAdapter[T], frame: bytes, known_types: frozenset[str] | None) -> T:
    """Parse `frame` as `adapter`'s type with the same diagnostics as the relay's requests."""
    return _decode(adapter, frame, known_types)


def _decode(adapter: TypeAdapter[T], frame: bytes, known_types: frozenset[str] | None) -> T:
    try:
        return adapter.validate_json(frame)
    except ValidationError as exc:
        raise _diagnose(frame, exc, known_types) from None


def _diagnose(frame: bytes, exc: ValidationError, known_types: frozenset[str] | None) -> WireError:
    """Slow path, bad input only: turn a failed parse into the most specific error."""
    try:
        frame.decode("utf-8")
    except UnicodeDecodeError:
        return WireError(ErrorCode.BAD_ENCODING, "frame is not valid UTF-8")
    try:
        document: Any = pydantic_core.from_json(frame)
    except ValueError as json_error:
        if "recursion limit" in str(json_error):
            return WireError(ErrorCode.BAD_JSON, "frame is nested too deeply")
        return WireError(ErrorCode.BAD_JSON, "frame is not valid JSON")
    if not isinstance(document, dict):
        return WireError(ErrorCode.BAD_REQUEST, "frame must hold a JSON object")
    kind = document.get("type")
    if kind is None:
        return WireError(ErrorCode.BAD_REQUEST, "missing field 'type'")
    if not isinstance(kind, str):
        return WireError(ErrorCode.BAD_REQUEST, "field 'type' must be a string")
    if known_types is not None and kind not in known_types:
        return WireError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {_quote(kind)}")
    problems = []
    for error in exc.errors(include_url=False, include_input=False)[:_MAX_REPORTED_ERRORS]:
        # The first location element is the union tag; the rest names the field.
        location = ".".join(str(part) for part in error["loc"][1:]) or "frame"
        problems.append(f"{location}: {error['msg']}")
    return WireError(ErrorCode.BAD_REQUEST, f"invalid {_quote(kind)}: " + "; ".join(problems))


def _quote(text: str, limit: int = 32) -> str:
    """Echo untrusted text back safely: bounded, printable ASCII only."""
    shown = text[:limit].encode("ascii", "backslashreplace").decode("ascii")
    shown = "".join(ch if 0x20 <= ord(ch) < 0x7F else "?" for ch in shown)
    return repr(shown + ("..." if len(text) > limit else ""))
