"""The one data model shared by the engine, the agent, the CLI, the server and the adapters.

Conventions everywhere: boxes are XYXY in pixels of the ORIGINAL image (x to the right, y down, the
bottom-right corner exclusive like a slice end); masks are COCO run-length encodings (``pycocotools``,
column-major, ``counts`` as a str) of shape (height, width) of the original image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sam3_agent.errors import PromptError
from sam3_agent.masks.overlap import BoxXYXY
from sam3_agent.masks.rle import Rle, rle_decode
from sam3_agent.masks.runs import MaskData, mask_data

__all__ = [
    "Answer",
    "BoxArg",
    "BoxXYXY",
    "ClickPrompt",
    "ExemplarBox",
    "Instance",
    "Point",
    "PointArg",
    "Prompt",
    "Rle",
    "Thresholds",
    "TraceStep",
]

BoxArg = Annotated[list[float], Field(min_length=4, max_length=4, description="[x0, y0, x1, y1] in pixels")]
"""A box as tools and integrations take it in their arguments (JSON list), XYXY pixels."""
PointArg = Annotated[list[float], Field(min_length=2, max_length=2, description="[x, y] in pixels")]
"""A point as tools and integrations take it in their arguments (JSON list), pixels."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Instance(_Frozen):
    """One segmented object.

    ``score`` is SAM 3's final score, sigmoid(query logit) x sigmoid(presence logit);
    ``presence_score`` is the image-level p(concept present) factor alone.
    ``id``: a positive integer, unique within one response. Every surface numbers the instances of a response
    1..N in response order, across prompts: an engine / server / ``RemoteSegmenter`` call with several prompts
    numbers the first prompt's instances 1..k, the next prompt's k+1.., and so on
    (``sam3_agent.engine.protocol.number_instances``); a click answers id 1. The agent's mask store gives ids
    that stay stable for a whole conversation (``sam3_agent.agent.store.MaskStore``).
    """

    id: int = Field(ge=0)
    phrase: str
    score: float = Field(ge=0.0, le=1.0)
    presence_score: float = Field(default=1.0, ge=0.0, le=1.0)
    box: BoxXYXY
    rle: Rle
    area: int = Field(ge=0)

    @field_validator("box")
    @classmethod
    def _box_is_ordered(cls, box: BoxXYXY) -> BoxXYXY:
        if not all(map(math.isfinite, box)) or box[2] < box[0] or box[3] < box[1]:
            raise ValueError(f"box must be finite XYXY with x1 >= x0 and y1 >= y0, got {box}")
        return box

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the image the mask belongs to."""
        return self.rle.size

    @property
    def mask_data(self) -> MaskData:
        """The mask's COCO runs, tight integer box (x0, y0, x1, y1) and pixel count, parsed from ``rle`` once
        (``sam3_agent.masks.mask_data``). Unlike the ``box`` field, the box is always the mask's own."""
        return mask_data(self.rle)

    @property
    def mask(self) -> np.ndarray:
        """The whole mask decoded, bool (height, width), on every access: ``sam3_agent.masks.mask_crop`` decodes a
        part, and ``mask_data`` has the box and area without decoding."""
        return rle_decode(self.rle)

    @property
    def center(self) -> tuple[float, float]:
        """Centre (x, y) of the box."""
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2.0, (y0 + y1) / 2.0)


class ExemplarBox(_Frozen):
    """A visual exemplar: an XYXY pixel box around an example (positive) or a look-alike to reject."""

    box: BoxXYXY
    positive: bool = True

    @field_validator("box")
    @classmethod
    def _finite(cls, box: BoxXYXY) -> BoxXYXY:
        if not all(math.isfinite(v) for v in box):
            raise ValueError(f"box coordinates must be finite numbers, got {box}")
        return box

    def check_inside(self, width: int, height: int) -> None:
        """Raise PromptError unless the box is non-empty, ordered and overlaps the image."""
        x0, y0, x1, y1 = self.box
        if x1 <= x0 or y1 <= y0:
            raise PromptError(f"box {list(self.box)} is empty or inverted: expected x0 < x1 and y0 < y1 (XYXY)")
        if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
            raise PromptError(f"box {list(self.box)} lies outside the {width}x{height} image")


MAX_PHRASE_CHARS = 120
"""The one limit on a noun phrase, on every surface: SAM 3's text encoder reads 32 tokens."""


