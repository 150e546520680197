"""Which targets a file run segments and what every output is named.

All output names live here: a target's label file, a large target's store or tiled TIFF, labels
inside an input OME-Zarr store, a widget layer's exported labels, and objects files.

Shared by the single-process CLI and the cluster runner, so that both expand inputs (files,
folders, glob patterns, ``@list.txt``) and name outputs the same way; whether an output reads
back (:func:`is_complete`) is here too. Which files a target owes, the order they are written in
and resuming are the pipeline's (:mod:`napari_sansa.pipeline.targets`).
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_sansa.engine.errors import SansaError
from napari_sansa.files.images import labels_suffix, read_image
from napari_sansa.files.overwrite import refuse_existing

GLOB_CHARS = frozenset("*?[")
LARGE_FILE = 256 * 2**20  # label files beyond this are checked by their header, not read whole


def _expand_one(raw: str) -> list[str]:
    if raw.startswith("@") and not Path(raw).exists():
        return _read_list(Path(raw[1:]))
    if GLOB_CHARS & set(raw) and not Path(raw).exists():
        found = sorted(glob.glob(raw, recursive=True))
        if not found:
            raise SansaError(f"The pattern {raw!r} matches no files.")
        return found
    return [raw]


def _read_list(path: Path) -> list[str]:
    """Paths listed one per line (blank lines and ``#`` comments skipped), relative to the list."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SansaError(
            f"Cannot read the file list {path}: {getattr(exc, 'strerror', None) or exc}."
        ) from None
    entries = [line.strip() for line in lines]
    return [str(path.parent / entry) for entry in entries if entry and not entry.startswith("#")]


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files and folders as given, glob patterns (``plate/**/*.tif``, quoted so that the shell
    leaves them) expanded, and ``@list.txt`` replaced by the paths it lists."""
    return [Path(p) for raw in inputs for p in _expand_one(os.fspath(raw))]


def output_paths(targets: Sequence[Path], out: Path, class_ids: Iterable[int]) -> list[Path]:
    """Each target's label file in ``out``; two targets that would write the same file are refused."""
    from napari_sansa.engine.inputs.prompts import label_dtype

    probe = np.zeros((1, 1), dtype=label_dtype(class_ids))
    outputs = [out / labels_name(Path(t), probe) for t in targets]
    seen: dict[Path, Path] = {}
    for target, output in zip(targets, outputs):
        if output in seen:
            raise SansaError(
                f"{seen[output]} and {target} would both be labelled as {output.name}; "
                "rename one, or segment them into different folders."
            )
        seen[output] = Path(target)
    return outputs


def reference_classes(references) -> set[int]:
    """The class ids the references annotate (the labels' values)."""
    from napari_sansa.engine.inputs.prompts import Reference

    refs = [references] if isinstance(references, Reference) else list(references)
    return {int(c) for ref in refs for c in ref.prompts}


def existing(folder: Path) -> set[str]:
    """Names of the files and folders (zarr stores) in ``folder``, listed once (a stat per target
    is slow on network disks)."""
    try:
        return {entry.name for entry in os.scandir(folder)}
    except FileNotFoundError:
        return set()


def is_complete(path: str | os.PathLike) -> bool:
    """Whether a label file exists and reads back as an image (a zarr folder or a large TIFF:
    its metadata and tiles, without reading it whole)."""
    from napari_sansa.files.label_stores import is_complete_output

    if Path(path).is_dir() or (Path(path).is_file() and Path(path).stat().st_size > LARGE_FILE):
        return is_complete_output(path)
    try:
        return read_image(path).size > 0
    except SansaError:
        return False


def remove_leftovers(outputs: Sequence[Path], before: float) -> int:
    """Delete the temporary files that writing ``outputs`` left behind (a killed process cannot
    clean up), if older than ``before`` (a time.time()); returns how many went."""
    if not outputs:
        return 0
    folder = outputs[0].parent
    stems = {(p.stem, p.suffix) for p in outputs}
    removed = 0
    for name in existing(folder):
        if not name.startswith("."):
            continue
        stem, suffix = os.path.splitext(name[1:])
        head, sep, _random = stem.rpartition("-")
        if not sep or (head, suffix) not in stems:
            continue
        path = folder / name
        try:
            if path.stat().st_mtime < before:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed


