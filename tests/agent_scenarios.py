"""Agent scenarios shared by the in-process tests (``test_agent.py``) and the HTTP tests (``test_agent_http.py``).

Each scenario is a synthetic scene with a known answer, a query, the model's scripted turns, and what the
run must produce: status, selected ids, count, the trace (tool, ok, a phrase its result must contain) and
the segmenter calls (the prompt texts of each call, so batching is checked too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sam3_agent.agent.messages import AssistantMessage
from sam3_agent.agent.text_protocol import INVALID_TOOL
from sam3_agent.masks import mask_iou, rle_encode
from sam3_agent.schema import Answer, Instance, Prompt, Thresholds
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter
from sam3_agent.testing.turns import text_turn, tool_call_turn

RED, BROWN, GREEN, GREY = (200, 40, 40), (120, 80, 40), (60, 160, 60), (90, 90, 110)


class RecordingSegmenter:
    """Wraps a ``SceneSegmenter``: logs the prompts of every call, and can hide objects from text alone.

    ``hidden_from_text``: scene indices a text-only prompt does not find (SAM 3 missing an object from the
    phrase); prompts with exemplar boxes still find them, which is what exemplar refinement is for.
    """

    def __init__(self, inner: SceneSegmenter, hidden_from_text: Sequence[int] = ()) -> None:
        self.inner = inner
        self.calls: list[list[Prompt]] = []
        self._hidden = [rle_encode(inner.scene.mask(i)) for i in hidden_from_text]

    def segment(
        self, image: object, prompts: Sequence[Prompt], thresholds: Thresholds | None = None
    ) -> list[list[Instance]]:
        self.calls.append(list(prompts))
        results = self.inner.segment(image, prompts, thresholds)  # type: ignore[arg-type]
        return [self._hide(found) if not p.boxes else found for p, found in zip(prompts, results, strict=True)]

    def _hide(self, found: list[Instance]) -> list[Instance]:
        if not self._hidden or not found:
            return found
        overlap = mask_iou([inst.rle for inst in found], self._hidden)
        kept = [inst for inst, row in zip(found, overlap, strict=True) if row.max() <= 0.5]
        return [inst.model_copy(update={"id": n}) for n, inst in enumerate(kept)]

    @property
    def phrases_per_call(self) -> list[tuple[str | None, ...]]:
        return [tuple(p.text for p in call) for call in self.calls]


@dataclass(frozen=True)
class Expected:
    """One trace step: the tool, whether it succeeded, and a phrase its result text must contain."""

    tool: str
    ok: bool = True
    says: str = ""


@dataclass(frozen=True)
class Scenario:
    name: str
    scene: Scene
    query: str
    turns: tuple[AssistantMessage, ...]
    status: str
    selected: tuple[int, ...]
    count: int | None
    steps: tuple[Expected, ...]
    segment_calls: tuple[tuple[str | None, ...], ...]
    answer_says: str = ""
    n_instances: int | None = None
    duplicates: Mapping[str, int] | None = None
    hidden_from_text: tuple[int, ...] = ()
    max_turns: int = 12
    max_images: int = 3
    images_per_request: tuple[int, ...] | None = None
    removed_in_last_request: tuple[str, ...] = field(default=())

    def segmenter(self) -> RecordingSegmenter:
        return RecordingSegmenter(SceneSegmenter(self.scene, duplicates=self.duplicates), self.hidden_from_text)


def check(scenario: Scenario, answer: Answer, segmenter: RecordingSegmenter) -> None:
    """The assertions every scenario makes, whatever the transport."""
    assert answer.status == scenario.status, answer.text
    assert tuple(answer.selected_ids) == scenario.selected
    assert answer.count == scenario.count
    assert scenario.answer_says in answer.text
    assert answer.query == scenario.query
    assert answer.image_size == (scenario.scene.height, scenario.scene.width)
    got = [(s.tool, s.ok) for s in answer.trace]
    assert got == [(e.tool, e.ok) for e in scenario.steps], [s.summary for s in answer.trace]
    for step, expected in zip(answer.trace, scenario.steps, strict=True):
        assert expected.says in step.summary, (expected, step.summary)
        assert step.summary.startswith("Error:") == (not expected.ok)
        assert step.seconds >= 0
    assert [s.index for s in answer.trace] == list(range(len(answer.trace)))
    if scenario.status == "answered":
        assert answer.trace[-1].instance_ids == scenario.selected
    # the segmenter was called once per segment / refine step, with all phrases of the step batched
    assert segmenter.phrases_per_call == [tuple(c) for c in scenario.segment_calls]
    assert segmenter.inner.calls == len(scenario.segment_calls)
    all_ids = [inst.id for inst in answer.all_instances]
    assert all_ids == list(range(1, len(all_ids) + 1))
    if scenario.n_instances is not None:
        assert len(all_ids) == scenario.n_instances
    assert set(answer.selected_ids) <= set(all_ids)


# --- scenes ------------------------------------------------------------------------------------------------------

DESK = Scene(
    240,
    160,
    [
        SceneObject("cup", (170, 90, 200, 130), color=RED, score=0.95),  # right of the laptop -> id 1
        SceneObject("cup", (20, 90, 50, 130), color=RED, score=0.9),  # left of the laptop -> id 2
        SceneObject("laptop", (80, 50, 160, 130), shape="box", color=GREY, score=0.92),  # id 3
    ],
)

TABLE = Scene(  # the integration tests' scene: two cups, the laptop between them
    200,
    120,
    [
        SceneObject("cup", (20, 60, 50, 100), color=(200, 40, 40)),
        SceneObject("laptop", (70, 30, 130, 90), shape="box", color=(90, 90, 110), score=0.8),
        SceneObject("cup", (150, 60, 180, 100), color=(210, 60, 40), score=0.7),
    ],
)

# The agent's tools, in the order it offers them to the model.
TOOL_NAMES = [
    "segment_phrases",
    "refine_with_exemplars",
    "segment_at",
    "examine_masks",
    "spatial_filter",
    "between",
    "nearest",
    "order_masks",
    "combine_masks",
    "count_masks",
    "final_answer",
    "no_match",
]

SHELF = Scene(
    240,
    120,
    [
        SceneObject("cup", (150, 40, 180, 80), color=RED, score=0.95),  # id 1, third from the left
        SceneObject("cup", (10, 40, 40, 80), color=RED, score=0.9),  # id 2, leftmost
        SceneObject("cup", (80, 40, 110, 80), color=RED, score=0.85),  # id 3, second from the left
        SceneObject("plate", (195, 30, 235, 90), color=GREY, score=0.9),  # id 4, right end
    ],
)

ORCHARD = Scene(
    240,
    160,
    [
        SceneObject("apple", (10, 20, 60, 70), color=RED, score=0.9),
        SceneObject("apple", (90, 20, 140, 70), color=RED, score=0.88),
        SceneObject("apple", (170, 20, 220, 70), color=RED, score=0.86),
        SceneObject("apple", (60, 90, 110, 140), color=RED, score=0.84),
        SceneObject("leaf", (150, 100, 200, 130), color=GREEN, score=0.8),
    ],
)

# Object 1 is an apple the phrase misses; object 2 is a tomato SAM 3 mistakes for an apple.
MARKET = Scene(
    240,
    120,
    [
        SceneObject("apple", (10, 30, 60, 80), color=RED, score=0.9),
        SceneObject("apple", (90, 30, 140, 80), color=RED, score=0.85),
        SceneObject("apple", (170, 30, 220, 80), color=(230, 60, 30), score=0.8),
    ],
)

# --- scenarios ---------------------------------------------------------------------------------------------------

RELATION = Scenario(
    name="relation",
    scene=DESK,
    query="the cup left of the laptop",
    turns=(
        tool_call_turn("segment_phrases", {"phrases": ["cup", "laptop"]}, content="Segment both nouns."),
        tool_call_turn("spatial_filter", {"subject_ids": [1, 2], "relation": "left_of", "anchor_ids": [3]}),
        tool_call_turn("final_answer", {"ids": [2], "text": "The cup left of the laptop is #2."}),
    ),
    status="answered",
    selected=(2,),
    count=None,
    steps=(
        Expected("segment_phrases", says="'laptop': 1 mask(s)"),
        Expected("spatial_filter", says="left of #3: #2; rejected: #1"),
        Expected("final_answer", says="#2"),
    ),
    segment_calls=(("cup", "laptop"),),
    answer_says="#2",
    n_instances=3,
    images_per_request=(1, 2, 2),
)

ORDINAL = Scenario(
    name="ordinal_and_nearest",
    scene=SHELF,
    query="the second cup from the left, and the cup nearest the plate",
    turns=(
        tool_call_turn("segment_phrases", {"phrases": ["cups", "plate"]}),
        tool_call_turn("order_masks", {"ids": [1, 2, 3], "ordering": "leftmost", "k": 4}),
        tool_call_turn("order_masks", {"ids": [1, 2, 3], "ordering": "leftmost", "k": 2}),
        tool_call_turn("nearest", {"subject_ids": [1, 2, 3], "anchor_ids": [4]}),
        tool_call_turn("final_answer", {"ids": [3, 1], "text": "#3 is second from the left; #1 is nearest."}),
    ),
    status="answered",
    selected=(3, 1),
    count=None,
    steps=(
        Expected("segment_phrases", says="'cups': 3 mask(s)"),
        Expected("order_masks", ok=False, says="k=4 is out of range for 3 mask(s)"),
        Expected("order_masks", says="leftmost first: #2, #3, #1\nk=2: #3"),
        Expected("nearest", says="Nearest to #4 first (gap between the masks): #1 (15 px), #3"),
        Expected("final_answer"),
    ),
    segment_calls=(("cups", "plate"),),
    n_instances=4,
)

COUNTING = Scenario(
    name="counting_with_duplicates",
    scene=ORCHARD,
    query="How many apples are on the tree?",
    duplicates={"apple": 1},
    turns=(
        tool_call_turn("segment_phrases", {"phrases": ["apple"]}),
        tool_call_turn("count_masks", {"ids": [1, 2, 3, 4, 5, 6, 7, 8]}),
        tool_call_turn("final_answer", {"ids": [1, 2, 3, 5], "text": "There are 4 apples.", "count": 4}),
    ),
    status="answered",
    selected=(1, 2, 3, 5),
    count=4,
    steps=(
        Expected("segment_phrases", says="'apple': 8 mask(s)"),
        Expected(
            "count_masks",
            says="count: 4 distinct (#1, #2, #3, #5); "
            "merged duplicates: #4 into #1, #6 into #2, #7 into #3, #8 into #5",
        ),
        Expected("final_answer"),
    ),
    segment_calls=(("apple",),),
    answer_says="4 apples",
    n_instances=8,
)

COUNT_FROM_SELECTION = Scenario(
    name="count_from_selection",
    scene=DESK,
    query="Count the cups",
    turns=(
        tool_call_turn("segment_phrases", {"phrases": ["cup"]}),
        tool_call_turn("final_answer", {"ids": [1, 2], "text": "Two cups."}),
    ),
    status="answered",
    selected=(1, 2),
    count=2,  # the model gave no count: a counting query gets the number of selected masks
    steps=(Expected("segment_phrases"), Expected("final_answer")),
    segment_calls=(("cup",),),
)

EXEMPLARS = Scenario(
    name="exemplar_refinement",
    scene=MARKET,
    query="all the apples",
    hidden_from_text=(1,),
    turns=(
        tool_call_turn("segment_phrases", {"phrases": ["apple"]}),
        tool_call_turn("examine_masks", {"ids": [1, 2]}),
        tool_call_turn(
            "refine_with_exemplars",
            {"phrase": "apple", "positive_ids": [1], "negative_ids": [2]},
            content="#2 is a tomato and the middle apple was missed.",
        ),
        tool_call_turn("final_answer", {"ids": [3, 4], "text": "Two apples: #3 and #4."}),
    ),
    status="answered",
    selected=(3, 4),
    count=None,
    steps=(
        Expected("segment_phrases", says="'apple': 2 mask(s)"),
        Expected("examine_masks", says="#2 apple: score 0.80"),
        Expected("refine_with_exemplars", says="1 positive and 1 negative exemplar(s): 2 mask(s)"),
        Expected("final_answer"),
    ),
    segment_calls=(("apple",), ("apple",)),
    n_instances=4,
)

NO_MATCH = Scenario(
    name="no_match",
    scene=ORCHARD,
    query="the giraffe",
    turns=(
        tool_call_turn("segment_phrases", {"phrases": ["giraffe"]}),
        tool_call_turn("segment_phrases", {"phrases": ["animal", "long-necked animal"]}),
        tool_call_turn("no_match", {"reason": "There is no giraffe or other animal in the image."}),
    ),
    status="no_match",
    selected=(),
    count=None,
    steps=(
        Expected("segment_phrases", says="'giraffe': nothing found"),
        Expected("segment_phrases", says="'long-necked animal': nothing found"),
        Expected("no_match"),
    ),
    segment_calls=(("giraffe",), ("animal", "long-necked animal")),
    answer_says="no giraffe",
    n_instances=0,
)

MALFORMED = Scenario(
    name="malformed_model_output",
    scene=DESK,
    query="the laptop",
    turns=(
        tool_call_turn("segment_phrases", '{"phrases": ["laptop"'),  # broken JSON, repaired
        tool_call_turn("final_answer", "the laptop is number one"),  # not JSON at all
        tool_call_turn("select_masks", {"ids": [1]}),  # unknown tool
        tool_call_turn("final_answer", {"ids": "one", "text": "The laptop."}),  # wrong type
        tool_call_turn("count_masks", {"ids": []}),  # empty list
        tool_call_turn("final_answer", {"ids": [7], "text": "The laptop."}),  # unknown id
        text_turn("The laptop is mask 1."),  # no tool call: nudged, no trace step
        tool_call_turn(INVALID_TOOL, "<tool>final_answer(1)"),  # unreadable text-protocol block
        tool_call_turn("final_answer", {"ids": [1], "text": "The laptop is #1."}),
    ),
    status="answered",
    selected=(1,),
    count=None,
    steps=(
        Expected("segment_phrases", says="'laptop': 1 mask(s)"),
        Expected("final_answer", ok=False, says="final_answer: arguments are not valid JSON"),
        Expected("select_masks", ok=False, says="no tool named 'select_masks'; tools: segment_phrases,"),
        Expected(
            "final_answer", ok=False, says="invalid arguments for final_answer: ids: Input should be a valid list"
        ),
        Expected("count_masks", ok=False, says="ids: List should have at least 1 item"),
        Expected("final_answer", ok=False, says="unknown mask id(s) 7; valid ids are: 1"),
        Expected(INVALID_TOOL, ok=False, says="could not be read as a tool call (<tool>final_answer(1))"),
        Expected("final_answer"),
    ),
    segment_calls=(("laptop",),),
    n_instances=1,
)

TURN_LIMIT = Scenario(
    name="turn_limit",
    scene=DESK,
    query="the cup left of the laptop",
    max_turns=3,
    turns=(
        tool_call_turn("segment_phrases", {"phrases": ["cup", "laptop"]}),
        tool_call_turn("examine_masks", {"ids": [1]}),
        tool_call_turn("segment_phrases", {"phrases": ["cup"]}),  # already segmented: no segmenter call
    ),
    status="gave_up",
    selected=(),
    count=None,
    steps=(
        Expected("segment_phrases"),
        Expected("examine_masks"),
        Expected("segment_phrases", says="'cup': already segmented earlier as #1, #2 (not run again)"),
    ),
    segment_calls=(("cup", "laptop"),),
    answer_says="no final answer after 3 turns. Found 3 masks: cup #1, #2; laptop #3; none was selected",
    n_instances=3,
)

PRUNING = Scenario(
    name="history_pruning",
    scene=DESK,
    query="the cup left of the laptop",
    max_images=2,
    turns=(
        tool_call_turn("segment_phrases", {"phrases": ["cup", "laptop"]}),
        tool_call_turn("examine_masks", {"ids": [1, 2]}),
        tool_call_turn("spatial_filter", {"subject_ids": [1, 2], "relation": "left_of", "anchor_ids": [3]}),
        tool_call_turn("examine_masks", {"ids": [2]}),
        tool_call_turn("final_answer", {"ids": [2], "text": "#2."}),
    ),
    status="answered",
    selected=(2,),
    count=None,
    steps=(
        Expected("segment_phrases"),
        Expected("examine_masks"),
        Expected("spatial_filter"),
        Expected("examine_masks"),
        Expected("final_answer"),
    ),
    segment_calls=(("cup", "laptop"),),
    # unpruned the requests would carry 1, 2, 4, 4, 5 images
    images_per_request=(1, 2, 2, 2, 2),
    removed_in_last_request=(
        "[image removed: overlay of ids 1, 2, 3]",
        "[image removed: zoom of mask #1 (cup)]",
        "[image removed: zoom of mask #2 (cup)]",
    ),
)

SCENARIOS: tuple[Scenario, ...] = (
    RELATION,
    ORDINAL,
    COUNTING,
    COUNT_FROM_SELECTION,
    EXEMPLARS,
    NO_MATCH,
    MALFORMED,
    TURN_LIMIT,
    PRUNING,
)
