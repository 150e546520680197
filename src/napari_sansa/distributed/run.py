"""A file run on a Dask cluster: plan the outputs, set the model up on the workers, submit
batches of targets, collect their records as they finish."""

from __future__ import annotations

import math
import os
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from napari_sansa.distributed.spec import ModelSpec
from napari_sansa.distributed.worker import (
    Item,
    SansaWorker,
    TargetResult,
    segment_batch,
    stop_run,
    wait_idle,
    worker_status,
)
from napari_sansa.engine.callbacks import Cancel, Progress, is_cancelled
from napari_sansa.engine.errors import SansaError
from napari_sansa.files.outputs import existing, output_paths, reference_classes, remove_leftovers
from napari_sansa.pipeline.targets import TargetFiles, refuse_written

TASK_OVERHEAD_S = 0.04  # per task: 32 ms measured on 2 overloaded cores (benchmarks/cluster.py), rounded up
OVERHEAD_SHARE = 0.02  # tasks are sized so that the overhead is at most this share of their compute
CHECKS_PER_TASK = 64  # finished outputs read back per task on --resume (no compute)
RETRIES = 2  # reruns of a task that raised (a worker that died is handled by the scheduler)
STOP_TIMEOUT_S = 120.0  # on cancel, how long tasks in progress may take to finish their target


@dataclass
class RunSummary:
    """What a cluster run did: one record per target, in the targets' order."""

    results: list[TargetResult]
    cancelled: bool = False
    seconds: float = 0.0
    first_result_seconds: float | None = None
    targets_per_task: int = 0
    tasks: int = 0
    workers: int = 0
    seconds_per_target: float = 0.0  # as measured by the workers on the references
    setup_seconds: float = 0.0  # until every worker had loaded the model
    leftovers_removed: int = 0
    notes: list[str] = field(default_factory=list)

    def _with(self, status: str) -> list[TargetResult]:
        return [r for r in self.results if r.status == status]

    @property
    def written(self) -> list[TargetResult]:
        return self._with("written")

    @property
    def skipped(self) -> list[TargetResult]:
        return self._with("skipped")

    @property
    def failed(self) -> list[TargetResult]:
        return self._with("failed")


def task_size(seconds_per_target: float, n_targets: int, n_workers: int, model_batch: int = 1) -> int:
    """Targets per task: enough that the per-task overhead stays under 2 % of the compute, few
    enough that every worker gets at least two tasks (for balance and early results)."""
    per_target = max(seconds_per_target, 1e-3)
    size = math.ceil(TASK_OVERHEAD_S / (OVERHEAD_SHARE * per_target))
    size = math.ceil(size / model_batch) * model_batch  # whole encoder batches
    return max(1, min(size, math.ceil(n_targets / (2 * max(1, n_workers)))))


