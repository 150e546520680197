"""What an exported run records, and recreating its references as prompt layers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..engine.prompts import Box, Mask, Points, Scribble
from .record import RecordedReference
from .session import Job, TargetKey
from .settings import WidgetSettings


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


def record_parts(
    job: Job,
    names: dict[str, str],
    info,
    settings: WidgetSettings,
    scores: dict[TargetKey, float],
    locked: set[TargetKey],
) -> tuple[dict, dict, list[RecordedReference], list[dict]]:
    """Model, settings, references and targets of a run, as the run record stores them."""
    refs = [
        RecordedReference(names[k.image_id], k.plane, {c: list(p) for c, p in ref.prompts.items()})
        for k, ref in zip(job.reference_keys, job.references)
    ]
    model = {"name": settings.model}
    if info is not None:
        model.update(
            sam2_checkpoint=info.sam2_checkpoint,
            adapter_checkpoint=info.adapter_checkpoint,
            sam2_size=info.sam2_size,
        )
    targets = [
        {
            "image": names.get(k.image_id, "?"),
            "plane": list(k.plane),
            "score": round(s, 4),
            "locked": k in locked,
        }
        for k, s in scores.items()
    ]
    run_settings = {
        "device": settings.device,
        "precision": settings.precision,
        "image_size": settings.image_size,
    }
    return model, run_settings, refs, targets
