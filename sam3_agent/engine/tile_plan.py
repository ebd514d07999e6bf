"""Where the tiles of a tiled segmentation lie: overlapping windows at the image's native resolution.

Along each axis the tiles are ``tile`` pixels long (the whole axis when it is shorter) and spread evenly
from the first pixel to the last, as few as give every neighbouring pair at least ``overlap`` x ``tile``
pixels in common; the image's corners and edges are always covered. Tiles are listed row by row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sam3_agent.errors import ConfigError


@dataclass(frozen=True)
class Tile:
    """A window x0 <= x < x1, y0 <= y < y1 of the image, in pixels (max corner exclusive)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1, self.y1)

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def meet(self, other: Tile) -> Tile | None:
        """Where two tiles meet: the window both cover, or the line they share (a window 0 wide or 0 tall:
        the tiles abut); None when they are apart or touch at a corner only."""
        x0, y0 = max(self.x0, other.x0), max(self.y0, other.y0)
        x1, y1 = min(self.x1, other.x1), min(self.y1, other.y1)
        if x1 < x0 or y1 < y0 or (x1 == x0 and y1 == y0):
            return None
        return Tile(x0, y0, x1, y1)

    @property
    def is_line(self) -> bool:
        """Whether the window is 0 wide or 0 tall (where two abutting tiles meet)."""
        return self.x1 == self.x0 or self.y1 == self.y0


def axis_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of the tiles along one axis of ``length`` pixels (see the module docstring)."""
    if length <= tile:
        return [0]
    stride = tile * (1.0 - overlap)
    n = math.ceil((length - tile) / stride - 1e-9) + 1
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def plan_tiles(width: int, height: int, tile: int, overlap: float) -> list[Tile]:
    """The tiles covering a ``width`` x ``height`` image, row by row; one tile (the image) when it fits.

    Raises:
        ConfigError: ``tile`` < 1 or ``overlap`` outside [0, 1).
    """
    if tile < 1:
        raise ConfigError(f"the tile size must be at least 1 pixel, got {tile}")
    if not 0.0 <= overlap < 1.0:
        raise ConfigError(f"the tile overlap must be a fraction in [0, 1), got {overlap}")
    xs, ys = axis_starts(width, tile, overlap), axis_starts(height, tile, overlap)
    tw, th = min(tile, width), min(tile, height)
    return [Tile(x, y, x + tw, y + th) for y in ys for x in xs]
