"""Sam3Engine on a tiny random SAM 3 checkpoint: caching, batching, prompts, thresholds, coordinates.

Random weights give random scores (around 0.25), so tests that need instances use low score thresholds.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam3_agent.engine.protocol import Segmenter
from sam3_agent.engine.transformers_engine import (
    VISUAL_PROMPT_TEXT,
    Sam3Engine,
    box_prompt_tensors,
    resolve_device,
    resolve_dtype,
)
from sam3_agent.errors import ConfigError, ImageError, PromptError
from sam3_agent.masks import mask_iom, mask_to_box
from sam3_agent.schema import ExemplarBox, Prompt, Thresholds

KEEP_ALL = Thresholds(score=0.0)


def noise_image(width: int = 160, height: int = 120, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def text(phrase: str) -> Prompt:
    return Prompt(text=phrase)


def boxes(*xyxy: tuple[float, float, float, float], negative: int = 0, phrase: str | None = None) -> Prompt:
    exemplars = [ExemplarBox(box=b, positive=i < len(xyxy) - negative) for i, b in enumerate(xyxy)]
    return Prompt(text=phrase, boxes=tuple(exemplars))


MIXED = [
    text("cup"),
    boxes((10, 10, 60, 50)),
    text("red hat"),
    boxes((20, 30, 90, 100), (0, 0, 15, 15), negative=1, phrase="person"),
    text("laptop"),
]


def count_backbone(engine: Sam3Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Wrap the model's get_vision_features to count real backbone runs independently of the engine."""
    calls = [0]
    original = engine.model.get_vision_features

    def counted(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(engine.model, "get_vision_features", counted)
    return calls


# -- loading --------------------------------------------------------------------------------------------


def test_loads_through_from_pretrained(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import Sam3Model, Sam3Processor

    seen: list[str] = []
    original = Sam3Model.from_pretrained.__func__

    def spy(cls, path, *args, **kwargs):
        seen.append(str(path))
        return original(cls, path, *args, **kwargs)

    monkeypatch.setattr(Sam3Model, "from_pretrained", classmethod(spy))
    engine = Sam3Engine(tiny_checkpoint, device="cpu")
    assert not engine.loaded  # lazy
    assert engine.load() is engine and engine.loaded
    assert seen == [str(tiny_checkpoint)]
    assert isinstance(engine.model, Sam3Model) and isinstance(engine.processor, Sam3Processor)
    assert not engine.model.training
    assert isinstance(engine, Segmenter)


def test_engine_reports_checkpoint_errors_on_first_use(tmp_path: Path) -> None:
    from sam3_agent.errors import CheckpointError

    engine = Sam3Engine(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="hf auth login"):
        engine.segment(noise_image(), [text("cup")])


def test_a_cuda_device_that_is_not_there_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA device is visible: use --device cpu"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ConfigError, match="'cuda:5' does not exist: 2 CUDA device"):
        resolve_device("cuda:5")


def test_device_and_dtype_resolution() -> None:
    cpu = torch.device("cpu")
    assert resolve_device("cpu") == cpu
    assert resolve_dtype(None, cpu) == torch.float32
    assert resolve_dtype(None, torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("bf16", cpu) == torch.bfloat16 and resolve_dtype(torch.float16, cpu) == torch.float16
    if not torch.cuda.is_available():
        assert resolve_device(None) == cpu
    with pytest.raises(ConfigError, match="dtype"):
        resolve_dtype("int3", cpu)
    with pytest.raises(ConfigError, match="device"):
        resolve_device("gpu-please")
    with pytest.raises(ConfigError, match="max_batch"):
        Sam3Engine("x", max_batch=0)
    with pytest.raises(ConfigError, match="cache_size"):
        Sam3Engine("x", cache_size=-1)


# -- backbone caching -------------------------------------------------------------------------------------


def test_backbone_runs_once_per_image(engine: Sam3Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_backbone(engine, monkeypatch)
    image = noise_image()
    digest = engine.encode_image(image)
    engine.segment(image, [text("cup"), text("laptop")], KEEP_ALL)
    engine.segment(image, [text("person")], KEEP_ALL)
    engine.segment(image, [boxes((10, 10, 50, 40), phrase="person")], KEEP_ALL)  # exemplar refinement
    engine.segment(image, [boxes((10, 10, 50, 40), (60, 60, 90, 90), negative=1)], KEEP_ALL)
    engine.segment(image.copy(), [text("cup")], KEEP_ALL)  # same pixels, another object
    assert engine.encode_image(image.copy()) == digest
    assert calls[0] == engine.backbone_calls == 1
    assert engine.cache_misses == 1 and engine.cache_hits == 6
    engine.segment(noise_image(seed=1), [text("cup")], KEEP_ALL)
    assert calls[0] == engine.backbone_calls == 2
    assert len(engine.cached_images) == 2


def test_lru_eviction_bound(tiny_checkpoint: Path) -> None:
    engine = Sam3Engine(tiny_checkpoint, device="cpu", cache_size=2)
    a, b, c = (noise_image(seed=s) for s in range(3))
    da, db, dc = (engine.encode_image(im) for im in (a, b, c))
    assert engine.cached_images == [db, dc] and engine.backbone_calls == 3
    engine.encode_image(b)  # hit: b becomes most recent
    assert engine.backbone_calls == 3 and engine.cached_images == [dc, db]
    engine.segment(a, [text("cup")])  # a was evicted: re-encoded, evicts c
    assert engine.backbone_calls == 4 and engine.cached_images == [db, da]


def test_cache_size_zero_reencodes_every_call(tiny_checkpoint: Path) -> None:
    engine = Sam3Engine(tiny_checkpoint, device="cpu", cache_size=0)
    image = noise_image()
    engine.segment(image, [text("cup"), text("laptop")])
    engine.segment(image, [text("cup")])
    assert engine.backbone_calls == 2 and engine.cached_images == []


# -- batching ---------------------------------------------------------------------------------------------


def test_batched_equals_one_by_one(engine: Sam3Engine) -> None:
    image = noise_image()
    batched = engine.predict(image, MIXED)
    single = [engine.predict(image, [p])[0] for p in MIXED]
    for b, s in zip(batched, single, strict=True):
        np.testing.assert_allclose(b.pred_logits, s.pred_logits, atol=1e-5)
        np.testing.assert_allclose(b.presence_logit, s.presence_logit, atol=1e-5)
        np.testing.assert_allclose(b.pred_boxes, s.pred_boxes, atol=1e-5)
        np.testing.assert_allclose(b.pred_masks, s.pred_masks, atol=1e-4)
    assert engine.backbone_calls == 1


def test_chunked_batches_equal_one_pass(engine: Sam3Engine) -> None:
    image = noise_image()
    whole = engine.segment(image, MIXED, KEEP_ALL)
    engine.max_batch = 2
    try:
        chunked = engine.segment(image, MIXED, KEEP_ALL)
    finally:
        engine.max_batch = 16
    for w, c in zip(whole, chunked, strict=True):
        assert [i.phrase for i in w] == [i.phrase for i in c]
        np.testing.assert_allclose([i.score for i in w], [i.score for i in c], atol=1e-5)
        assert sum(i.rle == j.rle for i, j in zip(w, c, strict=True)) >= len(w) - 1


def test_box_tensors_match_the_processor(engine: Sam3Engine) -> None:
    prompts = [boxes((10, 20, 110, 70)), boxes((0, 0, 40, 40), (30, 50, 160, 120), negative=1)]
    ours, labels = box_prompt_tensors(prompts, width=160, height=120)
    reference = engine.processor(
        text=[VISUAL_PROMPT_TEXT] * 2,
        input_boxes=[[list(b.box) for b in p.boxes] for p in prompts],
        input_boxes_labels=[[int(b.positive) for b in p.boxes] for p in prompts],
        original_sizes=[[120, 160]] * 2,
        return_tensors="pt",
    )
    assert torch.equal(labels, reference["input_boxes_labels"])
    assert labels.tolist() == [[1, -10], [1, 0]]
    valid = labels != -10  # padded slots are masked out by the model, whatever their coordinates
    torch.testing.assert_close(ours[valid], reference["input_boxes"][valid])


# -- prompts ----------------------------------------------------------------------------------------------


def test_text_prompt_matches_the_reference_pipeline(engine: Sam3Engine) -> None:
    """Processor + full model forward (backbone included) give the same outputs as the cached engine."""
    image = noise_image()
    inputs = engine.processor(images=image, text="red hat", return_tensors="pt")
    with torch.inference_mode():
        reference = engine.model(**inputs)
    ours = engine.predict(image, [text("red hat")])[0]
    np.testing.assert_allclose(ours.pred_logits, reference.pred_logits[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(ours.pred_masks, reference.pred_masks[0].numpy(), atol=1e-4)


def test_box_only_prompt_matches_the_reference_pipeline(engine: Sam3Engine) -> None:
    image = noise_image()
    box = (20.0, 15.0, 90.0, 80.0)
    inputs = engine.processor(images=image, input_boxes=[[list(box)]], input_boxes_labels=[[1]], return_tensors="pt")
    with torch.inference_mode():
        reference = engine.model(**inputs)
    ours = engine.predict(image, [boxes(box)])[0]
    np.testing.assert_allclose(ours.pred_logits, reference.pred_logits[0].numpy(), atol=1e-5)


def test_text_boxes_and_both(engine: Sam3Engine) -> None:
    image = noise_image()
    prompts = [text("person"), boxes((10, 10, 60, 50)), boxes((10, 10, 60, 50), phrase="person")]
    results = engine.segment(image, prompts, KEEP_ALL)
    assert [r[0].phrase for r in results] == ["person", "exemplar (1 positive, 0 negative)", "person"]
    raw = engine.predict(image, prompts)
    # Each kind of prompt conditions the model differently.
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        assert not np.allclose(raw[i].pred_logits, raw[j].pred_logits, atol=1e-6)


def test_segment_matches_processor_post_processing(engine: Sam3Engine) -> None:
    """Our post-processing agrees with Sam3Processor.post_process_instance_segmentation (which upsamples
    probabilities rather than logits, so boundary pixels may differ slightly)."""
    image = noise_image(150, 90)
    inputs = engine.processor(images=image, text="cup", return_tensors="pt")
    with torch.inference_mode():
        outputs = engine.model(**inputs)
    reference = engine.processor.post_process_instance_segmentation(
        outputs, threshold=0.0, mask_threshold=0.5, target_sizes=[(90, 150)]
    )[0]
    ours = engine.segment(image, [text("cup")], KEEP_ALL)[0]
    order = torch.argsort(reference["scores"], descending=True, stable=True)
    ref_masks = reference["masks"][order].bool().numpy()
    ref_masks = ref_masks[ref_masks.reshape(len(ref_masks), -1).any(1)]  # we drop empty masks
    assert len(ours) == len(ref_masks)
    for inst, ref in zip(ours, ref_masks, strict=True):
        disagree = np.count_nonzero(inst.mask != ref)
        assert disagree <= 0.01 * max(ref.sum(), 1)


def test_invalid_boxes_raise_prompt_error(engine: Sam3Engine) -> None:
    image = noise_image(100, 80)
    with pytest.raises(PromptError, match="inverted"):
        engine.segment(image, [boxes((50, 10, 20, 40))])
    with pytest.raises(PromptError, match="outside"):
        engine.segment(image, [text("cup"), boxes((120, 10, 150, 40))])
    assert engine.backbone_calls == 0  # validated before any model work


def test_box_partly_outside_is_clipped(engine: Sam3Engine) -> None:
    image = noise_image(100, 80)
    inside = engine.predict(image, [boxes((50, 40, 100, 80))])[0]
    overhanging = engine.predict(image, [boxes((50, 40, 130, 95))])[0]
    np.testing.assert_allclose(inside.pred_logits, overhanging.pred_logits, atol=1e-6)


def test_empty_prompt_list(engine: Sam3Engine) -> None:
    assert engine.segment(noise_image(), []) == []
    assert engine.backbone_calls == 0


def test_not_an_image(engine: Sam3Engine) -> None:
    with pytest.raises(ImageError, match="PIL"):
        engine.segment(np.zeros((10, 10, 3)), [text("cup")])  # type: ignore[arg-type]


# -- thresholds and scores --------------------------------------------------------------------------------


def test_score_threshold(engine: Sam3Engine) -> None:
    image = noise_image()
    everything = engine.segment(image, [text("cup")], KEEP_ALL)[0]
    confident = engine.segment(image, [text("cup")], Thresholds(score=0.99))[0]
    assert len(everything) > len(confident)
    middle = float(np.median([i.score for i in everything]))
    some = engine.segment(image, [text("cup")], Thresholds(score=middle))[0]
    assert 0 < len(some) < len(everything) and all(i.score >= middle for i in some)
    scores = [i.score for i in everything]
    assert scores == sorted(scores, reverse=True)
    assert [i.id for i in everything] == list(range(1, len(everything) + 1))


def test_mask_threshold_changes_area(engine: Sam3Engine) -> None:
    image = noise_image()
    loose = {i.score: i.area for i in engine.segment(image, [text("cup")], Thresholds(score=0.0, mask=0.3))[0]}
    tight = {i.score: i.area for i in engine.segment(image, [text("cup")], Thresholds(score=0.0, mask=0.7))[0]}
    assert sum(loose.values()) > sum(tight.values())
    assert all(loose[s] >= a for s, a in tight.items())


def test_presence_score_exposed(engine: Sam3Engine) -> None:
    image = noise_image()
    raw = engine.predict(image, [text("cup")])[0]
    presence = 1.0 / (1.0 + np.exp(-raw.presence_logit))
    instances = engine.segment(image, [text("cup")], KEEP_ALL)[0]
    assert instances
    for inst in instances:
        assert inst.presence_score == pytest.approx(presence, abs=1e-6)
        assert inst.score <= inst.presence_score + 1e-6
    expected = np.sort(1.0 / (1.0 + np.exp(-raw.pred_logits)) * presence)[::-1][: len(instances)]
    np.testing.assert_allclose([i.score for i in instances], expected, atol=1e-5)


def test_iom_nms(engine: Sam3Engine) -> None:
    image = noise_image()
    plain = engine.segment(image, [text("cup")], KEEP_ALL)[0]
    deduped = engine.segment(image, [text("cup")], Thresholds(score=0.0, nms_iom=0.5))[0]
    assert 0 < len(deduped) < len(plain)  # random masks overlap a lot
    assert {i.rle.counts for i in deduped} <= {i.rle.counts for i in plain}
    assert [i.id for i in deduped] == list(range(1, len(deduped) + 1))
    overlap = mask_iom([i.rle for i in deduped], [i.rle for i in deduped])
    np.fill_diagonal(overlap, 0.0)
    assert overlap.max() <= 0.5


# -- coordinates --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(160, 120), (90, 200), (300, 47)])
def test_masks_and_boxes_in_original_size(engine: Sam3Engine, size: tuple[int, int]) -> None:
    width, height = size
    image = noise_image(width, height)
    instances = engine.segment(image, [text("cup"), boxes((5, 5, width // 2, height // 2))], KEEP_ALL)
    assert all(instances)
    for inst in (i for per_prompt in instances for i in per_prompt):
        assert inst.rle.size == (height, width) and inst.mask.shape == (height, width)
        assert inst.box == mask_to_box(inst.mask)
        assert inst.area == int(inst.mask.sum()) > 0
        x0, y0, x1, y1 = inst.box
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height


def test_exif_rotated_jpeg(engine: Sam3Engine) -> None:
    from sam3_agent.images import load_image

    stored = noise_image(200, 100)  # stored landscape, EXIF says "rotate 90 degrees clockwise"
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", exif=exif)
    upright = load_image(buffer.getvalue())
    assert upright.size == (100, 200)
    instances = engine.segment(upright, [text("cup"), boxes((10, 120, 90, 190))], KEEP_ALL)
    for inst in (i for per_prompt in instances for i in per_prompt):
        assert inst.rle.size == (200, 100)
        assert inst.box[2] <= 100 and inst.box[3] <= 200


@pytest.mark.gpu
def test_cuda_bfloat16(tiny_checkpoint: Path) -> None:
    engine = Sam3Engine(tiny_checkpoint)  # auto: CUDA + bfloat16
    assert engine.device.type == "cuda" and engine.dtype == torch.bfloat16
    image = noise_image()
    results = engine.segment(image, MIXED, KEEP_ALL)
    assert all(results) and engine.backbone_calls == 1
    assert results[0][0].rle.size == (120, 160)
