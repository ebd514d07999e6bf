"""``Sam3VideoEngine`` on a tiny random ``Sam3VideoModel`` loaded through ``from_pretrained``, on synthetic clips.

The weights are random, so the tracks are not of the shapes drawn; what is checked is the contract (ids,
frames, RLE sizes, phrases), the options, progress / cancel, that frames stream and the session stays small,
and that the streamed, pruned run gives exactly the tracks of transformers' whole-video path.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from sam3_agent.errors import Cancelled, CheckpointError, ConfigError, PromptError, VideoError
from sam3_agent.masks import rle_decode
from sam3_agent.schema import MAX_PHRASE_CHARS
from sam3_agent.testing.clips import moving_shapes, write_video
from sam3_agent.video import FrameSelection, TrackOptions, VideoTracker
from sam3_agent.video.engine import Sam3VideoEngine
from sam3_agent.video.frames import Clip
from sam3_agent.video.session import held_outputs

H, W = 48, 64
EVERYTHING = TrackOptions(score=0.0, presence=0.0)  # random weights score about 0.25


@pytest.fixture(scope="session")
def video_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SAM 3 in the full layout, sized for video (112x112 input: fast on a CPU)."""
    from sam3_agent.engine.tiny import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("sam3-tiny-video"), seed=0, image_size=112, video=True)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """The tiny model's ops are small: one thread is several times faster on a loaded shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def engine(video_checkpoint) -> Sam3VideoEngine:
    return Sam3VideoEngine.load(video_checkpoint, device="cpu")


class CountingClip(Clip):
    """A clip that counts the frames its decoder has handed out."""

    pulled = 0

    def _all(self):
        for item in super()._all():
            self.pulled += 1
            yield item


def counting_clip(frames: int, fps: float = 10.0) -> CountingClip:
    base = Clip.from_frames(moving_shapes(frames, height=H, width=W), fps=fps)
    return CountingClip(base.info, base._source, "shapes")


def test_the_engine_is_a_video_tracker(engine):
    assert isinstance(engine, VideoTracker)


def test_tracks_have_the_contract_shape(engine):
    clip = Clip.from_frames(moving_shapes(10, height=H, width=W))
    result = engine.track(clip, [" cat ", "dog"], EVERYTHING)
    assert result.phrases == ("cat", "dog")
    assert [f.index for f in result.frames] == list(range(10))
    assert result.video == clip.info
    assert result.tracks, "the tiny checkpoint starts tracks on random frames"
    assert [t.track_id for t in result.tracks] == list(range(1, len(result.tracks) + 1))
    firsts = [t.first.index for t in result.tracks]
    assert firsts == sorted(firsts)  # numbered by first appearance
    for track in result.tracks:
        assert track.phrase in result.phrases
        for frame in track.frames:
            inst = frame.instance
            assert (inst.id, inst.phrase) == (track.track_id, track.phrase)
            assert inst.rle.size == (H, W)
            mask = rle_decode(inst.rle)
            assert inst.area == int(mask.sum()) > 0
            ys, xs = np.nonzero(mask)
            assert inst.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert 0.0 <= inst.score <= 1.0 and 0.0 < inst.presence_score < 1.0
            assert frame.time_s == pytest.approx(frame.index / 10)


def _whole_video_tracks(checkpoint: Path, frames: list[np.ndarray], phrases: list[str]):
    """transformers' documented path: the whole video in the session, ``propagate_in_video_iterator``."""
    from sam3_agent.masks import rle_encode_many
    from sam3_agent.video.checkpoint import load_sam3_video

    model, processor, _ = load_sam3_video(checkpoint)
    session = processor.init_video_session(video=frames, inference_device="cpu")
    processor.add_text_prompt(session, phrases)
    tracks: dict[int, tuple[str, list]] = {}
    for out in model.propagate_in_video_iterator(session):
        result = processor.postprocess_outputs(session, out)
        phrase_of = {o: p for p, objs in result["prompt_to_obj_ids"].items() for o in objs}
        rles = rle_encode_many(result["masks"].numpy())
        for obj, rle in zip(result["object_ids"].tolist(), rles, strict=True):
            score = out.obj_id_to_tracker_score.get(obj)
            tracks.setdefault(obj, (phrase_of[obj], []))[1].append((out.frame_idx, rle.counts, round(score, 5)))
    return {(p, tuple(seen)) for p, seen in tracks.values()}, held_outputs(session)


def test_streamed_pruned_run_equals_the_whole_video_path(engine, video_checkpoint):
    """24 frames: past the 16-frame object-pointer window, the 7-frame memory and two re-conditionings."""
    frames = moving_shapes(24, height=H, width=W)
    result = engine.track(Clip.from_frames(frames), ["cat", "dog"], EVERYTHING)
    streamed = {
        (t.phrase, tuple((f.index, f.instance.rle.counts, round(f.instance.score, 5)) for f in t.frames))
        for t in result.tracks
    }
    reference, reference_held = _whole_video_tracks(video_checkpoint, frames, ["cat", "dog"])
    assert streamed == reference
    stats = engine.last_stats
    assert stats.frames == 24 and stats.peak_frames_held == 1
    assert stats.peak_outputs_held < reference_held  # the whole-video session keeps every frame's outputs
    assert stats.peak_outputs_held <= stats.objects * 12  # <= 7 memory frames + 4 conditioning + 1 per object


