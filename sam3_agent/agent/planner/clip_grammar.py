"""The built-in planner's clip grammar: English questions about objects through a video -> a ``ClipPlan``.

The shapes, tried in this order (X is a noun phrase, or a list "cars and trucks"):

- most at once: "how many X at once / at the same time", "the maximum number of X on screen";
- count on one frame: "how many X are in the room at the end / at the start / in the last frame / at frame 30";
- unique count: "how many (different) X pass / appear / enter the room", "count the X" (one track = one object,
  however often it leaves and comes back);
- order in time: "the X who enters last", "the first X to appear", "the second X to arrive", "the last X to
  leave", "which X leaves first" (a track enters on the frame it is first seen on, leaves after the last);
- time on screen: "which X is on screen longest", "the X visible for the shortest time", "the X in the most frames";
- one frame: "the X at the end" (the tracks on the last frame), "the leftmost / largest X at the start";
- every track: "segment / track the X".

The noun phrases are read by the image grammar (``grammar.parse_target``); a relation between objects ("the car
left of the bus") is a question for a language model. Anything else raises ``NotUnderstood``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sam3_agent.agent.clip_tools import TrackOrdering
from sam3_agent.agent.planner.grammar import (
    COUNTING,
    ORDINALS,
    NotUnderstood,
    _clean_body,
    _finding_body,
    _strip_determiners,
    normalize,
    parse_target,
)
from sam3_agent.agent.planner.plan import Objects, Ranked, Union
from sam3_agent.geometry import Ordering

Moment = Literal["first", "last", "busiest"] | int
"""A frame: the first / last sampled one, the one with most tracks, or a clip frame index."""


@dataclass(frozen=True)
class ClipPlan:
    """What a clip query asks: the phrases to track, then a count or a selection of tracks.

    ``count`` without ``moment``: the number of different tracks; with it, the tracks on that frame. ``ordering``:
    the ``k``-th rank in time; ``frame_ordering``: the ``k``-th by position / size on the ``moment`` frame;
    neither: every track (on ``moment`` only, when given). ``text`` is the query's words for the target.
    """

    phrases: tuple[str, ...]
    text: str
    count: bool = False
    moment: Moment | None = None
    ordering: TrackOrdering | None = None
    frame_ordering: Ordering | None = None
    k: int = 1

    def describe(self) -> str:
        """The plan in one line, e.g. ``count('cars')``, ``pick(enters_last #1 of 'person')``."""
        what = " + ".join(repr(p) for p in self.phrases)
        on = "" if self.moment is None else f" on {self.moment}"
        if self.count:
            return f"count({what}{on})"
        if self.ordering is not None:
            return f"pick({self.ordering} #{self.k} of {what})"
        if self.frame_ordering is not None:
            return f"pick({self.frame_ordering} #{self.k} of {what}{on})"
        return f"find({what}{on})"


# --- the tables ----------------------------------------------------------------------------------------------------

ENTER_VERBS = (
    "enter", "enters", "entered", "appear", "appears", "appeared", "arrive", "arrives", "arrived", "come in",
    "comes in", "came in", "show up", "shows up", "showed up", "join", "joins", "joined", "walk in", "walks in",
    "walked in", "get in", "gets in", "got in", "turn up", "turns up", "turned up", "pass", "passes", "passed",
    "pass by", "passes by", "go by", "goes by", "drive by", "drives by", "drive past", "drives past", "cross",
    "crosses", "crossed",
)  # fmt: skip
"""Passing by counts as entering: "the first car to pass" is the first one seen."""
LEAVE_VERBS = (
    "leave", "leaves", "exit", "exits", "exited", "disappear", "disappears", "disappeared", "depart", "departs",
    "departed", "go out", "goes out", "went out", "walk out", "walks out", "walked out", "get out", "gets out",
    "got out", "go away", "goes away", "went away",
)  # fmt: skip
""""left" is not here: it is also a side ("the car on the left")."""
PASS_VERBS = (
    "pass", "passed", "go", "went", "drive", "drove", "walk", "walked", "ride", "rode", "run", "ran", "fly", "flew",
    "cross", "crossed", "move", "moved", "come", "came", "enter", "entered", "appear", "appeared", "arrive",
    "arrived", "leave", "exit", "exited", "show up", "showed up", "go by", "went by", "are seen", "were seen",
)  # fmt: skip
"""After the noun of a count, in the forms a plural subject takes ("how many cars pass by")."""
SETTINGS = (
    "video", "clip", "footage", "recording", "movie", "film", "sequence", "room", "scene", "screen", "frame", "shot",
    "view", "picture", "street", "road", "area", "space", "field", "hall", "yard", "garden", "park", "camera",
)  # fmt: skip
"""Places the whole clip shows: "in the room" says where, not which objects."""
AT_ONCE = (
    "at once", "at the same time", "simultaneously", "at any one time", "at any time", "at one time", "at a time",
    "at most", "at the most", "at maximum", "at the peak", "at peak",
)  # fmt: skip
_OF_CLIP = r"(?: of (?:the |this )?(?:video|clip|footage))?"
MOMENTS: tuple[tuple[str, Moment], ...] = (
    (r"(?:at|by|towards?|near|in) the (?:very )?(?:end|finish|close)" + _OF_CLIP, "last"),
    (r"(?:at|in) the (?:very )?(?:start|beginning|outset|opening)" + _OF_CLIP, "first"),
    (r"(?:in|on|at) the (?:very )?(?:first|opening) frame", "first"),
    (r"(?:in|on|at) the (?:very )?(?:last|final|closing) frame", "last"),
    (r"at first|initially|to begin with", "first"),
    (r"finally|eventually", "last"),
)  # fmt: skip
"""Phrases naming one frame (tried in order)."""
SHORTEST = ("shortest", "least", "fewest")

# --- compiled patterns ---------------------------------------------------------------------------------------------


def _alt(words: object) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))  # type: ignore[arg-type]


