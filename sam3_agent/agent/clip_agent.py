"""The agent on clips: a chat model answers a query about a video by tracking phrases and reasoning on the tracks.

The same small state machine as the image loop (``sam3_agent.agent.loop``): each step asks the model once and
returns ``RunAgain``, ``Finished`` or ``GaveUp``; tools are the clip tools (``clip_tools``); model mistakes go back
to the model as tool results. The model sees the first sampled frame and then only the few keyframes the tools
draw (``max_keyframes`` per call, ``max_images_in_context`` per request), never every frame; track statistics
reach it as text. With no chat model (or the image planner) the built-in ``ClipPlanner`` plans, and no frame is
drawn at all.

``answer_clip(tracker, clip, query)`` is the one-call entry for surfaces (CLI, demo, server).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from sam3_agent.agent.clip_answer import ClipAnswer
from sam3_agent.agent.clip_messages import clip_intro
from sam3_agent.agent.clip_store import TrackStore
from sam3_agent.agent.clip_tools import ClipContext, clip_tools
from sam3_agent.agent.history import prune_history
from sam3_agent.agent.loop import (
    MAX_MODEL_IMAGE_SIDE,
    Finished,
    GaveUp,
    RunAgain,
    StepOutcome,
    asks_for_count,
    check_query,
    run_tool_call,
)
from sam3_agent.agent.messages import (
    ChatModel,
    ImagePart,
    Message,
    ModelGaveUp,
    SystemMessage,
    ToolMessage,
    UserMessage,
)
from sam3_agent.agent.system_prompt import load_prompt
from sam3_agent.agent.tools import Shown, Tool, Verdict
from sam3_agent.errors import ConfigError, VideoError
from sam3_agent.schema import AnswerStatus, TraceStep
from sam3_agent.video.frames import Clip
from sam3_agent.video.protocol import ProgressFn, TrackOptions, VideoTracker

CLIP_PROMPT_NAME = "clip_agent_system"
DEFAULT_MAX_KEYFRAMES = 4
CLIP_NUDGE = (
    "Your reply called no tool. Every reply must call a tool. Continue with the next tool call, or finish "
    "with final_answer (or no_match if nothing in the clip matches the query)."
)


@dataclass
class ClipRunState:
    """Everything one run about a clip accumulates."""

    query: str
    context: ClipContext
    messages: list[Message]
    trace: list[TraceStep] = field(default_factory=list)
    turns: int = 0


class ClipAgent:
    """Answers queries about a clip ("how many different cars pass?", "segment the person who enters last").

    Args:
        tracker: the video engine (or any ``VideoTracker``).
        llm: the chat model; None (or the image ``QueryPlanner``) means the built-in ``ClipPlanner``.
        options: how clips are tracked (frames, thresholds); None means ``TrackOptions()``.
        max_turns: chat-model calls allowed per run (>= 1).
        max_images_in_context: images kept in each request, the first frame included (>= 1).
        max_keyframes: frames one tool call may show the model (>= 1; the planner is shown none).
        system_prompt: overrides ``prompts/clip_agent_system.txt``.
    """

    def __init__(
        self,
        tracker: VideoTracker,
        llm: ChatModel | None = None,
        *,
        options: TrackOptions | None = None,
        max_turns: int = 12,
        max_images_in_context: int = 4,
        max_keyframes: int = DEFAULT_MAX_KEYFRAMES,
        system_prompt: str | None = None,
    ) -> None:
        for name, value in (("max_turns", max_turns), ("max_images_in_context", max_images_in_context)):
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if max_keyframes < 1:
            raise ConfigError(f"max_keyframes must be >= 1, got {max_keyframes}")
        from sam3_agent.agent.planner import QueryPlanner
        from sam3_agent.agent.planner.clip_model import ClipPlanner

        self.tracker = tracker
        self.llm: ChatModel = ClipPlanner() if llm is None or isinstance(llm, QueryPlanner) else llm
        self.planned = isinstance(self.llm, ClipPlanner)
        self.options = options or TrackOptions()
        self.max_turns = max_turns
        self.max_images_in_context = max_images_in_context
        self.max_keyframes = 0 if self.planned else max_keyframes
        self.system_prompt = system_prompt if system_prompt is not None else load_prompt(CLIP_PROMPT_NAME)
        self.tools: dict[str, Tool] = {tool.name: tool for tool in clip_tools()}
        self._specs = [tool.spec() for tool in self.tools.values()]

    def run(
        self,
        clip: Clip | str | os.PathLike,
        query: str,
        *,
        on_step: Callable[[TraceStep], None] | None = None,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> ClipAnswer:
        """Answer ``query`` about ``clip`` (a ``Clip``, or a video file path, opened and checked first).

        ``on_step`` is called with each ``TraceStep`` as soon as its tool has run; ``progress`` and ``cancel`` are
        passed to every tracking call. Returns a ``ClipAnswer`` with status "answered", "no_match" or "gave_up".

        Raises:
            PromptError: the query is empty or too long. VideoError: the clip cannot be opened or decoded.
            Cancelled: ``cancel`` was set while tracking. LLMError: the chat model failed.
        """
        state = self._start(clip, query, progress, cancel)
        while state.turns < self.max_turns:
            outcome = self._step(state, on_step)
            if isinstance(outcome, Finished):
                return self._answer(state, outcome.verdict)
            if isinstance(outcome, GaveUp):
                return self._result(state, "gave_up", outcome.reason, None, ())
        text = f"Gave up: no final answer after {self.max_turns} turns. Tracked: {state.context.store.summary()}."
        return self._result(state, "gave_up", text, None, ())

    def _start(
        self, clip: Clip | str | os.PathLike, query: str, progress: ProgressFn | None, cancel: threading.Event | None
    ) -> ClipRunState:
        query = check_query(query)
        clip = open_clip(clip)
        context = ClipContext(
            clip=clip,
            tracker=self.tracker,
            options=self.options,
            store=TrackStore(clip.info),
            max_keyframes=self.max_keyframes,
            progress=progress,
            cancel=cancel,
        )
        planned = clip.plan(self.options.frames)
        parts: list[str | ImagePart] = [clip_intro(query, clip.info, planned)]
        if self.max_keyframes and planned:
            frames = clip.frames(self.options.frames)
            try:
                first = next(frames, None)
            finally:
                frames.close()  # ends the decoder at once, not when the generator is collected
            if first is not None:
                parts.append(_image_part(Shown(first[1], f"the first sampled frame (frame {first[0].index})")))
        messages: list[Message] = [SystemMessage(content=self.system_prompt), UserMessage.of(*parts)]
        return ClipRunState(query=query, context=context, messages=messages)

    def _step(self, state: ClipRunState, on_step: Callable[[TraceStep], None] | None) -> StepOutcome:
        state.turns += 1
        try:
            reply = self.llm.chat(prune_history(state.messages, self.max_images_in_context), self._specs)
        except ModelGaveUp as exc:
            return GaveUp(exc.reason)
        state.messages.append(reply)
        if not reply.tool_calls:
            state.messages.append(UserMessage.of(CLIP_NUDGE))
            return RunAgain()
        shown: list[Shown] = []
        for call in reply.tool_calls:
            result = run_tool_call(self.tools, call, state.context, state.trace, on_step)
            message = ToolMessage(
                tool_call_id=call.id,
                name=call.name,
                content=result.text,
                ok=result.ok,
                instance_ids=result.instance_ids,
            )
            state.messages.append(message)
            if result.verdict is not None:
                return Finished(result.verdict)
            shown += result.images
        if shown:
            state.messages.append(UserMessage(content=tuple(_image_part(s) for s in shown)))
        return RunAgain()

    def _answer(self, state: ClipRunState, verdict: Verdict) -> ClipAnswer:
        """Counting queries always get a count: the model's, else the number of selected tracks."""
        count = verdict.count
        if count is None and asks_for_count(state.query):
            count = len(verdict.ids)
        return self._result(state, verdict.status, verdict.text, count, verdict.ids)

    def _result(
        self, state: ClipRunState, status: AnswerStatus, text: str, count: int | None, ids: tuple[int, ...]
    ) -> ClipAnswer:
        ctx = state.context
        return ClipAnswer(
            query=state.query,
            status=status,
            text=text,
            count=count,
            track_ids=ids,
            frame=ctx.answer_frame if status == "answered" else None,
            tracks=ctx.store.clip_tracks(),
            video=ctx.clip.info,
            options=self.options,
            trace=tuple(state.trace),
        )


