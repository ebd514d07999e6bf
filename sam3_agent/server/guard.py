"""The server's front door: bearer-token auth and body-size limits before any body is parsed, per-route
metrics, and one error format (``{"error": message, "type": kind}``) for every failure."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.params import Depends
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from sam3_agent.errors import ConfigError, ImageError, PromptError, Sam3AgentError
from sam3_agent.server.batcher import JobTimeout, QueueFull, ShuttingDown
from sam3_agent.server.jobs import OutOfMemory
from sam3_agent.server.metrics import ServerMetrics
from sam3_agent.server.wire import ApiError, ErrorType

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


BEARER = HTTPBearer(
    scheme_name="bearer",
    description="The server's token (`sam3-agent serve --token`, or $SAM3_AGENT_SERVER_TOKEN).",
    auto_error=False,  # declared for OpenAPI only: RequestGuard checks the token, before any body is read
)


def bearer_scheme(token: str | None) -> tuple[list[Depends], tuple[int, ...]]:
    """A ``/v1`` router's dependencies and extra error codes: with a token, the bearer scheme (so OpenAPI lists
    it, and ``/docs`` has "Authorize") and 401; without one, nothing (the routes are open)."""
    if token is None:
        return [], ()
    return [Security(BEARER)], (401,)


def error_json(status: int, kind: ErrorType, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "type": kind.value}, status_code=status, headers=headers)


def validation_message(errors: list[Any]) -> str:
    """pydantic / FastAPI validation errors as one line: ``prompts.0.text: <message>; ...``."""
    whole_body = {err.get("type") for err in errors if tuple(err.get("loc", ())) == ("body",)}
    if "missing" in whole_body:
        return "the request body is empty: send a JSON object with Content-Type: application/json"
    if whole_body & {"model_attributes_type", "model_type", "dict_type"}:
        return "the request body must be a JSON object, sent with Content-Type: application/json"
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


def as_api_error(exc: Exception) -> ApiError:
    """The HTTP answer for an exception raised while serving a request."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RequestValidationError | ValidationError):
        errors = list(exc.errors())
        if any(err.get("type") == "json_invalid" for err in errors):
            detail = next((err.get("ctx", {}).get("error") for err in errors if err.get("type") == "json_invalid"), "")
            return ApiError(400, ErrorType.INVALID_REQUEST, f"the request body is not valid JSON: {detail}")
        return ApiError(422, ErrorType.INVALID_REQUEST, f"invalid request: {validation_message(errors)}")
    if isinstance(exc, QueueFull):
        return ApiError(429, ErrorType.QUEUE_FULL, f"{exc}; retry later", {"Retry-After": str(exc.retry_after)})
    if isinstance(exc, JobTimeout):
        return ApiError(504, ErrorType.TIMEOUT, str(exc))
    if isinstance(exc, ShuttingDown):
        return ApiError(503, ErrorType.UNAVAILABLE, str(exc), {"Retry-After": "1"})
    if isinstance(exc, OutOfMemory):
        return ApiError(503, ErrorType.OUT_OF_MEMORY, str(exc), {"Retry-After": "1"})
    if isinstance(exc, ImageError):
        return ApiError(400, ErrorType.IMAGE, str(exc))
    if isinstance(exc, PromptError):
        return ApiError(422, ErrorType.PROMPT, str(exc))
    if isinstance(exc, ConfigError):
        return ApiError(400, ErrorType.INVALID_REQUEST, str(exc))
    if isinstance(exc, StarletteHTTPException):
        kind = _HTTP_KINDS.get(exc.status_code, ErrorType.INVALID_REQUEST)
        return ApiError(exc.status_code, kind, str(exc.detail), dict(exc.headers or {}))
    detail = f"{type(exc).__name__}: {exc}" if isinstance(exc, Sam3AgentError) else type(exc).__name__
    return ApiError(500, ErrorType.INTERNAL, f"internal server error ({detail}); see the server log")


_HTTP_KINDS = {404: ErrorType.NOT_FOUND, 405: ErrorType.METHOD_NOT_ALLOWED}


