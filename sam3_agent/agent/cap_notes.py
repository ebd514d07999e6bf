"""What the agent's tools say about SAM 3's query cap and tiling, from the segmenter's reports.

SAM 3 returns at most ``query_cap`` objects per pass (200 in the released model). After each search the tools
record, per phrase, how it was segmented (``ToolContext.reports``): from a ``TiledSegmenter``'s
``last_report``, or, for a plain segmenter, an untiled report built from its ``query_cap`` (when it has
one). ``segment_phrases`` / ``refine_with_exemplars`` say when a search was tiled or came near the cap,
``count_masks`` says it again beside the count, and ``final_answer`` adds it to the answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from PIL import Image

from sam3_agent.agent.tools import ToolContext
from sam3_agent.engine.tiling import PromptTiling, SegmentReport, untiled_report
from sam3_agent.schema import Instance, Prompt


def report_of(
    segmenter: object, image: Image.Image, prompts: Sequence[Prompt], results: Sequence[Sequence[Instance]]
) -> SegmentReport:
    """The segmenter's report of the call that returned ``results`` (a ``TiledSegmenter``'s ``last_report``),
    else an untiled report against its ``query_cap`` (no cap known: nothing is near it)."""
    last = getattr(segmenter, "last_report", None)
    labels = [p.label for p in prompts]
    if (
        isinstance(last, SegmentReport)
        and last.image_size == (image.height, image.width)
        and [row.phrase for row in last.prompts] == labels
        and [row.count for row in last.prompts] == [len(r) for r in results]
    ):
        return last
    cap = getattr(segmenter, "query_cap", None)
    return untiled_report(prompts, results, image, cap if isinstance(cap, int) else None)


def record_reports(
    ctx: ToolContext, prompts: Sequence[Prompt], results: Sequence[Sequence[Instance]]
) -> list[list[str]]:
    """Remember how each prompt was segmented (by its label) and return, per prompt, the lines to show."""
    report = report_of(ctx.segmenter, ctx.image, prompts, results)
    notes = []
    for row in report.prompts:
        ctx.reports[row.phrase] = (row, report)
        notes.append([f"  {line}" for line in _lines(row, report)])
    return notes


def count_notes(ctx: ToolContext, instances: Iterable[Instance]) -> str:
    """Lines to add to a count: which of the counted phrases were tiled or may be saturated ("" if none)."""
    lines = [line for row, report in _rows(ctx, instances) for line in _lines(row, report)]
    return "".join(f"\n{line}" for line in lines)


def answer_note(ctx: ToolContext, instances: Iterable[Instance]) -> str:
    """What the final answer adds for these instances' phrases: " (...)" notes, or ""."""
    parts = []
    for row, report in _rows(ctx, instances):
        if row.near_cap:
            where = "in one tile" if row.tiled else "in the image"
            parts.append(
                f"The count of '{row.phrase}' may be too low: SAM 3 returned {row.largest_pass} {where}, near its "
                f"limit of {report.query_cap} objects per pass."
            )
        elif row.tiled:
            parts.append(f"'{row.phrase}' was searched in {report.tiles} overlapping tiles.")
    return "".join(f" ({part})" for part in parts)


def _rows(ctx: ToolContext, instances: Iterable[Instance]) -> list[tuple[PromptTiling, SegmentReport]]:
    phrases = dict.fromkeys(inst.phrase for inst in instances)
    return [ctx.reports[p] for p in phrases if p in ctx.reports]


def _lines(row: PromptTiling, report: SegmentReport) -> list[str]:
    lines = []
    if row.tiled:
        lines.append(
            f"'{row.phrase}': tiled: searched in {report.tiles} overlapping {report.tile} px tiles at full "
            "resolution, pieces cut by tile borders stitched, duplicates merged"
        )
    if row.near_cap and row.tiled:
        lines.append(
            f"warning: '{row.phrase}' may be saturated: one tile returned {row.largest_pass} masks, near SAM 3's "
            f"limit of {report.query_cap} objects per pass; there may be more (smaller tiles would find them)"
        )
    elif row.near_cap:
        lines.append(
            f"warning: '{row.phrase}' may be saturated: {row.largest_pass} masks, near SAM 3's limit of "
            f"{report.query_cap} objects per image; there may be more (tiled segmentation finds them)"
        )
    return lines
