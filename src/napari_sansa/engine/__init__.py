"""The compute core of napari-sansa: no Qt, no napari; arrays in, arrays out."""

from .config import SansaConfig
from .errors import SansaError
from .images import Image, Multiscale
from .prompts import Box, Mask, Points, Reference, Scribble

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
