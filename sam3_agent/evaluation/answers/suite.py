"""Running the suite through ``Sam3Agent.run`` and reporting it: a row per query kind, a total, failures.

Each case gets its own agent on the case's exact ``SceneSegmenter``, so the numbers measure the planning
(the built-in planner's, or a chat model's), not SAM 3. An exception in a run fails that case only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from rich.table import Table

from sam3_agent.agent.messages import ChatModel
from sam3_agent.evaluation.answers.generator import KINDS, AnswerCase
from sam3_agent.evaluation.answers.scoring import CaseResult, error_result, score_answer
from sam3_agent.outputs import write_json_atomic

TOTAL = "total"


class KindRow(BaseModel):
    """Cases and passes of one query kind (or of all: ``TOTAL``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    cases: int
    passed: int

    @property
    def percent(self) -> float:
        return 100.0 * self.passed / self.cases if self.cases else 0.0


class SuiteReport(BaseModel):
    """The results of a suite run, per case and per kind."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chat_model: str
    seed: int | None = None
    seconds: float
    rows: list[KindRow]
    results: list[CaseResult]

    @property
    def total(self) -> KindRow:
        return KindRow(kind=TOTAL, cases=len(self.results), passed=sum(r.passed for r in self.results))

    @property
    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]

    @property
    def all_passed(self) -> bool:
        """Every kind at 100%."""
        return all(row.passed == row.cases for row in self.rows)

    def row(self, kind: str) -> KindRow:
        return next(row for row in self.rows if row.kind == kind)

    def write(self, path: str | Path) -> Path:
        """The report as JSON (every case; the scene kept for failed ones)."""
        path = Path(path)
        write_json_atomic(path, self.model_dump(mode="json"))
        return path


def run_case(case: AnswerCase, llm: ChatModel | None = None, *, max_turns: int = 12) -> CaseResult:
    """Answer one case with a fresh ``Sam3Agent`` (``llm`` None: the built-in planner) and score it."""
    from sam3_agent.agent.loop import Sam3Agent

    started = time.perf_counter()
    try:
        agent = Sam3Agent(case.segmenter(), llm, max_turns=max_turns)
        answer = agent.run(case.scene.image(), case.query)
    except Exception as exc:  # one broken run must not hide the others' results
        return error_result(case, exc, time.perf_counter() - started)
    return score_answer(case, answer, time.perf_counter() - started)


def kind_rows(results: Sequence[CaseResult]) -> list[KindRow]:
    """One row per kind present, in ``KINDS`` order."""
    present = [k for k in KINDS if any(r.kind == k for r in results)]
    return [
        KindRow(kind=k, cases=sum(r.kind == k for r in results), passed=sum(r.passed for r in results if r.kind == k))
        for k in present
    ]


def run_suite(
    cases: Sequence[AnswerCase],
    llm: ChatModel | None = None,
    *,
    chat_model: str = "built-in planner",
    seed: int | None = None,
    max_turns: int = 12,
    workers: int = 1,
    on_result: Callable[[CaseResult], None] | None = None,
) -> SuiteReport:
    """Run every case (``workers`` threads; the chat model is shared, so it must be thread-safe beyond 1)."""
    started = time.perf_counter()

    def one(case: AnswerCase) -> CaseResult:
        result = run_case(case, llm, max_turns=max_turns)
        if on_result is not None:
            on_result(result)
        return result

    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(one, cases))
    else:
        results = [one(case) for case in cases]
    return SuiteReport(
        chat_model=chat_model,
        seed=seed,
        seconds=time.perf_counter() - started,
        rows=kind_rows(results),
        results=results,
    )


def report_table(report: SuiteReport) -> Table:
    """A rich table: cases, passed and percent per kind, then the total."""
    table = Table(title="agent answers")
    table.add_column("kind", no_wrap=True)
    for column in ("cases", "passed", "%"):
        table.add_column(column, justify="right")
    for row in [*report.rows, report.total]:
        name = f"[bold]{row.kind}[/]" if row.kind == TOTAL else row.kind
        style = None if row.passed == row.cases else "red"
        table.add_row(name, str(row.cases), str(row.passed), f"{row.percent:.1f}", style=style)
    return table


def summary_line(report: SuiteReport) -> str:
    """ "405 case(s), seed 0, built-in planner: 405 passed (100.0%) in 5.7 s"."""
    total = report.total
    return (
        f"{total.cases} case(s), seed {report.seed}, {report.chat_model}: {total.passed} passed "
        f"({total.percent:.1f}%) in {report.seconds:.1f} s"
    )


def failure_lines(report: SuiteReport, limit: int = 10) -> list[str]:
    """The first ``limit`` failures, a few lines each: query, what was expected, what came, the tools."""
    lines = []
    for r in report.failures[:limit]:
        lines.append(f"[{r.kind}] {r.id}: {r.query!r} -> wrong {', '.join(r.problems)}")
        lines.append(f"    expected: status {r.expected_status}, objects {r.expected_ids}, count {r.expected_count}")
        if r.error is not None:
            lines.append(f"    error: {r.error}")
        else:
            lines.append(f"    got:      status {r.got_status}, objects {r.got_ids}, count {r.got_count}")
            lines.append(f"    text: {r.text[:200]!r}")
            lines.append(f"    tools: {' > '.join(r.tools) or '(none)'}")
        if r.scene is not None:
            phrases = ", ".join(f"{o['index']}:{o['phrase']}" for o in r.scene["objects"])
            lines.append(f"    objects: {phrases}")
    if len(report.failures) > limit:
        lines.append(f"... and {len(report.failures) - limit} more failure(s)")
    return lines
