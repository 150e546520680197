"""Microscope files (CZI, ND2, LIF, OME-TIFF...) read through bioio, plane by plane.

The engine segments 2D images, so a file's scenes, time points and z planes are its planes, in
the order scene, T, Z; its channels stay channels (as the widget's channel axis). A file of one
plane is an ordinary image (a reference or a target); a file of many is one target whose planes
are segmented one by one and whose labels are one stack (:class:`PlaneStack`). The readers are an
optional extra (``pip install "napari-sansa[formats]"``); without them, one line says what to
install. Plain and 2D OME-TIFFs keep going through tifffile (read by region when large).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.inputs.images import Image

READERS = {  # file suffix -> the bioio reader package that opens it
    ".czi": "bioio-czi",
    ".nd2": "bioio-nd2",
    ".lif": "bioio-lif",
    ".ome.tif": "bioio-ome-tiff",
    ".ome.tiff": "bioio-ome-tiff",
}
BIOIO_ONLY = (".czi", ".nd2", ".lif")  # never TIFF: always read here
PLANE_AXES = "STZ"


def _suffix(path: str | os.PathLike) -> str | None:
    name = Path(path).name.lower()
    return next((s for s in READERS if name.endswith(s)), None)


def _needs_planes(path: Path) -> bool:
    """Whether an OME-TIFF has more than one plane (scene, T or Z): then bioio reads it."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series
            axes, shape = series[0].axes, series[0].shape
    except Exception:  # unreadable here: the TIFF reader reports it
        return False
    planes = int(np.prod([n for a, n in zip(axes, shape) if a in "TZQI"], dtype=np.int64))
    return len(series) > 1 or planes > 1


def is_microscope_file(path: str | os.PathLike) -> bool:
    """Whether bioio reads this file: CZI, ND2, LIF, or an OME-TIFF with Z, T or scenes."""
    suffix = _suffix(path)
    if suffix is None or not Path(path).is_file():
        return False
    return suffix in BIOIO_ONLY or _needs_planes(Path(path))


def _missing_reader(path: Path) -> SansaError:
    package = READERS.get(_suffix(path) or "", "a bioio reader")
    return SansaError(
        f'Reading {path.name} needs bioio and {package}: pip install "napari-sansa[formats]" '
        f"(or pip install bioio {package})."
    )


@dataclass(eq=False)
class PlaneStack:
    """A microscope file opened without reading pixels: its planes (scene, T, Z) and channels."""

    path: Path
    reader: Any = field(repr=False)  # bioio.BioImage
    scenes: tuple = ()
    lead: dict[str, int] = field(default_factory=dict)  # S, T, Z sizes (1 where absent)
    hw: tuple[int, int] = (0, 0)
    rgb: bool = False  # samples (S) of an RGB camera: channels last

    @property
    def shape(self) -> tuple[int, ...]:
        """The labels' shape: the axes of more than one plane, then (H, W)."""
        return (*(n for n in self.lead.values() if n > 1), *self.hw)

    @property
    def axes(self) -> str:
        return "".join(a for a, n in self.lead.items() if n > 1) + "YX"

    @property
    def count(self) -> int:
        return int(np.prod(list(self.lead.values())))

    def indices(self) -> Iterator[tuple[int, int, int]]:
        """(scene, t, z) of every plane, in order."""
        yield from np.ndindex(*self.lead.values())

    def plane(self, index: tuple[int, int, int]) -> Image:
        """One plane as the engine's image (channels on axis 0, or last for RGB samples)."""
        scene, t, z = index
        try:
            if self.reader.current_scene_index != scene:
                self.reader.set_scene(scene)
            if self.rgb:
                data = self.reader.get_image_data("YXS", T=t, Z=z, C=0)
                return Image(np.asarray(data))
            data = np.asarray(self.reader.get_image_data("CYX", T=t, Z=z))
        except Exception as exc:  # readers raise many types for damaged files
            raise SansaError(f"Cannot read plane {index} of {self.path.name}: {exc}") from None
        return Image(data[0]) if data.shape[0] == 1 else Image(data, channel_axis=0)

    def planes(self) -> Iterator[Image]:
        for index in self.indices():
            yield self.plane(index)


