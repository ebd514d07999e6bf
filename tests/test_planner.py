"""The built-in planner: its grammar (query -> plan) and its runs through the real agent loop and tools."""

from __future__ import annotations

import pytest

from sam3_agent import QueryPlanner, Sam3Agent
from sam3_agent.agent.messages import ChatModel, ModelGaveUp, ToolMessage, UserMessage, query_intro
from sam3_agent.agent.planner import NotUnderstood, parse_query
from sam3_agent.agent.planner.words import fallbacks, other_number, plural, singular
from sam3_agent.errors import PromptError
from sam3_agent.masks import rle_encode
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter

# --- grammar ---------------------------------------------------------------------------------------------------

PLANS = [
    ("segment the cup left of the laptop", "find('cup' left_of 'laptop')"),
    ("How many cups are left of the laptop?", "count('cups' left_of 'laptop')"),
    ("Please find all the red cups in the image.", "find('red cups')"),
    ("could you show me every dog for me", "find('dog')"),
    ("cups and plates", "find('cups' + 'plates')"),
    ("highlight the cups, plates and forks", "find('cups' + 'plates' + 'forks')"),
    ("the cups to the right of the plate", "find('cups' right_of 'plate')"),
    ("bottles above the shelf", "find('bottles' above 'shelf')"),
    ("the cat that is sitting on top of the box", "find('cat' on 'box')"),
    ("is there a cat under the table?", "find('cat' under 'table')"),
    ("the apples inside the bowl", "find('apples' inside 'bowl')"),
    ("the bowl containing apples", "find('bowl' contains 'apples')"),
    ("the chair beside the desk", "find('chair' next_to 'desk')"),
    ("the cups far from the laptop", "find('cups' not next_to 'laptop')"),
    ("the cup closest to the laptop", "find(nearest 'cup' to 'laptop')"),
    ("the closest cup to the laptop", "find(nearest 'cup' to 'laptop')"),
    ("the bottle furthest from the laptop", "find(farthest 'bottle' to 'laptop')"),
    ("the cup between the plate and the laptop", "find('cup' between 'plate' and 'laptop')"),
    ("the cup in between the two plates", "find('cup' between 'plates' and 'plates')"),
    ("the second cup from the left", "find(leftmost #2 of 'cup')"),
    ("the 3rd bottle from the top", "find(topmost #3 of 'bottle')"),
    ("the third largest apple", "find(largest #3 of 'apple')"),
    ("the 2nd smallest apple", "find(smallest #2 of 'apple')"),
    ("the last bottle on the right", "find(rightmost #1 of 'bottle')"),
    ("the last cup from the left", "find(rightmost #1 of 'cup')"),
    ("the second to last cup from the left", "find(rightmost #2 of 'cup')"),
    ("the cup on the far left", "find(leftmost #1 of 'cup')"),
    ("show me the left-most cup", "find(leftmost #1 of 'cup')"),
    ("which cup is the biggest?", "find(largest #1 of 'cup')"),
    ("the largest cup on the table", "find(largest #1 of 'cup' on 'table')"),
    ("the cups not on the table", "find('cups' not on 'table')"),
    ("the cups that aren't left of the laptop", "find('cups' not left_of 'laptop')"),
    ("count the people", "count('people')"),
    ("number of dogs", "count('dogs')"),
    ("what is the number of bottles on the shelf", "count('bottles' on 'shelf')"),
    ("tell me how many cups there are", "count('cups')"),
    ("how many cups can you see?", "count('cups')"),
    ("how many cups are there left of the laptop", "count('cups' left_of 'laptop')"),
    ("where are the knives?", "find('knives')"),
    ("the person in red", "find('person in red')"),
    ("how many cups are on the largest table?", "count('cups' on largest #1 of 'table')"),
    ("can you see any knives?", "find('knives')"),
    ("all the cups except the red ones", "find('cups' except 'red cups')"),
    ("every cup but the blue one", "find('cup' except 'blue cup')"),
    ("the cups other than the red cups", "find('cups' except 'red cups')"),
    ("the cups, but not the ones on the table", "find('cups' except 'cups' on 'table')"),
    ("the cups except the one on the left", "find('cups' except leftmost #1 of 'cup')"),
    ("the cups that are not red", "find('cups' except 'red cups')"),
    ("which vases aren't blue?", "find('vases' except 'blue vases')"),
    ("the non-red cups", "find('cups' except 'red cups')"),
    ("how many cups are not red?", "count('cups' except 'red cups')"),
    ("the cups on the table that are not red", "find('cups' on 'table' except 'red cups')"),
    ("the part of the table not covered by the cloth", "find('table' minus 'cloth')"),
    ("the part of the table that is not covered by the cloths", "find('table' minus 'cloths')"),
    ("what part of the desk is not covered by the towel?", "find('desk' minus 'towel')"),
    ("the part of the table that the cloth does not cover", "find('table' minus 'cloth')"),
    ("the area of the table not under the napkin", "find('table' minus 'napkin')"),
    ("the region of the mat outside the towel", "find('mat' minus 'towel')"),
    ("the table without the cloth", "find('table' minus 'cloth')"),
    ("the part of the table under the cloth", "find('table' intersect 'cloth')"),
    ("the table covered by the cloth", "find('table' intersect 'cloth')"),
    ("the part of the table the two cloths cover", "find('table' intersect 'cloths')"),
    ("the overlap of the table and the cloth", "find('table' intersect 'cloth')"),
]


