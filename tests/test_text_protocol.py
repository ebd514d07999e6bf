"""The text tool-call protocol: rendering, parsing, history rewriting, and the client's text / auto modes
over real HTTP against ReplayServer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from PIL import Image

from sam3_agent.agent.llm_settings import LLMSettings
from sam3_agent.agent.messages import (
    AssistantMessage,
    ImagePart,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    ToolSpec,
    UserMessage,
)
from sam3_agent.agent.openai_client import LLMRequestError, OpenAIChatModel
from sam3_agent.agent.text_protocol import (
    INVALID_TOOL,
    parse_tool_calls,
    render_tool_instructions,
    serialize_tool_call,
    to_text_protocol,
)
from sam3_agent.testing.replay_server import ReplayError, ReplayServer
from sam3_agent.testing.turns import text_turn

SEGMENT = ToolSpec(
    name="segment_phrase",
    description="Find every instance of a short noun phrase.",
    parameters={"type": "object", "properties": {"phrase": {"type": "string"}}, "required": ["phrase"]},
)
SELECT = ToolSpec(
    name="select_masks",
    description="Return the chosen masks.",
    parameters={"type": "object", "properties": {"ids": {"type": "array", "items": {"type": "integer"}}}},
)
TOOLS = [SEGMENT, SELECT]
HISTORY = [SystemMessage(content="You segment things."), UserMessage.of("How many cats?")]


def make_model(server: ReplayServer, **kw: Any) -> OpenAIChatModel:
    settings = LLMSettings(
        model="replay-model", base_url=server.base_url, retry_min_wait=0.001, retry_max_wait=0.005, **kw
    )
    return OpenAIChatModel(settings)


# --- rendering and parsing ---------------------------------------------------------------------------------


def test_render_tool_instructions_lists_every_tool() -> None:
    text = render_tool_instructions(TOOLS)
    assert "{tools}" not in text and "<tool>" in text
    for tool in TOOLS:
        assert f"## {tool.name}\n{tool.description}" in text
        assert json.dumps(tool.parameters, sort_keys=True) in text


@pytest.mark.parametrize(
    ("reply", "prose", "calls"),
    [
        (
            'I will look. <tool>{"name": "segment_phrase", "arguments": {"phrase": "cat"}}</tool>',
            "I will look.",
            [("segment_phrase", {"phrase": "cat"})],
        ),
        (
            '<tool>{"name": "segment_phrase", "arguments": {"phrase": "cat"}}',
            None,
            [("segment_phrase", {"phrase": "cat"})],
        ),
        (
            "<tool>{'name': 'select_masks', 'arguments': {'ids': [1, 2,],},}</tool>",
            None,
            [("select_masks", {"ids": [1, 2]})],
        ),
        (
            '```json\n<tool>{"name": "segment_phrase", "arguments": {"phrase": "dog"}}</tool>\n```',
            None,
            [("segment_phrase", {"phrase": "dog"})],
        ),
        (
            '<tool>\n```json\n{"name": "select_masks", "arguments": {"ids": []}}\n```\n</tool>',
            None,
            [("select_masks", {"ids": []})],
        ),
        (
            '<tool_call>{"name": "select_masks", "arguments": {"ids": [3]}}</tool_call>',
            None,
            [("select_masks", {"ids": [3]})],
        ),
        ('<tool>{"name": "select_masks"}</tool>', None, [("select_masks", {})]),
        (
            '<tool>{"name": "segment_phrase", "arguments": "{\\"phrase\\": \\"cup\\"}"}</tool>',
            None,
            [("segment_phrase", {"phrase": "cup"})],
        ),
        (
            'A <TOOL>{"name": "segment_phrase", "arguments": {"phrase": "a"}}</TOOL> B '
            '<tool>{"name": "segment_phrase", "arguments": {"phrase": "b"}}',
            "A  B",
            [("segment_phrase", {"phrase": "a"}), ("segment_phrase", {"phrase": "b"})],
        ),
        ('{"name": "select_masks", "arguments": {"ids": [7]}}', None, [("select_masks", {"ids": [7]})]),
        ("There are 3 cats.", "There are 3 cats.", []),
        ('The answer is {"count": 3}.', 'The answer is {"count": 3}.', []),
        ("   ", None, []),
    ],
)
def test_parse_tool_calls(reply: str, prose: str | None, calls: list[tuple[str, dict[str, Any]]]) -> None:
    got_prose, got = parse_tool_calls(reply)
    assert got_prose == prose
    assert [(c.name, json.loads(c.arguments)) for c in got] == calls
    assert len({c.id for c in got}) == len(got)


@pytest.mark.parametrize(
    "body",
    ["I am not sure what to call", "segment_phrase(phrase=cat)", '{"arguments": {"phrase": "cat"}}', "", "[1, 2]"],
)
def test_unreadable_block_becomes_invalid_call(body: str) -> None:
    prose, calls = parse_tool_calls(f"Hmm. <tool>{body}</tool>")
    assert prose == "Hmm."
    assert [(c.name, c.arguments) for c in calls] == [(INVALID_TOOL, body)]


def test_serialize_round_trips_and_keeps_malformed_verbatim() -> None:
    good = ToolCall(id="c1", name="segment_phrase", arguments='{"phrase": "red apple"}')
    _, [back] = parse_tool_calls(serialize_tool_call(good))
    assert (back.name, json.loads(back.arguments)) == ("segment_phrase", {"phrase": "red apple"})
    bad = ToolCall(id="c2", name="segment_phrase", arguments='{"phrase": ')
    assert serialize_tool_call(bad) == '<tool>{"name": "segment_phrase", "arguments": {"phrase": }</tool>'
    invalid = ToolCall(id="c3", name=INVALID_TOOL, arguments="gibberish")
    assert serialize_tool_call(invalid) == "<tool>gibberish</tool>"


def test_to_text_protocol_rewrites_history() -> None:
    image = ImagePart.from_pil(Image.new("RGB", (4, 4)), caption="overlay")
    call = ToolCall(id="c1", name="segment_phrase", arguments='{"phrase": "cat"}')
    history = [
        *HISTORY,
        AssistantMessage(content="Let me look.", tool_calls=(call,)),
        ToolMessage(tool_call_id="c1", name="segment_phrase", content="2 masks: [1, 2]"),
        UserMessage(content=(image,)),
    ]
    out = to_text_protocol(history, TOOLS)
    assert [m.role for m in out] == ["system", "user", "assistant", "user"]
    assert out[0].content.startswith("You segment things.\n\n") and "## select_masks" in out[0].content
    assert out[2] == AssistantMessage(
        content='Let me look.\n<tool>{"name": "segment_phrase", "arguments": {"phrase": "cat"}}</tool>'
    )
    assert out[3] == UserMessage(content=(TextPart(text="Tool result for segment_phrase: 2 masks: [1, 2]"), image))


def test_to_text_protocol_adds_system_message_when_missing() -> None:
    out = to_text_protocol([UserMessage.of("hi")], [SEGMENT])
    assert isinstance(out[0], SystemMessage) and "## segment_phrase" in out[0].content
    assert to_text_protocol([UserMessage.of("hi")], []) == [UserMessage.of("hi")]


# --- the client in text and auto modes, over HTTP ----------------------------------------------------------


def test_text_mode_over_http() -> None:
    script = [
        text_turn("I will segment.\n<tool>{'name': 'segment_phrase', 'arguments': {'phrase': 'cat',},}"),
        text_turn("<tool>no idea</tool>"),
        AssistantMessage(content=None),
    ]
    with ReplayServer(script, native_tools=False) as srv, make_model(srv, tool_mode="text") as model:
        first = model.chat(HISTORY, TOOLS)
        assert first.content == "I will segment."
        [call] = first.tool_calls
        assert (call.name, json.loads(call.arguments)) == ("segment_phrase", {"phrase": "cat"})
        result = ToolMessage(tool_call_id=call.id, name=call.name, content="found 2")
        second = model.chat([*HISTORY, first, result], TOOLS)
        assert [(c.name, c.arguments) for c in second.tool_calls] == [(INVALID_TOOL, "no idea")]
        assert model.chat(HISTORY, TOOLS) == AssistantMessage(content=None)
        srv.assert_complete()
    for body in srv.requests:
        assert "tools" not in body and "tool_choice" not in body
        assert body["messages"][0]["role"] == "system" and "## segment_phrase" in body["messages"][0]["content"]
    sent = srv.requests[1]["messages"]
    assert sent[2] == {
        "role": "assistant",
        "content": 'I will segment.\n<tool>{"name": "segment_phrase", "arguments": {"phrase": "cat"}}</tool>',
    }
    assert sent[3] == {"role": "user", "content": "Tool result for segment_phrase: found 2"}
    assert all(m["role"] != "tool" for m in sent)


def test_auto_mode_falls_back_after_400_and_stays_in_text_mode() -> None:
    script = [
        text_turn('<tool>{"name": "segment_phrase", "arguments": {"phrase": "cat"}}</tool>'),
        text_turn("2 cats"),
    ]
    with ReplayServer(script, native_tools=False) as srv, make_model(srv, max_retries=3) as model:
        assert not model.uses_text_protocol
        first = model.chat(HISTORY, TOOLS)
        assert [c.name for c in first.tool_calls] == ["segment_phrase"]
        assert model.uses_text_protocol
        assert len(srv.requests) == 2  # the rejected native attempt, then the text one; no retries
        assert "tools" in srv.requests[0] and "tools" not in srv.requests[1]
        assert model.chat(HISTORY, TOOLS).content == "2 cats"
        srv.assert_complete()
    assert len(srv.requests) == 3 and "tools" not in srv.requests[2]
    assert "<tool>" in srv.requests[2]["messages"][0]["content"]


def test_auto_mode_falls_back_on_server_error_saying_tools_unsupported() -> None:
    refusal = ReplayError(500, {"error": {"message": "tools param requires --jinja flag"}})
    with ReplayServer([refusal, text_turn("plain answer")]) as srv, make_model(srv, max_retries=3) as model:
        assert model.chat(HISTORY, TOOLS).content == "plain answer"
        assert model.uses_text_protocol
    assert len(srv.requests) == 2


def test_native_mode_never_falls_back() -> None:
    with ReplayServer([text_turn("unused")], native_tools=False) as srv, make_model(srv, tool_mode="native") as model:
        with pytest.raises(LLMRequestError, match=r"HTTP 400.*tools are not supported") as info:
            model.chat(HISTORY, TOOLS)
        assert not model.uses_text_protocol
    assert info.value.status == 400 and len(srv.requests) == 1


def test_auto_mode_does_not_fall_back_on_unrelated_400() -> None:
    refusal = ReplayError(400, {"error": {"message": "context length exceeded"}})
    with ReplayServer([refusal, text_turn("unused")]) as srv, make_model(srv) as model:
        with pytest.raises(LLMRequestError, match="context length exceeded"):
            model.chat(HISTORY, TOOLS)
        assert not model.uses_text_protocol
    assert len(srv.requests) == 1
