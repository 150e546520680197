"""Labels of large targets written tile by tile to disk, and published only once complete.

The engine writes a tiled target's labels band by band into the array an output factory gives it
(``Sansa.propagate(output=...)``). Here that array is level 0 of a zarr store named
``<final>.partial``; when the target is done, a pyramid is built from level 0 (every 2nd pixel,
which keeps label values exact), the OME-NGFF metadata is written with ``ome-zarr``'s writer and
the folder is renamed to its final name. A tiled BigTIFF is written from the finished level 0 a
tile at a time and renamed into place the same way. So an output under its final name is always
complete; one with unreadable tiles stays ``.partial`` (``--resume`` redoes it), and a failed
write (a full disk) removes what was written.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_sansa.engine.errors import SansaError
from napari_sansa.files.lazy_inputs import AxesView, LazyTarget
from napari_sansa.files.overwrite import refuse_existing

CHUNK = 1024  # zarr chunk side of OME-Zarr labels
TIFF_TILE = (256, 256)
MIN_LEVEL_SIDE = 512  # a new store's pyramid stops once a level fits in this
MAX_LEVELS = 8
PARTIAL = ".partial"


def write_error(
    path: Path, exc: OSError, then: str = "choose another --out, then run again with --resume"
) -> SansaError:
    """The message for a failed write: a full disk says so and what to do (``then``)."""
    if exc.errno == errno.ENOSPC:
        return SansaError(
            f"The disk is full while writing {path}; the partial output was removed. Free some space or {then}."
        )
    return SansaError(f"Cannot write {path}: {exc.strerror or exc}.")


def pyramid_levels(hw: tuple[int, int]) -> int:
    """How many levels a new labels pyramid has: halved until a level fits in MIN_LEVEL_SIDE."""
    count, side = 1, max(hw)
    while side > MIN_LEVEL_SIDE and count < MAX_LEVELS:
        side = (side + 1) // 2
        count += 1
    return count


def chunks_of(array: Any) -> tuple[int, ...]:
    """An array's own chunks, else planes of CHUNK x CHUNK pixels."""
    chunks = getattr(array, "chunks", None)
    if isinstance(chunks, tuple) and all(isinstance(c, int) for c in chunks):
        return chunks
    shape = array.shape
    return (1,) * (len(shape) - 2) + tuple(min(CHUNK, s) for s in shape[-2:])


class StreamedLabels:
    """The array the engine writes a target's labels into; a failed write becomes a SansaError."""

    def __init__(self, array: Any, owner: LabelsOutput) -> None:
        self.array = array
        self.owner = owner
        self.shape = tuple(array.shape)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.array[key])

    def __setitem__(self, key: Any, value: Any) -> None:
        try:
            self.array[key] = value
        except OSError as exc:
            self.owner.failure = write_error(self.owner.final, exc)
            raise self.owner.failure from None

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[...]
        return data if dtype is None else data.astype(dtype)


