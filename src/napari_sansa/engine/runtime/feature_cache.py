"""The cache that makes every image go through the encoder only once: in memory up to a
budget, beyond it on disk (:mod:`.disk_cache`)."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np
import torch

from napari_sansa.engine.inputs.images import Image
from napari_sansa.engine.network.features import ImageFeatures
from napari_sansa.engine.runtime.allocator import trim_heap
from napari_sansa.engine.runtime.disk_cache import DiskFeatureCache
from napari_sansa.engine.runtime.process_memory import total_memory_bytes

KEY_VERSION = b"napari-sansa features v1"


def image_key(image: Image, image_size: int) -> bytes:
    """A hash of everything that decides what the encoder sees: the pixels and how they are shown.

    Computed from the user's array rather than the resized model input, so that a cached image
    skips pre-processing too.
    """
    data = np.ascontiguousarray(image.data)
    digest = hashlib.blake2b(digest_size=20)
    settings = (
        data.shape,
        data.dtype.str,
        image.contrast_limits,
        image.channel_axis,
        image.channels,
        image_size,
    )
    digest.update(KEY_VERSION + repr(settings).encode())
    digest.update(memoryview(data).cast("B"))
    return digest.digest()


class FeatureCache:
    """Least-recently-used image features, up to a byte budget (``None`` = no limit).

    Features pushed out of the budget go to ``disk`` when one is given (see
    :class:`~napari_sansa.engine.runtime.disk_cache.DiskFeatureCache`), else they are dropped.
    """

    def __init__(self, max_bytes: int | None = None, disk: DiskFeatureCache | None = None) -> None:
        self.max_bytes = max_bytes
        self.disk = disk
        self._items: OrderedDict[bytes, ImageFeatures] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.disk_hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: bytes) -> bool:
        return key in self._items or (self.disk is not None and key in self.disk)

    def in_memory(self, key: bytes) -> bool:
        """Whether the features are at hand without an encoder pass or a disk read."""
        return key in self._items

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: bytes, device: torch.device | None = None) -> ImageFeatures | None:
        with self._lock:
            features = self._items.get(key)
            if features is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return features
        if self.disk is not None:
            features = self.disk.get(key, device)
            if features is not None:
                self.disk_hits += 1
                self.put(key, features)
                return features
        with self._lock:
            self.misses += 1
        return None

    def put(self, key: bytes, features: ImageFeatures) -> None:
        evicted = self._insert(key, features)
        on_cpu = any(old.top.device.type == "cpu" for _, old in evicted)
        if self.disk is not None:
            self._spill(evicted)
        del evicted  # the last references: now the memory is free
        if on_cpu:
            trim_heap()  # else the allocator keeps the freed megabytes

    def _spill(self, evicted: list[tuple[bytes, ImageFeatures]]) -> None:
        for key, features in evicted:
            self.disk.put(key, features)

    def _insert(self, key: bytes, features: ImageFeatures) -> list[tuple[bytes, ImageFeatures]]:
        """Add features; the least recently used ones that no longer fit, taken out."""
        evicted = []
        with self._lock:
            if key in self._items:
                self._bytes -= self._items.pop(key).nbytes
            self._items[key] = features
            self._bytes += features.nbytes
            while self.max_bytes is not None and self._bytes > self.max_bytes and len(self._items) > 1:
                old_key, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes
                evicted.append((old_key, old))
        return evicted

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
        if self.disk is not None:
            self.disk.clear()


def default_cache_bytes(device: torch.device) -> int:
    """An eighth of the device's memory, at most 1 GiB: re-runs skip the encoder for 64 images
    at full size (more come back from the fp16 disk cache in milliseconds), and a 1,000-image
    stack stays under 2 GiB of growth (the allocator's overhead comes on top of the budget)."""
    total = 8 * 2**30
    try:
        if device.type == "cuda":
            total = torch.cuda.get_device_properties(device).total_memory
        else:
            total = total_memory_bytes()
    except (OSError, RuntimeError):
        pass
    return int(min(total // 8, 2**30))
