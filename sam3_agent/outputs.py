"""Write results to disk: the overlay PNG, a PNG per selected mask, and the JSON record (COCO RLE)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from PIL import Image
from pydantic import BaseModel

from sam3_agent.engine.tiling import SegmentReport
from sam3_agent.schema import Answer, ClickPrompt, Instance, Prompt


class SegmentationRecord(BaseModel):
    """What `sam3-agent segment` writes: the prompts and the instances found (ids unique in the record), and
    how they were segmented (``tiling``: tiles used, results near SAM 3's query cap). A run by clicks
    (``segment --point``) has no prompts: ``clicks`` holds its points, labels and box."""

    image: str
    image_size: tuple[int, int]
    prompts: list[Prompt]
    instances: list[Instance]
    tiling: SegmentReport | None = None
    clicks: ClickPrompt | None = None


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write JSON to ``path`` through a temporary file and rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_overlay(image: Image.Image, instances: Sequence[Instance], path: Path) -> Path:
    from sam3_agent.render import render_overlay

    path.parent.mkdir(parents=True, exist_ok=True)
    render_overlay(image, instances).save(path)
    return path


def write_mask_pngs(instances: Sequence[Instance], out_dir: Path) -> list[Path]:
    """One 0/255 PNG per instance, named ``mask_<id>.png``."""
    from sam3_agent.render import mask_png

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for inst in instances:
        path = out_dir / f"mask_{inst.id}.png"
        mask_png(inst).save(path)
        paths.append(path)
    return paths


def write_answer(
    answer: Answer, image: Image.Image, out_dir: Path, *, tiling: Sequence[SegmentReport] | None = None
) -> dict[str, Path]:
    """Write ``answer.json``, ``overlay.png`` (selected instances, or all when none selected) and masks.

    ``tiling``: the reports of the run's segmenter calls; the JSON then has ``tiling`` = ``{"tiled", "near_cap",
    "calls"}`` (whether any call was tiled, whether any result came near SAM 3's query cap, the reports)."""
    shown = answer.instances or answer.all_instances
    paths = {
        "json": out_dir / "answer.json",
        "overlay": write_overlay(image, shown, out_dir / "overlay.png"),
    }
    payload = answer.model_dump(mode="json")
    if tiling is not None:
        payload["tiling"] = {
            "tiled": any(r.tiled for r in tiling),
            "near_cap": any(r.near_cap for r in tiling),
            "calls": [r.model_dump(mode="json") for r in tiling],
        }
    write_json_atomic(paths["json"], payload)
    write_mask_pngs(answer.instances, out_dir / "masks")
    return paths


def write_segmentation(record: SegmentationRecord, image: Image.Image, out_dir: Path) -> dict[str, Path]:
    """Write ``segmentation.json`` and ``overlay.png`` for an engine-only run."""
    paths = {
        "json": out_dir / "segmentation.json",
        "overlay": write_overlay(image, record.instances, out_dir / "overlay.png"),
    }
    write_json_atomic(paths["json"], record.model_dump(mode="json"))
    return paths
