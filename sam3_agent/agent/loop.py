"""The agent loop: a small state machine in which the language model drives SAM 3 through tools.

One run answers one query about one image. The state (:class:`RunState`) holds the conversation, the mask
store and the trace. Each :meth:`Sam3Agent._step` asks the model once and returns :class:`RunAgain`,
:class:`Finished` or :class:`GaveUp`; the run ends on ``final_answer`` / ``no_match``, when the model gives up
(``ModelGaveUp``) or when the turn limit is reached. With no chat model the built-in ``QueryPlanner`` plans.
Model mistakes (bad JSON, unknown tools or ids, no tool call at all) go back to the model as messages and
cost a turn; caller mistakes raise (``PromptError``, ``ImageError``, ``ConfigError``); ``LLMError`` from the
chat model propagates.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PIL import Image

from sam3_agent.agent.history import prune_history
from sam3_agent.agent.messages import (
    ChatModel,
    ContentPart,
    ImagePart,
    Message,
    ModelGaveUp,
    SystemMessage,
    ToolMessage,
    UserMessage,
    query_intro,
)
from sam3_agent.agent.store import MaskStore
from sam3_agent.agent.system_prompt import load_prompt
from sam3_agent.agent.toolbox import default_tools
from sam3_agent.agent.tools import Shown, Tool, ToolContext, ToolResult, Verdict, execute
from sam3_agent.engine.protocol import Clicker, Segmenter
from sam3_agent.errors import ConfigError, ImageError, PromptError
from sam3_agent.schema import Answer, AnswerStatus, Instance, Thresholds, TraceStep
from sam3_agent.video.frames import Clip

if TYPE_CHECKING:
    from sam3_agent.agent.clip_answer import ClipAnswer
    from sam3_agent.video.protocol import ProgressFn, TrackOptions, VideoTracker

SYSTEM_PROMPT_NAME = "agent_system"

MAX_MODEL_IMAGE_SIDE = 1024
"""Images sent to the model are shrunk to this longest side (coordinates stay in original pixels)."""

MAX_QUERY_CHARS = 4000
"""Longer queries are refused before any work (a question about an image fits in far less)."""

NUDGE = (
    "Your reply called no tool. Every reply must call a tool. Continue with the next tool call, or finish "
    "with final_answer (or no_match if nothing in the image matches the query)."
)

_COUNTING = re.compile(r"\b(how many|count|number of)\b", re.IGNORECASE)


def check_query(query: object) -> str:
    """The query, stripped; raises ``PromptError`` when it is not a non-empty string of at most
    ``MAX_QUERY_CHARS`` characters. Callers check it before slow work (loading SAM 3)."""
    if not isinstance(query, str) or not query.strip():
        raise PromptError(f"the query must be a non-empty string, got {query!r}")
    query = query.strip()
    if len(query) > MAX_QUERY_CHARS:
        raise PromptError(f"the query is {len(query)} characters long; at most {MAX_QUERY_CHARS} are accepted")
    return query


def asks_for_count(query: str) -> bool:
    """True when the query asks for a number ("how many", "count", "number of")."""
    return _COUNTING.search(query) is not None


@dataclass(frozen=True)
class RunAgain:
    """The model acted, was corrected or was nudged: ask it again."""


@dataclass(frozen=True)
class Finished:
    """A terminal tool succeeded: the run ends with its verdict."""

    verdict: Verdict


@dataclass(frozen=True)
class GaveUp:
    """The model said it cannot answer this query: the run ends with status "gave_up" and its reason."""

    reason: str


StepOutcome = RunAgain | Finished | GaveUp


@dataclass
class RunState:
    """Everything one run accumulates. ``messages`` is the full history; pruning happens per request."""

    query: str
    context: ToolContext
    messages: list[Message]
    trace: list[TraceStep] = field(default_factory=list)
    turns: int = 0

    @property
    def store(self) -> MaskStore:
        return self.context.store


class Sam3Agent:
    """Answers referring, reasoning and counting queries about an image with SAM 3 and a chat model.

    Args:
        segmenter: the SAM 3 engine (or any ``Segmenter``).
        llm: the chat model that plans and calls the tools; None means the built-in ``QueryPlanner`` (no LLM,
            common English query shapes only).
        thresholds: passed to every segmenter call; None means the defaults.
        max_turns: chat-model calls allowed per run before giving up (>= 1).
        max_images_in_context: images kept in each request, the original image included (>= 1).
        system_prompt: overrides ``prompts/agent_system.txt``.
        clicker: the click engine of the ``segment_at`` tool (points / a box -> one mask), e.g.
            ``clicker_for(segmenter)``; None: the tool answers that clicks are unavailable.
        tracker: the video engine (any ``VideoTracker``) that ``run_clip`` answers questions about clips with;
            None: ``run_clip`` raises ``ConfigError``.
    """

    def __init__(
        self,
        segmenter: Segmenter,
        llm: ChatModel | None = None,
        *,
        clicker: Clicker | None = None,
        tracker: VideoTracker | None = None,
        thresholds: Thresholds | None = None,
        max_turns: int = 12,
        max_images_in_context: int = 3,
        system_prompt: str | None = None,
    ) -> None:
        if max_turns < 1:
            raise ConfigError(f"max_turns must be >= 1, got {max_turns}")
        if max_images_in_context < 1:
            raise ConfigError(f"max_images_in_context must be >= 1, got {max_images_in_context}")
        self.segmenter = segmenter
        self.clicker = clicker
        self.tracker = tracker
        if llm is None:
            from sam3_agent.agent.planner import QueryPlanner

            llm = QueryPlanner()
        self.llm = llm
        self.thresholds = thresholds or Thresholds()
        self.max_turns = max_turns
        self.max_images_in_context = max_images_in_context
        self.system_prompt = system_prompt if system_prompt is not None else load_prompt(SYSTEM_PROMPT_NAME)
        self.tools: dict[str, Tool] = {tool.name: tool for tool in default_tools()}
        self._specs = [tool.spec() for tool in self.tools.values()]

    def run(self, image: Image.Image, query: str, *, on_step: Callable[[TraceStep], None] | None = None) -> Answer:
        """Answer ``query`` about ``image`` (an RGB PIL image; other modes are converted).

        ``on_step`` is called with each ``TraceStep`` as soon as its tool has run. Returns an ``Answer``
        with status "answered", "no_match" or "gave_up" (turn limit, or the model gave up; ``all_instances``
        holds what was found).

        Raises:
            PromptError: the query is empty. ImageError: ``image`` is not a PIL image or is empty.
            LLMError: the chat model failed.
        """
        state = self._start(image, query)
        while state.turns < self.max_turns:
            outcome = self._step(state, on_step)
            if isinstance(outcome, Finished):
                return self._answer(state, outcome.verdict)
            if isinstance(outcome, GaveUp):
                return self._result(state, status="gave_up", text=outcome.reason, count=None, selected=[])
        return self._gave_up(state)

    def run_clip(
        self,
        clip: Clip | str | os.PathLike,
        query: str,
        *,
        options: TrackOptions | None = None,
        on_step: Callable[[TraceStep], None] | None = None,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> ClipAnswer:
        """Answer ``query`` about a video (a ``Clip`` or a file path) with the agent's ``tracker`` and chat model
        (the built-in clip planner when none was given); see ``sam3_agent.agent.clip_agent.ClipAgent.run``.

        ``options``: how to track; None means ``TrackOptions`` with this agent's score threshold.

        Raises:
            ConfigError: the agent has no tracker. PromptError, VideoError, Cancelled, LLMError: as ``ClipAgent.run``.
        """
        from sam3_agent.agent.clip_agent import ClipAgent
        from sam3_agent.video.protocol import TrackOptions

        if self.tracker is None:
            raise ConfigError("this agent has no video tracker: pass tracker= to Sam3Agent to ask about clips")
        agent = ClipAgent(
            self.tracker,
            self.llm,
            options=options or TrackOptions(score=self.thresholds.score),
            max_turns=self.max_turns,
            max_images_in_context=self.max_images_in_context,
        )
        return agent.run(clip, query, on_step=on_step, progress=progress, cancel=cancel)

    def _start(self, image: Image.Image, query: str) -> RunState:
        query = check_query(query)
        if isinstance(image, Clip):
            raise ImageError("expected a PIL.Image.Image, got a video Clip: ask about clips with run_clip")
        if not isinstance(image, Image.Image):
            raise ImageError(f"expected a PIL.Image.Image, got {type(image).__name__}")
        if image.width == 0 or image.height == 0:
            raise ImageError(f"the image is empty ({image.width}x{image.height})")
        image = image if image.mode == "RGB" else image.convert("RGB")
        intro = query_intro(query, image.width, image.height)
        first = UserMessage.of(intro, _image_part(image, "the original image"))
        context = ToolContext(
            image=image, segmenter=self.segmenter, store=MaskStore(), thresholds=self.thresholds, clicker=self.clicker
        )
        return RunState(query=query, context=context, messages=[SystemMessage(content=self.system_prompt), first])

    def _step(self, state: RunState, on_step: Callable[[TraceStep], None] | None) -> StepOutcome:
        state.turns += 1
        try:
            reply = self.llm.chat(prune_history(state.messages, self.max_images_in_context), self._specs)
        except ModelGaveUp as exc:
            return GaveUp(exc.reason)
        state.messages.append(reply)
        if not reply.tool_calls:
            state.messages.append(UserMessage.of(NUDGE))
            return RunAgain()
        shown: list[Shown] = []
        for call in reply.tool_calls:
            result = run_tool_call(self.tools, call, state.context, state.trace, on_step)
            state.messages.append(
                ToolMessage(
                    tool_call_id=call.id,
                    name=call.name,
                    content=result.text,
                    ok=result.ok,
                    instance_ids=result.instance_ids,
                )
            )
            if result.verdict is not None:
                return Finished(result.verdict)  # calls after a terminal one in the same reply are ignored
            shown += result.images
        if shown:
            state.messages.append(UserMessage(content=_image_parts(shown)))
        return RunAgain()

    def _answer(self, state: RunState, verdict: Verdict) -> Answer:
        """Counting queries always get a count: the model's, else the number of selected masks (0 on no_match)."""
        selected = state.store.get(verdict.ids)
        count = verdict.count
        if count is None and asks_for_count(state.query):
            count = len(selected)
        return self._result(state, status=verdict.status, text=verdict.text, count=count, selected=selected)

    def _gave_up(self, state: RunState) -> Answer:
        text = (
            f"Gave up: no final answer after {self.max_turns} turns. Found {state.store.summary()}; none was selected."
        )
        return self._result(state, status="gave_up", text=text, count=None, selected=[])

    def _result(
        self, state: RunState, *, status: AnswerStatus, text: str, count: int | None, selected: Sequence[Instance]
    ) -> Answer:
        image = state.context.image
        return Answer(
            query=state.query,
            status=status,
            text=text,
            count=count,
            instances=tuple(selected),
            all_instances=tuple(state.store.all()),
            trace=tuple(state.trace),
            image_size=(image.height, image.width),
        )


def _image_part(image: Image.Image, caption: str) -> ImagePart:
    if max(image.size) > MAX_MODEL_IMAGE_SIDE:
        image = image.copy()
        image.thumbnail((MAX_MODEL_IMAGE_SIDE, MAX_MODEL_IMAGE_SIDE))
    return ImagePart.from_pil(image, caption=caption)


def _image_parts(shown: Sequence[Shown]) -> tuple[ContentPart, ...]:
    # The caption travels with each ImagePart (clients send it as text before the image, and pruning uses it).
    return tuple(_image_part(item.image, item.caption) for item in shown)


def run_tool_call(
    tools: Sequence[Any], call: Any, context: Any, trace: list[TraceStep], on_step: Callable[[TraceStep], None] | None
) -> ToolResult:
    """Run one tool call of the model's, record it as the next step of ``trace`` (told to ``on_step``)."""
    started = time.perf_counter()
    arguments, result = execute(tools, call, context)
    step = TraceStep(
        index=len(trace),
        tool=call.name,
        arguments=arguments,
        summary=result.text,
        ok=result.ok,
        seconds=time.perf_counter() - started,
        instance_ids=result.instance_ids,
    )
    trace.append(step)
    if on_step is not None:
        on_step(step)
    return result
