"""The built-in planner's plans: what a query asks for, as a small tree of typed nodes.

A ``Plan`` is a ``Target`` (which objects) plus whether to count them. Targets nest: "how many cups are
left of the largest plate?" is ``Plan(count=True, target=Related(Objects("cups"), "left_of",
Ranked(Objects("plate"), "largest", 1)))``. ``text`` on each node is the words of the query it came from,
used to phrase the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sam3_agent.geometry import Ordering, Relation

MaskOperation = Literal["difference", "intersection"]


@dataclass(frozen=True)
class Objects:
    """Every object matching a noun phrase ("red cups")."""

    phrase: str

    @property
    def text(self) -> str:
        return self.phrase


@dataclass(frozen=True)
class Related:
    """The subjects that stand in ``relation`` to at least one anchor (to none, with ``negate``)."""

    subject: Target
    relation: Relation
    anchor: Target
    negate: bool
    text: str


@dataclass(frozen=True)
class Between:
    """The subjects lying between an object of ``first`` and one of ``second``."""

    subject: Target
    first: Target
    second: Target
    text: str


@dataclass(frozen=True)
class Closest:
    """The one subject nearest to (or, with ``farthest``, farthest from) the anchors."""

    subject: Target
    anchor: Target
    farthest: bool
    text: str


@dataclass(frozen=True)
class Ranked:
    """The k-th (1-based) subject in an ordering: ``Ranked(cups, "leftmost", 2)`` is the second from the left."""

    subject: Target
    ordering: Ordering
    k: int
    text: str


@dataclass(frozen=True)
class Union:
    """Everything any part names ("cups and plates")."""

    parts: tuple[Target, ...]
    text: str


@dataclass(frozen=True)
class Except:
    """The subjects that are not also objects of ``removed`` ("the cups except the red ones"): a difference of
    id sets, an object being removed when a mask of ``removed`` is the same object (no new mask)."""

    subject: Target
    removed: Target
    text: str


@dataclass(frozen=True)
class Part:
    """One new mask made of the subjects' pixels: those not covered by ``operand`` (``difference``: "the part
    of the table not covered by the cloth") or those it covers (``intersection``: "the part of the table
    under the cloth")."""

    subject: Target
    operation: MaskOperation
    operand: Target
    text: str


Target = Objects | Related | Between | Closest | Ranked | Union | Except | Part


@dataclass(frozen=True)
class Plan:
    """What to find (``target``) and whether the answer is a number (``count``)."""

    target: Target
    count: bool = False

    def describe(self) -> str:
        """The plan in one line, e.g. ``count(related(cups, left_of, laptop))``."""
        body = _describe(self.target)
        return f"count({body})" if self.count else f"find({body})"


def _describe(target: Target) -> str:
    match target:
        case Objects(phrase=phrase):
            return repr(phrase)
        case Related(subject=s, relation=r, anchor=a, negate=n):
            return f"{_describe(s)} {'not ' if n else ''}{r} {_describe(a)}"
        case Between(subject=s, first=f, second=g):
            return f"{_describe(s)} between {_describe(f)} and {_describe(g)}"
        case Closest(subject=s, anchor=a, farthest=far):
            return f"{'farthest' if far else 'nearest'} {_describe(s)} to {_describe(a)}"
        case Ranked(subject=s, ordering=o, k=k):
            return f"{o} #{k} of {_describe(s)}"
        case Union(parts=parts):
            return " + ".join(_describe(p) for p in parts)
        case Except(subject=s, removed=r):
            return f"{_describe(s)} except {_describe(r)}"
        case Part(subject=s, operation=o, operand=a):
            return f"{_describe(s)} {'minus' if o == 'difference' else 'intersect'} {_describe(a)}"
    raise TypeError(f"not a plan target: {target!r}")
