"""What the page shows, as plain data: chat messages (Gradio's "messages" dicts), answer text, table rows.

A chat message is ``{"role": "user" | "assistant", "content": str | {"path": str}, "metadata": {...}}``;
``metadata["title"]`` makes the Chatbot show it as a collapsible step, ``log`` and ``duration`` appear next
to the title, ``status`` "pending" shows a spinner. No Gradio import here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sam3_agent.demo.config import MAX_PHRASES
from sam3_agent.engine.tiling import SegmentReport
from sam3_agent.errors import PromptError
from sam3_agent.schema import MAX_PHRASE_CHARS, Answer, Instance, TraceStep

ChatMessage = dict[str, Any]

TABLE_HEADERS = ["id", "phrase", "score", "area (px)", "box x0, y0, x1, y1"]

_MASK_TOOLS = {"segment_phrases", "refine_with_exemplars", "segment_at"}
_SPLIT = re.compile(r"[,;\n]+")


def user_text(text: str) -> ChatMessage:
    return {"role": "user", "content": text}


def user_image(path: str, alt: str) -> ChatMessage:
    return {"role": "user", "content": {"path": path, "alt_text": alt}}


def assistant_text(text: str) -> ChatMessage:
    return {"role": "assistant", "content": text}


def error_message(text: str) -> ChatMessage:
    """An assistant message that reads as a refusal or failure (never a traceback)."""
    return {"role": "assistant", "content": f"**Error:** {text}"}


def pending_message(title: str) -> ChatMessage:
    """A step with a spinner, shown while the model or SAM 3 is working."""
    return {"role": "assistant", "content": "", "metadata": {"title": title, "status": "pending"}}


def _ids(ids: Sequence[int]) -> str:
    return ", ".join(f"#{i}" for i in ids) or "none"


def _quoted(values: Any) -> str:
    if not isinstance(values, list):
        return ""
    return ", ".join(f'"{v}"' for v in values if isinstance(v, str))


def step_title(step: TraceStep) -> str:
    """One line naming the tool call and its key arguments, e.g. ``segment_phrases: "cup", "laptop"``."""
    args = step.arguments
    detail = ""
    if step.tool == "segment_phrases":
        detail = _quoted(args.get("phrases"))
    elif step.tool == "refine_with_exemplars":
        n_pos = len(args.get("positive_ids") or []) + len(args.get("positive_boxes") or [])
        n_neg = len(args.get("negative_ids") or []) + len(args.get("negative_boxes") or [])
        phrase = f'"{args["phrase"]}" with ' if isinstance(args.get("phrase"), str) else ""
        detail = f"{phrase}{n_pos} positive, {n_neg} negative exemplar(s)"
    elif step.tool == "segment_at":
        n_pos, n_neg = len(args.get("points") or []), len(args.get("negative_points") or [])
        detail = f"{n_pos} point(s) on, {n_neg} off the object" + (", a box" if args.get("box") else "")
    elif step.tool == "spatial_filter":
        relation = ("not " if args.get("negate") else "") + str(args.get("relation", "?")).replace("_", " ")
        detail = f"{_ids(args.get('subject_ids') or [])} {relation} {_ids(args.get('anchor_ids') or [])}"
    elif step.tool == "nearest":
        order = "farthest from" if args.get("farthest") else "nearest to"
        detail = f"{_ids(args.get('subject_ids') or [])} {order} {_ids(args.get('anchor_ids') or [])}"
    elif step.tool == "between":
        detail = f"{_ids(args.get('subject_ids') or [])} between {_ids(args.get('first_ids') or [])} and "
        detail += _ids(args.get("second_ids") or [])
    elif step.tool == "order_masks":
        k = f", pick #{args['k']} in order" if args.get("k") else ""
        detail = f"{_ids(args.get('ids') or [])} by {str(args.get('ordering', '?')).replace('_', ' ')}{k}"
    elif step.tool in ("examine_masks", "count_masks"):
        detail = _ids(args.get("ids") or [])
    elif step.tool == "final_answer":
        detail = f"masks {_ids(args.get('ids') or [])}"
    title = f"Step {step.index + 1} · {step.tool}"
    if not step.ok:
        return f"{title} · failed, the model will retry"
    return f"{title}: {detail}" if detail else title


def step_log(step: TraceStep) -> str:
    """The short note beside the title: how many masks a segmenting tool found, or which ids a tool kept."""
    n = len(step.instance_ids)
    if not step.ok:
        return "error"
    if step.tool in _MASK_TOOLS:
        return f"{n} mask{'s' if n != 1 else ''} found"
    if step.tool in ("spatial_filter", "between", "nearest", "order_masks", "count_masks"):
        return f"→ {_ids(step.instance_ids)}"
    return ""


def step_message(step: TraceStep) -> ChatMessage:
    """A collapsed chat step: title, log, duration; the tool's full result text inside."""
    metadata: dict[str, Any] = {"title": step_title(step), "status": "done"}
    if step.seconds >= 0.1:  # shorter ones would read "0s"
        metadata["duration"] = round(step.seconds, 1)
    if log := step_log(step):
        metadata["log"] = log
    return {"role": "assistant", "content": step.summary, "metadata": metadata}


