"""The command line's references: image:mask pairs, reference sets and class names.

Kept apart from :mod:`.cli` so that the parser stays a list of options.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from napari_sansa.engine.errors import SansaError


def split_reference(value: str) -> tuple[Path, Path]:
    """``IMAGE:MASK`` as two paths: the last colon that is not a Windows drive's (``C:\\``,
    ``D:/``) splits them."""
    cuts = [i for i, c in enumerate(value) if c == ":" and not _drive_colon(value, i)]
    image, mask = (value[: cuts[-1]], value[cuts[-1] + 1 :]) if cuts else ("", "")
    if not image or not mask:
        raise SansaError(f"--reference {value!r} must be IMAGE:MASK (an image file and its label image).")
    return Path(image), Path(mask)


def _drive_colon(value: str, i: int) -> bool:
    """Whether the colon at ``i`` ends a drive letter that starts a path (``C:\\`` or ``C:/``)."""
    starts_path = i == 1 or (i >= 2 and value[i - 2] == ":")
    return starts_path and value[i - 1].isalpha() and value[i + 1 : i + 2] in ("\\", "/")


def parse_class_names(values: Sequence[str]) -> dict[int, str]:
    """``--class-name ID=NAME`` options as class id -> name."""
    names: dict[int, str] = {}
    for value in values:
        key, sep, name = value.partition("=")
        if not sep or not key.strip().isdigit() or int(key) < 1 or not name.strip():
            raise SansaError(
                f"--class-name {value!r} must be ID=NAME with a class id 1, 2, 3, ... (e.g. 1=nucleus)."
            )
        if int(key) in names and names[int(key)] != name.strip():
            raise SansaError(
                f"--class-name gives class {int(key)} two names: {names[int(key)]!r} and {name.strip()!r}."
            )
        names[int(key)] = name.strip()
    return names


class ReferenceInputs(NamedTuple):
    references: list
    files: set[Path]  # the files they were read from: never targets
    class_names: dict[int, str]
    notes: list[str]  # one line per mask: how its values were read
    names: list[str]  # per reference, a file-name stem: its image's (leave-one-out's outputs)


def _source_name(source: dict, folder: Path, index: int) -> str:
    """A reference's name from a set: its source image (and plane), else the set's name and index."""
    if not source:
        return f"{folder.name}_ref_{index:03d}"
    planes = "".join(f"_{p}" for p in source.get("plane", []))
    return f"{Path(source['image']).stem}{planes}"


def _unique(names: list[str]) -> list[str]:
    counts = {n: names.count(n) for n in names}
    return [f"{n}_{i}" if counts[n] > 1 else n for i, n in enumerate(names)]


def gather_references(
    pairs: Sequence[str],
    sets: Sequence[str | Path],
    mask_mode: str = "auto",
    class_name_options: Sequence[str] = (),
) -> ReferenceInputs:
    """References from ``IMAGE:MASK`` pairs and reference sets, with the files they came from.

    Each mask's reading (one class per value, or one class for an instance mask) is decided by
    ``mask_mode`` and said in ``notes``; names from ``--class-name`` win over a set's.
    """
    from napari_sansa.engine.inputs.masks import classes_from_mask
    from napari_sansa.engine.inputs.prompts import Mask, Reference
    from napari_sansa.files.images import read_image
    from napari_sansa.files.reference_sets import read_reference_set, set_file

    if not pairs and not sets:
        raise SansaError(
            "Give references: --reference IMAGE:MASK (repeat for k shots) or --references SET_FOLDER."
        )
    references, files, names, notes, stems = [], set(), {}, [], []
    for image_path, mask_path in (split_reference(value) for value in pairs):
        image = read_image(image_path)
        decided = classes_from_mask(read_image(mask_path), mask_mode, source=f"Mask {mask_path}")
        notes.append(decided.message)
        references.append(Reference(image, {c: Mask(m) for c, m in decided.classes.items()}))
        files.update({image_path.resolve(), mask_path.resolve()})
        stems.append(image_path.stem)
    for path in sets:
        loaded = read_reference_set(path)
        references.extend(loaded.references)
        names.update(loaded.class_names)
        folder = set_file(path).parent
        stems.extend(_source_name(s, folder, i) for i, s in enumerate(loaded.sources))
        files.update(p.resolve() for sub in ("images", "masks") for p in (folder / sub).glob("*.tif"))
    given = parse_class_names(class_name_options)
    used = {int(c) for reference in references for c in reference.prompts}
    unknown = sorted(set(given) - used)
    if unknown:
        raise SansaError(
            f"--class-name names class {unknown[0]}, which no reference has (classes: {', '.join(map(str, sorted(used)))})."
        )
    names.update(given)
    return ReferenceInputs(references, files, names, notes, _unique(stems))
