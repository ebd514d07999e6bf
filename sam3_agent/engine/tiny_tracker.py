"""The full SAM 3 checkpoint layout, randomly initialised: detector + tracker, as ``facebook/sam3`` ships it.

``facebook/sam3`` is one ``Sam3VideoModel`` (``config.json`` of model type ``sam3_video``): the detector
(``detector_model.*``, with the ViT backbone and the detector's FPN neck), the tracker (``tracker_model.*``:
SAM 2's prompt encoder, mask decoder and the video memory) and the tracker's own FPN neck
(``tracker_neck.*``); its processor is a ``Sam3VideoProcessor`` (image processor, video processor,
tokenizer). ``Sam3Model``, ``Sam3TrackerModel``, ``Sam3TrackerVideoModel`` and ``Sam3VideoModel`` all load from
that one directory (transformers renames ``detector_model.vision_encoder.backbone.*`` and ``tracker_neck.*``
into the tracker's vision encoder), and so do ``Sam3Processor`` and ``Sam3TrackerProcessor``.

``save_full_checkpoint`` writes that layout at the sizes of ``sam3_agent.engine.tiny``. The weights are
written from the model's own state dict with safetensors (the real file's key names):
``Sam3VideoModel.save_pretrained`` in transformers 5.24 writes ``tracker_model.tracker_model.*`` keys
(its reverse key mapping adds the prefix twice), which ``Sam3TrackerModel`` cannot load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from transformers import CLIPTokenizer, Sam3Config, Sam3VideoConfig, Sam3VideoModel
from transformers.models.sam2_video.video_processing_sam2_video import Sam2VideoVideoProcessor
from transformers.models.sam3.image_processing_sam3 import Sam3ImageProcessor
from transformers.models.sam3_video.processing_sam3_video import Sam3VideoProcessor


def tracker_config(image_size: int, hidden: int, heads: int) -> dict[str, Any]:
    """A small ``sam3_tracker_video`` config whose vision part is the detector's (``hidden`` = FPN width).

    The tracker reads the detector's backbone through its own neck, so its vision config must be the
    detector's; its prompt encoder and mask decoder work at the FPN width. The memory modules (video only)
    are one layer each.
    """
    grid = image_size // 14
    return {
        "model_type": "sam3_tracker_video",
        "image_size": image_size,  # propagates to the vision, prompt-encoder and memory sizes
        "prompt_encoder_config": {"hidden_size": hidden, "image_size": image_size, "patch_size": 14},
        "mask_decoder_config": {
            "hidden_size": hidden,
            "mlp_dim": 4 * hidden,
            "num_attention_heads": heads,
            "iou_head_hidden_dim": hidden,
        },
        "memory_attention_hidden_size": hidden,
        "memory_attention_num_layers": 1,
        "memory_attention_feed_forward_hidden_size": 2 * hidden,
        "memory_attention_rope_feat_sizes": [grid, grid],
        "memory_encoder_hidden_size": hidden,
        "memory_encoder_output_channels": max(hidden // 2, 16),
        "mask_downsampler_embed_dim": hidden,
        "memory_fuser_embed_dim": hidden,
        "memory_fuser_intermediate_dim": 4 * hidden,
        "memory_fuser_num_layers": 1,
    }


def save_full_checkpoint(
    out: Path,
    detector: Sam3Config,
    *,
    hidden: int,
    heads: int,
    image_processor: Sam3ImageProcessor,
    tokenizer: CLIPTokenizer,
    seed: int,
) -> None:
    """Write a random ``Sam3VideoModel`` (``detector`` plus a tracker at width ``hidden``) and its processor."""
    image_size = detector.vision_config.backbone_config.image_size
    tracker = tracker_config(image_size, hidden, heads)
    tracker["vision_config"] = detector.vision_config.to_dict()
    config = Sam3VideoConfig(detector_config=detector.to_dict(), tracker_config=tracker)
    config.architectures = ["Sam3VideoModel"]
    torch.manual_seed(seed)
    model = Sam3VideoModel(config).eval()
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out)
    weights = {name: tensor.detach().contiguous().clone() for name, tensor in model.state_dict().items()}
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    video_processor = Sam2VideoVideoProcessor(
        image_mean=list(image_processor.image_mean),
        image_std=list(image_processor.image_std),
        size={"height": image_size, "width": image_size},
    )
    processor = Sam3VideoProcessor(
        image_processor=image_processor, video_processor=video_processor, tokenizer=tokenizer
    )
    processor.save_pretrained(out)
