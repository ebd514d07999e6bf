"""What travels over HTTP between the segmentation server and its clients: pydantic models and errors.

Requests and responses reuse the package's data model (``Prompt``, ``Thresholds``, ``Instance``): boxes
are XYXY pixels of the image as registered (EXIF already applied), masks COCO RLE. Every error answer is
``{"error": <message>, "type": <kind>}`` with one of the ``ErrorType`` kinds, so clients map it back to
the exception tree without parsing messages.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from enum import StrEnum
from http import HTTPStatus

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sam3_agent.engine.tiling import SegmentReport, TileMode
from sam3_agent.errors import ImageError
from sam3_agent.schema import MAX_CLICK_POINTS, BoxXYXY, Instance, Point, Prompt, Thresholds


class ErrorType(StrEnum):
    INVALID_REQUEST = "invalid_request"  # 400 / 422: malformed JSON, wrong fields
    IMAGE = "image_error"  # 400: not an image, corrupt, too many pixels
    PROMPT = "prompt_error"  # 422: a prompt does not fit the image, too many prompts
    UNAUTHORIZED = "unauthorized"  # 401
    UNKNOWN_IMAGE = "unknown_image"  # 404: image id never registered, or evicted
    NOT_FOUND = "not_found"  # 404: no such route
    METHOD_NOT_ALLOWED = "method_not_allowed"  # 405: the route exists, not with this method (see Allow)
    TOO_LARGE = "too_large"  # 413
    UNSUPPORTED_MEDIA = "unsupported_media_type"  # 415
    QUEUE_FULL = "queue_full"  # 429, with Retry-After
    TIMEOUT = "timeout"  # 504
    OUT_OF_MEMORY = "out_of_memory"  # 503, with Retry-After
    UNAVAILABLE = "unavailable"  # 503: shutting down, model not loaded
    INTERNAL = "internal"  # 500
    NOT_SUPPORTED = "not_supported"  # 501: not on this server (clicks without the SAM 3 tracker, no video model)
    VIDEO = "video_error"  # 400: not a video, corrupt, no decodable frame, frames too large
    UNKNOWN_VIDEO = "unknown_video"  # 404: video id never uploaded, or expired
    UNKNOWN_JOB = "unknown_job"  # 404: job id never started, or expired
    JOB_NOT_DONE = "job_not_done"  # 409: the job's result is asked for before it is done


class ApiError(Exception):
    """An HTTP error answer: ``status``, ``type`` (an ``ErrorType``), message and extra headers."""

    def __init__(self, status: int, type: ErrorType, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.headers = headers or {}


class ErrorBody(BaseModel):
    """Every error answer of the server: a one-line message for people and a kind for programs."""

    error: str = Field(description="what went wrong and what to do about it, one line")
    type: ErrorType = Field(description="the kind of error, stable across versions")


_ERROR_MEANINGS = {
    400: "malformed JSON, or an image that cannot be read or is too large (`invalid_request`, `image_error`)",
    401: "missing or wrong bearer token (`unauthorized`)",
    404: "unknown `image_id`: never registered, expired or evicted; register it again (`unknown_image`)",
    413: "request body over the server's limit (`too_large`)",
    415: "content type not accepted (`unsupported_media_type`)",
    422: "invalid fields, or a prompt that does not fit the image (`invalid_request`, `prompt_error`)",
    429: "queue full: retry after `Retry-After` seconds (`queue_full`)",
    501: "this server has no click engine (`not_supported`)",
    503: "out of memory, shutting down or the model not loaded; retry after `Retry-After` (`out_of_memory`, "
    "`unavailable`)",
    504: "no result within the server's timeout (`timeout`)",
}


def error_responses(*codes: int, meanings: Mapping[int, str] | None = None) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` for a route's error answers: each code with ``ErrorBody`` and what it means on this
    route (``meanings``), else on the image routes, else the HTTP reason phrase."""
    described = {**_ERROR_MEANINGS, **(meanings or {})}
    return {code: {"model": ErrorBody, "description": described.get(code, HTTPStatus(code).phrase)} for code in codes}


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
    (exemplar boxes in XYXY pixels of that image), optional thresholds (default: score 0.5, mask 0.5) and
    ``tile``: "never" (default), "always" or "auto" tiled segmentation (``sam3_agent.engine.tiling``)."""

    model_config = ConfigDict(extra="forbid")

    image_id: str | None = None
    image: str | None = None
    prompts: list[Prompt] = Field(min_length=1)
    thresholds: Thresholds | None = None
    tile: TileMode = "never"

    @model_validator(mode="after")
    def _one_image(self) -> SegmentRequest:
        if (self.image_id is None) == (self.image is None):
            raise ValueError("give exactly one of image_id (from POST /v1/images) or image (base64 / data URL)")
        return self


class SegmentResponse(BaseModel):
    """Per prompt, in prompt order, the instances kept (sorted by score; ``Segmenter.segment``). Ids are 1..N
    across the whole response, in this order: the first prompt's instances 1..k, the next prompt's k+1.., so
    no two instances of one response share an id. ``tiling``: the ``SegmentReport`` of a request with
    ``tile`` other than "never"."""

    image_id: str
    width: int
    height: int
    instances: list[list[Instance]]
    tiling: SegmentReport | None = None


class SegmentAtRequest(BaseModel):
    """``POST /v1/segment_at``: a registered ``image_id`` or an inline ``image``, and the clicks on ONE object
    (``ClickPrompt``'s fields: points with labels, and/or a box; see ``sam3_agent.server.clicks``)."""

    model_config = ConfigDict(extra="forbid")

    image_id: str | None = None
    image: str | None = None
    points: list[Point] = Field(default=[], max_length=MAX_CLICK_POINTS, description="[[x, y], ...] pixels")
    labels: list[int] | None = Field(default=None, description="per point: 1 on the object, 0 off it (default 1)")
    box: BoxXYXY | None = Field(default=None, description="[x0, y0, x1, y1] around the object, pixels")
    thresholds: Thresholds | None = Field(default=None, description="``mask`` applies (default 0.5)")

    @model_validator(mode="after")
    def _one_image(self) -> SegmentAtRequest:
        if (self.image_id is None) == (self.image is None):
            raise ValueError("give exactly one of image_id (from POST /v1/images) or image (base64 / data URL)")
        return self


class SegmentAtResponse(BaseModel):
    """The clicked object (``Clicker.segment_at``, id 1) on the image ``image_id``."""

    image_id: str
    width: int
    height: int
    instance: Instance


class ServerInfo(BaseModel):
    """``GET /v1/info``: what the server runs and the limits a client must respect."""

    segmenter: str
    device: str | None = None
    dtype: str | None = None
    max_batch: int
    max_prompts: int
    max_body_bytes: int
    max_pixels: int
    query_cap: int | None = Field(default=None, description="SAM 3's object queries per pass (once loaded)")


class RegistryUsage(BaseModel):
    """What the image registry holds now and its bounds (decoded bytes: as the pixels take in memory)."""

    images: int
    max_images: int
    bytes: int
    max_bytes: int


class Readiness(BaseModel):
    """``GET /readyz`` when the server takes requests (else 503 with an ``ErrorBody``)."""

    status: str = "ready"
    queue_depth: int
    images: RegistryUsage


_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_BASE64_CHARS = re.compile(r"^[A-Za-z0-9+/=_-]*$")
_PATH_HINTS = re.compile(r"[./\\~]")
_WHY_NOT = {"a URL": "the server does not fetch URLs", "a file path": "the server cannot read your files"}


def _reference_kind(text: str) -> str | None:
    """Say "a URL" or "a file path" when ``text`` (not a data URL) looks like one rather than base64, else None.

    A URL has a scheme (``://``, which base64 never contains). A file path is short, has no whitespace, and has
    characters outside the base64 alphabet (``.``, ``\\``, ``~``, ``:``) beside path-like ones; a JPEG's base64
    starts with ``/9j/`` but holds base64 characters only, so it is data.
    """
    if _URL.match(text):
        return "a URL"
    if len(text) <= 4096 and not any(c.isspace() for c in text) and not _BASE64_CHARS.match(text):
        return "a file path" if _PATH_HINTS.search(text) else None
    return None


def decode_base64_image(text: str, max_bytes: int) -> bytes:
    """The bytes of base64 text, with or without a ``data:<type>;base64,`` prefix and whitespace.

    Raises:
        ImageError: not base64 (saying so when it looks like a URL or a file path, which the server neither
            fetches nor reads), or decoding to more than ``max_bytes``.
    """
    kind = None if text.startswith("data:") else _reference_kind(text.strip())
    if kind is not None:
        shown = text.strip() if len(text.strip()) <= 80 else text.strip()[:77] + "..."
        raise ImageError(
            f"expected base64 image data, got what looks like {kind} ({shown!r}): {_WHY_NOT[kind]}; upload the "
            "image's bytes (POST /v1/images with Content-Type: image/*) or send them inline as base64 or a data URL"
        )
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
