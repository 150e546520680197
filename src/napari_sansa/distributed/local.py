"""A cluster of worker processes on this machine, reachable only from it."""

from __future__ import annotations

import logging
import signal
import threading

from napari_sansa.engine.errors import SansaError


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
    from napari_sansa.distributed.worker import THREADS_ENV, usable_cpus

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
