"""sam3-agent as an MCP server (official ``mcp`` SDK, ``MCPServer``): segment, count and ask tools, and segment_at
(one object from clicks) where the service has a click engine.

Every tool result carries three things: a text summary (counts, ids, scores, boxes), the numbered overlay
as PNG image content (longest side at most ``OVERLAY_MAX_SIDE``), and the full result as structured
content (``SegmentResult`` / ``CountResult`` / ``AskResult``; masks as COCO RLE), whose JSON Schema is the
tool's output schema. Images are given as a path inside the server's allowed folder, a ``data:`` URL or
base64 (see ``ImageResolver``). Transports: stdio, and streamable HTTP served by uvicorn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ImageContent, TextContent, ToolAnnotations
from pydantic import BaseModel, ValidationError

from sam3_agent import __version__
from sam3_agent.errors import Sam3AgentError
from sam3_agent.integrations.args import (
    COUNT_DESCRIPTION,
    SEGMENT_DESCRIPTION,
    AskArgs,
    CountArgs,
    CountPhrase,
    ImageRef,
    MaskThreshold,
    NegativeBoxes,
    Phrases,
    PositiveBoxes,
    Question,
    ScoreThreshold,
    SegmentArgs,
    Tile,
)
from sam3_agent.integrations.clicks import (
    SEGMENT_AT_DESCRIPTION,
    ClickBox,
    ClickPoints,
    ClickResult,
    NegativeClickPoints,
    SegmentAtArgs,
)
from sam3_agent.integrations.results import AskResult, CountResult, SegmentResult
from sam3_agent.integrations.service import Outcome, Sam3Service
from sam3_agent.validation import validation_message

Transport = Literal["stdio", "http"]

INSTRUCTIONS = (
    "sam3-agent: SAM 3 concept segmentation. sam3_segment finds every instance of short noun phrases; "
    "sam3_count gives a de-duplicated count; sam3_ask answers questions about an image with an agent (the "
    "server's language model, or, when none is configured, a built-in planner that understands only common "
    "query shapes: see its description); sam3_segment_at (where the server has SAM 3's tracker) segments the one "
    "object that points or a box designate. Images: a path inside the server's image folder, a data: URL, or "
    "base64. Boxes are [x0, y0, x1, y1] in pixels."
)
_READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


def _validated(model: type[BaseModel], **values: Any) -> Any:
    """Check cross-field rules (e.g. a phrase or a positive box) that single parameters cannot express."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ToolError(f"invalid arguments: {validation_message(exc)}") from None


def _call(work: Callable[[], Outcome[Any]]) -> CallToolResult:
    """Run ``work`` and package its outcome: summary text, overlay PNG, structured result.

    Our errors carry messages written to be read, so they reach the client as tool errors; anything else
    is reported by the SDK without its text.
    """
    try:
        outcome = work()
    except Sam3AgentError as exc:
        raise ToolError(str(exc)) from exc
    return CallToolResult(
        content=[
            TextContent(type="text", text=outcome.summary),
            ImageContent(type="image", data=outcome.overlay_base64(), mime_type="image/png"),
        ],
        structured_content=outcome.result.model_dump(mode="json"),
    )


