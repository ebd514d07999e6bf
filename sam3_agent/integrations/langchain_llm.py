"""Use any LangChain chat model with tool calling as the agent's language model.

``LangChainChatModel`` implements ``sam3_agent.agent.messages.ChatModel`` on top of a LangChain
``BaseChatModel`` that implements ``bind_tools`` (ChatAnthropic, ChatGoogleGenerativeAI, ChatOllama,
ChatOpenAI, ChatBedrock, ...)::

    from langchain_anthropic import ChatAnthropic
    agent = Sam3Agent(engine, LangChainChatModel(ChatAnthropic(model="claude-sonnet-4-5")))

Our messages become LangChain messages (images as standard ``image`` content blocks, base64 PNG/JPEG, each
preceded by its caption; tool results as ``ToolMessage``); the reply's tool calls come back with their
arguments as JSON text, and calls the provider could not parse (``invalid_tool_calls``) keep their raw
text so the agent can tell the model what was wrong. Retries are the LangChain model's own business
(``max_retries`` on most of them); any exception it raises becomes ``LLMError``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, InvalidToolCall, ToolCall
from langchain_core.messages import SystemMessage as LCSystemMessage
from langchain_core.messages import ToolMessage as LCToolMessage

from sam3_agent.agent.messages import (
    AssistantMessage,
    ContentPart,
    ImagePart,
    Message,
    SystemMessage,
    ToolMessage,
    ToolSpec,
    UserMessage,
)
from sam3_agent.agent.messages import ToolCall as Sam3ToolCall
from sam3_agent.agent.text_protocol import new_call_id
from sam3_agent.errors import ConfigError, LLMError

ImageFormat = Literal["standard", "openai"]


class LangChainChatModel:
    """``ChatModel`` over a LangChain chat model with tool calling.

    Args:
        model: a LangChain ``BaseChatModel`` whose class implements ``bind_tools``.
        tool_choice: passed to ``bind_tools`` (e.g. "any" to force a tool call on providers that support it);
            None leaves the provider's default ("auto").
        image_format: "standard" sends images as LangChain's standard blocks
            ``{"type": "image", "base64": ..., "mime_type": ...}``; "openai" as ``image_url`` blocks with a
            data URL, for integrations that predate the standard blocks.

    Raises:
        ConfigError: ``model`` is not a LangChain chat model, or does not implement ``bind_tools``.
    """

    def __init__(
        self, model: BaseChatModel, *, tool_choice: str | None = None, image_format: ImageFormat = "standard"
    ) -> None:
        if not isinstance(model, BaseChatModel):
            raise ConfigError(f"expected a LangChain BaseChatModel, got {type(model).__name__}")
        if type(model).bind_tools is BaseChatModel.bind_tools:
            raise ConfigError(
                f"{type(model).__name__} does not implement bind_tools: the agent needs a chat model with tool "
                "calling (or use OpenAIChatModel with its text tool protocol)"
            )
        if image_format not in ("standard", "openai"):
            raise ConfigError(f"image_format must be 'standard' or 'openai', got {image_format!r}")
        self.model = model
        self.tool_choice = tool_choice
        self.image_format: ImageFormat = image_format
        self._bound: tuple[tuple[str, ...], Any] | None = None

    def chat(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> AssistantMessage:
        """One turn: convert, invoke the bound model, convert the reply back. Raises ``LLMError``."""
        wire = to_langchain_messages(messages, image_format=self.image_format)
        name = type(self.model).__name__
        try:
            reply = self._runnable(tools).invoke(wire)
        except Exception as exc:  # a provider's errors have no common base class
            raise LLMError(f"the LangChain chat model {name} failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(reply, AIMessage):
            raise LLMError(f"the LangChain chat model {name} returned {type(reply).__name__}, expected AIMessage")
        return from_langchain_reply(reply)

    def _runnable(self, tools: Sequence[ToolSpec]) -> Any:
        """The model with ``tools`` bound; re-bound only when the tool set changes."""
        if not tools:
            return self.model
        key = tuple(tool.name for tool in tools)
        if self._bound is None or self._bound[0] != key:
            schemas = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in tools
            ]
            kwargs: dict[str, Any] = {"tool_choice": self.tool_choice} if self.tool_choice is not None else {}
            try:
                bound = self.model.bind_tools(schemas, **kwargs)
            except Exception as exc:
                raise LLMError(f"{type(self.model).__name__}.bind_tools rejected the tools: {exc}") from exc
            self._bound = (key, bound)
        return self._bound[1]


def to_langchain_messages(messages: Sequence[Message], *, image_format: ImageFormat = "standard") -> list[BaseMessage]:
    """Our conversation as LangChain messages, in order.

    System -> ``SystemMessage``; user -> ``HumanMessage`` (a plain string when it has no image, content
    blocks otherwise); assistant -> ``AIMessage`` whose tool calls carry parsed arguments (calls with
    arguments that are not a JSON object go to ``invalid_tool_calls`` with their raw text); tool ->
    ``ToolMessage`` with the same ``tool_call_id``.
    """
    out: list[BaseMessage] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            out.append(LCSystemMessage(content=message.content))
        elif isinstance(message, UserMessage):
            out.append(HumanMessage(content=_user_content(message.content, image_format)))
        elif isinstance(message, AssistantMessage):
            out.append(_ai_message(message))
        elif isinstance(message, ToolMessage):
            out.append(LCToolMessage(content=message.content, tool_call_id=message.tool_call_id, name=message.name))
        else:  # pragma: no cover - Message is a closed union
            raise TypeError(f"unknown message type {type(message).__name__}")
    return out


def from_langchain_reply(reply: AIMessage) -> AssistantMessage:
    """Our ``AssistantMessage`` from a LangChain reply: text content, then tool calls with JSON-text arguments
    (parsed calls first, then invalid ones with their raw argument text, in the provider's order)."""
    calls = [
        Sam3ToolCall(id=call.get("id") or new_call_id(), name=call["name"], arguments=json.dumps(call["args"]))
        for call in reply.tool_calls
    ]
    calls += [
        Sam3ToolCall(id=bad.get("id") or new_call_id(), name=bad.get("name") or "", arguments=bad.get("args") or "")
        for bad in reply.invalid_tool_calls
    ]
    text = str(reply.text)  # a str subclass that is also callable (deprecated form)
    return AssistantMessage(content=text or None, tool_calls=tuple(calls))


def _user_content(parts: Sequence[ContentPart], image_format: ImageFormat) -> str | list[str | dict[str, Any]]:
    if not any(isinstance(p, ImagePart) for p in parts):
        return "\n\n".join(p.text for p in parts if not isinstance(p, ImagePart))
    blocks: list[str | dict[str, Any]] = []
    for part in parts:
        if isinstance(part, ImagePart):
            if part.caption:
                blocks.append({"type": "text", "text": part.caption})
            blocks.append(_image_block(part.data_url, image_format))
        else:
            blocks.append({"type": "text", "text": part.text})
    return blocks


def _image_block(data_url: str, image_format: ImageFormat) -> dict[str, Any]:
    if image_format == "openai":
        return {"type": "image_url", "image_url": {"url": data_url}}
    header, _, payload = data_url.partition(",")
    mime = header.removeprefix("data:").split(";")[0] or "image/png"
    return {"type": "image", "base64": payload, "mime_type": mime}


def _ai_message(message: AssistantMessage) -> AIMessage:
    good: list[ToolCall] = []
    bad: list[InvalidToolCall] = []
    for call in message.tool_calls:
        try:
            args = json.loads(call.arguments) if call.arguments.strip() else {}
        except json.JSONDecodeError:
            args = None
        if isinstance(args, dict):
            good.append(ToolCall(name=call.name, args=args, id=call.id, type="tool_call"))
        else:
            bad.append(
                InvalidToolCall(name=call.name, args=call.arguments, id=call.id, error=None, type="invalid_tool_call")
            )
    return AIMessage(content=message.content or "", tool_calls=good, invalid_tool_calls=bad)
