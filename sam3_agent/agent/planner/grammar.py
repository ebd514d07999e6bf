"""The built-in planner's grammar: English queries about objects in an image -> a typed ``Plan``.

Reading a query, in order:

1. normalise: lower case, punctuation and filler ("please", "could you", "in the image", "are there")
   removed;
2. intent: counting ("how many X", "count the X", "the number of X") or finding ("segment / find / show /
   where is / is there / which X ...", or a bare noun phrase);
3. the target, recursively (:func:`parse_target`):
   - set logic, loosest first: "X except Y" / "all X but Y" / "X other than Y" / "X that are not red" (the
     objects of X that are not also objects of Y); "the part of X not covered by Y" / "X without Y" (one new
     mask: X's pixels minus Y's) and "X covered by Y" / "the part of X under Y" (X's pixels within Y's);
   - "X between Y and Z";
   - orderings: "the leftmost / largest X", "the second X from the left", "the third largest X", "the
     last X on the right", "the closest X to Y";
   - relations, split at the first relation word: "X left of / on / under / in / containing / next to Y",
     "X closest to / farthest from Y", negated "X not on Y";
   - lists: "X, Y and Z";
   - a noun phrase, kept whole with its attributes ("red cup").

Anything else raises ``NotUnderstood``, whose message says why; the planner turns it into a "gave_up" answer
that lists what it understands. The tables below are the grammar: extend them to teach it new words.
"""

from __future__ import annotations

import re

from sam3_agent.agent.planner.plan import (
    Between,
    Closest,
    Except,
    MaskOperation,
    Objects,
    Part,
    Plan,
    Ranked,
    Related,
    Target,
    Union,
)
from sam3_agent.agent.planner.words import plural, singular
from sam3_agent.geometry import Ordering, Relation

MAX_QUERY_WORDS = 40
"""Longer queries are not guessed at: they are questions for a language model."""


class NotUnderstood(ValueError):
    """The query does not fit the grammar; the message says which part did not."""


# --- the tables --------------------------------------------------------------------------------------------

RELATION_WORDS: dict[Relation, tuple[str, ...]] = {
    "left_of": (
        "to the left of",
        "on the left of",
        "on the left side of",
        "to the left side of",
        "at the left of",
        "on the left hand side of",
        "left of",
    ),
    "right_of": (
        "to the right of",
        "on the right of",
        "on the right side of",
        "to the right side of",
        "at the right of",
        "on the right hand side of",
        "right of",
    ),
    "above": ("above", "over", "higher than", "higher up than"),
    "below": ("below", "lower than", "lower down than"),
    "on": ("on top of", "on", "atop", "upon", "onto"),
    "under": ("under", "underneath", "beneath"),
    "inside": ("inside of", "inside", "in", "within", "contained in", "enclosed in", "enclosed by"),
    "contains": ("containing", "contains", "contain", "enclosing", "encloses", "enclose", "surrounding"),
    "overlaps": ("overlapping", "overlaps", "overlap", "overlapping with", "overlaps with", "overlap with"),
    "next_to": (
        "next to",
        "right next to",
        "beside",
        "besides",
        "alongside",
        "near",
        "near to",
        "nearby",
        "close to",
        "adjacent to",
        "by",
        "touching",
        "neighboring",
        "neighbouring",
        "bordering",
    ),
}
NOT_NEAR_WORDS = ("far from", "far away from", "away from", "not near", "distant from")
"""Read as ``next_to`` negated: "the cups far from the laptop"."""

CLOSEST_WORDS = {
    False: ("closest to", "nearest to", "closest", "nearest"),
    True: ("farthest from", "furthest from", "farthest away from", "furthest away from", "most distant from"),
}

