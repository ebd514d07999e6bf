"""The helper thread of ``sam3_agent.parallel``: where work runs, errors, nesting and forks."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

import pytest

from sam3_agent import parallel

T = TypeVar("T")


@pytest.fixture
def two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "cores", lambda: 2)


def on_helper(fn: Callable[[], T]) -> T:
    """``fn()`` through ``beside``, collected only once the helper has started it (else the caller may
    take it back and run it itself)."""
    started = threading.Event()

    def run() -> T:
        started.set()
        return fn()

    work = parallel.beside(run)
    assert started.wait(10)
    return work.result(timeout=10)


def test_work_runs_on_the_helper_thread(two_cores: None) -> None:
    assert on_helper(threading.get_ident) != threading.get_ident()
    assert parallel.beside(pow, 2, 10).result(timeout=10) == 1024


def test_a_single_core_runs_work_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "cores", lambda: 1)
    ran_at: list[int] = []
    work = parallel.beside(lambda: ran_at.append(threading.get_ident()) or 5)
    assert ran_at == [threading.get_ident()]  # already done, before anyone asked
    assert work.result() == 5 and len(ran_at) == 1


@pytest.mark.parametrize("n_cores", [1, 2])
def test_errors_reach_whoever_collects_the_result(monkeypatch: pytest.MonkeyPatch, n_cores: int) -> None:
    monkeypatch.setattr(parallel, "cores", lambda: n_cores)
    future = parallel.beside(int, "not a number")
    with pytest.raises(ValueError, match="invalid literal"):
        future.result(timeout=10)
    assert parallel.beside(int, "7").result(timeout=10) == 7  # the helper lives on


def test_work_started_from_the_helper_runs_inline_instead_of_waiting_on_itself(two_cores: None) -> None:
    def outer() -> tuple[int, int]:
        return threading.get_ident(), parallel.beside(threading.get_ident).result(timeout=10)

    helper, inner = on_helper(outer)
    assert helper == inner != threading.get_ident()


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs a plain fork")
def test_a_forked_child_gets_a_fresh_helper(two_cores: None) -> None:
    assert on_helper(lambda: pow(3, 2)) == 9  # the parent's helper thread exists
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread is not here; a new one must serve
        try:
            os._exit(0 if on_helper(lambda: pow(2, 5)) == 32 else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_work_the_busy_helper_has_not_started_is_run_by_the_caller(two_cores: None) -> None:
    release = threading.Event()
    blocker = parallel.beside(release.wait, 10)  # keeps the helper busy
    try:
        queued = parallel.beside(threading.get_ident)
        assert queued.result(timeout=10) == threading.get_ident()  # taken back: not waited for
    finally:
        release.set()
    assert blocker.result(timeout=10) is True
    assert on_helper(threading.get_ident) != threading.get_ident()  # the helper serves again