def _routing_error(error: ApiError, request: Request) -> ApiError:
    """Starlette's bare "Not Found" / "Method Not Allowed" said with the method, path and what the route takes."""
    path = request.url.path
    if error.type is ErrorType.METHOD_NOT_ALLOWED:
        allowed = error.headers.get("Allow") or error.headers.get("allow") or "another method"
        message = f"{request.method} is not allowed on {path}: it takes {allowed}"
        return ApiError(405, error.type, message, error.headers)
    if error.type is ErrorType.NOT_FOUND:
        return ApiError(404, error.type, f"there is no route {path} on this server (the API is listed at /docs)")
    return error


def install_error_handlers(app: FastAPI, metrics: ServerMetrics) -> None:
    """Answer every exception in the one error format, counting each by kind."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        error = as_api_error(exc)
        if isinstance(exc, StarletteHTTPException):
            error = _routing_error(error, request)
        if error.status >= 500 and error.type is ErrorType.INTERNAL:
            log.exception("unexpected error serving %s %s", request.method, request.url.path, exc_info=exc)
        metrics.count_error(error.type.value)
        return error_json(error.status, error.type, error.message, error.headers)

    handled = (ApiError, RequestValidationError, StarletteHTTPException, Sam3AgentError)
    for exc_class in (*handled, QueueFull, JobTimeout, ShuttingDown, OutOfMemory, Exception):
        app.add_exception_handler(exc_class, handle)


class RequestGuard:
    """Pure ASGI middleware in front of the app.

    - ``/v1/*`` needs ``Authorization: Bearer <token>`` when ``token`` is set (401 otherwise), checked
      before the body is read;
    - request bodies over ``max_body_bytes`` get 413, by ``Content-Length`` or while reading a chunked one
      (at most ``max_body_bytes`` are ever buffered);
    - every answer is recorded in ``metrics`` (route, status, latency).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        max_body_bytes: int,
        metrics: ServerMetrics,
        path_limits: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        self.token = token
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.path_limits = path_limits or {}  # routes taking bigger bodies (video uploads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            refusal = self._refuse_unauthorized(scope)
            if refusal is None and scope["method"] in ("POST", "PUT", "PATCH"):
                refusal, receive = await self._buffer_body(scope, receive)
            if refusal is not None:
                self.metrics.count_error(refusal.type.value)
                response = error_json(refusal.status, refusal.type, refusal.message, refusal.headers)
                await response(scope, receive, send_recording)
                return
            await self.app(scope, receive, send_recording)
        finally:
            self.metrics.observe_request(scope.get("path", ""), status[0], time.perf_counter() - started)

    def _refuse_unauthorized(self, scope: Scope) -> ApiError | None:
        if self.token is None or not str(scope.get("path", "")).startswith("/v1/"):
            return None
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        scheme, _, given = headers.get("authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="sam3-agent"'}
        if scheme.lower() != "bearer" or not given.strip():
            return ApiError(
                401, ErrorType.UNAUTHORIZED, "missing bearer token: send 'Authorization: Bearer <token>'", challenge
            )
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            return ApiError(401, ErrorType.UNAUTHORIZED, "invalid bearer token", challenge)
        return None

    async def _buffer_body(self, scope: Scope, receive: Receive) -> tuple[ApiError | None, Receive]:
        """Read the whole body (refusing it past the limit) and return a ``receive`` that replays it."""
        limit = self.path_limits.get(scope.get("path", ""), self.max_body_bytes)
        too_large = ApiError(
            413, ErrorType.TOO_LARGE, f"the request body is over the server's limit of {limit:,} bytes"
        )
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return too_large, receive
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None, _replay(b"", receive, message)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return too_large, receive
            chunks.append(chunk)
            if not message.get("more_body", False):
                return None, _replay(b"".join(chunks), receive)


def _replay(body: bytes, receive: Receive, first: Message | None = None) -> Receive:
    sent = [False]

    async def replay() -> Message:
        if not sent[0]:
            sent[0] = True
            return first or {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