SUPERLATIVES: dict[str, Ordering] = {
    "leftmost": "leftmost",
    "left": "leftmost",
    "far left": "leftmost",
    "rightmost": "rightmost",
    "right": "rightmost",
    "far right": "rightmost",
    "topmost": "topmost",
    "top": "topmost",
    "uppermost": "topmost",
    "upper": "topmost",
    "highest": "topmost",
    "bottommost": "bottommost",
    "bottom": "bottommost",
    "lowest": "bottommost",
    "lower": "bottommost",
    "lowermost": "bottommost",
    "largest": "largest",
    "biggest": "largest",
    "greatest": "largest",
    "hugest": "largest",
    "smallest": "smallest",
    "tiniest": "smallest",
    "littlest": "smallest",
}
SIDES: dict[str, Ordering] = {"left": "leftmost", "right": "rightmost", "top": "topmost", "bottom": "bottommost"}
OPPOSITE: dict[Ordering, Ordering] = {
    "leftmost": "rightmost",
    "rightmost": "leftmost",
    "topmost": "bottommost",
    "bottommost": "topmost",
    "largest": "smallest",
    "smallest": "largest",
    "highest_score": "highest_score",
}
ORDINALS = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "eleventh": 11,
    "twelfth": 12,
    "next": 2,
}
NUMBER_WORDS = (
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "several",
    "many",
    "multiple",
)
DETERMINERS = (
    "all of the",
    "all the",
    "all",
    "each of the",
    "each",
    "every single",
    "every",
    "any of the",
    "any",
    "some",
    "both of the",
    "both",
    "the",
    "a",
    "an",
    "these",
    "those",
    "this",
    "that",
    "my",
    "individual",
    "single",
    "different",
    "distinct",
    "separate",
    "unique",
    "visible",
    "other",
    "of the",
    *NUMBER_WORDS,
)
COMMANDS = (
    "segment",
    "find",
    "show",
    "highlight",
    "locate",
    "detect",
    "mark",
    "select",
    "outline",
    "identify",
    "isolate",
    "extract",
    "display",
    "get",
    "spot",
    "circle",
    "mask",
    "annotate",
    "label",
    "pick out",
    "pick",
    "point out",
    "point to",
    "point at",
    "search for",
    "look for",
    "give",
    "return",
    "draw",
    "indicate",
    "choose",
    "track down",
    "find out",
    "list",
    "cut out",
    "see",
)
OTHER_REQUESTS = frozenset(
    (
        "write",
        "translate",
        "explain",
        "recommend",
        "tell",
        "describe",
        "summarize",
        "summarise",
        "generate",
        "create",
        "compose",
        "sing",
        "solve",
        "define",
        "compare",
        "imagine",
        "predict",
        "evaluate",
        "edit",
        "remove",
        "delete",
        "replace",
        "rotate",
        "resize",
        "send",
    )
)
"""Verbs (rarely object names) that ask for something other than finding objects: a query starting with one
is not a noun phrase."""
FILLER = (
    r"^(?:hey|hi|hello|ok|okay|so|now|well|alright)\b",
    r"\b(?:please|pls|plz|kindly|just)\b",
    r"\b(?:can|could|would|will) you(?: please)?\b",
    r"\bi(?: would|'d)? (?:like|want|need)(?: you)?(?: to)?\b",
    r"\bi wonder\b",
    r"\b(?:help me|let me know|for me|thanks|thank you)\b",
    r"\b(?:in|on|from|of|within|inside|across) (?:the|this|that|my|our|your) "
    r"(?:image|picture|photo|photograph|pic|scene|frame|shot|view|screenshot)\b",
)
TRAILING = (
    r",? (?:are|is) there(?: in total| altogether| at all)?$",
    r" there (?:are|is)$",
    r" (?:(?:can|do|could) )?(?:you|i|we|one) (?:can )?(?:see|find|spot|count)$",
    r" (?:can be|are|is) (?:seen|visible|shown|present|pictured|depicted|there)$",
    r" (?:in total|altogether|overall|in all|total)$",
    r" (?:(?:does|do) )?(?:the|this) (?:image|picture|photo|scene) (?:contain|have|show|include)s?$",
    r" (?:are|is)$",  # left dangling once "in the image" is gone: "how many cups are (in the image)"
)
COUNTING = (
    r"^(?:do you know |can you tell |tell me |count |find out |say )?how many (?:of )?(?P<body>.+)$",
    r"^(?:count|enumerate|tally)(?: up)?(?: all)?(?: of)?(?: the)?(?: number of)? (?P<body>.+)$",
    r"^(?:what is |what's |whats |give me |find |get |compute |calculate |determine |report |tell me )?"
    r"the (?:total )?(?:number|count|amount) of (?P<body>.+)$",
    r"^(?:total )?(?:number|count) of (?P<body>.+)$",
)
FINDING = (
    r"^where(?: exactly)? (?:is|are|'s) (?P<body>.+)$",
    r"^where (?P<body>.+?) (?:is|are)$",
    r"^(?:is|are) there (?:any |a |an |some )?(?P<body>.+)$",
    r"^(?:do|can) you see (?:any |a |an |some )?(?P<body>.+)$",
    r"^tell me (?P<body>(?:where|which) .+)$",
    r"^(?:what|which) (?P<body>(?:part|parts|portion|area|region|section) of .+)$",
    r"^which (?:is|are) (?P<body>.+)$",
    r"^which (?:one |ones )?(?:of the )?(?P<body>.+)$",
)
NOT_NOUNS = frozenset(
    (
        "why",
        "what",
        "when",
        "who",
        "whom",
        "whose",
        "how",
        "where",
        "which",
        "is",
        "are",
        "was",
        "were",
        "am",
        "be",
        "been",
        "being",
        "do",
        "does",
        "did",
        "can",
        "could",
        "should",
        "would",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "i",
        "you",
        "he",
        "she",
        "we",
        "they",
        "me",
        "him",
        "us",
        "them",
        "my",
        "your",
        "our",
        "their",
        "it",
        "its",
        "there",
        "if",
        "then",
        "than",
        "because",
        "so",
        "not",
        "no",
        "yes",
        "and",
        "or",
        "but",
        "very",
        "too",
        "also",
    )
)
LINKERS = (
    "located",
    "positioned",
    "placed",
    "sitting",
    "standing",
    "lying",
    "resting",
    "situated",
    "found",
    "kept",
    "set",
    "seen",
    "hanging",
    "parked",
    "lying",
    "put",
    "stacked",
    "shown",
    "visible",
    "directly",
    "right",
    "just",
    "somewhere",
    "immediately",
    "exactly",
    "there",
)
COLOURS = frozenset(
    (
        "red",
        "orange",
        "yellow",
        "green",
        "blue",
        "purple",
        "violet",
        "pink",
        "brown",
        "black",
        "white",
        "grey",
        "gray",
        "silver",
        "gold",
        "beige",
        "striped",
        "denim",
        "leather",
        "uniform",
        "costume",
        "disguise",
    )
)
"""After "in", these describe the subject ("the person in red"): the whole text stays one phrase."""
EDGE_WORDS = frozenset(["on", "in", "at", "of", "to", "from", "by", "with", "the", "a", "an", "and", "or"])
"""Words a noun phrase neither starts nor ends with ("on the left" is not an object)."""

