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


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize(("name", "args"), INVALID_ARGS)
def test_schemas_reject_bad_arguments(name: str, args: dict[str, Any], strict: bool) -> None:
    schema = next(t["parameters"] for t in responses_tools(strict=strict) if t["name"] == name)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(args, schema)


def test_sam3_ask_is_offered_only_by_a_service_that_can_answer_it(executor: ToolExecutor) -> None:
    class CannotAsk(Sam3Service):
        can_ask = False  # type: ignore[assignment]

    assert executor.service.can_ask and executor.service.uses_planner, "no LLM: the built-in planner answers"
    assert [t["name"] for t in responses_tools(service=executor.service)][-1] == "sam3_ask"
    mute = CannotAsk(SceneSegmenter(SCENE))
    for tools in (responses_tools(service=mute), responses_tools(service=mute, strict=True)):
        assert [t["name"] for t in tools] == ["sam3_segment", "sam3_count"]
    assert [t["function"]["name"] for t in chat_completions_tools(service=mute)] == ["sam3_segment", "sam3_count"]


# --- strict mode: OpenAI's documented rules for strict schemas ------------------------------------------------------

# The keywords the structured outputs guide lists as supported, per type; anything else is refused here.
STRICT_COMMON = {"type", "description", "enum", "const", "anyOf", "$ref", "$defs"}
STRICT_BY_TYPE = {
    "object": {"properties", "required", "additionalProperties"},
    "array": {"items", "minItems", "maxItems"},
    "string": {"pattern", "format"},
    "number": {"multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"},
    "integer": {"multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"},
    "boolean": set(),
    "null": set(),
}


def strict_violations(node: Any, where: str = "$", depth: int = 0) -> list[str]:
    """Every way ``node`` breaks the strict-mode rules: the root an object (not anyOf); each object with
    ``additionalProperties: false`` and every property in ``required``; only supported keywords (no ``default``);
    known types; at most 10 levels of nesting."""
    if not isinstance(node, dict):
        return [f"{where}: not a schema object"]
    problems = []
    if depth == 0 and (node.get("type") != "object" or "anyOf" in node):
        problems.append(f"{where}: the root must be an object, not anyOf")
    kinds = node.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    problems += [f"{where}: unknown type {k!r}" for k in kinds if k not in STRICT_BY_TYPE]
    if not kinds and not {"anyOf", "$ref", "enum", "const"} & set(node):
        problems.append(f"{where}: no type")
    allowed = STRICT_COMMON.union(*(STRICT_BY_TYPE.get(k, set()) for k in kinds))
    problems += [f"{where}: keyword {key!r} is not supported in strict mode" for key in node if key not in allowed]
    if "object" in kinds or "properties" in node:
        if node.get("additionalProperties") is not False:
            problems.append(f"{where}: additionalProperties must be false")
        if sorted(node.get("required", [])) != sorted(node.get("properties", {})):
            problems.append(f"{where}: every property must be required")
    if depth > 10:
        problems.append(f"{where}: nested deeper than 10 levels")
    children = [(f"{where}.{name}", prop) for name, prop in node.get("properties", {}).items()]
    children += [(f"{where}[{i}]", branch) for i, branch in enumerate(node.get("anyOf", []))]
    children += [(f"{where}.$defs.{name}", d) for name, d in node.get("$defs", {}).items()]
    if "items" in node:
        children.append((f"{where}[]", node["items"]))
    for child_where, child in children:
        problems += strict_violations(child, child_where, depth + 1)
    return problems


def test_the_strict_validator_catches_each_rule() -> None:
    """The validator itself, on the non-strict schemas (which break the rules) and on small broken schemas."""
    loose = next(t["parameters"] for t in responses_tools() if t["name"] == "sam3_segment")
    found = " | ".join(strict_violations(loose))
    for problem in ("$: every property must be required", "'default' is not supported", "'minLength' is not"):
        assert problem in found
    broken = {"type": "object", "properties": {"a": {"type": "object", "properties": {}}}, "required": ["a"]}
    assert strict_violations(broken) == [
        "$: additionalProperties must be false",
        "$.a: additionalProperties must be false",
    ]
    assert strict_violations({"anyOf": [{"type": "object"}]})[0] == "$: the root must be an object, not anyOf"


def test_strict_schemas_follow_the_documented_rules_in_both_formats() -> None:
    chat, responses = chat_completions_tools(strict=True), responses_tools(strict=True)
    assert [t["function"]["name"] for t in chat] == [t["name"] for t in responses] == [*VALID_ARGS]
    for wrapped, flat in zip(chat, responses, strict=True):
        function = wrapped["function"]
        assert set(wrapped) == {"type", "function"} and wrapped["type"] == flat["type"] == "function"
        assert set(function) == {"name", "description", "parameters", "strict"} and function["strict"] is True
        assert set(flat) == {"type", "name", "description", "parameters", "strict"} and flat["strict"] is True
        assert function["parameters"] == flat["parameters"]
        schema = flat["parameters"]
        assert strict_violations(schema) == [], flat["name"]
        jsonschema.Draft202012Validator.check_schema(schema)
        assert json.loads(json.dumps(flat)) == flat


@pytest.mark.parametrize("name", [*VALID_ARGS])
def test_strict_arguments_with_nulls_mean_the_defaults(executor: ToolExecutor, name: str) -> None:
    """What a strict-mode model sends: every argument, null where it has none; the executor takes null as the
    default, so the result is the one without those arguments."""
    schema = next(t["parameters"] for t in responses_tools(strict=True) if t["name"] == name)
    given = VALID_ARGS[name]
    full = {key: given.get(key) for key in schema["properties"]}
    jsonschema.validate(full, schema)
    assert any(value is None for value in full.values()) or name == "sam3_ask"
    with_nulls, without = executor.run(name, json.dumps(full)).result, executor.run(name, given).result
    assert with_nulls.model_dump(exclude={"trace"}) == without.model_dump(exclude={"trace"})  # a trace has timings
    call = {"id": "n", "type": "function", "function": {"name": name, "arguments": json.dumps(full)}}
    assert not executor.execute(call)["content"].startswith("Error")


def descriptions(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["description"]] if isinstance(node.get("description"), str) else []
        return own + [text for key, value in node.items() if key != "description" for text in descriptions(value)]
    if isinstance(node, list):
        return [text for value in node for text in descriptions(value)]
    return []


@pytest.mark.parametrize("strict", [False, True])
def test_descriptions_are_clean_prose(executor: ToolExecutor, strict: bool) -> None:
    """No docstring leaks into what the model reads: no RST double backticks, no hard line wraps."""
    tools = responses_tools(service=executor.service, strict=strict) + responses_tools(strict=strict)
    texts = descriptions(tools)
    assert len(texts) > 20 and all(t["parameters"].get("description") is None for t in tools)
    for text in texts:
        assert "``" not in text and "\n" not in text and text == text.strip() and "  " not in text, text


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
