"""The one refusal to replace files that exist: :func:`refuse_existing` raises
:class:`~napari_sansa.engine.errors.OutputExists` for every writer, run and export."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from napari_sansa.engine.errors import OutputExists


def refuse_existing(
    paths: Iterable[str | os.PathLike], what: str = "", *, overwrite: bool = False, detail: str = ""
) -> None:
    """Refuse (``OutputExists``) when any of ``paths`` exists, unless ``overwrite``.

    ``what`` names the files in the plural ("label images") when there may be several; ``detail``
    says why an existing file is in the way (``with other class names``)."""
    if overwrite:
        return
    found = [Path(p) for p in paths if Path(p).exists()]
    if not found:
        return
    if len(found) == 1 or not what:
        text = f"{found[0]} already exists{' ' + detail if detail else ''}."
    else:
        text = f"{len(found)} of the {what} already exist in {found[0].parent} (e.g. {found[0].name})."
    raise OutputExists(text, tuple(found))
