"""Saved sessions: the widget's references, results, accepted targets and settings, on disk.

A session is a folder::

    session.json          format, version, when it was saved, its images (name, labels shape),
                          which files below hold it, accepted targets, scores, widget settings
    references-<n>/       the references, as a reference set (:mod:`.reference_sets`)
    results/<n>-<i>.npz   one image's labels, compressed (the user's corrections included)

Each save writes new files (generation ``n``), then replaces ``session.json`` atomically, then
deletes what ``session.json`` no longer names: a save cut short leaves the previous session as
it was. Parts that did not change since the last save keep their files. Reading checks
everything a damaged or foreign file could get wrong, and says what in one line.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from napari_sansa.engine.errors import SansaError
from napari_sansa.files.images import atomic_write
from napari_sansa.files.prompts import inside, number_list, read_json
from napari_sansa.files.reference_sets import ReferenceSet, read_reference_set, save_references

SESSION_FILE = "session.json"
FORMAT = "napari-sansa session"
FORMAT_VERSION = 1
RESULTS = "results"

Plane = tuple[int, ...]
TargetName = tuple[str, Plane]  # an image's name and a plane of it


@dataclass(frozen=True, eq=False)
class SessionContent:
    """What one save writes. ``results`` holds the labels that changed since the last save;
    ``kept_results`` names the images whose last saved labels still hold. ``references`` are
    :func:`~.reference_sets.save_references`'s keyword arguments (``None``: no references),
    written only when ``references_changed``."""

    images: dict[str, tuple[int, ...]]
    results: dict[str, np.ndarray] = field(default_factory=dict)
    kept_results: frozenset[str] = frozenset()
    references: dict | None = None
    references_changed: bool = True
    accepted: list[TargetName] = field(default_factory=list)
    scores: dict[TargetName, float] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class SavedSession:
    """A session as read back: what :class:`SessionContent` wrote, every part whole."""

    folder: Path
    saved: str
    images: dict[str, tuple[int, ...]]
    references: ReferenceSet | None
    results: dict[str, np.ndarray]
    accepted: list[TargetName]
    scores: dict[TargetName, float]
    settings: dict


# ---------------------------------------------------------------- writing


def _npz_writer(labels: np.ndarray):
    def write(tmp: str) -> None:
        with open(tmp, "wb") as out:
            np.savez_compressed(out, labels=labels)

    return write


def _names(pairs) -> list[dict]:
    return [{"image": name, "plane": list(plane)} for name, plane in pairs]


def write_session(folder: str | os.PathLike, content: SessionContent) -> Path:
    """Save a session into ``folder`` (made if needed); returns its ``session.json``."""
    folder = Path(folder)
    try:
        (folder / RESULTS).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SansaError(f"Cannot save the session in {folder}: {exc.strerror or exc}.") from None
    previous = _previous(folder)
    generation = int(previous.get("generation", 0)) + 1
    references, problem = previous.get("references"), None
    if content.references_changed:
        try:
            references = _save_references(folder, generation, content.references)
        except SansaError as exc:  # one a run would refuse: the last saved ones stay, the rest is saved
            problem = f"The references were not saved: {exc}"
    old = {e["image"]: e["file"] for e in previous.get("results", [])}
    results = {name: old[name] for name in content.kept_results if name in old}
    for i, (name, labels) in enumerate(content.results.items()):
        results[name] = f"{RESULTS}/{generation}-{i}.npz"
        atomic_write(folder / results[name], _npz_writer(labels))
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "generation": generation,
        "images": [{"name": n, "shape": list(s)} for n, s in content.images.items()],
        "references": references,
        "results": [{"image": n, "file": f} for n, f in sorted(results.items())],
        "accepted": _names(content.accepted),
        "scores": [{**n, "score": float(s)} for n, s in zip(_names(content.scores), content.scores.values())],
        "settings": dict(content.settings),
    }
    text = json.dumps(manifest, indent=1)
    target = atomic_write(folder / SESSION_FILE, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    _drop_unnamed(folder, manifest)
    if problem is not None:
        raise SansaError(problem)
    return target


def _save_references(folder: Path, generation: int, arguments: dict | None) -> str | None:
    """The references as this generation's reference set; its folder's name (``None``: no references)."""
    if arguments is None:
        return None
    name = f"references-{generation}"
    shutil.rmtree(folder / name, ignore_errors=True)  # a save cut short left it
    save_references(folder / name, **arguments)
    return name


def _previous(folder: Path) -> dict:
    """The manifest of the last save, or nothing when there is none (or it is damaged)."""
    try:
        return read_manifest(folder)
    except SansaError:
        return {}


def _drop_unnamed(folder: Path, manifest: dict) -> None:
    """Delete the files of earlier saves (and of saves cut short) that the manifest no longer names."""
    keep = {manifest["references"], SESSION_FILE, RESULTS}
    for entry in folder.iterdir():
        if entry.name not in keep and (entry.name.startswith("references-") or entry.suffix == ".json"):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
    named = {Path(e["file"]).name for e in manifest["results"]}
    for entry in (folder / RESULTS).iterdir():
        if entry.name not in named:
            entry.unlink(missing_ok=True)


def delete_session(folder: str | os.PathLike) -> None:
    """Delete a saved session (only a folder that holds one, or the remains of one)."""
    folder = Path(folder)
    if not (folder / SESSION_FILE).is_file() and not (folder / RESULTS).is_dir():
        raise SansaError(f"{folder} is not a saved napari-sansa session; nothing was deleted.")
    shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------- reading


def _damaged(file: Path, what: str) -> SansaError:
    return SansaError(f"{file}: the session is damaged ({what}); delete it in the Sessions section.")


def _plane_names(raw: object, file: Path, what: str, score: bool = False) -> list[tuple[TargetName, float]]:
    if not isinstance(raw, list):
        raise _damaged(file, what)
    out = []
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
            raise _damaged(file, what)
        plane = tuple(int(v) for v in number_list(entry.get("plane"), None, "plane", f"{file}: {what}"))
        value = entry.get("score", 0.0)
        if score and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        ):
            raise _damaged(file, what)
        out.append(((entry["image"], plane), float(value)))
    return out


def _images(raw: object, file: Path) -> dict[str, tuple[int, ...]]:
    images = {}
    for entry in raw if isinstance(raw, list) else [None]:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise _damaged(file, "images")
        shape = number_list(entry.get("shape"), None, "shape", f"{file}: images")
        if not 2 <= len(shape) <= 5 or any(s < 1 or s != int(s) for s in shape):
            raise _damaged(file, "images")
        images[entry["name"]] = tuple(int(s) for s in shape)
    return images


def read_manifest(folder: str | os.PathLike) -> dict:
    """A session's ``session.json``, checked; its images as ``{name: shape}``."""
    file = Path(folder) / SESSION_FILE
    raw = read_json(file, "a napari-sansa session")
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise SansaError(f"{file} is not a napari-sansa session.")
    version = raw.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _damaged(file, "format_version")
    if version > FORMAT_VERSION:
        raise SansaError(f"{file} was saved by a newer napari-sansa; update napari-sansa to restore it.")
    checks = {"saved": str, "generation": int, "results": list, "settings": dict}
    if any(not isinstance(raw.get(key), kind) for key, kind in checks.items()):
        raise _damaged(file, "header")
    if raw.get("references") is not None and not isinstance(raw["references"], str):
        raise _damaged(file, "references")
    raw["images"] = _images(raw.get("images"), file)
    for entry in raw["results"]:
        if not isinstance(entry, dict) or entry.get("image") not in raw["images"]:
            raise _damaged(file, "results")
        inside(Path(folder), entry.get("file"), f"{file}: results")
    return raw


