"""Large images in the widget: lazy planes, zarr-backed result labels and their export.

Nothing here reads a whole large image: a plane of a zarr (or any sliceable) array is a
:class:`PlaneView` that reads and writes the parent array by slices, result labels of tiled
targets live in a chunked zarr array the engine writes tile by tile (exported with
:func:`napari_sansa.files.label_stores.write_labels_store`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from napari_sansa.files.label_stores import CHUNK, chunks_of


class PlaneView:
    """One plane of an array, read and written by slices through the array itself.

    numpy and dask arrays have views of their own; zarr arrays (and tifffile's zarr stores,
    h5py datasets) read when indexed, so ``array[plane]`` would read the whole plane.
    """

    def __init__(self, array, plane: tuple[int, ...]) -> None:
        self.array, self.plane = array, tuple(int(p) for p in plane)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.array.shape[len(self.plane) :])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.array.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _key(self, key) -> tuple:
        return self.plane + (key if isinstance(key, tuple) else (key,))

    def __getitem__(self, key) -> np.ndarray:
        return np.asarray(self.array[self._key(key)])

    def __setitem__(self, key, value) -> None:
        self.array[self._key(key)] = value

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        data = np.asarray(self.array[self.plane])
        return data if dtype is None else data.astype(dtype, copy=False)


class Guarded:
    """Labels the engine writes tile by tile, unless ``stop()`` says the user took them over
    (painted on them, or accepted them): then the writes are dropped, the user's labels stay.
    ``written()`` is called after each write (the layer has something new to show)."""

    def __init__(self, array, stop: Callable[[], bool], written: Callable[[], None] = lambda: None) -> None:
        self.array, self.stop, self.written = array, stop, written
        self.shape, self.dtype, self.ndim = tuple(array.shape), np.dtype(array.dtype), len(array.shape)

    def __getitem__(self, key) -> np.ndarray:
        return np.asarray(self.array[key])

    def __setitem__(self, key, value) -> None:
        if not self.stop():
            self.array[key] = value
            self.written()

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        data = np.asarray(self.array[...])
        return data if dtype is None else data.astype(dtype, copy=False)


def is_lazy(array) -> bool:
    """Whether indexing the array reads on demand (anything but numpy)."""
    return not isinstance(array, np.ndarray)


def snapshot(array):
    """A layer's NumPy data copied, for a worker to read while the user goes on painting; lazy
    data as it is (read on demand, in the worker)."""
    return array if is_lazy(array) else np.array(array)


def plane_of(array, plane: tuple[int, ...]):
    """A plane of an array without reading it: a view (numpy, dask) or a :class:`PlaneView`."""
    if not plane:
        return array
    if isinstance(array, np.ndarray) or type(array).__module__.startswith("dask"):
        return array[plane]
    return PlaneView(array, plane)


def new_labels(shape: tuple[int, ...], dtype, tiled: bool):
    """Empty result labels: numpy for images read whole, a chunked in-memory zarr array for
    tiled ones (labels compress to little, and napari paints into zarr arrays)."""
    if not tiled:
        return np.zeros(shape, dtype)
    import zarr

    chunks = (1,) * (len(shape) - 2) + tuple(min(CHUNK, s) for s in shape[-2:])
    return zarr.create_array(
        store=zarr.storage.MemoryStore(), shape=shape, chunks=chunks, dtype=dtype, fill_value=0
    )


def copy_into(source, target) -> None:
    """Copy a (large) array into another of the same shape, chunk by chunk."""
    import dask.array as da

    lazy = da.from_array(source, chunks=chunks_of(source), asarray=True)
    da.store(lazy, target, lock=False)


def widened(labels, dtype):
    """The same labels in a wider dtype, as a new array of the same kind (zarr: copied by chunks)."""
    if not is_lazy(labels):
        return labels.astype(np.result_type(dtype, labels.dtype))
    out = new_labels(labels.shape, np.result_type(dtype, labels.dtype), tiled=True)
    copy_into(labels, out)
    return out
