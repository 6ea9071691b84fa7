"""``airvoice serve``: the voice server, offline, on the weights already on disk."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

console = Console(stderr=True)

_PANEL_MODELS = "Models"
_PANEL_VOICE = "Voice and replies"
_PANEL_SERVER = "Server"
_PANEL_TURNS = "Turn-taking"


def serve(
    host: Annotated[
        str | None,
        typer.Option(
            help="Address to listen on [default: 127.0.0.1; 0.0.0.0 inside a pod].",
            rich_help_panel=_PANEL_SERVER,
        ),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="TCP port [default: 8000].", rich_help_panel=_PANEL_SERVER)
    ] = None,
    ultravox: Annotated[
        str | None,
        typer.Option(
            help="Ultravox repo id (in the local HF cache) or directory.",
            rich_help_panel=_PANEL_MODELS,
        ),
    ] = None,
    text_model: Annotated[
        str | None,
        typer.Option(
            help="Language model repo id or directory, instead of the one Ultravox names.",
            rich_help_panel=_PANEL_MODELS,
        ),
    ] = None,
    kokoro: Annotated[
        str | None,
        typer.Option(
            help="Kokoro repo id, directory, .pth or .onnx file.", rich_help_panel=_PANEL_MODELS
        ),
    ] = None,
    kokoro_voices: Annotated[
        str | None,
        typer.Option(
            help="Voice packs (.pt folder or .npz bank), if not beside the model.",
            rich_help_panel=_PANEL_MODELS,
        ),
    ] = None,
    cache_dir: Annotated[
        str | None,
        typer.Option(
            help="Hugging Face cache (default $HF_HOME/hub).", rich_help_panel=_PANEL_MODELS
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(help="auto (CUDA if present), cuda or cpu.", rich_help_panel=_PANEL_MODELS),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            help="Ultravox engine: vllm (batched, GPU), torch, or auto (vllm on CUDA when "
            "installed).",
            rich_help_panel=_PANEL_MODELS,
        ),
    ] = None,
    voice: Annotated[
        str | None,
        typer.Option(
            help="Default Kokoro voice (a blend like 'af_heart:0.7,af_bella:0.3' works).",
            rich_help_panel=_PANEL_VOICE,
        ),
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            min=0.5, max=2.0, help="Default speaking speed.", rich_help_panel=_PANEL_VOICE
        ),
    ] = None,
    system_prompt: Annotated[
        str | None, typer.Option(help="The assistant's instructions.", rich_help_panel=_PANEL_VOICE)
    ] = None,
    max_new_tokens: Annotated[
        int | None,
        typer.Option(min=1, help="Longest reply, in tokens.", rich_help_panel=_PANEL_VOICE),
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Sampling temperature, 0 for greedy [default: the model's generation_config].",
            rich_help_panel=_PANEL_VOICE,
        ),
    ] = None,
    top_p: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Nucleus sampling mass [default: the model's generation_config].",
            rich_help_panel=_PANEL_VOICE,
        ),
    ] = None,
    repetition_penalty: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Penalty on tokens already said, 1 for none [default: the model's "
            "generation_config, else 1.1 as the reference Ultravox pipeline].",
            rich_help_panel=_PANEL_VOICE,
        ),
    ] = None,
    max_sessions: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Sessions at once; the next is refused with close code 1008 [default: as "
            "many as the engine holds: on vLLM, the conversations of max_model_len tokens its "
            "KV cache fits at once; 4 on the torch engine].",
            rich_help_panel=_PANEL_SERVER,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="Session token clients must present [default: AIRVOICE_TOKEN, or a new one].",
            rich_help_panel=_PANEL_SERVER,
        ),
    ] = None,
    dispatch_secret: Annotated[
        str | None,
        typer.Option(
            help="Secret shared with `airvoice dispatch`: accept its signed session tokens "
            "[default: AIRVOICE_DISPATCH_SECRET].",
            rich_help_panel=_PANEL_SERVER,
        ),
    ] = None,
    replica_id: Annotated[
        str | None,
        typer.Option(
            help="This replica's name in session tokens [default: the RunPod pod id].",
            rich_help_panel=_PANEL_SERVER,
        ),
    ] = None,
    gpu_count: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="GPUs to split the language model over (vLLM tensor parallelism).",
            rich_help_panel=_PANEL_MODELS,
        ),
    ] = None,
    ssl_certfile: Annotated[
        str | None,
        typer.Option(help="TLS certificate, for a direct wss://.", rich_help_panel=_PANEL_SERVER),
    ] = None,
    ssl_keyfile: Annotated[
        str | None, typer.Option(help="TLS private key.", rich_help_panel=_PANEL_SERVER)
    ] = None,
    idle_shutdown: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            help="Exit after this many minutes with no session.",
            rich_help_panel=_PANEL_SERVER,
        ),
    ] = None,
    request_body_timeout: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            help="Seconds an HTTP request body may take to arrive; then 408 and close "
            "[default: 10].",
            rich_help_panel=_PANEL_SERVER,
        ),
    ] = None,
    trusted_proxies: Annotated[
        str | None,
        typer.Option(
            help="Reverse proxies (comma-separated addresses or CIDRs) whose X-Forwarded-For "
            "names the client: the per-address connection cap then counts each client "
            "[default: none, headers are never believed].",
            rich_help_panel=_PANEL_SERVER,
        ),
    ] = None,
    smart_turn: Annotated[
        bool | None,
        typer.Option(
            help="End turns with Smart Turn v3 (else on silence).", rich_help_panel=_PANEL_TURNS
        ),
    ] = None,
    vad_confidence: Annotated[
        float | None,
        typer.Option(help="Silero VAD speech confidence (0-1).", rich_help_panel=_PANEL_TURNS),
    ] = None,
    silence_timeout: Annotated[
        float | None,
        typer.Option(
            help="Without Smart Turn: seconds of silence that end a turn.",
            rich_help_panel=_PANEL_TURNS,
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(help="debug, info, warning or error.", rich_help_panel=_PANEL_SERVER),
    ] = None,
    download_missing: Annotated[
        bool,
        typer.Option(
            help="Fetch missing weights first (needs HF_TOKEN), then serve offline. For a pod "
            "that had no prefetch; otherwise use `airvoice models prefetch`.",
            rich_help_panel=_PANEL_MODELS,
        ),
    ] = False,
) -> None:
    """Run the voice server: WebSocket /ws, /health, /metrics and the web page at /.

    Runs offline (HF_HUB_OFFLINE=1) on weights already cached; refuses to start, listing what is
    missing, when a model file is absent. Every option is also read from `AIRVOICE_<OPTION>`.
    """
    if not download_missing:
        _go_offline()
    from pydantic import ValidationError

    from airvoice.config import ServerConfig

    given = {
        "host": host,
        "port": port,
        "ultravox": ultravox,
        "text_model": text_model,
        "kokoro": kokoro,
        "kokoro_voices": kokoro_voices,
        "cache_dir": cache_dir,
        "device": device,
        "engine": engine,
        "voice": voice,
        "speed": speed,
        "system_prompt": system_prompt,
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "repetition_penalty": repetition_penalty,
        "max_sessions": max_sessions,
        "token": token,
        "dispatch_secret": dispatch_secret,
        "replica_id": replica_id,
        "tensor_parallel_size": gpu_count,
        "ssl_certfile": ssl_certfile,
        "ssl_keyfile": ssl_keyfile,
        "idle_shutdown_minutes": idle_shutdown,
        "request_body_timeout_seconds": request_body_timeout,
        "trusted_proxies": trusted_proxies,
        "smart_turn": smart_turn,
        "vad_confidence": vad_confidence,
        "silence_timeout_seconds": silence_timeout,
        "log_level": log_level,
    }
    try:
        config = ServerConfig(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        console.print(f"[red]Invalid settings:[/red] {exc}")
        raise typer.Exit(2) from exc
    if bool(config.ssl_certfile) != bool(config.ssl_keyfile):
        console.print(
            "[red]--ssl-certfile and --ssl-keyfile go together: give both or neither.[/red]"
        )
        raise typer.Exit(2)
    from airvoice.server.logs import configure_logging

    configure_logging(config.log_level, config.token.get_secret_value() if config.token else None)
    gpu_problem = _gpu_count_problem(config.tensor_parallel_size)
    if gpu_problem is not None:
        console.print(f"[red]{gpu_problem}[/red]")
        raise typer.Exit(2)

    try:
        from airvoice.server.engines import check_models, load_engines
    except ImportError as exc:
        console.print(
            f"[red]The server is not installed ({exc.name} is missing).[/red] "
            "Install it with: pip install 'airvoice[server]'"
        )
        raise typer.Exit(1) from exc
    missing = check_models(config)
    if missing is not None and download_missing:
        _download(config)
        missing = check_models(config)
    _go_offline()
    if missing is not None:
        console.print(Text(missing.message(), style="red"))
        raise typer.Exit(1)
    with console.status("loading the models..."):
        engines = load_engines(config)

    from airvoice.server.app import create_app
    from airvoice.server.run import AirvoiceServer, uvicorn_config

    app = create_app(config, engines)
    state = app.state.airvoice
    configure_logging(config.log_level, state.token)  # the generated token is secret too
    scheme = "wss" if config.ssl_certfile else "ws"
    shown_host = "127.0.0.1" if config.host in ("0.0.0.0", "::") else config.host
    console.print(f"airvoice is listening on {scheme}://{shown_host}:{config.port}/ws")
    if config.token is None:
        # Printed once, to the terminal only (never to the logs).
        console.print(f"session token: {state.token}", highlight=False)
    server = AirvoiceServer(uvicorn_config(app, config))
    from airvoice.cloud.selfstop import stop_pod_when_idle

    with stop_pod_when_idle(state):  # the cost guard: an idle RunPod pod stops itself
        server.run()
    sys.exit(0)


def _gpu_count_problem(wanted: int) -> str | None:
    """Why ``--gpu-count wanted`` cannot work here, or None."""
    if wanted == 1:
        return None
    try:
        import torch

        found = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:
        found = 0
    if found >= wanted:
        return None
    return (
        f"--gpu-count {wanted} splits the model over {wanted} GPUs, but this machine has "
        f"{found}; use --gpu-count {max(1, found)} or a pod with {wanted} GPUs"
    )


def _go_offline() -> None:
    """From here on nothing may reach the hub; the token is no longer needed either."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.pop("HF_TOKEN", None)


def _download(config: object) -> None:
    """Fetch the repos the server names (repo ids, not local paths) into its cache."""
    from pathlib import Path

    from airvoice.models import store
    from airvoice.models.prefetch import Prefetcher, RepoRequest

    refs = {
        "ultravox": getattr(config, "ultravox", None),
        "text": getattr(config, "text_model", None),
        "kokoro": getattr(config, "kokoro", None),
    }
    requests = [
        RepoRequest(ref, role)  # type: ignore[arg-type]
        for role, ref in refs.items()
        if ref and not Path(ref).expanduser().exists() and ref.count("/") == 1
    ]
    console.print(f"fetching missing weights: {', '.join(r.repo_id for r in requests)}")
    prefetcher = Prefetcher(
        store.cache_path(getattr(config, "cache_dir", None)),
        token=os.environ.get("HF_TOKEN"),
        console=console,
    )
    result = prefetcher.run(requests)
    for failure in result.failures:
        console.print(Text(prefetcher.scrub(failure.message), style="red"))
