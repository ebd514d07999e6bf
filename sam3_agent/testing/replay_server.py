"""A loopback OpenAI-compatible chat-completions server that replays scripted assistant turns.

It lets tests drive the real ``openai`` client over real HTTP with no model and no API key::

    with ReplayServer([tool_call_turn("segment_phrase", {"phrase": "cat"}), text_turn("2 cats")]) as server:
        model = OpenAIChatModel(LLMSettings(model="replay", base_url=server.base_url))
        ...
        server.assert_complete()

Each ``POST /v1/chat/completions`` consumes the next turn: an ``AssistantMessage`` is answered as a
``chat.completion`` JSON (tool-call arguments exactly as scripted, even malformed), a ``ReplayError`` as
that HTTP error. Every request body is kept in ``requests`` (and its headers in ``request_headers``)
for assertions.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from sam3_agent.agent.messages import AssistantMessage


@dataclass(frozen=True)
class ReplayError:
    """A scripted HTTP error: ``status``, JSON ``body`` (a default OpenAI-style error when None) and an
    optional ``Retry-After`` header in seconds."""

    status: int
    body: dict[str, Any] | None = None
    retry_after: float | None = None

    def payload(self) -> dict[str, Any]:
        if self.body is not None:
            return self.body
        return {"error": {"message": f"scripted HTTP {self.status}", "type": "replay_error", "code": self.status}}


class ReplayServer:
    """Serve scripted turns on ``127.0.0.1`` (ephemeral port) from a daemon thread; started on creation.

    ``native_tools=False`` imitates an endpoint without function calling: any request carrying ``tools``
    is answered 400 "tools are not supported" and consumes no turn. When the script is used up, requests
    are answered 500 with a message saying so. ``GET /v1/models`` lists ``model``.
    """

    def __init__(
        self,
        turns: Sequence[AssistantMessage | ReplayError],
        *,
        native_tools: bool = True,
        model: str = "replay-model",
    ) -> None:
        self.turns: tuple[AssistantMessage | ReplayError, ...] = tuple(turns)
        self.native_tools = native_tools
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []
        self._next = 0
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.replay = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="replay-server", daemon=True
        )
        self._thread.start()
        self._closed = False

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``, ready for ``LLMSettings(base_url=...)``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def turns_used(self) -> int:
        with self._lock:
            return self._next

    def assert_complete(self) -> None:
        """Raise AssertionError if some scripted turns were never requested."""
        left = len(self.turns) - self.turns_used
        if left:
            raise AssertionError(
                f"{left} of {len(self.turns)} scripted turns were left unused "
                f"(after {len(self.requests)} requests); the next unused one is {self.turns[self.turns_used]!r}"
            )

    def close(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if not self._closed:
            self._closed = True
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)

    def __enter__(self) -> ReplayServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _answer(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, JSON payload, extra headers) for one chat-completions request (body, lower-cased headers)."""
        with self._lock:
            self.requests.append(body)
            self.request_headers.append(headers)
            if not self.native_tools and body.get("tools"):
                message = "tools are not supported by this endpoint (replay server with native_tools=False)"
                return 400, {"error": {"message": message, "type": "invalid_request_error", "param": "tools"}}, {}
            if self._next >= len(self.turns):
                message = (
                    f"replay script exhausted: all {len(self.turns)} scripted turns were used; "
                    f"request #{len(self.requests)} has no answer"
                )
                return 500, {"error": {"message": message, "type": "replay_exhausted"}}, {}
            turn = self.turns[self._next]
            self._next += 1
            index = self._next
        if isinstance(turn, ReplayError):
            headers = {"Retry-After": f"{turn.retry_after:g}"} if turn.retry_after is not None else {}
            return turn.status, turn.payload(), headers
        return 200, _completion(turn, str(body.get("model") or self.model), index, body), {}


def _completion(turn: AssistantMessage, model: str, index: int, request: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": turn.content}
    if turn.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in turn.tool_calls
        ]
    prompt_tokens = len(json.dumps(request)) // 4
    completion_tokens = (len(turn.content or "") + sum(len(c.arguments) for c in turn.tool_calls)) // 4
    return {
        "id": f"chatcmpl-replay-{index}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if turn.tool_calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    replay: ReplayServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            model = {"id": self.server.replay.model, "object": "model", "created": 0, "owned_by": "sam3-agent"}
            self._send(200, {"object": "list", "data": [model]})
        else:
            self._send(404, {"error": {"message": f"no route GET {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route POST {self.path}", "type": "not_found"}})
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as err:
            self._send(400, {"error": {"message": f"request body is not JSON: {err}", "type": "invalid_request"}})
            return
        headers = {key.lower(): value for key, value in self.headers.items()}
        self._send(*self.server.replay._answer(body, headers))

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass
