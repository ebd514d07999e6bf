"""Readers of evaluation sets in their upstream formats, each returning a list of ``Sample``.

``load_dataset(kind, path, ...)`` picks the reader by name; see each module for the layout it expects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from sam3_agent.evaluation.datasets.common import DatasetError
from sam3_agent.evaluation.records import Sample, Task

DatasetKind = Literal["reasonseg", "refcoco", "refcoco+", "refcocog", "countbench", "coco-count", "folder", "synthetic"]
DATASET_KINDS: tuple[str, ...] = DatasetKind.__args__  # type: ignore[attr-defined]

__all__ = ["DATASET_KINDS", "DatasetError", "DatasetKind", "load_dataset"]


def load_dataset(
    kind: DatasetKind,
    path: str | Path,
    *,
    split: str | None = None,
    split_by: str | None = None,
    images: str | Path | None = None,
    query: str | None = None,
    task: Task = "segment",
    phrase: str | None = None,
    all_queries: bool = False,
    include_zero: bool = False,
    categories: list[str] | None = None,
    limit: int | None = None,
) -> list[Sample]:
    """Samples of one evaluation set; ``limit`` keeps the first n. Raises DatasetError on duplicate ids.

    ``split`` defaults to "val" for ReasonSeg and RefCOCO*, "test" for CountBench, the file name for
    coco-count. ``images``: the images folder (RefCOCO*, CountBench, coco-count). ``query`` / ``task`` /
    ``phrase``: what to ask of every image of a ``folder`` run.
    """
    if kind == "reasonseg":
        from sam3_agent.evaluation.datasets.reasonseg import read_reasonseg

        samples = read_reasonseg(path, split=split or "val", all_queries=all_queries)
    elif kind in ("refcoco", "refcoco+", "refcocog"):
        from sam3_agent.evaluation.datasets.refcoco import read_refcoco

        samples = read_refcoco(path, dataset=kind, split=split or "val", split_by=split_by, images_dir=images)
    elif kind == "countbench":
        from sam3_agent.evaluation.datasets.counting import read_countbench

        samples = read_countbench(path, images_dir=images, split=split or "test")
    elif kind == "coco-count":
        from sam3_agent.evaluation.datasets.counting import read_coco_counting

        samples = read_coco_counting(path, images, categories=categories, include_zero=include_zero, split=split)
    elif kind == "folder":
        from sam3_agent.evaluation.datasets.folder import read_folder

        samples = read_folder(path, query or "", task=task, phrase=phrase)
    elif kind == "synthetic":
        from sam3_agent.evaluation.synthetic import read_synthetic

        samples = read_synthetic(path)
    else:
        raise DatasetError(f"unknown dataset kind {kind!r}; expected one of {', '.join(DATASET_KINDS)}")
    seen: set[str] = set()
    for sample in samples:
        if sample.id in seen:
            raise DatasetError(f"sample id {sample.id!r} occurs twice in {path}; ids must be unique")
        seen.add(sample.id)
    return samples if limit is None else samples[:limit]
