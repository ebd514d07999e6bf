"""sam3-agent for OpenAI-style function calling in your own loop: tool schemas and an executor.

Exported tools: ``sam3_segment``, ``sam3_count`` and ``sam3_ask`` (answered by the service's language model, or
by the built-in planner when it has none: pass ``service=`` to get the description that says which), and, for a
service with a video tracker, ``sam3_track_video`` and ``sam3_ask_video`` (video file paths; track tables, no
masks). They are stateless (every call names its image or video), which is what a foreign loop can drive. The
agent's nine internal tools (``segment_phrases``, ``spatial_filter``, ...) are deliberately not exported: they act on a
per-question mask store and image that only ``Sam3Agent`` keeps; use ``sam3_ask`` to get all of them.

    service = Sam3Service(engine)                     # llm=...: sam3_ask by a language model, else the planner
    tools = chat_completions_tools(service=service, strict=True)  # or responses_tools(...) for the Responses API
    executor = ToolExecutor(service)
    ...
    for call in reply.tool_calls:
        messages.append(executor.execute(call))       # {"role": "tool", "tool_call_id": ..., "content": ...}

The tool message's content is the compact text summary; ``ToolExecutor.run`` returns the full result
(instances with COCO RLE masks) for your own use.

``strict=True`` gives the schemas in the subset of JSON Schema that OpenAI's strict mode (structured outputs)
accepts, with ``"strict": true``: every property required, the optional ones nullable (null means the default,
the executor takes it so), ``additionalProperties: false`` on every object, no ``default`` and no keyword
strict mode does not support (string lengths are still checked by the executor).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from sam3_agent.agent.messages import ToolSpec
from sam3_agent.agent.tools import ToolError, parse_arguments
from sam3_agent.errors import ImageError, PromptError, VideoError
from sam3_agent.integrations.args import (
    ASK_DESCRIPTION,
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
from sam3_agent.integrations.results import AskResult, AskVideoResult, CountResult, SegmentResult, TrackVideoResult
from sam3_agent.integrations.service import Outcome, Sam3Service, VideoOutcome
from sam3_agent.validation import validation_message

Result = SegmentResult | CountResult | AskResult | TrackVideoResult | AskVideoResult


@dataclass(frozen=True)
class _Exported:
    name: str
    description: str
    args: type[BaseModel]
    run: Callable[[Sam3Service, Any], Outcome[Any] | VideoOutcome[Any]]
    video: bool = False


_TOOLS = (
    _Exported(
        "sam3_segment",
        SEGMENT_DESCRIPTION,
        SegmentArgs,
        Sam3Service.run,
    ),
    _Exported(
        "sam3_count",
        COUNT_DESCRIPTION,
        CountArgs,
        Sam3Service.run,
    ),
    _Exported("sam3_ask", ASK_DESCRIPTION, AskArgs, Sam3Service.run),
    _Exported("sam3_track_video", TRACK_VIDEO_DESCRIPTION, TrackVideoArgs, Sam3Service.run, video=True),
    _Exported("sam3_ask_video", ASK_VIDEO_DESCRIPTION, AskVideoArgs, Sam3Service.run, video=True),
)
_BY_NAME = {tool.name: tool for tool in _TOOLS}


_ANY_KEYWORDS = frozenset({"type", "description", "enum", "const", "anyOf", "$ref", "$defs"})
_STRICT_KEYWORDS = {  # what strict mode supports beyond _ANY_KEYWORDS, per type (OpenAI's structured outputs guide)
    "object": frozenset({"properties", "required", "additionalProperties"}),
    "array": frozenset({"items", "minItems", "maxItems"}),
    "string": frozenset({"pattern", "format"}),
    "number": frozenset({"multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"}),
    "integer": frozenset({"multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"}),
}
_NULL = {"type": "null"}


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` rewritten for OpenAI's strict mode: on every object all properties are required and those that
    were optional accept null, ``additionalProperties`` is false; keywords strict mode does not support
    (``default``, ``title``, ``minLength``, ...) are left out. The root keeps no description (the tool has one)."""
    strict = _strict_node(schema)
    strict.pop("description", None)
    return strict


