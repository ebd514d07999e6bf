"""The server's HTTP API on a synthetic scene: registration, segmentation, auth, limits, malformed requests,
429 / 504 / 503 paths, readiness, metrics and graceful shutdown (TestClient, or uvicorn on loopback)."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from sam3_agent.engine.protocol import number_instances
from sam3_agent.schema import Instance, Prompt, Thresholds
from sam3_agent.server import jobs as jobs_module
from sam3_agent.server.api import create_app
from sam3_agent.server.runner import BackgroundServer
from sam3_agent.server.settings import ServerSettings
from sam3_agent.server.wire import SegmentResponse
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter

SCENE = Scene(
    120,
    80,
    [
        SceneObject("cup", (10, 40, 30, 70), score=0.9),
        SceneObject("cup", (90, 40, 110, 70), score=0.8),
        SceneObject("laptop", (40, 20, 80, 70), shape="box", color=(90, 90, 110), score=0.95),
    ],
)
TOKEN = "s3cret-token"


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


IMAGE_PNG = png(SCENE.image())
IMAGE_B64 = base64.b64encode(IMAGE_PNG).decode()


class GatedSegmenter(SceneSegmenter):
    """A SceneSegmenter that can be held (``gate``) and reports when a call starts (``started``)."""

    def __init__(self, scene: Scene, delay: float = 0.0) -> None:
        super().__init__(scene)
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.delay = delay
        self.batches: list[int] = []

    def segment(self, image: Image.Image, prompts: Sequence[Prompt], thresholds: Thresholds | None = None):
        self.started.set()
        self.gate.wait(20)
        time.sleep(self.delay)
        self.batches.append(len(prompts))
        return super().segment(image, prompts, thresholds)


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(SceneSegmenter(SCENE))) as test_client:
        yield test_client


def register(client: httpx.Client | TestClient, **headers: str) -> str:
    response = client.post("/v1/images", content=IMAGE_PNG, headers={"Content-Type": "image/png", **headers})
    assert response.status_code == 200, response.text
    return response.json()["image_id"]


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["type"], body["error"]


# -- the happy paths -------------------------------------------------------------------------------------------


def test_register_once_in_any_form_and_segment_by_id(client: TestClient) -> None:
    image_id = register(client)
    as_json = client.post("/v1/images", json={"image": IMAGE_B64}).json()
    as_data_url = client.post("/v1/images", json={"image": "data:image/png;base64," + IMAGE_B64}).json()
    assert as_json == as_data_url == {"image_id": image_id, "width": 120, "height": 80}
    assert len(client.app.state.sam3.registry) == 1
    prompts = [{"text": "cups"}, {"boxes": [{"box": [40, 20, 80, 70]}]}, {"text": "giraffe"}]
    response = client.post("/v1/segment", json={"image_id": image_id, "prompts": prompts})
    assert response.status_code == 200
    answer = SegmentResponse.model_validate_json(response.content)
    want = number_instances(SceneSegmenter(SCENE).segment(SCENE.image(), [Prompt.model_validate(p) for p in prompts]))
    assert answer.instances == want and [len(found) for found in want] == [2, 1, 0]
    assert [inst.id for found in answer.instances for inst in found] == [1, 2, 3], "ids 1..N across the prompts"
    assert (answer.image_id, answer.width, answer.height) == (image_id, 120, 80)


def test_inline_image_and_thresholds(client: TestClient) -> None:
    body = {"image": IMAGE_B64, "prompts": [{"text": "cup"}], "thresholds": {"score": 0.85}}
    answer = SegmentResponse.model_validate_json(client.post("/v1/segment", json=body).content)
    assert [inst.score for inst in answer.instances[0]] == [0.9]
    assert answer.image_id in client.app.state.sam3.registry  # inline images are registered too


def test_health_readiness_info_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    images = {"images": 0, "max_images": 256, "bytes": 0, "max_bytes": 2**30}
    assert client.get("/readyz").json() == {"status": "ready", "queue_depth": 0, "images": images}
    info = client.get("/v1/info").json()
    assert info["segmenter"] == "SceneSegmenter" and info["max_batch"] == 16
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/images", "/v1/segment", "/v1/info", "/healthz", "/readyz", "/metrics"} <= set(paths)


class SlowLoadingSegmenter(SceneSegmenter):
    def __init__(self, scene: Scene) -> None:
        super().__init__(scene)
        self.loaded = False
        self.release = threading.Event()

    def load(self) -> None:
        self.release.wait(10)
        self.loaded = True


def test_readiness_waits_for_the_model_to_load() -> None:
    segmenter = SlowLoadingSegmenter(SCENE)
    with TestClient(create_app(segmenter)) as client:
        assert error_of(client.get("/readyz")) == (503, "unavailable", "the model is still loading")
        segmenter.release.set()
        for _ in range(200):
            if client.get("/readyz").status_code == 200:
                break
            time.sleep(0.01)
        assert client.get("/readyz").json()["status"] == "ready"


def test_metrics(client: TestClient) -> None:
    image_id = register(client)
    for text in ("cup", "laptop"):
        client.post("/v1/segment", json={"image_id": image_id, "prompts": [{"text": text}]})
    client.post("/v1/segment", json={"image_id": "nope", "prompts": [{"text": "cup"}]})
    text = client.get("/metrics").text
    assert 'sam3_server_requests_total{route="/v1/segment",status="200"} 2.0' in text
    assert 'sam3_server_requests_total{route="/v1/segment",status="404"} 1.0' in text
    assert 'sam3_server_errors_total{type="unknown_image"} 1.0' in text
    assert "sam3_server_batch_prompts_count 2.0" in text and "sam3_server_batch_requests_sum 2.0" in text
    assert "sam3_server_queue_depth 0.0" in text and "sam3_server_registered_images 1.0" in text


# -- auth and limits -----------------------------------------------------------------------------------------


def test_bearer_token_guards_v1_only() -> None:
    with TestClient(create_app(SceneSegmenter(SCENE), ServerSettings(token=TOKEN))) as client:
        missing = client.post("/v1/images", content=IMAGE_PNG, headers={"Content-Type": "image/png"})
        assert error_of(missing)[:2] == (401, "unauthorized") and "missing bearer token" in missing.json()["error"]
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = client.get("/v1/info", headers={"Authorization": "Bearer nope"})
        assert error_of(wrong) == (401, "unauthorized", "invalid bearer token")
        assert error_of(client.get("/v1/info", headers={"Authorization": f"Basic {TOKEN}"}))[0] == 401
        image_id = register(client, Authorization=f"Bearer {TOKEN}")
        ok = client.post(
            "/v1/segment",
            json={"image_id": image_id, "prompts": [{"text": "cup"}]},
            headers={"Authorization": f"bearer {TOKEN}"},
        )
        assert ok.status_code == 200
        for path in ("/healthz", "/readyz", "/metrics"):
            assert client.get(path).status_code == 200


def test_bodies_over_the_limit_get_413_before_being_read() -> None:
    settings = ServerSettings(max_body_mb=len(IMAGE_PNG) / 2**20 / 2)
    with TestClient(create_app(SceneSegmenter(SCENE), settings)) as client:
        declared = client.post("/v1/images", content=IMAGE_PNG, headers={"Content-Type": "image/png"})
        assert error_of(declared)[:2] == (413, "too_large") and "over the server's limit of" in declared.text

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
            for start in range(0, len(IMAGE_PNG), 1000):
                yield IMAGE_PNG[start : start + 1000]

        chunked = client.post("/v1/images", content=chunks(), headers={"Content-Type": "image/png"})
        assert error_of(chunked)[:2] == (413, "too_large")


def test_too_many_pixels_and_too_many_prompts() -> None:
    settings = ServerSettings(max_pixels=5000, max_prompts=2)
    with TestClient(create_app(SceneSegmenter(SCENE), settings)) as client:
        big = client.post("/v1/images", content=IMAGE_PNG, headers={"Content-Type": "image/png"})
        assert error_of(big)[:2] == (400, "image_error") and "over the limit of 5,000" in big.json()["error"]
        small = png(Image.new("RGB", (50, 40)))
        image_id = client.post("/v1/images", content=small, headers={"Content-Type": "image/png"}).json()["image_id"]
        many = client.post("/v1/segment", json={"image_id": image_id, "prompts": [{"text": t} for t in "abc"]})
        assert error_of(many) == (422, "prompt_error", "3 prompts in one request; the server takes at most 2")


def body(**fields: object) -> dict:
    return {"json": {"image_id": "x", "prompts": [{"text": "a"}], **fields}}


BAD_JSON = {"content": b"{not json", "headers": {"Content-Type": "application/json"}}
NOT_AN_IMAGE = base64.b64encode(b"GIF89a-no").decode()
FORM = {
    "content": b'{"image_id": "x", "prompts": []}',
    "headers": {"Content-Type": "application/x-www-form-urlencoded"},
}


@pytest.mark.parametrize(
    ("request_kwargs", "status", "kind", "says"),
    [
        (BAD_JSON, 400, "invalid_request", "not valid JSON"),
        ({}, 422, "invalid_request", "the request body is empty: send a JSON object"),
        (FORM, 422, "invalid_request", "must be a JSON object, sent with Content-Type: application/json"),
        ({"json": {"image_id": "x"}}, 422, "invalid_request", "prompts: Field required"),
        (body(prompts=[]), 422, "invalid_request", "prompts: List should have at least 1"),
        ({"json": {"prompts": [{"text": "cup"}]}}, 422, "invalid_request", "give exactly one of image_id"),
        (body(image="eA=="), 422, "invalid_request", "exactly one"),
        (body(prompts=[{"text": "  "}]), 422, "invalid_request", "prompts.0: Value error, a prompt needs"),
        (body(prompts=[{"txt": "cup"}]), 422, "invalid_request", "prompts.0.txt: Extra inputs"),
        (body(prompts=["cup"]), 422, "invalid_request", "prompts.0: Input should be a valid"),
        (body(thresholds={"score": 2}), 422, "invalid_request", "thresholds.score: Input should be less than or equal"),
        (body(prompts=[{"boxes": [{"box": [1, 2, 3]}]}]), 422, "invalid_request", "box"),
        (body(image_id="nope"), 404, "unknown_image", "register the image with POST"),
        (body(image_id=None, image="!!!not base64!!!"), 400, "image_error", "not valid base64"),
        (body(image_id=None, image="https://example.com/cat.jpg"), 400, "image_error",
         "expected base64 image data, got what looks like a URL ('https://example.com/cat.jpg'): the server does "
         "not fetch URLs; upload the image's bytes (POST /v1/images"),
        (body(image_id=None, image="/home/me/photos/cat.png"), 400, "image_error",
         "expected base64 image data, got what looks like a file path ('/home/me/photos/cat.png'): the server "
         "cannot read your files; upload"),
        (body(image_id=None, image="C:\\Users\\me\\cat.jpg"), 400, "image_error", "looks like a file path"),
        (body(image_id=None, image="cat.jpg"), 400, "image_error", "looks like a file path ('cat.jpg')"),
        (body(image_id=None, image=NOT_AN_IMAGE), 400, "image_error", "the inline image"),
        (body(image_id=None, image=IMAGE_B64, prompts=[{"boxes": [{"box": [200, 10, 220, 30]}]}]), 422,
         "prompt_error", "lies outside the 120x80 image"),
        (body(image_id=None, image=IMAGE_B64, prompts=[{"boxes": [{"box": [50, 40, 10, 10]}]}]), 422,
         "prompt_error", "is empty or inverted"),
    ],
)  # fmt: skip
def test_malformed_segment_requests_get_a_clear_4xx(
    client: TestClient, request_kwargs: dict, status: int, kind: str, says: str
) -> None:
    response = client.post("/v1/segment", **request_kwargs)
    got_status, got_kind, message = error_of(response)
    assert (got_status, got_kind) == (status, kind), message
    assert says in message


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "kind", "says"),
    [
        ("post", "/v1/images", {"content": b"hello", "headers": {"Content-Type": "text/plain"}}, 415,
         "unsupported_media_type", "content type 'text/plain' is not accepted"),
        ("post", "/v1/images", {"content": b"not an image", "headers": {"Content-Type": "image/png"}}, 400,
         "image_error", "is not a recognised image format"),
        ("post", "/v1/images", {"content": b"", "headers": {"Content-Type": "image/png"}}, 400, "image_error", "empty"),
        ("post", "/v1/images", {"json": {"img": "x"}}, 422, "invalid_request", "image: Field required"),
        ("post", "/v1/images", {"content": b"[", "headers": {"Content-Type": "application/json"}}, 400,
         "invalid_request", "not valid JSON"),
        ("post", "/v1/images", {"json": {"image": "file:///tmp/cat.png"}}, 400, "image_error",
         "expected base64 image data, got what looks like a URL ('file:///tmp/cat.png')"),
        ("get", "/v1/nothing", {}, 404, "not_found", "there is no route /v1/nothing on this server"),
        ("get", "/v1/segment", {}, 405, "method_not_allowed", "GET is not allowed on /v1/segment: it takes POST"),
        ("get", "/v1/images", {}, 405, "method_not_allowed", "GET is not allowed on /v1/images: it takes POST"),
        ("put", "/v1/segment_at", {}, 405, "method_not_allowed", "PUT is not allowed on /v1/segment_at: it takes POST"),
    ],
)  # fmt: skip
def test_malformed_other_requests(
    client: TestClient, method: str, path: str, kwargs: dict, status: int, kind: str, says: str
) -> None:
    response = getattr(client, method)(path, **kwargs)
    assert error_of(response)[:2] == (status, kind) and says in response.json()["error"]
    if status == 405:
        assert response.headers["allow"] == "POST"
        assert 'sam3_server_errors_total{type="method_not_allowed"} 1.0' in client.get("/metrics").text


def test_base64_that_looks_like_a_path_is_still_data(client: TestClient) -> None:
    buffer = io.BytesIO()
    SCENE.image().save(buffer, format="JPEG", quality=95)
    jpeg = base64.b64encode(buffer.getvalue()).decode()
    assert jpeg.startswith("/9j/"), "a JPEG's base64 starts like an absolute path"
    response = client.post("/v1/images", json={"image": jpeg})
    assert response.status_code == 200 and response.json()["width"] == 120


# -- the busy paths, over real HTTP --------------------------------------------------------------------------


def serve(segmenter: SceneSegmenter, **settings: object) -> BackgroundServer:
    return BackgroundServer(create_app(segmenter, ServerSettings(**settings))).start()


def segment_body(image_id: str, text: str = "cup") -> dict:
    return {"image_id": image_id, "prompts": [{"text": text}]}


def test_full_queue_answers_429_with_retry_after() -> None:
    segmenter = GatedSegmenter(SCENE)
    segmenter.gate.clear()
    with (
        serve(segmenter, max_batch=1, max_wait_ms=0, max_queue=2) as server,
        httpx.Client(base_url=server.base_url, timeout=20) as http,
        ThreadPoolExecutor(4) as pool,
    ):
        image_id = register(http)
        running = pool.submit(http.post, "/v1/segment", json=segment_body(image_id))
        assert segmenter.started.wait(10)
        queued = [pool.submit(http.post, "/v1/segment", json=segment_body(image_id)) for _ in range(2)]
        for _ in range(200):
            if server.app.state.sam3.dispatcher.queue_depth == 2:
                break
            time.sleep(0.01)
        refused = http.post("/v1/segment", json=segment_body(image_id))
        segmenter.gate.set()
        answered = [f.result() for f in (running, *queued)]
    assert error_of(refused)[:2] == (429, "queue_full") and int(refused.headers["retry-after"]) >= 1
    assert [r.status_code for r in answered] == [200, 200, 200]


def test_request_timeout_answers_504_and_the_server_goes_on() -> None:
    segmenter = GatedSegmenter(SCENE)
    with serve(segmenter, timeout_s=0.2) as server, httpx.Client(base_url=server.base_url, timeout=20) as http:
        image_id = register(http)
        segmenter.gate.clear()
        late = http.post("/v1/segment", json=segment_body(image_id))
        segmenter.gate.set()
        assert error_of(late)[:2] == (504, "timeout") and "0.2 s" in late.json()["error"]
        assert http.post("/v1/segment", json=segment_body(image_id)).status_code == 200


class OomOnceSegmenter(SceneSegmenter):
    """Raises a CUDA-style out-of-memory error on its first call, then works."""

    def __init__(self, scene: Scene, error: Exception) -> None:
        super().__init__(scene)
        self.error: Exception | None = error

    def segment(self, image: Image.Image, prompts: Sequence[Prompt], thresholds: Thresholds | None = None):
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return super().segment(image, prompts, thresholds)


@pytest.mark.parametrize(
    "error",
    [type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory."), RuntimeError("CUDA error: out of memory")],
    ids=["OutOfMemoryError", "RuntimeError"],
)
def test_out_of_memory_answers_503_and_the_server_recovers(error: Exception, monkeypatch: pytest.MonkeyPatch) -> None:
    released: list[bool] = []
    monkeypatch.setattr(jobs_module, "release_device_memory", lambda: released.append(True))
    with TestClient(create_app(OomOnceSegmenter(SCENE, error))) as client:
        image_id = register(client)
        failed = client.post("/v1/segment", json=segment_body(image_id))
        status, kind, message = error_of(failed)
        assert (status, kind) == (503, "out_of_memory") and message.startswith("out of memory")
        assert failed.headers["retry-after"] == "1" and released == [True]
        assert client.post("/v1/segment", json=segment_body(image_id)).status_code == 200
        assert client.get("/readyz").status_code == 200
        assert 'sam3_server_errors_total{type="out_of_memory"} 1.0' in client.get("/metrics").text


def test_concurrent_clients_get_their_own_results_in_shared_batches() -> None:
    segmenter = GatedSegmenter(SCENE, delay=0.02)
    phrases = ["cup", "laptop", "giraffe", "cups", "Laptop"] * 4
    with (
        serve(segmenter, max_batch=8, max_wait_ms=20) as server,
        httpx.Client(base_url=server.base_url, timeout=20) as http,
        ThreadPoolExecutor(8) as pool,
    ):
        image_id = register(http)
        scores = [0.0, 0.85, 0.5, 0.95]
        bodies = [
            {**segment_body(image_id, text), "thresholds": {"score": scores[i % 4]}} for i, text in enumerate(phrases)
        ]
        responses = list(pool.map(lambda body: http.post("/v1/segment", json=body), bodies))
    for body, response in zip(bodies, responses, strict=True):
        got = SegmentResponse.model_validate_json(response.content).instances
        want = SceneSegmenter(SCENE).segment(
            SCENE.image(), [Prompt(text=body["prompts"][0]["text"])], Thresholds(**body["thresholds"])
        )
        assert got == number_instances(want), "each client's own results, numbered 1..N in its own response"
    assert sum(segmenter.batches) == len(phrases) and len(segmenter.batches) < len(phrases)


def test_graceful_shutdown_finishes_accepted_requests() -> None:
    segmenter = GatedSegmenter(SCENE, delay=0.05)
    server = serve(segmenter, max_batch=2, max_wait_ms=0)
    with httpx.Client(base_url=server.base_url, timeout=20) as http, ThreadPoolExecutor(6) as pool:
        image_id = register(http)
        segmenter.gate.clear()
        accepted = [pool.submit(http.post, "/v1/segment", json=segment_body(image_id, t)) for t in ["cup"] * 5]
        assert segmenter.started.wait(10)
        time.sleep(0.1)  # all five are in the server now: one batch running, the rest queued
        stopping = pool.submit(server.stop)
        for _ in range(200):
            if server.app.state.sam3.draining:
                break
            time.sleep(0.01)
        assert server.app.state.sam3.draining and not any(f.done() for f in accepted)
        segmenter.gate.set()
        answers = [f.result() for f in accepted]
        stopping.result()
    assert [a.status_code for a in answers] == [200] * 5
    assert all(len(SegmentResponse.model_validate_json(a.content).instances[0]) == 2 for a in answers)
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.base_url + "/healthz", timeout=2)


def test_draining_server_refuses_new_work() -> None:
    with TestClient(create_app(SceneSegmenter(SCENE))) as client:
        image_id = register(client)
        client.app.state.sam3.begin_drain()
        assert error_of(client.get("/readyz")) == (503, "unavailable", "the server is shutting down")
        refused = client.post("/v1/segment", json=segment_body(image_id))
        assert error_of(refused)[:2] == (503, "unavailable") and refused.headers["retry-after"] == "1"


def test_instances_survive_the_wire_unchanged(client: TestClient) -> None:
    image_id = register(client)
    answer = client.post("/v1/segment", json={"image_id": image_id, "prompts": [{"text": "cup"}]}).json()
    first = Instance.model_validate(answer["instances"][0][0])
    assert first.mask.shape == (80, 120) and first.mask.sum() == first.area
    assert first.box == (10.0, 40.0, 30.0, 70.0)


def test_image_registry_keeps_the_most_recently_used_for_a_while() -> None:
    from sam3_agent.server.image_registry import ImageRegistry
    from sam3_agent.server.wire import ApiError

    now = [0.0]
    registry = ImageRegistry(2, ttl_s=10, clock=lambda: now[0])
    a, b, c = (Image.new("RGB", (4, 4), (v, 0, 0)) for v in (1, 2, 3))
    (_, ida), (_, idb) = registry.add(a), registry.add(b)
    assert registry.add(a.copy()) == (a, ida) and len(registry) == 2  # same pixels: same id, the one stored copy
    registry.get(idb)  # b is now the most recently used
    _, idc = registry.add(c)  # evicts a
    assert ida not in registry and idb in registry and idc in registry
    now[0] = 9.0
    registry.get(idc)
    now[0] = 15.0  # b was last used at 0: expired; c at 9: kept
    assert idb not in registry and registry.get(idc) is c
    with pytest.raises(ApiError) as unknown:
        registry.get(idb)
    assert unknown.value.status == 404 and "register the image with POST /v1/images first" in unknown.value.message
    assert (registry.hits, registry.misses) == (3, 1)


def test_create_app_needs_a_segmenter_and_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from sam3_agent.errors import ConfigError
    from sam3_agent.server.settings import TOKEN_ENV

    monkeypatch.setenv(TOKEN_ENV, "env-token")
    assert ServerSettings.build(max_batch=None).token == "env-token"
    assert ServerSettings.build(token_from_env=False).token is None
    assert "env-token" not in repr(ServerSettings.build())

    with pytest.raises(ConfigError, match="create_app needs a Segmenter or a Dispatcher, got str"):
        create_app("sam3")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"invalid server setting max_batch: Input should be greater than or equal"):
        ServerSettings.build(max_batch=0)
