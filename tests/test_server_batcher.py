"""The dynamic batcher and the batch runner, without HTTP: routing, batch sizes, bounds, timeouts, drain."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest
from PIL import Image

from sam3_agent.errors import PromptError
from sam3_agent.masks import rle_encode
from sam3_agent.schema import Instance, Prompt, Thresholds
from sam3_agent.server import jobs as jobs_module
from sam3_agent.server.batcher import DynamicBatcher, JobTimeout, QueueFull, ShuttingDown
from sam3_agent.server.jobs import OutOfMemory, SegmentJob, is_out_of_memory, run_jobs

IMAGES = [Image.new("RGB", (8 + i, 6), (i, 0, 0)) for i in range(4)]


def echo_instance(image: Image.Image, prompt: Prompt, thresholds: Thresholds) -> Instance:
    """An instance that says which image, prompt and threshold produced it."""
    rle = rle_encode(np.ones((image.height, image.width), dtype=bool))
    box = (0.0, 0.0, float(image.width), float(image.height))
    return Instance(
        id=0, phrase=prompt.label, score=thresholds.score, box=box, rle=rle, area=image.width * image.height
    )


class EchoSegmenter:
    """Answers each prompt with one echo instance; records every call; can block until released."""

    def __init__(self, *, fail_on: str | None = None, delay: float = 0.0) -> None:
        self.calls: list[tuple[tuple[int, int], list[str]]] = []
        self.fail_on = fail_on
        self.delay = delay
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()

    def segment(self, image: Image.Image, prompts: Sequence[Prompt], thresholds: Thresholds | None = None):
        self.started.set()
        self.gate.wait(10)
        time.sleep(self.delay)
        self.calls.append((image.size, [p.label for p in prompts]))
        if self.fail_on is not None and any(p.text == self.fail_on for p in prompts):
            raise PromptError(f"cannot segment {self.fail_on!r}")
        return [[echo_instance(image, p, thresholds or Thresholds())] for p in prompts]


def job(i: int, *texts: str, image: int = 0, score: float = 0.5) -> SegmentJob:
    prompts = tuple(Prompt(text=t) for t in texts) or (Prompt(text=f"thing {i}"),)
    return SegmentJob(IMAGES[image], f"img{image}", prompts, Thresholds(score=score))


class Sizes:
    def __init__(self) -> None:
        self.batches: list[tuple[int, int]] = []
        self.depths: list[int] = []

    def observe_batch(self, requests: int, prompts: int, seconds: float) -> None:
        self.batches.append((requests, prompts))

    def set_queue_depth(self, depth: int) -> None:
        self.depths.append(depth)


def batcher(segmenter: EchoSegmenter, observer: Sizes | None = None, **kw) -> DynamicBatcher:
    return DynamicBatcher(lambda jobs: run_jobs(segmenter, jobs), observer=observer, **kw)


def test_concurrent_callers_each_get_their_own_result() -> None:
    segmenter, sizes = EchoSegmenter(delay=0.01), Sizes()

    async def main() -> list:
        b = batcher(segmenter, sizes, max_batch=8, max_wait_s=0.02)
        await b.start()
        submitted = [b.submit(job(i, image=i % 4, score=i / 40), timeout=10) for i in range(30)]
        results = await asyncio.gather(*submitted)
        await b.close(5)
        return results

    results = asyncio.run(main())
    for i, per_prompt in enumerate(results):
        (found,) = per_prompt
        assert [inst.phrase for inst in found] == [f"thing {i}"]
        assert found[0].score == i / 40 and found[0].image_size == (6, 8 + i % 4)
    assert sum(requests for requests, _ in sizes.batches) == 30
    assert all(prompts <= 8 for _, prompts in sizes.batches)
    assert len(sizes.batches) < 30 and max(requests for requests, _ in sizes.batches) > 1
    assert sizes.depths[-1] == 0


def test_batch_size_one_runs_every_request_alone() -> None:
    segmenter, sizes = EchoSegmenter(), Sizes()

    async def main() -> None:
        b = batcher(segmenter, sizes, max_batch=1, max_wait_s=0.05)
        await b.start()
        await asyncio.gather(*(b.submit(job(i), timeout=10) for i in range(6)))
        await b.close(5)

    asyncio.run(main())
    assert sizes.batches == [(1, 1)] * 6


def test_a_job_larger_than_a_batch_runs_alone_and_jobs_are_never_split() -> None:
    segmenter, sizes = EchoSegmenter(), Sizes()

    async def main() -> list:
        b = batcher(segmenter, sizes, max_batch=3, max_wait_s=0.05)
        await b.start()
        results = await asyncio.gather(
            b.submit(job(0, "a", "b"), timeout=10),
            b.submit(job(1, "c", "d"), timeout=10),
            b.submit(job(2, "e", "f", "g", "h", "i"), timeout=10),
        )
        await b.close(5)
        return results

    results = asyncio.run(main())
    assert [[found[0].phrase for found in r] for r in results] == [["a", "b"], ["c", "d"], ["e", "f", "g", "h", "i"]]
    assert sizes.batches == [(1, 2), (1, 2), (1, 5)]


def test_same_image_prompts_of_several_callers_share_one_segment_call() -> None:
    segmenter = EchoSegmenter()
    outcomes = run_jobs(
        segmenter, [job(0, "cup"), job(1, "hat", "dog"), job(2, "cat", image=1), job(3, "x", score=0.2)]
    )
    assert segmenter.calls == [((8, 6), ["cup", "hat", "dog"]), ((9, 6), ["cat"]), ((8, 6), ["x"])]
    assert [[found[0].phrase for found in o] for o in outcomes] == [["cup"], ["hat", "dog"], ["cat"], ["x"]]


def test_a_failing_job_does_not_fail_its_batch_mates() -> None:
    segmenter = EchoSegmenter(fail_on="bad")
    good, bad, other = run_jobs(segmenter, [job(0, "cup"), job(1, "bad"), job(2, "hat")])
    assert isinstance(bad, PromptError) and "cannot segment 'bad'" in str(bad)
    assert good[0][0].phrase == "cup" and other[0][0].phrase == "hat"


class OomSegmenter:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def segment_batch(self, requests, digests=None):
        raise self.error

    def segment(self, image, prompts, thresholds=None):
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("CUDA error: out of memory"),
        MemoryError(),
    ],
    ids=["torch-oom", "runtime-oom", "host-oom"],
)
def test_out_of_memory_fails_the_batch_and_frees_memory(error: Exception, monkeypatch: pytest.MonkeyPatch) -> None:
    released = []
    monkeypatch.setattr(jobs_module, "release_device_memory", lambda: released.append(True))
    outcomes = run_jobs(OomSegmenter(error), [job(0, "a", "b"), job(1, "c")])
    assert all(isinstance(o, OutOfMemory) for o in outcomes) and released == [True]
    assert "out of memory running a batch of 3 prompt(s)" in str(outcomes[0])


def test_is_out_of_memory() -> None:
    import torch

    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_full_queue_is_refused_with_a_retry_hint() -> None:
    segmenter = EchoSegmenter()
    segmenter.gate.clear()

    async def main() -> tuple[QueueFull, list]:
        b = batcher(segmenter, max_batch=1, max_wait_s=0.0, max_queue=2)
        await b.start()
        running = asyncio.ensure_future(b.submit(job(0), timeout=10))
        await asyncio.to_thread(segmenter.started.wait, 5)  # job 0 runs (blocked); the queue is empty
        queued = [asyncio.ensure_future(b.submit(job(i), timeout=10)) for i in (1, 2)]
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull) as refused:
            await b.submit(job(3), timeout=10)
        segmenter.gate.set()
        results = await asyncio.gather(running, *queued)
        await b.close(5)
        return refused.value, results

    refused, results = asyncio.run(main())
    assert refused.retry_after >= 1 and "queue is full (2 requests waiting)" in str(refused)
    assert len(results) == 3


def test_a_request_timing_out_in_the_queue_is_never_computed() -> None:
    segmenter = EchoSegmenter()
    segmenter.gate.clear()

    async def main() -> None:
        b = batcher(segmenter, max_batch=1, max_wait_s=0.0)
        await b.start()
        first = asyncio.ensure_future(b.submit(job(0, "first"), timeout=10))
        await asyncio.to_thread(segmenter.started.wait, 5)
        with pytest.raises(JobTimeout, match=r"within the request timeout of 0\.05 s"):
            await b.submit(job(1, "late"), timeout=0.05)
        assert b.queue_depth == 0
        segmenter.gate.set()
        await first
        await b.close(5)

    asyncio.run(main())
    assert [labels for _, labels in segmenter.calls] == [["first"]]


def test_close_finishes_accepted_jobs_then_refuses_new_ones() -> None:
    segmenter = EchoSegmenter(delay=0.02)

    async def main() -> tuple[list, list]:
        b = batcher(segmenter, max_batch=2, max_wait_s=0.0)
        await b.start()
        accepted = [asyncio.ensure_future(b.submit(job(i), timeout=10)) for i in range(6)]
        await asyncio.sleep(0)  # let them queue
        await b.close(5)
        with pytest.raises(ShuttingDown):
            await b.submit(job(9), timeout=1)
        return await asyncio.gather(*accepted), segmenter.calls

    results, calls = asyncio.run(main())
    assert [r[0][0].phrase for r in results] == [f"thing {i}" for i in range(6)]
    assert sum(len(labels) for _, labels in calls) == 6


def test_close_timeout_fails_what_is_left() -> None:
    segmenter = EchoSegmenter()
    segmenter.gate.clear()

    async def main() -> list:
        b = batcher(segmenter, max_batch=1, max_wait_s=0.0)
        await b.start()
        pending = [asyncio.ensure_future(b.submit(job(i), timeout=10)) for i in range(3)]
        await asyncio.to_thread(segmenter.started.wait, 5)
        await b.close(0.05)
        segmenter.gate.set()
        return await asyncio.gather(*pending, return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, ShuttingDown) for r in results)


def test_submit_before_start_is_refused() -> None:
    async def main() -> None:
        with pytest.raises(ShuttingDown):
            await batcher(EchoSegmenter()).submit(job(0), timeout=1)

    asyncio.run(main())
