"""napari's reader for reference sets: *File › Open*, drag and drop, ``viewer.open``.

Opening a set's ``references.json`` brings back each reference's image and its prompts as
layers named and linked as the widget names them (``<image> prompts``), so the SANSA widget
sees them as references: press Run. The layers are handed to napari as layer data
(:mod:`.viewer.layer_data`), built without a viewer or Qt. Folders are left to napari and the
other plugins: npe2 offers a reader that accepts directories for every folder, whatever its
name patterns, so a set's folder is opened through its ``references.json``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.inputs.images import image_hw
from napari_sansa.files.reference_sets import FORMAT, file_format, read_reference_set
from napari_sansa.plugin.viewer.layer_data import reference_image_data, reference_prompt_layers
from napari_sansa.plugin.viewer.layers import ID


def read_reference_set_layers(path: str | os.PathLike) -> list[tuple]:
    """A reference set's images, each followed by its prompt layers, as napari layer data."""
    try:
        loaded = read_reference_set(path)
    except SansaError as exc:  # napari shows a reader's error as a notification: one line
        raise ValueError(str(exc)) from None
    out: list[tuple] = []
    for i, (reference, source) in enumerate(zip(loaded.references, loaded.sources)):
        image = reference_image_data(reference.image, source, i)
        name, image_id = image[1]["name"], image[1]["metadata"][ID]
        hw = image_hw(reference.image)
        out += [image, *reference_prompt_layers(image_id, name, hw, [((), reference.prompts)])]
    return out


def get_reader(path: str | list[str]) -> Callable[[str], list[tuple]] | None:
    """The reader for a reference set's ``references.json``; None for anything else."""
    paths = path if isinstance(path, list) else [path]
    if len(paths) != 1 or os.path.isdir(paths[0]) or file_format(paths[0]) != FORMAT:
        return None
    return lambda p: read_reference_set_layers(p[0] if isinstance(p, list) else p)
