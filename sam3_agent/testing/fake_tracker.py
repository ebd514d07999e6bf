"""A ``VideoTracker`` that returns exact, scripted tracks: tests of the clip agent know every right answer.

Each phrase maps to the objects it finds (``FakeObject``): the clip frames an object is visible on (gaps are
occlusions or the object leaving and coming back: it keeps its one id), a box on its first frame and how far the
box moves per frame. ``FakeTracker.track`` keeps the frames the ``TrackOptions`` sample, numbers the objects 1..N
across the phrases in the order given, and paints each box as a rectangular mask of the clip's frame size. It
records every call, so tests can check that the agent tracks each phrase set once.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sam3_agent.agent.planner.words import singular
from sam3_agent.errors import Cancelled, PromptError
from sam3_agent.masks import rle_encode
from sam3_agent.schema import MAX_PHRASE_CHARS, BoxXYXY, Instance
from sam3_agent.video.frames import Clip
from sam3_agent.video.protocol import ProgressFn, TrackOptions
from sam3_agent.video.tracks import ClipTracks, SampledFrame, Track, TrackFrame


@dataclass(frozen=True)
class FakeObject:
    """One object of a phrase: visible on clip frames ``frames``, with ``box`` (XYXY pixels) on the first of them,
    moving ``step`` (dx, dy) pixels per frame after it, with detection score ``score`` on every frame."""

    frames: Sequence[int]
    box: BoxXYXY = (0.0, 0.0, 10.0, 10.0)
    step: tuple[float, float] = (0.0, 0.0)
    score: float = 0.9

    def __post_init__(self) -> None:
        if not self.frames or list(self.frames) != sorted(set(self.frames)) or min(self.frames) < 0:
            raise ValueError(f"frames must be increasing, distinct and >= 0, got {list(self.frames)}")
        x0, y0, x1, y1 = self.box
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"box must satisfy x0 < x1 and y0 < y1 (XYXY), got {self.box}")

    def box_at(self, index: int, width: int, height: int) -> tuple[int, int, int, int]:
        """The integer box on clip frame ``index``, clipped to the frame (may be empty at the border)."""
        dx, dy = (index - self.frames[0]) * self.step[0], (index - self.frames[0]) * self.step[1]
        x0, y0, x1, y1 = self.box
        x0, x1 = (min(max(round(v + dx), 0), width) for v in (x0, x1))
        y0, y1 = (min(max(round(v + dy), 0), height) for v in (y0, y1))
        return x0, y0, x1, y1


class FakeTracker:
    """Implements ``sam3_agent.video.protocol.VideoTracker`` with scripted objects per phrase.

    Phrases are matched stripped, case-insensitively and singular or plural alike ("people" finds the objects
    scripted for "person", as ``SceneSegmenter`` matches phrases); a phrase with no script finds nothing.
    ``calls`` holds the phrases of every ``track`` call, in order.
    """

    def __init__(self, objects: Mapping[str, Sequence[FakeObject]]) -> None:
        self._objects = {_key(phrase): tuple(found) for phrase, found in objects.items()}
        self.calls: list[tuple[str, ...]] = []

    def track(
        self,
        clip: Clip,
        phrases: Sequence[str],
        options: TrackOptions | None = None,
        *,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> ClipTracks:
        phrases = _check_phrases(phrases)
        options = options or TrackOptions()
        self.calls.append(phrases)
        frames = clip.plan(options.frames)
        for done in range(1, len(frames) + 1):
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"tracking was cancelled after {done - 1} of {len(frames)} frames")
            if progress is not None:
                progress(done, len(frames))
        tracks: list[Track] = []
        for phrase in phrases:
            for obj in self._objects.get(_key(phrase), ()):
                if obj.score < options.score:
                    continue
                track = _track(len(tracks) + 1, phrase, obj, frames, clip)
                if track is not None and track.frames_seen >= options.min_frames:
                    tracks.append(track)
        return ClipTracks(video=clip.info, phrases=phrases, frames=tuple(frames), tracks=tuple(tracks))


def _key(phrase: str) -> str:
    return singular(" ".join(phrase.split()).lower())


def _check_phrases(phrases: Sequence[str]) -> tuple[str, ...]:
    if isinstance(phrases, str) or not phrases:
        raise PromptError("give at least one phrase to track, as a list of strings")
    cleaned = tuple(p.strip() if isinstance(p, str) else "" for p in phrases)
    for phrase in cleaned:
        if not phrase:
            raise PromptError("a phrase to track is empty")
        if len(phrase) > MAX_PHRASE_CHARS:
            raise PromptError(f"the phrase {phrase[:40]!r}... is longer than {MAX_PHRASE_CHARS} characters")
    return cleaned


def _track(track_id: int, phrase: str, obj: FakeObject, frames: Sequence[SampledFrame], clip: Clip) -> Track | None:
    visible = set(obj.frames)
    width, height = clip.info.width, clip.info.height
    seen: list[TrackFrame] = []
    for frame in frames:
        if frame.index not in visible:
            continue
        x0, y0, x1, y1 = obj.box_at(frame.index, width, height)
        if x1 <= x0 or y1 <= y0:
            continue  # moved out of the picture
        mask = np.zeros((height, width), bool)
        mask[y0:y1, x0:x1] = True
        inst = Instance(
            id=track_id,
            phrase=phrase,
            score=obj.score,
            box=(float(x0), float(y0), float(x1), float(y1)),
            rle=rle_encode(mask),
            area=int(mask.sum()),
        )
        seen.append(TrackFrame(index=frame.index, time_s=frame.time_s, instance=inst))
    return Track(track_id=track_id, phrase=phrase, frames=tuple(seen)) if seen else None
