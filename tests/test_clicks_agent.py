"""The agent's ``segment_at`` tool with a fake click engine returning exact masks (``SceneClicker``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sam3_agent.agent.loop import Sam3Agent
from sam3_agent.errors import CheckpointError
from sam3_agent.schema import Answer, Instance
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter
from sam3_agent.testing.scene_clicks import SceneClicker
from sam3_agent.testing.scripted import ScriptedChatModel
from sam3_agent.testing.turns import tool_call_turn

TABLE = Scene(
    200,
    120,
    [
        SceneObject("table", (10, 60, 190, 110), shape="box", color=(120, 80, 40)),
        SceneObject("cup", (30, 30, 60, 70), color=(200, 40, 40)),  # stands on the table, painted over it
        SceneObject("cup", (120, 30, 150, 70), color=(40, 40, 200)),
    ],
)


def run(*calls: tuple[str, dict[str, Any]], clicker: Any = "scene") -> tuple[Answer, SceneClicker | Any]:
    clicker = SceneClicker(TABLE) if clicker == "scene" else clicker
    turns = [tool_call_turn(name, args) for name, args in calls]
    turns.append(tool_call_turn("final_answer", {"ids": [], "text": "done"}))
    agent = Sam3Agent(SceneSegmenter(TABLE), ScriptedChatModel(turns), clicker=clicker)
    return agent.run(TABLE.image(), "segment what I clicked"), clicker


def added(answer: Answer) -> list[Instance]:
    return list(answer.all_instances)


def test_a_click_adds_the_exact_mask_of_the_object_with_its_provenance() -> None:
    answer, clicker = run(("segment_at", {"points": [[45, 50]]}))
    step = answer.trace[0]
    assert step.tool == "segment_at" and step.ok and step.instance_ids == (1,)
    assert step.arguments == {"points": [[45, 50]]}
    (inst,) = added(answer)
    assert np.array_equal(inst.mask, TABLE.mask(1))
    assert inst.phrase == "clicked object (1 positive point)" and inst.score == pytest.approx(0.95)
    assert step.summary.startswith("New mask from the clicks: #1 clicked object (1 positive point): score 0.95")
    assert [(c.points, c.labels, c.box) for c in clicker.calls] == [(((45.0, 50.0),), (1,), None)]


def test_negative_points_and_a_box_reach_the_click_engine_as_labels() -> None:
    args = {"points": [[100, 80]], "negative_points": [[45, 50], [135, 50]], "box": [10, 30, 190, 110]}
    answer, clicker = run(("segment_at", args))
    (call,) = clicker.calls
    assert call.points == ((100.0, 80.0), (45.0, 50.0), (135.0, 50.0)) and call.labels == (1, 0, 0)
    assert call.box == (10.0, 30.0, 190.0, 110.0)
    (inst,) = added(answer)
    assert np.array_equal(inst.mask, TABLE.mask(0))
    assert inst.phrase == "clicked object (1 positive point, 2 negative points, a box)"


def test_the_result_says_when_the_click_hit_an_object_already_in_the_store() -> None:
    answer, _ = run(("segment_phrases", {"phrases": ["cup"]}), ("segment_at", {"box": [115, 25, 155, 75]}))
    click = answer.trace[1]
    assert click.ok and "(same object as #" in click.summary
    assert np.array_equal(added(answer)[-1].mask, TABLE.mask(2))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ({}, "invalid arguments for segment_at"),
        ({"negative_points": [[5, 5]]}, "at least one point on the object, or a box"),
        ({"points": [[250, 10]]}, "point (250, 10) lies outside the 200x120 image"),
        ({"box": [50, 50, 40, 60]}, "empty or inverted"),
        ({"points": [[1, 2, 3]]}, "invalid arguments for segment_at"),
    ],
)
def test_bad_clicks_are_tool_errors_the_model_can_fix(args: dict[str, Any], says: str) -> None:
    answer, clicker = run(("segment_at", args))
    step = answer.trace[0]
    assert not step.ok and step.summary.startswith("Error:") and says in step.summary
    assert answer.status == "answered" and not clicker.calls


def test_without_a_click_engine_the_tool_says_it_is_unavailable() -> None:
    answer, _ = run(("segment_at", {"points": [[45, 50]]}), clicker=None)
    step = answer.trace[0]
    assert not step.ok and "segment_at is unavailable here (no click engine" in step.summary
    assert answer.status == "answered"


def test_a_checkpoint_without_the_tracker_is_a_tool_error_not_a_crash() -> None:
    class NoTracker:
        def segment_at(self, *args: Any, **kwargs: Any) -> Instance:
            raise CheckpointError("SAM 3 checkpoint 'x' is of model type 'sam3': clicks need the tracker\nhow to")

    answer, _ = run(("segment_at", {"points": [[45, 50]]}), clicker=NoTracker())
    step = answer.trace[0]
    assert not step.ok and "is of model type 'sam3'" in step.summary and "how to" not in step.summary


def test_a_click_on_the_background_adds_nothing() -> None:
    answer, _ = run(("segment_at", {"points": [[5, 5]]}))
    step = answer.trace[0]
    assert step.ok and "empty mask" in step.summary and not answer.all_instances
