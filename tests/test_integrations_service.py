"""The service behind every integration: image references (allowed folder only), segment, count, ask."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydantic import BaseModel, ValidationError

from sam3_agent.errors import ConfigError, ImageError, PromptError
from sam3_agent.integrations.args import ASK_LLM_DESCRIPTION, ASK_PLANNER_DESCRIPTION, CountArgs, SegmentArgs
from sam3_agent.integrations.clicks import SegmentAtArgs
from sam3_agent.integrations.image_refs import ImageResolver
from sam3_agent.integrations.results import MAX_SUMMARY_INSTANCES, AskResult, CountResult, SegmentResult
from sam3_agent.integrations.service import OVERLAY_MAX_SIDE, Sam3Service
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter
from sam3_agent.testing.scripted import ScriptedChatModel
from sam3_agent.testing.turns import tool_call_turn

SCENE = Scene(
    200,
    120,
    [
        SceneObject("cup", (20, 60, 50, 100), color=(200, 40, 40), score=0.9),
        SceneObject("laptop", (70, 30, 130, 90), shape="box", color=(90, 90, 110), score=0.8),
        SceneObject("cup", (150, 60, 180, 100), color=(210, 60, 40), score=0.7),
    ],
)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    SCENE.image().save(folder / "sub" / "scene.png")
    SCENE.image().save(tmp_path / "secret.png")  # next to the root, not inside it
    return folder


@pytest.fixture
def service(root: Path) -> Sam3Service:
    return Sam3Service(SceneSegmenter(SCENE, duplicates={"cup": 1}), images=ImageResolver(root))


# --- image references ------------------------------------------------------------------------------------------


def test_paths_inside_the_root_load(root: Path) -> None:
    resolver = ImageResolver(root)
    assert resolver.load("sub/scene.png").size == (200, 120)
    assert resolver.load(str(root / "sub" / "scene.png")).size == (200, 120)
    assert resolver.load((root / "sub" / "scene.png").as_uri()).size == (200, 120)


@pytest.mark.parametrize("ref", ["../secret.png", "sub/../../secret.png", "SECRET_ABSOLUTE"])
def test_paths_escaping_the_root_are_refused(root: Path, ref: str) -> None:
    ref = str(root.parent / "secret.png") if ref == "SECRET_ABSOLUTE" else ref
    with pytest.raises(ImageError, match="outside the allowed folder"):
        ImageResolver(root).load(ref)


@pytest.mark.parametrize("ref", ["sub/scene.png\x00.txt", "file:///etc/passwd\x00", "\x00"])
def test_a_nul_character_in_a_reference_is_an_image_error(root: Path, ref: str) -> None:
    with pytest.raises(ImageError, match="NUL character"):
        ImageResolver(root).load(ref)


def test_symlink_pointing_out_is_refused(root: Path) -> None:
    os.symlink(root.parent / "secret.png", root / "link.png")
    with pytest.raises(ImageError, match="outside the allowed folder"):
        ImageResolver(root).load("link.png")


def test_symlinked_root_is_followed(root: Path, tmp_path: Path) -> None:
    os.symlink(root, tmp_path / "alias")
    assert ImageResolver(tmp_path / "alias").load("sub/scene.png").size == (200, 120)


def test_missing_file_names_the_root(root: Path) -> None:
    with pytest.raises(ImageError, match="does not exist") as info:
        ImageResolver(root).load("nope.png")
    assert str(root) in str(info.value)


def test_base64_and_data_urls_load_without_a_root() -> None:
    data = _png(SCENE.image())
    resolver = ImageResolver(None)
    plain = base64.b64encode(data).decode()
    assert resolver.load(plain).size == (200, 120)
    assert resolver.load(base64.urlsafe_b64encode(data).decode().rstrip("=")).size == (200, 120)
    assert resolver.load(f"data:image/png;base64,{plain}").size == (200, 120)
    assert resolver.load(data).size == (200, 120)
    with pytest.raises(ImageError, match="paths are not accepted"):
        resolver.load("scene.png")


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("https://example.com/cat.png", "URLs are not accepted"),
        ("   ", "empty"),
        (base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10).decode(), "base64 image"),
        (base64.b64encode(b"\xff\xd8\xff" + b"garbage" * 10).decode(), "^base64 image is a corrupt or truncated JPEG"),
        (
            "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8\xff\xe0" + bytes(64)).decode(),
            "corrupt or truncated JPEG",
        ),
    ],
)
def test_refused_or_broken_references(root: Path, ref: str, message: str) -> None:
    with pytest.raises(ImageError, match=message) as raised:
        ImageResolver(root).load(ref)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("model", "given"),
    [
        (SegmentArgs, {"image": "a.png", "phrases": ["cup"]}),
        (CountArgs, {"image": "a.png", "positive_boxes": [[1, 2, 3, 4]]}),
        (SegmentAtArgs, {"image": "a.png", "points": [[5, 5]]}),
    ],
)
def test_null_arguments_mean_the_defaults(model: type[BaseModel], given: dict[str, Any]) -> None:
    """Every integration's arguments: null for an optional argument is its default; for a required one an error."""
    nulls = {name: None for name, field in model.model_fields.items() if name not in given and not field.is_required()}
    assert nulls and model.model_validate({**given, **nulls}) == model.model_validate(given)
    with pytest.raises(ValidationError, match="image"):
        model.model_validate({**given, "image": None})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        model.model_validate({**given, "colour": None})


