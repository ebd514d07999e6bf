"""``QueryPlanner``: a ``ChatModel`` with no model behind it, which carries out a ``Plan`` through the tools.

The agent loop cannot tell it from an LLM: it receives the conversation, returns one tool call per turn and
reads the results (their ids, ``ToolMessage.instance_ids``). It keeps no state between calls: each turn it
parses the query again and replays its program (a generator of tool calls) over the results so far, which
yields the next call. So one planner serves any number of runs, threads and agents.

How a plan is carried out:
- each noun phrase is segmented on its own, trying the plural/singular and then the head noun when it
  finds nothing (``words.fallbacks``); several masks of one phrase are de-duplicated with ``count_masks``;
- relations, orderings and distances go to ``spatial_filter`` / ``between`` / ``order_masks`` / ``nearest``;
- "X except Y" is ``combine_masks`` on the ids (mode "objects"), where Y is searched without its head-noun
  fallback ("red cups" must not fall back to all the cups); "the part of X not covered by Y" makes one new
  mask with ``combine_masks`` (mode "pixels");
- a counting plan ends with the number of distinct objects (0 included); any other plan ends with
  ``final_answer`` on what was found, or ``no_match`` saying what was missing.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sam3_agent.agent.messages import (
    AssistantMessage,
    Message,
    ModelGaveUp,
    ToolCall,
    ToolMessage,
    ToolSpec,
    query_of,
)
from sam3_agent.agent.planner.grammar import NotUnderstood, parse_query
from sam3_agent.agent.planner.plan import (
    Between,
    Closest,
    Except,
    Objects,
    Part,
    Plan,
    Ranked,
    Related,
    Target,
    Union,
)
from sam3_agent.agent.planner.words import fallbacks, is_plural, other_number, plural, singular

UNDERSTOOD = (
    "find / segment / show X; X and Y; X left of / right of / above / below / on / under / in / containing / "
    "next to / near Y; X between Y and Z; the X closest to / farthest from Y; X not on Y; the leftmost / "
    "rightmost / topmost / bottommost / largest / smallest X; the second X from the left; the third largest X; "
    "the last X on the right; X except Y; all X but Y; X that are not red; the part of X not covered by Y; X "
    "without Y; the part of X under / covered by Y; how many X (are left of Y); count the X; the number of X"
)
CONFIGURE_LLM = (
    "For other questions configure a language model: --llm-model NAME with --llm-base-url URL (any "
    "OpenAI-compatible endpoint), or --llm-model local:PATH (a vision-language model run here); see the README."
)


@dataclass(frozen=True)
class _Call:
    tool: str
    arguments: dict[str, Any]


Program = Generator[_Call, ToolMessage, None]


class QueryPlanner:
    """The built-in planner: answers the common query shapes (see ``UNDERSTOOD``) with no language model.

    Implements ``sam3_agent.agent.messages.ChatModel``; ``Sam3Agent(segmenter)`` uses it when no chat model
    is given. A query outside the grammar raises ``ModelGaveUp`` with a message naming the shapes it knows and
    how to configure an LLM, so the run ends with status "gave_up".
    """

    def chat(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> AssistantMessage:
        query = query_of(messages)
        if query is None:
            raise ModelGaveUp("the built-in planner only answers conversations started by Sam3Agent.run")
        plan = plan_for(query)
        rounds = _rounds(messages)
        program = _Execution(plan).program()
        call = next(program)
        for sent, result in rounds:
            if sent.name != call.tool:
                raise ModelGaveUp(f"the built-in planner lost its place (expected {call.tool}, saw {sent.name})")
            try:
                call = program.send(result)
            except StopIteration:
                raise ModelGaveUp("the built-in planner has nothing left to do") from None
        content = f"Plan: {plan.describe()}" if not rounds else None
        tool_call = ToolCall(id=f"plan_{len(rounds) + 1}", name=call.tool, arguments=json.dumps(call.arguments))
        return AssistantMessage(content=content, tool_calls=(tool_call,))


def plan_for(query: str) -> Plan:
    """The plan for ``query``; raises ``ModelGaveUp`` with the planner's help text when it has none."""
    try:
        return parse_query(query)
    except NotUnderstood as exc:
        raise ModelGaveUp(
            f"The built-in planner (no language model is configured) did not understand {query!r}: {exc}. "
            f"It understands: {UNDERSTOOD}. {CONFIGURE_LLM}"
        ) from None


def _rounds(messages: Sequence[Message]) -> list[tuple[ToolCall, ToolMessage]]:
    """(call, result) pairs of the planner's earlier turns, in order."""
    results = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
    calls = [c for m in messages if isinstance(m, AssistantMessage) for c in m.tool_calls]
    return [(call, results[call.id]) for call in calls if call.id in results]