_ORD = rf"(?:{_alt(ORDINALS)}|\d+(?:st|nd|rd|th)?)"
_WHEN = rf"(?:first|last|earliest|latest|soonest|{_ORD})"
_VERB = rf"(?:{_alt(ENTER_VERBS + LEAVE_VERBS)})"
_PLACE = rf"(?: (?:the |this |that |a )?(?:{_alt(SETTINGS)}))?"
_WHO = r"(?:(?:who|that|which) )?"
_WHO_WHEN = re.compile(rf"^(?P<x>.+?) {_WHO}(?:(?:is|was) )?(?P<verb>{_VERB}){_PLACE} (?:the )?(?P<when>{_WHEN})$")
_WHO_IS = re.compile(
    rf"^(?P<x>.+?) (?:who|that|which) (?:is|was|are|were) the (?P<when>{_WHEN})(?P<rev> to last| from last)?"
    rf"(?: one)? to (?P<verb>{_VERB}){_PLACE}$"
)
_FIRST_TO = re.compile(
    rf"^(?P<when>{_WHEN})(?P<rev> to last| from last)? (?P<x>.+?)(?: (?:to|who|that|which) (?P<verb>{_VERB}){_PLACE})?$"
)
_CUE = (
    r"(?:on screen|on camera|in view|in frame|in shot|in the (?:video|clip|footage|scene|picture)|visible|around"
    r"|present|seen|shown|tracked)"
)
_STAY = r"(?:is|are|was|were|stays?|stayed|remains?|remained|lingers?|lingered|appears?|appeared|can be seen|shows up)"
_LONGEST = re.compile(
    rf"^(?P<x>.+?) {_WHO}(?:(?P<stay>{_STAY}) )?(?:(?P<cue>{_CUE}) )?(?P<for>for )?(?:the )?"
    rf"(?P<sup>longest|shortest|most|least)(?P<time> time| amount of time| duration)?(?: (?P<cue2>{_CUE}))?$"
)
_MOST_FRAMES = re.compile(
    rf"^(?P<x>.+?) {_WHO}(?:{_STAY} )?(?:{_CUE} )?(?:in|on) the (?P<sup>most|fewest|least)(?: sampled)? frames$"
)
_AT_ONCE = re.compile(rf"(?:^|\s)(?:{_alt(AT_ONCE)})(?=\s|$)")
_ASK = r"^(?:what is |what's |whats |what was |give me |find |tell me |report )?the "
_MAX_COUNT = re.compile(
    _ASK + r"(?:maximum|max|most|largest|highest|greatest|peak|biggest) (?:number|count|amount) of (?P<body>.+)$"
)
_MOST = re.compile(_ASK + r"(?:most|maximum|max) (?P<body>.+)$")
"""Read only with words of "at once": "the most cars at the same time"."""
_FRAME_AT = re.compile(r"(?:^|,? )(?:at|in|on) frame (?P<n>\d+)(?=,|\s|$)")
_MOMENT_RES = [(re.compile(rf"(?:^|,? )(?:{p})(?=,|\s|$)"), m) for p, m in MOMENTS]
_TAILS = [
    re.compile(rf" (?:(?:that|which|who) )?(?:(?:do|did|can|could|will) )?(?:{_alt(PASS_VERBS)})"
               r"(?: (?:by|past|through|across|over|along|in|into|out|away|around))?"
               rf"(?: (?:the |this |that |a |my |our )?[a-z]+)?$"),
    re.compile(r" (?:are|is|were|was) (?:seen|visible|shown|present|there|tracked|recorded|filmed|around)$"),
    re.compile(rf" (?:in|on|inside|within|at|through|across|along|throughout|during) (?:the |this |that )?"
               rf"(?:{_alt(SETTINGS)})$"),
    re.compile(r" (?:on screen|on camera|in view|in frame|in shot|in total|overall|altogether|in all)$"),
    re.compile(r" (?:(?:do|can|could) )?(?:you|we|i) (?:see|spot|count)$"),
    re.compile(r" (?:there )?(?:are|is|were|was)(?: there)?$"),
]  # fmt: skip
_CLIP_COMMAND = re.compile(r"^(?:track|follow|trace|tag|keep track of)(?: me| us)?(?: all)?\b ?")


