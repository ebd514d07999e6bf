"""Set-of-Mark overlays, label points, zoom crops and mask PNGs on tiny synthetic masks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sam3_agent.errors import ImageError
from sam3_agent.masks import mask_to_box, rle_encode
from sam3_agent.render import label_point, mask_png, palette, render_overlay, zoom_crop
from sam3_agent.schema import Instance

H, W = 120, 160


def make_instance(mask: np.ndarray, id: int = 0, phrase: str = "thing", score: float = 0.9) -> Instance:
    return Instance(
        id=id, phrase=phrase, score=score, box=mask_to_box(mask), rle=rle_encode(mask), area=int(mask.sum())
    )


def rect(y0: int, y1: int, x0: int, x1: int, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def disk(cy: float, cx: float, r: float, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    ys, xs = np.mgrid[: shape[0], : shape[1]]
    return (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r


def u_shape() -> np.ndarray:
    mask = rect(20, 100, 20, 120)
    mask[20:80, 45:95] = False  # the hollow of the U: its centroid falls outside the mask
    return mask


def ring() -> np.ndarray:
    return disk(60, 80, 40) & ~disk(60, 80, 25)


def single_pixels(n: int) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[50, 70 : 70 + n] = True
    return mask


@pytest.fixture
def image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8))


# --- palette -----------------------------------------------------------------------------------------


def test_palette_is_distinct_stable_and_saturated() -> None:
    colors = palette(40)
    assert len(set(colors)) == 40
    assert palette(5) == colors[:5]
    assert palette(0) == []
    for r, g, b in colors:
        assert max(r, g, b) - min(r, g, b) >= 60  # clearly not grey
    with pytest.raises(ValueError, match=">= 0"):
        palette(-1)


# --- label_point -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mask",
    [
        pytest.param(rect(10, 50, 30, 90), id="rectangle"),
        pytest.param(disk(60, 80, 30), id="disk"),
        pytest.param(u_shape(), id="U"),
        pytest.param(ring(), id="ring"),
        pytest.param(single_pixels(1), id="1px"),
        pytest.param(single_pixels(2), id="2px"),
        pytest.param(single_pixels(3), id="3px"),
        pytest.param(rect(0, H, 0, 1), id="one-column-at-border"),
        pytest.param(rect(0, 2, 0, W), id="two-rows-long"),
    ],
)
def test_label_point_is_inside_the_mask(mask: np.ndarray) -> None:
    x, y = label_point(mask)
    assert mask[y, x]


def test_label_point_is_deep_inside_convex_and_concave_shapes() -> None:
    x, y = label_point(rect(10, 50, 30, 90))  # 40 x 60 box: the deepest points are on the middle row
    assert 28 <= y <= 31 and 38 <= x <= 82
    x, y = label_point(u_shape())
    # The U's bottom bar (rows 80..99) is 20 px thick, its arms 25 px wide: the peak is >= 8 px deep.
    mask = u_shape()
    assert mask[max(0, y - 8) : y + 9, max(0, x - 8) : x + 9].all()


def test_label_points_of_many_masks_from_one_atlas_equal_one_by_one() -> None:
    """All masks share one distance transform; each must get the peak of its own transform."""
    from sam3_agent.masks import rle_counts, stack_runs
    from sam3_agent.render import _label_points, _peak_in_crop

    rng = np.random.default_rng(1)
    size = (180, 200)
    masks = []
    for _ in range(70):
        h, w = (int(v) for v in rng.integers(1, 160, 2))
        crop = (rng.random((h, w)) < rng.uniform(0.3, 1.0)).astype(np.uint8)
        crop = np.maximum(crop, disk(h / 2, w / 2, min(h, w) / 2, (h, w)))  # big crops keep a solid core
        crop[rng.integers(h), rng.integers(w)] = 1  # never empty
        y, x = rng.integers(0, size[0] - h + 1), rng.integers(0, size[1] - w + 1)
        mask = np.zeros(size, bool)
        mask[y : y + h, x : x + w] = crop
        masks.append(mask)
    thin = np.zeros(size, bool)
    thin[10:170, 50] = True  # missed by its every-4th-column sampling grid: searched at full size
    thin[11, 49] = True
    masks.append(thin)
    boxes = [tuple(int(v) for v in mask_to_box(mask)) for mask in masks]
    counts, bounds = stack_runs([rle_counts(rle_encode(mask)) for mask in masks], *size)
    points = _label_points(counts, bounds, size, boxes)
    for mask, (x0, y0, x1, y1), (x, y) in zip(masks, boxes, points, strict=True):
        crop = mask[y0:y1, x0:x1].T.astype(np.uint8)  # column-major, like the runs
        step = -(-max(crop.shape) // 48)
        sample = crop[::step, ::step]
        col, row = tuple(v * step for v in _peak_in_crop(sample)) if sample.any() else _peak_in_crop(crop)
        assert (x, y) == (x0 + col, y0 + row) and mask[y, x]


def test_label_point_rejects_empty_and_non_2d_masks() -> None:
    with pytest.raises(ValueError, match="empty"):
        label_point(np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="2-D"):
        label_point(np.ones((2, 2, 2), bool))


# --- render_overlay ----------------------------------------------------------------------------------


def _three_instances() -> list[Instance]:
    return [
        make_instance(rect(10, 60, 10, 70), id=0),
        make_instance(disk(80, 110, 25), id=1),
        make_instance(u_shape() & ~rect(0, H, 0, 40), id=2),  # overlaps instance 1
    ]


def test_overlay_tints_masks_in_their_colour_and_leaves_the_rest_untouched(image: Image.Image) -> None:
    gray = Image.new("RGB", (W, H), (128, 128, 128))
    instances = _three_instances()
    out = np.asarray(render_overlay(gray, instances, alpha=0.5, outline=False, font_size=10)).astype(int)
    union = np.zeros((H, W), bool)
    for inst in instances:
        union |= inst.mask
    assert (out[~union] == 128).all()
    colors = palette(3)
    for inst in sorted(instances, key=lambda i: i.area):  # where masks overlap the smaller one is on top
        visible = inst.mask & ~np.any([o.mask for o in instances if o.area < inst.area], axis=0)
        expected = (np.array(colors[inst.id]) + 128) / 2
        pixels = out[visible]
        # Most visible pixels carry exactly the blend (the rest are under badges).
        close = np.all(np.abs(pixels - expected) <= 1, axis=1)
        assert close.mean() > 0.8, inst.id


def test_overlay_keeps_original_pixels_outside_masks_and_does_not_modify_input(image: Image.Image) -> None:
    before = np.asarray(image).copy()
    instances = _three_instances()
    out = np.asarray(render_overlay(image, instances))
    union = np.any([inst.mask for inst in instances], axis=0)
    # Badges may overflow tiny masks; these masks are big enough for the badges to stay inside them.
    assert (out[~union] == before[~union]).all()
    assert (np.asarray(image) == before).all()
    assert not (out[union] == before[union]).all(axis=1).all()


def test_overlay_outline_is_the_opaque_mask_colour_on_the_boundary() -> None:
    gray = Image.new("RGB", (W, H), (128, 128, 128))
    inst = make_instance(rect(20, 80, 30, 130), id=4)
    out = np.asarray(render_overlay(gray, [inst], labels={4: ""}))
    color = palette(5)[4]
    assert tuple(out[20, 60]) == color and tuple(out[79, 60]) == color and tuple(out[50, 30]) == color
    assert tuple(out[50, 40]) != color  # interior: translucent only
    assert tuple(out[19, 60]) == (128, 128, 128)


def test_badge_sits_inside_the_mask_at_the_label_point() -> None:
    gray = Image.new("RGB", (W, H), (128, 128, 128))
    inst = make_instance(disk(60, 80, 35), id=7)
    plain = np.asarray(render_overlay(gray, [inst], labels={7: ""}, outline=False)).astype(int)
    labelled = np.asarray(render_overlay(gray, [inst], outline=False)).astype(int)
    changed = np.any(plain != labelled, axis=2)
    ys, xs = np.nonzero(changed)
    assert len(xs) > 20  # the digit and badge were drawn
    assert inst.mask[changed].all()  # entirely inside the disk
    x, y = label_point(inst.mask)
    assert xs.min() <= x <= xs.max() and ys.min() <= y <= ys.max()
    # The badge is filled with the opaque instance colour.
    assert (labelled[changed] == palette(8)[7]).all(axis=1).any()


def test_custom_labels_and_tiny_masks_get_badges_kept_in_the_image() -> None:
    gray = Image.new("RGB", (W, H), (128, 128, 128))
    tiny = make_instance(single_pixels(1) & rect(0, H, 70, 71), id=3)  # one pixel at (70, 50)
    corner = make_instance(rect(0, 2, 0, 2), id=5)
    out = np.asarray(render_overlay(gray, [tiny, corner], labels={3: "A"}))
    assert (out[45:56, 62:79] != 128).any(axis=2).sum() > 10  # a badge around the 1-pixel mask
    assert (out[0:8, 0:8] != 128).any(axis=2).sum() > 10  # corner badge shifted into the image


def test_larger_masks_are_drawn_first() -> None:
    gray = Image.new("RGB", (W, H), (128, 128, 128))
    big = make_instance(rect(0, H, 0, W), id=0)
    small = make_instance(rect(40, 80, 40, 120), id=1)
    for order in ([big, small], [small, big]):
        out = np.asarray(render_overlay(gray, order, alpha=1.0, outline=False, labels={0: "", 1: ""}))
        assert tuple(out[45, 45]) == palette(2)[1]
        assert tuple(out[10, 10]) == palette(2)[0]


def test_overlay_converts_modes_and_checks_sizes() -> None:
    inst = make_instance(rect(10, 20, 10, 20))
    out = render_overlay(Image.new("L", (W, H), 90), [inst])
    assert out.mode == "RGB" and out.size == (W, H)
    assert render_overlay(Image.new("RGB", (W, H)), []).size == (W, H)
    with pytest.raises(ImageError, match="160x120 mask but the image is 100x100"):
        render_overlay(Image.new("RGB", (100, 100)), [inst])
    with pytest.raises(ValueError, match="alpha"):
        render_overlay(Image.new("RGB", (W, H)), [inst], alpha=1.5)


def test_overlay_skips_empty_masks() -> None:
    gray = Image.new("RGB", (W, H), (128, 128, 128))
    empty = make_instance(np.zeros((H, W), bool), id=2)
    assert (np.asarray(render_overlay(gray, [empty])) == 128).all()


@pytest.mark.parametrize("block_rows", [128, 7])
@pytest.mark.parametrize("side", [600, 1600])  # outlines 1 and 2 px thick
def test_overlay_blended_in_blocks_of_rows_equals_one_pass(
    monkeypatch: pytest.MonkeyPatch, side: int, block_rows: int
) -> None:
    import sam3_agent.render as render

    rng = np.random.default_rng(side)
    shape = (side, side + 37)
    instances = []
    for k in range(30):
        cy, cx = rng.uniform(0, side, 2)
        mask = disk(cy, cx, rng.uniform(5, side / 4), shape) | rect(int(cy), int(cy) + 9, 0, side, shape)
        instances.append(make_instance(mask, id=k))
    image = Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8))
    monkeypatch.setattr(render, "_BLOCK_ROWS", block_rows)
    in_blocks = np.asarray(render_overlay(image, instances))
    monkeypatch.setattr(render, "_BLOCK_ROWS", 10**6)
    np.testing.assert_array_equal(in_blocks, np.asarray(render_overlay(image, instances)))


def test_overlay_handles_more_than_255_masks() -> None:
    shape = (400, 1000)
    small = [
        make_instance(rect(r * 50, r * 50 + 40, c * 50, c * 50 + 40, shape), id=r * 20 + c)
        for r in range(8)
        for c in range(20)
    ]
    big = [make_instance(rect(0, 400, 0, 1000, shape), id=500 + k) for k in range(100)]  # 260 masks in all
    out = np.asarray(render_overlay(Image.new("RGB", (1000, 400)), big + small, alpha=1.0, outline=False))
    # Small masks are drawn over the big ones; their corners are away from every badge.
    for inst in small:
        x0, y0 = int(inst.box[0]), int(inst.box[1])
        if abs(x0 - 500) > 60 or abs(y0 - 200) > 60:
            assert tuple(out[y0 + 1, x0 + 1]) == palette(inst.id + 1)[inst.id]


# --- zoom_crop and mask_png ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mask", "min_side", "max_side", "expected"),
    [
        # 20x10 box, pad 0.2 -> 28x14 crop, upscaled so the short side is 64 -> 128x64
        (rect(50, 60, 70, 90), 64, 512, (128, 64)),
        # 100x100 box at the top-left corner: padding clamped at 0 -> 120x120, within limits -> unchanged
        (rect(0, 100, 0, 100), 64, 512, (120, 120)),
        # same, with max_side 60: downscaled to 60x60
        (rect(0, 100, 0, 100), 32, 60, (60, 60)),
        # 1 pixel: box 1x1 -> padding rounds out to 3x3 -> 64x64
        (single_pixels(1), 64, 512, (64, 64)),
        # 150x2 sliver: long side capped at 200 even though the short side stays below 64
        (rect(50, 52, 5, 155), 64, 200, (200, 5)),
    ],
)
def test_zoom_crop_sizes(mask: np.ndarray, min_side: int, max_side: int, expected: tuple[int, int]) -> None:
    image = Image.new("RGB", (W, H), (10, 20, 30))
    crop = zoom_crop(image, make_instance(mask), min_side=min_side, max_side=max_side)
    assert crop.mode == "RGB"
    assert crop.size == expected


def test_zoom_crop_shows_the_right_region_and_outline() -> None:
    arr = np.zeros((H, W, 3), np.uint8)
    arr[:, 80:] = 255  # left half black, right half white
    inst = make_instance(rect(40, 80, 90, 130), id=2)  # in the white half
    crop = np.asarray(zoom_crop(Image.fromarray(arr), inst, pad=0.25, min_side=10))
    assert crop.shape == (60, 60, 3)  # 40x40 box grown by 10 px per side
    assert (crop[30, 5] == 255).all()  # inside the crop, off the mask: original white
    assert tuple(crop[10, 30]) == palette(3)[2]  # the mask's top edge is outlined in its colour
    plain = np.asarray(zoom_crop(Image.fromarray(arr), inst, pad=0.25, min_side=10, outline=False))
    assert (plain == 255).all()


def test_zoom_crop_rejects_bad_arguments() -> None:
    image = Image.new("RGB", (W, H))
    inst = make_instance(rect(0, 10, 0, 10))
    with pytest.raises(ValueError, match="min_side"):
        zoom_crop(image, inst, min_side=100, max_side=50)
    with pytest.raises(ImageError, match="mask but the image"):
        zoom_crop(Image.new("RGB", (10, 10)), inst)
    empty = make_instance(np.zeros((H, W), bool))
    with pytest.raises(ValueError, match="empty mask and an empty box"):
        zoom_crop(image, empty)


def test_mask_png_round_trip() -> None:
    mask = ring()
    png = mask_png(make_instance(mask))
    assert png.mode == "L" and png.size == (W, H)
    values = np.asarray(png)
    assert set(np.unique(values)) == {0, 255}
    assert ((values == 255) == mask).all()
    assert rle_encode(values > 127) == rle_encode(mask)


# --- undecoded instances: crops decoded from the RLEs give the same pictures --------------------------------


def _fresh(instances: list[Instance]) -> list[Instance]:
    """The same instances, rebuilt so that none has its full mask decoded yet."""
    return [Instance(**inst.model_dump()) for inst in instances]


def _varied_instances() -> list[Instance]:
    rng = np.random.default_rng(5)
    masks = [
        rect(0, H, 0, W),  # the whole image
        rect(0, 1, 0, 1),  # top-left pixel
        rect(H - 1, H, W - 1, W),  # bottom-right pixel
        rect(0, H, W - 3, W),  # right border strip
        disk(0, 80, 30),  # cut by the top border
        ring(),
        u_shape(),
        rng.random((H, W)) < 0.05,  # scattered pixels: the bounding box is nearly the image
        disk(100, 20, 12) | rect(5, 9, 100, 150),  # two parts
        np.zeros((H, W), bool),  # empty: skipped
    ]
    return [make_instance(mask, id=i) for i, mask in enumerate(masks)]


@pytest.mark.parametrize("outline", [True, False])
def test_overlay_of_undecoded_instances_equals_the_decoded_one(image: Image.Image, outline: bool) -> None:
    decoded = _varied_instances()
    for inst in decoded:
        assert inst.mask.shape == (H, W)  # decode and cache
    fresh = _fresh(decoded)
    assert not any("mask" in inst.__dict__ for inst in fresh)
    expected = np.asarray(render_overlay(image, decoded, outline=outline))
    mixed = [inst if k % 2 else decoded[k] for k, inst in enumerate(fresh)]  # some decoded, some not
    np.testing.assert_array_equal(np.asarray(render_overlay(image, fresh, outline=outline)), expected)
    np.testing.assert_array_equal(np.asarray(render_overlay(image, mixed, outline=outline)), expected)
    assert not any("mask" in inst.__dict__ for inst in fresh)  # rendering decoded no full mask


def test_zoom_crop_of_an_undecoded_instance_equals_the_decoded_one(image: Image.Image) -> None:
    for decoded, fresh in zip(_varied_instances()[:-1], _fresh(_varied_instances()[:-1]), strict=True):
        assert decoded.mask.any()
        expected = np.asarray(zoom_crop(image, decoded, pad=0.3))
        np.testing.assert_array_equal(np.asarray(zoom_crop(image, fresh, pad=0.3)), expected)
        assert "mask" not in fresh.__dict__


def test_overlay_of_more_than_255_undecoded_instances() -> None:
    shape = (60, 400)
    masks = [rect(r * 6, r * 6 + 5, c * 10, c * 10 + 9, shape) for r in range(10) for c in range(40)][:300]
    decoded = [make_instance(m, id=i) for i, m in enumerate(masks)]
    for inst in decoded:
        assert inst.mask.shape == shape  # decode and cache
    gray = Image.new("RGB", (400, 60), (128, 128, 128))
    expected = np.asarray(render_overlay(gray, decoded))
    np.testing.assert_array_equal(np.asarray(render_overlay(gray, _fresh(decoded))), expected)
