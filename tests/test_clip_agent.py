"""The agent on clips, on a fake tracker with exact tracks: the built-in planner's answers (unique counts across
occlusion and re-entry, first / last, longest, counts on one frame, ties, absent phrases), the clip tools, the
track store, keyframes, and the LLM path with a scripted model that sees only a few keyframes."""

from __future__ import annotations

import base64
import io
import json
import threading

import numpy as np
import pytest
from PIL import Image

from sam3_agent.agent import ClipAnswer, answer_clip
from sam3_agent.agent.clip_agent import ClipAgent
from sam3_agent.agent.clip_frames import pick_keyframes
from sam3_agent.agent.clip_store import TrackStore
from sam3_agent.agent.clip_tools import ClipContext, clip_tools
from sam3_agent.agent.loop import Sam3Agent
from sam3_agent.agent.messages import ImagePart, Message, SystemMessage, TextPart, ToolCall, ToolMessage, UserMessage
from sam3_agent.agent.planner import QueryPlanner
from sam3_agent.agent.system_prompt import load_prompt
from sam3_agent.agent.tools import ToolResult, execute
from sam3_agent.errors import Cancelled, ConfigError, ImageError, PromptError, VideoError
from sam3_agent.testing.fake_tracker import FakeObject, FakeTracker
from sam3_agent.testing.scripted import ScriptedChatModel
from sam3_agent.testing.turns import tool_call_turn
from sam3_agent.video import FrameSelection, TrackOptions
from sam3_agent.video.frames import Clip

W, H, FPS, N = 80, 60, 10.0, 12
BACKGROUND = (90, 90, 90)

# Car 1 is seen on 0-3, hidden on 4-6, seen again on 7-9: one object, one id. Car 2 on 2-5, car 3 on 8-11.
CARS = [
    FakeObject(frames=[0, 1, 2, 3, 7, 8, 9], box=(0, 5, 10, 15), step=(5, 0)),
    FakeObject(frames=[2, 3, 4, 5], box=(70, 30, 80, 40), step=(-5, 0)),
    FakeObject(frames=[8, 9, 10, 11], box=(0, 45, 10, 55), step=(4, 0)),
]
# Person 1 is there all along (left), 2 leaves after frame 6 (middle), 3 enters on frame 5 (right).
PEOPLE = [
    FakeObject(frames=range(0, 12), box=(2, 10, 12, 40)),
    FakeObject(frames=range(0, 7), box=(30, 10, 40, 40)),
    FakeObject(frames=range(5, 12), box=(60, 10, 70, 40)),
]
# Dog 2 is seen on the most frames (8), with a gap; dog 3 on the fewest (3).
DOGS = [
    FakeObject(frames=range(0, 5), box=(0, 0, 12, 12)),
    FakeObject(frames=[2, 3, 4, 5, 8, 9, 10, 11], box=(30, 30, 44, 44)),
    FakeObject(frames=[9, 10, 11], box=(60, 40, 75, 55)),
]
SCRIPT = {"car": CARS, "person": PEOPLE, "dog": DOGS}


def clip() -> Clip:
    frames = [np.full((H, W, 3), BACKGROUND, np.uint8) for _ in range(N)]
    return Clip.from_frames(frames, fps=FPS, name="street")


def ask(query: str, script: dict | None = None, **options) -> tuple[ClipAnswer, FakeTracker]:
    tracker = FakeTracker(script or SCRIPT)
    answer = answer_clip(tracker, clip(), query, options=TrackOptions(**options) if options else None)
    return answer, tracker


# --- the built-in planner's answers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "count", "ids", "frame"),
    [
        ("how many different cars pass?", 3, (1, 2, 3), None),
        ("Count the cars in the video", 3, (1, 2, 3), None),
        ("how many cars are there at the end?", 1, (3,), 11),
        ("how many cars are there at the start?", 1, (1,), 0),
        ("how many cars are on screen at once?", 2, (1, 2), 2),  # frames 2-3 and 8-9 hold two; the earliest
        ("what is the maximum number of cars at the same time?", 2, (1, 2), 2),
        ("how many people are in the room at the end?", 2, (1, 3), 11),
        ("how many people are there in frame 6?", 3, (1, 2, 3), 6),
    ],
)
def test_counts(query: str, count: int, ids: tuple[int, ...], frame: int | None) -> None:
    answer, tracker = ask(query)
    assert (answer.status, answer.count, answer.track_ids, answer.frame) == ("answered", count, ids, frame)
    assert len(tracker.calls) == 1


