"""Every example of the README section on the segmentation server runs here, as written.

Stand-ins: ``./sam3`` is the tiny checkpoint; ``photo.jpg`` is a synthetic scene with two cups and a
person, served by a server on a free port (``http://127.0.0.1:8000`` in the examples is replaced by its
address) around the exact scene segmenter; the language model is the loopback replay server. The
``serve`` commands run through the real CLI with only the final serving step recorded; the load test runs
for real with fewer requests.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sam3_agent.cli import app as cli_app
from sam3_agent.server import runner
from sam3_agent.server.api import create_app
from sam3_agent.server.runner import BackgroundServer
from sam3_agent.server.settings import TOKEN_ENV, ServerSettings
from sam3_agent.testing.replay_server import ReplayServer
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter
from sam3_agent.testing.turns import tool_call_turn

REPO = Path(__file__).resolve().parents[1]
HEADING = "## Segmentation server: one resident SAM 3 for many agents"
SOURCES = (REPO / "README.md", REPO / ".notes" / "readme_server.md")
EXAMPLE_URL = "http://127.0.0.1:8000"
TOKEN = "change-me"
SCENE = Scene(
    240,
    160,
    [
        SceneObject("cup", (20, 100, 50, 140), score=0.9),
        SceneObject("cup", (180, 100, 210, 140), score=0.8),
        SceneObject("person", (90, 20, 150, 150), shape="box", color=(60, 60, 160), score=0.95),
    ],
)


def section() -> str:
    """The section in README.md, or in its draft under .notes/ until it is merged."""
    for path in SOURCES:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if HEADING in text:
            return text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    raise AssertionError(f"no {HEADING!r} section in {[str(p) for p in SOURCES]}")


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", section(), flags=re.MULTILINE | re.DOTALL)


def commands(block: str) -> list[str]:
    """The shell lines of a block, continuation lines joined, comments dropped."""
    joined = block.replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip()]


def test_the_section_has_the_examples_tested_here() -> None:
    assert [len(blocks("python")), len(blocks("bash"))] == [3, 4]


@pytest.fixture
def workdir(tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "sam3").symlink_to(tiny_checkpoint, target_is_directory=True)
    SCENE.image().save(tmp_path / "photo.jpg", quality=95)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return tmp_path


@pytest.fixture
def scene_server(workdir: Path) -> Iterator[str]:
    app = create_app(SceneSegmenter(SCENE), ServerSettings(token=TOKEN))
    with BackgroundServer(app) as server:
        yield server.base_url


def run_python(code: str, namespace: dict[str, Any]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<README>", "exec"), namespace)
    return out.getvalue()


class Recorded:
    def __init__(self) -> None:
        self.calls: list[tuple[tuple, dict]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append((args, kwargs))
        return EXAMPLE_URL


def test_serve_example(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = Recorded()
    monkeypatch.setattr(runner, "serve_forever", recorded)
    export, serve = commands(blocks("bash")[0])
    name, value = export.removeprefix("export ").split("=", 1)
    monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli_app, shlex.split(serve)[1:])
    assert result.exit_code == 0, result.output
    ((app,), kwargs) = recorded.calls[0]
    settings = app.state.sam3.settings
    assert (kwargs["host"], kwargs["port"], settings.token) == ("0.0.0.0", 8000, TOKEN)
    assert (settings.max_batch, settings.max_wait_ms) == (16, 5.0)


def test_python_client_and_agent_examples(scene_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client_code, agent_code, _ = blocks("python")
    turns = [
        tool_call_turn("segment_phrases", {"phrases": ["cup"]}),
        tool_call_turn("final_answer", {"ids": [1, 2], "text": "There are two cups.", "count": 2}),
    ]
    namespace: dict[str, Any] = {}
    printed = run_python(client_code.replace(EXAMPLE_URL, scene_server), namespace)
    assert printed.splitlines() == [
        "1 0.9 (20.0, 100.0, 50.0, 140.0) 940",
        "2 0.8 (180.0, 100.0, 210.0, 140.0) 940",
    ]
    assert len(namespace["people"]) == 1
    with ReplayServer(turns) as llm:
        monkeypatch.setenv("SAM3_AGENT_LLM_BASE_URL", llm.base_url)
        monkeypatch.setenv("SAM3_AGENT_LLM_MODEL", "replay-model")
        monkeypatch.setenv("SAM3_AGENT_LLM_API_KEY", "unused")
        printed = run_python(agent_code, namespace)
        llm.assert_complete()
    assert printed.strip() == "There are two cups. 2"
    assert namespace["sam3"].registrations == 1  # the client and the agent sent the image once


def test_curl_example(scene_server: str, workdir: Path) -> None:
    script = blocks("bash")[1].replace(EXAMPLE_URL, scene_server)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [2, 1]


def test_embedding_example(workdir: Path) -> None:
    printed = run_python(blocks("python")[2], {})
    url, max_batch = printed.split()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url) and max_batch == "16"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # ray's own
def test_ray_cluster_example(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray.serve

    from sam3_agent.server import command, ray_serve

    recorded = Recorded()
    monkeypatch.setattr(ray_serve, "start_ray_serve", recorded)
    monkeypatch.setattr(ray.serve, "shutdown", lambda: None)
    monkeypatch.setattr(command.time, "sleep", lambda _: (_ for _ in ()).throw(KeyboardInterrupt))
    (serve,) = commands(blocks("bash")[2])
    result = CliRunner().invoke(cli_app, shlex.split(serve)[1:])
    assert result.exit_code == 0, result.output
    ((checkpoint, _settings), kwargs) = recorded.calls[0]
    assert checkpoint == "/shared/sam3"
    assert (kwargs["address"], kwargs["replicas"], kwargs["host"], kwargs["port"]) == ("auto", 8, "0.0.0.0", 8000)


def load_tool() -> Any:
    spec = importlib.util.spec_from_file_location("loadtest", REPO / "tools" / "loadtest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["loadtest"] = module
    spec.loader.exec_module(module)
    return module


class InProcessServer:
    """Stands in for ``loadtest.ServerProcess``: the same server app, on the session's engine, in this process."""

    engine: Any = None

    def __init__(self, checkpoint: str, max_batch: int, max_wait_ms: float, device: Any, threads: Any) -> None:
        settings = ServerSettings(max_batch=max_batch, max_wait_ms=max_wait_ms)
        self.server = BackgroundServer(create_app(self.engine, settings))
        self.url = self.server.base_url

    def wait_ready(self) -> None:
        self.server.start()

    def cpu_seconds(self) -> float:
        return time.process_time()

    def stop(self) -> None:
        self.server.stop()


