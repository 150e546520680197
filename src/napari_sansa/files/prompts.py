"""Prompts as JSON entries and TIFF files, and the checks on reading them back.

Shared by reference sets (:mod:`.reference_sets`) and the widget's old run records: a file a
user received from someone else is data to check, never to trust. Paths must stay inside
their folder, numbers must be numbers, and files must be of a sane size before they are
decoded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.inputs.prompts import MAX_CLASS_ID, Box, Mask, Points, Prompt, Scribble

MAX_JSON_BYTES = 50_000_000
MAX_ARRAY_BYTES = 4 * 2**30  # decoded pixels of one image or mask file
PROMPT_TYPES = ("mask", "box", "points", "scribble")
MODEL_FIELDS = ("name", "sam2_checkpoint", "adapter_checkpoint", "sam2_size")
SETTING_FIELDS = ("device", "precision", "image_size", "threshold")


def scalar_fields(raw: dict, known: tuple[str, ...]) -> dict:
    """The known fields of a model or settings entry that hold plain strings or numbers."""
    return {
        k: v
        for k, v in raw.items()
        if k in known and isinstance(v, (str, int, float)) and not isinstance(v, bool)
    }


def read_json(path: Path, what: str) -> object:
    """A JSON file's content; ``what`` (e.g. "a napari-sansa run record") names it in errors."""
    import json

    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise SansaError(f"{path} is too large to be {what}.")
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SansaError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    except ValueError:
        raise SansaError(f"{path} is not {what} (not valid JSON).") from None
    except RecursionError:  # nested thousands of levels deep: made to hurt, never written by us
        raise SansaError(f"{path} is not {what} (its JSON is nested too deeply).") from None


def inside(folder: Path, relative: object, what: str) -> Path:
    """``folder / relative``, refused if it leads outside ``folder`` (absolute, ``..``, links)."""
    if not isinstance(relative, str) or not relative:
        raise SansaError(f"{what}: a file name is missing.")
    candidate = (folder / relative).resolve()
    if Path(relative).is_absolute() or folder.resolve() not in candidate.parents:
        raise SansaError(f"{what} points outside its folder ({relative!r}); refusing to read it.")
    return candidate


def number_list(value: object, length: int | None, what: str, where: str) -> list[float]:
    """A JSON list of ``length`` numbers (booleans and strings are not numbers)."""
    if not isinstance(value, list) or (length is not None and len(value) != length):
        raise SansaError(f"{where}: {what} must be a list of {length or 'some'} numbers.")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise SansaError(f"{where}: {what} must hold numbers only.")
    values = [float(v) for v in value]
    if not np.all(np.isfinite(values)):
        raise SansaError(f"{where}: {what} must be finite numbers.")
    return values


def read_tiff(path: Path, where: str) -> np.ndarray:
    """A TIFF file's pixels, after checking that it exists and decodes to a sane size."""
    import tifffile

    if not path.is_file():
        raise SansaError(f"{where}: the file {path.name} is missing; the folder is incomplete.")
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            nbytes = int(np.prod(series.shape, dtype=np.int64)) * np.dtype(series.dtype).itemsize
            if nbytes > MAX_ARRAY_BYTES:
                raise SansaError(f"{where}: {path.name} would decode to {nbytes / 2**30:.1f} GiB; refusing.")
            return np.asarray(series.asarray())
    except SansaError:
        raise
    except Exception as exc:  # tifffile raises many types for bad files
        raise SansaError(f"{where}: cannot read {path.name}: {exc}") from None


def write_tiff(path: Path, data: np.ndarray) -> Path:
    """Write an array as a zlib-compressed TIFF, atomically, with the user's umask."""
    import tifffile

    from napari_sansa.files.images import atomic_write

    return atomic_write(path, lambda tmp: tifffile.imwrite(tmp, data, compression="zlib"))


def mask_array(mask: Mask) -> np.ndarray:
    """A mask prompt as 0/1 uint8 pixels (an ``(H, W, 1)`` mask loses its last axis)."""
    array = np.asarray(mask.mask)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return (np.nan_to_num(array) != 0).astype(np.uint8)


