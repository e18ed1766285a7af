"""The `sandpiper` command: one thin subcommand per role, wiring the packages together."""

from __future__ import annotations

import json
import logging
import signal
import sys
from typing import Annotated, Any, NoReturn

import typer

from sandpiper.config import ConfigError, load_config, parse_duration

app = typer.Typer(
    name="sandpiper",
    help="Code-paired, end-to-end encrypted chat rooms: share a short code, start talking.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _duration(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _stop_on_sigterm() -> None:
    def stop(signum: int, frame: Any) -> NoReturn:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


@app.command()
def relay(
    host: Annotated[
        str, typer.Option(envvar="SANDPIPER_RELAY_HOST", help="Address to bind.")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            min=0,
            max=65535,
            envvar="SANDPIPER_RELAY_PORT",
            help="ROUTER port for requests (0: any free port).",
        ),
    ] = 8000,
    pub_port: Annotated[
        int,
        typer.Option(
            min=0,
            max=65535,
            envvar="SANDPIPER_RELAY_PUB_PORT",
            help="PUB port for room events (0: any free port).",
        ),
    ] = 8001,
    room_ttl: Annotated[
        float,
        typer.Option(
            parser=_duration,
            metavar="DURATION",
            envvar="SANDPIPER_ROOM_TTL",
            help="Lifetime of a room.",
        ),
    ] = "24h",  # type: ignore[assignment]
    member_timeout: Annotated[
        float,
        typer.Option(
            parser=_duration,
            metavar="DURATION",
            envvar="SANDPIPER_MEMBER_TIMEOUT",
            help="Silence after which a member is reported gone.",
        ),
    ] = "15s",  # type: ignore[assignment]
    empty_room_grace: Annotated[
        float,
        typer.Option(
            parser=_duration,
            metavar="DURATION",
            envvar="SANDPIPER_EMPTY_ROOM_GRACE",
            help="How long an empty room keeps its code.",
        ),
    ] = "2m",  # type: ignore[assignment]
    max_rooms: Annotated[
        int, typer.Option(min=1, envvar="SANDPIPER_MAX_ROOMS", help="Live rooms at most.")
    ] = 100_000,
    max_rooms_per_source: Annotated[
        int,
        typer.Option(
            min=1,
            envvar="SANDPIPER_MAX_ROOMS_PER_SOURCE",
            help="Live rooms one address may have created.",
        ),
    ] = 32,
    max_members: Annotated[
        int, typer.Option(min=1, envvar="SANDPIPER_MAX_MEMBERS", help="Members per room at most.")
    ] = 32,
    create_burst: Annotated[
        int,
        typer.Option(
            min=1, envvar="SANDPIPER_CREATE_BURST", help="Rooms one address may create at once."
        ),
    ] = 10,
    create_per_minute: Annotated[
        float,
        typer.Option(
            min=0.001,
            envvar="SANDPIPER_CREATE_PER_MINUTE",
            help="Sustained room creations per address.",
        ),
    ] = 10.0,
    miss_burst: Annotated[
        int,
        typer.Option(
            min=1,
            envvar="SANDPIPER_MISS_BURST",
            help="Unknown room codes one address may try at once.",
        ),
    ] = 5,
    miss_per_minute: Annotated[
        float,
        typer.Option(
            min=0.001,
            envvar="SANDPIPER_MISS_PER_MINUTE",
            help="Sustained unknown-code tries per address.",
        ),
    ] = 12.0,
    signal_burst: Annotated[
        int,
        typer.Option(
            min=1, envvar="SANDPIPER_SIGNAL_BURST", help="Signals one connection may send at once."
        ),
    ] = 200,
    signal_per_second: Annotated[
        float,
        typer.Option(
            min=0.001,
            envvar="SANDPIPER_SIGNAL_PER_SECOND",
            help="Sustained signals per connection.",
        ),
    ] = 50.0,
    log_level: Annotated[
        str, typer.Option(envvar="SANDPIPER_LOG_LEVEL", help="debug, info, warning or error.")
    ] = "info",
) -> None:
    """Run the discovery relay: room codes, members, pushes, and PUB room events."""
    from broker.server import RelayServer
    from broker.settings import RelaySettings

    _configure_logging(log_level)
    try:
        settings = RelaySettings(
            host=host,
            port=port,
            pub_port=pub_port,
            room_ttl=room_ttl,
            member_timeout=member_timeout,
            empty_room_grace=empty_room_grace,
            max_rooms=max_rooms,
            max_rooms_per_source=max_rooms_per_source,
            max_members_per_room=max_members,
            create_burst=create_burst,
            create_per_minute=create_per_minute,
            miss_burst=miss_burst,
            miss_per_minute=miss_per_minute,
            signal_burst=signal_burst,
            signal_per_second=signal_per_second,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    server = RelayServer(settings)
    try:
        server.bind()
    except Exception as exc:  # zmq.ZMQError, but keep zmq out of the CLI's import time
        typer.echo(f"sandpiper relay: cannot listen on {host}:{port}/{pub_port}: {exc}", err=True)
        raise typer.Exit(1) from None
    _stop_on_sigterm()
    try:
        server.serve()
    except KeyboardInterrupt:
        logging.getLogger("sandpiper.relay").info("relay stopping")
    finally:
        server.close()


RelayOption = Annotated[
    list[str] | None,
    typer.Option(
        "--relay",
        envvar="SANDPIPER_RELAY",
        help="Relay HOST:PORT; repeat (or separate with commas) for relays tried in turn.",
    ),
]
NickOption = Annotated[
    str | None, typer.Option(envvar="SANDPIPER_NICK", help="Your name in the room.")
]
PasswordOption = Annotated[
    str | None,
    typer.Option(
        envvar="SANDPIPER_PASSWORD",
        help="Room password mixed into the secret (prefer the env var or --ask-password: "
        "argv is visible to other users).",
    ),
]
AskPasswordOption = Annotated[
    bool, typer.Option("--ask-password", help="Type the room password at a hidden prompt.")
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="One JSON object per line on stdout; stdin lines are sent.")
]
ListenHostOption = Annotated[
    str, typer.Option(envvar="SANDPIPER_LISTEN_HOST", help="Address for direct links.")
]
ListenPortOption = Annotated[
    int, typer.Option(min=0, max=65535, envvar="SANDPIPER_LISTEN_PORT", help="0: any free port.")
]
ConnectTimeoutOption = Annotated[
    float,
    typer.Option(
        parser=_duration,
        metavar="DURATION",
        envvar="SANDPIPER_CONNECT_TIMEOUT",
        help="Time each direct address gets before the next is tried.",
    ),
]
AdvertiseOption = Annotated[
    str | None,
    typer.Option(
        envvar="SANDPIPER_ADVERTISE",
        help="Also offer this HOST[:PORT] for direct links (e.g. a forwarded port).",
    ),
]
PeerTimeoutOption = Annotated[
    float,
    typer.Option(
        parser=_duration,
        metavar="DURATION",
        envvar="SANDPIPER_PEER_TIMEOUT",
        help="Silence on a direct link after which a member is reported gone.",
    ),
]


