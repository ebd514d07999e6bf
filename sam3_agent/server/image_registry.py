"""Registered images of the server: a bounded map from content digest to decoded RGB image (LRU + TTL).

Clients register an image once and then send only prompts with its id. The id is the digest of the decoded
pixels (``sam3_agent.engine.feature_cache.image_digest``, the engine's feature-cache key too), so
registering the same image again is free and any client may use any id it has seen.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from PIL import Image

from sam3_agent.engine.feature_cache import image_digest
from sam3_agent.server.wire import ApiError, ErrorType


class ImageRegistry:
    """At most ``capacity`` images; one unused for ``ttl_s`` seconds is dropped; thread-safe.

    ``hits`` / ``misses`` count ``get`` calls that found / did not find their id.
    """

    def __init__(self, capacity: int, ttl_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 1 or ttl_s <= 0:
            raise ValueError(f"capacity must be >= 1 and ttl_s > 0, got {capacity=}, {ttl_s=}")
        self.capacity = capacity
        self.ttl_s = ttl_s
        self.hits = 0
        self.misses = 0
        self._clock = clock
        self._entries: OrderedDict[str, tuple[Image.Image, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._entries)

    def __contains__(self, image_id: object) -> bool:
        with self._lock:
            self._expire()
            return image_id in self._entries

    def add(self, image: Image.Image, image_id: str | None = None) -> str:
        """Store an RGB image (most recently used) and return its id; ``image_id`` if its digest is known."""
        image_id = image_id or image_digest(image)
        with self._lock:
            self._entries[image_id] = (image, self._clock())
            self._entries.move_to_end(image_id)
            self._expire()
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return image_id

    def get(self, image_id: str) -> Image.Image:
        """The image registered as ``image_id`` (now most recently used).

        Raises:
            ApiError: 404 ``unknown_image`` when the id was never registered, expired or was evicted.
        """
        with self._lock:
            self._expire()
            entry = self._entries.get(image_id)
            if entry is None:
                self.misses += 1
                raise ApiError(
                    404,
                    ErrorType.UNKNOWN_IMAGE,
                    f"unknown image_id {image_id!r}: register the image with POST /v1/images first "
                    f"(the server keeps the {self.capacity} most recently used images for {self.ttl_s:g} s)",
                )
            self.hits += 1
            self._entries[image_id] = (entry[0], self._clock())
            self._entries.move_to_end(image_id)
            return entry[0]

    def _expire(self) -> None:
        oldest_allowed = self._clock() - self.ttl_s
        while self._entries:
            _, (_, used) = next(iter(self._entries.items()))
            if used >= oldest_allowed:
                break
            self._entries.popitem(last=False)
