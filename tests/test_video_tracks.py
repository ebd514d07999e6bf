"""The track data model: consistency checks, per-frame queries, the summary table, JSON, overlay video, supervision."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from sam3_agent.errors import VideoError
from sam3_agent.masks import rle_decode, rle_encode
from sam3_agent.schema import Instance
from sam3_agent.video import ClipTracks, SampledFrame, Track, TrackFrame, VideoInfo
from sam3_agent.video.frames import Clip
from sam3_agent.video.interop import frame_detections
from sam3_agent.video.overlay import write_overlay_video
from sam3_agent.video.summary import clip_json, track_table

H, W, FPS = 48, 64, 5.0


def _square(x: int, y: int, side: int = 10) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[y : y + side, x : x + side] = True
    return mask


def _frame(track_id: int, phrase: str, index: int, x: int, y: int, score: float = 0.9) -> TrackFrame:
    mask = _square(x, y)
    inst = Instance(id=track_id, phrase=phrase, score=score, box=(x, y, x + 10, y + 10), rle=rle_encode(mask), area=100)
    return TrackFrame(index=index, time_s=index / FPS, instance=inst)


def _clip_tracks() -> ClipTracks:
    frames = tuple(SampledFrame(index=i, time_s=i / FPS) for i in range(6))
    car = Track(track_id=1, phrase="car", frames=tuple(_frame(1, "car", i, 4 * i, 5) for i in range(4)))
    # seen on 1, gone on 2-3 (occluded), back on 4-5: one object, one id
    dog = Track(track_id=2, phrase="dog", frames=tuple(_frame(2, "dog", i, 40, 30, 0.7) for i in (1, 4, 5)))
    info = VideoInfo(width=W, height=H, fps=FPS, frame_count=6, duration_s=6 / FPS)
    return ClipTracks(video=info, phrases=("car", "dog"), frames=frames, tracks=(car, dog))


def test_per_frame_queries_and_counts():
    tracks = _clip_tracks()
    assert [inst.id for inst in tracks.instances_at(1)] == [1, 2]
    assert [inst.id for inst in tracks.instances_at(2)] == [1]
    assert tracks.instances_at(5, ["car"]) == []
    assert [n for _, n in tracks.count_per_frame()] == [1, 2, 1, 1, 1, 1]
    assert [n for _, n in tracks.count_per_frame(["dog"])] == [0, 1, 0, 0, 1, 1]
    dog = tracks.track(2)
    assert dog is not None and dog.frames_seen == 3 and dog.first.index == 1 and dog.last.index == 5
    assert dog.duration_s == pytest.approx(0.8)
    assert dog.at(2) is None and dog.at(4) is not None


def test_inconsistent_tracks_are_refused():
    tracks = _clip_tracks()
    car = tracks.track(1)
    with pytest.raises(ValidationError, match="increasing order"):
        Track(track_id=1, phrase="car", frames=tuple(reversed(car.frames)))
    with pytest.raises(ValidationError, match="carry the track id"):
        Track(track_id=7, phrase="car", frames=car.frames)
    with pytest.raises(ValidationError, match="unique"):
        ClipTracks(video=tracks.video, phrases=("car",), frames=tracks.frames, tracks=(car, car))
    with pytest.raises(ValidationError, match="not sampled"):
        ClipTracks(video=tracks.video, phrases=("car",), frames=tracks.frames[:2], tracks=(car,))
    with pytest.raises(ValidationError, match="not one of"):
        ClipTracks(video=tracks.video, phrases=("dog",), frames=tracks.frames, tracks=(car,))


def test_table_and_json():
    tracks = _clip_tracks()
    rows = track_table(tracks)
    assert [(r.track_id, r.phrase, r.first_frame, r.last_frame, r.frames_seen) for r in rows] == [
        (1, "car", 0, 3, 4),
        (2, "dog", 1, 5, 3),
    ]
    payload = json.loads(json.dumps(clip_json(tracks, video="clip.mp4")))
    assert payload["phrases"] == ["car", "dog"]
    assert [len(f["objects"]) for f in payload["frames"]] == [1, 2, 1, 1, 1, 1]
    obj = payload["frames"][4]["objects"][0]
    assert obj["track_id"] == 2 and obj["rle"]["size"] == [H, W]
    from sam3_agent.schema import Rle

    assert rle_decode(Rle.model_validate(obj["rle"])).sum() == 100


def _frames(n: int = 6) -> list[Image.Image]:
    return [Image.new("RGB", (W, H), (20 * i, 40, 60)) for i in range(n)]


def test_overlay_video_has_the_sampled_frames_drawn(tmp_path):
    import av

    clip = Clip.from_frames(_frames(), fps=FPS)
    tracks = _clip_tracks()
    path = write_overlay_video(clip, tracks, tmp_path / "out" / "overlay.mp4")
    assert path.exists() and not list(path.parent.glob(".*"))
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 6 and decoded[0].shape == (H, W, 3)
    # the car's square on frame 0 is coloured: it differs from the plain background there
    background = np.asarray(_frames()[0])
    inside = decoded[0][7:13, 6:12].astype(int) - background[7:13, 6:12].astype(int)
    outside = decoded[0][30:40, 20:30].astype(int) - background[30:40, 20:30].astype(int)
    assert np.abs(inside).mean() > 20 > np.abs(outside).mean()


def test_from_frames_checks_its_input():
    with pytest.raises(VideoError, match="no frames"):
        Clip.from_frames([])
    with pytest.raises(VideoError, match="one size"):
        Clip.from_frames([Image.new("RGB", (4, 4)), Image.new("RGB", (5, 4))])
    with pytest.raises(VideoError, match="HxWx3 uint8"):
        Clip.from_frames([np.zeros((4, 4), np.uint8)])


def test_supervision_detections_carry_tracker_ids():
    tracks = _clip_tracks()
    det = frame_detections(tracks, 1)
    assert det.tracker_id.tolist() == [1, 2]
    assert det.class_id.tolist() == [0, 1]
    assert det.data["class_name"].tolist() == ["car", "dog"]
    assert det.mask.shape == (2, H, W) and det.mask[0].sum() == 100
    assert len(frame_detections(tracks, 2, masks=False)) == 1
    assert len(frame_detections(ClipTracks(video=tracks.video, phrases=("car",), frames=tracks.frames), 0)) == 0
