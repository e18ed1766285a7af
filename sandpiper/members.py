"""Member commands: `sandpiper create` and `sandpiper join`."""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import typer

from sandpiper.app import app, duration_option, stop_on_sigterm

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
        parser=duration_option,
        metavar="DURATION",
        envvar="SANDPIPER_CONNECT_TIMEOUT",
        help="Time each direct address gets before the next is tried.",
    ),
]
FallbackOption = Annotated[
    str | None,
    typer.Option(
        envvar="SANDPIPER_FALLBACK",
        help="Fallback server HOST:PORT (overrides the one the relay advertises).",
    ),
]
TransportOption = Annotated[
    str,
    typer.Option(
        envvar="SANDPIPER_TRANSPORT",
        help="auto: direct, else through the fallback server; p2p: direct only; "
        "fallback: always through the fallback server.",
    ),
]
DirectTimeoutOption = Annotated[
    float,
    typer.Option(
        parser=duration_option,
        metavar="DURATION",
        envvar="SANDPIPER_DIRECT_TIMEOUT",
        help="With auto: time without a direct path before using the fallback server.",
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
        parser=duration_option,
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
    fallback: str | None,
    transport: str,
    direct_timeout: float,
) -> Any:
    from peer.members import PeerSettings
    from peer.relay_client import normalise_endpoint
    from sandpiper.chat import (
        MemberOptions,
        check_nick,
        default_nick,
        parse_advertise,
        relay_endpoints,
    )

    try:
        chosen = check_nick(nick) if nick is not None else default_nick()
        relays = relay_endpoints(relay)
        reported = parse_advertise(advertise, listen_port) if advertise else None
        if transport not in ("auto", "p2p", "fallback"):
            raise ValueError("--transport is auto, p2p or fallback")
        if fallback is not None:
            normalise_endpoint(fallback)
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
        settings=PeerSettings(
            connect_timeout=connect_timeout,
            peer_timeout=peer_timeout,
            direct_timeout=direct_timeout,
            transport=transport,  # type: ignore[arg-type]
        ),
        advertise=reported,
        fallback=fallback,
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
    fallback: FallbackOption = None,
    transport: TransportOption = "auto",
    direct_timeout: DirectTimeoutOption = "3s",  # type: ignore[assignment]
) -> None:
    """Create a room and print the invite to share."""
    from sandpiper.chat import run_member

    stop_on_sigterm()  # SIGTERM leaves the room like Ctrl-C: the others are told at once
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
        fallback,
        transport,
        direct_timeout,
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
    fallback: FallbackOption = None,
    transport: TransportOption = "auto",
    direct_timeout: DirectTimeoutOption = "3s",  # type: ignore[assignment]
) -> None:
    """Join a room with the invite someone shared."""
    from sandpiper.chat import run_member

    if code is None:
        if not sys.stdin.isatty():
            raise typer.BadParameter("give the invite as an argument or in SANDPIPER_CODE")
        code = typer.prompt("Invite", hide_input=True)
    stop_on_sigterm()  # SIGTERM leaves the room like Ctrl-C: the others are told at once
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
        fallback,
        transport,
        direct_timeout,
    )
    raise typer.Exit(run_member(options, invite_text=code, open_room=False))


@app.command()
def server(
    host: Annotated[
        str, typer.Option(envvar="SANDPIPER_SERVER_HOST", help="Fallback server host.")
    ],
    port: Annotated[int, typer.Option(min=1, max=65535, envvar="SANDPIPER_SERVER_PORT")] = 5000,
    room: Annotated[
        str, typer.Option(envvar="SANDPIPER_ROOM", help="Room name on that server.")
    ] = "lobby",
    nick: NickOption = None,
    password: PasswordOption = None,
    ask_password: AskPasswordOption = False,
    json_mode: JsonOption = False,
    peer_timeout: PeerTimeoutOption = "5s",  # type: ignore[assignment]
) -> None:
    """Chat in a room hosted on a fallback server (the original server mode): no relay, no P2P.

    With a room password the chat is end-to-end encrypted (a PAKE through the server);
    without one, the server's operator can read it.
    """
    from sandpiper.chat import run_hosted_member

    stop_on_sigterm()
    if not room.strip() or len(room) > 64:
        raise typer.BadParameter("a room name is 1-64 characters")
    options = _member_options(
        nick,
        None,
        password,
        ask_password,
        json_mode,
        "127.0.0.1",
        0,
        1.5,
        peer_timeout,
        None,
        None,
        "fallback",
        3.0,
    )
    raise typer.Exit(run_hosted_member(options, server=f"{host}:{port}", room=room))