@dataclass
class _Execution:
    """One replay of a plan: the program and what it learnt on the way (ids per phrase, notes)."""

    plan: Plan
    found: dict[str, tuple[str, list[int]]] = field(default_factory=dict)  # phrase -> (phrase used, ids)
    notes: list[str] = field(default_factory=list)

    def program(self) -> Program:
        ids = yield from self._evaluate(self.plan.target)
        if self.plan.count:
            yield from self._finish_count(ids)
        elif ids:
            yield _Call("final_answer", {"ids": ids, "text": self._found_text(ids)})
        else:
            yield _Call("no_match", {"reason": self._missing_text()})

    # --- targets ---------------------------------------------------------------------------------------

    def _evaluate(self, target: Target) -> Generator[_Call, ToolMessage, list[int]]:
        match target:
            case Objects(phrase=phrase):
                return (yield from self._objects(phrase))
            case Related():
                return (yield from self._related(target))
            case Between():
                return (yield from self._between(target))
            case Closest():
                return (yield from self._closest(target))
            case Ranked():
                return (yield from self._ranked(target))
            case Except():
                return (yield from self._except(target))
            case Part():
                return (yield from self._part(target))
            case Union(parts=parts):
                ids: list[int] = []
                for part in parts:
                    ids += yield from self._evaluate(part)
                return list(dict.fromkeys(ids))
        raise TypeError(f"not a plan target: {target!r}")

    def _objects(self, phrase: str, *, head_noun: bool = True) -> Generator[_Call, ToolMessage, list[int]]:
        if phrase in self.found:
            return list(self.found[phrase][1])
        used, ids = phrase, []
        tries = fallbacks(phrase) if head_noun else list(dict.fromkeys([phrase, other_number(phrase)]))
        for attempt in tries:
            ids = list((yield from _ask(_Call("segment_phrases", {"phrases": [attempt]}))).instance_ids)
            if ids:
                used = attempt
                break
        if len(ids) > 1:  # the same object found twice (SAM 3's counting recipe merges such masks)
            ids = sorted((yield from _ask(_Call("count_masks", {"ids": ids}))).instance_ids)
        self.found[phrase] = (used, ids)
        if not ids:
            tried = ", ".join(repr(p) for p in tries[1:])
            self.notes.append(f"found no {phrase!r}" + (f", also tried {tried}" if tried else ""))
        elif used != phrase:
            self.notes.append(f"no {phrase!r} was found, so {used!r} stands in for it")
        return ids

    def _related(self, target: Related) -> Generator[_Call, ToolMessage, list[int]]:
        subjects = yield from self._evaluate(target.subject)
        if not subjects:
            return []
        anchors = yield from self._evaluate(target.anchor)
        if not anchors:
            return subjects if target.negate else []
        arguments = {"subject_ids": subjects, "relation": target.relation, "anchor_ids": anchors}
        if target.negate:
            arguments["negate"] = True
        kept = list((yield from _ask(_Call("spatial_filter", arguments))).instance_ids)
        if not kept:
            self.notes.append(f"of {_some(subjects, target.subject)}, none is {_words(target)}")
        return kept

    def _between(self, target: Between) -> Generator[_Call, ToolMessage, list[int]]:
        subjects = yield from self._evaluate(target.subject)
        first = (yield from self._evaluate(target.first)) if subjects else []
        second = (yield from self._evaluate(target.second)) if first else []
        if not (subjects and first and second):
            return []
        arguments = {"subject_ids": subjects, "first_ids": first, "second_ids": second}
        kept = list((yield from _ask(_Call("between", arguments))).instance_ids)
        if not kept:
            self.notes.append(f"of {_some(subjects, target.subject)}, none lies {_words(target)}")
        return kept

    def _closest(self, target: Closest) -> Generator[_Call, ToolMessage, list[int]]:
        subjects = yield from self._evaluate(target.subject)
        anchors = (yield from self._evaluate(target.anchor)) if subjects else []
        if not (subjects and anchors):
            return []
        if set(subjects) <= set(anchors) and len(anchors) == 1:
            self.notes.append(f"the only {target.subject.text} is the one to measure from")
            return []
        arguments: dict[str, Any] = {"subject_ids": subjects, "anchor_ids": anchors}
        if target.farthest:
            arguments["farthest"] = True
        ranked = (yield from _ask(_Call("nearest", arguments))).instance_ids
        return [ranked[0]] if ranked else []

    def _ranked(self, target: Ranked) -> Generator[_Call, ToolMessage, list[int]]:
        subjects = yield from self._evaluate(target.subject)
        if not subjects:
            return []
        if target.k > len(subjects):
            self.notes.append(f"there are only {_some(subjects, target.subject)}, so there is no {target.text}")
            return []
        arguments = {"ids": subjects, "ordering": target.ordering, "k": target.k}
        return list((yield from _ask(_Call("order_masks", arguments))).instance_ids)

    def _except(self, target: Except) -> Generator[_Call, ToolMessage, list[int]]:
        subjects = yield from self._evaluate(target.subject)
        if not subjects:
            return []
        removed = target.removed
        if isinstance(removed, Objects):  # "red cups" falling back to "cups" would take out every cup
            taken = yield from self._objects(removed.phrase, head_noun=False)
        else:
            taken = yield from self._evaluate(removed)
        if not taken:
            return subjects
        arguments = {"operation": "difference", "first_ids": subjects, "second_ids": taken, "mode": "objects"}
        kept = list((yield from _ask(_Call("combine_masks", arguments))).instance_ids)
        if not kept:
            self.notes.append(f"each of {_some(subjects, target.subject)} is also one of '{removed.text}'")
        return kept

    def _part(self, target: Part) -> Generator[_Call, ToolMessage, list[int]]:
        subjects = yield from self._evaluate(target.subject)
        if not subjects:
            return []
        operand = yield from self._evaluate(target.operand)
        if not operand:  # nothing covers the subjects: all of them is not covered, none of them is
            return subjects if target.operation == "difference" else []
        arguments = {"operation": target.operation, "first_ids": subjects, "second_ids": operand}
        result = yield from _ask(_Call("combine_masks", arguments))
        made = list(result.instance_ids)
        if made:
            self.notes.append(result.content.splitlines()[0])  # where the new mask came from: "#7 = #1 minus #4"
        elif target.operation == "difference":
            self.notes.append(f"'{target.operand.text}' covers all of '{target.subject.text}'")
        else:
            self.notes.append(f"'{target.subject.text}' and '{target.operand.text}' do not overlap")
        return made

    # --- answers -----------------------------------------------------------------------------------------

    def _finish_count(self, ids: list[int]) -> Program:
        if not ids:
            note = f" ({'; '.join(self.notes)})" if self.notes else ""
            text = f"I count 0 {_counted(0, self.plan.target)}{note}."
            yield _Call("final_answer", {"ids": [], "count": 0, "text": text})
            return
        kept = list((yield from _ask(_Call("count_masks", {"ids": ids}))).instance_ids)
        shown = ", ".join(f"#{i}" for i in kept)
        note = f" Note: {'; '.join(self.notes)}." if self.notes else ""
        answer = f"I count {len(kept)} {_counted(len(kept), self.plan.target)} ({shown}).{note}"
        yield _Call("final_answer", {"ids": kept, "count": len(kept), "text": answer})

    def _found_text(self, ids: list[int]) -> str:
        shown = ", ".join(f"#{i}" for i in ids)
        note = f" Note: {'; '.join(self.notes)}." if self.notes else ""
        return f"Found {len(ids)} for '{self.plan.target.text}': {shown}.{note}"

    def _missing_text(self) -> str:
        why = "; ".join(self.notes) or "nothing matched"
        return f"Nothing in the image matches '{self.plan.target.text}': {why}."


