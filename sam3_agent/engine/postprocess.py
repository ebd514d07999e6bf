"""SAM 3's outputs for one prompt -> ``Instance`` objects of the original image.

The masks' upsampling, thresholding and encoding are ``sam3_agent.masks.edges.encode_masks`` (straight from
the low-res logits to the runs, never the full float stack); here the scores are thresholded and sorted,
the instances built, and NMS applied when asked.

Box choice: an instance's box is the tight box of its thresholded mask (XYXY pixels, max corner
exclusive, like ``sam3_agent.masks.mask_to_box``), not SAM 3's regressed ``pred_boxes``, so that box,
mask and area always agree. Torch-free: it takes numpy arrays.
"""

from __future__ import annotations

import numpy as np

from sam3_agent.masks import nms
from sam3_agent.masks.edges import encode_masks
from sam3_agent.schema import Instance, Thresholds


def instances_from_logits(
    mask_logits: np.ndarray,
    scores: np.ndarray,
    image_size: tuple[int, int],
    thresholds: Thresholds,
    phrase: str,
    presence_score: float = 1.0,
) -> list[Instance]:
    """Turn one prompt's candidate masks into instances of the original image.

    Args:
        mask_logits: (K, h, w) float low-resolution mask logits over the square-resized image.
        scores: (K,) final scores, sigmoid(query logit) * sigmoid(presence logit).
        image_size: (height, width) of the original image; masks and boxes are mapped onto it.
        thresholds: keep score >= ``thresholds.score``; a pixel is foreground when p >= ``thresholds.mask``;
            IoM NMS at ``thresholds.nms_iom`` when set.
        phrase: the ``phrase`` of every instance (the prompt's label).
        presence_score: sigmoid(presence logit), stored on every instance.

    Returns:
        Instances sorted by descending score with ids 1..n; masks that come out empty are dropped.
    """
    if mask_logits.ndim != 3 or scores.shape != (len(mask_logits),):
        raise ValueError(f"expected (K, h, w) logits and (K,) scores, got {mask_logits.shape} and {scores.shape}")
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] >= thresholds.score].tolist()
    presence = min(max(float(presence_score), 0.0), 1.0)
    instances: list[Instance] = []
    for idx, encoded in zip(order, encode_masks(mask_logits, image_size, thresholds.mask, order), strict=True):
        if encoded is None:
            continue
        instance = Instance(
            id=len(instances) + 1,
            phrase=phrase,
            score=min(max(float(scores[idx]), 0.0), 1.0),
            presence_score=presence,
            box=encoded.box,  # ints, validated into floats
            rle=encoded.rle,
            area=encoded.area,
        )
        instances.append(instance)
    if thresholds.nms_iom is not None and len(instances) > 1:
        kept = nms(instances, threshold=thresholds.nms_iom, metric="iom")
        instances = [inst.model_copy(update={"id": i}) for i, inst in enumerate(kept, start=1)]
    return instances
