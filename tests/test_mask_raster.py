"""Compiled run painting and sampling against plain numpy on decoded masks."""

from __future__ import annotations

import numpy as np
import pytest

from sam3_agent.masks import mask_to_box, rle_counts, rle_encode, stack_runs
from sam3_agent.masks.raster import paint_runs, sample_runs


def random_masks(rng: np.random.Generator, n: int, size: tuple[int, int]) -> list[np.ndarray]:
    """Blobs, stripes, full and empty masks: runs that span columns, start at 0 and end at the last pixel."""
    masks = [np.ones(size, bool), np.zeros(size, bool)]
    while len(masks) < n:
        mask = rng.random(size) < rng.uniform(0.05, 0.95)
        y0, x0 = rng.integers(0, size[0]), rng.integers(0, size[1])
        mask[y0:, x0:] |= rng.random() < 0.5  # long runs crossing column bottoms
        masks.append(mask)
    return masks


def runs_of(masks: list[np.ndarray]) -> list[np.ndarray]:
    return [rle_counts(rle_encode(mask)) for mask in masks]


@pytest.mark.parametrize("window", [(0, 0, 23, 17), (5, 3, 15, 12), (-4, -2, 30, 25), (22, 16, 23, 17)])
def test_paint_runs_equals_painting_decoded_masks_in_order(window: tuple[int, int, int, int]) -> None:
    rng = np.random.default_rng(0)
    height, width = 17, 23
    masks = random_masks(rng, 12, (height, width))
    values = np.arange(1, len(masks) + 1, dtype=np.uint8)
    x0, y0, x1, y1 = window
    target = np.zeros((x1 - x0, y1 - y0), np.uint8)  # transposed
    counts, bounds = stack_runs(runs_of(masks), height, width)
    paint_runs(target, counts, bounds, values, height, x0, y0)

    expected = np.zeros((height, width), np.uint8)
    for mask, value in zip(masks, values, strict=True):
        expected[mask] = value  # later masks cover earlier ones
    padded = np.zeros((y1 - y0, x1 - x0), np.uint8)
    ys, xs = np.mgrid[y0:y1, x0:x1]
    inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
    padded[inside] = expected[ys[inside], xs[inside]]
    np.testing.assert_array_equal(target.T, padded)


def test_sample_runs_equals_the_decoded_masks_on_their_grids() -> None:
    rng = np.random.default_rng(1)
    height, width = 40, 31
    masks = [mask for mask in random_masks(rng, 20, (height, width)) if mask.any()]
    boxes = np.array([[int(v) for v in mask_to_box(mask)] for mask in masks], np.int64)
    steps = rng.integers(1, 6, len(masks)).astype(np.int64)
    places, top = [], 1
    for (x0, _, x1, _), step in zip(boxes, steps, strict=True):
        places.append((top, 2))
        top += -(-(x1 - x0) // step) + 1
    atlas = np.zeros((top, 60), np.uint8)
    counts, bounds = stack_runs(runs_of(masks), height, width)
    sample_runs(atlas, counts, bounds, height, boxes, steps, np.array(places, np.int64))

    expected = np.zeros_like(atlas)
    for mask, (x0, y0, x1, y1), step, (row, col) in zip(masks, boxes, steps, places, strict=True):
        grid = mask[y0:y1:step, x0:x1:step].T
        expected[row : row + grid.shape[0], col : col + grid.shape[1]] = grid
    np.testing.assert_array_equal(atlas, expected)


def test_sample_runs_stays_inside_a_box_smaller_than_the_mask() -> None:
    mask = np.ones((10, 10), bool)
    atlas = np.zeros((5, 5), np.uint8)
    counts, bounds = stack_runs(runs_of([mask]), 10, 10)
    boxes = np.array([[2, 3, 5, 6]], np.int64)
    sample_runs(atlas, counts, bounds, 10, boxes, np.array([1], np.int64), np.array([[1, 1]], np.int64))
    expected = np.zeros((5, 5), np.uint8)
    expected[1:4, 1:4] = 1
    np.testing.assert_array_equal(atlas, expected)


def test_stack_runs_rejects_runs_that_do_not_cover_the_image() -> None:
    counts, bounds = stack_runs([np.array([3, 2, 1]), np.array([6])], 2, 3)
    assert counts.tolist() == [3, 2, 1, 6] and bounds.tolist() == [0, 3, 4]
    for bad in ([np.array([3, 2])], [np.array([7, -1])], [np.array([], np.int64)]):
        with pytest.raises(ValueError, match=r"do not cover height x width|has no runs"):
            stack_runs(bad, 2, 3)
    empty, bounds = stack_runs([], 2, 3)
    assert len(empty) == 0 and bounds.tolist() == [0]


def test_atlas_peaks_are_opencvs_first_maxima() -> None:
    import cv2

    from sam3_agent.masks.raster import atlas_peaks

    rng = np.random.default_rng(2)
    dist = rng.integers(0, 4, (30, 40)).astype(np.float32)  # many ties
    dist[20:25, 30:38] = 0  # an all-zero sample: no peak
    places = np.array([[0, 0], [3, 5], [10, 20], [20, 30], [29, 39]], np.int64)
    shapes = np.array([[30, 40], [7, 9], [10, 20], [5, 8], [1, 1]], np.int64)
    for (top, left), (h, w), (row, col, found) in zip(places, shapes, atlas_peaks(dist, places, shapes), strict=True):
        _, peak, _, (x, y) = cv2.minMaxLoc(dist[top : top + h, left : left + w])
        assert found == (peak > 0)
        if found:
            assert (row, col) == (y, x)


def test_colorize_is_a_lookup_like_opencvs_colour_map() -> None:
    import cv2

    from sam3_agent.masks.raster import colorize

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 256, (37, 51)).astype(np.uint8)
    colors = rng.integers(0, 256, (256, 3)).astype(np.uint8)
    out = np.empty((37, 51, 3), np.uint8)
    colorize(labels, colors, out)
    np.testing.assert_array_equal(out, colors[labels])
    np.testing.assert_array_equal(out, cv2.applyColorMap(labels, colors[:, None, :]))
