"""Video on the HTTP server: upload a clip, track as a job, poll, fetch the tracks; refusals with their types.

The image side is ``SceneSegmenter``; the video side ``ColourTracker`` (exact tracks), or a tracker that waits for
the test, to see a job queued / running, cancelled, and its result refused before it is done.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from video_fakes import FRAMES, ColourTracker, write_mp4

from sam3_agent.errors import Cancelled
from sam3_agent.server.api import create_app
from sam3_agent.server.settings import ServerSettings
from sam3_agent.testing.scene import Scene, SceneSegmenter


class GatedTracker(ColourTracker):
    """Tracks only once ``go`` is set, checking ``cancel`` while it waits."""

    def __init__(self) -> None:
        super().__init__()
        self.go = threading.Event()

    def track(self, clip, phrases, options=None, *, progress=None, cancel=None):
        while not self.go.wait(0.02):
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
        return super().track(clip, phrases, options, progress=progress, cancel=cancel)


def _client(tracker, **settings) -> TestClient:
    app = create_app(SceneSegmenter(Scene(32, 32, [])), ServerSettings(**settings), tracker=tracker)
    return TestClient(app)


@pytest.fixture
def clip_bytes(tmp_path: Path) -> bytes:
    return write_mp4(tmp_path / "squares.mp4").read_bytes()


def _upload(client: TestClient, data: bytes) -> str:
    answer = client.post("/v1/videos", content=data, headers={"content-type": "video/mp4"})
    assert answer.status_code == 200, answer.text
    return answer.json()["video_id"]


def _wait(client: TestClient, job_id: str, until: tuple[str, ...], timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in until:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {until}: {job}")


@pytest.fixture
def client() -> Iterator[TestClient]:
    with _client(ColourTracker()) as c:
        yield c


def test_upload_track_poll_and_fetch(client: TestClient, clip_bytes: bytes) -> None:
    answer = client.post("/v1/videos", content=clip_bytes, headers={"content-type": "video/mp4"})
    info = answer.json()
    assert (info["width"], info["height"], info["frame_count"]) == (96, 64, FRAMES)
    started = client.post(f"/v1/videos/{info['video_id']}/track", json={"phrases": ["red", "blue"], "stride": 2})
    assert started.status_code == 202 and started.headers["location"] == f"/v1/jobs/{started.json()['job_id']}"
    job = _wait(client, started.json()["job_id"], ("done", "failed"))
    assert job["status"] == "done" and job["frames_done"] == job["frames_planned"] == FRAMES // 2
    result = client.get(f"/v1/jobs/{job['job_id']}/result").json()
    assert [(t["track_id"], t["phrase"]) for t in result["tracks"]] == [(1, "red"), (2, "blue")]
    assert [f["index"] for f in result["frames"]] == list(range(0, FRAMES, 2))
    assert result["frames"][2]["objects"][1]["rle"]["size"] == [64, 96]


def test_refusals_are_typed_one_liners(client: TestClient, clip_bytes: bytes, tmp_path: Path) -> None:
    from PIL import Image

    picture = tmp_path / "photo.png"
    Image.new("RGB", (16, 16), "red").save(picture)
    cases = [
        (client.post("/v1/videos", content=picture.read_bytes(), headers={"content-type": "video/mp4"}), 400,
         "video_error", "is an image, not a video"),
        (client.post("/v1/videos", content=b"", headers={"content-type": "video/mp4"}), 400, "video_error", "empty"),
        (client.post("/v1/videos", content=clip_bytes, headers={"content-type": "text/plain"}), 415,
         "unsupported_media_type", "video/*"),
        (client.post("/v1/videos/nope/track", json={"phrases": ["red"]}), 404, "unknown_video", "nope"),
        (client.get("/v1/jobs/nope"), 404, "unknown_job", "nope"),
    ]  # fmt: skip
    video_id = _upload(client, clip_bytes)
    cases += [
        (client.post(f"/v1/videos/{video_id}/track", json={"phrases": ["  "]}), 422, "prompt_error", "non-empty"),
        (client.post(f"/v1/videos/{video_id}/track", json={"phrases": ["x" * 130]}), 422, "prompt_error", "120"),
        (client.post(f"/v1/videos/{video_id}/track", json={"phrases": ["red"], "start_s": 3, "end_s": 1}), 422,
         "invalid_request", "time range is empty"),
        (client.post(f"/v1/videos/{video_id}/track", json={"phrases": ["red"], "start_s": 50}), 422,
         "invalid_request", "no frame"),
    ]  # fmt: skip
    for answer, status, kind, words in cases:
        body = answer.json()
        assert (answer.status_code, body["type"]) == (status, kind), body
        assert words in body["error"] and "\n" not in body["error"]
        assert "sam3-videos-" not in body["error"]  # the server's folder stays private


def test_result_before_done_cancel_and_no_video_model(clip_bytes: bytes) -> None:
    tracker = GatedTracker()
    with _client(tracker) as client:
        video_id = _upload(client, clip_bytes)
        job_id = client.post(f"/v1/videos/{video_id}/track", json={"phrases": ["red"]}).json()["job_id"]
        early = client.get(f"/v1/jobs/{job_id}/result")
        assert early.status_code == 409 and early.json()["type"] == "job_not_done"
        assert client.delete(f"/v1/jobs/{job_id}").status_code == 200
        assert _wait(client, job_id, ("cancelled",))["status"] == "cancelled"
        second = client.post(f"/v1/videos/{video_id}/track", json={"phrases": ["blue"]}).json()["job_id"]
        tracker.go.set()
        assert _wait(client, second, ("done",))["status"] == "done"
    with _client(None) as client:
        answer = client.post("/v1/videos", content=clip_bytes, headers={"content-type": "video/mp4"})
        assert answer.status_code == 501 and answer.json()["type"] == "not_supported"


def test_video_uploads_have_their_own_body_limit(clip_bytes: bytes) -> None:
    with _client(ColourTracker(), max_body_mb=0.001, max_video_mb=0.002) as client:
        assert len(clip_bytes) > 0.002 * 2**20  # the clip is over both limits
        answer = client.post("/v1/videos", content=clip_bytes, headers={"content-type": "video/mp4"})
        assert answer.status_code == 413 and f"{int(0.002 * 2**20):,}" in answer.json()["error"]
    with _client(ColourTracker(), max_body_mb=0.001) as client:
        assert _upload(client, clip_bytes)  # over the request limit, under the video limit


def test_openapi_lists_the_video_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/videos", "/v1/videos/{video_id}/track", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/result"} <= set(paths)
    assert "202" in paths["/v1/videos/{video_id}/track"]["post"]["responses"]
    assert "409" in paths["/v1/jobs/{job_id}/result"]["get"]["responses"]
