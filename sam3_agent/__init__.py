"""sam3-agent: an LLM agent that answers questions about images by driving SAM 3.

Public names are imported on first use, so ``import sam3_agent`` stays light (no torch, no openai).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Answer": "sam3_agent.schema",
    "ClickPrompt": "sam3_agent.schema",
    "ExemplarBox": "sam3_agent.schema",
    "Instance": "sam3_agent.schema",
    "Prompt": "sam3_agent.schema",
    "Rle": "sam3_agent.schema",
    "Thresholds": "sam3_agent.schema",
    "TraceStep": "sam3_agent.schema",
    "Sam3AgentError": "sam3_agent.errors",
    "CheckpointError": "sam3_agent.errors",
    "ConfigError": "sam3_agent.errors",
    "ImageError": "sam3_agent.errors",
    "LLMError": "sam3_agent.errors",
    "PromptError": "sam3_agent.errors",
    "Segmenter": "sam3_agent.engine.protocol",
    "Clicker": "sam3_agent.engine.protocol",
    "Sam3Engine": "sam3_agent.engine.transformers_engine",
    "ClickEngine": "sam3_agent.engine.clicks",
    "Sam3Agent": "sam3_agent.agent.loop",
    "LLMSettings": "sam3_agent.agent.llm_settings",
    "OpenAIChatModel": "sam3_agent.agent.openai_client",
    "QueryPlanner": "sam3_agent.agent.planner",
    "load_image": "sam3_agent.images",
    "render_overlay": "sam3_agent.render",
}

__all__ = [
    "Answer",
    "CheckpointError",
    "ClickEngine",
    "ClickPrompt",
    "Clicker",
    "ConfigError",
    "ExemplarBox",
    "ImageError",
    "Instance",
    "LLMError",
    "LLMSettings",
    "OpenAIChatModel",
    "Prompt",
    "PromptError",
    "QueryPlanner",
    "Rle",
    "Sam3Agent",
    "Sam3AgentError",
    "Sam3Engine",
    "Segmenter",
    "Thresholds",
    "TraceStep",
    "load_image",
    "render_overlay",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sam3_agent' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:
    from sam3_agent.agent.llm_settings import LLMSettings
    from sam3_agent.agent.loop import Sam3Agent
    from sam3_agent.agent.openai_client import OpenAIChatModel
    from sam3_agent.agent.planner import QueryPlanner
    from sam3_agent.engine.clicks import ClickEngine
    from sam3_agent.engine.protocol import Clicker, Segmenter
    from sam3_agent.engine.transformers_engine import Sam3Engine
    from sam3_agent.errors import (
        CheckpointError,
        ConfigError,
        ImageError,
        LLMError,
        PromptError,
        Sam3AgentError,
    )
    from sam3_agent.images import load_image
    from sam3_agent.render import render_overlay
    from sam3_agent.schema import Answer, ClickPrompt, ExemplarBox, Instance, Prompt, Rle, Thresholds, TraceStep