def _labels(path: Path, shape: tuple[int, ...], file: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as archive:
            labels = archive["labels"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise _damaged(file, f"{path.name} cannot be read: {type(exc).__name__}") from None
    if labels.shape != shape or labels.dtype.kind not in "ui":
        raise _damaged(file, f"{path.name} does not fit its image")
    return labels


def read_session(folder: str | os.PathLike) -> SavedSession:
    """Read a saved session, every file checked (``SansaError``: which file, in one line)."""
    folder = Path(folder)
    raw = read_manifest(folder)
    file = folder / SESSION_FILE
    references = None
    if raw["references"] is not None:
        references = read_reference_set(inside(folder, raw["references"], f"{file}: references"))
    results = {
        e["image"]: _labels(inside(folder, e["file"], str(file)), raw["images"][e["image"]], file)
        for e in raw["results"]
    }
    accepted = [name for name, _ in _plane_names(raw.get("accepted"), file, "accepted")]
    scores = dict(_plane_names(raw.get("scores"), file, "scores", score=True))
    return SavedSession(
        folder, raw["saved"], raw["images"], references, results, accepted, scores, raw["settings"]
    )


def fits(images: Mapping[str, tuple[int, ...]], open_images: Mapping[str, tuple[int, ...]]) -> bool:
    """Whether every image of a session is open, by the same name and with the same shape."""
    return bool(images) and all(open_images.get(name) == tuple(shape) for name, shape in images.items())