def _member_options(
    nick: str | None,
    relay: list[str] | None,
    password: str | None,
    ask_password: bool,
    json_mode: bool,
    listen_host: str,
    listen_port: int,
    connect_timeout: float,
    peer_timeout: float,
    advertise: str | None,
) -> Any:
    from peer.members import PeerSettings
    from peer.relay_client import normalise_endpoint
    from sandpiper.chat import (
        DEFAULT_RELAYS,
        MemberOptions,
        check_nick,
        default_nick,
        parse_advertise,
    )

    try:
        chosen = check_nick(nick) if nick is not None else default_nick()
        relays = [
            normalise_endpoint(part)
            for value in (relay or DEFAULT_RELAYS)
            for part in value.replace(",", " ").split()
        ]
        reported = parse_advertise(advertise, listen_port) if advertise else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if ask_password:
        if not sys.stdin.isatty():
            raise typer.BadParameter("--ask-password needs a terminal; use SANDPIPER_PASSWORD")
        password = typer.prompt("Room password", hide_input=True)
    logging.basicConfig(level="WARNING", format="%(levelname)s %(name)s: %(message)s")
    return MemberOptions(
        nick=chosen,
        relays=relays,
        password=password or "",
        json=json_mode,
        listen_host=listen_host,
        listen_port=listen_port,
        relay_timeout=3.0,
        settings=PeerSettings(connect_timeout=connect_timeout, peer_timeout=peer_timeout),
        advertise=reported,
    )


