"""What runs on each Dask worker: the model loaded once per process, and the batch task.

The plugin travels to every worker once (the model description and the references, never the
model); tasks carry only file paths and come back with one small record per target.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from distributed import WorkerPlugin, get_worker

from napari_sansa import environment
from napari_sansa.distributed.spec import ModelSpec
from napari_sansa.engine.errors import SansaError
from napari_sansa.pipeline.targets import TargetFiles, write_prediction

Status = Literal["written", "skipped", "failed"]
THREADS_ENV = environment.TORCH_THREADS  # set on workers that know their share of the cores


@dataclass(frozen=True)
class TargetResult:
    """What became of one target: ``written`` (with its scores), ``skipped`` (its output was
    already complete) or ``failed`` (with the reason, one line)."""

    target: str
    output: str
    status: Status
    scores: dict[int, float] = field(default_factory=dict)
    seconds: float = 0.0
    error: str = ""
    worker: str = ""


@dataclass(frozen=True)
class Item:
    """One target of a task: read ``target``, write its files (``output``: its labels; see
    :class:`~napari_sansa.pipeline.targets.TargetFiles`); ``overwrite``: even if complete."""

    target: str
    output: str
    overwrite: bool = False


def usable_cpus() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a SLURM job's allocation)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class SansaWorker(WorkerPlugin):
    """Loads the model once per worker process and encodes the references' memories there.

    ``torch_threads``: threads for torch (None: ``$NAPARI_SANSA_TORCH_THREADS`` where the
    worker was started with it, as :func:`local_cluster` does, else the worker's share of the
    cores: its usable cores divided by the workers started with it on its host, which
    ``siblings`` counts by (host, parent process) when the run starts). Workers started by the client's own
    process (a local cluster) share its terminal: they ignore Ctrl-C, which the client handles
    by stopping them cleanly.
    """

    def __init__(
        self,
        model: ModelSpec,
        references: Sequence,
        *,
        siblings: dict[tuple[str, int], int] | None = None,
        torch_threads: int | None = None,
        instances: str | None = None,
    ) -> None:
        self.spec = model
        self.references = list(references)
        self.instances = instances  # "watershed" or "sam": also write each target's objects
        self.siblings = dict(siblings or {})
        self.torch_threads = torch_threads
        self.client_pid = os.getpid()
        self.model = None
        self.failure = ""
        self.seconds_per_target = 0.0
        self.device = ""
        self.address = ""
        self.threads = 1
        self.__setstate__({})

    def __getstate__(self) -> dict:
        local = ("ready", "stopped", "running", "_count")
        return {k: (None if k == "model" else v) for k, v in self.__dict__.items() if k not in local}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.ready = threading.Event()  # set once the model is loaded (or failed to)
        self.stopped = threading.Event()  # set when the client cancels the run
        self.running = 0  # tasks in progress on this worker
        self._count = threading.Lock()

    async def setup(self, worker) -> None:
        from distributed.comm import get_address_host

        self.address = worker.address
        if os.getppid() == self.client_pid and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        sharing = self.siblings.get((get_address_host(worker.address), os.getppid()), 1)
        configured = int(os.environ.get(THREADS_ENV, "0") or 0)
        self.threads = self.torch_threads or configured or max(1, usable_cpus() // max(1, sharing))
        # off the event loop, which keeps answering the scheduler meanwhile
        await asyncio.get_running_loop().run_in_executor(None, self._load)

    def _load(self) -> None:
        try:
            self._build()
        finally:
            self.ready.set()

    def _build(self) -> None:
        try:
            import torch

            torch.set_num_threads(self.threads)
            model = self.spec.build()
            self.seconds_per_target = model.estimate(self.references, 1).seconds_per_target
        except SansaError as exc:
            self.failure = str(exc)
            return
        except Exception as exc:  # report, never a worker traceback
            self.failure = f"{type(exc).__name__}: {exc}".splitlines()[0]
            return
        self.model = model
        self.device = model.device.type

    def teardown(self, worker) -> None:
        if self.model is not None:
            self.model.close()
            self.model = None

    # ----------------------------------------------------------------- the task
    def status(self) -> dict:
        self.ready.wait()
        return {
            "failure": self.failure,
            "seconds_per_target": self.seconds_per_target,
            "device": self.device,
        }

    def run(self, items: Sequence[Item]) -> list[TargetResult]:
        """Segment the items' targets, write each output atomically; one record per item
        (fewer if the run is stopped: the task then ends after the target in progress)."""
        with self._count:
            self.running += 1
        try:
            return self._run(items)
        finally:
            with self._count:
                self.running -= 1

    def _run(self, items: Sequence[Item]) -> list[TargetResult]:
        from napari_sansa.files.images import ReadAsNeeded, read_image

        self.ready.wait()
        if self.model is None:
            reason = f"worker {self.address} cannot load the model: {self.failure}"
            return [
                TargetResult(i.target, i.output, "failed", error=reason, worker=self.address) for i in items
            ]
        import torch

        torch.set_num_threads(self.threads)
        results: dict[int, TargetResult] = {}
        todo: list[tuple[int, Item, TargetFiles]] = []
        for index, item in enumerate(items):
            files = TargetFiles.of(item.target, item.output, bool(self.instances))
            if not item.overwrite and files.complete():  # before, or by an earlier try of this task
                results[index] = TargetResult(item.target, item.output, "skipped", worker=self.address)
            else:
                todo.append((index, item, files))

        def fail(index: int, item: Item, error: Exception) -> None:
            results[index] = TargetResult(
                item.target, item.output, "failed", error=str(error), worker=self.address
            )

        images = ReadAsNeeded(
            todo, lambda entry: read_image(entry[1].target), lambda entry, error: fail(*entry[:2], error)
        )

        def skip(position: int, error: SansaError) -> None:
            fail(*images.read[position][:2], error)

        last = time.perf_counter()
        for prediction in self.model.propagate(self.references, images, on_error=skip, cancel=self.stopped):
            index, item, files = images.read[prediction.index]
            try:  # the client refused existing files unless asked: what is left here is replaced
                write_prediction(files, prediction, self.instances, replace=True)
            except SansaError as exc:
                fail(index, item, exc)
                continue
            now = time.perf_counter()
            results[index] = TargetResult(
                item.target, item.output, "written", prediction.scores, now - last, worker=self.address
            )
            last = now
        return [results[i] for i in sorted(results)]


def _plugin(name: str) -> SansaWorker:
    plugin = get_worker().plugins.get(name)
    if plugin is None:  # the run was stopped, or this worker joined after it ended
        raise RuntimeError(f"no SANSA model on this worker for run {name}")
    return plugin


def segment_batch(name: str, items: Sequence[Item]) -> list[TargetResult]:
    """The task: segment a batch of targets with this worker's model of run ``name``."""
    return _plugin(name).run(items)


def worker_status(name: str, dask_worker=None) -> dict:
    """Run on every worker after the plugin's setup: did the model load, how fast is it."""
    plugin = dask_worker.plugins.get(name) if dask_worker is not None else _plugin(name)
    if plugin is None:
        return {"failure": "the model was not set up on this worker", "seconds_per_target": 0.0, "device": ""}
    return plugin.status()


def stop_run(name: str, dask_worker=None) -> None:
    """Run on every worker when the client cancels: tasks in progress end after their current target."""
    plugin = dask_worker.plugins.get(name)
    if plugin is not None:
        plugin.stopped.set()


async def wait_idle(name: str, timeout: float, dask_worker=None) -> int:
    """Run on every worker after :func:`stop_run`: wait until none of the run's tasks is in
    progress (so no output is being written); returns how many still are after ``timeout``."""
    plugin = dask_worker.plugins.get(name)
    deadline = time.monotonic() + timeout
    while plugin is not None and plugin.running and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return plugin.running if plugin is not None else 0
