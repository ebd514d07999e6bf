"""The README's "Python API" example runs as written, on the tiny checkpoint and the loopback LLM server."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam3_agent.testing.replay_server import ReplayServer
from sam3_agent.testing.turns import tool_call_turn

README = Path(__file__).resolve().parents[1] / "README.md"


def python_api_example() -> str:
    section = README.read_text().split("## Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's Python API section has no python code block"
    return match.group(1)


def test_python_api_example_runs(tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (120, 200, 3), dtype=np.uint8)).save("photo.jpg")
    (tmp_path / "sam3").symlink_to(tiny_checkpoint, target_is_directory=True)
    code = python_api_example().replace("Thresholds(score=0.5)", "Thresholds(score=0.0)")
    turns = [
        tool_call_turn("segment_phrases", {"phrases": ["cup", "laptop"]}),
        tool_call_turn("final_answer", {"ids": [1], "text": "One cup.", "count": 1}),
    ]
    with ReplayServer(turns) as server:
        code = code.replace("http://localhost:8000/v1", server.base_url)
        namespace: dict = {"__name__": "__readme__"}
        exec(compile(code, "README Python API example", "exec"), namespace)
        server.assert_complete()
    assert namespace["engine"].backbone_calls == 1
    assert namespace["cups"], "score threshold 0 keeps every non-empty mask of the tiny model"
    answer = namespace["answer"]
    assert (answer.status, answer.count, [i.id for i in answer.instances]) == ("answered", 1, [1])
