"""A run's result layers: added before its worker starts, tidied when it ends.

Adding a Labels layer costs napari about 0.1 s of main-thread time (vispy visuals, overlays,
layer controls), several times that while the worker computes beside it, and a canvas redraw
after it. So a run adds its layers first, a few per event-loop turn (one redraw for all of them,
napari still answers between turns), and each finished target then only assigns a plane. New
layers stay hidden until their first labels arrive: every visible layer adds to each redraw.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from napari_sansa.plugin.core.session import ImageSource, Job, TargetKey
from napari_sansa.plugin.viewer import layers as L
from napari_sansa.plugin.viewer.large import Guarded, new_labels, plane_of


def target_sources(job: Job) -> list[ImageSource]:
    """Each target image once, in the order the run reaches them."""
    return list({source.image_id: source for _, source in job.targets}.values())


@dataclass(eq=False)
class RunLayers:
    """The result layers of one run (by image id): still to prepare, added, written, and to keep."""

    viewer: object
    dtype: np.dtype
    pending: list[ImageSource]
    on_added: Callable[[ImageSource, object], None]
    class_names: dict[int, str] = field(default_factory=dict)
    tiled: set[str] = field(default_factory=set)  # images whose labels are written tile by tile
    added: dict[str, object] = field(default_factory=dict)
    written: set[str] = field(default_factory=set)
    kept: set[str] = field(default_factory=set)  # written, or painted by the user
    arrays: dict[str, object] = field(default_factory=dict)  # prepared layers' data, for the worker
    streamed: dict[TargetKey, object] = field(default_factory=dict)  # written by tiles, into this array
    unseen: set[TargetKey] = field(default_factory=set)  # tiled targets written since their last redraw

    def prepare(self, budget_s: float) -> bool:
        """Add or widen layers that need it until ``budget_s`` is spent; whether any remain."""
        start = time.perf_counter()
        while self.pending and time.perf_counter() - start < budget_s:
            source = self.pending.pop(0)
            if L.find_image(self.viewer, source.image_id) is None:
                continue  # closed since the run started
            layer = L.result_layer(self.viewer, source.image_id)
            if not L.fits(layer, source, self.dtype):
                layer = self.get(source, self.dtype)
            L.name_classes(layer, self.class_names)
            self.arrays[source.image_id] = layer.data
        return bool(self.pending)

    def get(self, source: ImageSource, dtype: np.dtype):
        """The image's result layer, added (hidden) if it is missing: not prepared, or removed by the user."""
        tiled = source.image_id in self.tiled
        layer, created = L.ensure_result_layer(self.viewer, source, dtype, visible=False, tiled=tiled)
        if created:
            self.added[source.image_id] = layer
            self.on_added(source, layer)
        return layer

    def writer(self, key: TargetKey, hw: tuple[int, int], dtype, locked: Callable[[TargetKey], bool]):
        """Where the engine writes a tiled target's labels (from the worker thread): its plane of
        the prepared result layer, writes dropped once the user locks the target."""
        array = self.arrays.get(key.image_id)
        if array is None or tuple(array.shape[-2:]) != tuple(hw) or not np.can_cast(dtype, array.dtype):
            array = new_labels(tuple(hw), dtype, tiled=True)  # its image was closed: nobody sees it
            key_plane = ()
        else:
            key_plane = key.plane
        target = Guarded(plane_of(array, key_plane), lambda: locked(key), lambda: self.unseen.add(key))
        self.streamed[key] = array
        return target

    def fill(self, image_id: str) -> bool:
        """Note that labels were written to an image's layer; whether it is a new layer to show now."""
        first = image_id in self.added and image_id not in self.written
        self.written.add(image_id)
        self.kept.add(image_id)
        return first

    def remove_empty(self) -> None:
        """Remove the layers this run added and left empty (cancelled, failed or closed images)."""
        for image_id, layer in self.added.items():
            if image_id not in self.kept and layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
