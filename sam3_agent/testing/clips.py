"""Synthetic clips for tests and benchmarks: shapes moving over a textured background, with known positions.

``moving_shapes(n)`` makes the frames (RGB uint8 arrays) of a clip where each ``Shape`` slides in a straight
line, optionally entering late or leaving early; ``write_video(path, frames)`` encodes them with PyAV (H.264 in
mp4 by default), so file tests read a real container. ``shape_masks`` gives each shape's exact mask per frame.
The bad files the video checks must refuse (a zero-frame mp4, truncated data, an unknown codec tag) are made
by ``write_zero_frame_video``, ``write_truncated_video`` and ``write_unknown_codec_video``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Shape:
    """A square or disc of ``side`` pixels moving from ``start`` to ``end`` (top-left x, y) over the clip, on
    screen from frame ``enter`` to ``leave`` (exclusive; None: to the end)."""

    kind: str = "square"  # "square" or "disc"
    colour: tuple[int, int, int] = (220, 40, 40)
    side: int = 12
    start: tuple[float, float] = (4.0, 8.0)
    end: tuple[float, float] = (40.0, 8.0)
    enter: int = 0
    leave: int | None = None

    def on(self, index: int) -> bool:
        return index >= self.enter and (self.leave is None or index < self.leave)

    def corner(self, index: int, frames: int) -> tuple[int, int]:
        t = index / max(frames - 1, 1)
        (x0, y0), (x1, y1) = self.start, self.end
        return round(x0 + t * (x1 - x0)), round(y0 + t * (y1 - y0))


DEFAULT_SHAPES = (
    Shape(),
    Shape(kind="disc", colour=(40, 160, 230), side=14, start=(44.0, 28.0), end=(8.0, 30.0), enter=2),
)


def shape_mask(shape: Shape, index: int, frames: int, height: int, width: int) -> np.ndarray:
    """The (height, width) bool mask of ``shape`` on frame ``index`` (all False when it is off screen)."""
    mask = np.zeros((height, width), bool)
    if not shape.on(index):
        return mask
    x, y = shape.corner(index, frames)
    yy, xx = np.mgrid[0:height, 0:width]
    if shape.kind == "disc":
        r = shape.side / 2
        return (xx - x - r + 0.5) ** 2 + (yy - y - r + 0.5) ** 2 <= r * r
    mask[max(y, 0) : max(y + shape.side, 0), max(x, 0) : max(x + shape.side, 0)] = True
    return mask


def moving_shapes(
    frames: int, *, height: int = 48, width: int = 64, shapes: Sequence[Shape] = DEFAULT_SHAPES, seed: int = 0
) -> list[np.ndarray]:
    """``frames`` RGB (height, width, 3) uint8 frames: a fixed noisy background with ``shapes`` painted on."""
    return list(iter_moving_shapes(frames, height=height, width=width, shapes=shapes, seed=seed))


def iter_moving_shapes(
    frames: int, *, height: int = 48, width: int = 64, shapes: Sequence[Shape] = DEFAULT_SHAPES, seed: int = 0
) -> Iterator[np.ndarray]:
    """``moving_shapes``, one frame at a time (long clips without holding them)."""
    rng = np.random.default_rng(seed)
    background = (rng.integers(90, 150, (height, width, 1)) + rng.integers(-8, 8, (height, width, 3))).astype(np.uint8)
    for index in range(frames):
        frame = background.copy()
        for shape in shapes:
            frame[shape_mask(shape, index, frames, height, width)] = shape.colour
        yield frame


def write_video(
    path: str | Path, frames: Iterator[np.ndarray] | Sequence[np.ndarray], *, fps: int = 10, codec: str = "libx264"
) -> Path:
    """Encode RGB uint8 frames (all one size, even width and height for H.264) into ``path`` with PyAV."""
    import av

    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = None
        for frame in frames:
            if stream is None:
                stream = container.add_stream(codec, rate=fps)
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = "yuv420p"
                if codec == "libx264":
                    stream.options = {"preset": "ultrafast"}
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        if stream is not None:
            container.mux(stream.encode())
    return path


def write_zero_frame_video(path: str | Path, *, height: int = 48, width: int = 64) -> Path:
    """An AVI whose video stream has no frame at all: a header and nothing else (an mp4 or mkv writer drops or
    cannot close an empty track; AVI keeps it)."""
    import av

    path = Path(path)
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.height, stream.width, stream.pix_fmt = height, width, "yuv420p"
        container.start_encoding()
    return path


def write_truncated_video(path: str | Path, source: str | Path, keep: float = 0.3) -> Path:
    """The first ``keep`` fraction of ``source``'s bytes (a download cut short)."""
    data = Path(source).read_bytes()
    Path(path).write_bytes(data[: max(1, int(len(data) * keep))])
    return Path(path)


def write_unknown_codec_video(path: str | Path, frames: Sequence[np.ndarray]) -> Path:
    """An AVI of ``frames`` whose codec tag (FourCC) is rewritten to one no decoder knows ("ZZZZ")."""
    import av

    path = Path(path)
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.codec_tag = "FMP4"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    data = path.read_bytes()
    if b"FMP4" not in data:
        raise RuntimeError("the AVI writer did not store the FMP4 tag")
    path.write_bytes(data.replace(b"FMP4", b"ZZZZ"))
    return path
