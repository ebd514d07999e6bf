"""The agent: LLM clients, tools, the mask store and the loop. Submodules are imported on demand.

The clip agent's entry points are importable from here (loaded on first access): ``answer_clip``, ``ClipAgent``,
``ClipAnswer``.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "answer_clip": "sam3_agent.agent.clip_agent",
    "ClipAgent": "sam3_agent.agent.clip_agent",
    "ClipAnswer": "sam3_agent.agent.clip_answer",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
