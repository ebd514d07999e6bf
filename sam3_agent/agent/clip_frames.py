"""Frames of a clip for the clip agent: which sampled frame a tool argument means, the few keyframes shown to the
model, and how they are drawn (Set-of-Mark overlays numbered and coloured by track id, as ``render`` colours ids).

The model never sees every frame: ``pick_keyframes`` chooses at most a handful that together show as many of the
tracks as possible (the frame with the most tracks first, then frames where the others are seen, earliest first).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

from PIL import Image

from sam3_agent.agent.tools import Shown, ToolError
from sam3_agent.schema import Instance
from sam3_agent.video.frames import Clip
from sam3_agent.video.protocol import FrameSelection
from sam3_agent.video.tracks import SampledFrame, Track

FrameRef = int | Literal["first", "last", "busiest"]
"""A frame as tools take it: a clip frame index, or the first / last sampled frame, or the one with most tracks."""


_FRAME_WORDS = re.compile(r"^frame (?P<index>\d+) \((?P<time>\d+(?:\.\d+)?) s\)")


def frame_words(frame: SampledFrame) -> str:
    """``"frame 12 (1.20 s)"``: how tool results name a frame (they start with it when about one frame)."""
    return f"frame {frame.index} ({frame.time_s:.2f} s)"


def read_frame_words(text: str) -> tuple[int, str] | None:
    """The frame index and words a tool result about one frame starts with (see ``frame_words``), or None."""
    match = _FRAME_WORDS.match(text)
    return (int(match["index"]), match.group(0)) if match else None


def resolve_frame(frames: Sequence[SampledFrame], ref: FrameRef, tracks: Sequence[Track]) -> tuple[SampledFrame, str]:
    """The sampled frame ``ref`` means, and a note on how it was chosen (may be empty).

    ``busiest``: the frame with most of ``tracks`` on it (the earliest when several tie). An index that was not
    sampled means the nearest sampled frame (the earlier one when two are as near).

    Raises:
        ToolError: nothing was tracked yet (no sampled frames).
    """
    if not frames:
        raise ToolError("no frame has been looked at yet: call track_phrases first")
    if ref == "first":
        return frames[0], "the first sampled frame"
    if ref == "last":
        return frames[-1], "the last sampled frame"
    if ref == "busiest":
        counts = [sum(t.at(f.index) is not None for t in tracks) for f in frames]
        best = max(counts)
        ties = counts.count(best)
        note = f"the frame with most of them ({best})" + (f", the earliest of {ties} such frames" if ties > 1 else "")
        return frames[counts.index(best)], note
    nearest = min(frames, key=lambda f: (abs(f.index - ref), f.index))
    if nearest.index == ref:
        return nearest, ""
    return nearest, f"frame {ref} was not sampled; the nearest sampled frame is {nearest.index}"


def pick_keyframes(tracks: Sequence[Track], limit: int) -> list[int]:
    """At most ``limit`` frame indices that together show as many of ``tracks`` as possible (greedy: the frame
    showing most tracks not yet shown, the earliest on ties), in frame order."""
    on_frame: dict[int, set[int]] = {}
    for track in tracks:
        for frame in track.frames:
            on_frame.setdefault(frame.index, set()).add(track.track_id)
    remaining = {t.track_id for t in tracks}
    chosen: list[int] = []
    while remaining and len(chosen) < limit:
        best = max(sorted(on_frame), key=lambda i: len(on_frame[i] & remaining))
        chosen.append(best)
        remaining -= on_frame[best]
    return sorted(chosen)


def draw_frames(
    clip: Clip,
    selection: FrameSelection,
    frames: Sequence[SampledFrame],
    instances_at: Callable[[int], list[Instance]],
) -> list[Shown]:
    """Each of ``frames`` with the instances ``instances_at(index)`` drawn on it (ids = track ids), decoding the
    clip once up to the last of them."""
    from sam3_agent.render import render_overlay  # compiles raster loops: only when a frame is drawn

    wanted = {f.index: f for f in frames}
    images: dict[int, Image.Image] = {}
    if wanted:
        for sampled, image in clip.frames(selection):
            if sampled.index in wanted:
                images[sampled.index] = image
            if sampled.index >= max(wanted):
                break
    shown = []
    for index in sorted(images):
        instances = instances_at(index)
        ids = ", ".join(f"#{inst.id}" for inst in instances) or "none"
        caption = f"{frame_words(wanted[index])} with tracks {ids}"
        shown.append(Shown(render_overlay(images[index], instances), caption))
    return shown
