"""Evaluation harness and batch runs: datasets in their upstream formats, metrics as LISA defines them,
resumable JSONL runs, local worker pools and Ray Data, the final table and plots.

- ``datasets``: ReasonSeg, RefCOCO / RefCOCO+ / RefCOCOg, CountBench-style and COCO counting, image folders.
- ``synthetic``: a generated set in those same formats, with exact answers (CI runs the harness on it).
- ``metrics``: gIoU, cIoU, count accuracy, MAE. ``predictors``: the agent, and SAM 3 alone.
- ``runner``: samples -> ``records.jsonl``. ``batch``: serial, local pool and Ray executors.
- ``report``: table, ``summary.json``, plots. ``command``: the ``sam3-agent eval`` command.
- ``answers``: the generated end-to-end answer suite (status, objects and count checked exactly, per query kind).

Names are imported on first use, so importing this package stays light (no torch, matplotlib or ray).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Sample": "sam3_agent.evaluation.records",
    "Prediction": "sam3_agent.evaluation.records",
    "EvalRecord": "sam3_agent.evaluation.records",
    "load_dataset": "sam3_agent.evaluation.datasets",
    "write_synthetic": "sam3_agent.evaluation.synthetic",
    "read_synthetic": "sam3_agent.evaluation.synthetic",
    "AgentPredictor": "sam3_agent.evaluation.predictors",
    "BaselinePredictor": "sam3_agent.evaluation.predictors",
    "PredictorSpec": "sam3_agent.evaluation.predictors",
    "SerialExecutor": "sam3_agent.evaluation.batch",
    "LocalPoolExecutor": "sam3_agent.evaluation.batch",
    "RayExecutor": "sam3_agent.evaluation.batch",
    "run_eval": "sam3_agent.evaluation.runner",
    "group_summaries": "sam3_agent.evaluation.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sam3_agent.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
