"""The agent's tool machinery: what a tool is, what it returns, and how a model's tool call is executed.

The concrete tools live in ``sam3_agent.agent.toolbox``. Errors have two audiences (see
``sam3_agent.errors``): anything the model can fix — malformed JSON, arguments that fail validation, an
unknown tool, unknown mask ids, an empty selection, an ordinal out of range — becomes a tool result whose
text starts with ``"Error:"`` and the run goes on; :func:`execute` never raises for those.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import json_repair
from PIL import Image
from pydantic import BaseModel, ConfigDict, ValidationError

from sam3_agent.agent.messages import ToolCall, ToolSpec
from sam3_agent.agent.store import MaskStore, UnknownIdsError
from sam3_agent.agent.text_protocol import INVALID_TOOL
from sam3_agent.engine.protocol import Clicker, Segmenter
from sam3_agent.engine.tiling import PromptTiling, SegmentReport
from sam3_agent.errors import PromptError
from sam3_agent.schema import Instance, Thresholds
from sam3_agent.validation import clip, validation_message


class ToolError(Exception):
    """A model-facing error: :func:`execute` turns it into a tool result starting with ``"Error:"``."""


class ToolArgs(BaseModel):
    """Base of every tool's argument model: unknown fields are rejected so typos reach the model."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class ToolContext:
    """What a tool works on: the image (RGB), the segmenter, the query's mask store and the thresholds.

    ``reports``: how each phrase searched so far was segmented (tiled, near SAM 3's query cap), by phrase
    (``sam3_agent.agent.cap_notes``). ``clicker``: the click engine of ``segment_at`` (points / a box -> one mask),
    None when the agent has none (the tool then says so)."""

    image: Image.Image
    segmenter: Segmenter
    store: MaskStore
    thresholds: Thresholds
    reports: dict[str, tuple[PromptTiling, SegmentReport]] = field(default_factory=dict)
    clicker: Clicker | None = None


@dataclass(frozen=True)
class Shown:
    """An image a tool shows the model; ``caption`` names it (and stands in for it once pruned)."""

    image: Image.Image
    caption: str


@dataclass(frozen=True)
class Verdict:
    """The outcome of a terminal tool (``final_answer`` / ``no_match``): the run ends with it."""

    status: Literal["answered", "no_match"]
    text: str
    ids: tuple[int, ...] = ()
    count: int | None = None


@dataclass(frozen=True)
class ToolResult:
    """What one tool call produced: text for the model, images to show it, the ids involved, a verdict."""

    text: str
    ok: bool = True
    images: tuple[Shown, ...] = ()
    instance_ids: tuple[int, ...] = ()
    verdict: Verdict | None = None

    @classmethod
    def error(cls, message: str) -> ToolResult:
        return cls(text=f"Error: {message}", ok=False)


ArgsT = TypeVar("ArgsT", bound=ToolArgs)


@dataclass(frozen=True)
class Tool(Generic[ArgsT]):
    """One tool: its name and description (written for the model), argument model, and implementation."""

    name: str
    description: str
    args_model: type[ArgsT]
    fn: Callable[[ToolContext, ArgsT], ToolResult]

    def spec(self) -> ToolSpec:
        """The tool as offered to the model; ``parameters`` is the JSON Schema of ``args_model``."""
        return ToolSpec(name=self.name, description=self.description, parameters=json_schema(self.args_model))

    def __call__(self, ctx: ToolContext, arguments: Mapping[str, Any]) -> ToolResult:
        """Validate ``arguments`` and run; model-facing failures come back as error results."""
        try:
            args = self.args_model.model_validate(dict(arguments))
        except ValidationError as exc:
            return ToolResult.error(f"invalid arguments for {self.name}: {validation_message(exc, show_input=True)}")
        try:
            return self.fn(ctx, args)
        except (ToolError, UnknownIdsError, PromptError) as exc:
            return ToolResult.error(str(exc))


def parse_arguments(raw: str) -> dict[str, Any]:
    """Parse a tool call's JSON arguments, repairing them with ``json_repair`` when strict JSON fails.

    An empty string means no arguments. Raises ToolError when the result is not a JSON object.
    """
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        parsed = _repair(raw)
    if not isinstance(parsed, dict):
        raise ToolError(f"arguments must be a JSON object, got {type(parsed).__name__}: {clip(raw)}")
    return parsed


def _repair(raw: str) -> dict[str, Any]:
    try:
        repaired = json_repair.loads(raw)
    except Exception as exc:  # json_repair documents no exception types; treat any as unrepairable
        raise ToolError(f"arguments are not valid JSON and could not be repaired ({exc}): {clip(raw)}") from exc
    # json_repair turns text with no JSON in it into "" (or an empty object): nothing was recovered.
    if not isinstance(repaired, dict) or not repaired:
        raise ToolError(f"arguments are not valid JSON and could not be repaired into an object: {clip(raw)}")
    return repaired


def execute(tools: Mapping[str, Tool[Any]], call: ToolCall, ctx: ToolContext) -> tuple[dict[str, Any], ToolResult]:
    """Run one tool call; return the parsed arguments (``{"raw": ...}`` if unparsable) and the result.

    Never raises for model mistakes: an unparsable reply (``INVALID_TOOL``), an unknown tool name,
    arguments that are not a JSON object, and everything :meth:`Tool.__call__` catches become error results.
    """
    if call.name == INVALID_TOOL:
        message = (
            f"your reply could not be read as a tool call ({clip(call.arguments)}). Reply with exactly one "
            "tool call: a tool name from the list and a JSON object of its arguments."
        )
        return {"raw": call.arguments}, ToolResult.error(message)
    tool = tools.get(call.name)
    if tool is None:
        names = ", ".join(tools)
        return {"raw": call.arguments}, ToolResult.error(f"there is no tool named {call.name!r}; tools: {names}")
    try:
        arguments = parse_arguments(call.arguments)
    except ToolError as exc:
        return {"raw": call.arguments}, ToolResult.error(f"{call.name}: {exc}")
    return arguments, tool(ctx, arguments)


def describe(inst: Instance, image_area: int | None = None) -> str:
    """One line about a mask for the model, e.g. ``#3 cup: score 0.91, area 1234 px, box [10, 20, 50, 60]``."""
    share = f" ({100.0 * inst.area / image_area:.1f}% of image)" if image_area else ""
    box = ", ".join(f"{v:.0f}" for v in inst.box)
    return f"#{inst.id} {inst.phrase}: score {inst.score:.2f}, area {inst.area} px{share}, box [{box}]"


def id_list(instances: list[Instance] | tuple[Instance, ...]) -> str:
    """``"#1, #4, #7"``, or ``"none"``."""
    return ", ".join(f"#{inst.id}" for inst in instances) or "none"


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema without pydantic's auto-generated ``title`` strings (noise for the LLM)."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if not (k == "title" and isinstance(v, str))}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return strip(model.model_json_schema())