EXCEPT_WORDS = (
    "except for",
    "except",
    "excepting",
    "excluding",
    "but not",
    "but",
    "other than",
    "apart from",
    "aside from",
    "save for",
    "not including",
    "with the exception of",
)
"""Between a target and the objects taken out of it: "all the cups except the red ones"."""
ATTRIBUTES = (COLOURS - {"uniform", "costume", "disguise"}) | {
    "wooden",
    "metal",
    "plastic",
    "empty",
    "full",
    "open",
    "closed",
    "broken",
    "ripe",
    "spotted",
}
"""Read after "not" as the objects to take out: "the cups that are not red" is the cups except the red cups."""
COVER_WORDS: dict[str, MaskOperation] = {
    "covered by": "intersection",
    "covered up by": "intersection",
    "hidden by": "intersection",
    "occluded by": "intersection",
    "obscured by": "intersection",
    "overlapped by": "intersection",
    "uncovered by": "difference",
    "without": "difference",
}
"""Between a target and the mask taken out of its pixels (or kept of them): "the table not covered by the cloth";
"not" turns one operation into the other."""
PART_WORDS = (
    "part of",
    "parts of",
    "portion of",
    "portions of",
    "area of",
    "areas of",
    "region of",
    "regions of",
    "section of",
    "bit of",
    "pixels of",
)
"""Before a target whose pixels are meant: after them the words of ``PART_PLACES`` are read as mask operations."""
PART_PLACES: dict[str, MaskOperation] = {
    **COVER_WORDS,
    "under": "intersection",
    "underneath": "intersection",
    "beneath": "intersection",
    "behind": "intersection",
    "inside": "intersection",
    "inside of": "intersection",
    "in": "intersection",
    "within": "intersection",
    "overlapping": "intersection",
    "overlapping with": "intersection",
    "outside": "difference",
    "outside of": "difference",
}
"""After ``PART_WORDS``: "the part of the table under the cloth" (not the spatial relation "under")."""
OVERLAP_WORDS = ("overlap", "intersection", "overlapping part", "overlapping area", "common area", "shared area")
"""Nouns of the intersection of two targets: "the overlap of the table and the cloth"."""

