"""Builders of the relation kinds: the nine relations, count_relation, negation, no_relation, nearest,
farthest and between. Subjects are placed where the relation clearly holds or clearly does not; the truth
is then computed from the masks (``truth.clear_related``), which also rejects anything borderline."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from sam3_agent.agent.planner.words import plural
from sam3_agent.evaluation.answers import wording
from sam3_agent.evaluation.answers.draft import Draft, check_distinct, clutter, maybe_duplicates, other_phrases
from sam3_agent.evaluation.answers.layout import Layout, boxes_around
from sam3_agent.evaluation.answers.truth import RELATIONS, Ambiguous, Facts, clear_between, clear_by_gap, clear_related
from sam3_agent.evaluation.answers.vocab import (
    CONTAINERS,
    SMALL,
    SURFACES,
    TINY,
    article,
    pick_words,
    subject_phrase,
)
from sam3_agent.masks import IntBox

POOLS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "on": (SMALL, SURFACES),
    "under": (SMALL, SURFACES),
    "inside": (TINY, CONTAINERS),
    "contains": (CONTAINERS, TINY),
}
"""(subject nouns, anchor nouns) per relation; the others relate small things to small things."""
_MISS_SPOTS = {
    "on": ("floating", "under", "adjacent", "free"),
    "under": ("on", "floating", "free"),
    "inside": ("straddle", "free"),
}
"""Where a subject the relation must not hold for goes (``free``: anywhere); ``adjacent`` may touch a side."""


@dataclass(frozen=True)
class RelationScene:
    facts: Facts
    subject: str
    anchor: str
    subjects: list[int]
    anchors: list[int]
    holding: set[int]
    duplicates: dict[str, int]


def _phrases(rng: random.Random, relation: str) -> tuple[str, str]:
    subject_pool, anchor_pool = POOLS.get(relation, (SMALL, SMALL))
    subject = subject_phrase(rng, subject_pool)
    return subject, pick_words(rng, anchor_pool, 1, [subject])[0]


def _anchor_region(layout: Layout, relation: str) -> IntBox:
    w, h = layout.width, layout.height
    if relation == "on":
        return (20, 90, w - 20, h - 10)
    if relation == "under":
        return (20, 10, w - 20, 130)
    return (w // 4, h // 4, 3 * w // 4, 3 * h // 4)


def _side_region(layout: Layout, anchor: IntBox, relation: str, holds: bool) -> IntBox:
    """Where a subject's whole box lies on the ``relation`` side of the anchor's centre (or the other side)."""
    cx, cy = (anchor[0] + anchor[2]) // 2, (anchor[1] + anchor[3]) // 2
    w, h = layout.width, layout.height
    side = (
        relation
        if holds
        else {"left_of": "right_of", "right_of": "left_of", "above": "below", "below": "above"}[relation]
    )
    band_y = (max(0, anchor[1] - 70), min(h, anchor[3] + 70))
    band_x = (max(0, anchor[0] - 90), min(w, anchor[2] + 90))
    return {
        "left_of": (0, band_y[0], cx - 4, band_y[1]),
        "right_of": (cx + 4, band_y[0], w, band_y[1]),
        "above": (band_x[0], 0, band_x[1], cy - 4),
        "below": (band_x[0], cy + 4, band_x[1], h),
    }[side]


def _place_subject(layout: Layout, phrase: str, relation: str, anchor: int, holds: bool) -> None:
    box = layout.objects[anchor].box
    if relation in ("left_of", "right_of", "above", "below"):
        layout.drop(phrase, _side_region(layout, box, relation, holds))
        return
    if relation == "next_to":
        spot = "adjacent" if holds else "free"
    elif holds:
        spot = relation
    else:
        spot = layout.rng.choice(_MISS_SPOTS[relation])
    if spot == "free":
        layout.drop(phrase)
        return
    layout.try_box(phrase, boxes_around(layout, box, layout.size(phrase), spot), touching=[anchor])


def _place_contains(layout: Layout, container: str, content: str, n_hold: int, n_not: int) -> None:
    """Containers holding a ``content`` object, and others empty or holding something else."""
    spare = pick_words(layout.rng, TINY, 1, [container, content])[0]
    for k in range(n_hold + n_not):
        index = layout.drop(container, (10, 10, layout.width - 10, layout.height - 10), gap=14)
        inside = content if k < n_hold else layout.rng.choice((None, spare))
        if inside is not None:
            spots = boxes_around(layout, layout.objects[index].box, layout.size(inside), "inside")
            layout.try_box(inside, spots, touching=[index])
    if layout.rng.random() < 0.5:
        layout.drop(content)


def relation_scene(rng: random.Random, relation: str, n_hold: int, n_not: int) -> RelationScene:
    """A scene of subjects (``n_hold`` placed to satisfy ``relation``, ``n_not`` not), anchors, distractors."""
    subject, anchor = _phrases(rng, relation)
    layout = Layout(rng)
    if relation == "contains":
        _place_contains(layout, subject, anchor, n_hold, n_not)
    else:
        anchors = [layout.drop(anchor, _anchor_region(layout, relation)) for _ in range(rng.choice((1, 1, 1, 2)))]
        for k in range(n_hold + n_not):
            _place_subject(layout, subject, relation, rng.choice(anchors), holds=k < n_hold)
    clutter(layout, other_phrases(rng, [subject, anchor], rng.randint(0, 2)))
    facts = Facts(layout.scene())
    subjects, anchors = check_distinct(facts, subject), check_distinct(facts, anchor)
    holding = clear_related(facts, subjects, relation, anchors)
    dups = maybe_duplicates(rng, [subject, anchor], 0.15)
    return RelationScene(facts, subject, anchor, subjects, anchors, holding, dups)


def _anchor_text(rng: random.Random, rs: RelationScene, relation: str) -> str:
    if relation == "contains" and len(rs.anchors) == 1 and rng.random() < 0.5:
        return article(rs.anchor)
    return wording.anchor_words(rng, rs.anchor, len(rs.anchors))


def _relation_builder(relation: str) -> Callable[[random.Random], Draft]:
    def build(rng: random.Random) -> Draft:
        rs = relation_scene(rng, relation, rng.randint(1, 3), rng.randint(1, 2))
        if not rs.holding:
            raise Ambiguous("no subject holds")
        query = wording.relation_query(rng, rs.subject, relation, _anchor_text(rng, rs, relation))
        return Draft(rs.facts.scene, query, frozenset(rs.holding), duplicates=rs.duplicates)

    build.__name__ = f"build_{relation}"
    return build


def build_count_relation(rng: random.Random) -> Draft:
    relation = rng.choice(RELATIONS)
    rs = relation_scene(rng, relation, rng.randint(1, 4), rng.randint(1, 2))
    if not rs.holding:
        raise Ambiguous("no subject holds")
    query = wording.count_relation_query(rng, rs.subject, relation, _anchor_text(rng, rs, relation))
    return Draft(rs.facts.scene, query, frozenset(rs.holding), count=len(rs.holding), duplicates=rs.duplicates)


def build_negation(rng: random.Random) -> Draft:
    relation = rng.choice(RELATIONS)
    rs = relation_scene(rng, relation, rng.randint(1, 2), rng.randint(1, 3))
    rest = set(rs.subjects) - rs.holding
    if not rs.holding or not rest:
        raise Ambiguous("a negation needs subjects on both sides")
    query = wording.relation_query(rng, rs.subject, relation, _anchor_text(rng, rs, relation), negated=True)
    return Draft(rs.facts.scene, query, frozenset(rest), duplicates=rs.duplicates)


def build_no_relation(rng: random.Random) -> Draft:
    relation = rng.choice(RELATIONS)
    rs = relation_scene(rng, relation, 0, rng.randint(1, 3))
    if rs.holding:
        raise Ambiguous("a subject holds")
    query = wording.relation_query(rng, rs.subject, relation, _anchor_text(rng, rs, relation))
    return Draft(rs.facts.scene, query, frozenset(), status="no_match", duplicates=rs.duplicates)


def _by_gap(rng: random.Random, *, farthest: bool) -> Draft:
    subject = subject_phrase(rng)
    anchor = pick_words(rng, SMALL, 1, [subject])[0]
    layout = Layout(rng)
    layout.drop(anchor)
    for _ in range(rng.randint(2, 4)):
        layout.drop(subject)
    clutter(layout, other_phrases(rng, [subject, anchor], rng.randint(0, 2)))
    facts = Facts(layout.scene())
    pick = clear_by_gap(facts, check_distinct(facts, subject), check_distinct(facts, anchor), farthest=farthest)
    query = wording.nearest_query(rng, subject, f"the {anchor}", farthest=farthest)
    return Draft(facts.scene, query, frozenset({pick}), duplicates=maybe_duplicates(rng, [subject, anchor], 0.15))


def build_nearest(rng: random.Random) -> Draft:
    return _by_gap(rng, farthest=False)


def build_farthest(rng: random.Random) -> Draft:
    return _by_gap(rng, farthest=True)


def _between_pair(rng: random.Random, layout: Layout, subject: str) -> tuple[str, str, str]:
    """Place a Y and a Z object far apart; returns (Y phrase, Z phrase, the words naming the pair)."""
    y = pick_words(rng, SMALL, 1, [subject])[0]
    z = y if rng.random() < 0.3 else pick_words(rng, SMALL, 1, [subject, y])[0]
    w, h = layout.width, layout.height
    if rng.random() < 0.6:
        layout.drop(y, (5, 40, w // 3, h - 40))
        layout.drop(z, (2 * w // 3, 40, w - 5, h - 40))
    else:
        layout.drop(y, (60, 5, w - 60, h // 3))
        layout.drop(z, (60, 2 * h // 3, w - 60, h - 5))
    pair = f"the two {plural(y)}" if y == z else f"the {y} and the {z}"
    return y, z, pair


def build_between(rng: random.Random) -> Draft:
    subject = subject_phrase(rng)
    layout = Layout(rng)
    y, z, pair = _between_pair(rng, layout, subject)
    yb, zb = layout.objects[0].box, layout.objects[1].box
    mid_x, mid_y = (yb[0] + yb[2] + zb[0] + zb[2]) / 4, (yb[1] + yb[3] + zb[1] + zb[3]) / 4
    horizontal = abs(mid_x - (yb[0] + yb[2]) / 2) > abs(mid_y - (yb[1] + yb[3]) / 2)
    sw, sh = layout.size(subject, 0.8)
    spots = []
    for _ in range(60):
        along, across = rng.uniform(-20, 20), rng.uniform(-6, 6)
        dx, dy = (along, across) if horizontal else (across, along)
        x0, y0 = round(mid_x + dx - sw / 2), round(mid_y + dy - sh / 2)
        spots.append((x0, y0, x0 + sw, y0 + sh))
    layout.try_box(subject, spots)
    for _ in range(rng.randint(1, 2)):
        layout.drop(subject)
    clutter(layout, other_phrases(rng, [subject, y, z], rng.randint(0, 2)))
    facts = Facts(layout.scene())
    subjects = check_distinct(facts, subject)
    ys, zs = facts.group(y), facts.group(z)
    holding = clear_between(facts, subjects, ys, zs)
    if not holding or holding == set(subjects):
        raise Ambiguous("between needs subjects on both sides")
    query = wording.between_query(rng, subject, pair, len(holding))
    return Draft(facts.scene, query, frozenset(holding), duplicates=maybe_duplicates(rng, [subject], 0.15))


BUILDERS = {
    **{relation: _relation_builder(relation) for relation in RELATIONS},
    "nearest": build_nearest,
    "farthest": build_farthest,
    "between": build_between,
    "count_relation": build_count_relation,
    "negation": build_negation,
    "no_relation": build_no_relation,
}
