"""Reference sets: annotated references in a folder that travels between machines and tools.

A set is a folder::

    references.json      format, version, model, settings, class names, and per reference:
                         its image file, display settings, where it came from, its prompts
    images/ref_000.tif   each reference's pixels (zlib TIFF)
    masks/ref_000_class1_0.tif   mask prompts (0/1)

Boxes, points and scribbles are stored inline. The same set can be written from the widget
(Export…), from Python (:func:`save_references`) and read by all three (the CLI's
``--references``). Reading checks everything a stranger's file could get wrong.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.inputs.images import Image, as_image, image_hw
from napari_sansa.engine.inputs.prompts import MAX_CLASS_ID, Prompt, Reference, resolve_reference
from napari_sansa.files.overwrite import refuse_existing
from napari_sansa.files.prompts import (
    MODEL_FIELDS,
    SETTING_FIELDS,
    class_id_from_json,
    class_prompts_from_json,
    inside,
    number_list,
    prompt_to_json,
    read_json,
    read_tiff,
    scalar_fields,
    write_tiff,
)

SET_FILE = "references.json"
FORMAT = "napari-sansa references"
FORMAT_VERSION = 1
RUN_RECORD_FORMAT = "napari-sansa run"  # what the widget exported before reference sets
RUN_RECORD_FILE = "sansa_run.json"
MAX_NAME_CHARS = 200


@dataclass(frozen=True, eq=False)
class ReferenceSet:
    """A reference set as read: the references and what travels with them."""

    references: list[Reference]
    class_names: dict[int, str] = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    sources: list[dict] = field(default_factory=list)  # per reference: {"image": name, "plane": [...]} or {}


def set_file(path: str | os.PathLike) -> Path:
    """The ``references.json`` of a set given as its folder or as the file itself."""
    path = Path(path)
    return path / SET_FILE if path.is_dir() else path


def file_format(path: str | os.PathLike) -> str | None:
    """The ``format`` a napari-sansa JSON file (or folder holding one) declares, if any."""
    path = Path(path)
    if path.is_dir():
        candidates = [path / SET_FILE, path / RUN_RECORD_FILE]
        path = next((p for p in candidates if p.is_file()), candidates[0])
    try:
        raw = read_json(path, "a JSON file") if path.is_file() else None
    except SansaError:
        return None
    value = raw.get("format") if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None


# ---------------------------------------------------------------- saving


def _prompt_list(prompts: Prompt | Sequence[Prompt]) -> list[Prompt]:
    return list(prompts) if isinstance(prompts, (list, tuple)) else [prompts]


def _clean_names(class_names: Mapping[int, str] | None) -> dict[int, str]:
    names: dict[int, str] = {}
    for class_id, name in (class_names or {}).items():
        if isinstance(class_id, bool) or not isinstance(class_id, (int, np.integer)) or class_id < 1:
            raise SansaError(f"Class names: {class_id!r} is no class id (use 1, 2, 3, ...).")
        if class_id > MAX_CLASS_ID:
            raise SansaError(f"Class names: {class_id} is beyond the largest class id ({MAX_CLASS_ID}).")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS or "\n" in name:
            raise SansaError(
                f"Class names: the name of class {class_id} must be one line of text (at most {MAX_NAME_CHARS} characters)."
            )
        names[int(class_id)] = name.strip()
    return names


def _clean_source(source: object, index: int) -> dict:
    if source is None or source == {}:
        return {}
    if not isinstance(source, Mapping) or not isinstance(source.get("image"), str):
        raise SansaError(f"Source of reference {index} must be a dict with an 'image' name.")
    plane = [v.item() if isinstance(v, np.generic) else v for v in source.get("plane", [])]
    where = f"Source of reference {index}"
    return {
        "image": source["image"],
        "plane": [int(v) for v in number_list(plane, None, "plane", where)],
    }


def _mask_saver(folder: Path, name: str, written: set[Path]):
    """``save(pixels) -> name``: writes one mask file of the set and remembers it."""

    def save(pixels: np.ndarray) -> str:
        written.add(write_tiff(folder / name, pixels))
        return name

    return save


def check_set_folder(folder: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse a folder a set may not be written into: a file, a non-empty folder that is no
    set, or an existing set unless ``overwrite``. Nothing is written."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SansaError(f"{folder} is a file; a reference set is a folder.")
    if folder.is_dir() and any(folder.iterdir()):
        if file_format(folder / SET_FILE) != FORMAT:
            raise SansaError(
                f"{folder} already holds other files and is not a reference set; choose an empty or new folder."
            )
        refuse_existing([folder / SET_FILE], overwrite=overwrite)


def _prepare_folder(folder: Path, overwrite: bool) -> None:
    check_set_folder(folder, overwrite)
    try:
        for sub in (folder, folder / "images", folder / "masks"):
            sub.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SansaError(f"Cannot write the reference set {folder}: {exc.strerror or exc}.") from None


def save_references(
    path: str | os.PathLike,
    references: Sequence[Reference],
    class_names: Mapping[int, str] | None = None,
    *,
    model: Mapping | None = None,
    settings: Mapping | None = None,
    sources: Sequence[Mapping | None] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write references as a reference set in the folder ``path``; returns its ``references.json``.

    ``class_names`` maps class ids to names; ``model`` and ``settings`` record what they were
    used with (plain strings and numbers); ``sources`` says, per reference, which image
    (``{"image": name, "plane": [...]}``) it came from. Every file is written atomically with
    the user's umask; an existing set is replaced only with ``overwrite=True``, and a folder
    holding anything else is never written into.
    """
    references = list(references)
    if not references:
        raise SansaError("There are no references to save.")
    for i, reference in enumerate(references):
        resolve_reference(reference, i)  # a set that cannot be run is never written
    names = _clean_names(class_names)
    sources = list(sources) if sources is not None else [None] * len(references)
    if len(sources) != len(references):
        raise SansaError(f"{len(sources)} sources were given for {len(references)} references.")
    clean_sources = [_clean_source(s, i) for i, s in enumerate(sources)]
    folder = Path(path)
    _prepare_folder(folder, overwrite)

    written: set[Path] = set()
    entries = [
        _entry(folder, i, reference, clean_sources[i], written) for i, reference in enumerate(references)
    ]
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "napari_sansa_version": _package_version(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": scalar_fields(dict(model or {}), MODEL_FIELDS),
        "settings": scalar_fields(dict(settings or {}), SETTING_FIELDS),
        "class_names": {str(k): v for k, v in sorted(names.items())},
        "references": entries,
    }
    return _finish(folder, document, written)


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("napari-sansa")
    except PackageNotFoundError:  # a source tree without an install
        return "0.0.0"


