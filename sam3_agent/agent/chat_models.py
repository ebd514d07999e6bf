"""Which chat model plans: the one place that turns LLM settings (or their absence) into a ``ChatModel``.

- no settings: the built-in ``QueryPlanner`` (no model, no network; common English query shapes);
- ``local:PATH``: a vision-language model run in-process with transformers (``local_vlm``), loaded once;
- anything else: the OpenAI-compatible endpoint (``OpenAIChatModel``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from sam3_agent.agent.llm_settings import LLMSettings
from sam3_agent.agent.messages import ChatModel

PLANNER_NOTICE = (
    "No language model configured: the built-in planner answers (common query shapes only). "
    "For free-form questions pass --llm-model (an OpenAI-compatible endpoint, or local:PATH)."
)
"""What surfaces tell people, once, when the planner stands in for an LLM."""


def make_chat_model(settings: LLMSettings | None, *, on_wait: Callable[[str], None] | None = None) -> ChatModel:
    """The chat model for ``settings``; None gives the built-in planner. Nothing heavy is imported otherwise.

    ``on_wait``: told (one line) when a request to an HTTP endpoint is slow; see ``OpenAIChatModel``."""
    if settings is None:
        from sam3_agent.agent.planner import QueryPlanner

        return QueryPlanner()
    if settings.is_local:
        from sam3_agent.agent.local_vlm import load_local_vlm

        return load_local_vlm(settings)
    from sam3_agent.agent.openai_client import OpenAIChatModel

    return OpenAIChatModel(settings, on_wait=on_wait)


def check_chat_model(model: ChatModel) -> str | None:
    """One cheap request to an HTTP endpoint before any heavy work (``OpenAIChatModel.check``): raises
    ``LLMError`` when it is unreachable, hung or refuses us; returns a warning when it does not list the model
    (some endpoints list only part of theirs). Other chat models need no check: None."""
    client = sys.modules.get("sam3_agent.agent.openai_client")  # loaded if model is one; else no need to import openai
    if client is None or not isinstance(model, client.OpenAIChatModel):
        return None
    served = model.check()
    wanted = model.settings.model
    if not served or wanted in served:
        return None
    shown = ", ".join(served[:8]) + (", ..." if len(served) > 8 else "")
    return f"the LLM endpoint at {model.base_url} lists no model {wanted!r} (it lists {shown}); check --llm-model"


def describe_chat_model(settings: LLMSettings | None) -> str:
    """A short name for people: ``built-in planner``, ``local:./qwen`` or ``gpt-4o at <url>``."""
    if settings is None:
        return "built-in planner"
    if settings.is_local:
        return settings.model
    return f"{settings.model} at {settings.base_url}" if settings.base_url else settings.model
