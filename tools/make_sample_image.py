"""Render the sample photo the README's commands use: a desk with three cups and a laptop.

    python tools/make_sample_image.py examples/desk.jpg

The layout is a ``sam3_agent.testing.scene.Scene`` (``DESK``: two cups left of the laptop, one right of
it), painted with light, shadows, a wooden table, blur and sensor noise so it looks like a photo rather than
flat shapes. The output is deterministic (seeded) and about 40 KB.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from sam3_agent.testing.scene import Scene, SceneObject

WIDTH, HEIGHT = 640, 427
TABLE_TOP = 250
DESK = Scene(
    WIDTH,
    HEIGHT,
    [
        SceneObject("laptop", (250, 110, 470, 300), shape="box", color=(58, 60, 68)),
        SceneObject("cup", (60, 215, 130, 305), shape="box", color=(196, 52, 44)),
        SceneObject("cup", (150, 225, 212, 310), shape="box", color=(236, 232, 222)),
        SceneObject("cup", (505, 210, 575, 300), shape="box", color=(52, 120, 84)),
    ],
)
"""The sample's objects (XYXY pixels): what the README's questions are about."""


def _room() -> np.ndarray:
    """A wall lit from the left above a wooden table, as float RGB (height, width, 3)."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    light = 1.08 - 0.35 * (xs / WIDTH) - 0.15 * (ys / HEIGHT)
    img = np.empty((HEIGHT, WIDTH, 3), np.float32)
    img[:] = (214, 206, 190)
    grain = 0.9 + 0.1 * np.sin(ys * 0.9 + 6 * np.sin(xs * 0.013)) * np.sin(xs * 0.004 + 1.3)
    table = np.array((150, 104, 66), np.float32)[None, None, :] * grain[..., None]
    img[TABLE_TOP:] = table[TABLE_TOP:]
    return img * light[..., None]


def _shadows(img: np.ndarray) -> np.ndarray:
    """Soft contact shadows on the table under each object (cast to the right, away from the light)."""
    shade = Image.new("L", (WIDTH, HEIGHT), 0)
    draw = ImageDraw.Draw(shade)
    for obj in DESK.objects:
        x0, _, x1, y1 = obj.box
        draw.ellipse((x0 + 6, y1 - 12, x1 + 26, y1 + 10), fill=150)
    soft = np.asarray(shade.filter(ImageFilter.GaussianBlur(9)), np.float32) / 255
    return img * (1 - 0.55 * soft[..., None])


def _objects(img: np.ndarray) -> np.ndarray:
    """Each object in its colour, lit from the left, with cup rims and handles and a glowing laptop screen."""
    xs = np.arange(WIDTH, dtype=np.float32)
    room = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    for i, obj in enumerate(DESK.objects):
        x0, y0, x1, y1 = obj.box
        across = np.clip((xs - x0) / (x1 - x0), 0, 1)
        light = 1.15 - 0.45 * across  # a cylinder / box side darkening away from the light
        shaded = np.broadcast_to(np.array(obj.color, np.float32) * light[:, None], img.shape)
        img[DESK.mask(i)] = shaded[DESK.mask(i)]
    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for obj in DESK.objects:
        x0, y0, x1, y1 = (int(v) for v in obj.box)
        if obj.phrase == "cup":
            r, g, b = obj.color
            draw.ellipse((x0, y0 - 7, x1, y0 + 7), fill=(r // 3, g // 3, b // 3), outline=(r, g, b), width=3)
            handle = (int(r * 0.8), int(g * 0.8), int(b * 0.8))
            draw.arc((x1 - 10, y0 + 18, x1 + 22, y1 - 22), -90, 90, fill=handle, width=7)
        else:  # laptop: the lid's screen in its bezel, and the keyboard deck seen from above the table
            lid = (*canvas.getpixel((x0 + 2, y0 + 2)),)
            deck = (x0, y1 - 48, x1, y1)
            canvas.paste(room.crop(deck), deck[:2])  # the table again where the deck is drawn
            draw.rectangle((x0, y0, x1, y1 - 48), fill=lid)
            draw.rectangle((x0 + 9, y0 + 9, x1 - 9, y1 - 57), fill=(70, 120, 170))
            draw.rectangle((x0 + 24, y0 + 26, x0 + 120, y0 + 70), fill=(230, 236, 240))
            draw.polygon([(x0, y1 - 48), (x1, y1 - 48), (x1 + 22, y1), (x0 - 22, y1)], fill=(150, 152, 158))
            for row in range(3):
                y = y1 - 42 + 9 * row
                draw.rectangle((x0 + 14 - 4 * row, y, x1 - 14 + 4 * row, y + 5), fill=(72, 74, 80))
    return np.asarray(canvas, np.float32)


def render(seed: int = 0) -> Image.Image:
    """The sample photo: ``DESK`` painted as a photo (deterministic for a given ``seed``)."""
    img = _objects(_shadows(_room()))
    photo = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8))
    noise = np.random.default_rng(seed).normal(0, 3.0, (HEIGHT, WIDTH, 1)).astype(np.float32)
    return Image.fromarray(np.clip(np.asarray(photo, np.float32) + noise, 0, 255).astype(np.uint8))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the JPEG (or PNG) to write, e.g. examples/desk.jpg")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sensor noise (default 0)")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    render(args.seed).save(args.out, quality=85, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB, {WIDTH}x{HEIGHT})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
