"""Builders of the plain kinds: segment, segment_attr, conjunction, count, absent, unparseable, gibberish."""

from __future__ import annotations

import random
import string

from sam3_agent.evaluation.answers import wording
from sam3_agent.evaluation.answers.draft import Draft, check_distinct, clutter, maybe_duplicates, other_phrases
from sam3_agent.evaluation.answers.layout import Layout, boxes_around
from sam3_agent.evaluation.answers.truth import Ambiguous, Facts
from sam3_agent.evaluation.answers.vocab import (
    ABSENT_ONLY,
    ATTRIBUTE_NOUNS,
    COLORS,
    attribute_phrases,
    head,
    subject_phrase,
)

OUT_OF_SCOPE = (
    "why is the sky blue", "what is the capital of France", "tell me a joke", "what time is it",
    "how do I bake bread", "write a poem about the sea", "what is the meaning of life",
    "translate hello into French", "what will the weather be like tomorrow", "explain quantum physics",
    "how old is the universe", "who wrote Hamlet", "what is two plus two", "recommend a good movie",
)  # fmt: skip
KEYBOARD_MASH = ("asdf qwer", "qwerty uiop", "zxcv bnm", "asdfgh jkl", "lorem ipsum dolor", "hjkl hjkl", "xyzzy")


def _place_group(layout: Layout, phrase: str, n: int, *, crowd: bool = False) -> list[int]:
    """``n`` objects of ``phrase``; with ``crowd`` some touch or slightly overlap an earlier one."""
    placed: list[int] = []
    for _ in range(n):
        if crowd and placed and layout.rng.random() < 0.4:
            target = layout.rng.choice(placed)
            spots = boxes_around(layout, layout.objects[target].box, layout.size(phrase), "adjacent")
            try:
                placed.append(layout.try_box(phrase, spots, touching=[target]))
                continue
            except Ambiguous:
                pass
        placed.append(layout.drop(phrase))
    return placed


def build_segment(rng: random.Random) -> Draft:
    layout = Layout(rng)
    phrase = subject_phrase(rng)
    n = rng.randint(1, 4)
    placed = _place_group(layout, phrase, n, crowd=True)
    clutter(layout, other_phrases(rng, [phrase], rng.randint(1, 3)), near=placed)
    facts = Facts(layout.scene())
    expected = check_distinct(facts, phrase)
    query = wording.segment_query(rng, phrase, n)
    return Draft(facts.scene, query, frozenset(expected), duplicates=maybe_duplicates(rng, [phrase], 0.3))


def build_segment_attr(rng: random.Random) -> Draft:
    layout = Layout(rng)
    phrases = attribute_phrases(rng, rng.choice(ATTRIBUTE_NOUNS), rng.randint(2, 3))
    target = phrases[0]
    n = rng.randint(1, 3)
    placed = _place_group(layout, target, n)
    for other in phrases[1:]:
        placed += _place_group(layout, other, rng.randint(1, 2))
    clutter(layout, other_phrases(rng, phrases, rng.randint(0, 2)), near=placed)
    facts = Facts(layout.scene())
    expected = check_distinct(facts, target)
    query = wording.segment_query(rng, target, n)
    return Draft(facts.scene, query, frozenset(expected), duplicates=maybe_duplicates(rng, phrases, 0.25))


def build_conjunction(rng: random.Random) -> Draft:
    layout = Layout(rng)
    phrases: list[str] = []
    for _ in range(rng.choice((2, 2, 3))):
        phrases.append(subject_phrase(rng, taken=phrases))
    placed = [i for p in phrases for i in _place_group(layout, p, rng.randint(1, 3))]
    clutter(layout, other_phrases(rng, phrases, rng.randint(1, 2)), near=placed)
    facts = Facts(layout.scene())
    expected = {i for p in phrases for i in check_distinct(facts, p)}
    query = wording.conjunction_query(rng, phrases)
    return Draft(facts.scene, query, frozenset(expected), duplicates=maybe_duplicates(rng, phrases, 0.2))


def build_count(rng: random.Random) -> Draft:
    layout = Layout(rng)
    phrase = subject_phrase(rng)
    n = rng.randint(1, 7)
    placed = _place_group(layout, phrase, n, crowd=True)
    clutter(layout, other_phrases(rng, [phrase], rng.randint(1, 3)), near=placed)
    facts = Facts(layout.scene())
    expected = check_distinct(facts, phrase)
    duplicates = {phrase: rng.randint(1, 2)} if rng.random() < 0.7 else {}
    return Draft(facts.scene, wording.count_query(rng, phrase), frozenset(expected), count=n, duplicates=duplicates)


def _random_scene(rng: random.Random) -> tuple[Layout, list[str]]:
    layout = Layout(rng)
    phrases: list[str] = []
    for _ in range(rng.randint(2, 4)):
        phrases.append(subject_phrase(rng, taken=phrases))
    for phrase in phrases:
        _place_group(layout, phrase, rng.randint(1, 2))
    return layout, phrases


def _missing_phrase(rng: random.Random, present: list[str]) -> str:
    """A phrase no object has: a noun never drawn, or an unused colour of a noun drawn with colours."""
    coloured = [p for p in present if " " in p]
    if coloured and rng.random() < 0.5:
        noun = head(coloured[0])
        used = {p.split()[0] for p in present if head(p) == noun}
        return f"{rng.choice(sorted(set(COLORS) - used))} {noun}"
    return rng.choice(ABSENT_ONLY)


def build_absent(rng: random.Random) -> Draft:
    """Segment an absent phrase (no_match), count it (answered, 0), or relate to an absent anchor (no_match)."""
    layout, present = _random_scene(rng)
    missing = _missing_phrase(rng, present)
    scene = layout.scene()
    roll = rng.random()
    if roll < 0.45:
        return Draft(scene, wording.segment_query(rng, missing, 2), frozenset(), status="no_match")
    if roll < 0.85:
        return Draft(scene, wording.count_query(rng, missing), frozenset(), count=0)
    relation = rng.choice(("left_of", "right_of", "above", "below", "next_to"))
    query = wording.relation_query(rng, present[0], relation, f"the {rng.choice(ABSENT_ONLY)}")
    return Draft(scene, query, frozenset(), status="no_match")


def _gibberish(rng: random.Random) -> str:
    consonants = "".join(c for c in string.ascii_lowercase if c not in "aeiou")
    words = ["".join(rng.choice(consonants) for _ in range(rng.randint(3, 6))) for _ in range(rng.randint(2, 3))]
    return " ".join(words)


def build_unparseable(rng: random.Random) -> Draft:
    """A question or request that is not about finding objects: the planner gives up, saying why."""
    layout, _ = _random_scene(rng)
    query = rng.choice(OUT_OF_SCOPE) + rng.choice(("?", "?", ""))
    return Draft(layout.scene(), query, frozenset(), status="gave_up")


def build_gibberish(rng: random.Random) -> Draft:
    """Letters that read as a noun phrase but name nothing: searched for like any open-vocabulary phrase, they
    find nothing, so the answer is no_match (a grammar cannot tell "asdf" from an object name it lacks)."""
    layout, _ = _random_scene(rng)
    query = rng.choice(KEYBOARD_MASH) if rng.random() < 0.5 else _gibberish(rng)
    return Draft(layout.scene(), query, frozenset(), status="no_match")


BUILDERS = {
    "segment": build_segment,
    "segment_attr": build_segment_attr,
    "conjunction": build_conjunction,
    "count": build_count,
    "absent": build_absent,
    "unparseable": build_unparseable,
    "gibberish": build_gibberish,
}
