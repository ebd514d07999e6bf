"""Crowds for testing tiled segmentation: many small objects, and a fake SAM 3 with a query cap.

``crowd_scene`` builds a ``Scene`` of many non-overlapping objects, each painted in a colour of its own.
``CappedSceneSegmenter`` is a ``Segmenter`` that reads those colours back from the pixels it is handed, so a
tile yields exactly the parts of the objects inside it (as SAM 3 sees only its input image), and keeps at most
``query_cap`` instances per prompt, the highest-scored, as SAM 3's fixed set of object queries does. On the
whole image, with a cap above the object count, it returns what ``SceneSegmenter`` returns for text prompts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from sam3_agent.masks import IntBox, rle_encode
from sam3_agent.masks.place import place_mask
from sam3_agent.schema import Instance, Prompt, Thresholds
from sam3_agent.testing.scene import Color, Scene, SceneObject, normalize_phrase
from sam3_agent.testing.scene import _shape_mask as shape_mask

MARK = 128
"""Blue channel of every object's colour (the background's differs): red + 256 x green is the object's index."""


def object_color(i: int) -> Color:
    """The colour of object ``i`` in a crowd (unique for i < 65536)."""
    return (i & 0xFF, (i >> 8) & 0xFF, MARK)


def crowd_scene(
    width: int,
    height: int,
    n: int,
    *,
    phrase: str = "person",
    sizes: tuple[int, int] = (10, 24),
    seed: int = 0,
    shape: str = "ellipse",
) -> Scene:
    """``n`` objects named ``phrase`` in distinct cells of a grid over the image, each ``sizes`` pixels wide
    and tall (inclusive range), placed at random in its cell, with distinct scores in [0.55, 0.99].

    Raises:
        ValueError: ``n`` objects of that size do not fit.
    """
    rng = np.random.default_rng(seed)
    cell = sizes[1] + 2
    cols, rows = width // cell, height // cell
    if n > cols * rows or n >= 1 << 16:
        raise ValueError(f"{n} objects of up to {sizes[1]} px do not fit a {width}x{height} image")
    cells = rng.choice(cols * rows, size=n, replace=False)
    ranks = rng.permutation(n)
    objects = []
    for i, c in enumerate(cells.tolist()):
        w, h = (int(v) for v in rng.integers(sizes[0], sizes[1] + 1, 2))
        x = (c % cols) * cell + 1 + int(rng.integers(0, cell - w - 1))
        y = (c // cols) * cell + 1 + int(rng.integers(0, cell - h - 1))
        score = 0.55 + 0.44 * float(ranks[i]) / max(n - 1, 1)
        objects.append(SceneObject(phrase, (x, y, x + w, y + h), shape, object_color(i), round(score, 6)))  # type: ignore[arg-type]
    return Scene(width, height, objects)


def crowd_image(scene: Scene) -> Image.Image:
    """``scene.image()`` for a scene of non-overlapping objects, painted box by box (fast on large images)."""
    pixels = np.empty((scene.height, scene.width, 3), np.uint8)
    pixels[:] = scene.background
    for obj in scene.objects:
        (x0, y0, x1, y1), local = object_crop(scene, obj)
        pixels[y0:y1, x0:x1][local] = obj.color
    return Image.fromarray(pixels)


def object_crop(scene: Scene, obj: SceneObject) -> tuple[IntBox, np.ndarray]:
    """An object's integer box in the image (its box rounded outwards, clipped) and its mask on that box:
    equal to ``scene.mask(i)`` cropped to the box, and empty outside it."""
    x0, y0 = (max(0, int(np.floor(v))) for v in obj.box[:2])
    x1, y1 = min(scene.width, int(np.ceil(obj.box[2]))), min(scene.height, int(np.ceil(obj.box[3])))
    shifted = (obj.box[0] - x0, obj.box[1] - y0, obj.box[2] - x0, obj.box[3] - y0)
    return (x0, y0, x1, y1), shape_mask(x1 - x0, y1 - y0, shifted, obj.shape)


class CappedSceneSegmenter:
    """A ``Segmenter`` finding a crowd's objects (``crowd_scene``: one colour each, no overlaps) in the pixels.

    Per prompt: text matches object phrases as ``SceneSegmenter`` does; a positive exemplar box adds the
    objects sharing the phrase of the object with most pixels in it (in the image given). Of the matches present
    in the image, the ``query_cap`` highest-scored are kept, then those below ``thresholds.score``
    dropped; ids 0..n-1 by descending score. ``calls`` counts calls, ``sizes_seen`` lists the (width, height)
    of every image received.
    """

    def __init__(self, scene: Scene, query_cap: int = 200) -> None:
        colors = [obj.color for obj in scene.objects]
        if len(set(colors)) != len(colors) or any(c != object_color(i) for i, c in enumerate(colors)):
            raise ValueError("CappedSceneSegmenter needs object i painted in object_color(i) (see crowd_scene)")
        self.scene = scene
        self.query_cap = query_cap
        self.calls = 0
        self.sizes_seen: list[tuple[int, int]] = []

    def segment(
        self, image: Image.Image, prompts: Sequence[Prompt], thresholds: Thresholds | None = None
    ) -> list[list[Instance]]:
        """See ``Segmenter.segment``."""
        self.calls += 1
        self.sizes_seen.append(image.size)
        labels = _labels(np.asarray(image.convert("RGB")))
        boxes = _label_boxes(labels)
        thresholds = thresholds or Thresholds()
        return [self._one(prompt, labels, boxes, thresholds) for prompt in prompts]

    def _matches(self, prompt: Prompt, labels: np.ndarray) -> set[int]:
        phrases = {normalize_phrase(prompt.text)} if prompt.text else set()
        for exemplar in prompt.boxes:
            x0, y0, x1, y1 = (max(0, round(v)) for v in exemplar.box)
            inside = labels[y0:y1, x0:x1]
            inside = inside[inside >= 0]
            if exemplar.positive and inside.size:
                phrases.add(normalize_phrase(self.scene.objects[int(np.bincount(inside).argmax())].phrase))
        return {i for i, obj in enumerate(self.scene.objects) if normalize_phrase(obj.phrase) in phrases}

    def _one(self, prompt: Prompt, labels: np.ndarray, boxes: dict[int, IntBox], thresholds: Thresholds) -> list:
        objects = self.scene.objects
        present = sorted(self._matches(prompt, labels) & boxes.keys(), key=lambda i: (-objects[i].score, i))
        kept = [i for i in present[: self.query_cap] if objects[i].score >= thresholds.score]
        size = labels.shape
        found = []
        for n, i in enumerate(kept):
            x0, y0, x1, y1 = boxes[i]
            data = place_mask(rle_encode(labels[y0:y1, x0:x1] == i), (x0, y0), size)  # type: ignore[arg-type]
            box = tuple(float(v) for v in data.box)
            score = objects[i].score
            found.append(Instance(id=n, phrase=prompt.label, score=score, box=box, rle=data.rle, area=data.area))
        return found


def _labels(pixels: np.ndarray) -> np.ndarray:
    """Object index per pixel (-1 for the background), int32 (height, width)."""
    red, green, blue = (pixels[..., k].astype(np.int32) for k in range(3))
    return np.where(blue == MARK, red + (green << 8), -1)


def _label_boxes(labels: np.ndarray) -> dict[int, IntBox]:
    """The tight box (max corner exclusive) of every object index present."""
    flat = labels.ravel()
    where = np.flatnonzero(flat >= 0)
    if not len(where):
        return {}
    order = np.argsort(flat[where], kind="stable")
    where = where[order]
    label = flat[where]
    starts = np.flatnonzero(np.concatenate([[True], label[1:] != label[:-1]]))
    ys, xs = np.divmod(where, labels.shape[1])
    x0, x1 = np.minimum.reduceat(xs, starts), np.maximum.reduceat(xs, starts) + 1
    y0, y1 = np.minimum.reduceat(ys, starts), np.maximum.reduceat(ys, starts) + 1
    rows = zip(label[starts].tolist(), x0.tolist(), y0.tolist(), x1.tolist(), y1.tolist(), strict=True)
    return {k: (a, b, c, d) for k, a, b, c, d in rows}
