"""Tiled segmentation: the tile plan, masks placed into the image, stitching across borders, duplicates from
overlaps, the query cap (a crowd of 400 that an untiled pass undercounts), the auto rule, and the engine."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from sam3_agent.engine.stitching import merge_tiles
from sam3_agent.engine.tile_plan import Tile, plan_tiles
from sam3_agent.engine.tiling import TiledSegmenter, untiled_report
from sam3_agent.errors import ConfigError
from sam3_agent.masks import mask_crop, mask_data, mask_to_box, rle_encode
from sam3_agent.masks.place import place_mask
from sam3_agent.schema import ExemplarBox, Instance, Prompt, Thresholds
from sam3_agent.testing.crowd import CappedSceneSegmenter, crowd_image, crowd_scene, object_color, object_crop
from sam3_agent.testing.scene import Scene, SceneObject

PERSON = [Prompt(text="person")]


def assert_exact(found: list[Instance], scene: Scene) -> None:
    """``found`` is the scene's objects, one instance each, with their exact masks and scores."""
    truth = {}
    for obj in scene.objects:
        box, local = object_crop(scene, obj)
        truth[_tight(box, local)] = (obj, box, local)
    assert len(truth) == len(scene.objects) == len(found)
    seen = set()
    for inst in found:
        data = mask_data(inst.rle)
        assert data.box in truth, f"no object has the tight box {data.box}"
        obj, box, local = truth[data.box]
        assert inst.score == obj.score and data.area == int(local.sum()) == inst.area
        assert np.array_equal(mask_crop(inst.rle, box), local)
        seen.add(id(obj))
    assert len(seen) == len(scene.objects)


def _tight(box: tuple[int, int, int, int], local: np.ndarray) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = mask_to_box(local)
    return (box[0] + int(x0), box[1] + int(y0), box[0] + int(x1), box[1] + int(y1))


@pytest.fixture(scope="module")
def crowd() -> tuple[Scene, Image.Image]:
    """400 people of 10-24 px on a 3000x2000 image."""
    scene = crowd_scene(3000, 2000, 400, seed=1)
    return scene, crowd_image(scene)


# --- the plan and the placement ---------------------------------------------------------------------------------


def test_plan_covers_the_image_with_overlapping_native_tiles() -> None:
    tiles = plan_tiles(3000, 2000, 1008, 0.2)
    assert len(tiles) == 4 * 3 and all((t.width, t.height) == (1008, 1008) for t in tiles)
    covered = np.zeros((2000, 3000), np.int32)
    for t in tiles:
        covered[t.y0 : t.y1, t.x0 : t.x1] += 1
    assert covered.min() >= 1
    xs = sorted({t.x0 for t in tiles})
    assert xs[0] == 0 and xs[-1] + 1008 == 3000
    assert min(1008 - (b - a) for a, b in itertools.pairwise(xs)) >= 0.2 * 1008
    assert plan_tiles(800, 600, 1008, 0.2) == [Tile(0, 0, 800, 600)]
    assert [t.x0 for t in plan_tiles(1000, 10, 250, 0.0)] == [0, 250, 500, 750], "no overlap: abutting tiles"
    with pytest.raises(ConfigError):
        plan_tiles(100, 100, 0, 0.2)
    with pytest.raises(ConfigError):
        TiledSegmenter(CappedSceneSegmenter(crowd_scene(100, 100, 1)), overlap=1.5)


def test_placing_a_window_mask_equals_pasting_it_densely() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        height, width = (int(v) for v in rng.integers(1, 40, 2))
        th, tw = int(rng.integers(1, height + 1)), int(rng.integers(1, width + 1))
        ox, oy = int(rng.integers(0, width - tw + 1)), int(rng.integers(0, height - th + 1))
        window = rng.random((th, tw)) < rng.random()
        full = np.zeros((height, width), bool)
        full[oy : oy + th, ox : ox + tw] = window
        placed = place_mask(rle_encode(window), (ox, oy), (height, width))
        assert placed.rle == rle_encode(full)
        assert placed.area == int(full.sum()) and tuple(map(float, placed.box)) == mask_to_box(full)
    with pytest.raises(ValueError, match="does not fit"):
        place_mask(rle_encode(np.ones((5, 5), bool)), (8, 0), (10, 10))


