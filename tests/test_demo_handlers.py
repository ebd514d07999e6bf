"""The demo's handlers as plain functions (no Gradio): a synthetic scene with known masks, a scripted model or,
with no LLM set, the built-in planner."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam3_agent.agent.llm_settings import LLMSettings
from sam3_agent.agent.loop import Sam3Agent
from sam3_agent.agent.messages import AssistantMessage
from sam3_agent.demo import formatting as fmt
from sam3_agent.demo.config import DemoConfig, TurnSettings
from sam3_agent.demo.handlers import PLANNING, DemoHandlers, parse_box_text
from sam3_agent.demo.session import DRAWN, NEGATIVE, POSITIVE, DemoSession
from sam3_agent.demo.streaming import stream_agent
from sam3_agent.errors import ConfigError, LLMError, PromptError
from sam3_agent.masks import rle_decode
from sam3_agent.schema import MAX_PHRASE_CHARS, Answer, Instance, Prompt, Rle, Thresholds, TraceStep
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter
from sam3_agent.testing.scripted import ScriptedChatModel, failing_turn
from sam3_agent.testing.turns import tool_call_turn

DESK = Scene(
    240,
    160,
    [
        SceneObject("cup", (170, 90, 200, 130), color=(200, 40, 40), score=0.95),  # right of the laptop
        SceneObject("cup", (20, 90, 50, 130), color=(200, 40, 40), score=0.9),  # left of the laptop
        SceneObject("laptop", (80, 50, 160, 130), shape="box", color=(90, 90, 110), score=0.92),
        SceneObject("mug", (205, 20, 235, 60), color=(40, 90, 200), score=0.8),
    ],
)
AGENT = {"mode": "agent", "llm_model": "scripted", "score_threshold": 0.5}
SEGMENT = {"mode": "segment"}
RELATION_TURNS = [
    tool_call_turn("segment_phrases", {"phrases": ["cup", "laptop"]}),
    tool_call_turn("spatial_filter", {"subject_ids": [1, 2], "relation": "left_of", "anchor_ids": [3]}),
    tool_call_turn("final_answer", {"ids": [2], "text": "The cup left of the laptop is #2.", "count": 1}),
]


class Models:
    """A chat-model factory handing out scripted models, recording the LLM settings each question used."""

    def __init__(self, *scripts: Sequence[AssistantMessage]) -> None:
        self.models = [ScriptedChatModel(turns) for turns in scripts]
        self.settings: list[LLMSettings | None] = []

    def __call__(self, settings: LLMSettings | None) -> ScriptedChatModel:
        self.settings.append(settings)
        return self.models[len(self.settings) - 1]


@pytest.fixture
def desk_png(tmp_path: Path) -> Path:
    path = tmp_path / "desk.png"
    DESK.image().save(path)
    return path


def make(tmp_path: Path, models: Callable | None = None, **config) -> DemoHandlers:
    return DemoHandlers(
        SceneSegmenter(DESK),
        DemoConfig(workdir=tmp_path / "work", **config),
        chat_model_factory=models or Models(),
    )


def run(gen) -> list[DemoSession]:
    return list(gen)


def last_text(session: DemoSession) -> str:
    content = session.chat[-1]["content"]
    return content if isinstance(content, str) else ""


def titles(session: DemoSession) -> list[str]:
    return [m["metadata"]["title"] for m in session.chat if m.get("metadata")]


def test_upload_and_ask_streams_each_step_before_the_answer(tmp_path: Path, desk_png: Path) -> None:
    models = Models(RELATION_TURNS)
    handlers = make(tmp_path, models)
    session = DemoSession()
    snapshots = []
    for s in handlers.chat(session, {"text": "the cup left of the laptop", "files": [str(desk_png)]}, AGENT):
        snapshots.append((list(titles(s)), s.result is not None))
    models.models[0].assert_complete()
    # the image is shown first, then "planning" with a spinner, then each step as it happens, then the answer
    assert snapshots[0] == ([], False)
    assert snapshots[1] == ([PLANNING.format(model="scripted")], False)
    step_titles = [t for t, _ in snapshots[2:] if t and t[0].startswith("Step 1")]
    assert step_titles, snapshots
    first_step = next(i for i, (t, _) in enumerate(snapshots) if any(x.startswith("Step 1") for x in t))
    assert snapshots[first_step][1] is False, "step 1 must be shown before the answer exists"
    assert snapshots[-1][1] is True
    assert titles(session) == [
        'Step 1 · segment_phrases: "cup", "laptop"',
        "Step 2 · spatial_filter: #1, #2 left of #3",
        "Step 3 · final_answer: masks #2",
    ]
    logs = [m["metadata"].get("log") for m in session.chat if m.get("metadata")]
    assert logs == ["3 masks found", "→ #2", None]
    assert session.image is not None and session.image.size == (240, 160)
    assert session.chat[0]["content"]["alt_text"] == "desk.png"
    assert Path(session.chat[0]["content"]["path"]).exists()
    assert "The cup left of the laptop is #2." in last_text(session) and "**Count: 1**" in last_text(session)
    assert last_text(session).endswith("*Answered by scripted.*")
    result = session.result
    assert result is not None and result.kind == "answer" and result.count == 1
    assert [inst.id for inst in result.instances] == [2]
    assert fmt.table_rows(result.instances) == [[2, "cup", 0.9, result.instances[0].area, "20, 90, 50, 130"]]
    assert session.phrase == "cup"
    json_path, *masks = result.files
    record = json.loads(json_path.read_text())
    assert record["status"] == "answered" and record["count"] == 1 and record["image_size"] == [160, 240]
    mask = rle_decode(Rle(**record["instances"][0]["rle"]))
    assert np.array_equal(mask, DESK.mask(1))
    assert [p.name for p in masks] == ["mask_2.png"]
    assert np.array_equal(np.asarray(Image.open(masks[0])) > 0, DESK.mask(1))
    assert session.result.overlay.size == (240, 160)


def test_follow_up_question_uses_the_same_image_without_a_new_upload(tmp_path: Path, desk_png: Path) -> None:
    follow_up = [
        tool_call_turn("segment_phrases", {"phrases": ["mug"]}),
        tool_call_turn("final_answer", {"ids": [1], "text": "One mug.", "count": 1}),
    ]
    models = Models(RELATION_TURNS, follow_up)
    handlers = make(tmp_path, models)
    session = DemoSession()
    run(handlers.chat(session, {"text": "the cup left of the laptop", "files": [str(desk_png)]}, AGENT))
    image = session.image
    run(handlers.chat(session, {"text": "how many mugs?", "files": []}, AGENT))
    assert session.image is image
    assert session.result is not None and session.result.count == 1
    assert [inst.phrase for inst in session.result.instances] == ["mug"]
    # the second run sent the same image to the model (and the segmenter)
    assert len(models.models[1].requests) == 2
    user_texts = [m["content"] for m in session.chat if m["role"] == "user" and isinstance(m["content"], str)]
    assert user_texts == ["the cup left of the laptop", "how many mugs?"]


def test_segment_only_mode_numbers_masks_from_one_and_writes_downloads(tmp_path: Path, desk_png: Path) -> None:
    handlers = make(tmp_path)
    session = DemoSession()
    run(handlers.chat(session, {"text": "cup, laptop; Cup\nzebra", "files": [str(desk_png)]}, SEGMENT))
    result = session.result
    assert result is not None and result.kind == "segmentation"
    assert [(inst.id, inst.phrase) for inst in result.instances] == [(1, "cup"), (2, "cup"), (3, "laptop")]
    assert result.markdown == "**cup**: 2 masks (#1, #2)\n\n**laptop**: 1 mask (#3)\n\n**zebra**: 0 masks"
    assert session.phrase == "cup"
    record = json.loads(result.files[0].read_text())
    assert [p["text"] for p in record["prompts"]] == ["cup", "laptop", "zebra"]
    assert [p.name for p in result.files[1:]] == ["mask_1.png", "mask_2.png", "mask_3.png"]
    assert not any((m.get("metadata") or {}).get("status") == "pending" for m in session.chat)


def test_refine_with_negative_then_positive_boxes(tmp_path: Path, desk_png: Path) -> None:
    handlers = make(tmp_path)
    session = DemoSession()
    run(handlers.chat(session, {"text": "cup", "files": [str(desk_png)]}, SEGMENT))
    assert len(session.result.instances) == 2
    # a negative box on the right cup removes it
    run(handlers.refine(session, "165, 85, 205, 135", False, "cup", SEGMENT))
    assert [inst.box for inst in session.result.instances] == [(20.0, 90.0, 50.0, 130.0)]
    assert "negative box [165, 85, 205, 135]" in session.chat[-2]["content"]
    # a positive box drawn by two clicks around the mug adds every mug; the negative box still applies
    handlers.pick(session, 206, 21)
    handlers.pick(session, 233, 58)
    run(handlers.refine(session, "", True, "cup", SEGMENT))
    assert [(e.box, e.positive) for e in session.exemplars] == [
        ((165.0, 85.0, 205.0, 135.0), False),
        ((206, 21, 234, 59), True),
    ]
    assert sorted(inst.box for inst in session.result.instances) == [
        (20.0, 90.0, 50.0, 130.0),
        (205.0, 20.0, 235.0, 60.0),
    ]
    shown = np.asarray(session.display_image())
    assert tuple(shown[21, 215]) == POSITIVE and tuple(shown[100, 165]) == NEGATIVE
    record = json.loads(session.result.files[0].read_text())
    assert [b["positive"] for b in record["prompts"][0]["boxes"]] == [False, True]
    # another phrase starts a fresh exemplar list
    run(handlers.refine(session, "80, 50, 160, 130", True, "laptop", SEGMENT))
    assert len(session.exemplars) == 1 and session.exemplar_phrase == "laptop"


def test_two_clicks_make_an_inclusive_box_in_image_pixels(tmp_path: Path, desk_png: Path) -> None:
    handlers = make(tmp_path)
    session = DemoSession()
    handlers.pick(session, 3, 4)
    assert session.corner is None and "Attach an image" in session.hint
    run(handlers.chat(session, {"text": "", "files": [str(desk_png)]}, SEGMENT))
    handlers.pick(session, 30, 40)
    assert session.corner == (30, 40) and session.box is None and "opposite corner" in session.hint
    assert tuple(np.asarray(session.display_image())[40, 30]) == DRAWN
    handlers.pick(session, 10.6, 500)  # below the image: clamped to the last row
    assert session.box == (10, 40, 31, 160) and session.corner is None
    assert "[10, 40, 31, 160]" in session.hint
    handlers.clear_exemplars(session)
    assert session.box is None and session.exemplars == []


@pytest.mark.parametrize(
    ("name", "data", "config", "reason"),
    [
        ("notes.txt", b"not an image at all", {}, "'notes.txt' is not a recognised image format"),
        ("big.png", None, {"max_upload_bytes": 500}, "over the upload limit of 0.0 MB"),
        ("huge.png", None, {"max_pixels": 1000}, "over the limit of 1,000"),
        ("empty.png", b"", {}, "'empty.png' is empty"),
    ],
)
def test_bad_uploads_are_refused_with_a_reason(tmp_path: Path, desk_png: Path, name, data, config, reason) -> None:
    handlers = make(tmp_path, **config)
    session = DemoSession()
    run(handlers.chat(session, {"text": "", "files": [str(desk_png)]}, SEGMENT)) if not config else None
    before = session.image
    bad = tmp_path / name
    bad.write_bytes(data if data is not None else desk_png.read_bytes())
    run(handlers.chat(session, {"text": "cup", "files": [str(bad)]}, SEGMENT))
    text = last_text(session)
    assert text.startswith("**Error:** that upload was refused: ") and reason in text, text
    assert session.image is before, "a refused upload must not replace the current image"
    assert session.chat[-2]["content"] == f"Attached {name}"


def test_only_the_last_of_several_images_is_used(tmp_path: Path, desk_png: Path) -> None:
    other = tmp_path / "small.png"
    Image.new("RGB", (20, 10)).save(other)
    session = DemoSession()
    run(make(tmp_path).chat(session, {"text": "", "files": [str(other), str(desk_png)]}, SEGMENT))
    assert session.image.size == (240, 160) and "only the last of 2" in last_text(session)


def _failing(error: Exception) -> ScriptedChatModel:
    return ScriptedChatModel([failing_turn(error)])


@pytest.mark.parametrize(
    ("settings", "factory", "message"),
    [
        ({**AGENT, "llm_base_url": "ftp://x"}, None, "must be an http(s) URL"),
        ({**AGENT, "llm_model": "local:/srv/other"}, None, "only its operator can choose one"),
        ({**AGENT, "score_threshold": 2}, None, "invalid settings: score_threshold"),
        (AGENT, lambda s: _failing(LLMError("HTTP 503 from http://llm")), "the language model failed: HTTP 503"),
        (AGENT, lambda s: _failing(RuntimeError("boom")), "something went wrong inside the demo (RuntimeError: boom)"),
    ],
)
def test_errors_become_readable_chat_messages(tmp_path: Path, desk_png: Path, settings, factory, message) -> None:
    handlers = make(tmp_path, factory)
    session = DemoSession()
    run(handlers.chat(session, {"text": "", "files": [str(desk_png)]}, SEGMENT))
    run(handlers.chat(session, {"text": "where is the cup?", "files": []}, settings))
    text = last_text(session)
    assert text.startswith("**Error:** ") and message in text, text
    assert "Traceback" not in text
    assert session.error == text.removeprefix("**Error:** "), "the page raises this line as gr.Error"
    assert not any((m.get("metadata") or {}).get("status") == "pending" for m in session.chat)
    run(handlers.chat(session, {"text": "cup", "files": []}, SEGMENT))
    assert session.error == "", "a later action that succeeds clears the error"


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda h, s: h.chat(s, {"text": "cup", "files": []}, SEGMENT), "there is no image yet"),
        (lambda h, s: h.chat(s, {"text": "  ", "files": []}, SEGMENT), "type a question"),
        (lambda h, s: h.refine(s, "1, 2, 3, 4", True, "cup", SEGMENT), "there is no image yet"),
    ],
)
def test_actions_without_an_image_explain_what_to_do(tmp_path: Path, action, message) -> None:
    session = DemoSession()
    run(action(make(tmp_path), session))
    assert message in last_text(session)


@pytest.mark.parametrize(
    ("box", "positive", "phrase", "message"),
    [
        ("", True, "cup", "draw a box first"),
        ("1, 2, 3", True, "cup", "has 3 numbers; expected four"),
        ("a, b, c, d", True, "cup", "must be four numbers"),
        ("50, 50, 10, 10", True, "cup", "empty or inverted"),
        ("300, 300, 400, 400", True, "cup", "outside the 240x160 image"),
        ("10, 10, 40, 40", False, "", "without a phrase, give a positive box first"),
    ],
)
def test_bad_refinements_are_refused(tmp_path: Path, desk_png: Path, box, positive, phrase, message) -> None:
    handlers = make(tmp_path)
    session = DemoSession()
    run(handlers.chat(session, {"text": "cup", "files": [str(desk_png)]}, SEGMENT))
    run(handlers.refine(session, box, positive, phrase, SEGMENT))
    assert message in last_text(session), last_text(session)
    assert session.exemplars == []


def test_refine_by_exemplar_alone_finds_objects_like_the_box(tmp_path: Path, desk_png: Path) -> None:
    handlers = make(tmp_path)
    session = DemoSession()
    run(handlers.chat(session, {"text": "", "files": [str(desk_png)]}, SEGMENT))
    run(handlers.refine(session, "[20, 90, 50, 130]", True, "", SEGMENT))
    assert len(session.result.instances) == 2
    assert {inst.phrase for inst in session.result.instances} == {"exemplar (1 positive, 0 negative)"}


def test_new_chat_forgets_everything_and_deletes_files(tmp_path: Path, desk_png: Path) -> None:
    handlers = make(tmp_path)
    session = DemoSession()
    run(handlers.chat(session, {"text": "cup", "files": [str(desk_png)]}, SEGMENT))
    files = session.result.files
    assert all(p.exists() for p in files)
    fresh = handlers.reset(session)
    assert fresh.chat == [] and fresh.image is None and fresh.result is None
    assert not any(p.exists() for p in files)


def test_sessions_do_not_share_state(tmp_path: Path, desk_png: Path) -> None:
    handlers = make(tmp_path)
    a, b = DemoSession(), DemoSession()
    run(handlers.chat(a, {"text": "cup", "files": [str(desk_png)]}, SEGMENT))
    run(handlers.chat(b, {"text": "laptop", "files": []}, SEGMENT))
    assert b.image is None and "there is no image yet" in last_text(b)
    assert a.result is not None and b.result is None and a.workdir != b.workdir


@pytest.mark.parametrize(
    ("page_key", "page_url", "expected"),
    [
        ("", "http://llm:8000/v1", "server-key"),  # the server's endpoint: the server's key
        ("", "http://elsewhere/v1", None),  # another endpoint never gets the server's key
        ("mine", "http://elsewhere/v1", "mine"),
    ],
)
def test_llm_settings_only_send_the_server_key_to_the_server_endpoint(page_key, page_url, expected) -> None:
    config = DemoConfig(llm_base_url="http://llm:8000/v1", llm_model="m", llm_api_key="server-key")
    turn = TurnSettings(mode="agent", llm_model="m", llm_base_url=page_url, llm_api_key=page_key)
    settings = turn.llm_settings(config)
    assert settings is not None and settings.api_key == expected


def test_no_llm_model_means_the_planner_and_local_models_are_the_operators() -> None:
    config = DemoConfig(llm_base_url="http://llm:8000/v1", llm_model="local:/srv/qwen")
    assert TurnSettings(mode="agent").llm_settings(config) is None
    assert TurnSettings(mode="agent", llm_base_url="http://llm:8000/v1").llm_settings(config) is None
    local = TurnSettings(mode="agent", llm_model="local:/srv/qwen").llm_settings(config)
    assert local is not None and local.is_local
    with pytest.raises(ConfigError, match="only its operator"):
        TurnSettings(mode="agent", llm_model="local:/etc").llm_settings(config)
    assert DemoConfig().answered_by == "built-in planner" and DemoConfig().default_mode == "agent"
    assert DemoConfig(llm_model="gpt-4o", llm_base_url="http://x/v1").answered_by == "gpt-4o at http://x/v1"


PLANNER_DESK = Scene(
    240,
    160,
    [
        SceneObject("cup", (20, 90, 50, 130)),
        SceneObject("cup", (55, 90, 75, 130)),
        SceneObject("laptop", (80, 50, 160, 130), shape="box", color=(90, 90, 110)),
        SceneObject("cup", (170, 90, 200, 130)),
    ],
)


@pytest.mark.parametrize(
    ("query", "status", "count"),
    [
        ("how many cups are left of the laptop?", "answered", 2),
        ("segment the cups", "answered", None),
        ("why is the sky blue?", "gave_up", None),
    ],
)
def test_agent_mode_without_an_llm_is_answered_by_the_planner(
    tmp_path: Path, query: str, status: str, count: int | None
) -> None:
    """The default factory (``make_chat_model``) and no model on the page: the built-in planner answers."""
    handlers = DemoHandlers(SceneSegmenter(PLANNER_DESK), DemoConfig(workdir=tmp_path / "work"))
    image = tmp_path / "desk.png"
    PLANNER_DESK.image().save(image)
    session = DemoSession()
    snapshots = [titles(s) for s in handlers.chat(session, {"text": query, "files": [str(image)]}, {"mode": "agent"})]
    assert [PLANNING.format(model="built-in planner")] in snapshots
    text = last_text(session)
    assert not text.startswith("**Error:**") and "Traceback" not in text, text
    assert text.endswith("*Answered by built-in planner.*")
    assert session.result is not None and session.result.kind == "answer"
    record = json.loads(session.result.files[0].read_text())
    assert record["status"] == status and record["count"] == count
    if status == "gave_up":
        assert record["text"] and record["text"] in text
    else:
        assert record["trace"][0]["tool"] == "segment_phrases"


@pytest.mark.parametrize(
    ("text", "phrases"),
    [
        ("cup", ["cup"]),
        (" red  cup , laptop;;Red Cup\nmug ", ["red cup", "laptop", "mug"]),
    ],
)
def test_split_phrases(text: str, phrases: list[str]) -> None:
    assert fmt.split_phrases(text) == phrases


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (" , ;", "type one or more noun phrases"),
        (",".join(f"p{i}" for i in range(17)), "at most 16"),
        ("x" * (MAX_PHRASE_CHARS + 1), f"at most {MAX_PHRASE_CHARS} characters"),
    ],
)
def test_split_phrases_refuses(text: str, message: str) -> None:
    with pytest.raises(PromptError, match=message):
        fmt.split_phrases(text)


@pytest.mark.parametrize(
    ("tool", "arguments", "ids", "ok", "title", "log"),
    [
        ("segment_phrases", {"phrases": ["cup"]}, (1, 2), True, 'Step 1 · segment_phrases: "cup"', "2 masks found"),
        (
            "refine_with_exemplars",
            {"phrase": "cup", "positive_ids": [1], "negative_boxes": [[0, 0, 5, 5]]},
            (3,),
            True,
            'Step 1 · refine_with_exemplars: "cup" with 1 positive, 1 negative exemplar(s)',
            "1 mask found",
        ),
        (
            "order_masks",
            {"ids": [1, 2], "ordering": "leftmost", "k": 2},
            (2,),
            True,
            "Step 1 · order_masks: #1, #2 by leftmost, pick #2 in order",
            "→ #2",
        ),
        ("count_masks", {"ids": [1, 2]}, (1,), True, "Step 1 · count_masks: #1, #2", "→ #1"),
        ("nearest", {"raw": "{"}, (), False, "Step 1 · nearest · failed, the model will retry", "error"),
    ],
)
def test_step_messages(tool, arguments, ids, ok, title, log) -> None:
    step = TraceStep(index=0, tool=tool, arguments=arguments, summary="result text", ok=ok, instance_ids=ids)
    message = fmt.step_message(step)
    assert message["metadata"]["title"] == title
    assert message["metadata"].get("log", "") == log
    assert message["content"] == "result text"


@pytest.mark.parametrize(
    ("text", "box"),
    [("1, 2, 3, 4", (1.0, 2.0, 3.0, 4.0)), ("[1.5 2 3 4]", (1.5, 2.0, 3.0, 4.0))],
)
def test_parse_box_text(text: str, box: tuple) -> None:
    assert parse_box_text(text) == box


class _SlowSegmenter(SceneSegmenter):
    def segment(self, image, prompts: Sequence[Prompt], thresholds: Thresholds | None = None) -> list[list[Instance]]:
        time.sleep(0.05)
        return super().segment(image, prompts, thresholds)


def test_an_abandoned_run_stops_at_its_next_tool_call() -> None:
    turns = [tool_call_turn("segment_phrases", {"phrases": [f"thing {i}"]}) for i in range(8)]
    model = ScriptedChatModel(turns)
    agent = Sam3Agent(_SlowSegmenter(DESK), model, max_turns=8)
    events = stream_agent(agent, DESK.image(), "find things")
    assert isinstance(next(events), TraceStep)
    events.close()
    deadline = time.monotonic() + 5
    while any(t.name == "sam3-agent-demo-run" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(t.name == "sam3-agent-demo-run" for t in threading.enumerate())
    assert model.remaining >= 5, "the run went on after the page stopped listening"


def test_stream_agent_yields_steps_then_the_answer() -> None:
    agent = Sam3Agent(SceneSegmenter(DESK), ScriptedChatModel(RELATION_TURNS))
    events = list(stream_agent(agent, DESK.image(), "the cup left of the laptop"))
    assert [type(e).__name__ for e in events] == ["TraceStep", "TraceStep", "TraceStep", "Answer"]
    assert isinstance(events[-1], Answer) and events[-1].selected_ids == [2]


def test_a_crowd_on_a_large_image_is_segmented_in_tiles(tmp_path: Path) -> None:
    """The demo tiles large images automatically: past the query cap the count is exact, and the page says so."""
    from sam3_agent.testing.crowd import CappedSceneSegmenter, crowd_image, crowd_scene

    scene = crowd_scene(2400, 1200, 150, seed=3)
    path = tmp_path / "crowd.png"
    crowd_image(scene).save(path)
    handlers = DemoHandlers(CappedSceneSegmenter(scene, query_cap=60), DemoConfig(workdir=tmp_path / "work"))
    session = DemoSession()
    run(handlers.chat(session, {"text": "person", "files": [str(path)]}, SEGMENT))
    assert session.result is not None and len(session.result.instances) == 150
    assert "overlapping tiles of 1008 px" in session.result.markdown
    record = json.loads(session.result.files[0].read_text())
    assert record["tiling"]["tiled"] is True
