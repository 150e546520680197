"""``napari-sansa segment``: references to label files, on this machine or a Dask cluster."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from napari_sansa.cli.options import EXIT_USAGE, load_model, reference_inputs, target_paths
from napari_sansa.engine.errors import SansaError
from napari_sansa.files.outputs import labels_name


def segment(args: argparse.Namespace) -> int:
    if args.cluster or args.scheduler:
        from napari_sansa.cli.cluster import segment_on_cluster

        return segment_on_cluster(args)
    from tqdm import tqdm

    from napari_sansa.cli.large import LargeTargets
    from napari_sansa.files.class_table import write_class_table
    from napari_sansa.files.images import ensure_writable_folder, read_image, write_labels
    from napari_sansa.files.objects import write_objects

    references, reference_files, class_names, notes = reference_inputs(args)
    targets = target_paths(args, reference_files)
    out = ensure_writable_folder(args.out)
    large = LargeTargets.plan(targets, out, args, image_size=args.image_size)
    write_class_table(out, class_names, [c for ref in references for c in ref.prompts], args.overwrite)
    if args.resume:
        from napari_sansa.files.outputs import resume_targets

        targets = resume_targets(targets, out, references, large.output_paths)
    model = load_model(args)

    failures: list[str] = []
    readable: list[Path] = []

    def images():
        for path in targets:
            try:
                image = large.read(path) if path in large.lazy else read_image(path)
            except SansaError as exc:
                failures.append(str(exc))
                continue
            readable.append(path)
            yield image

    for note in notes:
        print(f"napari-sansa: {note}", file=sys.stderr)
    estimate = model.estimate(references, large.estimate_targets(targets), **large.tiling())
    print(f"Estimate: {estimate}", file=sys.stderr)
    bar = tqdm(total=len(targets), unit="image", desc="SANSA", file=sys.stderr)
    counted: set[int] = set()  # an image with unreadable tiles is reported, then still predicted
    tiles: dict[Path, int] = {}
    try:

        def skip(index: int, error: SansaError) -> None:
            failures.append(f"{readable[index].name}: {error}")
            bar.update(0 if index in counted else 1)
            counted.add(index)

        run = model.propagate(references, images(), on_error=skip, **large.engine_options(readable))
        for prediction in run:
            path = readable[prediction.index]
            tiles[path] = prediction.tiles
            replace = args.overwrite or args.resume  # resumed: only unreadable outputs remain
            if large.handles(path):
                if args.instances:  # from the labels on disk, block by block
                    skipped = large.write_objects(path, prediction, out, class_names, replace)
                    failures.extend([skipped] if skipped else [])
                incomplete = large.finish(path, prediction)
                failures.extend([incomplete] if incomplete else [])
            else:
                write_labels(out / labels_name(path, prediction.labels), prediction.labels, overwrite=replace)
                if args.instances:
                    write_objects(out, path.stem, *prediction.instances(args.instances), overwrite=replace)
            bar.update(0 if prediction.index in counted else 1)
            counted.add(prediction.index)
    finally:
        large.abandon()  # outputs still being written (an error stopped the run) are removed
        bar.close()
    for message in failures:
        print(f"napari-sansa: skipped: {message}", file=sys.stderr)
    print(f"Wrote {len(readable)} label image(s) to {out}{large.summary(tiles)}", file=sys.stderr)
    return EXIT_USAGE if failures else 0
