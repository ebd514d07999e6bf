"""Instances found tile by tile -> instances of the whole image: placed, stitched, de-duplicated, renumbered.

The rules, per prompt (``merge_tiles``):

1. **Place**: each tile's masks are moved into the full image on their run lengths (``masks.place``).
2. **Stitch**: two pieces from different tiles are one object, and are united, when the tiles overlap and the
   pieces' masks inside the window both tiles cover agree (IoU there >= ``stitch_iou``): an object cut by
   one tile's border is seen whole, or cut elsewhere, by its neighbour, and both see the same pixels in the
   shared window. When tiles abut (no overlap), pieces that both reach the shared border line and meet on it
   are one object. Stitching is transitive (an object across three tiles ends up in one piece).
3. **De-duplicate**: of two objects from disjoint sets of tiles whose masks' intersection over the smaller
   mask exceeds ``dedupe_iom`` (SAM 3's counting rule, 0.5), the lower-scored one goes. Objects from one tile
   are left as the segmenter returned them, as they would be untiled.
4. **Renumber**: ids 1..n by descending score (ties: top to bottom, then left to right).

A united object gets the highest score and presence score of its pieces. Torch-free.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from sam3_agent.engine.tile_plan import Tile
from sam3_agent.masks import IntBox, mask_crop, mask_data, mask_iom
from sam3_agent.masks.algebra import mask_union
from sam3_agent.masks.place import place_mask
from sam3_agent.schema import Instance

STITCH_IOU = 0.5
"""IoU inside the shared window above which two pieces from overlapping tiles are one object."""

DEDUPE_IOM = 0.5
"""IoM above which two objects from different tiles are duplicates (SAM 3's counting recipe)."""


@dataclass(frozen=True)
class _Object:
    instance: Instance
    tiles: frozenset[int]


def place_instances(found: Sequence[Instance], tile: Tile, size: tuple[int, int]) -> list[Instance]:
    """A tile's instances moved into the (height, width) image ``size`` (masks, boxes; ids kept)."""
    placed = []
    for inst in found:
        data = place_mask(inst.rle, (tile.x0, tile.y0), size)
        placed.append(inst.model_copy(update={"rle": data.rle, "box": tuple(map(float, data.box)), "area": data.area}))
    return placed


def merge_tiles(
    found: Sequence[Sequence[Instance]],
    tiles: Sequence[Tile],
    *,
    stitch_iou: float = STITCH_IOU,
    dedupe_iom: float = DEDUPE_IOM,
) -> list[Instance]:
    """One prompt's instances of each tile, already in full-image coordinates (``place_instances``), merged
    into the image's instances by the module's rules; ids 1..n by descending score."""
    pieces = [(t, inst) for t, per_tile in enumerate(found) for inst in per_tile]
    groups = _stitched_groups(pieces, tiles, stitch_iou)
    objects = [_unite([pieces[i] for i in group]) for group in groups]
    return renumber([obj.instance for obj in _deduplicated(objects, dedupe_iom)])


def renumber(instances: Sequence[Instance]) -> list[Instance]:
    """Ids 1..n by descending score; ties top to bottom, then left to right."""
    ranked = sorted(instances, key=lambda inst: (-inst.score, inst.box[1], inst.box[0]))
    return [inst.model_copy(update={"id": n}) for n, inst in enumerate(ranked, start=1)]


# --- stitching ----------------------------------------------------------------------------------------------


def _stitched_groups(pieces: list[tuple[int, Instance]], tiles: Sequence[Tile], stitch_iou: float) -> list[list[int]]:
    """Indices of the pieces, grouped into objects (union-find over the pairs found to be one object)."""
    parent = list(range(len(pieces)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_tile: dict[int, list[int]] = {}
    for i, (t, _) in enumerate(pieces):
        by_tile.setdefault(t, []).append(i)
    for a, b, window in _meeting_tiles(tiles, by_tile):
        for i, j in _pairs_across(pieces, by_tile[a], by_tile[b], tiles[a], tiles[b], window, stitch_iou):
            parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(pieces)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _meeting_tiles(tiles: Sequence[Tile], by_tile: dict[int, list[int]]) -> Iterator[tuple[int, int, Tile]]:
    """(a, b, where they meet) for each pair of tiles a < b that both hold pieces and overlap or abut."""
    used = sorted(by_tile)
    for k, a in enumerate(used):
        for b in used[k + 1 :]:
            window = tiles[a].meet(tiles[b])
            if window is not None:
                yield a, b, window


def _pairs_across(
    pieces: list[tuple[int, Instance]],
    in_a: list[int],
    in_b: list[int],
    tile_a: Tile,
    tile_b: Tile,
    window: Tile,
    stitch_iou: float,
) -> Iterator[tuple[int, int]]:
    """The pairs (piece of tile a, piece of tile b) that are one object."""
    probe_a, probe_b = (_border(tile_a, window), _border(tile_b, window)) if window.is_line else (window, window)
    boxes_a = np.array([mask_data(pieces[i][1].rle).box for i in in_a], np.int64).reshape(-1, 4)
    boxes_b = np.array([mask_data(pieces[j][1].rle).box for j in in_b], np.int64).reshape(-1, 4)
    near_a, near_b = _meets(boxes_a, probe_a), _meets(boxes_b, probe_b)
    inside: dict[int, _Inside] = {}  # piece -> its mask inside the window, decoded once

    def within(i: int) -> _Inside:
        if i not in inside:
            inside[i] = _Inside.of(pieces[i][1], window)
        return inside[i]

    for ia in np.flatnonzero(near_a):
        for jb in np.flatnonzero(near_b & _ranges_meet(boxes_a[ia], boxes_b, window)):
            i, j = in_a[ia], in_b[jb]
            if window.is_line:
                same = _meet_on_line(pieces[i][1], pieces[j][1], probe_a, probe_b)
            else:
                same = within(i).agrees(within(j), stitch_iou)
            if same:
                yield i, j


def _border(tile: Tile, line: Tile) -> Tile:
    """The 1-pixel strip of ``tile`` along the line where it abuts its neighbour."""
    if line.x0 == line.x1:
        x = line.x0 - 1 if tile.x1 == line.x0 else line.x0
        return Tile(x, line.y0, x + 1, line.y1)
    y = line.y0 - 1 if tile.y1 == line.y0 else line.y0
    return Tile(line.x0, y, line.x1, y + 1)


def _meets(boxes: np.ndarray, window: Tile) -> np.ndarray:
    """Which (n, 4) integer boxes share pixels with ``window``."""
    return (np.maximum(boxes[:, 0], window.x0) < np.minimum(boxes[:, 2], window.x1)) & (
        np.maximum(boxes[:, 1], window.y0) < np.minimum(boxes[:, 3], window.y1)
    )


def _ranges_meet(box: np.ndarray, boxes: np.ndarray, window: Tile) -> np.ndarray:
    """Which boxes can share pixels with ``box`` in ``window``: their ranges overlap inside it along the
    window's long sides (both axes for an area; along the line for a line)."""
    meets = np.ones(len(boxes), bool)
    if window.x1 > window.x0:
        meets &= np.maximum(np.maximum(boxes[:, 0], box[0]), window.x0) < np.minimum(
            np.minimum(boxes[:, 2], box[2]), window.x1
        )
    if window.y1 > window.y0:
        meets &= np.maximum(np.maximum(boxes[:, 1], box[1]), window.y0) < np.minimum(
            np.minimum(boxes[:, 3], box[3]), window.y1
        )
    return meets


@dataclass(frozen=True)
class _Inside:
    """A mask inside a window: the box where its box meets the window, the mask there, its pixel count."""

    box: IntBox
    mask: np.ndarray
    area: int

    @classmethod
    def of(cls, inst: Instance, window: Tile) -> _Inside:
        x0, y0, x1, y1 = mask_data(inst.rle).box
        box = (max(x0, window.x0), max(y0, window.y0), min(x1, window.x1), min(y1, window.y1))
        mask = mask_crop(inst.rle, box)
        return cls(box, mask, int(np.count_nonzero(mask)))

    def agrees(self, other: _Inside, stitch_iou: float) -> bool:
        """Whether the two masks' IoU inside the window is at least ``stitch_iou`` (and they meet)."""
        x0, y0 = max(self.box[0], other.box[0]), max(self.box[1], other.box[1])
        x1, y1 = min(self.box[2], other.box[2]), min(self.box[3], other.box[3])
        if x1 <= x0 or y1 <= y0:
            return False
        mine = self.mask[y0 - self.box[1] : y1 - self.box[1], x0 - self.box[0] : x1 - self.box[0]]
        theirs = other.mask[y0 - other.box[1] : y1 - other.box[1], x0 - other.box[0] : x1 - other.box[0]]
        inter = int(np.count_nonzero(mine & theirs))
        return inter > 0 and inter >= stitch_iou * (self.area + other.area - inter)


def _meet_on_line(p: Instance, q: Instance, strip_p: Tile, strip_q: Tile) -> bool:
    """Whether the masks' pixels on the two border strips (facing each other across the line) touch."""
    a, b = mask_crop(p.rle, strip_p.box).ravel(), mask_crop(q.rle, strip_q.box).ravel()
    return bool(np.any(a & b))


def _unite(pieces: list[tuple[int, Instance]]) -> _Object:
    tiles = frozenset(t for t, _ in pieces)
    if len(pieces) == 1:
        return _Object(pieces[0][1], tiles)
    rle = mask_union([inst.rle for _, inst in pieces])
    data = mask_data(rle)
    best = max((inst for _, inst in pieces), key=lambda inst: inst.score)
    united = best.model_copy(
        update={
            "rle": rle,
            "box": tuple(map(float, data.box)),
            "area": data.area,
            "presence_score": max(inst.presence_score for _, inst in pieces),
        }
    )
    return _Object(united, tiles)


# --- duplicates ---------------------------------------------------------------------------------------------


def _deduplicated(objects: list[_Object], dedupe_iom: float) -> list[_Object]:
    """Greedy by score: an object goes when a kept, higher-scored one from disjoint tiles covers it (IoM)."""
    ranked = sorted(objects, key=lambda obj: (-obj.instance.score, obj.instance.box[1], obj.instance.box[0]))
    if len(ranked) < 2:
        return ranked
    iom = mask_iom([obj.instance.rle for obj in ranked], [obj.instance.rle for obj in ranked])
    kept = np.zeros(len(ranked), bool)
    for i, obj in enumerate(ranked):
        covering = np.flatnonzero(kept & (iom[i] > dedupe_iom))
        kept[i] = not any(obj.tiles.isdisjoint(ranked[k].tiles) for k in covering)
    return [obj for obj, keep in zip(ranked, kept, strict=True) if keep]
