"""The ``segment_at`` tool: ONE object from clicks (points on it, points off it, a box), as a new mask in the store.

It drives the agent's click engine (``ToolContext.clicker``: SAM 3's tracker, ``sam3_agent.engine.clicks``),
which answers the best of SAM's three candidate masks for the clicks. The new instance's phrase says what made
it ("clicked object (1 positive point, a box)"), its store source is ``segment_at``, and the result text and
the trace keep the clicks (the tool's arguments). Without a click engine, or with a checkpoint that has no
tracker, the tool answers a tool error saying so; bad clicks (a point outside the image, an empty box) are tool
errors the model can fix.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from sam3_agent.agent.tools import Shown, ToolArgs, ToolContext, ToolError, ToolResult, describe
from sam3_agent.errors import CheckpointError
from sam3_agent.masks import mask_iou
from sam3_agent.render import render_overlay
from sam3_agent.schema import BoxArg, Instance, PointArg

SOURCE = "segment_at"
SAME_OBJECT_IOU = 0.5
"""IoU above which the clicked mask is reported as the same object as an earlier mask."""

DESCRIPTION = (
    "Segment ONE object from clicks with SAM 3's tracker: points [x, y] ON the object, negative_points on "
    "things that are NOT part of it (a neighbour, background that leaked in), and/or a box [x0, y0, x1, y1] "
    "around it, all in pixels of the original image. Adds one new mask. Use it for an object the user points "
    "at by coordinates, or to redo one wrong mask: a point inside it plus negative points where it spilled over."
)


class SegmentAtArgs(ToolArgs):
    points: list[PointArg] = Field(default=[], max_length=16, description="points [x, y] on the object, pixels")
    negative_points: list[PointArg] = Field(
        default=[], max_length=16, description="points [x, y] that are NOT on the object, pixels"
    )
    box: BoxArg | None = Field(default=None, description="a box [x0, y0, x1, y1] around the object, pixels")

    @model_validator(mode="after")
    def _has_target(self) -> SegmentAtArgs:
        if not self.points and self.box is None:
            raise ValueError("give at least one point on the object, or a box around it")
        return self


def segment_at(ctx: ToolContext, args: SegmentAtArgs) -> ToolResult:
    if ctx.clicker is None:
        raise ToolError(
            "segment_at is unavailable here (no click engine: the SAM 3 tracker is not loaded); "
            "use segment_phrases or refine_with_exemplars instead"
        )
    points = [(p[0], p[1]) for p in args.points] + [(p[0], p[1]) for p in args.negative_points]
    labels = [1] * len(args.points) + [0] * len(args.negative_points)
    box = None if args.box is None else (args.box[0], args.box[1], args.box[2], args.box[3])
    try:
        found = ctx.clicker.segment_at(ctx.image, points, labels, box, ctx.thresholds)
    except CheckpointError as exc:
        reason = str(exc).splitlines()[0]
        raise ToolError(f"segment_at is unavailable here ({reason}); use segment_phrases instead") from None
    if found.area == 0:
        return ToolResult("The clicks gave an empty mask: try a point nearer the object's middle, or a box.")
    earlier = ctx.store.all()
    (added,) = ctx.store.add([found], source=SOURCE)
    area = ctx.image.width * ctx.image.height
    text = f"New mask from the clicks: {describe(added, area)}{_same_as(added, earlier)}. The overlay shows it."
    shown = (Shown(render_overlay(ctx.image, [added]), f"overlay of id {added.id}"),)
    return ToolResult(text, images=shown, instance_ids=(added.id,))


def _same_as(inst: Instance, earlier: list[Instance]) -> str:
    if not earlier:
        return ""
    ious = mask_iou([inst.rle], [e.rle for e in earlier])[0]
    best = int(ious.argmax())
    return f" (same object as #{earlier[best].id})" if ious[best] > SAME_OBJECT_IOU else " (a new object)"
