"""MaskStore: ids stable across calls, never reused, model-facing lookup errors."""

from __future__ import annotations

import numpy as np
import pytest

from sam3_agent.agent.store import MaskStore, UnknownIdsError
from sam3_agent.masks import mask_to_box, rle_encode
from sam3_agent.schema import Instance


def make(phrase: str, x: int, engine_id: int = 0) -> Instance:
    mask = np.zeros((20, 40), dtype=bool)
    mask[5:10, x : x + 4] = True
    return Instance(id=engine_id, phrase=phrase, score=0.9, box=mask_to_box(mask), rle=rle_encode(mask), area=20)


def test_ids_are_fresh_and_stable_across_calls() -> None:
    store = MaskStore()
    first = store.add([make("cup", 0, 0), make("cup", 10, 1)], source="segment_phrases")
    second = store.add([make("laptop", 20, 0)], source="segment_phrases")
    third = store.add([make("cup", 30, 0)], source="refine_with_exemplars")
    assert [i.id for i in first] == [1, 2]
    assert [i.id for i in second] == [3]
    assert [i.id for i in third] == [4]
    # earlier instances keep their ids and content after later calls
    assert store.get([1])[0] == first[0]
    assert store.get([2])[0].box == (10.0, 5.0, 14.0, 10.0)
    assert len(store) == 4
    assert store.ids() == [1, 2, 3, 4]
    assert [i.phrase for i in store.all()] == ["cup", "cup", "laptop", "cup"]
    assert store.source(4) == "refine_with_exemplars"
    assert 3 in store and 9 not in store


def test_add_copies_and_keeps_everything_but_the_id() -> None:
    store = MaskStore()
    original = make("cup", 0, engine_id=7)
    (stored,) = store.add([original], source="s")
    assert original.id == 7
    assert stored.model_dump(exclude={"id"}) == original.model_dump(exclude={"id"})


def test_by_phrase_groups_in_order_of_appearance() -> None:
    store = MaskStore()
    store.add([make("cup", 0), make("laptop", 10), make("cup", 20)], source="s")
    groups = store.by_phrase()
    assert list(groups) == ["cup", "laptop"]
    assert [i.id for i in groups["cup"]] == [1, 3]
    assert store.summary() == "3 masks: cup #1, #3; laptop #2"
    assert MaskStore().summary() == "no masks"


def test_get_keeps_order_and_drops_repeats() -> None:
    store = MaskStore()
    store.add([make("a", 0), make("b", 10), make("c", 20)], source="s")
    assert [i.id for i in store.get([3, 1, 3])] == [3, 1]
    assert store.get([]) == []


def test_unknown_ids_error_lists_unknown_and_valid() -> None:
    store = MaskStore()
    store.add([make("a", 0), make("b", 10)], source="s")
    with pytest.raises(UnknownIdsError) as info:
        store.get([2, 5, 0])
    assert info.value.unknown == (5, 0)
    assert info.value.valid == (1, 2)
    assert str(info.value) == "unknown mask id(s) 5, 0; valid ids are: 1, 2"


def test_unknown_ids_on_empty_store_points_to_segmenting_first() -> None:
    with pytest.raises(UnknownIdsError, match="store is empty: call segment_phrases first"):
        MaskStore().get([1])
