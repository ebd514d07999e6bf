"""The click tracker's outputs -> one ``Instance`` of the original image (torch-free: numpy in).

``ClickPrediction`` holds SAM 3's tracker answer to one click (three candidate masks and their predicted IoU);
``instance_from_prediction`` keeps the best candidate (SAM 2's choice for multimask output) and encodes it with
``sam3_agent.masks.edges.encode_masks``: bilinear upsampling from the low-res logits to the original size, then
the mask threshold, as the processor's ``post_process_masks`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sam3_agent.masks import rle_encode
from sam3_agent.masks.edges import encode_masks
from sam3_agent.schema import ClickPrompt, Instance, Thresholds


@dataclass(frozen=True)
class ClickPrediction:
    """The tracker's raw answer to one click (CPU, float32): three candidate masks and their quality."""

    mask_logits: np.ndarray  # (3, h, w) low-res mask logits over the square-resized image
    iou_scores: np.ndarray  # (3,) predicted IoU of each candidate
    object_score_logit: float  # logit of "the object is present"

    @property
    def best(self) -> int:
        """The candidate with the highest predicted IoU (SAM 2's choice for multimask output)."""
        return int(np.argmax(self.iou_scores))


def instance_from_prediction(
    prediction: ClickPrediction, prompt: ClickPrompt, image_size: tuple[int, int], thresholds: Thresholds
) -> Instance:
    """The best candidate as an ``Instance`` of the original image (see ``ClickEngine.segment_at``)."""
    best = prediction.best
    (encoded,) = encode_masks(prediction.mask_logits, image_size, thresholds.mask, [best])
    score = float(np.clip(prediction.iou_scores[best], 0.0, 1.0))
    presence = float(1.0 / (1.0 + np.exp(-prediction.object_score_logit)))
    common = {"id": 1, "phrase": prompt.label, "score": score, "presence_score": presence}
    if encoded is None:
        empty = rle_encode(np.zeros(image_size, dtype=bool))
        return Instance(box=(0.0, 0.0, 0.0, 0.0), rle=empty, area=0, **common)
    return Instance(box=encoded.box, rle=encoded.rle, area=encoded.area, **common)
