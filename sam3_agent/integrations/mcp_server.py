"""sam3-agent as an MCP server (official ``mcp`` SDK, ``MCPServer``): segment, count and ask tools, segment_at
(one object from clicks) where the service has a click engine, and track_video / ask_video where it has a video
tracker (their results carry no overlay image and no per-frame masks: one summary row per track).

Every tool result carries, in this order: the full result serialized as JSON text (as the MCP specification
asks of tools with an output schema), a compact text summary (counts, ids, scores, boxes), and the numbered
overlay as PNG image content (longest side at most ``OVERLAY_MAX_SIDE``); and the same full result as
structured content (``SegmentResult`` / ``CountResult`` / ``AskResult`` / ``ClickResult``; masks as COCO RLE),
whose JSON Schema is the tool's output schema. Input schemas are the argument models' (unknown keys refused, no
``title`` noise); arguments are validated here, so a mistake comes back as one readable line. Images are given
as a path inside the server's allowed folder, a ``data:`` URL or base64 (see ``ImageResolver``). Transports:
stdio, and streamable HTTP served by uvicorn.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from mcp.types import CallToolResult, ImageContent, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, ValidationError

from sam3_agent import __version__
from sam3_agent.agent.tools import json_schema
from sam3_agent.errors import Sam3AgentError
from sam3_agent.integrations.args import (
    ASK_VIDEO_DESCRIPTION,
    COUNT_DESCRIPTION,
    SEGMENT_DESCRIPTION,
    TRACK_VIDEO_DESCRIPTION,
    AskArgs,
    AskVideoArgs,
    CountArgs,
    SegmentArgs,
    TrackVideoArgs,
    arguments_schema,
)
from sam3_agent.integrations.clicks import SEGMENT_AT_DESCRIPTION, ClickResult, SegmentAtArgs
from sam3_agent.integrations.results import AskResult, AskVideoResult, CountResult, SegmentResult, TrackVideoResult
from sam3_agent.integrations.service import Outcome, Sam3Service, VideoOutcome
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
VIDEO_INSTRUCTIONS = (
    " sam3_track_video tracks every instance of noun phrases through a video file (a path inside the server's "
    "folder) and returns one row per track; sam3_ask_video answers questions about a video (how many different, "
    "first, last, longest on screen)."
)
_READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


class _RawArguments(ArgModelBase):
    """Hands a tool its arguments as the client sent them: the tool validates them itself against its own model
    (the SDK's validation errors are multi-line and carry pydantic's documentation URLs)."""

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        return {"arguments": dict(self.model_extra or {})}


@dataclass(frozen=True)
class _Spec:
    name: str
    description: str
    args: type[BaseModel]
    result: type[BaseModel]
    annotations: ToolAnnotations


def _validated(model: type[BaseModel], arguments: dict[str, Any]) -> Any:
    """``arguments`` as ``model`` (cross-field rules included); a list sent as JSON text is read as the list
    (some clients send them so). Raises ToolError with every problem on one line."""
    try:
        return model.model_validate(_lists_from_json(model, arguments))
    except ValidationError as exc:
        raise ToolError(f"invalid arguments: {validation_message(exc)}") from None


def _lists_from_json(model: type[BaseModel], arguments: dict[str, Any]) -> dict[str, Any]:
    def takes_list(name: str) -> bool:
        field = model.model_fields.get(name)
        annotation = field.annotation if field is not None else None
        return list in (get_origin(annotation), *(get_origin(a) for a in get_args(annotation)))

    parsed = dict(arguments)
    for name, value in arguments.items():
        if isinstance(value, str) and value.lstrip().startswith("[") and takes_list(name):
            with contextlib.suppress(ValueError):  # not JSON: validation says what is wrong
                parsed[name] = json.loads(value)
    return parsed


def _call(work: Callable[[], Outcome[Any] | VideoOutcome[Any]]) -> CallToolResult:
    """Run ``work`` and package its outcome: the result as JSON text, the summary, the overlay PNG (none for a
    video tool), and the result as structured content.

    Our errors carry messages written to be read, so they reach the client as tool errors (on one line);
    anything else is reported by the SDK without its text.
    """
    try:
        outcome = work()
    except Sam3AgentError as exc:
        raise ToolError(" ".join(str(exc).split())) from exc
    structured = outcome.result.model_dump(mode="json")
    content: list[TextContent | ImageContent] = [
        TextContent(type="text", text=json.dumps(structured, separators=(",", ":"))),
        TextContent(type="text", text=outcome.summary),
    ]
    if isinstance(outcome, Outcome):
        content.append(ImageContent(type="image", data=outcome.overlay_base64(), mime_type="image/png"))
    return CallToolResult(content=content, structured_content=structured)


def _tool(service: Sam3Service, spec: _Spec) -> Tool:
    """The MCP tool of ``spec``: the input schema is the argument model's, the output schema the result's."""

    def call(arguments: dict[str, Any]) -> CallToolResult:
        args = _validated(spec.args, arguments)
        return _call(lambda: service.run(args))

    # The SDK reads the output schema (and the structured content's model) from the return annotation.
    call.__annotations__ = {"arguments": dict[str, Any], "return": Annotated[CallToolResult, spec.result]}
    tool = Tool.from_function(call, name=spec.name, description=spec.description, annotations=spec.annotations)
    tool.parameters = arguments_schema(spec.args)
    tool.fn_metadata.arg_model = _RawArguments
    tool.fn_metadata.output_schema = json_schema(spec.result)
    return tool


def build_server(service: Sam3Service, *, name: str = "sam3-agent") -> MCPServer:
    """An MCP server offering ``sam3_segment``, ``sam3_count`` and ``sam3_ask`` (answered by the service's
    language model, or by the built-in planner; its description says which; offered where the service can answer
    it), ``sam3_segment_at`` where the service has a click engine, and ``sam3_track_video`` / ``sam3_ask_video``
    where it has a video tracker. The tools are sync functions; the SDK runs
    them in worker threads."""
    specs = [
        _Spec("sam3_segment", SEGMENT_DESCRIPTION, SegmentArgs, SegmentResult, _READ_ONLY),
        _Spec("sam3_count", COUNT_DESCRIPTION, CountArgs, CountResult, _READ_ONLY),
    ]
    if service.can_ask:
        specs.append(_Spec("sam3_ask", service.ask_description, AskArgs, AskResult, _ask_hints(service)))
    if service.can_click:
        specs.append(_Spec("sam3_segment_at", SEGMENT_AT_DESCRIPTION, SegmentAtArgs, ClickResult, _READ_ONLY))
    if service.can_track:
        specs.append(_Spec("sam3_track_video", TRACK_VIDEO_DESCRIPTION, TrackVideoArgs, TrackVideoResult, _READ_ONLY))
        specs.append(_Spec("sam3_ask_video", ASK_VIDEO_DESCRIPTION, AskVideoArgs, AskVideoResult, _ask_hints(service)))
    tools = [_tool(service, spec) for spec in specs]
    instructions = INSTRUCTIONS + (VIDEO_INSTRUCTIONS if service.can_track else "")
    return MCPServer(name, instructions=instructions, version=__version__, log_level="WARNING", tools=tools)


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
