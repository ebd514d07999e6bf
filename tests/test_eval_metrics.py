"""Metric definitions against hand-computed cases, matching LISA's gIoU / cIoU and the counting metrics."""

from __future__ import annotations

import numpy as np
import pytest

from sam3_agent.evaluation.metrics import (
    ciou,
    giou,
    intersection_union,
    iou,
    score_count,
    score_sample,
    score_segmentation,
    summarize,
)
from sam3_agent.evaluation.records import EvalRecord, Prediction, Sample, SampleMetrics, Timings
from sam3_agent.masks import rle_encode


def _mask(h: int, w: int, *boxes: tuple[int, int, int, int]) -> np.ndarray:
    """(h, w) bool mask with the XYXY boxes (max corner exclusive) set."""
    m = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in boxes:
        m[y0:y1, x0:x1] = True
    return m


# 10x10 images. A: 4x4 square at (0,0); B: 4x4 square at (2,2) -> overlap 2x2 = 4 px, union 16 + 16 - 4 = 28.
A = (0, 0, 4, 4)
B = (2, 2, 6, 6)


@pytest.mark.parametrize(
    ("pred", "gt", "ignore", "expected"),
    [
        pytest.param(None, [A], [], (0, 16, 0.0), id="empty prediction"),
        pytest.param([A], [], [], (0, 16, 0.0), id="empty ground truth"),
        pytest.param(None, [], [], (0, 0, 1.0), id="both empty: LISA's no-object target scores 1"),
        pytest.param([], [], [], (0, 0, 1.0), id="both empty masks"),
        pytest.param([A], [A], [], (16, 16, 1.0), id="exact"),
        pytest.param([A], [B], [], (4, 28, 4 / 28), id="partial overlap"),
        pytest.param([A, (8, 8, 10, 10)], [A], [], (16, 20, 16 / 20), id="extra pixels"),
        # ignoring the 2x2 block (8,8)-(10,10) the prediction spills onto removes it from the union
        pytest.param([A, (8, 8, 10, 10)], [A], [(8, 8, 10, 10)], (16, 16, 1.0), id="ignore region not counted"),
        # ignore over part of the target: the target shrinks to 12 px, prediction A keeps 12 of them
        pytest.param([A], [A], [(0, 0, 4, 1)], (12, 12, 1.0), id="ignore over the target"),
        pytest.param([B], [A], [(0, 0, 2, 4)], (4, 8 + 16 - 4, 4 / 20), id="ignore then partial"),
    ],
)
def test_intersection_union_hand_computed(pred, gt, ignore, expected) -> None:
    p = None if pred is None else _mask(10, 10, *pred)
    g = _mask(10, 10, *gt)
    ig = _mask(10, 10, *ignore) if ignore else None
    inter, union = intersection_union(p, g, ig)
    assert (inter, union) == expected[:2]
    assert iou(inter, union) == pytest.approx(expected[2])
    # the same through RLEs
    metrics = score_segmentation(
        None if p is None else rle_encode(p), rle_encode(g), None if ig is None else rle_encode(ig)
    )
    assert (metrics.intersection, metrics.union) == expected[:2]
    assert metrics.iou == pytest.approx(expected[2])


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"\(5, 5\).*\(10, 10\)"):
        intersection_union(np.zeros((5, 5), bool), np.zeros((10, 10), bool))
    with pytest.raises(ValueError, match="ignore mask"):
        intersection_union(None, np.zeros((10, 10), bool), np.zeros((3, 3), bool))


def test_giou_is_mean_of_ious_and_ciou_is_cumulative() -> None:
    # sample 1: I=4, U=28 (IoU 1/7); sample 2: I=16, U=16 (IoU 1); sample 3: both empty (IoU 1, adds nothing to cIoU)
    inters, unions = [4, 16, 0], [28, 16, 0]
    ious = [iou(i, u) for i, u in zip(inters, unions, strict=True)]
    assert giou(ious) == pytest.approx((1 / 7 + 1 + 1) / 3)
    assert ciou(inters, unions) == pytest.approx(20 / 44)
    assert giou([]) is None and ciou([], []) is None


