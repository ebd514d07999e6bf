"""The Ray Serve deployment on a local Ray instance (CPU): two engine replicas behind the same HTTP API."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from sam3_agent.engine.transformers_engine import Sam3Engine
from sam3_agent.errors import ConfigError, PromptError
from sam3_agent.schema import ExemplarBox, Prompt, Thresholds
from sam3_agent.server.client import RemoteSegmenter
from sam3_agent.server.settings import ServerSettings

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TOKEN = "ray-token"
KEEP_ALL = Thresholds(score=0.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def noise_image(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (64, 96, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def ray_url(tiny_checkpoint: Path) -> Iterator[str]:
    ray = pytest.importorskip("ray")
    from ray import serve

    from sam3_agent.server.ray_serve import start_ray_serve

    started_here = not ray.is_initialized()
    try:
        if started_here:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"a local Ray instance cannot start here: {exc}")
    try:
        url = start_ray_serve(
            str(tiny_checkpoint),
            ServerSettings(token=TOKEN, max_batch=8, max_wait_ms=20),
            host="127.0.0.1",
            port=free_port(),
            replicas=2,
            gpus_per_replica=0,
            cpus_per_replica=0.5,
            ingress_cpus=0.5,
            device="cpu",
            dtype="float32",
        )
        yield url
    finally:
        serve.shutdown()
        if started_here:
            ray.shutdown()


def test_ray_serve_answers_like_the_in_process_engine(ray_url: str, tiny_checkpoint: Path) -> None:
    reference = Sam3Engine(tiny_checkpoint, device="cpu", dtype="float32")
    images = [noise_image(seed) for seed in range(4)]
    requests = [
        (images[i % 4], [Prompt(text=["cup", "hat", "red dog"][i % 3]), Prompt(text=f"person {i}")]) for i in range(12)
    ]
    requests.append((images[0], [Prompt(boxes=(ExemplarBox(box=(5, 5, 50, 40)),))]))
    want = [reference.segment(image, prompts, KEEP_ALL) for image, prompts in requests]
    with RemoteSegmenter(ray_url, token=TOKEN) as remote, ThreadPoolExecutor(8) as pool:
        info = remote.info()
        got = list(pool.map(lambda request: remote.segment(request[0], request[1], KEEP_ALL), requests))
    assert info.segmenter == "Sam3Engine on Ray Serve (2 replica(s), CPU each)" and info.device == "cpu"
    for g, w in zip(got, want, strict=True):
        assert [len(found) for found in g] == [len(found) for found in w]
        for found_g, found_w in zip(g, w, strict=True):
            np.testing.assert_allclose([i.score for i in found_g], [i.score for i in found_w], atol=1e-5)
            assert [i.phrase for i in found_g] == [i.phrase for i in found_w]


def test_ray_serve_keeps_the_http_contract(ray_url: str) -> None:
    with httpx.Client(base_url=ray_url, timeout=60) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").status_code == 200
        refused = http.post("/v1/segment", json={"image_id": "x", "prompts": [{"text": "cup"}]})
        assert (refused.status_code, refused.json()["type"]) == (401, "unauthorized")
        malformed = http.post("/v1/segment", json={"prompts": []}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert (malformed.status_code, malformed.json()["type"]) == (422, "invalid_request")
        assert "sam3_server_requests_total" in http.get("/metrics").text
    with RemoteSegmenter(ray_url, token=TOKEN) as remote:
        outside = Prompt(boxes=(ExemplarBox(box=(200, 5, 220, 30)),))
        with pytest.raises(PromptError, match="lies outside the 96x64 image"):
            remote.segment(noise_image(0), [outside])
    with RemoteSegmenter(ray_url, token="wrong") as remote, pytest.raises(ConfigError, match="check the token"):
        remote.segment(noise_image(0), [Prompt(text="cup")])