# --- the crowd: the query cap -----------------------------------------------------------------------------------


def test_untiled_count_saturates_at_the_cap_and_tiled_count_is_exact(crowd: tuple[Scene, Image.Image]) -> None:
    scene, image = crowd
    fake = CappedSceneSegmenter(scene, query_cap=100)
    (untiled,), report = TiledSegmenter(fake, mode="never").segment_with_report(image, PERSON)
    assert len(untiled) == 100, "SAM 3's query cap: an untiled pass returns at most 100 of the 400"
    assert report.near_cap and not report.tiled and report.query_cap == 100
    (tiled,), report = TiledSegmenter(fake).segment_with_report(image, PERSON)  # auto: a large image
    assert report.tiled and report.tiles == 12 and not report.near_cap
    assert report.prompts[0].largest_pass < 90, "no tile comes near the cap"
    assert_exact(tiled, scene)
    assert [inst.id for inst in tiled] == list(range(1, 401))
    assert [inst.score for inst in tiled] == sorted((inst.score for inst in tiled), reverse=True)
    again = TiledSegmenter(fake, mode="always").segment(image, PERSON)[0]
    assert again == tiled, "ids and masks are the same on every run"


def test_auto_tiles_a_mid_sized_image_whose_result_reaches_the_cap() -> None:
    scene = crowd_scene(1800, 1200, 300, seed=2)
    fake = CappedSceneSegmenter(scene, query_cap=100)
    (found,), report = TiledSegmenter(fake).segment_with_report(crowd_image(scene), PERSON)
    assert report.tiles == 4 and 100 < len(found) < 300
    assert report.near_cap, "four 1008 px tiles of 300 people: each holds more than the cap, and the report says so"
    fake.sizes_seen.clear()
    tiled = TiledSegmenter(fake, tile=512)
    (found,) = tiled.segment(crowd_image(scene), PERSON)
    report = tiled.last_report
    assert report is not None and report.tiled and not report.near_cap and report.prompts[0].untiled_count == 100
    assert fake.sizes_seen[0] == (1800, 1200), "first the whole image, then the tiles"
    assert len(fake.sizes_seen) == 1 + report.tiles
    assert_exact(found, scene)


def test_auto_leaves_small_images_alone() -> None:
    scene = crowd_scene(1008, 800, 150, seed=3)
    fake = CappedSceneSegmenter(scene, query_cap=100)
    reports = []
    (found,) = TiledSegmenter(fake, on_report=reports.append).segment(crowd_image(scene), PERSON)
    assert len(found) == 100 and fake.sizes_seen == [(1008, 800)]
    assert reports[0].near_cap and not reports[0].tiled, "saturated, and said so; one tile cannot help"
    (few,) = TiledSegmenter(fake, mode="always").segment(crowd_image(scene), PERSON)
    assert few == found, "an image that fits one tile is one tile, even when always tiling"
    small = TiledSegmenter(fake, mode="always", tile=512).with_mode("auto")
    assert (small.options.mode, small.options.tile) == ("auto", 512)


# --- borders and overlaps ---------------------------------------------------------------------------------------


def _border_scene(line: int) -> Scene:
    """Objects across the tile borders of a 500x500 image, around ``line`` (a border or an overlap band)."""
    objects = [
        SceneObject("person", (20, 60, 480, 80), "box", object_color(0), 0.9),  # across every column
        SceneObject("person", (line - 40, line - 60, line + 45, line + 50), "ellipse", object_color(1), 0.8),  # 4 tiles
        SceneObject("person", (line - 8, 20, line + 12, 50), "ellipse", object_color(2), 0.7),  # in a band / on a line
        SceneObject("person", (line + 60, 100, line + 75, 480), "box", object_color(3), 0.6),  # across every row
        SceneObject("person", (5, 400, 30, 430), "ellipse", object_color(4), 0.85),
    ]
    return Scene(500, 500, objects)


