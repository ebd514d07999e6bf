"""The segmentation server's HTTP API (FastAPI): one resident engine shared by many clients.

Endpoints (``/v1/*`` need the bearer token when one is configured):

- ``POST /v1/images``: raw image bytes (``image/*`` or ``application/octet-stream``) or JSON
  ``{"image": <base64 or data URL>}`` -> ``{image_id, width, height}``. The id is the digest of the decoded
  RGB pixels, so registering an image again is free.
- ``POST /v1/segment``: ``{image_id | image, prompts, thresholds?, tile?}`` -> ``{image_id, width, height,
  instances, tiling}``, ``instances[i]`` being the ``Instance`` list of ``prompts[i]`` (``Segmenter.segment``;
  ids 1..N across the whole response, ``number_instances``); ``tile`` "always" / "auto" segments in tiles
  (``server.tiled``) and ``tiling`` reports how.
- ``POST /v1/segment_at``: ``{image_id | image, points?, labels?, box?, thresholds?}`` -> ``{image_id, width,
  height, instance}``: ONE object from clicks (``sam3_agent.server.clicks``; 501 without a click engine).
- ``GET /v1/info``: segmenter, device and limits. ``GET /healthz``: the process is up. ``GET /readyz``:
  the model is loaded and the server not shutting down (503 otherwise), with the image registry's size and
  bounds. ``GET /metrics``: Prometheus.

Errors are ``{"error": message, "type": kind}`` (see ``wire.ErrorType``): 400 malformed JSON or image,
401 token, 404 unknown image id or route, 405 method (``method_not_allowed``), 413 body too large, 415
content type, 422 invalid fields or prompts, 429 queue full (Retry-After), 503 out of memory / shutting
down, 504 timeout. The OpenAPI document declares them per route (``wire.error_responses``) and, when a
token is set, the bearer scheme on ``/v1/*`` (``/docs`` then has "Authorize"); the token itself is checked
by ``guard.RequestGuard`` before any body is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

import sam3_agent
from sam3_agent.engine.feature_cache import image_digest
from sam3_agent.engine.protocol import Clicker, Segmenter, clicker_for, number_instances
from sam3_agent.errors import ConfigError
from sam3_agent.images import decode_image
from sam3_agent.schema import Thresholds
from sam3_agent.server.batcher import Dispatcher, DynamicBatcher
from sam3_agent.server.clicks import click_routes
from sam3_agent.server.guard import RequestGuard, as_api_error, bearer_scheme, error_json, install_error_handlers
from sam3_agent.server.image_registry import ImageRegistry, large_image_blocks
from sam3_agent.server.jobs import SegmentJob, run_jobs
from sam3_agent.server.metrics import ServerMetrics
from sam3_agent.server.settings import ServerSettings
from sam3_agent.server.tiled import query_cap_of, segment_tiled
from sam3_agent.server.video import video_routes
from sam3_agent.server.video_jobs import TrackJobs, VideoStore
from sam3_agent.server.wire import (
    ApiError,
    ErrorType,
    ImageInfo,
    Readiness,
    RegisterImage,
    SegmentRequest,
    SegmentResponse,
    ServerInfo,
    decode_base64_image,
    error_responses,
)

if TYPE_CHECKING:
    from sam3_agent.video.protocol import VideoTracker

log = logging.getLogger(__name__)


DECODES_AT_ONCE = 4
"""Images decoded at the same time, at most: each may transiently take up to ``max_pixels`` x 4 bytes beside the
registry's cap (a 50 MP image: 200 MB), so concurrent uploads cannot pile up decoded pixels."""


@dataclass
class ServerState:
    """What the routes share: the dispatcher running jobs, registered images, settings, metrics."""

    target: object
    dispatcher: Dispatcher
    registry: ImageRegistry
    settings: ServerSettings
    metrics: ServerMetrics
    draining: bool = False
    load_error: str | None = None
    decodes: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(DECODES_AT_ONCE))

    async def register(self, data: bytes, what: str) -> tuple[Image.Image, str]:
        """Decode encoded image bytes (in a worker thread, ``DECODES_AT_ONCE`` at a time) and register the image;
        the RGB image to use (the registry's copy when it held the pixels already) and its id.

        Raises:
            ImageError: not a readable image, over ``max_pixels``, or alone bigger than the registry's cap.
        """

        def decode() -> tuple[Image.Image, str]:
            image = decode_image(data, max_pixels=self.settings.max_pixels, what=what)
            return image, image_digest(image)

        async with self.decodes:
            image, image_id = await run_in_threadpool(decode)
            return self.registry.add(image, image_id)

    def not_ready_reason(self) -> str | None:
        """None when requests can be served now, else why not."""
        if self.draining:
            return "the server is shutting down"
        if self.load_error is not None:
            return f"the model failed to load: {self.load_error}"
        if getattr(self.target, "loaded", True) is False:
            return "the model is still loading"
        return None

    def begin_drain(self) -> None:
        """Refuse new requests from now on (readiness turns 503); accepted ones still finish."""
        self.draining = True


