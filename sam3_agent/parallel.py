"""A second thread for big passes that release the GIL while they work (compiled loops, OpenCV, Pillow).

``beside(fn, *args)`` starts ``fn`` on one process-wide helper thread; the caller goes on with other
work and collects the result later, or runs ``fn`` itself if the helper has not started it by then.
``share(fn, n)`` splits work into pieces ``fn(0) .. fn(n - 1)`` that the helper and, once it asks for the
results, the caller take one by one: a helper slowed down by a busy machine then holds back at most the
piece it is on, instead of half of the work, and pure pieces not even that (the caller computes such a
piece again rather than wait long for it). On a single core, or when called from the helper thread
itself, work runs at once, inline. The helper is created on first use and forgotten in forked children
(a fork copies no threads). Only worth it for pieces of a fraction of a millisecond or more: a hand-over
costs tens of microseconds.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

R = TypeVar("R")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_helper_ident: int | None = None


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _mark_helper() -> None:
    global _helper_ident
    _helper_ident = threading.get_ident()


def _helper() -> ThreadPoolExecutor | None:
    global _pool
    if cores() < 2 or threading.get_ident() == _helper_ident:
        return None
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(1, thread_name_prefix="sam3-agent-beside", initializer=_mark_helper)
        return _pool


def _forget_helper() -> None:
    global _pool, _lock, _helper_ident
    _pool, _lock, _helper_ident = None, threading.Lock(), None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_helper)


class Beside(Generic[R]):
    """Work handed to the helper thread. ``result()`` waits for it; work the helper has not started by
    then (it is busy, or starved of a core on a loaded machine) is taken back and run by the caller."""

    def __init__(self, future: Future[R], fn: Callable[..., R], args: tuple[object, ...]) -> None:
        self._future, self._fn, self._args = future, fn, args

    def result(self, timeout: float | None = None) -> R:
        if self._future.cancel():
            return self._fn(*self._args)
        return self._future.result(timeout)


def beside(fn: Callable[..., R], /, *args: object) -> Beside[R]:
    """``fn(*args)`` on the helper thread (or inline, see the module docstring)."""
    pool = _helper()
    if pool is not None:
        return Beside(pool.submit(fn, *args), fn, args)
    done: Future[R] = Future()
    try:
        done.set_result(fn(*args))
    except BaseException as error:  # handed to whoever collects the result, as a pool would
        done.set_exception(error)
    return Beside(done, fn, args)


class Shared(Generic[R]):
    """Pieces of work taken one by one by the helper thread and, in ``result()``, by the caller."""

    def __init__(self, fn: Callable[[int], R], n: int, pure: bool) -> None:
        self._fn, self._n, self._pure = fn, n, pure
        self._taken = itertools.count()  # next() on it is atomic: each index goes to one taker
        self._results: list[R | None] = [None] * n
        self._done = [False] * n
        self._failed = False
        self._caller_seconds, self._caller_pieces = 0.0, 0
        self._helper = beside(self._take) if n > 1 else None  # a single piece is the caller's

    def _take(self, timed: bool = False) -> None:
        while not self._failed and (i := next(self._taken)) < self._n:
            start = time.perf_counter()
            try:
                self._results[i] = self._fn(i)
            except BaseException:
                self._failed = True  # the other taker stops after its current piece
                raise
            self._done[i] = True
            if timed:
                self._caller_seconds += time.perf_counter() - start
                self._caller_pieces += 1

    def result(self) -> list[R]:
        """``[fn(0), ..., fn(n - 1)]``. The caller takes pieces too, then waits for the helper's last one;
        for pure work, only about as long as a piece takes the caller, and then computes it itself (the
        helper's vCPU may be held up by a busy host for many milliseconds). An error in a piece is raised."""
        try:
            self._take(timed=True)
        except BaseException:
            self._failed = True
            raise
        if self._helper is None:
            return self._results  # type: ignore[return-value]
        if not self._pure:
            self._helper.result()
            return self._results  # type: ignore[return-value]
        grace = self._caller_seconds / self._caller_pieces if self._caller_pieces else _GRACE_SECONDS
        try:
            self._helper.result(timeout=grace)
        except TimeoutError:
            for i in range(self._n):
                if not self._done[i]:
                    self._results[i] = self._fn(i)
        return list(self._results)  # type: ignore[arg-type]  # a copy: the helper may still write its own


_GRACE_SECONDS = 0.001


def share(fn: Callable[[int], R], n: int, *, pure: bool = False) -> Shared[R]:
    """Start the helper thread on pieces ``fn(0) .. fn(n - 1)``; ``result()`` has the caller join in.

    ``pure``: ``fn`` has no side effects, so the caller may compute a piece again rather than wait for the
    helper to finish it.
    """
    return Shared(fn, n, pure)
