"""Tiled segmentation past SAM 3's query cap: ``TiledSegmenter`` wraps any ``Segmenter`` and is one itself.

SAM 3's detector has a fixed number of object queries (200 in the released model, ``Sam3Engine.query_cap``):
an image with more instances than that is undercounted, and small objects of a large photo, resized to
1008x1008, are lost. Segmenting overlapping tiles at native resolution lifts both limits; the tiles'
results are stitched back into the image's instances (``sam3_agent.engine.stitching``).

Modes (``TileMode``):

- ``never``: one call on the whole image (and a report saying whether a result is near the cap);
- ``always``: every text prompt runs tile by tile (``plan_tiles``; an image that fits one tile is one tile);
- ``auto`` (the default): tiled when the image's longest side exceeds ``auto_side`` (2 x 1008 px), else
  untiled first; a prompt whose untiled result reaches ``near_cap`` (0.9) of the query cap is run again
  tiled, when the image is larger than one tile. Images that fit one tile are never tiled.

Prompts with exemplar boxes always run on the whole image (their boxes point into it). Each tile is one
``segment`` call with all its prompts; ``Sam3Engine`` caches each tile's backbone features like any image's.
Every call leaves a ``SegmentReport``: ``segment_with_report`` returns it, ``last_report`` keeps the calling
thread's latest, and ``on_report`` (if given) receives each one. Ids follow the ``Segmenter`` rule
(``number_instances``): 1..N across the prompts, in response order, however each prompt was run.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from typing import Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field

from sam3_agent.engine.protocol import Segmenter, number_instances
from sam3_agent.engine.stitching import merge_tiles, place_instances, renumber
from sam3_agent.engine.tile_plan import Tile, plan_tiles
from sam3_agent.errors import ConfigError
from sam3_agent.images import check_pil_image
from sam3_agent.masks import nms
from sam3_agent.schema import Instance, Prompt, Thresholds
from sam3_agent.validation import validation_message

TileMode = Literal["auto", "always", "never"]

MODEL_SIDE = 1008
"""SAM 3's input side in pixels: the default tile, so that tiles are seen at native resolution."""


