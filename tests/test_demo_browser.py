"""The demo page in a real headless browser (Debian's Chromium via Playwright): upload, ask, see the answer and the
overlay, draw an exemplar box with two clicks, refine; paste an image; a bad upload.

Skipped only when /usr/bin/chromium is missing (CI installs it). Screenshots go to the test's tmp dir, and also to
``$SAM3_DEMO_ARTIFACTS`` when that variable names a folder (CI can upload it).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam3_agent.agent.messages import AssistantMessage
from sam3_agent.demo import browser
from sam3_agent.demo.app import CHAT_PLACEHOLDERS, MESSAGE_PLACEHOLDERS, build_demo, launch_demo
from sam3_agent.demo.config import DemoConfig
from sam3_agent.engine.transformers_engine import Sam3Engine
from sam3_agent.testing.replay_server import ReplayServer
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter
from sam3_agent.testing.turns import tool_call_turn

pytestmark = pytest.mark.skipif(
    not browser.CHROMIUM.exists(),
    reason=f"needs Debian's chromium at {browser.CHROMIUM} (CI installs it: apt-get install -y chromium)",
)
pytest.importorskip("playwright")
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def engine(tiny_checkpoint: Path) -> Sam3Engine:
    return Sam3Engine(tiny_checkpoint, device="cpu", dtype="float32").load()


@pytest.fixture
def serve(
    engine: Sam3Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[Sequence[AssistantMessage]], str]]:
    """Start the app with a replay LLM prefilled in the page's settings; return its URL."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-cache"))
    started: list = []

    def start(turns: Sequence[AssistantMessage]) -> str:
        llm = ReplayServer(turns)
        config = DemoConfig(
            llm_base_url=llm.base_url, llm_model="replay-model", score_threshold=0.0, workdir=tmp_path / "work"
        )
        demo = build_demo(engine, config)
        started.append((demo, llm))
        return launch_demo(demo, port=free_port(), prevent_thread_lock=True, quiet=True)

    yield start
    for demo, llm in started:
        demo.close()
        llm.close()


def save_screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if folder := os.environ.get("SAM3_DEMO_ARTIFACTS"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / name)
    return path


def photo(path: Path, width: int = 160, height: int = 90) -> Path:
    rng = np.random.default_rng(7)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def test_ask_in_the_browser_then_refine_with_a_drawn_box(serve, tmp_path: Path) -> None:
    url = serve(
        [
            tool_call_turn("segment_phrases", {"phrases": ["cup"]}),
            tool_call_turn("final_answer", {"ids": [1, 2], "text": "Here are two cups.", "count": 2}),
        ]
    )
    with browser.chromium_page() as page:
        browser.send_message(page, url, photo(tmp_path / "desk.png"), "how many cups are there?")
        page.locator("#sam3-answer").get_by_text("Here are two cups.").wait_for()
        page.locator("#sam3-chat").get_by_text("Here are two cups.").wait_for()
        page.locator("#sam3-chat").get_by_text('Step 1 · segment_phrases: "cup"').wait_for()
        page.wait_for_function(f"() => document.querySelector('{browser.OVERLAY_IMG}')?.naturalWidth === 160")
        assert browser.overlay_size(page) == (160, 90)
        assert page.locator("#sam3-answer").get_by_text("Count: 2").is_visible()
        table = page.locator("#sam3-table").inner_text()
        assert "phrase" in table and "cup" in table
        page.wait_for_selector("#sam3-files a[download='answer.json']")
        save_screenshot(page, tmp_path, "demo_answer.png")

        browser.click_image_pixel(page, 10, 20)
        page.get_by_text("First corner at (10, 20)").wait_for()
        browser.click_image_pixel(page, 100, 70)
        page.get_by_text("Box [10, 20, 101, 71] drawn").wait_for()
        assert page.locator("#sam3-box textarea, #sam3-box input").first.input_value() == "10, 20, 101, 71"
        page.locator("#sam3-refine").click()
        page.locator("#sam3-chat").get_by_text('Refine "cup" with a positive box [10, 20, 101, 71]').wait_for()
        page.get_by_text('1 exemplar box(es) in use for "cup"').wait_for()
        shot = save_screenshot(page, tmp_path, "demo_refined.png")
    assert Image.open(shot).size[0] >= 1000


