"""``sam3-agent mcp``: serve the segment / count / ask tools over MCP (stdio or streamable HTTP).

Registered in ``sam3_agent.cli``. Heavy imports (torch, mcp, uvicorn) happen inside the function, so the
CLI's ``--help`` stays fast. Over stdio nothing but protocol messages is written to stdout; notes and
logs go to stderr.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from sam3_agent.cli_options import CheckpointOpt, DeviceOpt, DtypeOpt, LLMOpt, ServerOpt, TokenOpt

if TYPE_CHECKING:
    from sam3_agent.agent.messages import ChatModel
    from sam3_agent.engine.protocol import Segmenter
    from sam3_agent.integrations.image_refs import ImageResolver
    from sam3_agent.integrations.mcp_server import MCPServer
    from sam3_agent.schema import Thresholds
    from sam3_agent.video.protocol import LazyTracker, VideoTracker

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1

_err = Console(stderr=True)


def _chat_model(
    base_url: str | None, model: str | None, api_key: str | None, tool_mode: str | None
) -> ChatModel | None:
    """The configured language model of sam3_ask (flags, then environment), or None: the built-in planner."""
    from sam3_agent.agent.chat_models import PLANNER_NOTICE, make_chat_model
    from sam3_agent.agent.llm_settings import LLMSettings

    settings = LLMSettings.configured(base_url=base_url, model=model, api_key=api_key, tool_mode=tool_mode)
    if settings is None:
        _err.print(f"note: sam3_ask: {PLANNER_NOTICE}", soft_wrap=True, highlight=False, markup=False)
        return None
    return make_chat_model(settings)


class TransportChoice(StrEnum):
    stdio = "stdio"
    http = "http"


def mcp(
    transport: Annotated[TransportChoice, typer.Option(help="stdio, or streamable HTTP.")] = TransportChoice.stdio,
    host: Annotated[str, typer.Option(help="HTTP: interface to listen on (keep 127.0.0.1 unless proxied).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=0, max=65535, help="HTTP: port; 0 picks a free one.")] = 8000,
    path: Annotated[str, typer.Option(help="HTTP: endpoint path.")] = "/mcp",
    allowed_root: Annotated[
        Path | None, typer.Option(help="Folder image paths may point into. Default: the current folder.")
    ] = None,
    allow_urls: Annotated[bool, typer.Option(help="Also fetch http(s) image URLs (off: request forgery risk).")] = (
        False
    ),
    allow_private_urls: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NETWORK",
            help="With --allow-urls, also fetch from this non-public network (e.g. 10.1.0.0/16 or 127.0.0.1; "
            "repeat for more; 'all' for any address). Default: public addresses only, redirects included.",
            show_default=False,
        ),
    ] = None,
    checkpoint: CheckpointOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    score_threshold: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Default score threshold of the tools.")
    ] = 0.5,
    mask_threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Mask pixel probability cut.")] = 0.5,
    llm_base_url: LLMOpt.BaseUrl = None,
    llm_model: LLMOpt.Model = None,
    llm_api_key: LLMOpt.ApiKey = None,
    tool_mode: LLMOpt.ToolMode = None,
    max_turns: Annotated[int, typer.Option(min=1, help="sam3_ask: model turns before the agent gives up.")] = 12,
    preload: Annotated[
        bool,
        typer.Option(
            help="Load SAM 3 (or check the --server) before serving, failing fast on a bad checkpoint; else on "
            "first call."
        ),
    ] = True,
) -> None:
    """Serve sam3_segment, sam3_count and sam3_ask (and, with SAM 3 in this process, sam3_track_video and
    sam3_ask_video, the video model loading on the first clip) as an MCP server (stdio by default).

    The --llm-* and --tool-mode options choose the language model behind sam3_ask; the other tools use none.
    """
    from sam3_agent.errors import Sam3AgentError
    from sam3_agent.integrations.image_refs import ImageResolver
    from sam3_agent.schema import Thresholds
    from sam3_agent.server.client import make_segmenter

    try:
        private = _private_urls(allow_private_urls or [], allow_urls)
        images = ImageResolver(allowed_root or Path.cwd(), allow_urls=allow_urls, allow_private_urls=private)
        llm = _chat_model(llm_base_url, llm_model, llm_api_key, tool_mode)
        segmenter = make_segmenter(checkpoint, server, token, device, dtype, load=False)
        thresholds = Thresholds(score=score_threshold, mask=mask_threshold)
        tracker = None if server else _video_tracker(checkpoint, device, dtype)
        tools_server = _tools_server(segmenter, llm, images, thresholds, max_turns, tracker)
        if preload:
            _preload(segmenter, server)
    except Sam3AgentError as exc:
        raise _exit(exc) from None
    _serve(tools_server, transport, host=host, port=port, path=path, images_root=images.root)


def _private_urls(networks: list[str], allow_urls: bool) -> bool | list[str]:
    """``--allow-private-urls`` as ``ImageResolver`` takes it: True for 'all', else the networks.

    Raises:
        ConfigError: networks given without ``--allow-urls`` (they would allow nothing).
    """
    from sam3_agent.errors import ConfigError

    if networks and not allow_urls:
        raise ConfigError("--allow-private-urls needs --allow-urls: without it no image URL is fetched at all")
    if "all" in (n.strip().lower() for n in networks):
        return True
    return networks or False


def _exit(exc: Exception) -> typer.Exit:
    """Say what went wrong; bad flags exit 2, a checkpoint that does not load (or anything else) 1."""
    from rich.markup import escape

    from sam3_agent.errors import ConfigError, ImageError

    _err.print(f"[bold red]error:[/] {escape(str(exc))}")
    return typer.Exit(EXIT_BAD_INPUT if isinstance(exc, ConfigError | ImageError) else EXIT_FAILURE)


def _video_tracker(checkpoint: str | None, device: str | None, dtype: str | None) -> LazyTracker:
    """SAM 3's video model for sam3_track_video / sam3_ask_video, loaded on the first clip (not at start)."""
    from sam3_agent.video.protocol import LazyTracker

    def load() -> VideoTracker:
        from sam3_agent.cli_video import load_tracker

        return load_tracker(checkpoint, device, dtype)

    return LazyTracker(load)


