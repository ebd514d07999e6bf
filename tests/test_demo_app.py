"""The running demo driven end to end by ``gradio_client``: tiny SAM 3 checkpoint, scripted LLM over loopback HTTP.

One app serves the whole module (like a real deployment); each test opens its own client sessions and
passes its own replay server as the session's LLM endpoint, or none: then the built-in planner answers.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio")
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from sam3_agent.demo.app import build_demo, launch_demo
from sam3_agent.demo.config import DemoConfig
from sam3_agent.engine.transformers_engine import Sam3Engine
from sam3_agent.masks import rle_decode
from sam3_agent.schema import MAX_PHRASE_CHARS, Rle
from sam3_agent.testing.replay_server import ReplayError, ReplayServer
from sam3_agent.testing.turns import tool_call_turn

MAX_UPLOAD = 300_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningApp:
    url: str
    engine: Sam3Engine
    workdir: Path


@pytest.fixture(scope="module")
def app(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    engine = Sam3Engine(tiny_checkpoint, device="cpu", dtype="float32").load()
    workdir = tmp_path_factory.mktemp("demo-work")
    config = DemoConfig(score_threshold=0.0, workdir=workdir, llm_max_retries=0, max_upload_bytes=MAX_UPLOAD)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio-cache")))  # uploads land here
        demo = build_demo(engine, config)
        url = launch_demo(demo, port=free_port(), prevent_thread_lock=True, quiet=True, max_upload_bytes=MAX_UPLOAD)
        try:
            yield RunningApp(url, engine, workdir)
        finally:
            demo.close()


@pytest.fixture
def client(app: RunningApp, tmp_path: Path) -> Iterator[Client]:
    app.engine.clear_cache(reset_counters=True)
    c = Client(app.url, verbose=False, download_files=str(tmp_path / "downloads"), analytics_enabled=False)
    yield c
    c.close()


def picture(path: Path, width: int, height: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def settings(mode: str, llm: ReplayServer | None = None, score: float = 0.0) -> tuple:
    """The page's Settings, in the order /chat and /refine take them after their own inputs."""
    return (mode, score, 0.5, llm.base_url if llm else "", "replay-model" if llm else "", "")


def ask(client: Client, text: str, image: Path | None, *rest: Any) -> tuple[list[tuple], tuple]:
    job = client.submit({"text": text, "files": [handle_file(str(image))] if image else []}, *rest, api_name="/chat")
    result = job.result(timeout=120)
    return job.outputs(), result


def ask_refused(client: Client, text: str, image: Path | None, *rest: Any) -> tuple[list[dict], AppError]:
    """Send a message the app refuses: the chat of the last update (which shows the error), and the AppError."""
    job = client.submit({"text": text, "files": [handle_file(str(image))] if image else []}, *rest, api_name="/chat")
    with pytest.raises(AppError) as refused:
        job.result(timeout=120)
    return job.outputs()[-1][0], refused.value


def texts(chat: list[dict]) -> list[str]:
    return [part["text"] for message in chat for part in message["content"] if part.get("type") == "text"]


def step_titles(chat: list[dict]) -> list[str]:
    return [m["metadata"]["title"] for m in chat if m.get("metadata") and m["metadata"].get("title")]


def test_upload_ask_streams_steps_then_answer_overlay_table_downloads(client: Client, tmp_path: Path) -> None:
    image = picture(tmp_path / "desk.png", 160, 90, seed=0)
    turns = [
        tool_call_turn("segment_phrases", {"phrases": ["cup", "laptop"]}),
        tool_call_turn("spatial_filter", {"subject_ids": [1, 2, 3], "relation": "left_of", "anchor_ids": [21]}),
        tool_call_turn("final_answer", {"ids": [1, 2], "text": "Two cups are left of the laptop.", "count": 2}),
    ]
    with ReplayServer(turns) as llm:
        outputs, (chat, overlay, answer, table, files, phrase, hint) = ask(
            client, "how many cups are left of the laptop?", image, *settings("agent", llm)
        )
        llm.assert_complete()
    # streamed: some update showed step 1 before the answer existed
    early = [o[0] for o in outputs if "Two cups are left of the laptop." not in " ".join(texts(o[0]))]
    assert any(t.startswith("Step 1 · segment_phrases") for chat_then in early for t in step_titles(chat_then))
    assert step_titles(chat) == [
        'Step 1 · segment_phrases: "cup", "laptop"',
        "Step 2 · spatial_filter: #1, #2, #3 left of #21",
        "Step 3 · final_answer: masks #1, #2",
    ]
    assert next(m["metadata"].get("log") for m in chat if m.get("metadata")) == "40 masks found"
    assert chat[0]["content"][0]["type"] == "file"  # the uploaded image shows in the chat
    assert answer.startswith("#### Answer\nTwo cups are left of the laptop.") and "**Count: 2**" in answer
    assert Image.open(overlay).size == (160, 90)
    assert table["headers"] == ["id", "phrase", "score", "area (px)", "box x0, y0, x1, y1"]
    assert [row[:2] for row in table["data"]] == [[1, "cup"], [2, "cup"]]
    names = [Path(f).name for f in files]
    assert names == ["answer.json", "mask_1.png", "mask_2.png"]
    record = json.loads(Path(files[0]).read_text())
    assert record["count"] == 2 and record["image_size"] == [90, 160]
    mask = rle_decode(Rle(**record["instances"][0]["rle"]))
    assert np.array_equal(mask, np.asarray(Image.open(files[1])) > 0)
    assert phrase == "cup" and hint == ""


