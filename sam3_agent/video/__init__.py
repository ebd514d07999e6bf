"""Video: every instance of a phrase tracked through a clip.

- ``tracks``: the data (``VideoInfo``, ``TrackFrame``, ``Track``, ``ClipTracks``), beside ``Instance``;
- ``protocol``: the ``VideoTracker`` protocol and ``TrackOptions`` (frame selection, thresholds);
- ``frames``: decoding a clip as a stream of frames (PyAV), with the checks made before any model work;
- ``engine``: the transformers SAM 3 video engine (``Sam3VideoModel``), loaded on first use;
- ``outputs``: what a run writes (JSON with per-frame COCO RLE, an overlay mp4, a track table).

Nothing here imports torch at import time.
"""

from sam3_agent.video.protocol import FrameSelection, TrackOptions, VideoTracker
from sam3_agent.video.tracks import ClipTracks, SampledFrame, Track, TrackFrame, VideoInfo

__all__ = [
    "ClipTracks",
    "FrameSelection",
    "SampledFrame",
    "Track",
    "TrackFrame",
    "TrackOptions",
    "VideoInfo",
    "VideoTracker",
]
