"""A file run's plan: every target's files, decided and checked before any work, and with
``resume`` which targets are complete already."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from napari_sansa.engine.runs.tiling import TileOptions
from napari_sansa.files.outputs import RunExports, output_paths, remove_leftovers
from napari_sansa.pipeline.large import LargeTargets
from napari_sansa.pipeline.targets import TargetFiles, refuse_written, unfinished


@dataclass(eq=False)
class RunPlan:
    """Where a run's outputs go (names from :mod:`napari_sansa.files.outputs`) and what is left to do."""

    out: Path
    targets: list[Path]  # every target asked for
    files: dict[Path, TargetFiles]
    large: LargeTargets
    exports: RunExports
    class_names: dict[int, str]
    instances: str | None  # "watershed" or "sam": every target owes its objects too
    replace: bool  # files that exist may be replaced (overwriting, or resuming what is incomplete)
    todo: list[Path]  # the targets this run segments

    @property
    def complete(self) -> int:
        """How many targets were complete before the run (resumed runs skip them)."""
        return len(self.targets) - len(self.todo)


def plan_run(
    references: Sequence,
    targets: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    class_names: dict[int, str] | None = None,
    *,
    instances: str | None = None,
    exports: Sequence[str] = (),
    overwrite: bool = False,
    resume: bool = False,
    tiling: TileOptions | None = None,
    fmt: str = "ome-zarr",
    image_size: int = 1024,
) -> RunPlan:
    """Plan a run of ``targets`` into the folder ``out``: refuse (``OutputExists``) files that
    exist unless ``overwrite`` or ``resume``, write ``classes.csv``, and with ``resume`` keep the
    complete targets (their exports are read back from their files) and leave the rest to do.
    ``tiling``, ``fmt`` and ``image_size`` decide which targets are large (:class:`LargeTargets`)."""
    from napari_sansa.files.class_table import write_class_table
    from napari_sansa.files.images import ensure_writable_folder

    out, targets, class_names = (
        ensure_writable_folder(out),
        [Path(t) for t in targets],
        dict(class_names or {}),
    )
    replace = overwrite or resume
    options = tiling or TileOptions()
    large = LargeTargets.plan(targets, out, options, fmt=fmt, image_size=image_size, instances=instances)
    class_ids = [c for ref in references for c in ref.prompts]
    run_exports = RunExports(
        exports, targets, out, class_names, class_ids, overwrite=overwrite, resume=resume
    )
    small = output_paths(targets, out, class_ids)
    files = {
        t: large.files(t, out, bool(instances)) if large.handles(t) else TargetFiles.of(t, s, bool(instances))
        for t, s in zip(targets, small)
    }
    refuse_written(files.values(), overwrite=replace)
    write_class_table(out, class_names, class_ids, overwrite)
    plan = RunPlan(out, targets, files, large, run_exports, class_names, instances, replace, targets)
    if resume:
        _resume(plan)
    return plan


def _resume(plan: RunPlan) -> None:
    """Keep the complete targets (exports read back from their files); the rest are to do."""
    owed = [f.owed() for f in plan.files.values()]
    remove_leftovers([p for paths in owed for p in paths if p.parent == plan.out], time.time())
    todo = set(unfinished(list(plan.files.values())))
    for index, (target, files) in enumerate(plan.files.items()):
        if index not in todo:
            plan.exports.add_done(target, files.labels, plan.instances is not None)
    plan.todo = [t for i, t in enumerate(plan.targets) if i in todo]
