"""A clip as a stream of frames: decoded with PyAV one at a time, never all held, checked before any model work.

``Clip.open(path)`` reads the container's header and decodes the first frame at once, so a missing file, an
image given where a video is expected, an unsupported codec, a clip with no frames or one whose frames are too
large fail with a one-line ``VideoError`` before the caller loads a model. ``Clip.from_frames`` wraps frames
already in memory (tests, frames from another decoder). ``clip.frames(selection)`` yields the selected frames as
RGB PIL images, in order, decoding the clip once from its start.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sam3_agent.errors import VideoError
from sam3_agent.video.protocol import FrameSelection
from sam3_agent.video.tracks import SampledFrame, VideoInfo

DEFAULT_MAX_FRAME_PIXELS = 4096 * 2160
"""Frames larger than 4K UHD are refused: SAM 3 sees 1008x1008 anyway, and each decoded frame costs w*h*3 bytes."""
_IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif_pipe_still"}
_IMAGE_CODECS = {"png", "mjpeg", "bmp", "tiff", "webp", "jpeg2000", "qoi", "gif"}


@dataclass(frozen=True)
class _Source:
    path: Path | None
    frames: tuple[Image.Image, ...] = ()


class Clip:
    """A video to track through: its ``info`` and a way to stream its frames. Build with ``open`` or ``from_frames``."""

    def __init__(self, info: VideoInfo, source: _Source, name: str) -> None:
        self.info = info
        self._source = source
        self.name = name

    def __repr__(self) -> str:
        i = self.info
        return f"Clip({self.name!r}, {i.width}x{i.height}, {i.fps:g} fps, {i.frame_count} frames)"

    @classmethod
    def open(cls, path: str | os.PathLike, *, max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS) -> Clip:
        """Open a video file and check it can be tracked through.

        Raises:
            VideoError: missing or unreadable file, a directory, not a video (an image, text), no video stream, an
                unsupported codec, no decodable frame, or frames of more than ``max_frame_pixels`` pixels.
        """
        path = _check_path(path)
        info = _probe(path, max_frame_pixels)
        return cls(info, _Source(path=path), path.name)

    @classmethod
    def from_frames(cls, frames: Sequence[Image.Image | np.ndarray], fps: float = 10.0, name: str = "clip") -> Clip:
        """A clip of frames already in memory (RGB PIL images or HxWx3 uint8 arrays), all of one size."""
        images = tuple(_as_rgb(f) for f in frames)
        if not images:
            raise VideoError("the clip has no frames")
        if fps <= 0 or not np.isfinite(fps):
            raise VideoError(f"fps must be a positive number, got {fps}")
        sizes = {im.size for im in images}
        if len(sizes) > 1:
            raise VideoError(f"every frame of a clip must have one size, got {sorted(sizes)}")
        width, height = images[0].size
        info = VideoInfo(
            width=width, height=height, fps=fps, frame_count=len(images), duration_s=len(images) / fps, codec="raw"
        )
        return cls(info, _Source(path=None, frames=images), name)

    def plan(self, selection: FrameSelection | None = None) -> list[SampledFrame]:
        """The frames ``frames(selection)`` will yield, from the container's frame count and rate (exact for
        constant-rate clips; a variable-rate file may yield a few more or fewer)."""
        selection = selection or FrameSelection()
        count = self.info.frame_count
        if count is None:
            count = round((self.info.duration_s or 0.0) * self.info.fps) or selection.max_frames * selection.stride
        times = (SampledFrame(index=i, time_s=i / self.info.fps) for i in range(count))
        return list(_select(times, selection))

    def frames(self, selection: FrameSelection | None = None) -> Iterator[tuple[SampledFrame, Image.Image]]:
        """Yield (frame, RGB image) for the selected frames in order, decoding one frame at a time.

        Raises:
            VideoError: the file fails to decode part way (the frames before it were yielded).
        """
        chosen = _Chooser(selection or FrameSelection())
        for sampled, image in self._all():
            verdict = chosen.take(sampled)
            if verdict is None:
                return
            if verdict:
                yield sampled, image
                if chosen.full:  # stop without decoding one more frame
                    return

    def frame(self, index: int) -> Image.Image:
        """One frame by index (decodes from the start up to it).

        Raises:
            VideoError: ``index`` is not a frame of the clip.
        """
        for sampled, image in self._all():
            if sampled.index == index:
                return image
        raise VideoError(f"frame {index} is not in the clip {self.name!r}")

    def _all(self) -> Iterator[tuple[SampledFrame, Image.Image]]:
        if self._source.path is None:
            for i, image in enumerate(self._source.frames):
                yield SampledFrame(index=i, time_s=i / self.info.fps), image
        else:
            yield from _decode(self._source.path, self.info.fps)


class _Chooser:
    """Walks frames in order and says, for each, take it (True), skip it (False) or stop (None)."""

    def __init__(self, selection: FrameSelection) -> None:
        self.selection = selection
        self.in_range = 0
        self.taken = 0

    @property
    def full(self) -> bool:
        return self.taken >= self.selection.max_frames

    def take(self, frame: SampledFrame) -> bool | None:
        s = self.selection
        if self.taken >= s.max_frames or (s.end_s is not None and frame.time_s >= s.end_s):
            return None
        if frame.time_s < s.start_s:
            return False
        self.in_range += 1
        if (self.in_range - 1) % s.stride:
            return False
        self.taken += 1
        return True


def _select(frames: Iterator[SampledFrame], selection: FrameSelection) -> Iterator[SampledFrame]:
    chosen = _Chooser(selection)
    for frame in frames:
        verdict = chosen.take(frame)
        if verdict is None:
            return
        if verdict:
            yield frame


def _as_rgb(frame: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(frame, Image.Image):
        return frame if frame.mode == "RGB" else frame.convert("RGB")
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise VideoError(f"a frame array must be HxWx3 uint8, got shape {array.shape} of {array.dtype}")
    return Image.fromarray(array, "RGB")


def _check_path(path: str | os.PathLike) -> Path:
    try:
        path = Path(os.fspath(path))
    except TypeError:
        raise VideoError(f"a video is a file path, got {type(path).__name__}") from None
    if "\x00" in str(path):
        raise VideoError("the video path contains a NUL character")
    if not path.exists():
        raise VideoError(f"video file not found: {path}")
    if path.is_dir():
        raise VideoError(f"{path} is a directory, not a video file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path} is empty (0 bytes)")
    return path


def _probe(path: Path, max_frame_pixels: int) -> VideoInfo:
    import av

    try:
        with av.open(str(path)) as container:
            if container.format.name in _IMAGE_FORMATS:
                raise VideoError(f"{path.name} is an image, not a video: use `segment` or `ask` for images")
            if not container.streams.video:
                raise VideoError(f"{path.name} has no video stream (format {container.format.name})")
            stream = container.streams.video[0]
            if stream.codec_context is None:
                raise VideoError(f"{path.name}: its video codec is not supported (this FFmpeg build has no decoder)")
            info = _info(container, stream)
            if info.codec in _IMAGE_CODECS and (info.frame_count or 0) <= 1:
                raise VideoError(f"{path.name} is an image, not a video: use `segment` or `ask` for images")
            if info.width * info.height > max_frame_pixels:
                raise VideoError(
                    f"{path.name}: frames of {info.width}x{info.height} are larger than the "
                    f"{max_frame_pixels:,}-pixel limit; downscale the clip first"
                )
            first = next(container.decode(stream), None)
    except VideoError:
        raise
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path.name} could not be read as a video: {_reason(exc)}") from None
    except (OSError, ValueError, StopIteration) as exc:
        raise VideoError(f"{path.name} could not be read as a video: {exc}") from None
    if first is None:
        raise VideoError(f"{path.name} has no decodable frame")
    return info


def _info(container, stream) -> VideoInfo:
    import av

    ctx = stream.codec_context
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    if not fps > 0:
        raise VideoError("the video does not say its frame rate")
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    count = stream.frames or (round(duration * fps) if duration else None)
    if not ctx.width or not ctx.height:
        raise VideoError(f"the video stream (codec {ctx.name}) has no frame size")
    return VideoInfo(
        width=ctx.width, height=ctx.height, fps=fps, frame_count=count, duration_s=duration, codec=ctx.name
    )


def _decode(path: Path, fps: float) -> Iterator[tuple[SampledFrame, Image.Image]]:
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            start = None
            for index, frame in enumerate(container.decode(stream)):
                time_s = frame.time if frame.time is not None else index / fps
                start = time_s if start is None else start
                yield SampledFrame(index=index, time_s=max(0.0, time_s - start)), frame.to_image().convert("RGB")
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path.name} failed to decode part way: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc).splitlines()[0]
