"""Image features and the cache that makes every image go through the encoder only once."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch


@dataclass(eq=False)
class ImageFeatures:
    """What the SAM2 heads need of one encoded image (batch size 1, channels first)."""

    high_res: tuple[torch.Tensor, torch.Tensor]  # strides 4 and 8, already projected for the decoder
    top: torch.Tensor  # stride 16, the features memory attention works on

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.high_res, self.top))

    def top_tokens(self) -> torch.Tensor:
        """Top-level features as ``(HW, 1, C)`` tokens."""
        return self.top.flatten(2).permute(2, 0, 1)


def content_key(model_input: torch.Tensor) -> bytes:
    """A hash of exactly what the encoder would see."""
    data = model_input.detach().cpu().contiguous().numpy()
    digest = hashlib.blake2b(digest_size=20)
    digest.update(str(data.shape).encode())
    digest.update(data.tobytes())
    return digest.digest()


class FeatureCache:
    """Least-recently-used image features, up to a byte budget (``None`` = no limit)."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[bytes, ImageFeatures] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: bytes) -> bool:
        return key in self._items

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: bytes) -> ImageFeatures | None:
        with self._lock:
            features = self._items.get(key)
            if features is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return features

    def put(self, key: bytes, features: ImageFeatures) -> None:
        with self._lock:
            if key in self._items:
                self._bytes -= self._items.pop(key).nbytes
            self._items[key] = features
            self._bytes += features.nbytes
            while self.max_bytes is not None and self._bytes > self.max_bytes and len(self._items) > 1:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= evicted.nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