@dataclass(eq=False)
class LabelsOutput:
    """Where one large target's labels go: an OME-Zarr store or labels group, or a tiled BigTIFF.

    ``image``: the target's OME-Zarr image when the labels go inside its store (``final`` is then
    ``<store>/labels/<name>``), whose axes, scales and zarr format the labels follow.
    """

    final: Path
    fmt: str  # "ome-zarr" or "tif"
    image: LazyTarget | None = None
    chunk: int = CHUNK
    level0: StreamedLabels | None = field(default=None, repr=False)
    failure: SansaError | None = field(default=None, repr=False)

    @property
    def partial(self) -> Path:
        """The zarr folder written until the output is complete (level 0 of a BigTIFF too)."""
        return self.final.with_name(self.final.name + PARTIAL)

    @property
    def zarr_format(self) -> int:
        return self.image.zarr_format if self.image is not None and self.image.zarr_format else 3

    # ------------------------------------------------------------------ level 0
    def _axes(self) -> list[Any]:
        if self.image is not None and self.image.axes:
            return list(self.image.axes)
        return [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]

    def _names(self) -> list[str]:
        return [(a["name"] if isinstance(a, dict) else str(a)).lower() for a in self._axes()]

    def create(self, hw: tuple[int, int], dtype: Any) -> StreamedLabels:
        """A new, empty level 0 of ``hw`` pixels (an old partial output is removed first)."""
        import zarr

        self.discard()
        self.failure = None
        try:
            if self.fmt == "tif":
                array = zarr.create_array(
                    str(self.partial),
                    shape=tuple(hw),
                    chunks=TIFF_TILE,
                    dtype=dtype,
                    fill_value=0,
                    zarr_format=3,
                )
                view: Any = array
            else:
                names = self._names()
                shape = tuple(hw[0] if n == "y" else hw[1] if n == "x" else 1 for n in names)
                chunks = tuple(
                    min(self.chunk, n) if name in ("y", "x") else 1 for n, name in zip(shape, names)
                )
                if self.image is not None:  # the labels group beside the image, in the store's format
                    zarr.open_group(str(self.final.parent), mode="a", zarr_format=self.zarr_format)
                group = zarr.open_group(str(self.partial), mode="w", zarr_format=self.zarr_format)
                array = group.create_array("0", **self._array_options(shape, chunks, dtype))
                fixed = {axis: 0 for axis, name in enumerate(names) if name not in ("y", "x")}
                view = AxesView(array, fixed) if fixed else array
        except OSError as exc:
            self.discard()
            raise write_error(self.final, exc) from None
        self.level0 = StreamedLabels(view, self)
        return self.level0

    def _array_options(self, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: Any) -> dict:
        options: dict[str, Any] = {"shape": shape, "chunks": chunks, "dtype": dtype, "fill_value": 0}
        if self.zarr_format == 2:  # OME-NGFF 0.4 asks for "/"-separated chunk keys
            options["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
        else:  # 0.5: arrays name their axes
            options["dimension_names"] = self._names()
        return options

    # ------------------------------------------------------------------ finishing
    def finish(self, labels: Any, missing: tuple = ()) -> None:
        """Complete the output: pyramid, metadata and rename; with ``missing`` tiles it stays partial.

        ``labels``: the array the engine filled (or, for a target that was not tiled, its labels in
        memory, written here first).
        """
        if self.failure is not None:
            self.discard()
            raise self.failure
        try:
            if self.level0 is None or labels is not self.level0:
                data = np.asarray(labels)
                self.create(data.shape, data.dtype)[...] = data
            if self.fmt == "tif":
                if not missing:
                    self._write_tiff()
            else:
                self._pyramid()
                self._metadata(len(missing))
                if not missing:
                    self._publish()
            self.level0 = None  # done with: complete, or kept partial on purpose
        except OSError as exc:
            self.discard()
            raise write_error(self.final, exc) from None
        except SansaError:
            self.discard()
            raise

    def _level_count(self, hw: tuple[int, int]) -> int:
        return len(self.image.levels) if self.image is not None else pyramid_levels(hw)

    def _pyramid(self) -> None:
        """Levels 1.. from level 0 by taking every 2nd pixel (label values stay exact), with dask."""
        import dask.array as da
        import zarr

        group = zarr.open_group(str(self.partial), mode="a")
        level0 = group["0"]
        names = self._names()
        hw = tuple(n for n, name in zip(level0.shape, names) if name in ("y", "x"))
        source = da.from_zarr(level0)
        for k in range(1, self._level_count(hw)):
            step = 2**k
            index = tuple(slice(None, None, step) if name in ("y", "x") else slice(None) for name in names)
            down = source[index]
            chunks = tuple(
                min(self.chunk, n) if name in ("y", "x") else 1 for n, name in zip(down.shape, names)
            )
            array = group.create_array(str(k), **self._array_options(down.shape, chunks, level0.dtype))
            da.store(down.rechunk(chunks), array, lock=False)

    def _transforms(self, k: int) -> list[dict]:
        names = self._names()
        factor = [2.0**k if name in ("y", "x") else 1.0 for name in names]
        base: list[dict] = []
        if self.image is not None and self.image.transforms:
            base = self.image.transforms[0]
        scale = next((t["scale"] for t in base if t.get("type") == "scale"), [1.0] * len(names))
        out = [{"type": "scale", "scale": [float(s) * f for s, f in zip(scale, factor)]}]
        out += [dict(t) for t in base if t.get("type") == "translation"]
        return out

    def _metadata(self, missing_tiles: int) -> None:
        import zarr
        from ome_zarr.format import FormatV04, FormatV05
        from ome_zarr.writer import add_metadata, write_multiscales_metadata

        fmt = FormatV04() if self.zarr_format == 2 else FormatV05()
        group = zarr.open_group(str(self.partial), mode="a")
        levels = sorted(int(k) for k in group.array_keys() if k.isdigit())
        datasets = [{"path": str(k), "coordinateTransformations": self._transforms(k)} for k in levels]
        name = self.final.name if self.image is not None else self.final.name.split(".")[0]
        write_multiscales_metadata(group, datasets, fmt=fmt, axes=self._axes(), name=name)
        label: dict[str, Any] = {"version": fmt.version}
        if self.image is not None:
            label["source"] = {"image": "../../"}
        add_metadata(group, {"image-label": label}, fmt=fmt)
        group.attrs["napari-sansa"] = {"complete": missing_tiles == 0, "missing_tiles": missing_tiles}

    def _publish(self) -> None:
        """Rename the finished folder to its final name (replacing an older one), then list it."""
        old = None
        if self.final.exists():
            old = self.final.with_name(f"{self.final.name}.old-{secrets.token_hex(4)}")
            os.replace(self.final, old)
        os.replace(self.partial, self.final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        if self.image is not None:
            self._list_label()

    def _list_label(self) -> None:
        import zarr
        from ome_zarr.format import FormatV04, FormatV05
        from ome_zarr.writer import add_metadata, get_metadata

        fmt = FormatV04() if self.zarr_format == 2 else FormatV05()
        group = zarr.open_group(str(self.final.parent), mode="a", zarr_format=self.zarr_format)
        names = [n for n in get_metadata(group).get("labels", []) if n != self.final.name]
        listed: dict[str, Any] = {"labels": names + [self.final.name]}
        if self.zarr_format == 3:  # 0.5: every OME group says its version
            listed["version"] = fmt.version
        add_metadata(group, listed, fmt=fmt)

    def _write_tiff(self) -> None:
        """The BigTIFF, tile by tile from level 0 (never the whole image in memory), then renamed."""
        import tifffile
        import zarr

        from napari_sansa.files.images import atomic_write

        level0 = zarr.open_array(str(self.partial), mode="r")
        h, w = level0.shape
        th, tw = TIFF_TILE

        def tiles():
            for r in range(0, h, th):
                for c in range(0, w, tw):
                    yield np.asarray(level0[r : r + th, c : c + tw])

        def write(tmp_name: str) -> None:
            tifffile.imwrite(
                tmp_name,
                data=tiles(),
                shape=(h, w),
                dtype=level0.dtype,
                tile=TIFF_TILE,
                bigtiff=True,
                compression="zlib",
                photometric="minisblack",
            )

        atomic_write(self.final, write)  # a failed write: SansaError, the temporary file removed
        self.discard()

    def discard(self) -> None:
        """Remove the partial output, if any."""
        self.level0 = None
        shutil.rmtree(self.partial, ignore_errors=True)


def is_complete_output(path: str | os.PathLike) -> bool:
    """Whether a large output is complete: an OME-Zarr labels folder under its final name with
    its metadata and level 0, or a tiled TIFF whose every tile lies inside the file."""
    path = Path(path)
    if path.name.endswith(PARTIAL):
        return False
    if path.is_dir():
        import zarr

        try:
            group = zarr.open_group(str(path), mode="r")
            attrs = group.attrs.asdict()
            ome = attrs.get("ome", attrs)
            datasets = ome["multiscales"][0]["datasets"]
            done = attrs.get("napari-sansa", {}).get("complete", True)
            return bool(done) and "image-label" in ome and group[datasets[0]["path"]].size > 0
        except Exception:  # anything unreadable is not complete
            return False
    import tifffile

    try:
        size = path.stat().st_size
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts)]
            return page.size > 0 and bool(ends) and max(ends) <= size
    except Exception:  # anything unreadable is not complete
        return False


