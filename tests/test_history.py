"""History pruning: the image budget, the protected first user message, placeholders from captions."""

from __future__ import annotations

import pytest
from PIL import Image

from sam3_agent.agent.history import count_images, prune_history
from sam3_agent.agent.messages import (
    AssistantMessage,
    ImagePart,
    Message,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    UserMessage,
)

PIXEL = Image.new("RGB", (2, 2), (255, 0, 0))


def image(caption: str) -> ImagePart:
    return ImagePart.from_pil(PIXEL, caption=caption)


def tool_round(n: int, *captions: str) -> list[Message]:
    call = ToolCall(id=f"c{n}", name="segment_phrases", arguments="{}")
    return [
        AssistantMessage(tool_calls=(call,)),
        ToolMessage(tool_call_id=f"c{n}", name="segment_phrases", content=f"result {n}"),
        UserMessage(content=tuple(image(c) for c in captions)),
    ]


def conversation() -> list[Message]:
    return [
        SystemMessage(content="sys"),
        UserMessage(content=(TextPart(text="Query: cup"), image("the original image"))),
        *tool_round(1, "overlay of ids 1, 2"),
        *tool_round(2, "zoom of mask #1 (cup)", "zoom of mask #2 (cup)"),
        *tool_round(3, "overlay of ids 3"),
    ]


def captions(messages: list[Message]) -> list[str]:
    return [p.caption for m in messages if isinstance(m, UserMessage) for p in m.content if isinstance(p, ImagePart)]


def texts(messages: list[Message]) -> list[str]:
    return [p.text for m in messages if isinstance(m, UserMessage) for p in m.content if isinstance(p, TextPart)]


@pytest.mark.parametrize(
    ("max_images", "kept"),
    [
        (1, ["the original image"]),
        (2, ["the original image", "overlay of ids 3"]),
        (3, ["the original image", "zoom of mask #2 (cup)", "overlay of ids 3"]),
        (
            5,
            [
                "the original image",
                "overlay of ids 1, 2",
                "zoom of mask #1 (cup)",
                "zoom of mask #2 (cup)",
                "overlay of ids 3",
            ],
        ),
        (
            50,
            [
                "the original image",
                "overlay of ids 1, 2",
                "zoom of mask #1 (cup)",
                "zoom of mask #2 (cup)",
                "overlay of ids 3",
            ],
        ),
    ],
)
def test_keeps_original_and_newest_images(max_images: int, kept: list[str]) -> None:
    messages = conversation()
    pruned = prune_history(messages, max_images)
    assert captions(pruned) == kept
    assert count_images(pruned) == min(max_images, 5)
    # nothing dropped or reordered; only user-message parts change
    assert [m.role for m in pruned] == [m.role for m in messages]
    assert [m for m in pruned if not isinstance(m, UserMessage)] == [
        m for m in messages if not isinstance(m, UserMessage)
    ]


def test_placeholders_name_what_was_removed_in_place() -> None:
    pruned = prune_history(conversation(), 3)
    assert texts(pruned) == [
        "Query: cup",
        "[image removed: overlay of ids 1, 2]",
        "[image removed: zoom of mask #1 (cup)]",
    ]
    zoom_message = pruned[7]
    assert isinstance(zoom_message, UserMessage)
    assert [type(p).__name__ for p in zoom_message.content] == ["TextPart", "ImagePart"]


def test_is_pure() -> None:
    messages = conversation()
    snapshot = list(messages)
    prune_history(messages, 1)
    assert messages == snapshot
    assert count_images(messages) == 5


def test_first_user_message_is_always_kept_whole() -> None:
    first = UserMessage(content=(image("a"), image("b")))
    messages: list[Message] = [SystemMessage(content="s"), first, *tool_round(1, "overlay of ids 1")]
    pruned = prune_history(messages, 1)
    assert pruned[1] == first
    assert texts(pruned) == ["[image removed: overlay of ids 1]"]


def test_uncaptioned_image_gets_a_generic_placeholder() -> None:
    messages: list[Message] = [UserMessage(content=(image("orig"),)), UserMessage(content=(ImagePart.from_pil(PIXEL),))]
    assert texts(prune_history(messages, 1)) == ["[image removed]"]


def test_rejects_a_zero_budget() -> None:
    with pytest.raises(ValueError, match="max_images must be >= 1, got 0"):
        prune_history(conversation(), 0)