def test_ciou_of_only_empty_samples_is_zero_as_in_lisa() -> None:
    # LISA divides the summed intersection by (summed union + 1e-10): 0 / 1e-10 = 0
    assert ciou([0, 0], [0, 0]) == 0.0
    assert giou([iou(0, 0), iou(0, 0)]) == 1.0


@pytest.mark.parametrize(
    ("pred", "gt", "abs_error", "correct"),
    [(3, 3, 0, True), (5, 3, 2, False), (0, 2, 2, False), (None, 0, 0, True), (None, 4, 4, False)],
)
def test_count_scores(pred, gt, abs_error, correct) -> None:
    assert score_count(pred, gt) == SampleMetrics(abs_error=abs_error, correct=correct)


def _record(task: str, metrics: SampleMetrics, *, error: str | None = None, seconds: float = 1.0) -> EvalRecord:
    return EvalRecord(
        sample_id=f"s{id(metrics)}",
        dataset="d",
        split="val",
        task=task,
        image="x.png",
        query="q",
        metrics=metrics,
        timings=Timings(total_s=seconds),
        error=error,
    )


def test_summarize_mixes_tasks_and_counts_errors() -> None:
    records = [
        _record("segment", SampleMetrics(iou=4 / 28, intersection=4, union=28)),
        _record("segment", SampleMetrics(iou=1.0, intersection=16, union=16), error="LLMError: down", seconds=3.0),
        _record("count", score_count(3, 3)),
        _record("count", score_count(1, 4)),
        _record("count", score_count(6, 4)),
        _record("segment", SampleMetrics()),  # no ground truth: not scored, still counted in n
    ]
    s = summarize(records)
    assert (s.n, s.errors, s.n_segment, s.n_count) == (6, 1, 2, 3)
    assert s.giou == pytest.approx((4 / 28 + 1) / 2)
    assert s.ciou == pytest.approx(20 / 44)
    assert s.accuracy == pytest.approx(1 / 3)
    assert s.mae == pytest.approx((0 + 3 + 2) / 3)
    assert s.mean_seconds == pytest.approx(8 / 6)
    empty = summarize([])
    assert (empty.n, empty.giou, empty.accuracy, empty.mean_seconds) == (0, None, None, None)


def test_score_sample_failed_prediction_is_an_empty_answer() -> None:
    gt = rle_encode(_mask(10, 10, A))
    seg = Sample(id="a", dataset="d", split="s", task="segment", image="i", query="q", gt_mask=gt)
    assert score_sample(seg, None).iou == 0.0
    assert score_sample(seg, Prediction(mask=gt)).iou == 1.0
    empty_gt = seg.model_copy(update={"gt_mask": rle_encode(_mask(10, 10))})
    assert score_sample(empty_gt, None).iou == 1.0
    count = Sample(id="c", dataset="d", split="s", task="count", image="i", query="how many?", gt_count=2)
    assert score_sample(count, None) == SampleMetrics(abs_error=2, correct=False)
    assert score_sample(count, Prediction(count=2)).correct is True
    no_truth = Sample(id="n", dataset="d", split="s", task="count", image="i", query="how many?")
    assert score_sample(no_truth, Prediction(count=2)) == SampleMetrics()


def test_sample_validates_ground_truth_against_task() -> None:
    gt = rle_encode(_mask(10, 10, A))
    with pytest.raises(ValueError, match="count sample takes gt_count"):
        Sample(id="x", dataset="d", split="s", task="count", image="i", query="q", gt_mask=gt)
    with pytest.raises(ValueError, match="segment sample takes gt_mask"):
        Sample(id="x", dataset="d", split="s", task="segment", image="i", query="q", gt_count=1)
    with pytest.raises(ValueError, match="ignore_mask"):
        Sample(
            id="x", dataset="d", split="s", task="segment", image="i", query="q",
            gt_mask=gt, ignore_mask=rle_encode(_mask(5, 5)),
        )  # fmt: skip
