"""Exporting results, and the run record (JSON) that lets a run be repeated.

Label files are written atomically and never over existing files unless asked. The record
names the model, the settings and every reference; masks are stored as TIFF files beside it.
Loading validates the record and refuses paths that point outside its folder.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .. import __version__
from ..engine.errors import SansaError
from ..engine.prompts import Box, Mask, Points, Prompt, Scribble
from ..files import labels_suffix, write_labels

RECORD_NAME = "sansa_run.json"
FORMAT = "napari-sansa run"
MAX_RECORD_BYTES = 50_000_000


def safe_name(name: str) -> str:
    """A layer name as a file name: no separators, no surprises."""
    cleaned = re.sub(r"[^A-Za-z0-9._ -]+", "_", name).strip(" .")
    return cleaned or "image"


def result_file(folder: Path, name: str, labels: np.ndarray) -> Path:
    """TIFF for stacks and wide labels; PNG for 2D labels that fit in 8 or 16 bits."""
    return folder / f"{safe_name(name)}{labels_suffix(labels, '.png' if labels.ndim == 2 else '.tif')}"


def export_labels(results: dict[str, np.ndarray], folder: Path, overwrite: bool = False) -> list[Path]:
    """Write each image's labels; refuse (before writing anything) if a file exists."""
    planned = {name: result_file(folder, name, labels) for name, labels in results.items()}
    existing = [p for p in planned.values() if p.exists()]
    if existing and not overwrite:
        raise SansaError(
            f"{len(existing)} file(s) already exist in {folder}, e.g. {existing[0].name}; "
            "choose another folder or allow overwriting."
        )
    return [write_labels(planned[name], labels, overwrite=overwrite) for name, labels in results.items()]


def _prompt_to_json(prompt: Prompt, folder: Path, stem: str, index: int) -> dict:
    if isinstance(prompt, Mask):
        relative = Path("references") / f"{stem}_{index}.tif"
        (folder / "references").mkdir(exist_ok=True)
        write_labels(folder / relative, np.asarray(prompt.mask, np.uint8), overwrite=True)
        return {"type": "mask", "file": relative.as_posix()}
    if isinstance(prompt, Box):
        return {"type": "box", "corners": [prompt.r0, prompt.c0, prompt.r1, prompt.c1]}
    if isinstance(prompt, Points):
        labels = [1] * len(prompt.coords) if prompt.labels is None else [int(v) for v in prompt.labels]
        return {"type": "points", "coords": np.asarray(prompt.coords, float).tolist(), "labels": labels}
    return {
        "type": "scribble",
        "path": np.asarray(prompt.path, float).tolist(),
        "positive": bool(prompt.positive),
    }


@dataclass(frozen=True)
class RecordedReference:
    image: str
    plane: tuple[int, ...]
    prompts: dict[int, list[Prompt]]


@dataclass(frozen=True)
class RunRecord:
    model: dict
    settings: dict
    references: list[RecordedReference]


def write_record(
    folder: Path, model: dict, settings: dict, references: list[RecordedReference], targets: list[dict]
) -> Path:
    """Write ``sansa_run.json`` (and reference masks) into the export folder."""
    entries = []
    for i, ref in enumerate(references):
        stem = f"{safe_name(ref.image)}_{i}"
        prompts = {
            str(c): [_prompt_to_json(p, folder, f"{stem}_class{c}", j) for j, p in enumerate(ps)]
            for c, ps in ref.prompts.items()
        }
        entries.append({"image": ref.image, "plane": list(ref.plane), "prompts": prompts})
    record = {
        "format": FORMAT,
        "version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model,
        "settings": settings,
        "references": entries,
        "targets": targets,
    }
    path = folder / RECORD_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)
    return path


def _inside(folder: Path, relative: str) -> Path:
    candidate = (folder / relative).resolve()
    if Path(relative).is_absolute() or folder.resolve() not in candidate.parents:
        raise SansaError(f"The run record points outside its folder ({relative!r}); refusing to read it.")
    return candidate


def _number_list(value, length: int | None, what: str) -> list[float]:
    if not isinstance(value, list) or (length is not None and len(value) != length):
        raise SansaError(f"Run record: {what} must be a list of {length or 'some'} numbers.")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise SansaError(f"Run record: {what} must hold numbers only.")
    return [float(v) for v in value]


def _prompt_from_json(entry, folder: Path, hw_hint: str) -> Prompt:
    from ..files import read_image

    if not isinstance(entry, dict) or entry.get("type") not in ("mask", "box", "points", "scribble"):
        raise SansaError(f"Run record: unknown prompt {entry!r} on {hw_hint}.")
    kind = entry["type"]
    if kind == "mask":
        if not isinstance(entry.get("file"), str):
            raise SansaError(f"Run record: a mask on {hw_hint} names no file.")
        return Mask(read_image(_inside(folder, entry["file"])) != 0)
    if kind == "box":
        return Box(*_number_list(entry.get("corners"), 4, "box corners"))
    if kind == "points":
        coords = entry.get("coords")
        if not isinstance(coords, list) or not coords:
            raise SansaError(f"Run record: points on {hw_hint} have no coordinates.")
        rows = [_number_list(c, 2, "point coordinates") for c in coords]
        labels = [
            int(v) for v in _number_list(entry.get("labels", [1] * len(rows)), len(rows), "point labels")
        ]
        return Points(np.array(rows), labels=labels)
    path = entry.get("path")
    if not isinstance(path, list) or not path:
        raise SansaError(f"Run record: a scribble on {hw_hint} has no path.")
    return Scribble(
        np.array([_number_list(p, 2, "scribble vertices") for p in path]), bool(entry.get("positive", True))
    )


def read_record(path: str | Path) -> RunRecord:
    """Read and validate a run record written by :func:`write_record`."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            raise SansaError(f"{path} is too large to be a run record.")
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise SansaError(f"Cannot read the run record {path}: {exc.strerror or exc}.") from None
    except ValueError:
        raise SansaError(f"{path} is not a napari-sansa run record (not valid JSON).") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise SansaError(f"{path} is not a napari-sansa run record.")
    model, settings, refs = raw.get("model", {}), raw.get("settings", {}), raw.get("references")
    if not isinstance(model, dict) or not isinstance(settings, dict) or not isinstance(refs, list):
        raise SansaError(f"{path}: the run record is damaged (model, settings or references).")
    references = []
    for i, entry in enumerate(refs):
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
            raise SansaError(f"{path}: reference {i} names no image.")
        plane = tuple(int(v) for v in _number_list(entry.get("plane", []), None, "plane"))
        prompts_raw = entry.get("prompts")
        if not isinstance(prompts_raw, dict) or not prompts_raw:
            raise SansaError(f"{path}: reference {i} has no prompts.")
        prompts = {}
        for class_id, items in prompts_raw.items():
            if not str(class_id).isdigit() or int(class_id) < 1 or not isinstance(items, list):
                raise SansaError(f"{path}: reference {i} has a bad class {class_id!r}.")
            prompts[int(class_id)] = [
                _prompt_from_json(item, path.parent, f"reference {i}") for item in items
            ]
        references.append(RecordedReference(entry["image"], plane, prompts))
    clean_model = {
        k: v
        for k, v in model.items()
        if isinstance(v, (str, int, float))
        and k in ("name", "sam2_checkpoint", "adapter_checkpoint", "sam2_size")
    }
    clean_settings = {
        k: v
        for k, v in settings.items()
        if isinstance(v, (str, int, float)) and k in ("device", "precision", "image_size", "threshold")
    }
    return RunRecord(clean_model, clean_settings, references)
