"""Segmentation jobs and how a batch of them runs on a segmenter: one forward pass where possible.

A ``Sam3Engine`` (anything with ``segment_batch``) runs the prompts of every job, whatever their image, in
shared forward passes. Any other ``Segmenter`` gets one ``segment`` call per (image, thresholds) group, so
prompts that different clients send about the same image still share a call. A failure is confined to the
job that caused it; running out of memory fails the batch with ``OutOfMemory`` after freeing the cache.
Each job's result is numbered on its own (``number_instances``: ids 1..N across its prompts), whatever it
shared a call with.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from PIL import Image

from sam3_agent.engine.protocol import Segmenter, number_instances
from sam3_agent.schema import Instance, Prompt, Thresholds

log = logging.getLogger(__name__)

PerPrompt = list[list[Instance]]
Outcome = PerPrompt | BaseException


@dataclass(frozen=True, eq=False)
class SegmentJob:
    """One client request: an RGB image with its id (content digest), prompts and thresholds."""

    image: Image.Image
    image_id: str
    prompts: tuple[Prompt, ...]
    thresholds: Thresholds

    @property
    def size(self) -> int:
        """Prompts in the job: what counts against a batch's ``max_batch``."""
        return len(self.prompts)


@runtime_checkable
class BatchSegmenter(Protocol):
    """A segmenter that runs the prompts of several images together (``Sam3Engine.segment_batch``)."""

    def segment_batch(
        self,
        requests: Sequence[tuple[Image.Image, Sequence[Prompt], Thresholds | None]],
        *,
        digests: Sequence[str] | None = None,
    ) -> list[list[list[Instance]]]: ...


class OutOfMemory(Exception):
    """The device ran out of memory running a batch; its memory cache was emptied, the server goes on."""


def is_out_of_memory(exc: BaseException) -> bool:
    """``torch.cuda.OutOfMemoryError`` (matched by name: no torch import here), a RuntimeError saying
    "out of memory" (CUDA / HIP / MPS allocators), or a host ``MemoryError``."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def release_device_memory() -> None:
    """Collect garbage and return cached CUDA blocks to the driver (if torch with CUDA is loaded)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_jobs(segmenter: Segmenter, jobs: Sequence[SegmentJob]) -> list[Outcome]:
    """Run ``jobs`` together; per job, its per-prompt instances or the exception it failed with.

    Blocking (call it from a worker thread). Never raises: a batch that fails for a reason other than
    memory is re-run job by job, so that only the faulty job fails.
    """
    if not jobs:
        return []
    try:
        return list(_run(segmenter, jobs))
    except Exception as exc:
        if is_out_of_memory(exc):
            log.warning("out of memory on a batch of %d job(s): %s", len(jobs), exc)
            release_device_memory()
            prompts = sum(job.size for job in jobs)
            message = f"out of memory running a batch of {prompts} prompt(s); retry later or send fewer prompts"
            return [OutOfMemory(message) for _ in jobs]
        if len(jobs) == 1:
            return [exc]
        return [run_jobs(segmenter, [job])[0] for job in jobs]


def _run(segmenter: Segmenter, jobs: Sequence[SegmentJob]) -> list[PerPrompt]:
    if isinstance(segmenter, BatchSegmenter):
        requests = [(job.image, job.prompts, job.thresholds) for job in jobs]
        return [number_instances(r) for r in segmenter.segment_batch(requests, digests=[job.image_id for job in jobs])]
    groups: dict[tuple[str, Thresholds], list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault((job.image_id, job.thresholds), []).append(i)
    results: list[PerPrompt] = [[] for _ in jobs]
    for (_, thresholds), members in groups.items():
        prompts = [prompt for i in members for prompt in jobs[i].prompts]
        found = segmenter.segment(jobs[members[0]].image, prompts, thresholds)
        if len(found) != len(prompts):
            raise RuntimeError(f"the segmenter returned {len(found)} result lists for {len(prompts)} prompts")
        start = 0
        for i in members:
            results[i] = number_instances(found[start : start + jobs[i].size])
            start += jobs[i].size
    return results
