"""Placing objects in a generated scene: random free spots, spots relative to an anchor, distractors.

Boxes are integer XYXY pixels (max exclusive). Objects keep ``GAP`` pixels between their boxes unless a
placement says which objects it may touch or overlap. ``Layout.scene()`` paints big objects first, so
nothing small is hidden under something big.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from sam3_agent.evaluation.answers.truth import Ambiguous
from sam3_agent.evaluation.answers.vocab import noun_of
from sam3_agent.masks import IntBox
from sam3_agent.testing.scene import Scene, SceneObject

WIDTH, HEIGHT = 320, 240
GAP = 10
TRIES = 200


@dataclass
class Layout:
    """Objects being placed on a ``width`` x ``height`` canvas, with the case's random source."""

    rng: random.Random
    width: int = WIDTH
    height: int = HEIGHT
    objects: list[SceneObject] = field(default_factory=list)

    def size(self, phrase: str, scale: float = 1.0) -> tuple[int, int]:
        """A random (width, height) for ``phrase`` within its noun's ranges, times ``scale``."""
        noun = noun_of(phrase)
        w = self.rng.randint(*noun.width)
        h = self.rng.randint(*noun.height)
        return max(6, round(w * scale)), max(6, round(h * scale))

    def fits(self, box: IntBox, gap: int = GAP, touching: Iterable[int] = ()) -> bool:
        """Inside the canvas (2 px margin) and ``gap`` px clear of every object but those in ``touching``."""
        x0, y0, x1, y1 = box
        if x0 < 2 or y0 < 2 or x1 > self.width - 2 or y1 > self.height - 2:
            return False
        allowed = set(touching)
        for i, obj in enumerate(self.objects):
            if i in allowed:
                continue
            ox0, oy0, ox1, oy1 = obj.box
            if x0 < ox1 + gap and ox0 < x1 + gap and y0 < oy1 + gap and oy0 < y1 + gap:
                return False
        return True

    def add(self, phrase: str, box: IntBox, score: float | None = None) -> int:
        """Add an object (random score in [0.7, 0.98] unless given); returns its index in ``objects``."""
        noun = noun_of(phrase)
        score = round(self.rng.uniform(0.7, 0.98), 3) if score is None else score
        self.objects.append(SceneObject(phrase, box, noun.shape, noun.color, score))  # type: ignore[arg-type]
        return len(self.objects) - 1

    def drop(
        self,
        phrase: str,
        region: IntBox | None = None,
        *,
        size: tuple[int, int] | None = None,
        gap: int = GAP,
    ) -> int:
        """Add ``phrase`` at a random free spot whose box lies inside ``region`` (default: the canvas)."""
        rx0, ry0, rx1, ry1 = region or (0, 0, self.width, self.height)
        for _ in range(TRIES):
            w, h = size or self.size(phrase)
            if rx1 - rx0 < w or ry1 - ry0 < h:
                continue
            x0, y0 = self.rng.randint(rx0, rx1 - w), self.rng.randint(ry0, ry1 - h)
            if self.fits((x0, y0, x0 + w, y0 + h), gap):
                return self.add(phrase, (x0, y0, x0 + w, y0 + h))
        raise Ambiguous(f"no room for a {phrase} in {region}")

    def try_box(self, phrase: str, boxes: Iterable[IntBox], touching: Iterable[int] = ()) -> int:
        """Add ``phrase`` at the first of ``boxes`` that fits (clear of all but ``touching``)."""
        touching = list(touching)
        for box in boxes:
            if self.fits(box, GAP, touching):
                return self.add(phrase, box)
        raise Ambiguous(f"no room for a {phrase} at the spots tried")

    def distractors(self, phrases: Iterable[str]) -> None:
        """Add one object per phrase at a random free spot."""
        for phrase in phrases:
            self.drop(phrase)

    def scene(self) -> Scene:
        """The scene, big objects painted first (stable, so equal sizes keep their order)."""
        order = sorted(self.objects, key=lambda o: -(o.box[2] - o.box[0]) * (o.box[3] - o.box[1]))
        return Scene(self.width, self.height, order)


def boxes_around(layout: Layout, anchor: IntBox, size: tuple[int, int], spot: str) -> Iterable[IntBox]:
    """Random candidate boxes of ``size`` at ``spot`` relative to the ``anchor`` box.

    spots: "on" (resting on its top edge, centre within its middle half), "floating" (over its middle,
    clearly not touching), "under" (below it, centre within its middle half), "inside" (within it, 4 px in),
    "straddle" (over its left or right edge, mostly outside), "adjacent" (touching one of its sides).
    """
    rng, (w, h) = layout.rng, size
    ax0, ay0, ax1, ay1 = anchor
    aw = ax1 - ax0
    for _ in range(TRIES):
        cx = rng.uniform(ax0 + 0.3 * aw, ax1 - 0.3 * aw)
        if spot == "on":
            y1 = ay0 + rng.randint(1, 3)
            yield _box_at(cx, y1 - h / 2, w, h)
        elif spot == "floating":
            y1 = ay0 - rng.randint(round(0.5 * h) + 10, round(0.5 * h) + 40)
            yield _box_at(cx, y1 - h / 2, w, h)
        elif spot == "under":
            y0 = ay1 + rng.randint(3, 30)
            yield _box_at(cx, y0 + h / 2, w, h)
        elif spot == "inside":
            if aw - 8 < w or ay1 - ay0 - 8 < h:
                return
            x0, y0 = rng.randint(ax0 + 4, ax1 - 4 - w), rng.randint(ay0 + 4, ay1 - 4 - h)
            yield (x0, y0, x0 + w, y0 + h)
        elif spot == "straddle":
            edge = ax0 if rng.random() < 0.5 else ax1
            outward = -1 if edge == ax0 else 1
            yield _box_at(edge + outward * 0.3 * w, rng.uniform(ay0 + h / 2, ay1 - h / 2), w, h)
        elif spot == "adjacent":
            yield _adjacent(rng, anchor, w, h)
        else:
            raise ValueError(f"unknown spot {spot!r}")


def _box_at(cx: float, cy: float, w: int, h: int) -> IntBox:
    x0, y0 = round(cx - w / 2), round(cy - h / 2)
    return (x0, y0, x0 + w, y0 + h)


def _adjacent(rng: random.Random, anchor: IntBox, w: int, h: int) -> IntBox:
    """A box touching (overlapping by 1 px) a random side of ``anchor``, centres aligned within 10%."""
    ax0, ay0, ax1, ay1 = anchor
    acx, acy = (ax0 + ax1) / 2, (ay0 + ay1) / 2
    jx, jy = rng.uniform(-0.1, 0.1) * (ax1 - ax0), rng.uniform(-0.1, 0.1) * (ay1 - ay0)
    side = rng.choice(("left", "right", "top", "bottom"))
    if side == "left":
        return _box_at(ax0 + 1 - w / 2, acy + jy, w, h)
    if side == "right":
        return _box_at(ax1 - 1 + w / 2, acy + jy, w, h)
    if side == "top":
        return _box_at(acx + jx, ay0 + 1 - h / 2, w, h)
    return _box_at(acx + jx, ay1 - 1 + h / 2, w, h)
