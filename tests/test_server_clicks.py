"""``POST /v1/segment_at`` and ``RemoteSegmenter.segment_at``: clicks on one object through the server.

On a synthetic scene with a fake click engine returning exact masks (``SceneClicker``), through FastAPI's
TestClient and through the real client over loopback HTTP; then the tiny random tracker checkpoint end to end
(the server's own click engine sharing its ``Sam3Engine``'s backbone).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from sam3_agent.agent.loop import Sam3Agent
from sam3_agent.engine.clicks import ClickEngine
from sam3_agent.engine.protocol import clicker_for
from sam3_agent.engine.transformers_engine import Sam3Engine
from sam3_agent.errors import CheckpointError, PromptError
from sam3_agent.schema import Instance
from sam3_agent.server.api import create_app
from sam3_agent.server.client import RemoteSegmenter
from sam3_agent.server.runner import BackgroundServer
from sam3_agent.server.settings import ServerSettings
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter
from sam3_agent.testing.scene_clicks import SceneClicker
from sam3_agent.testing.scripted import ScriptedChatModel
from sam3_agent.testing.turns import tool_call_turn

SCENE = Scene(
    120,
    80,
    [
        SceneObject("laptop", (40, 20, 80, 70), shape="box", color=(90, 90, 110)),
        SceneObject("cup", (10, 40, 30, 70)),
        SceneObject("cup", (70, 40, 100, 70)),  # in front of the laptop's right edge
    ],
)
TOKEN = "click-token"


def png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = create_app(SceneSegmenter(SCENE), ServerSettings(token=TOKEN), clicker=SceneClicker(SCENE))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as test_client:
        yield test_client


def register(client: TestClient) -> str:
    return client.post("/v1/images", json={"image": png_b64(SCENE.image())}).json()["image_id"]


def test_a_click_answers_the_exact_mask_of_the_object(client: TestClient) -> None:
    image_id = register(client)
    answer = client.post("/v1/segment_at", json={"image_id": image_id, "points": [[75, 30]]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["image_id"], body["width"], body["height"]) == (image_id, 120, 80)
    inst = Instance.model_validate(body["instance"])
    assert np.array_equal(inst.mask, SCENE.mask(0)) and inst.phrase == "clicked object (1 positive point)"


def test_labels_a_box_an_inline_image_and_the_mask_threshold(client: TestClient) -> None:
    body = {
        "image": png_b64(SCENE.image()),
        "points": [[75, 50], [45, 30]],
        "labels": [1, 0],
        "box": [60, 30, 110, 75],
        "thresholds": {"mask": 0.4},
    }
    answer = client.post("/v1/segment_at", json=body)
    assert answer.status_code == 200, answer.text
    assert np.array_equal(Instance.model_validate(answer.json()["instance"]).mask, SCENE.mask(2))


@pytest.mark.parametrize(
    ("body", "status", "kind", "says"),
    [
        ({"points": [[500, 10]]}, 422, "prompt_error", "point (500, 10) lies outside the 120x80 image"),
        ({"points": [[5, 5]], "labels": [1, 0]}, 422, "prompt_error", "2 label(s) for 1 point(s)"),
        ({}, 422, "prompt_error", "at least one point or a box"),
        ({"box": [50, 50, 50, 60]}, 422, "prompt_error", "empty or inverted"),
        ({"points": [[1, 2, 3]]}, 422, "invalid_request", "points.0"),
        ({"image_id": "nope", "points": [[5, 5]]}, 404, "unknown_image", ""),
    ],
)
def test_bad_clicks_get_the_servers_error_format(
    client: TestClient, body: dict, status: int, kind: str, says: str
) -> None:
    body = {"image_id": register(client), **body}
    answer = client.post("/v1/segment_at", json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["type"] == kind and says in answer.json()["error"]


@pytest.mark.parametrize(("image", "kind"), [("./cat.png", "a file path"), ("http://example.com/cat.png", "a URL")])
def test_a_url_or_path_instead_of_base64_says_so(client: TestClient, image: str, kind: str) -> None:
    answer = client.post("/v1/segment_at", json={"image": image, "points": [[5, 5]]})
    assert answer.status_code == 400 and answer.json()["type"] == "image_error"
    assert answer.json()["error"].startswith(f"expected base64 image data, got what looks like {kind} ({image!r})")


def test_the_token_guards_clicks_and_a_server_without_clicks_says_so() -> None:
    app = create_app(SceneSegmenter(SCENE), ServerSettings(token=TOKEN))
    with TestClient(app) as client:
        assert client.post("/v1/segment_at", json={"image_id": "x", "points": [[1, 1]]}).status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        image_id = client.post("/v1/images", json={"image": png_b64(SCENE.image())}, headers=auth).json()["image_id"]
        answer = client.post("/v1/segment_at", json={"image_id": image_id, "points": [[1, 1]]}, headers=auth)
        assert answer.status_code == 501 and answer.json()["type"] == "not_supported"
        assert "--tracker" in answer.json()["error"]


def test_remote_segmenter_clicks_over_http_and_the_agent_uses_it() -> None:
    app = create_app(SceneSegmenter(SCENE), ServerSettings(token=TOKEN), clicker=SceneClicker(SCENE))
    with BackgroundServer(app) as server, RemoteSegmenter(server.base_url, token=TOKEN) as remote:
        image = SCENE.image()
        assert clicker_for(remote) is remote
        inst = remote.segment_at(image, [(20, 55)])
        assert np.array_equal(inst.mask, SCENE.mask(1))
        assert remote.segment_at(image, box=(65, 35, 105, 75)).area == int(SCENE.mask(2).sum())
        assert remote.registrations == 1
        with pytest.raises(PromptError, match="outside"):
            remote.segment_at(image, [(500, 5)])
        turns = [
            tool_call_turn("segment_at", {"points": [[20, 55]]}),
            tool_call_turn("final_answer", {"ids": [1], "text": "that cup"}),
        ]
        answer = Sam3Agent(remote, ScriptedChatModel(turns), clicker=clicker_for(remote)).run(
            image, "the cup I clicked"
        )
        assert answer.trace[0].ok and np.array_equal(answer.instances[0].mask, SCENE.mask(1))


def test_remote_clicks_on_a_server_without_the_tracker_raise_checkpoint_error() -> None:
    server = BackgroundServer(create_app(SceneSegmenter(SCENE)))
    with server, RemoteSegmenter(server.base_url) as remote, pytest.raises(CheckpointError, match="no click engine"):
        remote.segment_at(SCENE.image(), [(5, 5)])


def test_the_server_clicks_with_the_tiny_tracker_sharing_its_engine(tiny_tracker_checkpoint: Path) -> None:
    engine = Sam3Engine(tiny_tracker_checkpoint, device="cpu", dtype="float32")
    image = Image.fromarray(np.random.default_rng(3).integers(0, 256, (60, 90, 3), dtype=np.uint8))
    with TestClient(create_app(engine)) as client:
        body = {"image": png_b64(image), "points": [[40, 30]], "box": [10, 10, 80, 50]}
        answer = client.post("/v1/segment_at", json=body)
        assert answer.status_code == 200, answer.text
        served = Instance.model_validate(answer.json()["instance"])
    alone = ClickEngine(tiny_tracker_checkpoint, device="cpu", dtype="float32")
    assert served == alone.segment_at(image, [(40, 30)], box=(10, 10, 80, 50))
    assert engine.backbone_calls == 1
