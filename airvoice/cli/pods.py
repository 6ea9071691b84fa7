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
    help="List, inspect, stop, start and remove RunPod pods.", no_args_is_help=True
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
    for port in pod.runtime_ports:
        console.print(f"  port {port.get('private')}/{port.get('type')}", highlight=False)


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
