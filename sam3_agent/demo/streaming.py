"""Run the agent in a worker thread and hand its steps to a generator as they happen.

Gradio streams a generator handler's yields to the page; the agent reports steps through a callback.
``stream_agent`` joins the two: the agent runs in a daemon thread, ``on_step`` puts each ``TraceStep`` on a
queue, and the caller iterates over the steps and finally the ``Answer``. When the caller stops iterating
(the user closed the page, Gradio closed the generator), the next ``on_step`` raises inside the agent's
thread, so an abandoned run stops at its next tool call instead of running to the end.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image

from sam3_agent.agent.loop import Sam3Agent
from sam3_agent.schema import Answer, TraceStep


class RunAbandoned(Exception):
    """Raised inside the agent's thread when nobody listens to its steps any more."""


@dataclass(frozen=True)
class _Failed:
    error: BaseException


def stream_agent(agent: Sam3Agent, image: Image.Image, query: str) -> Iterator[TraceStep | Answer]:
    """Yield each ``TraceStep`` of ``agent.run(image, query)`` as it happens, then the ``Answer``.

    Exceptions raised by the run (``LLMError``, ``PromptError``, ...) are re-raised in the caller's thread.
    """
    events: queue.Queue[TraceStep | Answer | _Failed] = queue.Queue()
    abandoned = threading.Event()

    def on_step(step: TraceStep) -> None:
        if abandoned.is_set():
            raise RunAbandoned("the page stopped listening")
        events.put(step)

    def work() -> None:
        try:
            events.put(agent.run(image, query, on_step=on_step))
        except BaseException as exc:  # handed to the caller's thread, which decides
            events.put(_Failed(exc))

    threading.Thread(target=work, name="sam3-agent-demo-run", daemon=True).start()
    try:
        while True:
            event = events.get()
            if isinstance(event, _Failed):
                raise event.error
            yield event
            if isinstance(event, Answer):
                return
    finally:
        abandoned.set()
