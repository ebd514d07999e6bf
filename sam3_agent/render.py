"""Set-of-Mark overlays (numbered, translucent masks) and zoom crops, shown to the language model and to people.

Masks are bool arrays of shape (height, width) of the original image; boxes are XYXY pixels with the max
corner exclusive; points are (x, y) integer pixel coordinates. Every instance gets its colour from its id
(``palette``), so the same mask keeps its colour across overlays of one query.

Performance (``render_overlay``): masks are read from their COCO run lengths (``masks.mask_datas``: handed
over by the engine, else parsed from all the strings in one numpy pass) and never decoded in full. Tight
boxes and areas come with the runs; compiled loops (``sam3_agent.masks.raster``) paint the runs into a uint8
label map and sample them into an atlas. Colouring, blending and outlining are then a few OpenCV passes
over the masks' union box of one uint8 copy of the image, and a distance transform over the atlas
finds the label points. The label points (in pieces of masks) and the blending (in blocks of rows) are
shared with a helper thread (``sam3_agent.parallel.share``): those passes release the GIL.
"""

from __future__ import annotations

import colorsys
import itertools
from collections.abc import Mapping, Sequence
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sam3_agent.errors import ImageError
from sam3_agent.masks import (
    IntBox,
    decode_run_crops,
    mask_crop,
    mask_datas,
    mask_to_box,
    rle_counts,
    rle_encode,
    stack_runs,
)
from sam3_agent.masks.raster import atlas_peaks, colorize, paint_runs, sample_runs
from sam3_agent.parallel import share
from sam3_agent.schema import Instance

_GOLDEN = 0.618033988749895
Color = tuple[int, int, int]


