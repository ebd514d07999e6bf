"""The ``Segmenter`` protocol: what the agent, CLI, server and adapters need from a segmentation engine.

Implementations: ``sam3_agent.engine.transformers_engine.Sam3Engine`` (in-process SAM 3), the HTTP client
of the segmentation server, and test fakes. ``Clicker`` is its one-object sibling (points / a box -> one
mask): ``sam3_agent.engine.clicks.ClickEngine``, the server's client, fakes. None of this module imports torch.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from PIL import Image

from sam3_agent.schema import BoxXYXY, Instance, Point, Prompt, Thresholds


@runtime_checkable
class Segmenter(Protocol):
    def segment(
        self,
        image: Image.Image,
        prompts: Sequence[Prompt],
        thresholds: Thresholds | None = None,
    ) -> list[list[Instance]]:
        """Segment every instance matching each prompt.

        Args:
            image: RGB PIL image (already EXIF-transposed; see ``sam3_agent.images.load_image``).
            prompts: one or more prompts; exemplar boxes are XYXY pixels of ``image``.
            thresholds: score / mask thresholds and optional IoM NMS; None means the defaults.

        Returns:
            One list per prompt, in prompt order. Each list holds the instances kept by the thresholds,
            sorted by descending score, masks (COCO RLE) and boxes in ``image``'s pixel coordinates, and
            ``phrase`` set to ``prompt.label``. Ids follow ``number_instances``: 1..N in response order
            across the prompts (the first prompt's instances are 1..k, the next prompt's k+1.., ...).

        Raises:
            PromptError: a prompt does not fit the image (e.g. an exemplar box outside it).
        """
        ...


@runtime_checkable
class Clicker(Protocol):
    def segment_at(
        self,
        image: Image.Image,
        points: Sequence[Point] = (),
        labels: Sequence[int] | None = None,
        box: BoxXYXY | None = None,
        thresholds: Thresholds | None = None,
    ) -> Instance:
        """Segment the ONE object that clicks point at (SAM 2's promptable visual segmentation).

        Args:
            image: RGB PIL image (already EXIF-transposed).
            points: (x, y) pixels of ``image``; labels: one per point, 1 on the object, 0 off it (None: all 1).
            box: XYXY pixels around the object. At least one point or the box.
            thresholds: ``mask`` is the pixel probability cut; the score threshold does not apply (a click
                always answers its best mask).

        Returns:
            One instance (id 1): the mask as COCO RLE, its tight box and area (0 when no pixel reaches the mask
            threshold), ``score`` = the predicted IoU of the mask chosen, ``phrase`` = ``ClickPrompt.label``.

        Raises:
            PromptError: no point and no box, labels not one per point, a point outside the image, an empty
                box or one outside the image (checked before any model work).
        """
        ...


def number_instances(per_prompt: Sequence[Sequence[Instance]]) -> list[list[Instance]]:
    """``per_prompt`` numbered by the package's id rule: ids 1..N in response order, across the prompts.

    The first prompt's instances get 1..k, the next prompt's k+1.., and so on, so ids are unique within one
    answer (``Segmenter.segment``, the server's responses, ``RemoteSegmenter``). Instances already carrying
    their id are returned as they are (no copy), so numbering twice is free.
    """
    numbered: list[list[Instance]] = []
    next_id = 1
    for group in per_prompt:
        row = []
        for inst in group:
            row.append(inst if inst.id == next_id else inst.model_copy(update={"id": next_id}))
            next_id += 1
        numbered.append(row)
    return numbered


def clicker_for(segmenter: object) -> Clicker | None:
    """The click engine to use beside ``segmenter``: the segmenter itself when it clicks (the server's client),
    a ``ClickEngine`` sharing the ViT backbone of a ``Sam3Engine`` whose checkpoint holds the tracker (loaded
    on first use), else None. A wrapper holding its segmenter as ``.segmenter`` (``TiledSegmenter``) is looked
    through. Imports torch only for a ``Sam3Engine`` (which has imported it already)."""
    if isinstance(segmenter, Clicker):
        return segmenter
    inner = getattr(segmenter, "segmenter", None)
    if inner is not None and inner is not segmenter:
        return clicker_for(inner)
    engines = sys.modules.get("sam3_agent.engine.transformers_engine")
    if engines is None or not isinstance(segmenter, engines.Sam3Engine):
        return None
    from sam3_agent.engine.checkpoint import has_tracker

    if not has_tracker(segmenter.checkpoint):
        return None
    from sam3_agent.engine.clicks import ClickEngine

    return ClickEngine.sharing(segmenter)
