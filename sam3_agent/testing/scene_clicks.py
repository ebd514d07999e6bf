"""A fake ``Clicker`` that answers clicks on a ``Scene`` with the clicked object's exact mask.

Which object, for clicks ``points`` / ``labels`` / ``box`` (checked like the real engine: ``ClickPrompt``):
the topmost object (painted last) whose mask holds every positive point and no negative point; with a box
and no positive point, the object with the most mask pixels inside the box that holds no negative point. No
such object: an empty mask (area 0). ``calls`` records every ``ClickPrompt`` received.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from sam3_agent.errors import ImageError
from sam3_agent.masks import mask_to_box, rle_encode
from sam3_agent.schema import BoxXYXY, ClickPrompt, Instance, Point, Thresholds
from sam3_agent.testing.scene import Scene


class SceneClicker:
    """``segment_at`` on a ``Scene``: exact masks, score ``score``, the real engine's checks and phrase."""

    def __init__(self, scene: Scene, *, score: float = 0.95) -> None:
        self.scene = scene
        self.score = score
        self.calls: list[ClickPrompt] = []

    def segment_at(
        self,
        image: Image.Image,
        points: Sequence[Point] = (),
        labels: Sequence[int] | None = None,
        box: BoxXYXY | None = None,
        thresholds: Thresholds | None = None,
    ) -> Instance:
        if not isinstance(image, Image.Image):
            raise ImageError(f"expected a PIL.Image.Image, got {type(image).__name__}")
        prompt = ClickPrompt.of(points, labels, box)
        prompt.check_inside(image.width, image.height)
        self.calls.append(prompt)
        picked = self._pick(prompt)
        mask = self.scene.mask(picked) if picked is not None else np.zeros((image.height, image.width), bool)
        box_found = tuple(float(v) for v in mask_to_box(mask)) if mask.any() else (0.0, 0.0, 0.0, 0.0)
        return Instance(
            id=0, phrase=prompt.label, score=self.score, box=box_found, rle=rle_encode(mask), area=int(mask.sum())
        )

    def _pick(self, prompt: ClickPrompt) -> int | None:
        def holds(i: int, point: Point) -> bool:
            return bool(self.scene.mask(i)[int(point[1]), int(point[0])])

        positive = [p for p, label in zip(prompt.points, prompt.labels, strict=True) if label == 1]
        negative = [p for p, label in zip(prompt.points, prompt.labels, strict=True) if label == 0]
        allowed = [i for i in range(len(self.scene.objects)) if not any(holds(i, p) for p in negative)]
        if positive:
            hits = [i for i in allowed if all(holds(i, p) for p in positive)]
            return hits[-1] if hits else None
        if prompt.box is None:
            return None
        x0, y0, x1, y1 = (max(round(v), 0) for v in prompt.box)
        inside = {i: int(self.scene.mask(i)[y0:y1, x0:x1].sum()) for i in allowed}
        best = max(inside, key=inside.__getitem__, default=None)
        return best if best is not None and inside[best] > 0 else None
