"""An asyncio dynamic batcher: requests of many clients queue up and run together in one forward pass.

A worker takes the oldest request, then keeps taking queued ones until the batch holds ``max_batch``
prompts or ``max_wait_s`` have passed since the oldest came (or since the worker became free, if that is
later: under load, the callers just answered can then join the next batch). The batch runs in a worker
thread (the event loop keeps accepting requests meanwhile) and each caller's future gets its own slice.
While a batch runs, new requests pile up, so batches grow with load. The queue is bounded (``QueueFull``
carries a Retry-After estimate), each request has a timeout (``JobTimeout``; a request that times out
before it runs is never computed), and ``close`` finishes what was accepted before stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from sam3_agent.server.jobs import Outcome, PerPrompt, SegmentJob


class QueueFull(Exception):
    """The queue holds ``max_queue`` requests; ``retry_after`` is a whole number of seconds to wait."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class JobTimeout(Exception):
    """A request got no result within its timeout."""


class ShuttingDown(Exception):
    """The batcher is closing (or closed) and takes no new requests."""


class BatchObserver(Protocol):
    def observe_batch(self, requests: int, prompts: int, seconds: float) -> None: ...

    def set_queue_depth(self, depth: int) -> None: ...


@runtime_checkable
class Dispatcher(Protocol):
    """What the HTTP API needs from whatever runs jobs: the local batcher, or Ray Serve replicas."""

    async def start(self) -> None: ...

    async def submit(self, job: SegmentJob, timeout: float) -> PerPrompt: ...

    async def close(self, timeout: float) -> None: ...

    @property
    def queue_depth(self) -> int: ...


@dataclass(eq=False)
class _Pending:
    job: SegmentJob
    future: asyncio.Future[PerPrompt]
    enqueued: float = field(default_factory=time.monotonic)


class DynamicBatcher:
    """Batch jobs across callers and run them with ``run`` (e.g. ``jobs.run_jobs`` on a segmenter).

    Args:
        run: blocking; takes a batch of jobs, returns one ``Outcome`` per job (result or exception).
        max_batch: most prompts per batch (a job with more runs alone).
        max_wait_s: longest time the oldest queued job waits for others to join its batch.
        max_queue: most jobs waiting; beyond it ``submit`` raises ``QueueFull``.
        observer: receives batch sizes / durations and the queue depth (metrics).
    """

    def __init__(
        self,
        run: Callable[[Sequence[SegmentJob]], list[Outcome]],
        *,
        max_batch: int = 16,
        max_wait_s: float = 0.005,
        max_queue: int = 256,
        observer: BatchObserver | None = None,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_s < 0:
            raise ValueError(f"need max_batch >= 1, max_queue >= 1, max_wait_s >= 0; got {max_batch}, {max_queue}")
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self._run = run
        self._observer = observer
        self._queue: deque[_Pending] = deque()
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        self._batch_seconds = 0.0  # moving average, for Retry-After
        self._free_since = 0.0  # when the last batch finished (time.monotonic)

    @property
    def queue_depth(self) -> int:
        """Jobs waiting for a batch (not counting the batch running now)."""
        return len(self._queue)

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    async def start(self) -> None:
        """Start the worker on the running event loop (idempotent)."""
        if self.running:
            return
        self._closing = False
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sam3-batch")
        self._worker = asyncio.create_task(self._work(), name="sam3-batcher")

    async def submit(self, job: SegmentJob, timeout: float) -> PerPrompt:
        """Queue ``job`` and wait for its per-prompt instances.

        Raises:
            QueueFull: ``max_queue`` jobs are already waiting. ShuttingDown: not started, or closing.
            JobTimeout: no result within ``timeout`` seconds. Whatever the job itself failed with
            (``PromptError``, ``jobs.OutOfMemory``, ...).
        """
        if self._closing or not self.running or self._arrived is None:
            raise ShuttingDown("the server is shutting down and accepts no new requests")
        if len(self._queue) >= self.max_queue:
            raise QueueFull(f"the queue is full ({self.max_queue} requests waiting)", self.retry_after())
        pending = _Pending(job, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        self._depth_changed()
        self._arrived.set()
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), timeout)
        except TimeoutError:
            self._forget(pending)
            raise JobTimeout(f"no result within the request timeout of {timeout:g} s (the server is busy)") from None
        except asyncio.CancelledError:  # the caller went away: do not compute for nobody
            self._forget(pending)
            raise

    def retry_after(self) -> int:
        """Seconds until the queue has likely moved on: batches ahead of a new job x mean batch time (>= 1)."""
        prompts = sum(p.job.size for p in self._queue)
        return max(1, math.ceil(prompts / self.max_batch * self._batch_seconds))

    async def close(self, timeout: float) -> None:
        """Stop taking jobs, finish the queued ones (within ``timeout`` s; the rest fail ``ShuttingDown``)."""
        self._closing = True
        if self._arrived is not None:
            self._arrived.set()
        if self._worker is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._worker), timeout)
            except TimeoutError:
                self._worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._worker
        while self._queue:
            self._settle(self._queue.popleft(), ShuttingDown("the server shut down before this request ran"))
        self._depth_changed()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # -- the worker ----------------------------------------------------------------------------------------

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while (batch := await self._next_batch()) is not None:
            batch = [p for p in batch if not p.future.done()]  # timed out or cancelled meanwhile
            if not batch:
                continue
            started = time.perf_counter()
            try:
                outcomes = await loop.run_in_executor(self._executor, self._run, [p.job for p in batch])
            except asyncio.CancelledError:
                for pending in batch:
                    self._settle(pending, ShuttingDown("the server shut down while this request ran"))
                raise
            except Exception as exc:  # the runner itself broke; its jobs fail, the worker goes on
                outcomes = [exc] * len(batch)
            seconds = time.perf_counter() - started
            self._free_since = time.monotonic()
            self._batch_seconds = seconds if not self._batch_seconds else 0.8 * self._batch_seconds + 0.2 * seconds
            if self._observer is not None:
                self._observer.observe_batch(len(batch), sum(p.job.size for p in batch), seconds)
            for pending, outcome in zip(batch, outcomes, strict=True):
                self._settle(pending, outcome)

    async def _next_batch(self) -> list[_Pending] | None:
        """The next batch (None once closing with nothing queued)."""
        assert self._arrived is not None
        while not self._queue:
            if self._closing:
                return None
            self._arrived.clear()
            await self._arrived.wait()
        first = self._queue.popleft()
        batch, prompts = [first], first.job.size
        # The window opens when the worker is free, not when the oldest job came: jobs queued during the last
        # batch would otherwise leave at once, and the callers just answered would always form the next
        # batch (two half-full cohorts taking turns instead of one full batch).
        deadline = max(first.enqueued, self._free_since) + self.max_wait_s
        while prompts < self.max_batch:
            if self._queue:
                if prompts + self._queue[0].job.size > self.max_batch:
                    break
                batch.append(self._queue.popleft())
                prompts += batch[-1].job.size
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closing:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        self._depth_changed()
        return batch

    def _forget(self, pending: _Pending) -> None:
        with contextlib.suppress(ValueError):
            self._queue.remove(pending)
            self._depth_changed()
        if not pending.future.done():
            pending.future.cancel()

    def _depth_changed(self) -> None:
        if self._observer is not None:
            self._observer.set_queue_depth(len(self._queue))

    @staticmethod
    def _settle(pending: _Pending, outcome: Outcome) -> None:
        if pending.future.done():
            return
        if isinstance(outcome, BaseException):
            pending.future.set_exception(outcome)
        else:
            pending.future.set_result(outcome)