# ------------------------------------------------------------------ output names (all of them)
LARGE_FORMATS = ("ome-zarr", "tif")
LABEL_GROUP = "sansa"  # labels/<name> inside an input OME-Zarr image


def labels_stem(path: str | os.PathLike) -> str:
    """The name a target's labels are called after: ``big.ome.zarr`` and ``big.ome.tif`` -> ``big``."""
    name = Path(path).name
    for suffix in (".ome.zarr", ".zarr", ".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def labels_name(path: Path, labels) -> str:
    """``<stem>_labels.png`` where the labels fit in a PNG and the target was one, else ``.tif``."""
    preferred = ".png" if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp") else ".tif"
    return f"{path.stem}_labels{labels_suffix(labels, preferred)}"


# ---------------------------------------------------------------- exports for other tools

EXPORT_FORMATS = ("geojson", "coco")


def parse_exports(text: str | None) -> tuple[str, ...]:
    """``geojson,coco`` as the formats asked for (in a fixed order); unknown ones are refused."""
    asked = [part.strip().lower() for part in (text or "").split(",") if part.strip()]
    unknown = [a for a in asked if a not in EXPORT_FORMATS]
    if unknown:
        raise SansaError(f"--export {unknown[0]!r} is not a format; use {' or '.join(EXPORT_FORMATS)}.")
    return tuple(f for f in EXPORT_FORMATS if f in asked)


def geojson_path(out: Path, name: str) -> Path:
    """Where a target's QuPath GeoJSON goes: ``<name>_objects.geojson`` in ``out`` (beside
    ``<name>_objects.tif``; the CLI's ``name`` is the target file's stem)."""
    return objects_file(out, name, ".geojson")


class RunExports:
    """What a run writes for other tools (:data:`EXPORT_FORMATS`): a GeoJSON per target, written
    as soon as its labels are, and one ``coco.json`` for the run, written by :meth:`finish`.

    Existing files are refused before any work unless ``overwrite`` (a resumed run replaces only
    the GeoJSON of the targets it redoes, and ``coco.json``, which covers every target).
    """

    def __init__(
        self,
        formats: Sequence[str],
        targets: Sequence[Path],
        out: Path,
        class_names: dict[int, str],
        class_ids: Iterable[int],
        *,
        overwrite: bool = False,
        resume: bool = False,
        names: Sequence[str] | None = None,
    ) -> None:
        """``names``: each target's ``<name>`` in file names (default: the file's stem)."""
        from napari_sansa.files.coco import COCO_FILE, CocoWriter

        self.formats, self.out, self.class_names = tuple(formats), Path(out), dict(class_names)
        self.coco = CocoWriter(self.class_names, list(class_ids)) if "coco" in self.formats else None
        self.coco_path = self.out / COCO_FILE
        self.written: list[Path] = []
        self.redo = True  # targets done by this run replace their GeoJSON
        names = [Path(t).stem for t in targets] if names is None else list(names)
        self.names = {Path(t): name for t, name in zip(targets, names)}
        planned = [geojson_path(out, name) for name in names] if "geojson" in self.formats else []
        if len(set(planned)) < len(planned):
            twice = next(p for p in planned if planned.count(p) > 1)
            raise SansaError(
                f"Two targets would both export {twice.name}; rename one, or segment them apart."
            )
        planned += [self.coco_path] if not (resume or self.coco is None) else []
        refuse_existing(planned, "exports", overwrite=overwrite or resume)

    def _geojson(self, target: Path) -> Path:
        return geojson_path(self.out, self.names.get(Path(target), Path(target).stem))

    def add(self, target: Path, labels: Any, objects: Any = None) -> None:
        """A finished target: its class labels (an array or a lazy store), or with ``objects``
        its ``(instance labels, table)``, whose objects become one feature/annotation each."""
        from napari_sansa.files.polygons import label_regions

        if not self.formats:
            return
        if objects is not None:
            labels, table = objects
            labels = np.asarray(labels)
            classes = dict(zip(table["label"].astype(int), table["class"].astype(int)))
        else:
            classes = None

        regions: Iterable = label_regions(labels, instances=objects is not None, classes=classes)
        if self.coco is not None:  # kept for coco.json anyway: traced once for both
            regions = list(regions)
        if "geojson" in self.formats and (self.redo or not self._geojson(target).exists()):
            from napari_sansa.files.geojson import write_geojson

            path = self._geojson(target)
            self.written.append(write_geojson(path, regions, self.class_names, instances=objects is not None))
        if self.coco is not None:
            self.coco.add(Path(target).name, tuple(labels.shape), regions)

    def add_done(self, target: Path, labels_path: Path, instances: bool) -> None:
        """A target a resumed run does not redo: read back from its label file (or, with
        ``instances``, its ``_objects.tif`` and ``.csv``) where its exports are missing."""
        import pandas as pd

        missing_geojson = "geojson" in self.formats and not self._geojson(target).exists()
        if not (missing_geojson or self.coco is not None):
            return
        self.redo = False
        try:
            if instances and objects_paths(self.out, Path(target).stem)[0].exists():
                tif, csv = objects_paths(self.out, Path(target).stem)
                self.add(target, None, (read_image(tif), pd.read_csv(csv)))
            else:
                self.add_file(target, labels_path)
        finally:
            self.redo = True

    def add_file(self, target: Path, labels_path: Path) -> None:
        """A target whose class labels are in a file: a zarr store or TIFF is read tile by tile."""
        from napari_sansa.files.lazy_inputs import open_lazy

        if not self.formats:
            return
        if not (Path(labels_path).is_dir() or Path(labels_path).suffix.lower() in (".tif", ".tiff")):
            self.add(target, read_image(labels_path))
            return
        opened = open_lazy(labels_path)
        try:
            self.add(target, opened.levels[0])
        finally:
            opened.close()

    def finish(self) -> list[Path]:
        """Write ``coco.json`` (if asked for); every file written for other tools."""
        if self.coco is not None and self.coco.images:
            self.written.append(self.coco.write(self.coco_path))
        return self.written


def large_labels_path(out: Path, target: Path, fmt: str) -> Path:
    """A large target's labels in ``out``: ``<stem>_labels.ome.zarr`` or a tiled ``<stem>_labels.tif``."""
    return out / f"{labels_stem(target)}_labels{'.tif' if fmt == 'tif' else '.ome.zarr'}"


def labels_in_store(store: Path) -> Path:
    """Labels written into the target's own OME-Zarr store: ``<store>/labels/sansa``."""
    return store / "labels" / LABEL_GROUP


def safe_name(name: str) -> str:
    """A layer name as a file name: no separators, no surprises."""
    cleaned = re.sub(r"[^A-Za-z0-9._ -]+", "_", name).strip(" .")
    return cleaned or "image"


def layer_labels_file(folder: Path, name: str, labels) -> Path:
    """An exported layer's labels: PNG for 2D labels that fit in 8 or 16 bits, else TIFF; a
    lazy (large) one as ``<name>.ome.zarr``."""
    if not isinstance(labels, np.ndarray):
        return folder / f"{safe_name(name)}.ome.zarr"
    return folder / f"{safe_name(name)}{labels_suffix(labels, '.png' if labels.ndim == 2 else '.tif')}"


def objects_file(folder: str | os.PathLike, name: str, suffix: str) -> Path:
    """``<name>_objects<suffix>`` in ``folder``: every file of an image's objects is named so."""
    return Path(folder) / f"{name}_objects{suffix}"


def objects_paths(folder: str | os.PathLike, name: str, labels_suffix: str = ".tif") -> tuple[Path, Path]:
    """Where an image's objects go: ``<name>_objects.tif`` (instance labels; ``.ome.zarr`` for a
    large target's store) and ``<name>_objects.csv`` (their table)."""
    return objects_file(folder, name, labels_suffix), objects_file(folder, name, ".csv")
