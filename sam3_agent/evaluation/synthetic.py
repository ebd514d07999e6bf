"""A synthetic evaluation set with known answers, written in the upstream formats, so the whole harness runs
in CI without downloads.

``write_synthetic(root)`` draws scenes (``sam3_agent.testing.scene``: coloured balls and boxes on a plain
background) and writes them as:
- ``reasonseg/val/<name>.jpg`` + ``<name>.json``: LISA's ReasonSeg layout (polygons traced from the masks,
  short and long queries, an "ignore" region on some images);
- ``refcoco/refs(unc).p`` + ``refcoco/instances.json`` + ``images/COCO_train2014_<id>.jpg``: the refer API's
  layout (polygons for boxes, compressed RLE for balls; two sentences per ref: the bare phrase, which SAM 3
  alone can read, and "the <phrase>", which it cannot (see ``SceneSegmenter``'s exact matching);
- ``countbench.json``: CountBench-style items, half with a ``question``, half with a caption only;
- ``scenes.json``: the scenes themselves and, per sample id, the phrase that answers it.
``read_synthetic(root)`` reads all of it back through the regular readers; ``SceneSetSegmenter`` segments
the written images exactly (it finds the scene each image shows), for checking the harness.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from sam3_agent.errors import ImageError
from sam3_agent.evaluation.datasets.common import DatasetError, read_json
from sam3_agent.evaluation.datasets.counting import NUMBER_WORDS, plural
from sam3_agent.evaluation.records import Sample
from sam3_agent.masks import rle_encode
from sam3_agent.outputs import write_json_atomic
from sam3_agent.schema import Instance, Prompt, Thresholds
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter

MANIFEST = "scenes.json"
COLORS = {"red": (210, 40, 40), "green": (40, 160, 60), "blue": (40, 70, 210), "yellow": (230, 200, 30)}
NOUNS = {"ball": "ellipse", "box": "box"}
CATEGORY_IDS = {"ball": 1, "box": 2}
WIDTH, HEIGHT, CELL = 128, 96, 32
MAX_MEAN_DIFF = 12.0
"""Mean absolute pixel difference above which an image is not taken for a synthetic scene."""


@dataclass(frozen=True)
class SyntheticSet:
    """Where ``write_synthetic`` put things, and how many samples ``read_synthetic`` will give."""

    root: Path
    n_images: int
    n_samples: int


def _draw_scene(rng: np.random.Generator, index: int) -> tuple[Scene, str, list[int]]:
    """A scene whose first ``1 + index % 4`` objects share one phrase (the counted one), followed by two objects
    with phrases unique in the scene. Returns (scene, counted phrase, indices of the unique objects)."""
    phrases = [f"{c} {n}" for c in COLORS for n in NOUNS]
    picks = rng.choice(len(phrases), size=3, replace=False)
    counted, *unique = (phrases[int(i)] for i in picks)
    cells = rng.choice((WIDTH // CELL) * (HEIGHT // CELL), size=1 + index % 4 + 2, replace=False)
    objects = []
    for k, cell in enumerate(cells):
        phrase = counted if k < 1 + index % 4 else unique[k - (1 + index % 4)]
        color, noun = phrase.split()
        x0 = (int(cell) % (WIDTH // CELL)) * CELL + int(rng.integers(2, 7))
        y0 = (int(cell) // (WIDTH // CELL)) * CELL + int(rng.integers(2, 7))
        side = int(rng.integers(16, CELL - 8))
        objects.append(SceneObject(phrase, (x0, y0, x0 + side, y0 + side), NOUNS[noun], COLORS[color]))
    n_counted = 1 + index % 4
    return Scene(WIDTH, HEIGHT, objects), counted, list(range(n_counted, n_counted + 2))


def _contour(mask: np.ndarray) -> list[list[int]]:
    """Outline points [[x, y], ...] whose LISA-style fill (outline + interior) gives back ``mask`` exactly."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return max(contours, key=len)[:, 0, :].tolist()


def _coco_segmentation(scene: Scene, i: int) -> Any:
    """Boxes as one COCO polygon (corners, continuous coordinates); balls as compressed RLE."""
    obj = scene.objects[i]
    if obj.shape == "box":
        x0, y0, x1, y1 = obj.box
        return [[x0, y0, x1, y0, x1, y1, x0, y1]]
    rle = rle_encode(scene.mask(i))
    return {"size": list(rle.size), "counts": rle.counts}


