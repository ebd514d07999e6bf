"""sam3-agent as LangChain tools: ``Sam3SegmentTool``, ``Sam3CountTool`` and ``Sam3AgentTool`` (``sam3_ask``), and
``Sam3TrackVideoTool`` / ``Sam3AskVideoTool`` for a service with a video tracker (track tables, no masks).

Each is a ``BaseTool`` with a pydantic ``args_schema`` and ``response_format="content_and_artifact"``:
the content is a compact text summary for the model (counts, ids, scores, boxes), the artifact the full
result as a JSON-ready dict (``SegmentResult`` / ``CountResult`` / ``AskResult``, instances with COCO RLE
masks; ``SegmentResult.model_validate(message.artifact)`` gives typed instances back). Sync and async:
``ainvoke`` runs the engine in a worker thread so the event loop is never blocked.

Mistakes the calling model can fix (an unreadable or refused image, an empty prompt, a box outside the
image) come back as an error ``ToolMessage``; operational failures (checkpoint, LLM endpoint) raise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.runnables.config import run_in_executor
from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, Field, ValidationError, model_validator

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
)
from sam3_agent.integrations.service import Outcome, Sam3Service, VideoOutcome
from sam3_agent.validation import validation_message

Content = str | list[str | dict[str, Any]]


def _validation_message(exc: ValidationError) -> str:
    """Every problem with the arguments, cross-field ones included (they have no field location)."""
    return f"Error: invalid arguments: {validation_message(exc)}"


class _Sam3Tool(BaseTool):
    """Shared plumbing: the service, error mapping, content with an optional overlay image."""

    service: Sam3Service
    """What does the work (engine, LLM, image resolver, default thresholds)."""
    show_overlay: bool = False
    """Also put the numbered overlay in the content, as a standard image block (only for models that read
    images in tool results, e.g. Anthropic's; OpenAI's Chat Completions does not)."""
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: bool = True
    handle_validation_error: Callable[[ValidationError], str] = Field(default=lambda exc: _validation_message(exc))

    def _outcome(self, **kwargs: Any) -> Outcome[Any] | VideoOutcome[Any]:
        raise NotImplementedError

    def _run(self, run_manager: CallbackManagerForToolRun | None = None, **kwargs: Any) -> tuple[Content, dict]:
        try:
            outcome = self._outcome(**kwargs)
        except (ImageError, PromptError, VideoError) as exc:
            raise ToolException(f"Error: {exc}") from exc
        return self._content(outcome), outcome.result.model_dump(mode="json")

    async def _arun(
        self, run_manager: AsyncCallbackManagerForToolRun | None = None, **kwargs: Any
    ) -> tuple[Content, dict]:
        return await run_in_executor(None, self._run, **kwargs)

    def _content(self, outcome: Outcome[Any] | VideoOutcome[Any]) -> Content:
        if not self.show_overlay or not isinstance(outcome, Outcome):
            return outcome.summary
        image = {"type": "image", "base64": outcome.overlay_base64(), "mime_type": "image/png"}
        return [{"type": "text", "text": outcome.summary}, image]


class Sam3SegmentTool(_Sam3Tool):
    """Concept segmentation with SAM 3: every instance of each noun phrase, optionally via exemplar boxes."""

    name: str = "sam3_segment"
    description: str = SEGMENT_DESCRIPTION
    args_schema: type[BaseModel] = SegmentArgs

    def _outcome(self, **kwargs: Any) -> Outcome[Any]:
        return self.service.run(SegmentArgs.model_validate(kwargs))


class Sam3CountTool(_Sam3Tool):
    """De-duplicated object count with SAM 3 (score threshold, then intersection-over-minimum NMS)."""

    name: str = "sam3_count"
    description: str = COUNT_DESCRIPTION
    args_schema: type[BaseModel] = CountArgs

    def _outcome(self, **kwargs: Any) -> Outcome[Any]:
        return self.service.run(CountArgs.model_validate(kwargs))


class Sam3AgentTool(_Sam3Tool):
    """The whole sam3-agent as one tool: a question about an image in; answer, count and masks out.

    Answered by the service's language model, or by the built-in planner when it has none; unless given, the
    description says which (and, for the planner, the query shapes it understands).
    """

    name: str = "sam3_ask"
    description: str = ASK_DESCRIPTION
    args_schema: type[BaseModel] = AskArgs

    @model_validator(mode="before")
    @classmethod
    def _describe_service(cls, data: Any) -> Any:
        service = data.get("service") if isinstance(data, dict) else None
        if isinstance(service, Sam3Service) and "description" not in data:
            return {**data, "description": service.ask_description}
        return data

    def _outcome(self, **kwargs: Any) -> Outcome[Any]:
        return self.service.run(AskArgs.model_validate(kwargs))


class Sam3TrackVideoTool(_Sam3Tool):
    """Every instance of each phrase tracked through a video file: one summary row per track, no masks."""

    name: str = "sam3_track_video"
    description: str = TRACK_VIDEO_DESCRIPTION
    args_schema: type[BaseModel] = TrackVideoArgs

    def _outcome(self, **kwargs: Any) -> VideoOutcome[Any]:
        return self.service.run(TrackVideoArgs.model_validate(kwargs))


class Sam3AskVideoTool(_Sam3Tool):
    """A question about a video file, answered by the clip agent (the service's LLM, or the clip planner)."""

    name: str = "sam3_ask_video"
    description: str = ASK_VIDEO_DESCRIPTION
    args_schema: type[BaseModel] = AskVideoArgs

    def _outcome(self, **kwargs: Any) -> VideoOutcome[Any]:
        args = AskVideoArgs.model_validate(kwargs)
        return self.service.ask_video(args.video, args.question)


def sam3_tools(service: Sam3Service, *, show_overlay: bool = False) -> list[BaseTool]:
    """``[Sam3SegmentTool, Sam3CountTool, Sam3AgentTool]``; the last is answered by the service's language model,
    or by the built-in planner when it has none (and left out where the service cannot answer it). A service with a
    video tracker also gets ``Sam3TrackVideoTool`` and ``Sam3AskVideoTool``."""
    tools: list[BaseTool] = [
        Sam3SegmentTool(service=service, show_overlay=show_overlay),
        Sam3CountTool(service=service, show_overlay=show_overlay),
    ]
    if service.can_ask:
        tools.append(Sam3AgentTool(service=service, show_overlay=show_overlay))
    if service.can_track:
        tools += [Sam3TrackVideoTool(service=service), Sam3AskVideoTool(service=service)]
    return tools
