"""The clip agent's tools: track phrases through a clip, statistics of the tracks, orderings in time, the tracks on
one frame, the image geometry on one frame, and the answer (the chosen track ids).

Ids in arguments and results are track ids of the query's ``TrackStore``: one id is one object through the whole
clip (an object that is hidden or leaves and comes back keeps its id, so it counts once). Frame numbers are the
clip's frame indices. Results are text for the model; images are at most ``max_keyframes`` frames per call, drawn
with the track ids. ``ToolResult.instance_ids`` carries the track ids a result is about (the built-in planner reads
them).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from sam3_agent.agent.clip_frames import draw_frames, frame_words, pick_keyframes, resolve_frame
from sam3_agent.agent.clip_store import TrackStore, phrase_key
from sam3_agent.agent.tools import Shown, Tool, ToolArgs, ToolError, ToolResult, Verdict
from sam3_agent.schema import MAX_PHRASE_CHARS, Instance
from sam3_agent.video.frames import Clip
from sam3_agent.video.protocol import ProgressFn, TrackOptions, VideoTracker
from sam3_agent.video.tracks import SampledFrame, Track

Phrase = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_PHRASE_CHARS)]
AnswerText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
TrackIds = Annotated[list[int], Field(min_length=1, max_length=200, description="track ids")]
TrackOrdering = Literal["enters_first", "enters_last", "leaves_first", "leaves_last", "longest", "shortest"]

MAX_COUNT_RUNS = 40
"""The per-frame count is listed as runs of equal counts; longer lists are cut."""


@dataclass
class ClipContext:
    """What the clip tools work on: the clip, the tracker and its options, the query's track store.

    ``max_keyframes``: frames a call may show the model (0: none, for a planner that reads no images).
    ``answer_frame``: the frame the final answer is about, set by ``final_answer``."""

    clip: Clip
    tracker: VideoTracker
    options: TrackOptions
    store: TrackStore
    max_keyframes: int = 4
    progress: ProgressFn | None = None
    cancel: threading.Event | None = None
    answer_frame: int | None = None


def id_list(tracks: list[Track]) -> str:
    return ", ".join(f"#{t.track_id}" for t in tracks) or "none"


def show_frames(ctx: ClipContext, frames: list[SampledFrame], tracks: list[Track]) -> tuple[Shown, ...]:
    frames = frames[: ctx.max_keyframes]

    def instances(index: int) -> list[Instance]:
        return [i for i in (t.at(index) for t in tracks) if i is not None]

    return tuple(draw_frames(ctx.clip, ctx.options.frames, frames, instances))


def _gaps(track: Track, frames: list[SampledFrame]) -> list[tuple[int, int]]:
    """Runs (first, last frame index) of sampled frames between the track's first and last where it is not seen."""
    seen = {f.index for f in track.frames}
    inside = [f.index for f in frames if track.first.index <= f.index <= track.last.index]
    runs: list[tuple[int, int]] = []
    previous_missing = False
    for index in inside:
        if index in seen:
            previous_missing = False
        elif previous_missing:
            runs[-1] = (runs[-1][0], index)
        else:
            runs.append((index, index))
            previous_missing = True
    return runs


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def describe_track(track: Track, frames: list[SampledFrame]) -> str:
    """One line about a track for the model."""
    line = (
        f"#{track.track_id} {track.phrase}: first seen on {frame_words(track.first)}, last seen on "
        f"{frame_words(track.last)}, on {track.frames_seen} of {len(frames)} sampled frames, "
        f"best score {track.best_score:.2f}"
    )
    gaps = _gaps(track, frames)
    if gaps:
        line += ", out of view on frames " + ", ".join(_span(a, b) for a, b in gaps) + " and seen again after"
    return line


# --- track_phrases -------------------------------------------------------------------------------------------------


class TrackPhrasesArgs(ToolArgs):
    phrases: list[Phrase] = Field(
        min_length=1, max_length=8, description="1 to 8 short concrete noun phrases, e.g. ['car', 'person']"
    )


