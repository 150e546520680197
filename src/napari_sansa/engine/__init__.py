"""The compute core of napari-sansa: no Qt, no napari; arrays in, arrays out."""

from napari_sansa.engine.config import SansaConfig, allow_mps_fallback

allow_mps_fallback()  # before torch loads: it reads the variable once
from napari_sansa.engine.errors import SansaError  # noqa: E402
from napari_sansa.engine.inputs.images import Image, Multiscale  # noqa: E402
from napari_sansa.engine.inputs.prompts import Box, Mask, Points, Reference, Scribble  # noqa: E402

__all__ = [
    "Box",
    "Image",
    "Mask",
    "Multiscale",
    "Points",
    "Reference",
    "SansaConfig",
    "SansaError",
    "Scribble",
]
