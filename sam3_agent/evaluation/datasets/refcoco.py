"""RefCOCO, RefCOCO+ and RefCOCOg in the layout of the refer API (https://github.com/lichengunc/refer).

``<root>/<dataset>/refs(<split_by>).p`` is a pickle of a list of refs, each a dict with ``ref_id``,
``ann_id``, ``image_id``, ``split`` ("train", "val", "testA", "testB", "test"), ``category_id`` and
``sentences`` (dicts with ``sent`` and ``sent_id``); ``<root>/<dataset>/instances.json`` is COCO-format
(``images`` with ``id`` / ``file_name`` / ``height`` / ``width``, ``annotations`` with ``id`` and
``segmentation`` as polygons or RLE, ``categories``). Images are COCO train2014 files.

As LISA evaluates it, every sentence of every ref in the split is one sample whose ground truth is the
ref's annotation mask (all its polygons merged). The pickle is read with an unpickler that only accepts
plain containers, strings and numbers, so a crafted file cannot run code; Python 2 byte strings are
decoded as UTF-8 (latin-1 when that fails).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

from sam3_agent.evaluation.datasets.common import DatasetError, read_json
from sam3_agent.evaluation.records import Sample
from sam3_agent.schema import Rle

DEFAULT_SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd", "refclef": "unc"}
IMAGE_DIR_GUESSES = ("images/mscoco/images/train2014", "images/train2014", "train2014", "images")


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise DatasetError(f"the refs pickle refers to {module}.{name}; only plain lists, dicts and strings are read")


def _text(value: Any) -> Any:
    """Python 2 pickles load as bytes: turn every bytes key and value into str, recursively."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_text(v) for v in value]
    return value


def load_refs(path: Path) -> list[dict[str, Any]]:
    """The refs list of a ``refs(<split_by>).p`` pickle (Python 2 or 3)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read the refs file {path}: {exc}") from exc
    try:
        refs = _text(_PlainUnpickler(io.BytesIO(raw), encoding="bytes").load())
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DatasetError(f"{path} is not a refs pickle: {exc}") from exc
    if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
        raise DatasetError(f"{path} must hold a list of ref dicts, got {type(refs).__name__}")
    return refs


def segmentation_rle(segmentation: Any, height: int, width: int) -> Rle:
    """One merged RLE from a COCO ``segmentation``: polygons, uncompressed RLE or compressed RLE."""
    if isinstance(segmentation, list):
        if not segmentation:
            encoded = coco_mask.encode(np.zeros((height, width), dtype=np.uint8, order="F"))
        else:
            encoded = coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        encoded = coco_mask.frPyObjects(segmentation, height, width)
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), str | bytes):
        counts = segmentation["counts"]
        encoded = {"size": list(segmentation["size"]), "counts": counts.encode() if isinstance(counts, str) else counts}
    else:
        raise DatasetError(f"unsupported COCO segmentation {type(segmentation).__name__}: expected polygons or RLE")
    size = tuple(int(v) for v in encoded["size"])
    if size != (height, width):
        raise DatasetError(f"segmentation is {size} but its image is {(height, width)} (height, width)")
    return Rle(size=(height, width), counts=encoded["counts"].decode("ascii"))


def _dataset_folder(root: Path, dataset: str) -> Path:
    for folder in (root / dataset, root):
        if (folder / "instances.json").is_file():
            return folder
    raise DatasetError(f"no {dataset}/instances.json under {root}: expected the refer API's data folder")


def _images_folder(root: Path, images_dir: str | Path | None) -> Path:
    if images_dir is not None:
        folder = Path(images_dir).expanduser()
        if not folder.is_dir():
            raise DatasetError(f"images folder {folder} does not exist")
        return folder
    for guess in IMAGE_DIR_GUESSES:
        if (root / guess).is_dir():
            return root / guess
    tried = ", ".join(str(root / g) for g in IMAGE_DIR_GUESSES)
    raise DatasetError(f"no COCO train2014 images folder found (tried {tried}); pass the images folder")


def read_refcoco(
    root: str | Path,
    *,
    dataset: str = "refcocog",
    split: str | None = "val",
    split_by: str | None = None,
    images_dir: str | Path | None = None,
) -> list[Sample]:
    """Segment samples, one per sentence of each ref of ``split`` (None: every split), sorted by ref id.

    Args:
        root: the refer data folder holding ``<dataset>/`` (or that dataset folder itself).
        dataset: "refcoco", "refcoco+", "refcocog" (or "refclef").
        split_by: the refs file variant, e.g. "unc", "umd", "google"; default unc (umd for refcocog).
        images_dir: COCO train2014 images; default the first existing of ``IMAGE_DIR_GUESSES`` under root.

    Raises:
        DatasetError: a missing file, an unreadable pickle, a ref whose annotation or image is unknown.
    """
    root = Path(root).expanduser()
    folder = _dataset_folder(root, dataset)
    split_by = split_by or DEFAULT_SPLIT_BY.get(dataset, "unc")
    refs_path = folder / f"refs({split_by}).p"
    if not refs_path.is_file():
        raise DatasetError(f"no refs file {refs_path}")
    refs = [r for r in load_refs(refs_path) if split is None or r.get("split") == split]
    if not refs:
        raise DatasetError(f"no ref of split {split!r} in {refs_path}")
    coco = read_json(folder / "instances.json")
    images = {img["id"]: img for img in coco.get("images", [])}
    anns = {ann["id"]: ann for ann in coco.get("annotations", [])}
    cats = {cat["id"]: cat.get("name", str(cat["id"])) for cat in coco.get("categories", [])}
    image_folder = _images_folder(root, images_dir)
    samples: list[Sample] = []
    for ref in sorted(refs, key=lambda r: r["ref_id"]):
        ann, image = anns.get(ref.get("ann_id")), images.get(ref.get("image_id"))
        if ann is None or image is None:
            raise DatasetError(f"ref {ref.get('ref_id')} names an annotation or image missing from instances.json")
        gt = segmentation_rle(ann.get("segmentation", []), int(image["height"]), int(image["width"]))
        for k, sentence in enumerate(ref.get("sentences", [])):
            text = str(sentence.get("sent", "")).strip()
            if not text:
                continue
            samples.append(
                Sample(
                    id=f"{dataset}/{ref['split']}/{ref['ref_id']}/{sentence.get('sent_id', k)}",
                    dataset=dataset,
                    split=str(ref["split"]),
                    task="segment",
                    image=str(image_folder / image["file_name"]),
                    query=text,
                    gt_mask=gt,
                    meta={
                        "ref_id": ref["ref_id"],
                        "ann_id": ref["ann_id"],
                        "image_id": ref["image_id"],
                        "category": cats.get(ref.get("category_id", ann.get("category_id")), ""),
                    },
                )
            )
    return samples
