"""Test doubles for video surfaces: a small mp4 of moving coloured squares, and a tracker that finds a named colour.

``ColourTracker`` returns one track per phrase naming a colour ("red" -> the red square on each frame it is on), so
the tracks are exact and a test of a surface (CLI, demo, server) checks its plumbing, not a model.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from sam3_agent.errors import Cancelled
from sam3_agent.masks import rle_encode
from sam3_agent.schema import Instance
from sam3_agent.video.tracks import ClipTracks, Track, TrackFrame

COLOURS = {"red": (255, 0, 0), "blue": (0, 0, 255)}
H, W, FRAMES, FPS = 64, 96, 12, 6


def _frames() -> list[np.ndarray]:
    """A red square moving right on every frame; a blue one on frames 4..7 only."""
    out = []
    for i in range(FRAMES):
        rgb = np.full((H, W, 3), 40, np.uint8)
        rgb[10:26, 4 + 5 * i : 20 + 5 * i] = COLOURS["red"]
        if 4 <= i <= 7:
            rgb[40:56, 60:76] = COLOURS["blue"]
        out.append(rgb)
    return out


def write_mp4(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        # H.264 where this PyAV build has it: what browsers play (the demo's upload panel); MPEG-4 part 2 otherwise
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "0"} if codec == "libx264" else {"qscale": "1"}
        for rgb in _frames():
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


class ColourTracker:
    """One track per phrase naming a colour: the pixels near that colour on each frame looked at."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], object]] = []

    def track(self, clip, phrases, options=None, *, progress=None, cancel=None) -> ClipTracks:
        self.calls.append((list(phrases), options))
        selection = options.frames if options else None
        sampled, per_phrase = [], {p: [] for p in phrases}
        planned = len(clip.plan(selection))
        for frame, image in clip.frames(selection):
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            sampled.append(frame)
            rgb = np.asarray(image).astype(int)
            for track_id, phrase in enumerate(phrases, start=1):
                mask = np.abs(rgb - COLOURS[phrase]).sum(axis=2) < 90
                if mask.sum() < 20:
                    continue
                ys, xs = np.nonzero(mask)
                box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
                inst = Instance(
                    id=track_id, phrase=phrase, score=0.9, box=box, rle=rle_encode(mask), area=int(mask.sum())
                )
                per_phrase[phrase].append(TrackFrame(index=frame.index, time_s=frame.time_s, instance=inst))
            if progress:
                progress(len(sampled), planned)
        tracks = tuple(
            Track(track_id=i, phrase=p, frames=tuple(per_phrase[p]))
            for i, p in enumerate(phrases, start=1)
            if per_phrase[p]
        )
        return ClipTracks(video=clip.info, phrases=tuple(phrases), frames=tuple(sampled), tracks=tracks)
