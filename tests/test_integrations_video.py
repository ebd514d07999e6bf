"""Video in the integrations: ``sam3_track_video`` / ``sam3_ask_video`` through the OpenAI executor, the MCP server
(official SDK client, in process) and the LangChain tools, on a ``FakeTracker`` with exact tracks and a small mp4."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.messages import ToolMessage
from mcp import Client
from mcp.types import ImageContent, TextContent
from PIL import Image

from sam3_agent.errors import CheckpointError, VideoError
from sam3_agent.integrations.image_refs import ImageResolver
from sam3_agent.integrations.langchain_tools import sam3_tools
from sam3_agent.integrations.mcp_server import build_server
from sam3_agent.integrations.openai_tools import ToolArgumentError, ToolExecutor, chat_completions_tools, tool_specs
from sam3_agent.integrations.results import AskVideoResult, TrackVideoResult
from sam3_agent.integrations.service import Sam3Service
from sam3_agent.testing.clips import moving_shapes, write_video
from sam3_agent.testing.fake_tracker import FakeObject, FakeTracker
from sam3_agent.testing.scene import Scene, SceneSegmenter

VIDEO_TOOLS = {"sam3_track_video", "sam3_ask_video"}
TRACK = {"video": "clip.mp4", "phrases": ["car", "person"], "stride": 2}
BAD_INPUTS = [
    ({"video": "still.png", "phrases": ["car"]}, "is an image, not a video"),
    ({"video": "../outside.mp4", "phrases": ["car"]}, "outside the allowed folder"),
    ({"video": "https://example.com/a.mp4", "phrases": ["car"]}, "not URLs"),
    ({"video": "clip.mp4", "phrases": ["  "]}, "phrases.0"),
    ({"video": "clip.mp4", "phrases": []}, "phrases"),
    ({"video": "clip.mp4", "phrases": ["car"], "start_s": 0.5, "end_s": 0.2}, "time range is empty"),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    folder.mkdir()
    write_video(folder / "clip.mp4", moving_shapes(10))  # 10 frames at 10 fps
    Image.new("RGB", (32, 32), (40, 90, 200)).save(folder / "still.png")
    write_video(tmp_path / "outside.mp4", moving_shapes(4))
    return folder


def tracker() -> FakeTracker:
    """Two cars (frames 0-5 and 3-9) and a person (frames 2-4)."""
    return FakeTracker(
        {
            "car": [FakeObject(range(0, 6)), FakeObject(range(3, 10), box=(20, 10, 40, 30), score=0.7)],
            "person": [FakeObject([2, 3, 4], score=0.8)],
        }
    )


def service(root: Path, *, video: bool = True) -> Sam3Service:
    segmenter = SceneSegmenter(Scene(64, 48, []))
    return Sam3Service(segmenter, images=ImageResolver(root), tracker=tracker() if video else None)


def check_table(result: TrackVideoResult) -> None:
    """The exact table of ``TRACK`` (every 2nd frame: 0, 2, 4, 6, 8)."""
    assert [f.index for f in result.frames] == [0, 2, 4, 6, 8]
    rows = [(r.track_id, r.phrase, r.first_frame, r.last_frame, r.frames_seen, r.best_score) for r in result.tracks]
    assert rows == [(1, "car", 0, 4, 3, 0.9), (2, "car", 4, 8, 3, 0.7), (3, "person", 2, 4, 2, 0.8)]
    assert [(p.phrase, p.count, p.track_ids) for p in result.phrases] == [("car", 2, [1, 2]), ("person", 1, [3])]
    assert (result.tracks[1].first_s, result.tracks[1].last_s) == (0.4, 0.8)
    assert result.video == "clip.mp4" and (result.info.width, result.info.height) == (64, 48)
    assert "rle" not in result.model_dump_json()


def one_line_error(text: str) -> str:
    assert "\n" not in text and "errors.pydantic.dev" not in text
    return text


# --- the service and the OpenAI executor ----------------------------------------------------------------------------


def test_openai_lists_video_tools_only_with_a_tracker(root: Path) -> None:
    assert VIDEO_TOOLS.isdisjoint(s.name for s in tool_specs(service=service(root, video=False)))
    assert VIDEO_TOOLS.isdisjoint(s.name for s in tool_specs())
    strict = {t["function"]["name"]: t["function"] for t in chat_completions_tools(service=service(root), strict=True)}
    assert set(strict) >= VIDEO_TOOLS
    params = strict["sam3_track_video"]["parameters"]
    assert params["required"] == ["video", "phrases", "stride", "max_frames", "start_s", "end_s", "score_threshold"]
    assert params["additionalProperties"] is False and strict["sam3_track_video"]["strict"] is True
    assert {"type": "null"} in params["properties"]["stride"]["anyOf"], "optional: null means the default"
    assert "sam3-agent track" in strict["sam3_track_video"]["description"]
    with pytest.raises(ToolArgumentError, match="no tool named 'sam3_track_video'"):
        ToolExecutor(service(root, video=False)).run("sam3_track_video", TRACK)
    with pytest.raises(CheckpointError, match="no video tracker"):
        service(root, video=False).track_video("clip.mp4", ["car"])


def test_openai_track_returns_the_table(root: Path) -> None:
    executor = ToolExecutor(service(root))
    outcome = executor.run("sam3_track_video", {**TRACK, "max_frames": None, "score_threshold": None})
    check_table(outcome.result)
    message = executor.execute({"id": "c1", "function": {"name": "sam3_track_video", "arguments": TRACK}})
    assert message["tool_call_id"] == "c1"
    assert message["content"].startswith("Tracked 3 object(s) in clip.mp4 ('car': 2; 'person': 1)")
    assert "track 2 'car': frames 4-8 (0.4-0.8 s), seen on 3, best score 0.70" in message["content"]
    fewer = executor.run("sam3_track_video", {**TRACK, "score_threshold": 0.75, "start_s": 0.3}).result
    assert [f.index for f in fewer.frames] == [3, 5, 7, 9] and [r.phrase for r in fewer.tracks] == ["car", "person"]


def test_openai_ask_video_is_answered_by_the_clip_planner(root: Path) -> None:
    executor = ToolExecutor(service(root))
    result = executor.run("sam3_ask_video", {"video": "clip.mp4", "question": "which car is on screen longest?"}).result
    assert isinstance(result, AskVideoResult) and result.status == "answered"
    assert result.track_ids == [2] and [r.frames_seen for r in result.tracks] == [7] and result.found == 2
    counted = executor.run("sam3_ask_video", {"video": "clip.mp4", "question": "how many different cars are there?"})
    assert counted.result.count == 2 and counted.result.track_ids == [1, 2]
    assert "Count: 2" in counted.summary


@pytest.mark.parametrize(("arguments", "expected"), BAD_INPUTS)
def test_openai_bad_video_inputs_are_one_line_errors(root: Path, arguments: dict, expected: str) -> None:
    message = ToolExecutor(service(root)).execute(
        {"id": "c1", "function": {"name": "sam3_track_video", "arguments": arguments}}
    )
    assert message["content"].startswith("Error: ") and expected in one_line_error(message["content"])


def test_video_paths_are_refused_outside_the_root_and_as_data(root: Path) -> None:
    resolver = ImageResolver(root)
    assert resolver.resolve_video_path("clip.mp4") == root / "clip.mp4"
    assert resolver.resolve_video_path(f"file://{root / 'clip.mp4'}") == root / "clip.mp4"
    for ref, expected in [
        (str(root.parent / "outside.mp4"), "outside the allowed folder"),
        ("data:video/mp4;base64,AAAA", "not URLs"),
        ("A" * 600, "not base64"),
        ("missing.mp4", "does not exist"),
        ("", "empty"),
    ]:
        with pytest.raises(VideoError, match=expected):
            resolver.resolve_video_path(ref)
    with pytest.raises(VideoError, match="not accepted here"):
        ImageResolver(None).resolve_video_path("clip.mp4")


# --- MCP, through the SDK client ------------------------------------------------------------------------------------

pytest_anyio = pytest.mark.anyio


@pytest_anyio
async def test_mcp_video_tools(root: Path) -> None:
    async with Client(build_server(service(root, video=False))) as client:
        assert VIDEO_TOOLS.isdisjoint(t.name for t in (await client.list_tools()).tools)
    async with Client(build_server(service(root))) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        result = await client.call_tool("sam3_track_video", TRACK)
        asked = await client.call_tool("sam3_ask_video", {"video": "clip.mp4", "question": "how many cars are there?"})
        errors = [await client.call_tool("sam3_track_video", arguments) for arguments, _ in BAD_INPUTS]
    assert set(tools) >= VIDEO_TOOLS and tools["sam3_track_video"].input_schema["additionalProperties"] is False
    assert set(tools["sam3_track_video"].output_schema["properties"]) == set(TrackVideoResult.model_fields)
    assert not result.is_error and not any(isinstance(block, ImageContent) for block in result.content)
    check_table(TrackVideoResult.model_validate(result.structured_content))
    assert not asked.is_error and asked.structured_content["count"] == 2
    for error, (_, expected) in zip(errors, BAD_INPUTS, strict=True):
        assert error.is_error
        text = " ".join(block.text for block in error.content if isinstance(block, TextContent))
        assert expected in one_line_error(text)


# --- LangChain ------------------------------------------------------------------------------------------------------


def call(tool, arguments: dict) -> ToolMessage:
    return tool.invoke({"type": "tool_call", "id": "c1", "name": tool.name, "args": arguments})


def test_langchain_video_tools(root: Path) -> None:
    assert VIDEO_TOOLS.isdisjoint(t.name for t in sam3_tools(service(root, video=False)))
    tools = {t.name: t for t in sam3_tools(service(root), show_overlay=True)}
    assert set(tools) >= VIDEO_TOOLS
    message = call(tools["sam3_track_video"], TRACK)
    assert message.status == "success" and isinstance(message.content, str)
    check_table(TrackVideoResult.model_validate(message.artifact))
    asked = call(tools["sam3_ask_video"], {"video": "clip.mp4", "question": "how many different cars are there?"})
    assert AskVideoResult.model_validate(asked.artifact).count == 2
    for arguments, expected in BAD_INPUTS:
        error = call(tools["sam3_track_video"], arguments)
        assert error.status == "error" and expected in one_line_error(error.content)
