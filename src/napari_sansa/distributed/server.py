"""A SANSA server: a Dask scheduler and its workers behind mutual TLS, the model loaded once on
each worker (one per GPU, else one on the CPU), for laptops that send images and get labels.

:func:`start_server` returns once every worker has loaded the model; :meth:`Server.close`
stops it all. The command line's ``napari-sansa serve`` is a thin wrapper around it.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from dataclasses import dataclass, replace

from napari_sansa.distributed.credentials import ensure_credentials, server_security
from napari_sansa.distributed.host import ModelHost, host_status
from napari_sansa.distributed.spec import ModelSpec
from napari_sansa.distributed.worker import THREADS_ENV, usable_cpus
from napari_sansa.engine.errors import SansaError

START_TIMEOUT_S = 60.0


def gpu_count(spec: ModelSpec) -> int:
    """GPUs the server uses: every visible one unless the config names another device."""
    if spec.config.device not in ("auto", "cuda"):
        return 0
    import torch  # the server computes: it has torch (the laptop never imports this module)

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


class GpuModelHost(ModelHost):
    """A worker's model on the GPU of the worker's number (workers 0..N-1 of the server)."""

    async def setup(self, worker) -> None:
        device = f"cuda:{int(worker.name) % self.workers}"
        self.spec = replace(self.spec, config=replace(self.spec.config, device=device))
        await super().setup(worker)


@dataclass
class Server:
    """A running server: its cluster, its own client, and the address laptops connect to."""

    cluster: object
    client: object
    address: str
    devices: list[str]

    def close(self) -> None:
        """Stop the workers and the scheduler (clients see the connection drop)."""
        for part in (self.client, self.cluster):
            with contextlib.suppress(Exception):  # already gone
                part.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _cluster(spec: ModelSpec, host: str, port: int, security, workers: int):
    import dask
    from distributed import LocalCluster

    threads = max(1, usable_cpus() // workers)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None  # workers inherit it
    settings = {
        "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
        # Dask's HTTP endpoints (health, metrics, dashboard) speak no TLS: none is served
        "distributed.scheduler.http.routes": [],
        "distributed.worker.http.routes": [],
    }
    try:
        with dask.config.set(settings):
            return LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, host=host,
                scheduler_port=port, protocol="tls://", security=security,
                dashboard_address=None, silence_logs=logging.CRITICAL,
                scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                env={THREADS_ENV: str(threads)},
            )  # fmt: skip
    except (OSError, RuntimeError) as exc:
        cause = _root_cause(exc)
        if isinstance(cause, OSError):
            raise SansaError(f"Cannot listen on {host}:{port}: {cause}".splitlines()[0]) from None
        raise SansaError(f"The server could not start: {cause}".splitlines()[0]) from None
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def _root_cause(exc: BaseException) -> BaseException:
    """The first error of a chain (Dask wraps a port in use in two RuntimeErrors)."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    return exc


def start_server(spec: ModelSpec, credentials, host: str = "127.0.0.1", port: int = 0) -> Server:
    """Start the scheduler and workers on ``host:port`` (0: any free port) with the credentials in
    ``credentials`` (made there if missing); returns once every worker has loaded the model."""
    from distributed import Client

    folder = ensure_credentials(credentials, host)
    security = server_security(folder)
    gpus = gpu_count(spec)
    workers = max(1, gpus)
    cluster = _cluster(spec, host, port, security, workers)
    try:
        client = Client(cluster, security=security, timeout=START_TIMEOUT_S)
        plugin = GpuModelHost(spec, workers) if gpus > 1 else ModelHost(spec, workers)
        client.register_plugin(plugin)
        statuses = client.run(host_status)
    except BaseException:
        cluster.close()
        raise
    server = Server(cluster, client, cluster.scheduler_address, [s["device"] for s in statuses.values()])
    failed = [s["failure"] for s in statuses.values() if s["failure"]]
    if failed:
        server.close()
        raise SansaError(f"The server cannot load the model: {failed[0]}")
    return server


def wait_for_stop(stop: threading.Event | None = None) -> None:
    """Block until Ctrl-C, SIGTERM (POSIX) or ``stop``; the caller then closes the server."""
    import sys

    stop = stop or threading.Event()
    if sys.platform != "win32" and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        stop.set()
