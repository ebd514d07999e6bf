"""Evaluate the agent (or SAM 3 alone) on ReasonSeg, RefCOCO*, CountBench or COCO counting; resumable.

    python tools/evaluate.py synthetic ./synthetic-eval --predictor baseline --engine scenes
    python tools/evaluate.py reasonseg ./data/ReasonSeg --split val --llm-model <model>

The same as `sam3-agent eval` (see `--help`); this script only calls ``sam3_agent.evaluation.command.evaluate``.
"""

from __future__ import annotations

import typer

from sam3_agent.evaluation.command import evaluate


def main() -> None:
    typer.run(evaluate)


if __name__ == "__main__":
    main()
