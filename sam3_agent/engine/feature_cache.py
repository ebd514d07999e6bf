"""Content digests of images and a bounded LRU cache of per-image backbone features.

The cache is generic over what it stores (the transformers engine stores SAM 3 vision features), so this
module does not import torch.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Generic, TypeVar

from PIL import Image

V = TypeVar("V")


def image_digest(image: Image.Image) -> str:
    """Hex blake2b digest (32 chars) of an image's mode, size and raw pixel bytes.

    Two images get the same digest exactly when they hold the same pixels in the same mode and size,
    whatever file or object they came from. Costs one pass over the pixels (about 1 ms per megapixel).
    """
    hasher = hashlib.blake2b(digest_size=16)
    hasher.update(f"{image.mode}:{image.width}x{image.height}:".encode())
    hasher.update(image.tobytes())
    return hasher.hexdigest()


class FeatureCache(Generic[V]):
    """Least-recently-used map from image digest to features, holding at most ``capacity`` entries.

    ``capacity`` 0 disables caching (every ``get`` misses, ``put`` stores nothing). ``hits`` and ``misses``
    count ``get`` calls since construction or the last ``clear(reset_counters=True)``.
    """

    def __init__(self, capacity: int = 8) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, digest: object) -> bool:
        return digest in self._entries

    def keys(self) -> list[str]:
        """Cached digests, least recently used first."""
        return list(self._entries)

    def get(self, digest: str) -> V | None:
        """The features for ``digest`` (marking them most recently used), or None on a miss."""
        value = self._entries.get(digest)
        if value is None:
            self.misses += 1
            return None
        self._entries.move_to_end(digest)
        self.hits += 1
        return value

    def put(self, digest: str, value: V) -> None:
        """Store ``value`` as the most recently used entry, evicting the least recently used beyond capacity."""
        if self.capacity == 0:
            return
        self._entries[digest] = value
        self._entries.move_to_end(digest)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def clear(self, *, reset_counters: bool = False) -> None:
        """Drop every entry (and zero ``hits`` / ``misses`` if asked)."""
        self._entries.clear()
        if reset_counters:
            self.hits = 0
            self.misses = 0
