"""Video on the server: upload a clip, start tracking phrases through it as a job, poll it, fetch the tracks.

- ``POST /v1/videos``: the clip's bytes (``video/*`` or ``application/octet-stream``, up to ``max_video_mb``) ->
  ``{video_id, width, height, fps, frame_count, duration_s}``; the clip is probed (and its first frame decoded)
  before the answer, so a file that cannot be tracked is refused at once (400 ``video_error``).
- ``POST /v1/videos/{video_id}/track``: ``{phrases, stride?, max_frames?, start_s?, end_s?, score?, presence?,
  min_frames?}`` -> 202 ``{job_id, status, ...}``: tracking runs in the background, one job at a time.
- ``GET /v1/jobs/{job_id}``: status (``queued`` / ``running`` / ``done`` / ``failed`` / ``cancelled``) and
  progress (``frames_done`` of ``frames_planned``). ``DELETE /v1/jobs/{job_id}``: cancel (between frames).
- ``GET /v1/jobs/{job_id}/result``: the tracks as ``sam3-agent track`` writes them (``video.summary.clip_json``:
  the track table, and every sampled frame with its objects' track ids, boxes and COCO RLE masks); 409
  ``job_not_done`` until the job is done.

Without a video model every route answers 501 ``not_supported``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from sam3_agent.errors import PromptError, VideoError
from sam3_agent.schema import MAX_PHRASE_CHARS
from sam3_agent.server.guard import as_api_error, bearer_scheme
from sam3_agent.server.video_jobs import TrackJobs, UnknownId, VideoStore, video_suffix
from sam3_agent.server.wire import ApiError, ErrorType, error_responses
from sam3_agent.video.protocol import DEFAULT_MAX_FRAMES, FrameSelection, TrackOptions

if TYPE_CHECKING:
    from sam3_agent.server.api import ServerState


class VideoInfoOut(BaseModel):
    """An uploaded clip: its id (for ``/track``) and what its container says."""

    video_id: str
    width: int
    height: int
    fps: float
    frame_count: int | None
    duration_s: float | None


class TrackRequest(BaseModel):
    """What to track through an uploaded clip, and which frames to look at."""

    model_config = ConfigDict(extra="forbid")

    phrases: list[str] = Field(min_length=1, max_length=16, description="short noun phrases, e.g. ['car', 'person']")
    stride: int = Field(default=1, ge=1, le=1000, description="look at every N-th frame")
    max_frames: int = Field(default=DEFAULT_MAX_FRAMES, ge=1, le=100_000, description="look at no more frames")
    start_s: float = Field(default=0.0, ge=0.0, description="start at this time (seconds)")
    end_s: float | None = Field(default=None, gt=0.0, description="stop before this time (seconds)")
    score: float = Field(default=0.5, ge=0.0, le=1.0, description="keep objects scoring >= this on a frame")
    presence: float = Field(default=0.5, ge=0.0, le=1.0, description="presence needed for a phrase to get tracks")
    min_frames: int = Field(default=1, ge=1, description="drop tracks seen on fewer frames")

    def options(self) -> TrackOptions:
        frames = FrameSelection(stride=self.stride, max_frames=self.max_frames, start_s=self.start_s, end_s=self.end_s)
        return TrackOptions(frames=frames, score=self.score, presence=self.presence, min_frames=self.min_frames)

    def clean_phrases(self) -> tuple[str, ...]:
        phrases = tuple(" ".join(p.split()) for p in self.phrases)
        if not all(phrases):
            raise PromptError("every phrase must be a non-empty noun phrase")
        if too_long := [p for p in phrases if len(p) > MAX_PHRASE_CHARS]:
            raise PromptError(f"a phrase has {len(too_long[0])} characters; the limit is {MAX_PHRASE_CHARS}")
        return phrases


class JobOut(BaseModel):
    job_id: str
    video_id: str
    phrases: list[str]
    status: str = Field(description="queued, running, done, failed or cancelled")
    frames_done: int
    frames_planned: int
    error: str | None = Field(description="why a failed job failed")


def video_routes(state: ServerState, jobs: TrackJobs | None, videos: VideoStore) -> APIRouter:
    dependencies, auth = bearer_scheme(state.settings.token)
    router = APIRouter(prefix="/v1", dependencies=dependencies, tags=["video"])

    def need_jobs() -> TrackJobs:
        if jobs is None:
            raise ApiError(501, ErrorType.NOT_SUPPORTED, "this server has no video model (start it with --video)")
        return jobs

    @router.post(
        "/videos",
        response_model=VideoInfoOut,
        responses=error_responses(400, *auth, 413, 415, 501),
        openapi_extra={
            "requestBody": {
                "content": {"video/*": {"schema": {"type": "string", "format": "binary"}}},
                "required": True,
            }
        },
    )
    async def upload_video(request: Request) -> VideoInfoOut:
        """Upload a clip once; then track phrases through it by ``video_id``."""
        need_jobs()
        kind = request.headers.get("content-type", "application/octet-stream").split(";")[0].strip().lower()
        if not (kind.startswith("video/") or kind == "application/octet-stream"):
            raise ApiError(
                415,
                ErrorType.UNSUPPORTED_MEDIA,
                f"content type {kind!r} is not accepted: send the video file's bytes (video/* or "
                "application/octet-stream)",
            )
        body = await request.body()
        if not body:
            raise ApiError(400, ErrorType.VIDEO, "the uploaded video is empty (0 bytes)")
        try:
            stored = await run_in_threadpool(videos.add, body, video_suffix(kind))
        except VideoError as exc:
            raise ApiError(400, ErrorType.VIDEO, str(exc).replace(str(videos.folder) + "/", "")) from None
        info = stored.clip.info
        return VideoInfoOut(
            video_id=stored.video_id,
            width=info.width,
            height=info.height,
            fps=info.fps,
            frame_count=info.frame_count,
            duration_s=info.duration_s,
        )

    @router.post(
        "/videos/{video_id}/track",
        status_code=202,
        response_model=JobOut,
        responses=error_responses(*auth, 404, 422, 429, 501, 503),
    )
    async def start_tracking(video_id: str, body: TrackRequest) -> JSONResponse:
        """Start tracking the phrases through the clip; poll ``/v1/jobs/{job_id}``."""
        runner = need_jobs()
        if state.draining:
            raise ApiError(503, ErrorType.UNAVAILABLE, "the server is shutting down", {"Retry-After": "1"})
        try:
            options = body.options()
        except ValidationError as exc:
            raise as_api_error(exc) from None
        try:
            phrases = body.clean_phrases()
        except PromptError as exc:
            raise ApiError(422, ErrorType.PROMPT, str(exc)) from None
        stored = _video(videos, video_id)
        if not stored.clip.plan(options.frames):
            raise ApiError(422, ErrorType.INVALID_REQUEST, "no frame of the clip is in the chosen time range")
        try:
            job = runner.submit(video_id, stored.clip, phrases, options)
        except OverflowError as exc:
            raise ApiError(429, ErrorType.QUEUE_FULL, str(exc), {"Retry-After": "10"}) from None
        return JSONResponse(job.describe(), status_code=202, headers={"Location": f"/v1/jobs/{job.job_id}"})

    @router.get("/jobs/{job_id}", response_model=JobOut, responses=error_responses(*auth, 404, 422, 501))
    async def job_status(job_id: str) -> dict[str, Any]:
        """A tracking job's status and progress."""
        return _job(need_jobs(), job_id).describe()

    @router.delete("/jobs/{job_id}", response_model=JobOut, responses=error_responses(*auth, 404, 422, 501))
    async def cancel_job(job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job (a running one stops before its next frame)."""
        runner = need_jobs()
        try:
            return runner.cancel(job_id).describe()
        except UnknownId as exc:
            raise ApiError(404, ErrorType.UNKNOWN_JOB, str(exc)) from None

    @router.get("/jobs/{job_id}/result", responses=error_responses(*auth, 404, 409, 422, 501))
    async def job_result(job_id: str) -> dict[str, Any]:
        """The tracks of a finished job: the track table and every sampled frame's objects (COCO RLE)."""
        job = _job(need_jobs(), job_id)
        if job.status != "done" or job.result is None:
            detail = f": {job.error}" if job.error else ""
            raise ApiError(409, ErrorType.JOB_NOT_DONE, f"job {job_id} is {job.status}{detail}")
        return job.result

    return router


def _video(videos: VideoStore, video_id: str):
    try:
        return videos.get(video_id)
    except UnknownId as exc:
        raise ApiError(404, ErrorType.UNKNOWN_VIDEO, str(exc)) from None


def _job(jobs: TrackJobs, job_id: str):
    try:
        return jobs.get(job_id)
    except UnknownId as exc:
        raise ApiError(404, ErrorType.UNKNOWN_JOB, str(exc)) from None
