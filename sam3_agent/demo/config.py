"""Settings of the demo: server-side defaults (``DemoConfig``) and the per-request page settings (``TurnSettings``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sam3_agent.agent.llm_settings import LLMSettings, ToolMode
from sam3_agent.errors import ConfigError
from sam3_agent.schema import Thresholds

Mode = Literal["agent", "segment"]
"""``agent``: an LLM answers questions with SAM 3; ``segment``: the message is noun phrases, SAM 3 alone."""

MAX_PHRASES = 16


class DemoConfig(BaseModel):
    """What the server operator chooses when starting the demo (flags of ``sam3-agent demo``).

    The LLM fields prefill the page's Settings; each user may change them for their own session.
    ``llm_api_key`` never reaches the browser: it is used for requests whose endpoint equals
    ``llm_base_url`` and whose key field on the page is empty.
    ``max_upload_bytes`` / ``max_pixels``: larger uploads are refused with a message saying so.
    ``workdir``: where per-session result files are written (a temporary folder when None).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = Field(default=None, repr=False)
    tool_mode: ToolMode = "auto"
    llm_timeout: float = Field(default=120.0, gt=0)
    llm_max_retries: int = Field(default=2, ge=0)
    max_turns: int = Field(default=12, ge=1)
    score_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    mask_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    max_upload_bytes: int = Field(default=20 * 2**20, ge=1)
    max_pixels: int = Field(default=40_000_000, ge=1)
    concurrency: int = Field(default=4, ge=1)
    workdir: Path | None = None
    title: str = "sam3-agent"

    @property
    def default_mode(self) -> Mode:
        """``agent`` when an LLM model is configured, else ``segment`` (useful before there is an LLM)."""
        return "agent" if self.llm_model else "segment"


class TurnSettings(BaseModel):
    """The Settings panel as one request sends it (each browser session has its own)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Mode = "segment"
    score_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    mask_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: str = Field(default="", repr=False)

    @classmethod
    def parse(cls, **values: object) -> TurnSettings:
        """Validate page values; raise ``ConfigError`` naming the bad field (e.g. a threshold out of [0, 1])."""
        try:
            return cls.model_validate({k: v for k, v in values.items() if v is not None})
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            raise ConfigError(f"invalid settings: {problems}") from None

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(score=self.score_threshold, mask=self.mask_threshold)

    def llm_settings(self, config: DemoConfig) -> LLMSettings:
        """The chat endpoint to use for this request.

        Raises:
            ConfigError: no model given, or the endpoint is not an http(s) URL.
        """
        model = self.llm_model.strip()
        if not model:
            raise ConfigError(
                "no language model set: enter the model name under Settings (LLM model), "
                "or switch the mode to 'Segment only' to segment phrases without an LLM"
            )
        base_url = self.llm_base_url.strip() or None
        if base_url is not None and not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"the LLM endpoint must be an http(s) URL like http://localhost:8000/v1, got {base_url!r}"
            )
        key = self.llm_api_key.strip() or (config.llm_api_key if base_url == config.llm_base_url else None)
        try:
            return LLMSettings(
                model=model,
                base_url=base_url,
                api_key=key,
                tool_mode=config.tool_mode,
                timeout=config.llm_timeout,
                max_retries=config.llm_max_retries,
            )
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            raise ConfigError(f"invalid LLM settings: {problems}") from None
