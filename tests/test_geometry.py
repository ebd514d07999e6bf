"""Spatial relations, distances and orderings on exact synthetic masks with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sam3_agent.geometry import (
    centroid,
    filter_by_relation,
    holds,
    kth,
    mask_distance,
    nearest_to,
    order_by,
)
from sam3_agent.masks import mask_to_box, rle_encode
from sam3_agent.schema import Instance

H, W = 100, 200


def make_instance(mask: np.ndarray, id: int = 0, phrase: str = "thing", score: float = 0.9) -> Instance:
    return Instance(
        id=id, phrase=phrase, score=score, box=mask_to_box(mask), rle=rle_encode(mask), area=int(mask.sum())
    )


def box(x0: int, y0: int, x1: int, y1: int, id: int = 0, score: float = 0.9) -> Instance:
    """An instance whose mask fills the XYXY box (max corner exclusive)."""
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    return make_instance(mask, id=id, score=score)


def test_centroid_of_a_box_is_its_centre() -> None:
    inst = box(10, 20, 30, 60)
    assert centroid(inst) == (20.0, 40.0) == inst.center
    assert centroid(box(5, 5, 6, 6)) == (5.5, 5.5)


def test_centroid_of_an_l_shape_is_the_pixel_mean() -> None:
    mask = np.zeros((H, W), bool)
    mask[0:10, 0:2] = True  # 20 px, mean pixel centre (1.0, 5.0)
    mask[8:10, 2:12] = True  # 20 px, mean pixel centre (7.0, 9.0)
    assert centroid(make_instance(mask)) == pytest.approx((4.0, 7.0))


def test_centroid_of_an_empty_mask_raises() -> None:
    with pytest.raises(ValueError, match="empty mask"):
        centroid(make_instance(np.zeros((H, W), bool)))


A = box(80, 40, 120, 60)  # the anchor: centre (100, 50), 40 x 20

RELATION_CASES = [
    # (subject, relation, expected, why)
    (box(10, 40, 50, 60), "left_of", True, "clearly left, same row"),
    (box(10, 40, 50, 60), "right_of", False, "left is not right"),
    (box(150, 40, 190, 60), "right_of", True, "clearly right"),
    (box(150, 40, 190, 60), "left_of", False, "right is not left"),
    (box(80, 0, 120, 20), "above", True, "straight above"),
    (box(80, 0, 120, 20), "left_of", False, "same centre x: neither left"),
    (box(80, 0, 120, 20), "right_of", False, "same centre x: neither right"),
    (box(80, 80, 120, 100), "below", True, "straight below"),
    (box(80, 80, 120, 100), "above", False, "below is not above"),
    (box(10, 0, 40, 20), "left_of", True, "diagonal up-left counts as left"),
    (box(10, 0, 40, 20), "above", True, "diagonal up-left counts as above"),
    (box(160, 75, 190, 95), "right_of", True, "diagonal down-right counts as right"),
    (box(160, 75, 190, 95), "below", True, "diagonal down-right counts as below"),
    (box(82, 0, 122, 20), "right_of", False, "stacked with 2 px offset: only 55% right of the anchor centre"),
    (box(70, 40, 96, 60), "left_of", True, "overlapping the anchor's left side: 100% left of its centre"),
    (box(60, 40, 110, 60), "left_of", True, "overlapping the anchor, 40 of 50 columns (80%) left of x=100"),
    (box(86, 0, 126, 20), "right_of", False, "stacked, 6 px offset: 26 of 40 columns (65%) right of x=100"),
    (box(90, 0, 130, 20), "right_of", True, "stacked, 10 px offset: 30 of 40 columns, exactly 75%"),
    (box(90, 42, 110, 58), "inside", True, "nested fully"),
    (box(90, 42, 110, 58), "overlaps", True, "nested overlaps"),
    (box(90, 42, 110, 58), "contains", False, "small does not contain big"),
    (box(70, 30, 130, 70), "contains", True, "big contains the anchor"),
    (box(70, 30, 130, 70), "inside", False, "big is not inside"),
    (box(78, 40, 100, 60), "inside", True, "20 of its 22 columns (91%) inside the anchor"),
    (box(76, 40, 100, 60), "inside", False, "20 of its 24 columns (83%) inside the anchor"),
    (box(120, 40, 140, 60), "overlaps", False, "touching edge, no shared pixel"),
    (box(119, 40, 140, 60), "overlaps", True, "one shared column"),
    (box(0, 0, 10, 10), "inside", False, "far away"),
]


@pytest.mark.parametrize(("subject", "relation", "expected", "why"), RELATION_CASES)
def test_relation_table(subject: Instance, relation: str, expected: bool, why: str) -> None:
    assert holds(subject, relation, A) is expected, why  # type: ignore[arg-type]


def test_side_fraction_and_inside_fraction_are_tunable() -> None:
    subject = box(60, 40, 110, 60)  # 80% left of the anchor centre
    assert holds(subject, "left_of", A, side_fraction=0.75)
    assert not holds(subject, "left_of", A, side_fraction=0.85)
    nested = box(78, 40, 100, 60)  # 20 / 22 of it inside the anchor
    assert holds(nested, "inside", A, inside_fraction=0.9)
    assert not holds(nested, "inside", A, inside_fraction=0.95)
    assert holds(A, "contains", nested, inside_fraction=0.9)


def test_relations_on_concave_masks_use_the_mask_not_the_box() -> None:
    ring = np.zeros((H, W), bool)
    ring[10:90, 50:150] = True
    ring[30:70, 80:120] = False  # hole in the middle
    dot = box(95, 45, 105, 55)  # in the hole: inside the ring's box but not its mask
    ring_inst = make_instance(ring, id=1)
    assert not holds(dot, "inside", ring_inst)
    assert not holds(dot, "overlaps", ring_inst)
    assert not holds(ring_inst, "contains", dot)


def test_empty_masks_hold_no_relation() -> None:
    empty = make_instance(np.zeros((H, W), bool))
    for relation in ("left_of", "right_of", "above", "below", "inside", "contains", "overlaps"):
        assert not holds(empty, relation, A)  # type: ignore[arg-type]
        assert not holds(A, relation, empty)  # type: ignore[arg-type]


def test_bad_relation_and_size_mismatch() -> None:
    with pytest.raises(ValueError, match="unknown relation 'near'"):
        holds(A, "near", A)  # type: ignore[arg-type]
    other = make_instance(np.ones((10, 10), bool))
    with pytest.raises(ValueError, match="different image sizes"):
        holds(A, "left_of", other)


def test_filter_by_relation_needs_one_anchor_other_than_itself() -> None:
    left = box(10, 40, 30, 60, id=0)
    middle = box(90, 40, 110, 60, id=1)
    right = box(170, 40, 190, 60, id=2)
    cups = [left, middle, right]
    assert filter_by_relation(cups, "left_of", [right]) == [left, middle]
    assert filter_by_relation(cups, "left_of", cups) == [left, middle]  # right is left of nothing
    assert filter_by_relation(cups, "right_of", [left, middle]) == [middle, right]
    assert filter_by_relation([middle], "overlaps", [middle]) == []  # itself does not count
    copy = middle.model_copy(update={"id": 7, "phrase": "mug"})
    assert filter_by_relation([middle], "overlaps", [copy]) == []  # an identical mask is the same object
    assert filter_by_relation(cups, "above", []) == []
    with pytest.raises(ValueError, match="unknown relation"):
        filter_by_relation(cups, "beside", cups)  # type: ignore[arg-type]


def test_mask_distance() -> None:
    a = box(10, 10, 20, 20)
    assert mask_distance(a, box(15, 15, 25, 25)) == 0.0  # overlapping
    assert mask_distance(a, box(20, 10, 30, 20)) == 0.0  # side by side, touching
    assert mask_distance(a, box(25, 10, 30, 20)) == 5.0  # columns 20..24 free between them
    assert mask_distance(a, box(20, 20, 30, 30)) == pytest.approx(math.sqrt(2) - 1)  # corner to corner
    assert mask_distance(a, box(22, 23, 30, 30)) == pytest.approx(5.0 - 1)  # (19,19) to (22,23): 3-4-5
    assert mask_distance(a, make_instance(np.zeros((H, W), bool))) == math.inf


def test_nearest_to_sorts_by_mask_gap_then_centroid_distance() -> None:
    anchor = box(90, 40, 110, 60, id=0)
    far = box(0, 0, 10, 10, id=1)
    touching_big = box(110, 0, 200, 100, id=2)  # gap 0, centroid far away
    touching_small = box(110, 45, 115, 55, id=3)  # gap 0, centroid close
    near = box(60, 45, 85, 55, id=4)  # gap 4
    overlapping = box(100, 50, 105, 55, id=5)  # gap 0, centroid closest
    empty = make_instance(np.zeros((H, W), bool), id=6)
    got = nearest_to([far, empty, touching_big, anchor, near, touching_small, overlapping], anchor)
    assert [i.id for i in got] == [5, 3, 2, 4, 1, 6]


def test_nearest_to_uses_mask_not_box() -> None:
    anchor = box(0, 0, 10, 10, id=0)
    l_shape = np.zeros((H, W), bool)
    l_shape[0:5, 100:110] = True
    l_shape[0:90, 100:105] = True
    l_shape[85:90, 12:105] = True  # box corner near the anchor, but the mask arm is 75 rows below
    diagonal = box(30, 30, 40, 40, id=2)  # gap sqrt(21^2 + 21^2) - 1 ~ 28.7
    got = nearest_to([make_instance(l_shape, id=1), diagonal], anchor)
    assert [i.id for i in got] == [2, 1]


ORDER_SCENE = [
    box(100, 10, 120, 30, id=0, score=0.6),  # 400 px, centre (110, 20)
    box(10, 50, 60, 90, id=1, score=0.9),  # 2000 px, centre (35, 70)
    box(150, 60, 160, 70, id=2, score=0.7),  # 100 px, centre (155, 65)
    box(60, 0, 70, 40, id=3, score=0.9),  # 400 px, centre (65, 20)
]


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("leftmost", [1, 3, 0, 2]),
        ("rightmost", [2, 0, 3, 1]),
        ("topmost", [0, 3, 2, 1]),  # ids 0 and 3 tie at y = 20: smaller id first
        ("bottommost", [1, 2, 0, 3]),
        ("largest", [1, 0, 3, 2]),  # 0 and 3 tie at 400 px
        ("smallest", [2, 0, 3, 1]),
        ("highest_score", [1, 3, 2, 0]),  # 1 and 3 tie at 0.9
    ],
)
def test_order_by(ordering: str, expected: list[int]) -> None:
    assert [i.id for i in order_by(ORDER_SCENE, ordering)] == expected  # type: ignore[arg-type]
    assert [i.id for i in order_by(list(reversed(ORDER_SCENE)), ordering)] == expected  # type: ignore[arg-type]
    assert kth(ORDER_SCENE, ordering, 1).id == expected[0]  # type: ignore[arg-type]
    assert kth(ORDER_SCENE, ordering, 4).id == expected[-1]  # type: ignore[arg-type]


def test_order_by_puts_empty_masks_last() -> None:
    empty = make_instance(np.zeros((H, W), bool), id=0, score=0.99)
    for ordering in ("leftmost", "rightmost", "topmost", "bottommost", "largest", "smallest"):
        assert order_by([empty, *ORDER_SCENE], ordering)[-1] is empty  # type: ignore[arg-type]
    assert order_by([*ORDER_SCENE, empty], "highest_score")[0] is empty


@pytest.mark.parametrize("k", [0, -1, 5])
def test_kth_out_of_range(k: int) -> None:
    with pytest.raises(ValueError, match=rf"k={k} is out of range: expected 1 <= k <= 4"):
        kth(ORDER_SCENE, "leftmost", k)


def test_kth_on_nothing_and_unknown_ordering() -> None:
    with pytest.raises(ValueError, match="1 <= k <= 0"):
        kth([], "largest", 1)
    with pytest.raises(ValueError, match="unknown ordering 'widest'"):
        order_by(ORDER_SCENE, "widest")  # type: ignore[arg-type]
