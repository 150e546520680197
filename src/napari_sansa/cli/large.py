"""The command line's large targets: tiling options, which targets are tiled, where their labels go.

A target is *large* when the engine tiles it (``tile_grid`` is not None) or when it is an OME-Zarr
image (whose labels belong beside it, in its store). Large targets are opened lazily and their
labels streamed to disk tile by tile (:mod:`label_stores`): OME-Zarr labels (``labels/sansa`` in
an input OME-Zarr store, else ``<stem>_labels.ome.zarr`` in ``--out``), or with ``--format tif`` a
tiled BigTIFF ``<stem>_labels.tif``. With ``--instances``, a large target's objects are found
block by block from its labels (connected pieces of each class, merged across blocks:
:mod:`~napari_sansa.engine.objects.streamed`) into ``<stem>_objects.ome.zarr`` (or ``.tif``) and
``<stem>_objects.csv``. Other targets keep today's label files.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_sansa.engine.errors import SansaError
from napari_sansa.files.images import TIFF_SUFFIXES
from napari_sansa.files.label_stores import LabelsOutput
from napari_sansa.files.lazy_inputs import is_zarr_path, open_lazy, tiff_shape
from napari_sansa.files.microscope import is_microscope_file
from napari_sansa.files.outputs import labels_in_store, labels_stem, large_labels_path, objects_paths
from napari_sansa.files.overwrite import refuse_existing


def add_options(parser: argparse.ArgumentParser) -> None:
    """``--tile-size``, ``--overlap``, ``--scale`` and ``--format`` of ``segment``."""
    group = parser.add_argument_group("large images")
    group.add_argument(
        "--tile-size",
        default="auto",
        metavar="PX|auto|none",
        help="segment large images in tiles of this many working pixels; auto (default): tiles of the "
        "model input size for images a whole-image resize would shrink more than 2x; none: resize whole",
    )
    group.add_argument(
        "--overlap", type=int, default=128, help="pixels shared by neighbouring tiles (default 128)"
    )
    group.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="working resolution relative to the pixels (default 1.0; 0.5: half)",
    )
    group.add_argument(
        "--format",
        choices=["auto", "tif"],
        default="auto",
        help="labels of large (tiled or OME-Zarr) targets: auto (default): OME-Zarr (beside the image "
        "in an input OME-Zarr store); tif: tiled BigTIFF in --out",
    )


def tile_options(args: argparse.Namespace):
    """The engine's TileOptions the flags give, checked (a SansaError says what is wrong)."""
    from napari_sansa.engine.runs.tiling import TileOptions

    raw = str(args.tile_size).strip().lower()
    if raw == "none":
        size: int | str | None = None
    elif raw == "auto":
        size = "auto"
    else:
        try:
            size = int(raw)
        except ValueError:
            raise SansaError(
                f"--tile-size must be a number of pixels, auto or none; got {args.tile_size!r}."
            ) from None
    return TileOptions(tile_size=size, overlap=args.overlap, scale=args.scale).check()


def refuse_on_cluster(args: argparse.Namespace, targets: Sequence[Path]) -> None:
    """The cluster runner reads image files whole with the default tiling: zarr stores and the
    large-image flags are for the single-process run."""
    stores = [t for t in targets if is_zarr_path(t)]
    if stores:
        raise SansaError(f"{stores[0]} is a zarr store; segment zarr stores without --cluster/--scheduler.")
    if getattr(args, "export", None):
        raise SansaError(
            "--export applies to runs without --cluster/--scheduler; export from the label files with a "
            "second run on one machine, or drop --export."
        )
    defaults = {"tile_size": "auto", "overlap": 128, "scale": 1.0, "format": "auto"}
    flags = [
        "--" + name.replace("_", "-") for name, value in defaults.items() if getattr(args, name) != value
    ]
    if flags:
        raise SansaError(f"{', '.join(flags)} apply to runs without --cluster/--scheduler.")


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
        cls, targets: Sequence[Path], out: Path, args: argparse.Namespace, *, image_size: int
    ) -> LargeTargets:
        """Decide each target's kind and output from its header (no pixels are read)."""
        from napari_sansa.engine.runs.tiling import tile_grid

        plan = cls(tile_options(args), fmt="tif" if args.format == "tif" else "ome-zarr")
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
            if args.format == "tif":
                plan.outputs[path] = LabelsOutput(large_labels_path(out, path, "tif"), "tif")
            elif ome is not None:
                plan.outputs[path] = LabelsOutput(labels_in_store(path), "ome-zarr", image=ome)
            else:
                plan.outputs[path] = LabelsOutput(large_labels_path(out, path, "ome-zarr"), "ome-zarr")
        if tiled_targets and getattr(args, "instances", None) == "sam":
            raise SansaError(
                f"--instances sam does not yet work on images segmented in tiles ({tiled_targets[0].name}); "
                "use --instances watershed (on tiled images: each class's connected pieces)."
            )
        plan._check_outputs(args)
        return plan

    def _check_outputs(self, args: argparse.Namespace) -> None:
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
        finals = [o.final for o in self.outputs.values()]
        refuse_existing(finals, "labels of large images", overwrite=args.overwrite or args.resume)

    def output_paths(self, targets: Sequence[Path], small: Sequence[Path]) -> list[Path]:
        """Each target's output: its large output, else the small one from ``small``."""
        return [self.outputs[t].final if t in self.outputs else s for t, s in zip(targets, small)]

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
        self, path: Path, prediction: Any, out: Path, class_names: dict[int, str], overwrite: bool
    ) -> str | None:
        """A large target's objects, block by block from its labels (before :meth:`finish`); a
        message instead when its labels are incomplete."""
        from napari_sansa.engine.objects.streamed import stream_objects
        from napari_sansa.files.objects import write_object_table

        if prediction.missing:
            return f"{path.name}: objects not written (tiles missing)"
        stem = labels_stem(path)
        store, table_path = objects_paths(out, stem, ".tif" if self.fmt == "tif" else ".ome.zarr")
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
