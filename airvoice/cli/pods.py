"""``airvoice pods ...`` and ``airvoice volumes ...``: what runs (and bills) on RunPod."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from airvoice.cli._cloud import (
    ApiKeyOption,
    JsonOption,
    cloud_errors,
    console,
    make_client,
    print_json,
)

pods_app = typer.Typer(
    help="List, inspect, stop, start and remove RunPod pods; tear a deployment down.",
    no_args_is_help=True,
)
volumes_app = typer.Typer(
    help="List, create and remove RunPod network volumes.", no_args_is_help=True
)

PodArg = Annotated[str, typer.Argument(help="Pod id (see `airvoice pods list`).")]


def _pod_json(pod: Any) -> dict[str, Any]:
    return {
        "id": pod.id,
        "name": pod.name,
        "status": pod.status,
        "gpu": pod.gpu_id,
        "cpu": pod.cpu_id,
        "data_center": pod.data_center,
        "cost_per_hour": pod.cost_per_hour,
        "image": pod.image,
        "volume_id": pod.volume_id,
        "deployment": pod.deployment,
        "cuda_version": pod.cuda_version,
    }


def _pod_table(pods: list[Any]) -> Table:
    table = Table("id", "name", "status", "machine", "data center", "$/hour")
    for pod in pods:
        table.add_row(
            pod.id,
            pod.name,
            pod.status,
            pod.gpu_id or pod.cpu_id or "",
            pod.data_center or "",
            f"{pod.cost_per_hour:.2f}",
        )
    return table


@pods_app.command("list")
def pods_list(json_output: JsonOption = False, api_key: ApiKeyOption = None) -> None:
    """Every pod of the account."""
    with cloud_errors(), make_client(api_key) as client:
        pods = client.list_pods()
    if json_output:
        print_json([_pod_json(p) for p in pods])
    elif not pods:
        console.print("no pods")
    else:
        console.print(_pod_table(pods))


@pods_app.command("status")
def pods_status(
    pod_id: PodArg, json_output: JsonOption = False, api_key: ApiKeyOption = None
) -> None:
    """One pod's status, cost and ports."""
    with cloud_errors(), make_client(api_key) as client:
        pod = client.get_pod(pod_id)
    if json_output:
        print_json(_pod_json(pod))
        return
    console.print(_pod_table([pod]))
    from airvoice.cloud.endpoints import ProxyUrls

    proxy = ProxyUrls.from_env()
    for port in pod.raw.get("ports") or []:
        number, _, kind = str(port).partition("/")
        if kind == "http" and number.isdigit():
            console.print(f"  port {port}: {proxy.base(pod.id, int(number))}", highlight=False)
    for port in pod.runtime_ports:  # TCP mappings only
        console.print(
            f"  port {port.get('private')}/tcp: {port.get('ip')}:{port.get('public')}",
            highlight=False,
        )


def _action(pod_id: str, action: str, json_output: bool, api_key: str | None) -> None:
    with cloud_errors(), make_client(api_key) as client:
        pod = client.pod_action(pod_id, action) or client.get_pod(pod_id)
    if json_output:
        print_json(_pod_json(pod))
    else:
        console.print(f"{action}: pod {pod.id} is {pod.status}", highlight=False)


@pods_app.command("stop")
def pods_stop(
    pod_id: PodArg, json_output: JsonOption = False, api_key: ApiKeyOption = None
) -> None:
    """Stop a pod: the GPU is released and billing stops; the volume keeps the weights."""
    _action(pod_id, "stop", json_output, api_key)


@pods_app.command("start")
def pods_start(
    pod_id: PodArg, json_output: JsonOption = False, api_key: ApiKeyOption = None
) -> None:
    """Start a stopped pod again."""
    _action(pod_id, "start", json_output, api_key)


@pods_app.command("logs")
def pods_logs(
    pod_id: PodArg,
    tail: Annotated[int, typer.Option(min=0, max=5000, help="Lines of history first.")] = 100,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming.")] = False,
    api_key: ApiKeyOption = None,
) -> None:
    """A pod's log (container and system), as RunPod streams it."""
    import httpx

    with cloud_errors(), make_client(api_key) as client:
        if not follow:
            for event in client.tail_logs(pod_id, tail, idle_seconds=2.0, max_seconds=30.0):
                typer.echo(event.line)
            return
        last: str | None = None
        while True:
            try:
                with client.pod_log_stream(pod_id, tail=tail, last_event_id=last) as stream:
                    for event in stream:
                        last = event.id or last
                        typer.echo(event.line)
            except httpx.TransportError:
                pass  # the stream dropped: resume from the last event
            if client.get_pod(pod_id).status in ("EXITED", "ERROR", "TERMINATED"):
                return


