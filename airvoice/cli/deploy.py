"""``airvoice deploy``: the voice server on a RunPod GPU, from nothing to a ``wss://`` URL."""

from __future__ import annotations

import os
import re
from typing import Annotated

import typer
from rich.markup import escape

from airvoice.cli._cloud import ApiKeyOption, cloud_errors, console, make_client, print_json

REGIONS = (
    "NORTH_AMERICA",
    "SOUTH_AMERICA",
    "EUROPE",
    "ASIA",
    "MIDDLE_EAST",
    "AFRICA",
    "OCEANIA",
)
"""RunPod's ``DataCenterRegion`` values a data center can be in."""
_PANEL_WHERE = "Where"
_PANEL_SERVER = "Server"
_PANEL_RUN = "Run"


def deploy(
    gpu: Annotated[
        str,
        typer.Option(
            help="GPU: an alias (L4, A5000, 4090, L40S, A100, H100...) or any RunPod GPU id "
            "('NVIDIA H200 NVL'...).",
            rich_help_panel=_PANEL_WHERE,
        ),
    ] = "L4",
    gpu_count: Annotated[
        int,
        typer.Option(
            min=1,
            max=8,
            help="GPUs per pod; the language model is split over them (tensor parallelism: "
            "1, 2, 4 or 8). See the hardware guide for when it pays.",
            rich_help_panel=_PANEL_WHERE,
        ),
    ] = 1,
    replicas: Annotated[
        int,
        typer.Option(
            min=1,
            max=32,
            help="Identical GPU pods sharing the network volume, behind a dispatcher pod "
            "(one URL); `airvoice scale` changes the number later.",
            rich_help_panel=_PANEL_WHERE,
        ),
    ] = 1,
    name: Annotated[
        str,
        typer.Option(
            help="Deployment name: its pods carry it; `airvoice pods down --name` removes them.",
            rich_help_panel=_PANEL_RUN,
        ),
    ] = "airvoice",
    replace: Annotated[
        bool,
        typer.Option(
            help="Remove the pods of an existing deployment of that name first (else refuse).",
            rich_help_panel=_PANEL_RUN,
        ),
    ] = False,
    preset: Annotated[
        str, typer.Option(help="Models: ultravox-8b or ultravox-1b.", rich_help_panel=_PANEL_SERVER)
    ] = "ultravox-8b",
    voice: Annotated[
        str, typer.Option(help="Default Kokoro voice.", rich_help_panel=_PANEL_SERVER)
    ] = "af_heart",
    image: Annotated[
        str | None,
        typer.Option(
            help="Container image [default: the published airvoice image].",
            rich_help_panel=_PANEL_SERVER,
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="Session token [default: a new random one].",
            rich_help_panel=_PANEL_SERVER,
            show_default=False,
        ),
    ] = None,
    idle_shutdown: Annotated[
        float,
        typer.Option(
            min=0,
            help="End the pod after this many minutes with no session (0: never).",
            rich_help_panel=_PANEL_SERVER,
        ),
    ] = 30.0,
    idle_action: Annotated[
        str,
        typer.Option(
            help="terminate (the weights stay on the volume) or stop (a stopped pod may come "
            "back with zero GPUs, and its disk bills).",
            rich_help_panel=_PANEL_SERVER,
        ),
    ] = "terminate",
    trusted_proxies: Annotated[
        str | None,
        typer.Option(
            help="Addresses or CIDRs of the proxy in front of the pod whose X-Forwarded-For "
            "names the client, so each client gets its own connection cap (see the security "
            "guide) [default: none].",
            rich_help_panel=_PANEL_SERVER,
        ),
    ] = None,
    allow_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-origin",
            help="Origin (scheme://host[:port]) of a web page on another site that may use "
            "the deployment from a browser: every pod's allowed origins and the dispatcher's "
            "CORS; repeat for several [default: none].",
            rich_help_panel=_PANEL_SERVER,
            show_default=False,
        ),
    ] = None,
    hf_secret: Annotated[
        str | None,
        typer.Option(
            help="Name of a RunPod secret holding your Hugging Face token (sent as "
            "{{ RUNPOD_SECRET_NAME }}, never the value) [default: HF_TOKEN's value].",
            rich_help_panel=_PANEL_SERVER,
            show_default=False,
        ),
    ] = None,
    registry_auth: Annotated[
        str | None,
        typer.Option(
            help="Id of a RunPod container registry credential, for a private image.",
            rich_help_panel=_PANEL_SERVER,
            show_default=False,
        ),
    ] = None,
    volume: Annotated[
        str,
        typer.Option(
            help="Network volume name: reused if it exists, else created.",
            rich_help_panel=_PANEL_WHERE,
        ),
    ] = "airvoice-models",
    volume_size: Annotated[
        int | None,
        typer.Option(
            min=10,
            max=4096,
            help="Volume size in GB [default: the preset's + headroom].",
            rich_help_panel=_PANEL_WHERE,
            show_default=False,
        ),
    ] = None,
    data_center: Annotated[
        list[str] | None,
        typer.Option(
            "--data-center",
            help="Only these data centers, in this order (repeat).",
            rich_help_panel=_PANEL_WHERE,
            show_default=False,
        ),
    ] = None,
    region: Annotated[
        list[str] | None,
        typer.Option(
            "--region",
            help="Only data centers in this region (repeat): EUROPE, NORTH_AMERICA, ASIA...",
            rich_help_panel=_PANEL_WHERE,
            show_default=False,
        ),
    ] = None,
    country: Annotated[
        list[str] | None,
        typer.Option(
            "--country",
            help="Only data centers in this country, ISO code (repeat): FR, DE, US...",
            rich_help_panel=_PANEL_WHERE,
            show_default=False,
        ),
    ] = None,
    cloud: Annotated[
        str,
        typer.Option(
            help="SECURE (network volume, prefetched weights) or COMMUNITY (no volumes there: "
            "the GPU pod downloads the weights at each start).",
            rich_help_panel=_PANEL_WHERE,
        ),
    ] = "SECURE",
    keep_volume: Annotated[
        bool,
        typer.Option(
            help="If the deploy fails, keep a volume it created (with the weights fetched).",
            rich_help_panel=_PANEL_RUN,
        ),
    ] = False,
    skip_prefetch: Annotated[
        bool,
        typer.Option(
            help="The volume already holds the weights: skip the prefetch pod.",
            rich_help_panel=_PANEL_RUN,
        ),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            min=0.01, help="Minutes to wait for the pod to be healthy.", rich_help_panel=_PANEL_RUN
        ),
    ] = 20.0,
    poll_interval: Annotated[
        float, typer.Option(min=0.01, hidden=True, help="Seconds between status polls.")
    ] = 5.0,
    dry_run: Annotated[
        bool,
        typer.Option(
            help="Print the plan and every request; send nothing (no key needed).",
            rich_help_panel=_PANEL_RUN,
        ),
    ] = False,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json", help="Print a JSON result instead of text.", rich_help_panel=_PANEL_RUN
        ),
    ] = False,
    api_key: ApiKeyOption = None,
) -> None:
    """Deploy the voice server to a RunPod GPU pod and print its `wss://` endpoint.

    Reuses (or creates) a network volume for the weights, fills it from a short-lived CPU pod
    (the Hugging Face token goes to that pod only), starts the GPU pod on a host whose driver
    runs the image's CUDA and waits until its `/health` answers. A failed deploy removes the
    pods and volumes it created, and says what it kept.
    """
    from airvoice.cloud.deploy import Deployer, DeployOptions, plan_deploy
    from airvoice.cloud.endpoints import ProxyUrls
    from airvoice.cloud.gpus import resolve_gpu
    from airvoice.cloud.progress import RichReporter, SilentReporter
    from airvoice.cloud.runpod import default_base_url
    from airvoice.cloud.sizing import preset_size
    from airvoice.cloud.specs import DEFAULT_IMAGE, HfCredential, secret_reference
    from airvoice.cloud.timing import Timing

    with cloud_errors():
        regions = tuple(r.strip().upper() for r in region or ())
        bad_region = [r for r in regions if r not in REGIONS]
        if bad_region:
            console.print(
                f"[red]unknown --region {bad_region[0]!r}: use {', '.join(REGIONS)}.[/red]"
            )
            raise typer.Exit(2)
        countries = tuple(c.strip().upper() for c in country or ())
        bad_country = [c for c in countries if not re.fullmatch(r"[A-Z]{2}", c)]
        if bad_country:
            console.print(
                f"[red]--country {bad_country[0]!r} is not a two-letter ISO code "
                "(e.g. FR, DE, US).[/red]"
            )
            raise typer.Exit(2)
        if hf_secret:
            try:
                secret_reference(hf_secret)
            except ValueError as exc:
                console.print(f"[red]--hf-secret: {escape(str(exc))}[/red]")
                raise typer.Exit(2) from exc
        options = DeployOptions(
            gpu=resolve_gpu(gpu),
            preset=preset_size(preset),
            image=image or DEFAULT_IMAGE,
            volume_name=volume,
            name=name,
            voice=voice,
            token=token,
            idle_shutdown_minutes=idle_shutdown,
            idle_action=idle_action.strip().lower(),
            trusted_proxies=tuple(
                p.strip() for p in (trusted_proxies or "").split(",") if p.strip()
            ),
            allowed_origins=tuple(allow_origin or ()),
            volume_size_gb=volume_size,
            data_centers=tuple(data_center or ()),
            regions=regions,
            countries=countries,
            cloud=cloud.strip().upper(),
            skip_prefetch=skip_prefetch,
            hf=HfCredential(
                token=None if hf_secret else (os.environ.get("HF_TOKEN") or None),
                secret=hf_secret,
            ),
            registry=registry_auth,
            replace=replace,
            keep_volume=keep_volume,
            gpu_count=gpu_count,
            replicas=replicas,
        )
        proxy = ProxyUrls.from_env()
        if dry_run:
            plan = plan_deploy(options, default_base_url(), proxy)
            if json_output:
                print_json(plan.to_json())
            else:
                _print_plan(plan)
            return
        if not options.hf.given and not (skip_prefetch and options.uses_volume):
            console.print(
                "[yellow]No Hugging Face token (HF_TOKEN or --hf-secret): the gated Llama "
                "weights cannot be fetched unless the volume already holds them.[/yellow]"
            )
        timing = Timing(
            poll_seconds=poll_interval,
            ready_timeout_seconds=timeout * 60,
            log_idle_seconds=min(1.0, max(0.2, poll_interval)),
        )
        reporter = SilentReporter() if json_output else RichReporter(console)
        with make_client(api_key) as client:
            result = Deployer(client, options, reporter, proxy=proxy, timing=timing).run()
        if json_output:
            print_json(result.to_json())
            return
        out = console
        out.print(
            f"\n[bold green]airvoice is live[/bold green] on {escape(result.gpu)} in "
            f"{escape(result.data_center)} ({escape(result.cloud)})"
        )
        out.print(f"  endpoint  {escape(result.endpoint)}", highlight=False, soft_wrap=True)
        out.print(f"  token     {escape(result.token)}", highlight=False, soft_wrap=True)
        if result.dispatcher_pod_id:
            out.print(
                f"  replicas  {escape(', '.join(result.replica_pod_ids))}; dispatcher "
                f"{escape(result.dispatcher_pod_id)}  (${result.cost_per_hour:.2f}/hour in all)",
                highlight=False,
                soft_wrap=True,
            )
        else:
            out.print(
                f"  pod       {escape(result.pod_id)}  (${result.cost_per_hour:.2f}/hour)",
                highlight=False,
            )
        if idle_shutdown > 0:
            verb = "terminates" if result.idle_action == "terminate" else "stops"
            what = "each replica" if result.dispatcher_pod_id else "the pod"
            out.print(
                f"  {what} {verb} itself after {idle_shutdown:g} min with no session",
                highlight=False,
            )
            if result.dispatcher_pod_id:
                out.print(
                    f"  the dispatcher {verb} itself {options.dispatcher_idle_minutes:g} min "
                    "after its last replica",
                    highlight=False,
                )
        out.print(f"\nConnect:  {escape(result.talk_command)}", highlight=False, soft_wrap=True)
        out.print(
            f"Remove:   {escape(result.down_command)}  (add --volume to delete the weights too)",
            highlight=False,
            soft_wrap=True,
        )
        typer.echo(result.endpoint)


def _print_plan(plan: object) -> None:
    import json

    console.print("[bold]dry run[/bold]: nothing is sent. The plan:")
    for i, step in enumerate(plan.steps, 1):  # type: ignore[attr-defined]
        console.print(f"  {i}. {escape(step)}", highlight=False, soft_wrap=True)
    console.print("\nRequests:")
    for request in plan.requests:  # type: ignore[attr-defined]
        note = f"  # {request.note}" if request.note else ""
        typer.echo(f"{request.method} {request.url}{note}")
        if request.body is not None:
            typer.echo(json.dumps(request.body, indent=2, sort_keys=True))
