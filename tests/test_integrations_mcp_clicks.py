"""MCP ``sam3_segment_at``: one object from clicks, through the official ``mcp`` client.

In process on a synthetic scene with exact masks (``SceneClicker``), then ``sam3-agent mcp`` as a stdio
subprocess on the tiny random full checkpoint (SAM 3's tracker sharing the engine's backbone).
"""

from __future__ import annotations

import base64
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mcp import Client, ClientSession, StdioServerParameters, stdio_client
from mcp.types import CallToolResult, ImageContent, TextContent
from PIL import Image

from sam3_agent.integrations.args import arguments_schema
from sam3_agent.integrations.clicks import ClickResult, SegmentAtArgs
from sam3_agent.integrations.image_refs import ImageResolver
from sam3_agent.integrations.mcp_server import build_server
from sam3_agent.integrations.service import Sam3Service
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter
from sam3_agent.testing.scene_clicks import SceneClicker

pytestmark = pytest.mark.anyio

EXE = Path(sys.executable).parent / "sam3-agent"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
SCENE = Scene(
    200,
    120,
    [
        SceneObject("cup", (20, 60, 50, 100), color=(200, 40, 40)),
        SceneObject("laptop", (70, 30, 130, 90), shape="box", color=(90, 90, 110)),
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
    return folder


def unpack(result: CallToolResult) -> tuple[str, Image.Image, ClickResult]:
    """The summary, the overlay and the result, read from the JSON text block (the same as the structured content)."""
    assert not result.is_error, result.content
    data, text, image = result.content
    assert isinstance(data, TextContent) and isinstance(text, TextContent) and isinstance(image, ImageContent)
    assert json.loads(data.text) == result.structured_content
    overlay = Image.open(io.BytesIO(base64.b64decode(image.data)))
    return text.text, overlay, ClickResult.model_validate_json(data.text)


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    return " ".join(block.text for block in result.content if isinstance(block, TextContent))


def server(root: Path, clicker: Any) -> Any:
    service = Sam3Service(SceneSegmenter(SCENE), images=ImageResolver(root), clicker=clicker)
    return build_server(service)


async def test_the_tool_is_offered_only_with_a_click_engine(root: Path) -> None:
    async with Client(server(root, SceneClicker(SCENE))) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert sorted(tools) == ["sam3_ask", "sam3_count", "sam3_segment", "sam3_segment_at"]
    click = tools["sam3_segment_at"]
    assert click.input_schema == arguments_schema(SegmentAtArgs) and click.input_schema["additionalProperties"] is False
    assert click.input_schema["required"] == ["image"] and "title" not in json.dumps(click.input_schema)
    assert set(click.output_schema["properties"]) == set(ClickResult.model_fields)
    assert click.annotations.read_only_hint is True
    async with Client(server(root, None)) as client:
        assert "sam3_segment_at" not in {t.name for t in (await client.list_tools()).tools}


async def test_a_click_returns_the_exact_mask_with_text_and_overlay(root: Path) -> None:
    clicker = SceneClicker(SCENE)
    async with Client(server(root, clicker)) as client:
        result = await client.call_tool(
            "sam3_segment_at", {"image": "scene.png", "points": [[100, 60]], "negative_points": [[35, 80]]}
        )
        empty = await client.call_tool("sam3_segment_at", {"image": "scene.png", "points": [[5, 5]]})
    text, overlay, parsed = unpack(result)
    (inst,) = parsed.instances
    assert inst.id == 1 and np.array_equal(inst.mask, SCENE.mask(1))
    assert parsed.phrase == "clicked object (1 positive point, 1 negative point)"
    assert text.startswith("Segmented one object in the 200x120 image:\n#1 clicked object") and overlay.size == (
        200,
        120,
    )
    assert clicker.calls[0].labels == (1, 0)
    text, _, parsed = unpack(empty)
    assert not parsed.instances and "empty" in text


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"image": "scene.png"}, "at least one point on the object, or a box"),
        ({"image": "scene.png", "points": [[300, 10]]}, "outside the 200x120 image"),
        ({"image": "scene.png", "box": [10, 10, 5, 40]}, "empty or inverted"),
        ({"image": "../scene.png", "points": [[5, 5]]}, "outside the allowed folder"),
        ({"image": "scene.png", "points": [[5, 5]], "label": "cup"}, "label: Extra inputs are not permitted"),
        ({"image": "scene.png", "points": [[5]]}, "points.0: List should have at least 2 items"),
    ],
)
async def test_bad_clicks_are_tool_errors(root: Path, arguments: dict[str, Any], says: str) -> None:
    async with Client(server(root, SceneClicker(SCENE))) as client:
        message = error_text(await client.call_tool("sam3_segment_at", arguments))
    assert says in message and "\n" not in message and "errors.pydantic.dev" not in message


async def test_stdio_session_clicks_with_the_tiny_tracker(
    tiny_tracker_checkpoint: Path, root: Path, tmp_path: Path
) -> None:
    args = ["mcp", "--checkpoint", str(tiny_tracker_checkpoint), "--allowed-root", str(root), "--device", "cpu"]
    params = StdioServerParameters(command=str(EXE), args=args, env=OFFLINE)
    with (tmp_path / "stderr.log").open("w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            names = sorted(t.name for t in (await session.list_tools()).tools)
            arguments = {"image": "scene.png", "points": [[100, 60]], "box": [60, 20, 140, 100], "mask_threshold": 0}
            text, overlay, parsed = unpack(await session.call_tool("sam3_segment_at", arguments))
    assert names == ["sam3_ask", "sam3_ask_video", "sam3_count", "sam3_segment", "sam3_segment_at", "sam3_track_video"]
    (inst,) = parsed.instances  # mask threshold 0: every pixel, whatever the random weights
    assert inst.area == 200 * 120 and inst.mask.shape == (120, 200) and overlay.size == (200, 120)
    assert "clicked object (1 positive point, a box)" in text
