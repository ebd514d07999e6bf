"""Scoring one answer of the suite: the status, the selected instances mapped to scene objects, the count.

An instance maps to the object whose true mask it is exactly (identical RLE); store ids play no part. An
instance that is no object's true mask (a near-duplicate, a refined mask) maps to ``UNMATCHED`` and so
makes the id set wrong, and so does an object selected twice. A case's expected masks that are no scene
object (``AnswerCase.masks``: the part of a table not covered by a cloth) count as objects numbered on from
the scene's: mask k is index ``len(scene.objects) + k``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sam3_agent.evaluation.answers.generator import AnswerCase
from sam3_agent.masks import rle_encode
from sam3_agent.schema import Answer, AnswerStatus, Instance, Rle
from sam3_agent.testing.scene import Scene

UNMATCHED = -1
"""What a selected instance maps to when it is no scene object's true mask."""


class CaseResult(BaseModel):
    """How the agent did on one case. ``got_ids`` are scene object indices (``UNMATCHED`` for a mask that is
    no object's); ``problems`` names what was wrong: "status", "ids", "count" or "error"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    kind: str
    query: str
    expected_ids: list[int]
    expected_count: int | None
    expected_status: AnswerStatus
    got_ids: list[int] = Field(default_factory=list)
    got_count: int | None = None
    got_status: AnswerStatus | None = None
    passed: bool
    problems: list[str] = Field(default_factory=list)
    text: str = ""
    tools: list[str] = Field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    scene: dict[str, Any] | None = Field(default=None, description="the scene's objects, kept for failed cases")


def scene_summary(scene: Scene) -> dict[str, Any]:
    """The scene as plain data: size and, per object index, phrase, box, shape and score."""
    objects = [{"index": i, "phrase": o.phrase, "box": list(o.box), "shape": o.shape, "score": o.score}
               for i, o in enumerate(scene.objects)]  # fmt: skip
    return {"width": scene.width, "height": scene.height, "objects": objects}


def map_instances(scene: Scene, instances: Sequence[Instance], masks: Sequence[Rle] = ()) -> list[int]:
    """Scene object index of each instance (its RLE equals the object's true mask), ``len(scene.objects) + k``
    for an instance whose RLE is ``masks[k]``, else ``UNMATCHED``."""
    by_counts = {rle_encode(scene.mask(i)).counts: i for i in range(len(scene.objects))}
    by_counts.update({rle.counts: len(scene.objects) + k for k, rle in enumerate(masks)})
    size = (scene.height, scene.width)
    return [by_counts.get(inst.rle.counts, UNMATCHED) if inst.rle.size == size else UNMATCHED for inst in instances]


def _base(case: AnswerCase) -> dict[str, Any]:
    return {
        "id": case.id,
        "kind": case.kind,
        "query": case.query,
        "expected_ids": sorted(case.expected),
        "expected_count": case.count,
        "expected_status": case.status,
    }


def score_answer(case: AnswerCase, answer: Answer, seconds: float = 0.0) -> CaseResult:
    """Pass when the status is right, the selected instances are exactly the expected objects' true masks,
    and the count is right where one is expected."""
    got = map_instances(case.scene, answer.instances, case.masks)
    problems = []
    if answer.status != case.status:
        problems.append("status")
    if UNMATCHED in got or len(set(got)) != len(got) or set(got) != case.expected:
        problems.append("ids")
    if case.count is not None and answer.count != case.count:
        problems.append("count")
    return CaseResult(
        **_base(case),
        got_ids=got,
        got_count=answer.count,
        got_status=answer.status,
        passed=not problems,
        problems=problems,
        text=answer.text,
        tools=[step.tool for step in answer.trace],
        seconds=seconds,
        scene=None if not problems else scene_summary(case.scene),
    )


def error_result(case: AnswerCase, error: BaseException, seconds: float = 0.0) -> CaseResult:
    """A case whose run raised: failed, with the error kept."""
    return CaseResult(
        **_base(case),
        passed=False,
        problems=["error"],
        error=f"{type(error).__name__}: {error}",
        seconds=seconds,
        scene=scene_summary(case.scene),
    )
