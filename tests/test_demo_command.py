"""`sam3-agent demo` and `python demos/gradio_app.py`: flags, settings from the environment, a real start-up."""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sam3_agent.cli import app
from sam3_agent.demo.config import DemoConfig

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


pytestmark = pytest.mark.usefixtures("no_llm_env")


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace ``launch_demo`` so the command returns at once; record what it was given."""
    seen: dict[str, Any] = {}

    def fake_launch(demo, **kwargs: Any) -> str:
        seen["demo"] = demo
        seen.update(kwargs)
        return "http://127.0.0.1:0/"

    def fake_build(segmenter, config: DemoConfig, **kwargs: Any):
        seen["config"] = config
        seen["segmenter"] = segmenter
        seen.update(kwargs)  # clicker
        return "blocks"

    monkeypatch.setattr("sam3_agent.demo.app.launch_demo", fake_launch)
    monkeypatch.setattr("sam3_agent.demo.app.build_demo", fake_build)
    return seen


def test_help_lists_the_flags() -> None:
    result = runner.invoke(app, ["demo", "--help"])
    assert result.exit_code == 0
    for flag in (
        "--checkpoint",
        "--llm-base-url",
        "--llm-model",
        "--llm-api-key",
        "--host",
        "--port",
        "--share",
        "--mcp",
    ):
        assert flag in result.output


def test_defaults_local_no_share_agent_mode_with_the_planner(tiny_checkpoint: Path, launched: dict[str, Any]) -> None:
    result = runner.invoke(app, ["demo", "--checkpoint", str(tiny_checkpoint), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert launched["host"] == "127.0.0.1" and launched["port"] is None
    assert launched["share"] is False and launched["mcp_server"] is None
    config: DemoConfig = launched["config"]
    assert config.llm_model is None and config.default_mode == "agent" and config.answered_by == "built-in planner"
    assert launched["segmenter"].loaded
    assert "agent mode, answered by built-in planner" in " ".join(result.output.split())


def test_llm_flags_win_over_the_environment(
    tiny_checkpoint: Path, launched: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAM3_AGENT_LLM_MODEL", "env-model")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env:1/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    args = ["demo", "-c", str(tiny_checkpoint), "--llm-model", "flag-model", "--port", "7999", "--share", "--mcp"]
    args += ["--score-threshold", "0.3", "--max-upload-mb", "2", "--cache-size", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    config: DemoConfig = launched["config"]
    assert (config.llm_model, config.llm_base_url, config.llm_api_key) == ("flag-model", "http://env:1/v1", "env-key")
    assert config.default_mode == "agent" and config.score_threshold == 0.3
    assert "answered by flag-model at http://env:1/v1" in " ".join(result.output.split())
    assert config.max_upload_bytes == 2 * 2**20 == launched["max_upload_bytes"]
    assert launched["port"] == 7999 and launched["share"] is True
    assert "MCP tools: streamable HTTP at the page's URL + /mcp" in " ".join(result.output.split())
    mcp_server = launched["mcp_server"]
    assert mcp_server is not None and mcp_server.name == "sam3-agent"
    engine = launched["segmenter"]
    for value in range(4):
        engine.encode_image(Image.new("RGB", (32, 32), (value, 0, 0)))
    assert len(engine.cached_images) == 3


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--checkpoint", "/nowhere/sam3"], 1, "facebook/sam3"),
        (["--tool-mode", "telepathy"], 2, "invalid setting"),
        (["--device", "toaster"], 2, "device must be like"),
    ],
)
def test_bad_settings_exit_with_a_message(tiny_checkpoint: Path, launched: dict, args, code, message) -> None:
    base = [] if "--checkpoint" in args else ["--checkpoint", str(tiny_checkpoint)]
    result = runner.invoke(app, ["demo", *base, *args])
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output
    assert "demo" not in launched


def test_mcp_flag_without_the_mcp_sdk_exits_with_the_install_line(
    tiny_checkpoint: Path, launched: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sam3_agent.integrations.mcp_server", None)  # as if mcp were not installed
    result = runner.invoke(app, ["demo", "-c", str(tiny_checkpoint), "--mcp"])
    assert result.exit_code == 2, result.output
    assert "--mcp needs the MCP SDK: pip install 'sam3-agent[mcp]'" in " ".join(result.output.split())
    assert "Traceback" not in result.output and "demo" not in launched


def test_the_demo_serves_our_mcp_tools_on_its_own_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The MCP SDK's streamable HTTP client lists the tools at <page URL>mcp and segments a data: URL image
    with the page's segmenter; the page itself keeps working."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-cache"))
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    from sam3_agent.demo.app import build_demo, launch_demo
    from sam3_agent.demo.mcp_mount import MCP_PATH, demo_mcp_server
    from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter

    scene = Scene(20, 20, [SceneObject("dot", (2, 2, 9, 9), score=0.9)])
    segmenter, config = SceneSegmenter(scene), DemoConfig(workdir=tmp_path, score_threshold=0.95)
    demo = build_demo(segmenter, config)
    url = launch_demo(demo, port=free_port(), mcp_server=demo_mcp_server(segmenter, config), quiet=True,
                      prevent_thread_lock=True)  # fmt: skip
    buffer = io.BytesIO()
    scene.image().save(buffer, format="PNG")
    image = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()

    async def session() -> tuple[list[str], dict, dict]:
        async with streamable_http_client(url.rstrip("/") + MCP_PATH) as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            tools = [tool.name for tool in (await s.list_tools()).tools]
            strict = await s.call_tool("sam3_segment", {"image": image, "phrases": ["dot"]})
            loose = await s.call_tool("sam3_segment", {"image": image, "phrases": ["dot"], "score_threshold": 0.5})
            return tools, strict.structured_content, loose.structured_content

    try:
        tools, strict, loose = anyio.run(session)
        assert httpx.get(url, timeout=10).status_code == 200, "the page must still run"
    finally:
        demo.close()
    assert tools == ["sam3_segment", "sam3_count", "sam3_ask"]
    assert strict["instances"] == [], "the tools' default threshold is the demo's (0.95 > the dot's 0.9)"
    assert [inst["phrase"] for inst in loose["instances"]] == ["dot"] and loose["image_size"] == [20, 20]


def test_the_launcher_script_serves_the_page(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    image = tmp_path / "p.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(image)
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    env["GRADIO_TEMP_DIR"] = str(tmp_path / "gradio-cache")
    cmd = [sys.executable, str(REPO / "demos" / "gradio_app.py"), "--checkpoint", str(tiny_checkpoint)]
    cmd += ["--device", "cpu", "--port", str(port), "--score-threshold", "0"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"the demo exited early:\n{proc.stdout.read() if proc.stdout else ''}"
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the demo did not answer within 90 s"
            time.sleep(0.5)
        client = Client(url, verbose=False, download_files=False)
        try:
            result = client.predict(handle_file(str(image)), "cup", 0.0, api_name="/segment_image")
        finally:
            client.close()
        assert result["image_size"] == [30, 40] and result["instances"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
