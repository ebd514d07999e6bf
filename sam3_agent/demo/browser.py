"""Drive the demo page in a headless Chromium with Playwright (for the browser test and the README screenshot).

Uses an installed Chromium (Debian's ``/usr/bin/chromium`` by default); it never downloads a browser.
Element ids are the ``elem_id`` values set in ``sam3_agent.demo.app``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
MESSAGE_BOX = "#sam3-message textarea"
FILE_INPUT = "#sam3-message input[type=file]"
OVERLAY_IMG = "#sam3-overlay img"


@contextmanager
def chromium_page(
    executable: Path = CHROMIUM, *, width: int = 1400, height: int = 1000, timeout_s: float = 60.0
) -> Iterator[Page]:
    """A page in a fresh headless Chromium, closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=list(CHROMIUM_ARGS), headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(timeout_s * 1000)
            yield page
        finally:
            browser.close()


def send_message(page: Page, url: str, image: Path | None, text: str) -> None:
    """Open ``url`` (unless already there), attach ``image`` (if given) and send ``text`` with Enter."""
    if not page.url.startswith(url):
        page.goto(url)
    page.wait_for_selector(MESSAGE_BOX)
    if image is not None:
        page.set_input_files(FILE_INPUT, str(image))
        page.wait_for_selector("#sam3-message .thumbnail-item")  # the upload finished
    page.fill(MESSAGE_BOX, text)
    page.press(MESSAGE_BOX, "Enter")


def wait_for_overlay(page: Page) -> None:
    """Wait until the overlay panel's image has loaded (it is replaced after every update)."""
    page.wait_for_function(
        f"() => {{ const img = document.querySelector('{OVERLAY_IMG}'); "
        "return img !== null && img.complete && img.naturalWidth > 0; }"
    )


def overlay_size(page: Page) -> tuple[int, int]:
    """(width, height) in pixels of the image the overlay panel shows (its natural size)."""
    wait_for_overlay(page)
    size = page.eval_on_selector(OVERLAY_IMG, "img => [img.naturalWidth, img.naturalHeight]")
    return int(size[0]), int(size[1])


def click_image_pixel(page: Page, x: int, y: int) -> None:
    """Click the overlay at pixel (x, y) of the shown image, undoing the page's fit-inside scaling."""
    wait_for_overlay(page)
    rect = page.eval_on_selector(
        OVERLAY_IMG,
        "img => { const r = img.getBoundingClientRect();"
        " return [r.left, r.top, r.width, r.height, img.naturalWidth, img.naturalHeight]; }",
    )
    left, top, width, height, natural_w, natural_h = rect
    scale = min(width / natural_w, height / natural_h, 1.0)
    pad_x, pad_y = (width - natural_w * scale) / 2, (height - natural_h * scale) / 2
    page.mouse.click(left + pad_x + (x + 0.3) * scale, top + pad_y + (y + 0.3) * scale)