def test_load_test_examples(workdir: Path, engine: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    loadtest = load_tool()
    InProcessServer.engine = engine
    monkeypatch.setattr(loadtest, "ServerProcess", InProcessServer)
    ab, against_url = (shlex.split(line)[2:] for line in commands(blocks("bash")[3]))
    fewer = {"8": "2", "400": "8"}  # fewer clients and requests, same command
    few = [fewer.get(arg, arg) for arg in ab]
    assert loadtest.main(few) == 0
    printed = capsys.readouterr().out
    assert "dynamic batching (max batch 16)" in printed and "errors 0   lost 0" in printed
    ratio = re.search(r"batch size 1: ([\d.]+)x", printed)
    assert ratio is not None and float(ratio.group(1)) > 0
    with BackgroundServer(create_app(engine, ServerSettings(token=TOKEN))) as server:
        args = [server.base_url if a == EXAMPLE_URL else fewer.get(a, a) for a in against_url]
        assert loadtest.main(args) == 0
    printed = capsys.readouterr().out
    assert "8 requests from 2 concurrent clients" in printed and "errors 0   lost 0, mean batch" in printed


def test_load_test_server_process_is_the_real_command(tiny_checkpoint: Path) -> None:
    """The load test's server: ``sam3-agent serve`` in a subprocess, stopped by SIGTERM, gracefully."""
    loadtest = load_tool()
    server = loadtest.ServerProcess(str(tiny_checkpoint), 4, 5.0, "cpu", 1)
    try:
        server.wait_ready(timeout=120)
        runs = [
            loadtest.load(server.url, None, 2, 6, kind, warmup=1, cpu_seconds=server.cpu_seconds, client_kind=kind)
            for kind in ("raw", "remote")
        ]
    finally:
        server.stop()
    for run in runs:
        assert (len(run.latencies), run.errors, run.lost) == (6, [], 0) and run.mean_batch is not None
    assert run.server_cpu is not None and run.server_cpu > 0 and "server CPU" in run.line()
    # uvicorn re-raises SIGTERM once it has drained and shut down, hence -SIGTERM (not -SIGKILL)
    assert server.process.returncode == -signal.SIGTERM
