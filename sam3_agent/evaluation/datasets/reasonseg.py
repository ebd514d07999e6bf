"""ReasonSeg (LISA, https://github.com/dvlab-research/LISA) in its released layout.

A split is a folder of ``<name>.jpg`` images, each with ``<name>.json`` beside it holding (facts taken from
LISA's ``utils/data_processing.py`` and ``utils/dataset.py``):
- ``"text"``: a list of queries about the image (a single string is accepted too);
- ``"is_sentence"``: true for long sentence queries, false for short phrases (our ``subset`` "long" / "short");
- ``"shapes"``: polygons ``{"label": ..., "points": [[x, y], ...]}`` in pixels; a label containing "ignore"
  marks a region left out of scoring, the label "flag" is a deprecated annotation and skipped, any other
  label is the target.
The ground truth is rasterised as LISA does: polygons sorted by area, largest first, each drawn filled (with
its 1-pixel outline) over the earlier ones, points truncated to integers. LISA evaluates the FIRST query of
each image only; ``all_queries=True`` makes one sample per query instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sam3_agent.evaluation.datasets.common import IMAGE_SUFFIXES, DatasetError, image_size, read_json
from sam3_agent.evaluation.records import Sample
from sam3_agent.masks import rle_encode

TARGET, IGNORE = 1, 255


def rasterize_shapes(shapes: list[dict[str, Any]], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(target, ignore) bool (height, width) masks from ReasonSeg ``shapes``, drawn the way LISA draws them."""
    polygons: list[tuple[int, np.ndarray, int]] = []
    for shape in shapes:
        label = str(shape.get("label", ""))
        if label.lower() == "flag":
            continue
        points = np.asarray(shape.get("points", []), dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 2 or len(points) == 0:
            raise DatasetError(f"shape {label!r} must have points [[x, y], ...], got {shape.get('points')!r}")
        poly = points.astype(np.int32)[None]  # truncation toward zero, as LISA's np.array(..., dtype=np.int32)
        value = IGNORE if "ignore" in label.lower() else TARGET
        polygons.append((int(_fill(np.zeros((height, width), np.uint8), poly, 1).sum()), poly, value))
    canvas = np.zeros((height, width), np.uint8)
    for _, poly, value in sorted(polygons, key=lambda p: -p[0]):  # stable: equal areas keep file order
        _fill(canvas, poly, value)
    return canvas == TARGET, canvas == IGNORE


def _fill(canvas: np.ndarray, poly: np.ndarray, value: int) -> np.ndarray:
    cv2.polylines(canvas, poly, True, value, 1)
    cv2.fillPoly(canvas, poly, value)
    return canvas


def _image_beside(json_path: Path) -> Path:
    for suffix in IMAGE_SUFFIXES:
        for candidate in (json_path.with_suffix(suffix), json_path.with_suffix(suffix.upper())):
            if candidate.is_file():
                return candidate
    raise DatasetError(f"no image beside {json_path}: expected {json_path.with_suffix('.jpg').name}")


def _split_folder(root: Path, split: str | None) -> tuple[Path, str]:
    if not root.is_dir():
        raise DatasetError(f"ReasonSeg folder {root} does not exist")
    if split is not None and (root / split).is_dir():
        return root / split, split
    if split is not None and not any(root.glob("*.json")):
        raise DatasetError(f"{root} has no {split!r} folder and no annotation JSON files")
    return root, split or root.name


def read_reasonseg(
    root: str | Path, *, split: str | None = "val", all_queries: bool = False, dataset: str = "reasonseg"
) -> list[Sample]:
    """Segment samples of a ReasonSeg split, sorted by file name.

    Args:
        root: the split folder itself (``ReasonSeg/val``), or the ReasonSeg folder holding ``split``.
        split: the split folder name; also the ``split`` of the samples (None: the folder's name).
        all_queries: one sample per query in ``"text"`` instead of LISA's first query only.

    Raises:
        DatasetError: missing folder, a JSON without its image, malformed annotations.
    """
    folder, split_name = _split_folder(Path(root).expanduser(), split)
    samples: list[Sample] = []
    for json_path in sorted(folder.glob("*.json")):
        anno = read_json(json_path)
        if not isinstance(anno, dict) or "shapes" not in anno or "text" not in anno:
            raise DatasetError(f"{json_path} is not a ReasonSeg annotation: expected keys 'text' and 'shapes'")
        image_path = _image_beside(json_path)
        height, width = image_size(image_path)
        target, ignore = rasterize_shapes(anno["shapes"], height, width)
        texts = [anno["text"]] if isinstance(anno["text"], str) else [str(t) for t in anno["text"]]
        texts = [t.strip() for t in texts if str(t).strip()]
        if not texts:
            raise DatasetError(f"{json_path} has no query in 'text'")
        subset = "long" if bool(anno.get("is_sentence", False)) else "short"
        gt, ign = rle_encode(target), (rle_encode(ignore) if ignore.any() else None)
        for k, text in enumerate(texts if all_queries else texts[:1]):
            suffix = f"#{k}" if all_queries else ""
            samples.append(
                Sample(
                    id=f"{dataset}/{split_name}/{json_path.stem}{suffix}",
                    dataset=dataset,
                    split=split_name,
                    subset=subset,
                    task="segment",
                    image=str(image_path),
                    query=text,
                    gt_mask=gt,
                    ignore_mask=ign,
                    meta={"annotation": json_path.name, "query_index": k},
                )
            )
    if not samples:
        raise DatasetError(f"no ReasonSeg annotations (*.json) in {folder}")
    return samples