# --- compiled patterns ---------------------------------------------------------------------------------------


def _alternation(words: object) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))  # type: ignore[arg-type]


_ORDINAL = rf"(?:{_alternation(ORDINALS)}|\d+(?:st|nd|rd|th)?)"
_SIDE = r"(?:far |very )?(?P<side>left|right|top|bottom)(?: hand)?(?: side| end| edge| corner)?"
_LINK = (
    r"(?:(?:that|which|who) )?"
    r"(?:(?P<copula>is|are|'s|'re|isn't|aren't|is not|are not|don't|doesn't|do not|does not|do|does) )?(?P<neg>not )?"
    rf"(?:(?:{_alternation(LINKERS)}) )*"
)
_RELATION_INDEX = {w: r for r, words in RELATION_WORDS.items() for w in words}
_CLOSEST_INDEX = {w: far for far, words in CLOSEST_WORDS.items() for w in words}
_RELATED = re.compile(
    rf"^(?P<s>.+?) {_LINK}(?P<rel>{_alternation([*_RELATION_INDEX, *_CLOSEST_INDEX, *NOT_NEAR_WORDS])}) (?P<a>.+)$"
)
_BETWEEN = re.compile(rf"^(?P<s>.+?) {_LINK}(?:in )?between (?P<rest>.+)$")
_SIDE_RANK = re.compile(
    rf"^(?:(?P<ord>{_ORDINAL}) (?:(?P<rev>to |from )?last )?|(?P<last>last) )?(?P<x>.+?) "
    rf"(?P<prep>from|on|at|to|in|towards) the {_SIDE}$"
)
_SIDE_MOST = re.compile(
    rf"^(?P<x>.+?) (?:(?:that|which) (?:is|are) )?(?:the )?(?:furthest|farthest|most|closest|nearest)"
    rf"(?: over)?(?: to| on| towards| at)? the {_SIDE}$"
)
_SUPERLATIVE = re.compile(
    rf"^(?:(?P<ord>{_ORDINAL}) (?:(?P<rev>to |from )?last )?)?(?:most )?(?P<sup>{_alternation(SUPERLATIVES)}) "
    r"(?:one of the |of the )?(?P<x>.+)$"
)
_CLOSEST_FIRST = re.compile(r"^(?P<w>closest|nearest|farthest|furthest) (?P<s>.+?) (?:to|from) (?P<a>.+)$")
_IS_SUPERLATIVE = re.compile(
    rf"^(?P<x>.+?) (?:is|are) the (?P<sup>(?:{_ORDINAL} )?(?:{_alternation(SUPERLATIVES)}))(?: one| ones)?$"
)
_LIST_SEP = re.compile(r",? (?:and|or|as well as|plus|along with|together with) |, ")
_DETERMINER = re.compile(rf"^(?:(?:{_alternation(DETERMINERS)}|\d+) )+")
_PHRASE = re.compile(r"[a-z0-9][a-z0-9'\-]*(?: [a-z0-9][a-z0-9'\-]*){0,5}")
_FILLER = [re.compile(p) for p in FILLER]
_TRAILING = [re.compile(p) for p in TRAILING]
_COMMAND = re.compile(rf"^(?:{_alternation(COMMANDS)})(?: me| us)?\b ?")
_EXCEPT = re.compile(rf"^(?P<s>.+?),? (?:{_alternation(EXCEPT_WORDS)}) (?P<r>.+)$")
_NOT_ATTRIBUTE = re.compile(
    rf"^(?P<s>.+?) (?:(?:that|which) )?(?:is not|are not|isn't|aren't|not) (?P<attr>{_alternation(ATTRIBUTES)})$"
)
_NON_ATTRIBUTE = re.compile(rf"^non[- ]?(?P<attr>{_alternation(ATTRIBUTES)}) (?P<s>.+)$")
_AFTER_ONES = {w.split()[0] for w in [*_RELATION_INDEX, *_CLOSEST_INDEX, *NOT_NEAR_WORDS]} | {
    "that",
    "which",
    "who",
    "from",
    "between",
    "with",
}
_ONES = re.compile(rf"\b(?P<one>ones?)(?=$| (?:{_alternation(_AFTER_ONES)})\b)")
_PART = re.compile(rf"^(?:{_alternation(PART_WORDS)}) (?P<x>.+)$")
_COVERED = re.compile(rf"^(?P<s>.+?) {_LINK}(?P<w>{_alternation(COVER_WORDS)}) (?P<a>.+)$")
_PART_PLACED = re.compile(rf"^(?P<s>.+?) {_LINK}(?P<w>{_alternation(PART_PLACES)}) (?P<a>.+)$")
_COVERS_CLAUSE = re.compile(
    r"^(?P<s>.+?) (?:(?:that|which) )?(?P<a>(?:the|a|an|this|these|those|its|their) .+?) "
    r"(?P<neg>does not |doesn't |do not |don't )?(?:covers?|hides?)$"
)
_OVERLAP = re.compile(rf"^(?:the )?(?:{_alternation(OVERLAP_WORDS)}) (?:of|between) (?P<s>.+?) and (?P<a>.+)$")
_OTHER_OPERATION: dict[MaskOperation, MaskOperation] = {"difference": "intersection", "intersection": "difference"}

