"""Safe image loading: path, bytes, binary file, ``data:`` URL, http(s) URL or PIL image -> RGB PIL image.

Every failure is an ``ImageError`` whose message says what was expected and what was found. The pixel
count is checked from the header before any pixel is decoded (decompression bombs), downloads and reads
are capped at ``max_bytes``, the whole image is decoded once so truncated files fail here rather than
later, EXIF orientation is applied, and every mode is converted to 8-bit RGB (see ``to_rgb``).

URL downloads are guarded against request forgery: the host of the URL and of every redirect (followed
here, at most ``MAX_REDIRECTS``) is resolved, and loopback, private, link-local, reserved, multicast and
other non-public addresses are refused unless allowed (``allow_private_urls``); the connection then goes
to the address that was checked. Errors about a download name the URL and the reason, never the body.
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import os
import re
import socket
import struct
import time
import urllib.parse
import urllib.request
from collections.abc import Collection
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sam3_agent.errors import ImageError

if TYPE_CHECKING:
    import httpx

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | IO[bytes] | Image.Image

DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_BYTES = 64 * 2**20
MAX_REDIRECTS = 5
"""Redirects followed per download (each hop's address is checked)."""
PrivateUrls = bool | Collection[str]
"""``allow_private_urls``: False (public addresses only), True (any address), or the non-public networks to allow
(CIDR or single addresses, e.g. ``["10.1.0.0/16", "127.0.0.1"]``)."""
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_WHITE = (255, 255, 255)
# What PIL raises on broken data, depending on the format plugin.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError)
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def sniff_format(data: bytes) -> str | None:
    """The image format named by the leading bytes of ``data`` (PNG, JPEG, GIF, WebP, BMP, TIFF), or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((name for magic, name in _SIGNATURES if data.startswith(magic)), None)


def load_image(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = 20.0,
    allow_private_urls: PrivateUrls = False,
) -> Image.Image:
    """Load an image as RGB with its EXIF orientation applied.

    Args:
        source: a file path (str or PathLike; ``file://`` URLs too), raw encoded bytes, a binary file
            object (read from its current position), a ``data:`` URL, an ``http(s)://`` URL, or a PIL
            image (not modified; a converted copy is returned).
        max_pixels: refuse images with more than width x height pixels (checked from the header, before
            decoding).
        max_bytes: refuse encoded data (file, download, data URL, stream) larger than this.
        timeout: seconds allowed for a whole URL download (connect, headers and body together).
        allow_private_urls: URLs whose host (or a redirect's) resolves to a non-public address (loopback,
            private, link-local, reserved, multicast, ...) are refused unless True, or unless the address is in
            one of the networks given (e.g. ``["10.1.0.0/16"]``).

    Returns:
        A fully decoded PIL image in mode "RGB", of size (width, height) after EXIF rotation.

    Raises:
        ImageError: missing / empty / unreadable file, a directory, data that is not an image, a corrupt
            or truncated image, over ``max_bytes`` or ``max_pixels``, a malformed data URL, an
            unsupported URL scheme, a network error, a timeout, an HTTP error status, too many redirects,
            or a URL (or redirect) to a non-public address that is not allowed.
    """
    if max_pixels < 1 or max_bytes < 1:
        raise ImageError(f"max_pixels and max_bytes must be >= 1, got {max_pixels=}, {max_bytes=}")
    if isinstance(source, Image.Image):
        return _finish(source, max_pixels, "the given PIL image")
    if isinstance(source, str) and source[:8].lower().startswith(("http://", "https://")):
        data = _download(source, max_bytes=max_bytes, timeout=timeout, allow_private=allow_private_urls)
        return decode_image(data, max_pixels=max_pixels, what=f"image at {_short(source)}", echo=False)
    data, what = _read_source(source, max_bytes=max_bytes)
    return decode_image(data, max_pixels=max_pixels, what=what)


def decode_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, what: str = "image data", echo: bool = True
) -> Image.Image:
    """Decode encoded image bytes (PNG, JPEG, WebP, ...) to RGB; ``what`` names the source in errors, which quote
    the first bytes of data that is not an image unless ``echo`` is False (downloads: never show the body)."""
    if not data:
        raise ImageError(f"{what} is empty (0 bytes)")
    fmt = sniff_format(data)
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if fmt is not None:  # the signature is right, the header after it is not
            raise ImageError(f"{what} is a corrupt or truncated {fmt} file: its header cannot be read") from None
        head = f" (starts with {bytes(data[:16])!r})" if echo else ""
        raise ImageError(f"{what} is not a recognised image format{head}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{what} is too large to decode safely: {exc}") from None
    except _DECODE_ERRORS as exc:
        raise ImageError(f"{what} is a corrupt or truncated {fmt or 'image'} file (its header: {exc})") from None
    return _finish(image, max_pixels, what)


def check_pil_image(image: object) -> Image.Image:
    """``image`` itself when it is a non-empty PIL image (what every ``Segmenter`` and ``Clicker`` takes).

    Raises:
        ImageError: not a PIL image, or 0 pixels wide or high.
    """
    if not isinstance(image, Image.Image):
        raise ImageError(f"expected a PIL.Image.Image, got {type(image).__name__}")
    if image.width < 1 or image.height < 1:
        raise ImageError(f"expected a non-empty image, got size {image.width}x{image.height}")
    return image


def check_image_size(width: int, height: int, max_pixels: int = DEFAULT_MAX_PIXELS, what: str = "image") -> None:
    """Raise ImageError unless 1 <= width, 1 <= height and width * height <= max_pixels."""
    if width < 1 or height < 1:
        raise ImageError(f"{what} has an empty size {width}x{height}: expected at least 1x1 pixels")
    if width * height > max_pixels:
        raise ImageError(
            f"{what} is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,} "
            "(a possible decompression bomb; raise max_pixels to allow it)"
        )


def _finish(image: Image.Image, max_pixels: int, what: str) -> Image.Image:
    """Size check from the header, full decode, EXIF orientation, RGB conversion."""
    check_image_size(image.width, image.height, max_pixels, what)
    fmt = image.format or "image"
    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{what} is too large to decode safely: {exc}") from None
    except _DECODE_ERRORS as exc:
        raise ImageError(f"{what} is a corrupt or truncated {fmt} file: {exc}") from None
    try:
        oriented = ImageOps.exif_transpose(image)
    except (*_DECODE_ERRORS, KeyError):  # unreadable EXIF: keep the stored orientation
        oriented = image
    rgb = to_rgb(oriented if oriented is not None else image)
    return rgb.copy() if rgb is image else rgb


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB.

    - transparency (RGBA, LA, La, RGBa, PA, P or L/RGB with a ``transparency`` entry) is composited onto
      white;
    - 16-bit and 32-bit integer (I;16*, I) and float (F) images are stretched linearly from their actual
      minimum..maximum to 0..255 (a constant image keeps its value clipped to 0..255; NaN becomes 0);
    - everything else (1, L, P, CMYK, YCbCr, LAB, HSV, I;16 variants handled above) goes through PIL.
    Returns ``image`` itself when it is already RGB without transparency.
    """
    mode = image.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _stretch_to_rgb(image)
    if mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (*_WHITE, 255)), rgba).convert("RGB")
    if mode == "RGB":
        return image
    try:
        return image.convert("RGB")
    except ValueError as exc:
        raise ImageError(f"cannot convert an image in mode {mode!r} to RGB: {exc}") from None