def test_unique_count_keeps_a_reentering_object_once() -> None:
    answer, _ = ask("how many different cars pass?")
    car = answer.tracks.track(1)
    assert [f.index for f in car.frames] == [0, 1, 2, 3, 7, 8, 9]  # hidden on 4-6, the same id after
    assert answer.text.startswith("I count 3 different cars (#1, #2, #3).")
    assert "#1 went out of view and came back; each is counted once" in answer.text
    assert [s.tool for s in answer.trace] == ["track_phrases", "track_stats", "final_answer"]


@pytest.mark.parametrize(
    ("query", "ids", "words"),
    [
        ("segment the person who enters last", (3,), "first seen on frame 5 at 0.50 s"),
        ("which person leaves first?", (2,), "last seen on frame 6 at 0.60 s"),
        ("the second person to enter the room", (3,), "first seen on frame 5"),  # 1 and 2 share the first rank
        ("which dog is on screen longest?", (2,), "seen on 8 of 12 sampled frames"),
        ("the dog visible for the shortest time", (3,), "seen on 3 of 12 sampled frames"),
        ("the first car to appear", (1,), "first seen on frame 0"),
    ],
)
def test_picks_in_time(query: str, ids: tuple[int, ...], words: str) -> None:
    answer, _ = ask(query)
    assert (answer.status, answer.track_ids, answer.count) == ("answered", ids, None)
    assert words in answer.text
    assert "tie" not in answer.text


@pytest.mark.parametrize(
    ("query", "ids", "words"),
    [
        ("the first person to enter", (1, 2), "first seen on frame 0 at 0.00 s"),  # both there from the start
        ("the last person to leave", (1, 3), "last seen on frame 11"),  # both still there at the end
    ],
)
def test_ties_select_every_tied_track_and_say_so(query: str, ids: tuple[int, ...], words: str) -> None:
    answer, _ = ask(query)
    assert answer.track_ids == ids
    assert f"Tracks {', '.join(f'#{i}' for i in ids)} tie" in answer.text and words in answer.text


def test_a_tie_on_time_on_screen() -> None:
    twins = {"dog": [FakeObject(frames=range(0, 6)), FakeObject(frames=range(6, 12), box=(40, 40, 50, 50))]}
    answer, _ = ask("which dog is on screen longest?", twins)
    assert answer.track_ids == (1, 2) and "tie" in answer.text


@pytest.mark.parametrize(
    ("query", "ids", "frame"),
    [
        ("segment the leftmost person at the end", (1,), 11),
        ("the rightmost person at the start", (2,), 0),  # person 3 is not there yet
        ("show the people in the last frame", (1, 3), 11),
        ("track the dogs", (1, 2, 3), None),
    ],
)
def test_selections_on_one_frame_and_everything(query: str, ids: tuple[int, ...], frame: int | None) -> None:
    answer, _ = ask(query)
    assert (answer.status, answer.track_ids, answer.frame) == ("answered", ids, frame)


def test_an_absent_phrase_counts_zero_or_matches_nothing() -> None:
    counted, tracker = ask("how many different cats pass?")
    assert (counted.status, counted.count, counted.track_ids) == ("answered", 0, ())
    assert "0 cats" in counted.text and "none was tracked" in counted.text
    assert tracker.calls == [("cats",)] and counted.tracks.phrases == ("cats",) and counted.tracks.tracks == ()
    picked, _ = ask("segment the cat who enters last")
    assert (picked.status, picked.track_ids) == ("no_match", ())
    assert "no cat was tracked" in picked.text


def test_more_ranks_asked_than_exist_is_no_match() -> None:
    answer, _ = ask("the fourth person to enter")
    assert answer.status == "no_match" and "form 2 rank(s)" in answer.text


