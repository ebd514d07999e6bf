"""``RemoteSegmenter``: the ``Segmenter`` protocol over HTTP, talking to ``sam3-agent serve``.

The agent, CLI, demo and integrations use it exactly like an in-process ``Sam3Engine``. Each image is
registered once (PNG, lossless, so the server sees the very pixels; the digest is remembered) and later
calls send only prompts with its id; an id the server has evicted is registered again transparently.
Errors come back as the package's exceptions: a bad prompt as ``PromptError``, a bad image as
``ImageError``, a refused token as ``ConfigError``; 429 / 503 and connection failures are retried with
backoff (honouring ``Retry-After``) and end as ``SegmentationServerError`` if they persist.
"""

from __future__ import annotations

import io
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from PIL import Image
from pydantic import ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from sam3_agent.engine.feature_cache import image_digest
from sam3_agent.engine.protocol import Segmenter, number_instances
from sam3_agent.errors import CheckpointError, ConfigError, ImageError, PromptError, Sam3AgentError
from sam3_agent.images import check_pil_image
from sam3_agent.schema import BoxXYXY, ClickPrompt, Instance, Point, Prompt, Thresholds
from sam3_agent.server.settings import TOKEN_ENV
from sam3_agent.server.wire import ErrorType, ImageInfo, SegmentAtResponse, SegmentResponse, ServerInfo

RETRY_STATUSES = frozenset({429, 502, 503})


class SegmentationServerError(Sam3AgentError):
    """The segmentation server could not be reached, stayed busy through the retries, or failed."""


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _UnknownImage(Exception):
    """The server no longer holds the image id (evicted or restarted)."""