def open_clip(clip: object) -> Clip:
    """``clip`` itself, or the video file at that path opened and checked (``Clip.open``).

    Raises:
        VideoError: not a clip or path (an image object, say), or a file that is not a readable video.
    """
    if isinstance(clip, Clip):
        return clip
    if isinstance(clip, Image.Image):
        raise VideoError("expected a video (a Clip or a file path), got a PIL image: ask about images with run()")
    if isinstance(clip, str | os.PathLike):
        return Clip.open(clip)
    raise VideoError(f"expected a video (a Clip or a file path), got {type(clip).__name__}")


def answer_clip(
    tracker: VideoTracker,
    clip: Clip | str | os.PathLike,
    query: str,
    llm: ChatModel | None = None,
    *,
    options: TrackOptions | None = None,
    max_turns: int = 12,
    max_keyframes: int = DEFAULT_MAX_KEYFRAMES,
    on_step: Callable[[TraceStep], None] | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> ClipAnswer:
    """Answer ``query`` about ``clip`` with ``tracker`` and ``llm`` (None: the built-in clip planner).

    See ``ClipAgent.run`` for the arguments, the answer and the errors.
    """
    agent = ClipAgent(tracker, llm, options=options, max_turns=max_turns, max_keyframes=max_keyframes)
    return agent.run(clip, query, on_step=on_step, progress=progress, cancel=cancel)


def _image_part(shown: Shown) -> ImagePart:
    image = shown.image
    if max(image.size) > MAX_MODEL_IMAGE_SIDE:
        image = image.copy()
        image.thumbnail((MAX_MODEL_IMAGE_SIDE, MAX_MODEL_IMAGE_SIDE))
    return ImagePart.from_pil(image, caption=shown.caption)
