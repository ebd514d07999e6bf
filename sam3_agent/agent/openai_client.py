"""``ChatModel`` over an OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp, ...).

The only module that imports ``openai``. Native function calling is used when the endpoint supports it;
otherwise (``tool_mode="text"``, or ``"auto"`` after the endpoint rejects ``tools``) the tools are
described in the system prompt and the reply's ``<tool>`` blocks are parsed (``text_protocol``).
Transient failures are retried here, with tenacity; the ``openai`` client's own retries are off.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import openai
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from sam3_agent.agent.llm_settings import ENV_API_KEY, ENV_BASE_URL, ENV_MODEL, ENV_TIMEOUT, LLMSettings
from sam3_agent.agent.messages import (
    AssistantMessage,
    ContentPart,
    ImagePart,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    ToolSpec,
    UserMessage,
)
from sam3_agent.agent.text_protocol import new_call_id, parse_tool_calls, to_text_protocol
from sam3_agent.errors import LLMError

log = logging.getLogger(__name__)

_TOOLS_WORD = re.compile(r"\btools?\b|tool_choice|function", re.IGNORECASE)
_UNSUPPORTED = re.compile(r"not supported|unsupported|does not support|not enabled|requires|jinja", re.IGNORECASE)

SLOW_NOTICE_AFTER = 10.0
"""Seconds a model turn may take before ``on_wait`` hears that it is still waiting (half the timeout if less)."""
RAISE_TIMEOUT = f"--llm-timeout SECONDS or {ENV_TIMEOUT}"


class LLMRequestError(LLMError):
    """An ``LLMError`` from a failed request: ``status`` is the HTTP status (None for connection errors
    and timeouts), ``attempts`` how many requests were made before giving up."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


class _ToolsRejected(Exception):
    """Internal: the endpoint refused the ``tools`` parameter (auto mode switches to the text protocol)."""


