"""The ``VideoTracker`` protocol: phrases + a clip -> tracks. Implementations: ``sam3_agent.video.engine``
(SAM 3's video model in process) and test fakes (``sam3_agent.testing.fake_tracker``). No torch here."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from sam3_agent.video.frames import Clip
    from sam3_agent.video.tracks import ClipTracks

DEFAULT_MAX_FRAMES = 300


class FrameSelection(BaseModel):
    """Which frames of a clip are looked at: every ``stride``-th frame of [start_s, end_s), at most ``max_frames``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stride: int = Field(default=1, ge=1, le=1000)
    max_frames: int = Field(default=DEFAULT_MAX_FRAMES, ge=1, le=100_000)
    start_s: float = Field(default=0.0, ge=0.0)
    end_s: float | None = Field(default=None, gt=0.0)

    @model_validator(mode="after")
    def _ordered(self) -> FrameSelection:
        if self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"the time range is empty: end {self.end_s:g} s is not after start {self.start_s:g} s")
        return self


class TrackOptions(BaseModel):
    """How to track: the frames, the per-frame score cut, and the clip-level presence check.

    ``presence``: a phrase whose best presence score over the sampled frames stays below this yields no track at
    all (SAM 3's presence head says the concept is absent), instead of low-scored noise.
    ``min_frames``: drop tracks seen on fewer sampled frames (flicker).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    frames: FrameSelection = FrameSelection()
    score: float = Field(default=0.5, ge=0.0, le=1.0)
    presence: float = Field(default=0.5, ge=0.0, le=1.0)
    min_frames: int = Field(default=1, ge=1)


ProgressFn = Callable[[int, int], None]
"""Called after each frame with (frames done, frames planned)."""


@runtime_checkable
class VideoTracker(Protocol):
    def track(
        self,
        clip: Clip,
        phrases: Sequence[str],
        options: TrackOptions | None = None,
        *,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> ClipTracks:
        """Track every instance of each phrase through the selected frames of ``clip``.

        Returns:
            ``ClipTracks`` with ``phrases`` as given (stripped), ``frames`` = the frames looked at, and one track
            per object: ids 1..N unique across phrases, each per-frame instance's ``id`` = its track id and
            ``phrase`` = its phrase, masks as COCO RLE of the clip's frame size.

        Raises:
            PromptError: no phrase, or an empty one (before any frame is decoded).
            VideoError: the clip cannot be decoded (a frame fails part way).
            Cancelled: ``cancel`` was set; checked between frames.
        """
        ...


class LazyTracker:
    """A ``VideoTracker`` that loads the real one (``load()``) on its first clip, once, so a process that may never
    see a video (an MCP server, a demo) does not load a video model at start."""

    def __init__(self, load: Callable[[], VideoTracker]) -> None:
        self._load = load
        self._tracker: VideoTracker | None = None
        self._lock = threading.Lock()

    def track(
        self,
        clip: Clip,
        phrases: Sequence[str],
        options: TrackOptions | None = None,
        *,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> ClipTracks:
        with self._lock:
            if self._tracker is None:
                self._tracker = self._load()
        return self._tracker.track(clip, phrases, options, progress=progress, cancel=cancel)
