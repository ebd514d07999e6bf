"""The agent scenarios of test_agent.py, run both in-process and through the segmentation server.

The server variant wraps the very same recording segmenter in the server app (uvicorn on loopback, with a
token) and gives the agent a ``RemoteSegmenter``: the answers, traces and the calls the segmenter received
must be identical, so the agent works unchanged over HTTP. The integrations' service (its ``ask`` answered by the
built-in planner) is checked likewise.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from agent_scenarios import ORCHARD, SCENARIOS, RecordingSegmenter, Scenario, check

from sam3_agent.agent.loop import Sam3Agent
from sam3_agent.agent.messages import ImagePart, UserMessage
from sam3_agent.engine.protocol import Segmenter
from sam3_agent.integrations.service import Sam3Service
from sam3_agent.server.api import create_app
from sam3_agent.server.client import RemoteSegmenter
from sam3_agent.server.runner import BackgroundServer
from sam3_agent.server.settings import ServerSettings
from sam3_agent.testing.scene import SceneSegmenter
from sam3_agent.testing.scripted import ScriptedChatModel

TOKEN = "agent-suite-token"
TRANSPORTS = ("in_process", "server")


@contextlib.contextmanager
def segmenter_over(transport: str, segmenter: Segmenter) -> Iterator[Segmenter]:
    """``segmenter`` itself, or a RemoteSegmenter talking to a server app that wraps it."""
    if transport == "in_process":
        yield segmenter
        return
    app = create_app(segmenter, ServerSettings(token=TOKEN, max_wait_ms=1))
    with BackgroundServer(app) as server, RemoteSegmenter(server.base_url, token=TOKEN) as remote:
        yield remote


def images_per_request(llm: ScriptedChatModel) -> tuple[int, ...]:
    return tuple(
        sum(isinstance(p, ImagePart) for m in r.messages if isinstance(m, UserMessage) for p in m.content)
        for r in llm.requests
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario(scenario: Scenario, transport: str) -> None:
    recording: RecordingSegmenter = scenario.segmenter()
    llm = ScriptedChatModel(scenario.turns)
    with segmenter_over(transport, recording) as segmenter:
        agent = Sam3Agent(segmenter, llm, max_turns=scenario.max_turns, max_images_in_context=scenario.max_images)
        answer = agent.run(scenario.scene.image(), scenario.query)
        if transport == "server":
            assert isinstance(segmenter, RemoteSegmenter)
            assert segmenter.registrations == (1 if scenario.segment_calls else 0)  # the image went over once
    check(scenario, answer, recording)
    llm.assert_complete()
    if scenario.images_per_request is not None:
        assert images_per_request(llm) == scenario.images_per_request


def test_both_transports_give_identical_answers() -> None:
    answers = []
    for transport in TRANSPORTS:
        scenario = next(s for s in SCENARIOS if s.name == "exemplar_refinement")
        with segmenter_over(transport, scenario.segmenter()) as segmenter:
            agent = Sam3Agent(segmenter, ScriptedChatModel(scenario.turns))
            answers.append(agent.run(scenario.scene.image(), scenario.query))
    in_process, served = answers
    # compared as dicts: Instance == Instance breaks once the lazily decoded mask is cached on both
    assert [i.model_dump() for i in served.all_instances] == [i.model_dump() for i in in_process.all_instances]
    assert served.selected_ids == in_process.selected_ids == [3, 4]
    assert [(s.tool, s.summary) for s in served.trace] == [(s.tool, s.summary) for s in in_process.trace]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_integrations_service_works_unchanged(transport: str) -> None:
    with segmenter_over(transport, SceneSegmenter(ORCHARD, duplicates={"apple": 1})) as segmenter:
        service = Sam3Service(segmenter)
        counted = service.count(ORCHARD.image(), "apples").result
        segmented = service.segment(ORCHARD.image(), ["leaf", "apple"]).result
        asked = service.ask(ORCHARD.image(), "how many apples are there?").result  # no llm: the built-in planner
    assert (counted.count, counted.detected) == (4, 8)
    assert [(p.phrase, p.count) for p in segmented.phrases] == [("leaf", 1), ("apple", 8)]
    assert (asked.status, asked.count) == ("answered", 4)
