"""The mask store: every instance found while answering one query, under ids that never change.

Every segmenter answer numbers its instances 1..N across its prompts (``number_instances``), so each answer's
ids start at 1 again; the store re-numbers them from 1 in the order they arrive over the agent's whole
conversation about the query and never reuses an id (the first answer keeps the segmenter's ids), so masks
from an earlier ``segment_phrases`` call stay addressable after later calls (which is what lets the agent
compose "the cup left of the laptop").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sam3_agent.schema import Instance


class UnknownIdsError(LookupError):
    """Some requested mask ids are not in the store. Model-facing: the message lists the valid ids."""

    def __init__(self, unknown: Sequence[int], valid: Sequence[int]) -> None:
        self.unknown = tuple(unknown)
        self.valid = tuple(valid)
        shown = ", ".join(str(i) for i in self.unknown)
        if self.valid:
            known = ", ".join(str(i) for i in self.valid)
            hint = f"valid ids are: {known}"
        else:
            hint = "the store is empty: call segment_phrases first"
        super().__init__(f"unknown mask id(s) {shown}; {hint}")


class MaskStore:
    """Instances of one query, keyed by store ids 1, 2, 3, ... (never reused)."""

    def __init__(self) -> None:
        self._items: dict[int, Instance] = {}
        self._sources: dict[int, str] = {}
        self._next_id = 1

    def add(self, instances: Iterable[Instance], *, source: str) -> list[Instance]:
        """Store ``instances`` under fresh ids (via ``model_copy``); return the re-numbered copies in order.

        ``source`` says where they came from (e.g. ``"segment_phrases"``); see :meth:`source`.
        """
        added: list[Instance] = []
        for inst in instances:
            stored = inst.model_copy(update={"id": self._next_id})
            self._items[stored.id] = stored
            self._sources[stored.id] = source
            self._next_id += 1
            added.append(stored)
        return added

    def get(self, ids: Iterable[int]) -> list[Instance]:
        """The instances with these ids, in the order asked, repeated ids once.

        Raises:
            UnknownIdsError: some ids are not in the store (the message lists them and the valid ids).
        """
        wanted = list(dict.fromkeys(ids))
        unknown = [i for i in wanted if i not in self._items]
        if unknown:
            raise UnknownIdsError(unknown, self.ids())
        return [self._items[i] for i in wanted]

    def source(self, instance_id: int) -> str:
        """Where the instance came from (the ``source`` given to :meth:`add`)."""
        if instance_id not in self._sources:
            raise UnknownIdsError([instance_id], self.ids())
        return self._sources[instance_id]

    def ids(self) -> list[int]:
        """All ids, ascending."""
        return list(self._items)

    def all(self) -> list[Instance]:
        """All instances, by ascending id."""
        return list(self._items.values())

    def by_phrase(self) -> dict[str, list[Instance]]:
        """Instances grouped by phrase (phrases in order of first appearance, instances by ascending id)."""
        groups: dict[str, list[Instance]] = {}
        for inst in self._items.values():
            groups.setdefault(inst.phrase, []).append(inst)
        return groups

    def summary(self) -> str:
        """One line for people and the model, e.g. ``"3 masks: cup #1, #2; laptop #3"``."""
        if not self._items:
            return "no masks"
        parts = [
            f"{phrase} " + ", ".join(f"#{inst.id}" for inst in group) for phrase, group in self.by_phrase().items()
        ]
        noun = "mask" if len(self) == 1 else "masks"
        return f"{len(self)} {noun}: " + "; ".join(parts)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, instance_id: object) -> bool:
        return instance_id in self._items