def _reasonseg_entry(scene: Scene, index: int, counted: str) -> dict[str, Any]:
    """Targets: every object named ``counted``; odd scenes get a long sentence query, even ones a phrase."""
    color, noun = counted.split()
    long = index % 2 == 1
    texts = (
        [f"Which things here would you pick if you needed every {noun} painted {color}?", f"all {color} {plural(noun)}"]
        if long
        else [f"{color} {plural(noun)}", f"the {color} {plural(noun)}"]
    )
    shapes = [
        {"label": "target", "points": _contour(scene.mask(i))}
        for i, obj in enumerate(scene.objects)
        if obj.phrase == counted
    ]
    if index % 3 == 2:  # an ambiguous region left out of scoring, as ReasonSeg marks some
        last = len(scene.objects) - 1
        shapes.append({"label": "ignore", "points": _contour(scene.mask(last))})
    return {"text": texts, "is_sentence": long, "shapes": shapes}


class _Writer:
    """Accumulates the annotations of every scene, in each format, and writes them out at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.answers: dict[str, str] = {}
        self.scenes: list[dict[str, Any]] = []
        self.refs: list[dict[str, Any]] = []
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self.count_items: list[dict[str, Any]] = []
        for folder in ("reasonseg/val", "refcoco", "images"):
            (root / folder).mkdir(parents=True, exist_ok=True)

    def add(self, index: int, scene: Scene, counted: str, unique: list[int]) -> None:
        image_id, name = index + 1, f"scene_{index:03d}"
        file_name = f"COCO_train2014_{image_id:012d}.jpg"
        picture = scene.image()
        picture.save(self.root / "reasonseg/val" / f"{name}.jpg", quality=95)
        picture.save(self.root / "images" / file_name, quality=95)
        write_json_atomic(self.root / "reasonseg/val" / f"{name}.json", _reasonseg_entry(scene, index, counted))
        self.answers[f"reasonseg/val/{name}"] = counted
        self.images.append({"id": image_id, "file_name": file_name, "height": scene.height, "width": scene.width})
        self._add_coco(scene, image_id, file_name, unique, split="testA" if index % 4 == 3 else "val")
        n = sum(o.phrase == counted for o in scene.objects)
        item: dict[str, Any] = {"id": f"countbench/{index:05d}", "image_url": f"images/{file_name}", "number": n}
        item["text"] = f"{NUMBER_WORDS[n]} {plural(counted)} on a grey table"
        if index % 2 == 0:
            item["question"] = f"How many {plural(counted)} are there?"
        self.count_items.append(item)
        self.answers[item["id"]] = counted
        for noun, cid in CATEGORY_IDS.items():
            if any(o.phrase.endswith(noun) for o in scene.objects):
                self.answers[f"coco-count/{image_id}/{cid}"] = noun
        self.scenes.append({"images": [f"reasonseg/val/{name}.jpg", f"images/{file_name}"], **_scene_dict(scene)})

    def _add_coco(self, scene: Scene, image_id: int, file_name: str, unique: list[int], split: str) -> None:
        """An annotation per object; a ref (two sentences) per object whose phrase is unique in the scene."""
        for i, obj in enumerate(scene.objects):
            ann_id = image_id * 100 + i
            x0, y0, x1, y1 = obj.box
            category = CATEGORY_IDS[obj.phrase.split()[1]]
            self.annotations.append(
                {"id": ann_id, "image_id": image_id, "category_id": category, "iscrowd": 0,
                 "segmentation": _coco_segmentation(scene, i), "area": int(scene.mask(i).sum()),
                 "bbox": [x0, y0, x1 - x0, y1 - y0]}
            )  # fmt: skip
            if i not in unique:
                continue
            sentences = [
                {"sent": obj.phrase, "sent_id": ann_id * 10},
                {"sent": f"the {obj.phrase}", "sent_id": ann_id * 10 + 1},
            ]
            self.refs.append(
                {"ref_id": ann_id, "ann_id": ann_id, "image_id": image_id, "split": split, "category_id": category,
                 "file_name": file_name, "sentences": sentences}
            )  # fmt: skip
            for sent in sentences:
                self.answers[f"refcoco/{split}/{ann_id}/{sent['sent_id']}"] = obj.phrase

    def finish(self, seed: int) -> None:
        categories = [{"id": cid, "name": noun, "supercategory": "shape"} for noun, cid in CATEGORY_IDS.items()]
        coco = {"images": self.images, "annotations": self.annotations, "categories": categories}
        write_json_atomic(self.root / "refcoco/instances.json", coco)
        (self.root / "refcoco/refs(unc).p").write_bytes(pickle.dumps(self.refs, protocol=2))
        write_json_atomic(self.root / "countbench.json", self.count_items)  # type: ignore[arg-type]  # a JSON list
        write_json_atomic(self.root / MANIFEST, {"seed": seed, "scenes": self.scenes, "answers": self.answers})


def write_synthetic(root: str | Path, *, n_images: int = 8, seed: int = 0) -> SyntheticSet:
    """Write the synthetic set under ``root`` (created if missing; files of an earlier set are replaced).

    Scene ``i`` holds ``1 + i % 4`` objects of one phrase (the ReasonSeg target and the counted phrase) and two
    objects of phrases unique in it (the RefCOCO refs); odd scenes get long ReasonSeg queries, every fourth
    scene is in RefCOCO's "testA" split, every third has a ReasonSeg "ignore" region.
    """
    if n_images < 1:
        raise DatasetError(f"n_images must be >= 1, got {n_images}")
    root = Path(root).expanduser()
    rng = np.random.default_rng(seed)
    writer = _Writer(root)
    for index in range(n_images):
        writer.add(index, *_draw_scene(rng, index))
    writer.finish(seed)
    return SyntheticSet(root=root, n_images=n_images, n_samples=len(read_synthetic(root)))


def _scene_dict(scene: Scene) -> dict[str, Any]:
    return {
        "width": scene.width,
        "height": scene.height,
        "background": list(scene.background),
        "objects": [asdict(o) for o in scene.objects],
    }


def _scene_from(data: dict[str, Any]) -> Scene:
    objects = [
        SceneObject(o["phrase"], tuple(o["box"]), o["shape"], tuple(o["color"]), o["score"]) for o in data["objects"]
    ]
    return Scene(int(data["width"]), int(data["height"]), objects, tuple(data["background"]))


def read_synthetic(root: str | Path) -> list[Sample]:
    """Every sample of a synthetic set, read through the upstream-format readers: ReasonSeg val, RefCOCO val,
    CountBench, and COCO counting by category on the RefCOCO ``instances.json``."""
    from sam3_agent.evaluation.datasets.counting import read_coco_counting, read_countbench
    from sam3_agent.evaluation.datasets.reasonseg import read_reasonseg
    from sam3_agent.evaluation.datasets.refcoco import read_refcoco

    root = Path(root).expanduser()
    if not (root / MANIFEST).is_file():
        raise DatasetError(f"{root} holds no synthetic set ({MANIFEST} missing); write one with write_synthetic")
    return [
        *read_reasonseg(root / "reasonseg", split="val"),
        *read_refcoco(root, dataset="refcoco", split="val", images_dir=root / "images"),
        *read_countbench(root / "countbench.json"),
        *read_coco_counting(root / "refcoco/instances.json", root / "images", split="val"),
    ]


def synthetic_answers(root: str | Path) -> dict[str, str]:
    """Sample id -> the phrase whose instances answer it (what a perfect agent would segment or count)."""
    return dict(read_json(Path(root).expanduser() / MANIFEST)["answers"])


class SceneSetSegmenter:
    """A ``Segmenter`` for the images of a synthetic set: it recognises which scene an image shows (same size,
    smallest mean pixel difference, so JPEG noise does not matter) and answers with that scene's true masks
    (``SceneSegmenter`` with ``match_head_noun=True``, so "ball" finds "red ball")."""

    def __init__(self, scenes: list[Scene]) -> None:
        if not scenes:
            raise DatasetError("a SceneSetSegmenter needs at least one scene")
        self._segmenters = [SceneSegmenter(scene, match_head_noun=True) for scene in scenes]
        self._pixels = [np.asarray(scene.image(), dtype=np.int16) for scene in scenes]

    @classmethod
    def load(cls, root: str | Path) -> SceneSetSegmenter:
        """From the ``scenes.json`` of a set written by ``write_synthetic``."""
        manifest = read_json(Path(root).expanduser() / MANIFEST)
        return cls([_scene_from(s) for s in manifest["scenes"]])

    def segment(
        self, image: Image.Image, prompts: Sequence[Prompt], thresholds: Thresholds | None = None
    ) -> list[list[Instance]]:
        """See ``Segmenter.segment``. Raises ImageError when the image is none of the scenes."""
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
        diffs = [float(np.abs(pixels - ref).mean()) if ref.shape == pixels.shape else np.inf for ref in self._pixels]
        best = int(np.argmin(diffs))
        if diffs[best] > MAX_MEAN_DIFF:
            raise ImageError(f"the {image.width}x{image.height} image is not one of the synthetic scenes")
        return self._segmenters[best].segment(image, prompts, thresholds)


__all__ = [
    "MANIFEST",
    "SceneSetSegmenter",
    "SyntheticSet",
    "read_synthetic",
    "synthetic_answers",
    "write_synthetic",
]
