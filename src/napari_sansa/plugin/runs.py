"""Recreating the references of an exported run as prompt layers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..engine.prompts import Box, Mask, Points, Scribble
from .record import RecordedReference


def recreate_reference(image, ref: RecordedReference, add_prompt_layer: Callable) -> None:
    """Draw a recorded reference's prompts into new prompt layers of ``image``."""
    index = ref.plane
    for class_id, prompts in ref.prompts.items():
        for prompt in prompts:
            if isinstance(prompt, Mask):
                layer = add_prompt_layer("labels", image.name)
                (layer.data[index] if index else layer.data)[np.asarray(prompt.mask)] = class_id
                layer.refresh()
            elif isinstance(prompt, Points):
                layer = add_prompt_layer("points", image.name)
                coords = np.asarray(prompt.coords, float)
                labels = prompt.labels if prompt.labels is not None else [1] * len(coords)
                plane = np.tile(np.asarray(index, float), (len(coords), 1))
                layer.add(np.hstack([plane, coords]) if index else coords)
                signs = ["positive" if v else "negative" for v in labels]
                layer.features = layer.features.assign(**{"class": class_id, "sign": signs})
                layer.refresh_colors()
            elif isinstance(prompt, (Box, Scribble)):
                layer = add_prompt_layer("shapes", image.name)
                if isinstance(prompt, Box):
                    rc, kind = np.array([[prompt.r0, prompt.c0], [prompt.r1, prompt.c1]]), "rectangle"
                else:
                    rc, kind = np.asarray(prompt.path, float), "path"
                plane = np.tile(np.asarray(index, float), (len(rc), 1))
                layer.add(np.hstack([plane, rc]) if index else rc, shape_type=kind)
                layer.features = layer.features.assign(**{"class": class_id})
