"""The click engine (SAM 3's tracker: points / a box -> one mask) on the tiny random full checkpoint.

Shapes and conventions, the COCO RLE against torch's own upsampling, the best-of-three choice, the embedding
cache (encoder calls counted on the model), sharing the text engine's ViT output (exactly equal results, one
backbone run), bad input refused before any model work, and the checkpoint serving both model classes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam3_agent.engine.checkpoint import has_tracker, load_sam3_tracker
from sam3_agent.engine.clicks import ClickEngine, embeddings_from_trunk
from sam3_agent.engine.protocol import Clicker, clicker_for
from sam3_agent.engine.transformers_engine import Sam3Engine
from sam3_agent.errors import CheckpointError, ConfigError, PromptError
from sam3_agent.masks import mask_data, mask_to_box, rle_decode, rle_encode
from sam3_agent.schema import Prompt, Thresholds

WIDTH, HEIGHT = 160, 90


def picture(seed: int = 0, width: int = WIDTH, height: int = HEIGHT) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def text_engine(tiny_tracker_checkpoint: Path) -> Sam3Engine:
    return Sam3Engine(tiny_tracker_checkpoint, device="cpu", dtype="float32").load()


@pytest.fixture(scope="module")
def _clicks(tiny_tracker_checkpoint: Path) -> ClickEngine:
    return ClickEngine(tiny_tracker_checkpoint, device="cpu", dtype="float32").load()


@pytest.fixture
def clicks(_clicks: ClickEngine) -> ClickEngine:
    _clicks.clear_cache(reset_counters=True)
    return _clicks


def reference_mask(logits: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """What ``Sam3TrackerProcessor.post_process_masks`` computes: bilinear upsampling, then the threshold."""
    up = torch.nn.functional.interpolate(torch.from_numpy(logits)[None, None], (HEIGHT, WIDTH), mode="bilinear")
    return (up[0, 0] >= float(np.log(threshold / (1 - threshold)))).numpy()


def test_the_full_checkpoint_serves_the_detector_and_the_tracker(tiny_tracker_checkpoint: Path) -> None:
    from transformers import Sam3Model, Sam3Processor, Sam3TrackerModel, Sam3TrackerProcessor

    for cls in (Sam3Model, Sam3TrackerModel):
        _, info = cls.from_pretrained(tiny_tracker_checkpoint, output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"], cls.__name__
    assert Sam3TrackerProcessor.from_pretrained(tiny_tracker_checkpoint).target_size == 224
    assert Sam3Processor.from_pretrained(tiny_tracker_checkpoint).tokenizer is not None
    assert has_tracker(tiny_tracker_checkpoint) and has_tracker("facebook/sam3")


def test_a_detector_only_checkpoint_says_where_to_get_the_tracker(tiny_checkpoint: Path) -> None:
    assert not has_tracker(tiny_checkpoint)
    with pytest.raises(CheckpointError, match=r"make_tiny_checkpoint\.py --tracker"):
        load_sam3_tracker(tiny_checkpoint)
    assert clicker_for(Sam3Engine(tiny_checkpoint)) is None


def test_one_click_gives_one_instance_of_the_original_image(clicks: ClickEngine) -> None:
    image = picture()
    inst = clicks.segment_at(image, [(50, 40)])
    assert isinstance(clicks, Clicker)
    assert inst.id == 1 and inst.phrase == "clicked object (1 positive point)"
    assert inst.rle.size == (HEIGHT, WIDTH) and inst.mask.shape == (HEIGHT, WIDTH)
    assert 0.0 <= inst.score <= 1.0 and 0.0 <= inst.presence_score <= 1.0
    assert inst.area == int(inst.mask.sum()) > 0
    assert inst.box == tuple(float(v) for v in mask_to_box(inst.mask))
    assert mask_data(inst.rle).area == inst.area


def test_the_mask_is_the_best_of_three_and_round_trips_as_coco_rle(clicks: ClickEngine) -> None:
    image = picture(1)
    points, labels, box = [(50, 40), (120, 20)], [1, 0], (10.0, 5.0, 140.0, 85.0)
    prediction = clicks.predict_at(image, points, labels, box)
    assert prediction.mask_logits.shape == (3, 64, 64) and prediction.iou_scores.shape == (3,)
    inst = clicks.segment_at(image, points, labels, box)
    best = int(np.argmax(prediction.iou_scores))
    assert inst.score == pytest.approx(float(prediction.iou_scores.max()))
    expected = reference_mask(prediction.mask_logits[best])
    assert np.array_equal(rle_decode(inst.rle), expected)
    assert rle_encode(expected) == inst.rle
    assert inst.phrase == "clicked object (1 positive point, 1 negative point, a box)"


def test_the_mask_threshold_applies_and_an_empty_mask_is_area_zero(clicks: ClickEngine) -> None:
    image = picture(2)
    everything = clicks.segment_at(image, box=(0, 0, WIDTH, HEIGHT), thresholds=Thresholds(mask=0.0))
    assert everything.area == WIDTH * HEIGHT and everything.box == (0.0, 0.0, WIDTH, HEIGHT)
    nothing = clicks.segment_at(image, box=(0, 0, WIDTH, HEIGHT), thresholds=Thresholds(mask=1.0))
    assert nothing.area == 0 and nothing.box == (0.0, 0.0, 0.0, 0.0) and not nothing.mask.any()
    assert nothing.rle.size == (HEIGHT, WIDTH)


def test_several_clicks_on_one_image_run_the_image_encoder_once(
    clicks: ClickEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    encode = clicks.model.get_image_embeddings
    monkeypatch.setattr(clicks.model, "get_image_embeddings", lambda *a, **k: calls.append(1) or encode(*a, **k))
    image = picture(3)
    for points in ([(10, 10)], [(10, 10), (80, 60)], [(150, 80)]):
        clicks.segment_at(image, points)
    clicks.segment_at(image.copy(), box=(5, 5, 60, 60))  # same pixels, another object: still cached
    assert len(calls) == 1 and clicks.encoder_calls == 1 and clicks.backbone_calls == 1
    assert (clicks.cache_misses, clicks.cache_hits) == (1, 3)
    clicks.segment_at(picture(4), [(10, 10)])
    assert len(calls) == 2 and clicks.encoder_calls == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "at least one point or a box"),
        ({"points": [(160, 10)]}, r"point \(160, 10\) lies outside the 160x90 image"),
        ({"points": [(-1, 10)]}, "outside"),
        ({"points": [(10, 90)]}, "outside"),
        ({"points": [(10, 10), (20, 20)], "labels": [1]}, "1 label"),
        ({"points": [(10, 10)], "labels": [2]}, "labels.0"),
        ({"box": (30, 30, 30, 50)}, "empty or inverted"),
        ({"box": (40, 30, 20, 50)}, "empty or inverted"),
        ({"box": (200, 100, 300, 200)}, "outside the 160x90 image"),
        ({"points": [(float("nan"), 3)]}, "finite"),
    ],
)
def test_bad_clicks_are_refused_before_any_model_work(tmp_path: Path, kwargs: dict, message: str) -> None:
    engine = ClickEngine(tmp_path / "no-such-checkpoint", device="cpu")
    with pytest.raises(PromptError, match=message) as caught:
        engine.segment_at(picture(), **kwargs)
    assert "\n" not in str(caught.value)
    assert not engine.loaded


def test_a_box_partly_outside_the_image_is_clipped(clicks: ClickEngine) -> None:
    inst = clicks.segment_at(picture(5), box=(-20, -10, 80, 200), thresholds=Thresholds(mask=0.0))
    assert inst.area == WIDTH * HEIGHT


def test_sharing_the_text_engines_vit_output_gives_identical_masks_with_one_backbone_run(
    text_engine: Sam3Engine, clicks: ClickEngine
) -> None:
    shared = ClickEngine.sharing(text_engine).load()
    assert shared.shares_backbone is True
    assert shared.model.vision_encoder.backbone is text_engine.model.vision_encoder.backbone
    text_engine.clear_cache(reset_counters=True)
    image = picture(6)
    text_engine.segment(image, [Prompt(text="cup")])
    for points in ([(30, 30)], [(30, 30), (100, 50)]):
        box = (5.0, 5.0, 150.0, 85.0)
        assert shared.segment_at(image, points, box=box) == clicks.segment_at(image, points, box=box)
    assert text_engine.backbone_calls == 1 and shared.backbone_calls == 0 and shared.encoder_calls == 1
    pixels = clicks.processor.image_processor(images=image, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        own = clicks.model.get_image_embeddings(pixels)
        from_trunk = embeddings_from_trunk(clicks.model, text_engine.vision_trunk(image))
    assert all(torch.equal(a, b) for a, b in zip(own, from_trunk, strict=True))


def test_a_click_first_leaves_the_backbone_output_for_a_text_prompt(text_engine: Sam3Engine) -> None:
    shared = ClickEngine.sharing(text_engine)
    text_engine.clear_cache(reset_counters=True)
    image = picture(7)
    shared.segment_at(image, [(40, 40)])
    text_engine.segment(image, [Prompt(text="cup")])
    assert text_engine.backbone_calls == 1 and text_engine.cache_hits >= 1


def test_clicker_for_picks_the_sharing_engine_or_the_segmenter_itself(text_engine: Sam3Engine) -> None:
    made = clicker_for(text_engine)
    assert isinstance(made, ClickEngine) and made.checkpoint == text_engine.checkpoint

    class Fake:
        def segment_at(self, image, points=(), labels=None, box=None, thresholds=None):
            raise NotImplementedError

    fake = Fake()
    assert clicker_for(fake) is fake and clicker_for(object()) is None


def test_backbone_from_must_match_the_engine(text_engine: Sam3Engine, tiny_checkpoint: Path) -> None:
    with pytest.raises(ConfigError, match="same checkpoint"):
        ClickEngine(tiny_checkpoint, device="cpu", dtype="float32", backbone_from=text_engine)
