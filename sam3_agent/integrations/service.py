"""The one service behind every integration: segment phrases, count, ask; plus the overlay to show.

LangChain tools, the OpenAI function-calling executor and the MCP server are thin shells around
:class:`Sam3Service`, so they resolve images, apply thresholds, number instances and summarise results
identically. Boxes are XYXY pixels of the image as loaded (EXIF-oriented); masks are COCO RLE.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from PIL import Image
from pydantic import ValidationError

from sam3_agent.agent.messages import ChatModel
from sam3_agent.engine.checkpoint import TRACKER_MISSING
from sam3_agent.engine.protocol import Clicker, Segmenter, clicker_for
from sam3_agent.engine.tiling import TiledSegmenter, TileMode
from sam3_agent.errors import CheckpointError, ConfigError, PromptError
from sam3_agent.integrations.args import (
    AskArgs,
    AskVideoArgs,
    CountArgs,
    SegmentArgs,
    TrackVideoArgs,
    ask_description,
)
from sam3_agent.integrations.clicks import ClickResult, SegmentAtArgs
from sam3_agent.integrations.image_refs import ImageInput, ImageResolver
from sam3_agent.integrations.results import (
    AskResult,
    AskVideoResult,
    CountResult,
    PhraseCount,
    SegmentResult,
    TrackVideoResult,
)
from sam3_agent.masks import nms
from sam3_agent.schema import ExemplarBox, Instance, Prompt, Thresholds
from sam3_agent.validation import validation_message
from sam3_agent.video.protocol import FrameSelection, TrackOptions, VideoTracker

if TYPE_CHECKING:
    from sam3_agent.agent.loop import Sam3Agent
    from sam3_agent.video.frames import Clip

COUNT_IOM = 0.5
"""Intersection-over-minimum above which two masks count as one object (SAM 3's counting recipe)."""

OVERLAY_MAX_SIDE = 1024
"""Overlays sent over the wire are shrunk to this longest side (the structured result keeps full size)."""

R = TypeVar("R", SegmentResult, CountResult, AskResult, ClickResult)
BoxList = Sequence[Sequence[float]]
VideoArgs = TrackVideoArgs | AskVideoArgs


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """A result together with the image it is about (RGB, as loaded), to render the overlay from."""

    result: R
    image: Image.Image

    @property
    def summary(self) -> str:
        """Compact text for the calling model (see the result's ``summary``)."""
        return self.result.summary()

    def overlay(self, max_side: int | None = OVERLAY_MAX_SIDE) -> Image.Image:
        """Set-of-Mark overlay of the result's instances (the plain image when there are none), RGB,
        shrunk to ``max_side`` on its longest side unless None."""
        from sam3_agent.render import render_overlay

        shown = render_overlay(self.image, self.result.instances) if self.result.instances else self.image.copy()
        if max_side is not None and max(shown.size) > max_side:
            shown.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        return shown

    def overlay_png(self, max_side: int | None = OVERLAY_MAX_SIDE) -> bytes:
        """The overlay encoded as PNG."""
        buf = io.BytesIO()
        self.overlay(max_side).save(buf, format="PNG")
        return buf.getvalue()

    def overlay_base64(self, max_side: int | None = OVERLAY_MAX_SIDE) -> str:
        """The overlay PNG in base64 (no ``data:`` prefix)."""
        return base64.b64encode(self.overlay_png(max_side)).decode("ascii")


V = TypeVar("V", TrackVideoResult, AskVideoResult)


@dataclass(frozen=True)
class VideoOutcome(Generic[V]):
    """A video tool's result; no overlay image (the overlay of a clip is a video: ``sam3-agent track``)."""

    result: V

    @property
    def summary(self) -> str:
        """Compact text for the calling model (see the result's ``summary``)."""
        return self.result.summary()


def as_chat_model(llm: Any) -> ChatModel:
    """``llm`` as a ``ChatModel``: ours as is, a LangChain chat model wrapped in ``LangChainChatModel``.

    Raises:
        ConfigError: ``llm`` is neither.
    """
    if isinstance(llm, ChatModel):
        return llm
    if hasattr(llm, "bind_tools") and hasattr(llm, "invoke"):
        from sam3_agent.integrations.langchain_llm import LangChainChatModel

        return LangChainChatModel(llm)
    raise ConfigError(
        f"llm must be a sam3_agent ChatModel (e.g. OpenAIChatModel) or a LangChain chat model with tool calling, "
        f"got {type(llm).__name__}"
    )


class Sam3Service:
    """Segment, count and ask about images named by reference.

    Args:
        segmenter: the SAM 3 engine (``Sam3Engine``, loaded on first use) or any ``Segmenter``.
        llm: the language model of ``ask``: a ``ChatModel`` or a LangChain chat model with ``bind_tools``;
            None: the built-in ``QueryPlanner`` answers (no LLM, common English query shapes only).
        images: how image references are resolved; default: paths under the current folder, no URLs.
        thresholds: defaults for calls that give none (score 0.5, mask 0.5).
        max_turns: the agent's turn limit in ``ask``.
        tile: tiled segmentation (``sam3_agent.engine.tiling``) for calls that name none, and in ``ask``.
        clicker: the click engine of ``segment_at`` and of the agent's ``segment_at`` tool; None:
            ``clicker_for(segmenter)`` (SAM 3's tracker sharing a ``Sam3Engine``'s backbone when its checkpoint
            has the tracker; the server's client clicks itself), which may be None: no clicks.
        tracker: the video tracker of ``track_video`` and ``ask_video`` (e.g. ``Sam3VideoEngine``, loaded on first
            use); None: no video tools. Video files are resolved by ``images`` (``resolve_video_path``).
    """

    def __init__(
        self,
        segmenter: Segmenter,
        llm: Any = None,
        *,
        images: ImageResolver | None = None,
        thresholds: Thresholds | None = None,
        max_turns: int = 12,
        tile: TileMode = "auto",
        clicker: Clicker | None = None,
        tracker: VideoTracker | None = None,
    ) -> None:
        if not isinstance(segmenter, Segmenter):
            raise ConfigError(f"segmenter must implement segment(image, prompts, thresholds), got {type(segmenter)}")
        if max_turns < 1:
            raise ConfigError(f"max_turns must be >= 1, got {max_turns}")
        self.segmenter = segmenter
        self.llm: ChatModel | None = as_chat_model(llm) if llm is not None else None
        self.images = images if images is not None else ImageResolver()
        self.thresholds = thresholds or Thresholds()
        self.max_turns = max_turns
        self.tile: TileMode = tile
        self.clicker = clicker if clicker is not None else clicker_for(segmenter)
        if tracker is not None and not isinstance(tracker, VideoTracker):
            raise ConfigError(f"tracker must implement track(clip, phrases, options), got {type(tracker).__name__}")
        self.tracker = tracker

    @property
    def can_ask(self) -> bool:
        """Always True: :meth:`ask` is answered by the language model, or else by the built-in planner."""
        return True

    @property
    def uses_planner(self) -> bool:
        """Whether :meth:`ask` is answered by the built-in planner (no language model given)."""
        return self.llm is None

    @property
    def ask_description(self) -> str:
        """The ``sam3_ask`` tool description for the calling model: what this service's ``ask`` understands."""
        return ask_description(self.uses_planner)

    def segment(
        self,
        image: ImageInput,
        phrases: Sequence[str] = (),
        *,
        positive_boxes: BoxList = (),
        negative_boxes: BoxList = (),
        score_threshold: float | None = None,
        mask_threshold: float | None = None,
        tile: TileMode | None = None,
    ) -> Outcome[SegmentResult]:
        """Every instance of each phrase (one SAM 3 pass for all phrases).

        Every phrase is prompted with all exemplar boxes; with no phrase, the boxes alone form one prompt.
        Instances of all prompts are numbered 1..n in prompt order, each prompt's by descending score.

        Raises:
            PromptError: no phrase and no positive box, or a box that does not fit the image.
            ImageError: the image reference is refused or unreadable.
        """
        pil = self.images.load(image)
        prompts = _prompts(phrases, positive_boxes, negative_boxes)
        thresholds = self._thresholds(score_threshold, mask_threshold)
        per_prompt, report = self._tiled(tile).segment_with_report(pil, prompts, thresholds)
        instances: list[Instance] = []
        counts: list[PhraseCount] = []
        for prompt, found in zip(prompts, per_prompt, strict=True):
            numbered = [inst.model_copy(update={"id": len(instances) + k}) for k, inst in enumerate(found, start=1)]
            instances += numbered
            counts.append(PhraseCount(phrase=prompt.label, count=len(numbered), ids=[i.id for i in numbered]))
        result = SegmentResult(image_size=(pil.height, pil.width), phrases=counts, instances=instances, tiling=report)
        return Outcome(result, pil)

    def count(
        self,
        image: ImageInput,
        phrase: str | None = None,
        *,
        positive_boxes: BoxList = (),
        negative_boxes: BoxList = (),
        score_threshold: float | None = None,
        tile: TileMode | None = None,
    ) -> Outcome[CountResult]:
        """How many distinct objects match: instances above the score threshold, duplicates merged by
        intersection-over-minimum NMS at ``COUNT_IOM`` (SAM 3's counting recipe). The kept instances are
        numbered 1..count by descending score.

        Raises:
            PromptError: no phrase and no positive box, or a box that does not fit the image.
            ImageError: the image reference is refused or unreadable.
        """
        pil = self.images.load(image)
        (prompt,) = _prompts([phrase] if phrase else [], positive_boxes, negative_boxes)
        thresholds = self._thresholds(score_threshold, None)
        (found,), report = self._tiled(tile).segment_with_report(pil, [prompt], thresholds)
        kept = sorted(nms(found, COUNT_IOM, metric="iom"), key=lambda inst: -inst.score)
        kept = [inst.model_copy(update={"id": k}) for k, inst in enumerate(kept, start=1)]
        result = CountResult(
            phrase=prompt.label,
            count=len(kept),
            detected=len(found),
            image_size=(pil.height, pil.width),
            instances=kept,
            tiling=report,
        )
        return Outcome(result, pil)

    def run(
        self, args: SegmentArgs | CountArgs | AskArgs | SegmentAtArgs | VideoArgs
    ) -> Outcome[Any] | VideoOutcome[Any]:
        """Run the tool whose validated arguments ``args`` are: the one unpacking all integrations share."""
        if isinstance(args, TrackVideoArgs):
            frames = args.model_dump(include={"stride", "max_frames", "start_s", "end_s"})
            return self.track_video(args.video, args.phrases, score_threshold=args.score_threshold, **frames)
        if isinstance(args, AskVideoArgs):
            return self.ask_video(args.video, args.question)
        if isinstance(args, SegmentAtArgs):
            negative, box, threshold = args.negative_points, args.box, args.mask_threshold
            return self.segment_at(args.image, args.points, negative_points=negative, box=box, mask_threshold=threshold)
        if isinstance(args, SegmentArgs):
            return self.segment(
                args.image,
                args.phrases,
                positive_boxes=args.positive_boxes,
                negative_boxes=args.negative_boxes,
                score_threshold=args.score_threshold,
                mask_threshold=args.mask_threshold,
                tile=args.tile,
            )
        if isinstance(args, CountArgs):
            return self.count(
                args.image,
                args.phrase,
                positive_boxes=args.positive_boxes,
                negative_boxes=args.negative_boxes,
                score_threshold=args.score_threshold,
                tile=args.tile,
            )
        return self.ask(args.image, args.question)

    @property
    def can_click(self) -> bool:
        """Whether :meth:`segment_at` has a click engine (SAM 3's tracker) to run on."""
        return self.clicker is not None

    def segment_at(
        self,
        image: ImageInput,
        points: BoxList = (),
        *,
        negative_points: BoxList = (),
        box: Sequence[float] | None = None,
        mask_threshold: float | None = None,
    ) -> Outcome[ClickResult]:
        """The ONE object the clicks point at (SAM 3's tracker): ``points`` [x, y] on it, ``negative_points`` off
        it, and/or a ``box`` around it, pixels of the image as loaded. Its instance has id 1.

        Raises:
            PromptError: no point and no box, a point outside the image, an empty box or one outside the image.
            ImageError: the image reference is refused or unreadable.
            CheckpointError: there is no click engine (e.g. a detector-only checkpoint).
        """
        if self.clicker is None:
            raise CheckpointError(f"this sam3-agent has no click engine: {TRACKER_MISSING}")
        pil = self.images.load(image)
        clicked = [(p[0], p[1]) for p in (*points, *negative_points)]
        labels = [1] * len(points) + [0] * len(negative_points)
        clicked_box = None if box is None else (box[0], box[1], box[2], box[3])
        thresholds = self._thresholds(None, mask_threshold)
        found = self.clicker.segment_at(pil, clicked, labels, clicked_box, thresholds)
        instances = [found.model_copy(update={"id": 1})] if found.area else []
        return Outcome(ClickResult(phrase=found.phrase, image_size=(pil.height, pil.width), instances=instances), pil)

    def ask(self, image: ImageInput, question: str, *, max_turns: int | None = None) -> Outcome[AskResult]:
        """Answer a question with the agent: the configured LLM driving SAM 3, or the built-in planner (which
        gives up, status "gave_up" with the reason, on queries it cannot parse).

        Raises:
            PromptError: the question is empty. ImageError: the image reference is refused or unreadable.
            LLMError: the language model failed.
        """
        pil = self.images.load(image)
        answer = self._agent(max_turns).run(pil, question)
        return Outcome(AskResult.from_answer(answer), pil)

    @property
    def can_track(self) -> bool:
        """Whether :meth:`track_video` and :meth:`ask_video` have a video tracker to run on."""
        return self.tracker is not None

    def track_video(
        self,
        video: str | os.PathLike[str],
        phrases: Sequence[str],
        *,
        stride: int | None = None,
        max_frames: int | None = None,
        start_s: float | None = None,
        end_s: float | None = None,
        score_threshold: float | None = None,
    ) -> VideoOutcome[TrackVideoResult]:
        """Every instance of each phrase tracked through the selected frames of a video file (a path resolved by
        ``images``): one summary row per track, the frames looked at, counts per phrase; no per-frame masks.

        Raises:
            PromptError: no phrase, or an empty or too long one. VideoError: the path is refused (outside the root,
                a URL, base64) or the file is not a readable video. ConfigError: an empty time range.
            CheckpointError: the service has no video tracker.
        """
        tracker, clip = self._clip(video)
        options = self._track_options(stride, max_frames, start_s, end_s, score_threshold)
        tracks = tracker.track(clip, list(phrases), options)
        return VideoOutcome(TrackVideoResult.from_tracks(clip.name, tracks))

    def ask_video(self, video: str | os.PathLike[str], question: str) -> VideoOutcome[AskVideoResult]:
        """Answer a question about a video file with the clip agent: the configured LLM driving the tracker, or
        the built-in clip planner (count / first / last / longest shapes).

        Raises:
            PromptError: the question is empty or too long. VideoError: the path is refused or not a readable video.
            CheckpointError: the service has no video tracker. LLMError: the language model failed.
        """
        from sam3_agent.agent.clip_agent import answer_clip

        tracker, clip = self._clip(video)
        options = TrackOptions(score=self.thresholds.score)
        answer = answer_clip(tracker, clip, question, self.llm, options=options, max_turns=self.max_turns)
        return VideoOutcome(AskVideoResult.from_answer(clip.name, answer))

    def _clip(self, video: str | os.PathLike[str]) -> tuple[VideoTracker, Clip]:
        from sam3_agent.video.frames import Clip

        if self.tracker is None:
            raise CheckpointError("this sam3-agent has no video tracker: create the service with tracker=...")
        return self.tracker, Clip.open(self.images.resolve_video_path(video))

    def _track_options(
        self,
        stride: int | None,
        max_frames: int | None,
        start_s: float | None,
        end_s: float | None,
        score: float | None,
    ) -> TrackOptions:
        given = {"stride": stride, "max_frames": max_frames, "start_s": start_s, "end_s": end_s}
        try:
            frames = FrameSelection.model_validate({k: v for k, v in given.items() if v is not None})
            return TrackOptions(frames=frames, score=self.thresholds.score if score is None else score)
        except ValidationError as exc:
            raise ConfigError(f"invalid video options: {validation_message(exc)}") from None

    def _agent(self, max_turns: int | None) -> Sam3Agent:
        from sam3_agent.agent.loop import Sam3Agent

        segmenter = self._tiled(None)
        turns = max_turns or self.max_turns
        return Sam3Agent(segmenter, self.llm, clicker=self.clicker, thresholds=self.thresholds, max_turns=turns)

    def _tiled(self, tile: TileMode | None) -> TiledSegmenter:
        """The segmenter behind tiling in ``tile`` mode (None: the service's); a ``TiledSegmenter`` given as the
        segmenter keeps its options."""
        if isinstance(self.segmenter, TiledSegmenter):
            return self.segmenter.with_mode(tile) if tile else self.segmenter
        return TiledSegmenter(self.segmenter, mode=tile or self.tile)

    def _thresholds(self, score: float | None, mask: float | None) -> Thresholds:
        update = {k: v for k, v in (("score", score), ("mask", mask)) if v is not None}
        return Thresholds.model_validate({**self.thresholds.model_dump(), **update}) if update else self.thresholds


def _prompts(phrases: Sequence[str], positive: BoxList, negative: BoxList) -> list[Prompt]:
    """One prompt per phrase, each with every exemplar box; a single box-only prompt when no phrase."""
    try:
        boxes = tuple(ExemplarBox(box=tuple(b), positive=True) for b in positive)
        boxes += tuple(ExemplarBox(box=tuple(b), positive=False) for b in negative)
    except ValidationError as exc:
        raise PromptError(f"invalid exemplar box: {exc.errors(include_url=False)[0]['msg']}") from None
    texts = [p for p in phrases if p and p.strip()]
    if not texts and not any(b.positive for b in boxes):
        raise PromptError("give at least one phrase or one positive exemplar box (negative boxes alone find nothing)")
    return [Prompt(text=t, boxes=boxes) for t in texts] or [Prompt(boxes=boxes)]