class RemoteSegmenter:
    """A ``Segmenter`` backed by a segmentation server.

    Args:
        base_url: the server, e.g. ``http://gpu-box:8000``.
        token: bearer token; None: $SAM3_AGENT_SERVER_TOKEN if set, else no token.
        timeout: seconds allowed per HTTP request (the server has its own per-request timeout).
        max_retries: retries of a request answered 429 / 502 / 503 or failing to connect.
        retry_max_wait: cap in seconds on one wait between retries (also on the server's Retry-After).
        client: an ``httpx.Client`` to send through (e.g. a test client); its base URL is ignored.
        sleep: how to wait between retries (tests pass a recorder).

    ``registrations`` counts the images uploaded so far. Thread-safe: one instance may serve many threads.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 120.0,
        max_retries: int = 4,
        retry_max_wait: float = 10.0,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"the server URL must start with http:// or https://, got {base_url!r}")
        if max_retries < 0 or timeout <= 0:
            raise ConfigError(f"need max_retries >= 0 and timeout > 0, got {max_retries=}, {timeout=}")
        self.base_url = base_url.rstrip("/")
        token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        self.max_retries = max_retries
        self.retry_max_wait = retry_max_wait
        self.timeout = timeout
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)))
        self._owns_client = client is None
        self._sleep = sleep
        self._ids: OrderedDict[str, str] = OrderedDict()  # local pixel digest -> server image id
        self.query_cap: int | None = None  # the server's SAM 3 object queries per pass, known after load()
        self._lock = threading.Lock()
        self.registrations = 0

    # -- Segmenter -----------------------------------------------------------------------------------------

    def segment(
        self, image: Image.Image, prompts: Sequence[Prompt], thresholds: Thresholds | None = None
    ) -> list[list[Instance]]:
        """See ``Segmenter.segment``: runs on the server, same instances as the engine there returns (ids 1..N
        across the prompts, as the server numbers them; an older server's per-prompt ids are renumbered).

        Raises:
            PromptError: the server refused a prompt (e.g. a box outside the image).
            ImageError: not a PIL image, or the server refused the image (too large, too many pixels).
            ConfigError: the token was refused, or the URL is not a segmentation server.
            SegmentationServerError: unreachable, busy past the retries, timed out, or failed.
        """
        prompts = list(prompts)
        if not prompts:
            return []
        rgb = _rgb(image)
        body: dict[str, Any] = {"prompts": [p.model_dump(mode="json") for p in prompts]}
        if thresholds is not None:
            body["thresholds"] = thresholds.model_dump(mode="json")
        answer = _parse(SegmentResponse, self._post_image(rgb, "/v1/segment", body))
        if len(answer.instances) != len(prompts):
            raise SegmentationServerError(
                f"the server answered {len(answer.instances)} result lists for {len(prompts)} prompts"
            )
        return number_instances(answer.instances)

    def _post_image(self, rgb: Image.Image, path: str, body: dict[str, Any]) -> httpx.Response:
        """POST ``body`` about ``rgb`` (registered once, by digest) to ``path``; register again, once, if the
        server forgot the image. Returns the response as ``_request`` does."""
        digest = image_digest(rgb)
        for _ in range(2):  # a second try only if the server forgot the image
            image_id = self._registered(rgb, digest)
            try:
                return self._request("POST", path, json={"image_id": image_id, **body})
            except _UnknownImage:
                with self._lock:
                    self._ids.pop(digest, None)
        raise SegmentationServerError("the server forgot the image right after registering it twice; is it overloaded?")

    def segment_at(
        self,
        image: Image.Image,
        points: Sequence[Point] = (),
        labels: Sequence[int] | None = None,
        box: BoxXYXY | None = None,
        thresholds: Thresholds | None = None,
    ) -> Instance:
        """See ``Clicker.segment_at``: the clicked object, by SAM 3's tracker on the server (``/v1/segment_at``).

        Raises:
            PromptError: bad clicks (checked here first, then by the server). CheckpointError: the server has
                no click engine (its checkpoint lacks the tracker). Otherwise as ``segment``.
        """
        rgb = _rgb(image)
        prompt = ClickPrompt.of(points, labels, box)
        prompt.check_inside(rgb.width, rgb.height)
        body: dict[str, Any] = prompt.model_dump(mode="json")
        if thresholds is not None:
            body["thresholds"] = thresholds.model_dump(mode="json")
        found = _parse(SegmentAtResponse, self._post_image(rgb, "/v1/segment_at", body)).instance
        return found if found.id == 1 else found.model_copy(update={"id": 1})

    # -- the rest of the API -------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return True

    def load(self) -> RemoteSegmenter:
        """Check that the server answers and takes the token (``GET /v1/info``); returns self."""
        self.query_cap = self.info().query_cap
        return self

    def info(self) -> ServerInfo:
        """What the server runs and its limits."""
        return _parse(ServerInfo, self._request("GET", "/v1/info"))

    def ready(self) -> bool:
        """Whether ``/readyz`` says the server takes requests now (no retries; False if unreachable)."""
        try:
            return self._client.get(self.base_url + "/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def register(self, image: Image.Image) -> str:
        """Register ``image`` on the server (once per content) and return its id."""
        rgb = _rgb(image)
        return self._registered(rgb, image_digest(rgb))

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> RemoteSegmenter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------------------

    def _registered(self, rgb: Image.Image, digest: str) -> str:
        with self._lock:
            known = self._ids.get(digest)
            if known is not None:
                self._ids.move_to_end(digest)
                return known
        buffer = io.BytesIO()
        rgb.save(buffer, format="PNG", compress_level=1)
        response = self._request("POST", "/v1/images", content=buffer.getvalue(), headers={"Content-Type": "image/png"})
        image_id = _parse(ImageInfo, response).image_id
        with self._lock:
            self.registrations += 1
            self._ids[digest] = image_id
            while len(self._ids) > 1024:
                self._ids.popitem(last=False)
        return image_id

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._send(method, path, **kwargs)
        except _Retryable as exc:
            tries = self.max_retries + 1
            raise SegmentationServerError(f"{exc} (gave up after {tries} attempt{'s' * (tries > 1)})") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, self.retry_max_wait)
        return min(self.retry_max_wait, 0.25 * 2 ** (state.attempt_number - 1) * (0.5 + random.random()))

    def _send(self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        url = self.base_url + path
        try:
            response = self._client.request(method, url, headers={**self._headers, **(headers or {})}, **kwargs)
        except httpx.TimeoutException as exc:
            raise SegmentationServerError(
                f"the segmentation server at {self.base_url} gave no answer within {self.timeout:g} s ({exc!r})"
            ) from None
        except httpx.TransportError as exc:
            raise _Retryable(f"cannot reach the segmentation server at {self.base_url}: {exc}") from None
        if response.status_code < 400:
            return response
        raise self._error(response, path)

    def _error(self, response: httpx.Response, path: str) -> Exception:
        status = response.status_code
        try:
            payload = response.json()
            message, kind = str(payload["error"]), str(payload.get("type", ""))
        except (ValueError, KeyError, TypeError):
            message, kind = response.text[:300] or response.reason_phrase, ""
        where = f"segmentation server {self.base_url}"
        if kind == ErrorType.UNKNOWN_IMAGE:
            return _UnknownImage(message)
        if kind == ErrorType.NOT_SUPPORTED:
            return CheckpointError(f"the {where} cannot do this: {message}")
        if status in RETRY_STATUSES:
            return _Retryable(f"the {where} is unavailable (HTTP {status}): {message}", _retry_after(response))
        if status == 401:
            return ConfigError(
                f"the {where} refused the request ({message}): check the token (--token or ${TOKEN_ENV})"
            )
        if kind in (ErrorType.IMAGE, ErrorType.TOO_LARGE) or status == 413:
            return ImageError(f"the {where} refused the image: {message}")
        if kind in (ErrorType.PROMPT, ErrorType.INVALID_REQUEST) or status in (400, 422):
            return PromptError(f"the {where} refused the request: {message}")
        if status in (404, 405):
            return ConfigError(
                f"{self.base_url} has no {path}: is it a sam3-agent segmentation server (sam3-agent serve)?"
            )
        return SegmentationServerError(f"the {where} failed on {path} (HTTP {status}): {message}")


def make_segmenter(
    checkpoint: str | Path | None = None,
    server: str | None = None,
    token: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    *,
    load: bool = True,
    **engine_options: Any,
) -> Segmenter:
    """The segmenter a command asked for: a ``RemoteSegmenter`` when ``server`` is given, else an
    in-process ``Sam3Engine(checkpoint, device=, dtype=, **engine_options)``; with ``load``, loaded (or the
    server checked) now. ``engine_options`` (e.g. ``cache_size``) are ignored with ``server``: the server
    has its own. ``token`` None: $SAM3_AGENT_SERVER_TOKEN if set.

    Raises:
        ConfigError: ``server`` together with engine options (they belong to the server), or ``token``
            without ``server``. CheckpointError / SegmentationServerError: from loading or checking.
    """
    if server:
        given = [name for name, value in (("checkpoint", checkpoint), ("device", device), ("dtype", dtype)) if value]
        if given:
            raise ConfigError(
                f"--server runs SAM 3 on the server: drop {', '.join('--' + g for g in given)} "
                "(set them on `sam3-agent serve`)"
            )
        remote = RemoteSegmenter(server, token=token)
        return remote.load() if load else remote
    if token:
        raise ConfigError("--token is the segmentation server's token: give --server URL too")
    from sam3_agent.engine.transformers_engine import Sam3Engine

    engine = Sam3Engine(checkpoint, device=device, dtype=dtype, **engine_options)
    return engine.load() if load else engine


def _rgb(image: object) -> Image.Image:
    image = check_pil_image(image)
    return image if image.mode == "RGB" else image.convert("RGB")  # as Sam3Engine converts


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _parse(model: type[Any], response: httpx.Response) -> Any:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise SegmentationServerError(
            f"the segmentation server answered {response.request.url.path} with something unexpected: {exc}"
        ) from None
