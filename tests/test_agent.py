"""The agent loop in-process: ScriptedChatModel + SceneSegmenter (no HTTP; see test_agent_http.py for that)."""

from __future__ import annotations

import base64
import io
import re
from typing import Any

import numpy as np
import pytest
from agent_scenarios import (
    COUNTING,
    DESK,
    EXEMPLARS,
    ORCHARD,
    RELATION,
    SCENARIOS,
    TOOL_NAMES,
    RecordingSegmenter,
    Scenario,
    check,
)
from PIL import Image

from sam3_agent.agent.loop import MAX_MODEL_IMAGE_SIDE, NUDGE, Sam3Agent, asks_for_count
from sam3_agent.agent.messages import (
    AssistantMessage,
    ImagePart,
    Message,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from sam3_agent.agent.system_prompt import load_prompt
from sam3_agent.agent.tools import ToolError, parse_arguments
from sam3_agent.errors import ConfigError, ImageError, LLMError, PromptError
from sam3_agent.geometry import RELATIONS
from sam3_agent.masks import rle_encode
from sam3_agent.schema import Answer, Instance, Thresholds, TraceStep
from sam3_agent.testing.scene import SceneSegmenter
from sam3_agent.testing.scripted import ScriptedChatModel, failing_turn
from sam3_agent.testing.turns import text_turn, tool_call_turn


def images(messages: list[Message]) -> list[ImagePart]:
    return [p for m in messages if isinstance(m, UserMessage) for p in m.content if isinstance(p, ImagePart)]


def user_texts(messages: list[Message]) -> list[str]:
    return [p.text for m in messages if isinstance(m, UserMessage) for p in m.content if isinstance(p, TextPart)]


def run(
    scenario: Scenario, llm: ScriptedChatModel | None = None, **kw: Any
) -> tuple[Answer, ScriptedChatModel, RecordingSegmenter]:
    llm = llm or ScriptedChatModel(scenario.turns)
    segmenter = scenario.segmenter()
    agent = Sam3Agent(segmenter, llm, max_turns=scenario.max_turns, max_images_in_context=scenario.max_images, **kw)
    return agent.run(scenario.scene.image(), scenario.query), llm, segmenter


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario(scenario: Scenario) -> None:
    answer, llm, segmenter = run(scenario)
    check(scenario, answer, segmenter)
    llm.assert_complete()
    assert len(llm.requests) == len(scenario.turns)
    per_request = [len(images(r.messages)) for r in llm.requests]
    assert max(per_request) <= scenario.max_images
    if scenario.images_per_request is not None:
        assert tuple(per_request) == scenario.images_per_request
    last = user_texts(llm.requests[-1].messages)
    for placeholder in scenario.removed_in_last_request:
        assert placeholder in last
    for request in llm.requests:
        assert [t.name for t in request.tools] == TOOL_NAMES
        assert isinstance(request.messages[0], SystemMessage)
        assert request.messages[1] == llm.requests[0].messages[1]  # the query + original image, never pruned


def test_first_request_is_system_prompt_then_query_with_image() -> None:
    _, llm, _ = run(RELATION)
    system, first = llm.requests[0].messages
    assert isinstance(system, SystemMessage) and system.content == load_prompt("agent_system")
    assert isinstance(first, UserMessage)
    assert first.content[0] == TextPart(
        text="Query: the cup left of the laptop\nThe image is 240x160 pixels; every box and coordinate is "
        "[x0, y0, x1, y1] in these pixels."
    )
    (original,) = images([first])
    assert decode(original).size == (240, 160)


def decode(part: ImagePart) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(part.data_url.split(",", 1)[1])))


def test_tool_results_then_images_in_a_user_message() -> None:
    _, llm, _ = run(RELATION)
    second = llm.requests[1].messages
    assert [m.role for m in second] == ["system", "user", "assistant", "tool", "user"]
    call = second[2].tool_calls[0]
    tool_msg = second[3]
    assert isinstance(tool_msg, ToolMessage) and tool_msg.tool_call_id == call.id
    assert tool_msg.name == "segment_phrases"
    assert tool_msg.content.splitlines()[:3] == [
        "'cup': 2 mask(s)",
        "  #1 cup: score 0.95, area 940 px (2.4% of image), box [170, 90, 200, 130]",
        "  #2 cup: score 0.90, area 940 px (2.4% of image), box [20, 90, 50, 130]",
    ]
    (overlay,) = second[4].content
    assert isinstance(overlay, ImagePart) and overlay.caption == "overlay of ids 1, 2, 3"
    assert decode(overlay).size == (240, 160)
    # a step without images adds no user message
    third = llm.requests[2].messages
    assert [m.role for m in third[5:]] == ["assistant", "tool"]


