"""Builders of the set-logic kinds: ``except`` (objects of a noun less those of one colour: "all the cups except
the red ones", "the cups that are not red") and ``not_covered`` (a surface's pixels less those of the things
lying on it: "the part of the table not covered by the cloth"; the answer is one mask no scene object has,
computed here with numpy from the true masks)."""

from __future__ import annotations

import random

import numpy as np

from sam3_agent.evaluation.answers import wording
from sam3_agent.evaluation.answers.draft import Draft, check_distinct, clutter, maybe_duplicates, other_phrases
from sam3_agent.evaluation.answers.layout import Layout
from sam3_agent.evaluation.answers.truth import Ambiguous, Facts
from sam3_agent.evaluation.answers.vocab import ATTRIBUTE_NOUNS, COLORS, COVERS, SURFACES
from sam3_agent.masks import IntBox, rle_encode

MIN_COVERED = 0.08
"""Each cover hides at least this share of its own pixels' worth of the surface, and the surface keeps at least
this share of itself uncovered: no cover just grazes the surface, none swallows it."""


def _colour_groups(rng: random.Random, layout: Layout, noun: str) -> tuple[str, dict[str, int]]:
    """Objects of ``noun`` in 2-3 colours (1-2 of each; with probability 0.1 only the removed colour):
    returns the colour taken out and how many objects of each colour phrase there are."""
    colours = rng.sample(sorted(COLORS), rng.randint(2, 3))
    removed = colours[0]
    groups = {f"{removed} {noun}": rng.randint(1, 2)}
    if rng.random() >= 0.1:
        groups |= {f"{c} {noun}": rng.randint(1, 2) for c in colours[1:]}
    for phrase, n in groups.items():
        for _ in range(n):
            layout.drop(phrase)
    return removed, groups


def build_except(rng: random.Random) -> Draft:
    """ "all the cups except the red ones": the cups (found by their noun) that are not red."""
    noun = rng.choice(ATTRIBUTE_NOUNS)
    layout = Layout(rng)
    removed, groups = _colour_groups(rng, layout, noun)
    taken = list(groups)
    if rng.random() < 0.3:  # something else of the removed colour, which "the red ones" must not touch
        taken.append(f"{removed} {rng.choice([n for n in ATTRIBUTE_NOUNS if n != noun])}")
        layout.drop(taken[-1])
    clutter(layout, other_phrases(rng, taken, rng.randint(0, 2)))
    facts = Facts(layout.scene())
    kept = {i for phrase in groups if not phrase.startswith(f"{removed} ") for i in check_distinct(facts, phrase)}
    n_removed = len(check_distinct(facts, f"{removed} {noun}"))
    counting = rng.random() < 0.2
    query = wording.except_query(rng, noun, removed, n_removed, counting=counting)
    status = "answered" if kept or counting else "no_match"
    return Draft(
        facts.scene,
        query,
        frozenset(kept),
        count=len(kept) if counting else None,
        status=status,
        duplicates=maybe_duplicates(rng, groups, 0.2),
        head_noun=True,
    )


def _cover_spots(rng: random.Random, surface: IntBox, size: tuple[int, int]) -> list[IntBox]:
    """Boxes of ``size`` centred over the surface's box, reaching past its edges at times."""
    x0, y0, x1, y1 = surface
    w, h = size
    spots = []
    for _ in range(80):
        cx, cy = rng.uniform(x0 + w / 4, x1 - w / 4), rng.uniform(y0, y1)
        bx, by = round(cx - w / 2), round(cy - h / 2)
        spots.append((bx, by, bx + w, by + h))
    return spots


def _uncovered(facts: Facts, surface: int, covers: list[int]) -> np.ndarray:
    """The surface's mask less every cover's; ``Ambiguous`` unless each cover clearly takes a part of it."""
    mask = facts.scene.mask(surface).copy()
    for c in covers:
        hidden = int((mask & facts.scene.mask(c)).sum())
        if hidden < MIN_COVERED * facts.shape(c).area:
            raise Ambiguous("a cover hardly overlaps the surface")
        mask &= ~facts.scene.mask(c)
    if mask.sum() < MIN_COVERED * facts.shape(surface).area:
        raise Ambiguous("the covers hide almost all of the surface")
    return mask


def build_not_covered(rng: random.Random) -> Draft:
    """ "the part of the table not covered by the cloth": one new mask, the table's pixels less the cloth's."""
    surface_noun, cover = rng.choice(SURFACES), rng.choice(COVERS)
    layout = Layout(rng)
    surface = layout.drop(surface_noun, (10, 30, layout.width - 10, layout.height - 30))
    n_covers = rng.choice((1, 1, 2))
    for _ in range(n_covers):
        size = layout.size(cover)
        layout.try_box(cover, _cover_spots(rng, layout.objects[surface].box, size), touching=[surface])
    clutter(layout, other_phrases(rng, [surface_noun, cover], rng.randint(0, 2)))
    facts = Facts(layout.scene())
    (table,) = check_distinct(facts, surface_noun)
    mask = _uncovered(facts, table, check_distinct(facts, cover))
    query = wording.not_covered_query(rng, surface_noun, cover, n_covers)
    expected = frozenset({len(facts.scene.objects)})
    dups = maybe_duplicates(rng, [surface_noun, cover], 0.15)
    return Draft(facts.scene, query, expected, duplicates=dups, masks=(rle_encode(mask),))


BUILDERS = {"except": build_except, "not_covered": build_not_covered}
