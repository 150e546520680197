"""``classes.csv``: the names of the classes, beside the label files that hold their ids.

Label images hold numbers; this small table (columns ``id,name``) says what they mean. It is
written atomically and never over a different table unless asked.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from napari_sansa.files.overwrite import refuse_existing

CLASSES_FILE = "classes.csv"


def classes_table(class_names: dict[int, str], class_ids: Iterable[int] = ()) -> str:
    """The table's text: one row per class (an empty name where none was given)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "name"])
    for class_id in sorted({int(c) for c in class_ids} | set(class_names)):
        writer.writerow([class_id, class_names.get(class_id, "")])
    return out.getvalue()


def planned_class_table(
    folder: Path, class_names: dict[int, str], class_ids: Iterable[int] = (), overwrite: bool = False
) -> tuple[Path, str] | None:
    """Where ``classes.csv`` goes and its text; None when there is nothing (new) to write.

    Refuses a different existing table unless ``overwrite``: call it before writing anything.
    """
    if not class_names:
        return None
    path = Path(folder) / CLASSES_FILE
    text = classes_table(class_names, class_ids)
    if path.exists():
        try:
            if path.read_text(encoding="utf-8") == text:
                return None
        except (OSError, UnicodeDecodeError):
            pass
        refuse_existing([path], overwrite=overwrite, detail="with other class names")
    return path, text


def write_class_table(
    folder: Path, class_names: dict[int, str], class_ids: Iterable[int] = (), overwrite: bool = False
) -> Path | None:
    """Write ``classes.csv`` into ``folder`` when names are known; returns it if written."""
    from napari_sansa.files.images import atomic_write

    planned = planned_class_table(folder, class_names, class_ids, overwrite)
    if planned is None:
        return None
    path, text = planned
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
)


def class_name(class_names: dict[int, str], class_id: int) -> str:
    """A class's name, or ``Class <id>`` where none was given (what QuPath and COCO tools show)."""
    return class_names.get(class_id) or f"Class {class_id}"


def class_color(class_id: int) -> list[int]:
    """A class's colour as ``[r, g, b]``: distinct for the first ten classes, then repeating."""
    return list(PALETTE[(int(class_id) - 1) % len(PALETTE)])