class TilingOptions(BaseModel):
    """How ``TiledSegmenter`` tiles (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: TileMode = "auto"
    tile: int = Field(default=MODEL_SIDE, ge=32, description="tile side in pixels")
    overlap: float = Field(default=0.2, ge=0.0, le=0.9, description="least overlap of neighbours, fraction of a tile")
    auto_side: int = Field(default=2 * MODEL_SIDE, ge=1, description="auto tiles images with a longer side")
    near_cap: float = Field(default=0.9, gt=0.0, le=1.0, description="fraction of the query cap that is 'near'")


class PromptTiling(BaseModel):
    """How one prompt was segmented. ``largest_pass`` is the most instances one segmenter pass returned (the
    whole image, or one tile): what is compared with the query cap. ``untiled_count`` is what the untiled
    pass found when auto mode tiled the prompt because of it."""

    phrase: str
    count: int = Field(ge=0)
    tiled: bool
    near_cap: bool = Field(description="a pass came near the query cap: the count may be too low")
    largest_pass: int = Field(ge=0)
    untiled_count: int | None = None


class SegmentReport(BaseModel):
    """What one ``TiledSegmenter`` call did: tiles used, the query cap, and which results may be saturated."""

    image_size: tuple[int, int] = Field(description="(height, width)")
    mode: TileMode
    tile: int
    overlap: float
    tiles: int = Field(ge=0, description="tiles segmented (0: no prompt was tiled)")
    query_cap: int | None = Field(description="the segmenter's object queries per pass; None: unknown")
    prompts: list[PromptTiling]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def tiled(self) -> bool:
        return any(p.tiled for p in self.prompts)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def near_cap(self) -> bool:
        return any(p.near_cap for p in self.prompts)


def untiled_report(
    prompts: Sequence[Prompt], results: Sequence[Sequence[Instance]], image: Image.Image, query_cap: int | None
) -> SegmentReport:
    """The report of a plain, untiled segmenter call (near the cap: at least 0.9 of ``query_cap``)."""
    options = TilingOptions(mode="never")
    rows = [_row(p, len(r), False, len(r), query_cap, options) for p, r in zip(prompts, results, strict=True)]
    return _report(image, options, 0, query_cap, rows)


class TiledSegmenter:
    """A ``Segmenter`` that segments large or crowded images tile by tile (see the module docstring).

    Args:
        segmenter: the segmenter every pass goes to (``Sam3Engine``, ``RemoteSegmenter``, a fake).
        mode, tile, overlap, auto_side, near_cap: ``TilingOptions``.
        query_cap: object queries per pass; None: the segmenter's ``query_cap`` attribute, if it has one
            (without a cap, auto mode tiles large images only and no result is reported near the cap).
        on_report: called with the ``SegmentReport`` of every call.

    Raises:
        ConfigError: an option out of range.
    """

    def __init__(
        self,
        segmenter: Segmenter,
        *,
        mode: TileMode = "auto",
        tile: int = MODEL_SIDE,
        overlap: float = 0.2,
        auto_side: int = 2 * MODEL_SIDE,
        near_cap: float = 0.9,
        query_cap: int | None = None,
        on_report: Callable[[SegmentReport], None] | None = None,
    ) -> None:
        try:
            self.options = TilingOptions(mode=mode, tile=tile, overlap=overlap, auto_side=auto_side, near_cap=near_cap)
        except ValidationError as exc:
            raise ConfigError(f"invalid tiling options: {validation_message(exc)}") from None
        self.segmenter = segmenter
        self._query_cap = query_cap
        self.on_report = on_report
        self._local = threading.local()

    @property
    def query_cap(self) -> int | None:
        """Object queries per pass of the wrapped segmenter (None when unknown)."""
        if self._query_cap is not None:
            return self._query_cap
        cap = getattr(self.segmenter, "query_cap", None)
        return int(cap) if isinstance(cap, int) else None

    @property
    def last_report(self) -> SegmentReport | None:
        """The report of this thread's latest ``segment`` call (None before the first)."""
        return getattr(self._local, "report", None)

    @property
    def loaded(self) -> bool:
        return bool(getattr(self.segmenter, "loaded", True))

    def load(self) -> TiledSegmenter:
        """Load the wrapped segmenter (if it loads); returns self."""
        load = getattr(self.segmenter, "load", None)
        if callable(load):
            load()
        return self

    def with_mode(self, mode: TileMode) -> TiledSegmenter:
        """The same segmenter and options with another mode."""
        options = self.options.model_dump() | {"mode": mode}
        return TiledSegmenter(self.segmenter, query_cap=self._query_cap, on_report=self.on_report, **options)

    def segment(
        self, image: Image.Image, prompts: Sequence[Prompt], thresholds: Thresholds | None = None
    ) -> list[list[Instance]]:
        """See ``Segmenter.segment``; the call's report is then ``last_report``."""
        return self.segment_with_report(image, prompts, thresholds)[0]

    def segment_with_report(
        self, image: Image.Image, prompts: Sequence[Prompt], thresholds: Thresholds | None = None
    ) -> tuple[list[list[Instance]], SegmentReport]:
        """``segment``'s instances, and the ``SegmentReport`` of the call."""
        image = check_pil_image(image)
        prompts, thresholds = list(prompts), thresholds or Thresholds()
        run = _Run(self, image, prompts, thresholds)
        results, report = run.execute()
        self._local.report = report
        if self.on_report is not None:
            self.on_report(report)
        return results, report


