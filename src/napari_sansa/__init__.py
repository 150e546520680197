"""napari-sansa: label a few images, and SANSA (SAM2 + adapters) labels the rest.

Importing this package is cheap: torch and sam2 load only when a model is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from napari_sansa.engine import (
    Box,
    Image,
    Mask,
    Multiscale,
    Points,
    Reference,
    SansaConfig,
    SansaError,
    Scribble,
)
from napari_sansa.engine.inputs.masks import MaskClasses, classes_from_mask
from napari_sansa.engine.metrics.scores import score_classes, score_objects
from napari_sansa.engine.objects.split import link_planes, split_instances
from napari_sansa.files.reference_sets import (
    ReferenceSet,
    load_references,
    read_reference_set,
    save_references,
)

try:
    from napari_sansa._version import version as __version__
except ImportError:  # pragma: no cover - running from a source tree without a build
    __version__ = "0.0.0"

if TYPE_CHECKING:
    from napari_sansa.engine.model import AdaptProgress, AdaptReport, ModelInfo, Prediction, Sansa

_LAZY = {
    "Sansa": "model",
    "Prediction": "model",
    "ModelInfo": "model",
    "AdaptReport": "model",
    "AdaptProgress": "model",
}


def __getattr__(name: str):
    if name == "distributed":  # imports Dask: only when asked for
        from importlib import import_module

        return import_module(".distributed", __name__)
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".engine.{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AdaptProgress",
    "AdaptReport",
    "Box",
    "Image",
    "Mask",
    "MaskClasses",
    "ModelInfo",
    "Multiscale",
    "Points",
    "Prediction",
    "Reference",
    "ReferenceSet",
    "Sansa",
    "SansaConfig",
    "SansaError",
    "Scribble",
    "classes_from_mask",
    "load_references",
    "read_reference_set",
    "save_references",
    "score_classes",
    "score_objects",
    "link_planes",
    "split_instances",
]
