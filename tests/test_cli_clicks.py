"""`sam3-agent segment IMAGE --point x,y [--neg-point x,y] [--box ...]` and the clicker in `ask`, end to end on the
tiny random full checkpoint (SAM 3's tracker), through a segmentation server, and with bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sam3_agent.cli import app
from sam3_agent.engine.clicks import ClickEngine
from sam3_agent.masks import rle_decode
from sam3_agent.schema import Instance, Rle
from sam3_agent.server.api import create_app
from sam3_agent.server.runner import BackgroundServer
from sam3_agent.testing.replay_server import ReplayServer
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter
from sam3_agent.testing.scene_clicks import SceneClicker
from sam3_agent.testing.turns import tool_call_turn

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("no_llm_env")


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8)).save(path)
    return path


def test_segment_by_clicks_writes_one_mask_like_the_other_segment_outputs(
    tiny_tracker_checkpoint: Path, photo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    clicks = ["--point", "50,40", "--point", "60,45", "--neg-point", "120,20", "--box", "10,5,140,85"]
    result = runner.invoke(
        app, ["segment", str(photo), *clicks, "--checkpoint", str(tiny_tracker_checkpoint), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "segmentation.json").read_text())
    assert record["image_size"] == [90, 160] and record["prompts"] == []
    assert record["clicks"] == {"points": [[50, 40], [60, 45], [120, 20]], "labels": [1, 1, 0], "box": [10, 5, 140, 85]}
    alone = ClickEngine(tiny_tracker_checkpoint, device="cpu", dtype="float32")
    expected = alone.segment_at(Image.open(photo), [(50, 40), (60, 45), (120, 20)], [1, 1, 0], (10, 5, 140, 85))
    assert [Instance.model_validate(i) for i in record["instances"]] == ([expected] if expected.area else [])
    assert Image.open(out / "segmentation_overlay.png").size == (160, 90)
    assert "clicked object (2 positive points, 1 negative point, a box)" in result.output


def test_the_mask_threshold_applies(tiny_tracker_checkpoint: Path, photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["segment", str(photo), "--point", "50,40", "--mask-threshold", "0", "--out", str(out)]
    result = runner.invoke(app, [*args, "--checkpoint", str(tiny_tracker_checkpoint)])
    assert result.exit_code == 0, result.output
    (inst,) = json.loads((out / "segmentation.json").read_text())["instances"]
    assert inst["area"] == 90 * 160 and rle_decode(Rle(**inst["rle"])).all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--point", "500,10"], "outside the 160x90 image"),
        (["--point", "1,2,3"], "expected two"),
        (["--point", "a,b"], "two numbers"),
        (["cup", "--point", "5,5"], "drop the phrases"),
        (["--point", "5,5", "--neg-box", "1,1,9,9"], "at most one --box"),
        (["--point", "5,5", "--box", "1,1,9,9", "--box", "2,2,8,8"], "at most one --box"),
        (["--point", "5,5", "--box", "9,9,1,1"], "empty or inverted"),
        (["--point", "5,5", "--tile"], "--tile applies to phrase search"),
    ],
)
def test_bad_clicks_exit_2_before_anything_loads(photo: Path, tmp_path: Path, args: list[str], message: str) -> None:
    missing = tmp_path / "no-checkpoint"
    result = runner.invoke(app, ["segment", str(photo), *args, "--checkpoint", str(missing)])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def test_a_detector_only_checkpoint_says_clicks_need_the_tracker(tiny_checkpoint: Path, photo: Path) -> None:
    result = runner.invoke(app, ["segment", str(photo), "--point", "5,5", "--checkpoint", str(tiny_checkpoint)])
    assert result.exit_code == 1
    assert "--tracker" in " ".join(result.output.split())


def test_segment_by_clicks_on_a_segmentation_server(tmp_path: Path) -> None:
    scene = Scene(120, 80, [SceneObject("cup", (10, 20, 50, 70)), SceneObject("bowl", (60, 20, 110, 70))])
    scene.image().save(tmp_path / "scene.png")
    app_ = create_app(SceneSegmenter(scene), clicker=SceneClicker(scene))
    with BackgroundServer(app_) as server:
        out = tmp_path / "out"
        args = ["segment", str(tmp_path / "scene.png"), "--point", "80,40", "--server", server.base_url]
        result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    (inst,) = json.loads((out / "segmentation.json").read_text())["instances"]
    assert np.array_equal(rle_decode(Rle(**inst["rle"])), scene.mask(1))


def test_ask_gives_the_agent_the_tracker(tiny_tracker_checkpoint: Path, photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    turns = [
        tool_call_turn("segment_at", {"points": [[50, 40]], "box": [10, 5, 140, 85]}),
        tool_call_turn("final_answer", {"ids": [], "text": "Clicked."}),
    ]
    with ReplayServer(turns) as server:
        result = runner.invoke(
            app,
            ["ask", str(photo), "what is at (50, 40)?", "--checkpoint", str(tiny_tracker_checkpoint)]
            + ["--llm-base-url", server.base_url, "--llm-model", "replay-model", "--out", str(out)]
            + ["--mask-threshold", "0"],
        )
        server.assert_complete()
    assert result.exit_code == 0, result.output
    step = json.loads((out / "answer.json").read_text())["trace"][0]
    assert step["tool"] == "segment_at" and step["ok"] and step["summary"].startswith("New mask from the clicks")
