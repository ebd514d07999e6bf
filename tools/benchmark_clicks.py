"""Measure whether, and what, SAM 3's click tracker can share with the text engine (tiny random checkpoints).

    python tools/benchmark_clicks.py [--sizes tiny mid] [--repeats 5] [--threads N]

For each size it writes a random full checkpoint (detector + tracker, ``make_tiny_checkpoint(tracker=True)``,
the layout of ``facebook/sam3``) and prints:

* architecture: are the backbone weights the tracker loads the detector's (bit for bit)? do the two necks
  differ (max |detector FPN - tracker FPN| on one image)? so which cache can be shared;
* correctness: max |embeddings from the text engine's cached ViT output - the tracker's own
  ``get_image_embeddings``|, and whether the clicked masks are identical;
* cost (median ms): the ViT backbone, the tracker's neck on a cached ViT output, its whole image encoder,
  one click decoded on cached embeddings; and a session of one text prompt + 3 clicks on a new image, with the
  backbone shared vs the tracker running its own (with the number of ViT runs);
* memory per cached image: the text engine's FPN features, the ViT output it now keeps, the tracker's embeddings.

Weights are random: speed and equality, not quality, are measured. "mid" has the real input geometry
(1008x1008, 72x72 tokens) with narrow towers (see ``sam3_agent.engine.tiny``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def median_ms(run: Callable[[], object], repeats: int) -> float:
    spent = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        spent.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(spent)


def images(side: int, n: int) -> list:
    from PIL import Image

    rng = np.random.default_rng(side)
    return [Image.fromarray(rng.integers(0, 256, (side * 3 // 4, side, 3), dtype=np.uint8)) for _ in range(n)]


def nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def architecture(engine, clicks, image) -> None:
    import torch

    from sam3_agent.engine.clicks import embeddings_from_trunk

    tracker = clicks.model
    ours, theirs = tracker.vision_encoder.backbone.state_dict(), engine.model.vision_encoder.backbone.state_dict()
    same = ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    with torch.inference_mode():
        trunk = engine.vision_trunk(image)
        side = tracker.prompt_encoder.image_embedding_size
        spatial = trunk.reshape(1, *side, -1).permute(0, 3, 1, 2)
        tracker_fpn, _ = tracker.vision_encoder.neck(spatial)
        detector_fpn = engine.model.vision_encoder.neck(spatial)[0]
        pixels = clicks.processor.image_processor(images=image, return_tensors="pt")["pixel_values"]
        own = tracker.get_image_embeddings(pixels)
        shared = embeddings_from_trunk(tracker, trunk)
    neck_gap = float((tracker_fpn[2] - detector_fpn[2]).abs().max())
    emb_gap = max(float((a - b).abs().max()) for a, b in zip(own, shared, strict=True))
    print(f"  backbone weights the tracker loads == the detector's, bit for bit: {same}")
    print(f"  max |tracker neck - detector neck| (1x level, same ViT output): {neck_gap:.3g}  -> FPN caches differ")
    print(f"  max |embeddings from the cached ViT output - tracker's own get_image_embeddings|: {emb_gap:.3g}")


def costs(engine, own, image, repeats: int) -> None:
    import torch

    from sam3_agent.engine.clicks import embeddings_from_trunk

    pixels = own.processor.image_processor(images=image, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        trunk = engine.model.vision_encoder.backbone(pixels).last_hidden_state
        backbone = median_ms(lambda: engine.model.vision_encoder.backbone(pixels), repeats)
        neck = median_ms(lambda: embeddings_from_trunk(own.model, trunk), repeats)
        encoder = median_ms(lambda: own.model.get_image_embeddings(pixels), repeats)
    own.segment_at(image, [(10, 10)])
    click = median_ms(lambda: own.segment_at(image, [(10, 10), (30, 20)], [1, 0]), repeats)
    print(f"  ViT backbone {backbone:.1f} ms | tracker neck on a cached ViT output {neck:.2f} ms | tracker image")
    print(f"  encoder (backbone + neck) {encoder:.1f} ms | one click on cached embeddings {click:.2f} ms")


def sessions(engine, shared, own, side: int, repeats: int) -> tuple[float, float]:
    """Median ms of one text prompt + 3 clicks on a new image, clicks sharing the backbone vs not; the two
    alternate, so that machine load hits both alike. Also checks the ViT runs: 1 per session vs 2."""
    from sam3_agent.schema import Prompt

    times: dict[str, list[float]] = {"shared": [], "own": []}
    for k, image in enumerate(images(side + 1, 2 * repeats)):
        name, clicks = ("shared", shared) if k % 2 == 0 else ("own", own)
        runs = engine.backbone_calls + clicks.backbone_calls
        start = time.perf_counter()
        engine.segment(image, [Prompt(text="cup")])
        for point in ((10, 10), (40, 30), (70, 50)):
            clicks.segment_at(image, [point])
        times[name].append(1000.0 * (time.perf_counter() - start))
        assert engine.backbone_calls + clicks.backbone_calls - runs == (1 if name == "shared" else 2)
    return statistics.median(times["shared"]), statistics.median(times["own"])


def memory(engine, clicks, image) -> None:
    engine.encode_image(image)
    features = engine._cache.get(engine.encode_image(image))
    fpn = nbytes(features.vision.fpn_hidden_states) + nbytes(features.vision.fpn_position_encoding)
    trunk = nbytes([features.vision.last_hidden_state])
    clicks.encode_image(image)
    tracker = nbytes(clicks._cache.get(clicks.encode_image(image)))
    print(f"  memory per cached image: text engine FPN {_size(fpn)} + ViT output {_size(trunk)} "
          f"(+{100 * trunk / fpn:.0f}%); tracker embeddings {_size(tracker)}")  # fmt: skip


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB"


def run(size: str, repeats: int) -> None:
    from transformers.utils import logging

    from sam3_agent.engine.clicks import ClickEngine
    from sam3_agent.engine.tiny import make_tiny_checkpoint
    from sam3_agent.engine.transformers_engine import Sam3Engine
    from sam3_agent.schema import Prompt

    logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = make_tiny_checkpoint(Path(tmp) / size, size=size, tracker=True)
        engine = Sam3Engine(checkpoint, device="cpu", dtype="float32", cache_size=2).load()
        own = ClickEngine(checkpoint, device="cpu", dtype="float32", cache_size=2).load()
        shared = ClickEngine.sharing(engine, cache_size=2).load()
        side = engine.model.config.vision_config.backbone_config.image_size
        print(f"{size}: {side}x{side} input, shared backbone: {shared.shares_backbone}")
        image = images(side, 1)[0]
        architecture(engine, own, image)
        same_mask = own.segment_at(image, [(20, 20)]) == shared.segment_at(image, [(20, 20)])
        print(f"  the clicked mask is identical with and without sharing: {same_mask}")
        costs(engine, own, image, repeats)
        engine.segment(image, [Prompt(text="warm up")])
        with_share, alone = sessions(engine, shared, own, side, repeats)
        print(f"  text prompt + 3 clicks on a new image: backbone shared {with_share:.0f} ms (1 ViT run), "
              f"tracker's own {alone:.0f} ms (2 ViT runs): {alone / with_share:.2f}x")  # fmt: skip
        memory(engine, shared, image)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=["tiny", "mid"], default=["tiny", "mid"])
    parser.add_argument("--repeats", type=int, default=5, help="repetitions per timing (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    for size in args.sizes:
        run(size, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
