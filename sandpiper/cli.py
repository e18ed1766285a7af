"""The `sandpiper` command: one thin subcommand per role, wiring the packages together."""

from __future__ import annotations

import typer

from sandpiper import members, monitor, netcheck, servers
from sandpiper.app import app
from sandpiper.config import ConfigError, load_config

__all__ = ["app", "main", "members", "monitor", "netcheck", "servers"]


def main() -> None:
    try:
        config = load_config()
    except ConfigError as exc:
        typer.echo(f"sandpiper: {exc}", err=True)
        raise SystemExit(2) from None
    shared = config.get("peer", {})
    for command in ("create", "join"):
        config[command] = {**shared, **config.get(command, {})}
    app(prog_name="sandpiper", default_map=config)
