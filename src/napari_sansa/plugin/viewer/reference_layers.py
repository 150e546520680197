"""Which layers annotate which image: any Labels, Points or Shapes layer can be a reference.

A layer made with the widget's *Add prompt layer* button names its image. Any other layer
(napari's own "new layer" buttons, a mask opened from a file, a layer added from a script)
annotates the image it fits: Labels by the image's planes and YX size, Points and Shapes by
their dimensionality and coordinates inside the image. When several images fit, the one whose
name the layer's name starts with or contains wins, else the image chosen in the widget. The
user's own choice, kept in the layer's metadata, overrides all of this. Result layers (classes
and objects) are never references (*Use as reference* copies a result into a prompt layer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from napari_sansa.plugin.viewer import layers as L

REFERENCE_FOR = "sansa_reference_for"  # the user's choice: an image id, or NOT_A_REFERENCE
NOT_A_REFERENCE = "none"


@dataclass(frozen=True, eq=False)
class Assignment:
    """An annotation layer, the image it annotates (``None``: no reference) and why."""

    layer: object
    image: object | None
    why: str
    fitting: list = field(default_factory=list)


def annotation_layers(viewer) -> list:
    """Labels, Points and Shapes layers that may be references (every layer but SANSA's results)."""
    from napari.layers import Labels, Points, Shapes

    return [
        layer
        for layer in viewer.layers
        if isinstance(layer, (Labels, Points, Shapes)) and not L.is_result(layer)
    ]


def _vertices(layer) -> np.ndarray:
    from napari.layers import Points

    if isinstance(layer, Points):
        return np.asarray(layer.data, dtype=np.float64).reshape(-1, layer.ndim)
    if not layer.nshapes:
        return np.empty((0, layer.ndim))
    return np.concatenate([np.asarray(d, dtype=np.float64) for d in layer.data])


def fits(layer, image) -> bool:
    """Whether an annotation layer can annotate an image layer."""
    from napari.layers import Labels

    source = L.image_source(image)
    shape = source.plane_shape + source.hw
    if isinstance(layer, Labels):
        return tuple(layer.data.shape) == shape
    if layer.ndim != len(shape):
        return False
    coords = L.to_image_coords(_vertices(layer), layer, image)
    inside = (coords >= -0.5) & (coords <= np.asarray(shape) - 0.5)
    return bool(inside.all())


def _plain(name: str) -> str:
    """A name for matching: lower case, runs of spaces, underscores and dashes as one space."""
    return re.sub(r"[\s_\-]+", " ", name.lower()).strip()


def _by_name(layer_name: str, images: list) -> object | None:
    """The image whose name the layer's name starts with (longest first), else contains:
    ``cells_0_mask`` and ``cells 0 [reference]`` both name ``cells 0``."""
    plain = _plain(layer_name)
    ranked = sorted(images, key=lambda image: -len(image.name))
    for test in (str.startswith, str.__contains__):
        for image in ranked:
            if test(plain, _plain(image.name)):
                return image
    return None


def assign(viewer, chosen: str | None = None) -> list[Assignment]:
    """Every annotation layer with the image it annotates, ``chosen`` breaking ties."""
    images = L.image_layers(viewer)
    by_id = {L.layer_id(image): image for image in images}
    out = []
    for layer in annotation_layers(viewer):
        fitting = [image for image in images if fits(layer, image)]
        override = layer.metadata.get(REFERENCE_FOR)
        made_for = layer.metadata.get(L.PROMPTS_FOR)
        if override == NOT_A_REFERENCE:
            out.append(Assignment(layer, None, "not a reference", fitting))
        elif override in by_id:
            out.append(Assignment(layer, by_id[override], "chosen", fitting))
        elif made_for in by_id:
            out.append(Assignment(layer, by_id[made_for], "prompt layer", fitting))
        elif not fitting:
            out.append(Assignment(layer, None, "fits no open image", fitting))
        elif len(fitting) == 1:
            out.append(Assignment(layer, fitting[0], "fits", fitting))
        else:
            named = _by_name(layer.name, fitting)
            picked = next((image for image in fitting if image.name == chosen), None)
            if named is not None:
                out.append(Assignment(layer, named, "by name", fitting))
            elif picked is not None:
                out.append(Assignment(layer, picked, "chosen image", fitting))
            else:
                out.append(Assignment(layer, None, "several images fit: choose one", fitting))
    return out


def layers_for(assignments: list[Assignment], image_id: str) -> list:
    """The layers that annotate one image."""
    return [a.layer for a in assignments if a.image is not None and L.layer_id(a.image) == image_id]


def choose(layer, image) -> None:
    """Record the user's choice: ``layer`` annotates ``image`` (``None``: it is no reference)."""
    layer.metadata[REFERENCE_FOR] = NOT_A_REFERENCE if image is None else L.layer_id(image)
