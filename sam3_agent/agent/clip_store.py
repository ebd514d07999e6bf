"""The track store: every track found while answering one query about a clip, under ids that never change.

Each ``VideoTracker.track`` call numbers its tracks 1..N; the store re-numbers them so that tracks of a later call
(new phrases) get ids after the earlier ones, and remembers which phrases were tracked (also those that found
nothing), so a phrase is never tracked twice in one query. One id is one object through the whole clip.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sam3_agent.agent.tools import ToolError
from sam3_agent.video.tracks import ClipTracks, SampledFrame, Track, TrackFrame, VideoInfo


def phrase_key(phrase: str) -> str:
    """How phrases are compared: spaces collapsed, lower case."""
    return " ".join(phrase.split()).lower()


class TrackStore:
    """Tracks of one query, keyed by ids 1, 2, 3, ... (never reused), and the phrases tracked so far."""

    def __init__(self, video: VideoInfo) -> None:
        self.video = video
        self._tracks: dict[int, Track] = {}
        self._phrases: dict[str, tuple[str, list[int]]] = {}  # key -> (phrase as tracked, ids)
        self._frames: dict[int, SampledFrame] = {}

    def tracked(self, phrase: str) -> bool:
        return phrase_key(phrase) in self._phrases

    def ids_of(self, phrase: str) -> list[int]:
        """The ids of the tracks found for ``phrase`` (empty when it found nothing or was not tracked)."""
        return list(self._phrases.get(phrase_key(phrase), ("", []))[1])

    def add(self, asked: Sequence[str], result: ClipTracks) -> None:
        """Store the tracks of one tracker call for the phrases ``asked`` (matched to the tracker's own spelling of
        each phrase by ``phrase_key``: trackers normalise spaces and may drop duplicates)."""
        for frame in result.frames:
            self._frames.setdefault(frame.index, frame)
        for phrase in asked:
            self._phrases.setdefault(phrase_key(phrase), (phrase, []))
        for said in result.phrases:
            self._phrases[phrase_key(said)] = (said, [])
        for track in sorted(result.tracks, key=lambda t: t.track_id):
            new_id = len(self._tracks) + 1
            self._tracks[new_id] = _renumbered(track, new_id)
            self._phrases[phrase_key(track.phrase)][1].append(new_id)

    def get(self, ids: Iterable[int]) -> list[Track]:
        """The tracks with these ids, in the order asked, repeated ids once.

        Raises:
            ToolError: some ids are not track ids (the message lists the valid ones).
        """
        wanted = list(dict.fromkeys(ids))
        unknown = [i for i in wanted if i not in self._tracks]
        if unknown:
            shown = ", ".join(str(i) for i in unknown)
            valid = ", ".join(str(i) for i in self._tracks)
            hint = f"valid track ids are: {valid}" if valid else "no track yet: call track_phrases first"
            raise ToolError(f"unknown track id(s) {shown}; {hint}")
        return [self._tracks[i] for i in wanted]

    def all(self) -> list[Track]:
        return list(self._tracks.values())

    @property
    def frames(self) -> list[SampledFrame]:
        """The frames the tracker looked at, in order (empty before the first tracking call)."""
        return [self._frames[i] for i in sorted(self._frames)]

    def phrases(self) -> list[str]:
        return [said for said, _ in self._phrases.values()]

    def clip_tracks(self) -> ClipTracks | None:
        """Everything found, as one ``ClipTracks``; None when nothing was tracked."""
        if not self._phrases:
            return None
        return ClipTracks(
            video=self.video, phrases=tuple(self.phrases()), frames=tuple(self.frames), tracks=tuple(self.all())
        )

    def summary(self) -> str:
        """One line, e.g. ``"car #1, #2; dog none"``."""
        if not self._phrases:
            return "nothing tracked"
        return "; ".join(
            f"{said} " + (", ".join(f"#{i}" for i in ids) or "none") for said, ids in self._phrases.values()
        )


def _renumbered(track: Track, new_id: int) -> Track:
    if track.track_id == new_id:
        return track
    frames = tuple(
        TrackFrame(index=f.index, time_s=f.time_s, instance=f.instance.model_copy(update={"id": new_id}))
        for f in track.frames
    )
    return Track(track_id=new_id, phrase=track.phrase, frames=frames)