# --- reading a query -----------------------------------------------------------------------------------------------


def parse_clip_query(query: str) -> ClipPlan:
    """The plan for a question about a clip; raises ``NotUnderstood`` (saying why) for other shapes."""
    text = normalize(query)
    if not text:
        raise NotUnderstood("nothing is left of it once filler words are removed")
    text, moment = _moment(text)
    text, at_once = _at_once(text)
    if at_once and moment is None:
        moment = "busiest"
    if (match := _MAX_COUNT.match(text)) or (at_once and (match := _MOST.match(text))):
        body = _tail(_clean_body(match["body"]))
        return ClipPlan(_phrases(body), body, count=True, moment=moment or "busiest")
    for pattern in COUNTING:
        if match := re.match(pattern, text):
            body = _tail(_clean_body(match["body"]))
            return ClipPlan(_phrases(body), body, count=True, moment=moment)
    body = _strip_determiners(_finding_body(_CLIP_COMMAND.sub("", text)))
    return _in_time(body) or _on_screen(body) or _select(_tail(body), moment)


def _moment(text: str) -> tuple[str, Moment | None]:
    """The query without its words naming one frame, and that frame."""
    if match := _FRAME_AT.search(text):
        return _cut(text, match), int(match["n"])
    for pattern, moment in _MOMENT_RES:
        if match := pattern.search(text):
            return _cut(text, match), moment
    return text, None


def _at_once(text: str) -> tuple[str, bool]:
    match = _AT_ONCE.search(text)
    return (_cut(text, match), True) if match else (text, False)


def _cut(text: str, match: re.Match[str]) -> str:
    return " ".join((text[: match.start()] + " " + text[match.end() :]).split()).strip(" ,")


