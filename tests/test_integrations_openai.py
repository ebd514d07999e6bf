"""OpenAI function calling: the exported schemas are valid JSON Schema in both API formats, and a tool call
goes round trip through ``ToolExecutor`` (dicts, openai SDK objects, and a real ``openai`` client loop against
the loopback replay server); without an LLM the built-in planner answers ``sam3_ask``."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import openai
import pytest
from agent_scenarios import TABLE as SCENE
from openai.types.chat import ChatCompletionMessageFunctionToolCall
from openai.types.responses import ResponseFunctionToolCall
from PIL import Image

from sam3_agent.errors import ImageError
from sam3_agent.integrations.args import ASK_DESCRIPTION, ASK_LLM_DESCRIPTION, ASK_PLANNER_DESCRIPTION
from sam3_agent.integrations.image_refs import ImageResolver
from sam3_agent.integrations.openai_tools import (
    ToolArgumentError,
    ToolExecutor,
    chat_completions_tools,
    responses_tools,
    tool_specs,
)
from sam3_agent.integrations.results import CountResult, SegmentResult
from sam3_agent.integrations.service import Sam3Service
from sam3_agent.testing.replay_server import ReplayServer
from sam3_agent.testing.scene import SceneSegmenter
from sam3_agent.testing.scripted import ScriptedChatModel
from sam3_agent.testing.turns import text_turn, tool_call_turn

VALID_ARGS = {
    "sam3_segment": {"image": "scene.png", "phrases": ["cup"], "positive_boxes": [[1, 2, 30, 40]]},
    "sam3_count": {"image": "scene.png", "phrase": "cup", "score_threshold": 0.3},
    "sam3_ask": {"image": "scene.png", "question": "how many cups?"},
}
INVALID_ARGS = [
    ("sam3_segment", {"phrases": ["cup"]}),  # no image
    ("sam3_segment", {"image": "a.png", "phrases": ["cup"], "positive_boxes": [[1, 2, 3]]}),
    ("sam3_count", {"image": "a.png", "phrase": "cup", "score_threshold": 1.5}),
    ("sam3_ask", {"image": "a.png", "question": "q", "extra": 1}),
]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    SCENE.image().save(tmp_path / "scene.png")
    return tmp_path


@pytest.fixture
def executor(root: Path) -> ToolExecutor:
    return ToolExecutor(Sam3Service(SceneSegmenter(SCENE, duplicates={"cup": 1}), images=ImageResolver(root)))


# --- schemas -------------------------------------------------------------------------------------------------------


def test_schemas_are_valid_json_schema_in_both_formats() -> None:
    chat, responses = chat_completions_tools(), responses_tools()
    assert [t["function"]["name"] for t in chat] == ["sam3_segment", "sam3_count", "sam3_ask"]
    assert [t["name"] for t in responses] == ["sam3_segment", "sam3_count", "sam3_ask"]
    for wrapped, flat in zip(chat, responses, strict=True):
        assert wrapped["type"] == flat["type"] == "function"
        assert set(wrapped) == {"type", "function"} and set(flat) == {"type", "name", "description", "parameters"}
        assert wrapped["function"]["parameters"] == flat["parameters"]
        schema = flat["parameters"]
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object" and schema["additionalProperties"] is False and "image" in schema["required"]
        jsonschema.validate(VALID_ARGS[flat["name"]], schema)
        assert json.loads(json.dumps(flat)) == flat
    assert [s.name for s in tool_specs(include_ask=False)] == ["sam3_segment", "sam3_count"]


def test_the_ask_description_says_who_answers(executor: ToolExecutor) -> None:
    def ask_description(tools: list[dict[str, Any]]) -> str:
        return next(t["description"] for t in tools if t["name"] == "sam3_ask")

    assert ask_description(responses_tools()) == ASK_DESCRIPTION and "built-in planner" in ASK_DESCRIPTION
    assert ask_description(responses_tools(service=executor.service)) == ASK_PLANNER_DESCRIPTION
    with_llm = Sam3Service(SceneSegmenter(SCENE), ScriptedChatModel([]))
    assert ask_description(responses_tools(service=with_llm)) == ASK_LLM_DESCRIPTION
    chat = chat_completions_tools(service=executor.service)
    assert next(t["function"]["description"] for t in chat if t["function"]["name"] == "sam3_ask") == (
        ASK_PLANNER_DESCRIPTION
    )


@pytest.mark.parametrize(("name", "args"), INVALID_ARGS)
def test_schemas_reject_bad_arguments(name: str, args: dict[str, Any]) -> None:
    schema = next(t["parameters"] for t in responses_tools() if t["name"] == name)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(args, schema)


# --- the executor ---------------------------------------------------------------------------------------------------


def test_chat_completions_round_trip(executor: ToolExecutor) -> None:
    call = {
        "id": "call_7",
        "type": "function",
        "function": {"name": "sam3_segment", "arguments": json.dumps({"image": "scene.png", "phrases": ["laptop"]})},
    }
    message = executor.execute(call)
    assert set(message) == {"role", "tool_call_id", "content"}
    assert message["role"] == "tool" and message["tool_call_id"] == "call_7"
    assert "Found 1 instance(s) in the 200x120 image ('laptop': 1)" in message["content"]
    assert "#1 laptop: score 0.80" in message["content"]


def test_responses_round_trip_with_sdk_objects(executor: ToolExecutor) -> None:
    arguments = json.dumps({"image": "scene.png", "phrase": "cup"})
    item = ResponseFunctionToolCall(type="function_call", call_id="fc_1", name="sam3_count", arguments=arguments)
    message = executor.execute(item)
    assert message == {"type": "function_call_output", "call_id": "fc_1", "output": message["output"]}
    assert message["output"].startswith("Count of 'cup': 2 (4 detected, 2 duplicate(s) merged).")
    sdk_call = ChatCompletionMessageFunctionToolCall(
        id="c9", type="function", function={"name": "sam3_count", "arguments": arguments}
    )
    assert executor.execute(sdk_call)["content"] == message["output"]


def test_run_returns_the_full_result(executor: ToolExecutor) -> None:
    outcome = executor.run("sam3_segment", {"image": "scene.png", "phrases": ["cup"], "score_threshold": 0.8})
    result = SegmentResult.model_validate(outcome.result.model_dump(mode="json"))
    assert [np.array_equal(i.mask, SCENE.mask(0)) for i in result.instances] == [True, False]  # cup + its duplicate
    count = executor.run("sam3_count", '{"image": "scene.png", "phrase": "cup"}').result
    assert isinstance(count, CountResult) and count.count == 2


@pytest.mark.parametrize(
    ("name", "arguments", "says"),
    [
        ("sam3_paint", "{}", "no tool named 'sam3_paint'"),
        ("sam3_count", "definitely not json", "not valid JSON"),
        ("sam3_count", '{"image": "scene.png"}', "phrase or at least one positive box"),
        ("sam3_count", '{"image": "../scene.png", "phrase": "cup"}', "outside the allowed folder"),
        ("sam3_count", '{"image": "scene.png\\u0000", "phrase": "cup"}', "NUL character"),
        (
            "sam3_segment",
            '{"image": "scene.png", "phrases": ["cup"], "positive_boxes": [[900, 900, 950, 950]]}',
            "outside",
        ),
    ],
)
def test_model_mistakes_come_back_as_error_messages(
    executor: ToolExecutor, name: str, arguments: str, says: str
) -> None:
    message = executor.execute({"id": "e1", "type": "function", "function": {"name": name, "arguments": arguments}})
    assert message["content"].startswith("Error:") and says in message["content"]


def test_run_raises_caller_errors(executor: ToolExecutor) -> None:
    with pytest.raises(ToolArgumentError, match="invalid arguments for sam3_segment"):
        executor.run("sam3_segment", {"image": "scene.png"})
    with pytest.raises(ImageError):
        executor.run("sam3_segment", {"image": "nope.png", "phrases": ["cup"]})
    with pytest.raises(TypeError, match="not a function tool call"):
        executor.execute({"type": "message", "content": "hi"})


def test_ask_through_the_executor(root: Path) -> None:
    llm = ScriptedChatModel(
        [
            tool_call_turn("segment_phrases", {"phrases": ["cup"]}),
            tool_call_turn("order_masks", {"ids": [1, 2], "ordering": "leftmost", "k": 1}),
            tool_call_turn("final_answer", {"ids": [1], "text": "The left cup."}),
        ]
    )
    executor = ToolExecutor(Sam3Service(SceneSegmenter(SCENE), llm, images=ImageResolver(root)))
    call = {
        "type": "function_call",
        "call_id": "a",
        "name": "sam3_ask",
        "arguments": json.dumps(VALID_ARGS["sam3_ask"]),
    }
    output = executor.execute(call)["output"]
    llm.assert_complete()
    assert output.startswith("Answer (answered): The left cup.") and "Count: 1" in output


def test_ask_without_an_llm_is_answered_by_the_planner(executor: ToolExecutor) -> None:
    outcome = executor.run("sam3_ask", {"image": "scene.png", "question": "how many cups are there?"})
    assert (outcome.result.status, outcome.result.count) == ("answered", 2)
    assert outcome.result.trace[0].tool == "segment_phrases"
    unparsed = json.dumps({"image": "scene.png", "question": "why is the sky blue?"})
    call = {"id": "q", "type": "function", "function": {"name": "sam3_ask", "arguments": unparsed}}
    content = executor.execute(call)["content"]
    assert content.startswith("Answer (gave_up): ") and len(content) > len("Answer (gave_up): ")


def test_a_real_openai_client_loop_asks_the_planner(executor: ToolExecutor) -> None:
    """A foreign model (replayed over HTTP) calls sam3_ask; with no LLM in the service the planner answers it."""
    question = {"image": "scene.png", "question": "how many cups are left of the laptop?"}
    turns = [tool_call_turn("sam3_ask", question, call_id="call_q"), text_turn("One cup is left of the laptop.")]
    tools = chat_completions_tools(service=executor.service)
    with ReplayServer(turns) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        messages: list[Any] = [{"role": "user", "content": "How many cups are left of the laptop in scene.png?"}]
        while True:
            message = client.chat.completions.create(model="m", messages=messages, tools=tools).choices[0].message
            messages.append(message.model_dump(exclude_none=True))
            if not message.tool_calls:
                break
            messages += [executor.execute(call) for call in message.tool_calls]
        server.assert_complete()
    sent = server.requests[0]["tools"]
    assert next(t for t in sent if t["function"]["name"] == "sam3_ask")["function"]["description"] == (
        ASK_PLANNER_DESCRIPTION
    )
    tool_reply = server.requests[1]["messages"][-1]
    assert tool_reply["tool_call_id"] == "call_q"
    assert tool_reply["content"].startswith("Answer (answered): ") and "Count: 1" in tool_reply["content"]


def test_a_real_openai_client_loop(executor: ToolExecutor) -> None:
    """The loop a user writes: the model (replayed over HTTP) calls our tool, the executor answers it."""
    turns = [
        tool_call_turn("sam3_count", {"image": "scene.png", "phrase": "cup"}, call_id="call_a"),
        text_turn("There are 2 cups."),
    ]
    with ReplayServer(turns) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        messages: list[Any] = [{"role": "user", "content": "How many cups in scene.png?"}]
        while True:
            reply = client.chat.completions.create(model="m", messages=messages, tools=chat_completions_tools())
            message = reply.choices[0].message
            messages.append(message.model_dump(exclude_none=True))
            if not message.tool_calls:
                break
            messages += [executor.execute(call) for call in message.tool_calls]
        server.assert_complete()
    assert message.content == "There are 2 cups."
    sent = server.requests[1]
    assert [t["function"]["name"] for t in sent["tools"]] == ["sam3_segment", "sam3_count", "sam3_ask"]
    tool_reply = sent["messages"][-1]
    assert tool_reply["role"] == "tool" and tool_reply["tool_call_id"] == "call_a"
    assert tool_reply["content"].startswith("Count of 'cup': 2")


def test_segment_with_the_real_engine(engine: Any, tmp_path: Path) -> None:
    """The tiny random SAM 3 checkpoint through the executor (score threshold 0 keeps its random masks)."""
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)).save(buf, format="PNG")
    executor = ToolExecutor(Sam3Service(engine, images=ImageResolver(None)))
    image = base64.b64encode(buf.getvalue()).decode()
    outcome = executor.run("sam3_segment", {"image": image, "phrases": ["cup", "hat"], "score_threshold": 0.0})
    result = outcome.result
    assert result.instances and result.image_size == (90, 160)
    assert sum(p.count for p in result.phrases) == len(result.instances)
    assert all(i.mask.shape == (90, 160) and i.mask.sum() == i.area for i in result.instances[:5])
    assert engine.backbone_calls == 1, "both phrases ran on one backbone pass"
