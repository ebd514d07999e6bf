"""Tiling and the query cap through every surface: the agent's tools and answer, the CLI (`--tile`, the JSON), the
HTTP server (`tile` in /v1/segment, `query_cap` in /v1/info) and the integrations' service and MCP tools."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mcp import Client
from PIL import Image
from typer.testing import CliRunner

from sam3_agent.agent.loop import Sam3Agent
from sam3_agent.cli import app
from sam3_agent.engine.tiling import TiledSegmenter
from sam3_agent.integrations.image_refs import ImageResolver
from sam3_agent.integrations.mcp_server import build_server
from sam3_agent.integrations.service import Sam3Service
from sam3_agent.server.api import create_app
from sam3_agent.server.client import RemoteSegmenter
from sam3_agent.server.wire import SegmentResponse
from sam3_agent.testing.crowd import CappedSceneSegmenter, crowd_image, crowd_scene

CAP = 60
SCENE = crowd_scene(2100, 400, 90, phrase="dot", seed=4)
"""90 dots on a 2100x400 strip: an untiled pass finds the cap's 60; three 1008 px tiles find all 90."""


@pytest.fixture
def fake() -> CappedSceneSegmenter:
    return CappedSceneSegmenter(SCENE, query_cap=CAP)


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "dots.png"
    crowd_image(SCENE).save(path)
    return path


# --- the agent ----------------------------------------------------------------------------------------------


def test_agent_warns_that_an_untiled_count_may_be_saturated(fake: CappedSceneSegmenter) -> None:
    answer = Sam3Agent(TiledSegmenter(fake, mode="never")).run(crowd_image(SCENE), "how many dots are there?")
    assert answer.count == CAP
    assert "may be too low" in answer.text and f"limit of {CAP} objects per pass" in answer.text
    segment, count = (next(s for s in answer.trace if s.tool == name) for name in ("segment_phrases", "count_masks"))
    assert "'dots': 60 mask(s)" in segment.summary and "warning: 'dots' may be saturated" in segment.summary
    assert count.summary.startswith("count: 60 distinct") and "may be saturated" in count.summary


def test_agent_counts_a_crowd_exactly_in_tiles_and_says_so(fake: CappedSceneSegmenter) -> None:
    answer = Sam3Agent(TiledSegmenter(fake)).run(crowd_image(SCENE), "how many dots are there?")
    assert answer.count == 90 and "searched in 3 overlapping tiles" in answer.text
    assert "may be too low" not in answer.text
    count = next(s for s in answer.trace if s.tool == "count_masks")
    assert "tiled: searched in 3 overlapping 1008 px tiles" in count.summary and "warning" not in count.summary


def test_agent_on_a_plain_segmenter_with_a_cap_still_warns(fake: CappedSceneSegmenter) -> None:
    answer = Sam3Agent(fake).run(crowd_image(SCENE), "how many dots are there?")
    assert answer.count == CAP and "may be too low" in answer.text


# --- the CLI ------------------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.mark.usefixtures("no_llm_env")
@pytest.mark.parametrize(
    ("flags", "tiled", "count"), [([], True, 90), (["--tile"], True, 90), (["--no-tile"], False, CAP)]
)
def test_cli_segment_tiles_by_default_on_large_images_and_on_request(
    fake: CappedSceneSegmenter,
    picture: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    tiled: bool,
    count: int,
) -> None:
    monkeypatch.setattr("sam3_agent.cli._load_segmenter", lambda *args: fake)
    out = tmp_path / "out"
    result = runner.invoke(app, ["segment", str(picture), "dot", "--out", str(out), *flags])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "segmentation.json").read_text())
    assert len(record["instances"]) == count
    assert record["tiling"]["tiled"] is tiled and record["tiling"]["near_cap"] is not tiled
    assert ("tiling: segmented in 3 overlapping tiles" in result.stderr) is tiled
    assert ("the count may be too low" in " ".join(result.stderr.split())) is not tiled


@pytest.mark.usefixtures("no_llm_env")
def test_cli_ask_writes_whether_it_tiled(
    fake: CappedSceneSegmenter, picture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sam3_agent.cli._load_segmenter", lambda *args: fake)
    out = tmp_path / "ask"
    small = ["--tile", "--tile-size", "700", "--tile-overlap", "0.3"]
    result = runner.invoke(app, ["ask", str(picture), "how many dots are there?", "--out", str(out), *small])
    assert result.exit_code == 0, result.output
    answer = json.loads((out / "answer.json").read_text())
    assert answer["count"] == 90 and answer["tiling"]["tiled"] and not answer["tiling"]["near_cap"]
    assert answer["tiling"]["calls"][0]["tile"] == 700 and answer["tiling"]["calls"][0]["tiles"] == 4
    bad = runner.invoke(app, ["segment", str(picture), "dot", "--tile-size", "8"])
    assert bad.exit_code == 2


# --- the HTTP server ----------------------------------------------------------------------------------------


def _png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_server_segments_in_tiles_on_request(fake: CappedSceneSegmenter) -> None:
    body = {"image": _png_b64(crowd_image(SCENE)), "prompts": [{"text": "dot"}]}
    with TestClient(create_app(fake)) as client:
        assert client.get("/v1/info").json()["query_cap"] == CAP
        assert RemoteSegmenter("http://testserver", client=client).load().query_cap == CAP, "clients learn the cap"
        plain = SegmentResponse.model_validate_json(client.post("/v1/segment", json=body).content)
        tiled = SegmentResponse.model_validate_json(client.post("/v1/segment", json={**body, "tile": "auto"}).content)
        refused = client.post("/v1/segment", json={**body, "tile": "sometimes"})
    assert len(plain.instances[0]) == CAP and plain.tiling is None, "the default stays untiled"
    assert len(tiled.instances[0]) == 90 and tiled.tiling is not None and tiled.tiling.tiles == 3
    assert refused.status_code == 422


# --- the integrations ---------------------------------------------------------------------------------------


def test_service_count_and_segment_take_a_tile_mode(fake: CappedSceneSegmenter, picture: Path) -> None:
    service = Sam3Service(fake, images=ImageResolver(picture.parent))
    auto = service.count(picture.name, "dot")
    assert auto.result.count == 90 and auto.result.tiling is not None and auto.result.tiling.tiled
    never = service.count(picture.name, "dot", tile="never")
    assert never.result.count == CAP and "the count may be too low" in never.summary
    segmented = service.segment(picture.name, ["dot"], tile="always")
    assert segmented.result.phrases[0].count == 90 and "Searched in 3 overlapping tiles." in segmented.summary


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_mcp_count_tool_takes_tile(fake: CappedSceneSegmenter, picture: Path, anyio_backend: str) -> None:
    server = build_server(Sam3Service(fake, images=ImageResolver(picture.parent)))
    async with Client(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        result = await client.call_tool("sam3_count", {"image": picture.name, "phrase": "dot", "tile": "never"})
    assert "tile" in tools["sam3_count"].input_schema["properties"]
    assert "tile" in tools["sam3_segment"].input_schema["properties"]
    assert result.structured_content["count"] == CAP and result.structured_content["tiling"]["near_cap"] is True
