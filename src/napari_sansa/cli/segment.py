"""``napari-sansa segment``: references to label files, on this machine or a Dask cluster.

The run itself is the pipeline's (:mod:`napari_sansa.pipeline`); here are the options it takes
and the lines it prints. :func:`run_targets` is shared with ``napari-sansa evaluate``, which
scores each prediction as it is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from napari_sansa.cli.large import tile_options
from napari_sansa.cli.options import EXIT_USAGE, load_model, reference_inputs, target_paths
from napari_sansa.files.outputs import parse_exports
from napari_sansa.pipeline import FileRun, RunPlan, plan_run
from napari_sansa.pipeline.run import AfterTarget


def segment(args: argparse.Namespace) -> int:
    if args.cluster or args.scheduler:
        from napari_sansa.cli.cluster import segment_on_cluster

        return segment_on_cluster(args)
    references, reference_files, class_names, notes, _ = reference_inputs(args)
    return run_targets(args, references, target_paths(args, reference_files), class_names, notes)


def plan_from_options(
    args: argparse.Namespace, references: list, targets: Sequence[Path], class_names: dict[int, str]
) -> RunPlan:
    """The pipeline's plan of a run, from the command line's options."""
    plan = plan_run(
        references, targets, args.out, class_names, instances=args.instances, exports=parse_exports(args.export),
        overwrite=args.overwrite, resume=args.resume, tiling=tile_options(args), fmt=args.format,
        image_size=args.image_size,
    )  # fmt: skip
    if args.resume:
        total = len(plan.targets)
        print(f"Resuming: {plan.complete} of {total} label images are complete.", file=sys.stderr)
    return plan


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

    plan = plan_from_options(args, references, targets, class_names)
    model = load_model(args)
    run = FileRun(model, references, plan, progress=lambda done, _: bar.update(done - bar.n), after=after)
    for note in notes:
        print(f"napari-sansa: {note}", file=sys.stderr)
    print(f"Estimate: {run.estimate()}", file=sys.stderr)
    bar = tqdm(total=len(plan.todo), unit="image", desc="SANSA", file=sys.stderr)
    try:
        report = run.run()
    finally:
        bar.close()
    for message in report.failures:
        print(f"napari-sansa: skipped: {message}", file=sys.stderr)
    if report.exported:
        formats = ", ".join(plan.exports.formats)
        print(f"Exported {formats}: {len(report.exported)} file(s) in {plan.out}", file=sys.stderr)
    print(f"Wrote {report.written} label image(s) to {plan.out}{report.large}", file=sys.stderr)
    return EXIT_USAGE if report.failures else 0
