"""Video: every instance of a phrase tracked through a clip.

- ``tracks``: the data (``VideoInfo``, ``TrackFrame``, ``Track``, ``ClipTracks``), beside ``Instance``;
- ``protocol``: the ``VideoTracker`` protocol and ``TrackOptions`` (frame selection, thresholds);
- ``frames``: decoding a clip as a stream of frames (PyAV), with the checks made before any model work;
- ``engine``: the transformers SAM 3 video engine (``Sam3VideoEngine`` on ``Sam3VideoModel``), loaded on first use,
  with ``session`` (a streamed, pruned inference session), ``collect`` (per-frame RLE -> tracks) and
  ``checkpoint`` (loading the video model);
- ``outputs``: what a run writes (JSON with per-frame COCO RLE, an overlay mp4, a track table).

Nothing here imports torch at import time: ``Sam3VideoEngine`` is imported from ``engine`` on first access.
"""

from typing import TYPE_CHECKING

from sam3_agent.video.protocol import FrameSelection, TrackOptions, VideoTracker
from sam3_agent.video.tracks import ClipTracks, SampledFrame, Track, TrackFrame, VideoInfo

if TYPE_CHECKING:
    from sam3_agent.video.engine import Sam3VideoEngine

__all__ = [
    "ClipTracks",
    "FrameSelection",
    "Sam3VideoEngine",
    "SampledFrame",
    "Track",
    "TrackFrame",
    "TrackOptions",
    "VideoInfo",
    "VideoTracker",
]


def __getattr__(name: str) -> object:
    if name == "Sam3VideoEngine":  # torch and transformers load only when the engine is asked for
        from sam3_agent.video.engine import Sam3VideoEngine

        return Sam3VideoEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
