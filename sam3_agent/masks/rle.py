"""The COCO run-length encoding of a mask (``Rle``) and its pycocotools encoders and decoder.

An ``Rle`` is the mask of one object over the whole image: ``size`` is ``[height, width]`` and ``counts``
the compressed string of the run lengths, column by column (pycocotools' format). Dense masks are bool
arrays of shape (height, width).
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as coco_mask
from pydantic import BaseModel, ConfigDict


class Rle(BaseModel):
    """COCO run-length encoding of one binary mask: ``size`` is ``[height, width]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    size: tuple[int, int]
    counts: str

    def to_coco(self) -> dict:
        """The dict ``pycocotools.mask.decode`` takes (counts as bytes)."""
        return {"size": list(self.size), "counts": self.counts.encode("ascii")}


def rle_encode(mask: np.ndarray) -> Rle:
    """Encode one (H, W) bool/uint8 mask as COCO RLE."""
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D (height, width) mask, got shape {mask.shape}")
    encoded = coco_mask.encode(np.asfortranarray(mask, dtype=np.uint8))
    return Rle(size=(int(encoded["size"][0]), int(encoded["size"][1])), counts=encoded["counts"].decode("ascii"))


def rle_encode_many(masks: np.ndarray) -> list[Rle]:
    """Encode an (N, H, W) stack of masks in one pycocotools call."""
    if masks.ndim != 3:
        raise ValueError(f"expected an (N, height, width) mask stack, got shape {masks.shape}")
    if len(masks) == 0:
        return []
    # pycocotools wants (H, W, N) in Fortran order, i.e. a C-contiguous (N, W, H) array viewed transposed.
    stack = np.ascontiguousarray(masks.transpose(0, 2, 1), dtype=np.uint8).transpose(2, 1, 0)
    encoded = coco_mask.encode(stack)
    return [Rle(size=(int(e["size"][0]), int(e["size"][1])), counts=e["counts"].decode("ascii")) for e in encoded]


def rle_decode(rle: Rle) -> np.ndarray:
    """Decode a COCO RLE into an (H, W) bool mask (the whole image; ``masks.crop`` decodes a part)."""
    return coco_mask.decode(rle.to_coco()).astype(bool)
