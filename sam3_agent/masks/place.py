"""A mask of a window (a tile, a crop) placed into a larger image at an offset, on the run lengths only.

The runs of the window's mask are cut at its column ends and moved to the matching columns and rows of
the larger image (column-major flat index ``x * height + y``), so the larger image is never decoded. A
canonical input (no empty run but the first, as ``rle_encode`` and the engine make them) gives the
canonical RLE of the placed mask: it equals ``rle_encode`` of the dense mask pasted into a blank image.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as coco_mask

from sam3_agent.masks.rle import Rle
from sam3_agent.masks.runs import MaskData, mask_data, remember


def place_mask(rle: Rle, offset: tuple[int, int], size: tuple[int, int]) -> MaskData:
    """The mask ``rle`` of a window put into an image of (height, width) ``size`` with the window's top-left
    corner at pixel (x, y) ``offset``; its runs, box and area (remembered for ``mask_data``).

    Raises:
        ValueError: the window does not fit inside the image at that offset.
    """
    (th, tw), (height, width), (ox, oy) = rle.size, size, offset
    if ox < 0 or oy < 0 or ox + tw > width or oy + th > height:
        raise ValueError(f"a {tw}x{th} window at {offset} does not fit in a {width}x{height} image")
    data = mask_data(rle)
    column, row0, row1 = _column_pieces(data.runs, th)
    top = (column + ox) * height + oy
    runs = _runs_from_edges(*_join(top + row0, top + row1), height * width)
    encoded = coco_mask.frPyObjects({"size": [height, width], "counts": runs.tolist()}, height, width)
    placed = Rle(size=(height, width), counts=encoded["counts"].decode("ascii"))
    x0, y0, x1, y1 = data.box
    box = (x0 + ox, y0 + oy, x1 + ox, y1 + oy) if data.area else (0, 0, 0, 0)
    return remember(MaskData(placed, runs, box, data.area))


def _column_pieces(runs: np.ndarray, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The foreground runs of a mask of ``height`` rows cut at its column ends: per piece, its column and
    its rows [row0, row1), in flat order."""
    ends = np.cumsum(runs)
    starts = ends - runs
    foreground = ((np.arange(len(runs)) & 1) == 1) & (runs > 0)
    s, e = starts[foreground], ends[foreground]
    first, last = s // height, (e - 1) // height
    pieces = last - first + 1
    run = np.repeat(np.arange(len(s)), pieces)
    column = first[run] + np.arange(int(pieces.sum())) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    row0 = np.where(column == first[run], s[run] - column * height, 0)
    row1 = np.where(column == last[run], e[run] - column * height, height)
    return column, row0, row1


def _join(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, disjoint [start, end) pieces with the pieces that meet (one's end is the next's start) joined:
    a window as tall as the image puts a column's bottom next to the next column's top."""
    if len(starts) < 2:
        return starts, ends
    meets = starts[1:] == ends[:-1]
    return starts[np.concatenate([[True], ~meets])], ends[np.concatenate([~meets, [True]])]


def _runs_from_edges(starts: np.ndarray, ends: np.ndarray, pixels: int) -> np.ndarray:
    """COCO runs (background first, no empty run but the first) of sorted, disjoint [start, end) pieces."""
    edges = np.empty(2 * len(starts), np.int64)
    edges[0::2], edges[1::2] = starts, ends
    runs = np.diff(np.concatenate([[0], edges, [pixels]]))
    return runs[:-1] if len(runs) > 1 and runs[-1] == 0 else runs
