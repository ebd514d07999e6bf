"""`sam3-agent track`: checks before the model loads, the track table, tracks.json and tracks.mp4.

The tracker (``video_fakes.ColourTracker``) finds the pixels of a named colour on each frame, so the tracks it
returns are exact and the CLI's plumbing (options, outputs, errors) is what is tested.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner
from video_fakes import FRAMES, ColourTracker, H, W, write_mp4

from sam3_agent import cli_video
from sam3_agent.cli import app
from sam3_agent.masks import rle_decode
from sam3_agent.schema import Rle


@pytest.fixture
def clip_path(tmp_path: Path) -> Path:
    return write_mp4(tmp_path / "squares.mp4")


@pytest.fixture
def tracker(monkeypatch) -> ColourTracker:
    fake = ColourTracker()
    monkeypatch.setattr(cli_video, "load_tracker", lambda *a, **k: fake)
    return fake


def _run(*args: str):
    return CliRunner().invoke(app, ["track", *args])


def test_track_writes_table_json_and_overlay(clip_path: Path, tracker: ColourTracker, tmp_path: Path):
    out = tmp_path / "out"
    result = _run(str(clip_path), "red", "blue", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "2 track(s) of red, blue" in result.output
    record = json.loads((out / "tracks.json").read_text())
    assert [t["track_id"] for t in record["tracks"]] == [1, 2]
    red, blue = record["tracks"]
    assert (red["first_frame"], red["last_frame"], red["frames_seen"]) == (0, FRAMES - 1, FRAMES)
    assert (blue["first_frame"], blue["last_frame"], blue["frames_seen"]) == (4, 7, 4)
    assert len(record["frames"]) == FRAMES
    on_five = record["frames"][5]["objects"]
    assert [o["track_id"] for o in on_five] == [1, 2]
    mask = rle_decode(Rle.model_validate(on_five[0]["rle"]))
    assert mask.shape == (H, W) and 200 < mask.sum() < 320
    with av.open(str(out / "tracks.mp4")) as video:
        assert sum(1 for _ in video.decode(video=0)) == FRAMES


def test_frame_options_reach_the_tracker(clip_path: Path, tracker: ColourTracker, tmp_path: Path):
    out = tmp_path / "out"
    result = _run(str(clip_path), "red", "--stride", "3", "--start", "0.5", "--no-overlay", "-o", str(out))
    assert result.exit_code == 0, result.output
    _, options = tracker.calls[0]
    assert options.frames.stride == 3 and options.frames.start_s == 0.5
    record = json.loads((out / "tracks.json").read_text())
    assert [f["index"] for f in record["frames"]] == [3, 6, 9]
    assert not (out / "tracks.mp4").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "at least one noun phrase"),
        (("   ",), "phrase"),
        (("x" * 200,), "120"),
        (("red", "--start", "3", "--end", "1"), "time range is empty"),
        (("red", "--start", "60"), "no frame of 'squares.mp4' is in the chosen range"),
    ],
)
def test_bad_input_is_one_line_before_the_model_loads(clip_path: Path, monkeypatch, args, message):
    loaded = threading.Event()
    monkeypatch.setattr(cli_video, "load_tracker", lambda *a, **k: loaded.set())
    result = _run(str(clip_path), *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not loaded.is_set()


def test_not_a_video_and_a_file_as_output_folder(tmp_path: Path, clip_path: Path, monkeypatch):
    monkeypatch.setattr(cli_video, "load_tracker", lambda *a, **k: pytest.fail("loaded the model"))
    image = tmp_path / "photo.mp4"
    from PIL import Image

    Image.new("RGB", (32, 32), "red").save(image, format="PNG")
    result = _run(str(image), "red")
    assert result.exit_code == 2 and "error:" in result.output
    taken = tmp_path / "taken"
    taken.write_text("x")
    result = _run(str(clip_path), "red", "-o", str(taken))
    assert result.exit_code == 2 and "is a file, not a folder" in result.output


def test_a_failed_overlay_keeps_the_json(clip_path: Path, tracker: ColourTracker, tmp_path: Path, monkeypatch):
    from sam3_agent.errors import VideoError
    from sam3_agent.video import overlay

    def broken(*args, **kwargs):
        raise VideoError("this PyAV build has no mp4 video encoder")

    monkeypatch.setattr(overlay, "write_overlay_video", broken)
    out = tmp_path / "out"
    result = _run(str(clip_path), "red", "-o", str(out))
    assert result.exit_code == 1
    assert "1 track(s) of red" in result.output and "overlay video was not written" in result.output
    assert json.loads((out / "tracks.json").read_text())["tracks"][0]["frames_seen"] == FRAMES


def test_is_video_path():
    assert cli_video.is_video_path("clip.MP4") and cli_video.is_video_path("a/b.webm")
    assert not cli_video.is_video_path("photo.jpg") and not cli_video.is_video_path("https://x/y.png")


def test_ask_about_a_clip_uses_the_clip_planner(
    clip_path: Path, tracker: ColourTracker, tmp_path: Path, no_llm_env
) -> None:
    out = tmp_path / "asked"
    result = CliRunner().invoke(app, ["ask", str(clip_path), "how many different blue are there?", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "count: 1" in result.output
    assert tracker.calls[0][0] == ["blue"]
    record = json.loads((out / "answer.json").read_text())
    assert record["count"] == 1 and record["track_ids"] == [1]
    with av.open(str(out / "answer.mp4")) as video:
        assert sum(1 for _ in video.decode(video=0)) == FRAMES
