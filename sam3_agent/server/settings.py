"""Settings of the segmentation server: batching, limits, auth. One frozen pydantic model."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sam3_agent.errors import ConfigError
from sam3_agent.images import DEFAULT_MAX_PIXELS

TOKEN_ENV = "SAM3_AGENT_SERVER_TOKEN"
"""Environment variable holding the bearer token (server: required token; client: token to send)."""


class ServerSettings(BaseModel):
    """How the server batches, bounds and guards requests.

    Batching: a forward pass takes up to ``max_batch`` prompts; the first queued request waits at most
    ``max_wait_ms`` for others to join it. Limits: at most ``max_queue`` requests wait (more are answered
    429 with ``Retry-After``); a request waits at most ``timeout_s`` for its result (then 504); request
    bodies over ``max_body_mb`` are refused (413), as are images over ``max_pixels`` and requests with
    over ``max_prompts`` prompts. ``token``: when set, ``/v1/*`` needs ``Authorization: Bearer <token>``
    (health, readiness and metrics stay open for probes and scrapers). Registered images: at most
    ``max_images`` of them and ``max_image_mb`` of decoded pixels (what they take in memory, not their file
    size: a few KB of PNG may decode to 200 MB), least recently used evicted first, each kept for at most
    ``image_ttl_s`` seconds after last use; an image bigger than ``max_image_mb`` alone is refused (400).
    Video: uploads (``POST /v1/videos``) up to ``max_video_mb``, at most ``max_videos`` clips kept (least
    recently used dropped first, after ``image_ttl_s`` too).
    ``drain_timeout_s``: on shutdown, how long queued requests may take to finish.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_batch: int = Field(default=16, ge=1, le=1024)
    max_wait_ms: float = Field(default=5.0, ge=0.0, le=10_000.0)
    max_queue: int = Field(default=256, ge=1)
    timeout_s: float = Field(default=60.0, gt=0.0)
    max_body_mb: float = Field(default=32.0, gt=0.0)
    max_pixels: int = Field(default=DEFAULT_MAX_PIXELS, ge=1)
    max_prompts: int = Field(default=64, ge=1)
    max_images: int = Field(default=256, ge=1)
    image_ttl_s: float = Field(default=3600.0, gt=0.0)
    max_image_mb: float = Field(default=1024.0, gt=0.0)
    max_video_mb: float = Field(default=256.0, gt=0.0)
    max_videos: int = Field(default=16, ge=1)
    token: str | None = Field(default=None, repr=False)
    drain_timeout_s: float = Field(default=30.0, ge=0.0)

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 2**20)

    @property
    def max_video_bytes(self) -> int:
        """The body limit of ``POST /v1/videos`` (a clip is bigger than an image request)."""
        return int(self.max_video_mb * 2**20)

    @property
    def max_image_bytes(self) -> int:
        """The image registry's cap on decoded bytes."""
        return max(1, int(self.max_image_mb * 2**20))

    @classmethod
    def build(cls, *, token_from_env: bool = True, **values: object) -> ServerSettings:
        """Settings from keyword values (None values are left at their defaults); the token falls back to
        $SAM3_AGENT_SERVER_TOKEN when ``token_from_env``. Raises ConfigError naming the invalid setting."""
        values = {k: v for k, v in values.items() if v is not None}
        if token_from_env and "token" not in values and os.environ.get(TOKEN_ENV):
            values["token"] = os.environ[TOKEN_ENV]
        if values.get("token") == "":
            raise ConfigError("the server token is an empty string: give a non-empty token or none at all")
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"invalid server setting {where}: {first['msg']} (got {first.get('input')!r})") from None
