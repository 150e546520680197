"""A cluster of worker processes on this machine, and the command line's cluster runs."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator

from ..engine.errors import SansaError
from .spec import ModelSpec


def local_cluster(n_workers: int, *, gpu: bool = False):
    """``n_workers`` worker processes on this machine, one thread each, reachable only from it.

    Workers are spawned (never forked, so CUDA is never initialised in a forked process) and
    start ignoring Ctrl-C, which the client handles by stopping them cleanly. ``gpu`` gives each
    worker a ``GPU`` resource (tasks of a CUDA model then ask for one). Dask's default
    ``MALLOC_TRIM_THRESHOLD_`` is left out of the workers' environment: it makes every large
    torch allocation a fresh mapping (about 0.3 CPU s more per image here, benchmarks/cluster.py).
    """
    import dask
    from distributed import LocalCluster

    if n_workers < 1:
        raise SansaError(f"A local cluster needs at least one worker, not {n_workers}.")
    from .worker import THREADS_ENV, usable_cpus

    options = {"resources": {"GPU": 1}} if gpu else {}
    threads = max(1, usable_cpus() // n_workers)  # also for workers restarted after a crash
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None  # inherited by workers
    no_trim = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
    try:
        with dask.config.set(no_trim):
            return LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.ERROR,
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},  # its HTTP server: any free port
                env={THREADS_ENV: str(threads)},
                **options,
            )
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def parse_cluster(value: str) -> int:
    """Workers of ``--cluster local:N``."""
    kind, _, count = value.partition(":")
    if kind != "local" or not count.isdigit() or int(count) < 1:
        raise SansaError(
            f"--cluster {value!r}: use local:N (N worker processes on this machine, e.g. local:4)."
        )
    return int(count)


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
    from ..cli import model_choice

    config, sam2, adapter = model_choice(args)
    cache = str(args.cache_dir) if args.cache_dir else None
    return ModelSpec(sam2, adapter, name=args.model or "universal", cache_dir=cache, config=config)


def segment_on_cluster(args: argparse.Namespace) -> int:
    """``napari-sansa segment --cluster local:N | --scheduler ADDRESS``: one line per failed target."""
    from tqdm import tqdm

    from ..class_table import write_class_table
    from ..cli import EXIT_USAGE, reference_inputs, target_paths
    from ..cli_large import refuse_on_cluster
    from ..files import ensure_writable_folder
    from .run import segment

    if args.cluster and args.scheduler:
        raise SansaError("Give --cluster or --scheduler, not both.")
    if args.sequential:
        raise SansaError("--sequential targets are segmented one after another; it cannot run on a cluster.")
    references, reference_files, class_names, notes = reference_inputs(args)
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
