"""`sam3-agent segment IMAGE --point x,y [--neg-point x,y] [--box x0,y0,x1,y1]`: ONE object by clicks.

The branch of ``sam3_agent.cli.segment`` taken when a point is given: SAM 3's tracker (``ClickEngine``, loaded
alone: the text engine is not needed) or the segmentation server (``--server``) answers one mask, written like
the other segment outputs (``segmentation_overlay.png``, ``segmentation.json`` with the clicks in ``clicks``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from sam3_agent.cli_options import parse_numbers
from sam3_agent.engine.protocol import Clicker
from sam3_agent.errors import ConfigError, Sam3AgentError
from sam3_agent.schema import ClickPrompt, Point, Thresholds

if TYPE_CHECKING:
    from sam3_agent.cli import Work


def parse_point(text: str) -> Point:
    """Parse "x,y" (pixels) into a tuple; raises typer.BadParameter with the reason."""
    return parse_numbers(text, "point", "x,y")  # type: ignore[return-value]


def click_prompt(
    phrases: list[str], points: list[str], negative_points: list[str], boxes: list[str], negative_boxes: list[str]
) -> ClickPrompt:
    """The clicks of the command line; ConfigError when phrases or exemplar options come with them."""
    from sam3_agent.cli import parse_box

    if phrases:
        raise ConfigError("--point segments ONE object by clicks: drop the phrases (or drop --point to find them all)")
    if negative_boxes or len(boxes) > 1:
        raise ConfigError("with --point, give at most one --box (around the object) and no --neg-box")
    clicked = [parse_point(p) for p in points] + [parse_point(p) for p in negative_points]
    labels = [1] * len(points) + [0] * len(negative_points)
    return ClickPrompt.of(clicked, labels, parse_box(boxes[0]) if boxes else None)


def segment_by_clicks(
    image: str,
    prompt: ClickPrompt,
    *,
    checkpoint: str | None,
    mask_threshold: float,
    device: str | None,
    dtype: str | None,
    server: str | None,
    token: str | None,
    out_dir: Path,
    work: Work,
) -> None:
    """Segment the clicked object of ``image`` and write segmentation_overlay.png and segmentation.json to
    ``out_dir`` (made and checked by the caller)."""
    from sam3_agent.cli import EXIT_FAILURE, _error, _fail, _instances_table, _wrote, console, out
    from sam3_agent.images import load_image
    from sam3_agent.outputs import SegmentationRecord, write_segmentation

    try:
        with work.running():
            pil = load_image(image, allow_private_urls=True)  # the user typed this URL: any address
            prompt.check_inside(pil.width, pil.height)
            clicker = _clicker(checkpoint, server, token, device, dtype, work)
            with work.step("Segmenting the clicked object"):
                thresholds = Thresholds(mask=mask_threshold)
                found = clicker.segment_at(pil, prompt.points, prompt.labels, prompt.box, thresholds)
    except Sam3AgentError as exc:
        raise _fail(exc) from None
    instances = [found] if found.area else []
    record = SegmentationRecord(
        image=image, image_size=(pil.height, pil.width), prompts=[], instances=instances, clicks=prompt
    )
    out.print(_instances_table(instances, f"{prompt.label}: {len(instances)} instance(s)"))
    if not instances:
        console.print("[yellow]the clicks gave an empty mask:[/] try a point nearer the object's middle, or a box")
    try:
        _wrote(work, write_segmentation(record, pil, out_dir))
    except OSError as exc:
        _error(f"the segmentation was not saved: cannot write to {out_dir}: {exc.strerror or exc}")
        raise typer.Exit(EXIT_FAILURE) from None


def _clicker(
    checkpoint: str | None, server: str | None, token: str | None, device: str | None, dtype: str | None, work: Work
) -> Clicker:
    """The segmentation server's client (checked), or SAM 3's tracker here (loaded)."""
    if server:
        from sam3_agent.server.client import make_segmenter

        with work.step(f"Connecting to {server}"):
            remote = make_segmenter(checkpoint, server, token, device, dtype)
        assert isinstance(remote, Clicker)  # RemoteSegmenter clicks too (POST /v1/segment_at)
        return remote
    if token:
        raise ConfigError("--token is the segmentation server's token: give --server URL too")
    from sam3_agent.engine.clicks import ClickEngine

    with work.step("Loading SAM 3's tracker", loads_weights=True):
        return ClickEngine(checkpoint, device=device, dtype=dtype).load()
