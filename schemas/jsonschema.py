"""The JSON Schema of the whole relay protocol (what `sandpiper schema` prints)."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from schemas.events import RoomEvent
from schemas.relay import RelayMessage, RelayRequest

DIRECTIONS: dict[str, tuple[str, Any]] = {
    "request": ("A client->relay frame (one ZMQ frame on the client's DEALER).", RelayRequest),
    "message": ("A relay->client frame: a reply or a push, on the same DEALER.", RelayMessage),
    "event": ("The JSON frame of a PUB room event (the first frame is the room code).", RoomEvent),
}


def protocol_json_schema() -> dict[str, Any]:
    """One JSON Schema (draft 2020-12) whose $defs hold every message of every direction."""
    defs: dict[str, Any] = {}
    entries: dict[str, Any] = {}
    for name, (description, union) in DIRECTIONS.items():
        schema = TypeAdapter(union).json_schema(
            by_alias=True, ref_template="#/$defs/{model}", mode="serialization"
        )
        defs.update(schema.pop("$defs", {}))
        schema["description"] = description
        defs[name] = schema
        entries[name] = {"$ref": f"#/$defs/{name}"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Sandpiper discovery relay protocol",
        "description": "Every frame of the relay protocol. See docs/protocol.md.",
        "anyOf": list(entries.values()),
        "$defs": defs,
    }
