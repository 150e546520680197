"""Reading images and writing label images, safely: nothing is overwritten unless asked."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from napari_sansa.engine.errors import SansaError
from napari_sansa.files.overwrite import refuse_existing

T = TypeVar("T")

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".czi", ".nd2", ".lif")
TIFF_SUFFIXES = (".tif", ".tiff")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as an array (TIFF through tifffile, microscope files of one plane through
    bioio with channels last, the rest through imageio)."""
    from napari_sansa.files.microscope import is_microscope_file, read_plane

    path = Path(path)
    if not path.is_file():
        raise SansaError(f"Image file {path} does not exist.")
    if is_microscope_file(path):
        image = read_plane(path)
        axis = image.channel_axis
        return np.asarray(image.data) if axis is None else np.moveaxis(np.asarray(image.data), axis, -1)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                data = series.asarray()
                if series.axes == "CYX":  # OME-TIFF or ImageJ channels: last, as the engine takes them
                    data = np.moveaxis(data, 0, -1)
        else:
            import imageio.v3 as iio

            data = iio.imread(path)
    except Exception as exc:  # readers raise many types for bad files
        raise SansaError(f"Cannot read image {path}: {exc}") from None
    return np.asarray(data)


def expand_image_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files and zarr stores as given, and the images inside folders (sorted by name)."""
    from napari_sansa.files.lazy_inputs import is_zarr_path

    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if is_zarr_path(path):  # a zarr store is one image, not a folder of them
            found.append(path)
        elif path.is_dir():
            inside = sorted(
                p
                for p in path.iterdir()
                if (p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES) or is_zarr_path(p)
            )
            if not inside:
                raise SansaError(f"Folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)}, .zarr).")
            found.extend(inside)
        elif path.is_file():
            found.append(path)
        else:
            raise SansaError(f"{path} does not exist.")
    return found


def ensure_writable_folder(folder: str | os.PathLike) -> Path:
    """Create the output folder if needed and check that files can be written in it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".sansa-write-test-"):
            pass
    except OSError as exc:
        raise SansaError(f"Cannot write to the output folder {folder}: {exc.strerror or exc}.") from None
    return folder


def labels_suffix(labels: np.ndarray, preferred: str = ".tif") -> str:
    """PNG only where the labels fit in it; TIFF otherwise."""
    if preferred == ".png" and labels.dtype in (np.uint8, np.uint16) and labels.ndim == 2:
        return ".png"
    return ".tif"


def _temporary_beside(path: Path) -> str:
    """A new empty file next to ``path``, created with mode 0666 less the user's umask (as any
    file the user makes; ``mkstemp`` would give a private 0600)."""
    for _ in range(100):
        name = path.parent / f".{path.stem}-{secrets.token_hex(6)}{path.suffix}"
        try:
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return str(name)
    raise FileExistsError(f"no free temporary name beside {path}")


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Write a file through a temporary file beside it, then rename it into place.

    ``write(tmp_name)`` writes the content. Readers never see a half-written file, and the
    file gets the permissions of any file the user creates (their umask).
    """
    path = Path(path)
    tmp_name = None
    try:
        tmp_name = _temporary_beside(path)
        write(tmp_name)
        os.replace(tmp_name, path)
    except OSError as exc:
        raise SansaError(f"Cannot write {path}: {exc.strerror or exc}.") from None
    finally:
        if tmp_name is not None and os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return path


def write_labels(path: str | os.PathLike, labels: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write a label image atomically (temporary file, then rename); refuse to overwrite."""
    path = Path(path)
    refuse_existing([path], overwrite=overwrite)

    def write(tmp_name: str) -> None:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            tifffile.imwrite(tmp_name, labels, compression="zlib")
        else:
            import imageio.v3 as iio

            iio.imwrite(tmp_name, labels, extension=path.suffix)

    return atomic_write(path, write)


class Planes:
    """The planes of one file (a microscope file's scenes, times and Z), each segmented as an
    image of its own: ``(index, image)`` pairs, read one at a time."""

    def __init__(self, planes: Iterable[tuple[Any, Any]]) -> None:
        self.planes = planes

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return iter(self.planes)


class ReadAsNeeded(Generic[T]):
    """Targets read one at a time, as the engine asks for them (only the few images it prepares
    ahead are in memory). One that cannot be read goes to ``unreadable(item, error)`` and is
    skipped; ``read[i]`` is the item the engine numbers ``i`` (its Prediction.index), and
    ``planes[i]`` its plane index where ``read`` gave :class:`Planes` (else None)."""

    def __init__(
        self, items: Iterable[T], read: Callable[[T], Any], unreadable: Callable[[T, SansaError], None]
    ) -> None:
        self.items, self.reader, self.unreadable = items, read, unreadable
        self.read: list[T] = []
        self.planes: list[Any] = []

    def __iter__(self) -> Iterator[Any]:
        for item in self.items:
            try:
                image = self.reader(item)
                if isinstance(image, Planes):
                    for index, plane in image:
                        self.read.append(item)
                        self.planes.append(index)
                        yield plane
                    continue
            except SansaError as exc:
                self.unreadable(item, exc)
                continue
            self.read.append(item)
            self.planes.append(None)
            yield image
