"""Builders of the ordering kinds: extreme ("the leftmost cup"), ordinal ("the 2nd cup from the right",
"the third largest ball", "the last cup on the right") and ordinal_range (k beyond the number of objects)."""

from __future__ import annotations

import random

from sam3_agent.evaluation.answers import wording
from sam3_agent.evaluation.answers.draft import Draft, check_distinct, clutter, maybe_duplicates, other_phrases
from sam3_agent.evaluation.answers.layout import Layout
from sam3_agent.evaluation.answers.truth import ORDERINGS, Ambiguous, Facts, clear_ordered, ordered
from sam3_agent.evaluation.answers.vocab import subject_phrase

SIZE_STEP = 1.22
"""Side ratio between consecutive sizes: areas differ by ~49%, far beyond the 20% a clear order needs."""


def _sizes(rng: random.Random, layout: Layout, phrase: str, n: int, tie_at: int | None) -> list[tuple[int, int]]:
    """``n`` sizes of distinct areas, shuffled; with ``tie_at`` = k the k-th and (k+1)-th largest are equal."""
    w, h = layout.size(phrase)
    steps = [0.65 * SIZE_STEP**i for i in range(n)]
    sizes = [(max(6, round(w * s)), max(6, round(h * s))) for s in steps]
    if tie_at is not None:
        rank = n - 1 - tie_at  # sizes ascend: the k-th largest sits at n - k
        sizes[rank] = sizes[rank + 1]
    rng.shuffle(sizes)
    return sizes


def _subjects(rng: random.Random, ordering: str, n: int, *, tie_at: int | None = None) -> tuple[Layout, str]:
    layout = Layout(rng)
    phrase = subject_phrase(rng)
    if ordering in ("largest", "smallest"):
        for size in _sizes(rng, layout, phrase, n, tie_at):
            layout.drop(phrase, size=size)
        _split_tied_scores(layout, phrase)
    else:
        for _ in range(n):
            layout.drop(phrase)
    clutter(layout, other_phrases(rng, [phrase], rng.randint(1, 3)))
    return layout, phrase


def _split_tied_scores(layout: Layout, phrase: str) -> None:
    """Objects of equal size get scores >= 0.03 apart, so the tie-break by score is clear."""
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, obj in enumerate(layout.objects):
        if obj.phrase == phrase:
            by_size.setdefault((obj.box[2] - obj.box[0], obj.box[3] - obj.box[1]), []).append(i)
    for group in by_size.values():
        for rank, i in enumerate(group[1:], start=1):
            first = layout.objects[group[0]]
            score = round(max(0.6, first.score - 0.03 * rank) if first.score > 0.75 else first.score + 0.03 * rank, 3)
            layout.objects[i] = type(first)(phrase, layout.objects[i].box, first.shape, first.color, score)


def _tie(rng: random.Random, ordering: str, k: int, n: int) -> int | None:
    """Where to put a deliberate size tie (k-th and next share an area) a quarter of the time."""
    if ordering not in ("largest", "smallest") or rng.random() > 0.25:
        return None
    rank = k if ordering == "largest" else n - k  # k-th largest / smallest, counted as largest
    return rank if 1 <= rank < n else None


def build_extreme(rng: random.Random) -> Draft:
    ordering = rng.choice(ORDERINGS)
    n = rng.randint(2, 5)
    tie = _tie(rng, ordering, 1, n)
    layout, phrase = _subjects(rng, ordering, n, tie_at=tie)
    facts = Facts(layout.scene())
    ranked = clear_ordered(facts, check_distinct(facts, phrase), ordering, ties=tie is not None)
    query = wording.extreme_query(rng, phrase, ordering)
    return Draft(facts.scene, query, frozenset(ranked[:1]), duplicates=maybe_duplicates(rng, [phrase], 0.3))


def build_ordinal(rng: random.Random) -> Draft:
    ordering = rng.choice((*ORDERINGS, "leftmost", "rightmost"))
    n = rng.randint(3, 5)
    k = rng.randint(1 if ordering in wording.SIDES else 2, n)  # not "the 1st largest"
    tie = _tie(rng, ordering, k, n)
    layout, phrase = _subjects(rng, ordering, n, tie_at=tie)
    facts = Facts(layout.scene())
    ranked = clear_ordered(facts, check_distinct(facts, phrase), ordering, ties=tie is not None)
    if ordering in ("leftmost", "rightmost") and rng.random() < 0.2:
        query = wording.last_query(rng, phrase)  # the last one on the right / from the left: the rightmost
        pick = ordered(facts, ranked, "rightmost")[0]
    elif ordering == "leftmost" and k == 1 and rng.random() < 0.5:
        query, pick = wording.ordinal_query(rng, phrase, ordering, 1), ranked[0]
    else:
        query, pick = wording.ordinal_query(rng, phrase, ordering, k), ranked[k - 1]
    return Draft(facts.scene, query, frozenset({pick}), duplicates=maybe_duplicates(rng, [phrase], 0.3))


def build_ordinal_range(rng: random.Random) -> Draft:
    """ "the third cup from the left" with two cups (and more objects of other phrases): no_match."""
    ordering = rng.choice(ORDERINGS)
    n = rng.randint(1, 3)
    k = min(5, n + rng.randint(1, 2))
    layout, phrase = _subjects(rng, ordering, n)
    facts = Facts(layout.scene())
    if len(facts.scene.objects) < k:
        raise Ambiguous("fewer objects in all than k")
    check_distinct(facts, phrase)
    query = wording.ordinal_query(rng, phrase, ordering, k)
    return Draft(facts.scene, query, frozenset(), status="no_match", duplicates=maybe_duplicates(rng, [phrase], 0.3))


BUILDERS = {"extreme": build_extreme, "ordinal": build_ordinal, "ordinal_range": build_ordinal_range}
