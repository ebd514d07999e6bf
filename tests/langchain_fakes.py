"""LangChain's fake chat model, scripted to call tools: shared by the LangChain tests and the README examples.

``GenericFakeChatModel`` replays its messages but cannot ``bind_tools``; ``ToolCallingFake`` adds that (as a
provider package's model has it) and records the tools bound and every request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field


class ToolCallingFake(GenericFakeChatModel):
    """LangChain's ``GenericFakeChatModel`` plus ``bind_tools``; records the tools bound and every request."""

    bound: list[list[dict[str, Any]]] = Field(default_factory=list)
    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any) -> Any:
        schemas = [convert_to_openai_tool(tool) for tool in tools]
        self.bound.append(schemas)
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=schemas, **kwargs)

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


def fake(*replies: AIMessage | str) -> ToolCallingFake:
    """A fake that answers with ``replies`` in turn, one per model call."""
    return ToolCallingFake(messages=iter(replies))


def calls(name: str, args: dict[str, Any], call_id: str = "call_1") -> AIMessage:
    """A reply calling tool ``name`` with ``args``."""
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}])
