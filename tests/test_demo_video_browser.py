"""The demo's video tab in headless Chromium: upload a clip, track two phrases, see the overlay video and the table.

The page is the one `sam3-agent demo` serves with a video model (an Image tab and a Video tab); the image side runs
on ``SceneSegmenter`` and the video side on ``ColourTracker`` (exact tracks), so no checkpoint is needed.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from video_fakes import FRAMES, ColourTracker, write_mp4

from sam3_agent.demo import browser
from sam3_agent.demo.app import build_demo, launch_demo
from sam3_agent.demo.config import DemoConfig
from sam3_agent.testing.scene import Scene, SceneSegmenter

pytestmark = pytest.mark.skipif(
    not browser.CHROMIUM.exists(),
    reason=f"needs Debian's chromium at {browser.CHROMIUM} (CI installs it: apt-get install -y chromium)",
)
pytest.importorskip("playwright")

IN_VIEW = f"() => document.querySelector('{browser.MESSAGE_BOX}').getBoundingClientRect().bottom <= window.innerHeight"
VIDEO_LOADED = """() => {
    const video = document.querySelector('#sam3-video-overlay video');
    return video !== null && video.readyState >= 1 && video.videoWidth > 0;
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_track_a_clip_in_the_video_tab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-cache"))
    tracker = ColourTracker()
    demo = build_demo(SceneSegmenter(Scene(64, 64, [])), DemoConfig(workdir=tmp_path / "work"), video_tracker=tracker)
    url = launch_demo(demo, port=_free_port(), prevent_thread_lock=True, quiet=True)
    clip = write_mp4(tmp_path / "squares.mp4")
    try:
        with browser.chromium_page(width=1400, height=1000) as page:
            page.goto(url)
            page.wait_for_selector(browser.MESSAGE_BOX)
            assert page.evaluate(IN_VIEW), "with the tabs, the image tab's message box must stay above the fold"
            page.get_by_role("tab", name="Video").click()
            page.set_input_files("#sam3-video-input input[type=file]", str(clip))
            page.locator("#sam3-video-input video").wait_for()  # the upload finished
            page.fill("#sam3-video-phrases textarea", "red, blue")
            page.click("#sam3-video-track")
            table = page.locator("#sam3-tracks")
            table.get_by_test_id("cell-1-1").get_by_text("blue").wait_for()
            page.wait_for_function(VIDEO_LOADED)
            assert table.get_by_test_id("cell-0-1").inner_text().strip() == "red"
            assert table.get_by_test_id("cell-0-5").inner_text().strip() == str(FRAMES)  # red is on every frame
            assert table.get_by_test_id("cell-1-5").inner_text().strip() == "4"
            assert page.get_by_text("Video not playable").count() == 0
            assert tracker.calls and tracker.calls[0][0] == ["red", "blue"]
            page.screenshot(path=str(tmp_path / "demo_video_tab.png"), full_page=True)
    finally:
        demo.close()
