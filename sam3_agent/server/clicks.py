"""``POST /v1/segment_at``: ONE object from clicks, on the server's click engine (SAM 3's tracker).

Body ``{image_id | image, points?, labels?, box?, thresholds?}``: points ``[[x, y], ...]`` in pixels of the
registered image with ``labels`` (1 on the object, 0 off it; default all 1), and/or a ``box`` ``[x0, y0, x1,
y1]``. Answer ``{image_id, width, height, instance}``: the one ``Instance`` (mask as COCO RLE; area 0 when
nothing reached the mask threshold). Clicks run in a worker thread, one at a time on the engine's lock, with
the server's per-request timeout; they are not batched (one click is one small decoder pass on cached
embeddings, which the tracker shares with ``/v1/segment``'s backbone features).

Errors, in the server's format: 422 ``prompt_error`` for bad clicks (a point outside the image, an empty box,
labels not one per point), 404 ``unknown_image``, 501 ``not_supported`` when the server has no click engine
or its checkpoint has no tracker, 503 / 504 as for ``/v1/segment``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from sam3_agent.engine.checkpoint import TRACKER_MISSING
from sam3_agent.engine.protocol import Clicker
from sam3_agent.errors import CheckpointError
from sam3_agent.schema import ClickPrompt, Instance, Thresholds
from sam3_agent.server.guard import bearer_scheme
from sam3_agent.server.jobs import OutOfMemory, is_out_of_memory, release_device_memory
from sam3_agent.server.wire import (
    ApiError,
    ErrorType,
    SegmentAtRequest,
    SegmentAtResponse,
    decode_base64_image,
    error_responses,
)

if TYPE_CHECKING:
    from PIL import Image

    from sam3_agent.server.api import ServerState

log = logging.getLogger(__name__)


def click_routes(state: ServerState, clicker: Clicker | None) -> APIRouter:
    """The ``/v1/segment_at`` route over ``clicker`` (None: it answers 501 ``not_supported``)."""
    dependencies, auth = bearer_scheme(state.settings.token)
    router = APIRouter(prefix="/v1", dependencies=dependencies)
    errors = error_responses(400, *auth, 404, 413, 422, 501, 503, 504)

    @router.post("/segment_at", response_model=SegmentAtResponse, responses=errors)
    async def segment_at(body: SegmentAtRequest) -> Response:
        """The ONE object that points and / or a box point at (SAM 3's tracker; SAM 2-style clicks)."""
        if state.draining:
            raise ApiError(503, ErrorType.UNAVAILABLE, "the server is shutting down", {"Retry-After": "1"})
        if clicker is None:
            raise ApiError(501, ErrorType.NOT_SUPPORTED, f"this server has no click engine: {TRACKER_MISSING}")
        image, image_id = await _image(state, body)
        prompt = ClickPrompt.of(body.points, body.labels, body.box)
        prompt.check_inside(image.width, image.height)
        found = await _run(clicker, image, prompt, body.thresholds or Thresholds(), state.settings.timeout_s)
        found = found if found.id == 1 else found.model_copy(update={"id": 1})  # a click answers id 1
        answer = SegmentAtResponse(image_id=image_id, width=image.width, height=image.height, instance=found)
        return Response(answer.model_dump_json(), media_type="application/json")

    return router


async def _image(state: ServerState, body: SegmentAtRequest) -> tuple[Image.Image, str]:
    """The registered image, or the inline one decoded and registered."""
    if body.image_id is not None:
        return state.registry.get(body.image_id), body.image_id
    data = decode_base64_image(body.image or "", state.settings.max_body_bytes)
    return await state.register(data, "the inline image")


async def _run(
    clicker: Clicker, image: Image.Image, prompt: ClickPrompt, thresholds: Thresholds, timeout_s: float
) -> Instance:
    def work() -> Instance:
        return clicker.segment_at(image, prompt.points, prompt.labels, prompt.box, thresholds)

    try:
        return await asyncio.wait_for(run_in_threadpool(work), timeout_s)
    except TimeoutError:
        raise ApiError(504, ErrorType.TIMEOUT, f"the click took longer than {timeout_s:g} s") from None
    except CheckpointError as exc:
        raise ApiError(501, ErrorType.NOT_SUPPORTED, str(exc).splitlines()[0]) from None
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        log.warning("out of memory on a click: %s", exc)
        release_device_memory()
        raise OutOfMemory(f"the device ran out of memory on this click: {exc}") from None
