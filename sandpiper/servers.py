"""Server commands: the discovery relay, the fallback server, and the protocol's schema."""

from __future__ import annotations

import json
import logging
from typing import Annotated

import typer

from sandpiper.app import app, configure_logging, duration_option, stop_on_sigterm


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
    log_level: Annotated[
        str, typer.Option(envvar="SANDPIPER_LOG_LEVEL", help="debug, info, warning or error.")
    ] = "info",
) -> None:
    """Run the discovery relay: room codes, members, pushes, and PUB room events."""
    from broker.server import RelayServer
    from broker.settings import RelaySettings

    configure_logging(log_level)
    if fallback is not None:
        from pydantic import TypeAdapter, ValidationError

        from schemas.fields import ServiceAddress

        try:
            TypeAdapter(ServiceAddress).validate_python(fallback)
        except ValidationError:
            raise typer.BadParameter(f"--fallback takes HOST:PORT, not {fallback!r}") from None
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
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    server = RelayServer(settings)
    try:
        server.bind()
    except Exception as exc:  # zmq.ZMQError, but keep zmq out of the CLI's import time
        typer.echo(f"sandpiper relay: cannot listen on {host}:{port}/{pub_port}: {exc}", err=True)
        raise typer.Exit(1) from None
    stop_on_sigterm()
    try:
        server.serve()
    except KeyboardInterrupt:
        logging.getLogger("sandpiper.relay").info("relay stopping")
    finally:
        server.close()


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
    log_level: Annotated[
        str, typer.Option(envvar="SANDPIPER_LOG_LEVEL", help="debug, info, warning or error.")
    ] = "info",
) -> None:
    """Run the fallback server: forwards sealed records between members it cannot read."""
    from fallback.server import FallbackServer
    from fallback.settings import FallbackSettings

    configure_logging(log_level)
    settings = FallbackSettings(
        host=host,
        port=port,
        member_timeout=member_timeout,
        max_rooms=max_rooms,
        max_members_per_room=max_members,
    )
    server = FallbackServer(settings)
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