def test_on_step_streams_every_step_as_it_happens() -> None:
    seen: list[TraceStep] = []
    llm = ScriptedChatModel(RELATION.turns)
    agent = Sam3Agent(RELATION.segmenter(), llm)
    answer = agent.run(DESK.image(), RELATION.query, on_step=seen.append)
    assert tuple(seen) == answer.trace
    assert seen[0].arguments == {"phrases": ["cup", "laptop"]}
    assert seen[0].instance_ids == (1, 2, 3)
    assert seen[1].arguments == {"subject_ids": [1, 2], "relation": "left_of", "anchor_ids": [3]}


def test_unparsable_arguments_are_kept_raw_in_the_trace() -> None:
    answer, _, _ = run(next(s for s in SCENARIOS if s.name == "malformed_model_output"))
    assert answer.trace[0].arguments == {"phrases": ["laptop"]}  # repaired
    assert answer.trace[1].arguments == {"raw": "the laptop is number one"}
    assert answer.trace[2].arguments == {"raw": '{"ids": [1]}'}


def test_reply_without_tool_call_gets_a_nudge_and_costs_a_turn() -> None:
    llm = ScriptedChatModel([text_turn("It is the left cup."), text_turn("Really, the left one.")])
    answer = Sam3Agent(SceneSegmenter(DESK), llm, max_turns=2).run(DESK.image(), "the left cup")
    assert answer.status == "gave_up" and answer.trace == ()
    last = llm.requests[1].messages
    assert last[2] == AssistantMessage(content="It is the left cup.")
    assert last[3] == UserMessage(content=(TextPart(text=NUDGE),))
    llm.assert_complete()


def test_turns_can_read_the_conversation() -> None:
    """A scripted turn may be a function of the messages: here it reads the kept id from the tool result."""

    def answer_with_filtered_id(messages: list[Message]) -> AssistantMessage:
        result = messages[-1]
        assert isinstance(result, ToolMessage)
        kept = re.search(r"left of #3: #(\d+);", result.content)
        assert kept is not None
        return tool_call_turn("final_answer", {"ids": [int(kept.group(1))], "text": "found it"})

    llm = ScriptedChatModel([*RELATION.turns[:2], answer_with_filtered_id])
    answer = Sam3Agent(SceneSegmenter(DESK), llm).run(DESK.image(), RELATION.query)
    assert answer.selected_ids == [2]
    llm.assert_complete()


def test_several_calls_in_one_reply_run_in_order_and_stop_at_the_final_answer() -> None:
    calls = (
        ToolCall(id="a", name="segment_phrases", arguments='{"phrases": ["cup"]}'),
        ToolCall(id="b", name="segment_phrases", arguments='{"phrases": ["laptop"]}'),
        ToolCall(id="c", name="final_answer", arguments='{"ids": [3], "text": "the laptop"}'),
        ToolCall(id="d", name="no_match", arguments='{"reason": "ignored"}'),
    )
    segmenter = RELATION.segmenter()
    llm = ScriptedChatModel([AssistantMessage(tool_calls=calls)])
    answer = Sam3Agent(segmenter, llm).run(DESK.image(), "the laptop")
    assert [s.tool for s in answer.trace] == ["segment_phrases", "segment_phrases", "final_answer"]
    assert answer.status == "answered" and answer.selected_ids == [3]
    assert segmenter.phrases_per_call == [("cup",), ("laptop",)]


def test_images_of_several_calls_in_one_reply_follow_all_tool_messages() -> None:
    calls = (
        ToolCall(id="a", name="segment_phrases", arguments='{"phrases": ["cup"]}'),
        ToolCall(id="b", name="segment_phrases", arguments='{"phrases": ["laptop"]}'),
    )
    llm = ScriptedChatModel([AssistantMessage(tool_calls=calls), tool_call_turn("no_match", {"reason": "test"})])
    Sam3Agent(SceneSegmenter(DESK), llm, max_images_in_context=5).run(DESK.image(), "the laptop")
    roles = [m.role for m in llm.requests[1].messages]
    assert roles == ["system", "user", "assistant", "tool", "tool", "user"]
    assert [p.caption for p in images(llm.requests[1].messages)[1:]] == ["overlay of ids 1, 2", "overlay of ids 3"]


def test_refinement_reports_which_masks_are_new() -> None:
    answer, _, _ = run(EXEMPLARS)
    refine = answer.trace[2]
    assert "#3 apple: score 0.90" in refine.summary and "(same object as #1)" in refine.summary
    assert "#4 apple: score 0.85" in refine.summary and "(new object)" in refine.summary
    assert refine.instance_ids == (3, 4)
    assert [i.id for i in answer.all_instances] == [1, 2, 3, 4]
    examine = answer.trace[1]
    assert "centroid (35, 55), from segment_phrases" in examine.summary


