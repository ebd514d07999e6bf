"""Image loading from every source, every failure with its specific error, mode conversion, EXIF orientation."""

from __future__ import annotations

import base64
import http.server
import io
import threading
import time
import urllib.parse
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam3_agent.errors import ImageError
from sam3_agent.images import check_image_size, load_image, to_rgb


def encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def gradient(width: int = 40, height: int = 30) -> Image.Image:
    """RGB image whose pixel (x, y) is (x * 6, y * 8, 100): every position is recognisable."""
    xs, ys = np.meshgrid(np.arange(width), np.arange(height))
    arr = np.stack([xs * 6, ys * 8, np.full_like(xs, 100)], axis=2).astype(np.uint8)
    return Image.fromarray(arr)


PNG = encode(gradient())


# --- sources ---------------------------------------------------------------------------------------------


def test_path_str_and_pathlike(tmp_path: Path) -> None:
    path = tmp_path / "img.png"
    path.write_bytes(PNG)
    for source in (path, str(path), path.as_uri()):
        image = load_image(source)
        assert image.mode == "RGB" and image.size == (40, 30)
        assert (np.asarray(image) == np.asarray(gradient())).all()


def test_bytes_bytearray_memoryview_and_file_object() -> None:
    for source in (PNG, bytearray(PNG), memoryview(PNG), io.BytesIO(PNG)):
        assert (np.asarray(load_image(source)) == np.asarray(gradient())).all()


def test_pil_image_is_converted_not_modified() -> None:
    original = gradient().convert("RGBA")
    image = load_image(original)
    assert image.mode == "RGB" and original.mode == "RGBA"
    rgb = gradient()
    copy = load_image(rgb)
    assert copy is not rgb and (np.asarray(copy) == np.asarray(rgb)).all()


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png;base64," + base64.b64encode(PNG).decode(),
        "data:image/png;base64," + base64.b64encode(PNG).decode().rstrip("="),  # padding left out
        "data:;base64," + urllib.parse.quote(base64.b64encode(PNG).decode()),  # percent-encoded
        "data:image/png," + urllib.parse.quote_from_bytes(PNG),  # not base64 at all
    ],
)
def test_data_urls(url: str) -> None:
    assert (np.asarray(load_image(url)) == np.asarray(gradient())).all()


# --- failures --------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="does not exist"):
        load_image(tmp_path / "nope.png")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="is a directory"):
        load_image(str(tmp_path))


def test_empty_file_and_empty_bytes(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty \(0 bytes\)"):
        load_image(path)
    with pytest.raises(ImageError, match=r"empty \(0 bytes\)"):
        load_image(b"")
    with pytest.raises(ImageError, match="empty string"):
        load_image("")


def test_text_file_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("hello, I am not a picture\n")
    with pytest.raises(ImageError, match=r"not a recognised image format \(starts with b'hello, I am"):
        load_image(path)


@pytest.mark.parametrize(("fmt", "keep"), [("PNG", 0.6), ("JPEG", 0.5), ("GIF", 0.5)])
def test_truncated_image(fmt: str, keep: float) -> None:
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    if fmt == "GIF":
        noisy = noisy.convert("P")
    data = encode(noisy, fmt)
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(data[: int(len(data) * keep)])


def test_corrupt_png_body() -> None:
    data = bytearray(encode(Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8))))
    data[60:80] = b"\x00" * 20  # inside the first IDAT chunk: CRC / zlib errors on decode
    with pytest.raises(ImageError, match="corrupt"):
        load_image(bytes(data))


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b"\xff\xd8\xff" + b"garbage, not JPEG markers " * 8, "JPEG"),
        (b"\xff\xd8\xff\xe0" + bytes(range(256)) * 2, "JPEG"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 7, "PNG"),
        (b"GIF89a" + b"\x01", "GIF"),
        (b"RIFF\x10\x00\x00\x00WEBPjunk", "WebP"),
    ],
)
def test_a_right_signature_with_garbage_after_it_is_a_corrupt_file_of_that_format(
    tmp_path: Path, data: bytes, fmt: str
) -> None:
    path = tmp_path / "photo.bin"
    path.write_bytes(data)
    with pytest.raises(ImageError) as raised:
        load_image(path)
    message = str(raised.value)
    assert f"is a corrupt or truncated {fmt} file" in message and "not a recognised image format" not in message
    assert "\n" not in message


def test_over_max_bytes(tmp_path: Path) -> None:
    path = tmp_path / "img.png"
    path.write_bytes(PNG)
    limit = len(PNG) - 1
    for source in (path, PNG, io.BytesIO(PNG), "data:image/png;base64," + base64.b64encode(PNG).decode()):
        with pytest.raises(ImageError, match=f"over the limit of {limit:,} bytes"):
            load_image(source, max_bytes=limit)


def test_decompression_bomb_is_refused_from_the_header() -> None:
    big = encode(Image.new("L", (3000, 2000)))  # 6 M pixels, a few kB of PNG
    with pytest.raises(ImageError, match=r"3000x2000 = 6,000,000 pixels, over the limit of 5,000,000"):
        load_image(big, max_pixels=5_000_000)
    assert load_image(big, max_pixels=6_000_000).size == (3000, 2000)