# --- reading a query -----------------------------------------------------------------------------------------


def parse_query(query: str) -> Plan:
    """The plan for ``query``. Raises ``NotUnderstood`` (saying why) when the query fits no known shape."""
    text = normalize(query)
    if not text:
        raise NotUnderstood("nothing is left of it once filler words are removed")
    if len(text.split()) > MAX_QUERY_WORDS:
        raise NotUnderstood(f"it has more than {MAX_QUERY_WORDS} words")
    for pattern in COUNTING:
        if match := re.match(pattern, text):
            return Plan(target=parse_target(_clean_body(match["body"])), count=True)
    return Plan(target=parse_target(_finding_body(text)), count=False)


def normalize(query: str) -> str:
    """Lower case, quotes and sentence punctuation removed, "left-most" -> "leftmost", filler removed."""
    text = query.lower().replace("’", "'").replace("`", "'")
    text = re.sub(r"[\"“”()\[\]{}]", " ", text)
    text = re.sub(r"[?!.;:]+(?=\s|$)", " ", text)
    text = re.sub(r"\b(left|right|top|bottom|upper|lower)-most\b", r"\1most", text)
    text = re.sub(r"\b(left|right)-hand\b", r"\1 hand", text)
    text = re.sub(r"\s*,\s*", ", ", text)
    return _clean_body(text)