def _tools_server(
    segmenter: Segmenter,
    llm: ChatModel | None,
    images: ImageResolver,
    thresholds: Thresholds,
    max_turns: int,
    tracker: VideoTracker | None = None,
) -> MCPServer:
    """The MCP server of a ``Sam3Service`` over ``segmenter`` (sam3_ask answered by ``llm``, or the planner; the
    video tools by ``tracker``, when given)."""
    from sam3_agent.integrations import mcp_server
    from sam3_agent.integrations.service import Sam3Service

    service = Sam3Service(segmenter, llm, images=images, thresholds=thresholds, max_turns=max_turns, tracker=tracker)
    return mcp_server.build_server(service)


def _preload(segmenter: Segmenter, server: str | None) -> None:
    """Load SAM 3 (or check the segmentation server) now, saying so on stderr."""
    load = getattr(segmenter, "load", None)
    if not callable(load):
        return
    what = f"checking the segmentation server at {server}" if server else "loading SAM 3"
    checkpoint = getattr(segmenter, "checkpoint", None)
    if not server and checkpoint:
        what += f" from {checkpoint}"
    _err.print(f"{what} ...", highlight=False)
    load()


def _serve(
    tools_server: MCPServer, transport: TransportChoice, *, host: str, port: int, path: str, images_root: Path
) -> None:
    """Serve over ``transport`` until stopped; the ready line and "stopped" go to stderr."""
    from sam3_agent.integrations import mcp_server

    def ready(where: str) -> None:
        _err.print(f"sam3-agent MCP server ready on {where} (images from {images_root})", highlight=False)

    try:
        mcp_server.serve(tools_server, transport.value, host=host, port=port, path=path, on_ready=ready)
    except KeyboardInterrupt:
        _err.print("stopped")
