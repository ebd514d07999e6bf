"""A synthetic desk and a scripted answer, to show the demo page without SAM 3 weights or an LLM.

Used by ``tools/screenshot_demo.py`` (the README screenshot): ``SceneSegmenter`` returns the scene's exact masks
and a ``ReplayServer`` plays the model's tool calls over HTTP, so the page runs its real code paths.
"""

from __future__ import annotations

from sam3_agent.agent.messages import AssistantMessage
from sam3_agent.testing.scene import Scene, SceneObject
from sam3_agent.testing.turns import tool_call_turn

QUESTION = "how many cups are left of the laptop?"
ANSWER = "Two cups are left of the laptop: #1 and #2 (the green cup #3 is right of it)."


def desk_scene() -> Scene:
    """An 800x500 desk: three cups (store ids 1-3 by score), a laptop (id 4), and decorations never asked for."""
    return Scene(
        800,
        500,
        [
            SceneObject("plant", (40, 40, 150, 150), color=(70, 140, 70), score=0.9),
            SceneObject("laptop", (380, 150, 700, 400), shape="box", color=(70, 72, 80), score=0.96),
            SceneObject("screen", (400, 170, 680, 330), shape="box", color=(125, 165, 215), score=0.9),
            SceneObject("cup", (90, 260, 180, 370), color=(205, 55, 45), score=0.95),
            SceneObject("cup", (230, 300, 320, 400), color=(50, 100, 200), score=0.93),
            SceneObject("cup", (725, 300, 785, 390), color=(60, 165, 85), score=0.9),
        ],
        background=(228, 212, 182),
    )


def desk_script() -> list[AssistantMessage]:
    """The model's turns for ``QUESTION``: segment, filter by relation, count, answer."""
    return [
        tool_call_turn("segment_phrases", {"phrases": ["cup", "laptop"]}),
        tool_call_turn("spatial_filter", {"subject_ids": [1, 2, 3], "relation": "left_of", "anchor_ids": [4]}),
        tool_call_turn("count_masks", {"ids": [1, 2]}),
        tool_call_turn("final_answer", {"ids": [1, 2], "text": ANSWER, "count": 2}),
    ]
