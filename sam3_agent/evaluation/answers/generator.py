"""The seeded case generator: ``generate_cases(n, seed)`` gives ``n`` cases, kinds in turn.

Case ``i`` of a seed is drawn from its own random source (``random.Random("answers:<seed>:<i>")``), so it is
the same whatever ``n`` is and whichever kinds are kept. A builder that draws a borderline or unplaceable
scene raises ``Ambiguous`` and draws again from the same source, so the result stays deterministic.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from sam3_agent.evaluation.answers import cases_basic, cases_orderings, cases_relations, cases_sets
from sam3_agent.evaluation.answers.draft import Draft
from sam3_agent.evaluation.answers.truth import Ambiguous
from sam3_agent.schema import AnswerStatus, Rle
from sam3_agent.testing.scene import Scene, SceneSegmenter

Builder = Callable[[random.Random], Draft]
_BUILDERS: dict[str, Builder] = {
    **cases_basic.BUILDERS,
    **cases_relations.BUILDERS,
    **cases_orderings.BUILDERS,
    **cases_sets.BUILDERS,
}
KINDS: tuple[str, ...] = (
    "segment", "segment_attr", "conjunction",
    "left_of", "right_of", "above", "below", "on", "under", "inside", "contains", "next_to",
    "nearest", "farthest", "between", "extreme", "ordinal", "count", "count_relation",
    "negation", "absent", "no_relation", "ordinal_range", "unparseable", "gibberish", "except", "not_covered",
)  # fmt: skip
"""Every query kind, in the order cases cycle through them."""
DEFAULT_CASES = 15 * len(KINDS)
MAX_DRAWS = 200


@dataclass(frozen=True)
class AnswerCase:
    """One query about one generated scene and what a right answer is: ``expected`` holds scene object
    indices (the selected instances must be exactly their true masks), ``count`` the number asked for (None
    when the query asks for none), ``status`` the answer status. ``masks`` are expected masks that are no
    scene object (index ``len(scene.objects) + k`` in ``expected`` is ``masks[k]``); ``head_noun`` makes the
    segmenter find "red cup" objects for "cups"."""

    id: str
    kind: str
    query: str
    scene: Scene = field(repr=False)
    expected: frozenset[int]
    count: int | None
    status: AnswerStatus
    duplicates: Mapping[str, int] = field(default_factory=dict)
    head_noun: bool = False
    masks: tuple[Rle, ...] = field(default=(), repr=False)

    def segmenter(self) -> SceneSegmenter:
        """The exact segmenter of the scene, with the case's near-duplicate masks."""
        return SceneSegmenter(self.scene, duplicates=self.duplicates, match_head_noun=self.head_noun)


def build_case(kind: str, index: int, seed: int = 0) -> AnswerCase:
    """Case ``index`` of ``seed``, of ``kind``.

    Raises:
        ValueError: unknown kind. RuntimeError: no clear-cut scene in ``MAX_DRAWS`` draws (a generator bug).
    """
    if kind not in _BUILDERS:
        raise ValueError(f"unknown query kind {kind!r}; expected one of {', '.join(KINDS)}")
    rng = random.Random(f"answers:{seed}:{index}")
    for _ in range(MAX_DRAWS):
        try:
            draft = _BUILDERS[kind](rng)
        except Ambiguous:
            continue
        return AnswerCase(
            id=f"{kind}-{index:04d}",
            kind=kind,
            query=draft.query,
            scene=draft.scene,
            expected=draft.expected,
            count=draft.count,
            status=draft.status,
            duplicates=dict(draft.duplicates),
            head_noun=draft.head_noun,
            masks=draft.masks,
        )
    raise RuntimeError(f"no clear-cut {kind} scene in {MAX_DRAWS} draws (case {index}, seed {seed})")


def generate_cases(n: int = DEFAULT_CASES, seed: int = 0, kinds: Collection[str] | None = None) -> list[AnswerCase]:
    """Cases 0..n-1 of ``seed`` (case i is of kind ``KINDS[i % len(KINDS)]``), keeping only ``kinds`` if given.

    Raises:
        ValueError: n < 1 or an unknown kind.
    """
    if n < 1:
        raise ValueError(f"the number of cases must be >= 1, got {n}")
    unknown = sorted(set(kinds or ()) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown query kind(s) {', '.join(unknown)}; expected some of {', '.join(KINDS)}")
    chosen = [(i, KINDS[i % len(KINDS)]) for i in range(n)]
    return [build_case(kind, i, seed) for i, kind in chosen if kinds is None or kind in kinds]
