"""MCP: the server through the official ``mcp`` client, in process and as ``sam3-agent mcp`` subprocesses over
stdio and streamable HTTP (tiny SAM 3 checkpoint, the ask tool's LLM replayed over loopback HTTP, or no LLM: then
the built-in planner answers sam3_ask)."""

from __future__ import annotations

import base64
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mcp import Client, ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, ImageContent, TextContent
from PIL import Image
from typer.testing import CliRunner

from sam3_agent.agent.chat_models import PLANNER_NOTICE
from sam3_agent.cli import app
from sam3_agent.errors import ImageError
from sam3_agent.integrations import mcp_server
from sam3_agent.integrations.args import (
    ASK_LLM_DESCRIPTION,
    ASK_PLANNER_DESCRIPTION,
    AskArgs,
    CountArgs,
    SegmentArgs,
    arguments_schema,
)
from sam3_agent.integrations.image_refs import ImageResolver
from sam3_agent.integrations.mcp_server import build_server
from sam3_agent.integrations.results import AskResult, CountResult, SegmentResult
from sam3_agent.integrations.service import Sam3Service
from sam3_agent.testing.replay_server import ReplayServer
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter
from sam3_agent.testing.scripted import ScriptedChatModel
from sam3_agent.testing.turns import tool_call_turn

pytestmark = pytest.mark.anyio