@pytest.mark.parametrize(("tile", "overlap", "line"), [(200, 0.25, 175), (250, 0.0, 250)])
def test_objects_cut_by_tile_borders_are_stitched_into_their_true_masks(tile: int, overlap: float, line: int) -> None:
    scene = _border_scene(line)
    fake = CappedSceneSegmenter(scene, query_cap=100)
    (found,), report = TiledSegmenter(fake, mode="always", tile=tile, overlap=overlap).segment_with_report(
        crowd_image(scene), PERSON
    )
    assert report.tiles == 9 if overlap else report.tiles == 4
    assert_exact(found, scene)
    assert [inst.score for inst in found] == [0.9, 0.85, 0.8, 0.7, 0.6] and [i.id for i in found] == [1, 2, 3, 4, 5]
    for inst, i in zip(found, (0, 4, 1, 2, 3), strict=True):
        assert inst.rle == rle_encode(scene.mask(i))


def test_duplicates_from_overlapping_tiles_are_removed_but_not_nested_masks_of_one_tile() -> None:
    size = (100, 150)
    tile_a, tile_b = Tile(0, 0, 100, 100), Tile(50, 0, 150, 100)

    def inst(box: tuple[int, int, int, int], score: float) -> Instance:
        mask = np.zeros(size, bool)
        mask[box[1] : box[3], box[0] : box[2]] = True
        box_ = mask_to_box(mask)
        return Instance(id=0, phrase="p", score=score, box=box_, rle=rle_encode(mask), area=int(mask.sum()))

    whole, nested, inner = inst((60, 40, 90, 60), 0.9), inst((70, 45, 80, 55), 0.8), inst((20, 45, 30, 55), 0.7)
    around = inst((10, 40, 40, 60), 0.75)
    merged = merge_tiles([[whole, around, inner], [nested]], [tile_a, tile_b])
    assert [m.score for m in merged] == [0.9, 0.75, 0.7], "the other tile's nested duplicate goes, one tile's stay"
    assert merged[0].rle == whole.rle and [m.id for m in merged] == [1, 2, 3]


# --- prompts, reports, the engine -------------------------------------------------------------------------------


def test_exemplar_prompts_run_on_the_whole_image(crowd: tuple[Scene, Image.Image]) -> None:
    scene, image = crowd
    fake = CappedSceneSegmenter(scene, query_cap=1000)
    box = scene.objects[0].box
    prompts = [Prompt(text="person"), Prompt(boxes=(ExemplarBox(box=box),))]
    (by_text, by_box), report = TiledSegmenter(fake, mode="always").segment_with_report(image, prompts)
    assert fake.sizes_seen[0] == (3000, 2000) and len(fake.sizes_seen) == 1 + report.tiles
    assert [p.tiled for p in report.prompts] == [True, False]
    assert len(by_text) == len(by_box) == 400
    assert [i.id for i in by_text + by_box] == list(range(1, 801)), "ids 1..N across the prompts"


def test_untiled_report_of_a_plain_segmenter() -> None:
    image = Image.new("RGB", (50, 40))
    found = [[], [None] * 19]  # type: ignore[list-item]
    report = untiled_report([Prompt(text="a"), Prompt(text="b")], found, image, 20)
    assert [p.near_cap for p in report.prompts] == [False, True] and report.near_cap and not report.tiled
    assert report.model_dump()["near_cap"] is True, "the summary flags travel in JSON"


def test_engine_query_cap_and_tiles_cached(engine) -> None:
    assert engine.query_cap == 20, "the tiny checkpoint's detector has 20 object queries"
    tiled = TiledSegmenter(engine, mode="always", tile=128, overlap=0.2)
    assert tiled.query_cap == 20
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8))
    (found,), report = tiled.segment_with_report(image, [Prompt(text="cup")], Thresholds(score=0.0))
    assert report.tiles == 6 and engine.backbone_calls == 6, "one backbone pass per tile"
    assert all(inst.image_size == (200, 300) for inst in found)
    assert [inst.id for inst in found] == list(range(1, len(found) + 1))
    tiled.segment(image, [Prompt(text="red hat")], Thresholds(score=0.0))
    assert engine.backbone_calls == 6, "another phrase on the same tiles reuses their cached features"
