"""Loading SAM 3's video model: the image engine's checkpoint conventions (``sam3_agent.engine.checkpoint``).

A local directory or a hub id, None resolving as ``resolve_checkpoint`` (``$SAM3_CHECKPOINT``, else
``facebook/sam3``). The video model lives in the full checkpoint only (model type ``sam3_video``: detector +
tracker); a detector-only ``sam3`` directory is refused with a message saying where to get the full one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sam3_agent.engine.checkpoint import (
    HOW_TO_GET_WEIGHTS,
    _model_type,
    looks_like_path,
    report_weight_bars,
    resolve_checkpoint,
)
from sam3_agent.errors import CheckpointError

if TYPE_CHECKING:
    import torch
    from transformers import Sam3VideoModel
    from transformers.models.sam3_video.processing_sam3_video import Sam3VideoProcessor

VIDEO_MODEL_TYPE = "sam3_video"
VIDEO_MISSING = (
    "tracking through clips needs SAM 3's video model, which the full checkpoint holds: facebook/sam3 (model type "
    "'sam3_video'), or a tiny random one from `python tools/make_tiny_checkpoint.py --video DIR`"
)


def load_sam3_video(
    checkpoint: str | Path | None = None, *, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
) -> tuple[Sam3VideoModel, Sam3VideoProcessor, str]:
    """Load ``Sam3VideoModel`` (eval mode, on ``device``, in ``dtype``, default float32) and ``Sam3VideoProcessor``.

    Returns:
        (model, processor, the resolved checkpoint string).

    Raises:
        CheckpointError: missing directory, no config.json, a config of another model type (a detector-only
            ``sam3`` checkpoint included), or a hub id that could not be loaded; the message says how to get
            the weights.
    """
    spec = resolve_checkpoint(checkpoint)
    is_local = looks_like_path(spec)
    source = str(Path(spec).expanduser()) if is_local else spec
    import torch
    from transformers import AutoConfig, Sam3VideoModel
    from transformers.models.sam3_video.processing_sam3_video import Sam3VideoProcessor

    try:
        model_type = _model_type(Path(source)) if is_local else AutoConfig.from_pretrained(source).model_type
        if model_type != VIDEO_MODEL_TYPE:
            raise CheckpointError(f"SAM 3 checkpoint {spec!r} is of model type {model_type!r}: {VIDEO_MISSING}.")
        with report_weight_bars():  # transformers' "Loading weights" bar goes to our display, not stderr
            model = Sam3VideoModel.from_pretrained(source, dtype=dtype or torch.float32)
            processor = Sam3VideoProcessor.from_pretrained(source)
    except CheckpointError:
        raise
    except Exception as exc:  # transformers / huggingface_hub raise many types (OSError, HTTP, gated, offline)
        kind = "directory" if is_local else "hub id"
        what = f"could not load SAM 3's video model from {kind} {spec!r}: {type(exc).__name__}: {exc}"
        raise CheckpointError(f"{what}\n{HOW_TO_GET_WEIGHTS}") from exc
    return model.to(device).eval(), processor, spec
