"""``ClipPlanner``: the built-in planner for clips, a ``ChatModel`` with no model behind it.

Like ``QueryPlanner`` it keeps no state: each turn it reads the query again (``clip_query_of``), replays its program
over the tool results so far and sends the next call. A program tracks the plan's phrases once, then:

- a count: ``track_stats`` (the number of different tracks), or ``tracks_on_frame`` (the tracks on the first / last
  / busiest frame, or a frame index);
- an order in time: ``order_tracks`` with the rank asked for. Ties: every track tied at that rank is selected, and
  the answer says they tie (a clip often starts with several objects in view, all "entering first");
- an order on one frame: ``frame_order`` (ties there go to the lower track id, as ``geometry.order_by`` does);
- otherwise every track of the phrases (on one frame, when the query names one).

Nothing tracked ends a count with 0 and anything else with ``no_match``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Sequence
from typing import Any

from sam3_agent.agent.clip_frames import read_frame_words
from sam3_agent.agent.clip_messages import clip_query_of
from sam3_agent.agent.messages import AssistantMessage, Message, ModelGaveUp, ToolCall, ToolMessage, ToolSpec
from sam3_agent.agent.planner.clip_grammar import ClipPlan, NotUnderstood, parse_clip_query
from sam3_agent.agent.planner.model import CONFIGURE_LLM
from sam3_agent.agent.planner.words import plural, singular

CLIP_UNDERSTOOD = (
    "how many (different) X pass / appear / enter; count the X; how many X are there at the start / at the end / "
    "in the last frame / at frame N; how many X at once; the maximum number of X; the X who enters first / last; "
    "the first / second / last X to appear / arrive / leave; which X is on screen longest / shortest; the X in the "
    "most frames; the X at the end; the leftmost / largest X at the start; segment / track the X"
)
_PICK = re.compile(r"^pick \(k=\d+\): (?P<ids>#\d+(?:, #\d+)*)(?P<tie> tie)?: (?P<why>.+)$", re.MULTILINE)
_BACK = re.compile(r"^re-entered: (?P<ids>.+)$", re.MULTILINE)

Call = tuple[str, dict[str, Any]]
Program = Generator[Call, ToolMessage, None]


class ClipPlanner:
    """The built-in clip planner (see the module docstring); implements ``ChatModel`` for ``ClipAgent``."""

    def chat(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> AssistantMessage:
        query = clip_query_of(messages)
        if query is None:
            raise ModelGaveUp("the built-in clip planner only answers conversations started by the clip agent")
        plan = clip_plan_for(query)
        rounds = _rounds(messages)
        program = _program(plan)
        tool, arguments = next(program)
        for sent, result in rounds:
            if sent.name != tool:
                raise ModelGaveUp(f"the built-in clip planner lost its place (expected {tool}, saw {sent.name})")
            try:
                tool, arguments = program.send(result)
            except StopIteration:
                raise ModelGaveUp("the built-in clip planner has nothing left to do") from None
        content = f"Plan: {plan.describe()}" if not rounds else None
        call = ToolCall(id=f"clip_plan_{len(rounds) + 1}", name=tool, arguments=json.dumps(arguments))
        return AssistantMessage(content=content, tool_calls=(call,))


def clip_plan_for(query: str) -> ClipPlan:
    """The plan for ``query``; raises ``ModelGaveUp`` with the planner's help text when it has none."""
    try:
        return parse_clip_query(query)
    except NotUnderstood as exc:
        raise ModelGaveUp(
            f"The built-in planner (no language model is configured) did not understand {query!r} as a question "
            f"about a clip: {exc}. It understands: {CLIP_UNDERSTOOD}. {CONFIGURE_LLM}"
        ) from None


def _rounds(messages: Sequence[Message]) -> list[tuple[ToolCall, ToolMessage]]:
    results = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
    calls = [c for m in messages if isinstance(m, AssistantMessage) for c in m.tool_calls]
    return [(call, results[call.id]) for call in calls if call.id in results]


def _ask(tool: str, arguments: dict[str, Any]) -> Generator[Call, ToolMessage, ToolMessage]:
    result = yield tool, arguments
    if not result.ok:
        raise ModelGaveUp(f"the built-in clip planner's {tool} call failed: {result.content}")
    return result


