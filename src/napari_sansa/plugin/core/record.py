"""Exporting label files, and reading the run records (``sansa_run.json``) of older versions.

Label files are written atomically and never over existing files unless asked. Exports now
carry a reference set (:mod:`napari_sansa.files.reference_sets`); a run record names napari layers,
not images, so it is still read here, for the widget, and validated as carefully: paths
outside its folder, bad numbers and oversized files are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.inputs.prompts import Prompt
from napari_sansa.files.outputs import layer_labels_file
from napari_sansa.files.overwrite import refuse_existing
from napari_sansa.files.prompts import (
    MODEL_FIELDS,
    SETTING_FIELDS,
    class_prompts_from_json,
    number_list,
    read_json,
    scalar_fields,
)
from napari_sansa.files.reference_sets import RUN_RECORD_FILE, RUN_RECORD_FORMAT

RECORD_NAME, FORMAT = RUN_RECORD_FILE, RUN_RECORD_FORMAT


def planned_labels(results: dict[str, np.ndarray], folder: Path, overwrite: bool = False) -> dict[str, Path]:
    """Each image's label file (see :func:`~napari_sansa.files.outputs.layer_labels_file`);
    refuses if one exists (unless ``overwrite``). Writes nothing."""
    planned = {name: layer_labels_file(folder, name, labels) for name, labels in results.items()}
    refuse_existing(planned.values(), "label files", overwrite=overwrite)
    return planned


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


def read_record(path: str | Path) -> RunRecord:
    """Read and validate a run record (``sansa_run.json``) of an older napari-sansa."""
    path = Path(path)
    raw = read_json(path, "a napari-sansa run record")
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise SansaError(f"{path} is not a napari-sansa run record.")
    model, settings, refs = raw.get("model", {}), raw.get("settings", {}), raw.get("references")
    if not isinstance(model, dict) or not isinstance(settings, dict) or not isinstance(refs, list):
        raise SansaError(f"{path}: the run record is damaged (model, settings or references).")
    references = []
    for i, entry in enumerate(refs):
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
            raise SansaError(f"{path}: reference {i} names no image.")
        where = f"{path}: reference {i}"
        plane = tuple(int(v) for v in number_list(entry.get("plane", []), None, "plane", where))
        prompts = class_prompts_from_json(entry.get("prompts"), path.parent, where)
        references.append(RecordedReference(entry["image"], plane, prompts))
    return RunRecord(scalar_fields(model, MODEL_FIELDS), scalar_fields(settings, SETTING_FIELDS), references)
