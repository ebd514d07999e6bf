"""The command line end to end: `segment` on the tiny checkpoint, `ask` against the loopback LLM server or, with no
LLM configured, answered by the built-in planner."""

from __future__ import annotations

import json
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sam3_agent.agent.chat_models import PLANNER_NOTICE
from sam3_agent.cli import app
from sam3_agent.masks import rle_decode
from sam3_agent.schema import Rle
from sam3_agent.testing.replay_server import ReplayServer
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter
from sam3_agent.testing.turns import text_turn, tool_call_turn

runner = CliRunner()


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)).save(path)
    return path


pytestmark = pytest.mark.usefixtures("no_llm_env")


def test_segment_writes_overlay_and_json(tiny_checkpoint: Path, photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["segment", str(photo), "cup", "red hat", "--checkpoint", str(tiny_checkpoint)]
        + ["--score-threshold", "0", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "segmentation.json").read_text())
    assert record["image_size"] == [90, 160]
    assert [p["text"] for p in record["prompts"]] == ["cup", "red hat"]
    instances = record["instances"]
    assert instances, "score threshold 0 keeps every non-empty mask"
    assert [inst["id"] for inst in instances] == list(range(1, len(instances) + 1))
    assert {inst["phrase"] for inst in instances} <= {"cup", "red hat"}
    mask = rle_decode(Rle(**instances[0]["rle"]))
    assert mask.shape == (90, 160) and mask.sum() == instances[0]["area"]
    assert Image.open(out / "segmentation_overlay.png").size == (160, 90)
    assert "cup:" in result.output and "red hat:" in result.output