def test_stride_changes_what_is_looked_at() -> None:
    answer, _ = ask("how many people are in the room at the end?", frames=FrameSelection(stride=2))
    assert (answer.count, answer.frame) == (2, 10)  # the last sampled frame
    assert [f.index for f in answer.tracks.frames] == [0, 2, 4, 6, 8, 10]


def test_a_query_outside_the_grammar_gives_up_with_help() -> None:
    answer, tracker = ask("why is the car red?")
    assert answer.status == "gave_up" and "It understands:" in answer.text and "--llm-model" in answer.text
    assert tracker.calls == [] and answer.tracks is None


# --- entry points --------------------------------------------------------------------------------------------------


def test_sam3_agent_answers_clips_with_its_tracker() -> None:
    tracker = FakeTracker(SCRIPT)
    agent = Sam3Agent(segmenter=None, tracker=tracker)  # type: ignore[arg-type]  # the segmenter is for images
    assert isinstance(agent.llm, QueryPlanner)  # the image planner stands in: the clip planner answers clips
    answer = agent.run_clip(clip(), "how many different cars pass?")
    assert answer.count == 3 and answer.options.score == agent.thresholds.score
    with pytest.raises(ImageError, match="run_clip"):
        agent.run(clip(), "how many cars?")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no video tracker"):
        Sam3Agent(segmenter=None).run_clip(clip(), "how many cars?")  # type: ignore[arg-type]


def test_bad_input_is_a_clear_error(tmp_path) -> None:
    tracker = FakeTracker(SCRIPT)
    with pytest.raises(PromptError, match="non-empty"):
        answer_clip(tracker, clip(), "   ")
    with pytest.raises(VideoError, match="PIL image"):
        answer_clip(tracker, Image.new("RGB", (8, 8)), "how many cars?")  # type: ignore[arg-type]
    with pytest.raises(VideoError, match="not found"):
        answer_clip(tracker, tmp_path / "missing.mp4", "how many cars?")
    with pytest.raises(VideoError, match="got int"):
        answer_clip(tracker, 7, "how many cars?")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_keyframes"):
        ClipAgent(tracker, max_keyframes=0)


def test_cancel_and_progress_reach_the_tracker() -> None:
    seen: list[tuple[int, int]] = []
    answer_clip(FakeTracker(SCRIPT), clip(), "how many cars?", progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (N, N)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        answer_clip(FakeTracker(SCRIPT), clip(), "how many cars?", cancel=cancel)


def test_the_answer_serialises_and_keeps_the_chosen_tracks() -> None:
    answer, _ = ask("segment the person who enters last")
    again = ClipAnswer.model_validate_json(answer.model_dump_json())
    assert again == answer
    chosen = answer.selected_tracks()
    assert [t.track_id for t in chosen.tracks] == [3] and chosen.frames == answer.tracks.frames
    assert [t.track_id for t in answer.selected] == [3]


# --- the store and keyframes ---------------------------------------------------------------------------------------


def test_the_store_numbers_tracks_of_later_calls_after_earlier_ones() -> None:
    tracker, video = FakeTracker(SCRIPT), clip()
    store = TrackStore(video.info)
    store.add(["cars"], tracker.track(video, ["cars"]))
    store.add(["person", "dog"], tracker.track(video, ["person", "dog"]))
    assert (
        store.ids_of("Cars") == [1, 2, 3] and store.ids_of("person") == [4, 5, 6] and store.ids_of("dog") == [7, 8, 9]
    )
    assert all(f.instance.id == t.track_id for t in store.all() for f in t.frames)
    assert store.summary() == "cars #1, #2, #3; person #4, #5, #6; dog #7, #8, #9"
    merged = store.clip_tracks()
    assert merged.phrases == ("cars", "person", "dog") and len(merged.tracks) == 9


def test_keyframes_show_every_track_when_the_limit_allows() -> None:
    tracker, video = FakeTracker(SCRIPT), clip()
    dogs = list(tracker.track(video, ["dog"]).tracks)
    assert pick_keyframes(dogs, 4) == [2, 9]  # frame 2 shows dogs 1 and 2, frame 9 shows dog 3
    assert pick_keyframes(dogs, 1) == [2]
    assert pick_keyframes([], 4) == []


# --- the LLM path ------------------------------------------------------------------------------------------------

BALLS = {
    "ball": [FakeObject(frames=[i, i + 1], box=(7 * i, 10, 7 * i + 8, 18)) for i in (0, 3, 6, 9)],
    "cube": [FakeObject(frames=range(12), box=(5, 40, 15, 50)), FakeObject(frames=range(12), box=(50, 40, 60, 50))],
}


def images(messages: list[Message]) -> list[ImagePart]:
    return [p for m in messages if isinstance(m, UserMessage) for p in m.content if isinstance(p, ImagePart)]


def pixels(part: ImagePart) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(part.data_url.split(",", 1)[1]))).convert("RGB"))