@pods_app.command("rm")
def pods_rm(
    pod_id: PodArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    json_output: JsonOption = False,
    api_key: ApiKeyOption = None,
) -> None:
    """Terminate and delete a pod (its network volume stays)."""
    if not yes and not json_output:
        typer.confirm(f"Terminate pod {pod_id} for good?", abort=True)
    from airvoice.cloud.pods import remove_pod

    with cloud_errors(), make_client(api_key) as client:
        remove_pod(client, pod_id)
    if json_output:
        print_json({"id": pod_id, "removed": True})
    else:
        console.print(f"pod {pod_id} removed", highlight=False)


@pods_app.command("down")
def pods_down(
    name: Annotated[
        str, typer.Option(help="The deployment (`airvoice deploy --name`).")
    ] = "airvoice",
    volume: Annotated[
        bool,
        typer.Option(
            "--volume",
            help="Also delete the network volumes its pods mounted (the weights go with them).",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    json_output: JsonOption = False,
    api_key: ApiKeyOption = None,
) -> None:
    """Tear down a deployment: every pod it made (serving and prefetch) and, with --volume,
    its network volume."""
    from airvoice.cloud.errors import BadRequestError, NotFoundError
    from airvoice.cloud.pods import deployment_pods, remove_pod

    with cloud_errors(), make_client(api_key) as client:
        pods = deployment_pods(client, name)
        volume_ids = sorted({p.volume_id for p in pods if p.volume_id}) if volume else []
        if not pods and not volume_ids:
            if json_output:
                print_json({"deployment": name, "pods": [], "volumes": []})
            else:
                console.print(f"no pods of the deployment {name!r}", highlight=False)
            return
        if not yes and not json_output:
            what = f"{len(pods)} pod(s)" + (
                f" and volume(s) {', '.join(volume_ids)}" if volume_ids else ""
            )
            typer.confirm(f"Remove {what} of {name!r} for good?", abort=True)
        for pod in pods:
            remove_pod(client, pod.id)
            if not json_output:
                console.print(f"pod {pod.id} ({pod.name}) removed", highlight=False)
        removed_volumes, kept = [], []
        for volume_id in volume_ids:
            try:
                client.delete_volume(volume_id)
                removed_volumes.append(volume_id)
            except NotFoundError:
                removed_volumes.append(volume_id)
            except BadRequestError as exc:  # still mounted by a pod of another deployment
                kept.append({"id": volume_id, "reason": exc.detail})
        if not json_output:
            for volume_id in removed_volumes:
                console.print(f"volume {volume_id} removed", highlight=False)
            for entry in kept:
                console.print(
                    f"[yellow]volume {entry['id']} kept: {entry['reason']}[/yellow]",
                    highlight=False,
                )
            if pods and not volume:
                console.print("the network volume stays (add --volume to delete it too)")
    if json_output:
        print_json(
            {
                "deployment": name,
                "pods": [p.id for p in pods],
                "volumes": removed_volumes,
                "kept_volumes": kept,
            }
        )


def _volume_json(volume: Any) -> dict[str, Any]:
    return {
        "id": volume.id,
        "name": volume.name,
        "size_gb": volume.size_gb,
        "data_center": volume.data_center,
        "type": volume.type,
    }


@volumes_app.command("list")
def volumes_list(json_output: JsonOption = False, api_key: ApiKeyOption = None) -> None:
    """Every network volume of the account."""
    with cloud_errors(), make_client(api_key) as client:
        volumes = client.list_volumes()
    if json_output:
        print_json([_volume_json(v) for v in volumes])
        return
    if not volumes:
        console.print("no network volumes")
        return
    table = Table("id", "name", "GB", "data center", "type")
    for v in volumes:
        table.add_row(v.id, v.name, str(v.size_gb), v.data_center, v.type)
    console.print(table)


@volumes_app.command("create")
def volumes_create(
    name: Annotated[str, typer.Argument(help="Volume name.")],
    data_center: Annotated[str, typer.Option(help="Data center, e.g. EU-RO-1.")],
    size: Annotated[int, typer.Option(min=10, max=4096, help="Size in GB.")] = 30,
    json_output: JsonOption = False,
    api_key: ApiKeyOption = None,
) -> None:
    """Create a network volume (billed per GB per month until removed)."""
    from airvoice.cloud.specs import volume_request

    with cloud_errors(), make_client(api_key) as client:
        volume = client.create_volume(volume_request(name, size, data_center))
    if json_output:
        print_json(_volume_json(volume))
    else:
        console.print(
            f"volume {volume.name} ({volume.id}, {volume.size_gb} GB) in {volume.data_center}",
            highlight=False,
        )


@volumes_app.command("rm")
def volumes_rm(
    volume_id: Annotated[str, typer.Argument(help="Volume id (see `airvoice volumes list`).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    json_output: JsonOption = False,
    api_key: ApiKeyOption = None,
) -> None:
    """Delete a network volume and the weights on it."""
    if not yes and not json_output:
        typer.confirm(f"Delete volume {volume_id} and everything on it?", abort=True)
    with cloud_errors(), make_client(api_key) as client:
        client.delete_volume(volume_id)
    if json_output:
        print_json({"id": volume_id, "removed": True})
    else:
        console.print(f"volume {volume_id} removed", highlight=False)
