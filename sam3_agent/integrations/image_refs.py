"""Turn an image reference sent by another agent into an RGB image, safely.

Other agents name images by text: a file path, a ``data:`` URL, or bare base64. Paths are read only
inside one allowed folder (the *root*): relative paths are taken from it, symlinks are resolved, and any
path that ends up outside it (``..``, an absolute path elsewhere, a symlink pointing out) is refused.
http(s) URLs are refused unless explicitly allowed, since fetching them from a server is a request
forgery risk; even then, URLs (and redirects) to loopback, private, link-local and other non-public addresses
are refused unless allowed too (``allow_private_urls``). Decoding goes through ``sam3_agent.images`` (size
limits, EXIF orientation, RGB). Videos (``resolve_video_path``) are files only, under the same root.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import urllib.parse
import urllib.request
from pathlib import Path

from PIL import Image

from sam3_agent.errors import ImageError, Sam3AgentError, VideoError
from sam3_agent.images import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    PrivateUrls,
    decode_image,
    load_image,
    private_networks,
    sniff_format,
)

ImageInput = str | bytes | Image.Image
"""What the integrations accept: a reference string, encoded image bytes, or a PIL image."""

_BASE64 = re.compile(r"[A-Za-z0-9+/=_\-\s]+")


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _looks_like_image_base64(text: str) -> bool:
    """True when ``text`` is base64 whose first bytes are an image signature (PNG, JPEG, GIF, WebP, BMP, TIFF)."""
    if len(text) < 16 or not _BASE64.fullmatch(text):
        return False
    head = "".join(text[:64].split())[:24]
    try:
        prefix = base64.b64decode(head, altchars=b"-_" if "-" in head or "_" in head else None)
    except (binascii.Error, ValueError):
        return False
    return sniff_format(prefix) is not None


class ImageResolver:
    """Loads images from references, reading files only under ``root``.

    Args:
        root: the folder image paths may point into (resolved once, symlinks included). None refuses
            every path: only ``data:`` URLs, base64, bytes and PIL images are accepted.
        allow_urls: also fetch ``http(s)://`` URLs (off by default).
        allow_private_urls: with ``allow_urls``, also fetch from non-public addresses (loopback, private,
            link-local, ...): True for any, or the networks to allow (e.g. ``["10.1.0.0/16"]``). Off by default:
            the host of the URL and of every redirect must resolve to public addresses only.
        max_pixels: refuse images with more pixels than this (checked before decoding).
        max_bytes: refuse encoded images larger than this.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = ".",
        *,
        allow_urls: bool = False,
        allow_private_urls: PrivateUrls = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.root = Path(root).resolve() if root is not None else None
        if self.root is not None and not self.root.is_dir():
            raise ImageError(f"the allowed image root {str(self.root)!r} is not an existing folder")
        self.allow_urls = allow_urls
        private_networks(allow_private_urls)  # refuse a malformed network now, not at the first URL
        self.allow_private_urls = allow_private_urls
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes

    def __repr__(self) -> str:
        root = str(self.root) if self.root else None
        private = f", allow_private_urls={self.allow_private_urls!r}" if self.allow_private_urls else ""
        return f"ImageResolver(root={root!r}, allow_urls={self.allow_urls}{private})"

    def load(self, image: ImageInput) -> Image.Image:
        """The RGB image a reference names (EXIF orientation applied).

        ``image`` is, in the order tried: a PIL image; encoded bytes; a ``data:`` URL; an ``http(s)://``
        URL (only with ``allow_urls``); a ``file://`` URL or a path inside ``root``; bare base64 of a PNG,
        JPEG, GIF, WebP, BMP or TIFF file (standard or URL-safe alphabet).

        Raises:
            ImageError: the reference is refused (path outside the root, URL not allowed, paths not
                accepted), names no file, or does not decode to an acceptable image.
        """
        if isinstance(image, Image.Image | bytes | bytearray):
            return load_image(bytes(image) if not isinstance(image, Image.Image) else image, **self._limits())
        if not isinstance(image, str):
            raise ImageError(f"expected an image path, data: URL or base64 string, got {type(image).__name__}")
        text = image.strip()
        if not text:
            raise ImageError("the image reference is empty: give a file path, a data: URL or base64 image data")
        if "\x00" in text:
            raise ImageError(f"the image reference holds a NUL character ({_short(text)!r}): it names no file or image")
        lower = text[:8].lower()
        if lower.startswith("data:"):
            return load_image(text, **self._limits())
        if lower.startswith(("http://", "https://")):
            if not self.allow_urls:
                raise ImageError(
                    f"image URLs are not accepted here ({_short(text)}): send a file path, a data: URL or base64"
                )
            return load_image(text, allow_private_urls=self.allow_private_urls, **self._limits())
        if lower.startswith("file://"):
            text = urllib.request.url2pathname(urllib.parse.urlparse(text).path)
        elif _looks_like_image_base64(text):
            return self._from_base64(text)
        return load_image(self.path_inside_root(text), **self._limits())

    def path_inside_root(self, path: str | os.PathLike[str]) -> Path:
        """The resolved path of an existing file under ``root``; relative paths are taken from ``root``.

        Raises:
            ImageError: no root is set, the path resolves outside the root, or nothing exists there.
        """
        return self._inside_root(path, "image", ImageError)

    def resolve_video_path(self, video: str | os.PathLike[str]) -> Path:
        """The resolved path of a video file under ``root``, checked like image paths (``path_inside_root``).
        Videos are only ever files: URLs, ``data:`` URLs and base64 are refused (a ``file://`` URL is its path).

        Raises:
            VideoError: not a path, a URL or inline data, no root set, outside the root, or no file there.
        """
        if not isinstance(video, str | os.PathLike):
            raise VideoError(f"expected a video file path, got {type(video).__name__}")
        text = os.fspath(video).strip()
        if not text:
            raise VideoError("the video reference is empty: give a video file path")
        if "\x00" in text:
            raise VideoError(f"the video path holds a NUL character ({_short(text)!r}): it names no file")
        lower = text[:8].lower()
        if lower.startswith("file://"):
            text = urllib.request.url2pathname(urllib.parse.urlparse(text).path)
        elif lower.startswith(("http://", "https://", "data:")) or "://" in text[:16]:
            raise VideoError(
                f"videos are accepted only as file paths inside the allowed folder, not URLs ({_short(text)})"
            )
        elif len(text) > 512 and _BASE64.fullmatch(text):
            raise VideoError("videos are accepted only as file paths inside the allowed folder, not base64 data")
        return self._inside_root(text, "video", VideoError)

    def _inside_root(self, path: str | os.PathLike[str], what: str, error: type[Sam3AgentError]) -> Path:
        if self.root is None:
            inline = "send the image as a data: URL or base64" if what == "image" else "no video can be read"
            raise error(f"file paths are not accepted here: {inline}")
        given = Path(path)
        candidate = given if given.is_absolute() else self.root / given
        try:
            resolved = candidate.resolve()  # follows every symlink that exists, normalises ".."
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
            raise error(f"cannot resolve the {what} path {_short(str(path))!r}: {exc}") from None
        if not resolved.is_relative_to(self.root):
            raise error(
                f"{what} path {_short(str(path))!r} is outside the allowed folder {str(self.root)!r}: "
                "only files under it can be read"
            )
        if not resolved.is_file():
            raise error(
                f"{what} file {_short(str(path))!r} does not exist in {str(self.root)!r} (relative paths start there)"
            )
        return resolved

    def _from_base64(self, text: str) -> Image.Image:
        payload = "".join(text.split())
        if len(payload) * 3 // 4 > self.max_bytes:
            raise ImageError(f"base64 image is about {len(payload) * 3 // 4:,} bytes, over {self.max_bytes:,}")
        altchars = b"-_" if "-" in payload or "_" in payload else None
        try:
            data = base64.b64decode(payload + "=" * (-len(payload) % 4), altchars=altchars, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImageError(f"the base64 image data is invalid: {exc}") from None
        return decode_image(data, max_pixels=self.max_pixels, what="base64 image")

    def _limits(self) -> dict[str, int]:
        return {"max_pixels": self.max_pixels, "max_bytes": self.max_bytes}
