"""Opening large targets lazily: zarr arrays, OME-Zarr images and big TIFFs read by region.

Nothing here reads pixels: the arrays returned (zarr arrays, or views of them without singleton
time/depth axes) are sliced by the engine tile by tile, so only the chunks, tiles or strips a tile
touches are read. TIFFs go through tifffile's zarr store, so the same holds for them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_sansa.engine.errors import SansaError

ZARR_SUFFIXES = (".zarr",)
ZARR_MARKERS = ("zarr.json", ".zarray", ".zgroup", ".zattrs")
SPATIAL = ("y", "x")


def is_zarr_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a zarr store: a folder named ``*.zarr`` or holding zarr metadata."""
    path = Path(path)
    if not path.is_dir():
        return False
    return path.suffix.lower() in ZARR_SUFFIXES or any((path / m).is_file() for m in ZARR_MARKERS)


def is_ome_zarr_name(path: str | os.PathLike) -> bool:
    return Path(path).name.lower().endswith(".ome.zarr")


class AxesView:
    """A lazy view of an array with some axes fixed to an index (singleton t/z/q axes dropped).

    Slicing (or assigning to) it slices the underlying array with those indices put back, so a
    zarr array still reads or writes only the chunks the window touches.
    """

    def __init__(self, array: Any, fixed: dict[int, int]) -> None:
        self.array = array
        self.fixed = dict(fixed)
        self.shape = tuple(n for axis, n in enumerate(array.shape) if axis not in self.fixed)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape))

    def _full(self, key: Any) -> tuple:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            at = next(i for i, k in enumerate(key) if k is Ellipsis)
            fill = (slice(None),) * (self.ndim - len(key) + 1)
            key = key[:at] + fill + key[at + 1 :]
        key = key + (slice(None),) * (self.ndim - len(key))
        parts = iter(key)
        return tuple(
            self.fixed[axis] if axis in self.fixed else next(parts) for axis in range(self.array.ndim)
        )

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.array[self._full(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        self.array[self._full(key)] = value

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[...]
        return data if dtype is None else data.astype(dtype)

    def __len__(self) -> int:
        return self.shape[0]


@dataclass
class LazyTarget:
    """A large target opened without reading its pixels."""

    path: Path
    kind: str  # "zarr", "ome-zarr" or "tiff"
    levels: list[Any]  # level 0 first; arrays sliced lazily
    channel_axis: int | None = None
    contrast_limits: tuple[float, float] | None = None
    zarr_format: int | None = None  # of an OME-Zarr store: labels are written in the same format
    axes: list[Any] = field(default_factory=list)  # an OME-Zarr image's axes metadata
    transforms: list[list[dict]] = field(default_factory=list)  # its datasets' coordinateTransformations
    _closers: list[Any] = field(default_factory=list, repr=False)

    @property
    def hw(self) -> tuple[int, int]:
        shape = self.levels[0].shape
        if self.channel_axis is not None:
            shape = tuple(n for axis, n in enumerate(shape) if axis != self.channel_axis)
        return int(shape[0]), int(shape[1])

    def image(self):
        """The engine's image: a ``Multiscale`` for a pyramid, else a lazy ``Image``."""
        from napari_sansa.engine.inputs import images

        if len(self.levels) > 1:
            return images.Multiscale(
                levels=self.levels, contrast_limits=self.contrast_limits, channel_axis=self.channel_axis
            )
        return images.Image(
            self.levels[0], contrast_limits=self.contrast_limits, channel_axis=self.channel_axis
        )

    def close(self) -> None:
        for closer in self._closers:
            closer.close()
        self._closers.clear()


def _spatial_view(array: Any, axes: Sequence[str], path: Path) -> tuple[Any, int | None]:
    """Drop singleton axes other than y, x and channels; the channel axis (or None) of what is left."""
    axes = [a.lower() for a in axes]
    if axes[-2:] != ["y", "x"] and axes[-3:-1] != ["y", "x"]:
        raise SansaError(f"{path}: expected the last axes to be y and x, got {''.join(axes)}.")
    channel_names = {"c", "s"}
    fixed: dict[int, int] = {}
    for axis, name in enumerate(axes):
        if name in SPATIAL or name in channel_names:
            continue
        if array.shape[axis] != 1:
            what = {"t": "time points", "z": "z planes"}.get(name, f"positions along axis {name!r}")
            raise SansaError(
                f"{path} has {array.shape[axis]} {what} (axes {''.join(axes)}); the command line "
                "segments 2D images (YX or CYX): save each plane as its own image, or open the plane "
                "you want in napari."
            )
        fixed[axis] = 0
    kept = [name for axis, name in enumerate(axes) if axis not in fixed]
    channels = [i for i, name in enumerate(kept) if name in channel_names]
    if len(channels) > 1:
        raise SansaError(f"{path}: more than one channel axis ({''.join(axes)}).")
    view = AxesView(array, fixed) if fixed else array
    channel_axis = channels[0] if channels else None
    if channel_axis == len(kept) - 1:  # channels last (RGB): the engine's default layout
        channel_axis = None if kept[-1] == "s" or view.shape[-1] <= 5 else channel_axis
    return view, channel_axis


def _ome_attrs(group: Any) -> dict:
    attrs = group.attrs.asdict()
    return attrs.get("ome", attrs) if isinstance(attrs.get("ome"), dict) else attrs


def _open_ome_zarr(group: Any, path: Path) -> LazyTarget:
    attrs = _ome_attrs(group)
    multiscale = attrs["multiscales"][0]
    datasets = multiscale.get("datasets") or []
    if not datasets:
        raise SansaError(f"{path}: its multiscales metadata lists no datasets.")
    levels = []
    for dataset in datasets:
        try:
            levels.append(group[dataset["path"]])
        except (KeyError, FileNotFoundError):
            raise SansaError(
                f"{path}: the dataset {dataset['path']!r} listed in its metadata is missing."
            ) from None
    names = [a["name"] if isinstance(a, dict) else str(a) for a in multiscale.get("axes") or []]
    names = names or list("tczyx"[-levels[0].ndim :])
    if len(names) != levels[0].ndim:
        raise SansaError(f"{path}: {len(names)} axes in the metadata, {levels[0].ndim} in the array.")
    viewed = [_spatial_view(level, names, path) for level in levels]
    limits = None
    channels = (attrs.get("omero") or {}).get("channels") or []
    if len(channels) == 1 and isinstance(channels[0].get("window"), dict):
        window = channels[0]["window"]
        if "start" in window and "end" in window:
            limits = (float(window["start"]), float(window["end"]))
    return LazyTarget(
        path,
        "ome-zarr",
        [v for v, _ in viewed],
        channel_axis=viewed[0][1],
        contrast_limits=limits,
        zarr_format=group.metadata.zarr_format,
        axes=list(multiscale.get("axes") or names),
        transforms=[list(d.get("coordinateTransformations") or []) for d in datasets],
    )


def _plain_axes(array: Any) -> list[str]:
    """Axes of a zarr array without metadata: YX, YXC (C <= 5) or CYX."""
    if array.ndim == 2:
        return ["y", "x"]
    if array.ndim == 3:
        return ["y", "x", "c"] if array.shape[-1] <= 5 else ["c", "y", "x"]
    return list("tczyx"[-array.ndim :]) if array.ndim <= 5 else ["?"] * array.ndim


def open_zarr(path: str | os.PathLike) -> LazyTarget:
    """A zarr array, a group holding one array, or an OME-Zarr image (multiscales metadata)."""
    import zarr

    path = Path(path)
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises many types for a folder that is not a store
        raise SansaError(f"Cannot open {path} as zarr: {exc}") from None
    if isinstance(node, zarr.Array):
        view, channel_axis = _spatial_view(node, _plain_axes(node), path)
        return LazyTarget(path, "zarr", [view], channel_axis=channel_axis)
    attrs = _ome_attrs(node)
    if attrs.get("multiscales"):
        return _open_ome_zarr(node, path)
    arrays = sorted(node.array_keys())
    if "plate" in attrs or "well" in attrs:
        raise SansaError(f"{path} is an OME-Zarr plate/well; give the path of one image inside it.")
    if is_ome_zarr_name(path) or len(arrays) != 1:
        inside = f"e.g. {path / arrays[0]}" if arrays else "it holds no arrays"
        raise SansaError(
            f"{path} has no OME-Zarr multiscales metadata, so its image is unknown; give the path "
            f"of the array inside it instead ({inside})."
        )
    array = node[arrays[0]]
    view, channel_axis = _spatial_view(array, _plain_axes(array), path)
    return LazyTarget(path, "zarr", [view], channel_axis=channel_axis)


def tiff_shape(path: str | os.PathLike) -> tuple[str, tuple[int, ...]] | None:
    """Axes and shape of a TIFF's first series from its header, or None if it cannot be read."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            return series.axes, tuple(series.shape)
    except Exception:  # unreadable here: the ordinary reader reports it later
        return None


def open_tiff(path: str | os.PathLike) -> LazyTarget:
    """A TIFF read by region through tifffile's zarr store (pyramid levels of its first series)."""
    import tifffile
    import zarr

    path = Path(path)
    try:
        tif = tifffile.TiffFile(path)
    except Exception as exc:  # tifffile raises many types for bad files
        raise SansaError(f"Cannot read image {path}: {exc}") from None
    try:
        series = tif.series[0]
        axes = list(series.axes)
        levels = [zarr.open(series.aszarr(level=k), mode="r") for k in range(len(series.levels))]
        viewed = [_spatial_view(level, axes, path) for level in levels]
    except SansaError:
        tif.close()
        raise
    except Exception as exc:
        tif.close()
        raise SansaError(f"Cannot read image {path}: {exc}") from None
    return LazyTarget(path, "tiff", [v for v, _ in viewed], channel_axis=viewed[0][1], _closers=[tif])


def open_lazy(path: str | os.PathLike) -> LazyTarget:
    """A zarr store or TIFF opened lazily (see :func:`open_zarr`, :func:`open_tiff`)."""
    if is_zarr_path(path):
        return open_zarr(path)
    return open_tiff(path)
