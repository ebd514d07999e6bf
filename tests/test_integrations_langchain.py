"""LangChain: our tools inside a real ``langchain.agents.create_agent`` agent (``sam3_ask`` answered by a scripted
LLM or, with none, by the built-in planner), LangChain's standard tool tests, and LangChain chat models as the
agent's LLM (``LangChainChatModel``). The chat models are LangChain's own
fake models (``GenericFakeChatModel``), given ``bind_tools`` so an agent can bind tools to them."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from agent_scenarios import TABLE as SCENE
from agent_scenarios import TOOL_NAMES
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_fakes import calls, fake
from langchain_tests.integration_tests import ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests
from PIL import Image

from sam3_agent.agent.loop import Sam3Agent
from sam3_agent.errors import ConfigError, LLMError
from sam3_agent.integrations.args import ASK_LLM_DESCRIPTION, ASK_PLANNER_DESCRIPTION
from sam3_agent.integrations.image_refs import ImageResolver
from sam3_agent.integrations.langchain_llm import LangChainChatModel
from sam3_agent.integrations.langchain_tools import Sam3AgentTool, Sam3CountTool, Sam3SegmentTool, sam3_tools
from sam3_agent.integrations.results import AskResult, CountResult, SegmentResult
from sam3_agent.integrations.service import Sam3Service
from sam3_agent.testing.scene import SceneSegmenter
from sam3_agent.testing.scripted import ScriptedChatModel
from sam3_agent.testing.turns import tool_call_turn

pytestmark = pytest.mark.anyio

INTERNAL_TOOLS = set(TOOL_NAMES)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def data_url(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    SCENE.image().save(tmp_path / "scene.png")
    return tmp_path


@pytest.fixture
def service(root: Path) -> Sam3Service:
    return Sam3Service(SceneSegmenter(SCENE), images=ImageResolver(root))


# --- our tools in a LangChain agent ---------------------------------------------------------------------------------


def test_segment_tool_runs_inside_create_agent(service: Sam3Service) -> None:
    model = fake(calls("sam3_segment", {"image": "scene.png", "phrases": ["cup"]}), "There are 2 cups.")
    agent = create_agent(model, sam3_tools(service))
    state = agent.invoke({"messages": [HumanMessage("How many cups are in scene.png?")]})
    assert [t["function"]["name"] for t in model.bound[0]] == ["sam3_segment", "sam3_count", "sam3_ask"]
    (tool_message,) = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert tool_message.name == "sam3_segment" and tool_message.status == "success"
    assert "Found 2 instance(s)" in tool_message.content and "#1 cup" in tool_message.content
    result = SegmentResult.model_validate(tool_message.artifact)
    assert [np.array_equal(i.mask, SCENE.mask(k)) for i, k in zip(result.instances, (0, 2), strict=True)] == [True] * 2
    assert state["messages"][-1].content == "There are 2 cups."
    assert model.seen[1][-1].content == tool_message.content, "the model saw the summary, not the masks"
    assert "counts" not in tool_message.content


async def test_agent_tool_runs_async_inside_create_agent(service: Sam3Service) -> None:
    inner = ScriptedChatModel(
        [
            tool_call_turn("segment_phrases", {"phrases": ["cup", "laptop"]}),
            tool_call_turn("spatial_filter", {"subject_ids": [1, 2], "relation": "left_of", "anchor_ids": [3]}),
            tool_call_turn("final_answer", {"ids": [1], "text": "The red cup at the left.", "count": 1}),
        ]
    )
    service = Sam3Service(service.segmenter, inner, images=service.images)
    question = {"image": "scene.png", "question": "how many cups are left of the laptop?"}
    model = fake(calls("sam3_ask", question), "One cup is left of the laptop.")
    agent = create_agent(model, [Sam3AgentTool(service=service)])
    state = await agent.ainvoke({"messages": [HumanMessage("Cups left of the laptop in scene.png?")]})
    inner.assert_complete()
    (tool_message,) = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    result = AskResult.model_validate(tool_message.artifact)
    assert (result.status, result.count, [i.id for i in result.instances]) == ("answered", 1, [1])
    assert np.array_equal(result.instances[0].mask, SCENE.mask(0))
    assert "The red cup at the left." in tool_message.content and "Count: 1" in tool_message.content


def test_model_fixable_errors_return_to_the_model(service: Sam3Service) -> None:
    model = fake(
        calls("sam3_count", {"image": "../outside.png", "phrase": "cup"}, "c1"),
        calls("sam3_count", {"image": "scene.png"}, "c2"),
        calls("sam3_count", {"image": "scene.png", "phrase": "cup"}, "c3"),
        "2 cups.",
    )
    state = create_agent(model, sam3_tools(service)).invoke({"messages": [HumanMessage("count cups")]})
    first, second, third = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert first.status == "error" and "outside the allowed folder" in first.content
    assert second.status == "error" and "phrase or at least one positive box" in second.content
    assert third.status == "success" and CountResult.model_validate(third.artifact).count == 2


def test_show_overlay_puts_the_overlay_in_the_content(service: Sam3Service) -> None:
    tool = Sam3SegmentTool(service=service, show_overlay=True)
    message = tool.invoke(
        {"type": "tool_call", "id": "x", "name": tool.name, "args": {"image": "scene.png", "phrases": ["cup"]}}
    )
    text, image = message.content
    assert text["type"] == "text" and "Found 2" in text["text"]
    assert image["type"] == "image" and image["mime_type"] == "image/png"
    assert Image.open(io.BytesIO(base64.b64decode(image["base64"]))).size == (200, 120)


def test_agent_tool_without_an_llm_describes_the_planner(service: Sam3Service) -> None:
    assert [t.name for t in sam3_tools(service)] == ["sam3_segment", "sam3_count", "sam3_ask"]

    class CannotAsk(Sam3Service):
        can_ask = False  # type: ignore[assignment]

    assert [t.name for t in sam3_tools(CannotAsk(service.segmenter))] == ["sam3_segment", "sam3_count"]
    assert Sam3AgentTool(service=service).description == ASK_PLANNER_DESCRIPTION
    with_llm = Sam3Service(service.segmenter, ScriptedChatModel([]), images=service.images)
    assert Sam3AgentTool(service=with_llm).description == ASK_LLM_DESCRIPTION
    assert Sam3AgentTool(service=service, description="mine").description == "mine"


async def test_agent_tool_without_an_llm_is_answered_by_the_planner(service: Sam3Service) -> None:
    question = {"image": "scene.png", "question": "how many cups are left of the laptop?"}
    unparsed = {"image": "scene.png", "question": "why is the sky blue?"}
    model = fake(calls("sam3_ask", question, "a1"), calls("sam3_ask", unparsed, "a2"), "One cup.")
    agent = create_agent(model, sam3_tools(service))
    state = await agent.ainvoke({"messages": [HumanMessage("Cups left of the laptop in scene.png?")]})
    bound = {t["function"]["name"]: t["function"] for t in model.bound[0]}
    assert bound["sam3_ask"]["description"] == ASK_PLANNER_DESCRIPTION
    answered, gave_up = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    result = AskResult.model_validate(answered.artifact)
    assert answered.status == "success" and (result.status, result.count) == ("answered", 1), answered.content
    assert [np.array_equal(i.mask, SCENE.mask(0)) for i in result.instances] == [True]
    assert gave_up.status == "success" and AskResult.model_validate(gave_up.artifact).status == "gave_up"
    assert gave_up.content.startswith("Answer (gave_up): ")


# --- LangChain's standard tool tests ------------------------------------------------------------------------------


def _standard_service(llm: Any = None) -> Sam3Service:
    return Sam3Service(SceneSegmenter(SCENE), llm, images=ImageResolver(None))


def _ask_script() -> ScriptedChatModel:
    turns = [
        tool_call_turn("segment_phrases", {"phrases": ["cup"]}),
        tool_call_turn("final_answer", {"ids": [1], "text": "A cup."}),
    ]
    return ScriptedChatModel(turns * 4)  # the standard tests call the tool up to four times


class TestSegmentToolUnit(ToolsUnitTests):
    tool_constructor = Sam3SegmentTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"service": _standard_service()}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"image": data_url(SCENE.image()), "phrases": ["cup"], "positive_boxes": [[20, 60, 50, 100]]}


class TestSegmentToolIntegration(ToolsIntegrationTests):
    tool_constructor = Sam3SegmentTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"service": _standard_service()}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"image": data_url(SCENE.image()), "phrases": ["cup", "laptop"], "score_threshold": 0.6}


class TestCountToolUnit(ToolsUnitTests):
    tool_constructor = Sam3CountTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"service": _standard_service()}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"image": data_url(SCENE.image()), "phrase": "cup", "negative_boxes": [[150, 60, 180, 100]]}


class TestCountToolIntegration(ToolsIntegrationTests):
    tool_constructor = Sam3CountTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"service": _standard_service()}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"image": data_url(SCENE.image()), "phrase": "cup"}


class TestAgentToolUnit(ToolsUnitTests):
    tool_constructor = Sam3AgentTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"service": _standard_service(_ask_script())}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"image": data_url(SCENE.image()), "question": "where is a cup?"}


class TestAgentToolIntegration(ToolsIntegrationTests):
    tool_constructor = Sam3AgentTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"service": _standard_service(_ask_script())}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"image": data_url(SCENE.image()), "question": "where is a cup?"}


class TestPlannerAgentToolUnit(ToolsUnitTests):
    tool_constructor = Sam3AgentTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"service": _standard_service()}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"image": data_url(SCENE.image()), "question": "find the cups"}


class TestPlannerAgentToolIntegration(ToolsIntegrationTests):
    tool_constructor = Sam3AgentTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"service": _standard_service()}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"image": data_url(SCENE.image()), "question": "how many cups are there?"}


# --- LangChain chat models as the agent's LLM ---------------------------------------------------------------------


def _scene_agent(model: Any, **kwargs: Any) -> tuple[Sam3Agent, LangChainChatModel]:
    llm = LangChainChatModel(model, **kwargs)
    return Sam3Agent(SceneSegmenter(SCENE), llm), llm


def test_langchain_model_drives_the_agent() -> None:
    model = fake(
        calls("segment_phrases", {"phrases": ["cup"]}, "a1"),
        AIMessage(
            content=[{"type": "text", "text": "Both are cups."}],
            tool_calls=[{"name": "final_answer", "args": {"ids": [1, 2], "text": "Two cups.", "count": 2}, "id": "a2"}],
        ),
    )
    agent, _ = _scene_agent(model)
    answer = agent.run(SCENE.image(), "how many cups?")
    assert (answer.status, answer.count, answer.selected_ids) == ("answered", 2, [1, 2])
    assert {t["function"]["name"] for t in model.bound[0]} == INTERNAL_TOOLS and len(model.bound) == 1
    system, user = model.seen[0]
    assert isinstance(system, SystemMessage) and "segment_phrases" in system.content
    caption, image = user.content[1:3]
    assert caption == {"type": "text", "text": "the original image"}
    assert image["type"] == "image" and image["mime_type"] == "image/png"
    assert Image.open(io.BytesIO(base64.b64decode(image["base64"]))).size == (200, 120)
    second = model.seen[1]
    ai, tool = second[2], second[3]
    assert (
        isinstance(ai, AIMessage)
        and ai.tool_calls[0]["args"] == {"phrases": ["cup"]}
        and ai.tool_calls[0]["id"] == "a1"
    )
    assert isinstance(tool, ToolMessage) and tool.tool_call_id == "a1" and "'cup': 2 mask(s)" in tool.content
    assert any(b.get("type") == "image" for b in second[4].content if isinstance(b, dict)), "the overlay follows"


def test_invalid_tool_calls_reach_the_agent_as_errors() -> None:
    broken = AIMessage(
        content="",
        invalid_tool_calls=[
            {
                "name": "segment_phrases",
                "args": "phrases = cup, please",
                "id": "b1",
                "error": "bad json",
                "type": "invalid_tool_call",
            }
        ],
    )
    model = fake(broken, calls("no_match", {"reason": "Nothing there."}, "b2"))
    agent, _ = _scene_agent(model, image_format="openai")
    answer = agent.run(SCENE.image(), "where is the cat?")
    assert answer.status == "no_match"
    step = answer.trace[0]
    assert step.tool == "segment_phrases" and not step.ok and step.arguments == {"raw": "phrases = cup, please"}
    history = model.seen[1]
    ai = history[2]
    assert isinstance(ai, AIMessage) and ai.invalid_tool_calls[0]["args"] == "phrases = cup, please"
    assert isinstance(history[3], ToolMessage) and history[3].content.startswith("Error:")
    assert history[1].content[2]["type"] == "image_url", "image_format='openai' sends image_url blocks"


def test_adapter_errors() -> None:
    with pytest.raises(ConfigError, match="bind_tools"):
        LangChainChatModel(GenericFakeChatModel(messages=iter([])))
    with pytest.raises(ConfigError, match="BaseChatModel"):
        LangChainChatModel(object())  # type: ignore[arg-type]
    agent, _ = _scene_agent(fake())  # the script is empty: the model raises
    with pytest.raises(LLMError, match="ToolCallingFake failed"):
        agent.run(SCENE.image(), "where is the cup?")


def test_service_wraps_a_langchain_model() -> None:
    service = Sam3Service(
        SceneSegmenter(SCENE), fake(calls("no_match", {"reason": "none"})), images=ImageResolver(None)
    )
    assert isinstance(service.llm, LangChainChatModel)
    assert service.ask(data_url(SCENE.image()), "a cat?").result.status == "no_match"


def test_tool_arguments_schema_is_the_shared_one(service: Sam3Service) -> None:
    schema = convert_to_openai_tool(Sam3SegmentTool(service=service))["function"]["parameters"]
    assert set(schema["properties"]) == {
        "image",
        "phrases",
        "positive_boxes",
        "negative_boxes",
        "score_threshold",
        "mask_threshold",
        "tile",
    }
    assert schema["required"] == ["image"]
    assert json.loads(json.dumps(schema)) == schema


def test_null_arguments_mean_the_defaults(service: Sam3Service) -> None:
    """A model that sends every argument, null where it has none (strict function calling), gets the defaults."""
    tool = Sam3CountTool(service=service)
    nulls = {"positive_boxes": None, "negative_boxes": None, "score_threshold": None, "tile": None}
    plain = tool.invoke(
        {"type": "tool_call", "id": "a", "name": tool.name, "args": {"image": "scene.png", "phrase": "cup"}}
    )
    args = {"image": "scene.png", "phrase": "cup", **nulls}
    with_nulls = tool.invoke({"type": "tool_call", "id": "b", "name": tool.name, "args": args})
    assert with_nulls.status == plain.status == "success" and with_nulls.artifact == plain.artifact
