"""The end of a run: the table per split and overall, ``summary.json``, and PNG plots.

Groups: one row per (dataset, split), one per (dataset, split, subset) where samples have a subset (e.g.
ReasonSeg "short" / "long" queries), and "overall". Plots use matplotlib's Agg canvas directly (no pyplot
state, no display): ``plots/iou_hist.png`` (per-sample IoU per dataset) and ``plots/count_error.png``
(predicted minus true count per dataset).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from sam3_agent.evaluation.metrics import Summary, summarize
from sam3_agent.evaluation.records import EvalRecord
from sam3_agent.outputs import write_json_atomic

OVERALL = "overall"


def group_summaries(records: Sequence[EvalRecord]) -> list[tuple[str, Summary]]:
    """(group name, summary) rows: each "dataset split", each "dataset split subset", then "overall"."""
    keys: dict[str, list[EvalRecord]] = {}
    for record in records:
        keys.setdefault(f"{record.dataset} {record.split}", []).append(record)
        if record.subset:
            keys.setdefault(f"{record.dataset} {record.split} {record.subset}", []).append(record)
    rows = [(name, summarize(group)) for name, group in sorted(keys.items())]
    return [*rows, (OVERALL, summarize(records))]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.1f}"


def summary_table(rows: Sequence[tuple[str, Summary]], title: str = "evaluation") -> Table:
    """A rich table: samples, failed ones, gIoU / cIoU / count accuracy in percent, count MAE, seconds per sample."""
    table = Table(title=title)
    table.add_column("group", no_wrap=True)
    for column in ("n", "failed", "gIoU %", "cIoU %", "acc %", "MAE", "s/img"):
        table.add_column(column, justify="right")
    for name, s in rows:
        table.add_row(
            f"[bold]{name}[/]" if name == OVERALL else name,
            str(s.n),
            str(s.errors),
            _pct(s.giou),
            _pct(s.ciou),
            _pct(s.accuracy),
            "-" if s.mae is None else f"{s.mae:.2f}",
            "-" if s.mean_seconds is None else f"{s.mean_seconds:.2f}",
        )
    return table


def write_summary(rows: Sequence[tuple[str, Summary]], path: Path) -> Path:
    """``{"groups": {name: metrics}}`` as JSON (fractions, not percent), written atomically."""
    write_json_atomic(path, {"groups": {name: s.as_dict() for name, s in rows}})
    return path


def _scored(records: Sequence[EvalRecord]) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    """Per dataset: the IoUs of scored segment records, and predicted - true of scored count records."""
    ious: dict[str, list[float]] = {}
    errors: dict[str, list[int]] = {}
    for r in records:
        if r.task == "segment" and r.metrics.iou is not None:
            ious.setdefault(r.dataset, []).append(r.metrics.iou)
        if r.task == "count" and r.gt_count is not None:
            predicted = r.prediction.count if r.prediction is not None and r.prediction.count is not None else 0
            errors.setdefault(r.dataset, []).append(predicted - r.gt_count)
    return ious, errors


def write_plots(records: Sequence[EvalRecord], out_dir: Path) -> list[Path]:
    """PNG plots of the scored records under ``out_dir`` (created); returns the files written."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    out_dir.mkdir(parents=True, exist_ok=True)
    ious, errors = _scored(records)
    written: list[Path] = []
    if ious:
        fig = Figure(figsize=(6, 4), dpi=100)
        ax = fig.add_subplot()
        ax.hist(list(ious.values()), bins=[i / 20 for i in range(21)], label=list(ious), stacked=True)
        ax.set(xlabel="IoU per sample", ylabel="samples", title="Segmentation: per-sample IoU", xlim=(0, 1))
        ax.legend()
        fig.tight_layout()
        FigureCanvasAgg(fig).print_png(str(out_dir / "iou_hist.png"))
        written.append(out_dir / "iou_hist.png")
    if errors:
        fig = Figure(figsize=(6, 4), dpi=100)
        ax = fig.add_subplot()
        low = min(-3, *(min(v) for v in errors.values()))
        high = max(3, *(max(v) for v in errors.values()))
        ax.hist(list(errors.values()), bins=[b - 0.5 for b in range(low, high + 2)], label=list(errors), stacked=True)
        ax.set(xlabel="predicted - true count", ylabel="samples", title="Counting: error distribution")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
        fig.tight_layout()
        FigureCanvasAgg(fig).print_png(str(out_dir / "count_error.png"))
        written.append(out_dir / "count_error.png")
    return written
