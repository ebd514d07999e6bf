"""Caller-facing errors: a small tree, each message saying what was expected and what was found.

Errors meant for the language model (a bad tool argument, an unknown mask id) are not raised as these:
the agent turns them into tool results so the model can retry. See ``sam3_agent.agent.tools``.
"""


class Sam3AgentError(Exception):
    """Base of every error sam3-agent raises on purpose."""


class ImageError(Sam3AgentError, ValueError):
    """The image could not be read, or is not one we accept (corrupt, empty, too large, not an image)."""


class PromptError(Sam3AgentError, ValueError):
    """A segmentation prompt is invalid (empty phrase, inverted box, box outside the image)."""


class CheckpointError(Sam3AgentError):
    """The SAM 3 checkpoint is missing, unreadable, or not a SAM 3 checkpoint."""


class LLMError(Sam3AgentError):
    """The language-model endpoint failed after retries, or answered something unusable."""


class ConfigError(Sam3AgentError, ValueError):
    """A setting (flag, environment variable, argument) has an invalid value."""


class VideoError(Sam3AgentError, ValueError):
    """The video could not be read, or is not one we accept (corrupt, no frames, too large, unsupported codec)."""


class Cancelled(Sam3AgentError):
    """Long work (tracking through a clip) was cancelled by the caller; checked between frames."""
