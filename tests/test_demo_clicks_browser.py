"""Point clicks on one object in a real headless browser (Debian's Chromium via Playwright): choose "Point on the
object", click, see the mask; choose "Point off the object", click again, see the mask change; clear the clicks.

The click engine is a fake with exact masks (``SceneClicker``), so the areas in the table are known. Skipped only
when /usr/bin/chromium is missing. Screenshots go to the test's tmp dir and to ``$SAM3_DEMO_ARTIFACTS`` if set.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

from sam3_agent.demo import browser
from sam3_agent.demo.app import build_demo, launch_demo
from sam3_agent.demo.config import DemoConfig
from sam3_agent.demo.session import NEGATIVE, POSITIVE
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter
from sam3_agent.testing.scene_clicks import SceneClicker

pytestmark = pytest.mark.skipif(
    not browser.CHROMIUM.exists(),
    reason=f"needs Debian's chromium at {browser.CHROMIUM} (CI installs it: apt-get install -y chromium)",
)
pytest.importorskip("playwright")

DESK = Scene(
    200,
    120,
    [
        SceneObject("laptop", (60, 20, 160, 100), shape="box", color=(90, 90, 110)),
        SceneObject("mug", (140, 50, 180, 90), color=(200, 40, 40)),  # in front of the laptop, sticking out
    ],
)
PIXEL_AT = """([x, y]) => {
    const img = document.querySelector('#sam3-overlay img');
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(img, 0, 0);
    return Array.from(ctx.getImageData(x, y, 1, 1).data.slice(0, 3));
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def save_screenshot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if folder := os.environ.get("SAM3_DEMO_ARTIFACTS"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / name)


def test_two_clicks_segment_one_object_and_the_mask_follows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-cache"))
    DESK.image().save(tmp_path / "desk.png")
    demo = build_demo(SceneSegmenter(DESK), DemoConfig(workdir=tmp_path / "work"), clicker=SceneClicker(DESK))
    url = launch_demo(demo, port=free_port(), prevent_thread_lock=True, quiet=True)
    mug, laptop = int(DESK.mask(1).sum()), int(DESK.mask(0).sum())
    try:
        with browser.chromium_page() as page:
            page.goto(url)
            page.get_by_label("Segment only (no LLM)").check()
            browser.send_message(page, url, tmp_path / "desk.png", "laptop")
            page.locator("#sam3-answer").get_by_text("laptop: 1 mask").wait_for()

            page.get_by_label("Point on the object").check()
            browser.click_image_pixel(page, 150, 70)
            page.get_by_text(f"clicked object (1 positive point): {mug} px").wait_for()
            page.locator("#sam3-answer").get_by_role("heading", name="Clicked object").wait_for()
            assert str(mug) in page.locator("#sam3-table").inner_text()
            page.wait_for_function("() => document.querySelector('#sam3-overlay img')?.complete")
            assert tuple(page.evaluate(PIXEL_AT, [150, 70])) == POSITIVE

            page.get_by_label("Point off the object").check()
            browser.click_image_pixel(page, 170, 70)
            page.get_by_text(f"clicked object (1 positive point, 1 negative point): {laptop} px").wait_for()
            page.wait_for_function(f"() => document.querySelector('#sam3-table').innerText.includes('{laptop}')")
            browser.wait_for_overlay(page)
            page.wait_for_function(f"() => ({PIXEL_AT})([170, 70]).join() === '{','.join(map(str, NEGATIVE))}'")
            save_screenshot(page, tmp_path, "demo_clicks.png")

            page.locator("#sam3-clear-clicks").click()
            page.get_by_text("Clicks cleared").wait_for()
            page.wait_for_function("() => !document.querySelector('#sam3-table').innerText.includes('clicked')")
    finally:
        demo.close()
