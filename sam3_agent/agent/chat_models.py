"""Which chat model plans: the one place that turns LLM settings (or their absence) into a ``ChatModel``.

- no settings: the built-in ``QueryPlanner`` (no model, no network; common English query shapes);
- ``local:PATH``: a vision-language model run in-process with transformers (``local_vlm``), loaded once;
- anything else: the OpenAI-compatible endpoint (``OpenAIChatModel``).
"""

from __future__ import annotations

from sam3_agent.agent.llm_settings import LLMSettings
from sam3_agent.agent.messages import ChatModel

PLANNER_NOTICE = (
    "No language model configured: the built-in planner answers (common query shapes only). "
    "For free-form questions pass --llm-model (an OpenAI-compatible endpoint, or local:PATH)."
)
"""What surfaces tell people, once, when the planner stands in for an LLM."""


def make_chat_model(settings: LLMSettings | None) -> ChatModel:
    """The chat model for ``settings``; None gives the built-in planner. Nothing heavy is imported otherwise."""
    if settings is None:
        from sam3_agent.agent.planner import QueryPlanner

        return QueryPlanner()
    if settings.is_local:
        from sam3_agent.agent.local_vlm import load_local_vlm

        return load_local_vlm(settings)
    from sam3_agent.agent.openai_client import OpenAIChatModel

    return OpenAIChatModel(settings)


def describe_chat_model(settings: LLMSettings | None) -> str:
    """A short name for people: ``built-in planner``, ``local:./qwen`` or ``gpt-4o at <url>``."""
    if settings is None:
        return "built-in planner"
    if settings.is_local:
        return settings.model
    return f"{settings.model} at {settings.base_url}" if settings.base_url else settings.model
