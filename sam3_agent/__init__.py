"""sam3-agent: an LLM agent that answers questions about images by driving SAM 3."""

from sam3_agent.errors import (
    CheckpointError,
    ConfigError,
    ImageError,
    LLMError,
    PromptError,
    Sam3AgentError,
)
from sam3_agent.schema import Answer, ExemplarBox, Instance, Prompt, Rle, Thresholds, TraceStep

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "CheckpointError",
    "ConfigError",
    "ExemplarBox",
    "ImageError",
    "Instance",
    "LLMError",
    "Prompt",
    "PromptError",
    "Rle",
    "Sam3AgentError",
    "Thresholds",
    "TraceStep",
]