def test_pil_decompression_bomb_error_becomes_image_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL refuses > 2000 px itself, at open
    with pytest.raises(ImageError, match="too large to decode safely"):
        load_image(encode(Image.new("L", (100, 100))), max_pixels=10**9)


def test_pil_decompression_bomb_warning_as_error_becomes_image_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # 10 000 px: PIL warns (not raises) at open
    with pytest.warns(Image.DecompressionBombWarning):
        assert load_image(encode(Image.new("L", (100, 100))), max_pixels=10**9).size == (100, 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageError, match="too large to decode safely"):
            load_image(encode(Image.new("L", (100, 100))), max_pixels=10**9)


def test_bad_data_urls() -> None:
    with pytest.raises(ImageError, match="malformed data URL"):
        load_image("data:image/png;base64")
    with pytest.raises(ImageError, match="invalid base64"):
        load_image("data:image/png;base64,@@@@")
    with pytest.raises(ImageError, match="not a recognised image format"):
        load_image("data:text/plain,hello")


def test_a_png_opened_in_text_mode_is_refused_in_one_line(tmp_path) -> None:
    path = tmp_path / "photo.png"
    Image.new("RGB", (8, 8), (250, 10, 10)).save(path)
    with open(path, encoding="utf-8") as text, pytest.raises(ImageError, match=r"text mode.*open with 'rb'"):
        load_image(text)  # type: ignore[arg-type]


def test_unsupported_scheme_text_stream_and_wrong_type() -> None:
    with pytest.raises(ImageError, match="unsupported URL scheme 'ftp'"):
        load_image("ftp://example.com/a.png")
    with pytest.raises(ImageError, match="text mode"):
        load_image(io.StringIO("abc"))  # type: ignore[arg-type]
    with pytest.raises(ImageError, match="got int"):
        load_image(42)  # type: ignore[arg-type]


def test_check_image_size() -> None:
    check_image_size(10, 10, 100)
    with pytest.raises(ImageError, match="over the limit"):
        check_image_size(10, 11, 100)
    with pytest.raises(ImageError, match="empty size 0x5"):
        check_image_size(0, 5, 100)


# --- modes -----------------------------------------------------------------------------------------------


def _round_trip(image: Image.Image, fmt: str = "PNG") -> np.ndarray:
    out = load_image(encode(image, fmt))
    assert out.mode == "RGB"
    return np.asarray(out).astype(int)


def test_l_and_1_modes() -> None:
    grey = Image.fromarray(np.array([[0, 100, 255]], np.uint8))
    assert (_round_trip(grey)[0] == [[0, 0, 0], [100, 100, 100], [255, 255, 255]]).all()
    bits = Image.fromarray(np.array([[0, 255]], np.uint8)).convert("1")
    assert (_round_trip(bits)[0] == [[0, 0, 0], [255, 255, 255]]).all()


def test_rgba_and_la_are_composited_on_white() -> None:
    rgba = Image.fromarray(np.array([[[255, 0, 0, 255], [255, 0, 0, 0], [0, 0, 255, 128]]], np.uint8), "RGBA")
    px = _round_trip(rgba)[0]
    assert (px[0] == [255, 0, 0]).all()  # opaque
    assert (px[1] == [255, 255, 255]).all()  # transparent -> white, not the hidden red
    assert (np.abs(px[2] - [127, 127, 255]) <= 1).all()  # half blue over white
    la = Image.fromarray(np.array([[[0, 255], [0, 0]]], np.uint8), "LA")
    assert (_round_trip(la)[0] == [[0, 0, 0], [255, 255, 255]]).all()


def test_palette_with_and_without_transparency() -> None:
    p = Image.new("P", (2, 1))
    p.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    p.putdata([0, 1])
    assert (_round_trip(p)[0] == [[255, 0, 0], [0, 255, 0]]).all()
    p.info["transparency"] = 0  # index 0 (red) is transparent
    assert (_round_trip(p)[0] == [[255, 255, 255], [0, 255, 0]]).all()
    assert (_round_trip(p, "GIF")[0] == [[255, 255, 255], [0, 255, 0]]).all()


def test_cmyk() -> None:
    cmyk = Image.new("CMYK", (2, 1))
    cmyk.putdata([(0, 255, 255, 0), (0, 0, 0, 0)])  # red, white
    px = _round_trip(cmyk, "JPEG")[0]
    assert (np.abs(px[0] - [255, 0, 0]) <= 40).all() and (px[1] >= 215).all()
    assert (np.asarray(load_image(cmyk)) == [[[255, 0, 0], [255, 255, 255]]]).all()


def test_16_bit_grey_is_scaled_by_its_value_range() -> None:
    values = np.array([[1000, 1500, 2000]], np.uint16)  # all would clip to 255 if cast naively
    image = Image.fromarray(values)
    assert image.mode.startswith("I;16")
    px = _round_trip(image)[0, :, 0]
    assert list(px) == [0, 128, 255]
    assert list(np.asarray(load_image(image))[0, :, 0]) == [0, 128, 255]


