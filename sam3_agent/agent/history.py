"""History pruning: bound the number of images sent to the model on each turn.

Every tool that shows the model something (overlays, zoom crops) adds an image, and vision models charge
for (and get confused by) old images. ``prune_history`` keeps the system message and the first user message
(the query with the original image) untouched, keeps the newest images after it, and replaces each older
image by a short text placeholder built from its caption, so the model still knows what it saw.
"""

from __future__ import annotations

from collections.abc import Sequence

from sam3_agent.agent.messages import ContentPart, ImagePart, Message, TextPart, UserMessage


def placeholder(image: ImagePart) -> TextPart:
    """The text standing in for a removed image: ``"[image removed: <caption>]"``."""
    return TextPart(text=f"[image removed: {image.caption}]" if image.caption else "[image removed]")


def count_images(messages: Sequence[Message]) -> int:
    """Number of image parts in ``messages``."""
    return sum(isinstance(part, ImagePart) for msg in messages if isinstance(msg, UserMessage) for part in msg.content)


def prune_history(messages: Sequence[Message], max_images: int) -> list[Message]:
    """Return a copy of ``messages`` holding at most ``max_images`` images (pure; the input is not changed).

    The first user message is always kept whole, its images counting towards ``max_images`` (if it alone
    holds more, those are still kept). Of the images in later messages the newest are kept; older ones
    become :func:`placeholder` text parts. Messages are never dropped or reordered.

    Raises:
        ValueError: ``max_images`` < 1.
    """
    if max_images < 1:
        raise ValueError(f"max_images must be >= 1, got {max_images}")
    first_user = next((i for i, msg in enumerate(messages) if isinstance(msg, UserMessage)), None)
    if first_user is None:
        return list(messages)
    budget = max(0, max_images - count_images([messages[first_user]]))
    out = list(messages)
    for index in range(len(out) - 1, first_user, -1):
        msg = out[index]
        if not isinstance(msg, UserMessage):
            continue
        parts: list[ContentPart] = []
        changed = False
        # Walk the parts newest-last, so count from the end of the message too.
        for part in reversed(msg.content):
            if isinstance(part, ImagePart):
                if budget > 0:
                    budget -= 1
                else:
                    part = placeholder(part)
                    changed = True
            parts.append(part)
        if changed:
            out[index] = msg.model_copy(update={"content": tuple(reversed(parts))})
    return out