EXE = Path(sys.executable).parent / "sam3-agent"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
SCENE = Scene(
    200,
    120,
    [
        SceneObject("cup", (20, 60, 50, 100), color=(200, 40, 40)),
        SceneObject("laptop", (70, 30, 130, 90), shape="box", color=(90, 90, 110), score=0.8),
        SceneObject("cup", (150, 60, 180, 100), color=(210, 60, 40), score=0.7),
    ],
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    SCENE.image().save(folder / "scene.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8)).save(folder / "photo.png")
    return folder


def unpack(result: CallToolResult) -> tuple[str, Image.Image, dict[str, Any]]:
    """The summary, the decoded overlay and the result JSON of a successful tool result; the JSON is read from
    the first text block (as a client that ignores structured content reads it) and equals the structured content."""
    assert not result.is_error, result.content
    data, text, image = result.content
    assert isinstance(data, TextContent) and isinstance(text, TextContent)
    assert isinstance(image, ImageContent) and image.mime_type == "image/png"
    overlay = Image.open(io.BytesIO(base64.b64decode(image.data)))
    overlay.load()
    parsed = json.loads(data.text)
    assert isinstance(parsed, dict) and parsed == result.structured_content
    return text.text, overlay, parsed


def error_text(result: CallToolResult) -> str:
    """The error message of a failed tool call: one line, without pydantic's documentation URLs."""
    assert result.is_error
    message = " ".join(block.text for block in result.content if isinstance(block, TextContent))
    assert "\n" not in message and "errors.pydantic.dev" not in message and "For further information" not in message
    return message


def titles(schema: Any) -> list[str]:
    """Every ``title`` keyword anywhere in a JSON Schema (property names called "title" do not count)."""
    if isinstance(schema, dict):
        own = ["title"] if isinstance(schema.get("title"), str) else []
        return (
            own
            + [t for key, value in schema.items() if key != "properties" for t in titles(value)]
            + [t for prop in schema.get("properties", {}).values() for t in titles(prop)]
        )
    return [t for value in schema for t in titles(value)] if isinstance(schema, list) else []


# --- in process: the exact answers on a synthetic scene -------------------------------------------------------------


def scene_server(root: Path, llm: Any = None) -> Any:
    return build_server(Sam3Service(SceneSegmenter(SCENE, duplicates={"cup": 1}), llm, images=ImageResolver(root)))


async def test_tools_and_schemas(root: Path) -> None:
    async with Client(scene_server(root)) as client:
        planned = {t.name: t for t in (await client.list_tools()).tools}
    assert sorted(planned) == ["sam3_ask", "sam3_count", "sam3_segment"], "no LLM: the planner answers sam3_ask"
    assert (
        planned["sam3_ask"].description == ASK_PLANNER_DESCRIPTION and "common query shapes" in ASK_PLANNER_DESCRIPTION
    )
    assert planned["sam3_ask"].annotations.idempotent_hint is True
    assert planned["sam3_ask"].annotations.open_world_hint is False
    async with Client(scene_server(root, ScriptedChatModel([]))) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert tools["sam3_ask"].description == ASK_LLM_DESCRIPTION and "planner" not in ASK_LLM_DESCRIPTION
    assert tools["sam3_ask"].annotations.open_world_hint is True
    for name, model, result in [
        ("sam3_segment", SegmentArgs, SegmentResult),
        ("sam3_count", CountArgs, CountResult),
        ("sam3_ask", AskArgs, AskResult),
    ]:
        schema = tools[name].input_schema
        assert schema == arguments_schema(model) and set(schema["properties"]) == set(model.model_fields)
        assert schema["required"] == ["image", "question"] if name == "sam3_ask" else ["image"]
        assert schema["additionalProperties"] is False and titles(schema) == [] and "description" not in schema
        assert set(tools[name].output_schema["properties"]) == set(result.model_fields)
        assert titles(tools[name].output_schema) == []
        assert tools[name].annotations.read_only_hint is True


async def test_segment_returns_text_overlay_and_json(root: Path) -> None:
    async with Client(scene_server(root)) as client:
        result = await client.call_tool("sam3_segment", {"image": "scene.png", "phrases": ["laptop", "cup"]})
        b64 = base64.b64encode((root / "scene.png").read_bytes()).decode()
        by_base64 = await client.call_tool("sam3_segment", {"image": b64, "phrases": ["laptop"]})
    text, overlay, data = unpack(result)
    assert "Found 5 instance(s) in the 200x120 image ('laptop': 1; 'cup': 4)" in text
    assert overlay.size == (200, 120) and overlay.getpixel((100, 60)) != SCENE.image().getpixel((100, 60))
    parsed = SegmentResult.model_validate(data)
    assert [p.ids for p in parsed.phrases] == [[1], [2, 3, 4, 5]]
    assert np.array_equal(parsed.instances[0].mask, SCENE.mask(1))
    assert SegmentResult.model_validate(unpack(by_base64)[2]).phrases[0].count == 1


async def test_count_and_ask(root: Path) -> None:
    llm = ScriptedChatModel(
        [
            tool_call_turn("segment_phrases", {"phrases": ["cup", "laptop"]}),
            tool_call_turn("spatial_filter", {"subject_ids": [1, 2, 3, 4], "relation": "right_of", "anchor_ids": [5]}),
            tool_call_turn("count_masks", {"ids": [3, 4]}),
            tool_call_turn("final_answer", {"ids": [3], "text": "One cup, right of the laptop.", "count": 1}),
        ]
    )
    async with Client(scene_server(root, llm)) as client:
        count = await client.call_tool("sam3_count", {"image": "scene.png", "phrase": "cup"})
        ask = await client.call_tool(
            "sam3_ask", {"image": "scene.png", "question": "how many cups right of the laptop?"}
        )
    llm.assert_complete()
    text, _, data = unpack(count)
    assert text.startswith("Count of 'cup': 2 (4 detected") and CountResult.model_validate(data).count == 2
    text, overlay, data = unpack(ask)
    answer = AskResult.model_validate(data)
    assert (answer.status, answer.count, [i.id for i in answer.instances]) == ("answered", 1, [3])
    assert np.array_equal(answer.instances[0].mask, SCENE.mask(2))
    assert [s.tool for s in answer.trace] == ["segment_phrases", "spatial_filter", "count_masks", "final_answer"]
    assert "One cup, right of the laptop." in text and overlay.size == (200, 120)


async def test_ask_without_an_llm_is_answered_by_the_planner(root: Path) -> None:
    async with Client(scene_server(root)) as client:
        ask = await client.call_tool("sam3_ask", {"image": "scene.png", "question": "how many cups are there?"})
        unparsed = await client.call_tool("sam3_ask", {"image": "scene.png", "question": "why is the sky blue?"})
    text, overlay, data = unpack(ask)
    answer = AskResult.model_validate(data)
    assert (answer.status, answer.count) == ("answered", 2), text
    assert answer.trace[0].tool == "segment_phrases" and overlay.size == (200, 120)
    text, _, data = unpack(unparsed)
    gave_up = AskResult.model_validate(data)
    assert gave_up.status == "gave_up" and gave_up.answer and "Answer (gave_up)" in text


@pytest.mark.parametrize(
    ("name", "arguments", "says"),
    [
        ("sam3_segment", {"image": "../scene.png", "phrases": ["cup"]}, "outside the allowed folder"),
        ("sam3_segment", {"image": "missing.png", "phrases": ["cup"]}, "does not exist"),
        ("sam3_segment", {"image": "https://example.com/a.png", "phrases": ["cup"]}, "URLs are not accepted"),
        ("sam3_segment", {"image": "scene.png"}, "at least one phrase or one positive box"),
        ("sam3_segment", {"image": "scene.png", "phrases": ["cup"], "positive_boxes": [[1, 2, 3]]}, "positive_boxes"),
        ("sam3_count", {"image": "scene.png", "phrase": "cup", "negative_boxes": [[300, 0, 400, 10]]}, "outside"),
        ("sam3_count", {"image": "scene.png", "phrase": ""}, "phrase: String should have at least 1 character"),
        ("sam3_count", {"image": "scene.png", "phrase": "cup", "colour": "red"}, "colour: Extra inputs are not"),
        ("sam3_count", {"image": "scene.png", "phrase": "cup", "score_threshold": 2}, "score_threshold: Input should"),
        (
            "sam3_segment",
            {"image": "scene.png", "phrases": ["cup"], "positive_boxes": [[1, 2, "a", 4]]},
            "valid number",
        ),
        ("sam3_ask", {"image": "scene.png"}, "question: Field required"),
    ],
)
async def test_errors_are_tool_errors(root: Path, name: str, arguments: dict[str, Any], says: str) -> None:
    async with Client(scene_server(root)) as client:
        message = error_text(await client.call_tool(name, arguments))
    assert says in message and message.startswith(f"Error executing tool {name}: ")


async def test_null_means_the_default_and_lists_may_come_as_json_text(root: Path) -> None:
    """What strict function-calling clients send (every argument, null where none), and what some clients send
    for lists (JSON text), both give the plain call's result."""
    async with Client(scene_server(root)) as client:
        plain = await client.call_tool("sam3_segment", {"image": "scene.png", "phrases": ["cup"]})
        nulls = {"positive_boxes": None, "negative_boxes": None, "score_threshold": None, "tile": None}
        with_nulls = await client.call_tool("sam3_segment", {"image": "scene.png", "phrases": ["cup"], **nulls})
        as_text = await client.call_tool("sam3_segment", {"image": "scene.png", "phrases": '["cup"]'})
    assert unpack(with_nulls)[2] == unpack(plain)[2] == unpack(as_text)[2]
    assert SegmentResult.model_validate(unpack(plain)[2]).phrases[0].count == 4


# --- the command line -----------------------------------------------------------------------------------------------


runner = CliRunner()


@pytest.fixture
def no_llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SAM3_AGENT_LLM_MODEL", "SAM3_AGENT_LLM_BASE_URL", "OPENAI_BASE_URL", "SAM3_CHECKPOINT"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_llm_env")
def test_command_wires_flags_to_the_server(tiny_checkpoint: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_serve(server: Any, transport: str, **kwargs: Any) -> None:
        seen.update(server=server, transport=transport, **kwargs)

    monkeypatch.setattr(mcp_server, "serve", fake_serve)
    args = ["mcp", "--transport", "http", "--port", "0", "--host", "127.0.0.1", "--checkpoint", str(tiny_checkpoint)]
    result = runner.invoke(app, [*args, "--allowed-root", str(root), "--no-preload", "--llm-model", "m"])
    assert result.exit_code == 0, result.output
    assert (seen["transport"], seen["port"], seen["host"], seen["path"]) == ("http", 0, "127.0.0.1", "/mcp")
    assert seen["server"].name == "sam3-agent"


@pytest.fixture
def image_url(root: Path) -> Iterator[str]:
    """The scene served over HTTP on loopback (a non-public address: refused unless allowed)."""
    body = (root / "scene.png").read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/scene.png"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.usefixtures("no_llm_env")
@pytest.mark.parametrize(
    ("flags", "allowed"),
    [([], False), (["--allow-private-urls", "127.0.0.0/8"], ["127.0.0.0/8"]), (["--allow-private-urls", "all"], True)],
)
def test_command_wires_url_flags_to_the_image_resolver(
    tiny_checkpoint: Path, root: Path, image_url: str, flags: list[str], allowed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    services: list[Sam3Service] = []
    build = mcp_server.build_server
    monkeypatch.setattr(mcp_server, "build_server", lambda service: services.append(service) or build(service))
    monkeypatch.setattr(mcp_server, "serve", lambda *a, **k: None)
    args = ["mcp", "--checkpoint", str(tiny_checkpoint), "--allowed-root", str(root), "--no-preload", "--allow-urls"]
    result = runner.invoke(app, [*args, *flags])
    assert result.exit_code == 0, result.output
    (service,) = services
    assert service.images.allow_urls is True and service.images.allow_private_urls == allowed
    if allowed:
        assert service.images.load(image_url).size == (200, 120)
    else:
        with pytest.raises(ImageError, match="a loopback address; non-public addresses are refused unless allowed"):
            service.images.load(image_url)


@pytest.mark.usefixtures("no_llm_env")
@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--allowed-root", "/nonexistent/images"], 2, "not an existing folder"),
        (["--checkpoint", "/nonexistent/sam3"], 1, "facebook/sam3"),
        (["--llm-base-url", "http://127.0.0.1:9/v1"], 2, "--llm-model"),
        (["--transport", "carrier-pigeon"], 2, "carrier-pigeon"),
        (["--allow-urls", "--allow-private-urls", "10.0.0.0/33"], 2, "allow_private_urls: '10.0.0.0/33' does not"),
        (["--allow-private-urls", "10.0.0.0/8"], 2, "--allow-private-urls needs --allow-urls"),
    ],
)
def test_command_input_errors(args: list[str], code: int, says: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mcp_server, "serve", lambda *a, **k: pytest.fail("bad input reached serve()"))
    result = runner.invoke(app, ["mcp", *args])
    assert result.exit_code == code, result.output
    assert says in result.output


# --- over the wire: sam3-agent mcp as a subprocess, official client sessions -----------------------------------------


def server_args(checkpoint: Path, root: Path, replay: ReplayServer) -> list[str]:
    return ["mcp", "--checkpoint", str(checkpoint), "--allowed-root", str(root), "--device", "cpu"] + [
        "--score-threshold",
        "0",
        "--llm-base-url",
        replay.base_url,
        "--llm-model",
        "replay-model",
    ]


def ask_script() -> list[Any]:
    return [
        tool_call_turn("segment_phrases", {"phrases": ["cup"]}),
        tool_call_turn("final_answer", {"ids": [1], "text": "There is a cup.", "count": 1}),
    ]


async def exercise(session: ClientSession) -> None:
    """List tools, call each one on the tiny checkpoint, decode the overlays, check the JSON."""
    await session.initialize()
    names = sorted(t.name for t in (await session.list_tools()).tools)
    # SAM 3 runs in the server's process: the video tools too (the video model would load on the first clip)
    assert names == ["sam3_ask", "sam3_ask_video", "sam3_count", "sam3_segment", "sam3_track_video"]

    text, overlay, data = unpack(await session.call_tool("sam3_segment", {"image": "photo.png", "phrases": ["cup"]}))
    segmented = SegmentResult.model_validate(data)
    assert segmented.image_size == (90, 160) and overlay.size == (160, 90)
    assert segmented.instances and segmented.phrases[0].count == len(segmented.instances)
    assert all(i.mask.shape == (90, 160) and i.mask.sum() == i.area for i in segmented.instances)
    assert f"Found {len(segmented.instances)} instance(s)" in text

    _, _, data = unpack(await session.call_tool("sam3_count", {"image": "photo.png", "phrase": "cup"}))
    counted = CountResult.model_validate(data)
    assert counted.detected == len(segmented.instances) and 1 <= counted.count <= counted.detected

    question = {"image": "photo.png", "question": "how many cups?"}
    text, _, data = unpack(await session.call_tool("sam3_ask", question))
    asked = AskResult.model_validate(data)
    assert (asked.status, asked.count, [i.id for i in asked.instances]) == ("answered", 1, [1])
    assert "There is a cup." in text

    refused = await session.call_tool("sam3_segment", {"image": "../../etc/passwd", "phrases": ["cup"]})
    assert "outside the allowed folder" in error_text(refused)


async def test_stdio_session(tiny_checkpoint: Path, root: Path, tmp_path: Path) -> None:
    with ReplayServer(ask_script()) as replay, (tmp_path / "stderr.log").open("w") as errlog:
        params = StdioServerParameters(command=str(EXE), args=server_args(tiny_checkpoint, root, replay), env=OFFLINE)
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await exercise(session)
        replay.assert_complete()
    assert "ready on stdio" in (tmp_path / "stderr.log").read_text()


async def test_stdio_session_without_an_llm_answers_with_the_planner(
    tiny_checkpoint: Path, root: Path, tmp_path: Path
) -> None:
    args = ["mcp", "--checkpoint", str(tiny_checkpoint), "--allowed-root", str(root), "--device", "cpu"]
    params = StdioServerParameters(command=str(EXE), args=[*args, "--score-threshold", "0"], env=OFFLINE)
    with (tmp_path / "stderr.log").open("w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = {t.name: t for t in (await session.list_tools()).tools}
            question = {"image": "photo.png", "question": "how many cups are there?"}
            text, overlay, data = unpack(await session.call_tool("sam3_ask", question))
    assert sorted(tools) == ["sam3_ask", "sam3_ask_video", "sam3_count", "sam3_segment", "sam3_track_video"]
    assert tools["sam3_ask"].description == ASK_PLANNER_DESCRIPTION
    asked = AskResult.model_validate(data)
    assert asked.status in ("answered", "no_match") and asked.trace[0].tool == "segment_phrases", text
    assert overlay.size == (160, 90)
    log = " ".join((tmp_path / "stderr.log").read_text().split())
    assert log.count(PLANNER_NOTICE) == 1 and "ready on stdio" in log


@pytest.fixture
def http_server(tiny_checkpoint: Path, root: Path, tmp_path: Path) -> Iterator[tuple[str, ReplayServer]]:
    """``sam3-agent mcp --transport http --port 0`` in a subprocess; yields its URL once it listens."""
    with ReplayServer(ask_script()) as replay, (tmp_path / "http.log").open("w") as log:
        args = [*server_args(tiny_checkpoint, root, replay), "--transport", "http", "--port", "0"]
        process = subprocess.Popen([str(EXE), *args], stdout=log, stderr=log, env={**os.environ, **OFFLINE})
        try:
            yield wait_for_url(process, tmp_path / "http.log"), replay
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for_url(process: subprocess.Popen[bytes], log: Path, timeout: float = 90.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if "ready on http://" in line:
                return line.split("ready on ", 1)[1].split()[0]
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}:\n{log.read_text()}")
        time.sleep(0.1)
    raise AssertionError(f"the server did not get ready in {timeout} s:\n{log.read_text()}")


async def test_streamable_http_session(http_server: tuple[str, ReplayServer]) -> None:
    url, replay = http_server
    assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp")
    async with streamable_http_client(url) as (read, write), ClientSession(read, write) as session:
        await exercise(session)
    replay.assert_complete()
