"""The text tool-call protocol, for endpoints without native function calling.

The model is told (``prompts/text_tool_protocol.txt``) to answer with one block per turn::

    <tool>{"name": "segment_phrase", "arguments": {"phrase": "red apple"}}</tool>

This module renders those instructions, parses such blocks back into ``ToolCall`` objects, and rewrites a
provider-neutral history so that it carries no native tool roles: assistant tool calls become ``<tool>``
text again and tool results become user text (``Tool result for <name>: ...``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from typing import Any

import json_repair

from sam3_agent.agent.messages import (
    AssistantMessage,
    ContentPart,
    Message,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    ToolSpec,
    UserMessage,
)
from sam3_agent.agent.system_prompt import load_prompt

INVALID_TOOL = "__invalid__"
"""Name given to a ``<tool>`` block that could not be read; its ``arguments`` hold the raw block text."""

PROMPT_NAME = "text_tool_protocol"

# `<tool>` is what we ask for; `<tool_call>` is what several open models emit out of habit. A block ends at
# its closing tag, at the next opening tag, or at the end of the reply (a forgotten closing tag).
_BLOCK = re.compile(r"<(tool|tool_call)>(.*?)(?:</\1>|(?=<tool(?:_call)?>)|\Z)", re.DOTALL | re.IGNORECASE)
_FENCE_OPEN = re.compile(r"^\s*```[\w+-]*[ \t]*\n?")
_FENCE_CLOSE = re.compile(r"\n?[ \t]*```\s*$")
_EMPTY_FENCE = re.compile(r"```[\w+-]*\s*```")


def new_call_id() -> str:
    """A fresh tool-call id (``call_`` + 16 hex digits) for calls parsed from text."""
    return f"call_{uuid.uuid4().hex[:16]}"


def render_tool_instructions(tools: Sequence[ToolSpec]) -> str:
    """The protocol prompt with ``{tools}`` replaced by each tool's name, description and JSON schema."""
    rendered = "\n\n".join(_render_tool(t) for t in tools) if tools else "(no tools are available right now)"
    return load_prompt(PROMPT_NAME).replace("{tools}", rendered).strip()


def _render_tool(tool: ToolSpec) -> str:
    schema = json.dumps(tool.parameters, ensure_ascii=False, sort_keys=True)
    return f"## {tool.name}\n{tool.description.strip()}\nArguments (JSON Schema): {schema}"


def parse_tool_calls(text: str) -> tuple[str | None, list[ToolCall]]:
    """Split a reply into its prose and its tool calls.

    Returns ``(prose, calls)``: ``prose`` is the text outside the blocks, stripped, or None when nothing is
    left; ``calls`` are in reply order, each with a generated id and its arguments as JSON text. Blocks
    with code fences, single quotes, trailing commas or a missing closing tag are repaired; a block that
    cannot be read as ``{"name": str, "arguments": ...}`` becomes a call named ``INVALID_TOOL`` whose
    arguments are the raw block text. A reply with no block at all is accepted as a call only when the
    whole reply (fences aside) is such a JSON object.
    """
    calls = [_decode_block(match.group(2)) for match in _BLOCK.finditer(text)]
    if not calls:
        bare = _bare_call(text)
        return (None, [bare]) if bare is not None else (text.strip() or None, [])
    prose = _EMPTY_FENCE.sub("", _BLOCK.sub("", text)).strip()
    return prose or None, calls


def _strip_fences(text: str) -> str:
    return _FENCE_CLOSE.sub("", _FENCE_OPEN.sub("", text)).strip()


def _decode_block(body: str) -> ToolCall:
    raw = body.strip()
    call = _as_call(_load_lenient(_strip_fences(raw)))
    return call if call is not None else ToolCall(id=new_call_id(), name=INVALID_TOOL, arguments=raw)


def _bare_call(text: str) -> ToolCall | None:
    try:
        obj = json.loads(_strip_fences(text))
    except json.JSONDecodeError:
        return None
    if isinstance(obj, dict) and "arguments" in obj:
        return _as_call(obj)
    return None


def _load_lenient(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return json_repair.loads(text)
    except Exception:  # json_repair is best effort; any failure means "unreadable"
        return None


def _as_call(obj: Any) -> ToolCall | None:
    if not isinstance(obj, dict):
        return None
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return None
    args = obj.get("arguments", obj.get("parameters"))
    if args is None:
        arguments = "{}"
    elif isinstance(args, str):  # already JSON text (double-encoded by the model): pass it on raw
        arguments = args
    else:
        arguments = json.dumps(args, ensure_ascii=False)
    return ToolCall(id=new_call_id(), name=name.strip(), arguments=arguments)


def serialize_tool_call(call: ToolCall) -> str:
    """A call written back as a ``<tool>`` block, as the model would have written it.

    Arguments that are valid JSON are embedded as a value; malformed ones (and ``INVALID_TOOL`` calls) are
    reproduced verbatim so the model sees exactly what it sent.
    """
    if call.name == INVALID_TOOL:
        return f"<tool>{call.arguments}</tool>"
    try:
        args: Any = json.loads(call.arguments) if call.arguments.strip() else {}
    except json.JSONDecodeError:
        return f'<tool>{{"name": {json.dumps(call.name)}, "arguments": {call.arguments}}}</tool>'
    return "<tool>" + json.dumps({"name": call.name, "arguments": args}, ensure_ascii=False) + "</tool>"


def format_tool_result(name: str, content: str) -> str:
    """The user text that carries a tool's result back to the model."""
    return f"Tool result for {name}: {content}"


def to_text_protocol(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> list[Message]:
    """Rewrite a history for an endpoint without native tools.

    The tool instructions are appended to the first system message (or become one, placed first, when
    there is none); assistant tool calls become ``<tool>`` text; ``ToolMessage`` results become user text;
    adjacent user messages are merged, since many chat templates require alternating roles.
    """
    out: list[Message] = []
    instructions = render_tool_instructions(tools) if tools else None
    for message in messages:
        if isinstance(message, SystemMessage) and instructions is not None:
            out.append(SystemMessage(content=f"{message.content.rstrip()}\n\n{instructions}"))
            instructions = None
        elif isinstance(message, AssistantMessage):
            out.append(_assistant_as_text(message))
        elif isinstance(message, ToolMessage):
            _append_user(out, (TextPart(text=format_tool_result(message.name, message.content)),))
        elif isinstance(message, UserMessage):
            _append_user(out, message.content)
        else:
            out.append(message)
    if instructions is not None:
        out.insert(0, SystemMessage(content=instructions))
    return out


def _assistant_as_text(message: AssistantMessage) -> AssistantMessage:
    if not message.tool_calls:
        return message
    pieces = [message.content.strip()] if message.content and message.content.strip() else []
    pieces += [serialize_tool_call(call) for call in message.tool_calls]
    return AssistantMessage(content="\n".join(pieces))


def _append_user(out: list[Message], parts: tuple[ContentPart, ...]) -> None:
    if out and isinstance(out[-1], UserMessage):
        out[-1] = UserMessage(content=out[-1].content + parts)
    else:
        out.append(UserMessage(content=parts))
