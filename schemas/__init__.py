"""Sandpiper wire schemas: pydantic v2 models for every message, the single source of truth."""

from schemas.codec import WireError, decode_event, decode_message, decode_request, encode
from schemas.relay import ErrorCode

__all__ = ["ErrorCode", "WireError", "decode_event", "decode_message", "decode_request", "encode"]
