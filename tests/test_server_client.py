"""RemoteSegmenter: registration once per image, error mapping, retries honouring Retry-After, make_segmenter."""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from sam3_agent.engine.protocol import Segmenter, number_instances
from sam3_agent.errors import ConfigError, ImageError, PromptError
from sam3_agent.schema import ExemplarBox, Prompt, Thresholds
from sam3_agent.server.api import create_app
from sam3_agent.server.client import RemoteSegmenter, SegmentationServerError, make_segmenter
from sam3_agent.server.settings import TOKEN_ENV, ServerSettings
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter

SCENE = Scene(100, 60, [SceneObject("cup", (10, 10, 40, 50)), SceneObject("cup", (60, 10, 90, 50), score=0.7)])
CUPS = [Prompt(text="cups")]


def other_image() -> Image.Image:
    image = SCENE.image()
    image.putpixel((0, 0), (1, 2, 3))
    return image


@contextlib.contextmanager
def remote(settings: ServerSettings | None = None, **kwargs: object) -> Iterator[tuple[RemoteSegmenter, TestClient]]:
    """A RemoteSegmenter sending through a TestClient of a server app on the scene."""
    with TestClient(create_app(SceneSegmenter(SCENE), settings), base_url="http://sam3.test") as client:
        yield RemoteSegmenter("http://sam3.test", client=client, **kwargs), client  # type: ignore[arg-type]


def scripted(*answers: httpx.Response | Exception) -> tuple[RemoteSegmenter, list[httpx.Request], list[float]]:
    """A RemoteSegmenter whose requests get ``answers`` in order (a registration answer comes first)."""
    seen: list[httpx.Request] = []
    pending = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v1/images":
            return httpx.Response(200, json={"image_id": "img-1", "width": 100, "height": 60})
        answer = pending.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    sleeps: list[float] = []
    client = httpx.Client(transport=httpx.MockTransport(handle))
    segmenter = RemoteSegmenter("http://mock", max_retries=3, client=client, sleep=sleeps.append)
    return segmenter, seen, sleeps


def error(status: int, kind: str, message: str = "scripted", **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"error": message, "type": kind}, headers=headers)


OK = httpx.Response(200, json={"image_id": "img-1", "width": 100, "height": 60, "instances": [[]]})


def test_is_a_segmenter_with_the_servers_results() -> None:
    with remote() as (segmenter, _):
        assert isinstance(segmenter, Segmenter)
        thresholds = Thresholds(score=0.8)
        assert segmenter.segment(SCENE.image(), CUPS, thresholds) == number_instances(
            SceneSegmenter(SCENE).segment(SCENE.image(), CUPS, thresholds)
        )
        assert segmenter.segment(SCENE.image(), []) == []


def test_each_image_is_registered_once() -> None:
    with remote() as (segmenter, client):
        for prompts in (CUPS, [Prompt(text="cup")], CUPS):
            segmenter.segment(SCENE.image(), prompts)
        assert segmenter.registrations == 1
        segmenter.segment(other_image(), CUPS)
        segmenter.segment(SCENE.image().convert("RGBA"), CUPS)  # same pixels once converted to RGB
        assert segmenter.registrations == 2 and len(client.app.state.sam3.registry) == 2
        assert segmenter.register(SCENE.image()) == segmenter.register(SCENE.image().copy())


def test_an_evicted_image_is_registered_again_transparently() -> None:
    with remote(ServerSettings(max_images=1)) as (segmenter, _):
        for image in (SCENE.image(), other_image(), SCENE.image()):
            assert len(segmenter.segment(image, CUPS)[0]) == 2
        assert segmenter.registrations == 3


def test_caller_errors_come_back_as_our_exceptions() -> None:
    with remote(ServerSettings(max_pixels=5000)) as (segmenter, _):
        with pytest.raises(ImageError, match=r"refused the image: the uploaded image is 100x60 = 6,000 pixels"):
            segmenter.segment(SCENE.image(), CUPS)
        with pytest.raises(ImageError, match=r"expected a PIL\.Image\.Image, got str"):
            segmenter.segment("cup.png", CUPS)  # type: ignore[arg-type]
    with remote() as (segmenter, _):
        outside = Prompt(boxes=(ExemplarBox(box=(120, 10, 130, 20)),))
        with pytest.raises(PromptError, match="lies outside the 100x60 image"):
            segmenter.segment(SCENE.image(), [outside])


def test_token_is_sent_and_a_refused_one_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ServerSettings(token="right")
    with remote(settings, token="right") as (segmenter, _):
        assert len(segmenter.segment(SCENE.image(), CUPS)[0]) == 2
    monkeypatch.setenv(TOKEN_ENV, "right")
    with remote(settings) as (segmenter, _):  # from the environment
        assert segmenter.load() is segmenter
    with remote(settings, token="wrong") as (segmenter, _), pytest.raises(ConfigError) as refused:
        segmenter.segment(SCENE.image(), CUPS)
    assert "refused the request (invalid bearer token): check the token (--token or $SAM3_AGENT_SERVER_TOKEN)" in str(
        refused.value
    )


