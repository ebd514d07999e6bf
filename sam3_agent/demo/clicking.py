"""Clicks on one object in the demo: each click adds a point, on the object or off it, and SAM 3's tracker
segments the object again from all the points so far; the overlay shows its mask and the points.

Plain functions over a ``DemoSession`` (``DemoHandlers.click`` / ``clear_clicks`` call them). Points are
pixels of the original image; the tracker's image embeddings are cached per image (and shared with the text
engine's backbone), so every click after the first is a small decoder pass.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from sam3_agent.demo import formatting as fmt
from sam3_agent.demo.session import DemoSession, ShownResult
from sam3_agent.engine.protocol import Clicker
from sam3_agent.outputs import SegmentationRecord, write_json_atomic, write_mask_pngs
from sam3_agent.render import render_overlay
from sam3_agent.schema import ClickPrompt, Instance, Thresholds

NO_CLICKER = (
    "Clicks need SAM 3's tracker, which this demo's checkpoint does not have: start it with the full checkpoint "
    "(facebook/sam3), or a tiny one from `python tools/make_tiny_checkpoint.py --tracker DIR`."
)
NEEDS_POSITIVE = "Negative point added: now click ON the object (choose “Point on the object”)."


def add_click(
    clicker: Clicker | None,
    root: Path,
    session: DemoSession,
    x: float,
    y: float,
    positive: bool,
    thresholds: Thresholds,
) -> None:
    """Add the point (x, y) and segment the object from every point so far (at least one on the object)."""
    if session.image is None:
        session.hint = "Attach an image to a chat message first."
        return
    if clicker is None:
        session.hint = NO_CLICKER
        return
    px = min(max(int(x), 0), session.image.width - 1)
    py = min(max(int(y), 0), session.image.height - 1)
    session.clicks.append((px, py, int(positive)))
    if not any(label for _, _, label in session.clicks):
        session.hint = NEEDS_POSITIVE
        return
    prompt = ClickPrompt.of([(cx, cy) for cx, cy, _ in session.clicks], [label for _, _, label in session.clicks])
    try:
        found = clicker.segment_at(session.image, prompt.points, prompt.labels, None, thresholds)
    except Exception:  # the point did not take: forget it (the caller reports the error)
        session.clicks.pop()
        raise
    _show(root, session, prompt, found)


def clear_clicks(session: DemoSession) -> None:
    """Forget the points (and the clicked object shown, if it is the latest result)."""
    session.clicks = []
    if session.result is not None and session.result.kind == "click":
        session.result = None
    session.hint = "Clicks cleared. Choose “Point on the object” and click on the image to segment one object."


def _show(root: Path, session: DemoSession, prompt: ClickPrompt, found: Instance) -> None:
    assert session.image is not None
    instances = [found.model_copy(update={"id": 1})] if found.area else []
    record = SegmentationRecord(
        image=session.image_name,
        image_size=(session.image.height, session.image.width),
        prompts=[],
        instances=instances,
        clicks=prompt,
    )
    out = session.run_dir(root)
    write_json_atomic(out / "segmentation.json", record.model_dump(mode="json"))
    masks = write_mask_pngs(instances, out / "masks")
    session.result = ShownResult(
        kind="click",
        markdown=_markdown(prompt, instances),
        instances=tuple(instances),
        overlay=_overlay(session.image, instances),
        files=(out / "segmentation.json", *masks),
    )
    session.hint = _hint(prompt, instances)


def _markdown(prompt: ClickPrompt, instances: list[Instance]) -> str:
    if not instances:
        return f"**{prompt.label}**: the mask came out empty"
    return fmt.segmentation_markdown([(prompt.label, instances)])


def _hint(prompt: ClickPrompt, instances: list[Instance]) -> str:
    if not instances:
        return "The clicks gave an empty mask: click nearer the object's middle. Clear clicks to start over."
    inst = instances[0]
    return (
        f"{prompt.label}: {inst.area} px, predicted IoU {inst.score:.2f}. Click again to refine "
        "(on or off the object), or Clear clicks."
    )


def _overlay(image: Image.Image, instances: list[Instance]) -> Image.Image:
    size = min(max(round(min(image.size) / 18), 16), 72)
    return render_overlay(image, instances, font_size=size) if instances else image
