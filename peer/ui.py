"""What a member sees and types: JSON lines for scripts, a rich terminal for people.

Text from the network is made safe before display: control and formatting characters (escape
sequences, bidi overrides) are replaced, and rich markup is never interpreted.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from datetime import datetime
from typing import Any, TextIO

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

_COLOURS = [
    "cyan",
    "magenta",
    "green",
    "yellow",
    "blue",
    "bright_red",
    "bright_cyan",
    "bright_magenta",
    "bright_green",
    "orange3",
]


def sanitize(text: str) -> str:
    """Printable text only: anything a terminal could act on becomes U+FFFD."""
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in text)


class JsonOutput:
    """One JSON object per line on stdout: the scripting contract (ASCII-escaped, flushed)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()
        self._encode = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode

    def __call__(self, event: dict[str, Any]) -> None:
        line = self._encode(event)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


class RichOutput:
    def __init__(self, me: str, console: Console | None = None) -> None:
        self.me = me
        self.console = console or Console(highlight=False, soft_wrap=True)

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(event)

    def typed(self, line: str) -> None:
        """What the user just entered, kept on screen: a message as it is sent, or a command."""
        if line.strip().startswith("/"):
            self._line(Text(f"{self.me}> {line.strip()}", style="dim"))
        else:
            self._line(self._nick(self.me), Text(": "), Text(sanitize(line)))

    def _line(self, *parts: Text | str) -> None:
        stamp = Text(datetime.now().strftime("%H:%M:%S "), style="dim")
        self.console.print(Text.assemble(stamp, *parts))

    def _nick(self, nick: str) -> Text:
        colour = _COLOURS[hashlib.sha256(nick.encode()).digest()[0] % len(_COLOURS)]
        return Text(sanitize(nick), style=f"bold {colour}")

    def _on_room_created(self, event: dict[str, Any]) -> None:
        invite = event["code"]
        relay = f" --relay {event['relay']}" if event.get("relay") else ""
        body = Text.assemble(
            ("Invite: ", "bold"),
            (invite, "bold green"),
            "\n\n",
            "On the other machine run\n  ",
            (f"sandpiper join {invite}{relay}", "bold"),
            "\n",
            "or, to keep the code out of process lists, run\n  ",
            (f"sandpiper join{relay}", "bold"),
            "\nand type the invite at its prompt.",
        )
        if event.get("open"):
            body.append(
                "\n\nOPEN ROOM: no secret words; the relay operator can read this chat.",
                style="bold red",
            )
        self.console.print(Panel(body, title="Sandpiper room", expand=False))

    def _on_joined(self, event: dict[str, Any]) -> None:
        self._line(
            Text(f"joined {sanitize(event['room'])} as "),
            self._nick(self.me),
            Text(" - waiting for the others to prove the same code", style="dim"),
        )
        if event.get("open"):
            operator = "server" if event.get("server") else "relay"
            warning = f"NO SECRET: the {operator} operator can read this chat."
            self._line(Text(warning, style="bold red"))

    def _on_peer_joined(self, event: dict[str, Any]) -> None:
        self._line(
            self._nick(event["nick"]), Text(" is in the room; checking the code…", style="dim")
        )

    def _on_connected(self, event: dict[str, Any]) -> None:
        self._line(
            self._nick(event["nick"]),
            Text(f" connected ({event['path']}, encrypted)", style="green"),
        )

    def _on_path_changed(self, event: dict[str, Any]) -> None:
        how = "through the fallback server" if event["path"] == "fallback" else "directly"
        self._line(
            self._nick(event["nick"]), Text(f" now reached {how} ({event['path']})", style="yellow")
        )

    def _on_message(self, event: dict[str, Any]) -> None:
        self._line(self._nick(event["from"]), Text(": "), Text(sanitize(event["text"])))

    def _on_peer_left(self, event: dict[str, Any]) -> None:
        reason = " (no answer)" if event.get("reason") == "timeout" else ""
        self._line(self._nick(event["nick"]), Text(f" left{reason}", style="dim"))

    def _on_wrong_secret(self, event: dict[str, Any]) -> None:
        self._line(
            Text("someone tried to join as ", style="yellow"),
            self._nick(event["nick"]),
            Text(
                f" with a wrong code or password ({event['attempt']} of {event['limit']})",
                style="yellow",
            ),
        )

    def _on_unconfirmed(self, event: dict[str, Any]) -> None:
        self._line(
            self._nick(event["nick"]),
            Text(
                " holds a different code or password: ignored (one of us has it wrong)",
                style="yellow",
            ),
        )

    def _on_join_refused(self, event: dict[str, Any]) -> None:
        self._line(
            Text("refused ", style="yellow"),
            self._nick(event["nick"]),
            Text(": the room is locked, so no key exchange is run with anyone new", style="dim"),
        )

    def _on_room_locked(self, event: dict[str, Any]) -> None:
        self._line(
            Text(
                "the room is locked: it accepts no new members (too many wrong codes)",
                style="bold yellow",
            )
        )

    def _on_relay_lost(self, event: dict[str, Any]) -> None:
        self._line(Text(event["message"], style="yellow"))

    def _on_relay_back(self, event: dict[str, Any]) -> None:
        self._line(Text("the relay answers again", style="green"))

    def _on_rejoined(self, event: dict[str, Any]) -> None:
        self._line(Text("the relay restarted; this room is back on it", style="green"))

    def _on_error(self, event: dict[str, Any]) -> None:
        self._line(Text(sanitize(event["message"]), style="bold red"))

    def _on_help(self, event: dict[str, Any]) -> None:
        self._line(Text(event["text"], style="dim"))

    def _on_peers(self, event: dict[str, Any]) -> None:
        table = Table("member", "state", "path", "round trip", box=None)
        for peer in event["peers"]:
            rtt = "-" if peer["rtt_ms"] is None else f"{peer['rtt_ms']:.1f} ms"
            table.add_row(self._nick(peer["nick"]), peer["state"], peer["path"] or "-", rtt)
        if not event["peers"]:
            table.add_row("(nobody else yet)", "", "", "")
        self.console.print(table)