def prompt_to_json(prompt: Prompt, save_mask: Callable[[np.ndarray], str]) -> dict:
    """One prompt as a JSON entry; ``save_mask(pixels)`` stores a mask and returns its file name."""
    if isinstance(prompt, Mask):
        return {"type": "mask", "file": save_mask(mask_array(prompt))}
    if isinstance(prompt, Box):
        return {
            "type": "box",
            "corners": [float(prompt.r0), float(prompt.c0), float(prompt.r1), float(prompt.c1)],
        }
    if isinstance(prompt, Points):
        coords = np.asarray(prompt.coords, float).reshape(-1, 2)
        labels = [1] * len(coords) if prompt.labels is None else [int(v) for v in np.ravel(prompt.labels)]
        return {"type": "points", "coords": coords.tolist(), "labels": labels}
    if isinstance(prompt, Scribble):
        return {
            "type": "scribble",
            "path": np.asarray(prompt.path, float).reshape(-1, 2).tolist(),
            "positive": bool(prompt.positive),
        }
    raise SansaError(f"Unknown prompt {prompt!r}: use Mask, Box, Points or Scribble.")


def prompt_from_json(entry: object, folder: Path, where: str) -> Prompt:
    """A prompt from its JSON entry; a mask's TIFF file must lie inside ``folder``."""
    if not isinstance(entry, dict) or entry.get("type") not in PROMPT_TYPES:
        raise SansaError(f"{where}: unknown prompt {entry!r}.")
    kind = entry["type"]
    if kind == "mask":
        if not isinstance(entry.get("file"), str):
            raise SansaError(f"{where}: a mask names no file.")
        return Mask(read_tiff(inside(folder, entry["file"], where), where) != 0)
    if kind == "box":
        return Box(*number_list(entry.get("corners"), 4, "box corners", where))
    if kind == "points":
        coords = entry.get("coords")
        if not isinstance(coords, list) or not coords:
            raise SansaError(f"{where}: points have no coordinates.")
        rows = [number_list(c, 2, "point coordinates", where) for c in coords]
        labels = number_list(entry.get("labels", [1] * len(rows)), len(rows), "point labels", where)
        return Points(np.array(rows), labels=[int(v) for v in labels])
    path = entry.get("path")
    if not isinstance(path, list) or not path:
        raise SansaError(f"{where}: a scribble has no path.")
    positive = entry.get("positive", True)
    if not isinstance(positive, bool):
        raise SansaError(f"{where}: a scribble's 'positive' must be true or false.")
    return Scribble(np.array([number_list(p, 2, "scribble vertices", where) for p in path]), positive)


def class_id_from_json(key: object, where: str) -> int:
    """A class id written as a JSON key: a whole number from 1 to :data:`MAX_CLASS_ID`."""
    text = str(key).lstrip("0") if str(key).isdigit() else str(key)
    if not (text.isascii() and text.isdigit()):
        raise SansaError(f"{where} has a bad class {key!r} (class ids are 1, 2, 3, ...).")
    if len(text) > 10 or int(text) > MAX_CLASS_ID:  # a huge digit string is never converted whole
        shown = text if len(text) <= 20 else text[:20] + "..."
        raise SansaError(
            f"{where} has class {shown}, beyond the largest id label files hold ({MAX_CLASS_ID})."
        )
    return int(text)


def class_prompts_from_json(raw: object, folder: Path, where: str) -> dict[int, list[Prompt]]:
    """``{"1": [entry, ...], ...}`` as class id -> prompts; ids are whole numbers >= 1."""
    if not isinstance(raw, dict) or not raw:
        raise SansaError(f"{where} has no prompts.")
    prompts: dict[int, list[Prompt]] = {}
    for class_id, items in raw.items():
        number = class_id_from_json(class_id, where)
        if not isinstance(items, list) or not items:
            raise SansaError(f"{where} has a bad class {class_id!r} (it has no prompts).")
        prompts[number] = [prompt_from_json(item, folder, where) for item in items]
    return prompts
