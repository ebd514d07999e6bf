"""Every example of the README section "Use it as a tool in other agents" runs here, as written.

What the examples reach outside is stood in for: ``./sam3`` is the tiny checkpoint, ``photo.jpg`` a random
image, ``langchain_anthropic`` / ``langchain_ollama`` are modules whose chat models are LangChain's fake
model scripted to call our tools, OpenAI is the loopback replay server (through ``OPENAI_BASE_URL``), and the
shell / JSON server configurations run through the real command with only the final serve step recorded.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import sys
import types
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from langchain_core.messages import AIMessage
from langchain_fakes import ToolCallingFake, calls, fake
from PIL import Image
from typer.testing import CliRunner

from sam3_agent.cli import app
from sam3_agent.integrations import mcp_server
from sam3_agent.integrations.args import ASK_PLANNER_DESCRIPTION
from sam3_agent.testing.replay_server import ReplayServer
from sam3_agent.testing.turns import text_turn, tool_call_turn

REPO = Path(__file__).resolve().parents[1]
HEADING = "## Use it as a tool in other agents"
SOURCES = (REPO / "README.md", REPO / ".notes" / "readme_integrations.md")
IMAGE_TOOLS = ["sam3_segment", "sam3_count", "sam3_ask"]
# `sam3-agent mcp` with SAM 3 in its process also serves the video tools (the video model loads on the first clip)
VIDEO_TOOLS = ["sam3_track_video", "sam3_ask_video"]


def section() -> str:
    """The section in README.md, or in its draft under .notes/ until it is merged."""
    for path in SOURCES:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if HEADING in text:
            body = text.split(HEADING, 1)[1]
            return body.split("\n## ", 1)[0]
    raise AssertionError(f"no {HEADING!r} section in {[str(p) for p in SOURCES]}")


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", section(), flags=re.MULTILINE | re.DOTALL)


def test_the_section_has_the_examples_tested_here() -> None:
    assert [len(blocks(lang)) for lang in ("python", "bash", "json")] == [4, 1, 1]


def fake_provider(monkeypatch: pytest.MonkeyPatch, module: str, cls: str, *replies: AIMessage | str) -> list[dict]:
    """Install ``module.cls`` whose instances replay ``replies``; returns the constructor kwargs seen."""
    made: list[dict] = []

    def factory(**kwargs: Any) -> ToolCallingFake:
        made.append(kwargs)
        return fake(*replies)

    fake_module = types.ModuleType(module)
    setattr(fake_module, cls, factory)
    monkeypatch.setitem(sys.modules, module, fake_module)
    return made


@pytest.fixture
def workdir(tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    os.symlink(tiny_checkpoint, tmp_path / "sam3")
    (tmp_path / "images").mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)).save(tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    for name in ("SAM3_AGENT_LLM_MODEL", "SAM3_AGENT_LLM_BASE_URL", "SAM3_CHECKPOINT", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def run_example(code: str, tmp_path: Path) -> str:
    """Exec an example; returns what it printed. stderr goes to a real file (subprocesses inherit it)."""
    out = io.StringIO()
    with (tmp_path / "example-stderr.log").open("w") as err, contextlib.redirect_stdout(out):
        saved, sys.stderr = sys.stderr, err
        try:
            exec(compile(code, "README example", "exec"), {"__name__": "__readme__"})
        finally:
            sys.stderr = saved
    return out.getvalue()


@pytest.mark.usefixtures("workdir")
def test_langchain_tools_example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    made = fake_provider(
        monkeypatch,
        "langchain_anthropic",
        "ChatAnthropic",
        calls("sam3_count", {"image": "photo.jpg", "phrase": "cup", "score_threshold": 0.0}, "t1"),
        "I counted the cups.",
    )
    printed = run_example(blocks("python")[0], tmp_path).splitlines()
    assert made == [{"model": "claude-sonnet-4-5"}]
    assert printed[0] == "I counted the cups."
    name, count, word = printed[1].split()
    assert (name, word) == ("sam3_count", "instances") and int(count) >= 1


@pytest.mark.usefixtures("workdir")
def test_langchain_llm_example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    made = fake_provider(
        monkeypatch,
        "langchain_ollama",
        "ChatOllama",
        calls("segment_phrases", {"phrases": ["cup", "laptop"]}, "o1"),
        calls("final_answer", {"text": "No cup is left of the laptop.", "count": 0}, "o2"),
    )
    printed = run_example(blocks("python")[1], tmp_path)
    assert made == [{"model": "qwen2.5vl:7b"}]
    assert printed.strip() == "No cup is left of the laptop. 0"


@pytest.mark.usefixtures("workdir")
def test_openai_loop_example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    turns = [
        tool_call_turn("sam3_count", {"image": "photo.jpg", "phrase": "cup"}, call_id="call_1"),
        text_turn("I counted the cups."),
    ]
    with ReplayServer(turns) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        printed = run_example(blocks("python")[2], tmp_path)
        server.assert_complete()
    assert printed.strip() == "I counted the cups."
    sent = {t["function"]["name"]: t["function"] for t in server.requests[0]["tools"]}
    assert list(sent) == ["sam3_segment", "sam3_count", "sam3_ask"]
    assert sent["sam3_ask"]["description"] == ASK_PLANNER_DESCRIPTION, "no llm=...: the planner answers sam3_ask"
    answered = server.requests[1]["messages"][-1]
    assert answered["role"] == "tool" and answered["tool_call_id"] == "call_1"
    assert answered["content"].startswith("Count of 'cup': ")


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record what ``sam3-agent mcp`` would serve instead of serving it."""
    seen: list[dict[str, Any]] = []

    def record(server: Any, transport: str, **kwargs: Any) -> None:
        tools = [tool.name for tool in anyio.run(server.list_tools)]
        seen.append({"transport": transport, "tools": tools, **kwargs})

    monkeypatch.setattr(mcp_server, "serve", record)
    return seen


@pytest.mark.usefixtures("workdir")
def test_mcp_shell_commands(served: list[dict[str, Any]]) -> None:
    lines = [line for line in blocks("bash")[0].splitlines() if line.strip()]
    for line in lines:
        argv = shlex.split(line)
        assert argv[:2] == ["sam3-agent", "mcp"]
        result = CliRunner().invoke(app, argv[1:])
        assert result.exit_code == 0, result.output
    stdio, http = served
    assert stdio["transport"] == "stdio" and stdio["tools"] == [*IMAGE_TOOLS, *VIDEO_TOOLS]
    assert (http["transport"], http["host"], http["port"], http["path"]) == ("http", "127.0.0.1", 8000, "/mcp")


def test_mcp_client_configuration(
    workdir: Path, served: list[dict[str, Any]], tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = json.loads(blocks("json")[0])["mcpServers"]["sam3"]
    assert entry["command"] == "sam3-agent"
    places = {"/path/to/sam3": str(tiny_checkpoint), "/path/to/images": str(workdir / "images")}
    for name, value in entry["env"].items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, [places.get(arg, arg) for arg in entry["args"]])
    assert result.exit_code == 0, result.output
    (config,) = served
    assert config["transport"] == "stdio" and config["tools"] == [*IMAGE_TOOLS, *VIDEO_TOOLS]


def test_mcp_python_client_example(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    printed = run_example(blocks("python")[3], workdir)
    summary, count = printed.strip().rsplit(" ", 1)
    assert summary.startswith(f"Count of 'cup': {count}")
    assert Image.open(workdir / "overlay.png").size == (160, 90)
