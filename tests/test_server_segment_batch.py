"""Sam3Engine.segment_batch: prompts of several images in one forward pass, equal to per-image ``segment``."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sam3_agent.engine.transformers_engine import Sam3Engine
from sam3_agent.errors import ImageError, PromptError
from sam3_agent.schema import ExemplarBox, Instance, Prompt, Thresholds

KEEP_ALL = Thresholds(score=0.0)


def noise_image(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def boxed(*xyxy: tuple[float, float, float, float], phrase: str | None = None, negative_last: bool = False) -> Prompt:
    exemplars = [ExemplarBox(box=b, positive=not (negative_last and i == len(xyxy) - 1)) for i, b in enumerate(xyxy)]
    return Prompt(text=phrase, boxes=tuple(exemplars))


A, B, C = noise_image(160, 120, 0), noise_image(200, 90, 1), noise_image(160, 120, 2)
REQUESTS: list[tuple[Image.Image, list[Prompt], Thresholds | None]] = [
    (A, [Prompt(text="cup"), boxed((10, 10, 60, 50)), Prompt(text="red hat")], KEEP_ALL),
    (B, [Prompt(text="laptop"), boxed((20, 10, 90, 80), (0, 0, 15, 15), phrase="person", negative_last=True)], None),
    (A.copy(), [Prompt(text="person")], Thresholds(score=0.1, mask=0.7)),
    (C, [boxed((30, 30, 100, 100)), Prompt(text="cup")], KEEP_ALL),
]


def assert_same(got: list[list[Instance]], want: list[list[Instance]]) -> None:
    assert [len(g) for g in got] == [len(w) for w in want]
    for g, w in zip(got, want, strict=True):
        assert [i.phrase for i in g] == [i.phrase for i in w]
        np.testing.assert_allclose([i.score for i in g], [i.score for i in w], atol=1e-5)
        np.testing.assert_allclose([i.presence_score for i in g], [i.presence_score for i in w], atol=1e-5)
        # a mask pixel sitting exactly on the threshold may flip with float summation order
        assert sum(i.rle == j.rle for i, j in zip(g, w, strict=True)) >= len(w) - 1


def count_passes(engine: Sam3Engine, monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[int]]:
    """Record real backbone runs and the batch size of every prompt forward pass."""
    backbone, passes = [0], []
    vision, forward = engine.model.get_vision_features, engine.model.forward

    def counted_vision(*args, **kwargs):
        backbone[0] += 1
        return vision(*args, **kwargs)

    def counted_forward(*args, **kwargs):
        passes.append(int(kwargs["input_ids"].shape[0]))
        return forward(*args, **kwargs)

    monkeypatch.setattr(engine.model, "get_vision_features", counted_vision)
    monkeypatch.setattr(engine.model, "forward", counted_forward)
    return backbone, passes


def test_segment_batch_equals_per_image_segment(engine: Sam3Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    want = [engine.segment(image, prompts, thresholds) for image, prompts, thresholds in REQUESTS]
    assert any(len(found) for per_prompt in want for found in per_prompt)  # the comparison is not vacuous
    engine.clear_cache(reset_counters=True)
    backbone, passes = count_passes(engine, monkeypatch)
    got = engine.segment_batch(REQUESTS)
    assert len(got) == len(REQUESTS)
    for g, w in zip(got, want, strict=True):
        assert_same(g, w)
    # three distinct images (A twice): three backbone runs; text prompts of all images in ONE pass,
    # exemplar prompts in one pass per image size (A and C are both 160x120, B is 200x90)
    assert backbone[0] == engine.backbone_calls == 3
    assert sorted(passes) == [1, 2, 5]
    for (image, _, _), per_prompt in zip(REQUESTS, got, strict=True):
        assert all(inst.image_size == (image.height, image.width) for found in per_prompt for inst in found)


def test_cached_images_skip_the_backbone(engine: Sam3Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    engine.encode_image(A)
    engine.encode_image(B)
    backbone, passes = count_passes(engine, monkeypatch)
    engine.segment_batch([(A, [Prompt(text="cup")], None), (B, [Prompt(text="cup")], None)])
    assert backbone[0] == 0 and passes == [2]
    assert engine.cache_hits >= 2


def test_max_batch_chunks_and_same_results(engine: Sam3Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = engine.segment_batch(REQUESTS)
    backbone, passes = count_passes(engine, monkeypatch)
    engine.max_batch = 2
    try:
        chunked = engine.segment_batch(REQUESTS)
    finally:
        engine.max_batch = 16
    assert backbone[0] == 0  # all three images were cached by the first call
    assert sorted(passes) == [1, 1, 2, 2, 2]
    for c, w in zip(chunked, whole, strict=True):
        assert_same(c, w)


def test_one_image_many_requests_shares_its_features(engine: Sam3Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    backbone, passes = count_passes(engine, monkeypatch)
    got = engine.segment_batch([(A, [Prompt(text="cup")], KEEP_ALL), (A.copy(), [Prompt(text="hat")], KEEP_ALL)])
    assert backbone[0] == 1 and passes == [2]
    assert_same(got[0], engine.segment(A, [Prompt(text="cup")], KEEP_ALL))


def test_empty_inputs(engine: Sam3Engine) -> None:
    assert engine.segment_batch([]) == []
    assert engine.segment_batch([(A, [], None)]) == [[]]


def test_a_bad_request_fails_before_anything_runs(engine: Sam3Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    backbone, passes = count_passes(engine, monkeypatch)
    outside = boxed((300, 10, 320, 40))
    with pytest.raises(PromptError, match="lies outside the 200x90 image"):
        engine.segment_batch([(A, [Prompt(text="cup")], None), (B, [outside], None)])
    with pytest.raises(ImageError, match=r"expected a PIL\.Image\.Image"):
        engine.segment_batch([(A, [Prompt(text="cup")], None), ("b.png", [Prompt(text="cup")], None)])  # type: ignore[list-item]
    assert backbone[0] == 0 and passes == []


def test_known_digests_skip_hashing_and_key_the_cache(engine: Sam3Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from sam3_agent.engine import transformers_engine
    from sam3_agent.engine.feature_cache import image_digest

    expected = engine.segment_batch([(A, [Prompt(text="cup")], KEEP_ALL), (B, [Prompt(text="hat")], KEEP_ALL)])
    digests = [image_digest(A), image_digest(B)]
    hashed: list[object] = []
    monkeypatch.setattr(transformers_engine, "image_digest", lambda image: hashed.append(image) or "unused")
    backbone, passes = count_passes(engine, monkeypatch)
    got = engine.segment_batch(
        [(A, [Prompt(text="cup")], KEEP_ALL), (B, [Prompt(text="hat")], KEEP_ALL)], digests=digests
    )
    assert hashed == [] and backbone[0] == 0 and passes == [2]  # the cached features were found by digest
    for g, e in zip(got, expected, strict=True):
        assert_same(g, e)
    with pytest.raises(ValueError, match="one digest per request"):
        engine.segment_batch([(A, [Prompt(text="cup")], None)], digests=[])
