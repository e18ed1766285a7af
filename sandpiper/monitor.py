"""`sandpiper monitor`: watch room events on a relay's PUB socket, live or as JSON lines."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from sandpiper.app import app, duration_option
from sandpiper.members import JsonOption, RelayOption


@app.command()
def monitor(
    codes: Annotated[
        list[str] | None, typer.Argument(help="Room codes to watch (default: every room).")
    ] = None,
    relay: RelayOption = None,
    json_mode: JsonOption = False,
    pub: Annotated[
        str | None,
        typer.Option(help="The PUB socket's HOST:PORT, if the relay cannot be asked for it."),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(
            envvar="SANDPIPER_MONITOR_KEY",
            help="This monitor's key pair (.key_secret from `sandpiper keygen`); default: "
            "monitor.key_secret in the config directory's keys folder, if there.",
        ),
    ] = None,
    relay_key: Annotated[
        str | None,
        typer.Option(
            envvar="SANDPIPER_RELAY_KEY_PUBLIC",
            help="Pin the relay's public key (40 Z85 characters or a .key file).",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(parser=duration_option, metavar="DURATION", help="How long the relay gets."),
    ] = "3s",  # type: ignore[assignment]
    duration: Annotated[
        float | None,
        typer.Option(
            parser=duration_option, metavar="DURATION", help="Stop after this long (scripts)."
        ),
    ] = None,
) -> None:
    """Show room events live: rooms, members, joins and leaves, and any events missed."""
    from peer.invite import parse_invite
    from peer.ui import JsonOutput
    from sandpiper.watcher import Monitor, MonitorError

    try:
        rooms = frozenset(parse_invite(code).room_code for code in codes or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    # JSON lines; a live view on a terminal; otherwise (a log, honcho) one line per event
    output = JsonOutput() if json_mode else None if sys.stdout.isatty() else _plain_line
    try:
        watcher = Monitor(rooms, relay, pub, key, relay_key, timeout, output)
    except MonitorError as exc:
        _fail(str(exc), output if json_mode else None)
    try:
        watcher.run(duration)
    except KeyboardInterrupt:
        pass
    except MonitorError as exc:
        _fail(str(exc), output if json_mode else None)
    finally:
        watcher.close()


def _plain_line(event: dict[str, Any]) -> None:
    from sandpiper.watcher import describe

    sys.stdout.write(describe(event) + "\n")
    sys.stdout.flush()


def _fail(message: str, json_output: Any) -> None:
    if json_output is not None:
        json_output({"event": "error", "message": message})
    else:
        typer.echo(f"sandpiper monitor: {message}", err=True)
    raise typer.Exit(1)