def open_planes(path: str | os.PathLike) -> PlaneStack:
    """A microscope file's planes; scenes of different sizes are refused (one stack of labels)."""
    path = Path(path)
    try:
        from bioio import BioImage
        from bioio_base.exceptions import UnsupportedFileFormatError
    except ImportError:
        raise _missing_reader(path) from None
    try:
        reader = BioImage(path)
    except UnsupportedFileFormatError:
        raise _missing_reader(path) from None
    except Exception as exc:  # readers raise many types for damaged files
        raise SansaError(f"Cannot read image {path}: {exc}") from None
    scenes = tuple(reader.scenes)
    sizes = set()
    for i in range(len(scenes)):
        reader.set_scene(i)
        dims = reader.dims
        sizes.add((dims.T, dims.Z, dims.Y, dims.X))
    if len(sizes) > 1:
        raise SansaError(
            f"{path.name} holds {len(scenes)} scenes of different sizes; export each scene as its own "
            "file (e.g. OME-TIFF) to segment them."
        )
    reader.set_scene(0)
    dims = reader.dims
    rgb = "S" in dims.order and getattr(dims, "S", 1) > 1
    if rgb and dims.C > 1:
        raise SansaError(f"{path.name} has {dims.C} channels of RGB samples each; choose one channel.")
    lead = {"S": len(scenes), "T": int(dims.T), "Z": int(dims.Z)}
    return PlaneStack(path, reader, scenes, lead, (int(dims.Y), int(dims.X)), rgb)


def read_plane(path: str | os.PathLike) -> Image:
    """A microscope file of one plane as an image (a reference, or a plain target)."""
    stack = open_planes(path)
    if stack.count > 1:
        names = ("scenes", "time points", "z planes")
        what = ", ".join(f"{n} {name}" for name, n in zip(names, stack.lead.values()) if n > 1)
        raise SansaError(
            f"{Path(path).name} has {what}; here it must be one 2D image: save that plane as its own "
            "file (napari-sansa segment on one machine segments every plane of a target)."
        )
    return stack.plane((0, 0, 0))


@dataclass(eq=False)
class StackLabels:
    """The labels (and objects) of a multi-plane target, gathered plane by plane as they come."""

    stack: PlaneStack
    labels: np.ndarray | None = None
    objects: dict[int, tuple[np.ndarray, Any]] = field(default_factory=dict)
    filled: set[int] = field(default_factory=set)

    def add(self, index: tuple[int, int, int], labels: np.ndarray, objects: Any = None) -> bool:
        """One plane's labels (and ``(instance labels, table)``); True once every plane is in."""
        position = int(np.ravel_multi_index(index, tuple(self.stack.lead.values())))
        labels = np.asarray(labels)
        if self.labels is None:
            self.labels = np.zeros((self.stack.count, *labels.shape), labels.dtype)
        self.labels[position] = labels
        if objects is not None:
            self.objects[position] = (np.asarray(objects[0]), objects[1])
        self.filled.add(position)
        return len(self.filled) == self.stack.count

    def result(self) -> tuple[np.ndarray, tuple[np.ndarray, Any] | None]:
        """The labels as a stack (``stack.axes``), and the objects with ids unique in the stack
        and their table with a column per plane axis (``s``, ``t``, ``z``)."""
        import pandas as pd

        assert self.labels is not None
        shape = self.stack.shape
        labels = self.labels.reshape(shape)
        if not self.objects:
            return labels, None
        planes, tables, offset = [], [], 0
        axes = [a.lower() for a, n in self.stack.lead.items() if n > 1]
        for position in range(self.stack.count):
            plane, table = self.objects[position]
            plane = np.where(plane > 0, plane + offset, 0).astype(np.int32)
            table = table.assign(label=table["label"] + offset)
            index = np.unravel_index(position, tuple(self.stack.lead.values()))
            where = {a.lower(): int(i) for a, i in zip(self.stack.lead, index) if a.lower() in axes}
            tables.append(table.assign(**where)[[*axes, *table.columns]])
            planes.append(plane)
            offset = max(offset, int(plane.max(initial=0)))
        return labels, (np.stack(planes).reshape(shape), pd.concat(tables, ignore_index=True))