def _chunks(items: list[Item], size: int) -> list[list[Item]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _workers(client, timeout: float) -> dict[str, dict]:
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        raise SansaError(
            f"No Dask worker joined the scheduler {client.scheduler.address} in {timeout:.0f} s."
        ) from None
    try:
        return client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:  # before distributed 2025, every worker was listed anyway
        return client.scheduler_info()["workers"]


def _siblings(client, workers: dict[str, dict]) -> dict[tuple[str, int], int]:
    """Workers per (host, parent process): those started together (a local cluster, one job's
    nanny) share their machine's cores; workers of separate jobs have cores of their own."""
    parents = client.run(os.getppid)
    counts: dict[tuple[str, int], int] = {}
    for address, parent in parents.items():
        key = (workers[address]["host"], parent) if address in workers else None
        if key is not None:
            counts[key] = counts.get(key, 0) + 1
    return counts


def _set_up(client, name: str, plugin: SansaWorker) -> dict[str, dict]:
    """Register the plugin (every worker loads the model); one clear error if any worker cannot."""
    if not plugin.spec.local_files:
        client.submit(plugin.spec.fetch, pure=False, key=f"{name}-download").result()  # once, shared
    client.register_plugin(plugin, name=name)
    statuses = client.run(worker_status, name)
    failed = {address: s["failure"] for address, s in statuses.items() if s["failure"]}
    if failed:
        address, reason = next(iter(failed.items()))
        others = f" (and {len(failed) - 1} other worker(s))" if len(failed) > 1 else ""
        raise SansaError(f"The Dask worker {address}{others} cannot load the model: {reason}")
    return statuses


def _failure_reason(exc: BaseException) -> str:
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        return (
            f"it killed {exc.allowed_failures + 1} workers (out of memory, or a crash while "
            "reading or segmenting it)"
        )
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def _stop(client, name: str, unfinished: list) -> None:
    """Drop the queued tasks, let those in progress finish their current target (outputs are
    written whole), then free the model on every worker."""
    try:
        if unfinished:
            client.run(stop_run, name)
            client.cancel(unfinished)
            client.run(wait_idle, name, STOP_TIMEOUT_S)
        client.unregister_worker_plugin(name)
    except Exception:  # the workers are gone already (cluster closed)
        pass


@dataclass
class _Plan:
    """The run's targets as task items: those to segment, and those whose files are all there
    (checked by the workers: read back, redone if incomplete)."""

    items: list[Item]
    todo: list[Item]
    checks: list[Item]
    owed: list[Path]  # every file of every target


def _plan(references, targets: list[Path], out: Path, instances, overwrite: bool, resume: bool) -> _Plan:
    """Every target's files (named as the command line names them), refused if they exist
    unless ``resume`` or ``overwrite``."""
    outputs = output_paths(targets, out, reference_classes(references))
    files = [TargetFiles.of(t, o, bool(instances)) for t, o in zip(targets, outputs)]
    refuse_written(files, overwrite=overwrite or resume)
    names = existing(out)
    items = [Item(str(t), str(o), overwrite) for t, o in zip(targets, outputs)]
    there = [f.present(names) for f in files]
    todo = [item for item, found in zip(items, there) if overwrite or not found]
    checks = [item for item, found in zip(items, there) if not overwrite and found]
    return _Plan(items, todo, checks, [p for f in files for p in f.owed()])


class _Tasks:
    """The run's tasks on the cluster: submitted, collected as they finish, one record per target."""

    def __init__(self, client, name: str, summary: RunSummary, resources: dict | None) -> None:
        self.client, self.name, self.summary, self.resources = client, name, summary, resources
        self.futures: dict = {}  # unfinished task -> its targets
        self.records: dict[str, TargetResult] = {}

    def submit(self, batch: list[Item]):
        future = self.client.submit(
            segment_batch, self.name, batch, key=f"{self.name}-{self.summary.tasks}", retries=RETRIES,
            resources=self.resources, pure=False,
        )  # fmt: skip
        self.futures[future] = batch
        self.summary.tasks += 1
        return future

    def collect(
        self, batches: list[list[Item]], total: int, start: float, progress: Progress, cancel: Cancel
    ):
        """Run the batches; a failed task of several targets is retried target by target (to
        find the one that kills its workers), a failed single target is recorded as failed."""
        from distributed import as_completed

        pending = as_completed([self.submit(batch) for batch in batches])
        if progress is not None:
            progress(0, total)
        while not pending.is_empty():
            if is_cancelled(cancel):
                self.summary.cancelled = True
                return
            done = pending.next_batch(block=False)
            if not done:
                time.sleep(0.02)
                continue
            for future in done:
                batch = self.futures.pop(future)  # its result is released once read
                if future.status == "error" and len(batch) > 1:
                    for item in batch:
                        pending.add(self.submit([item]))
                    continue
                self._record(future, batch, start)
                if progress is not None:
                    progress(len(self.records), total)

    def _record(self, future, batch: list[Item], start: float) -> None:
        if future.status == "finished":
            results = future.result()
        else:
            exc = future.exception() if future.status == "error" else None
            reason = _failure_reason(exc) if exc is not None else f"task {future.status}"
            results = [TargetResult(i.target, i.output, "failed", error=reason) for i in batch]
        for result in results:
            self.records[result.target] = result
        if self.summary.first_result_seconds is None:
            self.summary.first_result_seconds = time.perf_counter() - start


def _size_tasks(summary: RunSummary, statuses: dict, workers: dict, model: ModelSpec, size, n_todo: int):
    """Record the workers' speed; the GPU resource the tasks ask for, and the targets per task."""
    summary.workers = len(statuses)
    summary.seconds_per_target = statistics.median(s["seconds_per_target"] for s in statuses.values())
    on_gpu = any(s["device"] == "cuda" for s in statuses.values())
    has_gpus = any(info.get("resources", {}).get("GPU") for info in workers.values())
    model_batch = model.config.batch_size or (8 if on_gpu else 1)
    summary.targets_per_task = size or task_size(
        summary.seconds_per_target, n_todo, len(statuses), model_batch
    )
    return {"GPU": 1} if on_gpu and has_gpus else None


def _checked_references(references) -> list:
    """The references as a list; bad prompts said here, not by every worker."""
    from napari_sansa.engine.inputs.prompts import Reference, resolve_reference

    references = [references] if isinstance(references, Reference) else list(references)
    if not references:
        raise SansaError("No references: give at least one annotated image.")
    for index, reference in enumerate(references):
        resolve_reference(reference, index)
    return references


def segment(
    client,
    references,
    targets: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    model: ModelSpec,
    targets_per_task: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: Progress = None,
    cancel: Cancel = None,
    torch_threads: int | None = None,
    worker_timeout: float = 600.0,
    instances: str | None = None,
) -> RunSummary:
    """Segment image files on the workers of a ``distributed.Client``; labels go to ``out``.

    Each worker loads ``model`` once and encodes the ``references`` (a list of
    :class:`~napari_sansa.Reference`); tasks are batches of target paths, and each writes its
    targets' files itself with the pipeline's writer (in one order, each atomically), named as
    the CLI names them. Existing files stop the run (``OutputExists``) unless ``resume`` (keep
    complete targets, do the rest) or ``overwrite``. ``progress(done, total)`` is called as
    targets finish; ``cancel`` (an Event or a callable) stops the run: queued tasks are dropped,
    outputs written so far stay. A target that cannot be read or segmented is reported in the
    summary and the others go on; so is a task whose targets keep killing their workers.
    ``torch_threads`` overrides each worker's share of its host's cores; ``worker_timeout`` is
    how long to wait for a first worker. ``instances`` ("watershed" or "sam") also writes each
    target's objects and their table.
    """
    from napari_sansa.files.images import ensure_writable_folder

    start, started_at = time.perf_counter(), time.time()
    references = _checked_references(references)
    overwrite = overwrite and not resume  # resuming keeps complete outputs, whatever else is asked
    targets = [Path(t).absolute() for t in targets]
    if not targets:
        raise SansaError("No target images.")
    out = ensure_writable_folder(Path(out).absolute())
    plan = _plan(references, targets, out, instances, overwrite, resume)
    summary = RunSummary([], leftovers_removed=remove_leftovers(plan.owed, started_at) if resume else 0)
    workers, name = _workers(client, worker_timeout), f"sansa-{uuid.uuid4().hex[:12]}"
    options = {"siblings": _siblings(client, workers), "torch_threads": torch_threads, "instances": instances}
    plugin = SansaWorker(model, references, **options)
    tasks = _Tasks(client, name, summary, None)
    try:
        statuses = _set_up(client, name, plugin)
        summary.setup_seconds = time.perf_counter() - start
        tasks.resources = _size_tasks(summary, statuses, workers, model, targets_per_task, len(plan.todo))
        batches = _chunks(plan.todo, summary.targets_per_task) + _chunks(plan.checks, CHECKS_PER_TASK)
        tasks.collect(batches, len(plan.items), start, progress, cancel)
    finally:
        _stop(client, name, list(tasks.futures))
    if not summary.cancelled:
        summary.leftovers_removed += remove_leftovers(plan.owed, time.time())
    summary.results = [tasks.records[i.target] for i in plan.items if i.target in tasks.records]
    summary.seconds = time.perf_counter() - start
    return summary
