"""RLE round trips, IoU / IoM against hand-computed values, NMS, and the data model's validators."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from sam3_agent.errors import PromptError
from sam3_agent.masks import (
    mask_data,
    mask_iom,
    mask_iou,
    mask_to_box,
    nms,
    rle_decode,
    rle_encode,
    rle_encode_many,
)
from sam3_agent.schema import ExemplarBox, Instance, Prompt


def rect(h: int, w: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((h, w), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def inst(mask: np.ndarray, score: float, id_: int = 0) -> Instance:
    return Instance(id=id_, phrase="x", score=score, box=mask_to_box(mask), rle=rle_encode(mask), area=int(mask.sum()))


def test_rle_round_trip_non_square_and_asymmetric() -> None:
    rng = np.random.default_rng(0)
    mask = rng.random((37, 53)) > 0.6
    rle = rle_encode(mask)
    assert rle.size == (37, 53)
    assert isinstance(rle.counts, str)
    np.testing.assert_array_equal(rle_decode(rle), mask)
    assert mask_data(rle).area == mask.sum()


def test_rle_encode_many_equals_one_by_one() -> None:
    rng = np.random.default_rng(1)
    stack = rng.random((4, 20, 31)) > 0.5
    assert rle_encode_many(stack) == [rle_encode(m) for m in stack]
    assert rle_encode_many(np.zeros((0, 5, 5), bool)) == []


def test_rle_rejects_wrong_rank() -> None:
    with pytest.raises(ValueError, match="2-D"):
        rle_encode(np.zeros((2, 3, 4), bool))


@pytest.mark.parametrize(
    ("box", "expected"),
    [((2, 3, 7, 9), (2.0, 3.0, 7.0, 9.0)), ((0, 0, 10, 10), (0.0, 0.0, 10.0, 10.0))],
)
def test_mask_to_box_is_tight_with_exclusive_max(box: tuple[int, ...], expected: tuple[float, ...]) -> None:
    assert mask_to_box(rect(10, 10, *box)) == expected


def test_mask_to_box_empty() -> None:
    assert mask_to_box(np.zeros((4, 4), bool)) == (0.0, 0.0, 0.0, 0.0)


def test_iou_and_iom_hand_computed() -> None:
    a = rle_encode(rect(10, 10, 0, 0, 4, 4))  # 16 px
    b = rle_encode(rect(10, 10, 2, 0, 6, 2))  # 8 px, overlap with a: x 2..4, y 0..2 = 4 px
    assert mask_iou([a], [b])[0, 0] == pytest.approx(4 / (16 + 8 - 4))
    assert mask_iom([a], [b])[0, 0] == pytest.approx(4 / 8)
    assert mask_iou([], [b]).shape == (0, 1)


def test_nms_iom_removes_nested_part_and_keeps_separate_objects() -> None:
    whole = inst(rect(20, 20, 0, 0, 10, 10), 0.9, 0)
    part = inst(rect(20, 20, 2, 2, 5, 5), 0.8, 1)  # fully inside: IoM 1.0, IoU 0.09
    other = inst(rect(20, 20, 12, 12, 18, 18), 0.7, 2)
    assert [i.id for i in nms([part, other, whole], 0.5, "iom")] == [0, 2]
    assert [i.id for i in nms([part, other, whole], 0.5, "iou")] == [0, 1, 2]
    with pytest.raises(ValueError, match="metric"):
        nms([whole], 0.5, "giou")


def test_instance_mask_is_decoded_on_access() -> None:
    i = inst(rect(6, 8, 1, 1, 3, 5), 0.5)
    np.testing.assert_array_equal(i.mask, rect(6, 8, 1, 1, 3, 5))
    assert "mask" not in i.__dict__  # nothing hidden on the model
    assert i.mask.shape == (6, 8) and i.mask.sum() == i.area == 8
    assert i.image_size == (6, 8)


def test_instance_rejects_inverted_box_and_bad_score() -> None:
    good = inst(rect(6, 8, 1, 1, 3, 5), 0.5)
    with pytest.raises(ValidationError, match="x1 >= x0"):
        Instance(**{**good.model_dump(), "box": (5, 0, 1, 2)})
    with pytest.raises(ValidationError):
        Instance(**{**good.model_dump(), "score": 1.5})


def test_prompt_needs_text_or_boxes_and_normalises_whitespace() -> None:
    assert Prompt(text="  red   cup ").text == "red cup"
    with pytest.raises(ValidationError, match="noun phrase"):
        Prompt(text="   ")
    p = Prompt(boxes=(ExemplarBox(box=(0, 0, 5, 5)), ExemplarBox(box=(1, 1, 2, 2), positive=False)))
    assert p.label == "exemplar (1 positive, 1 negative)"


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ((5, 5, 2, 8), "inverted"),
        ((3, 3, 3, 9), "inverted"),
        ((120, 0, 130, 10), "outside"),
        ((-9, -9, 0, 0), "outside"),
    ],
)
def test_exemplar_box_checks(box: tuple[float, ...], message: str) -> None:
    with pytest.raises(PromptError, match=message):
        ExemplarBox(box=box).check_inside(100, 50)


def test_exemplar_box_rejects_nan() -> None:
    with pytest.raises(ValidationError, match="finite"):
        ExemplarBox(box=(0, 0, float("nan"), 3))


def test_overlaps_and_nms_handle_more_than_255_masks() -> None:
    masks = np.zeros((300, 30, 40), dtype=bool)
    for i in range(300):
        y, x = divmod(i, 20)
        masks[i, y * 2 : y * 2 + 2, x * 2 : x * 2 + 2] = True
    rles = rle_encode_many(masks)
    assert np.allclose(np.diag(mask_iom(rles, rles)), 1.0)
    instances = [inst(m, 0.5 + i / 1000, i) for i, m in enumerate(masks)]
    assert len(nms(instances, 0.5)) == 300


def test_model_copy_with_new_rle_has_the_new_mask_and_mask_data() -> None:
    first = inst(rect(6, 8, 1, 1, 3, 5), 0.5)
    assert first.mask.sum() == first.mask_data.area == 8
    other = rect(6, 8, 0, 0, 2, 2)
    moved = first.model_copy(update={"rle": rle_encode(other), "area": 4})
    np.testing.assert_array_equal(moved.mask, other)
    assert (moved.mask_data.box, moved.mask_data.area) == ((0, 0, 2, 2), 4)
    renumbered = first.model_copy(update={"id": 3})
    assert renumbered.mask_data is first.mask_data  # the same RLE: parsed once


def test_instances_compare_by_fields_even_with_decoded_masks() -> None:
    a = inst(rect(6, 8, 1, 1, 3, 5), 0.5)
    b = Instance(**a.model_dump())
    assert a.mask.any() and b.mask.any()  # both decoded and cached
    assert a == b
    assert a != b.model_copy(update={"score": 0.6})
    assert hash(a) == hash(b)
