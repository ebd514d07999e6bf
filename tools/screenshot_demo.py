"""Screenshot the demo page answering a question about a synthetic desk (the README's docs/demo.png).

    python tools/screenshot_demo.py docs/demo.png

Runs the real page with the scene's exact masks (no SAM 3 weights) and a scripted model over loopback HTTP (no
LLM), in Debian's headless Chromium (``--chromium`` to use another installed one; nothing is downloaded).
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="PNG file to write")
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"), help="Chromium executable")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1150)
    args = parser.parse_args(argv)

    from sam3_agent.demo import browser, showcase
    from sam3_agent.demo.app import build_demo, launch_demo
    from sam3_agent.demo.config import DemoConfig
    from sam3_agent.testing.replay_server import ReplayServer
    from sam3_agent.testing.scene import SceneSegmenter

    if not args.chromium.exists():
        print(f"error: no Chromium at {args.chromium} (apt-get install -y chromium)", file=sys.stderr)
        return 2
    scene = showcase.desk_scene()
    with tempfile.TemporaryDirectory() as work, ReplayServer(showcase.desk_script()) as llm:
        image = Path(work) / "desk.png"
        scene.image().save(image)
        config = DemoConfig(llm_base_url=llm.base_url, llm_model="scripted-model", workdir=Path(work) / "files")
        demo = build_demo(SceneSegmenter(scene), config)
        try:
            url = launch_demo(demo, port=_free_port(), prevent_thread_lock=True, quiet=True)
            with browser.chromium_page(args.chromium, width=args.width, height=args.height) as page:
                browser.send_message(page, url, image, showcase.QUESTION)
                page.locator("#sam3-answer").get_by_text("Two cups are left of the laptop").wait_for()
                page.wait_for_selector("#sam3-files a[download='answer.json']")
                page.wait_for_function(f"() => document.querySelector('{browser.OVERLAY_IMG}')?.naturalWidth > 0")
                page.evaluate("() => document.fonts.ready")
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out))
        finally:
            demo.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
