"""Engine building blocks without a model: image digests, the LRU feature cache, mask post-processing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sam3_agent.engine.feature_cache import FeatureCache, image_digest
from sam3_agent.engine.postprocess import instances_from_logits
from sam3_agent.masks import mask_to_box, rle_counts, rle_decode, rle_encode
from sam3_agent.masks import runs as mask_runs
from sam3_agent.masks.edges import encode_masks, logit
from sam3_agent.schema import Thresholds

# -- digests and cache -------------------------------------------------------------------------------------


def test_image_digest_is_content_based() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    assert image_digest(image) == image_digest(Image.fromarray(pixels.copy())) == image_digest(image.copy())
    changed = pixels.copy()
    changed[5, 5, 0] ^= 1
    assert image_digest(Image.fromarray(changed)) != image_digest(image)
    assert image_digest(image.convert("RGBA")) != image_digest(image)  # same look, other mode
    flat = np.zeros((30, 40, 3), np.uint8)
    assert image_digest(Image.fromarray(flat)) != image_digest(Image.fromarray(flat.reshape(40, 30, 3)))
    assert len(image_digest(image)) == 32


def test_feature_cache_lru_and_counters() -> None:
    cache: FeatureCache[int] = FeatureCache(capacity=2)
    assert cache.get("a") is None
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)  # evicts b
    assert cache.keys() == ["a", "c"] and "b" not in cache and len(cache) == 2
    assert (cache.hits, cache.misses) == (1, 1)
    cache.clear()
    assert len(cache) == 0 and cache.hits == 1
    cache.clear(reset_counters=True)
    assert (cache.hits, cache.misses) == (0, 0)
    disabled: FeatureCache[int] = FeatureCache(capacity=0)
    disabled.put("a", 1)
    assert disabled.get("a") is None and len(disabled) == 0
    with pytest.raises(ValueError, match="capacity"):
        FeatureCache(capacity=-1)


# -- mask post-processing -------------------------------------------------------------------------------


def blob_logits(count: int, side: int = 72, seed: int = 0) -> np.ndarray:
    """(count, side, side) logits: ellipses of varied size, plus hard cases (full, edge-touching, noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    logits = np.empty((count, side, side), np.float32)
    for i in range(count):
        cy, cx = rng.uniform(0, side, 2)
        ry, rx = np.exp(rng.uniform(np.log(0.7), np.log(side / 3), 2))
        logits[i] = np.clip(6 * (1 - ((yy - cy) / ry) ** 2 - ((xx - cx) / rx) ** 2), -12, 12)
    logits[0] = 4.0  # the whole image
    logits[1] = np.where(xx < 5, 3.0, -3.0)  # full-height columns: runs join across columns
    logits[2] = rng.normal(0, 3, (side, side))  # ragged noise
    logits[3] = np.where(yy == side - 1, 5.0, -5.0)  # bottom row only
    logits[4] = -5.0  # empty
    return logits


def reference_masks(logits: np.ndarray, size: tuple[int, int], mask_threshold: float) -> np.ndarray:
    upsampled = F.interpolate(torch.from_numpy(logits)[None], size=size, mode="bilinear", align_corners=False)[0]
    return (upsampled >= logit(mask_threshold)).numpy()


@pytest.mark.parametrize("size", [(300, 300), (120, 200), (250, 83), (40, 30), (72, 72)])
@pytest.mark.parametrize("mask_threshold", [0.5, 0.2, 0.9])
def test_encoded_masks_equal_full_upsampling(size: tuple[int, int], mask_threshold: float) -> None:
    logits = blob_logits(24)
    expected = reference_masks(logits, size, mask_threshold)
    encoded = encode_masks(logits, size, mask_threshold)
    for i, (enc, ref) in enumerate(zip(encoded, expected, strict=True)):
        if not ref.any():
            assert enc is None, i
            continue
        assert enc is not None, i
        mask = rle_decode(enc.rle)
        # Only pixels within float rounding of the threshold may differ (the noise mask has a few).
        assert np.count_nonzero(mask != ref) <= 3, i
        assert enc.rle == rle_encode(mask)
        assert enc.box == mask_to_box(mask) and enc.area == int(mask.sum())
        assert enc.runs.tolist() == rle_counts(enc.rle).tolist()


@pytest.mark.parametrize("src,dst", [(288, 1008), (72, 83), (72, 30), (5, 5), (1, 7)])
def test_first_reaching_equals_searchsorted(src: int, dst: int) -> None:
    from sam3_agent.masks.edges import _axis, first_reaching

    axis = _axis(src, dst)
    rng = np.random.default_rng(dst)
    exact = rng.choice(axis.pos, 300)  # on the grid, where rounding decides
    t = np.concatenate(
        [
            rng.uniform(-2, src + 1, 300),
            exact,
            np.nextafter(exact, np.inf),
            np.nextafter(exact, -np.inf),
            [0.0, -0.0, -1e-300, 1e-300, src - 1.0, 1e9, -1e9],
        ]
    )
    for rising, side in ((True, "left"), (False, "right")):
        found = [first_reaching(axis.pos, axis.scale, float(v), rising) for v in t]
        np.testing.assert_array_equal(found, np.searchsorted(axis.pos, t, side=side))


@pytest.mark.parametrize("n_cores", [1, 2])
def test_masks_split_over_two_threads_and_grown_buffers_equal_one_by_one(
    monkeypatch: pytest.MonkeyPatch, n_cores: int
) -> None:
    from sam3_agent import parallel
    from sam3_agent.masks import edges

    monkeypatch.setattr(parallel, "cores", lambda: n_cores)
    monkeypatch.setattr(edges, "_EDGE_ROOM", 5000)
    rng = np.random.default_rng(5)
    # Ragged noise: every mask's window is the whole image, with many switches per column, so the
    # first edge buffers overflow and grow, in pieces and one by one.
    logits = np.concatenate([blob_logits(20), rng.normal(0, 3, (12, 72, 72)).astype(np.float32)])
    together = encode_masks(logits, (300, 200), 0.5)
    assert together == [encode_mask(m, (300, 200), 0.5) for m in logits]
    assert max(len(enc.runs) for enc in together if enc is not None) > 5000
    assert encode_masks(logits, (300, 200), 0.5, indices=[31, 4, 0]) == [together[31], None, together[0]]
    assert encode_masks(logits, (300, 200), 0.5, indices=[]) == []


def encode_mask(logits: np.ndarray, size: tuple[int, int], threshold: float):
    return encode_masks(logits[None], size, threshold)[0]


def test_encode_mask_edge_thresholds() -> None:
    logits = blob_logits(6)
    everything = encode_mask(logits[5], (50, 60), 0.0)  # p >= 0 holds everywhere
    assert everything is not None and everything.area == 3000 and everything.box == (0.0, 0.0, 60.0, 50.0)
    assert encode_mask(logits[0], (50, 60), 1.0) is None  # p >= 1 never holds
    assert encode_masks(logits, (50, 60), 0.5, indices=[4, 0]) == [None, encode_mask(logits[0], (50, 60), 0.5)]


def test_instances_from_logits_sorting_thresholds_and_nms(monkeypatch: pytest.MonkeyPatch) -> None:
    logits = blob_logits(12)
    scores = np.linspace(0.1, 0.95, 12).astype(np.float32)
    instances = instances_from_logits(logits, scores, (144, 100), Thresholds(score=0.3), "cup", presence_score=0.97)
    kept = [i for i in range(12) if scores[i] >= 0.3 and i != 4]  # 4 is empty: dropped
    assert [inst.score for inst in instances] == pytest.approx(sorted(scores[kept], reverse=True))
    assert [inst.id for inst in instances] == list(range(1, len(kept) + 1))
    assert all(inst.phrase == "cup" and inst.presence_score == pytest.approx(0.97) for inst in instances)
    assert all(inst.rle.size == (144, 100) for inst in instances)
    # The runs, box and area come along (remembered), so that overlays need not parse the strings again.
    with monkeypatch.context() as patched:
        patched.setattr(mask_runs, "_run_lengths", lambda rles: pytest.fail("an engine RLE was parsed again"))
        data = [inst.mask_data for inst in instances]
    for inst, d in zip(instances, data, strict=True):
        assert d.runs.tolist() == rle_counts(inst.rle).tolist()
        assert (d.box, d.area) == (tuple(int(v) for v in inst.box), inst.area)
        assert (d.box, d.area) == (tuple(int(v) for v in mask_to_box(inst.mask)), int(inst.mask.sum()))
    deduped = instances_from_logits(logits, scores, (144, 100), Thresholds(score=0.3, nms_iom=0.5), "cup")
    # Mask 0 covers the whole image: everything scored below it is nested in it and goes.
    assert len(deduped) < len(instances) and deduped[0].score == instances[0].score
    with pytest.raises(ValueError, match="expected"):
        instances_from_logits(logits, scores[:3], (10, 10), Thresholds(), "cup")


def test_coco_strings_match_pycocotools_for_small_huge_and_falling_counts() -> None:
    from pycocotools import mask as coco_mask

    from sam3_agent.masks.edges import coco_chars

    rng = np.random.default_rng(3)
    height, width = 4000, 3000  # runs up to 12 M pixels: values of five 5-bit groups
    all_counts, strings = [], []
    for scale in (3, 40, 5_000, 2_000_000):
        runs = rng.integers(0, scale, 11).astype(np.int64)
        runs[0] = 0 if scale == 3 else runs[0]  # a mask starting with foreground
        runs = np.append(runs, height * width - runs.sum())
        all_counts.append(runs)
        encoded = coco_mask.frPyObjects({"size": [height, width], "counts": runs.tolist()}, height, width)
        strings.append(encoded["counts"].decode("ascii"))
    # Masks of one, two and three runs (empty, full, one block) between them: nothing there is a delta.
    for position, runs in ((1, [height * width]), (3, [0, height * width]), (4, [5, 7, height * width - 12])):
        all_counts.insert(position, np.array(runs, np.int64))
        encoded = coco_mask.frPyObjects({"size": [height, width], "counts": runs}, height, width)
        strings.insert(position, encoded["counts"].decode("ascii"))
    starts = np.concatenate([[0], np.cumsum([len(c) for c in all_counts])])
    chars, bounds = coco_chars(np.concatenate(all_counts), starts)
    text = chars.tobytes().decode("ascii")
    assert [text[a:b] for a, b in itertools.pairwise(bounds.tolist())] == strings
