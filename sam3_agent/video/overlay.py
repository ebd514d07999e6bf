"""The overlay video: each sampled frame with its objects drawn (colour and number = track id), as an mp4.

Frames are decoded, drawn and encoded one at a time, so writing a long clip holds one frame, not the clip.
"""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from sam3_agent.errors import VideoError
from sam3_agent.video.frames import Clip
from sam3_agent.video.protocol import FrameSelection
from sam3_agent.video.tracks import ClipTracks

_CODECS = ("libx264", "h264", "mpeg4")


def overlay_fps(clip: Clip, tracks: ClipTracks) -> float:
    """The frame rate that plays the sampled frames at the clip's speed (the clip's rate over the stride)."""
    times = [f.time_s for f in tracks.frames]
    if len(times) < 2 or times[-1] <= times[0]:
        return clip.info.fps
    return max(1.0, (len(times) - 1) / (times[-1] - times[0]))


def write_overlay_video(clip: Clip, tracks: ClipTracks, path: Path, selection: FrameSelection | None = None) -> Path:
    """Draw every frame ``tracks`` looked at (``selection`` must be the one the tracker used) and encode an mp4 at
    ``path``, through a temporary file renamed at the end (a failure leaves no half-written video).

    Raises:
        VideoError: no encoder for mp4 in this PyAV build, or the clip fails to decode.
    """
    import av

    from sam3_agent.render import render_overlay

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".mp4")
    os.close(fd)
    sampled = {f.index for f in tracks.frames}
    try:
        with av.open(tmp, "w", format="mp4") as out:
            stream = _video_stream(out, clip, overlay_fps(clip, tracks))
            for frame, image in clip.frames(selection):
                if frame.index not in sampled:
                    continue
                drawn = render_overlay(image, tracks.instances_at(frame.index))
                rgb = _even(np.asarray(drawn))
                for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _video_stream(out, clip: Clip, fps: float):
    import av

    rate = Fraction(fps).limit_denominator(1001)
    for name in _CODECS:
        try:
            stream = out.add_stream(name, rate=rate)
        except (av.error.FFmpegError, ValueError):
            continue
        stream.width = clip.info.width - clip.info.width % 2
        stream.height = clip.info.height - clip.info.height % 2
        stream.pix_fmt = "yuv420p"
        return stream
    raise VideoError(f"this PyAV build has no mp4 video encoder (tried {', '.join(_CODECS)})")


def _even(rgb: np.ndarray) -> np.ndarray:
    """yuv420p needs even sides: drop a last odd row / column."""
    h, w = rgb.shape[:2]
    return np.ascontiguousarray(rgb[: h - h % 2, : w - w % 2])
