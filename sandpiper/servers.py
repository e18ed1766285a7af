"""Server commands: the discovery relay, the fallback server, and the protocol's schema."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from sandpiper.app import app, configure_logging, duration_option, stop_on_sigterm
from sandpiper.heap import HeapTrimmer


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
            parser=duration_option,
            metavar="DURATION",
            envvar="SANDPIPER_ROOM_TTL",
            help="Lifetime of a room.",
        ),
    ] = "24h",  # type: ignore[assignment]
    member_timeout: Annotated[
        float,
        typer.Option(
            parser=duration_option,
            metavar="DURATION",
            envvar="SANDPIPER_MEMBER_TIMEOUT",
            help="Silence after which a member is reported gone.",
        ),
    ] = "15s",  # type: ignore[assignment]
    empty_room_grace: Annotated[
        float,
        typer.Option(
            parser=duration_option,
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
    fallback: Annotated[
        str | None,
        typer.Option(
            envvar="SANDPIPER_RELAY_FALLBACK",
            help="Advertise this fallback server (HOST:PORT) to clients.",
        ),
    ] = None,
    advertise: Annotated[
        str | None,
        typer.Option(
            envvar="SANDPIPER_RELAY_ADVERTISE",
            help="HOST:PORT clients reach this relay at (a tunnel such as ngrok): room "
            "creators are told it for the invite command, and connections from loopback are "
            "taken to be the tunnel's, so their address is not offered to peers.",
        ),
    ] = None,
    advertise_pub: Annotated[
        str | None,
        typer.Option(
            envvar="SANDPIPER_RELAY_ADVERTISE_PUB",
            help="HOST:PORT monitors reach the room-event PUB socket at.",
        ),
    ] = None,
    allow_monitor: Annotated[
        list[str] | None,
        typer.Option(
            envvar="SANDPIPER_RELAY_ALLOW_MONITOR",
            help="A monitor's public key (40 Z85 characters or a .key file); repeat for more. "
            "With any, room events need CurveZMQ and only these keys may subscribe.",
        ),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(
            envvar="SANDPIPER_RELAY_KEY",
            help="The relay's own key pair (.key_secret from `sandpiper keygen`), so monitors "
            "can pin its public key with --relay-key; without it, a new key each start.",
        ),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            envvar="SANDPIPER_RELAY_STATE_DIR",
            help="Where the relay keeps the key behind room tokens (which let members re-claim "
            "their rooms after a restart). Default: the user data directory.",
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option(envvar="SANDPIPER_LOG_LEVEL", help="debug, info, warning or error.")
    ] = "info",
) -> None:
    """Run the discovery relay: room codes, members, pushes, and PUB room events."""
    from broker.server import RelayServer
    from broker.settings import RelaySettings
    from sandpiper import keys
    from schemas.relay import MEMBER_HEARTBEAT

    configure_logging(log_level)
    for name, value in (
        ("--fallback", fallback),
        ("--advertise", advertise),
        ("--advertise-pub", advertise_pub),
    ):
        _check_service_address(name, value)
    try:
        token_key = keys.token_key(state_dir or keys.relay_state_dir())
        monitor_keys = frozenset(keys.public_key(value) for value in allow_monitor or [])
        pub_secret = None if key is None else keys.load_secret_key(key)[1]
    except keys.KeyFileError as exc:
        raise typer.BadParameter(str(exc)) from None
    if key is not None and not monitor_keys:
        raise typer.BadParameter("--key secures room events only with --allow-monitor")
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
            fallback=fallback,
            advertise=advertise,
            advertise_pub=advertise_pub,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    server = RelayServer(
        settings,
        token_key=token_key,
        pub_secret_key=pub_secret,
        monitor_keys=monitor_keys,
        housekeeping=HeapTrimmer(),
    )
    try:
        server.bind()
    except Exception as exc:  # zmq.ZMQError, but keep zmq out of the CLI's import time
        typer.echo(f"sandpiper relay: cannot listen on {host}:{port}/{pub_port}: {exc}", err=True)
        raise typer.Exit(1) from None
    beat = MEMBER_HEARTBEAT
    if member_timeout < 1.2 * beat:
        logging.getLogger("sandpiper.relay").warning(
            "--member-timeout %gs is hardly longer than the %gs between members' heartbeats: "
            "members will be timed out and come back over and over (15s is the default)",
            member_timeout,
            beat,
        )
    stop_on_sigterm()
    try:
        server.serve()
    except KeyboardInterrupt:
        logging.getLogger("sandpiper.relay").info("relay stopping")
    finally:
        server.close()


def _check_service_address(option: str, value: str | None) -> None:
    if value is None:
        return
    from pydantic import TypeAdapter, ValidationError

    from schemas.fields import ServiceAddress

    try:
        TypeAdapter(ServiceAddress).validate_python(value)
    except ValidationError:
        raise typer.BadParameter(f"{option} takes HOST:PORT, not {value!r}") from None


@app.command()
def keygen(
    name: Annotated[str, typer.Argument(help="File name for the pair.")] = "monitor",
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to write it (default: config dir/keys).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing pair.")] = False,
) -> None:
    """Make a CurveZMQ key pair: NAME.key (public, give it away) and NAME.key_secret."""
    from sandpiper import keys

    try:
        key, public, secret = keys.make_key_pair(directory or keys.keys_dir(), name, force=force)
    except keys.KeyFileError as exc:
        typer.echo(f"sandpiper keygen: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"public key: {key.decode()}")
    typer.echo(f"secret key: {secret} (keep it private)")
    typer.echo(f"public key file: {public}")


@app.command()
def fallback(
    host: Annotated[
        str, typer.Option(envvar="SANDPIPER_FALLBACK_HOST", help="Address to bind.")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            min=0,
            max=65535,
            envvar="SANDPIPER_FALLBACK_PORT",
            help="ROUTER port (0: any free port).",
        ),
    ] = 5000,
    member_timeout: Annotated[
        float,
        typer.Option(
            parser=duration_option,
            metavar="DURATION",
            envvar="SANDPIPER_FALLBACK_MEMBER_TIMEOUT",
            help="Silence after which a member is detached.",
        ),
    ] = "15s",  # type: ignore[assignment]
    max_rooms: Annotated[
        int, typer.Option(min=1, envvar="SANDPIPER_FALLBACK_MAX_ROOMS", help="Rooms at most.")
    ] = 50_000,
    max_members: Annotated[
        int,
        typer.Option(
            min=1, envvar="SANDPIPER_FALLBACK_MAX_MEMBERS", help="Members per room at most."
        ),
    ] = 64,
    deliveries_burst: Annotated[
        int,
        typer.Option(
            min=1,
            envvar="SANDPIPER_FALLBACK_DELIVERIES_BURST",
            help="Deliveries one connection may cause at once (a record to the room counts "
            "once per recipient).",
        ),
    ] = 50_000,
    deliveries_per_second: Annotated[
        float,
        typer.Option(
            min=0.001,
            envvar="SANDPIPER_FALLBACK_DELIVERIES_PER_SECOND",
            help="Rate at which that budget refills.",
        ),
    ] = 20_000.0,
    log_level: Annotated[
        str, typer.Option(envvar="SANDPIPER_LOG_LEVEL", help="debug, info, warning or error.")
    ] = "info",
) -> None:
    """Run the fallback server: forwards sealed records between members it cannot read."""
    from fallback.server import FallbackServer
    from fallback.settings import FallbackSettings

    configure_logging(log_level)
    try:
        settings = FallbackSettings(
            host=host,
            port=port,
            member_timeout=member_timeout,
            max_rooms=max_rooms,
            max_members_per_room=max_members,
            deliveries_burst=deliveries_burst,
            deliveries_per_second=deliveries_per_second,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    server = FallbackServer(settings, housekeeping=HeapTrimmer())
    try:
        server.bind()
    except Exception as exc:  # zmq.ZMQError
        typer.echo(f"sandpiper fallback: cannot listen on {host}:{port}: {exc}", err=True)
        raise typer.Exit(1) from None
    stop_on_sigterm()
    try:
        server.serve()
    except KeyboardInterrupt:
        logging.getLogger("sandpiper.fallback").info("fallback server stopping")
    finally:
        server.close()


@app.command()
def schema(
    indent: Annotated[int, typer.Option(min=0, max=8, help="Indentation (0: one line).")] = 2,
) -> None:
    """Print the JSON Schema of the whole relay protocol."""
    from schemas.jsonschema import protocol_json_schema

    typer.echo(json.dumps(protocol_json_schema(), indent=indent or None, sort_keys=True))
