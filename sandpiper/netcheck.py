"""`sandpiper netcheck`: the network as the relay and the fallback server see it."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from sandpiper.app import app, duration_option
from sandpiper.members import FallbackOption, JsonOption, RelayOption

TimeoutOption = Annotated[
    float,
    typer.Option(parser=duration_option, metavar="DURATION", help="How long each service gets."),
]


@app.command()
def netcheck(
    relay: RelayOption = None,
    fallback: FallbackOption = None,
    json_mode: JsonOption = False,
    timeout: TimeoutOption = "3s",  # type: ignore[assignment]
) -> None:
    """Public address, NAT behaviour, LAN candidates, and relay / fallback reachability."""
    from peer.netcheck import netcheck as run_checks
    from peer.relay_client import normalise_endpoint
    from sandpiper.chat import relay_endpoints

    try:
        relays = relay_endpoints(relay)
        if fallback is not None:
            normalise_endpoint(fallback)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    report = run_checks(relays, fallback, timeout)
    if json_mode:
        typer.echo(json.dumps(report.as_dict()))
    else:
        _print(report)
    reachable = any(check.reachable for check in report.relays)
    raise typer.Exit(0 if reachable else 1)


def _print(report: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="sandpiper netcheck", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for check in report.relays:
        if not check.reachable:
            table.add_row(f"relay {check.relay}", f"[red]unreachable[/]: {check.error}")
            continue
        table.add_row(f"relay {check.relay}", f"reachable, {check.rtt_ms:.1f} ms round trip")
        seen = ", ".join(
            f"{m.public_host}:{m.public_port} (from local port {m.local_port})"
            for m in check.mappings
        )
        table.add_row("  it sees us at", seen)
    if report.behind_nat is None:
        table.add_row("NAT", "unknown: no relay answered")
    elif not report.behind_nat:
        table.add_row("NAT", "none: the relay sees one of our own addresses")
    else:
        kind = (
            "keeps ports: hole punching can work"
            if report.port_preserving
            else "changes ports: hole punching will try nearby ports, likely fallback"
        )
        table.add_row("NAT", f"yes, {kind}")
    table.add_row("LAN candidates", ", ".join(report.lan))
    service = report.fallback
    if service is None:
        table.add_row("fallback", "none configured or advertised")
    elif service.reachable:
        table.add_row(
            f"fallback {service.address}",
            f"reachable, {service.rtt_ms:.1f} ms round trip ({service.source})",
        )
    else:
        table.add_row(f"fallback {service.address}", f"[red]unreachable[/] ({service.source})")
    console.print(table)