def test_follow_up_and_refinement_reuse_the_backbone_features(app: RunningApp, client: Client, tmp_path: Path) -> None:
    image = picture(tmp_path / "shelf.png", 120, 80, seed=1)
    first = [
        tool_call_turn("segment_phrases", {"phrases": ["cup"]}),
        tool_call_turn("final_answer", {"ids": [1], "text": "That cup.", "count": None}),
    ]
    second = [
        tool_call_turn("segment_phrases", {"phrases": ["plate", "cup"]}),
        tool_call_turn("count_masks", {"ids": [1, 2, 3]}),
        tool_call_turn("final_answer", {"ids": [1, 2, 3], "text": "Three plates.", "count": 3}),
    ]
    with ReplayServer(first) as llm:
        ask(client, "segment the cup", image, *settings("agent", llm))
    assert app.engine.backbone_calls == 1
    with ReplayServer(second) as llm:
        _, (chat, *_rest) = ask(client, "how many plates?", None, *settings("agent", llm))
        llm.assert_complete()
    assert "Three plates." in " ".join(texts(chat)) and app.engine.backbone_calls == 1
    outputs = client.predict("10, 10, 60, 50", "positive", "cup", *settings("segment"), api_name="/refine")
    chat, overlay, _answer, table, files, _phrase, hint, box = outputs
    assert 'Refine "cup" with a positive box [10, 10, 60, 50]' in texts(chat)
    assert table["data"] and {row[1] for row in table["data"]} == {"cup"}
    assert Image.open(overlay).size == (120, 80) and box == "" and "1 exemplar box" in hint
    assert json.loads(Path(files[0]).read_text())["prompts"][0]["boxes"][0]["box"] == [10, 10, 60, 50]
    assert app.engine.backbone_calls == 1, "a follow-up or refinement on the same image re-ran the backbone"
    assert app.engine.cache_hits >= 2


def test_two_users_at_once_get_separate_sessions(app: RunningApp, tmp_path: Path) -> None:
    app.engine.clear_cache(reset_counters=True)
    images = {"a": picture(tmp_path / "a.png", 160, 90, seed=2), "b": picture(tmp_path / "b.png", 96, 128, seed=3)}
    scripts = {
        name: [
            tool_call_turn("segment_phrases", {"phrases": [f"{name} thing"]}),
            tool_call_turn("final_answer", {"ids": [1], "text": f"answer for {name}", "count": 1}),
        ]
        for name in images
    }
    clients = {name: Client(app.url, verbose=False, download_files=str(tmp_path / name)) for name in images}
    results: dict[str, tuple] = {}
    try:
        with ReplayServer(scripts["a"]) as llm_a, ReplayServer(scripts["b"]) as llm_b:
            llms = {"a": llm_a, "b": llm_b}

            def run(name: str) -> None:
                _, results[name] = ask(
                    clients[name], f"question of {name}", images[name], *settings("agent", llms[name])
                )

            threads = [threading.Thread(target=run, args=(name,)) for name in images]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            llm_a.assert_complete()
            llm_b.assert_complete()
        for name, other in (("a", "b"), ("b", "a")):
            chat, overlay, answer, table, files, *_ = results[name]
            words = " ".join(texts(chat))
            assert f"question of {name}" in words and f"question of {other}" not in words
            assert f"answer for {name}" in answer and f"{other} thing" not in words
            assert {row[1] for row in table["data"]} == {f"{name} thing"}
            record = json.loads(Path(files[0]).read_text())
            assert record["image_size"] == list(Image.open(images[name]).size[::-1])
        # a follow-up in session b (no upload) is about b's image, not the one a sent last
        chat, overlay, *_ = clients["b"].predict({"text": "x", "files": []}, *settings("segment"), api_name="/chat")
        assert Image.open(overlay).size == (96, 128)
        assert sum("question of" in t for t in texts(chat)) == 1
    finally:
        for c in clients.values():
            c.close()
    assert app.engine.backbone_calls == 2


