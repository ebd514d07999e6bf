"""The evaluation data model: a ``Sample`` to answer, a ``Prediction`` for it, and the ``EvalRecord`` written
as one JSONL line per sample.

Masks are COCO RLEs (``sam3_agent.schema.Rle``) of shape (height, width) of the image as loaded by
``sam3_agent.images.load_image`` (EXIF orientation applied); boxes are XYXY pixels, max corner exclusive.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sam3_agent.schema import BoxXYXY, Instance, Rle, TraceStep

Task = Literal["segment", "count"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Sample(_Frozen):
    """One question about one image, with its ground truth.

    ``task`` "segment": scored by IoU against ``gt_mask`` (pixels of ``ignore_mask`` count for neither side);
    ``gt_mask`` None means there is no ground truth (a batch run over a folder), an all-zero RLE means the
    right answer is "nothing". ``task`` "count": scored against ``gt_count`` (None: no ground truth).
    ``phrase`` is the short noun phrase the no-LLM baseline sends to SAM 3 (None: it uses the query).
    ``split`` / ``subset`` group the final table, e.g. split "val", subset "long" (ReasonSeg sentences).
    """

    id: str = Field(min_length=1)
    dataset: str
    split: str
    subset: str | None = None
    task: Task
    image: str = Field(description="image path or http(s) URL")
    query: str = Field(min_length=1)
    phrase: str | None = None
    gt_mask: Rle | None = None
    ignore_mask: Rle | None = None
    gt_count: int | None = Field(default=None, ge=0)
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ground_truth_fits_task(self) -> Sample:
        if self.task == "count" and (self.gt_mask is not None or self.ignore_mask is not None):
            raise ValueError(f"sample {self.id!r}: a count sample takes gt_count, not masks")
        if self.task == "segment" and self.gt_count is not None:
            raise ValueError(f"sample {self.id!r}: a segment sample takes gt_mask, not gt_count")
        if self.gt_mask is not None and self.ignore_mask is not None and self.gt_mask.size != self.ignore_mask.size:
            raise ValueError(
                f"sample {self.id!r}: gt_mask is {self.gt_mask.size} but ignore_mask is {self.ignore_mask.size}"
            )
        return self

    @property
    def has_ground_truth(self) -> bool:
        return self.gt_mask is not None if self.task == "segment" else self.gt_count is not None


class PredictedInstance(_Frozen):
    """What a record keeps of each instance behind a prediction (no mask: the union is in ``Prediction``)."""

    id: int
    phrase: str
    score: float
    box: BoxXYXY
    area: int

    @classmethod
    def of(cls, inst: Instance) -> PredictedInstance:
        return cls(id=inst.id, phrase=inst.phrase, score=inst.score, box=inst.box, area=inst.area)


class Prediction(_Frozen):
    """A predictor's answer to one sample.

    ``mask``: union of the selected instances (segment tasks; an all-zero RLE when none is selected).
    ``count``: the number answered (count tasks). ``trace``: the agent's tool steps (empty for the baseline).
    """

    status: Literal["answered", "no_match", "gave_up"] = "answered"
    text: str = ""
    count: int | None = Field(default=None, ge=0)
    mask: Rle | None = None
    instances: tuple[PredictedInstance, ...] = ()
    trace: tuple[TraceStep, ...] = ()


class SampleMetrics(_Frozen):
    """Scores of one sample (all None when it has no ground truth).

    Segment: ``intersection`` / ``union`` pixel counts outside the ignore region and ``iou`` (1.0 when both
    prediction and ground truth are empty, as LISA defines it). Count: ``abs_error`` = |predicted - true|
    and ``correct`` = (predicted == true).
    """

    iou: float | None = None
    intersection: int | None = None
    union: int | None = None
    abs_error: int | None = None
    correct: bool | None = None


class Timings(_Frozen):
    """Seconds spent loading the image, predicting, and on the whole sample (scoring included)."""

    load_s: float = 0.0
    predict_s: float = 0.0
    total_s: float = 0.0


class EvalRecord(_Frozen):
    """One JSONL line of a run: the sample's identity, the prediction, its metrics, timings and any error.

    A sample whose prediction failed has ``error`` set and ``prediction`` None; it is scored as an empty
    answer (no mask, count 0) so failures lower the metrics instead of disappearing from them.
    """

    sample_id: str
    dataset: str
    split: str
    subset: str | None = None
    task: Task
    image: str
    query: str
    gt_count: int | None = None
    prediction: Prediction | None = None
    metrics: SampleMetrics = SampleMetrics()
    timings: Timings = Timings()
    error: str | None = None
    worker: str = ""

    def to_line(self) -> bytes:
        """The record as one UTF-8 JSON line ending in a newline (no newline inside)."""
        return (self.model_dump_json() + "\n").encode("utf-8")
