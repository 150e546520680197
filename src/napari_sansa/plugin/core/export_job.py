"""An export as a job for a worker thread (no Qt): the files to write, one step at a time.

The widget checks every file and takes the layers' data on napari's thread
(:func:`napari_sansa.plugin.exports.plan_export`); what is left is writing, which
:func:`write_export` does in a worker, yielding before each step so that Cancel stops it
between files: a file is written whole or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path

from napari_sansa.plugin.core.progress import Progress


@dataclass(frozen=True)
class ExportStep:
    """Something an export writes: what it is, in words, and the call that writes it."""

    what: str
    write: Callable[[], list[Path]]


@dataclass
class ExportPlan:
    """An export's steps, checked and with their data taken; ``written`` grows as they run."""

    folder: Path
    steps: list[ExportStep]
    written: list[Path] = field(default_factory=list)


def write_export(plan: ExportPlan) -> Generator[Progress, None, list[Path]]:
    """Run the plan's steps in order (in a worker), announcing each; returns the files written."""
    total = len(plan.steps)
    for done, step in enumerate(plan.steps):
        yield Progress(done, total, f"Writing {step.what}")
        plan.written.extend(step.write())
    return plan.written
