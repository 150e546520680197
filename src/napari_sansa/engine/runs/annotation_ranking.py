"""Which image to annotate next: the ones the model is least sure of and that look least like
the references come first (active learning for few-shot segmentation).

Two criteria, both read from what a run already has, so ranking costs no encoder pass for
images whose features are cached:

- **uncertainty** = 1 - the prediction's confidence (:attr:`Prediction.score`: SAM2's predicted
  IoU times the mask's stability at threshold +/- 1 logit, for the least certain class): a
  hesitant or low-quality mask asks for a correction;
- **novelty** = cosine distance between the image's pooled top-level SAM2 features (the
  stride-16 features memory attention works on, averaged over the image) and those of the
  nearest reference: an image unlike every reference is one the references do not cover.

Each criterion is divided by its largest value among the candidates (so the most extreme
candidate on it scores 1 and the ratios between candidates stay), and the priority is their
weighted mean, ``(1 - w) * uncertainty + w * novelty`` with ``w = novelty_weight`` (0.5).
Images large enough to be segmented in tiles are not encoded whole, so their novelty is 0
(they are ranked by their uncertainty alone).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.inputs.images import image_hw
from napari_sansa.engine.inputs.prompts import Reference
from napari_sansa.engine.runs import predicting
from napari_sansa.engine.runs.candidates import Candidate
from napari_sansa.engine.runs.tiling import TileOptions, tile_grid
from napari_sansa.engine.runtime.runtime import HasRuntime, ImageLike, Runtime

NOVELTY_WEIGHT = 0.5


def pooled_features(runtime: Runtime, image: ImageLike) -> np.ndarray | None:
    """An image's top-level features averaged over the image (float64, unit length), from the
    cache when it is there; ``None`` for an image segmented in tiles (never encoded whole)."""
    if tile_grid(image_hw(image), TileOptions(), runtime.image_size) is not None:
        return None
    with runtime.lock:
        top = runtime.features(runtime.prepare(image)).top  # (1, C, h, w)
    vector = top.float().mean(dim=(0, 2, 3)).double().cpu().numpy()
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def novelties(runtime: Runtime, references: Sequence[Reference], targets: Sequence[ImageLike]) -> list[float]:
    """Each target's cosine distance to the nearest reference in pooled feature space (0 when
    the target or every reference is too large to be encoded whole)."""
    refs = [v for v in (pooled_features(runtime, ref.image) for ref in references) if v is not None]
    out = []
    for target in targets:
        vector = pooled_features(runtime, target)
        if vector is None or not refs:
            out.append(0.0)
            continue
        out.append(float(min(1.0 - np.dot(vector, ref) for ref in refs)))
    return out


def confidences(
    runtime: Runtime, references: Sequence[Reference], targets: Sequence[ImageLike]
) -> list[float]:
    """Each target's confidence from a propagation (no encoder pass for cached targets)."""
    scores = [1.0] * len(targets)
    run = predicting.propagate(runtime, references, targets, TileOptions(), predicting.Tiling())
    for prediction in run:
        scores[prediction.index] = prediction.score
    return scores


def _scaled(values: np.ndarray) -> np.ndarray:
    top = float(values.max()) if values.size else 0.0
    return values / top if top > 0 else np.zeros_like(values)


def rank_candidates(
    model: Runtime | HasRuntime,
    references: Sequence[Reference] | Reference,
    targets: Sequence[ImageLike],
    *,
    scores: Sequence[float | None] | None = None,
    novelty_weight: float = NOVELTY_WEIGHT,
) -> list[Candidate]:
    """The targets as :class:`Candidate`, the one whose annotation should help most first.

    ``model``: a :class:`Runtime`, or what owns one (a ``Sansa``). ``scores``: each target's
    confidence from an earlier run (:attr:`Prediction.score`); the targets without one
    (``None``, or all without ``scores``) are propagated now.
    """
    runtime = model if isinstance(model, Runtime) else model.runtime
    references = [references] if isinstance(references, Reference) else list(references)
    targets = list(targets)
    if not references:
        raise SansaError("No references: annotate at least one image before asking what to annotate next.")
    if not 0.0 <= novelty_weight <= 1.0:
        raise SansaError(f"The novelty weight must be between 0 and 1, not {novelty_weight}.")
    if scores is not None and len(scores) != len(targets):
        raise SansaError(f"{len(scores)} scores were given for {len(targets)} targets: give one per target.")
    given = list(scores) if scores is not None else [None] * len(targets)
    missing = [i for i, s in enumerate(given) if s is None]
    if missing:
        found = confidences(runtime, references, [targets[i] for i in missing])
        for i, score in zip(missing, found):
            given[i] = score
    uncertainty = np.clip(1.0 - np.asarray(given, dtype=float), 0.0, 1.0)
    novelty = np.asarray(novelties(runtime, references, targets), dtype=float)
    priority = (1 - novelty_weight) * _scaled(uncertainty) + novelty_weight * _scaled(novelty)
    candidates = [
        Candidate(i, float(uncertainty[i]), float(novelty[i]), float(priority[i]))
        for i in range(len(targets))
    ]
    return sorted(candidates, key=lambda c: (-c.priority, -c.uncertainty, c.index))
