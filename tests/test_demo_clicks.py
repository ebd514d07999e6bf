"""The demo's point clicks on one object: handlers and page callbacks (no browser), with a fake click engine
returning exact masks (``SceneClicker``) and once with SAM 3's tracker on the tiny random checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from sam3_agent.demo.app import _Callbacks
from sam3_agent.demo.clicking import NEEDS_POSITIVE, NO_CLICKER
from sam3_agent.demo.config import DemoConfig
from sam3_agent.demo.handlers import DemoHandlers
from sam3_agent.demo.session import NEGATIVE, POSITIVE, DemoSession
from sam3_agent.engine.clicks import ClickEngine
from sam3_agent.engine.transformers_engine import Sam3Engine
from sam3_agent.errors import CheckpointError
from sam3_agent.masks import rle_decode
from sam3_agent.schema import Instance, Rle
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter
from sam3_agent.testing.scene_clicks import SceneClicker
from sam3_agent.testing.scripted import ScriptedChatModel
from sam3_agent.testing.turns import tool_call_turn

DESK = Scene(
    200,
    120,
    [
        SceneObject("laptop", (60, 20, 160, 100), shape="box", color=(90, 90, 110)),
        SceneObject("mug", (140, 50, 180, 90), color=(200, 40, 40)),  # in front of the laptop, sticking out
    ],
)
SETTINGS = {"mode": "segment", "score_threshold": 0.5, "mask_threshold": 0.5}


def handlers(tmp_path: Path, clicker: object = "scene", **kwargs: object) -> DemoHandlers:
    clicker = SceneClicker(DESK) if clicker == "scene" else clicker
    config = DemoConfig(workdir=tmp_path / "work")
    return DemoHandlers(SceneSegmenter(DESK), config, clicker=clicker, **kwargs)  # type: ignore[arg-type]


def with_image(image: Image.Image | None = None) -> DemoSession:
    session = DemoSession()
    session.new_image(image or DESK.image(), "desk.png")
    return session


def test_each_click_segments_the_object_again_from_all_points(tmp_path: Path) -> None:
    h = handlers(tmp_path)
    session = h.click(with_image(), 150, 70, True, SETTINGS)  # on the mug (which stands in front of the laptop)
    result = session.result
    assert result is not None and result.kind == "click" and session.clicks == [(150, 70, 1)]
    (mug,) = result.instances
    assert mug.id == 1 and np.array_equal(mug.mask, DESK.mask(1))
    assert f"clicked object (1 positive point): {mug.area} px" in session.hint
    session = h.click(session, 170, 70, False, SETTINGS)  # "not the mug": the laptop behind it
    (laptop,) = session.result.instances
    assert np.array_equal(laptop.mask, DESK.mask(0)) and session.clicks == [(150, 70, 1), (170, 70, 0)]
    assert [c.labels for c in h.clicker.calls] == [(1,), (1, 0)]
    json_path, mask_png = session.result.files
    record = json.loads(json_path.read_text())
    assert record["prompts"] == [] and record["clicks"]["labels"] == [1, 0]
    assert np.array_equal(rle_decode(Rle(**record["instances"][0]["rle"])), DESK.mask(0))
    assert np.array_equal(np.asarray(Image.open(mask_png)) > 0, DESK.mask(0))
    shown = session.display_image()
    assert shown.getpixel((150, 70)) == POSITIVE and shown.getpixel((170, 70)) == NEGATIVE


def test_a_negative_point_first_waits_for_one_on_the_object(tmp_path: Path) -> None:
    h = handlers(tmp_path)
    session = h.click(with_image(), 20, 20, False, SETTINGS)
    assert session.hint == NEEDS_POSITIVE and session.result is None and not h.clicker.calls
    assert session.clicks == [(20, 20, 0)]


def test_clear_clicks_and_a_new_image_forget_the_points(tmp_path: Path) -> None:
    h = handlers(tmp_path)
    session = h.click(with_image(), 150, 70, True, SETTINGS)
    session = h.clear_clicks(session)
    assert session.clicks == [] and session.result is None and "Clicks cleared" in session.hint
    session = h.click(session, 150, 70, True, SETTINGS)
    session.new_image(DESK.image(), "again.png")
    assert session.clicks == [] and session.result is None


def test_clicks_outside_the_image_land_on_its_edge_and_background_gives_an_empty_mask(tmp_path: Path) -> None:
    session = handlers(tmp_path).click(with_image(), 500, -3, True, SETTINGS)
    assert session.clicks == [(199, 0, 1)]
    assert session.result is not None and session.result.instances == () and "empty mask" in session.hint


def test_without_an_image_or_a_click_engine_the_hint_says_what_to_do(tmp_path: Path) -> None:
    assert "Attach an image" in handlers(tmp_path).click(DemoSession(), 5, 5, True, SETTINGS).hint
    session = handlers(tmp_path, clicker=None).click(with_image(), 150, 70, True, SETTINGS)
    assert session.hint == NO_CLICKER and session.clicks == []


def test_a_failing_click_engine_is_a_chat_error_and_the_point_is_dropped(tmp_path: Path) -> None:
    class NoTracker:
        def segment_at(self, *args: object, **kwargs: object) -> Instance:
            raise CheckpointError("checkpoint 'x' has no tracker")

    session = handlers(tmp_path, clicker=NoTracker()).click(with_image(), 150, 70, True, SETTINGS)
    assert session.clicks == [] and "has no tracker" in session.chat[-1]["content"]


def test_the_page_callback_routes_a_click_by_the_click_mode(tmp_path: Path) -> None:
    callbacks = _Callbacks(handlers(tmp_path))
    session = with_image()
    evt = SimpleNamespace(index=(150, 70))
    _chat, overlay, _box, hint, _panel, answer, table, files, session = callbacks.select(
        "positive", 0.5, 0.5, session, evt
    )
    assert overlay.size == (200, 120) and "#### Clicked object" in answer and table["data"][0][0] == 1
    assert files and files[0].endswith("segmentation.json") and "1 positive point" in hint
    outputs = callbacks.select("box", 0.5, 0.5, session, SimpleNamespace(index=(10, 20)))
    assert outputs[3].startswith("First corner at (10, 20)") and session.clicks == [(150, 70, 1)]
    overlay, hint, answer, table, files, session = callbacks.clear_clicks(session)
    assert answer == "" and table["data"] == [] and files is None and session.clicks == []


def test_the_agent_in_the_demo_gets_the_click_engine(tmp_path: Path) -> None:
    path = tmp_path / "desk.png"
    DESK.image().save(path)
    turns = [
        tool_call_turn("segment_at", {"points": [[150, 70]]}),
        tool_call_turn("final_answer", {"ids": [1], "text": "That is the mug."}),
    ]
    h = handlers(tmp_path, chat_model_factory=lambda settings: ScriptedChatModel(turns))
    session = DemoSession()
    message = {"text": "what is at (150, 70)?", "files": [str(path)]}
    list(h.chat(session, message, {**SETTINGS, "mode": "agent"}))
    assert any(
        "segment_at: 1 point(s) on, 0 off the object" in (m.get("metadata") or {}).get("title", "")
        for m in session.chat
    )
    assert np.array_equal(session.result.instances[0].mask, DESK.mask(1))


@pytest.mark.usefixtures("no_llm_env")
def test_clicks_with_the_tiny_tracker_sharing_the_engine(tmp_path: Path, tiny_tracker_checkpoint: Path) -> None:
    engine = Sam3Engine(tiny_tracker_checkpoint, device="cpu", dtype="float32")
    h = DemoHandlers(engine, DemoConfig(workdir=tmp_path), clicker=ClickEngine.sharing(engine))
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (80, 120, 3), dtype=np.uint8))
    session = h.click(with_image(image), 30, 40, True, {**SETTINGS, "mask_threshold": 0.0})
    session = h.click(session, 90, 20, False, {**SETTINGS, "mask_threshold": 0.0})
    (inst,) = session.result.instances
    assert inst.area == 120 * 80 and "1 positive point, 1 negative point" in session.hint
    assert engine.backbone_calls == 1 and h.clicker.encoder_calls == 1