def test_a_chat_model_drives_the_clip_tools_and_sees_only_a_few_keyframes() -> None:
    turns = [
        tool_call_turn("track_phrases", {"phrases": ["ball"]}),
        tool_call_turn("track_phrases", {"phrases": ["ball", "cube"]}),  # ball is cached: one call for cube
        tool_call_turn("track_stats", {"ids": [99]}),  # a model mistake: goes back as an error result
        tool_call_turn("order_tracks", {"ids": [1, 2, 3, 4], "ordering": "enters_last", "k": 1}),
        tool_call_turn("tracks_on_frame", {"ids": [1, 2, 3, 4, 5, 6], "frame": "last"}),
        tool_call_turn("frame_order", {"ids": [5, 6], "frame": "first", "ordering": "rightmost", "k": 1}),
        tool_call_turn("final_answer", {"track_ids": [4], "text": "The last ball to appear is #4.", "frame": 9}),
    ]
    llm = ScriptedChatModel(turns)
    tracker = FakeTracker(BALLS)
    agent = ClipAgent(tracker, llm, max_keyframes=2, max_images_in_context=3)
    answer = agent.run(clip(), "which ball appears last?")
    llm.assert_complete()

    assert (answer.status, answer.track_ids, answer.frame, answer.text) == (
        "answered",
        (4,),
        9,
        "The last ball to appear is #4.",
    )
    assert tracker.calls == [("ball",), ("cube",)]
    assert answer.tracks.phrases == ("ball", "cube") and len(answer.tracks.tracks) == 6
    results = [m for m in llm.requests[-1].messages if isinstance(m, ToolMessage)]
    assert [r.ok for r in results] == [True, True, False, True, True, True]
    assert results[2].content == "Error: unknown track id(s) 99; valid track ids are: 1, 2, 3, 4, 5, 6"
    assert results[3].instance_ids == (4,) and "pick (k=1): #4: first seen on frame 9" in results[3].content
    assert results[4].instance_ids == (5, 6) and results[4].content.startswith("frame 11 (1.10 s)")
    assert results[5].instance_ids == (6,)

    first = llm.requests[0]
    assert isinstance(first.messages[0], SystemMessage)
    assert first.messages[0].content == load_prompt("clip_agent_system")
    assert [t.name for t in first.tools] == [t.name for t in clip_tools()]
    intro = first.messages[1].content[0]
    assert isinstance(intro, TextPart) and intro.text.startswith("Query: which ball appears last?\nThe clip is 80x60")
    assert [p.caption for p in images(first.messages)] == ["the first sampled frame (frame 0)"]
    # four balls seen on disjoint frames need four keyframes; two are shown
    after_tracking = images(llm.requests[1].messages)
    assert [p.caption for p in after_tracking[1:]] == [
        "frame 0 (0.00 s) with tracks #1",
        "frame 3 (0.30 s) with tracks #2",
    ]
    drawn = pixels(after_tracking[1])
    assert tuple(drawn[14, 4]) != BACKGROUND and tuple(drawn[50, 70]) == BACKGROUND
    assert max(len(images(r.messages)) for r in llm.requests) <= 3
    assert all(
        p.caption.startswith(("frame ", "the first sampled frame")) for r in llm.requests for p in images(r.messages)
    )
    assert [s.tool for s in answer.trace] == [t.tool_calls[0].name for t in turns]