def _clean_body(text: str) -> str:
    """Filler and trailing "are there" / "can you see" removed until nothing changes; spaces collapsed."""
    previous = None
    while text != previous:
        previous = text
        for pattern in (*_TRAILING, *_FILLER):
            text = pattern.sub(" ", text)
            text = " ".join(text.split()).strip(" ,")
    return text


def _finding_body(text: str) -> str:
    """The query with command words ("show me", "where are", "is there a") taken off its front."""
    previous = None
    while text != previous:
        previous = text
        text = _COMMAND.sub("", text).strip(" ,")
        for pattern in FINDING:
            if match := re.match(pattern, text):
                text = match["body"].strip(" ,")
                break
    if match := _IS_SUPERLATIVE.match(text):  # "cup is the largest" (from "which cup is the largest")
        text = f"{match['sup']} {match['x']}"
    if not text:
        raise NotUnderstood("it names no object to look for")
    return text


def parse_target(text: str) -> Target:
    """The target a noun expression names (see the module docstring for the shapes, in the order tried)."""
    text = _strip_determiners(text)
    if not text:
        raise NotUnderstood("it names no object to look for")
    for reader in (_except, _part, _between, _ranked, _closest_first, _related, _listed):
        target = reader(text)
        if target is not None:
            return target
    return Objects(_phrase(text))


def _strip_determiners(text: str) -> str:
    text = _DETERMINER.sub("", text.strip(" ,") + " ").strip(" ,")
    return re.sub(r"^(?:is|are) ", "", text)


def _except(text: str) -> Target | None:
    """ "X except Y", "X that are not red", "non-red X": the objects of X that are not also objects of Y."""
    if match := _EXCEPT.match(text):
        subject = parse_target(match["s"])
        return Except(subject, parse_target(_anaphora(match["r"], subject)), text)
    match = _NOT_ATTRIBUTE.match(text) or _NON_ATTRIBUTE.match(text)
    if match is None:
        return None
    subject, attribute = parse_target(match["s"]), match["attr"]
    said = f"{match['s']} not {attribute}"  # the query's words, less "that are"
    return Except(subject, Objects(f"{attribute} {_subject_phrase(subject)}"), said)


def _anaphora(text: str, subject: Target) -> str:
    """ "the red ones" -> "the red cups": "one" / "ones" stand for the subject's noun."""
    match = _ONES.search(text)
    if match is None:
        return text
    noun = _subject_phrase(subject).split()[-1]
    noun = plural(singular(noun)) if match["one"] == "ones" else singular(noun)
    return text[: match.start()] + noun + text[match.end() :]


def _subject_phrase(target: Target) -> str:
    """The noun phrase of the objects a target picks from: "cups" for "the leftmost cups on the table"."""
    while not isinstance(target, Objects):
        if isinstance(target, Union):
            raise NotUnderstood(f"{target.text!r} names several kinds of object: say which 'ones' or 'not' means")
        target = target.subject
    return target.phrase


def _part(text: str) -> Target | None:
    """A new mask: "the part of X not covered by Y", "X without Y", "X covered by Y", "the overlap of X and Y"."""
    if match := _OVERLAP.match(text):
        return Part(parse_target(match["s"]), "intersection", parse_target(match["a"]), text)
    if match := _PART.match(text):
        body = _strip_determiners(match["x"])
        return _placed(body, text, _PART_PLACED, PART_PLACES) or _covers(body, text) or parse_target(body)
    return _placed(text, text, _COVERED, COVER_WORDS) or _covers(text, text)


def _placed(text: str, said: str, pattern: re.Pattern[str], words: dict[str, MaskOperation]) -> Part | None:
    match = pattern.match(text)
    if match is None or (match["w"] == "in" and _strip_determiners(match["a"]) in COLOURS):
        return None
    operation = words[match["w"]]
    if _negated(match):
        operation = _OTHER_OPERATION[operation]
    return Part(parse_target(match["s"]), operation, parse_target(match["a"]), said)


