"""An in-process ``ChatModel`` that replays a script of assistant turns (no HTTP, no API key).

Each turn is an ``AssistantMessage`` or a function of the messages sent so far returning one (for a reply
that depends on what the agent showed, e.g. an id read back from a tool result) or raising (``failing_turn``).
Every call is recorded in ``requests`` so tests can check what the model actually received. A run that asks
for more turns than the script holds raises ``AssertionError``: that is a bug in the test or a drift in the
agent's workflow, not an ``LLMError``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sam3_agent.agent.messages import AssistantMessage, Message, ToolSpec

Turn = AssistantMessage | Callable[[list[Message]], AssistantMessage]


def failing_turn(error: Exception) -> Turn:
    """A turn that raises ``error`` instead of replying (an endpoint that is down, a model that crashes)."""

    def fail(_: list[Message]) -> AssistantMessage:
        raise error

    return fail


@dataclass(frozen=True)
class ScriptedRequest:
    """What one ``chat`` call received."""

    messages: list[Message]
    tools: list[ToolSpec]


class ScriptedChatModel:
    """Replays ``turns`` in order, one per ``chat`` call; implements ``sam3_agent.agent.messages.ChatModel``."""

    def __init__(self, turns: Sequence[Turn]) -> None:
        self._turns = list(turns)
        self._next = 0
        self.requests: list[ScriptedRequest] = []

    @property
    def remaining(self) -> int:
        """Turns not yet used."""
        return len(self._turns) - self._next

    def chat(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> AssistantMessage:
        self.requests.append(ScriptedRequest(messages=list(messages), tools=list(tools)))
        if self._next >= len(self._turns):
            raise AssertionError(
                f"the script has {len(self._turns)} turn(s) but the agent asked for turn {self._next + 1}; "
                f"last message it sent: {messages[-1] if messages else None!r}"
            )
        turn = self._turns[self._next]
        self._next += 1
        reply = turn(list(messages)) if callable(turn) else turn
        if not isinstance(reply, AssistantMessage):
            raise AssertionError(f"script turn {self._next} produced {type(reply).__name__}, not AssistantMessage")
        return reply

    def assert_complete(self) -> None:
        """Raise ``AssertionError`` unless every scripted turn was used."""
        if self.remaining:
            raise AssertionError(f"{self.remaining} of {len(self._turns)} scripted turn(s) were never requested")
