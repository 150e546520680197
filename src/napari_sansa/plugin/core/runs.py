"""What an export records of a run, and recreating references as prompt layers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from napari_sansa.engine.inputs.prompts import Box, Mask, Points, Reference, Scribble
from napari_sansa.plugin.core.record import RecordedReference
from napari_sansa.plugin.core.session import Job
from napari_sansa.plugin.core.settings import WidgetSettings


@dataclass(frozen=True, eq=False)
class ExportParts:
    """What a reference set of the run holds (the arguments of ``save_references``)."""

    references: list[Reference]
    sources: list[dict]  # per reference: {"image": layer name, "plane": [...]}
    class_names: dict[int, str] = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)


def recreate_reference(image, ref: RecordedReference, add_prompt_layer: Callable) -> None:
    """Draw a recorded reference's prompts into new prompt layers of ``image``."""
    index = ref.plane
    for class_id, prompts in ref.prompts.items():
        for prompt in prompts if isinstance(prompts, (list, tuple)) else [prompts]:
            if isinstance(prompt, Mask):
                layer = add_prompt_layer("labels", image.name)
                (layer.data[index] if index else layer.data)[np.asarray(prompt.mask) != 0] = class_id
                layer.refresh()
            elif isinstance(prompt, Points):
                layer = add_prompt_layer("points", image.name)
                coords = np.asarray(prompt.coords, float).reshape(-1, 2)
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


def record_parts(job: Job, names: dict[str, str], info, settings: WidgetSettings) -> ExportParts:
    """The run's references, where they came from, class names, model and settings, for export."""
    sources = [{"image": names[k.image_id], "plane": list(k.plane)} for k in job.reference_keys]
    model = {"name": settings.model}
    if info is not None:
        model.update(
            sam2_checkpoint=info.sam2_checkpoint,
            adapter_checkpoint=info.adapter_checkpoint,
            sam2_size=info.sam2_size,
        )
    run_settings = {
        "device": settings.device,
        "precision": settings.precision,
        "image_size": settings.image_size,
    }
    return ExportParts(list(job.references), sources, dict(job.class_names), model, run_settings)
