"""Metrics, with the definitions LISA's evaluation uses (``dvlab-research/LISA``, ``train_ds.py::validate``).

Segmentation, per sample: the intersection I and union U of the predicted and true foreground, counted over
pixels outside the ignore region (LISA paints "ignore" polygons as 255 and drops those pixels from both
sides). IoU = I / U, and 1.0 when U = 0 (prediction and ground truth both empty: "no-object target").
- gIoU = mean of the per-sample IoUs.
- cIoU = sum of I / sum of U over the samples; 0.0 when the summed union is 0 (LISA divides by U + 1e-10).
LISA adds 1e-5 to each per-sample union; we divide exactly, which differs by less than 1e-5 relative.

Counting, per sample: ``correct`` = (predicted == true), ``abs_error`` = |predicted - true|.
- accuracy = mean of ``correct``; MAE = mean of ``abs_error``.

Masks are bool (height, width) arrays or COCO RLEs of the same size; a missing prediction is empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from sam3_agent.evaluation.records import EvalRecord, Prediction, Sample, SampleMetrics
from sam3_agent.masks import rle_decode
from sam3_agent.schema import Rle


def intersection_union(pred: np.ndarray | None, gt: np.ndarray, ignore: np.ndarray | None = None) -> tuple[int, int]:
    """(intersection, union) pixel counts of two (H, W) masks, leaving out pixels where ``ignore`` is set.

    ``pred`` None counts as an empty prediction. Raises ValueError when the shapes differ.
    """
    gt = np.asarray(gt, dtype=bool)
    pred = np.zeros_like(gt) if pred is None else np.asarray(pred, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"predicted mask is {pred.shape} but the ground truth is {gt.shape} (height, width)")
    if ignore is not None:
        ignore = np.asarray(ignore, dtype=bool)
        if ignore.shape != gt.shape:
            raise ValueError(f"ignore mask is {ignore.shape} but the ground truth is {gt.shape} (height, width)")
        keep = ~ignore
        pred, gt = pred & keep, gt & keep
    return int(np.count_nonzero(pred & gt)), int(np.count_nonzero(pred | gt))


def iou(intersection: int, union: int) -> float:
    """I / U, and 1.0 for U = 0 (both masks empty), as LISA scores a correctly empty answer."""
    return 1.0 if union == 0 else intersection / union


def score_segmentation(pred: Rle | None, gt: Rle, ignore: Rle | None = None) -> SampleMetrics:
    """Metrics of one segmentation sample from RLEs (``pred`` None: nothing predicted)."""
    inter, union = intersection_union(
        None if pred is None else rle_decode(pred), rle_decode(gt), None if ignore is None else rle_decode(ignore)
    )
    return SampleMetrics(iou=iou(inter, union), intersection=inter, union=union)


def score_count(pred: int | None, gt: int) -> SampleMetrics:
    """Metrics of one counting sample (``pred`` None counts as 0)."""
    predicted = 0 if pred is None else pred
    return SampleMetrics(abs_error=abs(predicted - gt), correct=predicted == gt)


def score_sample(sample: Sample, prediction: Prediction | None) -> SampleMetrics:
    """Score ``prediction`` (None: the predictor failed, scored as an empty answer) against ``sample``."""
    if sample.task == "segment":
        if sample.gt_mask is None:
            return SampleMetrics()
        return score_segmentation(None if prediction is None else prediction.mask, sample.gt_mask, sample.ignore_mask)
    if sample.gt_count is None:
        return SampleMetrics()
    return score_count(None if prediction is None else prediction.count, sample.gt_count)


def giou(ious: Sequence[float]) -> float | None:
    """Mean per-sample IoU; None without samples."""
    return float(np.mean(ious)) if len(ious) else None


def ciou(intersections: Sequence[int], unions: Sequence[int]) -> float | None:
    """Cumulative IoU: sum(I) / sum(U); 0.0 when the summed union is 0 (as LISA); None without samples."""
    if not len(unions):
        return None
    total_union = int(np.sum(unions))
    return float(np.sum(intersections)) / total_union if total_union else 0.0


@dataclass(frozen=True)
class Summary:
    """Aggregate metrics of a group of records. Metrics of a task with no scored sample are None."""

    n: int
    errors: int
    n_segment: int
    giou: float | None
    ciou: float | None
    n_count: int
    accuracy: float | None
    mae: float | None
    mean_seconds: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return dict(self.__dict__)


def summarize(records: Iterable[EvalRecord]) -> Summary:
    """Aggregate ``records`` (each sample once): gIoU / cIoU over scored segment samples, accuracy / MAE over
    scored count samples, number of failed samples, mean seconds per sample."""
    records = list(records)
    seg = [r.metrics for r in records if r.task == "segment" and r.metrics.iou is not None]
    cnt = [r.metrics for r in records if r.task == "count" and r.metrics.correct is not None]
    return Summary(
        n=len(records),
        errors=sum(r.error is not None for r in records),
        n_segment=len(seg),
        giou=giou([m.iou for m in seg if m.iou is not None]),
        ciou=ciou([m.intersection or 0 for m in seg], [m.union or 0 for m in seg]),
        n_count=len(cnt),
        accuracy=float(np.mean([bool(m.correct) for m in cnt])) if cnt else None,
        mae=float(np.mean([m.abs_error or 0 for m in cnt])) if cnt else None,
        mean_seconds=float(np.mean([r.timings.total_s for r in records])) if records else None,
    )
