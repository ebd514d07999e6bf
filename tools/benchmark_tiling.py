"""Benchmark tiled segmentation: its cost against one untiled pass, and how it grows with the image size.

    python tools/benchmark_tiling.py [--sizes 1008 2016 4032] [--repeats 3] [--checkpoint-size tiny|mid]

Two segmenters, on square crowds of one small object per 100x100 px (about 100 per 1008x1008):

  (a) the fake SAM 3 of the tests (``CappedSceneSegmenter``, a query cap of 200, exact masks read from the
      pixels): what tiling adds around the segmenter (crops, placing masks, stitching, de-duplication), and
      the counts, untiled against tiled against the truth;
  (b) ``Sam3Engine`` on a randomly initialised checkpoint (``make_tiny_checkpoint``; "tiny" by default, "mid"
      has the real 1008x1008 input geometry): cold (every tile's backbone runs) and warm (another phrase on
      the cached features of every tile; the engine's cache is sized to hold them all).

Tiles are 1008 px with 0.2 overlap (the defaults). Ratios are tiled / untiled wall time, medians of the repeats.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from PIL import Image

from sam3_agent.engine.protocol import Segmenter
from sam3_agent.engine.tile_plan import plan_tiles
from sam3_agent.engine.tiling import MODEL_SIDE, TiledSegmenter
from sam3_agent.schema import Prompt
from sam3_agent.testing.crowd import CappedSceneSegmenter, crowd_image, crowd_scene
from sam3_agent.testing.scene import Scene

OVERLAP = 0.2
CAP = 200


def median_seconds(run: Callable[[], object], repeats: int, before: Callable[[], None] = lambda: None) -> float:
    """Median wall time of ``run()`` over ``repeats`` calls, ``before()`` run untimed ahead of each."""
    spent = []
    for _ in range(repeats):
        before()
        start = time.perf_counter()
        run()
        spent.append(time.perf_counter() - start)
    return statistics.median(spent)


def timed(
    segmenter: Segmenter, image: Image.Image, phrase: str, repeats: int, before: Callable[[], None] = lambda: None
) -> float:
    """Median seconds of ``segmenter.segment(image, [phrase])``."""
    return median_seconds(lambda: segmenter.segment(image, [Prompt(text=phrase)]), repeats, before)


def crowd(size: int, seed: int = 0) -> tuple[Scene, Image.Image]:
    """A size x size crowd of ``size**2 / 100**2`` people (10-24 px each), and its image."""
    scene = crowd_scene(size, size, max(1, size * size // 10_000), seed=seed)
    return scene, crowd_image(scene)


def modes(segmenter: Segmenter) -> tuple[TiledSegmenter, TiledSegmenter]:
    """The segmenter untiled and always tiled (1008 px tiles, overlap 0.2)."""
    never, always = (TiledSegmenter(segmenter, mode=mode, overlap=OVERLAP) for mode in ("never", "always"))
    return never, always


def fake_rows(sizes: list[int], repeats: int) -> None:
    print("(a) fake SAM 3 with a query cap of 200 (exact masks from the pixels)")
    print(
        f"  {'image':>11} {'tiles':>5} {'objects':>7} {'untiled':>7} {'tiled':>6} {'untiled s':>9} {'tiled s':>8} ratio"
    )
    for size in sizes:
        scene, image = crowd(size)
        never, always = modes(CappedSceneSegmenter(scene, query_cap=CAP))
        (untiled,) = never.segment(image, [Prompt(text="person")])  # also the warm-up
        (tiled,) = always.segment(image, [Prompt(text="person")])
        seconds = [timed(s, image, "person", repeats) for s in (never, always)]
        tiles = len(plan_tiles(size, size, MODEL_SIDE, OVERLAP))
        print(
            f"  {size:>5}x{size:<5} {tiles:>5} {len(scene.objects):>7} {len(untiled):>7} {len(tiled):>6} "
            f"{seconds[0]:>9.3f} {seconds[1]:>8.3f} {seconds[1] / seconds[0]:5.1f}x",
            flush=True,
        )


def engine_rows(sizes: list[int], repeats: int, checkpoint_size: Literal["tiny", "mid"]) -> None:
    from sam3_agent.engine.tiny import make_tiny_checkpoint
    from sam3_agent.engine.transformers_engine import Sam3Engine

    folder = make_tiny_checkpoint(Path(tempfile.mkdtemp(prefix="sam3-bench-")), size=checkpoint_size, seed=0)
    engine = Sam3Engine(folder, device="cpu", dtype="float32", cache_size=64).load()
    side = engine.processor.image_processor.size
    print(f"(b) Sam3Engine, {checkpoint_size} random checkpoint, {side.width}x{side.height} input, CPU")
    print(f"    query cap {engine.query_cap}; cold: every backbone runs; warm: another phrase on cached features")
    columns = f"{'cold untiled s':>14} {'tiled s':>8} ratio {'warm untiled s':>14} {'tiled s':>8} ratio"
    print(f"  {'image':>11} {'tiles':>5} {columns}")
    engine.segment(crowd(MODEL_SIDE)[1], [Prompt(text="person")])  # first-call costs out of the way
    for size in sizes:
        _, image = crowd(size)
        never, always = modes(engine)
        cold = [timed(s, image, "person", repeats, engine.clear_cache) for s in (never, always)]
        for s in (never, always):
            s.segment(image, [Prompt(text="person")])  # every tile's features cached
        warm = [timed(s, image, "red hat", repeats) for s in (never, always)]
        tiles = len(plan_tiles(size, size, MODEL_SIDE, OVERLAP))
        print(
            f"  {size:>5}x{size:<5} {tiles:>5} {cold[0]:>14.3f} {cold[1]:>8.3f} {cold[1] / cold[0]:5.1f}x"
            f" {warm[0]:>14.3f} {warm[1]:>8.3f} {warm[1] / warm[0]:5.1f}x",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1008, 2016, 4032])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint-size", choices=["tiny", "mid"], default="tiny")
    parser.add_argument("--skip-engine", action="store_true", help="only the fake segmenter")
    args = parser.parse_args()
    print(f"tiles of {MODEL_SIDE} px, overlap {OVERLAP}; medians of {args.repeats} runs", flush=True)
    fake_rows(args.sizes, args.repeats)
    if not args.skip_engine:
        engine_rows(args.sizes, args.repeats, args.checkpoint_size)


if __name__ == "__main__":
    main()