@lru_cache(maxsize=1024)
def _color(index: int) -> Color:
    """Colour number ``index``: golden-ratio hue steps, alternating between two saturation/value levels."""
    hue = (0.05 + index * _GOLDEN) % 1.0
    sat, val = ((0.85, 0.95), (0.65, 0.80))[(index // 3) % 2]
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return (round(r * 255), round(g * 255), round(b * 255))


def palette(n: int) -> list[Color]:
    """``n`` distinct saturated RGB colours; colour ``i`` is the same whatever ``n`` is."""
    if n < 0:
        raise ValueError(f"palette size must be >= 0, got {n}")
    return [_color(i) for i in range(n)]


def _text_color(fill: Color) -> Color:
    """Black or white, whichever contrasts more with ``fill`` (Rec. 601 luma)."""
    luma = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]
    return (0, 0, 0) if luma >= 140 else (255, 255, 255)


_PEAK_GRID = 48  # distance transforms run on at most ~48x48 samples of a crop
_ATLAS_WIDTH = 512


def _peak_in_crop(crop: np.ndarray) -> tuple[int, int]:
    """(row, col) of the first maximum of the distance transform of a non-empty crop (nonzero = mask)."""
    padded = cv2.copyMakeBorder(crop, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 3)
    _, _, _, (col, row) = cv2.minMaxLoc(dist)
    return int(row) - 1, int(col) - 1


def _shelf_pack(shapes: Sequence[tuple[int, int]], width: int) -> tuple[list[tuple[int, int]], int]:
    """(top, left) of each (h, w) rectangle in rows ("shelves") of an atlas ``width`` wide, tallest first,
    with one free pixel around every rectangle; and the atlas height."""
    places: list[tuple[int, int]] = [(0, 0)] * len(shapes)
    top, left, shelf = 1, 1, 0
    for i in sorted(range(len(shapes)), key=lambda i: -shapes[i][0]):
        h, w = shapes[i]
        if left + w + 1 > width and left > 1:
            top, left, shelf = top + shelf + 1, 1, 0
        places[i] = (top, left)
        left, shelf = left + w + 1, max(shelf, h)
    return places, top + shelf + 1


def _label_points(
    counts: np.ndarray, bounds: np.ndarray, size: tuple[int, int], boxes: Sequence[IntBox]
) -> list[tuple[int, int]]:
    """Per non-empty mask (COCO runs ``counts[bounds[j]:bounds[j + 1]]`` of a (height, width) image, as
    ``stack_runs`` gives them; tight box), a mask pixel (x, y) far from the mask's boundary.

    Each mask is sampled on a regular grid of its box (every ``step``-th row and column, at most
    ``_PEAK_GRID`` per side) into one atlas where zeros surround every sample, and a single distance
    transform serves all of them: the zeros around a sample keep its distances its own. The peak of a
    sample is a mask pixel. Shapes too thin to survive the sampling are searched at full size. Ties go to
    the first pixel in column-major order.
    """
    shapes = [(x1 - x0, y1 - y0) for x0, y0, x1, y1 in boxes]  # transposed, like the runs
    steps = [-(-max(shape) // _PEAK_GRID) for shape in shapes]
    samples = [(-(-w // step), -(-h // step)) for (w, h), step in zip(shapes, steps, strict=True)]
    places, atlas_height = _shelf_pack(samples, _ATLAS_WIDTH)
    atlas = np.zeros((atlas_height, _ATLAS_WIDTH), np.uint8)
    place_array, shape_array = np.array(places, np.int64).reshape(-1, 2), np.array(samples, np.int64).reshape(-1, 2)
    box_array, step_array = np.array(boxes, np.int64).reshape(-1, 4), np.array(steps, np.int64)
    sample_runs(atlas, counts, bounds, size[0], box_array, step_array, place_array)
    peaks = atlas_peaks(cv2.distanceTransform(atlas, cv2.DIST_L2, 3), place_array, shape_array).tolist()
    points = []
    for j, (row, col, found) in enumerate(peaks):
        step = steps[j]
        if not found:  # the grid missed the mask: search the whole crop
            row, col = _peak_in_crop(decode_run_crops([counts[bounds[j] : bounds[j + 1]]], [size], [boxes[j]])[0])
            step = 1
        points.append((boxes[j][0] + row * step, boxes[j][1] + col * step))
    return points


def label_point(mask: np.ndarray) -> tuple[int, int]:
    """Interior point (x, y) of an (H, W) mask to anchor its number: the peak of the distance transform.

    The point is (close to) the pixel farthest from the mask's boundary, and always a mask pixel, also
    for concave shapes (U, ring) whose centroid lies outside the mask. Masks whose bounding box is over
    48 px on a side are searched on an every-k-th-pixel grid, so the peak is exact to within k pixels.
    Ties go to the first pixel in column-major order (as the overlay searches masks decoded from their
    column-major RLE); the result is deterministic.

    Raises:
        ValueError: the mask is not 2-D or is empty.
    """
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D (height, width) mask, got shape {mask.shape}")
    box = tuple(int(v) for v in mask_to_box(mask))
    if box[2] == 0:
        raise ValueError("cannot place a label on an empty mask")
    return _label_points(*stack_runs([rle_counts(rle_encode(mask))], *mask.shape), mask.shape, [box])[0]


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError, TypeError):  # Pillow built without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def _font_size(width: int, height: int) -> int:
    """Label font size in pixels: about 1/45 of the short side, within [10, 40]."""
    return min(max(round(min(width, height) / 45), 10), 40)


@lru_cache(maxsize=4096)
def _badge(text: str, size: int, fill: Color) -> np.ndarray:
    """A (h, w, 3) uint8 badge: ``text`` in black or white on ``fill``, with a 1 px border in the text colour."""
    font = _font(size)
    left, top, right, bottom = font.getbbox(text)
    pad = max(1, size // 6)
    w, h = int(right - left) + 2 * pad, int(bottom - top) + 2 * pad
    ink = _text_color(fill)
    badge = Image.new("RGB", (w, h), fill)
    draw = ImageDraw.Draw(badge)
    draw.rectangle((0, 0, w - 1, h - 1), outline=ink)
    draw.text((pad - left, pad - top), text, font=font, fill=ink)
    result = np.asarray(badge)
    result.flags.writeable = False
    return result


def _paste_badge(arr: np.ndarray, point: tuple[int, int], badge: np.ndarray) -> None:
    """Copy a badge into the (H, W, 3) array centred on ``point``, shifted to stay inside the image."""
    height, width = arr.shape[:2]
    h, w = badge.shape[:2]
    bx = min(max(0, point[0] - w // 2), max(0, width - w))
    by = min(max(0, point[1] - h // 2), max(0, height - h))
    arr[by : by + h, bx : bx + w] = badge[: height - by, : width - bx]


def _check_size(image: Image.Image, instance: Instance) -> None:
    if instance.image_size != (image.height, image.width):
        h, w = instance.image_size
        raise ImageError(
            f"instance {instance.id} has a {w}x{h} mask but the image is {image.width}x{image.height} (WxH)"
        )


def _rgb_array(image: Image.Image) -> np.ndarray:
    """A writable uint8 (H, W, 3) copy of the image in RGB."""
    return np.array(image if image.mode == "RGB" else image.convert("RGB"))


def _label_map(
    boxes: Sequence[IntBox], counts: np.ndarray, bounds: np.ndarray, height: int
) -> tuple[np.ndarray, IntBox]:
    """Up to 255 masks (tight boxes, COCO runs as in ``_label_points``) as a uint8 map over their union
    box, and that box: 0 = no mask, k = mask k (from 1), a later mask covering an earlier one.

    The masks are painted straight from their runs into the transposed map (the runs' order).
    """
    ux0, uy0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    ux1, uy1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    labels_t = np.zeros((ux1 - ux0, uy1 - uy0), np.uint8)
    paint_runs(labels_t, counts, bounds, np.arange(1, len(boxes) + 1, dtype=np.uint8), height, ux0, uy0)
    return cv2.transpose(labels_t), (ux0, uy0, ux1, uy1)


def _fill_layer(
    arr: np.ndarray, labels: np.ndarray, box: IntBox, alpha: float, thickness: int, colors: Sequence[Color]
) -> None:
    """Blend a ``_label_map`` over ``box`` into ``arr`` in place, mask k in ``colors[k - 1]``; outline if
    thickness > 0. Colouring, blending and outlining are a few OpenCV passes over the box, in blocks of
    rows shared with the helper thread (the passes release the GIL)."""
    lut = np.zeros((256, 3), np.uint8)
    lut[1 : len(colors) + 1] = colors
    region = arr[box[1] : box[3], box[0] : box[2]]
    starts = range(0, len(labels), _BLOCK_ROWS)
    blocks = share(
        lambda k: _blended_rows(region, labels, lut, alpha, thickness, starts[k], starts[k] + _BLOCK_ROWS),
        len(starts),
        pure=True,
    ).result()
    for start, block in zip(starts, blocks, strict=True):
        region[start : start + len(block)] = block


_BLOCK_ROWS = 128  # rows blended at a time
_MASKS_PER_PIECE = 25  # masks whose label points are found at a time


def _blended_rows(
    region: np.ndarray, labels: np.ndarray, lut: np.ndarray, alpha: float, thickness: int, y0: int, y1: int
) -> np.ndarray:
    """Rows y0:y1 of ``region`` coloured (``lut``), blended and outlined after its uint8 ``labels`` (0 = no
    mask), as a new array (``region`` is only read).

    The outline needs ``thickness`` rows of labels beyond y0:y1; rows past the labels count as outside.
    """
    y1 = min(y1, len(labels))
    rows, row_labels = region[y0:y1], labels[y0:y1]
    colored = np.empty((*row_labels.shape, 3), np.uint8)
    colorize(row_labels, lut, colored)
    blended = cv2.addWeighted(rows, 1.0 - alpha, colored, alpha, 0.0)
    cv2.copyTo(rows, cv2.compare(row_labels, 0, cv2.CMP_EQ), blended)  # no mask: the image as it was
    if thickness > 0:
        above, below = max(y0 - thickness, 0), min(y1 + thickness, len(labels))
        cv2.copyTo(colored, _outline(labels[above:below], thickness)[y0 - above : y1 - above], blended)
    return blended


def _outline(labels: np.ndarray, thickness: int) -> np.ndarray:
    """uint8 0/255 over a label map (0 = no mask): the labelled pixels within ``thickness`` px of a 4-neighbour
    with another label or of the map's edge, i.e. where (max - min over the 4-neighbourhood, outside = 0) > 0.
    The one outline of the overlays and the zoom crops."""
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    spread = cv2.morphologyEx(
        labels, cv2.MORPH_GRADIENT, cross, iterations=thickness, borderType=cv2.BORDER_CONSTANT, borderValue=0
    )
    return cv2.bitwise_and(cv2.compare(spread, 0, cv2.CMP_GT), cv2.compare(labels, 0, cv2.CMP_GT))


def render_overlay(
    image: Image.Image,
    instances: Sequence[Instance],
    *,
    alpha: float = 0.45,
    labels: Mapping[int, str] | None = None,
    outline: bool = True,
    font_size: int | None = None,
) -> Image.Image:
    """Set-of-Mark overlay: each mask filled translucently in its colour, outlined, and numbered.

    Args:
        image: the image the masks belong to (any mode; the result is RGB, the input is not modified).
        instances: masks of shape (image.height, image.width); colour by ``instance.id`` (``palette``).
        alpha: fill opacity in [0, 1]; the outline and badge are opaque.
        labels: text per instance id; default the id itself ("3").
        outline: draw a thin contour (1 px; 2 px from a 1500 px short side up) in the mask's colour along
            the visible boundary of each mask.
        font_size: badge text size in pixels; default scaled to the image (``min(W, H) / 45`` in [10, 40]).

    Larger masks are drawn first and smaller ones on top of them: where masks overlap, a pixel shows the
    colour of the smallest mask covering it (blended once with the image, not mixed). Each number sits on
    a filled badge centred on ``label_point`` of the mask (always a mask pixel; the badge may overflow a
    tiny mask and is shifted to stay inside the image); badges of smaller masks are drawn last. Empty masks
    are skipped.

    Raises:
        ValueError: ``alpha`` is outside [0, 1].
        ImageError: an instance's mask size differs from the image size.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be within [0, 1], got {alpha}")
    if any(size != (image.height, image.width) for size in {inst.rle.size for inst in instances}):
        for inst in instances:  # name the first that differs
            _check_size(image, inst)
    height, width = image.height, image.width
    data = mask_datas([inst.rle for inst in instances])
    order = sorted((j for j, d in enumerate(data) if d.area > 0), key=lambda j: (-data[j].area, instances[j].id))
    drawn = [instances[j] for j in order]
    drawn_boxes = [data[j].box for j in order]
    thickness = (1 if min(width, height) < 1500 else 2) if outline else 0
    counts, bounds = stack_runs([data[j].runs for j in order], height, width)
    # Masks j0:j1 are the runs between bounds[j0] and bounds[j1].
    pieces = [(start, min(start + _MASKS_PER_PIECE, len(drawn))) for start in range(0, len(drawn), _MASKS_PER_PIECE)]

    def piece_points(k: int) -> list[tuple[int, int]]:
        j0, j1 = pieces[k]
        return _label_points(counts, bounds[j0 : j1 + 1], (height, width), drawn_boxes[j0:j1])

    # The helper starts on the label points while this thread paints the label maps and converts the image.
    label_points = share(piece_points, len(pieces), pure=True)
    # Label maps are uint8: layers of up to 255 masks, each mask holding its number in its layer.
    layers = [slice(start, start + 255) for start in range(0, len(drawn), 255)]
    label_maps = [_label_map(drawn_boxes[part], counts, bounds[part.start : part.stop + 1], height) for part in layers]
    arr = _rgb_array(image)
    for part, (label_map, box) in zip(layers, label_maps, strict=True):
        _fill_layer(arr, label_map, box, alpha, thickness, [_color(inst.id) for inst in drawn[part]])
    size = font_size or _font_size(width, height)
    for inst, point in zip(drawn, itertools.chain.from_iterable(label_points.result()), strict=True):
        text = labels.get(inst.id, str(inst.id)) if labels is not None else str(inst.id)
        _paste_badge(arr, point, _badge(text, size, _color(inst.id)))
    return Image.fromarray(arr)


def zoom_crop(
    image: Image.Image,
    instance: Instance,
    *,
    pad: float = 0.2,
    min_side: int = 64,
    max_side: int = 512,
    outline: bool = True,
) -> Image.Image:
    """A close-up of one instance: its mask's box grown by ``pad`` on each side, with the mask outlined.

    The box (tight around the mask, or ``instance.box`` if the mask is empty) is enlarged by
    ``pad`` x its width / height on each side, clamped to the image, cropped, then resized so the short
    side is at least ``min_side`` and the long side at most ``max_side`` (the long-side cap wins for very
    elongated crops; aspect ratio is kept). The outline is drawn after resizing, so it stays 1-2 px thick.

    Raises:
        ValueError: bad ``pad`` / ``min_side`` / ``max_side``, or an empty mask with an empty box.
        ImageError: the mask size differs from the image size.
    """
    if pad < 0 or min_side < 1 or max_side < min_side:
        raise ValueError(f"need pad >= 0 and 1 <= min_side <= max_side, got {pad=}, {min_side=}, {max_side=}")
    _check_size(image, instance)
    bx0, by0, bx1, by1 = instance.mask_data.box
    if bx1 <= bx0 or by1 <= by0:
        bx0, by0, bx1, by1 = (round(v) for v in instance.box)
        if bx1 <= bx0 or by1 <= by0:
            raise ValueError(f"instance {instance.id} has an empty mask and an empty box {instance.box}")
    dx, dy = pad * (bx1 - bx0), pad * (by1 - by0)
    x0, y0 = max(0, int(np.floor(bx0 - dx))), max(0, int(np.floor(by0 - dy)))
    x1, y1 = min(image.width, int(np.ceil(bx1 + dx))), min(image.height, int(np.ceil(by1 + dy)))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"instance {instance.id}'s box {instance.box} lies outside the image")
    w, h = x1 - x0, y1 - y0
    scale = min(max(1.0, min_side / min(w, h)), max_side / max(w, h))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    crop = rgb.crop((x0, y0, x1, y1))
    if size != (w, h):
        crop = crop.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)
    if not outline:
        return crop
    mask = Image.fromarray(mask_crop(instance.rle, (x0, y0, x1, y1)).view(np.uint8) * 255)
    if size != (w, h):
        mask = mask.resize(size, Image.Resampling.NEAREST)
    arr = np.array(crop)
    labels = (np.asarray(mask) > 0).view(np.uint8)  # the crop's edges count as outside, like the map's
    arr[_outline(labels, 1 if max(size) < 300 else 2) > 0] = _color(instance.id)
    return Image.fromarray(arr)


def mask_png(instance: Instance) -> Image.Image:
    """The instance's mask as an 8-bit "L" image of the original (width, height): 255 inside, 0 outside."""
    return Image.fromarray(instance.mask.astype(np.uint8) * 255)
