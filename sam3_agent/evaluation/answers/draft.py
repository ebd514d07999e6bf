"""What a case builder returns, and the helpers every builder shares (distractors, near-duplicates)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sam3_agent.evaluation.answers.layout import Layout, boxes_around
from sam3_agent.evaluation.answers.truth import Ambiguous, Facts
from sam3_agent.evaluation.answers.vocab import SMALL, pick_words
from sam3_agent.schema import AnswerStatus, Rle
from sam3_agent.testing.scene import Scene

MAX_SAME_PHRASE_IOM = 0.25
"""Two objects of one phrase overlap by at most this (intersection over the smaller): clearly two objects."""


@dataclass(frozen=True)
class Draft:
    """One built case: the scene, the query, and the expected answer (scene object indices, count, status).
    ``duplicates`` and ``head_noun`` go to ``SceneSegmenter`` (near-duplicate masks per phrase; "cups" finding
    "red cup" objects). ``masks`` are expected masks that are no scene object (a difference of two objects):
    index ``len(scene.objects) + k`` in ``expected`` is ``masks[k]``."""

    scene: Scene
    query: str
    expected: frozenset[int]
    count: int | None = None
    status: AnswerStatus = "answered"
    duplicates: Mapping[str, int] = field(default_factory=dict)
    head_noun: bool = False
    masks: tuple[Rle, ...] = ()


def maybe_duplicates(rng: random.Random, phrases: Iterable[str], p: float) -> dict[str, int]:
    """With probability ``p`` per phrase, 1 or 2 near-duplicate masks for each of its objects."""
    return {phrase: rng.randint(1, 2) for phrase in phrases if rng.random() < p}


def clutter(layout: Layout, phrases: Iterable[str], near: Iterable[int] = ()) -> None:
    """Distractors: each at a random free spot or, a third of the time, touching one of ``near``."""
    near = list(near)
    for phrase in phrases:
        if near and layout.rng.random() < 1 / 3:
            target = layout.rng.choice(near)
            spots = boxes_around(layout, layout.objects[target].box, layout.size(phrase), "adjacent")
            try:
                layout.try_box(phrase, spots, touching=[target])
                continue
            except Ambiguous:
                pass
        layout.drop(phrase)


def other_phrases(rng: random.Random, taken: Iterable[str], n: int, pool: tuple[str, ...] = SMALL) -> list[str]:
    """``n`` distractor nouns whose head nouns differ from those in ``taken``."""
    return pick_words(rng, pool, n, taken)


def check_distinct(facts: Facts, phrase: str) -> list[int]:
    """The objects of ``phrase``; ``Ambiguous`` if two of them overlap so much that they could be one."""
    group = facts.group(phrase)
    for n, i in enumerate(group):
        for j in group[n + 1 :]:
            smaller = min(facts.shape(i).area, facts.shape(j).area)
            if facts.overlap(i, j) > MAX_SAME_PHRASE_IOM * smaller:
                raise Ambiguous(f"two {phrase} objects overlap too much")
    return group