def _strict_node(node: dict[str, Any]) -> dict[str, Any]:
    kind = node.get("type", [])
    types = [kind] if isinstance(kind, str) else kind
    allowed = _ANY_KEYWORDS.union(*(_STRICT_KEYWORDS.get(t, ()) for t in types))
    out = {key: value for key, value in node.items() if key in allowed}
    if "anyOf" in out:
        out["anyOf"] = [_strict_node(branch) for branch in out["anyOf"]]
    if "items" in out:
        out["items"] = _strict_node(out["items"])
    if "$defs" in out:
        out["$defs"] = {name: _strict_node(d) for name, d in out["$defs"].items()}
    if "properties" in out:
        required = set(node.get("required", ()))
        out["properties"] = {
            name: _strict_node(prop) if name in required else _nullable(_strict_node(prop))
            for name, prop in out["properties"].items()
        }
        out["required"] = list(out["properties"])
        out["additionalProperties"] = False
    return out


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    """``node`` also accepting null: one more ``anyOf`` branch, ``"null"`` in a type list, or a new ``anyOf``."""
    if "anyOf" in node:
        return node if _NULL in node["anyOf"] else {**node, "anyOf": [*node["anyOf"], _NULL]}
    kind = node.get("type")
    if isinstance(kind, str) and "enum" not in node and "const" not in node:
        return {**node, "type": [kind, "null"]}
    described = {"description": node["description"]} if "description" in node else {}
    inner = {key: value for key, value in node.items() if key != "description"}
    return {"anyOf": [inner, _NULL], **described}


def tool_specs(*, include_ask: bool = True, service: Sam3Service | None = None, strict: bool = False) -> list[ToolSpec]:
    """The exported tools as provider-neutral ``ToolSpec`` (name, description, JSON Schema of the arguments).

    With ``service``, the ``sam3_ask`` description says who answers it (its language model, or the built-in
    planner and the query shapes it understands), and ``sam3_ask`` is left out when the service cannot answer
    it; without, it mentions both. ``sam3_track_video`` and ``sam3_ask_video`` are listed only for a service with a
    video tracker (``service.can_track``). ``strict``: the schemas in OpenAI's strict-mode subset (``strict_schema``).
    """
    specs = []
    for tool in _offered(service, include_ask):
        schema = arguments_schema(tool.args)
        parameters = strict_schema(schema) if strict else schema
        specs.append(ToolSpec(name=tool.name, description=_description(tool, service), parameters=parameters))
    return specs


def _offered(service: Sam3Service | None, include_ask: bool = True) -> list[_Exported]:
    """The exported tools ``service`` can run (all image tools when None; the video tools only with a tracker)."""
    asks = include_ask and (service is None or service.can_ask)
    tracks = service is not None and service.can_track
    return [t for t in _TOOLS if (t.name != "sam3_ask" or asks) and (not t.video or tracks)]


def _description(tool: _Exported, service: Sam3Service | None) -> str:
    return service.ask_description if service is not None and tool.name == "sam3_ask" else tool.description


def chat_completions_tools(
    *, include_ask: bool = True, service: Sam3Service | None = None, strict: bool = False
) -> list[dict[str, Any]]:
    """Tools for ``client.chat.completions.create(tools=...)``: ``{"type": "function", "function": {...}}``;
    with ``strict``, strict-mode schemas and ``"strict": true`` in each function."""
    flag = {"strict": True} if strict else {}
    return [
        {"type": "function", "function": {**spec.model_dump(), **flag}}
        for spec in tool_specs(include_ask=include_ask, service=service, strict=strict)
    ]


def responses_tools(
    *, include_ask: bool = True, service: Sam3Service | None = None, strict: bool = False
) -> list[dict[str, Any]]:
    """Tools for ``client.responses.create(tools=...)``: ``{"type": "function", "name": ..., "parameters": ...}``;
    with ``strict``, strict-mode schemas and ``"strict": true``."""
    flag = {"strict": True} if strict else {}
    return [
        {"type": "function", **spec.model_dump(), **flag}
        for spec in tool_specs(include_ask=include_ask, service=service, strict=strict)
    ]


