"""Logits kept after a run, so that a new threshold re-labels results without the model.

Kept in float16 (2 bytes a pixel and class: 4 MiB for a 1024x1024 target with two classes)
up to a budget; beyond it the oldest targets' logits are dropped, and those targets keep their
labels when the threshold moves. Targets segmented in tiles keep none (their logits may not
fit in memory). :func:`relabelled` makes the labels at a new threshold, in a worker.
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

    def put(self, key: Hashable, logits: Mapping[int, np.ndarray]) -> list[Hashable]:
        """Keep a target's logits; returns the targets whose logits are not kept because of it
        (the oldest, or this one if it alone is over the budget)."""
        self.drop(key)
        kept = {int(c): np.asarray(v, dtype=np.float16) for c, v in logits.items()}
        size = sum(v.nbytes for v in kept.values())
        if not kept or size > self.budget:
            return [key]
        self._kept[key] = kept
        self.nbytes += size
        dropped = []
        while self.nbytes > self.budget:
            old_key, old = self._kept.popitem(last=False)
            self.nbytes -= sum(v.nbytes for v in old.values())
            dropped.append(old_key)
        return dropped

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


def relabelled(
    kept: list[tuple[Hashable, dict[int, np.ndarray], np.dtype]], threshold: float
) -> Iterator[tuple[Hashable, dict[int, np.ndarray], np.ndarray, float]]:
    """In a worker: each kept target's labels at ``threshold`` (a logit), in the given order
    (the planes on screen first), with the logits they came from and the threshold."""
    from napari_sansa.engine.runs.results import labels_from_logits

    for key, logits, dtype in kept:
        yield key, logits, labels_from_logits(logits, threshold, dtype), threshold