def test_segment_only_mode_needs_no_llm(app: RunningApp, tmp_path: Path) -> None:
    image = picture(tmp_path / "p.jpg", 64, 48, seed=4)
    client = Client(app.url, verbose=False, download_files=False)  # 41 files: list them, do not fetch them
    try:
        _, (_chat, _overlay, answer, table, files, phrase, _hint) = ask(
            client, "cup, laptop", image, *settings("segment")
        )
    finally:
        client.close()
    assert answer.startswith("#### Segmentation\n**cup**: 20 masks") and "**laptop**: 20 masks" in answer
    assert [row[0] for row in table["data"]] == list(range(1, 41))
    assert [f["orig_name"] for f in files] == ["segmentation.json"] + [f"mask_{i}.png" for i in range(1, 41)]
    assert phrase == "cup"


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("notes.txt", b"just some notes", "that upload was refused: 'notes.txt' is not a recognised image format"),
        ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "that upload was refused: 'broken.png'"),
    ],
)
def test_a_bad_upload_is_refused_with_a_reason(
    client: Client, tmp_path: Path, name: str, data: bytes, reason: str
) -> None:
    bad = tmp_path / name
    bad.write_bytes(data)
    chat, refused = ask_refused(client, "how many cups?", bad, *settings("segment"))
    last = texts(chat)[-1]
    assert last.startswith("**Error:** ") and reason in last and "Traceback" not in last
    assert str(refused) == last.removeprefix("**Error:** ") and "\n" not in str(refused)
    chat, refused = ask_refused(client, "cup", None, *settings("segment"))  # the session lives on, imageless
    assert str(refused).startswith("there is no image yet") and texts(chat)[-1] == f"**Error:** {refused}"


def test_an_upload_over_the_size_limit_is_refused(client: Client, tmp_path: Path) -> None:
    big = tmp_path / "big.bmp"
    Image.new("RGB", (400, 300), (10, 20, 30)).save(big)  # 360 kB, over the 300 kB limit
    with pytest.raises(Exception, match="exceeds the maximum file size"):
        ask(client, "cup", big, *settings("segment"))


@pytest.mark.parametrize(
    ("llm_turns", "model", "message"),
    [
        ([ReplayError(503)], "replay-model", "the language model failed"),
        ([], "local:/etc", "only its operator can choose one"),
    ],
)
def test_llm_problems_are_messages_not_tracebacks(client: Client, tmp_path: Path, llm_turns, model, message) -> None:
    image = picture(tmp_path / "q.png", 40, 30, seed=5)
    with ReplayServer(llm_turns) as llm:
        rest = ("agent", 0.0, 0.5, llm.base_url, model, "")
        chat, refused = ask_refused(client, "where is the cup?", image, *rest)
    assert message in texts(chat)[-1] and "Traceback" not in " ".join(texts(chat))
    assert message in str(refused) and "Traceback" not in str(refused)


def test_agent_mode_without_an_llm_is_answered_by_the_built_in_planner(client: Client, tmp_path: Path) -> None:
    image = picture(tmp_path / "desk.png", 160, 90, seed=0)
    outputs, (chat, overlay, answer, _table, files, _phrase, _hint) = ask(
        client, "segment the cups", image, *settings("agent")
    )
    assert any(t == "Planning with built-in planner…" for o in outputs for t in step_titles(o[0]))
    assert step_titles(chat)[0].startswith("Step 1 · segment_phrases")
    assert texts(chat)[-1].endswith("*Answered by built-in planner.*")
    assert answer.startswith("#### Answer\n") and "Error" not in answer
    assert Image.open(overlay).size == (160, 90)
    record = json.loads(Path(files[0]).read_text())
    assert record["status"] in ("answered", "no_match") and record["trace"][0]["tool"] == "segment_phrases"
    _, (chat, *_) = ask(client, "why is the sky blue?", None, *settings("agent"))
    assert not texts(chat)[-1].startswith("**Error:**") and "Traceback" not in " ".join(texts(chat))
    assert texts(chat)[-1].endswith("*Answered by built-in planner.*")


