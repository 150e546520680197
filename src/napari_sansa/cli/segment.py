"""``napari-sansa segment``: references to label files, on this machine or a Dask cluster.

:func:`run_targets` is the run loop itself, shared with ``napari-sansa evaluate``, which
scores each prediction as it is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from napari_sansa.cli.options import EXIT_USAGE, load_model, reference_inputs, target_paths
from napari_sansa.engine.errors import SansaError
from napari_sansa.files.outputs import RunExports, labels_name, parse_exports

AfterTarget = Callable[[Path, Any, Any], None]
"""``after(target, prediction, objects)``: called once a target's outputs are written (objects:
the :class:`~napari_sansa.engine.objects.from_prediction.Objects` with ``--instances``, else None)."""


def segment(args: argparse.Namespace) -> int:
    if args.cluster or args.scheduler:
        from napari_sansa.cli.cluster import segment_on_cluster

        return segment_on_cluster(args)
    references, reference_files, class_names, notes, _ = reference_inputs(args)
    return run_targets(args, references, target_paths(args, reference_files), class_names, notes)


def write_prediction(out: Path, name: Path, prediction: Any, instances: str | None, overwrite: bool) -> Any:
    """A prediction's label image (``<stem>_labels``) and, with ``instances``, its objects; returns
    the objects (or None)."""
    from napari_sansa.files.images import write_labels
    from napari_sansa.files.objects import write_objects

    write_labels(out / labels_name(name, prediction.labels), prediction.labels, overwrite=overwrite)
    if not instances:
        return None
    objects = prediction.instances(instances)
    write_objects(out, name.stem, *objects, overwrite=overwrite)
    return objects


def run_targets(
    args: argparse.Namespace,
    references: list,
    targets: Sequence[Path],
    class_names: dict[int, str],
    notes: Sequence[str],
    after: AfterTarget | None = None,
) -> int:
    """Segment ``targets`` on this machine into ``args.out``; ``after`` sees each target
    segmented whole (large images written tile by tile go to their own outputs, not to it, and
    multi-plane microscope files, segmented plane by plane, neither). ``args.export``: files
    for other tools (:class:`~napari_sansa.files.outputs.RunExports`)."""
    from tqdm import tqdm

    from napari_sansa.cli.large import LargeTargets
    from napari_sansa.files.class_table import write_class_table
    from napari_sansa.files.images import (
        Planes,
        ReadAsNeeded,
        ensure_writable_folder,
        read_image,
        write_labels,
    )
    from napari_sansa.files.microscope import StackLabels, is_microscope_file, open_planes
    from napari_sansa.files.objects import write_objects

    out = ensure_writable_folder(args.out)
    large = LargeTargets.plan(targets, out, args, image_size=args.image_size)
    class_ids = [c for ref in references for c in ref.prompts]
    options = {"overwrite": args.overwrite, "resume": args.resume}
    exports = RunExports(parse_exports(args.export), targets, out, class_names, class_ids, **options)
    write_class_table(out, class_names, class_ids, args.overwrite)
    if args.resume:
        from napari_sansa.files.outputs import output_paths, resume_targets

        todo = resume_targets(targets, out, references, large.output_paths)
        outputs = large.output_paths(targets, output_paths(targets, out, class_ids))
        for target, output in zip(targets, outputs):
            if target not in todo:  # done before: its exports read back from its label files
                exports.add_done(target, output, bool(args.instances))
        targets = todo
    model = load_model(args)

    failures: list[str] = []
    filling: dict[Path, StackLabels] = {}

    def read(path: Path):
        if is_microscope_file(path):  # every plane an image; labels gathered in a stack
            stack = open_planes(path)
            filling[path] = StackLabels(stack)
            return Planes((index, stack.plane(index)) for index in stack.indices())
        return large.read(path) if path in large.lazy else read_image(path)

    images = ReadAsNeeded(targets, read, lambda path, error: failures.append(str(error)))
    readable, planes = images.read, images.planes

    for note in notes:
        print(f"napari-sansa: {note}", file=sys.stderr)
    estimate = model.estimate(references, large.estimate_targets(targets), **large.tiling())
    print(f"Estimate: {estimate}", file=sys.stderr)
    bar = tqdm(total=len(targets), unit="image", desc="SANSA", file=sys.stderr)
    tiles: dict[Path, int] = {}
    try:

        def skip(index: int, error: SansaError) -> None:  # the target is skipped
            failures.append(f"{readable[index].name}: {error}")
            bar.update(0 if planes[index] is not None else 1)

        def tile_unreadable(index: int, error: SansaError) -> None:  # left 0; the target goes on
            failures.append(f"{readable[index].name}: {error}")

        options = large.engine_options(readable)
        run = model.propagate(references, images, on_error=skip, on_tile_error=tile_unreadable, **options)
        for prediction in run:
            path = readable[prediction.index]
            tiles[path] = prediction.tiles
            replace = args.overwrite or args.resume  # resumed: only unreadable outputs remain
            if planes[prediction.index] is not None:
                objects = prediction.instances(args.instances) if args.instances else None
                if filling[path].add(planes[prediction.index], prediction.labels, objects):
                    labels, objects = filling.pop(path).result()
                    write_labels(out / labels_name(path, labels), labels, overwrite=replace)
                    if objects is not None:
                        write_objects(out, path.stem, *objects, overwrite=replace)
                    exports.add(path, labels, objects)
                    bar.update(1)
                continue
            if large.handles(path):
                if args.instances:  # from the labels on disk, block by block
                    skipped = large.write_objects(path, prediction, out, class_names, replace)
                    failures.extend([skipped] if skipped else [])
                incomplete = large.finish(path, prediction)
                failures.extend([incomplete] if incomplete else [])
                if path in large.written:  # read back from the store tile by tile
                    exports.add_file(path, large.written[path])
            else:
                objects = write_prediction(out, path, prediction, args.instances, replace)
                exports.add(path, prediction.labels, objects)
                if after is not None:
                    after(path, prediction, objects)
            bar.update(1)
    finally:
        large.abandon()  # outputs still being written (an error stopped the run) are removed
        bar.close()
    for path, gathered in filling.items():
        missing = gathered.stack.count - len(gathered.filled)
        failures.append(
            f"{path.name}: {missing} plane(s) could not be segmented; its labels were not written"
        )
    exported = exports.finish()
    for message in failures:
        print(f"napari-sansa: skipped: {message}", file=sys.stderr)
    if exported:
        print(f"Exported {', '.join(exports.formats)}: {len(exported)} file(s) in {out}", file=sys.stderr)
    count = len(dict.fromkeys(readable)) - len(filling)  # files, not planes; complete ones
    print(f"Wrote {count} label image(s) to {out}{large.summary(tiles)}", file=sys.stderr)
    return EXIT_USAGE if failures else 0
