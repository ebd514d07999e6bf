"""The relations the planner added: on, under, next_to, negation, between, and ranking by distance."""

from __future__ import annotations

import numpy as np
import pytest

from sam3_agent.geometry import between, filter_by_relation, holds, rank_by_distance
from sam3_agent.masks import mask_to_box, rle_encode
from sam3_agent.schema import Instance

H, W = 120, 240


def box(x0: int, y0: int, x1: int, y1: int, id: int = 0) -> Instance:
    """An instance whose mask fills the XYXY box (max corner exclusive)."""
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    return Instance(id=id, phrase="thing", score=0.9, box=mask_to_box(mask), rle=rle_encode(mask), area=int(mask.sum()))


TABLE = box(40, 80, 200, 100)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        (box(60, 60, 80, 80), True),  # resting on the top edge
        (box(60, 62, 80, 82), True),  # sunk into it a little
        (box(60, 50, 80, 70), False),  # floating 10 px above: no contact
        (box(10, 60, 30, 80), False),  # touching the corner but outside the table's columns
        (box(60, 100, 80, 115), False),  # below it
    ],
)
def test_on_needs_contact_from_above_within_the_anchor_columns(subject: Instance, expected: bool) -> None:
    assert holds(subject, "on", TABLE) is expected


def test_on_tolerates_a_gap_of_a_tenth_of_the_subject_height() -> None:
    tall = box(60, 38, 80, 78)  # 40 px tall, 2 px gap -> within max(2, 4)
    assert holds(tall, "on", TABLE)
    assert not holds(box(60, 33, 80, 73), "on", TABLE)  # 7 px gap > 4


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        (box(60, 102, 80, 118), True),  # directly below, not touching
        (box(205, 102, 225, 118), False),  # below but outside the columns
        (box(60, 60, 80, 80), False),  # above
    ],
)
def test_under_is_below_within_the_anchor_columns(subject: Instance, expected: bool) -> None:
    assert holds(subject, "under", TABLE) is expected


def test_next_to_scales_with_the_smaller_object() -> None:
    cup = box(10, 10, 30, 30)  # 20 px: near means a gap of at most 10 px
    assert holds(box(35, 10, 55, 30), "next_to", cup)  # gap 5
    assert holds(box(40, 10, 60, 30), "next_to", cup)  # gap 10
    assert not holds(box(45, 10, 65, 30), "next_to", cup)  # gap 15
    assert holds(box(31, 0, 231, 100), "next_to", cup)  # touching a large object


def test_negate_keeps_the_subjects_related_to_no_anchor() -> None:
    left, right, laptop = box(0, 0, 20, 20, id=1), box(200, 0, 220, 20, id=2), box(100, 0, 140, 20, id=3)
    assert [s.id for s in filter_by_relation([left, right], "left_of", [laptop])] == [1]
    assert [s.id for s in filter_by_relation([left, right], "left_of", [laptop], negate=True)] == [2]
    assert [s.id for s in filter_by_relation([left, right], "left_of", [], negate=True)] == [1, 2]


def test_between_two_anchors_and_two_of_one_phrase() -> None:
    plate_a, plate_b = box(0, 40, 40, 80, id=1), box(200, 40, 240, 80, id=2)
    inside = box(100, 50, 120, 70, id=3)
    off_line = box(100, 0, 120, 15, id=4)  # above the band spanned by the plates
    in_a = box(10, 50, 20, 60, id=5)  # within a plate's box: not between
    subjects = [inside, off_line, in_a]
    assert [s.id for s in between(subjects, [plate_a], [plate_b])] == [3]
    assert [s.id for s in between(subjects, [plate_a, plate_b], [plate_a, plate_b])] == [3]
    assert between(subjects, [plate_a], [plate_a]) == []  # one plate is no pair


def test_rank_by_distance_uses_the_nearest_anchor_and_reverses_for_farthest() -> None:
    a1, a2 = box(0, 0, 10, 10, id=10), box(200, 0, 210, 10, id=11)
    near_a2 = box(180, 0, 190, 10, id=1)  # gap 10 to a2
    middle = box(100, 0, 110, 10, id=2)  # gap 90 to both
    near_a1 = box(30, 0, 40, 10, id=3)  # gap 20 to a1
    ranked = rank_by_distance([middle, near_a1, near_a2], [a1, a2])
    assert [(s.id, round(gap)) for s, gap in ranked] == [(1, 10), (3, 20), (2, 90)]
    assert [s.id for s, _ in rank_by_distance([middle, near_a1, near_a2], [a1, a2], farthest=True)] == [2, 3, 1]


def test_rank_by_distance_never_measures_an_object_against_itself() -> None:
    a, b = box(0, 0, 10, 10, id=1), box(50, 0, 60, 10, id=2)
    assert [s.id for s, _ in rank_by_distance([a, b], [a])] == [2]
    assert [s.id for s, _ in rank_by_distance([a, b], [a, b])] == [1, 2]  # each measured to the other