def write_labels_store(
    labels: Any, path: str | os.PathLike, scale: Any = None, overwrite: bool = False
) -> Path:
    """Write labels (a plane or a stack, any sliceable array) as an OME-Zarr image with a
    nearest-neighbour pyramid, streaming by chunks (dask): the widget's export of large results.

    ``scale``: the pixel size per axis, written as the image's coordinate scale. A store that
    exists is replaced only with ``overwrite``; it is written beside under a temporary name
    first, so a failed export leaves nothing that looks complete.
    """
    import dask.array as da
    import zarr
    from ome_zarr.scale import Methods
    from ome_zarr.writer import write_image

    path = Path(path)
    refuse_existing([path], overwrite=overwrite)
    partial = path.with_name(path.name + PARTIAL)
    shutil.rmtree(partial, ignore_errors=True)
    data = da.from_array(labels, chunks=chunks_of(labels), asarray=True)
    if data.ndim > 3:
        raise SansaError(f"Labels of {data.ndim} dimensions cannot be exported as OME-Zarr yet.")
    axes = "zyx"[-data.ndim :]
    factors = tuple(2**k for k in range(1, pyramid_levels(data.shape[-2:])))
    physical = {a: float(s) for a, s in zip(axes, scale)} if scale is not None else None
    try:
        group = zarr.open_group(str(partial), mode="w")
        write_image(
            data,
            group,
            scale_factors=factors,
            method=Methods.NEAREST,
            axes=axes,
            storage_options={"chunks": chunks_of(labels)},
            scale=physical,
        )
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise write_error(path, exc, then="choose another folder") from None
    if path.exists():
        shutil.rmtree(path)
    partial.rename(path)
    return path
