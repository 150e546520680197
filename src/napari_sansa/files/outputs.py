"""Which targets a file run segments, what every output is named, and which are done already.

All output names live here: a target's label file, a large target's store or tiled TIFF, labels
inside an input OME-Zarr store, a widget layer's exported labels, and objects files.

Shared by the single-process CLI and the cluster runner, so that both expand inputs (files,
folders, glob patterns, ``@list.txt``) and name outputs the same way, and ``--resume`` means the
same: an output that exists and reads back is finished (outputs are written to a temporary file
and renamed, so an existing output is a complete one), anything else is done again.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from napari_sansa.engine.errors import SansaError
from napari_sansa.files.images import labels_suffix, read_image

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
        lines = path.read_text().splitlines()
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


def refuse_existing(outputs: Sequence[Path], names: set[str]) -> None:
    """Stop before any work when outputs exist and neither resuming nor overwriting was asked for."""
    found = [p for p in outputs if p.name in names]
    if found:
        raise SansaError(
            f"{len(found)} of the label images already exist in {found[0].parent} (e.g. {found[0].name}); "
            "add --resume to skip them or --overwrite to replace them."
        )


def unfinished(targets: Sequence[Path], outputs: Sequence[Path]) -> list[int]:
    """Indices of the targets whose output is missing or unreadable (checked here, in this process)."""
    names = {folder: existing(folder) for folder in {out.parent for out in outputs}}
    return [i for i, out in enumerate(outputs) if out.name not in names[out.parent] or not is_complete(out)]


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


def resume_targets(targets: Sequence[Path], out: Path, references, large=None) -> list[Path]:
    """The targets a resumed single-process run still has to do (says how many are done);
    ``large(targets, outputs)`` replaces the outputs of large targets (OME-Zarr, tiled TIFF)."""
    import sys
    import time

    outputs = output_paths(targets, out, reference_classes(references))
    outputs = large(targets, outputs) if large is not None else outputs
    remove_leftovers(outputs, time.time())
    todo = unfinished(targets, outputs)
    print(
        f"Resuming: {len(targets) - len(todo)} of {len(targets)} label images are complete.", file=sys.stderr
    )
    return [targets[i] for i in todo]


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


def objects_paths(folder: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """Where an image's objects go: ``<name>_objects.tif`` (instance labels) and ``<name>_objects.csv``."""
    folder = Path(folder)
    return folder / f"{name}_objects.tif", folder / f"{name}_objects.csv"