class _Run:
    """One ``segment_with_report`` call: which prompts go untiled, which tiled, and what came of each."""

    def __init__(self, owner: TiledSegmenter, image: Image.Image, prompts: list[Prompt], thresholds: Thresholds):
        self.segmenter, self.options, self.cap = owner.segmenter, owner.options, owner.query_cap
        self.image, self.prompts, self.thresholds = image, prompts, thresholds
        self.plan = plan_tiles(image.width, image.height, self.options.tile, self.options.overlap)
        self.results: list[list[Instance]] = [[] for _ in prompts]
        self.largest = [0] * len(prompts)
        self.untiled: dict[int, int] = {}

    def execute(self) -> tuple[list[list[Instance]], SegmentReport]:
        tileable = [i for i, p in enumerate(self.prompts) if not p.boxes] if len(self.plan) > 1 else []
        large = max(self.image.size) > self.options.auto_side
        mode = self.options.mode
        tiled = tileable if mode == "always" or (mode == "auto" and large) else []
        first = [i for i in range(len(self.prompts)) if i not in tiled]
        self._untiled(first)
        if mode == "auto":
            again = [i for i in first if i in tileable and _near(self.largest[i], self.cap, self.options)]
            self.untiled = {i: len(self.results[i]) for i in again}
            tiled = tiled + again
        if tiled:
            self._tiled(tiled)
        rows = [
            _row(p, len(self.results[i]), i in tiled, self.largest[i], self.cap, self.options, self.untiled.get(i))
            for i, p in enumerate(self.prompts)
        ]
        report = _report(self.image, self.options, len(self.plan) if tiled else 0, self.cap, rows)
        return number_instances(self.results), report

    def _untiled(self, which: list[int]) -> None:
        if not which:
            return
        found = self.segmenter.segment(self.image, [self.prompts[i] for i in which], self.thresholds)
        _check_lengths(found, which)
        for i, instances in zip(which, found, strict=True):
            self.results[i], self.largest[i] = list(instances), len(instances)

    def _tiled(self, which: list[int]) -> None:
        size = (self.image.height, self.image.width)
        per_tile: list[list[list[Instance]]] = []  # tile -> prompt -> instances in full-image coordinates
        for tile in self.plan:
            found = self.segmenter.segment(_crop(self.image, tile), [self.prompts[i] for i in which], self.thresholds)
            _check_lengths(found, which)
            per_tile.append([place_instances(instances, tile, size) for instances in found])
        for k, i in enumerate(which):
            pieces = [tile_found[k] for tile_found in per_tile]
            merged = merge_tiles(pieces, self.plan)
            if self.thresholds.nms_iom is not None:
                merged = renumber(nms(merged, self.thresholds.nms_iom, metric="iom"))
            self.results[i], self.largest[i] = merged, max(len(p) for p in pieces)


def _crop(image: Image.Image, tile: Tile) -> Image.Image:
    if tile.box == (0, 0, image.width, image.height):
        return image
    return image.crop(tile.box)


def _check_lengths(found: Sequence[Sequence[Instance]], which: list[int]) -> None:
    if len(found) != len(which):
        raise RuntimeError(f"the segmenter returned {len(found)} result lists for {len(which)} prompts")


def _near(count: int, cap: int | None, options: TilingOptions) -> bool:
    return cap is not None and cap > 0 and count >= math.ceil(options.near_cap * cap)


def _row(
    prompt: Prompt,
    count: int,
    tiled: bool,
    largest: int,
    cap: int | None,
    options: TilingOptions,
    untiled_count: int | None = None,
) -> PromptTiling:
    return PromptTiling(
        phrase=prompt.label,
        count=count,
        tiled=tiled,
        near_cap=_near(largest, cap, options),
        largest_pass=largest,
        untiled_count=untiled_count,
    )


def _report(
    image: Image.Image, options: TilingOptions, tiles: int, cap: int | None, rows: list[PromptTiling]
) -> SegmentReport:
    return SegmentReport(
        image_size=(image.height, image.width),
        mode=options.mode,
        tile=options.tile,
        overlap=options.overlap,
        tiles=tiles,
        query_cap=cap,
        prompts=rows,
    )
