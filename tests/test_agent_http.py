"""The same agent scenarios as test_agent.py, through OpenAIChatModel over real loopback HTTP (ReplayServer).

This exercises the wire format end to end: native tool calls with raw (even malformed) arguments, tool
results, images as ``image_url`` parts, pruning as the endpoint actually sees it, and the text tool
protocol that ``tool_mode="auto"`` falls back to when an endpoint rejects ``tools``.
"""

from __future__ import annotations

from typing import Any

import pytest
from agent_scenarios import DESK, RELATION, SCENARIOS, TOOL_NAMES, Scenario, check

from sam3_agent.agent.llm_settings import LLMSettings, ToolMode
from sam3_agent.agent.loop import NUDGE, Sam3Agent
from sam3_agent.agent.messages import AssistantMessage
from sam3_agent.agent.openai_client import OpenAIChatModel
from sam3_agent.agent.text_protocol import INVALID_TOOL, serialize_tool_call
from sam3_agent.testing.replay_server import ReplayServer
from sam3_agent.testing.scene import SceneSegmenter
from sam3_agent.testing.turns import text_turn, tool_call_turn


def client(server: ReplayServer, tool_mode: ToolMode = "native") -> OpenAIChatModel:
    return OpenAIChatModel(
        LLMSettings(model="replay-model", base_url=server.base_url, tool_mode=tool_mode, max_retries=0)
    )


def parts(body: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """Content parts of type ``kind`` in the user messages of one request body."""
    return [
        part
        for msg in body["messages"]
        if msg["role"] == "user" and isinstance(msg["content"], list)
        for part in msg["content"]
        if part["type"] == kind
    ]


def all_text(body: dict[str, Any]) -> str:
    """Every piece of text in a request body's messages, joined."""
    pieces: list[str] = []
    for msg in body["messages"]:
        content = msg.get("content")
        if isinstance(content, str):
            pieces.append(content)
        elif isinstance(content, list):
            pieces += [p["text"] for p in content if p["type"] == "text"]
    return "\n".join(pieces)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario_over_http(scenario: Scenario) -> None:
    segmenter = scenario.segmenter()
    with ReplayServer(scenario.turns) as server, client(server) as llm:
        agent = Sam3Agent(segmenter, llm, max_turns=scenario.max_turns, max_images_in_context=scenario.max_images)
        answer = agent.run(scenario.scene.image(), scenario.query)
        server.assert_complete()
    check(scenario, answer, segmenter)
    assert len(server.requests) == len(scenario.turns)
    per_request = [len(parts(body, "image_url")) for body in server.requests]
    assert max(per_request) <= scenario.max_images
    if scenario.images_per_request is not None:
        assert tuple(per_request) == scenario.images_per_request
    last = all_text(server.requests[-1])  # image-free user messages go as plain strings
    for placeholder in scenario.removed_in_last_request:
        assert placeholder in last
    for body in server.requests:
        assert body["messages"][0]["role"] == "system"
        assert body["messages"][1] == server.requests[0]["messages"][1]
        assert len(body["tools"]) == len(TOOL_NAMES) and body["tools"][0]["function"]["name"] == "segment_phrases"
        assert all(part["image_url"]["url"].startswith("data:image/png;base64,") for part in parts(body, "image_url"))


def test_tool_results_travel_as_tool_messages_with_the_call_ids() -> None:
    with ReplayServer(RELATION.turns) as server, client(server) as llm:
        Sam3Agent(SceneSegmenter(DESK), llm).run(DESK.image(), RELATION.query)
    second = server.requests[1]["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "tool", "user"]
    call = second[2]["tool_calls"][0]
    assert call["function"] == {"name": "segment_phrases", "arguments": '{"phrases": ["cup", "laptop"]}'}
    assert second[3]["tool_call_id"] == call["id"]
    assert second[3]["content"].startswith("'cup': 2 mask(s)\n  #1 cup: score 0.95")
    assert [p["type"] for p in second[4]["content"]] == ["text", "image_url"]
    assert second[4]["content"][0]["text"] == "overlay of ids 1, 2, 3"


def as_text(turn: AssistantMessage) -> AssistantMessage:
    """The same turn as a model without native tools writes it: prose plus ``<tool>`` blocks."""
    blocks = [serialize_tool_call(call) for call in turn.tool_calls]
    return text_turn("\n".join([turn.content, *blocks] if turn.content else blocks))


def test_text_protocol_fallback_completes_a_run() -> None:
    segmenter = RELATION.segmenter()
    turns = [as_text(turn) for turn in RELATION.turns]
    with ReplayServer(turns, native_tools=False) as server, client(server, tool_mode="auto") as llm:
        answer = Sam3Agent(segmenter, llm).run(DESK.image(), RELATION.query)
        server.assert_complete()
        assert llm.uses_text_protocol
    check(RELATION, answer, segmenter)
    rejected, *answered = server.requests
    assert rejected["tools"]  # the first request offered native tools and was refused (400)
    assert len(answered) == len(turns)
    for body in answered:
        assert "tools" not in body
        assert {m["role"] for m in body["messages"]} <= {"system", "user", "assistant"}
        assert "<tool>" in body["messages"][0]["content"] and "## spatial_filter" in body["messages"][0]["content"]
    assert "Tool result for segment_phrases: 'cup': 2 mask(s)" in all_text(answered[1])
    assert [len(parts(body, "image_url")) for body in answered] == list(RELATION.images_per_request or ())


def test_text_protocol_mistakes_are_answered_and_the_run_finishes() -> None:
    turns = [
        text_turn("Let me think about which cup it is."),  # no block: nudged
        text_turn("<tool>segment the cups please</tool>"),  # unreadable block
        text_turn('<tool>{"name": "segment_phrases", "arguments": {"phrases": ["cup", "laptop"],}}</tool>'),
        text_turn("<tool>" + '{"name": "final_answer", "arguments": {"ids": [2], "text": "#2"}}' + "</tool>"),
    ]
    segmenter = SceneSegmenter(DESK)
    with ReplayServer(turns, native_tools=False) as server, client(server, tool_mode="text") as llm:
        answer = Sam3Agent(segmenter, llm).run(DESK.image(), RELATION.query)
        server.assert_complete()
    assert (answer.status, answer.selected_ids) == ("answered", [2])
    assert [(s.tool, s.ok) for s in answer.trace] == [
        (INVALID_TOOL, False),
        ("segment_phrases", True),
        ("final_answer", True),
    ]
    assert NUDGE in all_text(server.requests[1])
    assert "Tool result for __invalid__: Error: your reply could not be read as a tool call" in all_text(
        server.requests[2]
    )
    assert segmenter.calls == 1


def test_native_malformed_arguments_arrive_raw_and_are_repaired_by_the_agent() -> None:
    turns = [
        tool_call_turn("segment_phrases", "{'phrases': ['laptop'],}"),
        tool_call_turn("final_answer", {"ids": [1], "text": "the laptop"}),
    ]
    with ReplayServer(turns) as server, client(server) as llm:
        answer = Sam3Agent(SceneSegmenter(DESK), llm).run(DESK.image(), "the laptop")
    sent_back = server.requests[1]["messages"][2]["tool_calls"][0]["function"]["arguments"]
    assert sent_back == "{'phrases': ['laptop'],}"  # history keeps what the model sent
    assert answer.trace[0].ok and answer.trace[0].arguments == {"phrases": ["laptop"]}
    assert answer.selected_ids == [1]
