"""The compute core of napari-sansa: no Qt, no napari; arrays in, arrays out."""

from napari_sansa.engine.config import SansaConfig
from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.inputs.images import Image, Multiscale
from napari_sansa.engine.inputs.prompts import Box, Mask, Points, Reference, Scribble

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