def track_phrases(ctx: ClipContext, args: TrackPhrasesArgs) -> ToolResult:
    keyed: dict[str, str] = {}
    for phrase in args.phrases:
        keyed.setdefault(phrase_key(phrase), phrase)
    unique = list(keyed.values())
    fresh = [p for p in unique if not ctx.store.tracked(p)]
    before = {t.track_id for t in ctx.store.all()}
    if fresh:  # one tracker call for all new phrases: one pass over the clip
        result = ctx.tracker.track(ctx.clip, fresh, ctx.options, progress=ctx.progress, cancel=ctx.cancel)
        ctx.store.add(fresh, result)
    frames = ctx.store.frames
    lines: list[str] = []
    asked: list[Track] = []
    for phrase in unique:
        tracks = ctx.store.get(ctx.store.ids_of(phrase))
        asked += tracks
        again = "" if phrase in fresh else " (tracked earlier, not run again)"
        if not tracks:
            lines.append(f"'{phrase}': no track{again} (try a synonym or a more general phrase)")
            continue
        lines.append(f"'{phrase}': {len(tracks)} track(s){again}")
        lines += [f"  {describe_track(t, frames)}" for t in tracks]
    new = [t for t in asked if t.track_id not in before]
    shown: tuple[Shown, ...] = ()
    if new and ctx.max_keyframes:
        by_index = {f.index: f for f in frames}
        shown = show_frames(ctx, [by_index[i] for i in pick_keyframes(new, ctx.max_keyframes)], new)
        lines.append(f"The {len(shown)} image(s) are keyframes with the new tracks drawn and numbered by id.")
    return ToolResult("\n".join(lines), images=shown, instance_ids=tuple(t.track_id for t in asked))


# --- track_stats ---------------------------------------------------------------------------------------------------


class TrackStatsArgs(ToolArgs):
    ids: TrackIds


def _count_runs(tracks: list[Track], frames: list[SampledFrame]) -> list[tuple[int, int, int]]:
    """(first frame, last frame, count) runs of consecutive sampled frames with the same number of tracks on them."""
    runs: list[tuple[int, int, int]] = []
    for frame in frames:
        n = sum(t.at(frame.index) is not None for t in tracks)
        if runs and runs[-1][2] == n:
            runs[-1] = (runs[-1][0], frame.index, n)
        else:
            runs.append((frame.index, frame.index, n))
    return runs


def track_stats(ctx: ClipContext, args: TrackStatsArgs) -> ToolResult:
    tracks = ctx.store.get(args.ids)
    frames = ctx.store.frames
    lines = [
        f"unique: {len(tracks)} tracks ({id_list(tracks)}); one id is one object through the clip: an object that "
        "leaves or is hidden and comes back keeps its id and counts once"
    ]
    lines += [describe_track(t, frames) for t in tracks]
    runs = _count_runs(tracks, frames)
    shown = ", ".join(f"{_span(a, b)}: {n}" for a, b, n in runs[:MAX_COUNT_RUNS])
    lines.append(f"count per frame (frames: count): {shown}" + (", ..." if len(runs) > MAX_COUNT_RUNS else ""))
    busiest, _ = resolve_frame(frames, "busiest", tracks)
    most = max(n for _, _, n in runs)
    lines.append(f"most at once: {most}, first on {frame_words(busiest)}")
    back = [t for t in tracks if _gaps(t, frames)]
    if back:
        lines.append(f"re-entered: {id_list(back)}")
    return ToolResult("\n".join(lines), instance_ids=tuple(t.track_id for t in tracks))


# --- order_tracks ------------------------------------------------------------------------------------------------


class OrderTracksArgs(ToolArgs):
    ids: TrackIds
    ordering: TrackOrdering = Field(
        description="enters_first / enters_last: by the frame a track is first seen on; leaves_first / leaves_last: "
        "by the frame it is last seen on; longest / shortest: by how many sampled frames it is seen on"
    )
    k: int | None = Field(
        default=None, ge=1, description="pick the k-th (1-based) rank, e.g. 1 = the one who enters last"
    )


def _key(track: Track, ordering: TrackOrdering) -> int:
    return {
        "enters_first": track.first.index,
        "enters_last": -track.first.index,
        "leaves_first": track.last.index,
        "leaves_last": -track.last.index,
        "longest": -track.frames_seen,
        "shortest": track.frames_seen,
    }[ordering]


def _why(track: Track, ordering: TrackOrdering, frames: list[SampledFrame]) -> str:
    if ordering.startswith("enters"):
        return f"first seen on frame {track.first.index} at {track.first.time_s:.2f} s"
    if ordering.startswith("leaves"):
        return f"last seen on frame {track.last.index} at {track.last.time_s:.2f} s"
    return f"seen on {track.frames_seen} of {len(frames)} sampled frames"


def rank_tracks(tracks: list[Track], ordering: TrackOrdering) -> list[list[Track]]:
    """The tracks in ranks: each rank holds the tracks tied on the ordering's value (by id), best rank first."""
    ranks: dict[int, list[Track]] = {}
    for track in sorted(tracks, key=lambda t: (_key(t, ordering), t.track_id)):
        ranks.setdefault(_key(track, ordering), []).append(track)
    return list(ranks.values())


