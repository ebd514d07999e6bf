"""``sam3-agent eval answers [DIR]``: the answer suite against the configured chat model (an OpenAI-compatible
endpoint, ``local:PATH``, or with nothing configured the built-in planner), on the exact scene segmenter.

Writes ``<DIR>/answers.json`` (every case; scenes of the failed ones) and prints the table per kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sam3_agent.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from sam3_agent.evaluation.answers.suite import SuiteReport

REPORT_NAME = "answers.json"
DEFAULT_DIR = Path("outputs") / "eval" / "answers"


@dataclass(frozen=True)
class AnswerRun:
    """What to run: how many cases of which seed and kinds, against which chat model, with how many threads."""

    out_dir: Path = DEFAULT_DIR
    cases: int | None = None
    seed: int = 0
    kinds: tuple[str, ...] = ()
    llm_flags: Mapping[str, str | None] = field(default_factory=dict)
    max_turns: int = 12
    workers: int = 1
    failures: int = 10


def run_answers(run: AnswerRun, *, console: Console, out: Console, progress: bool = True) -> SuiteReport:
    """Generate the cases, run them, print the table and the first failures, write the JSON report.

    Raises:
        ConfigError: unknown kinds, a bad case count, or invalid LLM settings.
    """
    from sam3_agent.agent.chat_models import describe_chat_model, make_chat_model
    from sam3_agent.agent.llm_settings import LLMSettings
    from sam3_agent.evaluation.answers.generator import DEFAULT_CASES, generate_cases
    from sam3_agent.evaluation.answers.suite import failure_lines, report_table, run_suite, summary_line

    try:
        cases = generate_cases(run.cases or DEFAULT_CASES, run.seed, run.kinds or None)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    settings = LLMSettings.configured(**run.llm_flags)
    name = describe_chat_model(settings)
    console.print(f"{len(cases)} case(s) of seed {run.seed}, answered by {name}")
    llm = make_chat_model(settings)
    with _progress(console, len(cases), progress) as advance:
        report = run_suite(cases, llm, chat_model=name, seed=run.seed, max_turns=run.max_turns, workers=run.workers,
                           on_result=lambda _: advance())  # fmt: skip
    out.print(report_table(report))
    out.print(summary_line(report), markup=False, highlight=False)
    for line in failure_lines(report, run.failures):
        out.print(line, markup=False, highlight=False)
    path = report.write(run.out_dir / REPORT_NAME)
    console.print(f"wrote {path}")
    return report


@contextmanager
def _progress(console: Console, total: int, enabled: bool) -> Iterator[Callable[[], None]]:
    """A transient rich progress bar over ``total`` cases; yields the function that advances it."""
    if not enabled:
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("answers", total=total)
        yield lambda: bar.advance(task)
