"""Mask algebra: union / intersection / difference of RLEs against numpy, set logic on objects, and the
``combine_masks`` tool through the agent loop (a scripted model on an exact scene)."""

from __future__ import annotations

import numpy as np
import pytest

from sam3_agent.agent.loop import Sam3Agent
from sam3_agent.agent.messages import ImagePart, UserMessage
from sam3_agent.masks import (
    empty_mask,
    mask_complement,
    mask_data,
    mask_difference,
    mask_intersection,
    mask_union,
    object_difference,
    object_intersection,
    object_union,
    rle_decode,
    rle_encode,
    same_objects,
)
from sam3_agent.schema import Answer
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter
from sam3_agent.testing.scripted import ScriptedChatModel
from sam3_agent.testing.turns import tool_call_turn

# --- pixels, against numpy ---------------------------------------------------------------------------------------


def _random_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Noise, a filled rectangle, nothing or everything."""
    kind = rng.integers(5)
    if kind == 0:
        return np.zeros((height, width), bool)
    if kind == 1:
        return np.ones((height, width), bool)
    if kind == 2:
        return rng.random((height, width)) < rng.random()
    mask = np.zeros((height, width), bool)
    y0, x0 = rng.integers(height), rng.integers(width)
    mask[y0 : rng.integers(y0, height + 1), x0 : rng.integers(x0, width + 1)] = True
    return mask


def _same(rle, expected: np.ndarray) -> None:
    """The RLE is exactly (canonically) the numpy mask's, and its box and area are the mask's."""
    assert rle.size == expected.shape and rle == rle_encode(expected)
    assert np.array_equal(rle_decode(rle), expected)
    assert mask_data(rle).area == int(expected.sum())


@pytest.mark.parametrize("seed", range(4))
def test_union_intersection_difference_and_complement_match_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(150):
        height, width = (int(v) for v in rng.integers(1, 40, 2))
        masks = [_random_mask(rng, height, width) for _ in range(int(rng.integers(1, 4)))]
        rles = [rle_encode(m) for m in masks]
        _same(mask_union(rles), np.logical_or.reduce(masks))
        _same(mask_intersection(rles), np.logical_and.reduce(masks))
        removed = np.logical_or.reduce([np.zeros_like(masks[0]), *masks[1:]])
        _same(mask_difference(rles[0], rles[1:]), masks[0] & ~removed)
        _same(mask_complement(rles[0]), ~masks[0])


def _boxes(height: int, width: int, *boxes: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = True
    return mask


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((10, 10, 50, 40), (60, 10, 90, 40)),  # disjoint
        ((10, 10, 90, 70), (30, 20, 50, 40)),  # nested: b inside a
        ((30, 20, 50, 40), (10, 10, 90, 70)),  # nested: a inside b
        ((10, 10, 50, 40), (40, 30, 90, 70)),  # overlapping corners
        ((0, 0, 100, 80), (0, 0, 100, 80)),  # the full image, twice
        ((0, 0, 100, 80), (20, 0, 30, 80)),  # the full image less a band
    ],
)
def test_shapes_that_matter(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> None:
    ma, mb = _boxes(80, 100, a), _boxes(80, 100, b)
    ra, rb = rle_encode(ma), rle_encode(mb)
    _same(mask_union([ra, rb]), ma | mb)
    _same(mask_intersection([ra, rb]), ma & mb)
    _same(mask_difference(ra, [rb]), ma & ~mb)
    _same(mask_difference(rb, [ra]), mb & ~ma)


def test_empty_masks_and_shortcuts() -> None:
    empty, cup = empty_mask((30, 40)), rle_encode(_boxes(30, 40, (5, 5, 15, 15)))
    far = rle_encode(_boxes(30, 40, (25, 20, 35, 28)))
    _same(empty, np.zeros((30, 40), bool))
    assert mask_union([empty, cup]) == cup and mask_intersection([empty, cup]) == empty
    assert mask_difference(cup, []) is cup and mask_difference(cup, [far, empty]) is cup  # boxes miss: no work
    assert mask_difference(empty, [cup]) is empty and mask_difference(cup, [cup]) == empty
    _same(mask_complement(empty), np.ones((30, 40), bool))
    assert mask_complement(mask_complement(cup)) == cup
    assert mask_union([cup]) is cup


def test_bad_operands_raise() -> None:
    with pytest.raises(ValueError, match="at least one mask"):
        mask_union([])
    small, large = rle_encode(np.ones((4, 5), bool)), rle_encode(np.ones((5, 4), bool))
    with pytest.raises(ValueError, match="different image sizes"):
        mask_intersection([small, large])
    with pytest.raises(ValueError, match="different image sizes"):
        mask_difference(small, [large])


# --- objects ---------------------------------------------------------------------------------------------------


def test_object_set_logic_by_iom_or_identity() -> None:
    apple, banana = _boxes(60, 80, (0, 0, 20, 20)), _boxes(60, 80, (40, 0, 70, 20))
    banana_part = _boxes(60, 80, (40, 0, 60, 20))  # 2/3 of the banana: the same object by IoM
    grazing = _boxes(60, 80, (18, 0, 30, 20))  # overlaps the apple by 2 of its 12 columns: another object
    fruit = [rle_encode(m) for m in (apple, banana, grazing)]
    bananas = [rle_encode(banana_part), empty_mask((60, 80))]
    assert same_objects(fruit, bananas).tolist() == [[False, False], [True, False], [False, False]]
    assert object_difference(fruit, bananas) == [0, 2] and object_intersection(fruit, bananas) == [1]
    assert object_union(fruit, bananas) == [0, 1, 2, 4]  # the empty mask is no fruit: kept; the part is not
    assert same_objects([bananas[1]], [empty_mask((60, 80))]).tolist() == [[True]]  # identical masks
    assert object_difference(fruit, []) == [0, 1, 2] and same_objects([], fruit).shape == (0, 3)


# --- the tool through the agent loop ----------------------------------------------------------------------------

TABLE = Scene(
    200,
    120,
    [
        SceneObject("table", (10, 60, 190, 110), shape="box", score=0.95),
        SceneObject("cloth", (40, 40, 90, 80), shape="box", score=0.8),
        SceneObject("cup", (120, 10, 150, 40), score=0.9),
    ],
)


def _run(*turns) -> tuple[Answer, ScriptedChatModel]:
    llm = ScriptedChatModel(turns)
    answer = Sam3Agent(SceneSegmenter(TABLE), llm).run(TABLE.image(), "the part of the table not covered by the cloth")
    llm.assert_complete()
    return answer, llm


def _combine(operation: str, first: list[int], second: list[int], **extra) -> object:
    return tool_call_turn("combine_masks", {"operation": operation, "first_ids": first, "second_ids": second, **extra})


def test_difference_makes_one_new_instance_with_its_provenance() -> None:
    answer, llm = _run(
        tool_call_turn("segment_phrases", {"phrases": ["table", "cloth"]}),
        _combine("difference", [1], [2]),
        tool_call_turn("examine_masks", {"ids": [3]}),
        tool_call_turn("final_answer", {"ids": [3], "text": "the uncovered part"}),
    )
    (part,) = answer.instances
    truth = TABLE.mask(0) & ~TABLE.mask(1)
    assert (part.id, part.phrase, part.rle, part.area) == (3, "table minus cloth", rle_encode(truth), int(truth.sum()))
    assert part.box == (10.0, 60.0, 190.0, 110.0) and part.score == 0.8  # the lower score of the two
    step = answer.trace[1]
    assert (step.tool, step.ok, step.instance_ids) == ("combine_masks", True, (3,))
    assert step.summary.startswith("#3 = #1 minus #2\n  #3 table minus cloth: score 0.80")
    assert "from combine_masks" in answer.trace[2].summary
    shown = [p for m in llm.requests[2].messages if isinstance(m, UserMessage) for p in m.content]
    assert any(isinstance(p, ImagePart) and p.caption == "overlay of id 3 (table minus cloth)" for p in shown)


def test_union_and_intersection_of_several_ids() -> None:
    answer, _ = _run(
        tool_call_turn("segment_phrases", {"phrases": ["table", "cloth", "cup"]}),
        _combine("union", [1, 3], [2]),
        _combine("intersection", [1], [2, 3]),
        tool_call_turn("final_answer", {"ids": [4, 5], "text": "both"}),
    )
    union, inter = answer.instances
    assert union.rle == rle_encode(TABLE.mask(0) | TABLE.mask(1) | TABLE.mask(2))
    assert inter.rle == rle_encode(TABLE.mask(0) & TABLE.mask(1)) and inter.phrase == "table intersect cloth and cup"
    assert answer.trace[1].summary.startswith("#4 = (#1 + #3) plus #2")
    assert answer.trace[2].summary.startswith("#5 = #1 intersect (#2 + #3)")


def test_an_empty_result_adds_nothing_and_says_why() -> None:
    answer, _ = _run(
        tool_call_turn("segment_phrases", {"phrases": ["table", "cup"]}),
        _combine("intersection", [1], [2]),
        _combine("difference", [2], [2]),
        tool_call_turn("no_match", {"reason": "they do not overlap"}),
    )
    inter, diff = answer.trace[1], answer.trace[2]
    assert inter.ok and inter.instance_ids == ()
    assert "#1 intersect #2 is empty: the masks do not overlap" in inter.summary
    assert diff.ok and "cover all of the first; no mask added" in diff.summary
    assert len(answer.all_instances) == 2


def test_objects_mode_keeps_ids_and_makes_no_mask() -> None:
    answer, _ = _run(
        tool_call_turn("segment_phrases", {"phrases": ["table", "cloth", "cup"]}),
        tool_call_turn("refine_with_exemplars", {"positive_ids": [3]}),  # the cup again, as #4
        _combine("difference", [1, 2, 3], [4], mode="objects"),
        _combine("intersection", [1, 2, 3], [4], mode="objects"),
        _combine("union", [1, 3], [2, 4], mode="objects"),
        tool_call_turn("final_answer", {"ids": [1, 2], "text": "all but the cup"}),
    )
    diff, inter, union = answer.trace[2:5]
    assert diff.instance_ids == (1, 2)
    assert diff.summary == "objects of #1, #2, #3 not in #4: #1, #2; same objects: #3 = #4"
    assert inter.instance_ids == (3,) and union.instance_ids == (1, 3, 2)
    assert len(answer.all_instances) == 4


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"operation": "minus", "first_ids": [1], "second_ids": [2]}, "invalid arguments for combine_masks"),
        ({"operation": "union", "first_ids": [1], "second_ids": []}, "second_ids"),
        ({"operation": "union", "first_ids": [1], "second_ids": [9]}, "unknown mask id(s) 9"),
        ({"operation": "union", "first_ids": [1], "second_ids": [2], "mode": "ids"}, "mode"),
    ],
)
def test_mistakes_come_back_as_errors(arguments: dict, says: str) -> None:
    answer, _ = _run(
        tool_call_turn("segment_phrases", {"phrases": ["table", "cloth"]}),
        tool_call_turn("combine_masks", arguments),
        tool_call_turn("no_match", {"reason": "gave up"}),
    )
    step = answer.trace[1]
    assert not step.ok and step.summary.startswith("Error:") and says in step.summary
