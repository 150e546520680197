"""Logits kept after a run, so that a new threshold re-labels results without the model.

Kept in float16 (2 bytes a pixel and class: 4 MiB for a 1024x1024 target with two classes)
up to a budget; beyond it the oldest targets' logits are dropped, and those targets keep their
labels when the threshold moves. Targets segmented in tiles keep none (their logits may not
fit in memory).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator, Mapping

import numpy as np

DEFAULT_BUDGET = 1 << 30


class KeptLogits:
    """Each target's class logits (float16), oldest dropped beyond ``budget`` bytes."""

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self.budget = budget
        self._kept: OrderedDict[Hashable, dict[int, np.ndarray]] = OrderedDict()
        self.nbytes = 0

    def put(self, key: Hashable, logits: Mapping[int, np.ndarray]) -> None:
        self.drop(key)
        kept = {int(c): np.asarray(v, dtype=np.float16) for c, v in logits.items()}
        size = sum(v.nbytes for v in kept.values())
        if not kept or size > self.budget:
            return
        self._kept[key] = kept
        self.nbytes += size
        while self.nbytes > self.budget:
            _, old = self._kept.popitem(last=False)
            self.nbytes -= sum(v.nbytes for v in old.values())

    def drop(self, key: Hashable) -> None:
        old = self._kept.pop(key, None)
        if old is not None:
            self.nbytes -= sum(v.nbytes for v in old.values())

    def get(self, key: Hashable) -> dict[int, np.ndarray] | None:
        return self._kept.get(key)

    def items(self) -> Iterator[tuple[Hashable, dict[int, np.ndarray]]]:
        return iter(list(self._kept.items()))

    def __len__(self) -> int:
        return len(self._kept)