def test_examine_shows_one_zoom_per_mask() -> None:
    _, llm, _ = run(EXEMPLARS)
    zooms = images(llm.requests[2].messages)[-2:]
    assert [z.caption for z in zooms] == ["zoom of mask #1 (apple)", "zoom of mask #2 (apple)"]
    assert all(min(decode(z).size) >= 64 and max(decode(z).size) <= 512 for z in zooms)


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"phrase": "apple"}, "give at least one exemplar id or box"),
        ({"negative_ids": [1]}, "without a phrase, give at least one positive exemplar"),
        ({"positive_boxes": [[300, 10, 320, 40]]}, "lies outside the 240x120 image"),
        ({"positive_boxes": [[50, 40, 10, 10]]}, "is empty or inverted"),
        ({"positive_boxes": [[1, 2, 3]]}, "positive_boxes.0: List should have at least 4 items"),
        ({"positive_ids": [9]}, "unknown mask id(s) 9; valid ids are: 1, 2"),
        ({"phrase": "apple", "positive_ids": [1], "colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_refine_argument_errors_go_back_to_the_model(arguments: dict, error: str) -> None:
    turns = [
        tool_call_turn("segment_phrases", {"phrases": ["apple"]}),
        tool_call_turn("refine_with_exemplars", arguments),
        tool_call_turn("no_match", {"reason": "gave up"}),
    ]
    answer, _, segmenter = run(EXEMPLARS, ScriptedChatModel(turns))
    step = answer.trace[1]
    assert not step.ok and step.summary.startswith("Error: ") and error in step.summary
    assert len(segmenter.calls) == 1  # the failed refinement never reached the segmenter
    assert answer.status == "no_match"


def test_count_masks_without_deduplication_counts_every_mask() -> None:
    turns = [
        tool_call_turn("segment_phrases", {"phrases": ["apple"]}),
        tool_call_turn("count_masks", {"ids": [1, 2, 3, 4, 5, 6, 7, 8], "deduplicate": False}),
        tool_call_turn("final_answer", {"ids": [], "text": "8 masks", "count": 8}),
    ]
    answer, _, _ = run(COUNTING, ScriptedChatModel(turns))
    assert answer.trace[1].summary == "count: 8 (#1, #2, #3, #4, #5, #6, #7, #8)"
    assert answer.count == 8 and answer.instances == ()


def test_counting_query_answered_no_match_counts_zero() -> None:
    llm = ScriptedChatModel([tool_call_turn("no_match", {"reason": "no zebras"})])
    answer = Sam3Agent(SceneSegmenter(ORCHARD), llm).run(ORCHARD.image(), "How many zebras are there?")
    assert (answer.status, answer.count, answer.text) == ("no_match", 0, "no zebras")


@pytest.mark.parametrize(
    ("query", "counting"),
    [
        ("How many apples?", True),
        ("count the cups", True),
        ("the number of people", True),
        ("the cup left of the laptop", False),
        ("the country flag", False),
    ],
)
def test_asks_for_count(query: str, counting: bool) -> None:
    assert asks_for_count(query) is counting


def test_thresholds_reach_the_segmenter() -> None:
    turns = [
        tool_call_turn("segment_phrases", {"phrases": ["apple"]}),
        tool_call_turn("final_answer", {"ids": [1, 2], "text": "two confident apples"}),
    ]
    llm = ScriptedChatModel(turns)
    answer = Sam3Agent(SceneSegmenter(ORCHARD), llm, thresholds=Thresholds(score=0.87)).run(ORCHARD.image(), "apples")
    assert [i.score for i in answer.all_instances] == [0.9, 0.88]


def test_empty_query_is_a_caller_error_before_any_model_call() -> None:
    llm = ScriptedChatModel([])
    agent = Sam3Agent(SceneSegmenter(DESK), llm)
    for query in ("", "   \n"):
        with pytest.raises(PromptError, match="query must be a non-empty string"):
            agent.run(DESK.image(), query)
    assert llm.requests == []


def test_bad_image_and_settings_are_caller_errors() -> None:
    agent = Sam3Agent(SceneSegmenter(DESK), ScriptedChatModel([]))
    with pytest.raises(ImageError, match=r"expected a PIL\.Image\.Image, got ndarray"):
        agent.run(np.zeros((4, 4, 3)), "cup")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_turns must be >= 1, got 0"):
        Sam3Agent(SceneSegmenter(DESK), ScriptedChatModel([]), max_turns=0)
    with pytest.raises(ConfigError, match="max_images_in_context must be >= 1, got 0"):
        Sam3Agent(SceneSegmenter(DESK), ScriptedChatModel([]), max_images_in_context=0)


def test_llm_errors_reach_the_caller() -> None:
    failing = failing_turn(LLMError("endpoint down after 4 attempts"))
    agent = Sam3Agent(SceneSegmenter(DESK), ScriptedChatModel([RELATION.turns[0], failing]))
    with pytest.raises(LLMError, match="endpoint down"):
        agent.run(DESK.image(), RELATION.query)


def test_non_rgb_image_is_converted_and_large_images_are_shrunk_for_the_model() -> None:
    big = DESK.image().resize((2400, 1600), Image.NEAREST).convert("RGBA")
    llm = ScriptedChatModel([tool_call_turn("no_match", {"reason": "test"})])
    answer = Sam3Agent(SceneSegmenter(DESK), llm).run(big, "cup")
    assert answer.image_size == (1600, 2400)
    (sent,) = images(llm.requests[0].messages)
    assert decode(sent).size == (MAX_MODEL_IMAGE_SIDE, round(MAX_MODEL_IMAGE_SIDE * 2 / 3))
    assert decode(sent).mode == "RGB"


def test_custom_system_prompt_and_tool_schemas() -> None:
    llm = ScriptedChatModel([tool_call_turn("no_match", {"reason": "test"})])
    Sam3Agent(SceneSegmenter(DESK), llm, system_prompt="Be brief.").run(DESK.image(), "cup")
    request = llm.requests[0]
    assert request.messages[0] == SystemMessage(content="Be brief.")
    specs = {t.name: t for t in request.tools}
    phrases = specs["segment_phrases"].parameters["properties"]["phrases"]
    assert (phrases["type"], phrases["minItems"], phrases["maxItems"]) == ("array", 1, 8)
    assert specs["segment_phrases"].parameters["required"] == ["phrases"]
    relation = specs["spatial_filter"].parameters["properties"]["relation"]
    assert relation["enum"] == list(RELATIONS)
    assert {"left_of", "on", "under", "next_to", "inside"} <= set(RELATIONS)
    assert specs["order_masks"].parameters["properties"]["ordering"]["enum"][0] == "leftmost"
    assert all("title" not in str(t.parameters.get("title", "")) for t in request.tools)
    assert all(t.description and "description" in str(t.parameters) for t in request.tools)


def test_system_prompt_names_every_tool() -> None:
    prompt = load_prompt("agent_system")
    assert all(name in prompt for name in TOOL_NAMES)


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ('{"ids": [1, 2]}', {"ids": [1, 2]}),
        ("", {}),
        ('{"ids": [1, 2]', {"ids": [1, 2]}),
        ("{'ids': [1,],}", {"ids": [1]}),
        ('```json\n{"ids": [3]}\n```', {"ids": [3]}),
    ],
)
def test_parse_arguments_repairs_json(raw: str, parsed: dict) -> None:
    assert parse_arguments(raw) == parsed


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("not json at all", "could not be repaired into an object"),
        ("[1, 2]", "must be a JSON object, got list"),
        ('"ids"', "must be a JSON object, got str"),
    ],
)
def test_parse_arguments_rejects_what_is_not_an_object(raw: str, error: str) -> None:
    with pytest.raises(ToolError, match=re.escape(error)):
        parse_arguments(raw)


