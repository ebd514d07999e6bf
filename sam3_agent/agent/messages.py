"""Chat messages, tool specs and the ``ChatModel`` protocol the agent loop talks to.

Provider-neutral: the OpenAI-compatible client (``openai_client.py``) translates these to the wire format;
scripted test models return them directly. Images travel as PNG/JPEG data URLs.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field


class _Msg(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TextPart(_Msg):
    type: Literal["text"] = "text"
    text: str


class ImagePart(_Msg):
    type: Literal["image"] = "image"
    data_url: str
    caption: str = ""

    @classmethod
    def from_pil(cls, image: Image.Image, caption: str = "", fmt: str = "PNG") -> ImagePart:
        buf = io.BytesIO()
        image.save(buf, format=fmt)
        mime = "image/png" if fmt.upper() == "PNG" else f"image/{fmt.lower()}"
        return cls(data_url=f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}", caption=caption)


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ToolCall(_Msg):
    """A tool call as the model sent it. ``arguments`` is the raw JSON text, possibly malformed."""

    id: str
    name: str
    arguments: str


class SystemMessage(_Msg):
    role: Literal["system"] = "system"
    content: str


class UserMessage(_Msg):
    role: Literal["user"] = "user"
    content: tuple[ContentPart, ...]

    @classmethod
    def of(cls, *parts: str | Image.Image | ContentPart) -> UserMessage:
        out: list[ContentPart] = []
        for part in parts:
            if isinstance(part, str):
                out.append(TextPart(text=part))
            elif isinstance(part, Image.Image):
                out.append(ImagePart.from_pil(part))
            else:
                out.append(part)
        return cls(content=tuple(out))


class AssistantMessage(_Msg):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


class ToolMessage(_Msg):
    """The result of one tool call. Text only; images a tool produces follow in a UserMessage.

    ``ok`` and ``instance_ids`` repeat the tool result's status and mask ids as data, for in-process models
    that read results without parsing text (the built-in planner). Clients never send them over the wire.
    """

    role: Literal["tool"] = "tool"
    tool_call_id: str
    name: str
    content: str
    ok: bool = True
    instance_ids: tuple[int, ...] = ()


Message = Annotated[SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")]


class ToolSpec(_Msg):
    """A tool offered to the model: name, description, JSON Schema of its arguments object."""

    name: str
    description: str
    parameters: dict[str, Any]


_QUERY_PREFIX = "Query: "
_SIZE_LINE = "\nThe image is "


def query_intro(query: str, width: int, height: int) -> str:
    """The text of the first user message: the query and the image size (pixel coordinate conventions)."""
    return (
        f"{_QUERY_PREFIX}{query}{_SIZE_LINE}{width}x{height} pixels; every box and coordinate is "
        "[x0, y0, x1, y1] in these pixels."
    )


def query_of(messages: Sequence[Message]) -> str | None:
    """The query of a conversation the agent started (see :func:`query_intro`), or None if there is none."""
    first = next((m for m in messages if isinstance(m, UserMessage)), None)
    text = next((p.text for p in first.content if isinstance(p, TextPart)), None) if first else None
    if text is None or not text.startswith(_QUERY_PREFIX) or _SIZE_LINE not in text:
        return None
    return text[len(_QUERY_PREFIX) : text.rindex(_SIZE_LINE)]


class ModelGaveUp(Exception):
    """Raised by a ``ChatModel`` that cannot go on with this query (e.g. the built-in planner given a query it
    cannot parse). The agent ends the run with status "gave_up" and ``reason`` as the answer text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@runtime_checkable
class ChatModel(Protocol):
    """One chat-completion turn: the conversation so far and the tools on offer in, one reply out.

    Implementations retry transient failures themselves and raise ``sam3_agent.errors.LLMError`` when
    they give up; they raise ``ModelGaveUp`` to end a run they cannot answer. They never execute tools.
    """

    def chat(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> AssistantMessage: ...
