"""Sam3Engine runs prompt-free parts of a k-prompt pass once: the first DETR-encoder self-attention (for
one image) and the first decoder layer's box position bias.

The sharing must change which rows are computed, never the results: the engine's batched outputs are
compared with an unshared batched forward of the same model and with one-by-one passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import Sam3Config, Sam3Model
from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

from sam3_agent.engine.prompt_sharing import PromptFreeSharing
from sam3_agent.engine.transformers_engine import Sam3Engine
from sam3_agent.schema import ExemplarBox, Prompt, Thresholds

PHRASES = ["cup", "red hat", "laptop"]


def noise_image(seed: int, width: int = 160, height: int = 120) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture
def attention_batches(engine: Sam3Engine) -> Iterator[list[int]]:
    """Batch size of every call reaching the first encoder self-attention (after the engine's own hook)."""
    seen: list[int] = []
    handle = engine.model.detr_encoder.layers[0].self_attn.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(int(kwargs["query"].shape[0])), with_kwargs=True
    )
    yield seen
    handle.remove()


@pytest.fixture
def bias_batches(engine: Sam3Engine) -> Iterator[list[int]]:
    """Batch size of every box relative-position bias computed by the DETR decoder."""
    seen: list[int] = []
    handle = engine.model.detr_decoder.box_rpb_embed_x.register_forward_pre_hook(
        lambda module, args: seen.append(int(args[0].shape[0]))
    )
    yield seen
    handle.remove()


def unhooked_batched_forward(engine: Sam3Engine, image: Image.Image, phrases: list[str]):
    """The model's own batched forward on the image's cached features expanded to len(phrases) rows."""
    features = engine._features(image, engine.encode_image(image)).vision
    k = len(phrases)
    vision = Sam3VisionEncoderOutput(
        fpn_hidden_states=tuple(t.expand(k, *t.shape[1:]) for t in features.fpn_hidden_states),
        fpn_position_encoding=tuple(t.expand(k, *t.shape[1:]) for t in features.fpn_position_encoding),
    )
    tokens = engine.processor.tokenizer(phrases, padding="max_length", max_length=32, return_tensors="pt")
    with torch.inference_mode():
        return engine.model(
            vision_embeds=vision, input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        )


def test_one_image_pass_computes_prompt_free_parts_once(
    engine: Sam3Engine, attention_batches: list[int], bias_batches: list[int]
) -> None:
    image = noise_image(0)
    ours = engine.predict(image, [Prompt(text=p) for p in PHRASES])
    assert attention_batches == [1] and bias_batches == [1]  # the tiny model has one decoder layer
    reference = unhooked_batched_forward(engine, image, PHRASES)
    k = len(PHRASES)
    assert attention_batches == [1, k] and bias_batches == [1, k]  # outside the engine the model runs as is
    for i, raw in enumerate(ours):
        np.testing.assert_allclose(raw.pred_logits, reference.pred_logits[i].numpy(), atol=1e-6)
        np.testing.assert_allclose(raw.presence_logit, float(reference.presence_logits[i, 0]), atol=1e-6)
        np.testing.assert_allclose(raw.pred_boxes, reference.pred_boxes[i].numpy(), atol=1e-6)
        np.testing.assert_allclose(raw.pred_masks, reference.pred_masks[i].numpy(), atol=1e-5)


def test_box_prompts_share_it_too_and_match_one_by_one(engine: Sam3Engine, attention_batches: list[int]) -> None:
    image = noise_image(1)
    prompts = [
        Prompt(boxes=(ExemplarBox(box=(10, 10, 60, 50)),)),
        Prompt(
            text="person", boxes=(ExemplarBox(box=(20, 30, 90, 100)), ExemplarBox(box=(0, 0, 9, 9), positive=False))
        ),
    ]
    batched = engine.predict(image, prompts)
    single = [engine.predict(image, [p])[0] for p in prompts]
    assert attention_batches == [1, 1, 1]
    for b, s in zip(batched, single, strict=True):
        np.testing.assert_allclose(b.pred_logits, s.pred_logits, atol=1e-5)
        np.testing.assert_allclose(b.pred_masks, s.pred_masks, atol=1e-4)


def test_a_pass_over_several_images_shares_only_the_bias(
    engine: Sam3Engine, attention_batches: list[int], bias_batches: list[int]
) -> None:
    a, b = noise_image(2), noise_image(3)
    keep_all = Thresholds(score=0.0)
    together = engine.segment_batch([(a, [Prompt(text="cup")], keep_all), (b, [Prompt(text="cup")], keep_all)])
    assert attention_batches == [2]  # rows of different images differ
    assert bias_batches == [1]  # the first decoder layer's reference boxes are learned, equal for all rows
    alone = [engine.segment(image, [Prompt(text="cup")], keep_all) for image in (a, b)]
    assert attention_batches == [2, 1, 1]
    for got, want in zip(together, alone, strict=True):
        np.testing.assert_allclose([i.score for i in got[0]], [i.score for i in want[0]], atol=1e-5)


def test_later_layers_run_every_row(tiny_checkpoint: Path) -> None:
    """With two encoder and decoder layers only the first of each is shared; outputs equal the plain model's."""
    config = Sam3Config.from_pretrained(tiny_checkpoint)
    config.detr_encoder_config.num_layers = config.detr_decoder_config.num_layers = 2
    torch.manual_seed(0)
    model = Sam3Model(config).eval()
    k, seen = 3, {"attention": [], "bias": []}
    for name, layer in (
        ("attention", model.detr_encoder.layers[1].self_attn),
        ("bias", model.detr_decoder.box_rpb_embed_x),
    ):
        layer.register_forward_pre_hook(
            lambda module, args, kwargs, name=name: seen[name].append(int((args or [kwargs.get("query")])[0].shape[0])),
            with_kwargs=True,
        )
    torch.manual_seed(1)
    vision = Sam3VisionEncoderOutput(
        fpn_hidden_states=tuple(torch.randn(1, 32, s, s).expand(k, -1, -1, -1) for s in (64, 32, 16)),
        fpn_position_encoding=tuple(torch.randn(1, 32, s, s).expand(k, -1, -1, -1) for s in (64, 32, 16)),
    )
    input_ids = torch.randint(0, config.text_config.vocab_size, (k, 32))
    with torch.inference_mode():
        plain = model(vision_embeds=vision, input_ids=input_ids)
        sharing = PromptFreeSharing(model)
        with sharing.engine_pass(k, one_image=True):
            shared = model(vision_embeds=vision, input_ids=input_ids)
    assert seen == {"attention": [k, k], "bias": [k, k, 1, k]}
    for name in ("pred_logits", "presence_logits", "pred_boxes", "pred_masks"):
        torch.testing.assert_close(getattr(shared, name), getattr(plain, name), atol=1e-6, rtol=0)