class ToolArgumentError(ValueError):
    """A tool call the model can fix: unknown tool, arguments that are not JSON or fail validation."""


@dataclass(frozen=True)
class _Call:
    shape: Literal["chat", "responses"]
    call_id: str
    name: str
    arguments: str


class ToolExecutor:
    """Runs calls of the exported tools with a ``Sam3Service``.

    :meth:`execute` takes a tool call as the API returned it and gives back the message to append: a
    Chat Completions call (``{"id", "type": "function", "function": {"name", "arguments"}}``) gets
    ``{"role": "tool", "tool_call_id", "content"}``; a Responses ``function_call`` item
    (``{"type": "function_call", "call_id", "name", "arguments"}``) gets
    ``{"type": "function_call_output", "call_id", "output"}``. openai SDK objects and plain dicts both work.
    """

    def __init__(self, service: Sam3Service) -> None:
        self.service = service

    def run(self, name: str, arguments: Mapping[str, Any] | str) -> Outcome[Any] | VideoOutcome[Any]:
        """Run one tool; ``arguments`` as a dict or JSON text. Returns the outcome (result + image; a video tool's
        has no image).

        Raises:
            ToolArgumentError: unknown tool, unparsable or invalid arguments.
            ImageError, PromptError, VideoError: the image, prompt or video is refused. Other ``Sam3AgentError``:
                operational.
        """
        tool = _BY_NAME.get(name)
        if tool is None or (tool.video and not self.service.can_track):
            offered = ", ".join(t.name for t in _offered(self.service))
            raise ToolArgumentError(f"there is no tool named {name!r}; tools: {offered}")
        if isinstance(arguments, str):
            try:
                arguments = parse_arguments(arguments)
            except ToolError as exc:
                raise ToolArgumentError(f"{name}: {exc}") from None
        try:
            args = tool.args.model_validate(dict(arguments))
        except ValidationError as exc:
            raise ToolArgumentError(f"invalid arguments for {name}: {validation_message(exc)}") from None
        return tool.run(self.service, args)

    def execute(self, call: Any) -> dict[str, Any]:
        """The tool message answering ``call``. Mistakes the model can fix come back as content starting
        with ``"Error:"``; operational failures (checkpoint, LLM endpoint) raise."""
        parsed = _parse_call(call)
        try:
            text = self.run(parsed.name, parsed.arguments).summary
        except (ToolArgumentError, ImageError, PromptError, VideoError) as exc:
            text = f"Error: {exc}"
        if parsed.shape == "chat":
            return {"role": "tool", "tool_call_id": parsed.call_id, "content": text}
        return {"type": "function_call_output", "call_id": parsed.call_id, "output": text}


def _parse_call(call: Any) -> _Call:
    """Read a Chat Completions tool call or a Responses function_call item (dict or openai SDK object)."""
    data = call.model_dump() if hasattr(call, "model_dump") else call
    if not isinstance(data, Mapping):
        raise TypeError(f"expected a tool call dict or openai object, got {type(call).__name__}")
    function = data.get("function")
    if isinstance(function, Mapping):
        return _Call("chat", str(data.get("id") or ""), str(function.get("name") or ""), _raw(function))
    if data.get("type") == "function_call" or "call_id" in data:
        return _Call("responses", str(data.get("call_id") or ""), str(data.get("name") or ""), _raw(data))
    raise TypeError(
        "not a function tool call: expected {'id', 'function': {'name', 'arguments'}} (Chat Completions) or "
        f"{{'type': 'function_call', 'call_id', 'name', 'arguments'}} (Responses); got keys {sorted(data)}"
    )


def _raw(holder: Mapping[str, Any]) -> str:
    arguments = holder.get("arguments")
    if arguments is None:
        return ""
    return arguments if isinstance(arguments, str) else json.dumps(arguments)