@app.command()
def create(
    nick: NickOption = None,
    relay: RelayOption = None,
    password: PasswordOption = None,
    ask_password: AskPasswordOption = False,
    open_room: Annotated[
        bool,
        typer.Option(
            "--open",
            help="No secret words (the design's plain codes): the relay "
            "operator can read the chat.",
        ),
    ] = False,
    json_mode: JsonOption = False,
    listen_host: ListenHostOption = "0.0.0.0",
    listen_port: ListenPortOption = 0,
    connect_timeout: ConnectTimeoutOption = "1.5s",  # type: ignore[assignment]
    peer_timeout: PeerTimeoutOption = "5s",  # type: ignore[assignment]
    advertise: AdvertiseOption = None,
) -> None:
    """Create a room and print the invite to share."""
    from sandpiper.chat import run_member

    _stop_on_sigterm()  # SIGTERM leaves the room like Ctrl-C: the others are told at once
    options = _member_options(
        nick,
        relay,
        password,
        ask_password,
        json_mode,
        listen_host,
        listen_port,
        connect_timeout,
        peer_timeout,
        advertise,
    )
    raise typer.Exit(run_member(options, invite_text=None, open_room=open_room))


@app.command()
def join(
    code: Annotated[
        str | None,
        typer.Argument(
            envvar="SANDPIPER_CODE",
            show_envvar=True,
            show_default=False,
            help="The invite, like pine-ocean-42-amber-falcon (omit it to type it "
            "at a prompt, or set SANDPIPER_CODE).",
        ),
    ] = None,
    nick: NickOption = None,
    relay: RelayOption = None,
    password: PasswordOption = None,
    ask_password: AskPasswordOption = False,
    json_mode: JsonOption = False,
    listen_host: ListenHostOption = "0.0.0.0",
    listen_port: ListenPortOption = 0,
    connect_timeout: ConnectTimeoutOption = "1.5s",  # type: ignore[assignment]
    peer_timeout: PeerTimeoutOption = "5s",  # type: ignore[assignment]
    advertise: AdvertiseOption = None,
) -> None:
    """Join a room with the invite someone shared."""
    from sandpiper.chat import run_member

    if code is None:
        if not sys.stdin.isatty():
            raise typer.BadParameter("give the invite as an argument or in SANDPIPER_CODE")
        code = typer.prompt("Invite", hide_input=True)
    _stop_on_sigterm()  # SIGTERM leaves the room like Ctrl-C: the others are told at once
    options = _member_options(
        nick,
        relay,
        password,
        ask_password,
        json_mode,
        listen_host,
        listen_port,
        connect_timeout,
        peer_timeout,
        advertise,
    )
    raise typer.Exit(run_member(options, invite_text=code, open_room=False))


@app.command()
def schema(
    indent: Annotated[int, typer.Option(min=0, max=8, help="Indentation (0: one line).")] = 2,
) -> None:
    """Print the JSON Schema of the whole relay protocol."""
    from schemas.jsonschema import protocol_json_schema

    typer.echo(json.dumps(protocol_json_schema(), indent=indent or None, sort_keys=True))


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
