"""The agent's tools: segment, refine with exemplars, segment one clicked object (``sam3_agent.agent.clicking``),
look closer, reason about geometry, combine masks (``sam3_agent.agent.combine``), count, answer.

Every tool reads and writes the query's ``MaskStore``; mask ids in arguments and results are store ids,
stable for the whole query. Geometry (left of, nearest, 2nd from the left) and counting are computed here,
in code, so the model never has to eyeball them from an overlay. Descriptions are written for the model.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import Field, StringConstraints, model_validator

from sam3_agent.agent.cap_notes import answer_note, count_notes, record_reports
from sam3_agent.agent.clicking import DESCRIPTION as CLICK_DESCRIPTION
from sam3_agent.agent.clicking import SegmentAtArgs, segment_at
from sam3_agent.agent.combine import DESCRIPTION as COMBINE_DESCRIPTION
from sam3_agent.agent.combine import CombineArgs, combine_masks
from sam3_agent.agent.tools import Shown, Tool, ToolArgs, ToolContext, ToolError, ToolResult, Verdict, describe, id_list
from sam3_agent.geometry import (
    Ordering,
    Relation,
    between,
    centroid,
    filter_by_relation,
    kth,
    order_by,
    rank_by_distance,
)
from sam3_agent.masks import mask_iom, mask_iou, nms
from sam3_agent.render import render_overlay, zoom_crop
from sam3_agent.schema import BoxArg, ExemplarBox, Instance, Prompt

COUNT_IOM = 0.5
"""IoM above which two masks count as one object (SAM 3's counting recipe)."""

SEGMENT_SOURCE = "segment_phrases"

SAME_OBJECT_IOU = 0.5
"""IoU above which a refined mask is reported as the same object as an earlier one."""

Phrase = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
AnswerText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
IdList = Annotated[list[int], Field(min_length=1, max_length=200)]


def _overlay(ctx: ToolContext, instances: list[Instance]) -> tuple[Shown, ...]:
    if not instances:
        return ()
    caption = "overlay of ids " + ", ".join(str(inst.id) for inst in instances)
    return (Shown(render_overlay(ctx.image, instances), caption),)


def _phrase_key(phrase: str) -> str:
    return " ".join(phrase.split()).lower()


def _image_area(ctx: ToolContext) -> int:
    return ctx.image.width * ctx.image.height


# --- segment_phrases ---------------------------------------------------------------------------------------


class SegmentPhrasesArgs(ToolArgs):
    phrases: list[Phrase] = Field(
        min_length=1,
        max_length=8,
        description="1 to 8 short concrete noun phrases, e.g. ['cup', 'laptop'] (not 'cup left of laptop')",
    )


def segment_phrases(ctx: ToolContext, args: SegmentPhrasesArgs) -> ToolResult:
    earlier: dict[str, list[Instance]] = {}
    for inst in ctx.store.all():
        if ctx.store.source(inst.id) == SEGMENT_SOURCE:
            earlier.setdefault(_phrase_key(inst.phrase), []).append(inst)
    unique: dict[str, str] = {}
    for phrase in args.phrases:
        unique.setdefault(_phrase_key(phrase), phrase)
    fresh = [phrase for key, phrase in unique.items() if key not in earlier]
    # One segmenter call for all new phrases: the engine runs the image backbone once and batches the text.
    prompts = [Prompt(text=p) for p in fresh]
    results = ctx.segmenter.segment(ctx.image, prompts, ctx.thresholds) if fresh else []
    notes = record_reports(ctx, prompts, results) if fresh else []
    lines: list[str] = []
    new: list[Instance] = []
    for phrase, found, note in zip(fresh, results, notes, strict=True):
        added = ctx.store.add(found, source=SEGMENT_SOURCE)
        new += added
        if added:
            lines.append(f"'{phrase}': {len(added)} mask(s)")
            lines += [f"  {describe(inst, _image_area(ctx))}" for inst in added]
        else:
            lines.append(f"'{phrase}': nothing found (try a synonym, a more general phrase, or exemplars)")
        lines += note
    for key, phrase in unique.items():
        if key in earlier:
            lines.append(f"'{phrase}': already segmented earlier as {id_list(earlier[key])} (not run again)")
    if new:
        lines.append("The overlay shows the new masks, numbered by id.")
    return ToolResult("\n".join(lines), images=_overlay(ctx, new), instance_ids=tuple(i.id for i in new))


# --- refine_with_exemplars -------------------------------------------------------------------------------------


class RefineArgs(ToolArgs):
    phrase: Phrase | None = Field(
        default=None, description="noun phrase of the objects wanted; leave out to search by the exemplars alone"
    )
    positive_ids: list[int] = Field(default=[], description="ids of correct masks: find more objects like these")
    negative_ids: list[int] = Field(default=[], description="ids of wrong masks: look-alikes to reject")
    positive_boxes: list[BoxArg] = Field(default=[], description="extra boxes around wanted objects, pixels XYXY")
    negative_boxes: list[BoxArg] = Field(default=[], description="extra boxes around look-alikes, pixels XYXY")

    @model_validator(mode="after")
    def _has_exemplar(self) -> RefineArgs:
        if not (self.positive_ids or self.positive_boxes or self.negative_ids or self.negative_boxes):
            raise ValueError("give at least one exemplar id or box (to search by text alone use segment_phrases)")
        if self.phrase is None and not (self.positive_ids or self.positive_boxes):
            raise ValueError("without a phrase, give at least one positive exemplar id or box")
        return self


def refine_with_exemplars(ctx: ToolContext, args: RefineArgs) -> ToolResult:
    pos = ctx.store.get(args.positive_ids)
    neg = ctx.store.get(args.negative_ids)
    exemplars = [ExemplarBox(box=i.box, positive=True) for i in pos]
    exemplars += [ExemplarBox(box=i.box, positive=False) for i in neg]
    exemplars += [ExemplarBox(box=_box(b), positive=True) for b in args.positive_boxes]
    exemplars += [ExemplarBox(box=_box(b), positive=False) for b in args.negative_boxes]
    for ex in exemplars:
        ex.check_inside(ctx.image.width, ctx.image.height)
    earlier = ctx.store.all()
    prompt = Prompt(text=args.phrase, boxes=tuple(exemplars))
    (found,) = ctx.segmenter.segment(ctx.image, [prompt], ctx.thresholds)
    (note,) = record_reports(ctx, [prompt], [found])
    added = ctx.store.add(found, source="refine_with_exemplars")
    n_pos = sum(ex.positive for ex in exemplars)
    head = f"Refined with {n_pos} positive and {len(exemplars) - n_pos} negative exemplar(s): {len(added)} mask(s)"
    lines = [head] + [f"  {describe(inst, _image_area(ctx))}{_same_as(inst, earlier)}" for inst in added] + note
    if not added:
        lines.append("Nothing matched; try other exemplars or another phrase.")
    return ToolResult("\n".join(lines), images=_overlay(ctx, added), instance_ids=tuple(i.id for i in added))


def _box(values: list[float]) -> tuple[float, float, float, float]:
    if not all(math.isfinite(v) for v in values):
        raise ToolError(f"box coordinates must be finite numbers, got {values}")
    return (values[0], values[1], values[2], values[3])


def _same_as(inst: Instance, earlier: list[Instance]) -> str:
    if not earlier:
        return ""
    ious = mask_iou([inst.rle], [e.rle for e in earlier])[0]
    best = int(ious.argmax())
    return f" (same object as #{earlier[best].id})" if ious[best] > SAME_OBJECT_IOU else " (new object)"


# --- examine_masks -------------------------------------------------------------------------------------------


class ExamineArgs(ToolArgs):
    ids: list[int] = Field(min_length=1, max_length=6, description="1 to 6 mask ids to look at closely")


def examine_masks(ctx: ToolContext, args: ExamineArgs) -> ToolResult:
    instances = ctx.store.get(args.ids)
    lines, shown = [], []
    for inst in instances:
        facts = f"{describe(inst, _image_area(ctx))}, presence {inst.presence_score:.2f}"
        if inst.area == 0:  # nothing to show or measure
            lines.append(f"{facts}, empty mask, from {ctx.store.source(inst.id)}")
            continue
        cx, cy = centroid(inst)
        lines.append(f"{facts}, centroid ({cx:.0f}, {cy:.0f}), from {ctx.store.source(inst.id)}")
        shown.append(Shown(zoom_crop(ctx.image, inst), f"zoom of mask #{inst.id} ({inst.phrase})"))
    if shown:
        lines.append("The images are close-ups of the masks, in the order listed.")
    return ToolResult("\n".join(lines), images=tuple(shown), instance_ids=tuple(i.id for i in instances))


# --- geometry ----------------------------------------------------------------------------------------------------


class SpatialFilterArgs(ToolArgs):
    subject_ids: IdList = Field(description="candidate masks, e.g. every cup")
    relation: Relation = Field(description="relation each subject must have to at least one anchor")
    anchor_ids: IdList = Field(description="reference masks, e.g. the laptop")
    negate: bool = Field(default=False, description="keep the subjects for which the relation holds to NO anchor")


def spatial_filter(ctx: ToolContext, args: SpatialFilterArgs) -> ToolResult:
    subjects = ctx.store.get(args.subject_ids)
    anchors = ctx.store.get(args.anchor_ids)
    kept = filter_by_relation(subjects, args.relation, anchors, negate=args.negate)
    kept_ids = {inst.id for inst in kept}
    rejected = [inst for inst in subjects if inst.id not in kept_ids]
    relation = ("not " if args.negate else "") + args.relation.replace("_", " ")
    text = f"{relation} {id_list(anchors)}: {id_list(kept)}; rejected: {id_list(rejected)}"
    return ToolResult(text, instance_ids=tuple(inst.id for inst in kept))


class BetweenArgs(ToolArgs):
    subject_ids: IdList = Field(description="candidate masks, e.g. every cup")
    first_ids: IdList = Field(description="masks on one side, e.g. the plates")
    second_ids: IdList = Field(description="masks on the other side (may repeat first_ids: 'between the plates')")


def between_filter(ctx: ToolContext, args: BetweenArgs) -> ToolResult:
    subjects = ctx.store.get(args.subject_ids)
    first, second = ctx.store.get(args.first_ids), ctx.store.get(args.second_ids)
    kept = between(subjects, first, second)
    rejected = [inst for inst in subjects if inst not in kept]
    text = f"between {id_list(first)} and {id_list(second)}: {id_list(kept)}; rejected: {id_list(rejected)}"
    return ToolResult(text, instance_ids=tuple(inst.id for inst in kept))


class NearestArgs(ToolArgs):
    subject_ids: IdList = Field(description="candidate masks")
    anchor_ids: IdList = Field(description="the reference mask(s); the distance is to the nearest of them")
    farthest: bool = Field(default=False, description="order farthest first instead")


def nearest(ctx: ToolContext, args: NearestArgs) -> ToolResult:
    anchors = ctx.store.get(args.anchor_ids)
    ranked = rank_by_distance(ctx.store.get(args.subject_ids), anchors, farthest=args.farthest)
    if not ranked:
        raise ToolError(f"subject_ids must name masks other than the anchor(s) {id_list(anchors)}")
    parts = [f"#{inst.id} ({gap:.0f} px)" for inst, gap in ranked]
    order = "Farthest from" if args.farthest else "Nearest to"
    text = f"{order} {id_list(anchors)} first (gap between the masks): " + ", ".join(parts)
    return ToolResult(text, instance_ids=tuple(inst.id for inst, _ in ranked))


class OrderArgs(ToolArgs):
    ids: IdList = Field(description="masks to order")
    ordering: Ordering = Field(description="sort key; the first in the result is e.g. the leftmost or the largest")
    k: int | None = Field(default=None, ge=1, description="pick the k-th (1-based) in that order, e.g. 2 = second")


def order_masks(ctx: ToolContext, args: OrderArgs) -> ToolResult:
    instances = ctx.store.get(args.ids)
    ordered = order_by(instances, args.ordering)
    text = f"{args.ordering.replace('_', ' ')} first: {id_list(ordered)}"
    if args.k is None:
        return ToolResult(text, instance_ids=tuple(inst.id for inst in ordered))
    try:
        pick = kth(instances, args.ordering, args.k)
    except ValueError as exc:
        raise ToolError(f"k={args.k} is out of range for {len(instances)} mask(s) ({exc})") from exc
    return ToolResult(f"{text}\nk={args.k}: #{pick.id}", instance_ids=(pick.id,))


# --- counting and answers ----------------------------------------------------------------------------------------


class CountArgs(ToolArgs):
    ids: IdList = Field(description="masks to count, e.g. all masks of the phrase asked about")
    deduplicate: bool = Field(default=True, description="merge masks covering the same object before counting")


def count_masks(ctx: ToolContext, args: CountArgs) -> ToolResult:
    instances = ctx.store.get(args.ids)
    if not args.deduplicate:
        text = f"count: {len(instances)} ({id_list(instances)})" + count_notes(ctx, instances)
        return ToolResult(text, instance_ids=tuple(args.ids))
    kept = sorted(nms(instances, COUNT_IOM, metric="iom"), key=lambda inst: inst.id)
    kept_ids = {inst.id for inst in kept}
    dropped = [inst for inst in instances if inst.id not in kept_ids]
    text = f"count: {len(kept)} distinct ({id_list(kept)})"
    if dropped:
        iom = mask_iom([d.rle for d in dropped], [k.rle for k in kept])
        merges = [f"#{d.id} into #{kept[int(row.argmax())].id}" for d, row in zip(dropped, iom, strict=True)]
        text += "; merged duplicates: " + ", ".join(merges)
    return ToolResult(text + count_notes(ctx, instances), instance_ids=tuple(inst.id for inst in kept))


class FinalAnswerArgs(ToolArgs):
    ids: list[int] = Field(default=[], description="ids of the masks that answer the query (may be empty)")
    text: AnswerText = Field(description="the answer in one or two sentences, for a person")
    count: int | None = Field(default=None, ge=0, description="the number asked for, for counting questions")


def final_answer(ctx: ToolContext, args: FinalAnswerArgs) -> ToolResult:
    chosen = ctx.store.get(args.ids)
    ids = tuple(inst.id for inst in chosen)
    about = chosen or (ctx.store.all() if args.count is not None else [])
    verdict = Verdict(status="answered", text=args.text + answer_note(ctx, about), ids=ids, count=args.count)
    return ToolResult(f"Answer recorded with masks {id_list(chosen)}.", instance_ids=ids, verdict=verdict)


class NoMatchArgs(ToolArgs):
    reason: AnswerText = Field(description="why nothing in the image matches, for a person")


def no_match(ctx: ToolContext, args: NoMatchArgs) -> ToolResult:
    return ToolResult("No match recorded.", verdict=Verdict(status="no_match", text=args.reason))


# --- the set -------------------------------------------------------------------------------------------------------


def default_tools() -> list[Tool[Any]]:
    """The tools, in the order they are offered to the model."""
    return [
        Tool(
            "segment_phrases",
            "Segment every object matching each noun phrase with SAM 3 (all phrases in one call). New masks get "
            "ids that stay valid for the whole task; the result lists them and an overlay shows them numbered.",
            SegmentPhrasesArgs,
            segment_phrases,
        ),
        Tool(
            "refine_with_exemplars",
            "Search again using example masks or boxes: positives find more objects like them (e.g. ones the "
            "phrase missed), negatives reject look-alikes. Adds the masks found as new ids.",
            RefineArgs,
            refine_with_exemplars,
        ),
        Tool("segment_at", CLICK_DESCRIPTION, SegmentAtArgs, segment_at),
        Tool(
            "examine_masks",
            "Show close-up crops of some masks with their facts (score, area, box, centroid), to check them.",
            ExamineArgs,
            examine_masks,
        ),
        Tool(
            "spatial_filter",
            "Keep the subject masks that are left_of / right_of / above / below / on (on top of, touching) / "
            "under / inside / contain / overlap / next_to (beside, near) at least one anchor mask; negate keeps "
            "those related to none. Computed from the masks, more reliable than judging the overlay.",
            SpatialFilterArgs,
            spatial_filter,
        ),
        Tool(
            "between",
            "Keep the subject masks lying between a mask of first_ids and a different mask of second_ids.",
            BetweenArgs,
            between_filter,
        ),
        Tool(
            "nearest",
            "Order subject masks by their distance to the nearest anchor mask, nearest first (or farthest first).",
            NearestArgs,
            nearest,
        ),
        Tool(
            "order_masks",
            "Sort masks (leftmost, rightmost, topmost, bottommost, largest, smallest, highest_score) and "
            "optionally pick the k-th, e.g. the second cup from the left.",
            OrderArgs,
            order_masks,
        ),
        Tool("combine_masks", COMBINE_DESCRIPTION, CombineArgs, combine_masks),
        Tool(
            "count_masks",
            "Count masks, merging duplicates of the same object; reports which ids were merged.",
            CountArgs,
            count_masks,
        ),
        Tool(
            "final_answer",
            "Finish: the answer text, the ids of the masks that answer the query, and the count if one was asked.",
            FinalAnswerArgs,
            final_answer,
        ),
        Tool(
            "no_match",
            "Finish when nothing in the image matches the query, saying why.",
            NoMatchArgs,
            no_match,
        ),
    ]
