"""Tracks as data: one object followed through a clip, with a stable id and its mask on every frame it is seen.

Frame numbers are indices into the decoded clip (0 = its first frame), whatever frames were sampled; times are
seconds from the clip's start. A track's per-frame masks are ``Instance`` objects whose ``id`` is the track id,
so everything that works on instances (geometry, overlays, algebra) works on a frame of a clip.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sam3_agent.schema import Instance


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VideoInfo(_Frozen):
    """What the container says of a clip: frame size, frame rate, and (when known) its length."""

    width: int = Field(gt=0)
    height: int = Field(gt=0)
    fps: float = Field(gt=0.0)
    frame_count: int | None = Field(default=None, ge=0, description="None when the container does not say")
    duration_s: float | None = Field(default=None, ge=0.0)
    codec: str = ""


class SampledFrame(_Frozen):
    """A frame the tracker looked at: its index in the clip and its time."""

    index: int = Field(ge=0)
    time_s: float = Field(ge=0.0)


class TrackFrame(_Frozen):
    """One object on one frame: where the frame is, and the object's mask there (``instance.id`` = track id)."""

    index: int = Field(ge=0)
    time_s: float = Field(ge=0.0)
    instance: Instance


class Track(_Frozen):
    """One object followed through a clip: its id (unique within the clip), its phrase, its frames in order."""

    track_id: int = Field(ge=1)
    phrase: str
    frames: tuple[TrackFrame, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Track:
        indices = [f.index for f in self.frames]
        if indices != sorted(set(indices)):
            raise ValueError(f"track {self.track_id}: frames must be in increasing order, each once")
        if any(f.instance.id != self.track_id for f in self.frames):
            raise ValueError(f"track {self.track_id}: every per-frame instance must carry the track id")
        return self

    @property
    def first(self) -> TrackFrame:
        return self.frames[0]

    @property
    def last(self) -> TrackFrame:
        return self.frames[-1]

    @property
    def frames_seen(self) -> int:
        """How many sampled frames the object is on."""
        return len(self.frames)

    @property
    def duration_s(self) -> float:
        """Seconds from the first frame it is seen on to the last (0 for a single frame)."""
        return self.last.time_s - self.first.time_s

    @property
    def best_score(self) -> float:
        return max(f.instance.score for f in self.frames)

    def at(self, index: int) -> Instance | None:
        """The object's instance on frame ``index``, or None when it is not seen there."""
        for frame in self.frames:
            if frame.index == index:
                return frame.instance
        return None


class ClipTracks(_Frozen):
    """What tracking phrases through a clip found: the clip, the frames looked at, and every track."""

    video: VideoInfo
    phrases: tuple[str, ...]
    frames: tuple[SampledFrame, ...]
    tracks: tuple[Track, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> ClipTracks:
        ids = [t.track_id for t in self.tracks]
        if len(ids) != len(set(ids)):
            raise ValueError("track ids must be unique within a clip")
        sampled = {f.index for f in self.frames}
        for track in self.tracks:
            if track.phrase not in self.phrases:
                raise ValueError(f"track {track.track_id} has phrase {track.phrase!r}, not one of {self.phrases}")
            missing = [f.index for f in track.frames if f.index not in sampled]
            if missing:
                raise ValueError(f"track {track.track_id} is on frame {missing[0]}, which was not sampled")
        return self

    def track(self, track_id: int) -> Track | None:
        return next((t for t in self.tracks if t.track_id == track_id), None)

    def tracks_of(self, phrases: Iterable[str] | None = None) -> list[Track]:
        """The tracks of these phrases (all when None), in id order."""
        wanted = None if phrases is None else set(phrases)
        return [t for t in self.tracks if wanted is None or t.phrase in wanted]

    def instances_at(self, index: int, phrases: Iterable[str] | None = None) -> list[Instance]:
        """Every object on frame ``index`` (ids = track ids), in id order."""
        found = (t.at(index) for t in self.tracks_of(phrases))
        return [inst for inst in found if inst is not None]

    def count_per_frame(self, phrases: Iterable[str] | None = None) -> list[tuple[SampledFrame, int]]:
        """How many objects are on each sampled frame (0 included)."""
        chosen = self.tracks_of(phrases)
        per_index = {f.index: 0 for f in self.frames}
        for track in chosen:
            for frame in track.frames:
                per_index[frame.index] += 1
        return [(f, per_index[f.index]) for f in self.frames]