def _stretch_to_rgb(image: Image.Image) -> Image.Image:
    """Map a high-bit-depth single-channel image linearly from its value range onto 0..255 grey."""
    values = np.asarray(image).astype(np.float64)
    finite = values[np.isfinite(values)]
    if finite.size and finite.max() > finite.min():
        lo, hi = float(finite.min()), float(finite.max())
        values = (values - lo) * (255.0 / (hi - lo))
    grey = np.nan_to_num(np.clip(np.rint(values), 0, 255), nan=0.0).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def _read_source(source: object, *, max_bytes: int) -> tuple[bytes, str]:
    """The encoded bytes of a non-PIL source and a short description of it for error messages."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        _check_bytes(len(data), max_bytes, "image bytes")
        return data, "image bytes"
    if isinstance(source, os.PathLike):
        return _read_file(Path(source), max_bytes), f"image file {os.fspath(source)!r}"
    if isinstance(source, str):
        return _read_string(source, max_bytes=max_bytes)
    if hasattr(source, "read"):
        return _read_stream(source, max_bytes), "image stream"
    raise ImageError(
        "expected a path, bytes, a binary file object, a data: or http(s) URL, or a PIL image; "
        f"got {type(source).__name__}"
    )


def _read_string(source: str, *, max_bytes: int) -> tuple[bytes, str]:
    scheme_match = _SCHEME.match(source)
    # One letter before ':' is a Windows drive ("C:\\x.png"), not a URL scheme.
    scheme = scheme_match.group(1).lower() if scheme_match and len(scheme_match.group(1)) > 1 else None
    if scheme is None:
        if not source.strip():
            raise ImageError("image path is an empty string")
        return _read_file(Path(source), max_bytes), f"image file {source!r}"
    if scheme == "data":
        return _decode_data_url(source, max_bytes), "data URL"
    if scheme == "file":
        path = urllib.request.url2pathname(urllib.parse.urlparse(source).path)
        return _read_file(Path(path), max_bytes), f"image file {path!r}"
    raise ImageError(f"unsupported URL scheme {scheme!r} in {_short(source)}: expected http, https, data or file")


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_bytes(size: int, max_bytes: int, what: str) -> None:
    if size > max_bytes:
        raise ImageError(f"{what} is {size:,} bytes, over the limit of {max_bytes:,} bytes")


def _read_file(path: Path, max_bytes: int) -> bytes:
    what = f"image file {str(path)!r}"
    try:
        if path.is_dir():
            raise ImageError(f"{what} is a directory, expected an image file")
        if not path.exists():
            raise ImageError(f"{what} does not exist")
        size = path.stat().st_size
        if size == 0:
            raise ImageError(f"{what} is empty (0 bytes)")
        _check_bytes(size, max_bytes, what)
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise ImageError(f"cannot read {what}: {exc.strerror or exc}") from None
    _check_bytes(len(data), max_bytes, what)  # the file may have grown since stat()
    return data


def _read_stream(stream: object, max_bytes: int) -> bytes:
    text_mode = "the image stream is in text mode: expected a binary file object (open with 'rb')"
    try:
        data = stream.read(max_bytes + 1)  # type: ignore[attr-defined]
    except UnicodeDecodeError:  # a text-mode file of binary data fails while decoding it
        raise ImageError(text_mode) from None
    except OSError as exc:
        raise ImageError(f"cannot read the image stream: {exc}") from None
    if isinstance(data, str):
        raise ImageError(text_mode)
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ImageError(f"the image stream's read() returned {type(data).__name__}, expected bytes")
    _check_bytes(len(data), max_bytes, "image stream")
    return bytes(data)


def _decode_data_url(url: str, max_bytes: int) -> bytes:
    """Payload of ``data:[<media type>][;base64],<data>`` (RFC 2397)."""
    header, comma, payload = url.partition(",")
    if not comma:
        raise ImageError("malformed data URL: expected 'data:[<media type>][;base64],<data>', found no ','")
    is_base64 = header.lower().endswith(";base64")
    if is_base64:
        payload = urllib.parse.unquote(payload)
        payload = "".join(payload.split())
        # Decoded size is about 3/4 of the text: refuse early, before allocating it.
        _check_bytes(len(payload) * 3 // 4, max_bytes, "data URL payload")
        try:
            data = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImageError(f"data URL has invalid base64 data: {exc}") from None
    else:
        data = urllib.parse.unquote_to_bytes(payload)
    _check_bytes(len(data), max_bytes, "data URL payload")
    return data


def _download(url: str, *, max_bytes: int, timeout: float, allow_private: PrivateUrls) -> bytes:
    """GET ``url``, following redirects here (every hop's address checked), streaming at most ``max_bytes``,
    within ``timeout`` seconds overall."""
    import httpx  # imported on first URL only: keeps `import sam3_agent.images` light

    where = _short(url)
    deadline = time.monotonic() + timeout
    hop = url
    # Through an HTTP proxy the TLS name would be the pinned address: checked downloads connect directly.
    trust_env = allow_private is True
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=trust_env) as client:
            for hops in range(MAX_REDIRECTS + 1):
                left = max(deadline - time.monotonic(), 0.001)  # one budget for every hop
                request = _checked_request(client, hop, allow_private, where, left, redirected=hops > 0)
                response = client.send(request, stream=True)
                try:
                    if not response.has_redirect_location:
                        return _read_body(response, where, max_bytes, deadline, timeout)
                    hop = str(httpx.URL(hop).join(response.headers["location"]))
                finally:
                    response.close()
    except httpx.TimeoutException:
        raise ImageError(f"timed out after {timeout} s fetching {where}") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise ImageError(f"could not fetch {where}: {exc}") from None
    raise ImageError(f"could not fetch {where}: more than {MAX_REDIRECTS} redirects")


def _checked_request(
    client: httpx.Client, hop: str, allow_private: PrivateUrls, where: str, timeout: float, *, redirected: bool
) -> httpx.Request:
    """The GET of one hop; unless every address is allowed, sent to the resolved address that passed the check
    (the Host header and TLS name stay the URL's), so a second DNS answer cannot point it elsewhere."""
    import httpx

    url = httpx.URL(hop)
    via = f" (redirected to {_short(hop)})" if redirected else ""
    if url.scheme not in ("http", "https") or not url.host:
        raise ImageError(f"refused to fetch {where}{via}: only http(s) URLs with a host are fetched")
    if allow_private is True:
        return client.build_request("GET", url, timeout=timeout)
    address = _allowed_address(url.host, url.port or (443 if url.scheme == "https" else 80), allow_private)
    if isinstance(address, str):
        raise ImageError(f"refused to fetch {where}{via}: {address}")
    pinned = url.copy_with(host=str(address))
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    headers = {"Host": url.netloc.decode("ascii")}
    return client.build_request("GET", pinned, headers=headers, extensions=extensions, timeout=timeout)


def _allowed_address(host: str, port: int, allowed: PrivateUrls) -> ipaddress.IPv4Address | ipaddress.IPv6Address | str:
    """The first address ``host`` resolves to when every one is public or in ``allowed``; else why not (text)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        return f"cannot resolve its host {host!r} ({exc})"
    networks = private_networks(allowed)
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not addresses:
        return f"its host {host!r} resolves to no address"
    for address in addresses:
        kind = _non_public_kind(address)
        if kind is not None and not any(address in net for net in networks if net.version == address.version):
            return (
                f"its host {host!r} resolves to {address}, a {kind} address; non-public addresses are refused "
                "unless allowed (allow_private_urls)"
            )
    return addresses[0]


def _non_public_kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """What kind of non-public address this is ("loopback", "private", ...), or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    kinds = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("non-public", not address.is_global),
    )
    return next((kind for kind, hit in kinds if hit), None)


def private_networks(allowed: PrivateUrls) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks an ``allow_private_urls`` value allows beyond public addresses (none for True / False).

    Raises:
        ImageError: an entry is not a network or address.
    """
    if isinstance(allowed, bool):
        return []
    if isinstance(allowed, str):  # one network given bare, not in a list
        allowed = [allowed]
    expected = "expected networks such as '10.0.0.0/8' or '127.0.0.1'"
    entries = list(allowed) if isinstance(allowed, Collection) else [allowed]
    wrong = [net for net in entries if not isinstance(net, str)]
    if wrong:
        raise ImageError(f"allow_private_urls: {wrong[0]!r} is not a network written as text ({expected})")
    try:
        return [ipaddress.ip_network(net, strict=False) for net in entries]
    except ValueError as exc:
        raise ImageError(f"allow_private_urls: {exc} ({expected})") from None


def _read_body(response: httpx.Response, where: str, max_bytes: int, deadline: float, timeout: float) -> bytes:
    if response.status_code >= 400:
        raise ImageError(f"HTTP {response.status_code} {response.reason_phrase} fetching {where}")
    declared = response.headers.get("content-length")
    if declared and declared.isdigit():
        _check_bytes(int(declared), max_bytes, f"image at {where}")
    chunks: list[bytes] = []
    received = 0
    for chunk in response.iter_bytes():
        received += len(chunk)
        _check_bytes(received, max_bytes, f"image at {where}")
        if time.monotonic() > deadline:
            raise ImageError(f"timed out after {timeout} s downloading {where}")
        chunks.append(chunk)
    return b"".join(chunks)
