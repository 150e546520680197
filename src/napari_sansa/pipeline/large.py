"""Large targets of a file run: which are tiled, where their labels and objects go.

A target is *large* when the engine tiles it (``tile_grid`` is not None) or when it is an OME-Zarr
image (whose labels belong beside it, in its store). Large targets are opened lazily and their
labels streamed to disk tile by tile (:mod:`~napari_sansa.files.label_stores`): OME-Zarr labels
(``labels/sansa`` in an input OME-Zarr store, else ``<stem>_labels.ome.zarr`` in the output
folder), or with ``fmt="tif"`` a tiled BigTIFF ``<stem>_labels.tif``. With objects, a large
target's objects are found block by block from its labels (connected pieces of each class,
merged across blocks: :mod:`~napari_sansa.engine.objects.streamed`) into
``<stem>_objects.ome.zarr`` (or ``.tif``) and ``<stem>_objects.csv``, before its labels are
finished (the labels come last, as for every target). Other targets keep their label files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_sansa.engine.errors import SansaError
from napari_sansa.engine.runs.tiling import TileOptions
from napari_sansa.files.images import TIFF_SUFFIXES
from napari_sansa.files.label_stores import LabelsOutput
from napari_sansa.files.lazy_inputs import is_zarr_path, open_lazy, tiff_shape
from napari_sansa.files.microscope import is_microscope_file
from napari_sansa.files.outputs import labels_in_store, labels_stem, large_labels_path, objects_paths
from napari_sansa.files.overwrite import refuse_existing
from napari_sansa.pipeline.targets import TargetFiles


def _tiff_hw(path: Path) -> tuple[int, int] | None:
    info = tiff_shape(path)
    if info is None:
        return None
    axes, shape = info
    if "Y" not in axes or "X" not in axes:
        return None
    return shape[axes.index("Y")], shape[axes.index("X")]


@dataclass(eq=False)
class LargeTargets:
    """The large targets of a run and their outputs, and the engine's ``output=`` factory."""

    options: Any  # engine.tiling.TileOptions
    outputs: dict[Path, LabelsOutput] = field(default_factory=dict)
    lazy: set[Path] = field(default_factory=set)  # zarr stores and large TIFFs, opened lazily
    written: dict[Path, Path] = field(default_factory=dict)  # target -> its complete output
    hw: dict[Path, tuple[int, int]] = field(default_factory=dict)  # of zarr stores and tiled TIFFs
    fmt: str = "ome-zarr"  # of the labels and objects of large targets
    _open: dict[Path, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def plan(
        cls, targets: Sequence[Path], out: Path, options: TileOptions, *, fmt: str = "ome-zarr",
        image_size: int, instances: str | None = None,
    ) -> LargeTargets:  # fmt: skip
        """Decide each target's kind and output from its header (no pixels are read). ``fmt``:
        "ome-zarr" or "tif" (every large target's labels in ``out`` as tiled BigTIFF)."""
        from napari_sansa.engine.runs.tiling import tile_grid

        plan = cls(options, fmt="tif" if fmt == "tif" else "ome-zarr")
        tiled_targets = []
        for path in targets:
            ome = None
            if is_microscope_file(path):  # segmented plane by plane, labels in memory
                continue
            if is_zarr_path(path):
                target = open_lazy(path)  # a store without an image is refused here, before any work
                hw, ome = target.hw, (target if target.kind == "ome-zarr" else None)
                plan.lazy.add(path)
            elif path.suffix.lower() in TIFF_SUFFIXES and (hw := _tiff_hw(path)) is not None:
                pass
            else:
                continue
            tiled = tile_grid(hw, plan.options, image_size) is not None
            plan.hw[path] = hw
            if tiled:
                plan.lazy.add(path)
                tiled_targets.append(path)
            if not (tiled or ome is not None):
                continue
            if fmt == "tif":
                plan.outputs[path] = LabelsOutput(large_labels_path(out, path, "tif"), "tif")
            elif ome is not None:
                plan.outputs[path] = LabelsOutput(labels_in_store(path), "ome-zarr", image=ome)
            else:
                plan.outputs[path] = LabelsOutput(large_labels_path(out, path, "ome-zarr"), "ome-zarr")
        if tiled_targets and instances == "sam":
            raise SansaError(
                f"--instances sam does not yet work on images segmented in tiles ({tiled_targets[0].name}); "
                "use --instances watershed (on tiled images: each class's connected pieces)."
            )
        plan._check_outputs()
        return plan

    def _check_outputs(self) -> None:
        seen: dict[Path, Path] = {}
        for target, output in self.outputs.items():
            if output.final in seen:
                raise SansaError(
                    f"{seen[output.final]} and {target} would both be labelled as {output.final}; "
                    "rename one, or segment them into different folders."
                )
            seen[output.final] = target
            if output.image is not None and not os.access(target, os.W_OK):
                raise SansaError(
                    f"Cannot write labels into {target} (not writable); add --format tif to write them to --out."
                )

    def files(self, path: Path, out: Path, instances: bool) -> TargetFiles:
        """A large target's files: its labels' store or TIFF and, with ``instances``, its objects in ``out``."""
        suffix = ".tif" if self.fmt == "tif" else ".ome.zarr"
        objects = objects_paths(out, labels_stem(path), suffix) if instances else None
        return TargetFiles(path, self.outputs[path].final, objects)

    # ------------------------------------------------------------------ during the run
    def handles(self, path: Path) -> bool:
        return path in self.outputs

    def read(self, path: Path):
        """The engine's image of a lazy target (kept open until its labels are finished)."""
        target = open_lazy(path)
        self._open[path] = target
        return target.image()

    def tiling(self) -> dict[str, Any]:
        """The tiling keyword arguments of ``propagate`` and ``estimate``."""
        return {
            "tile_size": self.options.tile_size,
            "overlap": self.options.overlap,
            "scale": self.options.scale,
        }

    def estimate_targets(self, targets: Sequence[Path]) -> list[np.ndarray]:
        """Stand-ins of the targets' sizes for ``Sansa.estimate`` to count tiles (no pixels read:
        zero-stride arrays); files not looked into count as one encoder pass."""
        return [np.broadcast_to(np.zeros((), np.uint8), self.hw.get(t, (1, 1))) for t in targets]

    def engine_options(self, readable: Sequence[Path]) -> dict[str, Any]:
        """Keyword arguments for ``propagate``: the tiling options and the output factory."""

        def output(index: int, hw: tuple[int, int], dtype: Any):
            path = readable[index]
            if path not in self.outputs:  # not planned as large: labels in memory, written as today
                return np.zeros(hw, dtype)
            return self.outputs[path].create(hw, dtype)

        return {**self.tiling(), "output": output}

    def finish(self, path: Path, prediction: Any) -> str | None:
        """Complete a large target's output; a message when tiles were missing (not complete)."""
        missing = tuple(prediction.missing)
        output = self.outputs[path]
        try:
            output.finish(prediction.labels, missing)
        finally:
            self.close(path)
        if not missing:
            self.written[path] = output.final
            return None
        return (
            f"{path.name}: {len(missing)} tile(s) could not be read; the rest is in {output.partial}, "
            "not marked complete (--resume redoes it)"
        )

    def write_objects(
        self, files: TargetFiles, prediction: Any, class_names: dict[int, str], overwrite: bool
    ) -> str | None:
        """A large target's objects, block by block from its labels (before :meth:`finish`); a
        message instead when its labels are incomplete."""
        from napari_sansa.engine.objects.streamed import stream_objects
        from napari_sansa.files.objects import write_object_table

        if prediction.missing:
            return f"{files.target.name}: objects not written (tiles missing)"
        assert files.objects is not None
        store, table_path = files.objects
        objects = LabelsOutput(store, self.fmt)
        refuse_existing([objects.final, table_path], "objects files", overwrite=overwrite)
        labels = prediction.labels
        level0 = objects.create(tuple(labels.shape), np.int32)
        try:
            table = stream_objects(labels, level0, class_names=class_names)
        except BaseException:
            objects.discard()
            raise
        objects.finish(level0)
        write_object_table(table_path, table)
        return None

    def close(self, path: Path) -> None:
        target = self._open.pop(path, None)
        if target is not None:
            target.close()

    def abandon(self) -> None:
        """At the end of a run: remove outputs still being written (an error stopped the run), close
        what is open."""
        for output in self.outputs.values():
            if output.level0 is not None:
                output.discard()
        for path in list(self._open):
            self.close(path)

    def summary(self, tiles: dict[Path, int]) -> str:
        """The end of the run's last line: tiles per image, and where large images' labels went."""
        if not tiles or max(tiles.values()) <= 1:
            text = ""
        elif len(tiles) <= 6:
            text = "; tiles per image: " + ", ".join(f"{p.name} {n}" for p, n in tiles.items())
        else:
            counts = list(tiles.values())
            text = f"; tiles per image: {min(counts)} to {max(counts)}, {sum(counts)} in all"
        lines = [f"\n  {target.name} -> {final}" for target, final in self.written.items()]
        return text + "".join(lines)