def _program(plan: ClipPlan) -> Program:
    tracked = yield from _ask("track_phrases", {"phrases": list(plan.phrases)})
    ids = list(tracked.instance_ids)
    if not ids and plan.count:
        text = f"I count 0 {_noun(plan, 0)}: none was tracked in the clip."
        yield "final_answer", {"track_ids": [], "count": 0, "text": text}
    elif not ids:
        yield "no_match", {"reason": f"Nothing in the clip matches '{plan.text}': no {_noun(plan, 1)} was tracked."}
    elif plan.count and plan.moment is None:
        yield from _count_unique(plan, ids)
    elif plan.count:
        yield from _count_on(plan, ids)
    elif plan.ordering is not None:
        yield from _pick_in_time(plan, ids)
    elif plan.frame_ordering is not None:
        yield from _pick_on_frame(plan, ids)
    elif plan.moment is not None:
        yield from _on_frame(plan, ids)
    else:
        text = f"Found {len(ids)} {_noun(plan, len(ids))} in the clip: {_shown(ids)}."
        yield "final_answer", {"track_ids": ids, "text": text}


def _count_unique(plan: ClipPlan, ids: list[int]) -> Program:
    stats = yield from _ask("track_stats", {"ids": ids})
    text = f"I count {len(ids)} different {_noun(plan, len(ids))} ({_shown(ids)})."
    if match := _BACK.search(stats.content):
        text += f" {match['ids']} went out of view and came back; each is counted once."
    yield "final_answer", {"track_ids": ids, "count": len(ids), "text": text}


def _count_on(plan: ClipPlan, ids: list[int]) -> Program:
    result = yield from _ask("tracks_on_frame", {"ids": ids, "frame": plan.moment})
    on = list(result.instance_ids)
    index, where = read_frame_words(result.content) or (None, "that frame")
    noun = _noun(plan, len(on))
    if plan.moment == "busiest":
        lead = f"At most {len(on)} {noun} {'is' if len(on) == 1 else 'are'} in view at once, first on {where}"
    else:
        when = {"first": " at the start", "last": " at the end"}.get(str(plan.moment), "")
        lead = f"I count {len(on)} {noun}{when}, on {where}"
    text = f"{lead}: {_shown(on)}." if on else f"{lead}: none of the {len(ids)} tracked is there."
    yield "final_answer", {"track_ids": on, "count": len(on), "frame": index, "text": text}


def _pick_in_time(plan: ClipPlan, ids: list[int]) -> Program:
    result = yield "order_tracks", {"ids": ids, "ordering": plan.ordering, "k": plan.k}
    if not result.ok:  # fewer ranks than k: "the third person to enter" of two
        yield "no_match", {"reason": f"No '{plan.text}': {result.content.removeprefix('Error: ')}."}
        return
    picked = list(result.instance_ids)
    match = _PICK.search(result.content)
    why = match["why"] if match else ""
    if len(picked) > 1:
        text = f"Tracks {_shown(picked)} tie as the {plan.text} ({why}); all of them are selected."
    else:
        text = f"The {plan.text} is {_shown(picked)} ({why})."
    yield "final_answer", {"track_ids": picked, "text": text}


def _pick_on_frame(plan: ClipPlan, ids: list[int]) -> Program:
    arguments = {"ids": ids, "frame": plan.moment, "ordering": plan.frame_ordering, "k": plan.k}
    result = yield "frame_order", arguments
    if not result.ok:
        yield "no_match", {"reason": f"No '{plan.text}': {result.content.removeprefix('Error: ')}."}
        return
    index, where = read_frame_words(result.content) or (None, "that frame")
    picked = list(result.instance_ids)
    yield (
        "final_answer",
        {"track_ids": picked, "frame": index, "text": f"The {plan.text} on {where} is {_shown(picked)}."},
    )


def _on_frame(plan: ClipPlan, ids: list[int]) -> Program:
    result = yield from _ask("tracks_on_frame", {"ids": ids, "frame": plan.moment})
    on = list(result.instance_ids)
    index, where = read_frame_words(result.content) or (None, "that frame")
    if not on:
        yield "no_match", {"reason": f"None of the {len(ids)} {_noun(plan, len(ids))} tracked is on {where}."}
        return
    text = f"Found {len(on)} {_noun(plan, len(on))} on {where}: {_shown(on)}."
    yield "final_answer", {"track_ids": on, "frame": index, "text": text}


def _shown(ids: Sequence[int]) -> str:
    return ", ".join(f"#{i}" for i in ids)


def _noun(plan: ClipPlan, n: int) -> str:
    """The plan's phrases in the number ``n`` asks for: "car" for 1, "cars" otherwise; "cars and trucks"."""
    forms = [singular(p) if n == 1 else plural(singular(p)) for p in plan.phrases]
    return " and ".join(forms)
