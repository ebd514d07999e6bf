"""``sam3-agent serve``: one resident SAM 3 engine over HTTP (FastAPI + uvicorn), or Ray Serve replicas.

Registered in ``sam3_agent.cli``; fastapi, uvicorn, torch and ray are imported inside the function.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from sam3_agent.server.settings import TOKEN_ENV, ServerSettings

if TYPE_CHECKING:
    from sam3_agent.video.protocol import LazyTracker, VideoTracker

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1

_err = Console(stderr=True)


def serve(
    checkpoint: Annotated[
        str | None,
        typer.Option("--checkpoint", "-c", help="SAM 3 checkpoint: local directory or hub id. Env: SAM3_CHECKPOINT."),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="Torch device, e.g. cuda, cuda:1, cpu. Default: CUDA if present.")
    ] = None,
    dtype: Annotated[str | None, typer.Option(help="float32, bfloat16 or float16. Default: bf16 on CUDA.")] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on; 0.0.0.0 lets other machines in.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(envvar=TOKEN_ENV, show_envvar=True, help="Bearer token required on /v1/* (default: none)."),
    ] = None,
    max_batch: Annotated[int, typer.Option(min=1, help="Most prompts per forward pass (across clients).")] = 16,
    max_wait_ms: Annotated[float, typer.Option(min=0.0, help="Longest wait for a batch to fill (ms).")] = 5.0,
    max_queue: Annotated[int, typer.Option(min=1, help="Requests allowed to wait; more get 429.")] = 256,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds a request may wait for its result (504).")] = 60.0,
    max_body_mb: Annotated[float, typer.Option(min=0.01, help="Largest request body (MB); larger get 413.")] = 32.0,
    max_images: Annotated[int, typer.Option(min=1, help="Registered images kept (least recently used go).")] = 256,
    max_video_mb: Annotated[
        float, typer.Option(min=0.1, help="Refuse video uploads (POST /v1/videos) larger than this (MB).")
    ] = 256.0,
    max_image_mb: Annotated[
        float, typer.Option(min=0.01, help="Decoded pixels (MB) registered images may hold (least recently used go).")
    ] = 1024.0,
    cache_size: Annotated[int, typer.Option(min=0, help="Images whose backbone features stay cached.")] = 8,
    ray: Annotated[bool, typer.Option("--ray", help="Serve with Ray Serve: replicas, one GPU each.")] = False,
    replicas: Annotated[int, typer.Option(min=1, help="Ray: engine replicas.")] = 1,
    ray_address: Annotated[str | None, typer.Option(help="Ray: cluster address (default: start a local one).")] = None,
    gpus_per_replica: Annotated[
        float | None, typer.Option(min=0.0, help="Ray: GPUs per replica (default: 1 if the cluster has GPUs).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve SAM 3 over HTTP: one engine shared by many agents, with dynamic batching across clients."""
    from rich.markup import escape

    from sam3_agent.errors import ConfigError, Sam3AgentError

    try:
        settings = ServerSettings.build(
            token=token,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            max_queue=max_queue,
            timeout_s=timeout,
            max_body_mb=max_body_mb,
            max_images=max_images,
            max_image_mb=max_image_mb,
            max_video_mb=max_video_mb,
            token_from_env=False,  # typer already read the environment variable
        )
        if host not in ("127.0.0.1", "localhost", "::1") and settings.token is None:
            _err.print(f"[yellow]warning:[/] serving on {host} without a token: anyone who can reach it can use it")
        if ray:
            engine_options = {"device": device, "dtype": dtype, "cache_size": cache_size}
            _serve_ray(checkpoint, settings, host, port, replicas, ray_address, gpus_per_replica, engine_options)
        else:
            _serve_local(checkpoint, settings, host, port, device, dtype, cache_size, log_level)
    except Sam3AgentError as exc:
        _err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_BAD_INPUT if isinstance(exc, ConfigError) else EXIT_FAILURE) from None


def _serve_local(
    checkpoint: str | None,
    settings: ServerSettings,
    host: str,
    port: int,
    device: str | None,
    dtype: str | None,
    cache_size: int,
    log_level: str,
) -> None:
    from sam3_agent.engine.clicks import ClickEngine
    from sam3_agent.engine.protocol import clicker_for
    from sam3_agent.engine.transformers_engine import Sam3Engine
    from sam3_agent.server.api import create_app
    from sam3_agent.server.runner import serve_forever

    engine = Sam3Engine(checkpoint, device=device, dtype=dtype, cache_size=cache_size, max_batch=settings.max_batch)
    with _err.status(f"Loading SAM 3 from {engine.checkpoint} …", spinner="dots"):
        engine.load()
        clicker = clicker_for(engine)  # /v1/segment_at: SAM 3's tracker on the engine's backbone
        if isinstance(clicker, ClickEngine):
            clicker.load()
    tracker = _video_tracker(checkpoint, device, dtype)
    clicks = "clicks on" if clicker is not None else "no clicks (a detector-only checkpoint)"
    clicks += ", video (its model loads on the first job)"
    _err.print(
        f"SAM 3 on {engine.device} ({str(engine.dtype).removeprefix('torch.')}), {clicks}; serving http://{host}:{port}"
    )
    serve_forever(
        create_app(engine, settings, clicker=clicker, tracker=tracker),
        host=host,
        port=port,
        graceful_timeout=settings.drain_timeout_s,
        log_level=log_level,
    )


def _video_tracker(checkpoint: str | None, device: str | None, dtype: str | None) -> LazyTracker:
    """SAM 3's video model for /v1/videos, loaded on the first tracking job, not at start."""
    from sam3_agent.video.protocol import LazyTracker

    def load() -> VideoTracker:
        from sam3_agent.video.engine import Sam3VideoEngine

        return Sam3VideoEngine.load(checkpoint, device=device, dtype=dtype)

    return LazyTracker(load)


def _serve_ray(
    checkpoint: str | None,
    settings: ServerSettings,
    host: str,
    port: int,
    replicas: int,
    address: str | None,
    gpus_per_replica: float | None,
    engine_options: dict[str, Any],
) -> None:
    from ray import serve as ray_serve_api

    from sam3_agent.server.ray_serve import start_ray_serve

    url = start_ray_serve(
        checkpoint,
        settings,
        host=host,
        port=port,
        replicas=replicas,
        gpus_per_replica=gpus_per_replica,
        address=address,
        **engine_options,
    )
    _err.print(f"Ray Serve: {replicas} SAM 3 replica(s) behind {url} (Ctrl-C stops)")
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        _err.print("shutting down Ray Serve …")
        ray_serve_api.shutdown()
