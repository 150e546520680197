"""The command line's cluster runs: ``segment --cluster local:N`` or ``--scheduler ADDRESS``."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator

from napari_sansa.cli.options import EXIT_USAGE, model_choice, reference_inputs, target_paths
from napari_sansa.distributed import ModelSpec, local_cluster, parse_cluster, segment
from napari_sansa.engine.errors import SansaError
from napari_sansa.files.class_table import write_class_table
from napari_sansa.files.images import ensure_writable_folder


@contextlib.contextmanager
def connect(args: argparse.Namespace, gpu: bool) -> Iterator:
    """A client of the cluster the options name; a local cluster is closed on the way out."""
    from distributed import Client

    if args.scheduler:
        from pathlib import Path

        where = (
            {"scheduler_file": args.scheduler}
            if Path(args.scheduler).is_file()
            else {"address": args.scheduler}
        )
        try:
            client = Client(**where, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise SansaError(
                f"Cannot reach the Dask scheduler at {args.scheduler}: {exc}".splitlines()[0]
            ) from None
        with client:
            yield client
        return
    with local_cluster(parse_cluster(args.cluster), gpu=gpu) as cluster, Client(cluster) as client:
        yield client


def model_spec(args: argparse.Namespace) -> ModelSpec:
    """The model the command line's options name, as a description for the workers."""
    config, sam2, adapter = model_choice(args)
    cache = str(args.cache_dir) if args.cache_dir else None
    return ModelSpec(sam2, adapter, name=args.model or "universal", cache_dir=cache, config=config)


def segment_on_cluster(args: argparse.Namespace) -> int:
    """``napari-sansa segment --cluster local:N | --scheduler ADDRESS``: one line per failed target."""
    from tqdm import tqdm

    from napari_sansa.cli.large import refuse_on_cluster

    if args.cluster and args.scheduler:
        raise SansaError("Give --cluster or --scheduler, not both.")
    if args.sequential:
        raise SansaError("--sequential targets are segmented one after another; it cannot run on a cluster.")
    references, reference_files, class_names, notes, _ = reference_inputs(args)
    targets = target_paths(args, reference_files)
    refuse_on_cluster(args, targets)
    out = ensure_writable_folder(args.out)
    write_class_table(out, class_names, [c for ref in references for c in ref.prompts], args.overwrite)
    for note in notes:
        print(f"napari-sansa: {note}", file=sys.stderr)
    spec = model_spec(args)
    logging.getLogger("distributed").setLevel(logging.CRITICAL)  # our own lines say what happened
    bar = tqdm(total=len(targets), unit="image", desc="SANSA", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    try:
        with connect(args, gpu=spec.wants_cuda) as client:
            summary = segment(
                client, references, targets, args.out, model=spec, resume=args.resume,
                overwrite=args.overwrite, progress=progress, instances=args.instances,
            )  # fmt: skip
    finally:
        bar.close()
    for result in summary.failed:
        where = "" if result.target in result.error else f"{result.target}: "
        print(f"napari-sansa: skipped: {where}{result.error}", file=sys.stderr)
    kept = f", {len(summary.skipped)} already complete" if summary.skipped else ""
    print(
        f"Wrote {len(summary.written)} label image(s) to {args.out}{kept} "
        f"({summary.workers} workers, {summary.targets_per_task} per task, {summary.seconds:.0f} s)",
        file=sys.stderr,
    )
    return EXIT_USAGE if summary.failed else 0
