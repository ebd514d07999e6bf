"""Write results to disk: the overlay PNG, a PNG per selected mask, and the JSON record (COCO RLE).

The command line's run folders: ``out_folder`` picks and checks one before any work. `ask` writes
``answer.json``, ``answer_overlay.png`` and ``masks/``; `segment` writes ``segmentation.json`` and
``segmentation_overlay.png``: the two never share a file name, so both can write to one folder.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from PIL import Image
from pydantic import BaseModel

from sam3_agent.engine.tiling import SegmentReport
from sam3_agent.errors import ConfigError
from sam3_agent.schema import Answer, ClickPrompt, Instance, Prompt

RunKind = Literal["answer", "segmentation", "tracks"]
"""What a run writes: `ask` an answer, `segment` a segmentation, `track` tracks; each file is named after it."""

MASKS_DIR = "masks"
DEFAULT_ROOT = Path("outputs")


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


def record_name(kind: RunKind) -> str:
    """The JSON file of a run: ``answer.json`` or ``segmentation.json``."""
    return f"{kind}.json"


def overlay_name(kind: RunKind) -> str:
    """The overlay PNG of a run: ``answer_overlay.png`` or ``segmentation_overlay.png``."""
    return f"{kind}_overlay.png"


def default_out_dir(image: str) -> Path:
    """``outputs/<image file stem>`` (``outputs/image`` for a URL or data URL)."""
    stem = Path(image).stem if not image.startswith(("http://", "https://", "data:")) else "image"
    return DEFAULT_ROOT / (stem or "image")


def out_folder(requested: Path | None, image: str, kind: RunKind, *, overwrite: bool = False) -> Path:
    """The folder a run writes to, checked (writable) before any work is done.

    No ``requested`` folder: ``outputs/<stem>``, or the first of ``outputs/<stem>-2``, ``-3``, ... that holds
    no earlier result of this kind, so runs never replace each other (``overwrite``: ``outputs/<stem>``
    always). A ``requested`` folder holding an earlier result of this kind is refused unless ``overwrite``.
    Raises ``ConfigError`` (one line) for a path that is a file, cannot be created or is not writable.
    """
    record = record_name(kind)
    if requested is None:
        base = default_out_dir(image)
        folder = base
        for n in range(2, 10_000):
            if overwrite or not (folder / record).exists():
                break
            folder = base.with_name(f"{base.name}-{n}")
    else:
        folder = requested
        if (folder / record).exists() and not overwrite:
            raise ConfigError(
                f"--out {folder} already holds {record} from an earlier run: pass --overwrite to replace it, "
                "or choose another --out"
            )
    _make_writable(folder)
    return folder


def _make_writable(folder: Path) -> None:
    """Check that ``folder`` can be written, creating nothing: it, or the nearest folder above it that exists
    (where it will be made), takes a file. A failed run leaves no empty folder behind."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == folder else f" (on the way to {folder})"
        raise ConfigError(f"the output folder {existing}{where} is a file, not a folder: pass another --out")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".sam3-agent-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot write to the output folder {folder}: {reason}; pass another --out") from None


def write_answer(
    answer: Answer, image: Image.Image, out_dir: Path, *, tiling: Sequence[SegmentReport] | None = None
) -> dict[str, Path]:
    """Write ``answer.json``, ``answer_overlay.png`` (selected instances, or all when none selected) and
    ``masks/mask_<id>.png`` (mask PNGs of an earlier answer in ``out_dir`` are removed first).

    ``tiling``: the reports of the run's segmenter calls; the JSON then has ``tiling`` = ``{"tiled", "near_cap",
    "calls"}`` (whether any call was tiled, whether any result came near SAM 3's query cap, the reports)."""
    shown = answer.instances or answer.all_instances
    paths = {
        "json": out_dir / record_name("answer"),
        "overlay": write_overlay(image, shown, out_dir / overlay_name("answer")),
    }
    payload = answer.model_dump(mode="json")
    if tiling is not None:
        payload["tiling"] = {
            "tiled": any(r.tiled for r in tiling),
            "near_cap": any(r.near_cap for r in tiling),
            "calls": [r.model_dump(mode="json") for r in tiling],
        }
    write_json_atomic(paths["json"], payload)
    for stale in (out_dir / MASKS_DIR).glob("mask_*.png"):
        stale.unlink()
    write_mask_pngs(answer.instances, out_dir / MASKS_DIR)
    return paths


def write_segmentation(record: SegmentationRecord, image: Image.Image, out_dir: Path) -> dict[str, Path]:
    """Write ``segmentation.json`` and ``segmentation_overlay.png`` for an engine-only run."""
    paths = {
        "json": out_dir / record_name("segmentation"),
        "overlay": write_overlay(image, record.instances, out_dir / overlay_name("segmentation")),
    }
    write_json_atomic(paths["json"], record.model_dump(mode="json"))
    return paths