def answer_markdown(answer: Answer) -> str:
    """The answer for people: text, the count for counting questions, and the selected mask ids."""
    lead = {"answered": "", "no_match": "No match. ", "gave_up": ""}[answer.status]
    lines = [f"{lead}{answer.text}"]
    if answer.count is not None:
        lines.append(f"**Count: {answer.count}**")
    if answer.instances:
        lines.append(f"Selected masks: {_ids(answer.selected_ids)} (numbered on the overlay).")
    return "\n\n".join(lines)


def segmentation_markdown(groups: Sequence[tuple[str, Sequence[Instance]]]) -> str:
    """Per prompt label: how many masks and their ids, e.g. ``cup: 2 masks (#1, #2)``."""
    lines = []
    for label, instances in groups:
        n = len(instances)
        ids = f" ({_ids([inst.id for inst in instances])})" if instances else ""
        lines.append(f"**{label}**: {n} mask{'s' if n != 1 else ''}{ids}")
    return "\n\n".join(lines) or "Nothing was segmented."


def tiling_note(report: SegmentReport) -> str:
    """What to add under a segmentation: that it was tiled, and which phrases may be saturated ("" if neither)."""
    lines = []
    if report.tiled:
        lines.append(f"*Segmented in {report.tiles} overlapping tiles of {report.tile} px.*")
    for row in report.prompts:
        if row.near_cap:
            lines.append(
                f"*Warning: **{row.phrase}** reached SAM 3's limit of {report.query_cap} objects per pass: "
                "the count may be too low.*"
            )
    return "".join(f"\n\n{line}" for line in lines)


def table_rows(instances: Sequence[Instance]) -> list[list[Any]]:
    """Rows of ``TABLE_HEADERS``: id, phrase, score (3 decimals), area in pixels, XYXY box in pixels."""
    return [
        [inst.id, inst.phrase, round(inst.score, 3), inst.area, ", ".join(f"{v:.0f}" for v in inst.box)]
        for inst in instances
    ]


def split_phrases(text: str) -> list[str]:
    """Noun phrases from a message in segment-only mode, split at commas, semicolons and new lines.

    Duplicates (ignoring case and spacing) are dropped, order kept. Raises ``PromptError`` when there is no
    phrase, more than ``MAX_PHRASES``, or one longer than ``MAX_PHRASE_CHARS``.
    """
    phrases: dict[str, str] = {}
    for part in _SPLIT.split(text):
        phrase = " ".join(part.split())
        if phrase:
            phrases.setdefault(phrase.lower(), phrase)
    if not phrases:
        raise PromptError("type one or more noun phrases separated by commas, e.g. 'cup, laptop'")
    if len(phrases) > MAX_PHRASES:
        raise PromptError(f"at most {MAX_PHRASES} phrases per message, got {len(phrases)}")
    too_long = [p for p in phrases.values() if len(p) > MAX_PHRASE_CHARS]
    if too_long:
        raise PromptError(
            f"phrases must be short noun phrases (at most {MAX_PHRASE_CHARS} characters); "
            f"got one of {len(too_long[0])}: in segment-only mode, separate phrases with commas"
        )
    return list(phrases.values())
