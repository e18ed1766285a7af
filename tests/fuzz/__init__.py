"""Fuzz tests: hypothesis feeds the relay, fallback and peer cores hostile input.

`SANDPIPER_FUZZ_CASES` sets how many examples each test runs (default 2,000, so the normal
suite stays fast); `SANDPIPER_FUZZ_CASES=100000 pytest tests/fuzz` is the full run. The
strategies shared by the three files (hostile JSON values, byte mutations, the kinds of bad
request a server gets) live here too.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, get_args

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

DEFAULT_CASES = 2_000


def fuzz_cases() -> int:
    """Examples per fuzz test, from `SANDPIPER_FUZZ_CASES`."""
    raw = os.environ.get("SANDPIPER_FUZZ_CASES", "").strip()
    if not raw:
        return DEFAULT_CASES
    try:
        cases = int(raw.replace("_", ""))
    except ValueError:
        raise ValueError(f"SANDPIPER_FUZZ_CASES must be a whole number, not {raw!r}") from None
    if cases < 1:
        raise ValueError("SANDPIPER_FUZZ_CASES must be at least 1")
    return cases


def fuzz_settings() -> settings:
    """Every fuzz test's hypothesis settings: `fuzz_cases()` examples, no deadline (a 100k
    run shares the machine with other work), no example database (each run explores anew)."""
    return settings(
        max_examples=fuzz_cases(),
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
        print_blob=True,
    )


# ------------------------------------------------------------------ hostile JSON values

HUGE_STRINGS = [
    ("x", 70_000),  # over the relay's 64 KiB frame cap once encoded
    ("\u00e9", 20_000),
    ("\u202e", 2_000),  # bidi override
    ("\x00", 2_000),
    ("\x1b[2J", 1_000),  # terminal escape
    ("9", 5_000),
    ("A", 4_097),  # one over the signal payload limit
]
"""(piece, repeats): built when drawn, so that strategy reprs stay short."""
TRICKY_STRINGS = [
    "",
    " ",
    "alice",
    " alice",
    "alice\n",
    "ali\x1b[31mce",
    "\u202eecila",
    "\ud800",  # a lone surrogate
    "\ufeff",
    "pine-ocean-42",
    "PINE-OCEAN-42",
    "pine-ocean-42\n",
    "pine-ocean-09",
    "a-b-10",
    "../../etc/passwd",
    "127.0.0.1",
    "::1",
    "256.0.0.1",
    "host name",
    "-1",
    "null",
    "{}",
    "a" * 32,
    "a" * 33,
    "A" * 40,
    "f" * 64,
    "F" * 64,
    "0" * 32,
    "room_created",
    "error",
    "__proto__",
]
TRICKY_NUMBERS = [
    -1,
    0,
    1,
    65_535,
    65_536,
    2**31,
    2**53 - 1,
    2**53,
    2**63,
    2**64,
    -(2**63),
    10**40,
    -0.0,
    0.5,
    1e308,
    -1e-308,
    float("inf"),
    float("-inf"),
    float("nan"),
]

_tricky = st.sampled_from([None, True, False, *TRICKY_NUMBERS, *TRICKY_STRINGS])
hostile_values: st.SearchStrategy[Any] = st.one_of(
    _tricky,
    _tricky,
    _tricky,
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.text(st.characters(codec="ascii", max_codepoint=0x1F), max_size=4),
    st.sampled_from(HUGE_STRINGS).map(lambda huge: huge[0] * huge[1]),
    st.lists(_tricky, max_size=3),
    st.dictionaries(st.sampled_from(["type", "code", "x", "req_id", ""]), _tricky, max_size=2),
)
"""JSON values of every wrong kind: huge, unicode, control characters, out of range."""


# ------------------------------------------------------------------ byte mutations

Mutation = tuple[str, int, int]

mutations: st.SearchStrategy[list[Mutation]] = st.lists(
    st.tuples(
        st.sampled_from(["flip", "truncate", "delete", "insert", "set", "repeat"]),
        st.integers(min_value=0, max_value=2**16),
        st.integers(min_value=0, max_value=255),
    ),
    min_size=1,
    max_size=4,
)
"""Edits of a real frame: bit flips, truncation, deleted/inserted/overwritten/repeated bytes."""


def mutate(data: bytes, edits: Sequence[Mutation]) -> bytes:
    """`data` with `edits` applied in order; positions wrap around the current length."""
    buffer = bytearray(data)
    for kind, position, value in edits:
        size = len(buffer)
        at = position % (size + 1)
        if kind == "flip" and size:
            buffer[at % size] ^= 1 << (value % 8)
        elif kind == "truncate":
            del buffer[at:]
        elif kind == "delete":
            del buffer[at : at + 1 + value % 8]
        elif kind == "insert":
            buffer[at:at] = bytes([value]) * (1 + value % 3)
        elif kind == "set" and size:
            buffer[at % size] = value
        elif kind == "repeat":
            buffer[at:at] = buffer[at : at + 1 + value]
    return bytes(buffer)


# ------------------------------------------------------------------ what a server is sent


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()
"""A change that removes the field."""


@dataclass(frozen=True)
class Raw:
    """Frames as they come: any bytes, any number of frames."""

    frames: list[bytes]


@dataclass(frozen=True)
class Request:
    """A valid request; its symbolic parts are resolved when it is sent."""

    fields: dict[str, Any]


@dataclass(frozen=True)
class Hostile:
    """A valid request with fields replaced, removed (ABSENT) or added; sent escaped or as
    raw UTF-8 (where a lone surrogate becomes invalid UTF-8), maybe with more frames."""

    fields: dict[str, Any]
    changes: list[tuple[str, Any]]
    framing: tuple[bool, tuple[bytes, ...]]
    """(ASCII-only JSON, frames sent after it)."""


@dataclass(frozen=True)
class Mutated:
    """A valid request's bytes, edited."""

    fields: dict[str, Any]
    edits: list[Mutation]


