"""Registered images of the server: a bounded map from content digest to decoded RGB image (LRU + TTL + bytes).

Clients register an image once and then send only prompts with its id. The id is the digest of the decoded
pixels (``sam3_agent.engine.feature_cache.image_digest``, the engine's feature-cache key too), so
registering the same image again is free and any client may use any id it has seen.

Memory: an entry is the one decoded image the requests use (no encoded bytes or other copies are kept), and
the registry holds at most ``max_bytes`` of them, counted as the decoded pixels take in memory (Pillow keeps
an RGB pixel in 4 bytes: a 7000x7000 image is 196 MB, whatever its file size). A compressed "bomb" of a few
tens of KB therefore counts for what it costs, and registering more evicts the least recently used images.
``large_image_blocks`` makes the memory of an evicted image go back to the operating system.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from sam3_agent.engine.feature_cache import image_digest
from sam3_agent.errors import ImageError
from sam3_agent.server.wire import ApiError, ErrorType, RegistryUsage

DEFAULT_MAX_BYTES = 1 << 30
"""Default cap on the registry's decoded bytes (1 GiB: five 50-megapixel images, or about 20 of 12 MP)."""

PILLOW_BLOCK_BYTES = 64 * 2**20
"""Pillow block size the server uses: over glibc's largest mmap threshold (32 MiB on 64-bit)."""

_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "LA": 4, "PA": 4}


def image_bytes(image: Image.Image) -> int:
    """Bytes a decoded PIL image holds in memory: 4 per pixel for RGB / RGBA / I / F, 1 for L / P / 1."""
    return image.width * image.height * _BYTES_PER_PIXEL.get(image.mode, 4)


def large_image_blocks() -> None:
    """Have Pillow allocate a large image in blocks of ``PILLOW_BLOCK_BYTES`` (default: 16 MiB), unless
    $PILLOW_BLOCK_SIZE chose a size.

    glibc serves 16 MiB requests from the process's heaps once large blocks have been freed, and keeps what an
    evicted image frees there; a block over 32 MiB is a mapping of its own, unmapped when freed. Measured with
    ``tools/load_test_registry.py`` (twelve 7000x7000 uploads, 935 MB registered): 1,575 MB resident with 16 MiB
    blocks, 1,003 MB with 64 MiB ones. Process-wide, and harmless elsewhere: images under a block take one
    allocation of their own size either way.
    """
    core = Image.core
    if "PILLOW_BLOCK_SIZE" not in os.environ and core.get_block_size() < PILLOW_BLOCK_BYTES:
        core.set_block_size(PILLOW_BLOCK_BYTES)


@dataclass
class _Entry:
    image: Image.Image
    nbytes: int
    used: float


class ImageRegistry:
    """At most ``capacity`` images and ``max_bytes`` decoded bytes; one unused for ``ttl_s`` seconds is dropped;
    past either bound the least recently used go first. Thread-safe.

    ``hits`` / ``misses`` count ``get`` calls that found / did not find their id; ``evictions`` counts images
    dropped to make room (not by the TTL).
    """

    def __init__(
        self,
        capacity: int,
        ttl_s: float,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1 or ttl_s <= 0 or max_bytes < 1:
            raise ValueError(f"need capacity >= 1, ttl_s > 0, max_bytes >= 1; got {capacity=}, {ttl_s=}, {max_bytes=}")
        self.capacity = capacity
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._entries)

    def __contains__(self, image_id: object) -> bool:
        with self._lock:
            self._expire()
            return image_id in self._entries

    @property
    def nbytes(self) -> int:
        """Decoded bytes held now (never more than ``max_bytes``)."""
        with self._lock:
            self._expire()
            return self._bytes

    def add(self, image: Image.Image, image_id: str | None = None) -> tuple[Image.Image, str]:
        """Store an RGB image (most recently used); return the image to use and its id (``image_id`` if its
        digest is known). An id already held keeps its stored image, which is returned (one copy per content).

        Raises:
            ImageError: the image alone decodes to more than ``max_bytes``.
        """
        image_id = image_id or image_digest(image)
        size = image_bytes(image)
        if size > self.max_bytes:
            raise ImageError(
                f"the image is {image.width}x{image.height}, {size:,} bytes decoded, over the server's image memory "
                f"of {self.max_bytes:,} bytes (sam3-agent serve --max-image-mb): send a smaller image"
            )
        with self._lock:
            self._expire()
            held = self._entries.get(image_id)
            if held is not None:
                held.used = self._clock()
                self._entries.move_to_end(image_id)
                return held.image, image_id
            self._entries[image_id] = _Entry(image, size, self._clock())
            self._bytes += size
            while len(self._entries) > self.capacity or self._bytes > self.max_bytes:
                self._drop_oldest()
                self.evictions += 1
        return image, image_id

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
                    f"unknown image_id {image_id!r}: register the image with POST /v1/images first (the server "
                    f"keeps the {self.capacity} most recently used images, at most {self.max_bytes:,} bytes "
                    f"decoded, each for {self.ttl_s:g} s)",
                )
            self.hits += 1
            entry.used = self._clock()
            self._entries.move_to_end(image_id)
            return entry.image

    def usage(self) -> RegistryUsage:
        """Images and decoded bytes held, and their bounds (for ``/readyz``)."""
        with self._lock:
            self._expire()
            return RegistryUsage(
                images=len(self._entries), max_images=self.capacity, bytes=self._bytes, max_bytes=self.max_bytes
            )

    def _drop_oldest(self) -> None:
        _, entry = self._entries.popitem(last=False)
        self._bytes -= entry.nbytes

    def _expire(self) -> None:
        oldest_allowed = self._clock() - self.ttl_s
        while self._entries and next(iter(self._entries.values())).used < oldest_allowed:
            self._drop_oldest()
