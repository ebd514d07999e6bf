"""What the ``sam3_segment``, ``sam3_count`` and ``sam3_ask`` tools return, and their text summaries.

The models are the structured results (MCP ``structuredContent``, LangChain artifacts, the Python API);
``summary()`` is the compact text shown to the calling model: counts, ids, scores and boxes, no masks.
Instances are the package's one ``Instance`` type (boxes XYXY pixels, masks COCO RLE); within one
result their ids are 1, 2, 3, ...
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from sam3_agent.agent.tools import describe
from sam3_agent.engine.tiling import SegmentReport
from sam3_agent.schema import Answer, AnswerStatus, Instance, TraceStep

MAX_SUMMARY_INSTANCES = 25
"""Instances listed one per line in a summary; the rest are only counted (they are all in the result)."""


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PhraseCount(_Result):
    """How many instances one prompt found, and their ids."""

    phrase: str
    count: int = Field(ge=0)
    ids: list[int]


class SegmentResult(_Result):
    """Every instance found for each prompt of one ``sam3_segment`` call."""

    image_size: tuple[int, int] = Field(description="(height, width) of the image in pixels")
    phrases: list[PhraseCount]
    instances: list[Instance]
    tiling: SegmentReport | None = Field(default=None, description="tiles used; results near SAM 3's query cap")

    def summary(self) -> str:
        counts = "; ".join(f"'{p.phrase}': {p.count}" for p in self.phrases)
        head = f"Found {len(self.instances)} instance(s) in the {_size(self.image_size)} image ({counts})."
        return _with_instances(head + _tiling_note(self.tiling), self.instances, self.image_size)


class CountResult(_Result):
    """The de-duplicated count of one ``sam3_count`` call; ``instances`` are the counted objects."""

    phrase: str
    count: int = Field(ge=0)
    detected: int = Field(ge=0, description="instances above the score threshold before merging duplicates")
    image_size: tuple[int, int] = Field(description="(height, width) of the image in pixels")
    instances: list[Instance]
    tiling: SegmentReport | None = Field(default=None, description="tiles used; results near SAM 3's query cap")

    def summary(self) -> str:
        merged = self.detected - self.count
        head = f"Count of '{self.phrase}': {self.count}"
        if merged:
            head += f" ({self.detected} detected, {merged} duplicate(s) merged)"
        return _with_instances(head + "." + _tiling_note(self.tiling), self.instances, self.image_size)


class AskResult(_Result):
    """The agent's answer to one ``sam3_ask`` question; ``instances`` are the masks that answer it."""

    question: str
    status: AnswerStatus
    answer: str
    count: int | None = None
    image_size: tuple[int, int] = Field(description="(height, width) of the image in pixels")
    instances: list[Instance]
    found: int = Field(ge=0, description="instances the agent found in all, selected or not")
    trace: list[TraceStep]

    @classmethod
    def from_answer(cls, answer: Answer) -> AskResult:
        return cls(
            question=answer.query,
            status=answer.status,
            answer=answer.text,
            count=answer.count,
            image_size=answer.image_size,
            instances=list(answer.instances),
            found=len(answer.all_instances),
            trace=list(answer.trace),
        )

    def summary(self) -> str:
        head = f"Answer ({self.status}): {self.answer}"
        if self.count is not None:
            head += f"\nCount: {self.count}"
        head += f"\nSelected {len(self.instances)} of {self.found} instance(s) found."
        return _with_instances(head, self.instances, self.image_size)


def _tiling_note(report: SegmentReport | None) -> str:
    """The sentences a summary adds: the tiles searched, and a warning per result near SAM 3's query cap."""
    if report is None:
        return ""
    note = f" Searched in {report.tiles} overlapping tiles." if report.tiled else ""
    for row in report.prompts:
        if row.near_cap:
            where = "one tile" if row.tiled else "the image"
            note += (
                f" Warning: '{row.phrase}' returned {row.largest_pass} in {where}, near SAM 3's limit of "
                f"{report.query_cap} per pass: the count may be too low (try tile='always')."
            )
    return note


def _size(image_size: tuple[int, int]) -> str:
    height, width = image_size
    return f"{width}x{height}"


def _with_instances(head: str, instances: list[Instance], image_size: tuple[int, int]) -> str:
    if not instances:
        return head
    area = image_size[0] * image_size[1]
    lines = [head, "Instances (box = [x0, y0, x1, y1] in pixels):"]
    lines += [describe(inst, area) for inst in instances[:MAX_SUMMARY_INSTANCES]]
    if len(instances) > MAX_SUMMARY_INSTANCES:
        lines.append(f"... and {len(instances) - MAX_SUMMARY_INSTANCES} more (all are in the structured result)")
    return "\n".join(lines)
