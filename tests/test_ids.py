"""The instance id rule on every surface: ids are 1..N in response order across the prompts of one answer.

The tiny SAM 3 checkpoint (random weights, score threshold 0 so that every prompt finds something) runs
in-process, behind the HTTP server, and through ``RemoteSegmenter``; per-prompt-numbering stand-ins (the
scene fakes number each prompt from 0) show that the server numbers its responses itself.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from sam3_agent.engine.protocol import number_instances
from sam3_agent.engine.tiling import TiledSegmenter
from sam3_agent.engine.transformers_engine import Sam3Engine
from sam3_agent.schema import ExemplarBox, Instance, Prompt, Thresholds
from sam3_agent.server.api import create_app
from sam3_agent.server.client import RemoteSegmenter
from sam3_agent.server.jobs import SegmentJob, run_jobs
from sam3_agent.server.wire import SegmentAtResponse, SegmentResponse
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter
from sam3_agent.testing.scene_clicks import SceneClicker

KEEP_ALL = Thresholds(score=0.0)
PROMPTS = [Prompt(text="cup"), Prompt(text="laptop"), Prompt(text="red hat")]
SCENE = Scene(
    120,
    80,
    [
        SceneObject("cup", (10, 40, 30, 70), score=0.9),
        SceneObject("cup", (90, 40, 110, 70), score=0.8),
        SceneObject("laptop", (40, 20, 80, 70), shape="box", color=(90, 90, 110), score=0.95),
    ],
)


def noise(width: int = 160, height: int = 120, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8))


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def ids(per_prompt: Sequence[Sequence[Instance]]) -> list[list[int]]:
    return [[inst.id for inst in found] for found in per_prompt]


def assert_numbered_across(per_prompt: Sequence[Sequence[Instance]]) -> None:
    """Ids 1..N in response order, the first prompt's 1..k, the next k+1.., with several prompts answering."""
    assert sum(1 for found in per_prompt if found) >= 2, "the rule is only tested across prompts that found something"
    flat = [i for row in ids(per_prompt) for i in row]
    assert flat == list(range(1, len(flat) + 1)), ids(per_prompt)


def dumps(per_prompt: Sequence[Sequence[Instance]]) -> list[list[dict[str, Any]]]:
    return [[inst.model_dump() for inst in found] for found in per_prompt]


# -- the rule itself ------------------------------------------------------------------------------------------


def test_number_instances_numbers_across_prompts_and_keeps_correct_ids() -> None:
    per_prompt = SceneSegmenter(SCENE).segment(SCENE.image(), [Prompt(text="cups"), Prompt(text="laptop")])
    assert ids(per_prompt) == [[0, 1], [0]], "the scene fake numbers each prompt from 0: the old convention"
    numbered = number_instances(per_prompt)
    assert ids(numbered) == [[1, 2], [3]]
    again = number_instances(numbered)
    assert again == numbered and all(a is b for a, b in zip(again[0], numbered[0], strict=True)), "no copies"
    assert number_instances([[], []]) == [[], []]


# -- the engine -----------------------------------------------------------------------------------------------


def test_engine_numbers_across_prompts(engine: Sam3Engine) -> None:
    image = noise()
    per_prompt = engine.segment(image, PROMPTS, KEEP_ALL)
    assert_numbered_across(per_prompt)
    first = len(per_prompt[0])
    assert per_prompt[0][0].id == 1 and per_prompt[1][0].id == first + 1
    deduped = engine.segment(image, PROMPTS, Thresholds(score=0.0, nms_iom=0.5))
    assert_numbered_across(deduped)
    alone = engine.segment(image, PROMPTS[1:2], KEEP_ALL)
    assert [i.id for i in alone[0]] == list(range(1, len(alone[0]) + 1)), "a one-prompt call starts at 1 too"
    assert [i.model_dump(exclude={"id"}) for i in alone[0]] == [i.model_dump(exclude={"id"}) for i in per_prompt[1]]


def test_engine_numbers_text_and_exemplar_prompts_run_in_different_passes(engine: Sam3Engine) -> None:
    mixed = [Prompt(text="cup"), Prompt(boxes=(ExemplarBox(box=(10, 10, 60, 50)),)), Prompt(text="laptop")]
    assert_numbered_across(engine.segment(noise(), mixed, KEEP_ALL))


def test_engine_segment_batch_numbers_each_request_on_its_own(engine: Sam3Engine) -> None:
    requests = [(noise(seed=1), PROMPTS[:2], KEEP_ALL), (noise(seed=2), PROMPTS, KEEP_ALL)]
    for per_prompt in engine.segment_batch(requests):
        assert_numbered_across(per_prompt)