def order_tracks(ctx: ClipContext, args: OrderTracksArgs) -> ToolResult:
    tracks = ctx.store.get(args.ids)
    frames = ctx.store.frames
    ranks = rank_tracks(tracks, args.ordering)
    listed = "; ".join(
        " = ".join(f"#{t.track_id}" for t in rank) + f" ({_why(rank[0], args.ordering, frames)})" for rank in ranks
    )
    text = f"{args.ordering.replace('_', ' ')}, best first (tracks in one rank tie): {listed}"
    if args.k is None:
        return ToolResult(text, instance_ids=tuple(t.track_id for rank in ranks for t in rank))
    if args.k > len(ranks):
        raise ToolError(f"k={args.k} is out of range: the {len(tracks)} track(s) form {len(ranks)} rank(s)")
    pick = ranks[args.k - 1]
    tie = " tie" if len(pick) > 1 else ""
    text += f"\npick (k={args.k}): {id_list(pick)}{tie}: {_why(pick[0], args.ordering, frames)}"
    if tie:
        text += "\nTied tracks are all returned; say in the answer that they tie."
    return ToolResult(text, instance_ids=tuple(t.track_id for t in pick))


# --- answers -------------------------------------------------------------------------------------------------------


class FinalAnswerArgs(ToolArgs):
    track_ids: list[int] = Field(default=[], description="ids of the tracks that answer the query (may be empty)")
    text: AnswerText = Field(description="the answer in one or two sentences, for a person")
    count: int | None = Field(default=None, ge=0, description="the number asked for, for counting questions")
    frame: int | None = Field(default=None, ge=0, description="the sampled frame the answer is about, if one")


def final_answer(ctx: ClipContext, args: FinalAnswerArgs) -> ToolResult:
    chosen = ctx.store.get(args.track_ids)
    if args.frame is not None and args.frame not in {f.index for f in ctx.store.frames}:
        raise ToolError(f"frame {args.frame} is not a sampled frame; give a frame a tool reported, or none")
    ctx.answer_frame = args.frame
    ids = tuple(t.track_id for t in chosen)
    verdict = Verdict(status="answered", text=args.text, ids=ids, count=args.count)
    return ToolResult(f"Answer recorded with tracks {id_list(chosen)}.", instance_ids=ids, verdict=verdict)


class NoMatchArgs(ToolArgs):
    reason: AnswerText = Field(description="why nothing in the clip matches, for a person")


def no_match(ctx: ClipContext, args: NoMatchArgs) -> ToolResult:
    return ToolResult("No match recorded.", verdict=Verdict(status="no_match", text=args.reason))


# --- the set -------------------------------------------------------------------------------------------------------


def clip_tools() -> list[Tool[Any]]:
    """The clip tools, in the order they are offered to the model. (``Tool`` is typed for the image context; the
    clip tools take a ``ClipContext``, which ``execute`` passes through unchanged.)"""
    from sam3_agent.agent.clip_on_frame import (
        FrameOrderArgs,
        FrameRelationArgs,
        TracksOnFrameArgs,
        frame_order,
        frame_relation,
        tracks_on_frame,
    )

    tools: list[tuple[str, str, type[ToolArgs], Any]] = [
        (
            "track_phrases",
            "Track every object matching each noun phrase through the clip with SAM 3 (all phrases in one call; "
            "a phrase is never tracked twice). Each object gets one track id for the whole clip; the result lists "
            "every track with its first / last frame, and keyframes show the tracks numbered by id.",
            TrackPhrasesArgs,
            track_phrases,
        ),
        (
            "track_stats",
            "Statistics of tracks: how many different objects (unique tracks), the count on each sampled frame, the "
            "most at once, first / last appearance (frame and time), frames seen, which left and came back.",
            TrackStatsArgs,
            track_stats,
        ),
        (
            "order_tracks",
            "Order tracks in time: who enters first / last, leaves first / last, is seen longest / shortest; "
            "optionally pick the k-th rank (tied tracks share a rank and are all returned).",
            OrderTracksArgs,
            order_tracks,
        ),
        (
            "tracks_on_frame",
            "Which of the tracks are on one frame (the first, the last, the busiest, or a frame index), with a "
            "picture of that frame: e.g. how many people are there at the end.",
            TracksOnFrameArgs,
            tracks_on_frame,
        ),
        (
            "frame_order",
            "On one frame, sort tracks by position or size (leftmost, rightmost, topmost, bottommost, largest, "
            "smallest, highest_score) and optionally pick the k-th. Computed from the masks on that frame.",
            FrameOrderArgs,
            frame_order,
        ),
        (
            "frame_relation",
            "On one frame, keep the subject tracks that are left_of / right_of / above / below / on / under / "
            "inside / contain / overlap / next_to at least one anchor track there (negate: to none).",
            FrameRelationArgs,
            frame_relation,
        ),
        (
            "final_answer",
            "Finish: select the tracks that answer the query (their ids), the answer text, the count if one was "
            "asked, and the frame the answer is about if it is about one frame.",
            FinalAnswerArgs,
            final_answer,
        ),
        ("no_match", "Finish when nothing in the clip matches the query, saying why.", NoMatchArgs, no_match),
    ]
    return [Tool(name, description, model, fn) for name, description, model, fn in tools]
