"""Helpers shared by the dataset readers: errors, image sizes from headers, JSON that may be cp1252."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from sam3_agent.errors import ConfigError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
_SWAPS_SIDES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees


class DatasetError(ConfigError):
    """A dataset is missing, not in the expected upstream layout, or has an invalid entry."""


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of the image at ``path`` as ``load_image`` will return it (EXIF rotation applied),
    read from the header without decoding the pixels."""
    try:
        with Image.open(path) as im:
            width, height = im.size
            orientation = im.getexif().get(0x0112)
    except (OSError, UnidentifiedImageError) as exc:
        raise DatasetError(f"cannot read the image header of {path}: {exc}") from exc
    return (width, height) if orientation in _SWAPS_SIDES else (height, width)


def read_json(path: Path) -> Any:
    """Parse a JSON file as UTF-8, falling back to cp1252 (some ReasonSeg files are cp1252)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    for encoding in ("utf-8", "cp1252"):
        try:
            return json.loads(raw.decode(encoding))
        except UnicodeDecodeError:
            continue
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path} is not valid JSON: {exc}") from exc
    raise DatasetError(f"{path} is neither UTF-8 nor cp1252 text")


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def resolve_image(value: str, base: Path) -> str:
    """An http(s) URL as is; a relative path joined to ``base``; an absolute path as is."""
    if is_url(value):
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)