def test_tiled_engine_numbers_across_prompts(engine: Sam3Engine) -> None:
    tiled = TiledSegmenter(engine, mode="always", tile=128, overlap=0.2)
    per_prompt, report = tiled.segment_with_report(noise(300, 200), PROMPTS[:2], KEEP_ALL)
    assert report.tiles > 1
    assert_numbered_across(per_prompt)


# -- the HTTP server ------------------------------------------------------------------------------------------


@pytest.fixture
def engine_client(engine: Sam3Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine), base_url="http://sam3.test") as client:
        yield client


def _segment(client: TestClient, image: Image.Image, prompts: list[Prompt], **extra: Any) -> SegmentResponse:
    body = {
        "image": base64.b64encode(png_bytes(image)).decode(),
        "prompts": [p.model_dump(mode="json") for p in prompts],
        "thresholds": {"score": 0.0},
        **extra,
    }
    response = client.post("/v1/segment", json=body)
    assert response.status_code == 200, response.text
    return SegmentResponse.model_validate_json(response.content)


def test_server_numbers_across_prompts(engine: Sam3Engine, engine_client: TestClient) -> None:
    image = noise()
    answer = _segment(engine_client, image, PROMPTS)
    assert_numbered_across(answer.instances)
    assert dumps(answer.instances) == dumps(engine.segment(image, PROMPTS, KEEP_ALL)), "the engine's own answer"
    tiled = _segment(engine_client, noise(1300, 300), PROMPTS[:2], tile="always")  # the server tiles at 1008 px
    assert tiled.tiling is not None and tiled.tiling.tiles > 1
    assert_numbered_across(tiled.instances)


def test_server_numbers_what_a_per_prompt_segmenter_returns() -> None:
    with TestClient(create_app(SceneSegmenter(SCENE))) as client:
        answer = _segment(client, SCENE.image(), [Prompt(text="cups"), Prompt(text="laptop"), Prompt(text="cup")])
    assert ids(answer.instances) == [[1, 2], [3], [4, 5]]


def test_jobs_sharing_one_call_are_each_numbered_from_one() -> None:
    image = SCENE.image()
    jobs = [
        SegmentJob(image, "scene", (Prompt(text="cups"),), Thresholds()),
        SegmentJob(image, "scene", (Prompt(text="laptop"), Prompt(text="cups")), Thresholds()),
    ]
    first, second = run_jobs(SceneSegmenter(SCENE), jobs)  # one segment call for both: same image, thresholds
    assert ids(first) == [[1, 2]] and ids(second) == [[1], [2, 3]]  # type: ignore[arg-type]


def test_a_click_answers_id_one_over_http() -> None:
    app = create_app(SceneSegmenter(SCENE), clicker=SceneClicker(SCENE))
    with TestClient(app) as client:
        body = {"image": base64.b64encode(png_bytes(SCENE.image())).decode(), "points": [[60, 45]]}
        response = client.post("/v1/segment_at", json=body)
    assert response.status_code == 200, response.text
    assert SegmentAtResponse.model_validate_json(response.content).instance.id == 1


# -- RemoteSegmenter ------------------------------------------------------------------------------------------


def test_remote_segmenter_numbers_across_prompts(engine: Sam3Engine, engine_client: TestClient) -> None:
    remote = RemoteSegmenter("http://sam3.test", client=engine_client)  # type: ignore[arg-type]
    image = noise(seed=3)
    per_prompt = remote.segment(image, PROMPTS, KEEP_ALL)
    assert_numbered_across(per_prompt)
    assert dumps(per_prompt) == dumps(engine.segment(image, PROMPTS, KEEP_ALL))


def test_remote_segmenter_renumbers_an_older_servers_per_prompt_ids() -> None:
    old = SceneSegmenter(SCENE).segment(SCENE.image(), [Prompt(text="cups"), Prompt(text="laptop")])
    assert ids(old) == [[0, 1], [0]]

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/images":
            return httpx.Response(200, json={"image_id": "img", "width": 120, "height": 80})
        if request.url.path == "/v1/segment_at":
            body = {"image_id": "img", "width": 120, "height": 80, "instance": old[1][0].model_dump(mode="json")}
            return httpx.Response(200, json=body)
        answer = {
            "image_id": "img",
            "width": 120,
            "height": 80,
            "instances": [[i.model_dump(mode="json") for i in f] for f in old],
        }
        return httpx.Response(200, json=answer)

    remote = RemoteSegmenter("http://old", client=httpx.Client(transport=httpx.MockTransport(handle)))
    assert ids(remote.segment(SCENE.image(), [Prompt(text="cups"), Prompt(text="laptop")])) == [[1, 2], [3]]
    assert remote.segment_at(SCENE.image(), [(60, 45)]).id == 1