def test_progress_is_called_after_every_frame_and_frames_stream(engine):
    clip = counting_clip(8)
    calls: list[tuple[int, int, int]] = []
    engine.track(clip, ["cat"], EVERYTHING, progress=lambda done, total: calls.append((done, total, clip.pulled)))
    # frame k is decoded just before it is tracked: never all frames first
    assert calls == [(k, 8, k) for k in range(1, 9)]
    assert engine.last_stats.peak_frames_held == 1


def test_cancel_stops_between_frames_and_the_engine_stays_usable(engine):
    clip = counting_clip(10)
    cancel = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done == 3:
            cancel.set()

    with pytest.raises(Cancelled, match="after 3 of 10 frames"):
        engine.track(clip, ["cat"], EVERYTHING, progress=progress, cancel=cancel)
    assert seen == [1, 2, 3] and clip.pulled == 3  # the 4th frame was never decoded
    cancel.set()
    with pytest.raises(Cancelled, match="after 0 of"):
        engine.track(counting_clip(4), ["cat"], EVERYTHING, cancel=cancel)
    assert len(engine.track(counting_clip(3), ["cat"], EVERYTHING).frames) == 3


def test_stride_time_range_and_max_frames_are_respected(engine, tmp_path):
    path = write_video(tmp_path / "shapes.mp4", moving_shapes(20, height=H, width=W), fps=10)
    selection = FrameSelection(stride=2, start_s=0.4, end_s=1.6, max_frames=4)
    result = engine.track(Clip.open(path), ["cat"], EVERYTHING.model_copy(update={"frames": selection}))
    assert [f.index for f in result.frames] == [4, 6, 8, 10]
    assert [f.time_s for f in result.frames] == pytest.approx([0.4, 0.6, 0.8, 1.0])
    assert result.tracks
    for track in result.tracks:
        assert {f.index for f in track.frames} <= {4, 6, 8, 10}


def test_a_long_clip_is_capped_at_max_frames(engine):
    clip = counting_clip(60)
    options = EVERYTHING.model_copy(update={"frames": FrameSelection(max_frames=5)})
    calls: list[tuple[int, int]] = []
    result = engine.track(clip, ["cat"], options, progress=lambda d, t: calls.append((d, t)))
    assert len(result.frames) == 5 and clip.pulled == 5
    assert calls[-1] == (5, 5)


def test_presence_and_score_cuts(engine):
    clip = Clip.from_frames(moving_shapes(6, height=H, width=W))
    assert engine.track(clip, ["cat"], EVERYTHING).tracks
    absent = engine.track(clip, ["cat", "dog"], TrackOptions(score=0.0, presence=1.0))
    assert absent.tracks == () and len(absent.frames) == 6
    assert engine.track(clip, ["cat"], TrackOptions(score=1.0, presence=0.0)).tracks == ()
    assert engine.track(clip, ["cat"], EVERYTHING.model_copy(update={"min_frames": 7})).tracks == ()
    some = engine.track(clip, ["cat"], EVERYTHING.model_copy(update={"min_frames": 2}))
    assert all(t.frames_seen >= 2 for t in some.tracks)


def test_the_default_score_cut_drops_random_detections_but_keeps_tracked_frames(engine):
    """Random detections score about 0.25 (under the 0.5 default) while the tiny tracker says 0.88."""
    clip = Clip.from_frames(moving_shapes(6, height=H, width=W))
    full = engine.track(clip, ["cat"], EVERYTHING)
    cut = engine.track(clip, ["cat"], TrackOptions(score=0.5, presence=0.0))
    for track in cut.tracks:
        assert all(f.instance.score >= 0.5 for f in track.frames)
    assert sum(t.frames_seen for t in cut.tracks) < sum(t.frames_seen for t in full.tracks)


@pytest.mark.parametrize(
    ("phrases", "says"),
    [
        ([], "at least one"),
        (["cat", "  "], "phrase 2 is empty"),
        (["x" * (MAX_PHRASE_CHARS + 1)], f"more than the {MAX_PHRASE_CHARS}"),
        ([3], "must be text"),
    ],
)
def test_bad_phrases_fail_before_loading_or_decoding(phrases, says, tmp_path):
    clip = counting_clip(3)
    unloaded = Sam3VideoEngine(tmp_path / "no-such-checkpoint", device="cpu")
    with pytest.raises(PromptError, match=says):
        unloaded.track(clip, phrases)
    assert clip.pulled == 0


def test_repeated_phrases_are_tracked_once(engine):
    result = engine.track(Clip.from_frames(moving_shapes(3, height=H, width=W)), ["cat", "cat ", "dog"], EVERYTHING)
    assert result.phrases == ("cat", "dog")


def test_a_time_range_past_the_clip_is_a_video_error(engine):
    options = EVERYTHING.model_copy(update={"frames": FrameSelection(start_s=50.0)})
    with pytest.raises(VideoError, match="no frame"):
        engine.track(counting_clip(4), ["cat"], options)


def test_checkpoint_conventions(video_checkpoint, tiny_checkpoint, tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match="does not exist"):
        Sam3VideoEngine.load(tmp_path / "missing", device="cpu")
    with pytest.raises(CheckpointError, match="--video"):
        Sam3VideoEngine.load(tiny_checkpoint, device="cpu")  # the detector alone has no video model
    monkeypatch.setenv("SAM3_CHECKPOINT", str(video_checkpoint))
    assert Sam3VideoEngine(device="cpu").checkpoint == str(video_checkpoint)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            Sam3VideoEngine(video_checkpoint, device="cuda")


def test_importing_the_video_package_loads_no_torch():
    code = "import sys, sam3_agent.video, sam3_agent.video.frames; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
