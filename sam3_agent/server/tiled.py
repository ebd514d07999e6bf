"""Tiled segmentation on the server (``"tile"`` in a ``/v1/segment`` request): every tile is a job of its own.

The route hands the request to a ``TiledSegmenter`` running in a worker thread; its segmenter submits each
pass (the whole image, or one tile) to the server's dispatcher, so tiles are batched with other clients'
prompts like any request, and each tile's backbone features are cached like any image's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from PIL import Image
from starlette.concurrency import run_in_threadpool

from sam3_agent.engine.feature_cache import image_digest
from sam3_agent.engine.tiling import SegmentReport, TiledSegmenter, TileMode
from sam3_agent.schema import Instance, Prompt, Thresholds
from sam3_agent.server.batcher import Dispatcher
from sam3_agent.server.jobs import SegmentJob


class DispatchedSegmenter:
    """A ``Segmenter`` whose calls become jobs of ``dispatcher`` on ``loop`` (call it from a worker thread).

    ``known`` maps images already registered (by object id) to their ids, so they are not hashed again.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        loop: asyncio.AbstractEventLoop,
        timeout_s: float,
        *,
        query_cap: int | None = None,
        known: dict[int, str] | None = None,
    ) -> None:
        self.dispatcher, self.loop, self.timeout_s = dispatcher, loop, timeout_s
        self.query_cap = query_cap
        self.known = known or {}

    def segment(
        self, image: Image.Image, prompts: Sequence[Prompt], thresholds: Thresholds | None = None
    ) -> list[list[Instance]]:
        digest = self.known.get(id(image)) or image_digest(image)
        job = SegmentJob(image, digest, tuple(prompts), thresholds or Thresholds())
        return asyncio.run_coroutine_threadsafe(self.dispatcher.submit(job, self.timeout_s), self.loop).result()


def query_cap_of(target: object) -> int | None:
    """The served segmenter's query cap, when it has one and is loaded (asking must not load a model)."""
    if getattr(target, "loaded", True) is False:
        return None
    cap = getattr(target, "query_cap", None)
    return cap if isinstance(cap, int) else None


async def segment_tiled(
    dispatcher: Dispatcher,
    target: object,
    job: SegmentJob,
    mode: TileMode,
    timeout_s: float,
) -> tuple[list[list[Instance]], SegmentReport]:
    """``job`` segmented by a ``TiledSegmenter`` in ``mode`` whose passes go through ``dispatcher``."""
    segmenter = DispatchedSegmenter(
        dispatcher,
        asyncio.get_running_loop(),
        timeout_s,
        query_cap=query_cap_of(target),
        known={id(job.image): job.image_id},
    )
    tiled = TiledSegmenter(segmenter, mode=mode)
    return await run_in_threadpool(tiled.segment_with_report, job.image, job.prompts, job.thresholds)