def test_segment_with_exemplar_box_only(tiny_checkpoint: Path, photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["segment", str(photo), "--box", "10,10,60,50", "--neg-box", "100,20,150,80"]
        + ["--checkpoint", str(tiny_checkpoint), "--score-threshold", "0", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    prompts = json.loads((out / "segmentation.json").read_text())["prompts"]
    assert [b["positive"] for b in prompts[0]["boxes"]] == [True, False]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--box", "50,50,10,10"], "inverted"),
        (["--box", "500,500,600,600"], "outside"),
        (["--box", "1,2,3"], "expected four"),
        (["--box", "a,b,c,d"], "four numbers"),
    ],
)
def test_segment_bad_boxes_exit_2(tiny_checkpoint: Path, photo: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["segment", str(photo), "cup", "--checkpoint", str(tiny_checkpoint), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_segment_unreadable_image_exit_2(tiny_checkpoint: Path, tmp_path: Path) -> None:
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image at all")
    result = runner.invoke(app, ["segment", str(bad), "cup", "--checkpoint", str(tiny_checkpoint)])
    assert result.exit_code == 2
    assert "error:" in result.output


def test_missing_checkpoint_says_how_to_get_weights(photo: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["segment", str(photo), "cup", "--checkpoint", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert "facebook/sam3" in result.output and "make_tiny_checkpoint" in result.output


def test_ask_end_to_end_over_http(tiny_checkpoint: Path, photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    turns = [
        tool_call_turn("segment_phrases", {"phrases": ["cup"]}),
        tool_call_turn("final_answer", {"ids": [1], "text": "There is one cup.", "count": 1}),
    ]
    with ReplayServer(turns) as server:
        result = runner.invoke(
            app,
            ["ask", str(photo), "how many cups are there?", "--checkpoint", str(tiny_checkpoint)]
            + ["--llm-base-url", server.base_url, "--llm-model", "replay-model"]
            + ["--score-threshold", "0", "--out", str(out)],
        )
        server.assert_complete()
    assert result.exit_code == 0, result.output
    assert "There is one cup." in result.output and "count: 1" in result.output
    answer = json.loads((out / "answer.json").read_text())
    assert answer["status"] == "answered" and answer["count"] == 1
    assert [inst["id"] for inst in answer["instances"]] == [1]
    assert [step["tool"] for step in answer["trace"]] == ["segment_phrases", "final_answer"]
    assert (out / "answer_overlay.png").exists() and (out / "masks" / "mask_1.png").exists()
    first_request = server.requests[0]
    assert any(part.get("type") == "image_url" for msg in first_request["messages"] for part in _parts(msg)), (
        "the image was not sent to the model"
    )


def test_ask_gave_up_exits_1(tiny_checkpoint: Path, photo: Path, tmp_path: Path) -> None:
    turns = [text_turn("let me think"), text_turn("still thinking")]
    with ReplayServer(turns) as server:
        result = runner.invoke(
            app,
            ["ask", str(photo), "where is the cat?", "--checkpoint", str(tiny_checkpoint), "--max-turns", "2"]
            + ["--llm-base-url", server.base_url, "--llm-model", "m", "--out", str(tmp_path / "o")],
        )
    assert result.exit_code == 1
    assert json.loads((tmp_path / "o" / "answer.json").read_text())["status"] == "gave_up"


DESK = Scene(
    200,
    120,
    [
        SceneObject("cup", (10, 60, 40, 100)),
        SceneObject("cup", (50, 60, 80, 100)),
        SceneObject("laptop", (95, 30, 150, 90), shape="box", color=(90, 90, 110)),
        SceneObject("cup", (160, 60, 190, 100), color=(40, 40, 200)),
    ],
)


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A photo of ``DESK``; ``ask`` segments it with a ``SceneSegmenter`` (true masks) instead of SAM 3."""
    monkeypatch.setattr("sam3_agent.cli._load_segmenter", lambda *args: SceneSegmenter(DESK))
    path = tmp_path / "desk.png"
    DESK.image().save(path)
    return path


def test_ask_without_an_llm_uses_the_planner_on_the_tiny_checkpoint(
    tiny_checkpoint: Path, photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unused")  # a key alone configures no model
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["ask", str(photo), "how many cups are left of the laptop?", "--checkpoint", str(tiny_checkpoint)]
        + ["--score-threshold", "0", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert result.stderr.count(PLANNER_NOTICE) == 1 and PLANNER_NOTICE not in result.stdout
    assert "answer:" in result.stdout and "Traceback" not in result.output
    answer = json.loads((out / "answer.json").read_text())
    assert answer["status"] in ("answered", "no_match")
    assert answer["trace"] and answer["trace"][0]["tool"] == "segment_phrases"
    assert (out / "answer_overlay.png").exists()


def test_ask_without_an_llm_answers_a_relation_query(desk: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["ask", str(desk), "how many cups are left of the laptop?", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.count(PLANNER_NOTICE) == 1
    assert "count: 2" in result.stdout
    assert "✓ segment_phrases" in result.stderr, "the steps are printed"
    answer = json.loads((out / "answer.json").read_text())
    assert (answer["status"], answer["count"]) == ("answered", 2)
    assert sorted(inst["box"][0] for inst in answer["instances"]) == [10, 50]


def test_ask_without_an_llm_an_unparseable_query_gives_up_cleanly(desk: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["ask", str(desk), "why is the sky blue?", "--out", str(out)])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), "a clean exit, not an exception"
    assert "Traceback" not in result.output and "error:" not in result.output
    answer = json.loads((out / "answer.json").read_text())
    assert answer["status"] == "gave_up" and answer["text"]
    assert answer["text"] in " ".join(result.stdout.split()), "the planner's reason is printed"
    assert result.output.count(PLANNER_NOTICE) == 1


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--llm-base-url", "http://127.0.0.1:9/v1"], {}), ([], {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})],
    ids=["flag", "env"],
)
def test_ask_with_an_endpoint_but_no_model_is_a_config_error(
    photo: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = runner.invoke(app, ["ask", str(photo), "how many cups?", *args])
    assert result.exit_code == 2
    assert "--llm-model" in result.output and PLANNER_NOTICE not in result.output


def test_ask_empty_query_exit_2(photo: Path) -> None:
    result = runner.invoke(app, ["ask", str(photo), "   ", "--llm-model", "m"])
    assert result.exit_code == 2
    assert "query is empty" in result.output


def test_ask_huge_query_exit_2_before_loading_sam3(photo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: object) -> None:
        raise AssertionError("SAM 3 was loaded for a query that could not run")

    monkeypatch.setattr("sam3_agent.cli._load_segmenter", never)
    result = runner.invoke(app, ["ask", str(photo), "cup " * 2000])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "at most 4000 are accepted" in result.output


def test_segment_on_a_missing_cuda_device_exits_2(tiny_checkpoint: Path, photo: Path, monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = ["segment", str(photo), "cup", "--checkpoint", str(tiny_checkpoint), "--device", "cuda"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "no CUDA device is visible" in result.output


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).parent / "sam3-agent"
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True)
    assert "ask" in result.stdout and "segment" in result.stdout


def _parts(message: dict) -> list[dict]:
    content = message.get("content")
    return content if isinstance(content, list) else []


def test_segment_and_ask_through_a_segmentation_server(engine, photo: Path, tmp_path: Path) -> None:
    from sam3_agent.server.api import create_app
    from sam3_agent.server.runner import BackgroundServer
    from sam3_agent.server.settings import ServerSettings

    def run(*args: str):
        return runner.invoke(app, ["segment", str(photo), "cup", "--score-threshold", "0", *args])

    with BackgroundServer(create_app(engine, ServerSettings(token="s3cret"))) as server:
        local = run("--checkpoint", engine.checkpoint, "--out", str(tmp_path / "local"))
        remote = run("--server", server.base_url, "--token", "s3cret", "--out", str(tmp_path / "remote"))
        refused = run("--server", server.base_url, "--token", "wrong")
        mixed = run("--server", server.base_url, "--checkpoint", "x")
        turns = [
            tool_call_turn("segment_phrases", {"phrases": ["cup"]}),
            tool_call_turn("final_answer", {"ids": [1], "text": "A cup.", "count": 1}),
        ]
        with ReplayServer(turns) as llm:
            asked = runner.invoke(
                app,
                ["ask", str(photo), "how many cups?", "--server", server.base_url, "--token", "s3cret"]
                + ["--llm-base-url", llm.base_url, "--llm-model", "m", "--score-threshold", "0"]
                + ["--out", str(tmp_path / "ask")],
            )
    assert local.exit_code == 0, local.output
    assert remote.exit_code == 0, remote.output
    records = [json.loads((tmp_path / d / "segmentation.json").read_text()) for d in ("local", "remote")]
    assert records[0]["instances"] and records[0]["instances"] == records[1]["instances"]
    assert refused.exit_code == 2 and "token" in refused.output.lower(), refused.output
    assert mixed.exit_code == 2 and "--checkpoint" in mixed.output
    assert asked.exit_code == 0, asked.output
    assert json.loads((tmp_path / "ask" / "answer.json").read_text())["count"] == 1


REPO = Path(__file__).resolve().parent.parent


def _quick_start_commands() -> list[str]:
    """Every `sam3-agent ...` and `python tools/...` command of the README's Quick start (blocks and inline)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL):
        commands += [line.split("#")[0].strip() for line in block.splitlines()]
    commands += [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", section.replace("```", ""))]
    return [c for c in commands if c.startswith(("sam3-agent ", "python tools/"))]


def test_the_quick_start_names_files_that_exist() -> None:
    commands = _quick_start_commands()
    assert any("examples/desk.jpg" in c for c in commands)
    for command in commands:
        for arg in shlex.split(command):
            if arg.endswith((".jpg", ".jpeg", ".png", ".py")):
                assert (REPO / arg).is_file(), f"{command!r} names {arg!r}, which is not in the repository"
    sample = REPO / "examples" / "desk.jpg"
    assert sample.stat().st_size < 100_000


def test_the_quick_start_commands_run_as_written(
    tiny_checkpoint: Path, tiny_tracker_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    ran = 0
    for command in _quick_start_commands():
        argv = shlex.split(command)
        if argv[0] != "sam3-agent" or "./tiny-sam3" not in argv:
            continue  # the tools, and the main job (it needs the real weights)
        checkpoint = tiny_tracker_checkpoint if "--point" in argv else tiny_checkpoint
        result = runner.invoke(app, [str(checkpoint) if a == "./tiny-sam3" else a for a in argv[1:]])
        assert result.exit_code == 0, f"{command}\n{result.output}"
        ran += 1
    assert ran == 3
    assert sorted(p.name for p in (tmp_path / "outputs" / "desk").iterdir() if p.suffix) == [
        "answer.json",
        "answer_overlay.png",
        "segmentation.json",
        "segmentation_overlay.png",
    ]


def test_the_sample_image_is_what_the_tool_renders(tmp_path: Path) -> None:
    tool = runpy.run_path(str(REPO / "tools" / "make_sample_image.py"))
    assert tool["main"]([str(tmp_path / "desk.jpg")]) == 0
    shipped, rendered = (
        np.asarray(Image.open(p), np.float32) for p in (REPO / "examples/desk.jpg", tmp_path / "desk.jpg")
    )
    assert shipped.shape == rendered.shape == (427, 640, 3)
    assert np.abs(shipped - rendered).mean() < 2