def _ask(call: _Call) -> Generator[_Call, ToolMessage, ToolMessage]:
    """Send one call; a failed call means the plan itself is wrong, so the planner gives up on it."""
    result = yield call
    if not result.ok:
        raise ModelGaveUp(f"the built-in planner's {call.tool} call failed: {result.content}")
    return result


def _some(ids: list[int], target: Target) -> str:
    """ "2 cups", "1 cup" (the noun in the right number), or "2 of 'cups on the table'"."""
    if not isinstance(target, Objects):
        return f"{len(ids)} of '{target.text}'"
    return f"{len(ids)} {_counted(len(ids), target)}"


def _counted(n: int, target: Target) -> str:
    """The target's words with its subject noun in the number ``n`` asks for: "cup left of the laptop" for 1,
    "cups left of the laptop" for 2 (the words as they are when the subject cannot be found in them)."""
    subject = target
    while isinstance(subject, Related | Between | Closest | Ranked | Except | Part):
        subject = subject.subject
    if not isinstance(subject, Objects) or not target.text.startswith(subject.phrase):
        return target.text
    phrase = subject.phrase
    phrase = singular(phrase) if n == 1 else (phrase if is_plural(phrase.split()[-1]) else plural(phrase))
    return phrase + target.text[len(subject.phrase) :]


def _words(target: Related | Between) -> str:
    """The relation part of a target's text: "left of the laptop" from "cups left of the laptop"."""
    subject = target.subject.text
    text = target.text
    return text[len(subject) :].strip() if text.startswith(subject) else text
