"""The ``combine_masks`` tool: union, intersection and difference of masks (one new mask) or of objects (ids).

``mode="pixels"`` (the default) makes ONE new instance in the store from the pixels of the operands (each
operand is the union of its ids' masks): "the part of the table not covered by the cloth" is the table
minus the cloth. Its phrase names the operation ("table minus cloth"), its score is the lowest score of the
masks it was made from (it is no more certain than its least certain part), its box and area are those of
the new mask, and the result text and the trace say where it came from ("#7 = #1 minus #4"). An empty
result adds nothing and says so.

``mode="objects"`` keeps whole masks and makes none: an object of one operand is in the other when a mask
there is the same object (``sam3_agent.masks.same_objects``: identical, or IoM >= 0.5). "All the fruit
except the bananas" is the difference of the fruit ids and the banana ids.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from sam3_agent.agent.tools import Shown, ToolArgs, ToolContext, ToolResult, describe, id_list
from sam3_agent.masks import (
    SAME_OBJECT_IOM,
    mask_data,
    mask_difference,
    mask_intersection,
    mask_union,
    object_difference,
    object_intersection,
    object_union,
    same_objects,
)
from sam3_agent.render import render_overlay
from sam3_agent.schema import Instance, Rle

SOURCE = "combine_masks"

Operation = Literal["union", "intersection", "difference"]
OperandIds = Annotated[list[int], Field(min_length=1, max_length=200)]

WORDS: dict[str, str] = {"union": "plus", "intersection": "intersect", "difference": "minus"}
"""The word between the operands, in new masks' phrases and in provenance: "table minus cloth"."""

DESCRIPTION = (
    "Set logic on masks. mode 'pixels' (default) makes ONE new mask from the pixels of first_ids and "
    "second_ids: difference = the part of the first not covered by the second ('the table not covered by the "
    "cloth'), intersection = where they overlap ('the part of the table under the cloth'), union = both "
    "together. mode 'objects' makes no mask and returns ids of whole masks, an object being in both lists when "
    "their masks are the same object: difference = first_ids except those also in second_ids ('all the fruit "
    "except the bananas', 'cups that are not red' = cups minus red cups), intersection = first_ids also in "
    "second_ids, union = both lists without duplicates."
)


class CombineArgs(ToolArgs):
    operation: Operation = Field(
        description="union: in either; intersection: in both; difference: in first_ids but not in second_ids"
    )
    first_ids: OperandIds = Field(description="the first operand, e.g. the table, or all the fruit")
    second_ids: OperandIds = Field(description="the second operand, e.g. the cloth, or the bananas")
    mode: Literal["pixels", "objects"] = Field(
        default="pixels",
        description="pixels: one new mask of the pixels; objects: keep or drop whole masks, no new mask",
    )


def combine_masks(ctx: ToolContext, args: CombineArgs) -> ToolResult:
    first, second = ctx.store.get(args.first_ids), ctx.store.get(args.second_ids)
    if args.mode == "objects":
        return _objects(first, second, args.operation)
    return _pixels(ctx, first, second, args.operation)


# --- pixels -------------------------------------------------------------------------------------------------


def _pixels(ctx: ToolContext, first: list[Instance], second: list[Instance], operation: Operation) -> ToolResult:
    rle = _combined(first, second, operation)
    formula = f"{_ids(first)} {WORDS[operation]} {_ids(second)}"
    data = mask_data(rle)
    if data.area == 0:
        return ToolResult(f"{formula} is empty: {_why_empty(operation)}; no mask added.")
    parts = [*first, *second]
    made = Instance(
        id=0,
        phrase=f"{_phrase(first)} {WORDS[operation]} {_phrase(second)}",
        score=min(inst.score for inst in parts),
        presence_score=min(inst.presence_score for inst in parts),
        box=tuple(float(v) for v in data.box),  # type: ignore[arg-type]
        rle=rle,
        area=data.area,
    )
    (new,) = ctx.store.add([made], source=SOURCE)
    area = ctx.image.width * ctx.image.height
    text = f"#{new.id} = {formula}\n  {describe(new, area)}\nThe overlay shows the new mask."
    shown = Shown(render_overlay(ctx.image, [new]), f"overlay of id {new.id} ({new.phrase})")
    return ToolResult(text, images=(shown,), instance_ids=(new.id,))


def _combined(first: list[Instance], second: list[Instance], operation: Operation) -> Rle:
    a, b = [inst.rle for inst in first], [inst.rle for inst in second]
    if operation == "union":
        return mask_union([*a, *b])
    if operation == "intersection":
        return mask_intersection([mask_union(a), mask_union(b)])
    return mask_difference(mask_union(a), b)


def _why_empty(operation: Operation) -> str:
    if operation == "difference":
        return "the second masks cover all of the first"
    if operation == "intersection":
        return "the masks do not overlap"
    return "the masks have no pixels"


def _ids(instances: list[Instance]) -> str:
    """ "#1", or "(#1 + #2)" for several masks taken as one."""
    text = " + ".join(f"#{inst.id}" for inst in instances)
    return f"({text})" if len(instances) > 1 else text


def _phrase(instances: list[Instance]) -> str:
    """The operand's phrases, each once: "table", "cup and plate"."""
    phrases = list(dict.fromkeys(inst.phrase for inst in instances))
    return " and ".join(phrases)


# --- objects --------------------------------------------------------------------------------------------------


def _objects(first: list[Instance], second: list[Instance], operation: Operation) -> ToolResult:
    a, b = [inst.rle for inst in first], [inst.rle for inst in second]
    if operation == "union":
        both = [*first, *second]
        kept = [both[i] for i in object_union(a, b)]
        head = f"objects in {id_list(first)} or {id_list(second)}"
    elif operation == "intersection":
        kept = [first[i] for i in object_intersection(a, b)]
        head = f"objects of {id_list(first)} also in {id_list(second)}"
    else:
        kept = [first[i] for i in object_difference(a, b)]
        head = f"objects of {id_list(first)} not in {id_list(second)}"
    text = f"{head}: {id_list(kept)}" + _matches(first, second)
    return ToolResult(text, instance_ids=tuple(inst.id for inst in kept))


def _matches(first: list[Instance], second: list[Instance]) -> str:
    """ "; same objects: #2 = #5, #3 = #6" (the pairs found to be one object; ids in both lists left out)."""
    same = same_objects([i.rle for i in first], [i.rle for i in second], SAME_OBJECT_IOM)
    pairs = [
        f"#{x.id} = #{y.id}"
        for row, x in zip(same, first, strict=True)
        for hit, y in zip(row, second, strict=True)
        if hit and x.id != y.id
    ]
    return f"; same objects: {', '.join(pairs)}" if pairs else ""
