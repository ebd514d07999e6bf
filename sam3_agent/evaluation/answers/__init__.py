"""An end-to-end answer suite: seeded queries over generated scenes, run through ``Sam3Agent.run`` and scored
exactly (status, the selected objects, the count), with a pass rate per query kind.

- ``generator``: ``generate_cases(n, seed, kinds)``, ``AnswerCase``, ``KINDS``; builders in ``cases_*``,
  wording in ``wording``, nouns in ``vocab``, placement in ``layout``;
- ``truth``: the ground-truth rules, on the scenes' true masks (independent of ``sam3_agent.geometry``);
- ``scoring``: ``score_answer`` (instances mapped to scene objects by mask); ``suite``: ``run_suite``,
  ``SuiteReport``, the table; ``command``: ``sam3-agent eval answers``.

Used by ``tools/agent_accuracy.py`` and ``tests/test_agent_accuracy.py``.
"""

from __future__ import annotations

from sam3_agent.evaluation.answers.generator import DEFAULT_CASES, KINDS, AnswerCase, build_case, generate_cases
from sam3_agent.evaluation.answers.scoring import CaseResult, map_instances, score_answer
from sam3_agent.evaluation.answers.suite import (
    KindRow,
    SuiteReport,
    failure_lines,
    report_table,
    run_case,
    run_suite,
    summary_line,
)

__all__ = [
    "DEFAULT_CASES",
    "KINDS",
    "AnswerCase",
    "CaseResult",
    "KindRow",
    "SuiteReport",
    "build_case",
    "failure_lines",
    "generate_cases",
    "map_instances",
    "report_table",
    "run_case",
    "run_suite",
    "score_answer",
    "summary_line",
]