@pytest.mark.usefixtures("no_llm_env")
def test_ask_with_no_llm_configured_the_planner_answers(engine: Sam3Engine, tmp_path: Path, monkeypatch) -> None:
    """A fresh install: no LLM anywhere, agent mode still answers, through the built-in planner."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-cache"))
    demo = build_demo(engine, DemoConfig(score_threshold=0.0, workdir=tmp_path / "work"))
    url = launch_demo(demo, port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        with browser.chromium_page() as page:
            browser.send_message(page, url, photo(tmp_path / "desk.png"), "how many cups are left of the laptop?")
            page.locator("#sam3-chat").get_by_text("Answered by built-in planner.").wait_for()
            page.locator("#sam3-chat").get_by_text('Step 1 · segment_phrases: "cups"').wait_for()
            assert page.locator("#sam3-answer").get_by_text("Count:").is_visible()
    finally:
        demo.close()


IN_VIEW = """() => {
    const r = document.querySelector('#sam3-message').getBoundingClientRect();  // the whole box, not just its text
    return window.scrollY === 0 && r.top >= 0 && r.bottom <= window.innerHeight;
}"""


def test_the_message_box_is_in_view_and_follows_the_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At 1400x1000 the message box shows without scrolling; its placeholder and the LLM settings follow the mode."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-cache"))
    scene = Scene(80, 60, [SceneObject("dot", (10, 10, 40, 40))])
    demo = build_demo(SceneSegmenter(scene), DemoConfig(workdir=tmp_path / "work"))
    url = launch_demo(demo, port=free_port(), prevent_thread_lock=True, quiet=True)
    image = tmp_path / "dot.png"
    scene.image().save(image)
    try:
        with browser.chromium_page(width=1400, height=1000) as page:
            page.goto(url)
            page.wait_for_selector(browser.MESSAGE_BOX)
            assert page.evaluate(IN_VIEW), "the message box is below the fold at 1400x1000"
            assert page.get_attribute(browser.MESSAGE_BOX, "placeholder") == MESSAGE_PLACEHOLDERS["agent"]
            page.locator("#sam3-chat").get_by_text(CHAT_PLACEHOLDERS["agent"]).wait_for()
            page.locator("#sam3-settings").get_by_text("Settings").first.click()
            page.get_by_label("LLM model").wait_for()

            page.get_by_label("Segment only (no LLM)").check()
            page.wait_for_function(
                f"() => document.querySelector('{browser.MESSAGE_BOX}').placeholder === "
                f"{MESSAGE_PLACEHOLDERS['segment']!r}"
            )
            page.locator("#sam3-chat").get_by_text(CHAT_PLACEHOLDERS["segment"]).wait_for()
            page.get_by_label("LLM model").wait_for(state="hidden")
            page.evaluate("() => window.scrollTo(0, 0)")
            assert page.evaluate(IN_VIEW), "the open settings must not push the message box down"
            browser.send_message(page, url, image, "dot")
            page.locator("#sam3-answer").get_by_text("dot: 1 mask").wait_for()
            assert page.evaluate(IN_VIEW), "an answer must not push the message box down"
            save_screenshot(page, tmp_path, "demo_segment_mode_fold.png")

            page.get_by_label("Agent (LLM or built-in planner + SAM 3)").check()
            page.get_by_label("LLM model").wait_for()
            assert page.get_attribute(browser.MESSAGE_BOX, "placeholder") == MESSAGE_PLACEHOLDERS["agent"]
    finally:
        demo.close()


PASTE_IMAGE = """async () => {
    const canvas = document.createElement('canvas');
    canvas.width = 80; canvas.height = 60;
    const ctx = canvas.getContext('2d');
    ctx.fillStyle = '#d04030'; ctx.fillRect(0, 0, 80, 60);
    const blob = await new Promise(resolve => canvas.toBlob(resolve, 'image/png'));
    const data = new DataTransfer();
    data.items.add(new File([blob], 'pasted.png', {type: 'image/png'}));
    const box = document.querySelector('#sam3-message textarea');
    box.dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true}));
}"""


def test_paste_an_image_segment_only_mode_and_a_refused_upload(serve, tmp_path: Path) -> None:
    url = serve([])
    with browser.chromium_page() as page:
        page.goto(url)
        page.get_by_label("Segment only (no LLM)").check()
        page.wait_for_selector(browser.MESSAGE_BOX)
        page.evaluate(PASTE_IMAGE)
        page.wait_for_selector("#sam3-message .thumbnail-item img")
        browser.send_message(page, url, None, "cup, laptop")
        page.locator("#sam3-answer").get_by_text("laptop: 20 masks").wait_for()
        page.wait_for_function(f"() => document.querySelector('{browser.OVERLAY_IMG}')?.naturalWidth === 80")

        notes = tmp_path / "notes.txt"
        notes.write_text("not a picture")
        browser.send_message(page, url, notes, "cup")
        page.locator("#sam3-chat").get_by_text("that upload was refused: 'notes.txt' is not a recognised").wait_for()
        assert browser.overlay_size(page) == (80, 60), "a refused upload must keep the current image"
        save_screenshot(page, tmp_path, "demo_segment_only.png")


def test_the_readme_screenshot_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-cache"))
    spec = importlib.util.spec_from_file_location("screenshot_demo", REPO / "tools" / "screenshot_demo.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / "shot" / "demo.png"
    assert tool.main([str(out), "--width", "1200", "--height", "900"]) == 0
    assert Image.open(out).size == (1200, 900)
