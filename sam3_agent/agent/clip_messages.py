"""The first message of a conversation about a clip: the query, the clip's size and length, and the frames the
tracker looks at. ``clip_query_of`` reads the query back (the built-in clip planner starts from it)."""

from __future__ import annotations

from collections.abc import Sequence

from sam3_agent.agent.messages import Message, TextPart, UserMessage
from sam3_agent.video.tracks import SampledFrame, VideoInfo

_QUERY_PREFIX = "Query: "
_CLIP_LINE = "\nThe clip is "


def clip_intro(query: str, video: VideoInfo, frames: Sequence[SampledFrame]) -> str:
    """The text of the first user message about a clip."""
    length = f"{video.frame_count} frames" if video.frame_count is not None else "an unknown number of frames"
    if video.duration_s is not None:
        length += f", {video.duration_s:.2f} s"
    sampled = "no frame is planned"
    if frames:
        step = frames[1].index - frames[0].index if len(frames) > 1 else 1
        every = "every frame" if step == 1 else f"one frame in {step}"
        sampled = f"{len(frames)} frames are looked at ({every} from frame {frames[0].index} to {frames[-1].index})"
    return (
        f"{_QUERY_PREFIX}{query}{_CLIP_LINE}{video.width}x{video.height} pixels at {video.fps:g} fps ({length}); "
        f"{sampled}. Frame numbers are the clip's frame indices (0 = its first frame); boxes are [x0, y0, x1, y1] "
        "in pixels of a frame."
    )


def clip_query_of(messages: Sequence[Message]) -> str | None:
    """The query of a conversation started by the clip agent (see :func:`clip_intro`), or None."""
    first = next((m for m in messages if isinstance(m, UserMessage)), None)
    text = next((p.text for p in first.content if isinstance(p, TextPart)), None) if first else None
    if text is None or not text.startswith(_QUERY_PREFIX) or _CLIP_LINE not in text:
        return None
    return text[len(_QUERY_PREFIX) : text.rindex(_CLIP_LINE)]
