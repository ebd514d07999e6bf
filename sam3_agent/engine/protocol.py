"""The ``Segmenter`` protocol: what the agent, CLI, server and adapters need from a segmentation engine.

Implementations: ``sam3_agent.engine.transformers_engine.Sam3Engine`` (in-process SAM 3), the HTTP client
of the segmentation server, and test fakes. None of this module imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from PIL import Image

from sam3_agent.schema import Instance, Prompt, Thresholds


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
            sorted by descending score, with ids 0..n-1, masks (COCO RLE) and boxes in ``image``'s
            pixel coordinates, and ``phrase`` set to ``prompt.label``.

        Raises:
            PromptError: a prompt does not fit the image (e.g. an exemplar box outside it).
        """
        ...
