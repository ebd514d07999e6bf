"""What people and programs read of a tracking run: one summary row per track, and frame-major JSON."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from sam3_agent.video.tracks import ClipTracks, Track


class TrackSummary(BaseModel):
    """One row of the track table."""

    model_config = ConfigDict(frozen=True)

    track_id: int
    phrase: str
    first_frame: int
    last_frame: int
    first_s: float
    last_s: float
    duration_s: float
    frames_seen: int
    best_score: float


def summarize(track: Track) -> TrackSummary:
    return TrackSummary(
        track_id=track.track_id,
        phrase=track.phrase,
        first_frame=track.first.index,
        last_frame=track.last.index,
        first_s=round(track.first.time_s, 3),
        last_s=round(track.last.time_s, 3),
        duration_s=round(track.duration_s, 3),
        frames_seen=track.frames_seen,
        best_score=round(track.best_score, 4),
    )


def track_table(clip: ClipTracks) -> list[TrackSummary]:
    """One row per track, in id order."""
    return [summarize(t) for t in sorted(clip.tracks, key=lambda t: t.track_id)]


def clip_json(clip: ClipTracks, *, video: str = "") -> dict:
    """The JSON a tracking run writes: the clip, the phrases, the track table, and every sampled frame with the
    objects on it (track id, phrase, score, box, COCO RLE, area). Frames where nothing is seen are listed too, so a
    reader can tell "looked and found nothing" from "not looked at"."""
    per_frame: dict[int, list[dict]] = {f.index: [] for f in clip.frames}
    for track in sorted(clip.tracks, key=lambda t: t.track_id):
        for frame in track.frames:
            inst = frame.instance
            per_frame[frame.index].append(
                {
                    "track_id": track.track_id,
                    "phrase": track.phrase,
                    "score": inst.score,
                    "box": list(inst.box),
                    "area": inst.area,
                    "rle": inst.rle.model_dump(mode="json"),
                }
            )
    return {
        "video": video,
        "info": clip.video.model_dump(mode="json"),
        "phrases": list(clip.phrases),
        "tracks": [row.model_dump(mode="json") for row in track_table(clip)],
        "frames": [
            {"index": f.index, "time_s": round(f.time_s, 4), "objects": per_frame[f.index]} for f in clip.frames
        ],
    }
