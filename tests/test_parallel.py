"""The helper thread of ``sam3_agent.parallel``: where work runs, errors, nesting and forks."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from sam3_agent import parallel


@pytest.fixture
def two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "cores", lambda: 2)


def test_work_runs_on_the_helper_thread(two_cores: None) -> None:
    assert parallel.beside(threading.get_ident).result(timeout=10) != threading.get_ident()
    assert parallel.beside(pow, 2, 10).result(timeout=10) == 1024


def test_a_single_core_runs_work_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "cores", lambda: 1)
    future = parallel.beside(threading.get_ident)
    assert future.done() and future.result() == threading.get_ident()


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

    helper, inner = parallel.beside(outer).result(timeout=10)
    assert helper == inner != threading.get_ident()


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs a plain fork")
def test_a_forked_child_gets_a_fresh_helper(two_cores: None) -> None:
    assert parallel.beside(pow, 3, 2).result(timeout=10) == 9  # the parent's helper thread exists
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread is not here; a new one must serve
        try:
            os._exit(0 if parallel.beside(pow, 2, 5).result(timeout=10) == 32 else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
