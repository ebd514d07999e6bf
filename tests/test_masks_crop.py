"""Run lengths and crop decoding of COCO RLE strings in numpy, checked against pycocotools' full decode."""

from __future__ import annotations

import numpy as np
import pytest

from sam3_agent.masks import (
    decode_run_crops,
    mask_crop,
    mask_data,
    mask_datas,
    mask_to_box,
    rle_counts,
    rle_decode,
    rle_encode,
)
from sam3_agent.masks import runs as mask_runs
from sam3_agent.masks.runs import run_boxes
from sam3_agent.schema import Instance, Rle


def runs_of(mask: np.ndarray) -> list[int]:
    """Reference run lengths of a mask: column-major, background first (the first run may be 0 long)."""
    flat = mask.ravel(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate(([0], changes, [flat.size]))
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat.size and flat[0] else runs


def expected_crop(rle: Rle, box: tuple[int, int, int, int]) -> np.ndarray:
    """pycocotools' full decode, sliced with the box clipped to the mask."""
    height, width = rle.size
    x0, y0, x1, y1 = box
    full = rle_decode(rle)
    return full[min(max(y0, 0), height) : max(y1, 0), min(max(x0, 0), width) : max(x1, 0)]


def random_box(rng: np.random.Generator, height: int, width: int) -> tuple[int, int, int, int]:
    """Boxes inside, across and beyond the mask, possibly empty or inverted."""
    x0, x1 = sorted(int(v) for v in rng.integers(-3, width + 4, 2))
    y0, y1 = sorted(int(v) for v in rng.integers(-3, height + 4, 2))
    return (x1, y0, x0, y1) if rng.random() < 0.05 else (x0, y0, x1, y1)


def random_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    kind = rng.integers(4)
    if kind == 0:  # salt and pepper at any density
        return rng.random((height, width)) < rng.random()
    mask = np.zeros((height, width), bool)
    if kind == 1:  # a rectangle, often touching the borders
        y0, y1 = sorted(rng.integers(0, height + 1, 2))
        x0, x1 = sorted(rng.integers(0, width + 1, 2))
        mask[y0:y1, x0:x1] = True
    elif kind == 2:  # a disc, clipped by the borders
        ys, xs = np.mgrid[:height, :width]
        cy, cx, r = rng.uniform(-2, height + 2), rng.uniform(-2, width + 2), rng.uniform(0.5, max(height, width))
        mask = (ys - cy) ** 2 + (xs - cx) ** 2 <= r * r
    else:  # a few separate pixels
        mask[rng.integers(0, height, 3), rng.integers(0, width, 3)] = True
    return mask


SPECIAL = {
    "empty": np.zeros((7, 9), bool),
    "full": np.ones((7, 9), bool),
    "1x1 off": np.zeros((1, 1), bool),
    "1x1 on": np.ones((1, 1), bool),
    "one row": np.array([[0, 1, 1, 0, 1, 1, 1]], bool),
    "one column": np.array([[1], [1], [0], [1]], bool),
    "top-left pixel": np.pad(np.ones((1, 1), bool), ((0, 6), (0, 8))),
    "bottom-right pixel": np.pad(np.ones((1, 1), bool), ((6, 0), (8, 0))),
    "left column": np.pad(np.ones((7, 1), bool), ((0, 0), (0, 8))),
    "bottom row": np.pad(np.ones((1, 9), bool), ((6, 0), (0, 0))),
    "frame": np.pad(np.zeros((5, 7), bool), 1, constant_values=True),
    "checkerboard": (np.indices((11, 13)).sum(axis=0) % 2).astype(bool),
}


@pytest.mark.parametrize("name", SPECIAL)
def test_counts_of_special_masks(name: str) -> None:
    mask = SPECIAL[name]
    assert rle_counts(rle_encode(mask)).tolist() == runs_of(mask)


def test_counts_of_random_masks_match_the_full_decode() -> None:
    rng = np.random.default_rng(0)
    for _ in range(400):
        height, width = (int(v) for v in rng.integers(1, 60, 2))
        rle = rle_encode(random_mask(rng, height, width))
        counts = rle_counts(rle)
        assert counts.dtype == np.int64
        assert counts.tolist() == runs_of(rle_decode(rle))


def test_counts_with_multi_chunk_values_and_negative_deltas() -> None:
    mask = np.zeros((1008, 1008), bool)
    mask[1007, 1007] = True  # a first run of 1008 * 1008 - 1 pixels: five 5-bit chunks
    assert rle_counts(rle_encode(mask)).tolist() == [1008 * 1008 - 1, 1]
    mask = np.zeros((40, 3), bool)
    mask[0:30, 0] = True  # runs 0, 30, 20, 2, 28, 1, 39: the 4th and 6th are shorter than two before
    mask[10:12, 1] = True
    mask[0, 2] = True
    rle = rle_encode(mask)
    assert rle_counts(rle).tolist() == [0, 30, 20, 2, 28, 1, 39]
    assert rle_counts(rle).tolist() == runs_of(mask)


def test_hand_encoded_string() -> None:
    # 6, 3, 4 stored as themselves; the 4th run 1 as 1 - 3 = -2, one chunk 0b11110 ('N'); the 5th run 50 as
    # 50 - 4 = 46 = 0b1_01110: low chunk 14 with the 0x20 "more" bit (14 + 32 + 48 = '^'), then 1 ('1').
    rle = Rle(size=(8, 8), counts="634N^1")
    assert rle_counts(rle).tolist() == [6, 3, 4, 1, 50]
    assert rle_decode(rle).ravel(order="F").tolist() == [0] * 6 + [1] * 3 + [0] * 4 + [1] + [0] * 50


@pytest.mark.parametrize(
    ("counts", "message"),
    [("", "empty"), ("6 3", "'0'..'o'"), ("6\x7f", "'0'..'o'"), ("6^", "middle of a value"), ("o" * 13 + "1", "12")],
)
def test_malformed_strings_are_rejected(counts: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rle_counts(Rle(size=(8, 8), counts=counts))


def test_crop_rejects_runs_that_do_not_cover_the_mask() -> None:
    with pytest.raises(ValueError, match="cover height x width"):
        mask_crop(Rle(size=(8, 8), counts="63"), (0, 0, 8, 8))  # 9 of 64 pixels
    with pytest.raises(ValueError, match="cover height x width"):
        mask_crop(Rle(size=(2, 2), counts="2N2"), (0, 0, 2, 2))  # a negative run


@pytest.mark.parametrize("name", SPECIAL)
def test_crops_of_special_masks(name: str) -> None:
    rle = rle_encode(SPECIAL[name])
    height, width = rle.size
    boxes = [(0, 0, width, height), (-5, -5, width + 5, height + 5), (1, 1, width - 1, height - 1)]
    boxes += [(x, y, x + 1, y + 1) for x in range(width) for y in range(height)]
    boxes += [(0, 0, 0, height), (2, 3, 2, 3), (width, height, width + 2, height + 2), (-3, -3, -1, -1)]
    for box in boxes:
        crop = mask_crop(rle, box)
        np.testing.assert_array_equal(crop, expected_crop(rle, box), err_msg=f"{name} {box}")


def test_crops_of_random_masks_match_the_full_decode() -> None:
    rng = np.random.default_rng(1)
    for _ in range(300):
        height, width = (int(v) for v in rng.integers(1, 50, 2))
        rle = rle_encode(random_mask(rng, height, width))
        for box in [random_box(rng, height, width) for _ in range(4)]:
            crop = mask_crop(rle, box)
            expected = expected_crop(rle, box)
            assert crop.dtype == bool and crop.flags.c_contiguous
            assert crop.shape == expected.shape, box
            np.testing.assert_array_equal(crop, expected, err_msg=str(box))


def test_bounding_box_crops_on_a_large_image() -> None:
    rng = np.random.default_rng(2)
    height, width = 301, 257
    masks = [random_mask(rng, height, width) for _ in range(12)]
    masks.append(np.zeros((height, width), bool))
    for mask in masks:
        rle = rle_encode(mask)
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if len(rows):
            box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
            np.testing.assert_array_equal(mask_crop(rle, box), mask[box[1] : box[3], box[0] : box[2]])
            grown = (box[0] - 9, box[1] - 9, box[2] + 9, box[3] + 9)  # larger than the mask's own box
            np.testing.assert_array_equal(mask_crop(rle, grown), expected_crop(rle, grown))
        np.testing.assert_array_equal(mask_crop(rle, (0, 0, width, height)), mask)


def test_zero_sized_masks() -> None:
    for shape in [(0, 5), (5, 0), (0, 0)]:
        rle = rle_encode(np.zeros(shape, bool))
        assert rle_counts(rle).tolist() == [0]
        assert mask_crop(rle, (0, 0, 5, 5)).shape == shape


def test_run_boxes_are_the_tight_boxes_and_areas_of_the_masks() -> None:
    rng = np.random.default_rng(5)
    masks = [random_mask(rng, *(int(v) for v in rng.integers(1, 40, 2))) for _ in range(80)]
    masks += list(SPECIAL.values())
    runs = [rle_counts(rle_encode(mask)) for mask in masks]
    boxes, areas = run_boxes(runs, [mask.shape[0] for mask in masks])
    for mask, box, area in zip(masks, boxes.tolist(), areas.tolist(), strict=True):
        assert area == int(mask.sum())
        assert tuple(box) == mask_to_box(mask)
    # One image height for all (the common case) and zero-length runs between others.
    same = [np.array([1, 0, 0, 2, 5, 0, 4]), np.array([3, 0, 0, 2, 4, 0, 3]), np.array([12]), np.array([0, 5, 7])]
    boxes, areas = run_boxes(same, [4, 4, 4, 4])
    assert areas.tolist() == [2, 2, 0, 5]
    assert boxes.tolist() == [[0, 1, 1, 3], [0, 0, 2, 4], [0, 0, 0, 0], [0, 0, 2, 4]]
    assert run_boxes([], []) == (pytest.approx(np.zeros((0, 4))), pytest.approx(np.zeros(0)))


def test_run_crops_are_the_transposed_crops_with_their_values() -> None:
    rng = np.random.default_rng(6)
    masks, boxes = [], []
    for _ in range(40):
        masks.append(random_mask(rng, *(int(v) for v in rng.integers(1, 30, 2))))
        boxes.append(random_box(rng, *masks[-1].shape))
    runs = [rle_counts(rle_encode(mask)) for mask in masks]
    values = rng.integers(1, 256, len(masks)).tolist()
    crops = decode_run_crops(runs, [mask.shape for mask in masks], boxes, values)
    for mask, box, value, crop in zip(masks, boxes, values, crops, strict=True):
        assert crop.dtype == np.uint8 and crop.flags.c_contiguous
        np.testing.assert_array_equal(crop, expected_crop(rle_encode(mask), box).T * np.uint8(value))
    with pytest.raises(ValueError, match="do not cover"):
        decode_run_crops([np.array([3, 4])], [(3, 3)], [(0, 0, 3, 3)])


def test_mask_data_is_parsed_once_and_follows_the_rle(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    a, b = (rle_encode(random_mask(rng, 20, 30)) for _ in range(2))
    inst = Instance(id=0, phrase="x", score=0.9, box=(0, 0, 1, 1), rle=a, area=1)
    data = inst.mask_data
    assert data.runs.tolist() == rle_counts(a).tolist()
    with monkeypatch.context() as patched:
        patched.setattr(mask_runs, "_run_lengths", lambda rles: pytest.fail("parsed again"))
        assert inst.mask_data is data  # remembered, not parsed again
        assert inst.model_copy(update={"id": 3}).mask_data is data
        assert Instance.model_validate_json(inst.model_dump_json()).mask_data is data  # same RLE, same data
    assert inst.model_copy(update={"rle": b}).mask_data.runs.tolist() == rle_counts(b).tolist()
    assert inst == inst.model_copy() and hash(inst) == hash(inst.model_copy())  # plain pydantic equality


def test_mask_data_are_the_masks_own_boxes_and_areas_whatever_the_box_field_says() -> None:
    rng = np.random.default_rng(8)
    masks = [random_mask(rng, 20, 30) for _ in range(6)] + [np.zeros((20, 30), bool)]
    rles = [rle_encode(m) for m in masks]
    first = mask_data(rles[0])  # one computed alone, the others in one batch
    batch = mask_datas(rles)
    assert batch[0] is first
    for mask, rle, data in zip(masks, rles, batch, strict=True):
        inst = Instance(id=0, phrase="x", score=0.9, box=(0, 0, 1, 1), rle=rle, area=1)
        box = tuple(int(v) for v in mask_to_box(mask))
        assert (data.box, data.area) == (box, int(mask.sum())) == (inst.mask_data.box, inst.mask_data.area)
    with pytest.raises(ValueError, match="cover height x width"):
        mask_data(Rle(size=(8, 8), counts="63"))


def test_the_memo_is_bounded_in_bytes_and_forgets_the_least_recently_used(monkeypatch: pytest.MonkeyPatch) -> None:
    def dot(k: int) -> np.ndarray:
        mask = np.zeros((6, 6), bool)
        mask[2, k + 1] = True  # three runs each: before, the pixel, after
        return mask

    rles = [rle_encode(dot(k)) for k in range(4)]
    each = 3 * np.dtype(np.int64).itemsize
    monkeypatch.setattr(mask_runs, "_memo", type(mask_runs._memo)())
    monkeypatch.setattr(mask_runs, "_memo_bytes", 0)
    monkeypatch.setattr(mask_runs, "MEMO_BYTES", 3 * each)
    kept = [mask_data(rle) for rle in rles[:3]]
    assert all(data.runs.nbytes == each for data in kept)
    assert mask_data(rles[0]) is kept[0]  # used again: now the most recent
    mask_data(rles[3])  # forgets rles[1]
    assert list(mask_runs._memo) == [rles[2], rles[0], rles[3]] and mask_runs._memo_bytes == 3 * each
