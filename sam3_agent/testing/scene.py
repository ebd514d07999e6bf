"""Synthetic scenes with known answers, and a fake ``Segmenter`` that "segments" them exactly.

A ``Scene`` is a plain background with coloured boxes and ellipses, each named by a phrase ("red cup").
``SceneSegmenter`` answers SAM 3 prompts on it with the true masks, so tests of the agent, geometry,
counting and rendering know the right answer without weights or GPU.

Masks are bool (height, width); boxes are XYXY pixels with the max corner exclusive. An object's mask is
its whole shape, also where a later object is painted over it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image

from sam3_agent.errors import ImageError
from sam3_agent.masks import mask_to_box, nms, rle_encode
from sam3_agent.schema import BoxXYXY, Instance, Prompt, Thresholds

Color = tuple[int, int, int]


@dataclass(frozen=True)
class SceneObject:
    """One object: a phrase, a box (XYXY pixels) filled by a ``shape``, its colour and the score the fake
    segmenter gives it."""

    phrase: str
    box: BoxXYXY
    shape: Literal["box", "ellipse"] = "ellipse"
    color: Color = (200, 40, 40)
    score: float = 0.9

    def __post_init__(self) -> None:
        x0, y0, x1, y1 = self.box
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"SceneObject box must satisfy x0 < x1 and y0 < y1 (XYXY), got {self.box}")
        if self.shape not in ("box", "ellipse"):
            raise ValueError(f"shape must be 'box' or 'ellipse', got {self.shape!r}")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must be within [0, 1], got {self.score}")


def _shape_mask(width: int, height: int, box: BoxXYXY, shape: str) -> np.ndarray:
    """Pixels whose centre lies in the box (``box``) or in the ellipse inscribed in it (``ellipse``)."""
    x0, y0, x1, y1 = box
    xs = np.arange(width) + 0.5
    ys = np.arange(height) + 0.5
    if shape == "box":
        return ((ys >= y0) & (ys < y1))[:, None] & ((xs >= x0) & (xs < x1))[None, :]
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    return ((xs[None, :] - cx) / rx) ** 2 + ((ys[:, None] - cy) / ry) ** 2 <= 1.0


@dataclass
class Scene:
    """``objects`` painted in order (later ones on top) on a ``background`` of ``width`` x ``height``."""

    width: int
    height: int
    objects: list[SceneObject]
    background: Color = (235, 235, 235)
    _masks: dict[int, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f"scene size must be at least 1x1, got {self.width}x{self.height}")

    def mask(self, i: int) -> np.ndarray:
        """Bool (height, width) mask of object ``i`` (its whole shape; read-only, cached)."""
        if i not in self._masks:
            obj = self.objects[i]
            mask = _shape_mask(self.width, self.height, obj.box, obj.shape)
            mask.flags.writeable = False
            self._masks[i] = mask
        return self._masks[i]

    def image(self) -> Image.Image:
        """The scene as an RGB image."""
        arr = np.empty((self.height, self.width, 3), np.uint8)
        arr[:] = self.background
        for i, obj in enumerate(self.objects):
            arr[self.mask(i)] = obj.color
        return Image.fromarray(arr)


def _singular(word: str) -> str:
    """Crude English singular, the same on both sides of a comparison: cups -> cup, boxes -> box."""
    if len(word) > 3 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith(("sses", "xes", "ches", "shes", "zes")):
        return word[:-2]
    if len(word) > 2 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def normalize_phrase(phrase: str) -> str:
    """Lower case, single spaces, last word made singular: "Red  Cups" -> "red cup"."""
    words = phrase.lower().split()
    return " ".join([*words[:-1], _singular(words[-1])]) if words else ""


class SceneSegmenter:
    """A ``Segmenter`` that returns the true masks of a ``Scene``.

    Matching, per prompt:
    - text: objects whose phrase equals the prompt text after ``normalize_phrase`` (case, spacing,
      singular/plural): "Cups" finds "cup" objects; "red cup" finds only objects named exactly "red cup".
      With ``match_head_noun=True`` a one-word prompt also finds objects whose phrase ends with it
      ("cup" finds "red cup").
    - a positive exemplar box adds every object sharing the phrase of the object whose mask has the most
      pixels inside the box (none if the box covers no object);
    - a negative exemplar box removes the one object whose mask has the most pixels inside it.
    ``duplicates={"cup": 1}`` adds, for every matched object named "cup" (normalised), that many extra
    instances on slightly shrunk masks with lower scores, so counting has to de-duplicate (IoM NMS).

    Instances below ``thresholds.score`` are dropped, ``thresholds.nms_iom`` applies ``masks.nms``; each
    list is sorted by descending score (ties: scene order) with ids 0..n-1 and phrase ``prompt.label``.
    ``calls`` counts ``segment`` calls and ``prompts_seen`` lists every prompt received, in order.
    """

    def __init__(
        self,
        scene: Scene,
        *,
        duplicates: Mapping[str, int] | None = None,
        match_head_noun: bool = False,
    ) -> None:
        self.scene = scene
        self.duplicates = {normalize_phrase(k): v for k, v in (duplicates or {}).items()}
        self.match_head_noun = match_head_noun
        self.calls = 0
        self.prompts_seen: list[Prompt] = []

    def segment(
        self,
        image: Image.Image,
        prompts: Sequence[Prompt],
        thresholds: Thresholds | None = None,
    ) -> list[list[Instance]]:
        """See ``sam3_agent.engine.protocol.Segmenter.segment``.

        Raises:
            ImageError: the image size differs from the scene's.
            PromptError: an exemplar box is empty, inverted or outside the image.
        """
        if image.size != (self.scene.width, self.scene.height):
            raise ImageError(
                f"image is {image.width}x{image.height} but the scene is {self.scene.width}x{self.scene.height}"
            )
        for prompt in prompts:
            for box in prompt.boxes:
                box.check_inside(self.scene.width, self.scene.height)
        self.calls += 1
        self.prompts_seen.extend(prompts)
        thresholds = thresholds or Thresholds()
        return [self._segment_one(prompt, thresholds) for prompt in prompts]

    def _text_matches(self, text: str, i: int) -> bool:
        want, have = normalize_phrase(text), normalize_phrase(self.scene.objects[i].phrase)
        if want == have:
            return True
        return self.match_head_noun and " " not in want and have.endswith(" " + want)

    def _best_in_box(self, box: BoxXYXY) -> int | None:
        """Index of the object with the most mask pixels inside ``box``; None if the box covers none."""
        x0, y0, x1, y1 = (max(0, round(v)) for v in box)
        counts = [int(self.scene.mask(i)[y0:y1, x0:x1].sum()) for i in range(len(self.scene.objects))]
        if not counts or max(counts) == 0:
            return None
        return int(np.argmax(counts))

    def _matched(self, prompt: Prompt) -> list[int]:
        objects = self.scene.objects
        chosen: set[int] = set()
        if prompt.text is not None:
            chosen |= {i for i in range(len(objects)) if self._text_matches(prompt.text, i)}
        for exemplar in prompt.boxes:
            best = self._best_in_box(exemplar.box) if exemplar.positive else None
            if best is not None:
                phrase = normalize_phrase(objects[best].phrase)
                chosen |= {i for i, obj in enumerate(objects) if normalize_phrase(obj.phrase) == phrase}
        for exemplar in prompt.boxes:
            if not exemplar.positive and (best := self._best_in_box(exemplar.box)) is not None:
                chosen.discard(best)
        return sorted(chosen)

    def _candidates(self, i: int) -> list[tuple[float, np.ndarray]]:
        """(score, mask) of object ``i`` and of its duplicates (each 4% smaller per side, 0.05 lower score)."""
        obj = self.scene.objects[i]
        result = [(obj.score, self.scene.mask(i))]
        for k in range(1, self.duplicates.get(normalize_phrase(obj.phrase), 0) + 1):
            x0, y0, x1, y1 = obj.box
            dx, dy = 0.04 * k * (x1 - x0), 0.04 * k * (y1 - y0)
            shrunk = (x0 + dx, y0 + dy, x1 - dx, y1 - dy)
            if shrunk[2] - shrunk[0] < 1 or shrunk[3] - shrunk[1] < 1:
                break
            mask = _shape_mask(self.scene.width, self.scene.height, shrunk, obj.shape) & self.scene.mask(i)
            result.append((max(0.0, obj.score - 0.05 * k), mask))
        return result

    def _segment_one(self, prompt: Prompt, thresholds: Thresholds) -> list[Instance]:
        found = [(score, i, mask) for i in self._matched(prompt) for score, mask in self._candidates(i)]
        found = [f for f in found if f[0] >= thresholds.score and f[2].any()]
        found.sort(key=lambda f: (-f[0], f[1]))
        instances = [
            Instance(
                id=n,
                phrase=prompt.label,
                score=score,
                box=mask_to_box(mask),
                rle=rle_encode(mask),
                area=int(mask.sum()),
            )
            for n, (score, _, mask) in enumerate(found)
        ]
        if thresholds.nms_iom is not None:
            instances = [inst.model_copy(update={"id": n}) for n, inst in enumerate(nms(instances, thresholds.nms_iom))]
        return instances
