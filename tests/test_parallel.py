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


def test_shared_pieces_are_all_done_once_in_order_by_both_threads(two_cores: None) -> None:
    done_by: dict[int, int] = {}
    taken, release = threading.Event(), threading.Event()

    def piece(i: int) -> int:
        if i == 0:  # the helper takes piece 0 and holds it: the caller does the rest
            taken.set()
            assert release.wait(10)
        done_by[i] = threading.get_ident()
        return i * i

    shared = parallel.share(piece, 6)
    assert taken.wait(10)
    threading.Timer(0.2, release.set).start()
    assert shared.result() == [0, 1, 4, 9, 16, 25]
    assert sorted(done_by) == list(range(6))
    assert done_by[0] != threading.get_ident()  # held by the helper
    assert any(ident == threading.get_ident() for ident in done_by.values())


@pytest.mark.parametrize("n_cores", [1, 2])
def test_shared_work_raises_a_pieces_error_and_the_helper_lives_on(
    monkeypatch: pytest.MonkeyPatch, n_cores: int
) -> None:
    monkeypatch.setattr(parallel, "cores", lambda: n_cores)
    shared = parallel.share(lambda i: 10 // (3 - i), 5)
    with pytest.raises(ZeroDivisionError):
        shared.result()
    assert parallel.share(lambda i: i + 1, 3).result() == [1, 2, 3]
    assert parallel.share(lambda i: i, 0).result() == []


def test_shared_work_on_a_single_core_is_done_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "cores", lambda: 1)
    ran_at: set[int] = set()
    shared = parallel.share(lambda i: ran_at.add(threading.get_ident()) or i, 4)
    assert ran_at == {threading.get_ident()}  # all done before anyone asked
    assert shared.result() == [0, 1, 2, 3]


def test_a_pure_piece_the_helper_is_slow_to_finish_is_computed_again_by_the_caller(two_cores: None) -> None:
    taken, release = threading.Event(), threading.Event()
    computed_by: list[tuple[int, int]] = []

    def piece(i: int) -> int:
        computed_by.append((i, threading.get_ident()))
        if i == 0 and threading.get_ident() != caller:  # the helper takes piece 0 and is held up
            taken.set()
            assert release.wait(10)
        return 10 * i

    caller = threading.get_ident()
    shared = parallel.share(piece, 4, pure=True)
    assert taken.wait(10)
    assert shared.result() == [0, 10, 20, 30]  # returns while the helper is still held up
    assert not release.is_set() and (0, caller) in computed_by
    release.set()
    assert parallel.share(lambda i: i, 2, pure=True).result() == [0, 1]  # the helper serves again


def test_work_with_side_effects_waits_for_the_helpers_piece(two_cores: None) -> None:
    taken = threading.Event()
    finished: list[int] = []

    def piece(i: int) -> None:
        if i == 0:
            taken.set()
            threading.Event().wait(0.05)  # longer than the caller's pieces
        finished.append(i)

    shared = parallel.share(piece, 3)
    assert taken.wait(10)
    shared.result()
    assert sorted(finished) == [0, 1, 2]  # piece 0 once, by the helper, and waited for


def test_a_single_piece_is_done_by_the_caller(two_cores: None) -> None:
    shared = parallel.share(lambda i: threading.get_ident(), 1)
    assert shared.result() == [threading.get_ident()]