@pytest.mark.parametrize(("query", "plan"), PLANS)
def test_grammar_reads_common_shapes(query: str, plan: str) -> None:
    assert parse_query(query).describe() == plan


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("why is the sky blue", "'why'"),
        ("what colour is the car?", "'what'"),
        ("segment", "names no object"),
        ("please, thanks", "nothing is left"),
        ("the cup not between the plates", "'not between'"),
        ("the cup on the " + "very " * 60 + "left", "more than 40 words"),
        ("find the cup!!! @#$%", "short noun phrase"),
        ("the cups and plates except the red ones", "names several kinds of object"),
    ],
)
def test_grammar_says_why_it_cannot_read_a_query(query: str, says: str) -> None:
    with pytest.raises(NotUnderstood, match=says):
        parse_query(query)


@pytest.mark.parametrize(
    ("word", "other"),
    [
        ("cup", "cups"),
        ("box", "boxes"),
        ("berry", "berries"),
        ("knife", "knives"),
        ("person", "people"),
        ("glass", "glasses"),
        ("toy", "toys"),
        ("bus", "buses"),
        ("tomato", "tomatoes"),
        ("vase", "vases"),
        ("house", "houses"),
        ("lens", "lenses"),
    ],
)
def test_inflection_round_trips(word: str, other: str) -> None:
    assert plural(word) == other and singular(other) == word
    assert other_number(f"red {word}") == f"red {other}"


def test_fallbacks_try_the_other_number_then_the_head_noun() -> None:
    assert fallbacks("red cups") == ["red cups", "red cup", "cups", "cup"]
    assert fallbacks("person") == ["person", "people"]


# --- runs through the agent -----------------------------------------------------------------------------------

DESK = Scene(
    300,
    200,
    [
        SceneObject("cup", (10, 120, 40, 150)),
        SceneObject("cup", (200, 120, 230, 150)),
        SceneObject("laptop", (100, 100, 180, 150), shape="box"),
        SceneObject("table", (0, 150, 300, 200), shape="box"),
        SceneObject("knife", (250, 120, 290, 130), shape="box"),
    ],
)


def _run(query: str, scene: Scene = DESK, **segmenter: object):
    seg = SceneSegmenter(scene, **segmenter)  # type: ignore[arg-type]
    return Sam3Agent(seg).run(scene.image(), query), seg


def test_agent_without_a_chat_model_uses_the_planner() -> None:
    agent = Sam3Agent(SceneSegmenter(DESK))
    assert isinstance(agent.llm, QueryPlanner) and isinstance(agent.llm, ChatModel)


