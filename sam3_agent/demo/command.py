"""``sam3-agent demo``: start the Gradio chat page (gradio is imported inside the command, not at CLI start)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from sam3_agent.cli_options import CheckpointOpt, DeviceOpt, DtypeOpt, LLMOpt, ServerOpt, TokenOpt

if TYPE_CHECKING:
    from sam3_agent.video.protocol import VideoTracker

console = Console(stderr=True)

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1


def _first_env(*names: str) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


def demo(
    checkpoint: CheckpointOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    llm_base_url: LLMOpt.BaseUrl = None,
    llm_model: LLMOpt.Model = None,
    llm_api_key: LLMOpt.ApiKey = None,
    tool_mode: LLMOpt.ToolMode = None,
    host: Annotated[str, typer.Option(help="Address to serve on; 0.0.0.0 to let other machines in.")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port. Default: the first free from 7860.")] = None,
    share: Annotated[bool, typer.Option(help="Also make a public gradio.live link (off by default).")] = False,
    mcp: Annotated[
        bool,
        typer.Option(
            help="Also serve the MCP tools (as `sam3-agent mcp` does) over streamable HTTP at the page's URL + /mcp."
        ),
    ] = False,
    score_threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Default score threshold.")] = 0.5,
    mask_threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Default mask threshold.")] = 0.5,
    max_upload_mb: Annotated[float, typer.Option(min=0.1, help="Refuse uploads larger than this (MB).")] = 20.0,
    cache_size: Annotated[
        int, typer.Option(min=0, help="Images whose backbone features stay cached (shared by all users).")
    ] = 8,
) -> None:
    """Start the browser chat demo: upload an image, ask questions, refine with exemplar boxes, click on objects."""
    from sam3_agent.agent.llm_settings import ENV_API_KEY, ENV_BASE_URL, ENV_MODEL, ENV_TOOL_MODE
    from sam3_agent.errors import ConfigError, ImageError, PromptError, Sam3AgentError

    try:
        from sam3_agent.demo.config import DemoConfig

        config = DemoConfig(
            llm_base_url=llm_base_url or _first_env(ENV_BASE_URL, "OPENAI_BASE_URL"),
            llm_model=llm_model or _first_env(ENV_MODEL),
            llm_api_key=llm_api_key or _first_env(ENV_API_KEY, "OPENAI_API_KEY"),
            tool_mode=tool_mode or _first_env(ENV_TOOL_MODE) or "auto",
            score_threshold=score_threshold,
            mask_threshold=mask_threshold,
            max_upload_bytes=int(max_upload_mb * 2**20),
        )
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        console.print(f"[bold red]error:[/] invalid setting: {exc}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    try:
        from sam3_agent.server.client import RemoteSegmenter, make_segmenter

        with console.status("Connecting to the segmentation server …" if server else "Loading SAM 3 …", spinner="dots"):
            segmenter = make_segmenter(checkpoint, server, token, device, dtype, cache_size=cache_size)
    except Sam3AgentError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        code = EXIT_BAD_INPUT if isinstance(exc, ConfigError | ImageError | PromptError) else EXIT_FAILURE
        raise typer.Exit(code) from None
    from sam3_agent.demo.app import build_demo, launch_demo
    from sam3_agent.engine.protocol import clicker_for

    mode = f"agent mode, answered by {config.answered_by}"
    if not config.llm_model:
        mode += " (no --llm-model given: common query shapes only)"
    if isinstance(segmenter, RemoteSegmenter):
        where = f"SAM 3 runs on the segmentation server {segmenter.base_url}"
    else:
        where = f"SAM 3 loaded on {getattr(segmenter, 'device', 'this machine')}"
    clicker = clicker_for(segmenter)  # point clicks: SAM 3's tracker on the engine's backbone (loaded on first click)
    clicks = "" if clicker is not None else " Point clicks are off: the checkpoint has no tracker."
    mcp_server = None
    if mcp:
        from sam3_agent.demo.mcp_mount import MCP_PATH, demo_mcp_server

        try:
            mcp_server = demo_mcp_server(segmenter, config, clicker=clicker)
        except Sam3AgentError as exc:
            console.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(EXIT_BAD_INPUT if isinstance(exc, ConfigError) else EXIT_FAILURE) from None
        clicks += f" MCP tools: streamable HTTP at the page's URL + {MCP_PATH}."
    video_tracker: Callable[[], VideoTracker] | None = None
    if not isinstance(segmenter, RemoteSegmenter):  # the server has no video model: the tab needs SAM 3 here
        from sam3_agent.cli_video import load_tracker

        def load_video_model() -> VideoTracker:
            return load_tracker(checkpoint, device, dtype)

        video_tracker = load_video_model

        clicks += " Video tab: SAM 3's video model loads on the first clip."
    console.print(f"{where}; the page starts in {mode}.{clicks}", highlight=False)
    launch_demo(
        build_demo(segmenter, config, clicker=clicker, video_tracker=video_tracker),
        host=host,
        port=port,
        share=share,
        mcp_server=mcp_server,
        max_upload_bytes=config.max_upload_bytes,
    )
