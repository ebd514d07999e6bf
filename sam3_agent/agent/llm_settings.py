"""Settings of the OpenAI-compatible language-model endpoint, from arguments and environment variables.

Precedence: explicit overrides (CLI flags, keyword arguments) > ``SAM3_AGENT_LLM_*`` variables >
``OPENAI_*`` variables > defaults. Local servers (vLLM, Ollama, llama.cpp) usually need no API key; the
client then sends ``PLACEHOLDER_API_KEY``.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sam3_agent.errors import ConfigError
from sam3_agent.validation import validation_message

ToolMode = Literal["auto", "native", "text"]

LOCAL_PREFIX = "local:"
"""``--llm-model local:PATH`` runs a vision-language model in-process (``sam3_agent.agent.local_vlm``)."""

PLACEHOLDER_API_KEY = "sam3-agent-no-key"
"""Sent when no key is configured: the ``openai`` client insists on one, local servers ignore it."""

ENV_MODEL = "SAM3_AGENT_LLM_MODEL"
ENV_BASE_URL = "SAM3_AGENT_LLM_BASE_URL"
ENV_API_KEY = "SAM3_AGENT_LLM_API_KEY"
ENV_TOOL_MODE = "SAM3_AGENT_LLM_TOOL_MODE"
ENV_TIMEOUT = "SAM3_AGENT_LLM_TIMEOUT"

# setting name -> environment variables, first set one wins
_ENV_SOURCES: dict[str, tuple[str, ...]] = {
    "model": (ENV_MODEL,),
    "base_url": (ENV_BASE_URL, "OPENAI_BASE_URL"),
    "api_key": (ENV_API_KEY, "OPENAI_API_KEY"),
    "tool_mode": (ENV_TOOL_MODE,),
    "timeout": (ENV_TIMEOUT,),
}
_NOT_A_MODEL = {"timeout"}
"""Overrides that alone configure no language model (a timeout for whichever endpoint is chosen)."""
_NOT_A_MODEL_ENV = {"OPENAI_API_KEY", ENV_TIMEOUT}
"""Variables that alone configure none (OPENAI_API_KEY is often set for other tools)."""


class LLMSettings(BaseModel):
    """How to reach the chat-completions endpoint and how to talk to it.

    ``tool_mode``: "native" sends OpenAI function tools; "text" describes the tools in the system prompt
    and parses ``<tool>`` blocks; "auto" starts native and switches to text for good once the endpoint
    rejects ``tools``. ``timeout``: seconds to wait for one answer. Retries: up to ``max_retries`` extra
    attempts on 429 / 5xx / connection errors, and ``timeout_retries`` after requests that timed out (an
    endpoint that accepts and never answers rarely recovers), waiting a random time growing exponentially
    from ``retry_min_wait`` to ``retry_max_wait`` seconds, or the server's ``Retry-After`` capped at
    ``retry_after_cap`` seconds.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1)
    base_url: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    tool_mode: ToolMode = "auto"
    timeout: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=4, ge=0)
    timeout_retries: int = Field(default=1, ge=0)
    temperature: float = Field(default=0.0, ge=0)
    max_tokens: int | None = Field(default=None, gt=0)
    retry_min_wait: float = Field(default=0.5, ge=0)
    retry_max_wait: float = Field(default=20.0, ge=0)
    retry_after_cap: float = Field(default=60.0, ge=0)

    @model_validator(mode="after")
    def _check_waits(self) -> LLMSettings:
        if self.retry_max_wait < self.retry_min_wait:
            raise ValueError(
                f"retry_max_wait ({self.retry_max_wait}) must be >= retry_min_wait ({self.retry_min_wait})"
            )
        return self

    @property
    def timeout_attempts(self) -> int:
        """Requests made at most to an endpoint that never answers."""
        return 1 + min(self.timeout_retries, self.max_retries)

    @property
    def hang_budget(self) -> float:
        """Seconds one model turn takes at most against an endpoint that never answers: every attempt's
        timeout and the waits between them."""
        return self.timeout_attempts * self.timeout + (self.timeout_attempts - 1) * self.retry_max_wait

    @property
    def api_key_or_placeholder(self) -> str:
        """The configured key, or ``PLACEHOLDER_API_KEY`` when none is set (keyless local servers)."""
        return self.api_key or PLACEHOLDER_API_KEY

    @property
    def is_local(self) -> bool:
        """True for ``local:PATH`` models, run in-process through transformers instead of over HTTP."""
        return self.model.startswith(LOCAL_PREFIX)

    @property
    def local_path(self) -> str:
        """The checkpoint of a ``local:PATH`` model (a directory or a hub id)."""
        if not self.is_local:
            raise ConfigError(f"model {self.model!r} is not a local model (expected {LOCAL_PREFIX}PATH)")
        return self.model[len(LOCAL_PREFIX) :]

    @classmethod
    def configured(cls, **overrides: Any) -> LLMSettings | None:
        """Like :meth:`from_env`, but None when no language model is configured anywhere (no model and no
        endpoint in overrides or environment): the caller then uses the built-in planner."""
        chosen = any(value is not None for key, value in overrides.items() if key not in _NOT_A_MODEL)
        if not chosen and not any(
            os.environ.get(name) for names in _ENV_SOURCES.values() for name in names if name not in _NOT_A_MODEL_ENV
        ):
            return None
        return cls.from_env(**overrides)

    @classmethod
    def from_env(cls, **overrides: Any) -> LLMSettings:
        """Settings from the environment, with ``overrides`` (e.g. CLI flags) winning.

        Overrides whose value is None are ignored, so unset flags can be passed straight through. Raises
        ``ConfigError`` when no model is set anywhere, or when a value is invalid (naming the field).
        """
        values: dict[str, Any] = {}
        for field, names in _ENV_SOURCES.items():
            for name in names:
                if os.environ.get(name):
                    values[field] = os.environ[name]
                    break
        values.update({key: value for key, value in overrides.items() if value is not None})
        if not values.get("model"):
            raise ConfigError(
                f"no language model set: pass --llm-model or set {ENV_MODEL} (the model name your "
                "OpenAI-compatible endpoint serves, e.g. 'gpt-4o' or 'Qwen/Qwen2.5-VL-7B-Instruct', or "
                f"{LOCAL_PREFIX}PATH for a vision-language model run in-process)"
            )
        try:
            return cls(**values)
        except ValidationError as err:
            raise ConfigError(f"invalid LLM settings: {validation_message(err, whole='settings')}") from err
