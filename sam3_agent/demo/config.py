"""Settings of the demo: server-side defaults (``DemoConfig``) and the per-request page settings (``TurnSettings``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sam3_agent.agent.chat_models import describe_chat_model
from sam3_agent.agent.llm_settings import LOCAL_PREFIX, LLMSettings, ToolMode
from sam3_agent.errors import ConfigError
from sam3_agent.schema import Thresholds
from sam3_agent.validation import validation_message

Mode = Literal["agent", "segment"]
"""``agent``: a language model (or, without one, the built-in planner) answers questions with SAM 3;
``segment``: the message is noun phrases, SAM 3 alone."""

MAX_PHRASES = 16


class DemoConfig(BaseModel):
    """What the server operator chooses when starting the demo (flags of ``sam3-agent demo``).

    The LLM fields prefill the page's Settings; each user may change them for their own session. Without an
    LLM model the built-in planner answers agent questions (common query shapes only). A ``local:PATH`` model
    runs on the server, so only the operator can choose one: the page may use it, never another local path.
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
        """Always ``agent``: without an LLM model the built-in planner answers."""
        return "agent"

    @property
    def answered_by(self) -> str:
        """Who answers agent questions by default, for people: ``built-in planner`` or the model's name."""
        if not self.llm_model:
            return describe_chat_model(None)
        return describe_chat_model(LLMSettings(model=self.llm_model, base_url=self.llm_base_url))


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
            raise ConfigError(f"invalid settings: {validation_message(err, whole='settings')}") from None

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(score=self.score_threshold, mask=self.mask_threshold)

    def llm_settings(self, config: DemoConfig) -> LLMSettings | None:
        """The language model to use for this request; None (no model given) means the built-in planner.

        Raises:
            ConfigError: the endpoint is not an http(s) URL, or a ``local:`` model the server was not started
                with (the page cannot make the server load models).
        """
        model = self.llm_model.strip()
        if not model:
            return None
        if model.startswith(LOCAL_PREFIX) and model != (config.llm_model or "").strip():
            raise ConfigError(
                f"{LOCAL_PREFIX} models run on the server, so only its operator can choose one "
                f"(sam3-agent demo --llm-model {LOCAL_PREFIX}PATH); enter an endpoint's model, or leave "
                "the model empty for the built-in planner"
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
            raise ConfigError(f"invalid LLM settings: {validation_message(err, whole='settings')}") from None