def test_counting_a_relation_merges_duplicates() -> None:
    answer, _ = _run("how many cups are left of the laptop?", duplicates={"cup": 2})
    assert (answer.status, answer.count) == ("answered", 1)
    (cup,) = answer.instances
    assert cup.rle.counts == SceneSegmenter(DESK).segment(DESK.image(), [_prompt("cup")])[0][0].rle.counts
    assert [s.tool for s in answer.trace] == [
        "segment_phrases",
        "count_masks",
        "segment_phrases",
        "spatial_filter",
        "count_masks",
        "final_answer",
    ]
    assert "I count 1 cup left of the laptop (#" in answer.text


def _prompt(text: str):
    from sam3_agent.schema import Prompt

    return Prompt(text=text)


def test_an_absent_phrase_tries_its_other_number_before_no_match() -> None:
    answer, seg = _run("find the giraffes")
    assert answer.status == "no_match" and answer.instances == ()
    assert [p.text for p in seg.prompts_seen] == ["giraffes", "giraffe"]
    assert "found no 'giraffes', also tried 'giraffe'" in answer.text


def test_an_irregular_plural_is_found_through_its_singular() -> None:
    answer, seg = _run("segment the knives")
    assert answer.status == "answered" and len(answer.instances) == 1
    assert [p.text for p in seg.prompts_seen] == ["knives", "knife"]
    assert "'knife' stands in for it" in answer.text


def test_the_head_noun_stands_in_for_an_attribute_phrase_that_finds_nothing() -> None:
    answer, seg = _run("the striped laptop")
    assert answer.status == "answered" and [i.phrase for i in answer.instances] == ["laptop"]
    assert [p.text for p in seg.prompts_seen] == ["striped laptop", "striped laptops", "laptop"]


def test_counting_an_absent_phrase_answers_zero() -> None:
    answer, _ = _run("How many giraffes are there?")
    assert (answer.status, answer.count, answer.instances) == ("answered", 0, ())


def test_an_ordinal_beyond_the_objects_is_no_match() -> None:
    answer, _ = _run("the third cup from the left")
    assert answer.status == "no_match"
    assert "there are only 2 cups, so there is no third cup from the left" in answer.text


def test_a_relation_nothing_satisfies_is_no_match_saying_so() -> None:
    answer, _ = _run("the cups above the laptop")
    assert answer.status == "no_match" and "of 2 cups, none is above the laptop" in answer.text


def test_nearest_farthest_and_negation_pick_the_right_cups() -> None:
    near, _ = _run("the cup nearest to the laptop")
    far, _ = _run("the cup farthest from the laptop")
    not_left, _ = _run("the cups that are not left of the laptop")
    assert [i.box for i in near.instances] == [(200.0, 120.0, 230.0, 150.0)]
    assert [i.box for i in far.instances] == [(10.0, 120.0, 40.0, 150.0)]
    assert [i.box for i in not_left.instances] == [(200.0, 120.0, 230.0, 150.0)]


def test_an_unparseable_query_gives_up_with_the_shapes_it_knows() -> None:
    answer, seg = _run("why is the sky blue?")
    assert answer.status == "gave_up" and answer.trace == () and seg.calls == 0
    assert "It understands: find / segment / show X" in answer.text
    assert "--llm-model" in answer.text and "local:PATH" in answer.text


def test_a_huge_query_is_refused_before_any_work() -> None:
    seg = SceneSegmenter(DESK)
    with pytest.raises(PromptError, match="at most 4000"):
        Sam3Agent(seg).run(DESK.image(), "cup " * 2000)
    assert seg.calls == 0


def test_one_planner_serves_interleaved_runs() -> None:
    """The planner keeps no state between calls: two conversations advanced in turn get their own plans."""
    planner = QueryPlanner()
    convo_a = [UserMessage.of(query_intro("how many cups?", 300, 200))]
    convo_b = [UserMessage.of(query_intro("the laptop", 300, 200))]
    first_a, first_b = planner.chat(convo_a, []), planner.chat(convo_b, [])
    assert '"cups"' in first_a.tool_calls[0].arguments and '"laptop"' in first_b.tool_calls[0].arguments
    result = ToolMessage(tool_call_id=first_b.tool_calls[0].id, name="segment_phrases", content="1", instance_ids=(1,))
    second_b = planner.chat([*convo_b, first_b, result], [])
    assert second_b.tool_calls[0].name == "final_answer"
    assert planner.chat(convo_a, []) == first_a


