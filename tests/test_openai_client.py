"""OpenAIChatModel in native mode, over real HTTP through the ``openai`` package against ReplayServer."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from sam3_agent.agent.llm_settings import PLACEHOLDER_API_KEY, LLMSettings
from sam3_agent.agent.messages import (
    AssistantMessage,
    ImagePart,
    SystemMessage,
    ToolMessage,
    ToolSpec,
    UserMessage,
)
from sam3_agent.agent.openai_client import LLMRequestError, OpenAIChatModel
from sam3_agent.errors import ConfigError, LLMError
from sam3_agent.testing.replay_server import ReplayError, ReplayServer
from sam3_agent.testing.turns import text_turn, tool_call_turn

SEGMENT = ToolSpec(
    name="segment_phrase",
    description="Find every instance of a short noun phrase.",
    parameters={"type": "object", "properties": {"phrase": {"type": "string"}}, "required": ["phrase"]},
)
HISTORY = [SystemMessage(content="You segment things."), UserMessage.of("How many cats?")]


def make_model(server_or_url: ReplayServer | str, waits: list[float] | None = None, **kw: Any) -> OpenAIChatModel:
    """A client with tiny retry waits; ``waits`` (if given) records the sleeps instead of sleeping."""
    url = server_or_url if isinstance(server_or_url, str) else server_or_url.base_url
    settings = LLMSettings(
        model="replay-model", base_url=url, retry_min_wait=0.001, retry_max_wait=0.005, **{"max_retries": 3, **kw}
    )
    if waits is None:
        return OpenAIChatModel(settings)
    return OpenAIChatModel(settings, sleep=waits.append)


def test_native_tool_call_round_trip_keeps_raw_arguments() -> None:
    malformed = '{"phrase": "cat",'  # truncated JSON: the agent's business, must arrive untouched
    with ReplayServer([tool_call_turn("segment_phrase", malformed, content="Looking."), text_turn("2 cats")]) as srv:
        with make_model(srv) as model:
            reply = model.chat(HISTORY, [SEGMENT])
            assert reply.content == "Looking."
            assert [(c.name, c.arguments) for c in reply.tool_calls] == [("segment_phrase", malformed)]
            call = reply.tool_calls[0]
            result = ToolMessage(tool_call_id=call.id, name=call.name, content="error: arguments are not JSON")
            final = model.chat([*HISTORY, reply, result], [SEGMENT])
        srv.assert_complete()
    assert final == AssistantMessage(content="2 cats")
    second = srv.requests[1]["messages"]
    assert second[2] == {
        "role": "assistant",
        "content": "Looking.",
        "tool_calls": [
            {"id": call.id, "type": "function", "function": {"name": "segment_phrase", "arguments": malformed}}
        ],
    }
    assert second[3] == {"role": "tool", "tool_call_id": call.id, "content": "error: arguments are not JSON"}


def test_request_carries_tools_images_and_settings() -> None:
    image = Image.new("RGB", (8, 6), (200, 10, 10))
    part = ImagePart.from_pil(image, caption="Image 1: the photo")
    user = UserMessage.of("How many cats?", part)
    with ReplayServer([text_turn("none")]) as srv, make_model(srv, temperature=0.3, max_tokens=77) as model:
        model.chat([SystemMessage(content="sys"), user], [SEGMENT])
    body = srv.requests[0]
    assert body["model"] == "replay-model"
    assert body["temperature"] == 0.3 and body["max_tokens"] == 77
    assert body["tool_choice"] == "auto"
    assert body["tools"] == [{"type": "function", "function": SEGMENT.model_dump()}]
    assert body["messages"][0] == {"role": "system", "content": "sys"}
    content = body["messages"][1]["content"]
    assert content[0] == {"type": "text", "text": "How many cats?"}
    assert content[1] == {"type": "text", "text": "Image 1: the photo"}
    assert content[2] == {"type": "image_url", "image_url": {"url": part.data_url}}
    assert part.data_url.startswith("data:image/png;base64,")


def test_no_tools_sends_no_tool_fields_and_empty_reply_is_returned() -> None:
    empty = AssistantMessage(content=None)
    with ReplayServer([empty]) as srv, make_model(srv) as model:
        assert model.chat(HISTORY, []) == empty
    assert "tools" not in srv.requests[0] and "tool_choice" not in srv.requests[0]


@pytest.mark.parametrize(("api_key", "sent"), [(None, PLACEHOLDER_API_KEY), ("sk-test", "sk-test")])
def test_api_key_or_placeholder_is_sent(monkeypatch: pytest.MonkeyPatch, api_key: str | None, sent: str) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with ReplayServer([text_turn("ok")]) as srv, make_model(srv, api_key=api_key) as model:
        assert model.chat(HISTORY, []).content == "ok"
    assert srv.request_headers[0]["authorization"] == f"Bearer {sent}"


def test_retry_after_429_honours_retry_after_then_500_then_success() -> None:
    script = [ReplayError(429, retry_after=0.25), ReplayError(500), text_turn("done")]
    waits: list[float] = []
    with ReplayServer(script) as srv, make_model(srv, waits) as model:
        assert model.chat(HISTORY, [SEGMENT]).content == "done"
        srv.assert_complete()
    assert len(srv.requests) == 3
    assert waits[0] == pytest.approx(0.25)
    assert 0.001 <= waits[1] <= 0.005  # no header: exponential backoff within the configured bounds


def test_retry_after_is_capped() -> None:
    waits: list[float] = []
    script = [ReplayError(429, retry_after=3600), text_turn("ok")]
    with ReplayServer(script) as srv, make_model(srv, waits, retry_after_cap=0.01) as model:
        assert model.chat(HISTORY, []).content == "ok"
    assert waits == [pytest.approx(0.01)]


def test_real_sleep_between_retries() -> None:
    with ReplayServer([ReplayError(503), ReplayError(502), text_turn("ok")]) as srv, make_model(srv) as model:
        assert model.chat(HISTORY, []).content == "ok"
    assert len(srv.requests) == 3


def test_exhausted_retries_raise_llm_error() -> None:
    with ReplayServer([ReplayError(503)] * 3) as srv, make_model(srv, max_retries=2) as model:
        with pytest.raises(LLMError, match=r"HTTP 503.*after 3 attempts") as info:
            model.chat(HISTORY, [SEGMENT])
        srv.assert_complete()
    assert isinstance(info.value, LLMRequestError)
    assert (info.value.status, info.value.attempts) == (503, 3)
    assert len(srv.requests) == 3


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (401, "SAM3_AGENT_LLM_API_KEY"),
        (403, "access denied"),
        (404, "SAM3_AGENT_LLM_MODEL"),
        (400, "rejected"),
    ],
)
def test_client_errors_are_not_retried(status: int, hint: str) -> None:
    body = {"error": {"message": "scripted refusal", "type": "invalid_request_error"}}
    with (
        ReplayServer([ReplayError(status, body), text_turn("never sent")]) as srv,
        make_model(srv) as model,
        pytest.raises(LLMRequestError, match=hint) as info,
    ):
        model.chat(HISTORY, [SEGMENT])
    assert info.value.status == status and info.value.attempts == 1
    assert "scripted refusal" in str(info.value)
    assert len(srv.requests) == 1


def test_script_exhausted_answers_500_with_clear_message() -> None:
    with (
        ReplayServer([]) as srv,
        make_model(srv, max_retries=1) as model,
        pytest.raises(LLMError, match="replay script exhausted"),
    ):
        model.chat(HISTORY, [])
    assert len(srv.requests) == 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused_names_the_url() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    with make_model(url, max_retries=1) as model, pytest.raises(LLMRequestError, match="could not connect") as info:
        model.chat(HISTORY, [])
    assert url in str(info.value)
    assert info.value.status is None and info.value.attempts == 2


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP listener that accepts connections but never answers (forces read timeouts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def test_timeout_is_retried_then_reported(silent_server: str) -> None:
    with (
        make_model(silent_server, max_retries=1, timeout=0.2) as model,
        pytest.raises(LLMRequestError, match=r"did not answer within 0\.2 s") as info,
    ):
        model.chat(HISTORY, [])
    assert info.value.attempts == 2


@pytest.fixture
def portal() -> Iterator[Any]:
    """An HTTP server answering every POST with 200 and an HTML page, under a given content type."""
    import http.server
    import threading

    content_type = ["text/html"]

    class Portal(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b"<html><body>\n  Captive portal: please log in  </body></html>"
            self.send_response(200)
            self.send_header("Content-Type", content_type[0])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Portal)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1", content_type
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("content_type", ["text/html", "application/json"])
def test_a_200_that_is_not_a_chat_completion_names_the_url_and_the_body(portal: Any, content_type: str) -> None:
    url, served_type = portal
    served_type[0] = content_type
    with make_model(url) as model, pytest.raises(LLMRequestError, match="not a chat completion") as info:
        model.chat(HISTORY, [])
    assert url in str(info.value) and "'<html><body> Captive portal: please log in </body></html>'" in str(info.value)


def test_replay_server_models_route_and_assert_complete() -> None:
    with ReplayServer([text_turn("a"), text_turn("b")], model="m1") as srv:
        with urllib.request.urlopen(f"{srv.base_url}/models", timeout=5) as resp:
            listing = json.load(resp)
        assert [m["id"] for m in listing["data"]] == ["m1"]
        with make_model(srv) as model:
            model.chat(HISTORY, [])
        with pytest.raises(AssertionError, match="1 of 2 scripted turns were left unused"):
            srv.assert_complete()


def test_settings_from_env_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAM3_AGENT_LLM_MODEL", "env-model")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://openai-fallback/v1")
    monkeypatch.setenv("SAM3_AGENT_LLM_BASE_URL", "http://ours/v1")
    monkeypatch.delenv("SAM3_AGENT_LLM_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fallback")
    monkeypatch.setenv("SAM3_AGENT_LLM_TOOL_MODE", "text")
    settings = LLMSettings.from_env()
    assert (settings.model, settings.base_url, settings.api_key, settings.tool_mode) == (
        "env-model",
        "http://ours/v1",
        "sk-fallback",
        "text",
    )
    assert "sk-fallback" not in repr(settings)
    flagged = LLMSettings.from_env(model="flag-model", base_url=None, max_retries=1)
    assert (flagged.model, flagged.base_url, flagged.max_retries) == ("flag-model", "http://ours/v1", 1)
    monkeypatch.delenv("SAM3_AGENT_LLM_BASE_URL")
    assert LLMSettings.from_env().base_url == "http://openai-fallback/v1"


def test_settings_missing_model_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAM3_AGENT_LLM_MODEL", raising=False)
    monkeypatch.delenv("SAM3_AGENT_LLM_TOOL_MODE", raising=False)
    with pytest.raises(ConfigError, match="--llm-model or set SAM3_AGENT_LLM_MODEL"):
        LLMSettings.from_env()
    with pytest.raises(ConfigError, match="tool_mode"):
        LLMSettings.from_env(model="m", tool_mode="telepathy")
    with pytest.raises(ConfigError, match="retry_max_wait"):
        LLMSettings.from_env(model="m", retry_min_wait=5, retry_max_wait=1)


def test_a_hung_endpoint_is_tried_twice_and_the_wait_is_said(silent_server: str) -> None:
    lines: list[str] = []
    settings = LLMSettings(
        model="m", base_url=silent_server, timeout=0.4, max_retries=4, retry_min_wait=0.01, retry_max_wait=0.01
    )
    with (
        OpenAIChatModel(settings, on_wait=lines.append) as model,
        pytest.raises(LLMRequestError, match=r"did not answer within 0\.4 s \(2 attempts, [0-9.]+ s in all\)") as info,
    ):
        model.chat(HISTORY, [])
    assert info.value.attempts == 2, "a timed-out request is retried once, not max_retries times"
    assert "--llm-timeout SECONDS or SAM3_AGENT_LLM_TIMEOUT" in str(info.value)
    assert lines == [f"waiting for the LLM at {silent_server}/ (timeout 0.4 s, 2 attempts; gives up within 0.81 s)"]
    assert settings.hang_budget == pytest.approx(0.81)


def test_a_fast_answer_says_nothing_about_waiting() -> None:
    lines: list[str] = []
    with ReplayServer([text_turn("hi")]) as server:
        settings = LLMSettings(model="replay-model", base_url=server.base_url, timeout=0.5)
        with OpenAIChatModel(settings, on_wait=lines.append) as model:
            model.chat(HISTORY, [])
            time.sleep(0.4)  # past the notice delay (half the timeout): the finished turn's notice was cancelled
    assert lines == []


def test_check_lists_the_served_models_without_using_a_turn() -> None:
    with ReplayServer([text_turn("a")], model="m1") as server, make_model(server) as model:
        assert model.check() == ["m1"]
        model.chat(HISTORY, [])
        server.assert_complete()


def test_check_fails_fast_on_a_dead_a_hung_or_a_wrong_endpoint(silent_server: str, portal: Any) -> None:
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    with make_model(dead) as model, pytest.raises(LLMRequestError, match="could not connect") as info:
        model.check()
    assert info.value.attempts == 1
    with make_model(silent_server, timeout=0.3) as model, pytest.raises(LLMRequestError, match=r"within 0\.3 s"):
        model.check()
    url, _ = portal  # GET /models is not served (501): one token of chat completion instead, answered by HTML
    with make_model(url) as model, pytest.raises(LLMRequestError, match="not a chat completion"):
        model.check()


def test_the_timeout_comes_from_the_environment_and_alone_configures_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SAM3_AGENT_LLM_MODEL", "SAM3_AGENT_LLM_BASE_URL", "OPENAI_BASE_URL", "SAM3_AGENT_LLM_TOOL_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SAM3_AGENT_LLM_TIMEOUT", "7.5")
    assert LLMSettings.configured() is None and LLMSettings.configured(timeout=3.0) is None
    assert LLMSettings.configured(model="m").timeout == 7.5
    assert LLMSettings.configured(model="m", timeout=3.0).timeout == 3.0
    monkeypatch.setenv("SAM3_AGENT_LLM_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="invalid LLM settings: timeout"):
        LLMSettings.from_env(model="m")