def test_busy_answers_are_retried_honouring_retry_after() -> None:
    segmenter, seen, sleeps = scripted(
        error(429, "queue_full", **{"Retry-After": "2"}), error(503, "out_of_memory", **{"Retry-After": "1"}), OK
    )
    assert segmenter.segment(SCENE.image(), CUPS) == [[]]
    assert sleeps == [2.0, 1.0]
    assert [r.url.path for r in seen] == ["/v1/images", "/v1/segment", "/v1/segment", "/v1/segment"]


def test_retry_after_is_capped_and_backoff_used_without_it() -> None:
    segmenter, _, sleeps = scripted(error(429, "queue_full", **{"Retry-After": "3600"}), error(502, "x"), OK)
    segmenter.segment(SCENE.image(), CUPS)
    assert sleeps[0] == segmenter.retry_max_wait and 0 < sleeps[1] < 1


def test_persistent_unavailability_ends_in_a_clear_error() -> None:
    segmenter, seen, sleeps = scripted(*[error(503, "unavailable", "the server is shutting down")] * 4)
    with pytest.raises(SegmentationServerError, match=r"HTTP 503\): the server is shutting down \(gave up after 4"):
        segmenter.segment(SCENE.image(), CUPS)
    assert len(sleeps) == 3 and len(seen) == 5


@pytest.mark.parametrize(
    ("answer", "exception", "says"),
    [
        (error(504, "timeout", "no result within the request timeout"), SegmentationServerError, "HTTP 504"),
        (error(500, "internal", "boom"), SegmentationServerError, "failed on /v1/segment (HTTP 500): boom"),
        (httpx.Response(404, json={"detail": "Not Found"}), ConfigError, "is it a sam3-agent segmentation server"),
        (httpx.Response(200, json={"unexpected": True}), SegmentationServerError, "with something unexpected"),
        (httpx.ReadTimeout("slow"), SegmentationServerError, "gave no answer within 120 s"),
        (error(422, "invalid_request", "prompts.0: bad"), PromptError, "refused the request: prompts.0: bad"),
        (error(413, "too_large", "the request body is over"), ImageError, "refused the image"),
    ],
)
def test_other_failures_are_not_retried(answer: httpx.Response | Exception, exception: type, says: str) -> None:
    segmenter, seen, sleeps = scripted(answer)
    with pytest.raises(exception, match=re.escape(says)):
        segmenter.segment(SCENE.image(), CUPS)
    assert sleeps == [] and len(seen) == 2


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server() -> None:
    sleeps: list[float] = []
    segmenter = RemoteSegmenter(f"http://127.0.0.1:{closed_port()}", max_retries=2, sleep=sleeps.append)
    with pytest.raises(SegmentationServerError, match=r"cannot reach the segmentation server .*gave up after 3"):
        segmenter.segment(SCENE.image(), CUPS)
    assert len(sleeps) == 2 and not segmenter.ready()
    segmenter.close()


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"base_url": "localhost:8000"}, "must start with http:// or https://"),
        ({"base_url": "http://x", "max_retries": -1}, "max_retries >= 0"),
    ],
)
def test_constructor_checks(kwargs: dict, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        RemoteSegmenter(**kwargs)


def test_make_segmenter_picks_remote_or_engine(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sam3_agent.engine.transformers_engine import Sam3Engine

    with pytest.raises(ConfigError, match="drop --checkpoint, --device"):
        make_segmenter(str(tiny_checkpoint), server="http://x", device="cpu")
    with pytest.raises(ConfigError, match="give --server URL too"):
        make_segmenter(str(tiny_checkpoint), token="t")
    engine = make_segmenter(str(tiny_checkpoint), device="cpu", cache_size=3)
    assert isinstance(engine, Sam3Engine) and engine.loaded and engine._cache.capacity == 3
    lazy = make_segmenter(server="http://127.0.0.1:9", token="t", load=False)
    assert isinstance(lazy, RemoteSegmenter) and lazy.base_url == "http://127.0.0.1:9"
    checked: list[str] = []
    monkeypatch.setattr(RemoteSegmenter, "load", lambda self: checked.append(self.base_url) or self)
    assert isinstance(make_segmenter(server="https://gpu-box:8000/", cache_size=3), RemoteSegmenter)
    assert checked == ["https://gpu-box:8000"]


def test_info_and_ready() -> None:
    with remote(ServerSettings(max_batch=4)) as (segmenter, _):
        info = segmenter.info()
        assert (info.segmenter, info.max_batch) == ("SceneSegmenter", 4)
        assert segmenter.ready()