class Prompt(_Frozen):
    """One SAM 3 prompt: a short noun phrase (at most ``MAX_PHRASE_CHARS`` characters), exemplar boxes, or both."""

    text: str | None = None
    boxes: tuple[ExemplarBox, ...] = ()

    @field_validator("text")
    @classmethod
    def _strip(cls, text: str | None) -> str | None:
        if text is None:
            return None
        text = " ".join(text.split())
        if len(text) > MAX_PHRASE_CHARS:
            raise ValueError(
                f"a phrase must be a short noun phrase of at most {MAX_PHRASE_CHARS} characters, got {len(text)}"
            )
        return text or None

    @model_validator(mode="after")
    def _not_empty(self) -> Prompt:
        if self.text is None and not self.boxes:
            raise ValueError("a prompt needs a non-empty noun phrase, exemplar boxes, or both")
        return self

    @property
    def label(self) -> str:
        """The phrase instances found by this prompt are named after."""
        if self.text:
            return self.text
        n_pos = sum(b.positive for b in self.boxes)
        return f"exemplar ({n_pos} positive, {len(self.boxes) - n_pos} negative)"


Point = tuple[float, float]
"""A click at (x, y) in pixels of the original image."""

MAX_CLICK_POINTS = 64


class ClickPrompt(_Frozen):
    """Clicks on ONE object (SAM 2's promptable visual segmentation): points and/or a box -> one mask.

    ``points`` are (x, y) pixels of the image, ``labels`` one per point: 1 on the object (positive), 0 off it
    (negative). ``box`` is XYXY pixels around the object. At least one point or a box; use ``ClickPrompt.of``
    to build one from plain values with a ``PromptError`` (one line) for bad input.
    """

    points: tuple[Point, ...] = Field(default=(), max_length=MAX_CLICK_POINTS)
    labels: tuple[Literal[0, 1], ...] = ()
    box: BoxXYXY | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ClickPrompt:
        values = [v for point in self.points for v in point] + list(self.box or ())
        if not all(map(math.isfinite, values)):
            raise ValueError("click coordinates must be finite numbers")
        if len(self.labels) != len(self.points):
            raise ValueError(f"got {len(self.labels)} label(s) for {len(self.points)} point(s): give one per point")
        if not self.points and self.box is None:
            raise ValueError("a click needs at least one point or a box")
        return self

    @classmethod
    def of(
        cls,
        points: Sequence[Sequence[float]] = (),
        labels: Sequence[int] | None = None,
        box: Sequence[float] | None = None,
    ) -> ClickPrompt:
        """A prompt from plain values: ``labels`` None means every point is positive.

        Raises:
            PromptError: no point and no box, a label per point missing or not 0 / 1, a malformed point or box.
        """
        values = {
            "points": [tuple(point) for point in points],
            "labels": [1] * len(points) if labels is None else list(labels),
            "box": None if box is None else tuple(box),
        }
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"])
            message = str(err["msg"]).removeprefix("Value error, ")
            raise PromptError(f"{where}: {message}" if where else message) from None

    def check_inside(self, width: int, height: int) -> None:
        """Raise PromptError unless every point lies in the image and the box (if any) is valid and overlaps it."""
        for x, y in self.points:
            if not (0 <= x < width and 0 <= y < height):
                raise PromptError(
                    f"point ({x:g}, {y:g}) lies outside the {width}x{height} image: x must be in [0, {width}), "
                    f"y in [0, {height})"
                )
        if self.box is not None:
            ExemplarBox(box=self.box).check_inside(width, height)

    @property
    def label(self) -> str:
        """The phrase of the object found, e.g. ``"clicked object (2 positive points, 1 negative point)"``."""
        positive = sum(self.labels)
        counts = ((positive, "positive"), (len(self.labels) - positive, "negative"))
        parts = [f"{n} {kind} point{'s' * (n > 1)}" for n, kind in counts if n]
        return "clicked object (" + ", ".join(parts + ["a box"] * (self.box is not None)) + ")"


class Thresholds(_Frozen):
    """Keep an instance when score >= ``score``; a pixel is in the mask when p >= ``mask``.

    ``nms_iom``: drop an instance whose intersection-over-minimum with a higher-scored one exceeds this
    (SAM 3's counting recipe uses 0.5); None disables it.
    """

    score: float = Field(default=0.5, ge=0.0, le=1.0)
    mask: float = Field(default=0.5, ge=0.0, le=1.0)
    nms_iom: float | None = Field(default=None, ge=0.0, le=1.0)


class TraceStep(_Frozen):
    """One step of an agent run: which tool ran with which arguments, what came of it, how long it took."""

    index: int
    tool: str
    arguments: dict
    summary: str
    ok: bool = True
    seconds: float = 0.0
    instance_ids: tuple[int, ...] = ()


AnswerStatus = Literal["answered", "no_match", "gave_up"]


class Answer(_Frozen):
    """What the agent returns for one query."""

    query: str
    status: AnswerStatus
    text: str
    count: int | None = None
    instances: tuple[Instance, ...] = ()
    all_instances: tuple[Instance, ...] = ()
    trace: tuple[TraceStep, ...] = ()
    image_size: Annotated[tuple[int, int], Field(description="(height, width)")] = (0, 0)

    @property
    def selected_ids(self) -> list[int]:
        return [inst.id for inst in self.instances]
