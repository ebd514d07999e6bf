"""How the suite words its queries: each function picks one of many phrasings at random, so a planner that
only knows one template fails. Phrases come in as singular noun phrases ("red cup"); plurals, articles,
politeness ("please", "could you", "for me", "in the image"), capitals and end marks are added here.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from sam3_agent.agent.planner.words import plural
from sam3_agent.evaluation.answers.vocab import article

SEGMENT_VERBS = ("segment", "find", "show", "show me", "highlight", "locate", "detect", "mark", "select", "outline")
PICK_VERBS = ("segment", "find", "show me", "highlight", "locate", "point out", "select")
RELATION_WORDS: dict[str, tuple[str, ...]] = {
    "left_of": ("left of", "to the left of", "on the left side of"),
    "right_of": ("right of", "to the right of", "on the right side of"),
    "above": ("above", "higher than"),
    "below": ("below", "lower than"),
    "on": ("on", "on top of", "sitting on"),
    "under": ("under", "beneath", "underneath"),
    "inside": ("in", "inside", "within"),
    "next_to": ("next to", "beside", "near", "close to"),
}
EXTREME_WORDS: dict[str, tuple[str, ...]] = {
    "leftmost": ("the leftmost {s}", "the left-most {s}", "the {s} furthest to the left", "the {s} on the far left"),
    "rightmost": (
        "the rightmost {s}",
        "the right-most {s}",
        "the {s} furthest to the right",
        "the {s} on the far right",
    ),
    "topmost": ("the topmost {s}", "the top-most {s}", "the uppermost {s}", "the highest {s}"),
    "bottommost": ("the bottommost {s}", "the bottom-most {s}", "the lowest {s}"),
    "largest": ("the largest {s}", "the biggest {s}"),
    "smallest": ("the smallest {s}", "the tiniest {s}"),
}
ORDINALS = {1: ("first", "1st"), 2: ("second", "2nd"), 3: ("third", "3rd"), 4: ("fourth", "4th"), 5: ("fifth", "5th")}
SIZE_WORDS = {"largest": ("largest", "biggest"), "smallest": ("smallest",)}
SIDES = {"leftmost": "left", "rightmost": "right", "topmost": "top", "bottommost": "bottom"}
_CONTAINS = {  # (negated, singular subject) -> words
    (False, False): ("containing", "that contain", "which contain"),
    (False, True): ("containing", "that contains"),
    (True, False): ("not containing", "that do not contain", "that don't contain"),
    (True, True): ("not containing", "that does not contain", "that doesn't contain"),
}
_PREFIXES = ("", "", "", "please ", "could you ", "can you ", "could you please ", "would you ")
_SUFFIXES = ("", "", "", " for me", " in the image", " in this image", " in the picture", " please")


def _finish(rng: random.Random, text: str, *, question: bool) -> str:
    """A capital first letter (sometimes) and an end mark: "?" for questions, "." or nothing otherwise."""
    text = text[0].upper() + text[1:] if rng.random() < 0.5 else text
    end = rng.choice(("?", "?", "")) if question else rng.choice((".", "", ""))
    return text + end


def command(rng: random.Random, verbs: Sequence[str], target: str) -> str:
    """ "find the cups", "could you highlight the cups for me?", or just the noun phrase."""
    verb = rng.choice(verbs)
    prefix, suffix = rng.choice(_PREFIXES), rng.choice(_SUFFIXES)
    if (prefix.startswith("please") and suffix == " please") or (verb.endswith(" me") and suffix == " for me"):
        suffix = ""
    return _finish(rng, f"{prefix}{verb} {target}{suffix}", question=prefix.strip() not in ("", "please"))


def bare_or_command(rng: random.Random, target: str, verbs: Sequence[str] = PICK_VERBS) -> str:
    """The noun phrase alone (a third of the time) or inside a command."""
    if rng.random() < 1 / 3:
        return _finish(rng, target, question=False)
    return command(rng, verbs, target)


def segment_query(rng: random.Random, phrase: str, n: int) -> str:
    """ "segment all the cups", "where are the cups?", "find every cup", "detect the laptop" (n == 1)."""
    pl = plural(phrase)
    if n == 1 and rng.random() < 0.5:
        return command(rng, SEGMENT_VERBS, f"the {phrase}")
    if rng.random() < 0.2:
        return _finish(rng, rng.choice((f"where are the {pl}", f"where are all the {pl}")), question=True)
    target = rng.choice((f"all the {pl}", f"all {pl}", f"every {phrase}", f"the {pl}", pl, f"each {phrase}"))
    return command(rng, SEGMENT_VERBS, target)


def conjunction_query(rng: random.Random, phrases: Sequence[str]) -> str:
    """ "find the cups and the plates", "segment cups, plates and bowls"."""
    the = rng.random() < 0.5
    names = [f"the {plural(p)}" if the else plural(p) for p in phrases]
    joined = (
        " and ".join(names) if len(names) == 2 else ", ".join(names[:-1]) + rng.choice((" and ", ", and ")) + names[-1]
    )
    if rng.random() < 0.3:
        joined = "all " + joined if not the else "all of " + joined
    return command(rng, SEGMENT_VERBS, joined)


def anchor_words(rng: random.Random, phrase: str, n: int) -> str:
    """ "the laptop" for one anchor object; "the laptops" or "a laptop" for several."""
    if n == 1:
        return f"the {phrase}"
    return rng.choice((f"the {plural(phrase)}", article(phrase), f"any {phrase}"))


def _relation(rng: random.Random, relation: str, anchor: str, *, singular: bool, negated: bool) -> str:
    """ "left of the laptop", "that are not on the table", "containing a ball", "that don't contain a ball"."""
    if relation == "contains":
        options = _CONTAINS[(negated, singular)]
        return f"{rng.choice(options)} {anchor}"
    words = rng.choice(RELATION_WORDS[relation])
    if negated:
        be = ("that is not", "which is not") if singular else ("that are not", "which aren't", "that aren't")
        return f"{rng.choice(('not', *be))} {words} {anchor}"
    if rng.random() < 0.3:
        return f"{'that is' if singular else rng.choice(('that are', 'which are'))} {words} {anchor}"
    return f"{words} {anchor}"


def relation_query(rng: random.Random, subject: str, relation: str, anchor: str, *, negated: bool = False) -> str:
    """ "the cups left of the laptop", "which cups are on the table?", "find every box containing a ball"."""
    if not negated and relation != "contains" and rng.random() < 0.2:
        text = f"which {plural(subject)} are {rng.choice(RELATION_WORDS[relation])} {anchor}"
        return _finish(rng, text, question=True)
    if rng.random() < 0.2:
        return bare_or_command(
            rng, f"every {subject} {_relation(rng, relation, anchor, singular=True, negated=negated)}"
        )
    det = rng.choice(("the ", "the ", "all the ", ""))
    return bare_or_command(
        rng, f"{det}{plural(subject)} {_relation(rng, relation, anchor, singular=False, negated=negated)}"
    )


def count_query(rng: random.Random, phrase: str) -> str:
    """ "how many cups are there?", "count the cups", "number of cups", "tell me how many cups there are"."""
    pl = plural(phrase)
    questions = (
        f"how many {pl} are there", f"how many {pl}", f"how many {pl} can you see", f"how many {pl} do you see",
        f"how many {pl} are in the image", f"what is the number of {pl}",
    )  # fmt: skip
    commands = (
        f"count the {pl}", f"count all the {pl}", f"tell me how many {pl} there are", f"number of {pl}",
        f"count how many {pl} there are",
    )  # fmt: skip
    if rng.random() < 0.5:
        return _finish(rng, rng.choice(questions), question=True)
    text = rng.choice(commands)
    prefix = rng.choice(("", "", "please ", "can you ", "could you "))
    if text.startswith("number"):
        prefix = ""
    return _finish(rng, prefix + text, question=prefix.startswith(("can", "could")))


def count_relation_query(rng: random.Random, subject: str, relation: str, anchor: str) -> str:
    """ "how many cups are left of the laptop?", "count the balls inside the box"."""
    pl = plural(subject)
    if relation == "contains":
        forms = (f"how many {pl} contain {anchor}", f"how many {pl} are there containing {anchor}",
                 f"count the {pl} containing {anchor}", f"number of {pl} that contain {anchor}")  # fmt: skip
        text = rng.choice(forms)
        return _finish(rng, text, question=text.startswith("how"))
    words = rng.choice(RELATION_WORDS[relation])
    forms = (f"how many {pl} are {words} {anchor}", f"how many {pl} are there {words} {anchor}",
             f"count the {pl} {words} {anchor}", f"number of {pl} {words} {anchor}",
             f"tell me how many {pl} are {words} {anchor}", f"what is the number of {pl} {words} {anchor}")  # fmt: skip
    text = rng.choice(forms)
    return _finish(rng, text, question=text.startswith(("how", "what")))


def nearest_query(rng: random.Random, subject: str, anchor: str, *, farthest: bool) -> str:
    """ "the cup closest to the plate", "which ball is furthest from the box?"."""
    if farthest:
        rel = rng.choice(("farthest from", "furthest from", "farthest away from", "furthest away from"))
    else:
        rel = rng.choice(("closest to", "nearest to", "nearest", "nearest to", "closest to"))
    if rng.random() < 0.25:
        return _finish(rng, f"which {subject} is {rel} {anchor}", question=True)
    middle = rng.choice(("", "that is ", "which is "))
    return bare_or_command(rng, f"the {subject} {middle}{rel} {anchor}")


def between_query(rng: random.Random, subject: str, pair: str, n: int) -> str:
    """ "the cup between the plate and the bowl", "which ball is in between the two boxes?"."""
    rel = rng.choice(("between", "in between"))
    if n == 1 and rng.random() < 0.25:
        return _finish(rng, f"which {subject} is {rel} {pair}", question=True)
    target = f"the {subject} {rel} {pair}" if n == 1 else f"the {plural(subject)} {rel} {pair}"
    return bare_or_command(rng, target)


def extreme_query(rng: random.Random, subject: str, ordering: str) -> str:
    """ "the leftmost cup", "find the biggest apple", "the cup on the far left"."""
    return bare_or_command(rng, rng.choice(EXTREME_WORDS[ordering]).format(s=subject))


def ordinal_query(rng: random.Random, subject: str, ordering: str, k: int) -> str:
    """ "the second cup from the left", "the 3rd largest ball", "the first cup from the left"."""
    word = rng.choice(ORDINALS[k])
    if ordering in SIDES:
        target = f"the {word} {subject} from the {SIDES[ordering]}"
    else:
        target = f"the {word} {rng.choice(SIZE_WORDS[ordering])} {subject}"
    return bare_or_command(rng, target)


def last_query(rng: random.Random, subject: str) -> str:
    """The rightmost, worded as the last one: "the last cup on the right", "the last cup from the left"."""
    return bare_or_command(rng, rng.choice((f"the last {subject} on the right", f"the last {subject} from the left")))


_EXCEPT_FORMS = (
    "all the {pl} except {r}", "all {pl} except for {r}", "every {s} except {r}", "the {pl} except {r}",
    "all the {pl} but {r}", "all {pl} but not {r}", "the {pl} other than {r}", "all the {pl} excluding {r}",
    "the {pl} apart from {r}", "the {pl}, but not {r}", "the {pl} that are not {c}", "the {pl} which aren't {c}",
    "the non-{c} {pl}", "{pl} that are not {c}",
)  # fmt: skip
_EXCEPT_COUNTS = (
    "how many {pl} are not {c}", "how many {pl} aren't {c}", "count the {pl} except {r}",
    "how many {pl} other than {r} are there", "count all the {pl} but {r}", "number of {pl} that are not {c}",
)  # fmt: skip


def except_query(rng: random.Random, noun: str, colour: str, n_removed: int, *, counting: bool = False) -> str:
    """ "all the cups except the red ones", "the cups that are not red", "how many cups aren't red?"."""
    pl = plural(noun)
    if n_removed == 1:
        removed = rng.choice((f"the {colour} one", f"the {colour} {noun}", f"the {colour} ones"))
    else:
        removed = rng.choice((f"the {colour} ones", f"the {colour} {pl}", f"any {colour} {pl}"))
    words = {"pl": pl, "s": noun, "r": removed, "c": colour}
    if counting:
        text = rng.choice(_EXCEPT_COUNTS).format(**words)
        return _finish(rng, text, question=text.startswith("how"))
    if rng.random() < 0.15:
        return _finish(rng, rng.choice((f"which {pl} are not {colour}", f"which {pl} aren't {colour}")), question=True)
    return bare_or_command(rng, rng.choice(_EXCEPT_FORMS).format(**words))


_UNCOVERED_FORMS = (
    "the part of the {s} not covered by {c}", "the part of the {s} that is not covered by {c}",
    "the parts of the {s} that aren't covered by {c}", "the portion of the {s} not covered by {c}",
    "the area of the {s} not under {c}", "the part of the {s} that {c} {do} not cover",
    "the part of the {s} {c} {do}n't cover", "the {s} without {c}", "the {s} not covered by {c}",
    "the region of the {s} outside {c}", "the {s} uncovered by {c}", "the part of the {s} not hidden by {c}",
)  # fmt: skip


def not_covered_query(rng: random.Random, subject: str, cover: str, n_covers: int) -> str:
    """ "the part of the table not covered by the cloth", "the table without the towels", "what part of the
    desk is not covered by the napkin?"."""
    covers = f"the {cover}" if n_covers == 1 else rng.choice((f"the {plural(cover)}", f"the two {plural(cover)}"))
    words = {"s": subject, "c": covers, "do": "does" if n_covers == 1 else "do"}
    if rng.random() < 0.15:
        text = rng.choice(("what part of the {s} is not covered by {c}", "which part of the {s} is not hidden by {c}"))
        return _finish(rng, text.format(**words), question=True)
    return bare_or_command(rng, rng.choice(_UNCOVERED_FORMS).format(**words))