def build_server(service: Sam3Service, *, name: str = "sam3-agent") -> MCPServer:
    """An MCP server offering ``sam3_segment``, ``sam3_count`` and ``sam3_ask`` (answered by the service's
    language model, or by the built-in planner; its description says which). The tools are sync functions;
    the SDK runs them in worker threads."""
    server: MCPServer = MCPServer(name, instructions=INSTRUCTIONS, version=__version__, log_level="WARNING")

    def sam3_segment(
        image: ImageRef,
        phrases: Phrases = (),  # type: ignore[assignment]
        positive_boxes: PositiveBoxes = (),  # type: ignore[assignment]
        negative_boxes: NegativeBoxes = (),  # type: ignore[assignment]
        score_threshold: ScoreThreshold = None,
        mask_threshold: MaskThreshold = None,
        tile: Tile = None,
    ) -> Annotated[CallToolResult, SegmentResult]:
        args: SegmentArgs = _validated(
            SegmentArgs,
            image=image,
            phrases=list(phrases),
            positive_boxes=list(positive_boxes),
            negative_boxes=list(negative_boxes),
            score_threshold=score_threshold,
            mask_threshold=mask_threshold,
            tile=tile,
        )
        return _call(lambda: service.run(args))

    def sam3_count(
        image: ImageRef,
        phrase: CountPhrase = None,
        positive_boxes: PositiveBoxes = (),  # type: ignore[assignment]
        negative_boxes: NegativeBoxes = (),  # type: ignore[assignment]
        score_threshold: ScoreThreshold = None,
        tile: Tile = None,
    ) -> Annotated[CallToolResult, CountResult]:
        args: CountArgs = _validated(
            CountArgs,
            image=image,
            phrase=phrase,
            positive_boxes=list(positive_boxes),
            negative_boxes=list(negative_boxes),
            score_threshold=score_threshold,
            tile=tile,
        )
        return _call(lambda: service.run(args))

    def sam3_ask(image: ImageRef, question: Question) -> Annotated[CallToolResult, AskResult]:
        args: AskArgs = _validated(AskArgs, image=image, question=question)
        return _call(lambda: service.run(args))

    server.add_tool(sam3_segment, name="sam3_segment", description=SEGMENT_DESCRIPTION, annotations=_READ_ONLY)
    server.add_tool(sam3_count, name="sam3_count", description=COUNT_DESCRIPTION, annotations=_READ_ONLY)
    server.add_tool(sam3_ask, name="sam3_ask", description=service.ask_description, annotations=_ask_hints(service))
    if service.can_click:
        _add_click_tool(server, service)
    return server


def _add_click_tool(server: MCPServer, service: Sam3Service) -> None:
    """``sam3_segment_at``: ONE object from clicks (only on a service with a click engine: SAM 3's tracker)."""

    def sam3_segment_at(
        image: ImageRef,
        points: ClickPoints = (),  # type: ignore[assignment]
        negative_points: NegativeClickPoints = (),  # type: ignore[assignment]
        box: ClickBox = None,
        mask_threshold: MaskThreshold = None,
    ) -> Annotated[CallToolResult, ClickResult]:
        args: SegmentAtArgs = _validated(
            SegmentAtArgs,
            image=image,
            points=list(points),
            negative_points=list(negative_points),
            box=box,
            mask_threshold=mask_threshold,
        )
        return _call(lambda: service.run(args))

    server.add_tool(sam3_segment_at, name="sam3_segment_at", description=SEGMENT_AT_DESCRIPTION, annotations=_READ_ONLY)


def _ask_hints(service: Sam3Service) -> ToolAnnotations:
    """The planner is deterministic and local; a language model may answer differently and is (usually) an
    outside endpoint."""
    if service.uses_planner:
        return _READ_ONLY
    return ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=True)


def serve(
    server: MCPServer,
    transport: Transport = "stdio",
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    path: str = "/mcp",
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until the client disconnects (stdio) or the process is stopped (http: SIGINT / SIGTERM).

    HTTP is the streamable HTTP transport at ``http://host:port/path``, served by uvicorn; on 127.0.0.1 /
    localhost the SDK's DNS-rebinding protection is on. There is no authentication. ``on_ready`` gets the
    URL once the server listens (with ``port=0``, the port the system picked), or ``"stdio"``.
    """
    if transport not in ("stdio", "http"):
        raise ValueError(f"transport must be 'stdio' or 'http', got {transport!r}")
    if transport == "stdio":
        if on_ready is not None:
            on_ready("stdio")
        server.run("stdio")
    else:
        anyio.run(_serve_http, server, host, port, path, on_ready)


async def _serve_http(
    server: MCPServer, host: str, port: int, path: str, on_ready: Callable[[str], None] | None
) -> None:
    import uvicorn

    app = server.streamable_http_app(streamable_http_path=path, host=host)
    web = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))

    async def announce() -> None:
        while not web.started:
            await anyio.sleep(0.05)
        bound = web.servers[0].sockets[0].getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        if on_ready is not None:
            on_ready(f"http://{shown}:{bound}{path}")

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(announce)
        await web.serve()
        tasks.cancel_scope.cancel()
