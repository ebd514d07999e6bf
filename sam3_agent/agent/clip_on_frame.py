"""The clip tools about one frame: which tracks are on it, and the image geometry (orderings, relations) among
the tracks' masks there. A frame argument is a clip frame index or "first" / "last" / "busiest" (``resolve_frame``).
"""

from __future__ import annotations

from pydantic import Field

from sam3_agent.agent.clip_frames import FrameRef, frame_words, resolve_frame
from sam3_agent.agent.clip_tools import ClipContext, TrackIds, id_list, show_frames
from sam3_agent.agent.tools import ToolArgs, ToolError, ToolResult
from sam3_agent.geometry import Ordering, Relation, filter_by_relation, kth, order_by
from sam3_agent.video.tracks import SampledFrame, Track

_FRAME = Field(
    default="last",
    description="a clip frame index, or 'first' / 'last' (sampled frame), or 'busiest' (most of these tracks on it)",
)


class TracksOnFrameArgs(ToolArgs):
    ids: TrackIds
    frame: FrameRef = _FRAME


def _on_frame(ctx: ClipContext, ids: list[int], ref: FrameRef) -> tuple[SampledFrame, list[Track], list[Track], str]:
    tracks = ctx.store.get(ids)
    frame, note = resolve_frame(ctx.store.frames, ref, tracks)
    present = [t for t in tracks if t.at(frame.index) is not None]
    absent = [t for t in tracks if t.at(frame.index) is None]
    return frame, present, absent, note


def tracks_on_frame(ctx: ClipContext, args: TracksOnFrameArgs) -> ToolResult:
    frame, present, absent, note = _on_frame(ctx, args.ids, args.frame)
    head = frame_words(frame) + (f", {note}" if note else "")
    total = len(present) + len(absent)
    text = f"{head}: {len(present)} of {total} on it: {id_list(present)}; not on it: {id_list(absent)}"
    shown = show_frames(ctx, [frame], present) if present and ctx.max_keyframes else ()
    return ToolResult(text, images=shown, instance_ids=tuple(t.track_id for t in present))


class FrameOrderArgs(ToolArgs):
    ids: TrackIds
    frame: FrameRef = _FRAME
    ordering: Ordering = Field(description="sort key on that frame: the first is e.g. the leftmost or the largest")
    k: int | None = Field(default=None, ge=1, description="pick the k-th (1-based) in that order")


def frame_order(ctx: ClipContext, args: FrameOrderArgs) -> ToolResult:
    frame, present, absent, note = _on_frame(ctx, args.ids, args.frame)
    if not present:
        raise ToolError(f"none of {id_list(absent)} is on {frame_words(frame)}; choose another frame")
    instances = [t.at(frame.index) for t in present]
    ordered = order_by([i for i in instances if i is not None], args.ordering)
    head = frame_words(frame) + (f", {note}" if note else "")
    text = f"{head}: {args.ordering.replace('_', ' ')} first: " + ", ".join(f"#{i.id}" for i in ordered)
    if absent:
        text += f"; not on this frame: {id_list(absent)}"
    if args.k is None:
        return ToolResult(text, instance_ids=tuple(i.id for i in ordered))
    if args.k > len(ordered):
        raise ToolError(f"k={args.k} is out of range: {len(ordered)} of the tracks are on {frame_words(frame)}")
    pick = kth(ordered, args.ordering, args.k)
    return ToolResult(f"{text}\npick (k={args.k}): #{pick.id}", instance_ids=(pick.id,))


class FrameRelationArgs(ToolArgs):
    subject_ids: TrackIds
    relation: Relation = Field(description="relation each subject must have to at least one anchor on that frame")
    anchor_ids: TrackIds
    frame: FrameRef = _FRAME
    negate: bool = Field(default=False, description="keep the subjects for which the relation holds to NO anchor")


def frame_relation(ctx: ClipContext, args: FrameRelationArgs) -> ToolResult:
    frame, subjects, gone, note = _on_frame(ctx, args.subject_ids, args.frame)
    _, anchors, _, _ = _on_frame(ctx, args.anchor_ids, frame.index)
    if not anchors:
        raise ToolError(f"none of the anchors is on {frame_words(frame)}; choose another frame")
    found = [t.at(frame.index) for t in subjects]
    kept = filter_by_relation(
        [i for i in found if i is not None],
        args.relation,
        [i for i in (t.at(frame.index) for t in anchors) if i is not None],
        negate=args.negate,
    )
    kept_ids = {i.id for i in kept}
    relation = ("not " if args.negate else "") + args.relation.replace("_", " ")
    head = frame_words(frame) + (f", {note}" if note else "")
    rejected = [t for t in subjects if t.track_id not in kept_ids]
    text = f"{head}: {relation} {id_list(anchors)}: {id_list([t for t in subjects if t.track_id in kept_ids])}; "
    text += f"rejected: {id_list(rejected)}" + (f"; not on this frame: {id_list(gone)}" if gone else "")
    return ToolResult(text, instance_ids=tuple(t.track_id for t in subjects if t.track_id in kept_ids))
