"""What travels over HTTP between the segmentation server and its clients: pydantic models and errors.

Requests and responses reuse the package's data model (``Prompt``, ``Thresholds``, ``Instance``): boxes
are XYXY pixels of the image as registered (EXIF already applied), masks COCO RLE. Every error answer is
``{"error": <message>, "type": <kind>}`` with one of the ``ErrorType`` kinds, so clients map it back to
the exception tree without parsing messages.
"""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sam3_agent.errors import ImageError
from sam3_agent.schema import Instance, Prompt, Thresholds


class ErrorType(StrEnum):
    INVALID_REQUEST = "invalid_request"  # 400 / 422: malformed JSON, wrong fields
    IMAGE = "image_error"  # 400: not an image, corrupt, too many pixels
    PROMPT = "prompt_error"  # 422: a prompt does not fit the image, too many prompts
    UNAUTHORIZED = "unauthorized"  # 401
    UNKNOWN_IMAGE = "unknown_image"  # 404: image id never registered, or evicted
    NOT_FOUND = "not_found"  # 404 / 405: no such route or method
    TOO_LARGE = "too_large"  # 413
    UNSUPPORTED_MEDIA = "unsupported_media_type"  # 415
    QUEUE_FULL = "queue_full"  # 429, with Retry-After
    TIMEOUT = "timeout"  # 504
    OUT_OF_MEMORY = "out_of_memory"  # 503, with Retry-After
    UNAVAILABLE = "unavailable"  # 503: shutting down, model not loaded
    INTERNAL = "internal"  # 500


class ApiError(Exception):
    """An HTTP error answer: ``status``, ``type`` (an ``ErrorType``), message and extra headers."""

    def __init__(self, status: int, type: ErrorType, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.headers = headers or {}


class ErrorBody(BaseModel):
    error: str
    type: ErrorType


class ImageInfo(BaseModel):
    """A registered image: its id (content digest of the decoded RGB pixels) and size in pixels."""

    image_id: str
    width: int
    height: int


class RegisterImage(BaseModel):
    """JSON form of ``POST /v1/images`` (raw image bytes work too): base64 of the encoded file, or a data URL."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(min_length=1)


class SegmentRequest(BaseModel):
    """``POST /v1/segment``: a registered ``image_id`` or an inline ``image`` (base64 / data URL), the prompts
    (exemplar boxes in XYXY pixels of that image) and optional thresholds (default: score 0.5, mask 0.5)."""

    model_config = ConfigDict(extra="forbid")

    image_id: str | None = None
    image: str | None = None
    prompts: list[Prompt] = Field(min_length=1)
    thresholds: Thresholds | None = None

    @model_validator(mode="after")
    def _one_image(self) -> SegmentRequest:
        if (self.image_id is None) == (self.image is None):
            raise ValueError("give exactly one of image_id (from POST /v1/images) or image (base64 / data URL)")
        return self


class SegmentResponse(BaseModel):
    """Per prompt, in prompt order, the instances kept (sorted by score, ids 0..n-1; ``Segmenter.segment``)."""

    image_id: str
    width: int
    height: int
    instances: list[list[Instance]]


class ServerInfo(BaseModel):
    """``GET /v1/info``: what the server runs and the limits a client must respect."""

    segmenter: str
    device: str | None = None
    dtype: str | None = None
    max_batch: int
    max_prompts: int
    max_body_bytes: int
    max_pixels: int


def decode_base64_image(text: str, max_bytes: int) -> bytes:
    """The bytes of base64 text, with or without a ``data:<type>;base64,`` prefix and whitespace.

    Raises:
        ImageError: not base64, or decoding to more than ``max_bytes``.
    """
    if text.startswith("data:"):
        header, comma, text = text.partition(",")
        if not comma or not header.lower().endswith(";base64"):
            raise ImageError("a data URL image must look like 'data:image/png;base64,<base64 data>'")
    payload = "".join(text.split())
    if len(payload) * 3 // 4 > max_bytes:
        raise ImageError(f"the inline image decodes to about {len(payload) * 3 // 4:,} bytes, over {max_bytes:,}")
    try:
        return base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageError(f"the inline image is not valid base64: {exc}") from None
