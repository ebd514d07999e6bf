"""The built-in planner's clip grammar (query -> ClipPlan) and the ClipPlanner as a chat model."""

from __future__ import annotations

import pytest

from sam3_agent.agent.clip_messages import clip_intro, clip_query_of
from sam3_agent.agent.messages import ModelGaveUp, ToolMessage, UserMessage, query_intro
from sam3_agent.agent.planner.clip_grammar import NotUnderstood, parse_clip_query
from sam3_agent.agent.planner.clip_model import ClipPlanner, clip_plan_for
from sam3_agent.testing.turns import tool_call_turn
from sam3_agent.video import SampledFrame, VideoInfo

PLANS = [
    # unique counts: verbs of passing and places are not part of the phrase
    ("how many different cars pass?", "count('cars')"),
    ("How many distinct people appear in the video?", "count('people')"),
    ("count the cars in the clip", "count('cars')"),
    ("how many people enter the room", "count('people')"),
    ("how many birds fly by", "count('birds')"),
    ("how many cars and trucks drive past?", "count('cars' + 'trucks')"),
    # one frame
    ("how many people are in the room at the end?", "count('people' on last)"),
    ("At the end, how many people are in the room?", "count('people' on last)"),
    ("how many people are there at the start?", "count('people' on first)"),
    ("how many dogs are visible in the last frame?", "count('dogs' on last)"),
    ("how many cars are there at frame 30", "count('cars' on 30)"),
    # most at once
    ("how many cars are on screen at once?", "count('cars' on busiest)"),
    ("how many cars are visible at the same time?", "count('cars' on busiest)"),
    ("what is the maximum number of cars on screen?", "count('cars' on busiest)"),
    ("the most people at once", "count('people' on busiest)"),
    ("how many dogs at most", "count('dogs' on busiest)"),
    # order in time
    ("segment the person who enters last", "pick(enters_last #1 of 'person')"),
    ("the person who enters the room last", "pick(enters_last #1 of 'person')"),
    ("which car appears first?", "pick(enters_first #1 of 'car')"),
    ("the first car to appear", "pick(enters_first #1 of 'car')"),
    ("the first car to pass", "pick(enters_first #1 of 'car')"),
    ("the second person to enter the room", "pick(enters_first #2 of 'person')"),
    ("the second to last person to arrive", "pick(enters_last #2 of 'person')"),
    ("the person who is the last to enter", "pick(enters_last #1 of 'person')"),
    ("the last person to leave", "pick(leaves_last #1 of 'person')"),
    ("which person leaves first", "pick(leaves_first #1 of 'person')"),
    ("the cat who was the first to leave", "pick(leaves_first #1 of 'cat')"),
    # time on screen
    ("which dog is on screen longest?", "pick(longest #1 of 'dog')"),
    ("Which dog stays the longest?", "pick(longest #1 of 'dog')"),
    ("find the dog that is seen for the longest time", "pick(longest #1 of 'dog')"),
    ("the dog visible for the shortest time", "pick(shortest #1 of 'dog')"),
    ("which dog appears in the most frames", "pick(longest #1 of 'dog')"),
    ("the dog in the fewest frames", "pick(shortest #1 of 'dog')"),
    # one frame, geometry
    ("segment the leftmost car at the end", "pick(leftmost #1 of 'car' on last)"),
    ("the second largest dog at the start", "pick(largest #2 of 'dog' on first)"),
    # every track
    ("track the dogs", "find('dogs')"),
    ("segment the people in the last frame", "find('people' on last)"),
    ("the longest snake", "find('longest snake')"),  # size, not time on screen: no cue of time
]


@pytest.mark.parametrize(("query", "plan"), PLANS)
def test_plans(query: str, plan: str) -> None:
    assert parse_clip_query(query).describe() == plan


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("which dog is on screen longest?", "dog that is on screen longest"),
        ("the person who enters last", "person who enters last"),
        ("the dog in the most frames", "dog in the most frames"),
    ],
)
def test_answer_words(query: str, words: str) -> None:
    assert parse_clip_query(query).text == words


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("why is the car red?", "'why'"),
        ("the cup left of the laptop", "needs a language model"),
        ("how many cups are on the table at the end", "needs a language model"),
        ("segment the leftmost car", "say on which frame"),
        ("write a poem about the video", "asks for something other"),
        ("???", "nothing is left"),
    ],
)
def test_not_understood(query: str, why: str) -> None:
    with pytest.raises(NotUnderstood, match=why):
        parse_clip_query(query)
    with pytest.raises(ModelGaveUp, match="It understands: how many"):
        clip_plan_for(query)


VIDEO = VideoInfo(width=64, height=48, fps=10.0, frame_count=20, duration_s=2.0)
FRAMES = [SampledFrame(index=i, time_s=i / 10) for i in range(0, 20, 2)]


def test_the_intro_reads_back_and_describes_the_sampling() -> None:
    intro = clip_intro("how many cars?", VIDEO, FRAMES)
    assert clip_query_of([UserMessage.of(intro)]) == "how many cars?"
    assert "64x48 pixels at 10 fps (20 frames, 2.00 s); 10 frames are looked at (one frame in 2" in intro
    assert clip_query_of([UserMessage.of(query_intro("how many cars?", 64, 48))]) is None  # an image conversation


def test_the_planner_answers_only_clip_conversations() -> None:
    planner = ClipPlanner()
    with pytest.raises(ModelGaveUp, match="conversations started by the clip agent"):
        planner.chat([UserMessage.of(query_intro("how many cars?", 64, 48))], [])
    first = planner.chat([UserMessage.of(clip_intro("how many cars pass?", VIDEO, FRAMES))], [])
    assert first.content == "Plan: count('cars')"
    call = first.tool_calls[0]
    assert (call.name, call.arguments) == ("track_phrases", '{"phrases": ["cars"]}')


def test_the_planner_notices_a_conversation_it_did_not_plan() -> None:
    intro = UserMessage.of(clip_intro("how many cars pass?", VIDEO, FRAMES))
    wrong = tool_call_turn("track_stats", {"ids": [1]}, call_id="c1")
    result = ToolMessage(tool_call_id="c1", name="track_stats", content="unique: 1 tracks", instance_ids=(1,))
    with pytest.raises(ModelGaveUp, match="lost its place"):
        ClipPlanner().chat([intro, wrong, result], [])