def create_app(
    target: Segmenter | Dispatcher,
    settings: ServerSettings | None = None,
    *,
    clicker: Clicker | None = None,
    tracker: VideoTracker | None = None,
) -> FastAPI:
    """The FastAPI app serving ``target``.

    Args:
        target: a ``Segmenter`` (e.g. a ``Sam3Engine``: loaded in the background at startup if not yet
            loaded; requests are batched by a ``DynamicBatcher``), or a ready ``Dispatcher`` (Ray Serve).
        settings: batching, limits and auth; None means ``ServerSettings()`` (no token).
        clicker: the click engine of ``/v1/segment_at``; None: ``clicker_for(target)`` (SAM 3's tracker sharing
            a ``Sam3Engine``'s backbone, when its checkpoint has the tracker), else the route answers 501.
        tracker: SAM 3's video model for ``/v1/videos`` and ``/v1/jobs`` (``sam3_agent.server.video``); None:
            those routes answer 501.
    """
    is_dispatcher = isinstance(target, Dispatcher) and not isinstance(target, Segmenter)
    if not is_dispatcher and not isinstance(target, Segmenter):
        raise ConfigError(f"create_app needs a Segmenter or a Dispatcher, got {type(target).__name__}")
    settings = settings or ServerSettings()
    large_image_blocks()  # evicted images' memory goes back to the OS
    registry = ImageRegistry(settings.max_images, settings.image_ttl_s, max_bytes=settings.max_image_bytes)
    metrics = ServerMetrics(None if is_dispatcher else target, images=registry)
    if is_dispatcher:
        dispatcher: Dispatcher = target  # type: ignore[assignment]
    else:
        dispatcher = DynamicBatcher(
            lambda jobs: run_jobs(target, jobs),  # type: ignore[arg-type]
            max_batch=settings.max_batch,
            max_wait_s=settings.max_wait_ms / 1000.0,
            max_queue=settings.max_queue,
            observer=metrics,
        )
    state = ServerState(target, dispatcher, registry, settings, metrics)
    videos = VideoStore(settings.max_videos, settings.image_ttl_s)
    track_jobs = None if tracker is None else TrackJobs(tracker)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.decodes = asyncio.Semaphore(DECODES_AT_ONCE)  # bound to this event loop
        await dispatcher.start()
        loading = asyncio.create_task(_load(state)) if callable(getattr(target, "load", None)) else None
        try:
            yield
        finally:
            state.begin_drain()
            await dispatcher.close(settings.drain_timeout_s)
            if loading is not None and not loading.done():
                loading.cancel()
            if track_jobs is not None:
                track_jobs.close()
            videos.close()

    app = FastAPI(
        title="sam3-agent segmentation server",
        version=sam3_agent.__version__,
        summary="SAM 3 on one resident engine, shared by many clients, with dynamic batching.",
        lifespan=lifespan,
    )
    app.state.sam3 = state
    app.add_middleware(
        RequestGuard,
        token=settings.token,
        max_body_bytes=settings.max_body_bytes,
        metrics=metrics,
        path_limits={"/v1/videos": settings.max_video_bytes},
    )
    install_error_handlers(app, metrics)
    app.include_router(_v1_routes(state))
    app.include_router(click_routes(state, clicker if clicker is not None else clicker_for(target)))
    app.include_router(video_routes(state, track_jobs, videos))
    app.include_router(_ops_routes(state))
    return app


async def _load(state: ServerState) -> None:
    if getattr(state.target, "loaded", False):
        return
    try:
        await run_in_threadpool(state.target.load)  # type: ignore[attr-defined]
    except Exception as exc:
        state.load_error = str(exc)
        log.error("the segmenter failed to load: %s", exc)


