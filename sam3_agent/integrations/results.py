"""What the ``sam3_segment``, ``sam3_count``, ``sam3_ask`` and video tools return, and their text summaries.

The models are the structured results (MCP ``structuredContent``, LangChain artifacts, the Python API);
``summary()`` is the compact text shown to the calling model: counts, ids, scores and boxes, no masks.
Instances are the package's one ``Instance`` type (boxes XYXY pixels, masks COCO RLE); within one
result their ids are 1, 2, 3, ...
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from sam3_agent.agent.clip_answer import ClipAnswer
from sam3_agent.agent.tools import describe
from sam3_agent.engine.tiling import SegmentReport
from sam3_agent.schema import Answer, AnswerStatus, Instance, TraceStep
from sam3_agent.video.summary import TrackSummary, track_table
from sam3_agent.video.tracks import ClipTracks, SampledFrame, VideoInfo

MAX_SUMMARY_INSTANCES = 25
"""Instances listed one per line in a summary; the rest are only counted (they are all in the result)."""


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PhraseCount(_Result):
    """How many instances one prompt found, and their ids."""

    phrase: str
    count: int = Field(ge=0)
    ids: list[int]


class SegmentResult(_Result):
    """Every instance found for each prompt of one ``sam3_segment`` call."""

    image_size: tuple[int, int] = Field(description="(height, width) of the image in pixels")
    phrases: list[PhraseCount]
    instances: list[Instance]
    tiling: SegmentReport | None = Field(default=None, description="tiles used; results near SAM 3's query cap")

    def summary(self) -> str:
        counts = "; ".join(f"'{p.phrase}': {p.count}" for p in self.phrases)
        head = f"Found {len(self.instances)} instance(s) in the {_size(self.image_size)} image ({counts})."
        return _with_instances(head + _tiling_note(self.tiling), self.instances, self.image_size)


class CountResult(_Result):
    """The de-duplicated count of one ``sam3_count`` call; ``instances`` are the counted objects."""

    phrase: str
    count: int = Field(ge=0)
    detected: int = Field(ge=0, description="instances above the score threshold before merging duplicates")
    image_size: tuple[int, int] = Field(description="(height, width) of the image in pixels")
    instances: list[Instance]
    tiling: SegmentReport | None = Field(default=None, description="tiles used; results near SAM 3's query cap")

    def summary(self) -> str:
        merged = self.detected - self.count
        head = f"Count of '{self.phrase}': {self.count}"
        if merged:
            head += f" ({self.detected} detected, {merged} duplicate(s) merged)"
        return _with_instances(head + "." + _tiling_note(self.tiling), self.instances, self.image_size)


class AskResult(_Result):
    """The agent's answer to one ``sam3_ask`` question; ``instances`` are the masks that answer it."""

    question: str
    status: AnswerStatus
    answer: str
    count: int | None = None
    image_size: tuple[int, int] = Field(description="(height, width) of the image in pixels")
    instances: list[Instance]
    found: int = Field(ge=0, description="instances the agent found in all, selected or not")
    trace: list[TraceStep]

    @classmethod
    def from_answer(cls, answer: Answer) -> AskResult:
        return cls(
            question=answer.query,
            status=answer.status,
            answer=answer.text,
            count=answer.count,
            image_size=answer.image_size,
            instances=list(answer.instances),
            found=len(answer.all_instances),
            trace=list(answer.trace),
        )

    def summary(self) -> str:
        head = f"Answer ({self.status}): {self.answer}"
        if self.count is not None:
            head += f"\nCount: {self.count}"
        head += f"\nSelected {len(self.instances)} of {self.found} instance(s) found."
        return _with_instances(head, self.instances, self.image_size)


def _tiling_note(report: SegmentReport | None) -> str:
    """The sentences a summary adds: the tiles searched, and a warning per result near SAM 3's query cap."""
    if report is None:
        return ""
    note = f" Searched in {report.tiles} overlapping tiles." if report.tiled else ""
    for row in report.prompts:
        if row.near_cap:
            where = "one tile" if row.tiled else "the image"
            note += (
                f" Warning: '{row.phrase}' returned {row.largest_pass} in {where}, near SAM 3's limit of "
                f"{report.query_cap} per pass: the count may be too low (try tile='always')."
            )
    return note


def _size(image_size: tuple[int, int]) -> str:
    height, width = image_size
    return f"{width}x{height}"


