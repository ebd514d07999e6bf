"""The demo's public ``/segment_image`` endpoint (SAM 3 alone, no LLM) and its typed result.

Registered with ``gr.api`` by ``sam3_agent.demo.app``: Gradio derives the endpoint's parameters, their
defaults (the server's ``--score-threshold`` / ``--mask-threshold``) and the result's JSON Schema from the
signature and the ``TypedDict`` below, so ``view_api()`` shows real types. A refused input raises
``gr.Error`` with a one-line reason: ``gradio_client`` raises it as ``AppError``.
"""

# No ``from __future__ import annotations``: Gradio reads the return annotation as a type, not a string.
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

import gradio as gr
from gradio.data_classes import FileData

from sam3_agent.demo import formatting as fmt
from sam3_agent.demo.config import TurnSettings
from sam3_agent.demo.handlers import DemoHandlers
from sam3_agent.errors import ImageError, Sam3AgentError
from sam3_agent.schema import Prompt

log = logging.getLogger(__name__)


class RleDict(TypedDict):
    """COCO run-length encoding: ``size`` is [height, width], ``counts`` the compressed string."""

    size: list[int]
    counts: str


class InstanceDict(TypedDict):
    """One instance, as ``sam3_agent.schema.Instance`` serialises it (box: XYXY pixels)."""

    id: int
    phrase: str
    score: float
    presence_score: float
    box: list[float]
    rle: RleDict
    area: int


class SegmentImageResult(TypedDict):
    """``image_size`` is [height, width]; instances are numbered 1..N in phrase order."""

    image_size: list[int]
    instances: list[InstanceDict]


def app_error(exc: Exception) -> gr.Error:
    """The ``gr.Error`` for a failed action: our errors' own message, anything else logged and named in one line."""
    if isinstance(exc, Sam3AgentError):
        return gr.Error(str(exc), print_exception=False)
    log.exception("demo API call failed")
    return gr.Error(f"something went wrong inside the demo ({type(exc).__name__}: {exc}); the server log has details")


def segment_api(handlers: DemoHandlers) -> Callable[..., SegmentImageResult]:
    """The ``/segment_image`` function for ``handlers``; its threshold defaults are the server's settings."""
    config = handlers.config

    def segment_image(
        image: FileData,
        phrases: str,
        score_threshold: float = config.score_threshold,
        mask_threshold: float = config.mask_threshold,
    ) -> SegmentImageResult:
        """Segment every instance of each noun phrase in an image with SAM 3 (no LLM involved).

        Args:
            image: the image file (PNG, JPEG, WebP, ...).
            phrases: one or more short noun phrases separated by commas, e.g. "red cup, laptop".
            score_threshold: keep instances whose score (query x presence probability) is at least this.
            mask_threshold: a pixel belongs to a mask when its probability is at least this.

        Returns:
            {"image_size": [height, width], "instances": [{"id", "phrase", "score", "presence_score", "box"
            (XYXY pixels), "rle" (COCO run-length encoding), "area"}, ...]}, ids 1..N. A refused input raises
            an error with the reason.
        """
        try:
            return _segment(handlers, image, phrases, score_threshold, mask_threshold)
        except Exception as exc:
            raise app_error(exc) from None

    return segment_image


def _segment(
    handlers: DemoHandlers, image: object, phrases: str, score_threshold: float, mask_threshold: float
) -> SegmentImageResult:
    pil = handlers.load_upload(_uploaded_path(image))
    prompts = [Prompt(text=p) for p in fmt.split_phrases(phrases)]
    turn = TurnSettings.parse(score_threshold=score_threshold, mask_threshold=mask_threshold)
    groups = handlers.tiled.segment(pil, prompts, turn.thresholds)
    found = [inst for group in groups for inst in group]
    instances = [inst.model_copy(update={"id": i}).model_dump(mode="json") for i, inst in enumerate(found, start=1)]
    return {"image_size": [pil.height, pil.width], "instances": instances}  # type: ignore[typeddict-item]


def _uploaded_path(image: object) -> Path:
    """The path of an uploaded file (Gradio refuses any path it did not receive as an upload); ImageError if
    ``image`` is not a file at all."""
    path = image.get("path") if isinstance(image, dict) else getattr(image, "path", None)
    if not isinstance(path, str):
        raise ImageError(f"expected an uploaded image file, got {type(image).__name__}")
    return Path(path)