def _entry(folder: Path, i: int, reference: Reference, source: dict | None, written: set[Path]) -> dict:
    """One reference's entry of ``references.json``; its image and masks written as TIFFs."""
    image = as_image(reference.image)
    image_file = f"images/ref_{i:03d}.tif"
    written.add(write_tiff(folder / image_file, np.asarray(image.data)))
    prompts = {
        str(int(c)): [
            prompt_to_json(p, _mask_saver(folder, f"masks/ref_{i:03d}_class{int(c)}_{j}.tif", written))
            for j, p in enumerate(_prompt_list(items))
        ]
        for c, items in sorted(reference.prompts.items())
    }
    limits = image.contrast_limits
    return {
        "image": image_file,
        "contrast_limits": None if limits is None else [float(v) for v in limits],
        "channel_axis": image.channel_axis,
        "channels": None if image.channels is None else [int(c) for c in image.channels],
        "source": source,
        "prompts": prompts,
    }


def _finish(folder: Path, document: dict, written: set[Path]) -> Path:
    """Write ``references.json`` last, then drop files an older set left that it no longer names."""
    import json

    from napari_sansa.files.images import atomic_write

    target = folder / SET_FILE
    text = json.dumps(document, indent=2)
    atomic_write(target, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    keep = {p.resolve() for p in written}
    for sub in ("images", "masks"):
        for old in (folder / sub).glob("*.tif"):
            if old.resolve() not in keep:
                old.unlink(missing_ok=True)
    return target


# ---------------------------------------------------------------- loading


def _check_header(raw: object, path: Path) -> dict:
    if isinstance(raw, dict) and raw.get("format") == RUN_RECORD_FORMAT:
        raise SansaError(
            f"{path} is a run record of an older napari-sansa: it names napari layers, not images, so "
            "it cannot become references on its own; load it in the napari widget (Load references…) "
            "with the images open, then export again to get a reference set."
        )
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise SansaError(f"{path} is not a napari-sansa reference set.")
    version = raw.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SansaError(f"{path}: the reference set is damaged (no valid format_version).")
    if version > FORMAT_VERSION:
        raise SansaError(
            f"{path} was written by a newer napari-sansa (format version {version}; this one reads "
            f"up to {FORMAT_VERSION}); update napari-sansa to read it."
        )
    for key, kind in (("model", dict), ("settings", dict), ("class_names", dict), ("references", list)):
        if not isinstance(raw.get(key, kind()), kind):
            raise SansaError(f"{path}: the reference set is damaged ({key}).")
    if not raw.get("references"):
        raise SansaError(f"{path}: the reference set holds no references.")
    return raw


def _names_from_json(raw: dict, path: Path) -> dict[int, str]:
    names = {class_id_from_json(key, f"{path}: class names"): name for key, name in raw.items()}
    try:
        return _clean_names(names)
    except SansaError as exc:
        raise SansaError(f"{path}: {exc}") from None


def _image_from_json(entry: dict, folder: Path, where: str) -> Image:
    pixels = read_tiff(inside(folder, entry.get("image"), where), where)
    limits = entry.get("contrast_limits")
    if limits is not None:
        limits = tuple(number_list(limits, 2, "contrast_limits", where))
    axis = entry.get("channel_axis")
    if axis is not None and (isinstance(axis, bool) or not isinstance(axis, int)):
        raise SansaError(f"{where}: channel_axis must be a whole number or null.")
    channels = entry.get("channels")
    if channels is not None:
        channels = [int(c) for c in number_list(channels, None, "channels", where)]
    image = Image(pixels, contrast_limits=limits, channel_axis=axis, channels=channels)
    try:
        image_hw(image)
    except SansaError as exc:
        raise SansaError(f"{where}: {exc}") from None
    return image


def read_reference_set(path: str | os.PathLike) -> ReferenceSet:
    """Read and validate a reference set (its folder or its ``references.json``)."""
    file = set_file(path)
    if Path(path).is_dir() and not file.is_file():
        old = Path(path) / RUN_RECORD_FILE
        if old.is_file():
            file = old  # explained below
        else:
            raise SansaError(f"{path} is not a reference set: it holds no {SET_FILE}.")
    if not file.exists():
        raise SansaError(f"{file} does not exist.")
    raw = _check_header(read_json(file, "a napari-sansa reference set"), file)
    folder = file.parent
    references, sources = [], []
    for i, entry in enumerate(raw["references"]):
        where = f"{file}: reference {i}"
        if not isinstance(entry, dict):
            raise SansaError(f"{where} is damaged.")
        image = _image_from_json(entry, folder, where)
        prompts = class_prompts_from_json(entry.get("prompts"), folder, where)
        reference = Reference(image, prompts)
        try:
            resolve_reference(reference, i)  # mask sizes, points inside the image, ...
        except SansaError as exc:
            raise SansaError(f"{file}: {exc}") from None
        references.append(reference)
        try:
            sources.append(_clean_source(entry.get("source"), i))
        except SansaError as exc:
            raise SansaError(f"{file}: {exc}") from None
    return ReferenceSet(
        references,
        _names_from_json(raw.get("class_names", {}), file),
        scalar_fields(raw.get("model", {}), MODEL_FIELDS),
        scalar_fields(raw.get("settings", {}), SETTING_FIELDS),
        sources,
    )


def load_references(path: str | os.PathLike) -> list[Reference]:
    """The references of a reference set, checked, ready for ``Sansa.propagate``."""
    return read_reference_set(path).references