def test_scripted_model_guards_the_script() -> None:
    llm = ScriptedChatModel([text_turn("one")])
    with pytest.raises(AssertionError, match="1 of 1 scripted turn"):
        llm.assert_complete()
    llm.chat([], [])
    llm.assert_complete()
    with pytest.raises(AssertionError, match="the script has 1 turn"):
        llm.chat([UserMessage.of("more?")], [])
    assert len(llm.requests) == 2


class EmptyMaskSegmenter:
    """Returns one instance whose mask is empty (SAM 3 can keep a query whose mask thresholds to nothing)."""

    def segment(self, image: Image.Image, prompts: Any, thresholds: Any = None) -> list[list[Instance]]:
        rle = rle_encode(np.zeros((image.height, image.width), dtype=bool))
        return [[Instance(id=0, phrase=p.label, score=0.6, box=(0, 0, 0, 0), rle=rle, area=0)] for p in prompts]


def test_examining_an_empty_mask_reports_it_without_an_image() -> None:
    turns = [
        tool_call_turn("segment_phrases", {"phrases": ["ghost"]}),
        tool_call_turn("examine_masks", {"ids": [1]}),
        tool_call_turn("no_match", {"reason": "only an empty mask " + "x" * 300}),
    ]
    llm = ScriptedChatModel(turns)
    answer = Sam3Agent(EmptyMaskSegmenter(), llm).run(DESK.image(), "the ghost")
    assert answer.trace[1].ok and "empty mask, from segment_phrases" in answer.trace[1].summary
    assert len(images(llm.requests[2].messages)) == 2  # the original and the segmentation overlay only
    assert answer.status == "no_match" and len(answer.text) > 300
