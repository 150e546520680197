"""What the model gives back: a target's prediction, what a model was built from, a run's cost."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from napari_sansa.engine.inputs.prompts import label_dtype
from napari_sansa.engine.objects.split import DEFAULT_MIN_SIZE

if TYPE_CHECKING:
    from napari_sansa.engine.model import Sansa, _Prepared
    from napari_sansa.engine.objects.from_prediction import Objects


@dataclass(frozen=True)
class ModelInfo:
    """What a model was built from, for the record of a run."""

    sam2_size: str
    adapter_blocks: tuple[int, ...]
    channel_factor: float
    sam2_checkpoint: str = ""
    adapter_checkpoint: str = ""
    name: str = ""


def labels_from_logits(logits: Mapping[int, np.ndarray], threshold: float, dtype=None) -> np.ndarray:
    """Class ids from each class's logits, as a prediction's labels are made: where the highest
    logit is above ``threshold``, its class; elsewhere 0. For re-labelling at another threshold
    without running the model again."""
    class_ids = list(logits)
    stacked = np.stack([np.asarray(logits[c], dtype=np.float32) for c in class_ids])
    best = stacked.argmax(axis=0)
    lookup = np.asarray(class_ids, dtype=dtype or label_dtype(class_ids))
    return np.where(stacked.max(axis=0) > threshold, lookup[best], 0).astype(lookup.dtype)


@dataclass(eq=False)
class Prediction:
    """The result for one target image.

    ``labels`` holds class ids (0 = background; where classes overlap, the highest logit wins),
    ``logits`` each class's logits at the target's size, ``scores`` each class's confidence in
    [0, 1] (predicted IoU times mask stability), for ranking targets for review.
    ``propagate`` also keeps the model and the target image (``_model``, ``_target``, without
    the model input) for :meth:`instances`: its mean intensities and method "sam".
    A large image segmented in tiles has ``tiles`` > 1 (its encoder passes), ``labels`` in the
    array the caller gave (e.g. zarr), ``logits`` only if asked, and ``missing``: the windows
    ``(rows, cols)`` of tiles that could not be read (left 0).
    """

    index: int
    labels: np.ndarray
    logits: dict[int, np.ndarray] = field(default_factory=dict)
    scores: dict[int, float] = field(default_factory=dict)
    _model: Sansa | None = field(default=None, repr=False)
    _target: _Prepared | None = field(default=None, repr=False)
    tiles: int = 1
    missing: tuple[tuple[slice, slice], ...] = ()

    @property
    def complete(self) -> bool:
        """Whether every pixel was segmented (no tile was left out because it could not be read)."""
        return not self.missing

    def __getstate__(self) -> dict:
        """Pickled (e.g. sent between processes) without the model, which stays where it is."""
        return {**self.__dict__, "_model": None}

    def instances(
        self,
        method: str = "watershed",
        *,
        min_size: int = DEFAULT_MIN_SIZE,
        class_names: Mapping[int, str] | None = None,
    ) -> Objects:
        """Each object its own label: ``(labels, table)``, an :class:`~.objects.Objects`.

        "watershed" splits each class's mask where objects touch; "sam" outlines each of those
        seeds with SAM2's decoder on the target's cached features (no encoder pass). Objects
        under ``min_size`` pixels are dropped. See :mod:`napari_sansa.engine.objects.from_prediction`.
        """
        from napari_sansa.engine.objects.from_prediction import prediction_objects

        return prediction_objects(self, method, min_size=min_size, class_names=class_names)

    @property
    def score(self) -> float:
        """The lowest class score: how much the least certain class needs a look."""
        return min(self.scores.values()) if self.scores else 1.0


@dataclass(frozen=True)
class Estimate:
    """What a run of ``n_targets`` images will cost, from timings measured on this machine."""

    n_targets: int
    seconds_per_target: float
    feature_bytes_per_image: int
    cache_bytes: int
    encoder_passes: int | None = None  # images plus the extra tiles of large ones
    tiled_bytes: int = 0  # the most that one tiled target holds while it is segmented

    @property
    def run_bytes(self) -> int:
        """Memory the run needs beyond the loaded model and one encoder pass's working memory:
        cached features and tiled work (tiles in flight, blending)."""
        return self.memory_bytes + self.tiled_bytes

    @property
    def seconds(self) -> float:
        return self.seconds_per_target * self.n_targets

    @property
    def memory_bytes(self) -> int:
        """Feature memory the run may hold (bounded by the cache budget)."""
        return min(self.feature_bytes_per_image * self.passes, self.cache_bytes)

    @property
    def passes(self) -> int:
        return self.n_targets if self.encoder_passes is None else self.encoder_passes

    def __str__(self) -> str:
        minutes = self.seconds / 60
        when = f"{self.seconds:.0f} s" if minutes < 2 else f"{minutes:.0f} min"
        tiles = f" in {self.passes} tiles" if self.passes > self.n_targets else ""
        return (
            f"about {when} for {self.n_targets} image(s){tiles} ({self.seconds_per_target:.1f} s each), "
            f"up to {self.memory_bytes / 2**30:.1f} GiB of cached features"
            + (f" and {self.tiled_bytes / 2**30:.1f} GiB for tiles" if self.tiled_bytes else "")
        )
