"""A session from the viewer's layers, and back: what a save snapshots and what Restore adds.

Snapshotting runs on napari's thread and only copies: the references as a run takes them,
the labels of the result layers that changed (the user's corrections included), the accepted
targets and scores by image name. Restoring adds the saved prompts as prompt layers of the open
images of the same names, and writes the saved labels into their result layers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping

import numpy as np

from napari_sansa.files.sessions import SavedSession, SessionContent
from napari_sansa.plugin.core.runs import ExportParts
from napari_sansa.plugin.core.session import TargetKey
from napari_sansa.plugin.viewer import layers as L
from napari_sansa.plugin.viewer.large import is_lazy
from napari_sansa.plugin.viewer.layer_data import reference_prompt_layers


def open_images(viewer) -> dict[str, tuple[int, ...]]:
    """The open image layers by name, each with its labels' shape (planes + YX)."""
    out = {}
    for layer in L.image_layers(viewer):
        source = L.image_source(layer)
        out.setdefault(layer.name, source.plane_shape + source.hw)
    return out


def snapshot(
    viewer,
    parts: ExportParts | None,
    changed: Collection[str] | None,
    review,
    settings: Mapping,
    reference_images: Collection[str] = (),
) -> SessionContent:
    """What a save writes: ``parts`` the references (``None``: unchanged since the last save,
    when they were on ``reference_images``), the labels of the result layers of the ``changed``
    image ids (``None``: all of them), the review's accepted targets and scores, the widget's
    ``settings``."""
    images = {layer.metadata.get(L.ID): layer for layer in L.image_layers(viewer)}
    shapes = open_images(viewer)
    results, kept = {}, set()
    for image_id, layer in images.items():
        result = L.result_layer(viewer, image_id) if image_id else None
        if result is None or is_lazy(result.data):  # tiled labels live in their own store
            continue
        if changed is None or image_id in changed:
            results[layer.name] = np.array(result.data)
        else:
            kept.add(layer.name)
    names = {
        key: images[key.image_id].name
        for key in review.scores.keys() | review.locked
        if key.image_id in images
    }
    used = set(results) | kept
    references = None
    if parts is not None and parts.references:
        references = {
            "references": parts.references,
            "class_names": parts.class_names,
            "model": parts.model,
            "settings": parts.settings,
            "sources": parts.sources,
        }
    used |= {s["image"] for s in parts.sources} if parts is not None else set(reference_images)
    return SessionContent(
        images={name: shapes[name] for name in used if name in shapes},
        results=results,
        kept_results=frozenset(kept),
        references=references,
        references_changed=parts is not None,
        accepted=[(names[k], k.plane) for k in review.locked if k in names],
        scores={(names[k], k.plane): s for k, s in review.scores.items() if k in names},
        settings=dict(settings),
    )


def restore_layers(viewer, saved: SavedSession) -> tuple[int, list[str], dict[str, str]]:
    """Add a saved session's prompts and labels to the open images of the same names; returns
    how many references came back, the images whose labels did, and each image's id by name."""
    from napari.layers import Layer

    images = {}
    for layer in L.image_layers(viewer):
        images.setdefault(layer.name, layer)
    planes = defaultdict(list)
    references = saved.references.references if saved.references is not None else []
    for reference, source in zip(references, saved.references.sources if references else []):
        planes[source["image"]].append((tuple(source.get("plane", ())), reference.prompts))
    for name, prompts in planes.items():
        image = images.get(name)
        if image is None:  # session.json names it among its images: never, unless edited by hand
            continue
        shape = saved.images.get(name) or open_images(viewer)[name]
        for data in reference_prompt_layers(L.layer_id(image), name, shape, prompts, **L.placement(image)):
            viewer.add_layer(Layer.create(*data))
    class_names = saved.references.class_names if saved.references is not None else {}
    for name, labels in saved.results.items():
        source = L.image_source(images[name])
        result, _ = L.ensure_result_layer(viewer, source, labels.dtype)
        result.data[...] = labels
        L.name_classes(result, class_names)
        result.refresh()
    ids = {name: L.layer_id(layer) for name, layer in images.items() if name in saved.images}
    return len(references), sorted(saved.results), ids


def restored_keys(names: Collection[tuple[str, tuple[int, ...]]], ids: Mapping[str, str]) -> list[TargetKey]:
    """Targets named by image name and plane, as keys of the open images."""
    return [TargetKey(ids[name], plane) for name, plane in names if name in ids]