class OpenAIChatModel:
    """``ChatModel`` talking to ``settings.base_url`` with the ``openai`` client.

    ``sleep`` is the function used to wait between retries (tests pass a recorder). ``on_wait`` hears one
    line (``waiting for the LLM at URL (timeout N s, M attempts; ...)``) when a turn is slow: after
    ``SLOW_NOTICE_AFTER`` seconds, or half the timeout if that is less. In "auto" mode the switch to the text
    protocol, once made, holds for every later call on this instance.
    """

    def __init__(
        self,
        settings: LLMSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._on_wait = on_wait
        self._text_mode = settings.tool_mode == "text"
        self._client = openai.OpenAI(
            api_key=settings.api_key_or_placeholder,
            base_url=settings.base_url,
            timeout=settings.timeout,
            max_retries=0,
        )

    @property
    def base_url(self) -> str:
        """The endpoint's base URL as the client uses it (the OpenAI default when none is configured)."""
        return str(self._client.base_url)

    @property
    def uses_text_protocol(self) -> bool:
        """True when tools are currently described in text rather than sent natively."""
        return self._text_mode

    def close(self) -> None:
        """Close the underlying HTTP connections."""
        self._client.close()

    def __enter__(self) -> OpenAIChatModel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def check(self) -> list[str]:
        """One cheap request before any real work (``GET /models``; one token of chat completion where the
        endpoint has no such route), so a wrong URL, a dead or hung server or a rejected key fails at once.

        Returns the model ids the endpoint lists (empty when it lists none). Raises ``LLMRequestError``.
        """
        timeout = self.settings.timeout
        started = time.monotonic()
        with self._slow_notice(timeout, attempts=1, budget=timeout):
            try:
                raw = self._client.models.with_raw_response.list(timeout=timeout)
            except openai.APIStatusError as err:
                if err.status_code not in (404, 405, 501):
                    raise self._status_error(err, 1) from err
                return self._check_by_one_token(timeout)
            except openai.APIConnectionError as err:
                raise self._unreachable(err, 1, timeout, started) from err
        try:
            listing = raw.http_response.json()
        except ValueError:
            listing = None
        if not isinstance(listing, dict) or not isinstance(listing.get("data"), list):
            raise self._not_an_api(raw, 1)
        return [str(m["id"]) for m in listing["data"] if isinstance(m, dict) and "id" in m]

    def _check_by_one_token(self, timeout: float) -> list[str]:
        messages = [{"role": "user", "content": "Say OK."}]
        started = time.monotonic()
        try:
            raw = self._client.chat.completions.with_raw_response.create(
                model=self.settings.model, messages=messages, max_tokens=1, timeout=timeout
            )
        except openai.APIStatusError as err:
            raise self._status_error(err, 1) from err
        except openai.APIConnectionError as err:
            raise self._unreachable(err, 1, timeout, started) from err
        self._parsed(raw, 1)
        return []

    def chat(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> AssistantMessage:
        """One completion turn. Tool-call arguments are returned raw (possibly malformed JSON); an empty
        reply (no content, no calls) is returned as is. Raises ``LLMRequestError`` (an ``LLMError``)."""
        if not self._text_mode:
            try:
                return self._native_turn(messages, tools)
            except _ToolsRejected as err:
                log.warning(
                    "%s rejected native tools (%s); using the text tool protocol from now on", self.base_url, err
                )
                self._text_mode = True
        return self._text_turn(messages, tools)

    def _native_turn(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> AssistantMessage:
        wire_tools = [_wire_tool(tool) for tool in tools]
        message = self._complete([_wire_message(m) for m in messages], wire_tools)
        calls = tuple(_tool_call(call) for call in getattr(message, "tool_calls", None) or ())
        return AssistantMessage(content=getattr(message, "content", None), tool_calls=calls)

    def _text_turn(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> AssistantMessage:
        message = self._complete([_wire_message(m) for m in to_text_protocol(messages, tools)], [])
        content = getattr(message, "content", None)
        if not content:
            return AssistantMessage(content=content)
        prose, calls = parse_tool_calls(content)
        return AssistantMessage(content=prose, tool_calls=tuple(calls))

    def _complete(self, wire_messages: list[dict[str, Any]], wire_tools: list[dict[str, Any]]) -> Any:
        """POST one chat completion with retries; returns the first choice's message."""
        kwargs: dict[str, Any] = {
            "model": self.settings.model,
            "messages": wire_messages,
            "temperature": self.settings.temperature,
        }
        if self.settings.max_tokens is not None:
            kwargs["max_tokens"] = self.settings.max_tokens
        if wire_tools:
            kwargs["tools"] = wire_tools
            kwargs["tool_choice"] = "auto"
        may_fall_back = bool(wire_tools) and self.settings.tool_mode == "auto"
        attempts = timeouts = 0

        def attempt() -> Any:
            nonlocal attempts, timeouts
            attempts += 1
            try:
                return self._client.chat.completions.with_raw_response.create(**kwargs)
            except openai.APITimeoutError:
                timeouts += 1
                raise

        def retry(exc: BaseException) -> bool:
            if isinstance(exc, openai.APITimeoutError):
                return timeouts <= self.settings.timeout_retries
            return _is_transient(exc) and not (may_fall_back and _rejects_tools(exc))

        retrying = Retrying(
            sleep=self._sleep,
            stop=stop_after_attempt(self.settings.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(retry),
            before_sleep=self._log_retry,
            reraise=True,
        )
        started = time.monotonic()
        settings = self.settings
        try:
            with self._slow_notice(settings.timeout, settings.timeout_attempts, settings.hang_budget):
                raw = retrying(attempt)
        except openai.APIStatusError as err:
            if may_fall_back and _rejects_tools(err):
                raise _ToolsRejected(_detail(err)) from err
            raise self._status_error(err, attempts) from err
        except openai.APIConnectionError as err:
            raise self._unreachable(err, attempts, settings.timeout, started) from err
        completion = self._parsed(raw, attempts)
        choices = getattr(completion, "choices", None)
        if not choices:
            raise LLMRequestError(f"the LLM endpoint at {self.base_url} returned no choices", attempts=attempts)
        return choices[0].message

    def _parsed(self, raw: Any, attempts: int) -> Any:
        """The completion of a raw response; a body that is not a chat completion (an HTML page from a proxy or
        captive portal, say) is an ``LLMRequestError`` naming the URL and the body's first characters."""
        try:
            completion = raw.parse()
        except ValueError:  # json.JSONDecodeError: a JSON content type with another body
            completion = None
        if completion is None or isinstance(completion, str | bytes):
            raise self._not_an_api(raw, attempts)
        return completion

    def _not_an_api(self, raw: Any, attempts: int) -> LLMRequestError:
        body = " ".join(raw.http_response.text[:120].split())
        return LLMRequestError(
            f"the LLM endpoint at {self.base_url} answered with something that is not a chat completion "
            f"(HTTP {raw.http_response.status_code}, body starts {body!r}); check --llm-base-url: it should "
            "point at an OpenAI-compatible API, usually ending in /v1",
            attempts=attempts,
        )

    def _unreachable(
        self, err: openai.APIConnectionError, attempts: int, timeout: float, started: float
    ) -> LLMRequestError:
        """The error for a request that timed out or could not connect, naming the URL and the time spent."""
        tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        if isinstance(err, openai.APITimeoutError):
            return LLMRequestError(
                f"the LLM endpoint at {self.base_url} did not answer within {timeout:g} s ({tries}, "
                f"{time.monotonic() - started:.1f} s in all); check that the server is up, or wait longer with "
                f"{RAISE_TIMEOUT}",
                attempts=attempts,
            )
        return LLMRequestError(
            f"could not connect to the LLM endpoint at {self.base_url} ({tries}: {err.__cause__ or err}); is the "
            f"server running? The URL comes from --llm-base-url or {ENV_BASE_URL}",
            attempts=attempts,
        )

    @contextmanager
    def _slow_notice(self, timeout: float, attempts: int, budget: float) -> Iterator[None]:
        """While the block runs: one line to ``on_wait`` if it is still running after the notice delay."""
        if self._on_wait is None:
            yield
            return
        tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        line = f"waiting for the LLM at {self.base_url} (timeout {timeout:g} s, {tries}; gives up within {budget:g} s)"
        timer = threading.Timer(min(SLOW_NOTICE_AFTER, timeout / 2), self._on_wait, args=(line,))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, openai.APIStatusError):
            server_says = _retry_after(exc.response.headers)
            if server_says is not None:
                return min(server_says, self.settings.retry_after_cap)
        backoff = wait_random_exponential(
            multiplier=self.settings.retry_min_wait, min=self.settings.retry_min_wait, max=self.settings.retry_max_wait
        )
        return backoff(state)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.info("LLM request failed (%s); retry %d in %.2f s", exc, state.attempt_number, wait)

    def _status_error(self, err: openai.APIStatusError, attempts: int) -> LLMRequestError:
        status = err.status_code
        if status == 401:
            hint = f"the API key was rejected; check {ENV_API_KEY} (or OPENAI_API_KEY)"
        elif status == 403:
            hint = f"access denied; check that the API key may use model {self.settings.model!r}"
        elif status == 404:
            hint = (
                f"not found; check the model name ({ENV_MODEL}, now {self.settings.model!r}) and the base URL "
                f"({ENV_BASE_URL}; it usually ends in /v1)"
            )
        elif status == 429:
            hint = f"still rate limited after {attempts} attempts"
        elif status >= 500:
            hint = f"server error persisted after {attempts} attempts"
        else:
            hint = "the request was rejected"
        return LLMRequestError(
            f"LLM endpoint {self.base_url} answered HTTP {status}: {hint}. Server said: {_detail(err)}",
            status=status,
            attempts=attempts,
        )


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 429) or exc.status_code >= 500
    return False


def _rejects_tools(exc: BaseException) -> bool:
    """Whether an error response says the endpoint does not take the ``tools`` parameter."""
    if not isinstance(exc, openai.APIStatusError):
        return False
    text = _detail(exc)
    if not _TOOLS_WORD.search(text):
        return False
    return exc.status_code in (400, 422) or (exc.status_code >= 500 and bool(_UNSUPPORTED.search(text)))


def _detail(err: openai.APIStatusError) -> str:
    body = err.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return err.message


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date), if present."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _wire_tool(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
    }


def _wire_message(message: Message) -> dict[str, Any]:
    if isinstance(message, SystemMessage):
        return {"role": "system", "content": message.content}
    if isinstance(message, UserMessage):
        return {"role": "user", "content": _wire_user_content(message.content)}
    if isinstance(message, ToolMessage):
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    out: dict[str, Any] = {"role": "assistant", "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    elif message.content is None:
        out["content"] = ""
    return out


def _wire_user_content(parts: Sequence[ContentPart]) -> str | list[dict[str, Any]]:
    """Plain text when there is no image (accepted by every server), content parts otherwise."""
    if not any(isinstance(p, ImagePart) for p in parts):
        return "\n\n".join(p.text for p in parts if not isinstance(p, ImagePart))
    wire: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, ImagePart):
            if part.caption:
                wire.append({"type": "text", "text": part.caption})
            wire.append({"type": "image_url", "image_url": {"url": part.data_url}})
        else:
            wire.append({"type": "text", "text": part.text})
    return wire


def _tool_call(call: Any) -> ToolCall:
    """Our ``ToolCall`` from a returned function (or custom) tool call; arguments kept as sent."""
    function = getattr(call, "function", None) or getattr(call, "custom", None)
    name = getattr(function, "name", None) or ""
    args = getattr(function, "arguments", getattr(function, "input", None))
    if args is None:
        args = "{}"
    elif not isinstance(args, str):  # some servers send an object instead of JSON text
        args = json.dumps(args, ensure_ascii=False)
    return ToolCall(id=getattr(call, "id", None) or new_call_id(), name=name, arguments=args)
