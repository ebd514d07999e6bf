"""Masks: one package, one room per kind of thing held.

- ``rle``: the ``Rle`` type (COCO run-length encoding) and the pycocotools encoders / decoder;
- ``runs``: run lengths parsed from an RLE and what they give without decoding: ``mask_data(rle)`` (runs,
  tight box, area: the one way to get them) and ``mask_crop(rle, box)``;
- ``overlap``: IoU, IoM, NMS, and the box of a dense mask;
- ``algebra``: union, intersection and difference of RLEs (no decoding), and set logic on lists of objects;
- ``edges``: low-resolution mask logits -> runs of the upsampled, thresholded masks (compiled loops);
- ``raster``: masks painted and sampled from their runs into arrays (compiled loops, for overlays).

The light part (``rle``, ``runs``, ``overlap``, ``algebra``) is importable from ``sam3_agent.masks`` directly; ``edges``
and ``raster`` compile numba loops and are imported as submodules where needed.
"""

from sam3_agent.masks.algebra import (
    SAME_OBJECT_IOM,
    empty_mask,
    mask_complement,
    mask_difference,
    mask_intersection,
    mask_union,
    object_difference,
    object_intersection,
    object_union,
    same_objects,
)
from sam3_agent.masks.overlap import mask_iom, mask_iou, mask_to_box, nms
from sam3_agent.masks.rle import Rle, rle_decode, rle_encode, rle_encode_many
from sam3_agent.masks.runs import (
    IntBox,
    MaskData,
    decode_run_crops,
    mask_crop,
    mask_data,
    mask_datas,
    remember,
    rle_counts,
    stack_runs,
)

__all__ = [
    "SAME_OBJECT_IOM",
    "IntBox",
    "MaskData",
    "Rle",
    "decode_run_crops",
    "empty_mask",
    "mask_complement",
    "mask_crop",
    "mask_data",
    "mask_datas",
    "mask_difference",
    "mask_intersection",
    "mask_iom",
    "mask_iou",
    "mask_to_box",
    "mask_union",
    "nms",
    "object_difference",
    "object_intersection",
    "object_union",
    "remember",
    "rle_counts",
    "rle_decode",
    "rle_encode",
    "rle_encode_many",
    "same_objects",
    "stack_runs",
]
