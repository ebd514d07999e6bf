"""``Clip.open`` on real files made here: good clips stream, bad ones fail with one line before any model work."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sam3_agent.errors import VideoError
from sam3_agent.testing.clips import (
    moving_shapes,
    write_truncated_video,
    write_unknown_codec_video,
    write_video,
    write_zero_frame_video,
)
from sam3_agent.video import FrameSelection
from sam3_agent.video.frames import Clip

FRAMES = 12


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return moving_shapes(FRAMES)


@pytest.fixture(scope="module")
def good_mp4(tmp_path_factory: pytest.TempPathFactory, frames):
    return write_video(tmp_path_factory.mktemp("clips") / "shapes.mp4", frames, fps=10)


def test_an_mp4_opens_and_streams_its_frames(good_mp4, frames):
    clip = Clip.open(good_mp4)
    assert (clip.info.width, clip.info.height, clip.info.fps, clip.info.codec) == (64, 48, 10.0, "h264")
    assert clip.info.frame_count == FRAMES
    decoded = list(clip.frames())
    assert [s.index for s, _ in decoded] == list(range(FRAMES))
    assert [s.time_s for s, _ in decoded] == pytest.approx([i / 10 for i in range(FRAMES)])
    first = np.asarray(decoded[0][1], dtype=np.int16)
    assert first.shape == (48, 64, 3)
    assert np.abs(first - frames[0]).mean() < 8  # lossy H.264, same picture
    assert np.array_equal(np.asarray(clip.frame(5)), np.asarray(decoded[5][1]))


def test_selection_and_plan_agree_on_a_file(good_mp4):
    clip = Clip.open(good_mp4)
    selection = FrameSelection(stride=2, start_s=0.3, end_s=1.0, max_frames=3)
    assert [s.index for s in clip.plan(selection)] == [3, 5, 7]
    assert [s.index for s, _ in clip.frames(selection)] == [3, 5, 7]
    assert [s.index for s, _ in clip.frames(FrameSelection(max_frames=4))] == [0, 1, 2, 3]


def test_a_long_clip_is_cut_at_max_frames(tmp_path):
    path = write_video(tmp_path / "long.mp4", moving_shapes(120), fps=30)
    clip = Clip.open(path)
    assert clip.info.frame_count == 120
    selection = FrameSelection(max_frames=5)
    assert len(clip.plan(selection)) == 5
    assert [s.index for s, _ in clip.frames(selection)] == [0, 1, 2, 3, 4]


def test_an_animated_gif_is_a_clip(tmp_path, frames):
    images = [Image.fromarray(f) for f in frames[:4]]
    images[0].save(tmp_path / "anim.gif", save_all=True, append_images=images[1:], duration=100, loop=0)
    clip = Clip.open(tmp_path / "anim.gif")
    assert clip.info.frame_count == 4
    assert len(list(clip.frames())) == 4


def _png(path, frames):
    Image.fromarray(frames[0]).save(path)


def _jpeg(path, frames):
    Image.fromarray(frames[0]).save(path, format="JPEG")


def _still_gif(path, frames):
    Image.fromarray(frames[0]).save(path, format="GIF")


def _text(path, frames):
    path.write_text("this is not a video\n")


def _empty(path, frames):
    path.write_bytes(b"")


def _zero_frames(path, frames):
    write_zero_frame_video(path)


def _truncated(path, frames):
    source = write_video(path.with_name("whole.mp4"), frames)
    write_truncated_video(path, source, keep=0.3)


def _unknown_codec(path, frames):
    write_unknown_codec_video(path, frames)


def _huge(path, frames):
    write_video(path, [np.zeros((2304, 4352, 3), np.uint8)])  # 10 M pixels, over the 4K UHD limit


@pytest.mark.parametrize(
    ("name", "make", "says"),
    [
        ("still.png", _png, "is an image, not a video"),
        ("still.jpg", _jpeg, "is an image, not a video"),
        ("still.gif", _still_gif, "is an image, not a video"),
        ("notes.mp4", _text, "could not be read as a video"),
        ("empty.mp4", _empty, "is empty (0 bytes)"),
        ("zero.avi", _zero_frames, "has no decodable frame"),
        ("cut.mp4", _truncated, "could not be read as a video"),
        ("odd.avi", _unknown_codec, "codec is not supported"),
        ("huge.mp4", _huge, "larger than the 8,847,360-pixel limit"),
    ],
)
def test_bad_files_fail_with_one_line(tmp_path, frames, name, make, says):
    path = tmp_path / name
    make(path, frames)
    with pytest.raises(VideoError) as caught:
        Clip.open(path)
    message = str(caught.value)
    assert says in message
    assert "\n" not in message
    assert name in message


def test_missing_paths_and_directories(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        Clip.open(tmp_path / "nope.mp4")
    with pytest.raises(VideoError, match="is a directory"):
        Clip.open(tmp_path)
    with pytest.raises(VideoError, match="a file path"):
        Clip.open(12)  # type: ignore[arg-type]


def test_the_pixel_limit_is_a_setting(good_mp4):
    with pytest.raises(VideoError, match="larger than the 1,000-pixel limit"):
        Clip.open(good_mp4, max_frame_pixels=1000)