def _v1_routes(state: ServerState) -> APIRouter:
    dependencies, auth = bearer_scheme(state.settings.token)
    router = APIRouter(prefix="/v1", dependencies=dependencies)
    settings = state.settings

    @router.post(
        "/images",
        response_model=ImageInfo,
        responses=error_responses(400, *auth, 413, 415, 422),
        openapi_extra={
            "requestBody": {
                "content": {
                    "image/*": {"schema": {"type": "string", "format": "binary"}},
                    "application/json": {"schema": RegisterImage.model_json_schema()},
                },
                "required": True,
            }
        },
    )
    async def register_image(request: Request) -> ImageInfo:
        """Register an image once; then segment it by ``image_id`` (sending only prompts)."""
        kind = request.headers.get("content-type", "application/octet-stream").split(";")[0].strip().lower()
        body = await request.body()
        if kind == "application/json" or kind.endswith("+json"):
            try:
                payload = RegisterImage.model_validate_json(body)
            except ValidationError as exc:
                raise as_api_error(exc) from None
            data = decode_base64_image(payload.image, settings.max_body_bytes)
        elif kind.startswith("image/") or kind == "application/octet-stream":
            data = body
        else:
            raise ApiError(
                415,
                ErrorType.UNSUPPORTED_MEDIA,
                f"content type {kind!r} is not accepted: send image bytes (image/* or application/octet-stream) "
                'or JSON {"image": "<base64>"}',
            )
        image, image_id = await state.register(data, "the uploaded image")
        return ImageInfo(image_id=image_id, width=image.width, height=image.height)

    segment_errors = error_responses(400, *auth, 404, 413, 422, 429, 503, 504)

    @router.post("/segment", response_model=SegmentResponse, responses=segment_errors)
    async def segment(body: SegmentRequest) -> Response:
        """Every instance matching each prompt, on a registered or inline image (one batched forward pass)."""
        if state.draining:
            raise ApiError(503, ErrorType.UNAVAILABLE, "the server is shutting down", {"Retry-After": "1"})
        if len(body.prompts) > settings.max_prompts:
            raise ApiError(
                422,
                ErrorType.PROMPT,
                f"{len(body.prompts)} prompts in one request; the server takes at most {settings.max_prompts}",
            )
        if body.image_id is not None:
            image, image_id = state.registry.get(body.image_id), body.image_id
        else:
            data = decode_base64_image(body.image or "", settings.max_body_bytes)
            image, image_id = await state.register(data, "the inline image")
        for prompt in body.prompts:
            for box in prompt.boxes:
                box.check_inside(image.width, image.height)
        job = SegmentJob(image, image_id, tuple(body.prompts), body.thresholds or Thresholds())
        report = None
        if body.tile == "never":
            found = await state.dispatcher.submit(job, settings.timeout_s)
        else:
            found, report = await segment_tiled(state.dispatcher, state.target, job, body.tile, settings.timeout_s)
        answer = SegmentResponse(
            image_id=image_id, width=image.width, height=image.height, instances=number_instances(found), tiling=report
        )
        return Response(answer.model_dump_json(), media_type="application/json")

    @router.get("/info", response_model=ServerInfo, responses=error_responses(*auth))
    async def info() -> ServerInfo:
        """What the server runs, and the limits a client must respect."""
        describe = getattr(state.target, "describe", None)
        described = describe() if callable(describe) else {}
        device, dtype = getattr(state.target, "device", None), getattr(state.target, "dtype", None)
        return ServerInfo(
            segmenter=described.get("segmenter", type(state.target).__name__),
            device=described.get("device", None if device is None else str(device)),
            dtype=described.get("dtype", None if dtype is None else str(dtype).removeprefix("torch.")),
            max_batch=settings.max_batch,
            max_prompts=settings.max_prompts,
            max_body_bytes=settings.max_body_bytes,
            max_pixels=settings.max_pixels,
            query_cap=query_cap_of(state.target),
        )

    return router


def _ops_routes(state: ServerState) -> APIRouter:
    router = APIRouter(include_in_schema=True)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @router.get("/readyz", response_model=Readiness, responses=error_responses(503))
    async def readyz() -> JSONResponse:
        """Readiness: the model is loaded and the server takes requests; the queue depth and the image registry
        (images and decoded bytes held, and their caps)."""
        reason = state.not_ready_reason()
        if reason is not None:
            return error_json(503, ErrorType.UNAVAILABLE, reason)
        ready = Readiness(queue_depth=state.dispatcher.queue_depth, images=state.registry.usage())
        return JSONResponse(ready.model_dump(mode="json"))

    @router.get("/metrics")
    async def metrics() -> Response:
        """Prometheus metrics of this app."""
        body, content_type = state.metrics.render()
        return Response(body, media_type=content_type)

    return router
