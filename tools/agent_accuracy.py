"""Measure the agent's answers: the generated answer suite through ``Sam3Agent.run``, a pass rate per query kind.

    python tools/agent_accuracy.py                       # 405 cases, seed 0, the built-in planner
    python tools/agent_accuracy.py --kind ordinal --kind between --failures 20
    python tools/agent_accuracy.py --json outputs/answers.json --llm-model gpt-4o

Scenes are segmented exactly (``SceneSegmenter``), so this measures the planning, not SAM 3. With no
``--llm-*`` flag the built-in planner answers (whatever the environment says); with one, the chat model
they and the ``SAM3_AGENT_LLM_*`` variables configure. Exit code 1 when any kind is below 100%.
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from sam3_agent.agent.chat_models import describe_chat_model, make_chat_model
from sam3_agent.agent.llm_settings import LLMSettings
from sam3_agent.evaluation.answers import (
    DEFAULT_CASES,
    KINDS,
    failure_lines,
    generate_cases,
    report_table,
    run_suite,
    summary_line,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    cases_help = f"cases generated, kinds in turn, before --kind keeps some (default {DEFAULT_CASES})"
    parser.add_argument("--cases", type=int, default=DEFAULT_CASES, help=cases_help)
    parser.add_argument("--kind", action="append", choices=KINDS, help="only this query kind; repeat for more")
    parser.add_argument("--json", metavar="OUT", help="write every case's result to this JSON file")
    parser.add_argument("--failures", type=int, default=10, help="failures to print in detail (default 10)")
    parser.add_argument("--max-turns", type=int, default=12, help="chat-model turns per case (default 12)")
    parser.add_argument("--workers", type=int, default=1, help="cases run at once, in threads (default 1)")
    for flag in ("base-url", "model", "api-key", "tool-mode"):
        parser.add_argument(f"--llm-{flag}", help=f"chat model {flag.replace('-', ' ')} (default: the planner)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cases < 1:
        raise SystemExit("--cases must be >= 1")
    flags = {"base_url": args.llm_base_url, "model": args.llm_model, "api_key": args.llm_api_key}
    flags["tool_mode"] = args.llm_tool_mode
    settings = LLMSettings.configured(**flags) if any(v is not None for v in flags.values()) else None
    cases = generate_cases(args.cases, args.seed, args.kind)
    name = describe_chat_model(settings)
    report = run_suite(cases, make_chat_model(settings), chat_model=name, seed=args.seed, max_turns=args.max_turns,
                       workers=args.workers)  # fmt: skip
    Console().print(report_table(report))
    print(summary_line(report))
    for line in failure_lines(report, args.failures):
        print(line)
    if args.json:
        print(f"wrote {report.write(args.json)}")
    return 0 if report.all_passed else 1


if __name__ == "__main__":
    sys.exit(main())