def _tail(text: str) -> str:
    """The noun part of a clip question: "different cars pass by the house" -> "different cars"."""
    previous = None
    while text != previous:
        previous = text
        for pattern in _TAILS:
            cut = pattern.sub("", text).strip(" ,")
            text = cut or text
    return text


def _phrases(text: str) -> tuple[str, ...]:
    """The noun phrases of ``text``: one, or a list ("cars and trucks")."""
    target = parse_target(text)
    parts = target.parts if isinstance(target, Union) else (target,)
    if not all(isinstance(p, Objects) for p in parts):
        raise NotUnderstood(
            f"{text!r} relates or orders objects, not only names them: through a clip that needs a language model"
        )
    return tuple(p.phrase for p in parts if isinstance(p, Objects))


def _rank(when: str) -> tuple[bool, int]:
    """(counted from the end, k) for "first", "last", "second", "3rd"."""
    if when in ("last", "latest"):
        return True, 1
    if when in ("first", "earliest", "soonest"):
        return False, 1
    k = ORDINALS.get(when) or int(re.sub(r"\D", "", when))
    if k < 1:
        raise NotUnderstood(f"the ordinal {when!r} must be 1 or more")
    return False, k


def _in_time(body: str) -> ClipPlan | None:
    """ "the person who enters last", "the first car to appear", "the last person to leave"."""
    match = _WHO_IS.match(body) or _WHO_WHEN.match(body) or _FIRST_TO.match(body)
    if match is None:
        return None
    if not match["verb"] and isinstance(parse_target(match["x"]), Ranked):
        return None  # "the second largest dog": an order on one frame
    from_end, k = _rank(match["when"])
    if match.groupdict().get("rev"):  # "second to last": the k-th counted from the other end
        from_end = not from_end
    leaving = match["verb"] in LEAVE_VERBS
    ordering: TrackOrdering
    if leaving:
        ordering = "leaves_last" if from_end else "leaves_first"
    else:
        ordering = "enters_last" if from_end else "enters_first"
    return ClipPlan(_phrases(match["x"]), _relative(body, match["x"]), ordering=ordering, k=k)


def _relative(body: str, subject: str) -> str:
    """The words for the answer: "dog that is on screen longest" for "(which) dog is on screen longest"."""
    rest = body[len(subject) :].strip()
    if not body.startswith(subject) or not re.match(rf"(?:{_STAY}|{_VERB})\b", rest):
        return body  # "dog who leaves first", "dog in the most frames", "first dog to leave" read well as they are
    return f"{subject} that {rest}"


def _on_screen(body: str) -> ClipPlan | None:
    """ "which dog is on screen longest", "the dog visible for the shortest time", "the dog in the most frames"."""
    match = _MOST_FRAMES.match(body)
    if match is not None:
        return _by_time_seen(body, match)
    match = _LONGEST.match(body)
    if match is None:
        return None
    if match["sup"] in ("most", "least") and not (match["cue"] or match["cue2"] or match["time"]):
        return None  # "the most" alone is not about time
    if not (match["stay"] or match["cue"] or match["cue2"] or match["time"] or match["for"]):
        return None  # "the longest snake" is about size, not time on screen
    return _by_time_seen(body, match)


def _by_time_seen(body: str, match: re.Match[str]) -> ClipPlan:
    ordering: TrackOrdering = "shortest" if match["sup"] in SHORTEST else "longest"
    return ClipPlan(_phrases(match["x"]), _relative(body, match["x"]), ordering=ordering)


def _select(body: str, moment: Moment | None) -> ClipPlan:
    """Every track of the phrases (on ``moment`` only), or the k-th by position / size on that frame."""
    target = parse_target(body)
    if isinstance(target, Ranked) and isinstance(target.subject, Objects):
        if moment is None:
            raise NotUnderstood(f"say on which frame to judge {target.text!r}: at the start, at the end, at frame N")
        return ClipPlan((target.subject.phrase,), body, moment=moment, frame_ordering=target.ordering, k=target.k)
    return ClipPlan(_phrases(body), body, moment=moment)