def test_root_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not an existing folder"):
        ImageResolver(tmp_path / "missing")


# --- segment / count / ask ----------------------------------------------------------------------------------------


def test_segment_numbers_instances_across_phrases(service: Sam3Service) -> None:
    outcome = service.segment("sub/scene.png", ["cup", "laptop"])
    result = outcome.result
    assert isinstance(result, SegmentResult)
    assert result.image_size == (120, 200)
    assert [i.id for i in result.instances] == list(range(1, len(result.instances) + 1))
    assert [(p.phrase, p.count) for p in result.phrases] == [("cup", 4), ("laptop", 1)]  # 2 cups + 1 duplicate each
    laptop = result.instances[-1]
    assert laptop.phrase == "laptop" and result.phrases[1].ids == [laptop.id]
    assert np.array_equal(laptop.mask, SCENE.mask(1))
    assert "'cup': 4; 'laptop': 1" in outcome.summary and "#5 laptop" in outcome.summary


def test_segment_thresholds_and_boxes(service: Sam3Service) -> None:
    assert service.segment("sub/scene.png", ["cup"], score_threshold=0.8).result.phrases[0].count == 2
    only_boxes = service.segment("sub/scene.png", positive_boxes=[[70, 30, 130, 90]]).result
    assert only_boxes.phrases[0].phrase.startswith("exemplar") and only_boxes.phrases[0].count == 1
    with pytest.raises(PromptError, match="positive"):
        service.segment("sub/scene.png", [], negative_boxes=[[0, 0, 10, 10]])
    with pytest.raises(PromptError, match="outside"):
        service.segment("sub/scene.png", ["cup"], positive_boxes=[[500, 500, 600, 600]])
    with pytest.raises(PromptError, match="exemplar box"):
        service.segment("sub/scene.png", ["cup"], positive_boxes=[[1, 2, 3]])


def test_count_merges_duplicates(service: Sam3Service) -> None:
    result = service.count("sub/scene.png", "cups").result
    assert isinstance(result, CountResult)
    assert (result.count, result.detected) == (2, 4)
    assert [i.id for i in result.instances] == [1, 2]
    assert [np.array_equal(i.mask, SCENE.mask(k)) for i, k in zip(result.instances, (0, 2), strict=True)] == [True] * 2
    assert "Count of 'cups': 2 (4 detected, 2 duplicate(s) merged)" in result.summary()


def test_ask_runs_the_agent_with_the_llm(root: Path) -> None:
    llm = ScriptedChatModel(
        [
            tool_call_turn("segment_phrases", {"phrases": ["cup"]}),
            tool_call_turn("final_answer", {"ids": [1, 2], "text": "Two cups.", "count": 2}),
        ]
    )
    service = Sam3Service(SceneSegmenter(SCENE), llm, images=ImageResolver(root))
    result = service.ask("sub/scene.png", "how many cups?").result
    llm.assert_complete()
    assert isinstance(result, AskResult)
    assert (result.status, result.answer, result.count, result.found) == ("answered", "Two cups.", 2, 2)
    assert [step.tool for step in result.trace] == ["segment_phrases", "final_answer"]
    assert "Count: 2" in result.summary()
    assert service.can_ask and not service.uses_planner and service.ask_description == ASK_LLM_DESCRIPTION


@pytest.mark.parametrize(
    ("question", "status", "count"),
    [
        ("how many cups are there?", "answered", 2),
        ("how many cups are left of the laptop?", "answered", 1),
        ("why is the sky blue?", "gave_up", None),
    ],
)
def test_ask_without_an_llm_is_answered_by_the_planner(
    service: Sam3Service, question: str, status: str, count: int | None
) -> None:
    assert service.can_ask and service.uses_planner and service.ask_description == ASK_PLANNER_DESCRIPTION
    result = service.ask("sub/scene.png", question).result
    assert (result.status, result.count) == (status, count), result.answer
    assert result.answer and f"Answer ({status}): " in result.summary()


def test_overlay_is_downscaled_and_summary_is_capped(tmp_path: Path) -> None:
    many = Scene(1600, 400, [SceneObject("dot", (x, 10, x + 20, 30), shape="box") for x in range(0, 1600, 40)])
    many.image().save(tmp_path / "many.png")
    outcome = Sam3Service(SceneSegmenter(many), images=ImageResolver(tmp_path)).segment("many.png", ["dot"])
    assert len(outcome.result.instances) == 40
    overlay = Image.open(io.BytesIO(base64.b64decode(outcome.overlay_base64())))
    assert overlay.size == (OVERLAY_MAX_SIDE, 256)
    assert outcome.overlay(max_side=None).size == (1600, 400)
    assert outcome.summary.count("\n#") == MAX_SUMMARY_INSTANCES
    assert "... and 15 more" in outcome.summary


def test_service_rejects_bad_configuration() -> None:
    with pytest.raises(ConfigError, match="segmenter"):
        Sam3Service(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="llm must be"):
        Sam3Service(SceneSegmenter(SCENE), llm=object())
