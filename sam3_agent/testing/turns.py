"""Builders of scripted assistant turns, shared by the replay server and the in-process scripted model."""

from __future__ import annotations

import itertools
import json
from typing import Any

from sam3_agent.agent.messages import AssistantMessage, ToolCall

_ids = itertools.count(1)


def tool_call_turn(
    name: str, arguments: dict[str, Any] | str, *, content: str | None = None, call_id: str | None = None
) -> AssistantMessage:
    """An assistant turn making one tool call.

    ``arguments``: a dict is JSON-encoded; a str is passed on raw, so malformed JSON can be scripted.
    ``call_id`` defaults to a process-unique ``call_<n>``.
    """
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    call = ToolCall(id=call_id or f"call_{next(_ids)}", name=name, arguments=raw)
    return AssistantMessage(content=content, tool_calls=(call,))


def text_turn(content: str) -> AssistantMessage:
    """An assistant turn with text only (a final answer, or a reply the agent must handle)."""
    return AssistantMessage(content=content)