def _covers(text: str, said: str) -> Part | None:
    """ "X that the cloth (does not) cover(s)"."""
    match = _COVERS_CLAUSE.match(text)
    if match is None:
        return None
    operation: MaskOperation = "difference" if match["neg"] else "intersection"
    return Part(parse_target(match["s"]), operation, parse_target(match["a"]), said)


def _between(text: str) -> Target | None:
    match = _BETWEEN.match(text)
    if match is None:
        return None
    if _negated(match):
        raise NotUnderstood("'not between' is not supported")
    rest = _strip_determiners(match["rest"])
    first, _, second = rest.partition(" and ")
    if not second:  # "between the two plates": both sides from one phrase
        second = first
    subject = parse_target(match["s"])
    return Between(subject, parse_target(first), parse_target(second), f"{match['s']} between {match['rest']}")


def _negated(match: re.Match[str]) -> bool:
    return bool(match["neg"]) or (match["copula"] or "").endswith(("n't", "not"))


def _ranked(text: str) -> Target | None:
    if match := _SIDE_MOST.match(text):
        return Ranked(parse_target(match["x"]), SIDES[match["side"]], 1, text)
    if match := _SIDE_RANK.match(text):
        ordering = SIDES[match["side"]]
        reverse = bool(match["rev"]) or (match["last"] is not None and match["prep"] == "from")
        return Ranked(parse_target(match["x"]), OPPOSITE[ordering] if reverse else ordering, _k(match), text)
    if match := _SUPERLATIVE.match(text):
        ordering = SUPERLATIVES[match["sup"]]
        return Ranked(parse_target(match["x"]), OPPOSITE[ordering] if match["rev"] else ordering, _k(match), text)
    return None


def _k(match: re.Match[str]) -> int:
    word = match["ord"]
    if word is None:
        return 1
    k = ORDINALS.get(word) or int(re.sub(r"\D", "", word))
    if k < 1:
        raise NotUnderstood(f"the ordinal {word!r} must be 1 or more")
    return k


def _closest_first(text: str) -> Target | None:
    """ "the closest cup to the laptop" (superlative before the noun)."""
    match = _CLOSEST_FIRST.match(text)
    if match is None:
        return None
    farthest = match["w"] in ("farthest", "furthest")
    return Closest(parse_target(match["s"]), parse_target(match["a"]), farthest, text)


def _related(text: str) -> Target | None:
    match = _RELATED.match(text)
    if match is None:
        return None
    word = match["rel"]
    if word == "in" and _strip_determiners(match["a"]) in COLOURS:
        return None
    negate = _negated(match)
    subject, anchor = parse_target(match["s"]), parse_target(match["a"])
    said = f"{match['s']} {'not ' if negate else ''}{word} {match['a']}"  # the query's words, less "that are"
    if word in _CLOSEST_INDEX:
        if negate:
            raise NotUnderstood(f"'not {word}' is not supported")
        return Closest(subject, anchor, _CLOSEST_INDEX[word], said)
    if word in NOT_NEAR_WORDS:
        return Related(subject, "next_to", anchor, not negate, said)
    return Related(subject, _RELATION_INDEX[word], anchor, negate, said)


def _listed(text: str) -> Target | None:
    parts = [p for p in _LIST_SEP.split(text) if p.strip()]
    if len(parts) < 2:
        return None
    return Union(tuple(parse_target(p) for p in parts), text)


def _phrase(text: str) -> str:
    """``text`` as a noun phrase for SAM 3, or ``NotUnderstood`` when it does not read as one."""
    if not _PHRASE.fullmatch(text):
        raise NotUnderstood(f"{text!r} does not read as a short noun phrase (at most six words)")
    words = text.split()
    if words[0] in OTHER_REQUESTS:
        raise NotUnderstood(f"{words[0]!r} asks for something other than finding objects in the image")
    stray = [w for w in words if w in NOT_NOUNS] + [w for w in (words[0], words[-1]) if w in EDGE_WORDS]
    if stray:
        raise NotUnderstood(f"{text!r} does not read as a noun phrase (it has {stray[0]!r} in it)")
    return text
