"""The typer application and what its commands share (durations, logging, SIGTERM)."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any, NoReturn

import typer

from sandpiper.config import parse_duration

app = typer.Typer(
    name="sandpiper",
    help="Code-paired, end-to-end encrypted chat rooms: share a short code, start talking.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def duration_option(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def stop_on_sigterm() -> None:
    def stop(signum: int, frame: Any) -> NoReturn:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