def test_segment_image_api(client: Client, tmp_path: Path) -> None:
    image = picture(tmp_path / "api.png", 50, 40, seed=6)
    result = client.predict(handle_file(str(image)), "cup, laptop", 0.0, api_name="/segment_image")
    assert result["image_size"] == [40, 50]
    assert [inst["id"] for inst in result["instances"]] == list(range(1, 41))
    assert rle_decode(Rle(**result["instances"][0]["rle"])).shape == (40, 50)


@pytest.mark.parametrize(
    ("image", "phrases", "message"),
    [
        ("api.png", " , ", "type one or more noun phrases separated by commas, e.g. 'cup, laptop'"),
        ("api.png", "x" * (MAX_PHRASE_CHARS + 1), f"at most {MAX_PHRASE_CHARS} characters"),
        ("notes.txt", "cup", "'notes.txt' is not a recognised image format"),
        (None, "cup", "expected an uploaded image file, got str"),
    ],
)
def test_segment_image_refuses_bad_input_with_an_app_error(
    client: Client, tmp_path: Path, image: str | None, phrases: str, message: str
) -> None:
    picture(tmp_path / "api.png", 50, 40, seed=6)
    (tmp_path / "notes.txt").write_text("hello")
    sent = handle_file(str(tmp_path / image)) if image else "/etc/hostname"
    with pytest.raises(AppError) as refused:
        client.predict(sent, phrases, 0.5, api_name="/segment_image")
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert str(tmp_path) not in str(refused.value) and "Traceback" not in str(refused.value), "no server paths"


def test_segment_image_defaults_are_the_servers_thresholds(app: RunningApp, client: Client, tmp_path: Path) -> None:
    """The app runs with score_threshold=0.0 (as ``--score-threshold 0``): the API's default is that, not 0.5."""
    image = handle_file(str(picture(tmp_path / "api.png", 50, 40, seed=6)))
    endpoint = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/segment_image"]
    defaults = {p["parameter_name"]: p.get("parameter_default") for p in endpoint["parameters"]}
    assert defaults == {"image": None, "phrases": None, "score_threshold": 0.0, "mask_threshold": 0.5}
    implicit = client.predict(image, "cup", api_name="/segment_image")
    explicit = client.predict(image, "cup", 0.0, 0.5, api_name="/segment_image")
    stricter = client.predict(image, "cup", 0.5, api_name="/segment_image")
    assert implicit == explicit
    assert len(implicit["instances"]) > len(stricter["instances"]), "the default must be the server's 0.0"


def test_view_api_lists_every_endpoint_with_types(client: Client) -> None:
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert sorted(endpoints) == ["/chat", "/refine", "/segment_image"]
    params = {name: [p["parameter_name"] for p in e["parameters"]] for name, e in endpoints.items()}
    settings_names = ["mode", "score_threshold", "mask_threshold", "llm_base_url", "llm_model", "llm_api_key"]
    assert params["/chat"] == ["message", *settings_names]
    assert params["/refine"] == ["box", "polarity", "phrase", *settings_names]
    chat_defaults = {p["parameter_name"]: p["parameter_default"] for p in endpoints["/chat"]["parameters"][1:]}
    assert chat_defaults == dict(zip(settings_names, ["agent", 0.0, 0.5, "", "", ""], strict=True))
    returns = {name: [(r["label"], r["python_type"]["type"]) for r in e["returns"]] for name, e in endpoints.items()}
    assert [label for label, _ in returns["/chat"]] == [
        "Chat", "Overlay", "Answer", "Instances", "Downloads", "Phrase", "Hint"
    ]  # fmt: skip
    assert returns["/refine"][:-1] == returns["/chat"] and returns["/refine"][-1] == ("Box", "str")
    for name, types in returns.items():
        for label, python_type in types:
            assert python_type != "Any", f"{name} returns {label} untyped"
    [(_, python_type)] = returns["/segment_image"]
    assert python_type.startswith("dict(image_size: list[int], instances: list[dict(id: int, phrase: str, score: float")
    assert "rle: dict(size: list[int], counts: str)" in python_type
