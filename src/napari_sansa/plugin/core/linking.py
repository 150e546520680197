"""Linking a stack's objects through its planes, as a job for a worker (no Qt).

A run through the stack finds objects plane by plane; at its end each object gets one id
through the planes (3D-connected, :func:`~napari_sansa.engine.objects.split.link_planes`) and
the object tables follow. The widget takes the objects layers' data on napari's thread, links
them here in a worker, and gives the layers the answer back on napari's thread.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import pandas as pd

from napari_sansa.plugin.core.progress import Progress

Tables = dict[tuple[int, ...], pd.DataFrame]  # a stack's object table of each plane


def linked(data: np.ndarray, tables: Tables) -> tuple[np.ndarray, Tables]:
    """A stack's objects with one id each through the planes, and its tables with those ids (a
    row per object and plane, ``label`` and ``index`` the object's id)."""
    from napari_sansa.engine.objects.split import link_planes

    stack = link_planes(data)
    out = {}
    for plane, rows in tables.items():
        found = data[plane] > 0
        old, new = np.unique(np.stack([data[plane][found], stack[plane][found]]), axis=1)
        rows = rows.copy()
        rows["label"] = rows["label"].map(dict(zip(old.tolist(), new.tolist())))
        rows["index"] = rows["label"]
        out[plane] = rows.dropna(subset=["label"]).astype({"label": int, "index": int})
    return stack, out


def link_stacks(
    stacks: dict[str, tuple[np.ndarray, Tables]],
) -> Generator[Progress, None, dict[str, tuple[np.ndarray, Tables]]]:
    """In a worker: :func:`linked` for each image's stack (by image id), announcing each."""
    out = {}
    for done, (image_id, (data, tables)) in enumerate(stacks.items()):
        yield Progress(done, len(stacks), "Linking objects through the stack")
        out[image_id] = linked(data, tables)
    return out