Payload = Raw | Request | Hostile | Mutated


def frames_of(payload: Payload, resolve: Callable[[Any], Any]) -> list[bytes]:
    """The frames to send for `payload`; `resolve` fills in its symbolic parts."""
    if isinstance(payload, Raw):
        return payload.frames
    fields = resolve(payload.fields)
    if isinstance(payload, Request):
        return [json.dumps(fields).encode()]
    if isinstance(payload, Mutated):
        return [mutate(json.dumps(fields).encode(), payload.edits)]
    for name, value in payload.changes:
        if value is ABSENT:
            fields.pop(name, None)
        else:
            fields[name] = value
    ascii_only, extra_frames = payload.framing
    text = json.dumps(fields, ensure_ascii=ascii_only)
    return [text.encode("utf-8", "surrogatepass"), *extra_frames]


GENERIC_FRAMES = [
    b"",
    b"{}",
    b"null",
    b"[]",
    b"0",
    b'"heartbeat"',
    b'{"type":"heartbeat"}\x00',
    b'\xef\xbb\xbf{"type":"heartbeat"}',
    b'{"type":"heartbeat","type":"x"}',
    b'{"type":"heartbeat","req_id":1e400}',
    b'{"type":"heartbeat","req_id":-0}',
    b'{"type":"heartbeat","req_id":"\\ud800"}',
    b'{"type":"heartbeat","req_id":NaN}',
    b"\xc3\x28",
    b"\xed\xa0\x80",
]
_HUGE_FRAMES = [(b"[", 5_000), (b'{"type":', 3_000), (b"x", 70_000), (b'{"a":' * 100 + b"1", 50)]


def raw_frames(interesting: Sequence[bytes]) -> st.SearchStrategy[Raw]:
    """Random bytes, known-awkward frames (deep nesting, BOMs, NaN, surrogates, huge), and
    multipart messages of them, including none at all."""
    awkward = st.one_of(
        st.sampled_from([*GENERIC_FRAMES, *interesting]),
        st.sampled_from(_HUGE_FRAMES).map(lambda huge: huge[0] * huge[1]),
    )
    return st.builds(
        Raw,
        st.one_of(
            st.lists(st.binary(max_size=64), min_size=1, max_size=1),
            st.lists(awkward, min_size=1, max_size=1),
            st.lists(st.one_of(st.binary(max_size=16), awkward), max_size=4),
        ),
    )


FRAMINGS = [(True, ()), (True, ()), (False, ()), (True, (b"",)), (False, (b"{}", b"\xff"))]


def hostile_requests(
    valid: st.SearchStrategy[dict[str, Any]], field_names: Sequence[str]
) -> st.SearchStrategy[Hostile]:
    """`valid` requests with one to three of `field_names` (or strangers) made hostile."""
    names = [*field_names, "from", "admin", "Type", "type ", "x" * 100]
    return st.builds(
        Hostile,
        valid,
        st.lists(
            st.tuples(st.sampled_from(names), st.one_of(st.just(ABSENT), hostile_values)),
            min_size=1,
            max_size=3,
        ),
        st.sampled_from(FRAMINGS),
    )


def mutated_requests(valid: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Mutated]:
    return st.builds(Mutated, valid, mutations)


Fields = dict[type[Any], tuple[list[str], list[str]]]
"""Request model -> (required wire names, optional wire names) the fuzzer fills in."""


def type_of(model: type[Any]) -> str:
    (name,) = get_args(model.model_fields["type"].annotation)
    return str(name)


def valid_requests(
    fields: Fields, values: dict[str, list[Any]], counts: Callable[[type[Any]], int]
) -> list[dict[str, Any]]:
    """Every request type with its required fields first (what a failing example shrinks
    to), then `counts(model)` random mixes of required and optional fields each."""
    rng = random.Random(1)
    found = [
        {"type": type_of(model), **{name: values[name][0] for name in required}}
        for model, (required, _) in fields.items()
    ]
    for model, (required, optional) in fields.items():
        for _ in range(counts(model)):
            request = {"type": type_of(model)}
            request |= {name: rng.choice(values[name]) for name in required}
            request |= {name: rng.choice(values[name]) for name in optional if rng.random() < 0.5}
            found.append(request)
    return found


def assert_fields_cover_the_schema(
    fields: Fields, request_types: frozenset[str] | set[str]
) -> None:
    """If the schema gains a request or a field, the fuzzer must learn to send it."""
    assert {type_of(model) for model in fields} == set(request_types)
    for model, (required, optional) in fields.items():
        wire_names = {info.alias or name for name, info in model.model_fields.items()}
        assert wire_names - {"type"} == set(required) | set(optional), model.__name__
        assert all(model.model_fields[name].is_required() for name in required), model.__name__
