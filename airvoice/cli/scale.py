"""``airvoice scale``: change the number of replicas of a deployment."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from airvoice.cli._cloud import ApiKeyOption, cloud_errors, console, make_client, print_json


def scale(
    name: Annotated[str, typer.Argument(help="The deployment (`deploy --name`).")],
    replicas: Annotated[int, typer.Argument(min=1, help="How many replicas it should have.")],
    drain_timeout: Annotated[
        float,
        typer.Option(
            min=0,
            help="Minutes a removed replica may take to finish its live sessions before it is "
            "terminated anyway.",
        ),
    ] = 10.0,
    timeout: Annotated[
        float, typer.Option(min=0.01, help="Minutes to wait for a new replica to be healthy.")
    ] = 20.0,
    poll_interval: Annotated[
        float, typer.Option(min=0.01, hidden=True, help="Seconds between status polls.")
    ] = 5.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON result.")] = False,
    api_key: ApiKeyOption = None,
) -> None:
    """Add replicas (copies of one, on the same network volume) or remove some: a removed
    replica first leaves the dispatcher, finishes its live sessions, then terminates."""
    from airvoice.cloud.endpoints import ProxyUrls
    from airvoice.cloud.progress import RichReporter, SilentReporter
    from airvoice.cloud.scale import Scaler
    from airvoice.cloud.timing import Timing

    timing = Timing(
        poll_seconds=poll_interval,
        ready_timeout_seconds=timeout * 60,
        log_idle_seconds=min(1.0, max(0.2, poll_interval)),
    )
    reporter = SilentReporter() if json_output else RichReporter(console)
    with cloud_errors(), make_client(api_key) as client:
        scaler = Scaler(
            client,
            name,
            reporter,
            proxy=ProxyUrls.from_env(),
            timing=timing,
            drain_timeout_seconds=drain_timeout * 60,
            drain_poll_seconds=poll_interval,
        )
        result = scaler.run(replicas)
    if json_output:
        print_json(result.to_json())
        return
    console.print(
        f"[bold]{escape(name)}[/bold]: {len(result.replicas)} replicas "
        f"({escape(', '.join(result.replicas))})",
        highlight=False,
        soft_wrap=True,
    )
    if result.added:
        console.print(f"  added    {escape(', '.join(result.added))}", highlight=False)
    if result.removed:
        console.print(f"  removed  {escape(', '.join(result.removed))}", highlight=False)
    if result.cut_sessions:
        console.print(
            f"  [yellow]{result.cut_sessions} sessions were still open at the drain timeout"
            "[/yellow]"
        )
