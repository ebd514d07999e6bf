"""What the agent returns for one query about a clip: the answer text, the count, the chosen tracks, every track."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from sam3_agent.schema import AnswerStatus, TraceStep
from sam3_agent.video.protocol import TrackOptions
from sam3_agent.video.tracks import ClipTracks, Track, VideoInfo


class ClipAnswer(BaseModel):
    """The answer to one query about a clip.

    ``track_ids``: the tracks that answer the query (ids of ``tracks``; one id is one object through the whole
    clip). ``frame``: the clip frame the answer is about, when it is about one ("how many people are there at the
    end": the last sampled frame). ``tracks``: every track found while answering, None when nothing was tracked.
    ``options``: how the clip was tracked (its ``frames`` is the selection to draw an overlay video with).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    query: str
    status: AnswerStatus
    text: str
    count: int | None = None
    track_ids: tuple[int, ...] = ()
    frame: int | None = Field(default=None, ge=0)
    tracks: ClipTracks | None = None
    video: VideoInfo
    options: TrackOptions = TrackOptions()
    trace: tuple[TraceStep, ...] = ()

    @property
    def selected(self) -> list[Track]:
        """The chosen tracks, in ``track_ids`` order."""
        if self.tracks is None:
            return []
        found = (self.tracks.track(i) for i in self.track_ids)
        return [t for t in found if t is not None]

    def selected_tracks(self) -> ClipTracks | None:
        """``tracks`` with only the chosen tracks (same frames and phrases), for an overlay of the answer."""
        if self.tracks is None:
            return None
        return self.tracks.model_copy(update={"tracks": tuple(self.selected)})