def test_a_failed_tool_call_ends_the_run_instead_of_looping() -> None:
    planner = QueryPlanner()
    convo = [UserMessage.of(query_intro("the laptop", 300, 200))]
    first = planner.chat(convo, [])
    failed = ToolMessage(tool_call_id=first.tool_calls[0].id, name="segment_phrases", content="Error: x", ok=False)
    with pytest.raises(ModelGaveUp, match="segment_phrases call failed: Error: x"):
        planner.chat([*convo, first, failed], [])


# --- set logic through the agent -------------------------------------------------------------------------------

COLOURED = Scene(
    300,
    200,
    [
        SceneObject("table", (20, 120, 280, 170), shape="box"),
        SceneObject("cloth", (60, 100, 120, 140), shape="box"),
        SceneObject("cloth", (200, 130, 250, 180), shape="box"),
        SceneObject("red cup", (20, 20, 50, 50)),
        SceneObject("blue cup", (80, 20, 110, 50)),
        SceneObject("red cup", (140, 20, 170, 50)),
        SceneObject("green cup", (200, 20, 230, 50)),
    ],
)


def _coloured(query: str, **segmenter: object):
    return _run(query, COLOURED, match_head_noun=True, **segmenter)


def test_except_takes_the_same_objects_out_of_a_set_of_ids() -> None:
    answer, seg = _coloured("all the cups except the red ones", duplicates={"red cup": 1})
    assert answer.status == "answered" and [i.box for i in answer.instances] == [
        (80.0, 20.0, 110.0, 50.0),
        (200.0, 20.0, 230.0, 50.0),
    ]
    assert [p.text for p in seg.prompts_seen] == ["cups", "red cups"]
    (combine,) = [s for s in answer.trace if s.tool == "combine_masks"]
    assert combine.arguments["mode"] == "objects" and combine.arguments["operation"] == "difference"
    assert "; same objects: #1 = #7, #3 = #8" in combine.summary  # #5, #6: the red cups' near-duplicates
    assert {i.phrase for i in answer.all_instances} == {"cups", "red cups"}  # no new mask


def test_the_removed_phrase_does_not_fall_back_to_its_head_noun() -> None:
    answer, seg = _coloured("the cups that are not purple")
    assert len(answer.instances) == 4 and "found no 'purple cups', also tried 'purple cup'" in answer.text
    assert [p.text for p in seg.prompts_seen] == ["cups", "purple cups", "purple cup"]


def test_counting_an_exception_and_removing_everything() -> None:
    counted, _ = _coloured("how many cups are not red?")
    assert (counted.status, counted.count) == ("answered", 2) and "I count 2 cups not red" in counted.text
    none, _ = _coloured("the cups except the cups")
    assert none.status == "no_match" and "each of 4 cups is also one of 'cups'" in none.text


def test_the_part_not_covered_is_one_new_mask_equal_to_numpy() -> None:
    answer, _ = _coloured("the part of the table not covered by the cloths")
    (part,) = answer.instances
    truth = COLOURED.mask(0) & ~COLOURED.mask(1) & ~COLOURED.mask(2)
    assert part.rle == rle_encode(truth) and part.area == int(truth.sum()) and part.phrase == "table minus cloths"
    assert part.box == (20.0, 120.0, 280.0, 170.0) and part.score == 0.9
    assert [s.tool for s in answer.trace] == [
        "segment_phrases",
        "segment_phrases",
        "count_masks",
        "combine_masks",
        "final_answer",
    ]
    assert f"#{part.id} = #1 minus (#2 + #3)" in answer.text


def test_the_part_under_a_cover_and_a_cover_that_misses() -> None:
    under, _ = _coloured("the part of the table under the cloth")
    (part,) = under.instances
    assert part.rle == rle_encode(COLOURED.mask(0) & (COLOURED.mask(1) | COLOURED.mask(2)))
    apart, _ = _coloured("the overlap of the red cups and the table")
    assert apart.status == "no_match" and "'red cups' and 'table' do not overlap" in apart.text
    bare, _ = _coloured("the table without the giraffe")
    assert [i.phrase for i in bare.instances] == ["table"]