def test_the_planner_is_shown_no_frame() -> None:
    agent = ClipAgent(FakeTracker(SCRIPT))
    assert agent.max_keyframes == 0
    answer = agent.run(clip(), "how many different cars pass?")
    assert answer.count == 3


def test_a_video_file_is_opened_and_its_frames_decoded(tmp_path) -> None:
    av = pytest.importorskip("av")
    path = tmp_path / "room.mp4"
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for _ in range(N):
            frame = av.VideoFrame.from_ndarray(np.full((H, W, 3), BACKGROUND, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    answer = answer_clip(FakeTracker(SCRIPT), path, "how many people are in the room at the end?")
    assert (answer.count, answer.frame, answer.video.codec) == (2, 11, "h264")
    llm = ScriptedChatModel(
        [
            tool_call_turn("track_phrases", {"phrases": ["dog"]}),
            tool_call_turn("final_answer", {"track_ids": [2], "text": "Dog #2."}),
        ]
    )
    answer = answer_clip(FakeTracker(SCRIPT), str(path), "which dog?", llm)
    shown = images(llm.requests[1].messages)
    assert [p.caption for p in shown] == [
        "the first sampled frame (frame 0)",
        "frame 2 (0.20 s) with tracks #1, #2",
        "frame 9 (0.90 s) with tracks #2, #3",
    ]
    assert answer.track_ids == (2,)


def run_tools(calls: list[tuple[str, dict]], **options) -> list[ToolResult]:
    """The clip tools run directly on the people of the room (tracked first), as the loop runs them."""
    video = clip()
    ctx = ClipContext(
        clip=video, tracker=FakeTracker(SCRIPT), options=TrackOptions(**options), store=TrackStore(video.info)
    )
    tools = {t.name: t for t in clip_tools()}
    calls = [("track_phrases", {"phrases": ["person"]}), *calls]
    results = [
        execute(tools, ToolCall(id=str(i), name=n, arguments=json.dumps(a)), ctx)[1] for i, (n, a) in enumerate(calls)
    ]
    return results[1:]


def test_geometry_on_one_frame() -> None:
    left, negated, gone, early, order = run_tools(
        [
            ("frame_relation", {"subject_ids": [1, 2], "relation": "left_of", "anchor_ids": [3], "frame": 6}),
            (
                "frame_relation",
                {"subject_ids": [1, 2], "relation": "left_of", "anchor_ids": [3], "frame": 6, "negate": True},
            ),
            ("frame_relation", {"subject_ids": [1], "relation": "left_of", "anchor_ids": [3], "frame": "first"}),
            ("frame_order", {"ids": [1, 2, 3], "frame": "first", "ordering": "rightmost"}),
            ("frame_order", {"ids": [3], "frame": 0, "ordering": "leftmost"}),
        ]
    )
    assert left.instance_ids == (1, 2) and left.text.startswith("frame 6 (0.60 s): left of #3: #1, #2")
    assert negated.instance_ids == () and "rejected: #1, #2" in negated.text
    assert not gone.ok and gone.text == "Error: none of the anchors is on frame 0 (0.00 s); choose another frame"
    assert early.instance_ids == (2, 1) and "not on this frame: #3" in early.text
    assert not order.ok and "none of #3 is on frame 0" in order.text


def test_frames_that_were_not_sampled_and_the_busiest() -> None:
    between, busiest, stats = run_tools(
        [
            ("tracks_on_frame", {"ids": [1, 2, 3], "frame": 5}),
            ("tracks_on_frame", {"ids": [1, 2, 3], "frame": "busiest"}),
            ("track_stats", {"ids": [1, 2, 3]}),
        ],
        frames=FrameSelection(stride=2),
    )
    assert between.text.startswith("frame 4 (0.40 s), frame 5 was not sampled; the nearest sampled frame is 4: 2 of 3")
    assert busiest.instance_ids == (1, 2, 3) and busiest.text.startswith("frame 6 (0.60 s), the frame with most")
    assert "count per frame (frames: count): 0-4: 2, 6: 3, 8-10: 2" in stats.text
    assert "most at once: 3, first on frame 6 (0.60 s)" in stats.text and "re-entered" not in stats.text
