"""The demo's video tab through ``gradio_client``: a clip in, the overlay video, the track table and tracks.json out.

The page's image side runs on ``SceneSegmenter`` (no checkpoint needed) and the video side on ``ColourTracker``,
whose tracks are exact; the tracker is given as a loader, to check it loads once, on the first clip.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

pytest.importorskip("gradio")
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from video_fakes import FRAMES, ColourTracker, write_mp4

from sam3_agent.demo.app import build_demo, launch_demo
from sam3_agent.demo.config import DemoConfig
from sam3_agent.testing.scene import Scene, SceneSegmenter


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Loader:
    def __init__(self) -> None:
        self.tracker = ColourTracker()
        self.loads = 0

    def __call__(self) -> ColourTracker:
        self.loads += 1
        return self.tracker


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Loader]]:
    loader = Loader()
    config = DemoConfig(score_threshold=0.3, workdir=tmp_path_factory.mktemp("demo-work"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio-cache")))
        demo = build_demo(SceneSegmenter(Scene(64, 64, [])), config, video_tracker=loader)
        url = launch_demo(demo, port=_free_port(), prevent_thread_lock=True, quiet=True)
        try:
            yield url, loader
        finally:
            demo.close()


@pytest.fixture
def client(served: tuple[str, Loader], tmp_path: Path) -> Iterator[Client]:
    c = Client(served[0], verbose=False, download_files=str(tmp_path / "downloads"), analytics_enabled=False)
    yield c
    c.close()


def test_track_video_returns_overlay_table_and_json(client: Client, served, tmp_path: Path) -> None:
    clip = write_mp4(tmp_path / "squares.mp4")
    overlay, table, json_file = client.predict(handle_file(str(clip)), "red, blue", api_name="/track_video")
    rows = table["data"]
    assert table["headers"][:2] == ["track", "phrase"]
    assert [(r[0], r[1], r[5]) for r in rows] == [(1, "red", FRAMES), (2, "blue", 4)]
    record = json.loads(Path(json_file).read_text())
    assert [t["track_id"] for t in record["tracks"]] == [1, 2] and len(record["frames"]) == FRAMES
    with av.open(overlay) as video:
        assert sum(1 for _ in video.decode(video=0)) == FRAMES
    _, options = served[1].tracker.calls[-1]
    assert options.score == 0.3  # the server's --score-threshold is the default


def test_loaded_once_and_options_pass_through(client: Client, served, tmp_path: Path) -> None:
    clip = write_mp4(tmp_path / "squares.mp4")
    _, table, _ = client.predict(handle_file(str(clip)), "blue", 2, 3, api_name="/track_video")
    _, options = served[1].tracker.calls[-1]
    assert (options.frames.stride, options.frames.max_frames) == (2, 3)
    assert [r[5] for r in table["data"]] == [1]  # frames 0, 2, 4 looked at: blue is on frame 4 only
    assert served[1].loads == 1


@pytest.mark.parametrize(
    ("phrases", "stride", "message"),
    [
        ("", 1, "type the noun phrases to track"),
        ("red", 0, "less than minimum value 1"),
        ("x" * 130, 1, "120 characters"),
    ],
)
def test_bad_input_is_an_app_error(client: Client, tmp_path: Path, phrases: str, stride: int, message: str) -> None:
    clip = write_mp4(tmp_path / "squares.mp4")
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(str(clip)), phrases, stride, api_name="/track_video")


def test_an_image_as_the_clip_is_an_app_error(client: Client, tmp_path: Path) -> None:
    from PIL import Image

    picture = tmp_path / "photo.mp4"
    Image.new("RGB", (32, 32), "red").save(picture, format="PNG")
    with pytest.raises(AppError, match="is an image, not a video"):
        client.predict(handle_file(str(picture)), "red", api_name="/track_video")