def _with_instances(head: str, instances: list[Instance], image_size: tuple[int, int]) -> str:
    if not instances:
        return head
    area = image_size[0] * image_size[1]
    lines = [head, "Instances (box = [x0, y0, x1, y1] in pixels):"]
    lines += [describe(inst, area) for inst in instances[:MAX_SUMMARY_INSTANCES]]
    if len(instances) > MAX_SUMMARY_INSTANCES:
        lines.append(f"... and {len(instances) - MAX_SUMMARY_INSTANCES} more (all are in the structured result)")
    return "\n".join(lines)


# --- video ------------------------------------------------------------------------------------------------------

MASKS_ELSEWHERE = (
    "Per-frame masks are not returned here: `sam3-agent track` and the HTTP server's video jobs give them."
)


class PhraseTracks(_Result):
    """How many objects (tracks) one phrase found through a clip, and their track ids."""

    phrase: str
    count: int = Field(ge=0)
    track_ids: list[int]


class TrackVideoResult(_Result):
    """One ``sam3_track_video`` call: one summary row per track and the frames looked at; no per-frame masks."""

    video: str = Field(description="the video's file name")
    info: VideoInfo
    phrases: list[PhraseTracks]
    tracks: list[TrackSummary]
    frames: list[SampledFrame] = Field(description="the frames looked at (clip frame index and time)")

    @classmethod
    def from_tracks(cls, video: str, clip: ClipTracks) -> TrackVideoResult:
        rows = track_table(clip)
        counts = [
            PhraseTracks(phrase=p, count=len(ids), track_ids=ids)
            for p in clip.phrases
            for ids in [[r.track_id for r in rows if r.phrase == p]]
        ]
        return cls(video=video, info=clip.video, phrases=counts, tracks=rows, frames=list(clip.frames))

    def summary(self) -> str:
        counts = "; ".join(f"'{p.phrase}': {p.count}" for p in self.phrases)
        head = f"Tracked {len(self.tracks)} object(s) in {self.video} ({counts}), {_frames_text(self.frames)}."
        return "\n".join([head, *_track_lines(self.tracks), MASKS_ELSEWHERE])


class AskVideoResult(_Result):
    """The clip agent's answer to one ``sam3_ask_video`` question; ``tracks`` are the rows of the chosen tracks."""

    question: str
    status: AnswerStatus
    answer: str
    count: int | None = None
    track_ids: list[int]
    frame: int | None = Field(default=None, description="the clip frame the answer is about, when it is about one")
    video: str = Field(description="the video's file name")
    info: VideoInfo
    tracks: list[TrackSummary]
    found: int = Field(ge=0, description="tracks found while answering, chosen or not")
    trace: list[TraceStep]

    @classmethod
    def from_answer(cls, video: str, answer: ClipAnswer) -> AskVideoResult:
        chosen = answer.selected_tracks()
        return cls(
            question=answer.query,
            status=answer.status,
            answer=answer.text,
            count=answer.count,
            track_ids=list(answer.track_ids),
            frame=answer.frame,
            video=video,
            info=answer.video,
            tracks=track_table(chosen) if chosen is not None else [],
            found=len(answer.tracks.tracks) if answer.tracks is not None else 0,
            trace=list(answer.trace),
        )

    def summary(self) -> str:
        lines = [f"Answer ({self.status}): {self.answer}"]
        if self.count is not None:
            lines.append(f"Count: {self.count}")
        if self.frame is not None:
            lines.append(f"About frame {self.frame}.")
        lines.append(f"Selected {len(self.track_ids)} of {self.found} track(s) found.")
        return "\n".join(lines + _track_lines(self.tracks))


def _frames_text(frames: list[SampledFrame]) -> str:
    if not frames:
        return "no frame looked at"
    first, last = frames[0], frames[-1]
    return (
        f"looking at {len(frames)} frame(s) from {first.index} ({first.time_s:g} s) to {last.index} ({last.time_s:g} s)"
    )


def _track_lines(rows: list[TrackSummary]) -> list[str]:
    lines = [
        f"track {r.track_id} '{r.phrase}': frames {r.first_frame}-{r.last_frame} ({r.first_s:g}-{r.last_s:g} s), "
        f"seen on {r.frames_seen}, best score {r.best_score:.2f}"
        for r in rows[:MAX_SUMMARY_INSTANCES]
    ]
    if len(rows) > MAX_SUMMARY_INSTANCES:
        lines.append(f"... and {len(rows) - MAX_SUMMARY_INSTANCES} more (all are in the structured result)")
    return lines
