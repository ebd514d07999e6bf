"""The synthetic scene and its fake segmenter behave as documented."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sam3_agent.engine.protocol import Segmenter
from sam3_agent.errors import ImageError, PromptError
from sam3_agent.masks import rle_decode
from sam3_agent.schema import ExemplarBox, Prompt, Thresholds
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter, normalize_phrase

RED, BLUE, GREEN = (220, 30, 30), (30, 30, 220), (30, 180, 30)


@pytest.fixture
def scene() -> Scene:
    return Scene(
        200,
        100,
        [
            SceneObject("cup", (10, 10, 40, 40), color=RED, score=0.95),  # 0
            SceneObject("cup", (60, 10, 90, 40), color=RED, score=0.8),  # 1
            SceneObject("red cup", (110, 10, 140, 40), color=RED, score=0.7),  # 2
            SceneObject("laptop", (20, 50, 120, 95), shape="box", color=BLUE, score=0.9),  # 3
            SceneObject("glass", (150, 50, 180, 90), color=GREEN, score=0.4),  # 4: below the default 0.5
        ],
        background=(250, 250, 250),
    )


def test_scene_masks_and_image(scene: Scene) -> None:
    box = scene.mask(3)
    assert box.shape == (100, 200) and box.dtype == bool
    assert box.sum() == 100 * 45 and box[50:95, 20:120].all()
    ellipse = scene.mask(0)
    assert ellipse[25, 25] and not ellipse[10, 10]  # centre in, box corner out
    assert abs(int(ellipse.sum()) - np.pi * 15 * 15) < 20
    arr = np.asarray(scene.image())
    assert arr.shape == (100, 200, 3)
    assert tuple(arr[25, 25]) == RED and tuple(arr[70, 70]) == BLUE and tuple(arr[0, 199]) == (250, 250, 250)
    with pytest.raises(ValueError, match="x0 < x1"):
        SceneObject("bad", (10, 10, 5, 20))


def test_normalize_phrase() -> None:
    assert normalize_phrase("  Red   Cups ") == "red cup"
    assert normalize_phrase("glasses") == normalize_phrase("glass") == "glass"
    assert normalize_phrase("boxes") == "box" and normalize_phrase("berries") == "berry"


def test_is_a_segmenter_and_counts_calls(scene: Scene) -> None:
    seg = SceneSegmenter(scene)
    assert isinstance(seg, Segmenter)
    prompts = [Prompt(text="cup"), Prompt(text="laptop")]
    seg.segment(scene.image(), prompts)
    seg.segment(scene.image(), [Prompt(text="glass")])
    assert seg.calls == 2
    assert seg.prompts_seen == [*prompts, Prompt(text="glass")]


@pytest.mark.parametrize(
    ("text", "expected_boxes"),
    [
        ("cup", [(10, 10, 40, 40), (60, 10, 90, 40)]),
        ("Cups", [(10, 10, 40, 40), (60, 10, 90, 40)]),
        ("red cup", [(110, 10, 140, 40)]),
        ("red cups", [(110, 10, 140, 40)]),
        ("laptop", [(20, 50, 120, 95)]),
        ("glass", []),  # score 0.4 < 0.5
        ("dog", []),
    ],
)
def test_text_prompts(scene: Scene, text: str, expected_boxes: list[tuple[int, ...]]) -> None:
    [found] = SceneSegmenter(scene).segment(scene.image(), [Prompt(text=text)])
    assert [inst.box for inst in found] == [tuple(map(float, b)) for b in expected_boxes]
    assert [inst.id for inst in found] == list(range(len(found)))
    assert all(inst.phrase == Prompt(text=text).label for inst in found)
    scores = [inst.score for inst in found]
    assert scores == sorted(scores, reverse=True)


def test_instances_carry_the_true_masks(scene: Scene) -> None:
    [[first, second]] = SceneSegmenter(scene).segment(scene.image(), [Prompt(text="cup")])
    assert (rle_decode(first.rle) == scene.mask(0)).all() and first.area == int(scene.mask(0).sum())
    assert (second.mask == scene.mask(1)).all()
    assert first.score == 0.95 and second.score == 0.8
    assert first.image_size == (100, 200)


def test_head_noun_option(scene: Scene) -> None:
    [found] = SceneSegmenter(scene, match_head_noun=True).segment(scene.image(), [Prompt(text="cups")])
    assert len(found) == 3


def test_score_threshold(scene: Scene) -> None:
    seg = SceneSegmenter(scene)
    [cups] = seg.segment(scene.image(), [Prompt(text="cup")], Thresholds(score=0.9))
    assert [inst.score for inst in cups] == [0.95]
    [glass] = seg.segment(scene.image(), [Prompt(text="glass")], Thresholds(score=0.3))
    assert len(glass) == 1


def test_positive_exemplar_finds_every_object_of_that_phrase(scene: Scene) -> None:
    seg = SceneSegmenter(scene)
    [found] = seg.segment(scene.image(), [Prompt(boxes=(ExemplarBox(box=(58, 8, 92, 42)),))])
    assert [inst.box for inst in found] == [(10.0, 10.0, 40.0, 40.0), (60.0, 10.0, 90.0, 40.0)]
    assert found[0].phrase == "exemplar (1 positive, 0 negative)"
    # A box over nothing finds nothing; with text, the text matches are kept.
    [nothing] = seg.segment(scene.image(), [Prompt(boxes=(ExemplarBox(box=(185, 2, 198, 8)),))])
    assert nothing == []
    both = Prompt(text="laptop", boxes=(ExemplarBox(box=(112, 12, 138, 38)),))
    [found] = seg.segment(scene.image(), [both])
    assert sorted(inst.box for inst in found) == [(20.0, 50.0, 120.0, 95.0), (110.0, 10.0, 140.0, 40.0)]


def test_exemplar_picks_the_object_it_overlaps_most(scene: Scene) -> None:
    # Box covering a corner of cup 1 and a large part of the laptop: the laptop wins.
    [found] = SceneSegmenter(scene).segment(scene.image(), [Prompt(boxes=(ExemplarBox(box=(80, 30, 120, 95)),))])
    assert [inst.box for inst in found] == [(20.0, 50.0, 120.0, 95.0)]


def test_negative_exemplar_removes_the_object_it_overlaps_most(scene: Scene) -> None:
    prompt = Prompt(text="cup", boxes=(ExemplarBox(box=(58, 8, 92, 42), positive=False),))
    [found] = SceneSegmenter(scene).segment(scene.image(), [prompt])
    assert [inst.box for inst in found] == [(10.0, 10.0, 40.0, 40.0)]
    assert [inst.id for inst in found] == [0]
    only_negative = Prompt(boxes=(ExemplarBox(box=(58, 8, 92, 42), positive=False),))
    assert SceneSegmenter(scene).segment(scene.image(), [only_negative]) == [[]]


def test_duplicates_need_nms_to_count_right(scene: Scene) -> None:
    seg = SceneSegmenter(scene, duplicates={"cups": 1})
    [raw] = seg.segment(scene.image(), [Prompt(text="cup")])
    assert len(raw) == 4
    assert [inst.id for inst in raw] == [0, 1, 2, 3]
    assert [round(inst.score, 2) for inst in raw] == [0.95, 0.9, 0.8, 0.75]
    original, duplicate = raw[0], raw[1]
    assert duplicate.area < original.area and not (duplicate.mask & ~original.mask).any()
    [deduplicated] = seg.segment(scene.image(), [Prompt(text="cup")], Thresholds(nms_iom=0.5))
    assert [inst.score for inst in deduplicated] == [0.95, 0.8]
    assert [inst.id for inst in deduplicated] == [0, 1]
    [laptop] = seg.segment(scene.image(), [Prompt(text="laptop")])
    assert len(laptop) == 1  # only "cup" is duplicated


def test_bad_exemplar_boxes_and_image_size(scene: Scene) -> None:
    seg = SceneSegmenter(scene)
    with pytest.raises(PromptError, match="outside the 200x100 image"):
        seg.segment(scene.image(), [Prompt(boxes=(ExemplarBox(box=(300, 10, 320, 20)),))])
    with pytest.raises(PromptError, match="empty or inverted"):
        seg.segment(scene.image(), [Prompt(text="cup", boxes=(ExemplarBox(box=(30, 10, 20, 20)),))])
    assert seg.calls == 0  # refused before counting
    with pytest.raises(ImageError, match="image is 10x10 but the scene is 200x100"):
        seg.segment(Image.new("RGB", (10, 10)), [Prompt(text="cup")])
