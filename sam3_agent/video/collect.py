"""Per-frame masks of the video model's objects -> ``Track`` objects: thresholds, presence check, ids 1..N.

The engine hands over each object's mask on each frame as COCO RLE as soon as the frame is post-processed
(``TrackCollector.add``); nothing dense is kept. ``tracks`` applies ``TrackOptions``: the per-frame score cut,
the clip-level presence check and ``min_frames``, then numbers what is left 1..N in order of first appearance
(ties: the model's own order), across phrases. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sam3_agent.masks import Rle, mask_data
from sam3_agent.schema import Instance
from sam3_agent.video.protocol import TrackOptions
from sam3_agent.video.tracks import SampledFrame, Track, TrackFrame


@dataclass(frozen=True)
class _Seen:
    frame: SampledFrame
    rle: Rle
    score: float
    presence: float
    box: tuple[int, int, int, int]
    area: int


@dataclass
class _Object:
    phrase: str
    order: int
    seen: list[_Seen] = field(default_factory=list)


class TrackCollector:
    """Collects the model's objects frame by frame (keyed by the model's object id) and the phrases' presence."""

    def __init__(self, phrases: tuple[str, ...]) -> None:
        self.phrases = phrases
        self.best_presence = dict.fromkeys(phrases, 0.0)
        self._objects: dict[int, _Object] = {}

    def saw_presence(self, phrase: str, presence: float) -> None:
        """Record SAM 3's presence score of ``phrase`` on one sampled frame."""
        self.best_presence[phrase] = max(self.best_presence[phrase], presence)

    def add(self, object_id: int, phrase: str, frame: SampledFrame, rle: Rle, score: float, presence: float) -> None:
        """Record object ``object_id``'s mask on ``frame`` (frames arrive in order; an empty mask is skipped)."""
        data = mask_data(rle)
        if data.area == 0:
            return
        obj = self._objects.setdefault(object_id, _Object(phrase=phrase, order=len(self._objects)))
        clamp = lambda v: min(max(float(v), 0.0), 1.0)  # noqa: E731
        obj.seen.append(_Seen(frame, rle, clamp(score), clamp(presence), data.box, data.area))

    def tracks(self, options: TrackOptions) -> tuple[Track, ...]:
        """The tracks left after ``options``' cuts, ids 1..N by first appearance."""
        present = {p for p, best in self.best_presence.items() if best >= options.presence}
        kept: list[tuple[str, list[_Seen], int]] = []
        for obj in self._objects.values():
            seen = [s for s in obj.seen if s.score >= options.score]
            if obj.phrase in present and len(seen) >= options.min_frames:
                kept.append((obj.phrase, seen, obj.order))
        kept.sort(key=lambda k: (k[1][0].frame.index, k[2]))
        return tuple(_track(i, phrase, seen) for i, (phrase, seen, _) in enumerate(kept, start=1))


def _track(track_id: int, phrase: str, seen: list[_Seen]) -> Track:
    frames = tuple(
        TrackFrame(
            index=s.frame.index,
            time_s=s.frame.time_s,
            instance=Instance(
                id=track_id,
                phrase=phrase,
                score=s.score,
                presence_score=s.presence,
                box=s.box,
                rle=s.rle,
                area=s.area,
            ),
        )
        for s in seen
    )
    return Track(track_id=track_id, phrase=phrase, frames=frames)