def test_32_bit_int_and_float() -> None:
    ints = Image.fromarray(np.array([[-(2**20), 0, 2**20]], np.int32))
    assert ints.mode == "I"
    assert list(np.asarray(load_image(ints))[0, :, 0]) == [0, 128, 255]
    floats = Image.fromarray(np.array([[0.0, 0.25, 1.0, np.nan]], np.float32))
    assert floats.mode == "F"
    assert list(np.asarray(load_image(floats))[0, :, 0]) == [0, 64, 255, 0]
    constant = Image.fromarray(np.full((2, 2), 70, np.int32))
    assert (np.asarray(load_image(constant)) == 70).all()


def test_to_rgb_returns_rgb_unchanged() -> None:
    rgb = gradient()
    assert to_rgb(rgb) is rgb


# --- EXIF orientation ------------------------------------------------------------------------------------


def _marked_jpeg(orientation: int) -> bytes:
    """A 60x40 (W x H) JPEG, red block at its stored top-left corner, with an EXIF Orientation tag."""
    arr = np.full((40, 60, 3), 255, np.uint8)
    arr[:10, :10] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(Image.fromarray(arr), "JPEG", exif=exif.tobytes(), quality=95)


def _red_corner(image: Image.Image) -> str:
    arr = np.asarray(image).astype(int)
    corners = {
        "top-left": arr[2, 2],
        "top-right": arr[2, -3],
        "bottom-left": arr[-3, 2],
        "bottom-right": arr[-3, -3],
    }
    reds = [name for name, (r, g, b) in corners.items() if r > 200 and g < 60 and b < 60]
    assert len(reds) == 1, corners
    return reds[0]


@pytest.mark.parametrize(
    ("orientation", "size", "corner"),
    [
        (1, (60, 40), "top-left"),
        (3, (60, 40), "bottom-right"),  # rotated 180
        (6, (40, 60), "top-right"),  # stored rotated 90 CCW: display rotates 90 CW
        (8, (40, 60), "bottom-left"),  # stored rotated 90 CW: display rotates 90 CCW
    ],
)
def test_exif_orientation(orientation: int, size: tuple[int, int], corner: str) -> None:
    image = load_image(_marked_jpeg(orientation))
    assert image.size == size
    assert _red_corner(image) == corner


def test_exif_orientation_for_pil_input() -> None:
    opened = Image.open(io.BytesIO(_marked_jpeg(6)))
    image = load_image(opened)
    assert image.size == (40, 60) and _red_corner(image) == "top-right"


# --- HTTP ------------------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/img.png":
            self._send(200, PNG)
        elif self.path == "/big.png":
            self._send(200, PNG + b"\x00" * 5000)
        elif self.path == "/chunked-big":  # no Content-Length: the cap must apply while streaming
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(10):
                chunk = b"\x00" * 1000
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/img.png")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/drip":  # every read returns quickly, the whole body would take 3 s
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(10):
                    self.wfile.write(b"\x00" * 100)
                    self.wfile.flush()
                    time.sleep(0.3)
            except OSError:  # the client gave up
                pass
        elif self.path == "/page.html":
            self._send(200, b"<html>not an image</html>")
        else:
            self._send(404, b"not found")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


LOCAL = ["127.0.0.0/8"]
"""The test server is on loopback, which downloads refuse unless allowed (see tests/test_image_urls.py)."""


def test_http_url(server: str) -> None:
    assert (np.asarray(load_image(f"{server}/img.png", allow_private_urls=True)) == np.asarray(gradient())).all()
    assert load_image(f"{server}/redirect", allow_private_urls=True).size == (40, 30)
    # allowed by network: the connection goes to the checked address, redirects included
    assert load_image(f"{server}/redirect", allow_private_urls=LOCAL).size == (40, 30)


def test_http_404(server: str) -> None:
    with pytest.raises(ImageError, match=r"HTTP 404 Not Found fetching http://127\.0\.0\.1"):
        load_image(f"{server}/missing.png", allow_private_urls=LOCAL)


def test_http_oversize(server: str) -> None:
    with pytest.raises(ImageError, match=r"over the limit of 4,000 bytes"):
        load_image(f"{server}/big.png", max_bytes=4000, allow_private_urls=LOCAL)
    with pytest.raises(ImageError, match=r"over the limit of 4,000 bytes"):
        load_image(f"{server}/chunked-big", max_bytes=4000, allow_private_urls=True)


def test_http_not_an_image_and_connection_refused(server: str) -> None:
    with pytest.raises(ImageError, match=r"image at http://127\.0\.0\.1.* is not a recognised image format$"):
        load_image(f"{server}/page.html", allow_private_urls=LOCAL)
    with pytest.raises(ImageError, match=r"could not fetch http://127\.0\.0\.1:1/"):
        load_image("http://127.0.0.1:1/x.png", timeout=5, allow_private_urls=LOCAL)


def test_http_overall_timeout(server: str) -> None:
    start = time.monotonic()
    with pytest.raises(ImageError, match=r"timed out after 0\.7 s downloading"):
        load_image(f"{server}/drip", timeout=0.7, allow_private_urls=LOCAL)
    assert time.monotonic() - start < 2.0
